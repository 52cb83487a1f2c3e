"""A written digit to a spoken digit: the paired data, ImageToSpeech (the image really drives the audio),
the spoken-digit classifier, and ``pplgen sample RUN --image FILE``."""

import json
import math
import wave

import matplotlib.image
import numpy as np
import pytest
import torch
from pyro import poutine

import pplgen
from pplgen import data as datasets
from pplgen.cli import main
from pplgen.data import Dataset
from pplgen.data.paired import condition_image
from pplgen.errors import DataError
from pplgen.evaluate import SpokenDigitClassifier
from pplgen.models import ZOO, ImageToSpeech
from tests.conftest import needs_data_file

TINY_WAVENET = {"residual_channels": 4, "skip_channels": 4, "dilations": [1, 2, 4]}
SMALL = {**TINY_WAVENET, "hidden": 8, "context_dim": 4}


# -- the paired data ----------------------------------------------------------------------------------
@needs_data_file("fsdd.npz")
@pytest.mark.parametrize("split, size", [("train", 2400), ("valid", 300), ("test", 300)])
def test_every_recording_is_paired_with_an_image_of_its_digit(split, size):
    data = datasets.load("digit_speech", split, length=64)
    speech, images = datasets.fsdd(split, length=64), datasets.digits(split, variant="levels")
    assert data.kind == "audio" and len(data) == size and data.y.shape == (size, 64)
    assert data.y.dtype == torch.float32 and 0 <= data.y.min() and data.y.max() == 1
    assert torch.equal(data.x, speech.x) and torch.equal(data.meta["digit"], speech.y)
    index = data.meta["image_index"]
    assert torch.equal(images.y[index], data.meta["digit"])  # each image shows the recording's digit
    assert torch.equal(data.y, images.x[index].float() / 16)  # ... and is that digits image, levels / 16
    assert set(speech.meta) < set(data.meta) and data.meta["condition_shape"] == (8, 8)
    assert len(index.unique()) > size // 4  # drawn across each digit's images, not one per digit


@needs_data_file("fsdd.npz")
def test_the_pairing_is_seeded():
    first, again = (
        datasets.load("digit_speech", "test", length=16),
        datasets.load("digit_speech", "test", length=16),
    )
    other = datasets.load("digit_speech", "test", length=16, seed=1)
    assert torch.equal(first.y, again.y) and not torch.equal(first.y, other.y)
    assert torch.equal(first.meta["digit"], other.meta["digit"])


def test_condition_image_inverts_paper_drops_alpha_and_scales_integers():
    page = np.full((16, 16, 4), 255, dtype=np.uint8)  # white RGBA paper ...
    page[:8, :8, :3] = 0  # ... with the top left quarter inked black
    expected = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    assert torch.equal(condition_image(page, (2, 2), crop=False), expected)
    assert torch.equal(condition_image(page[..., :3] / 255.0, (2, 2), crop=False), expected)  # RGB floats
    assert torch.equal(condition_image(1 - page[..., 0] / 255.0, (2, 2), crop=False), expected)  # no paper
    with pytest.raises(DataError, match="NaN"):
        condition_image(np.full((4, 4), np.nan))
    with pytest.raises(DataError, match=r"expected a picture of shape \(H, W\).*got float64 of shape \(4,\)"):
        condition_image(np.zeros(4))


def test_condition_image_cuts_a_small_digit_to_fill_the_image():
    page = np.ones((100, 100))  # a "1" drawn small, 40 pixels high and 10 wide, on white paper
    page[20:60, 45:55] = 0.0
    expected = torch.zeros(8, 8)
    expected[:, 3:5] = 1.0  # the full height, in the middle, as the data's ones
    assert torch.equal(condition_image(page), expected)
    assert condition_image(page, crop=False).max() < 0.5  # uncut: a faint smudge


# -- the model ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "image, message",
    [
        (torch.rand(2, 63), r"got shape \(2, 63\)"),
        (torch.rand(2, 8, 7), r"got shape \(2, 8, 7\)"),
        (torch.full((2, 64), math.nan), "got NaN"),
        (2 * torch.ones(2, 64), "got values 2 .. 2"),
        (torch.ones(2, 64, dtype=torch.long), "got a torch.int64 tensor"),
        (None, r"call model\(x, image\)"),
    ],
)
def test_bad_images_raise_data_errors_naming_what_was_expected(image, message):
    model = ImageToSpeech(length=16, **SMALL)
    expected = r"ImageToSpeech expects images of shape \(N, 64\) or \(N, 8, 8\) as floats in \[0, 1\]"
    with pytest.raises(DataError, match=f"{expected}.*{message}"):
        model.model(torch.zeros(2, 16), image)


def test_one_image_per_clip_and_audio_data_with_images():
    model = ImageToSpeech(length=16, **SMALL)
    with pytest.raises(DataError, match="one image per clip: 2 clips, 3 images"):
        model.model(torch.zeros(2, 16), torch.rand(3, 64))
    labelled = Dataset(name="tones", split="train", kind="audio", x=torch.zeros(4, 16), y=torch.arange(4))
    with pytest.raises(DataError, match=r"meta\['condition_shape'\]"):
        ZOO["image2speech"].from_dataset(labelled)


def test_gradients_reach_the_image_encoder_and_the_family_is_exact():
    model = ImageToSpeech(length=16, **SMALL)
    x, image = torch.rand(4, 16) * 2 - 1, torch.rand(4, 8, 8)
    graph = pplgen.inspect(model.model, x, image)
    assert graph.graph["family"] == "exact" and graph.nodes["x"]["dist"] == "WaveNet"
    (-poutine.trace(model.model).get_trace(x, image).log_prob_sum()).backward()
    for name, parameter in model.encoder.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def _tones(n: int, seed: int, periods=(16, 5), length=128):
    """Two image classes (ink in the top half, ink in the bottom half), each with a sine of its own period
    and a random phase: clips ``(n, length)``, images ``(n, 64)``, classes ``(n,)``."""
    gen = torch.Generator().manual_seed(seed)
    classes = torch.arange(n) % 2
    images = 0.1 * torch.rand(n, 8, 8, generator=gen)
    images[classes == 0, :4] += 0.8
    images[classes == 1, 4:] += 0.8
    period = torch.tensor(periods, dtype=torch.float32)[classes, None]
    phase = 2 * math.pi * torch.rand(n, 1, generator=gen)
    x = 0.6 * torch.sin(2 * math.pi * torch.arange(length) / period + phase)
    return x, images.reshape(n, 64), classes


def test_the_image_chooses_the_tone():
    """Fitted on two image classes paired with two tones, the model draws, from the same random numbers,
    each class's tone for that class's images: the dominant FFT bin follows the image."""
    torch.manual_seed(0)
    x, images, _ = _tones(256, seed=0)
    model = ImageToSpeech(length=128, context_dim=4, hidden=16, num_levels=32, residual_channels=16,
                          skip_channels=16, dilations=[1, 2, 4, 8])  # fmt: skip
    result = pplgen.fit(model.model, (x, images), epochs=20, batch_size=32, lr=1e-2, seed=0)
    _, fresh, classes = _tones(40, seed=1)
    for c, bin_ in ((0, 128 // 16), (1, round(128 / 5))):
        torch.manual_seed(1)  # the same uniforms for both classes: only the images differ
        drawn = pplgen.sample(result, 20, (torch.zeros(20, 128), fresh[classes == c]))
        peak = torch.fft.rfft(drawn, dim=1).abs()[:, 1:].argmax(1) + 1  # (20,), DC left out
        assert ((peak - bin_).abs() <= 1).float().mean() >= 0.9, (c, peak.tolist())


# -- the spoken-digit classifier ----------------------------------------------------------------------
@needs_data_file("fsdd.npz")
def test_spoken_digit_classifier_names_the_real_test_digits():
    classifier = SpokenDigitClassifier.from_fsdd(length=4000)
    test = datasets.fsdd("test", length=4000)
    assert classifier.accuracy(test.x, test.y) > 0.8  # 0.93 measured; chance is 0.1
    assert classifier.predict(test.x[:5]).dtype == torch.int64
    with pytest.raises(DataError, match="fitted on clips of 4000 samples, got clips of 100"):
        classifier.predict(test.x[:, :100])


# -- the command line ---------------------------------------------------------------------------------
def _fit_args(model: str, data: str, run_dir, settings: dict) -> list[str]:
    flags = [f"--set={key}={json.dumps(value)}" for key, value in settings.items()]
    return ["fit", model, "--data", data, "--data-option", "length=64", *flags, "--epochs", "1",
            "--batch-size", "512", "--out", str(run_dir)]  # fmt: skip


@needs_data_file("fsdd.npz")
def test_sample_speaks_for_a_picture_and_refuses_runs_without_images(tmp_path, capsys):
    run_dir = tmp_path / "image2speech"
    assert main(_fit_args("image2speech", "digit_speech", run_dir, SMALL)) == 0
    page = np.ones((32, 32, 3))  # a dark "1" on white paper, written as an RGBA PNG
    page[4:28, 14:18] = 0.0
    matplotlib.image.imsave(tmp_path / "one.png", page)
    np.save(tmp_path / "seven.npy", datasets.digits("test", variant="levels").x[0].reshape(8, 8).numpy())
    one, seven = str(tmp_path / "one.png"), str(tmp_path / "seven.npy")
    argv = ["sample", str(run_dir), "--image", one, "--image", seven]
    assert main([*argv, "-n", "2", "--seed", "0"]) == 0
    with wave.open(str(run_dir / "samples.wav")) as f:  # two clips per picture, 1/4 s of silence after each
        assert f.getframerate() == 8000 and f.getnframes() == 4 * (64 + 2000)
    assert (run_dir / "samples_images.png").stat().st_size > 500
    assert main(["sample", str(run_dir), "-n", "3", "--label", "7", "--out", str(tmp_path / "seven")]) == 0
    assert (tmp_path / "seven_images.png").is_file()
    capsys.readouterr()
    assert main([*argv[:2], "--image", str(tmp_path / "missing.png")]) == 2
    assert "no file" in capsys.readouterr().err

    other = tmp_path / "wavenet"
    assert main(_fit_args("wavenet", "fsdd", other, TINY_WAVENET)) == 0
    capsys.readouterr()
    assert main(["sample", str(other), "--image", one]) == 2
    err = capsys.readouterr().err
    assert "the data set fsdd has no image condition" in err and len(err.strip().splitlines()) == 1
