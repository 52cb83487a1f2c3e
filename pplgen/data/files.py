"""Data read from the data directory: binarized MNIST, spoken digits and tiny Shakespeare.

No package ships these files. They are read from the directory passed as ``root``, or else from the one
named by the ``PPLGEN_DATA`` environment variable; their formats are described in that directory's
``README.md``. Nothing is cached on disk.
"""

from __future__ import annotations

import gzip
import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from pplgen.data.dataset import Dataset, check_split
from pplgen.errors import DataError, DataFileError

__all__ = [
    "binarized_mnist",
    "data_path",
    "fsdd",
    "log_mel",
    "mel_filterbank",
    "pooled_log_mel",
    "shakespeare",
]

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

    Returns:
        The file's absolute path.

    Raises:
        DataFileError: no data directory is named, or the file is not in it.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as root:
        ...     _ = Path(root, "notes.txt").write_text("hello")
        ...     print(data_path("notes.txt", "demo", root) == Path(root, "notes.txt").resolve())
        ...     try:
        ...         data_path("missing.npz", "demo", root)
        ...     except DataFileError as err:
        ...         print(err)
        True
        the demo data set needs the file ...missing.npz, which was not found: set PPLGEN_DATA to the
        folder that holds it, or pass root=
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

    Example:
        A file of the expected layout, written to a temporary data directory and read back:

        >>> import tempfile
        >>> pixels = (np.arange(3 * 784).reshape(3, 784) % 3 == 0).astype(np.uint8)  # 3 images
        >>> packed = np.packbits(pixels, axis=1)  # (3, 98)
        >>> with tempfile.TemporaryDirectory() as root:
        ...     np.savez(Path(root, "binarized_mnist.npz"), train=packed, valid=packed[:1], test=packed[:1])
        ...     data = binarized_mnist("train", root=root)
        >>> data, data.image_shape
        (Dataset(name='binarized_mnist', split='train', kind='binary', x=(3, 784) float32, num_levels=2),
         (28, 28))
        >>> torch.equal(data.x, torch.from_numpy(pixels).float())
        True

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
# The log-mel features' default size: 8 x 16 = 128 numbers, on which a linear classifier of the digit
# reaches about 96 % on the test split (16 x 12 and 20 x 10 did no better).
_FRAMES, _MELS = 8, 16


def _crop_or_pad(audio: np.ndarray, starts: np.ndarray, lengths: np.ndarray, length: int) -> np.ndarray:
    """Rows of ``length`` samples: ``audio[start : start + n]`` scaled into [-1, 1], then zeros."""
    x = np.zeros((len(starts), length), dtype=np.float32)  # (N, length)
    for i, (start, n) in enumerate(zip(starts, lengths, strict=True)):
        x[i, :n] = audio[start : start + n] / 32768.0
    return x


def fsdd(
    split: str = "train",
    *,
    root: str | os.PathLike | None = None,
    length: int = 8000,
    features: str | None = None,
    mels: int | None = None,
    frames: int | None = None,
) -> Dataset:
    """Free Spoken Digit Dataset: 3,000 recordings of the digits 0-9 by 6 speakers, 8 kHz mono.

    The official split keeps takes 0-4 of every speaker and digit for testing (300 recordings) and takes
    5-49 for training. Here takes 5-9 form the ``"valid"`` split (300 recordings) and takes 10-49 the
    ``"train"`` split (2,400).

    With ``features="logmel"`` each recording becomes a compact vector instead of its waveform, cheap
    enough to train many small models on a CPU: the log mel spectrogram of :func:`log_mel` (32 ms Hann
    windows every 16 ms, ``mels`` triangular mel bands), averaged over ``frames`` equal stretches of the
    recording's own duration (so a slow and a quick "seven" line up), flattened frame by frame, and
    standardised per coordinate with the mean and standard deviation of the training split.

    Args:
        split: ``"train"``, ``"valid"`` or ``"test"``.
        root: the data directory; ``None`` uses ``PPLGEN_DATA``.
        length: the number of samples kept per recording (default 8000, one second); longer recordings
            are cut at the end, shorter ones padded with zeros at the end.
        features: ``None`` for the waveforms, or ``"logmel"``.
        mels: mel bands of the ``"logmel"`` features (default 16).
        frames: time stretches of the ``"logmel"`` features (default 8).

    Returns:
        An audio :class:`Dataset` with ``x`` float32 of shape ``(N, length)`` (the int16 samples divided
        by 32768), the spoken digit as ``y``, and in ``meta``: ``lengths`` (each recording's length,
        at most ``length``), ``sample_rate`` (8000), ``speakers`` (the speakers' names), ``speaker``
        (each recording's index into ``speakers``) and ``take``. With ``features="logmel"`` a
        continuous :class:`Dataset` with ``x`` of shape ``(N, frames * mels)`` instead, and in ``meta``
        also ``features`` (the settings, ``feature_shape`` ``(frames, mels)``, and the training split's
        ``mean`` and ``std`` that standardised it).

    Example:
        >>> data = fsdd("test", features="logmel")  # doctest: +SKIP
        >>> data.kind, data.x.shape  # doctest: +SKIP
        ('continuous', torch.Size([300, 128]))

    References:
        Jackson, Souza, Flaks, Pan, Nicolas & Thite (2018), "Free Spoken Digit Dataset",
        https://github.com/Jakobovski/free-spoken-digit-dataset.
        Davis & Mermelstein (1980), "Comparison of parametric representations for monosyllabic word
        recognition in continuously spoken sentences" (mel-scale filterbank features).
    """
    check_split("fsdd", split)
    if not isinstance(length, int) or length < 1:
        raise DataError(f"fsdd: length must be a positive integer, got {length!r}")
    shape = _feature_shape(features, mels, frames)
    path = data_path("fsdd.npz", "fsdd", root)
    arrays = _read_npz(path, ("audio", "offsets", "digit", "speaker", "index", "speakers", "sample_rate"))
    offsets = arrays["offsets"]
    if len(offsets) != len(arrays["digit"]) + 1 or offsets[-1] > len(arrays["audio"]):
        raise DataError(f"{path}: offsets do not match the recordings ({len(offsets)} offsets)")
    keep = _takes(arrays, split)
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
    if shape is None:
        return Dataset(name="fsdd", split=split, kind="audio", x=torch.from_numpy(x), y=y, meta=meta)
    train = _takes(arrays, "train")
    reference = _log_mel_rows(arrays, train, length, *shape)  # the training split's statistics
    mean, std = reference.mean(0), reference.std(0).clamp_min(1e-6)
    rows = reference if split == "train" else _log_mel_rows(arrays, keep, length, *shape)
    meta["features"] = {"name": "logmel", "feature_shape": shape, "mean": mean, "std": std}
    return Dataset(name="fsdd", split=split, kind="continuous", x=(rows - mean) / std, y=y, meta=meta)


def _feature_shape(features: str | None, mels: int | None, frames: int | None) -> tuple[int, int] | None:
    """``(frames, mels)`` of the requested features, or None for waveforms; bad settings raise."""
    if features is None:
        if mels is not None or frames is not None:
            raise DataError("fsdd: mels and frames set the log-mel features: pass features='logmel' too")
        return None
    if features != "logmel":
        raise DataError(f"fsdd: features must be None (waveforms) or 'logmel', got {features!r}")
    shape = (_FRAMES if frames is None else frames, _MELS if mels is None else mels)
    for name, value in zip(("frames", "mels"), shape, strict=True):
        if not isinstance(value, int) or value < 1:
            raise DataError(f"fsdd: {name} must be a positive integer, got {value!r}")
    return shape


def _takes(arrays: dict[str, np.ndarray], split: str) -> np.ndarray:
    """The indices of the recordings of ``split`` (by take, :data:`FSDD_TAKES`)."""
    lo, hi = FSDD_TAKES[split]
    return np.flatnonzero((arrays["index"] >= lo) & (arrays["index"] < hi))


def _log_mel_rows(arrays: dict[str, np.ndarray], keep: np.ndarray, length: int, frames: int, mels: int):
    """:func:`log_mel` of the recordings ``keep`` (each at most ``length`` samples), pooled over
    ``frames`` equal stretches of its duration and flattened frame by frame: ``(N, frames * mels)``."""
    offsets, rate = arrays["offsets"], int(arrays["sample_rate"])
    rows = []
    for i in keep:
        start = offsets[i]
        stop = min(offsets[i + 1], start + length)
        wave = torch.from_numpy(arrays["audio"][start:stop].astype(np.float32) / 32768.0)
        rows.append(pooled_log_mel(wave, rate, mels, frames))
    return torch.stack(rows)


def pooled_log_mel(wave: torch.Tensor, sample_rate: int, mels: int, frames: int) -> torch.Tensor:
    """:func:`log_mel` of one waveform averaged over ``frames`` equal stretches of it and flattened frame
    by frame: ``(frames * mels,)``."""
    spectrum = log_mel(wave, sample_rate, mels)  # (mels, T)
    pooled = torch.nn.functional.adaptive_avg_pool1d(spectrum[None], frames)[0]  # (mels, frames)
    return pooled.T.reshape(-1)


def mel_filterbank(num_freqs: int, mels: int, sample_rate: int) -> torch.Tensor:
    r"""Triangular filters on the mel scale, :math:`m(f) = 2595 \log_{10}(1 + f / 700)`, whose centres
    are equally spaced in mels from 0 Hz to the Nyquist frequency: ``(mels, num_freqs)``, for the
    ``num_freqs`` equally spaced frequencies of a one-sided spectrum."""
    top = 2595.0 * math.log10(1.0 + sample_rate / 2 / 700.0)
    edges = 700.0 * (10.0 ** (torch.linspace(0.0, top, mels + 2, dtype=torch.float64) / 2595.0) - 1.0)
    freqs = torch.linspace(0.0, sample_rate / 2, num_freqs, dtype=torch.float64)
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising, falling = (freqs - low) / (centre - low), (high - freqs) / (high - centre)
    return torch.minimum(rising, falling).clamp_min(0.0).float()


def log_mel(wave: torch.Tensor, sample_rate: int, mels: int, window_s: float = 0.032) -> torch.Tensor:
    r"""The log mel spectrogram :math:`\log(M |\mathrm{STFT}(x)|^2 + 10^{-6})` of one waveform, ``(mels, T)``:
    Hann windows of ``window_s`` seconds, half overlapping, and :func:`mel_filterbank`'s ``M``. A
    recording shorter than one window is padded with zeros to one window."""
    n_fft = max(2, round(window_s * sample_rate))
    if len(wave) < n_fft:
        wave = torch.nn.functional.pad(wave, (0, n_fft - len(wave)))
    window = torch.hann_window(n_fft, dtype=wave.dtype)
    stft = torch.stft(wave, n_fft, n_fft // 2, window=window, center=False, return_complex=True)
    power = stft.abs() ** 2  # (n_fft // 2 + 1, T)
    return torch.log(mel_filterbank(power.shape[0], mels, sample_rate) @ power + 1e-6)


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

    Example:
        A short text, written to a temporary data directory and read back in blocks of 8 characters:

        >>> import tempfile
        >>> text = "To be, or not to be: that is the question.\\n" * 20  # 860 characters
        >>> with tempfile.TemporaryDirectory() as root:
        ...     with gzip.open(Path(root, "tinyshakespeare.txt.gz"), "wt", encoding="utf-8") as f:
        ...         _ = f.write(text)
        ...     train = shakespeare("train", root=root, block_size=8)
        ...     valid = shakespeare("valid", root=root, block_size=8)
        >>> train.x.shape, valid.x.shape, train.num_levels
        (torch.Size([96, 8]), torch.Size([10, 8]), 18)
        >>> train.meta["num_chars"] + valid.meta["num_chars"] == len(text)  # 90 % and 10 %
        True
        >>> "".join(train.meta["vocab"][i] for i in train.x[0])
        'To be, o'

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
