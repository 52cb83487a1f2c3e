"""What every picture needs: a tensor ready for matplotlib, one Axes or a grid of panels."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def as_cpu(values: torch.Tensor | Sequence) -> torch.Tensor:
    """``values`` as a float32 CPU tensor without gradient, whatever its device and dtype."""
    return torch.as_tensor(values).detach().float().cpu()


def axes(ax: Axes | None, size: tuple[float, float] = (5, 4)) -> Axes:
    """``ax`` itself, or the Axes of a new figure of ``size`` inches."""
    return ax if ax is not None else plt.figure(figsize=size, layout="constrained").add_subplot()


def panels(n: int, ncols: int, size: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    """A new figure with ``n`` panels of ``size`` inches, ``ncols`` to a row, filled row by row."""
    ncols = min(n, ncols)
    nrows = math.ceil(n / ncols)
    figure, grid = plt.subplots(
        nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False, layout="constrained"
    )
    cells = list(grid.flat)
    for spare in cells[n:]:
        spare.remove()
    return figure, cells[:n]


def label_outer(cells: Sequence[Axes], ncols: int, xlabel: str, ylabel: str) -> None:
    """Label the x axis of each panel with none below it and the y axis of each panel in the first column."""
    ncols = min(len(cells), ncols)
    for i, cell in enumerate(cells):
        if i + ncols >= len(cells):
            cell.set_xlabel(xlabel)
        if i % ncols == 0:
            cell.set_ylabel(ylabel)
