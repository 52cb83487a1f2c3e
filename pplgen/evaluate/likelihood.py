"""Log-likelihoods per data point: exact where the family allows, importance-sampled otherwise."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from inspect import signature

import pyro
import torch
from pyro import poutine

from pplgen.errors import ImplicitLikelihoodError, ModelError, program_errors
from pplgen.evaluate.ais import AISSettings, annealed_log_weights
from pplgen.graph import inspect
from pplgen.infer.avb import implicit_sites
from pplgen.infer.checks import as_tensors, chunks
from pplgen.infer.fit import resolve_device
from pplgen.infer.params import evaluation_mode, on_device
from pplgen.infer.pointwise import per_point, repeat_rows
from pplgen.infer.result import FitResult

__all__ = [
    "METHODS",
    "Estimate",
    "bits_per_dim",
    "describe_estimator",
    "estimate",
    "importance_log_weights",
    "log_likelihood",
]

#: The estimators of a latent model's log-likelihood, importance sampling and annealed importance sampling.
METHODS = ("is", "ais")


def _observed(site: dict) -> bool:
    return site["is_observed"]


def _resolve(model, guide, device):
    if isinstance(model, FitResult):
        return model.model, model.guide if guide is None else guide, model.device
    return model, guide, resolve_device(device)


def log_likelihood(
    model: Callable | FitResult,
    data,
    guide: Callable | None = None,
    *,
    num_samples: int = 100,
    method: str = "is",
    ais: AISSettings | None = None,
    max_rows: int = 1024,
    device: str | torch.device = "auto",
) -> torch.Tensor:
    r"""Log-likelihood :math:`\log p(x_n)` of each data point, in nats; shape ``(N,)``.

    For the exact family the joint density of the trace is the likelihood. For latent models,
    ``method="is"`` gives the importance-sampled estimate with the guide as proposal,

    .. math::
        \log p(x) \approx \log \frac{1}{K} \sum_{k=1}^{K} \frac{p(x, z_k)}{q(z_k \mid x)},
        \qquad z_k \sim q(z \mid x),

    a stochastic lower bound that tightens as :math:`K` (``num_samples``) grows (Burda et al. 2016);
    with no guide the prior is the proposal, which is valid but needs far more samples. The samples are
    drawn by repeating each data point inside the data plate, at most ``max_rows`` rows per pass, so K in
    the thousands runs in bounded memory. ``method="ais"`` runs annealed importance sampling with
    ``num_samples`` chains per point instead (Wu et al. 2017; settings in ``ais``), which needs no guide
    and suits decoder-based models whose posterior the guide fits poorly.

    Args:
        model: a model program, or a :class:`FitResult` (its model, guide and device are used).
        data: a tensor or tuple of tensors, as passed to ``fit``.
        guide: the proposal q(z | x) for latent models.
        num_samples: K, importance samples (or AIS chains) per data point (latent family only).
        method: ``"is"`` (importance sampling) or ``"ais"`` (annealed importance sampling).
        ais: the AIS settings (:class:`AISSettings`: temperatures, leapfrog steps, initial distribution).
        max_rows: data rows (points times samples) evaluated in one pass; lower it for networks with
            large activations (a 500-unit NADE holds rows x 784 x 500 floats).
        device: where to evaluate, when ``model`` is not a FitResult.

    References:
        Burda, Grosse & Salakhutdinov (2016), "Importance weighted autoencoders".
        Rezende et al. (2014), Appendix E (importance-sampled marginal likelihood).
        Wu, Burda, Salakhutdinov & Grosse (2017), "On the quantitative analysis of decoder-based
        generative models" (AIS).

    Example:
        With the exact posterior as the guide every importance weight equals :math:`p(x)`, so even
        K = 3 samples give the exact value:

        >>> import pplgen, pyro, pyro.distributions as dist
        >>> def model(x):  # z ~ N(0, 1), x | z ~ N(z, 1), so p(x) = N(x; 0, 2), variance 2
        ...     with pyro.plate("data", len(x)):
        ...         z = pyro.sample("z", dist.Normal(0.0, 1.0))
        ...         pyro.sample("x", dist.Normal(z, 1.0), obs=x)
        >>> def guide(x):  # the exact posterior p(z | x) = N(x / 2, 1 / 2)
        ...     with pyro.plate("data", len(x)):
        ...         pyro.sample("z", dist.Normal(x / 2, 0.5**0.5))
        >>> x = torch.tensor([-1.0, 0.0, 2.0])
        >>> found = pplgen.log_likelihood(model, x, guide, num_samples=3, device="cpu")
        >>> torch.allclose(found, dist.Normal(0.0, 2.0**0.5).log_prob(x))
        True
    """
    return _log_likelihood(model, data, guide, num_samples, method, ais, max_rows, device)[0]


def _log_likelihood(
    model, data, guide, num_samples, method, ais, max_rows, device
) -> tuple[torch.Tensor, str]:
    """The per-point values of :func:`log_likelihood` and the estimator that gave them, in words."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: expected one of {', '.join(METHODS)}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    model, guide, device = _resolve(model, guide, device)
    tensors = tuple(t.to(device) for t in as_tensors(data))
    with torch.no_grad(), on_device(device):
        graph = inspect(model, *tuple(t[:2] for t in tensors))
    family = graph.graph["family"]
    if family == "implicit":
        raise ImplicitLikelihoodError(
            f"the program has a simulated site and no likelihood ({graph.graph['reason']}); "
            "evaluate it with sample metrics instead"
        )
    data_plates = tuple(graph.graph["data_plates"])
    if not data_plates:
        raise ModelError(
            "the program has no plate over the data points, so log p(x) cannot be split per point"
        )
    described = describe_estimator(family, num_samples=num_samples, method=method, ais=ais)
    if family == "latent" and guide is not None and _implicit_guide(guide, tensors, device):
        guide = None  # an implicit guide (AVB) has no log q: the prior is the proposal instead
        if method == "is":
            described += " with the prior as proposal (the guide is implicit: it has no log q)"
    if family == "exact" and any(d == "Dequantized" for _, d in graph.nodes(data="dist")):
        described = "dequantised: a stochastic lower bound on the discrete likelihood"
    samples = 1 if family == "exact" else num_samples
    if method == "ais" and family == "latent":
        settings = ais or AISSettings()
        if settings.initial == "guide" and guide is None:
            raise ValueError("AIS from the guide needs a guide; use AISSettings(initial='prior')")
        estimate = _annealed
    else:
        settings, estimate = None, _importance_sampled
    points = max(1, max_rows // samples)
    results = []
    with on_device(device), pyro.validation_enabled(False), evaluation_mode(model, guide):
        for batch in chunks(tensors, points):
            with program_errors(guide or model, role="guide" if guide else "model"):
                results.append(
                    estimate(model, guide, family, batch, data_plates, samples, max_rows, settings)
                )
    return torch.cat(results).cpu(), described


def _implicit_guide(guide: Callable, tensors: tuple, device) -> bool:
    with on_device(device):
        return bool(implicit_sites(guide, tuple(t[:2] for t in tensors)))


def _importance_sampled(
    model, guide, family, batch, data_plates, samples, max_rows, settings
) -> torch.Tensor:
    """log (1/K) sum_k w_k per point."""
    log_w = importance_log_weights(
        model, guide if family == "latent" else None, batch, data_plates, samples, max_rows
    )
    return torch.logsumexp(log_w, dim=1) - math.log(samples)


def importance_log_weights(
    model: Callable,
    guide: Callable | None,
    batch: tuple,
    data_plates: tuple[str, ...],
    samples: int,
    max_rows: int = 1024,
) -> torch.Tensor:
    """log w_k = log p(x, z_k) - log q(z_k | x) for K samples per data point, ``(N, K)``.

    The samples are drawn by repeating each point inside the data plate, at most ``max_rows`` rows per
    pass. With no guide the weight is p(x | z) with z from the prior (or, for a model without latents,
    the exact p(x)).
    """
    per_chunk = max(1, min(samples, max_rows // len(batch[0])))
    parts = []
    with torch.no_grad():
        for start in range(0, samples, per_chunk):
            k = min(per_chunk, samples - start)
            rows = repeat_rows(batch, k)
            if guide is not None:
                guide_trace = poutine.trace(guide).get_trace(*rows)
                model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*rows)
                log_w = per_point(model_trace, data_plates, len(rows[0]))
                log_w = log_w - per_point(guide_trace, data_plates, len(rows[0]))
            else:  # exact, or the prior as proposal: the weight is p(x | z)
                model_trace = poutine.trace(model).get_trace(*rows)
                log_w = per_point(model_trace, data_plates, len(rows[0]), _observed)
            parts.append(log_w.reshape(-1, k))
    return torch.cat(parts, dim=1)


def _annealed(model, guide, family, batch, data_plates, samples, max_rows, settings) -> torch.Tensor:
    log_w = annealed_log_weights(model, guide, batch, data_plates, samples, settings)
    return torch.logsumexp(log_w, dim=1) - math.log(samples)


@dataclass
class Estimate:
    """A mean log-likelihood over a data set with its standard error and how it was obtained.

    Attributes:
        mean: the mean of log p(x_n) over the points, in nats.
        stderr: its standard error, std(log p(x_n)) / sqrt(N): the spread over the data points, which
            includes the Monte Carlo noise of each point's estimate.
        estimator: ``"exact"``, ``"importance-sampled, K=..."`` or ``"AIS, ... chains, ... steps"``.
        num_points: N.

    Example:
        An untrained FVSBN gives every vector of 8 bits probability :math:`2^{-8}`, exactly, so the
        spread over the points is zero:

        >>> import math
        >>> from pplgen.models import FVSBNModel
        >>> x = torch.bernoulli(torch.full((10, 8), 0.5))
        >>> _, found = estimate(FVSBNModel(8).model, x, device="cpu")
        >>> math.isclose(found.mean, -8 * math.log(2), rel_tol=1e-6), found.stderr, found.estimator
        (True, 0.0, 'exact')
    """

    mean: float
    stderr: float
    estimator: str
    num_points: int


def estimate(
    model: Callable | FitResult, data, guide: Callable | None = None, **kwargs
) -> tuple[torch.Tensor, Estimate]:
    """:func:`log_likelihood` per point and an :class:`Estimate` of the mean (with the estimator named).

    Example:
        >>> import pplgen, pyro, pyro.distributions as dist
        >>> def model(x):  # z ~ N(0, 1), x | z ~ N(z, 1), so p(x) = N(x; 0, 2), variance 2
        ...     with pyro.plate("data", len(x)):
        ...         z = pyro.sample("z", dist.Normal(0.0, 1.0))
        ...         pyro.sample("x", dist.Normal(z, 1.0), obs=x)
        >>> x = torch.linspace(-2.0, 2.0, 5)
        >>> values, found = estimate(model, x, num_samples=10, device="cpu")
        >>> values.shape, found.estimator, found.num_points
        (torch.Size([5]), 'importance-sampled, K=10', 5)
        >>> settings = AISSettings(steps=20, leapfrog_steps=2)
        >>> estimate(model, x, method="ais", num_samples=4, ais=settings, device="cpu")[1].estimator
        'AIS, 4 chains x 20 steps from the prior (HMC, 2 leapfrog steps)'
    """
    defaults = {  # log_likelihood's own keyword defaults: one place says them
        name: p.default
        for name, p in signature(log_likelihood).parameters.items()
        if p.kind is p.KEYWORD_ONLY
    }
    values, described = _log_likelihood(model, data, guide, **{**defaults, **kwargs})
    stderr = float(values.std() / math.sqrt(len(values))) if len(values) > 1 else math.nan
    return values, Estimate(float(values.mean()), stderr, described, len(values))


def describe_estimator(family: str, *, num_samples: int = 100, method: str = "is", ais=None, **_) -> str:
    """Which estimator :func:`log_likelihood` uses for a family with these settings, in words."""
    if family == "exact":
        return "exact"
    if method == "ais":
        settings = ais or AISSettings()
        return (
            f"AIS, {num_samples} chains x {settings.steps} steps from the {settings.initial} "
            f"(HMC, {settings.leapfrog_steps} leapfrog steps)"
        )
    return f"importance-sampled, K={num_samples}"


def bits_per_dim(model: Callable | FitResult, data, guide: Callable | None = None, **kwargs) -> float:
    r"""Mean negative log-likelihood in bits per dimension: :math:`-\overline{\log p(x)} / (D \ln 2)`.

    :math:`D` is the number of entries of one data point of the first data tensor.

    Example:
        An untrained FVSBN gives each bit probability 1/2: one bit per dimension.

        >>> from pplgen.models import FVSBNModel
        >>> x = torch.bernoulli(torch.full((10, 8), 0.5))
        >>> round(bits_per_dim(FVSBNModel(8).model, x, device="cpu"), 6)
        1.0
    """
    tensors = as_tensors(data)
    dims = tensors[0][0].numel()
    return float(-log_likelihood(model, tensors, guide, **kwargs).mean() / (dims * math.log(2)))
