"""Data that needs no file: scikit-learn's digits and PacGAN's two-dimensional Gaussian mixtures."""

from __future__ import annotations

import math

import torch

from pplgen.data.dataset import Dataset, check_split
from pplgen.errors import DataError, UnknownNameError

__all__ = ["digits", "grid25", "ring8"]

DIGITS_VARIANTS = ("binary", "levels")
# Fractions of the digits images held out, taken from the end of one fixed permutation.
_TEST_FRACTION, _VALID_FRACTION = 0.2, 0.1
# Default number of points per split of the mixtures.
MIXTURE_SIZES = {"train": 20_000, "valid": 2_500, "test": 2_500}
# One fixed seed per split, so the splits differ and every call gives the same points.
_MIXTURE_SEEDS = {"train": 0, "valid": 1, "test": 2}


def _digits_split(num: int, split: str) -> torch.Tensor:
    """Indices of ``split`` in a fixed permutation of ``num`` items: train | valid (10 %) | test (20 %)."""
    perm = torch.randperm(num, generator=torch.Generator().manual_seed(0))
    num_test = round(_TEST_FRACTION * num)
    num_valid = round(_VALID_FRACTION * num)
    start_valid = num - num_test - num_valid
    bounds = {
        "train": (0, start_valid),
        "valid": (start_valid, num - num_test),
        "test": (num - num_test, num),
    }
    lo, hi = bounds[split]
    return perm[lo:hi]


def digits(split: str = "train", *, variant: str = "binary") -> Dataset:
    """scikit-learn's handwritten digits: 1,797 images of 8x8 pixels with 17 grey levels (0 to 16).

    The images are split by one fixed permutation (seed 0): the last 20 % are the test split (359
    images), the 10 % before them the validation split (180), the rest the training split (1,258).

    Args:
        split: ``"train"``, ``"valid"`` or ``"test"``.
        variant: ``"binary"`` (a pixel is 1.0 when its level is at least 8, else 0.0; float32, kind
            ``binary``) or ``"levels"`` (the integer levels 0..16, int64, kind ``discrete``).

    Returns:
        A :class:`Dataset` with ``x`` of shape ``(N, 64)``, ``image_shape`` ``(8, 8)`` and the digit class
        as ``y``.

    Example:
        >>> data = digits("valid", variant="levels")
        >>> data
        Dataset(name='digits', split='valid', kind='discrete', x=(180, 64) int64, num_levels=17)
        >>> int(data.x.min()), int(data.x.max()), data.image_shape
        (0, 16, (8, 8))
        >>> sum(len(digits(split)) for split in ("train", "valid", "test"))  # the splits cover the 1,797
        1797

    References:
        Alpaydin & Kaynak (1998), "Optical recognition of handwritten digits", UCI Machine Learning
        Repository.
    """
    check_split("digits", split)
    if variant not in DIGITS_VARIANTS:
        raise UnknownNameError(
            f"digits has no variant {variant!r}; valid variants: {', '.join(DIGITS_VARIANTS)}"
        )
    from sklearn.datasets import load_digits

    raw = load_digits()
    idx = _digits_split(len(raw.target), split)
    levels = torch.as_tensor(raw.data, dtype=torch.int64)[idx]  # (N, 64)
    y = torch.as_tensor(raw.target, dtype=torch.int64)[idx]
    if variant == "binary":
        x, kind, num_levels = (levels >= 8).float(), "binary", 2
    else:
        x, kind, num_levels = levels, "discrete", 17
    return Dataset(
        name="digits",
        split=split,
        kind=kind,
        x=x,
        y=y,
        num_levels=num_levels,
        image_shape=(8, 8),
        meta={"variant": variant},
    )


def _mixture(name: str, modes: torch.Tensor, std: float, split: str, num_points: int | None) -> Dataset:
    """Draw ``num_points`` points from the equal-weight mixture of isotropic Gaussians at ``modes``."""
    check_split(name, split)
    num = MIXTURE_SIZES[split] if num_points is None else num_points
    if not isinstance(num, int) or num < 1:
        raise DataError(f"{name}: num_points must be a positive integer, got {num!r}")
    gen = torch.Generator().manual_seed(_MIXTURE_SEEDS[split])
    component = torch.randint(len(modes), (num,), generator=gen)  # (N,)
    x = modes[component] + std * torch.randn(num, modes.shape[1], generator=gen)  # (N, 2)
    return Dataset(
        name=name, split=split, kind="continuous", x=x, y=component, meta={"modes": modes, "std": std}
    )


def ring8(split: str = "train", *, num_points: int | None = None) -> Dataset:
    r"""Eight equal-weight Gaussians on the unit circle, the "2D-ring" of PacGAN.

    Mode :math:`k` is centred at :math:`(\cos 2\pi k/8, \sin 2\pi k/8)`, with standard deviation
    0.01 in each coordinate. Each split is drawn with its own fixed seed, so the splits differ and every
    call returns the same points. Measure a model's samples with :func:`pplgen.evaluate.mode_metrics`.

    Args:
        split: ``"train"`` (20,000 points by default), ``"valid"`` or ``"test"`` (2,500 each).
        num_points: how many points to draw instead of the default.

    Returns:
        A continuous :class:`Dataset` with ``x`` of shape ``(N, 2)``, the mode index as ``y``, and
        ``meta["modes"]`` (the ``(8, 2)`` centres) and ``meta["std"]``.

    Example:
        >>> data = ring8("test", num_points=1000)
        >>> data.x.shape, data.meta["modes"].shape, data.meta["std"]
        (torch.Size([1000, 2]), torch.Size([8, 2]), 0.01)
        >>> round(float(data.x.norm(dim=1).mean()), 2)  # on the unit circle
        1.0
        >>> bool(((data.x - data.meta["modes"][data.y]).norm(dim=1) < 0.1).all())  # near its own mode
        True
        >>> torch.equal(data.x, ring8("test", num_points=1000).x)  # the same points on every call
        True

    References:
        Lin, Khetan, Fanti & Oh (2018), "PacGAN: the power of two samples in generative adversarial
        networks".
    """
    angles = 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8
    modes = torch.stack([angles.cos(), angles.sin()], dim=1).float()  # (8, 2)
    return _mixture("ring8", modes, 0.01, split, num_points)


def grid25(split: str = "train", *, num_points: int | None = None) -> Dataset:
    r"""Twenty-five equal-weight Gaussians on a 5x5 grid, the "2D-grid" of PacGAN.

    The centres are :math:`\{-4, -2, 0, 2, 4\}^2` (mode :math:`5i + j` at :math:`(v_i, v_j)`), with
    standard deviation 0.05 in each coordinate. Seeds and sizes are as for :func:`ring8`.

    Args:
        split: ``"train"`` (20,000 points by default), ``"valid"`` or ``"test"`` (2,500 each).
        num_points: how many points to draw instead of the default.

    Returns:
        A continuous :class:`Dataset` with ``x`` of shape ``(N, 2)``, the mode index as ``y``, and
        ``meta["modes"]`` (the ``(25, 2)`` centres) and ``meta["std"]``.

    Example:
        >>> data = grid25(num_points=500)
        >>> data.x.shape, data.meta["modes"].shape
        (torch.Size([500, 2]), torch.Size([25, 2]))
        >>> nearest = torch.cdist(data.x, data.meta["modes"]).argmin(dim=1)
        >>> bool((nearest == data.y).all())  # every point lies closest to the mode it was drawn from
        True

    References:
        Lin, Khetan, Fanti & Oh (2018), "PacGAN: the power of two samples in generative adversarial
        networks".
    """
    values = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    modes = torch.cartesian_prod(values, values)  # (25, 2)
    return _mixture("grid25", modes, 0.05, split, num_points)
