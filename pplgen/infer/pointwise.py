"""Log-densities of a trace split per data point: the raw material of importance weights."""

from __future__ import annotations

from collections.abc import Callable

import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from pplgen.errors import ModelError

__all__ = ["per_point", "repeat_rows"]


def per_point(
    trace: poutine.Trace,
    data_plates: tuple[str, ...],
    size: int,
    select: Callable[[dict], bool] = lambda site: True,
) -> torch.Tensor:
    """Sum the selected sample sites' log-densities over all dimensions but the data plate's: ``(size,)``.

    Raises:
        ModelError: a selected site lies outside every data plate, so log p does not split per point.
    """
    trace.compute_log_prob(lambda name, site: select(site))
    total = torch.zeros(size)
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site) or not select(site):
            continue
        frames = [f for f in site["cond_indep_stack"] if f.name in data_plates]
        if not frames:
            raise ModelError(
                f"site {name!r} lies outside the data plate, so log p(x) does not split into one "
                "term per data point; put it inside the plate over the data"
            )
        log_prob = site["log_prob"]
        dim = frames[0].dim
        if log_prob.dim() < -dim:
            log_prob = log_prob.reshape((1,) * (-dim - log_prob.dim()) + tuple(log_prob.shape))
        log_prob = log_prob.movedim(dim, 0)
        total = total + log_prob.reshape(log_prob.shape[0], -1).sum(1).expand(size)
    return total


def repeat_rows(args: tuple, times: int) -> tuple:
    """Each data point (a row of every tensor argument) repeated ``times`` times in a row."""
    return tuple(
        a.repeat_interleave(times, dim=0) if isinstance(a, torch.Tensor) and a.dim() > 0 else a for a in args
    )
