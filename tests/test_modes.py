"""Mode coverage metrics: exact answers on hand-made samples, and the true mixture covers every mode."""

import math

import pytest
import torch

from pplgen.data import load
from pplgen.errors import DataError
from pplgen.evaluate.modes import mode_metrics


@pytest.fixture
def ring():
    data = load("ring8", "test")
    return data.meta["modes"], data.meta["std"]


def test_all_samples_at_modes(ring):
    modes, std = ring
    result = mode_metrics(modes.repeat(3, 1), modes, std)
    assert result == {"modes": 8, "hq_percent": 100.0, "reverse_kl": 0.0}


def test_all_samples_at_one_mode(ring):
    modes, std = ring
    result = mode_metrics(modes[2].expand(50, 2) + 0.5 * std, modes, std)
    assert result["modes"] == 1 and result["hq_percent"] == 100.0
    assert result["reverse_kl"] == pytest.approx(math.log(8))


def test_samples_far_from_modes(ring):
    modes, std = ring
    result = mode_metrics(torch.full((20, 2), 5.0), modes, std)
    assert result == {"modes": 0, "hq_percent": 0.0, "reverse_kl": math.inf}


def test_threshold_and_partial_quality(ring):
    modes, std = ring
    near = modes[:4] + torch.tensor([2.9 * std, 0.0])  # within 3 std of modes 0..3
    far = modes[4:] * 1.5  # half a unit away from modes 4..7
    result = mode_metrics(torch.cat([near, far]), modes, std)
    assert result["modes"] == 4 and result["hq_percent"] == 50.0
    assert result["reverse_kl"] == pytest.approx(math.log(2))
    assert mode_metrics(near, modes, std, threshold=2.0)["modes"] == 0


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_true_data_covers_every_mode(name):
    data = load(name, "test")
    result = mode_metrics(data.x, data.meta["modes"], data.meta["std"])
    num_modes = data.meta["modes"].shape[0]
    assert result["modes"] == num_modes and result["hq_percent"] > 95.0
    assert result["reverse_kl"] < 0.01
    assert isinstance(result["modes"], int) and isinstance(result["hq_percent"], float)


def test_accepts_double_and_returns_plain_numbers(ring):
    modes, std = ring
    result = mode_metrics(modes.double(), modes, torch.tensor(std))
    assert result["modes"] == 8 and type(result["reverse_kl"]) is float


@pytest.mark.parametrize(
    "samples, modes, match",
    [
        (torch.zeros(5, 3), torch.zeros(8, 2), r"samples must have shape \(N, 2\), got \(5, 3\)"),
        (torch.zeros(5), torch.zeros(8, 2), r"got \(5,\)"),
        (torch.zeros(5, 2), torch.zeros(8), r"modes must have shape \(M, D\).*got \(8,\)"),
        (torch.zeros(0, 2), torch.zeros(8, 2), "at least one sample"),
    ],
)
def test_bad_shapes(samples, modes, match):
    with pytest.raises(DataError, match=match):
        mode_metrics(samples, modes, 0.1)


def test_bad_std_and_threshold():
    with pytest.raises(DataError, match="std"):
        mode_metrics(torch.zeros(3, 2), torch.zeros(2, 2), 0.0)
    with pytest.raises(DataError, match="threshold"):
        mode_metrics(torch.zeros(3, 2), torch.zeros(2, 2), 0.1, threshold=-1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda(ring):
    modes, std = ring
    result = mode_metrics(modes.cuda(), modes, std)
    assert result == {"modes": 8, "hq_percent": 100.0, "reverse_kl": 0.0}
