"""Data sets as tensors with metadata, loaded by name.

Embedded data (scikit-learn's digits, PacGAN's ring and grid of Gaussians) needs no file. Binarized
MNIST, the Free Spoken Digit Dataset and tiny Shakespeare are read from a data directory: the ``root``
argument, or the ``PPLGEN_DATA`` environment variable.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from pplgen.data.control import Trajectories, collect, pendulum
from pplgen.data.dataset import KINDS, Dataset, check_split
from pplgen.data.embedded import digits, grid25, ring8
from pplgen.data.files import DATA_ENV, binarized_mnist, data_path, fsdd, shakespeare
from pplgen.data.linear import LinearGaussianSystem
from pplgen.data.paired import digit_speech
from pplgen.data.trajectories import check_trajectories, windows
from pplgen.errors import UnknownNameError

__all__ = [
    "DATA_ENV",
    "KINDS",
    "LinearGaussianSystem",
    "NAMES",
    "Dataset",
    "Trajectories",
    "binarized_mnist",
    "check_split",
    "check_trajectories",
    "collect",
    "data_path",
    "digit_speech",
    "digits",
    "fsdd",
    "grid25",
    "load",
    "pendulum",
    "ring8",
    "shakespeare",
    "windows",
]

_LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": digits,
    "ring8": ring8,
    "grid25": grid25,
    "binarized_mnist": binarized_mnist,
    "fsdd": fsdd,
    "shakespeare": shakespeare,
    "pendulum": pendulum,
    "digit_speech": digit_speech,
}

#: The names :func:`load` knows.
NAMES: tuple[str, ...] = tuple(_LOADERS)


def _options(loader: Callable[..., Dataset]) -> tuple[str, ...]:
    """The keyword options a loader takes besides ``split`` and ``root``."""
    params = inspect.signature(loader).parameters.values()
    return tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name != "root")


def load(name: str, split: str = "train", root: str | os.PathLike | None = None, **options: Any) -> Dataset:
    """Load one split of a data set by name.

    =================== ========== ============================== ===============================
    name                kind       x                              options
    =================== ========== ============================== ===============================
    ``digits``          binary     (N, 64), 8x8 images            ``variant="binary"|"levels"``
    ``ring8``           continuous (N, 2), 8 Gaussians on a ring  ``num_points``
    ``grid25``          continuous (N, 2), 5x5 grid of Gaussians  ``num_points``
    ``binarized_mnist`` binary     (N, 784), 28x28 images
    ``fsdd``            audio      (N, length) at 8 kHz           ``length=8000``
    ``shakespeare``     token      (N, block_size) characters     ``block_size=256``
    ``pendulum``        continuous (N, T + 1, 3), actions in y    ``num_episodes``, ``steps=50``
    ``digit_speech``    audio      (N, length), 8x8 images in y   ``length=4000``, ``seed=0``
    =================== ========== ============================== ===============================

    ``binarized_mnist``, ``fsdd``, ``shakespeare`` and ``digit_speech`` (FSDD paired with embedded digit
    images) are read from the data directory (see :func:`pplgen.data.files.data_path`); ``pendulum`` is
    collected with Gymnasium (an optional dependency, :func:`pplgen.data.control.pendulum`).

    Args:
        name: one of :data:`NAMES`.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        root: the data directory for the file-based data sets; ``None`` uses ``PPLGEN_DATA``. Ignored by
            the embedded data sets.
        **options: the data set's own options (table above).

    Returns:
        The split as a :class:`Dataset`; pass ``dataset.tensors()`` to :func:`pplgen.fit`.

    Raises:
        UnknownNameError: unknown data set, split or option.
        DataFileError: the data set's file is not in the data directory.
        DataError: the file is corrupt.

    Example:
        >>> from pplgen.data import load
        >>> data = load("digits", split="test")
        >>> data.x.shape, data.image_shape, data.num_levels
        (torch.Size([359, 64]), (8, 8), 2)

    References:
        Lin, Khetan, Fanti & Oh (2018), "PacGAN: the power of two samples in generative adversarial
        networks" (ring8, grid25).
        Larochelle & Murray (2011), "The neural autoregressive distribution estimator" (binarized MNIST).
        Jackson et al. (2018), "Free Spoken Digit Dataset" (fsdd).
        Karpathy (2015), "The unreasonable effectiveness of recurrent neural networks" (shakespeare).
    """
    if name not in _LOADERS:
        raise UnknownNameError(f"unknown data set {name!r}; known data sets: {', '.join(NAMES)}")
    loader = _LOADERS[name]
    valid = _options(loader)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise UnknownNameError(
            f"data set {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(valid) or 'none'}"
        )
    if "root" in inspect.signature(loader).parameters:
        options["root"] = root
    return loader(split, **options)
