"""Latent spaces: codes of the data as points, and images decoded along each latent dimension."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib
import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pplgen.errors import DataError
from pplgen.plot._figure import as_cpu, axes
from pplgen.plot.images import canvas, show

__all__ = ["latent_scatter", "latent_traversal"]

INCHES_PER_IMAGE = 0.7


def latent_scatter(codes: torch.Tensor, labels: torch.Tensor | None = None, ax: Axes | None = None) -> Figure:
    """Codes of the data as points, coloured by class when labels are given.

    Two-dimensional codes are plotted as they are; longer codes on their first two principal components,
    each axis saying the share of the variance it carries; one-dimensional codes against the label, or
    against the index of the data point without labels.

    Args:
        codes: ``(N, d)`` latent codes, e.g. the means of the guide for each data point.
        labels: ``(N,)`` integer classes; one colour and one legend entry each.
        ax: Axes to draw on; a new figure when ``None``.

    Returns:
        The figure drawn on.

    Raises:
        DataError: ``codes`` are not ``(N, d)``, or ``labels`` are not ``N`` integers.

    Example:
        Three-dimensional codes, most of their spread along the first axis, shown on two principal
        components:

        >>> _ = torch.manual_seed(0)
        >>> codes = torch.randn(200, 3) * torch.tensor([3.0, 1.0, 0.1])
        >>> figure = latent_scatter(codes, labels=torch.arange(200) % 3)
        >>> ax = figure.axes[0]
        >>> ax.get_xlabel(), [text.get_text() for text in ax.get_legend().get_texts()]
        ('PC 1 (90% of variance)', ['0', '1', '2'])
        >>> plt.close(figure)

    References:
        Pearson (1901), "On lines and planes of closest fit to systems of points in space" (PCA).
    """
    codes = as_cpu(codes)
    if codes.dim() != 2 or 0 in codes.shape:
        raise DataError(f"expected codes of shape (N, d), got {tuple(codes.shape)}")
    classes = _classes(labels, codes.shape[0])
    x, y, (xlabel, ylabel) = _coordinates(codes, classes)
    ax = axes(ax, size=(5.5, 4.5))
    if classes is None:
        ax.scatter(x.numpy(), y.numpy(), s=4, alpha=0.5)
    else:
        _scatter_by_class(ax, x, y, classes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return ax.figure


def _classes(labels: torch.Tensor | Sequence[int] | None, n: int) -> torch.Tensor | None:
    if labels is None:
        return None
    labels = torch.as_tensor(labels).detach().cpu()
    if labels.shape != (n,) or (labels.is_floating_point() and not (labels == labels.round()).all()):
        raise DataError(
            f"expected {n} integer labels, one per code, got {labels.dtype} of {tuple(labels.shape)}"
        )
    return labels.long()


def _coordinates(codes: torch.Tensor, classes: torch.Tensor | None):
    """The points to plot and their axis labels."""
    if codes.shape[1] == 1:
        if classes is None:
            return torch.arange(codes.shape[0]), codes[:, 0], ("index", "z1")
        return classes, codes[:, 0], ("label", "z1")
    if codes.shape[1] == 2:
        return codes[:, 0], codes[:, 1], ("z1", "z2")
    projected, share = _principal_components(codes, 2)
    return (
        projected[:, 0],
        projected[:, 1],
        tuple(f"PC {i + 1} ({100 * s:.0f}% of variance)" for i, s in enumerate(share)),
    )


def _principal_components(codes: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``codes`` projected on their ``k`` leading principal components, and the share of variance of each."""
    centred = (codes - codes.mean(0)).double()
    variances, directions = torch.linalg.eigh(centred.T @ centred)  # ascending
    variances, directions = variances.flip(0).clamp_min(0), directions.flip(1)
    share = variances / variances.sum().clamp_min(torch.finfo(torch.float64).tiny)
    return (centred @ directions[:, :k]).float(), share[:k].float()


def _scatter_by_class(ax: Axes, x: torch.Tensor, y: torch.Tensor, classes: torch.Tensor) -> None:
    """One colour and one legend entry per class, the legend beside the Axes."""
    present = classes.unique().tolist()
    if len(present) <= 20:
        palette = matplotlib.colormaps["tab10" if len(present) <= 10 else "tab20"]
        colours = [palette(i) for i in range(len(present))]
    else:
        colours = matplotlib.colormaps["turbo"](torch.linspace(0, 1, len(present)).numpy())
    for label, colour in zip(present, colours, strict=True):
        chosen = classes == label
        ax.scatter(x[chosen].numpy(), y[chosen].numpy(), s=4, alpha=0.6, color=colour, label=str(label))
    ax.legend(
        title="label",
        markerscale=3,
        fontsize="small",
        loc="center left",
        bbox_to_anchor=(1.02, 0.5),
        ncols=math.ceil(len(present) / 15),
    )


def latent_traversal(
    images: torch.Tensor,
    image_shape: Sequence[int],
    values: torch.Tensor | Sequence[float],
    names: Sequence[str] | None = None,
) -> Figure:
    """Images decoded while one latent dimension at a time sweeps a range of values, one row each.

    Args:
        images: ``(R, C, D)`` flat images with values in [0, 1]; row ``r`` varies latent dimension ``r``
            over the ``C`` values, the others held fixed.
        image_shape: the shape of one picture, with ``prod(image_shape) == D``.
        values: the ``C`` values each dimension takes, labelling the columns.
        names: the ``R`` row labels; ``"z1"``, ``"z2"``, ... when ``None``.

    Returns:
        A new figure with the grid in one Axes.

    Raises:
        DataError: the shapes of ``images``, ``values`` and ``names`` disagree.

    Example:
        Two latent dimensions, each swept over five values, decoded to 2x2 pictures:

        >>> figure = latent_traversal(torch.rand(2, 5, 4), (2, 2), values=torch.linspace(-2, 2, 5))
        >>> ax = figure.axes[0]
        >>> [t.get_text() for t in ax.get_xticklabels()], [t.get_text() for t in ax.get_yticklabels()]
        (['-2.00', '-1.00', '0.00', '1.00', '2.00'], ['z1', 'z2'])
        >>> plt.close(figure)

    References:
        Higgins et al. (2017), "beta-VAE: learning basic visual concepts with a constrained variational
        framework" (latent traversals).
    """
    images, values = as_cpu(images), as_cpu(values)
    pixels = math.prod(image_shape)
    if images.dim() != 3 or values.dim() != 1 or tuple(images.shape[1:]) != (len(values), pixels):
        raise DataError(
            f"expected images of shape (R, C, D) with C = {values.numel()} values and D = {pixels} pixels "
            f"of {tuple(image_shape)}, got images {tuple(images.shape)} and values {tuple(values.shape)}"
        )
    rows, cols = images.shape[:2]
    names = list(names) if names is not None else [f"z{r + 1}" for r in range(rows)]
    if len(names) != rows:
        raise DataError(f"expected one name per row: {rows} rows, {len(names)} names")
    figure = plt.figure(
        figsize=(cols * INCHES_PER_IMAGE + 1.0, rows * INCHES_PER_IMAGE + 0.7), layout="constrained"
    )
    ax = figure.add_subplot()
    show(ax, canvas(images.reshape(rows * cols, *image_shape), cols))
    height, width = image_shape[-2:]
    columns = [f"{round(v, 2) + 0.0:.2f}" for v in values.tolist()]  # + 0.0: never "-0.00"
    ax.set_xticks([1 + c * (width + 1) + (width - 1) / 2 for c in range(cols)], columns)
    ax.set_yticks([1 + r * (height + 1) + (height - 1) / 2 for r in range(rows)], names)
    ax.tick_params(length=0, labelsize="small")
    ax.spines[:].set_visible(False)
    ax.set_xlabel("latent value")
    return figure
