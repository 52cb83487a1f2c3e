"""``pplgen demo``: one model of each family fitted on embedded data, with pictures and a table."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from pplgen import data as datasets
from pplgen.evaluate import sample, summary
from pplgen.infer import AdversarialSettings, fit
from pplgen.runs import resolve_program, save_run, write_samples

__all__ = ["DEMO", "run_demo"]


@dataclass(frozen=True)
class DemoFit:
    """One fit of the demo: a zoo model on a data set with its settings."""

    model: str
    data: str
    epochs: int
    batch_size: int
    lr: float
    mean_samples: bool  # show the observation's mean given the latents (VAE) rather than a draw
    patience: int | None = None  # early stopping on the validation metric, best epoch restored
    adversarial: AdversarialSettings | None = None  # the implicit family's game and regularisers


DEMO = (
    DemoFit("fvsbn", "digits", epochs=60, batch_size=64, lr=1e-2, mean_samples=False),  # exact
    DemoFit("vae", "digits", epochs=200, batch_size=64, lr=1e-3, mean_samples=True, patience=20),  # latent
    # implicit: PacGAN2 with parameter averaging, the setting benchmarks/implicit.py measured on ring8
    DemoFit("gan", "ring8", 100, 128, 1e-3, False, adversarial=AdversarialSettings(pack=2, ema=0.999)),
)


def _table(rows: list[dict]) -> str:
    head = "| model | data | family | test nats | bits/dim | estimator | modes | HQ % | reverse KL | fit s |"
    lines = [head, "|---" * (head.count("|") - 1) + "|"]

    def num(row, key, fmt):
        return format(row[key], fmt) if key in row else "–"

    for r in rows:
        modes = f"{r['modes']}/{r['of_modes']}" if "modes" in r else "–"
        lines.append(
            f"| {r['model']} | {r['data']} | {r['family']} | {num(r, 'nats', '.2f')} | "
            f"{num(r, 'bits_per_dim', '.4f')} | {r.get('estimator', '–')} | {modes} | "
            f"{num(r, 'hq_percent', '.1f')} | {num(r, 'reverse_kl', '.3f')} | {r['fit_s']:.0f} |"
        )
    return "\n".join(lines)


def run_demo(out: Path, *, epochs_scale: float = 1.0, device: str = "auto", seed: int = 0) -> list[dict]:
    """Fit the :data:`DEMO` models, write a run directory and samples for each, print and save a table."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for job in DEMO:
        train = datasets.load(job.data, split="train")
        valid = datasets.load(job.data, split="valid")
        test = datasets.load(job.data, split="test")
        torch.manual_seed(seed)  # the networks' initial weights
        program = resolve_program(job.model, train)
        epochs = max(1, math.ceil(job.epochs * epochs_scale))
        print(f"fitting {job.model} on {job.data} ({epochs} epochs) ...", flush=True)
        began = time.perf_counter()
        result = fit(
            program.model,
            train.tensors(),
            program.guide,
            epochs=epochs,
            batch_size=job.batch_size,
            lr=job.lr,
            valid=valid.tensors(),
            device=device,
            seed=seed,
            patience=job.patience,
            adversarial=job.adversarial,
            out=out / job.model,
        )
        seconds = time.perf_counter() - began
        run_dir = out / job.model
        save_run(run_dir, result, program, {"name": job.data})
        torch.manual_seed(seed)
        count = 2500 if train.image_shape is None else 64
        write_samples(sample(result, count, mean=job.mean_samples), train, run_dir / "samples")
        row = {"model": job.model, **summary(result, test), "fit_s": seconds}
        rows.append(row)
    table = _table(rows)
    (out / "summary.md").write_text(table + "\n")
    (out / "summary.json").write_text(json.dumps(rows, indent=2))
    print(table)
    print(
        f"\npictures in {out}/<model>/: graph.png, curves.png, samples.png; for the VAE also "
        "reconstructions.png, latents.png and traversal.png"
    )
    return rows
