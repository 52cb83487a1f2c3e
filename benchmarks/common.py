"""What every benchmark script shares: the device's name, the commit, and appending one record per figure."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from pathlib import Path

import torch

RESULTS = Path(__file__).with_name("results.jsonl")


def device_name() -> str:
    """``torch.cuda.get_device_name()`` on a GPU, else ``cpu (N cores)``."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"cpu ({os.cpu_count()} cores)"


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def record(
    benchmark: str,
    model: str,
    dataset: str,
    split: str,
    metric: str,
    value,
    reference: dict,
    wall_s: float,
    settings: dict,
) -> dict:
    """Append one figure to ``results.jsonl`` in DESIGN.md's format and return it."""
    row = {
        "benchmark": benchmark,
        "model": model,
        "dataset": dataset,
        "split": split,
        "metric": metric,
        "value": value,
        "reference": reference,
        "device": device_name(),
        "date": datetime.date.today().isoformat(),
        "commit": commit(),
        "wall_s": round(wall_s, 1),
        "settings": settings,
    }
    with RESULTS.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))
    return row


def pairs(items: list[str]) -> dict:
    """``KEY=VALUE`` strings as a dict, each value read as JSON where it parses (``hidden=500`` is 500)."""
    found = {}
    for item in items:
        key, _, text = item.partition("=")
        try:
            found[key] = json.loads(text)
        except json.JSONDecodeError:
            found[key] = text
    return found


def add_fit_options(p) -> None:
    """The options of a budgeted fit (``fit_within``) on an argparse parser."""
    p.add_argument("--minutes", type=float, required=True, help="wall-clock budget for training")
    p.add_argument("--max-epochs", type=int, default=10_000)
    p.add_argument("--train-rows", type=int, default=None, help="train on a seeded random subset of rows")
    p.add_argument("--valid-rows", type=int, default=None, help="validate on the first rows only")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE")


def fit_within(args, model, train, valid, **fit_options):
    """Train ``model`` (a zoo module) for whole epochs until ``args.minutes`` have passed, keeping the best
    validation epoch. Returns the result, the training rows, the validation rows and the seconds taken."""
    import time

    import pplgen

    takes_labels = bool(getattr(model, "takes_labels", False))
    data = train.tensors(takes_labels)
    if args.train_rows:  # a seeded random subset, so that a short budget still sees whole epochs
        keep = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))[
            : args.train_rows
        ]
        data = tuple(t[keep] for t in data)
    held_out = valid.tensors(takes_labels)
    if args.valid_rows:
        held_out = tuple(t[: args.valid_rows] for t in held_out)
    began = time.perf_counter()

    def out_of_time(row: dict) -> bool:
        shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items() if k != "kl_per_dim"}
        print(json.dumps(shown), flush=True)
        return time.perf_counter() - began > args.minutes * 60

    result = pplgen.fit(
        model.model,
        data,
        fit_options.pop("guide", getattr(model, "guide", None)),
        epochs=args.max_epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        valid=held_out,
        patience=args.max_epochs,  # never stops early, but restores the best validation epoch
        seed=args.seed,
        device=args.device,
        callbacks=[out_of_time],
        **fit_options,
    )
    return result, data, held_out, time.perf_counter() - began


def fit_settings(args, model, result, data, held_out) -> dict:
    """The settings every budgeted-fit record carries."""
    return {
        "config": model.config,
        "data_options": pairs(args.data_option),
        "budget_minutes": args.minutes,
        "train_rows": len(data[0]),
        "valid_rows": len(held_out[0]),
        "epochs_run": len(result.history),
        "best_epoch": result.history[-1].get("restored_epoch"),
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
    }


def parse_model_runs(parser, models: dict[str, dict], extra=None):
    """Parse the options of a script that trains several zoo models on several data sets (``models``:
    data set -> zoo name -> settings): ``--data``, ``--models`` (checked against each data set's),
    ``--epochs-factor``, ``--batch-size``, ``--lr``, ``--seed``, and whatever ``extra(parser)`` adds."""
    parser.add_argument("--data", nargs="+", default=list(models), choices=list(models))
    parser.add_argument("--models", nargs="+", help="zoo models to run (default: every one of a data set)")
    if extra is not None:
        extra(parser)
    parser.add_argument("--epochs-factor", type=float, default=1.0, help="scale every model's epochs")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for data in args.data:
        unknown = sorted(set(args.models or ()) - set(models[data]))
        if unknown:
            parser.error(f"no model {', '.join(unknown)} for {data}: choose from {', '.join(models[data])}")
    return args
