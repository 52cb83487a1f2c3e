"""Paired data across two domains: a spoken digit beside an image of the same digit.

Neither data set pairs its items with the other's: the pairs are made here by class. Each recording of
the Free Spoken Digit Dataset is given a handwritten image of the digit it speaks, drawn from
scikit-learn's digits, so a model of :math:`p(\\text{audio} \\mid \\text{image})` must read the digit
from the image to say it. :func:`condition_image` turns any picture (a scan, a photo, a drawing) into
the images' own form.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pplgen.data.dataset import Dataset
from pplgen.data.embedded import digits
from pplgen.data.files import fsdd
from pplgen.errors import DataError

__all__ = ["condition_image", "digit_speech"]

#: The shape of the digits images that condition the speech.
IMAGE_SHAPE = (8, 8)
# The grey levels of scikit-learn's digits: 0 .. 16 inked pixels of a 4x4 block.
_DIGIT_LEVELS = 16


def digit_speech(
    split: str = "train", *, root: str | os.PathLike | None = None, length: int = 4000, seed: int = 0
) -> Dataset:
    """Spoken digits paired with handwritten images of the same digits.

    ``x`` holds the FSDD recordings of ``split`` (:func:`pplgen.data.files.fsdd`), and row :math:`n` of
    ``y`` an 8x8 image of the digit recording :math:`n` speaks, drawn with replacement (seeded) from the
    images of that digit in the same split of :func:`pplgen.data.embedded.digits` (the 17-level
    variant divided by 16). A digit has 118 to 133 training images, 15 to 24 validation and 28 to 42
    test images, against 240, 30 and 30 recordings: images repeat within a split, and no image is in two.

    Args:
        split: ``"train"``, ``"valid"`` or ``"test"`` (2,400, 300 and 300 recordings).
        root: the data directory holding ``fsdd.npz``; ``None`` uses ``PPLGEN_DATA``.
        length: the samples kept per recording, as for :func:`fsdd` (default 4000, half a second).
        seed: the seed of the draw of images.

    Returns:
        An audio :class:`Dataset` with ``x`` float32 ``(N, length)`` and ``y`` the images, float32
        ``(N, 64)`` in [0, 1], flattened row by row. ``meta`` holds everything :func:`fsdd`'s does, and
        ``digit`` (each pair's class, int64 ``(N,)``), ``condition_shape`` ``(8, 8)``, ``image_index``
        (each image's row in the digits split) and ``pairing`` (a sentence saying how pairs were made).

    Example:
        >>> data = digit_speech("test")  # doctest: +SKIP
        >>> data.x.shape, data.y.shape, data.meta["condition_shape"]  # doctest: +SKIP
        (torch.Size([300, 4000]), torch.Size([300, 64]), (8, 8))

    References:
        Jackson et al. (2018), "Free Spoken Digit Dataset".
        Alpaydin & Kaynak (1998), "Optical recognition of handwritten digits", UCI Machine Learning
        Repository.
    """
    speech = fsdd(split, root=root, length=length)
    images = digits(split, variant="levels")
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.empty(len(speech), dtype=torch.int64)  # each recording's row in the digits split
    for digit in speech.y.unique().tolist():
        rows = (speech.y == digit).nonzero().flatten()
        pool = (images.y == digit).nonzero().flatten()
        if len(pool) == 0:
            raise DataError(f"digit_speech: the digits {split} split has no image of the digit {digit}")
        chosen[rows] = pool[torch.randint(len(pool), (len(rows),), generator=generator)]
    meta = {
        **speech.meta,
        "digit": speech.y,
        "condition_shape": IMAGE_SHAPE,
        "image_index": chosen,
        "pairing": (
            f"each recording with an 8x8 image of its digit from the digits {split} split, "
            f"drawn with replacement (seed {seed})"
        ),
    }
    y = images.x[chosen].float() / _DIGIT_LEVELS  # (N, 64) in [0, 1]
    return Dataset(name="digit_speech", split=split, kind="audio", x=speech.x, y=y, meta=meta)


def condition_image(picture, shape: Sequence[int] = IMAGE_SHAPE, *, crop: bool = True) -> torch.Tensor:
    """Any picture as a condition image like the digits': light ink on black, ``shape``, in [0, 1].

    The picture is made grey (the mean of its colour channels; an alpha channel is dropped), scaled to
    [0, 1] (integer pixels and values outside [0, 1] are stretched from their minimum to their maximum),
    inverted when its background is light (mean above 0.5: dark ink on white paper), cut to the ink
    (``crop``), and shrunk to ``shape`` by averaging over areas. That is how the digits images were
    made: each digit was scaled to fill a 32x32 bitmap, and each of their pixels counts the inked pixels
    of a 4x4 block of it. The cut is the smallest box of ``shape``'s proportions, centred on the ink
    (pixels above a quarter of the brightest), so a digit drawn small on a large page fills the image
    as the data's digits do; the page beyond the picture's edge counts as blank.

    >>> page = np.ones((16, 16))  # white paper
    >>> page[:8, :4] = 0.0  # a black bar, 8 pixels high and 4 wide, in the top left corner
    >>> condition_image(page, (4, 4), crop=False)
    tensor([[1., 0., 0., 0.],
            [1., 0., 0., 0.],
            [0., 0., 0., 0.],
            [0., 0., 0., 0.]])
    >>> condition_image(page, (4, 4))  # cut to the 8x8 square centred on the bar first
    tensor([[0., 1., 1., 0.],
            [0., 1., 1., 0.],
            [0., 1., 1., 0.],
            [0., 1., 1., 0.]])

    Args:
        picture: an array ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` (grey, RGB, RGBA), e.g. from
            ``matplotlib.image.imread`` or ``numpy.load``.
        shape: the condition's ``(height, width)``.
        crop: cut the picture to its ink before shrinking it.

    Returns:
        float32 ``shape``, values in [0, 1].

    Raises:
        DataError: not a 2-D picture (with an optional colour axis of 1 to 4 channels), empty, or
            holding NaN or infinite values.
    """
    a = np.asarray(picture)
    shape_ok = a.ndim == 2 or (a.ndim == 3 and 1 <= a.shape[2] <= 4)
    if not shape_ok or a.size == 0 or a.dtype.kind not in "buif":
        raise DataError(
            "expected a picture of shape (H, W), (H, W, 3) or (H, W, 4) with numbers, "
            f"got {a.dtype} of shape {a.shape}"
        )
    integer = a.dtype.kind in "ui"
    if a.ndim == 3:  # the mean of the colour channels; alpha (the 2nd of 2, the 4th of 4) is dropped
        a = a[..., : a.shape[2] - 1 if a.shape[2] in (2, 4) else a.shape[2]].mean(axis=2)
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise DataError(f"expected a picture of finite values, got {int((~np.isfinite(a)).sum())} NaN or inf")
    low, high = a.min(), a.max()
    if integer or low < 0 or high > 1:
        a = (a - low) / (high - low) if high > low else np.zeros_like(a)
    if a.mean() > 0.5:  # a light background: dark ink on paper
        a = 1.0 - a
    if crop:
        a = _cut_to_ink(a, shape[0] / shape[1])
    grey = torch.from_numpy(a).float()[None, None]  # (1, 1, H, W)
    return F.adaptive_avg_pool2d(grey, tuple(shape))[0, 0].clamp(0.0, 1.0)


def _cut_to_ink(a: np.ndarray, ratio: float) -> np.ndarray:
    """The smallest box of height / width ``ratio`` centred on the ink of ``a`` (light on dark), zeros
    where it leaves ``a``; ``a`` itself when it holds no ink."""
    rows, cols = np.nonzero(a > 0.25 * a.max()) if a.max() > 0 else ((), ())
    if len(rows) == 0:
        return a
    top, left = rows.min(), cols.min()
    height, width = rows.max() + 1 - top, cols.max() + 1 - left
    box = (max(height, math.ceil(width * ratio)), max(width, math.ceil(height / ratio)))
    start = (top - (box[0] - height) // 2, left - (box[1] - width) // 2)
    out = np.zeros(box)
    inside = [(max(s, 0), min(s + b, n)) for s, b, n in zip(start, box, a.shape, strict=True)]
    (r0, r1), (c0, c1) = inside
    out[r0 - start[0] : r1 - start[0], c0 - start[1] : c1 - start[1]] = a[r0:r1, c0:c1]
    return out
