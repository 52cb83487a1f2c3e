"""Reading the distributions a program gives its sites, for coding."""

from __future__ import annotations

from collections.abc import Callable

import pyro
import torch
from pyro import poutine

from pplgen.codec.observed import observation_coder
from pplgen.distributions import Implicit
from pplgen.errors import CodecError, program_errors

__all__ = ["observed_site", "run", "site_coder", "with_placeholder"]


def run(program: Callable, batch: tuple, condition: dict | None = None) -> poutine.Trace:
    """Trace ``program(*batch)``, with the sites in ``condition`` fixed to the given values."""
    if condition:
        program = poutine.condition(program, data=condition)
    with torch.no_grad(), pyro.validation_enabled(False), program_errors(program):
        return poutine.trace(program).get_trace(*batch)


def observed_site(trace: poutine.Trace, skip: tuple[str, ...] = ()) -> dict:
    """The one observed site whose value is coded (sites named in ``skip`` are conditioned latents)."""
    sites = [
        site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and site["is_observed"] and name not in skip
    ]
    if len(sites) != 1:
        names = ", ".join(repr(s["name"]) for s in sites) or "none"
        raise CodecError(
            f"the coder needs a program with exactly one observed site; this one observes {names}"
        )
    site = sites[0]
    if isinstance(site["fn"], Implicit):
        raise CodecError(f"site {site['name']!r} is simulated (Implicit): it has no likelihood to code with")
    return site


def with_placeholder(x_shape: torch.Size, dtype: torch.dtype, given: tuple, device) -> tuple:
    """A batch whose first tensor is zeros of the data's shape: what a decoder passes to the program
    before it knows the values (the distributions it reads do not depend on them)."""
    return (torch.zeros(x_shape, dtype=dtype, device=device), *given)


def site_coder(trace: poutine.Trace, precision: int, x: torch.Tensor, skip: tuple[str, ...] = ()):
    """The coder of the trace's observed site, and the value it observed: the program's own form of the
    data ``x`` (PixelCNN's images are ``(N, H, W)`` however the rows came), which must hold the same
    numbers, or the decoder could not give ``x`` back."""
    site = observed_site(trace, skip)
    value = site["value"]
    if value.numel() != x.numel() or not torch.equal(value.reshape(x.shape).double(), x.double()):
        raise CodecError(
            f"site {site['name']!r} observes a transformed version of the data (shape {tuple(value.shape)} "
            f"from {tuple(x.shape)}): the coder can only give back values the program observes as they are"
        )
    return observation_coder(site["fn"], value.shape, precision), value
