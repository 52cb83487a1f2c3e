"""Implicit models against PacGAN's mode-coverage tables: modes covered, high-quality samples and reverse
KL on the ring of 8 and the grid of 25 Gaussians, over several seeds (mean ± standard error); and image
GANs on digits, beside held-out real digits.

    python benchmarks/implicit.py modes gan --data ring8 --seeds 10 --epochs 200 --ema 0.9999
    python benchmarks/implicit.py modes gan --data grid25 --seeds 10 --epochs 200 --ema 0.9999

    python benchmarks/implicit.py images gan --seeds 3 --epochs 300     # DCGAN-style, on digits
    python benchmarks/implicit.py images cgan --seeds 3 --epochs 200    # class-conditional

Each seed trains the zoo model from scratch, with the model's own adversarial settings (for ``gan``:
PacGAN2 and parameter averaging) and any named here in their place; on the mixtures it draws 2,500 samples
(PacGAN's protocol). The per-seed figures are in the record's settings, so "every seed" claims can be checked.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import torch
from common import pairs, record

import pplgen
from pplgen import data as datasets
from pplgen import models
from pplgen.evaluate.features import image_metrics
from pplgen.infer import ADVERSARIAL_LOSSES, AdversarialSettings

PUBLISHED = {  # Lin, Khetan, Fanti & Oh (2018), "PacGAN", Table 1 (the best of their rows) and goals
    ("ring8", "modes"): (7.9, "PacGAN2 7.9 ± 0.1 modes (PacGAN 2018, Table 1); goal 8.0 every seed"),
    ("ring8", "hq_percent"): (95.6, "PacGAN2 95.6 %, plain GAN 98.2 % (PacGAN 2018, Table 1); goal >= 98 %"),
    ("ring8", "reverse_kl"): (0.07, "PacGAN2 0.07 (PacGAN 2018, Table 1); goal <= 0.02"),
    ("grid25", "modes"): (24.8, "PacGAN4 24.8 ± 0.2 modes (PacGAN 2018, Table 2); goal 25.0 every seed"),
    ("grid25", "hq_percent"): (93.6, "PacGAN4 93.6 %, ALI 95.7 % (PacGAN 2018, Table 2); goal >= 97 %"),
    ("grid25", "reverse_kl"): (0.04, "PacGAN4 0.04 (PacGAN 2018, Table 2); goal <= 0.02"),
}


def _train_seeds(args, train, measure) -> tuple[list[dict], dict, float]:
    """Train the zoo model from scratch once per seed, with its own adversarial settings and any named
    on the command line in their place; ``measure(result)`` gives each seed's figures."""
    named = {"loss": args.loss, "pack": args.pack, "ema": args.ema, "r1": args.r1, "d_steps": args.d_steps}
    per_seed, began = [], time.perf_counter()
    for seed in range(args.seeds):
        model = models.build(args.model, train, **pairs(args.set))
        settings = (getattr(model, "adversarial", None) or AdversarialSettings()).replace(**named)
        result = pplgen.fit(
            model.model,
            train.tensors(getattr(model, "takes_labels", False)),
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            d_lr=args.d_lr,
            seed=seed,
            valid_fraction=0,
            adversarial=settings,
            device=args.device,
        )
        per_seed.append(measure(result))
        print(seed, per_seed[-1], flush=True)
    common = {
        "config": model.config,
        "adversarial": dataclasses.asdict(settings),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "d_lr": args.d_lr,
        "seeds": args.seeds,
        "per_seed": per_seed,
    }
    return per_seed, common, time.perf_counter() - began


def _record_seeds(args, per_seed: list[dict], common: dict, wall: float, references: dict) -> None:
    """One record per metric: the mean over seeds, with its standard error, minimum and maximum."""
    for metric, (value, source) in references.items():
        values = torch.tensor([float(r[metric]) for r in per_seed])
        stderr = float(values.std() / math.sqrt(len(values))) if len(values) > 1 else None
        settings = {**common, "stderr": stderr, "min": float(values.min()), "max": float(values.max())}
        reference = {"value": value, "source": source}
        name = args.name or args.model
        record("implicit", name, args.data, "test", metric, float(values.mean()), reference, wall, settings)


def modes(args) -> None:
    train, test = (datasets.load(args.data, split=s) for s in ("train", "test"))

    def measure(result) -> dict:
        row = pplgen.evaluate.summary(result, test, num_generated=2500)
        return {k: row[k] for k in ("modes", "hq_percent", "reverse_kl")}

    per_seed, common, wall = _train_seeds(args, train, measure)
    references = {m: PUBLISHED[(args.data, m)] for m in ("modes", "hq_percent", "reverse_kl")}
    _record_seeds(args, per_seed, {**common, "samples": 2500}, wall, references)


def images(args) -> None:
    """Image GANs on digits: Fréchet distance, precision and recall in the features of pplgen's own
    classifier (and label accuracy for a conditional model). No published figures exist for these
    8x8 digits, so the peer beside each figure is held-out real digits (the validation split) scored
    against the same test split with the same classifier, measured in the same run, with as many
    samples as there are held-out digits."""
    train, valid, test = (datasets.load(args.data, split=s) for s in ("train", "valid", "test"))
    conditional = getattr(models.ZOO[args.model], "takes_labels", False)
    metrics = ("fd", "precision", "recall", *(("label_accuracy",) if conditional else ()))

    def measure(result) -> dict:
        # as many samples as held-out real digits: FD, precision and recall all depend on the count
        row = pplgen.evaluate.summary(result, test, num_generated=len(valid), labels=conditional)
        return {k: row[k] for k in metrics}

    per_seed, common, wall = _train_seeds(args, train, measure)
    real = image_metrics(valid.x, test, labels=valid.y)
    source = (
        f"held-out real digits ({len(valid)}, valid split) against test, same classifier; no published figure"
    )
    references = {m: (real[m], source) for m in metrics}
    _record_seeds(args, per_seed, common, wall, references)


def _command(sub, name: str, help: str, run, data: dict, seeds: int, epochs: int, lr: float) -> None:
    """A subcommand: the model, its data, the seeds and training, the adversarial settings."""
    p = sub.add_parser(name, help=help)
    p.add_argument("model")
    p.add_argument("--data", **data)
    p.add_argument("--name", help="the record's model name (default: the zoo name)")
    p.add_argument("--seeds", type=int, default=seeds)
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--d-lr", type=float, default=lr)
    p.add_argument("--loss", choices=ADVERSARIAL_LOSSES, help="default: the model's own")
    for option, kind in (("--pack", int), ("--ema", float), ("--r1", float), ("--d-steps", int)):
        p.add_argument(option, type=kind, help="default: the model's own")
    p.add_argument("--device", default="auto")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(run=run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    mixtures = {"required": True, "choices": ("ring8", "grid25")}
    _command(sub, "modes", "mode coverage on ring8 or grid25 over seeds", modes, mixtures, 10, 100, 1e-3)
    digits = {"default": "digits", "choices": ("digits",)}
    _command(sub, "images", "FD, precision, recall of an image GAN on digits", images, digits, 3, 300, 2e-4)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
