"""Data read from the data directory: binarized MNIST, spoken digits and tiny Shakespeare.

No package ships these files. They are read from the directory passed as ``root``, or else from the one
named by the ``PPLGEN_DATA`` environment variable; their formats are described in that directory's
``README.md``. Nothing is cached on disk.
"""

from __future__ import annotations

import gzip
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from pplgen.data.dataset import Dataset, check_split
from pplgen.errors import DataError, DataFileError

__all__ = ["binarized_mnist", "data_path", "fsdd", "shakespeare"]

#: The environment variable naming the data directory.
DATA_ENV = "PPLGEN_DATA"
# What a broken file can raise while it is read.
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, UnicodeDecodeError)


def data_path(filename: str, dataset: str, root: str | os.PathLike | None = None) -> Path:
    """The path of ``filename`` in the data directory, checked to exist.

    Args:
        filename: the file's name in the data directory.
        dataset: the data set that needs it (named in the error message).
        root: the data directory; ``None`` uses the ``PPLGEN_DATA`` environment variable.

    Raises:
        DataFileError: no data directory is named, or the file is not in it.
    """
    root = root if root is not None else os.environ.get(DATA_ENV)
    hint = f"set {DATA_ENV} to the folder that holds it, or pass root="
    if root is None or str(root) == "":
        raise DataFileError(
            f"the {dataset} data set needs the file {filename}, but no data directory is named: {hint}"
        )
    path = Path(root).expanduser().resolve() / filename
    if not path.is_file():
        raise DataFileError(f"the {dataset} data set needs the file {path}, which was not found: {hint}")
    return path


def _read_npz(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``names`` of an ``.npz`` file, read in full; a broken file raises :class:`DataError`."""
    try:
        # open the file here, so that it is closed even when numpy fails to read it
        with open(path, "rb") as f:
            archive = np.load(f, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("not an npz archive")
            with archive:
                return {name: archive[name] for name in names}
    except _READ_ERRORS as exc:
        raise DataError(f"cannot read the data file {path}: {type(exc).__name__}: {exc}") from exc


def binarized_mnist(split: str = "train", *, root: str | os.PathLike | None = None) -> Dataset:
    """Statically binarized MNIST: 28x28 black-and-white digits, 50,000 / 10,000 / 10,000 images.

    Read from ``binarized_mnist.npz`` (rows packed with ``numpy.packbits``). The rows are in the file's
    order, which is not shuffled (the test split starts with the zeros): shuffle before making batches.

    Args:
        split: ``"train"``, ``"valid"`` or ``"test"``, as in the file.
        root: the data directory; ``None`` uses ``PPLGEN_DATA``.

    Returns:
        A binary :class:`Dataset` with ``x`` float32 of shape ``(N, 784)`` and ``image_shape`` ``(28, 28)``;
        ``y`` is ``None``.

    References:
        Larochelle & Murray (2011), "The neural autoregressive distribution estimator".
    """
    check_split("binarized_mnist", split)
    path = data_path("binarized_mnist.npz", "binarized_mnist", root)
    packed = _read_npz(path, (split,))[split]
    if packed.ndim != 2 or packed.shape[1] * 8 < 784:
        raise DataError(f"{path}: array {split!r} has shape {packed.shape}, expected (N, 98) packed bits")
    pixels = np.unpackbits(packed, axis=1)[:, :784]
    x = torch.from_numpy(pixels).float()  # (N, 784)
    return Dataset(
        name="binarized_mnist", split=split, kind="binary", x=x, num_levels=2, image_shape=(28, 28)
    )


# Free Spoken Digit Dataset: takes (the "index" array) per split. Takes 0-4 are the official test set;
# the official training takes 5-49 are divided here into 5-9 for validation and 10-49 for training.
FSDD_TAKES = {"train": (10, 50), "valid": (5, 10), "test": (0, 5)}


def _crop_or_pad(audio: np.ndarray, starts: np.ndarray, lengths: np.ndarray, length: int) -> np.ndarray:
    """Rows of ``length`` samples: ``audio[start : start + n]`` scaled into [-1, 1], then zeros."""
    x = np.zeros((len(starts), length), dtype=np.float32)  # (N, length)
    for i, (start, n) in enumerate(zip(starts, lengths, strict=True)):
        x[i, :n] = audio[start : start + n] / 32768.0
    return x


def fsdd(split: str = "train", *, root: str | os.PathLike | None = None, length: int = 8000) -> Dataset:
    """Free Spoken Digit Dataset: 3,000 recordings of the digits 0-9 by 6 speakers, 8 kHz mono.

    The official split keeps takes 0-4 of every speaker and digit for testing (300 recordings) and takes
    5-49 for training. Here takes 5-9 form the ``"valid"`` split (300 recordings) and takes 10-49 the
    ``"train"`` split (2,400).

    Args:
        split: ``"train"``, ``"valid"`` or ``"test"``.
        root: the data directory; ``None`` uses ``PPLGEN_DATA``.
        length: the number of samples kept per recording (default 8000, one second); longer recordings
            are cut at the end, shorter ones padded with zeros at the end.

    Returns:
        An audio :class:`Dataset` with ``x`` float32 of shape ``(N, length)`` (the int16 samples divided
        by 32768), the spoken digit as ``y``, and in ``meta``: ``lengths`` (each recording's length,
        at most ``length``), ``sample_rate`` (8000), ``speakers`` (the speakers' names), ``speaker``
        (each recording's index into ``speakers``) and ``take``.

    References:
        Jackson, Souza, Flaks, Pan, Nicolas & Thite (2018), "Free Spoken Digit Dataset",
        https://github.com/Jakobovski/free-spoken-digit-dataset.
    """
    check_split("fsdd", split)
    if not isinstance(length, int) or length < 1:
        raise DataError(f"fsdd: length must be a positive integer, got {length!r}")
    path = data_path("fsdd.npz", "fsdd", root)
    arrays = _read_npz(path, ("audio", "offsets", "digit", "speaker", "index", "speakers", "sample_rate"))
    offsets = arrays["offsets"]
    if len(offsets) != len(arrays["digit"]) + 1 or offsets[-1] > len(arrays["audio"]):
        raise DataError(f"{path}: offsets do not match the recordings ({len(offsets)} offsets)")
    lo, hi = FSDD_TAKES[split]
    keep = np.flatnonzero((arrays["index"] >= lo) & (arrays["index"] < hi))
    starts = offsets[keep]
    lengths = np.minimum(offsets[keep + 1] - starts, length)
    x = _crop_or_pad(arrays["audio"], starts, lengths, length)
    meta = {
        "lengths": torch.from_numpy(lengths.astype(np.int64)),
        "sample_rate": int(arrays["sample_rate"]),
        "speakers": tuple(str(s) for s in arrays["speakers"]),
        "speaker": torch.from_numpy(arrays["speaker"][keep].astype(np.int64)),
        "take": torch.from_numpy(arrays["index"][keep].astype(np.int64)),
    }
    y = torch.from_numpy(arrays["digit"][keep].astype(np.int64))
    return Dataset(name="fsdd", split=split, kind="audio", x=torch.from_numpy(x), y=y, meta=meta)


def _read_text(path: Path) -> str:
    """The text of a gzip-compressed UTF-8 file; a broken file raises :class:`DataError`."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return f.read()
    except _READ_ERRORS as exc:
        raise DataError(f"cannot read the data file {path}: {type(exc).__name__}: {exc}") from exc


def shakespeare(
    split: str = "train", *, root: str | os.PathLike | None = None, block_size: int = 256
) -> Dataset:
    """Tiny Shakespeare at the character level: 1,115,394 characters, 65 distinct.

    The vocabulary is the sorted set of the characters of the whole text, so token ``i`` is
    ``meta["vocab"][i]``. The first 90 % of the characters form the ``"train"`` split and the last 10 %
    the ``"valid"`` split. The corpus has no separate test split: ``"test"`` returns the same text as
    ``"valid"``.

    Args:
        split: ``"train"``, ``"valid"`` or ``"test"`` (the same as ``"valid"``).
        root: the data directory; ``None`` uses ``PPLGEN_DATA``.
        block_size: the number of tokens per row; the text is cut into non-overlapping blocks and the
            tail shorter than a block is dropped.

    Returns:
        A token :class:`Dataset` with ``x`` int64 of shape ``(N, block_size)``, ``num_levels`` the
        vocabulary size, ``y`` ``None``, and in ``meta``: ``vocab`` (the vocabulary as a string),
        ``num_chars`` (the characters in the split before cutting into blocks) and ``block_size``.

    References:
        Karpathy (2015), "The unreasonable effectiveness of recurrent neural networks",
        https://github.com/karpathy/char-rnn.
    """
    check_split("shakespeare", split)
    if not isinstance(block_size, int) or block_size < 1:
        raise DataError(f"shakespeare: block_size must be a positive integer, got {block_size!r}")
    text = _read_text(data_path("tinyshakespeare.txt.gz", "shakespeare", root))
    vocab = "".join(sorted(set(text)))
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)  # one code point per character
    vocab_codes = np.frombuffer(vocab.encode("utf-32-le"), dtype=np.uint32)
    tokens = np.searchsorted(vocab_codes, codes).astype(np.int64)  # (num_chars,)
    num_train = int(0.9 * len(tokens))
    tokens = tokens[:num_train] if split == "train" else tokens[num_train:]
    num_blocks = len(tokens) // block_size
    x = torch.from_numpy(tokens[: num_blocks * block_size].reshape(num_blocks, block_size).copy())
    meta = {"vocab": vocab, "num_chars": len(tokens), "block_size": block_size}
    return Dataset(name="shakespeare", split=split, kind="token", x=x, num_levels=len(vocab), meta=meta)
