r"""Anomaly scores per data point, and the AUROC that tells how well they separate two sets of points.

A model with a density scores a point by its negative log-likelihood, :math:`-\log p(x)`: in nats, and
in bits per dimension, :math:`-\log_2 p(x) / D`, which compares data of different sizes. The exact family
gives it exactly; the latent family by importance sampling (or AIS), as :func:`log_likelihood` does. An
implicit model (a GAN) has no density: its score is minus its critic's score on the point, the
discriminator's verdict "this does not look like the training data", which ranks points but is not a
density and has no unit.

Likelihoods can fail as detectors of novel data: a model may give higher density to a data set it never
saw than to its own (Nalisnick et al. 2019), so scores should be checked with :func:`auroc` on held-out
anomalies, beside a simple baseline.

References:
    Nalisnick, Matsukawa, Teh, Gorur & Lakshminarayanan (2019), "Do deep generative models know what
    they don't know?".
    Schlegl, Seeböck, Waldstein, Schmidt-Erfurth & Langs (2017), "Unsupervised anomaly detection with
    generative adversarial networks to guide marker discovery" (a GAN's discriminator as a score).
    Hanley & McNeil (1982), "The meaning and use of the area under a receiver operating characteristic
    (ROC) curve".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyro
import torch
from torch import nn

from pplgen.errors import DataError, ImplicitLikelihoodError, ModelError, program_errors
from pplgen.evaluate.ais import AISSettings
from pplgen.evaluate.codes import _checked_data
from pplgen.evaluate.likelihood import estimate
from pplgen.infer.adversarial import AdversarialTrainer
from pplgen.infer.checks import as_tensors, chunks
from pplgen.infer.params import evaluation_mode, on_device
from pplgen.infer.result import FitResult

__all__ = ["AnomalyScores", "anomaly_scores", "auroc"]


@dataclass(frozen=True)
class AnomalyScores:
    r"""Anomaly scores of N data points: higher is more anomalous.

    Attributes:
        scores: ``(N,)`` on the CPU: :math:`-\log p(x_n)` in nats when ``density``, else minus the
            critic's score (no unit).
        estimator: how the scores were obtained, in words (``"exact"``, ``"importance-sampled,
            K=100"``, ``"critic: ..."``).
        dims: D, the numbers in one data point (of the first data tensor).
        density: whether the scores are negative log-densities.

    Example:
        An untrained FVSBN gives each of 8 bits probability 1/2: every point scores 8 bits. A critic's
        scores have no unit:

        >>> from pplgen.models import FVSBNModel
        >>> x = torch.bernoulli(torch.full((4, 8), 0.5))
        >>> found = anomaly_scores(FVSBNModel(8).model, x, device="cpu")
        >>> found.estimator, len(found), [round(b, 4) for b in found.bits_per_dim.tolist()]
        ('exact', 4, [1.0, 1.0, 1.0, 1.0])
        >>> AnomalyScores(torch.tensor([0.3, -1.2]), "critic: GAN", dims=2, density=False).nats
        Traceback (most recent call last):
        ...
        pplgen.errors.ImplicitLikelihoodError: these scores are a critic's (critic: GAN), not a density, ...
    """

    scores: torch.Tensor
    estimator: str
    dims: int
    density: bool

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def nats(self) -> torch.Tensor:
        r""":math:`-\log p(x_n)` in nats, ``(N,)``; only for a model with a density."""
        if not self.density:
            raise ImplicitLikelihoodError(
                f"these scores are a critic's ({self.estimator}), not a density, so they have no unit of "
                "nats or bits: rank points by .scores instead"
            )
        return self.scores

    @property
    def bits_per_dim(self) -> torch.Tensor:
        r""":math:`-\log_2 p(x_n) / D`, ``(N,)``: the nats divided by :math:`D \ln 2`."""
        return self.nats / (self.dims * math.log(2))


def anomaly_scores(
    model: Callable | FitResult,
    data,
    guide: Callable | None = None,
    *,
    num_samples: int = 100,
    method: str = "is",
    ais: AISSettings | None = None,
    max_rows: int = 1024,
    device: str | torch.device = "auto",
) -> AnomalyScores:
    r"""How anomalous each data point looks to a model: higher is more anomalous.

    Exact and latent models give :math:`-\log p(x_n)` from :func:`log_likelihood` with the same
    arguments: exact for the exact family; importance-sampled with ``num_samples`` draws from the guide
    for the latent family (an upper bound on :math:`-\log p` in expectation), or AIS with
    ``method="ais"``. The result says which (``estimator``) and also gives bits per dimension. A fitted
    implicit model (a GAN, ALI/BiGAN) gives minus its critic's score on the point,

    .. math::
        s(x) = -D(x) \quad \text{(GAN)}, \qquad s(x) = -\frac{1}{K} \sum_{k=1}^{K} D(x, z_k),
        \quad z_k \sim q(z \mid x) \quad \text{(ALI, } K = \text{num\_samples)},

    where :math:`D` is the critic's "real" logit (or Wasserstein score); a critic trained with PacGAN
    packing judges each point packed with copies of itself. This ranks points but is not a density.

    Args:
        model: a :class:`FitResult` (needed for an implicit model, whose critic it holds), or a model
            program with a density.
        data: a tensor or tuple of tensors, as passed to ``fit``.
        guide: the proposal q(z | x) for a latent program (a FitResult's own guide by default).
        num_samples: importance samples or AIS chains per point (latent family), or encoder draws
            (ALI).
        method: ``"is"`` or ``"ais"``, as for :func:`log_likelihood`.
        ais: the AIS settings.
        max_rows: rows evaluated in one pass.
        device: where to evaluate a program that is not a FitResult.

    Returns:
        :class:`AnomalyScores`: ``scores``, ``nats`` and ``bits_per_dim`` per point, and the estimator.

    Raises:
        ModelError: ``model`` is not a fitted program (a module without ``forward``, an implicit program
            without its FitResult, a FitResult without its critic).
        DataError: the data are not finite, or not of the shape the program was fitted to.

    Example:
        >>> import pplgen
        >>> from pplgen.models import NADEModel
        >>> x = pplgen.data.load("digits", "train").x[:64]
        >>> nade = NADEModel(64, hidden=8)
        >>> result = pplgen.fit(nade.model, x, epochs=1, valid_fraction=0, seed=0, progress=False)
        >>> scores = pplgen.anomaly_scores(result, x)
        >>> scores.estimator, scores.bits_per_dim.shape
        ('exact', torch.Size([64]))
    """
    _check_program(model)
    tensors = _checked_data(model, data) if isinstance(model, FitResult) else as_tensors(data)
    dims = tensors[0][0].numel()
    if isinstance(model, FitResult) and model.family == "implicit":
        return AnomalyScores(*_critic_scores(model, tensors, num_samples, max_rows), dims, density=False)
    options = {"num_samples": num_samples, "method": method, "ais": ais, "max_rows": max_rows}
    try:
        values, found = estimate(model, tensors, guide, device=device, **options)
    except ImplicitLikelihoodError as exc:
        raise ModelError(
            f"{exc}; an implicit program's anomaly score comes from its critic: pass the FitResult that "
            "pplgen.fit returned"
        ) from exc
    return AnomalyScores(-values, found.estimator, dims, density=True)


def _check_program(model) -> None:
    """A FitResult or a model program; a module that is not itself a program (a zoo model) is refused."""
    if isinstance(model, FitResult):
        return
    if isinstance(model, nn.Module) and type(model).forward is nn.Module.forward:
        raise ModelError(
            f"got the module {type(model).__name__}, which is not itself a program (it has no forward): "
            "pass the FitResult that pplgen.fit returned, or the module's model program (module.model)"
        )
    if not callable(model):
        raise ModelError(
            f"expected a FitResult from pplgen.fit or a model program, got {type(model).__name__}"
        )


def _critic_scores(result: FitResult, tensors: tuple, num_samples: int, max_rows: int) -> tuple:
    """Minus the critic's mean score on each point (over encoder draws for ALI), and the words for it."""
    trainer = result.trainer
    if result.discriminator is None or not isinstance(trainer, AdversarialTrainer):
        raise ModelError(
            "this implicit fit holds no trained critic, and an implicit model's anomaly score comes from "
            "its critic: pass the FitResult that pplgen.fit (or FitResult.load with its discriminator) gave"
        )
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    pack = trainer.settings.pack
    draws = num_samples if result.guide is not None else 1  # only ALI's real pairs hold a random draw
    parts = []
    with torch.no_grad(), on_device(result.device), pyro.validation_enabled(False):
        with evaluation_mode(result.model, result.guide, result.discriminator):
            for batch in chunks(tensors, max(1, max_rows // pack)):
                batch = tuple(t.to(result.device) for t in batch)
                total = 0.0
                for _ in range(draws):
                    with program_errors(result.model):
                        real, _, context, _ = trainer.simulate(batch)
                    copies = None if context is None else context.repeat_interleave(pack, 0)
                    total = total + trainer.critic(real.repeat_interleave(pack, 0), copies)
                parts.append(-(total / draws).float().cpu())
    averaged = f", averaged over {draws} encoder draws z ~ q(z | x)" if result.guide is not None else ""
    packed = f", each point packed with {pack - 1} copies of itself" if pack > 1 else ""
    return torch.cat(parts), f"critic: minus the discriminator's score{averaged}{packed}; not a density"


def auroc(normal, anomalous) -> float:
    r"""The area under the ROC curve of telling ``anomalous`` points from ``normal`` ones by their
    scores, higher scores meaning more anomalous.

    It is the Mann–Whitney statistic divided by :math:`nm`, the probability that a random anomalous
    point scores above a random normal one, ties counted half,

    .. math::
        \mathrm{AUROC} = \frac{1}{nm} \sum_{i=1}^{n} \sum_{j=1}^{m}
        \left( [a_j > b_i] + \tfrac{1}{2} [a_j = b_i] \right),

    computed from the midranks of the pooled scores in :math:`O((n + m) \log(n + m))`. 1 separates the
    sets perfectly, 0.5 is chance, below 0.5 the scores point the wrong way.

    Args:
        normal: the scores :math:`b_i` of the n normal points: a tensor, array or sequence, or
            :class:`AnomalyScores`.
        anomalous: the scores :math:`a_j` of the m anomalous points, likewise.

    Raises:
        DataError: a set is empty, not one score per point, or holds NaN.

    Example:
        >>> auroc([0.1, 0.2, 0.3], [0.25, 0.4])
        0.8333333333333334

    References:
        Hanley & McNeil (1982), "The meaning and use of the area under a receiver operating
        characteristic (ROC) curve".
        Mann & Whitney (1947), "On a test of whether one of two random variables is stochastically
        larger than the other".
    """
    b, a = _score_array(normal, "normal"), _score_array(anomalous, "anomalous")
    pooled = np.concatenate([b, a])
    _, inverse, counts = np.unique(pooled, return_inverse=True, return_counts=True)
    midranks = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based rank of each distinct value, ties averaged
    rank_sum = midranks[inverse.reshape(-1)][len(b) :].sum()
    u = rank_sum - len(a) * (len(a) + 1) / 2.0
    return float(u / (len(a) * len(b)))


def _score_array(scores, name: str) -> np.ndarray:
    """``scores`` as a finite float64 vector with at least one entry."""
    if isinstance(scores, AnomalyScores):
        scores = scores.scores
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().double().numpy()
    try:
        array = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{name} scores should be numbers, one per point; got {type(scores).__name__}"
        ) from exc
    if array.ndim != 1 or array.size == 0:
        raise DataError(f"{name} scores should be a non-empty vector, one per point; got shape {array.shape}")
    if np.isnan(array).any():  # +inf is a fair score (probability zero); NaN ranks nowhere
        raise DataError(f"{name} scores hold {int(np.isnan(array).sum())} NaN of {array.size}")
    return array
