"""Latent codes of data (the guide's posterior means) and the observations a model decodes from codes.

A **code** is one row per data point: the posterior mean under the guide of every local latent site (a
site inside a data plate), each flattened per point and joined in the guide's site order. :func:`encode`
computes them, :func:`decode` runs the model with its local latents held at given codes and returns the
mean of its observation, and :func:`reconstruct` chains the two. Latent-space pictures (codes coloured by
class, traversals along one dimension) are drawn from them.

References:
    Kingma & Welling (2014), "Auto-encoding variational Bayes" (encoder means as codes; reconstructions).
    Higgins et al. (2017), "beta-VAE: learning basic visual concepts with a constrained variational
    framework" (latent traversals).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from pplgen.errors import DataError, ModelError, program_errors
from pplgen.evaluate.sampling import _join_chains
from pplgen.guides.structure import data_axis
from pplgen.infer.checks import as_tensors, chunks
from pplgen.infer.params import evaluation_mode, on_device
from pplgen.infer.pointwise import repeat_rows
from pplgen.infer.result import FitResult, template_batch

__all__ = ["decode", "encode", "reconstruct"]

# Two guide passes whose means differ by more than this depend on the guide's own draws (an earlier
# latent, an implicit simulation): such a site's mean is then averaged over draws.
_RTOL, _ATOL = 1e-4, 1e-6


@dataclass(frozen=True)
class _Site:
    """A local latent site: where its data axis sits in its value, and one data point's share of it."""

    name: str
    axis: int
    point_shape: torch.Size

    @property
    def size(self) -> int:
        return math.prod(self.point_shape)

    def per_point(self, value: torch.Tensor) -> torch.Tensor:
        """The site's value with the data axis first, ``(N, *point_shape)``."""
        return value.movedim(self.axis, 0)

    def as_value(self, codes: torch.Tensor) -> torch.Tensor:
        """``(N, *point_shape)`` codes back in the layout of the site's value."""
        return codes.movedim(0, self.axis)


def _latent_sites(trace: poutine.Trace, graph) -> tuple[list[_Site], list[str]]:
    """The local latent sites of a trace in its order, and the names of its global latent sites."""
    data_plates = set(graph.graph["data_plates"])
    latents = {name for name, kind in graph.nodes(data="kind") if kind == "latent"}
    local, global_ = [], []
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site) or name not in latents:
            continue
        axis = data_axis(site, data_plates)
        if axis is None:
            global_.append(name)
            continue
        value = site["value"]
        local.append(_Site(name, axis, value.shape[:axis] + value.shape[axis + 1 :]))
    return local, global_


def _checked_data(result: FitResult, data) -> tuple[torch.Tensor, ...]:
    """``data`` as tensors, each point of the shape the program was fitted to."""
    tensors = as_tensors(data)
    expected = [tuple(spec["shape"]) for spec in result.data_spec]
    got = [tuple(t.shape[1:]) for t in tensors]
    if got != expected:
        raise DataError(
            f"the program was fitted to {len(expected)} data tensor(s) of per-point shape(s) {expected}, "
            f"got {len(got)} of per-point shape(s) {got}"
        )
    return tensors


def _guide_of(result: FitResult) -> Callable:
    if not isinstance(result, FitResult):
        raise TypeError(f"expected a FitResult from pplgen.fit, got {type(result).__name__}")
    if result.guide is None:
        why = (
            "an exact model has no latent sites"
            if result.family == "exact"
            else f"this {result.family} model was fitted without a guide q(z | x)"
        )
        raise ModelError(f"encoding data needs a guide: {why}")
    return result.guide


def _mean(site: dict) -> torch.Tensor | None:
    """The site distribution's mean in the layout of its value, or None where it has none."""
    try:
        mean = site["fn"].mean
    except NotImplementedError:
        return None
    if not isinstance(mean, torch.Tensor) or not bool(torch.isfinite(mean).all()):
        return None  # a Categorical's mean is NaN
    try:
        return torch.broadcast_to(mean, site["value"].shape)
    except RuntimeError:
        return None


def _encode_chunk(
    guide: Callable, batch: tuple, graph, num_samples: int, max_rows: int
) -> dict[str, torch.Tensor]:
    """Posterior means of the local latents of one chunk, each ``(n, *point_shape)``."""
    with program_errors(guide, role="guide"):
        traces = [poutine.trace(guide).get_trace(*batch) for _ in range(2)]
    sites, _ = _latent_sites(traces[0], graph)
    if not sites:
        raise ModelError(
            "the guide draws no local latent (a latent inside a data plate), so there is no code"
        )
    means = {}
    for site in sites:
        first, second = (_mean(trace.nodes[site.name]) for trace in traces)
        if first is not None and second is not None and torch.allclose(first, second, _RTOL, _ATOL):
            means[site.name] = site.per_point(first)
    pending = [site for site in sites if site.name not in means]
    if pending:  # flows, transformed or implicit distributions, or q(z2 | z1, x): Monte-Carlo means
        means.update(_average_draws(guide, batch, pending, num_samples, max_rows))
    return {site.name: means[site.name].float() for site in sites}


def _average_draws(
    guide: Callable, batch: tuple, sites: list[_Site], num_samples: int, max_rows: int
) -> dict[str, torch.Tensor]:
    """Each site's average over ``num_samples`` draws per point, drawn by repeating each point inside
    the data plate (at most ``max_rows`` rows a pass)."""
    n = len(batch[0])
    per_pass = max(1, min(num_samples, max_rows // n))
    totals = {site.name: 0.0 for site in sites}
    for start in range(0, num_samples, per_pass):
        k = min(per_pass, num_samples - start)
        with program_errors(guide, role="guide"):
            trace = poutine.trace(guide).get_trace(*repeat_rows(batch, k))
        for site in sites:
            value = site.per_point(trace.nodes[site.name]["value"]).float()
            totals[site.name] = totals[site.name] + value.reshape(n, k, *site.point_shape).sum(1)
    return {name: total / num_samples for name, total in totals.items()}


def encode(
    result: FitResult, data, *, num_samples: int = 32, max_rows: int = 1024, by_site: bool = False
) -> torch.Tensor | dict[str, torch.Tensor]:
    r"""The guide's posterior mean :math:`\mathbb{E}_{q(z \mid x_n)}[z]` of every local latent, per point.

    A site's mean is its distribution's ``.mean`` (a Normal's location) when it depends on the data
    alone; a site with no closed-form mean (a flow, a transformed or implicit distribution) or one whose
    distribution depends on the guide's earlier draws (:math:`q(z_2 \mid z_1, x)`) gets the average of
    ``num_samples`` draws instead.

    Args:
        result: a fit with a guide: a latent model, or an implicit one with an encoder (ALI/BiGAN).
        data: a tensor or tuple of tensors, as passed to ``fit``.
        num_samples: draws per point for a Monte-Carlo mean.
        max_rows: data points per pass.
        by_site: return ``{site: (N, *point_shape)}`` instead of the flat ``(N, D)``.

    Returns:
        ``(N, D)`` on the CPU: each local latent flattened per point, joined in the guide's site order.

    Raises:
        ModelError: the fit has no guide (an exact model), or the guide draws no local latent.
        DataError: the data do not have the shapes the program was fitted to.

    Example:
        >>> import pplgen, torch
        >>> from pplgen.models import VAE
        >>> x = pplgen.data.load("digits", "train").x[:64]
        >>> vae = VAE(64, z_dim=2, hidden=16)
        >>> result = pplgen.fit(vae.model, x, vae.guide, epochs=1, valid_fraction=0, seed=0)
        >>> pplgen.encode(result, x).shape
        torch.Size([64, 2])
        >>> pplgen.decode(result, torch.zeros(3, 2)).shape
        torch.Size([3, 64])
    """
    guide = _guide_of(result)
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    tensors = _checked_data(result, data)
    parts = []
    with torch.no_grad(), on_device(result.device), pyro.validation_enabled(False):
        with evaluation_mode(result.model, guide):
            for batch in chunks(tensors, max_rows):
                batch = tuple(t.to(result.device) for t in batch)
                parts.append(_encode_chunk(guide, batch, result.graph, num_samples, max_rows))
    codes = {name: torch.cat([part[name] for part in parts]).cpu() for name in parts[0]}
    if by_site:
        return codes
    return torch.cat([c.reshape(len(c), -1) for c in codes.values()], dim=1)


def _split(codes, sites: list[_Site]) -> dict[str, torch.Tensor]:
    """Codes, flat ``(N, D)`` or by site, as ``{site: (N, *point_shape)}``, checked against the sites."""
    if isinstance(codes, Mapping):
        missing = [s.name for s in sites if s.name not in codes]
        if missing:
            raise DataError(f"codes have no values for the local latent(s) {missing}")
        split = {}
        for s in sites:
            value = torch.as_tensor(codes[s.name])
            if value.dim() == 0 or value.shape[1:] != s.point_shape:
                expected = ", ".join(map(str, ("N", *s.point_shape)))
                raise DataError(
                    f"codes of latent {s.name!r} should have shape ({expected}), got {tuple(value.shape)}"
                )
            split[s.name] = value
    else:
        codes = torch.as_tensor(codes)
        width = sum(s.size for s in sites)
        if codes.dim() != 2 or codes.shape[1] != width:
            layout = " + ".join(f"{s.name} {s.size}" for s in sites)
            raise DataError(f"expected codes of shape (N, {width}) ({layout}), got {tuple(codes.shape)}")
        parts = codes.split([s.size for s in sites], dim=1)
        split = {s.name: p.reshape(len(p), *s.point_shape) for s, p in zip(sites, parts, strict=True)}
    sizes = {len(v) for v in split.values()}
    if len(sizes) > 1:
        raise DataError(f"codes of the latents hold different numbers of points: {sorted(sizes)}")
    return split


def _observation(fn) -> torch.Tensor:
    """The distribution's mean, or a draw where it has none (an autoregressive decoder)."""
    try:
        mean = fn.mean
    except NotImplementedError:
        return fn.sample()
    return mean if bool(torch.isfinite(mean).all()) else fn.sample()


def decode(result: FitResult, codes, *, data=None, max_rows: int = 1024) -> torch.Tensor:
    """The mean of the model's observation given its local latents held at ``codes``.

    The model runs under ``poutine.condition`` on a batch of zeros shaped like the data (or on ``data``,
    whose other tensors, such as labels, the model then reads); the first observed site's distribution
    mean is returned, or a draw from it when it has no mean (a PixelCNN decoder). A chain of observed
    steps (a deep Markov model's ``x_1 .. x_T``) counts as one site. Global latents are drawn once from
    the guide.

    Args:
        result: a fit whose model has local latents (with a guide, the codes follow its site order).
        codes: ``(N, D)`` in :func:`encode`'s layout, or ``{site: (N, *point_shape)}``.
        data: ``N`` data points whose tensors the model is run on (only where it needs real inputs).
        max_rows: data points per pass.

    Returns:
        ``(N, *shape)`` on the CPU, ``shape`` the per-point shape of the first data tensor.

    Raises:
        ModelError: the model has no local latent, or has global latents and no guide to draw them from.
        DataError: the codes do not fit the latents, or ``data`` do not fit the codes or the program.

    Example:
        A VAE's decoder means are Bernoulli probabilities:

        >>> import pplgen
        >>> from pplgen.models import VAE
        >>> _ = torch.manual_seed(0)
        >>> x = torch.bernoulli(torch.full((32, 8), 0.5))
        >>> vae = VAE(8, z_dim=2, hidden=8)
        >>> result = pplgen.fit(vae.model, x, vae.guide, epochs=1, valid_fraction=0, seed=0, progress=False)
        >>> means = decode(result, torch.zeros(3, 2))
        >>> means.shape, bool(((means > 0) & (means < 1)).all())
        (torch.Size([3, 8]), True)
        >>> decode(result, torch.zeros(3, 5))
        Traceback (most recent call last):
        ...
        pplgen.errors.DataError: expected codes of shape (N, 2) (z 2), got (3, 5)
    """
    if not isinstance(result, FitResult):
        raise TypeError(f"expected a FitResult from pplgen.fit, got {type(result).__name__}")
    tensors = None if data is None else _checked_data(result, data)
    device = result.device
    with torch.no_grad(), on_device(device), pyro.validation_enabled(False):
        with evaluation_mode(result.model, result.guide):
            sites, fixed = _layout(result, tensors)
            split = _split(codes, sites)
            n = len(next(iter(split.values())))
            if tensors is None:
                tensors = template_batch(result.data_spec, n, torch.device("cpu"))
            elif len(tensors[0]) != n:
                raise DataError(f"expected data of {n} points, one per code, got {len(tensors[0])}")
            parts = []
            for start in range(0, n, max_rows):
                rows = slice(start, start + max_rows)
                values = {s.name: s.as_value(split[s.name][rows].to(device)) for s in sites}
                batch = tuple(t[rows].to(device) for t in tensors)
                parts.append(_decode_chunk(result.model, result.graph, {**fixed, **values}, batch))
    shape = tuple(result.data_spec[0]["shape"])
    decoded = torch.cat(parts).cpu()
    return decoded.reshape(n, *shape) if decoded[0].numel() == math.prod(shape) else decoded


def _layout(result: FitResult, tensors: tuple | None) -> tuple[list[_Site], dict[str, torch.Tensor]]:
    """The local latents in the guide's order (the model's without a guide), and one draw from the guide
    of each global latent, read from a trace on two data points."""
    program = result.guide or result.model
    small = template_batch(result.data_spec, 2, result.device) if tensors is None else tensors
    with program_errors(program, role="guide" if result.guide else "model"):
        trace = poutine.trace(program).get_trace(*(t[:2].to(result.device) for t in small))
    sites, global_ = _latent_sites(trace, result.graph)
    if not sites:
        raise ModelError("the model has no local latent (a latent inside a data plate) to decode")
    if global_ and result.guide is None:
        raise ModelError(f"the model has global latents {global_} and the fit no guide to draw them from")
    return sites, {name: trace.nodes[name]["value"] for name in global_}


def _decode_chunk(model: Callable, graph, values: dict, batch: tuple) -> torch.Tensor:
    with program_errors(model):
        trace = poutine.trace(poutine.condition(model, data=values)).get_trace(*batch)
    observed = [n for n, kind in graph.nodes(data="kind") if kind in ("observed", "implicit")]
    means = {n: _observation(trace.nodes[n]["fn"]) for n in observed if n in trace.nodes}
    if not means:
        raise ModelError("the model has no observed site to decode into")
    return next(iter(_join_chains(means, graph).values()))


def reconstruct(result: FitResult, data, *, num_samples: int = 32, max_rows: int = 1024) -> torch.Tensor:
    """``decode(result, encode(result, data), data=data)``: each point through its posterior mean code and
    back, ``(N, *shape)`` on the CPU.

    Example:
        >>> import pplgen
        >>> _ = torch.manual_seed(0)
        >>> x = torch.bernoulli(torch.full((32, 8), 0.5))
        >>> vae = pplgen.models.VAE(8, z_dim=2, hidden=8)
        >>> result = pplgen.fit(vae.model, x, vae.guide, epochs=1, valid_fraction=0, seed=0, progress=False)
        >>> again = reconstruct(result, x)
        >>> again.shape, torch.allclose(again, decode(result, encode(result, x), data=x))
        (torch.Size([32, 8]), True)
    """
    codes = encode(result, data, num_samples=num_samples, max_rows=max_rows)
    return decode(result, codes, data=data, max_rows=max_rows)
