"""``pplgen anomaly``: how anomalous each data point looks to a fitted run, written as a CSV."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch

from pplgen.cli_codec import add_points_options, read_points
from pplgen.errors import DataError

__all__ = ["add_parser"]

SHOWN = 5  # the most anomalous points printed


def _anomaly(args) -> int:
    from pplgen.evaluate import anomaly_scores
    from pplgen.runs import load_run

    torch.manual_seed(args.seed)
    result, dataset, program = load_run(Path(args.run_dir), split=args.split, device=args.device)
    if args.input is not None:
        if program.takes_labels:
            raise DataError(
                "this program is conditioned on labels, which a .npy of data points does not hold: score "
                "with pplgen.anomaly_scores(result, (x, y)) in Python"
            )
        batch = (read_points(Path(args.input), dataset),)
    else:
        batch = (dataset.subset(args.limit) if args.limit else dataset).tensors(program.takes_labels)
    found = anomaly_scores(result, batch, num_samples=args.num_samples)
    out = Path(
        args.out or Path(args.run_dir) / f"anomaly-{args.split if args.input is None else 'input'}.csv"
    )
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "score", "bits_per_dim"] if found.density else ["index", "score"])
        per_dim = found.bits_per_dim.tolist() if found.density else None
        for i, score in enumerate(found.scores.tolist()):
            writer.writerow([i, f"{score:.6g}"] + ([f"{per_dim[i]:.6g}"] if per_dim else []))
    scores = found.scores
    unit = " nats (-log p)" if found.density else " (minus the critic's score; no unit)"
    quartiles = torch.quantile(scores.double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    print(f"{len(scores)} points scored by {found.estimator}{unit}")
    print("quartiles: " + ", ".join(f"{q:.4g}" for q in quartiles.tolist()))
    top = scores.argsort(descending=True)[:SHOWN]
    print("most anomalous: " + ", ".join(f"#{i} ({scores[i]:.4g})" for i in top.tolist()))
    print(f"wrote {out}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``anomaly`` to the ``pplgen`` command's subcommands."""
    p = sub.add_parser("anomaly", help="anomaly scores per data point (-log p, or a critic's) as a CSV")
    add_points_options(p, "score")
    p.add_argument(
        "--num-samples", type=int, default=100, help="importance samples (latent), encoder draws (ALI)"
    )
    p.add_argument("--out", help="the CSV (default RUN_DIR/anomaly-SPLIT.csv)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_anomaly)
