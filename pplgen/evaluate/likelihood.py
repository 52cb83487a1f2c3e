"""Log-likelihoods per data point: exact where the family allows, importance-sampled otherwise."""

from __future__ import annotations

import math
from collections.abc import Callable

import pyro
import torch
from pyro import poutine

from pplgen.errors import ImplicitLikelihoodError, ModelError, program_errors
from pplgen.graph import inspect
from pplgen.infer.checks import as_tensors, chunks
from pplgen.infer.fit import resolve_device
from pplgen.infer.params import evaluation_mode, on_device
from pplgen.infer.pointwise import per_point
from pplgen.infer.result import FitResult

__all__ = ["bits_per_dim", "log_likelihood"]


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
    max_rows: int = 1024,
    device: str | torch.device = "auto",
) -> torch.Tensor:
    r"""Log-likelihood :math:`\log p(x_n)` of each data point, in nats; shape ``(N,)``.

    For the exact family the joint density of the trace is the likelihood. For latent models it is
    the importance-sampled estimate with the guide as proposal,

    .. math::
        \log p(x) \approx \log \frac{1}{K} \sum_{k=1}^{K} \frac{p(x, z_k)}{q(z_k \mid x)},
        \qquad z_k \sim q(z \mid x),

    a stochastic lower bound that tightens as :math:`K` (``num_samples``) grows (Burda et al. 2016);
    with no guide the prior is the proposal, which is valid but needs far more samples. The K samples
    are drawn in one pass by repeating each data point K times inside the data plate.

    Args:
        model: a model program, or a :class:`FitResult` (its model, guide and device are used).
        data: a tensor or tuple of tensors, as passed to ``fit``.
        guide: the proposal q(z | x) for latent models.
        num_samples: K, importance samples per data point (latent family only).
        max_rows: data rows (points times samples) evaluated in one pass; lower it for networks with
            large activations (a 500-unit NADE holds rows x 784 x 500 floats).
        device: where to evaluate, when ``model`` is not a FitResult.

    References:
        Burda, Grosse & Salakhutdinov (2016), "Importance weighted autoencoders".
        Rezende et al. (2014), Appendix E (importance-sampled marginal likelihood).
    """
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
    samples = 1 if family == "exact" else num_samples
    if samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    data_plates = tuple(graph.graph["data_plates"])
    if not data_plates:
        raise ModelError(
            "the program has no plate over the data points, so log p(x) cannot be split per point"
        )
    results = []
    with torch.no_grad(), on_device(device), pyro.validation_enabled(False), evaluation_mode(model, guide):
        for batch in chunks(tensors, max(1, max_rows // samples)):
            rows = tuple(t.repeat_interleave(samples, dim=0) for t in batch)
            with program_errors(guide or model, role="guide" if guide else "model"):
                if guide is not None and family == "latent":
                    guide_trace = poutine.trace(guide).get_trace(*rows)
                    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*rows)
                    log_w = per_point(model_trace, data_plates, len(rows[0]))
                    log_w = log_w - per_point(guide_trace, data_plates, len(rows[0]))
                else:  # exact, or the prior as proposal: the weight is p(x | z)
                    model_trace = poutine.trace(model).get_trace(*rows)
                    log_w = per_point(model_trace, data_plates, len(rows[0]), _observed)
            log_w = log_w.reshape(-1, samples)
            results.append(torch.logsumexp(log_w, dim=1) - math.log(samples))
    return torch.cat(results).cpu()


def bits_per_dim(model: Callable | FitResult, data, guide: Callable | None = None, **kwargs) -> float:
    r"""Mean negative log-likelihood in bits per dimension: :math:`-\overline{\log p(x)} / (D \ln 2)`.

    :math:`D` is the number of entries of one data point of the first data tensor.
    """
    tensors = as_tensors(data)
    dims = tensors[0][0].numel()
    return float(-log_likelihood(model, tensors, guide, **kwargs).mean() / (dims * math.log(2)))
