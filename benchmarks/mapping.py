"""A written digit to a spoken digit: image2speech on digit_speech, judged by a spoken-digit classifier.

    python benchmarks/mapping.py --minutes 60                                  # CPU, the zoo's defaults
    python benchmarks/mapping.py --minutes 30 --device cuda --batch-size 32
    python benchmarks/mapping.py --minutes 0.2 --train-rows 64 --per-class 2  # a smoke run

``ImageToSpeech`` (an MLP image encoder whose code is WaveNet's global context) is trained within
``--minutes`` on FSDD recordings of 4,000 samples (half a second), each paired with a training image of
its digit (whole epochs, the best validation epoch kept). Then one clip is drawn, by WaveNet's cached
generation, for each of ``--per-class`` held-out images of every digit: the first images of each digit
in the digits test split, which training never saw. A :class:`pplgen.evaluate.SpokenDigitClassifier`
(log-mel features and a logistic regression) fitted on the FSDD training recordings at the same length
names the digit each clip speaks.

Recorded, each a line of ``results.jsonl``:

- ``spoken_digit_accuracy``: the share of generated clips the classifier hears as the digit of their
  image. Its reference is the same classifier's accuracy on the real FSDD test recordings: a model
  whose clips were as clear as real speech would reach it. Chance is 0.1.
- ``bits_per_sample``: the model's exact test negative log-likelihood of the real test recordings given
  their paired test images, in bits per sample.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from common import add_fit_options, fit_settings, fit_within, pairs, record

import pplgen
from pplgen import data as datasets
from pplgen import models
from pplgen.evaluate import SpokenDigitClassifier

CHANCE = 0.1


def held_out_images(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``per_class`` images of each digit in the digits test split, as ``digit_speech`` scales
    them: images ``(10 per_class, 64)`` in [0, 1] and their digits, digit by digit."""
    test = datasets.digits("test", variant="levels")
    rows = [(test.y == d).nonzero().flatten()[:per_class] for d in range(10)]
    if min(len(r) for r in rows) < per_class:
        raise SystemExit(
            f"--per-class {per_class}: the digits test split has {min(map(len, rows))} of some digit"
        )
    index = torch.cat(rows)
    return test.x[index].float() / 16, test.y[index]


def generate(result, images: torch.Tensor, length: int, batch: int) -> torch.Tensor:
    """One clip ``(N, length)`` per image, ``batch`` clips at a time."""
    clips = [
        pplgen.sample(result, len(part), (torch.zeros(len(part), length), part)).cpu()
        for part in images.split(batch)
    ]
    return torch.cat(clips)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-class", type=int, default=20, help="held-out images per digit, one clip each")
    parser.add_argument("--sample-batch", type=int, default=200, help="clips generated at once")
    parser.add_argument("--eval-rows", type=int, default=100, help="test clips per likelihood pass")
    add_fit_options(parser)
    # WaveNet learns from many small steps: at 100 clips a batch a CPU epoch is 24 steps, and 3 epochs
    # (72 steps, 40 minutes) left the clips at chance; 8 clips a batch give 300 steps an epoch.
    parser.set_defaults(batch_size=8)
    args = parser.parse_args()
    options = {"length": 4000, **pairs(args.data_option)}
    train, valid, test = (
        datasets.load("digit_speech", split=s, **options) for s in ("train", "valid", "test")
    )
    length = train.event_shape[0]
    model = models.build("image2speech", train, **pairs(args.set))
    result, data, held_out, fit_s = fit_within(args, model, train, valid)
    settings = {**fit_settings(args, model, result, data, held_out), "data_options": options}

    began = time.perf_counter()
    nats = -pplgen.log_likelihood(result, test.tensors(True), max_rows=args.eval_rows).mean().item()
    bits = nats / length / math.log(2)
    source = (
        "no published figure; the digit-conditioned wavenet of autoregressive.py is the peer at equal length"
    )
    record("mapping", "image2speech", "digit_speech", "test", "bits_per_sample", bits,
           {"value": None, "source": source}, fit_s + time.perf_counter() - began,
           {**settings, "estimator": "exact", "test_rows": len(test)})  # fmt: skip

    classifier = SpokenDigitClassifier.from_fsdd(length=length)
    real = classifier.accuracy(test.x, test.meta["digit"])  # the reference: real test speech
    images, digits = held_out_images(args.per_class)
    torch.manual_seed(args.seed)
    began = time.perf_counter()
    clips = generate(result, images, length, args.sample_batch)
    generation_s = time.perf_counter() - began
    heard = classifier.predict(clips)
    per_digit = [round((heard[digits == d] == d).float().mean().item(), 3) for d in range(10)]
    reference = {
        "value": real,
        "source": f"SpokenDigitClassifier on the {len(test)} real FSDD test recordings at {length} samples "
        f"(fitted on the training recordings); chance is {CHANCE}",
    }
    accuracy = (heard == digits).float().mean().item()
    record("mapping", "image2speech", "digit_speech", "test", "spoken_digit_accuracy", accuracy, reference,
           fit_s + generation_s,
           {**settings, "clips": len(clips), "per_class": args.per_class, "per_digit_accuracy": per_digit,
            "images": "the first per_class of each digit in the digits test split",
            "generation_s": round(generation_s, 2), "clips_per_s": round(len(clips) / generation_s, 3),
            "samples_per_s": round(len(clips) * length / generation_s), "sample_batch": args.sample_batch,
            "classifier": f"log-mel {classifier.frames} frames x {classifier.mels} mels of the whole clip, "
                          f"mu-law {classifier.num_levels} levels, logistic regression"})  # fmt: skip


if __name__ == "__main__":
    main()
