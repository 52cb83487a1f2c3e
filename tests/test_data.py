"""Data sets: shapes, value ranges, splits, repeatability, statistics, and the errors for bad input."""

import gzip
import math
import os

import numpy as np
import pytest
import torch

from pplgen.data import NAMES, Dataset, load
from pplgen.errors import DataError, DataFileError, UnknownNameError
from tests.conftest import needs_data_file

SPLITS = ("train", "valid", "test")


# ---------------------------------------------------------------------------------------------- digits
def test_digits_binary_shapes_and_values():
    data = load("digits")
    assert isinstance(data, Dataset)
    assert data.kind == "binary" and data.num_levels == 2 and data.image_shape == (8, 8)
    assert data.x.dtype == torch.float32 and data.x.shape[1:] == (64,) and data.event_shape == (64,)
    assert set(data.x.unique().tolist()) == {0.0, 1.0}
    assert data.y.dtype == torch.int64 and set(data.y.unique().tolist()) == set(range(10))
    assert data.tensors() == (data.x,)
    assert len(data) == data.x.shape[0]


def test_digits_levels_values():
    data = load("digits", variant="levels")
    assert data.kind == "discrete" and data.num_levels == 17 and data.x.dtype == torch.int64
    assert data.x.min() == 0 and data.x.max() == 16
    binary = load("digits", variant="binary")
    assert torch.equal(binary.x, (data.x >= 8).float())


def test_digits_splits_disjoint_and_covering():
    from sklearn.datasets import load_digits

    raw = torch.as_tensor(load_digits().data, dtype=torch.int64)
    sizes = {split: len(load("digits", split)) for split in SPLITS}
    assert sizes == {"train": 1258, "valid": 180, "test": 359}
    # together the splits hold exactly the images of the full set
    rows = torch.cat([load("digits", split, variant="levels").x for split in SPLITS])
    assert rows.shape[0] == 1797
    full = sorted(map(tuple, raw.tolist()))
    assert sorted(map(tuple, rows.tolist())) == full


def test_digits_split_indices_are_a_permutation():
    from pplgen.data.embedded import _digits_split

    idx = torch.cat([_digits_split(1797, split) for split in SPLITS])
    assert torch.equal(idx.sort().values, torch.arange(1797))


def test_digits_repeatable():
    a, b = load("digits", "valid"), load("digits", "valid")
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


# -------------------------------------------------------------------------------------------- mixtures
@pytest.mark.parametrize(
    "name, num_modes, std",
    [("ring8", 8, 0.01), ("grid25", 25, 0.05)],
)
def test_mixture_statistics(name, num_modes, std):
    data = load(name)
    assert data.kind == "continuous" and data.x.shape == (20_000, 2) and data.x.dtype == torch.float32
    assert data.meta["std"] == std and data.meta["modes"].shape == (num_modes, 2)
    counts = torch.bincount(data.y, minlength=num_modes).double()
    expected = len(data) / num_modes
    # each count is Binomial(N, 1/M): allow five standard deviations
    assert (counts - expected).abs().max() < 5 * math.sqrt(expected)
    residual = data.x - data.meta["modes"][data.y]
    assert residual.mean(0).abs().max() < 5 * std / math.sqrt(len(data))
    assert residual.std(0).sub(std).abs().max() < 0.03 * std


def test_ring8_modes():
    modes = load("ring8").meta["modes"]
    assert torch.allclose(modes.norm(dim=1), torch.ones(8))
    angles = torch.atan2(modes[:, 1], modes[:, 0]).remainder(2 * math.pi)
    assert torch.allclose(angles, torch.arange(8) * 2 * math.pi / 8, atol=1e-6)


def test_grid25_modes():
    modes = load("grid25").meta["modes"]
    values = [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert sorted(map(tuple, modes.tolist())) == [(a, b) for a in values for b in values]


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_mixture_sizes_and_repeatable(name):
    assert [len(load(name, split)) for split in SPLITS] == [20_000, 2_500, 2_500]
    assert len(load(name, "valid", num_points=100)) == 100
    assert torch.equal(load(name, "test").x, load(name, "test").x)
    assert not torch.equal(load(name, "valid").x, load(name, "test").x)


def test_dataset_to_moves_meta_tensors():
    data = load("ring8", num_points=10).to("cpu")
    assert data.x.device.type == "cpu" and data.meta["modes"].device.type == "cpu"
    assert "ring8" in repr(data) and "(10, 2)" in repr(data)


# ----------------------------------------------------------------------------------------- file-based
@needs_data_file("binarized_mnist.npz")
@pytest.mark.parametrize(
    "split, size, mean", [("train", 50_000, 0.1306), ("valid", 10_000, 0.1311), ("test", 10_000, 0.1325)]
)
def test_binarized_mnist(split, size, mean):
    data = load("binarized_mnist", split)
    assert data.x.shape == (size, 784) and data.x.dtype == torch.float32
    assert data.kind == "binary" and data.image_shape == (28, 28) and data.y is None
    assert round(data.x.double().mean().item(), 4) == mean
    assert set(data.x[:100].unique().tolist()) == {0.0, 1.0}


@needs_data_file("fsdd.npz")
@pytest.mark.parametrize(
    "split, size, takes", [("train", 2400, (10, 49)), ("valid", 300, (5, 9)), ("test", 300, (0, 4))]
)
def test_fsdd(split, size, takes):
    data = load("fsdd", split)
    assert data.kind == "audio" and data.x.shape == (size, 8000) and data.event_shape == (8000,)
    assert data.x.dtype == torch.float32 and data.x.abs().max() <= 1.0
    assert data.meta["sample_rate"] == 8000 and len(data.meta["speakers"]) == 6
    assert (data.meta["take"].min().item(), data.meta["take"].max().item()) == takes
    # every speaker says every digit once per take
    assert torch.bincount(data.y, minlength=10).tolist() == [size // 10] * 10
    assert torch.bincount(data.meta["speaker"], minlength=6).tolist() == [size // 6] * 6
    lengths = data.meta["lengths"]
    assert lengths.max() <= 8000 and lengths.min() >= 1000
    # padding is zeros after each recording's length
    mask = torch.arange(8000) >= lengths[:, None]
    assert not data.x[mask].any()


@needs_data_file("fsdd.npz")
def test_fsdd_length_crops():
    short = load("fsdd", "test", length=500)
    full = load("fsdd", "test")
    assert short.x.shape == (300, 500) and (short.meta["lengths"] == 500).all()
    assert torch.equal(short.x, full.x[:, :500])


@needs_data_file("tinyshakespeare.txt.gz")
def test_shakespeare():
    with gzip.open(os.path.join(os.environ["PPLGEN_DATA"], "tinyshakespeare.txt.gz"), "rt") as f:
        text = f.read()
    train, valid, test = (load("shakespeare", split, block_size=128) for split in SPLITS)
    vocab = train.meta["vocab"]
    assert len(vocab) == 65 == train.num_levels and vocab == "".join(sorted(set(text)))
    assert train.kind == "token" and train.x.dtype == torch.int64 and train.x.shape[1] == 128
    assert train.meta["num_chars"] + valid.meta["num_chars"] == len(text) == 1_115_394
    assert len(train) == train.meta["num_chars"] // 128 and len(valid) == valid.meta["num_chars"] // 128
    assert torch.equal(valid.x, test.x)
    decode = lambda row: "".join(vocab[i] for i in row.tolist())  # noqa: E731
    assert decode(train.x[0]) == text[:128]
    assert decode(train.x[3]) == text[3 * 128 : 4 * 128]
    start = train.meta["num_chars"]
    assert decode(valid.x[1]) == text[start + 128 : start + 256]


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "name, filename",
    [
        ("binarized_mnist", "binarized_mnist.npz"),
        ("fsdd", "fsdd.npz"),
        ("shakespeare", "tinyshakespeare.txt.gz"),
    ],
)
def test_missing_file(tmp_path, name, filename):
    with pytest.raises(DataFileError) as info:
        load(name, root=tmp_path)
    message = str(info.value)
    assert str(tmp_path.resolve() / filename) in message and "PPLGEN_DATA" in message and "root=" in message
    assert isinstance(info.value, FileNotFoundError)


def test_no_data_directory(monkeypatch):
    monkeypatch.delenv("PPLGEN_DATA", raising=False)
    with pytest.raises(DataFileError, match="PPLGEN_DATA"):
        load("fsdd")


@pytest.mark.parametrize(
    "name, filename, content",
    [
        ("binarized_mnist", "binarized_mnist.npz", b"not an npz archive"),
        ("fsdd", "fsdd.npz", b"PK\x03\x04 truncated zip"),
        ("shakespeare", "tinyshakespeare.txt.gz", b"not gzip"),
    ],
)
def test_corrupt_file(tmp_path, name, filename, content):
    (tmp_path / filename).write_bytes(content)
    with pytest.raises(DataError, match=filename):
        load(name, root=tmp_path)


def test_npy_instead_of_npz(tmp_path):
    np.save(tmp_path / "fsdd.npy", np.zeros(3))
    (tmp_path / "fsdd.npy").rename(tmp_path / "fsdd.npz")
    with pytest.raises(DataError, match="not an npz archive"):
        load("fsdd", root=tmp_path)


def test_npz_missing_array(tmp_path):
    np.savez(tmp_path / "binarized_mnist.npz", train=np.zeros((2, 98), np.uint8))
    assert len(load("binarized_mnist", root=tmp_path)) == 2
    with pytest.raises(DataError, match="binarized_mnist.npz"):
        load("binarized_mnist", "test", root=tmp_path)


def test_unknown_name_split_option():
    with pytest.raises(UnknownNameError, match="digits, ring8, grid25, binarized_mnist, fsdd, shakespeare"):
        load("mnist")
    with pytest.raises(UnknownNameError, match="train, valid, test"):
        load("digits", "validation")
    with pytest.raises(UnknownNameError, match="'block'.*block_size"):
        load("shakespeare", block=8)
    with pytest.raises(UnknownNameError, match="binary, levels"):
        load("digits", variant="grey")
    with pytest.raises(DataError, match="num_points"):
        load("ring8", num_points=0)
    assert NAMES == (
        "digits",
        "ring8",
        "grid25",
        "binarized_mnist",
        "fsdd",
        "shakespeare",
        "pendulum",
        "digit_speech",
    )
