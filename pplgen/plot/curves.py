"""Training curves: the per-epoch metrics of a fit's history."""

from __future__ import annotations

import math
from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pplgen.plot._figure import axes

__all__ = ["training_curves"]

# kept in the history but not plotted by default: bookkeeping, counts (active units), per-dimension lists
_NOT_CURVES = ("epoch", "time_s", "restored_epoch", "active_units", "latent_units", "skipped")  # not nats
_IN_NATS = ("loss", "nll", "val_loss", "val_nll")


def training_curves(
    history: Sequence[dict], ax: Axes | None = None, keys: Sequence[str] | None = None
) -> Figure:
    """Plot each per-epoch metric of a fit's history against the epoch, validation (``val_*``) dashed.

    Args:
        history: one dict per epoch, each with an ``"epoch"`` entry (a :class:`pplgen.FitResult`'s
            ``history``).
        ax: Axes to draw on; a new figure when ``None``.
        keys: the metrics to plot; by default every float metric of the first epoch but bookkeeping.

    Returns:
        The figure drawn on.

    Example:
        >>> import matplotlib.pyplot as plt
        >>> history = [{"epoch": e, "loss": 3.0 / e, "val_loss": 3.2 / e, "time_s": 0.1} for e in (1, 2, 3)]
        >>> figure = training_curves(history)
        >>> [(line.get_label(), line.get_linestyle()) for line in figure.axes[0].lines]  # no time_s
        [('loss', '-'), ('val_loss', '--')]
        >>> figure.axes[0].get_ylabel()
        'nats per data point'
        >>> plt.close(figure)
    """
    ax = axes(ax)
    if keys is None:
        first = history[0] if history else {}
        keys = [k for k, v in first.items() if k not in _NOT_CURVES and isinstance(v, float)]
    epochs = [row["epoch"] for row in history]
    for key in keys:
        values = [row.get(key, math.nan) for row in history]
        ax.plot(epochs, values, "--" if key.startswith("val_") else "-", marker=".", label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per data point" if any(k in _IN_NATS for k in keys) else "")
    if keys:
        ax.legend()
    ax.grid(alpha=0.3)
    return ax.figure
