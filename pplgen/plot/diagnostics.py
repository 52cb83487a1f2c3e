"""Did inference work: Pareto k̂ per data point, and the marginals of two sets of posterior draws."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pplgen.diagnostics.psis import good_threshold
from pplgen.errors import DataError
from pplgen.plot._figure import as_cpu, axes, label_outer, panels

__all__ = ["khat", "marginals"]

K_GOOD = 0.7  # the largest k̂ for which importance sampling is reliable, whatever the sample size
K_HAT = "Pareto k\u0302"
BINS = 30
PANELS_PER_ROW = 4
NAMES_LISTED = 4  # hidden components named in the suptitle of marginals before "… and k more"


def _khat_threshold(sample_size: int | None) -> float:
    """The largest reliable k̂ for ``sample_size`` draws (0.7 when the count is not given)."""
    if sample_size is None:
        return K_GOOD
    if sample_size < 2:
        raise DataError(f"expected a sample size of at least 2 draws, got {sample_size}")
    return good_threshold(sample_size)


def khat(
    values: torch.Tensor | Sequence[float], ax: Axes | None = None, sample_size: int | None = None
) -> Figure:
    """Pareto k̂ of the importance weights of each data point, coloured by how far it can be trusted.

    Points below 0.5 are blue, points up to the threshold orange and points above it red; dashed lines
    mark 0.5 and the threshold :math:`\\min(1 - 1/\\log_{10} S, 0.7)` for ``S`` draws, and the title
    counts the points above it.

    Args:
        values: ``(N,)`` k̂, one per data point.
        ax: Axes to draw on; a new figure when ``None``.
        sample_size: the number of draws ``S`` behind each k̂; the threshold is 0.7 when ``None``.

    Returns:
        The figure drawn on.

    Raises:
        DataError: ``values`` are not one-dimensional, or ``sample_size`` is below 2.

    Example:
        >>> import matplotlib.pyplot as plt
        >>> figure = khat([0.1, 0.2, 0.6, 0.9], sample_size=1000)
        >>> figure.axes[0].get_title()
        '1 of 4 points above 0.67'
        >>> plt.close(figure)

    References:
        Yao, Vehtari, Simpson & Gelman (2018), "Yes, but did it work?: evaluating variational inference".
        Vehtari, Simpson, Gelman, Yao & Gabry (2024), "Pareto smoothed importance sampling", JMLR.
    """
    k = as_cpu(values)
    if k.dim() != 1:
        raise DataError(f"expected one k̂ per data point, shape (N,), got {tuple(k.shape)}")
    threshold = _khat_threshold(sample_size)
    low = min(0.5, threshold)
    bands = (
        (k < low, f"k\u0302 < {low:.2f}", "tab:blue"),
        ((k >= low) & (k <= threshold), f"{low:.2f} \u2264 k\u0302 \u2264 {threshold:.2f}", "tab:orange"),
        (k > threshold, f"k\u0302 > {threshold:.2f}", "tab:red"),
    )
    ax = axes(ax, size=(6, 3.5))
    index = torch.arange(len(k))
    for chosen, label, colour in bands:
        if chosen.any():
            ax.scatter(index[chosen].numpy(), k[chosen].numpy(), s=10, color=colour, label=label)
    ax.axhline(0.5, linestyle="--", linewidth=1, color="tab:orange")
    ax.axhline(threshold, linestyle="--", linewidth=1, color="tab:red")
    ax.set_xlabel("data point")
    ax.set_ylabel(K_HAT)
    ax.set_title(f"{int((k > threshold).sum())} of {len(k)} points above {threshold:.2f}")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax.figure


def marginals(
    first: Mapping[str, torch.Tensor],
    second: Mapping[str, torch.Tensor],
    labels: tuple[str, str] = ("VI", "NUTS"),
    max_panels: int = 12,
) -> Figure:
    """Overlaid density histograms of two sets of posterior draws, one panel per scalar component.

    Args:
        first: latent name to draws of shape ``(S,)`` or ``(S, *shape)``, e.g. from the guide.
        second: the same latents' draws from the other method, e.g. NUTS; ``S`` may differ.
        labels: the names of the two methods, in the legend.
        max_panels: the most panels; the components beyond them are named in the suptitle.

    Returns:
        A new figure, panels titled ``name`` or ``name[i, j]``.

    Raises:
        DataError: a latent is in only one mapping, its draws differ in shape beyond the first
            dimension, are empty or not finite, or there is nothing to show.

    Example:
        >>> import matplotlib.pyplot as plt
        >>> vi = {"mu": torch.randn(500), "w": torch.randn(500, 2)}
        >>> nuts = {"mu": torch.randn(300), "w": torch.randn(300, 2)}
        >>> figure = marginals(vi, nuts)
        >>> [ax.get_title() for ax in figure.axes], figure.get_suptitle()
        (['mu', 'w[0]', 'w[1]'], 'VI vs NUTS')
        >>> plt.close(figure)

    References:
        Yao, Vehtari, Simpson & Gelman (2018), "Yes, but did it work?: evaluating variational inference".
    """
    only_first, only_second = sorted(set(first) - set(second)), sorted(set(second) - set(first))
    if only_first or only_second:
        raise DataError(
            f"expected the same latents in both: only in {labels[0]}: {only_first}, "
            f"only in {labels[1]}: {only_second}"
        )
    if not first or max_panels < 1:
        raise DataError(f"nothing to show: {len(first)} latents, max_panels={max_panels}")
    components = [c for name in first for c in _components(name, first[name], second[name], labels)]
    shown, hidden = components[:max_panels], components[max_panels:]
    figure, cells = panels(len(shown), PANELS_PER_ROW, size=(2.8, 2.2))
    for cell, (title, *draws) in zip(cells, shown, strict=True):
        edges = _edges(*draws)
        for method, values in zip(labels, draws, strict=True):
            cell.hist(values.numpy(), bins=edges.numpy(), density=True, alpha=0.5, label=method)
        cell.set_title(title, fontsize="small")
    label_outer(cells, PANELS_PER_ROW, "", "density")
    cells[0].legend(fontsize="small")
    figure.suptitle(f"{labels[0]} vs {labels[1]}" + (f"\nnot shown: {_listed(hidden)}" if hidden else ""))
    return figure


def _components(
    name: str, first: torch.Tensor, second: torch.Tensor, labels: tuple[str, str]
) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """``(title, first draws, second draws)`` of each scalar component of latent ``name``."""
    first, second = as_cpu(first), as_cpu(second)
    if first.dim() == 0 or first.shape[1:] != second.shape[1:] or 0 in (first.numel(), second.numel()):
        raise DataError(
            f"expected draws of {name!r} of shape (S, *shape) with the same shape in both, got "
            f"{tuple(first.shape)} from {labels[0]} and {tuple(second.shape)} from {labels[1]}"
        )
    for method, draws in zip(labels, (first, second), strict=True):
        if not draws.isfinite().all():
            raise DataError(f"draws of {name!r} from {method} hold NaN or inf")
    shape = first.shape[1:]
    flat_first, flat_second = first.reshape(len(first), -1), second.reshape(len(second), -1)
    for j, index in enumerate(itertools.product(*map(range, shape))):
        title = f"{name}[{', '.join(map(str, index))}]" if shape else name
        yield title, flat_first[:, j], flat_second[:, j]


def _edges(*draws: torch.Tensor) -> torch.Tensor:
    """:data:`BINS` equal bins spanning all ``draws``, one unit wide around a constant."""
    low, high = min(d.min().item() for d in draws), max(d.max().item() for d in draws)
    if low == high:
        low, high = low - 0.5, high + 0.5
    return torch.linspace(low, high, BINS + 1)


def _listed(hidden: Sequence[tuple]) -> str:
    """The titles of the first hidden components, then ``… and k more``."""
    names = ", ".join(title for title, *_ in hidden[:NAMES_LISTED])
    rest = len(hidden) - NAMES_LISTED
    return names + (f" \u2026 and {rest} more" if rest > 0 else "")
