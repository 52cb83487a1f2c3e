"""Checks that turn bad input into clear errors before any training step runs."""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx
import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.distributions import ExpandedDistribution, constraints
from pyro.poutine.util import site_is_subsample

from pplgen.errors import DataError, GuideError, program_errors, program_name

__all__ = ["as_tensors", "check_guide", "check_observations", "chunks"]


def as_tensors(data, name: str = "data") -> tuple[torch.Tensor, ...]:
    """``data`` as a tuple of tensors sharing their first dimension, every value finite."""
    items = data if isinstance(data, (tuple, list)) else (data,)
    if not items:
        raise DataError(f"{name} is empty: expected a tensor or a tuple of tensors, got an empty sequence")
    tensors = []
    for i, item in enumerate(items):
        label = name if len(items) == 1 else f"{name}[{i}]"
        if isinstance(item, np.ndarray):
            item = torch.from_numpy(item)
        if not isinstance(item, torch.Tensor):
            raise DataError(f"{label} should be a torch.Tensor, got {type(item).__name__}")
        if item.dim() == 0 or item.shape[0] == 0:
            raise DataError(f"{label} holds no data points (shape {tuple(item.shape)})")
        if item.is_complex():
            raise DataError(f"{label} holds complex numbers ({item.dtype}): expected real data")
        if item.dtype == torch.float64:
            item = item.float()
        if item.is_floating_point() and not torch.isfinite(item).all():
            bad = ~torch.isfinite(item).reshape(item.shape[0], -1).all(dim=1)
            raise DataError(
                f"{label} contains NaN or infinite values in {int(bad.sum())} of {item.shape[0]} "
                f"data points (first at index {int(bad.nonzero()[0])}); remove or impute them before fitting"
            )
        tensors.append(item)
    sizes = {t.shape[0] for t in tensors}
    if len(sizes) > 1:
        shapes = [tuple(t.shape) for t in tensors]
        raise DataError(f"{name} tensors must share their first (data point) dimension, got shapes {shapes}")
    return tuple(tensors)


def chunks(tensors: tuple[torch.Tensor, ...], size: int):
    """Consecutive slices of at most ``size`` data points."""
    n = tensors[0].shape[0]
    for start in range(0, n, size):
        yield tuple(t[start : start + size] for t in tensors)


def _observed_sites(trace: poutine.Trace):
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and site["is_observed"] and not site_is_subsample(site):
            yield name, site


#: Wrappers whose support is their base distribution's, so errors can name the base (``Bernoulli``);
#: a transformed distribution is not one of them, its support differs from its base's.
_SAME_SUPPORT_WRAPPERS = (torch.distributions.Independent, ExpandedDistribution)


def _check_site(name: str, fn, value: torch.Tensor) -> None:
    event_shape = tuple(fn.event_shape)
    value_event = tuple(value.shape[value.dim() - len(event_shape) :]) if event_shape else ()
    if value.dim() < len(event_shape) or value_event != event_shape:
        raise DataError(
            f"site {name!r} expects observations of event shape {event_shape}, "
            f"got a value of shape {tuple(value.shape)}"
        )
    batch = tuple(value.shape[: value.dim() - len(event_shape)])
    try:
        torch.broadcast_shapes(batch, tuple(fn.batch_shape))
    except RuntimeError:
        raise DataError(
            f"site {name!r} has batch shape {tuple(fn.batch_shape)}, which the observed value's "
            f"batch shape {batch} does not broadcast with"
        ) from None
    support = fn.support
    if constraints.is_dependent(support):  # e.g. a support set by the value itself: nothing to check
        return
    if not bool(support.check(value).all()):
        raise DataError(_outside_support_message(name, fn, value))


def _outside_support_message(name: str, fn, value: torch.Tensor) -> str:
    """Name the site, its support, how many values lie outside it, and the first of them with its index.

    The support of a distribution over several event dimensions (an image model, ``.to_event(2)``) is
    checked per event, so the coordinates are located with the support's elementwise base constraint.
    """
    constraint = fn.support
    while isinstance(constraint, constraints.independent):
        constraint = constraint.base_constraint
    label = fn
    while isinstance(label, _SAME_SUPPORT_WRAPPERS):
        label = label.base_dist
    describe = getattr(fn, "describe_support", None)
    expected = f"{describe()} ({constraint})" if callable(describe) else f"{constraint}"
    head = f"site {name!r} ({type(label).__name__}) expects values in its support {expected}"

    tail = value.shape[value.dim() - constraint.event_dim :] if constraint.event_dim else torch.Size()
    outside = ~constraint.check(value)
    outside = outside.expand(torch.broadcast_shapes(outside.shape, value.shape[: value.dim() - len(tail)]))
    count = int(outside.sum())
    if count == 0:  # only the event as a whole is outside (a support that is not elementwise)
        events = int((~fn.support.check(value)).sum())
        return f"{head}, but {events} observed events lie outside it"
    index = tuple(int(i) for i in outside.nonzero()[0])
    bad = value.expand(outside.shape + tail)[index]
    shown = f"{bad.item():g}" if bad.numel() == 1 else _short(bad)
    return (
        f"{head}, but {count} observed values lie outside it, e.g. {shown} at index {index} of the "
        f"observed value of shape {tuple(value.shape)}"
    )


def _short(value: torch.Tensor, most: int = 6) -> str:
    """A vector value for a message: its first ``most`` entries."""
    items = [f"{v:g}" for v in value.flatten()[:most].tolist()]
    return "[" + ", ".join(items) + (", ...]" if value.numel() > most else "]")


def check_observations(model: Callable, tensors: tuple[torch.Tensor, ...], chunk_size: int = 1024) -> None:
    """Run the model over all the data and check each observed value's event shape and support.

    Runs without gradients and under a forked RNG, so training is unaffected.
    """
    from pplgen.distributions import Implicit

    with torch.no_grad(), torch.random.fork_rng(devices=[]), pyro.validation_enabled(False):
        for batch in chunks(tensors, chunk_size):
            with program_errors(model):
                trace = poutine.trace(model).get_trace(*batch)
            for name, site in _observed_sites(trace):
                fn = site["fn"]
                while isinstance(fn, pyro.distributions.MaskedDistribution):
                    fn = fn.base_dist
                if not isinstance(fn, Implicit):
                    _check_site(name, fn, site["value"])


def check_guide(model: Callable, guide: Callable, graph: nx.DiGraph, batch: tuple[torch.Tensor, ...]) -> None:
    """The guide must sample exactly the model's latent sites, in the model's shapes and supports.

    Latents the model enumerates (``infer={"enumerate": ...}``) may be left out of the guide.
    """
    with torch.no_grad(), torch.random.fork_rng(devices=[]), pyro.validation_enabled(False):
        with program_errors(guide, role="guide"):
            trace = poutine.trace(guide).get_trace(*batch)
        with program_errors(model):  # the model's own sites (not replayed: a bad guide value may break it)
            model_trace = poutine.trace(model).get_trace(*batch)
    guide_latents = {
        name
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)
    }
    latents = {n: d for n, d in graph.nodes(data=True) if d["kind"] == "latent"}
    missing = sorted(n for n in set(latents) - guide_latents if not latents[n].get("enumerate"))
    extra = sorted(guide_latents - set(latents))
    if missing:
        raise GuideError(
            f"the guide {program_name(guide)!r} has no site for the model's latent "
            f"{', '.join(map(repr, missing))}: every latent of the model needs a guide site of the same name"
        )
    if extra:
        raise GuideError(
            f"the guide {program_name(guide)!r} samples {', '.join(map(repr, extra))}, which the model "
            f"{program_name(model)!r} does not have as a latent site"
        )
    for name in sorted(guide_latents):
        _check_guide_site(name, trace.nodes[name], model_trace.nodes[name])


def _check_guide_site(name: str, guided: dict, site: dict) -> None:
    """The guide's value at ``name`` must have the model's batch and event shapes and lie in its support."""
    fn, value = site["fn"], guided["value"]
    expected = tuple(fn.batch_shape) + tuple(fn.event_shape)
    if tuple(guided["fn"].event_shape) != tuple(fn.event_shape) or tuple(value.shape) != expected:
        raise GuideError(
            f"the guide's site {name!r} draws values of shape {tuple(value.shape)} (event shape "
            f"{tuple(guided['fn'].event_shape)}), but the model's site {name!r} has shape {expected} "
            f"(event shape {tuple(fn.event_shape)}); match the model's plates and .to_event()"
        )
    inside = fn.support.check(value)
    if not bool(inside.all()):
        raise GuideError(
            f"the guide's site {name!r} draws values outside the model's support {fn.support} "
            f"(the guide's distribution has support {guided['fn'].support}); use a guide distribution on "
            "the same support, e.g. LogNormal for a positive latent"
        )
