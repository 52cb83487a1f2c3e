"""Trajectories of a controlled system: each observation dimension over time, one panel per dimension."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from matplotlib.figure import Figure

from pplgen.errors import DataError
from pplgen.plot._figure import as_cpu, label_outer, panels

__all__ = ["trajectories"]


def trajectories(
    paths: torch.Tensor,
    reference: torch.Tensor | None = None,
    names: Sequence[str] | None = None,
    max_paths: int = 16,
) -> Figure:
    """Up to ``max_paths`` trajectories as lines over time, a panel per observation dimension.

    Args:
        paths: ``(N, T, D)`` observations, e.g. a world model's samples or forecasts.
        reference: ``(M, T', D)`` trajectories drawn beside them in black (the data, or the truth), or
            ``None``.
        names: a name per dimension (``"cos θ"``, ...); ``"o[d]"`` by default.
        max_paths: the most trajectories drawn from each set.

    Returns:
        The figure.

    Example:
        >>> import matplotlib.pyplot as plt
        >>> figure = trajectories(torch.randn(4, 20, 3).cumsum(1), names=["x", "y", "z"])
        >>> len(figure.axes)
        3
        >>> plt.close(figure)
    """
    paths = as_cpu(paths)
    if paths.dim() != 3:
        raise DataError(f"expected trajectories (N, T, D), got shape {tuple(paths.shape)}")
    D = paths.shape[-1]
    if reference is not None:
        reference = as_cpu(reference)
        if reference.dim() != 3 or reference.shape[-1] != D:
            raise DataError(
                f"expected reference trajectories (M, T, {D}), got shape {tuple(reference.shape)}"
            )
    names = list(names) if names is not None else [f"o[{d}]" for d in range(D)]
    if len(names) != D:
        raise DataError(f"expected {D} names, one per dimension, got {len(names)}")
    ncols = min(D, 3)
    figure, cells = panels(D, ncols, (4.0, 2.6))
    for d, cell in enumerate(cells):
        for i, path in enumerate(paths[:max_paths]):
            cell.plot(path[:, d], color="tab:blue", alpha=0.5, lw=1, label="samples" if i == 0 else None)
        if reference is not None:
            for i, path in enumerate(reference[:max_paths]):
                cell.plot(path[:, d], color="black", alpha=0.6, lw=1, label="data" if i == 0 else None)
        cell.set_title(names[d], fontsize="medium")
    label_outer(cells, ncols, "step", "value")
    if reference is not None:
        cells[0].legend(loc="best", fontsize="small")
    return figure
