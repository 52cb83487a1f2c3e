"""A data set as tensors with the metadata that models, trainers and the command line need."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import torch

from pplgen.errors import DataError, UnknownNameError

__all__ = ["KINDS", "Dataset", "check_split"]

#: The kinds of data a :class:`Dataset` can hold.
KINDS = ("binary", "discrete", "continuous", "token", "audio")


@dataclasses.dataclass
class Dataset:
    """One split of a data set: a tensor of data points and what is known about them.

    Attributes:
        name: the data set's name, as passed to :func:`pplgen.data.load` (``"digits"``, ``"fsdd"``, ...).
        split: ``"train"``, ``"valid"`` or ``"test"``.
        kind: one of :data:`KINDS`. ``"binary"``: float32 zeros and ones; ``"discrete"``: int64 levels
            ``0 .. num_levels - 1``; ``"continuous"``: float32 reals; ``"token"``: int64 indices into a
            vocabulary of ``num_levels`` symbols; ``"audio"``: float32 waveforms in ``[-1, 1]``.
        x: the data, first dimension indexing data points, shape ``(N,) + event_shape``.
        y: int64 labels of shape ``(N,)`` (digit class, mixture component, spoken digit), or ``None``;
            for data that a program is conditioned on by more than a label, floats: actions ``(N, T,
            act_dim)`` (``pendulum``) or images ``(N, 64)`` (``digit_speech``).
            :meth:`tensors` passes them on only when asked (``labels=True``).
        event_shape: the shape of one data point; filled in from ``x`` when left as ``None``.
        num_levels: how many values one coordinate takes (2 for binary data, 17 for the digit levels,
            the vocabulary size for tokens), ``None`` for continuous data and audio.
        image_shape: how to show one flat row of ``x`` as an image, e.g. ``(8, 8)``, or ``None``.
        meta: everything else: mixture ``modes`` and ``std``, audio ``sample_rate`` and ``lengths``, a
            text's ``vocab``, ...

    Raises:
        UnknownNameError: ``kind`` is not one of :data:`KINDS`.
        DataError: ``x`` does not have ``event_shape``, or ``y`` is not one label per data point.

    Example:
        >>> flips = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
        >>> data = Dataset("coins", "train", "binary", flips, y=torch.tensor([0, 1, 0]), num_levels=2)
        >>> data, len(data), data.event_shape
        (Dataset(name='coins', split='train', kind='binary', x=(3, 2) float32, num_levels=2), 3, (2,))
        >>> [tuple(t.shape) for t in data.tensors(labels=True)]  # what pplgen.fit gets for model(x, y)
        [(3, 2), (3,)]
        >>> len(data.subset(2, seed=0))
        2
        >>> Dataset("coins", "train", "binary", flips, y=torch.tensor([0, 1]))
        Traceback (most recent call last):
            ...
        pplgen.errors.DataError: Dataset 'coins': y has 2 labels, expected 3 (one per data point)
    """

    name: str
    split: str
    kind: str
    x: torch.Tensor
    y: torch.Tensor | None = None
    event_shape: tuple[int, ...] | None = None
    num_levels: int | None = None
    image_shape: tuple[int, ...] | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UnknownNameError(f"Dataset kind must be one of {KINDS}, got {self.kind!r}")
        if self.event_shape is None:
            self.event_shape = tuple(self.x.shape[1:])
        self.event_shape = tuple(self.event_shape)
        if tuple(self.x.shape[1:]) != self.event_shape:
            raise DataError(
                f"Dataset {self.name!r}: x has event shape {tuple(self.x.shape[1:])}, "
                f"expected {self.event_shape}"
            )
        if self.y is not None and self.y.shape[:1] != self.x.shape[:1]:
            raise DataError(
                f"Dataset {self.name!r}: y has {self.y.shape[0]} labels, expected {self.x.shape[0]} "
                "(one per data point)"
            )

    def __len__(self) -> int:
        return self.x.shape[0]

    def __repr__(self) -> str:
        dtype = str(self.x.dtype).removeprefix("torch.")
        levels = "" if self.num_levels is None else f", num_levels={self.num_levels}"
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, kind={self.kind!r}, "
            f"x={tuple(self.x.shape)} {dtype}{levels})"
        )

    def tensors(self, labels: bool = False) -> tuple[torch.Tensor, ...]:
        """The tuple to pass to :func:`pplgen.fit` as ``data``: ``(x,)``, or ``(x, y)`` with ``labels``.

        Conditional programs (``model(x, y)``, e.g. a digit-conditioned WaveNet) take the labels too.
        """
        if not labels:
            return (self.x,)
        if self.y is None:
            raise DataError(f"data set {self.name!r} has no labels (y), but the program takes (x, y)")
        return (self.x, self.y)

    def subset(self, size: int, seed: int = 0) -> Dataset:
        """A copy with ``size`` data points drawn at random without replacement (seeded).

        Random rather than the first ``size``: some splits are sorted (binarized MNIST's test split starts
        with the zeros), so a prefix would not represent the split.
        """
        if size < 1:
            raise DataError(f"a subset needs at least 1 data point, got {size}")
        if size >= len(self):
            return self
        index = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:size].sort().values
        y = None if self.y is None else self.y[index]
        return dataclasses.replace(self, x=self.x[index], y=y)

    def to(self, device: torch.device | str) -> Dataset:
        """A copy with ``x``, ``y`` and every tensor in ``meta`` moved to ``device``."""
        meta = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.meta.items()}
        y = None if self.y is None else self.y.to(device)
        return dataclasses.replace(self, x=self.x.to(device), y=y, meta=meta)


def check_split(name: str, split: str, splits: Iterable[str] = ("train", "valid", "test")) -> None:
    """Raise :class:`~pplgen.errors.UnknownNameError` unless ``split`` is one of ``splits``.

    Args:
        name: the data set's name, for the message.
        split: the split asked for.
        splits: the splits the data set has.

    Raises:
        UnknownNameError: ``split`` is not one of ``splits``.

    Example:
        >>> check_split("digits", "test")  # a known split: nothing happens
        >>> check_split("digits", "dev")
        Traceback (most recent call last):
            ...
        pplgen.errors.UnknownNameError: data set 'digits' has no split 'dev'; valid splits: train, valid, test
    """
    splits = tuple(splits)
    if split not in splits:
        raise UnknownNameError(f"data set {name!r} has no split {split!r}; valid splits: {', '.join(splits)}")
