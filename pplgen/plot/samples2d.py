"""2-D samples over the modes of the true mixture (ring8, grid25)."""

from __future__ import annotations

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pplgen.plot._figure import as_cpu, axes

__all__ = ["scatter"]


def scatter(samples: torch.Tensor, modes: torch.Tensor | None = None, ax: Axes | None = None) -> Figure:
    """2-D samples as points, with the true mixture modes as red crosses when given.

    Args:
        samples: ``(N, 2)`` points.
        modes: ``(K, 2)`` centres of the true mixture, or ``None``.
        ax: Axes to draw on; a new figure when ``None``.

    Returns:
        The figure drawn on.

    Example:
        >>> import matplotlib.pyplot as plt
        >>> from pplgen.data import ring8
        >>> data = ring8(num_points=200)
        >>> figure = scatter(data.x, modes=data.meta["modes"])
        >>> ax = figure.axes[0]
        >>> [text.get_text() for text in ax.get_legend().get_texts()], ax.collections[1].get_offsets().shape
        (['samples', 'modes'], (8, 2))
        >>> plt.close(figure)
    """
    ax = axes(ax, size=(4.5, 4.5))
    points = as_cpu(samples)
    ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.4, label="samples")
    if modes is not None:
        modes = as_cpu(modes)
        ax.scatter(modes[:, 0], modes[:, 1], marker="x", c="red", s=40, label="modes")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize="small")
    return ax.figure
