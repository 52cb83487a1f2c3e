"""Pictures of a fit: training curves, image grids, 2-D sample scatters (matplotlib)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes

__all__ = ["image_grid", "scatter", "training_curves"]


def _axes(ax: Axes | None, size=(5, 4)) -> Axes:
    return ax if ax is not None else plt.figure(figsize=size).add_subplot()


def training_curves(
    history: Sequence[dict], ax: Axes | None = None, keys: Sequence[str] | None = None
) -> Axes:
    """Plot each per-epoch metric of a fit's history against the epoch (validation dashed)."""
    ax = _axes(ax)
    if keys is None:  # the losses in nats; counts (active units) and per-dimension lists stay in the history
        skip = ("epoch", "time_s", "restored_epoch", "active_units", "latent_units")
        first = history[0] if history else {}
        keys = [k for k, v in first.items() if k not in skip and isinstance(v, float)]
    epochs = [row["epoch"] for row in history]
    for key in keys:
        values = [row.get(key, math.nan) for row in history]
        ax.plot(epochs, values, "--" if key.startswith("val_") else "-", marker=".", label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel(
        "nats per data point" if any(k in ("loss", "nll", "val_loss", "val_nll") for k in keys) else ""
    )
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def image_grid(
    images: torch.Tensor, image_shape: Sequence[int], ax: Axes | None = None, ncols: int | None = None
) -> Axes:
    """Show flat rows of ``images`` (values in [0, 1]) as a grid of ``image_shape`` pictures."""
    images = images.detach().float().cpu().reshape(-1, *image_shape)
    n = images.shape[0]
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    height, width = image_shape[-2:]
    canvas = torch.ones(nrows * (height + 1) + 1, ncols * (width + 1) + 1)
    for i in range(n):
        r, c = divmod(i, ncols)
        top, left = 1 + r * (height + 1), 1 + c * (width + 1)
        canvas[top : top + height, left : left + width] = images[i]
    ax = _axes(ax, size=(ncols * 0.6, nrows * 0.6))
    ax.imshow(canvas.numpy(), cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    return ax


def scatter(samples: torch.Tensor, modes: torch.Tensor | None = None, ax: Axes | None = None) -> Axes:
    """2-D samples as points, with the true mixture modes as red crosses when given."""
    ax = _axes(ax, size=(4.5, 4.5))
    points = samples.detach().float().cpu()
    ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.4, label="samples")
    if modes is not None:
        modes = modes.detach().float().cpu()
        ax.scatter(modes[:, 0], modes[:, 1], marker="x", c="red", s=40, label="modes")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize="small")
    return ax
