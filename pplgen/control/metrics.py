"""Scores of multi-step forecasts: error and predictive log-likelihood per horizon."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from pplgen.data.trajectories import check_trajectories
from pplgen.errors import DataError

__all__ = ["forecast_scores"]


def forecast_scores(
    predictor, obs: torch.Tensor, actions: torch.Tensor, prefix: int, horizons: Sequence[int] = (1, 10, 50)
) -> dict[int, dict[str, float]]:
    r"""Root-mean-square error and negative predictive log-likelihood of forecasts ``h`` steps ahead.

    Each trajectory's first ``prefix + 1`` observations are given, with all its actions; the predictor
    forecasts the rest. For a horizon :math:`h`, ``rmse`` is :math:`\sqrt{\operatorname{mean}_{n,d}
    (\hat o_{K+h} - o_{K+h})^2}` with :math:`\hat o` the predictive mean, and ``nll_nats`` is
    :math:`-\operatorname{mean}_n \log p(o_{K+h} \mid o_{0:K}, a)` in nats per observation vector (with
    its standard error over trajectories, ``nll_stderr``).

    Args:
        predictor: an object with ``forecast(obs_prefix, actions, future) -> (means (N, H, D), log_probs
            (N, H))`` (:class:`~pplgen.models.WorldModel`, :class:`CopyLast`, :class:`LinearDynamics`,
            :class:`~pplgen.data.LinearGaussianSystem`), or such a callable.
        obs: ``(N, prefix + 1 + H, D)`` with ``H = max(horizons)``.
        actions: ``(N, prefix + H, act_dim)``.
        prefix: the number ``K`` of actions in the given prefix.
        horizons: the steps ahead to score.

    Returns:
        ``{h: {"rmse": ..., "nll_nats": ..., "nll_stderr": ...}}``.

    Example:
        >>> from pplgen.control import CopyLast
        >>> obs, actions = torch.randn(4, 16, 2), torch.zeros(4, 15, 1)
        >>> baseline = CopyLast().fit(obs, actions, horizon=10)
        >>> scores = forecast_scores(baseline, obs, actions, prefix=5, horizons=(1, 10))
        >>> sorted(scores[10])
        ['nll_nats', 'nll_stderr', 'rmse']
    """
    check_trajectories(obs, actions, who="forecast_scores")
    H = max(horizons)
    if min(horizons) < 1 or obs.shape[1] != prefix + 1 + H:
        raise DataError(
            f"forecast_scores: expected horizons >= 1 and observations (N, prefix + 1 + {H}) = (N, "
            f"{prefix + 1 + H}, D), got horizons {list(horizons)} and shape {tuple(obs.shape)}"
        )
    forecast: Callable = getattr(predictor, "forecast", predictor)
    means, log_probs = forecast(obs[:, : prefix + 1], actions, obs[:, prefix + 1 :])
    scores = {}
    for h in horizons:
        error = (means[:, h - 1] - obs[:, prefix + h]).pow(2).mean()
        nll = -log_probs[:, h - 1].double()
        scores[h] = {
            "rmse": float(error.sqrt()),
            "nll_nats": float(nll.mean()),
            "nll_stderr": float(nll.std() / math.sqrt(len(nll))) if len(nll) > 1 else float("nan"),
        }
    return scores
