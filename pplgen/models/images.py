"""Checks shared by the image models of the zoo (PixelCNN, PixelVAE, VQ-VAE, DRAW).

Each of them models single-channel ``(H, W)`` images of binary or K-level pixels, is sized from a
:class:`pplgen.data.Dataset` by ``from_dataset``, and takes flat data ``(N, H * W)`` (or ``(N, H, W)``)
in its programs. These helpers hold the one version of the checks that go with that, so that every
image model refuses the same bad input with the same kind of message.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from pplgen.errors import DataError, support_scans

__all__ = ["check_images", "image_batch", "image_settings", "pixel_support", "pixels_outside"]


def image_settings(dataset, model_name: str, kinds: Sequence[str] = ("binary", "discrete")) -> dict:
    """The settings an image model reads from ``dataset``: ``image_shape`` (H, W) and ``num_levels``.

    ``num_levels`` is 2 for binary data and the data set's number of levels otherwise.

    Args:
        dataset: a :class:`pplgen.data.Dataset`.
        model_name: the model, as error messages name it.
        kinds: the data kinds the model takes.

    Raises:
        DataError: the data set has no two-dimensional ``image_shape``, or is of another kind.

    >>> from pplgen.data import load
    >>> image_settings(load("digits", variant="levels"), "PixelCNN")
    {'image_shape': (8, 8), 'num_levels': 17}
    """
    name, shape = dataset.name, dataset.image_shape
    if shape is None or len(shape) != 2:
        raise DataError(
            f"{model_name} models images, but data set {name!r} has no image_shape (H, W): "
            f"{name!r} has image_shape {shape!r} (expected (H, W), e.g. (8, 8))"
        )
    if dataset.kind not in kinds:
        what = f"{kinds[0]} images" if len(kinds) == 1 else f"images of {' or '.join(kinds)} pixels"
        raise DataError(f"{model_name} models {what}, but {name!r} is {dataset.kind!r}")
    num_levels = 2 if dataset.kind == "binary" else int(dataset.num_levels)
    return {"image_shape": tuple(int(s) for s in shape), "num_levels": num_levels}


def image_batch(x: torch.Tensor, image_shape: Sequence[int], model_name: str) -> torch.Tensor:
    """``x``, flat ``(N, H * W)`` or ``(N, H, W)``, as a batch of images ``(N, H, W)``.

    Raises:
        DataError: ``x`` is not a tensor of one of those shapes; the message gives the shape that came
            and, when the number of pixels per data point is wrong, that number.
    """
    height, width = image_shape
    pixels = height * width
    layouts = ((pixels,), (height, width))
    if isinstance(x, torch.Tensor) and x.dim() >= 1 and tuple(x.shape[1:]) in layouts:
        return x.reshape(x.shape[0], height, width)
    if not isinstance(x, torch.Tensor):
        raise DataError(
            f"{model_name}: expected data of shape (N, {pixels}) or (N, {height}, {width}), "
            f"got {type(x).__name__}"
        )
    message = (
        f"{model_name}: expected data of shape (N, {pixels}) or (N, {height}, {width}), "
        f"got shape {tuple(x.shape)}"
    )
    per_point = math.prod(x.shape[1:])
    if x.dim() >= 1 and per_point != pixels:
        message += (
            f": expected images of shape (N, {pixels}) are {height} x {width} = {pixels} pixels per data "
            f"point, got {tuple(x.shape)} has {per_point}"
        )
    raise DataError(message)


def pixel_support(num_levels: int) -> str:
    """The values a pixel may take, in words: ``"0 or 1"`` or ``"integers 0 .. K-1"``."""
    return "0 or 1" if num_levels == 2 else f"integers 0 .. {num_levels - 1}"


def pixels_outside(images: torch.Tensor, num_levels: int) -> torch.Tensor:
    """A mask of the pixels that are not one of the integers ``0 .. num_levels - 1``, of ``images``' shape.

    Works for float 0/1 pixels and int64 levels alike.
    """
    return (images < 0) | (images > num_levels - 1) | (images % 1 != 0)


def check_images(
    x: torch.Tensor, image_shape: Sequence[int], num_levels: int, model_name: str
) -> torch.Tensor:
    """``x`` as images ``(N, H, W)``, after checking its shape and that every pixel is a level.

    An image model calls it at the top of its programs, so that bad data get a :class:`DataError`
    naming the model on every path (``fit``, SVI, ``log_likelihood``, calling the program), not only
    where a distribution's own check is reached.

    Args:
        x: flat images ``(N, H * W)`` or ``(N, H, W)``: floats 0/1 for binary pixels, int64 levels
            otherwise.
        image_shape: (H, W).
        num_levels: 2 for binary pixels, else the number of levels K.
        model_name: the model, as error messages name it.

    Raises:
        DataError: naming the shape expected and the one that came, or the support, how many pixels
            lie outside it, and the first of them with its data point and pixel position.

    >>> check_images(torch.zeros(3, 6), (2, 3), 2, "PixelCNN").shape
    torch.Size([3, 2, 3])
    """
    images = image_batch(x, image_shape, model_name)
    if not support_scans():  # the training loop's data were scanned whole before it began
        return images
    outside = pixels_outside(images, num_levels)
    if bool(outside.any()):
        point, row, column = (int(i) for i in outside.nonzero()[0])
        raise DataError(
            f"{model_name}: expected pixels {pixel_support(num_levels)}, got {int(outside.sum())} outside, "
            f"e.g. {images[point, row, column].item():g} in data point {point} at pixel ({row}, {column})"
        )
    return images
