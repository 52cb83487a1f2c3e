"""Images: a grid of samples, and data beside their reconstructions."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pplgen.errors import DataError
from pplgen.plot._figure import as_cpu, axes

__all__ = ["image_grid", "reconstructions"]

INCHES_PER_IMAGE = 0.6
GAP_COLOUR = "#c6d4e1"  # between pictures: neither ink (black) nor background (white)


def as_images(images: torch.Tensor, image_shape: Sequence[int], what: str = "images") -> torch.Tensor:
    """Flat rows (or any layout of whole images) as a ``(n, *image_shape)`` CPU tensor."""
    images = as_cpu(images)
    pixels = math.prod(image_shape)
    if images.numel() == 0 or images.numel() % pixels:
        raise DataError(
            f"expected {what} of {pixels} pixels each to show as {tuple(image_shape)} pictures, "
            f"got a tensor of shape {tuple(images.shape)}"
        )
    return images.reshape(-1, *image_shape)


def canvas(images: torch.Tensor, ncols: int) -> torch.Tensor:
    """One ``(H, W)`` picture of ``(n, ..., h, w)`` images, row by row, ``ncols`` to a row, NaN between."""
    n, (height, width) = images.shape[0], images.shape[-2:]
    nrows = math.ceil(n / ncols)
    picture = torch.full((nrows * (height + 1) + 1, ncols * (width + 1) + 1), math.nan)
    for i in range(n):
        r, c = divmod(i, ncols)
        top, left = 1 + r * (height + 1), 1 + c * (width + 1)
        picture[top : top + height, left : left + width] = images[i].reshape(height, width)
    return picture


def show(ax: Axes, picture: torch.Tensor) -> None:
    """``picture`` (values in [0, 1], 1 = ink) in grey, one screen cell per pixel, NaN in a light tint."""
    greys = plt.get_cmap("gray_r").with_extremes(bad=GAP_COLOUR)
    ax.imshow(picture.numpy(), cmap=greys, vmin=0.0, vmax=1.0, interpolation="nearest")


def image_grid(
    images: torch.Tensor, image_shape: Sequence[int], ax: Axes | None = None, ncols: int | None = None
) -> Figure:
    """Show flat rows of ``images`` (values in [0, 1]) as a grid of ``image_shape`` pictures.

    Args:
        images: ``(n, prod(image_shape))`` rows, or ``(n, *image_shape)``.
        image_shape: the shape of one picture, e.g. ``(28, 28)``.
        ax: Axes to draw on; a new figure sized to the grid when ``None``.
        ncols: pictures to a row; about the square root of ``n`` when ``None``.

    Returns:
        The figure drawn on.

    Raises:
        DataError: ``images`` do not split into pictures of ``image_shape``.

    Example:
        Five 2x3 pictures, three to a row, one pixel of gap around each:

        >>> figure = image_grid(torch.rand(5, 6), image_shape=(2, 3))
        >>> figure.axes[0].images[0].get_array().shape  # 2 rows of (2 + 1), 3 columns of (3 + 1), + 1
        (7, 13)
        >>> plt.close(figure)
    """
    images = as_images(images, image_shape)
    ncols = ncols or math.ceil(math.sqrt(images.shape[0]))
    nrows = math.ceil(images.shape[0] / ncols)
    ax = axes(ax, size=(ncols * INCHES_PER_IMAGE, nrows * INCHES_PER_IMAGE))
    show(ax, canvas(images, ncols))
    ax.set_axis_off()
    return ax.figure


def reconstructions(
    data: torch.Tensor, recon: torch.Tensor, image_shape: Sequence[int], ncols: int | None = None
) -> Figure:
    """Data and their reconstructions as two grids side by side, image ``i`` at the same place in each.

    Args:
        data: ``(n, prod(image_shape))`` images with values in [0, 1].
        recon: their ``n`` reconstructions (means or samples of the decoder), in the same order.
        image_shape: the shape of one picture.
        ncols: pictures to a row in each grid; about the square root of ``n`` when ``None``.

    Returns:
        A figure of two panels titled ``"data"`` and ``"reconstruction"``.

    Raises:
        DataError: ``data`` and ``recon`` hold different numbers of images.

    Example:
        >>> data = torch.rand(4, 4)
        >>> figure = reconstructions(data, data.round(), image_shape=(2, 2))
        >>> [ax.get_title() for ax in figure.axes]
        ['data', 'reconstruction']
        >>> plt.close(figure)
        >>> reconstructions(data, data[:3], image_shape=(2, 2))
        Traceback (most recent call last):
            ...
        pplgen.errors.DataError: expected one reconstruction per image: 4 data, 3 recon
    """
    data, recon = as_images(data, image_shape, "data"), as_images(recon, image_shape, "reconstructions")
    if data.shape[0] != recon.shape[0]:
        raise DataError(
            f"expected one reconstruction per image: {data.shape[0]} data, {recon.shape[0]} recon"
        )
    ncols = ncols or math.ceil(math.sqrt(data.shape[0]))
    nrows = math.ceil(data.shape[0] / ncols)
    width, height = max(ncols * INCHES_PER_IMAGE, 1.5), max(nrows * INCHES_PER_IMAGE, 1.0)
    figure, panels = plt.subplots(1, 2, figsize=(2 * width + 0.3, height + 0.4), layout="constrained")
    for ax, images, title in zip(panels, (data, recon), ("data", "reconstruction"), strict=True):
        image_grid(images, image_shape, ax=ax, ncols=ncols)
        ax.set_title(title)
    return figure
