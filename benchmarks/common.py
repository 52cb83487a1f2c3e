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
