"""Forecast baselines for trajectories under actions: copy the last observation, or iterate a linear model
fitted by least squares. Each gives Gaussian forecasts with the interface of
:meth:`pplgen.models.WorldModel.forecast`."""

from __future__ import annotations

import torch

from pplgen.data.trajectories import check_trajectories
from pplgen.errors import DataError, ModelError

__all__ = ["CopyLast", "LinearDynamics"]

_JITTER = 1e-6  # added to the diagonal of fitted covariances


def _covariance(residuals: torch.Tensor) -> torch.Tensor:
    """The maximum-likelihood covariance ``(D, D)`` of residuals ``(M, D)``, with a little jitter."""
    centred = residuals - residuals.mean(0)
    cov = centred.T @ centred / len(residuals)
    return cov + _JITTER * torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)


def _gaussian_forecast(means: torch.Tensor, covs: torch.Tensor, future: torch.Tensor):
    """``means`` ``(N, H, D)`` and their log-densities ``(N, H)`` of ``future`` under ``N(mean, cov)``,
    ``covs`` ``(H, D, D)`` or ``(N, H, D, D)``."""
    if future.shape != means.shape:
        raise DataError(
            f"expected future observations of shape {tuple(means.shape)}, got {tuple(future.shape)}"
        )
    return means, torch.distributions.MultivariateNormal(means, covs).log_prob(future)


def _split(obs_prefix, actions, future, who):
    K, H = obs_prefix.shape[1] - 1, future.shape[1]
    if actions.dim() != 3 or actions.shape[1] < K + H:
        raise DataError(
            f"{who}: a forecast of {H} steps from {K + 1} observations needs actions (N, {K + H}, act_dim), "
            f"got {tuple(actions.shape)}"
        )
    check_trajectories(obs_prefix, actions[:, :K], who=who)
    check_trajectories(future[:, :1].expand(-1, K + H + 1, -1), actions[:, : K + H], who=who)
    return K, H


class CopyLast:
    r"""The persistence forecast :math:`\hat o_{K+h} = o_K` with Gaussian errors whose covariance for
    each horizon :math:`h` is fitted on training trajectories (the spread of :math:`o_{t+h} - o_t`).

    Example:
        >>> obs = torch.randn(8, 21, 2)
        >>> baseline = CopyLast().fit(obs, torch.zeros(8, 20, 1), horizon=5)
        >>> mean, log_prob = baseline.forecast(obs[:, :11], torch.zeros(8, 15, 1), obs[:, 11:16])
        >>> mean.shape, log_prob.shape
        (torch.Size([8, 5, 2]), torch.Size([8, 5]))
    """

    covs: torch.Tensor | None = None  # (H, D, D)

    def fit(self, obs: torch.Tensor, actions: torch.Tensor, horizon: int) -> CopyLast:
        """Fit the error covariances of horizons 1 .. ``horizon`` on ``obs`` ``(N, T + 1, D)``."""
        check_trajectories(obs, actions, who="CopyLast.fit")
        if not 1 <= horizon < obs.shape[1]:
            raise DataError(f"CopyLast.fit: horizon must lie in 1 .. {obs.shape[1] - 1}, got {horizon}")
        diffs = [(obs[:, h:] - obs[:, :-h]).reshape(-1, obs.shape[-1]) for h in range(1, horizon + 1)]
        self.covs = torch.stack([_covariance(d.double()).to(obs.dtype) for d in diffs])
        return self

    def forecast(self, obs_prefix: torch.Tensor, actions: torch.Tensor, future: torch.Tensor):
        """Means ``(N, H, D)`` and log-densities ``(N, H)`` of ``future`` ``(N, H, D)``."""
        if self.covs is None:
            raise ModelError("CopyLast: call fit(obs, actions, horizon) before forecast")
        K, H = _split(obs_prefix, actions, future, "CopyLast")
        if H > len(self.covs):
            raise DataError(f"CopyLast was fitted for horizons up to {len(self.covs)}, got a forecast of {H}")
        means = obs_prefix[:, K:].expand(-1, H, -1)
        return _gaussian_forecast(means, self.covs[:H].to(obs_prefix), future)


class LinearDynamics:
    r"""The linear model :math:`o_{t+1} = A o_t + B a_t + c + \epsilon_t`, :math:`\epsilon_t \sim N(0, Q)`,
    fitted by least squares on every transition, and iterated for forecasts: from the last observation
    (known exactly), :math:`\mu_{h+1} = A \mu_h + B a_{K+h} + c` and :math:`\Sigma_{h+1} = A \Sigma_h A^\top
    + Q` (the exact forecast of the fitted model).

    Attributes (after :meth:`fit`):
        A, B, c, Q: ``(D, D)``, ``(D, act_dim)``, ``(D,)``, ``(D, D)``.

    Example:
        >>> A = torch.tensor([[0.9, 0.0], [0.1, 0.8]])
        >>> B = torch.tensor([[1.0], [0.0]])
        >>> obs, actions = [torch.randn(50, 2)], torch.randn(50, 30, 1)
        >>> for t in range(30):
        ...     obs.append(obs[-1] @ A.T + actions[:, t] @ B.T + 0.01 * torch.randn(50, 2))
        >>> model = LinearDynamics().fit(torch.stack(obs, 1), actions)
        >>> torch.allclose(model.A, A, atol=0.02)
        True
    """

    A: torch.Tensor | None = None

    def fit(self, obs: torch.Tensor, actions: torch.Tensor) -> LinearDynamics:
        """Fit on every transition of ``obs`` ``(N, T + 1, D)`` under ``actions`` ``(N, T, act_dim)``."""
        check_trajectories(obs, actions, who="LinearDynamics.fit")
        D = obs.shape[-1]
        now = obs[:, :-1].reshape(-1, D).double()
        features = torch.cat([now, actions.reshape(len(now), -1).double(), now.new_ones(len(now), 1)], dim=1)
        target = obs[:, 1:].reshape(-1, D).double()  # (M, D)
        if len(features) < features.shape[1]:
            raise DataError(
                f"LinearDynamics.fit: {len(features)} transitions cannot determine {features.shape[1]} "
                "coefficients per dimension"
            )
        W = torch.linalg.lstsq(features, target).solution  # (D + act_dim + 1, D)
        self.A, self.B, self.c = W[:D].T.to(obs.dtype), W[D:-1].T.to(obs.dtype), W[-1].to(obs.dtype)
        self.Q = _covariance(target - features @ W).to(obs.dtype)
        return self

    def forecast(self, obs_prefix: torch.Tensor, actions: torch.Tensor, future: torch.Tensor):
        """Means ``(N, H, D)`` and log-densities ``(N, H)`` of ``future`` ``(N, H, D)``."""
        if self.A is None:
            raise ModelError("LinearDynamics: call fit(obs, actions) before forecast")
        K, H = _split(obs_prefix, actions, future, "LinearDynamics")
        A, B, c, Q = (w.to(obs_prefix) for w in (self.A, self.B, self.c, self.Q))
        mean, cov = obs_prefix[:, K], torch.zeros_like(Q)
        means, covs = [], []
        for h in range(H):
            mean, cov = mean @ A.T + actions[:, K + h] @ B.T + c, A @ cov @ A.T + Q
            means.append(mean)
            covs.append(cov)
        return _gaussian_forecast(torch.stack(means, 1), torch.stack(covs), future)
