"""Faults during training: a run killed with SIGKILL at a random moment and resumed ends exactly where an
uninterrupted run ends."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pplgen.errors import CheckpointError
from pplgen.infer.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
FIT = ["fit", "fvsbn", "--data", "digits", "--epochs", "30", "--batch-size", "8", "--seed", "3"]


def _pplgen(*argv: str, **options) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "pplgen.cli", *argv], cwd=ROOT, env=env, **options)


def _params(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoint.pt")["trainer"]["params"]


def _epochs_done(run: Path) -> int:
    try:
        return len(load_checkpoint(run / "checkpoint.pt")["history"])
    except CheckpointError:  # not written yet
        return 0


def test_sigkill_at_a_random_moment_then_resume_gives_the_uninterrupted_parameters(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert _pplgen(*FIT, "--out", str(whole), stdout=subprocess.DEVNULL).wait(timeout=300) == 0

    proc = _pplgen(*FIT, "--out", str(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _epochs_done(killed) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(random.Random(0).uniform(0.0, 0.5))  # some moment after the second checkpoint
    if proc.poll() is not None:
        pytest.fail("the run ended before it could be killed: give it more epochs")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done = _epochs_done(killed)
    assert 2 <= done < 30, done  # the last checkpoint survived the kill, and the run was cut short

    assert _pplgen(*FIT, "--out", str(killed), "--resume", stdout=subprocess.DEVNULL).wait(timeout=300) == 0
    resumed, expected = _params(killed), _params(whole)
    assert resumed.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=0, msg=name)
