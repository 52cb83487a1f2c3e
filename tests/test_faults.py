"""Faults during training: a run killed with SIGKILL at a random moment and resumed ends exactly where an
uninterrupted run ends, and so does one stopped with Ctrl-C; a kill during a checkpoint write leaves the
previous one readable; a non-finite step is skipped and counted, and persistent ones stop the run naming
the site."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import pytest
import torch

import pplgen
from pplgen.errors import CheckpointError, ModelError
from pplgen.infer.checkpoint import load_checkpoint, save_checkpoint

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


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, torch.Tensor]:
    """The final parameters of the run that :data:`FIT` makes without interruption."""
    whole = tmp_path_factory.mktemp("whole")
    assert _pplgen(*FIT, "--out", str(whole), stdout=subprocess.DEVNULL).wait(timeout=300) == 0
    return _params(whole)


def _assert_same(resumed: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert resumed.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=0, msg=name)


def test_sigkill_at_a_random_moment_then_resume_gives_the_uninterrupted_parameters(tmp_path, uninterrupted):
    killed = tmp_path / "killed"
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
    _assert_same(_params(killed), uninterrupted)


def test_ctrl_c_says_how_to_resume_and_resuming_gives_the_uninterrupted_parameters(tmp_path, uninterrupted):
    run = tmp_path / "run"
    proc = _pplgen(*FIT, "--out", str(run), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _epochs_done(run) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"pplgen fit: interrupted; the last checkpoint is in {run}: run the same command with" in err
    assert _pplgen(*FIT, "--out", str(run), "--resume", stdout=subprocess.DEVNULL).wait(timeout=300) == 0
    _assert_same(_params(run), uninterrupted)


#: A writer that saves a small checkpoint, says so, then rewrites the same path with 32 MB ones forever,
#: each holding its own step number throughout.
_WRITER = """
import sys, torch
from pplgen.infer.checkpoint import save_checkpoint
save_checkpoint(sys.argv[1], {"step": 0, "w": torch.zeros(1)})
print("ready", flush=True)
step = 0
while True:
    step += 1
    save_checkpoint(sys.argv[1], {"step": step, "w": torch.full((2**23,), float(step))})
"""


def _kill_while_writing(path: Path, delay: float) -> bool:
    """Start the writer and SIGKILL it ``delay`` seconds after its first checkpoint, as soon as a write is
    under way (its temporary file is there; after 2 s regardless); whether the kill fell inside a write
    (before its rename: the temporary file is left)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], env=env, stdout=subprocess.PIPE)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        deadline = time.monotonic() + 2.0
        while not tmp.exists() and time.monotonic() < deadline:
            time.sleep(0.001)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    return tmp.exists()


def test_a_kill_during_a_checkpoint_write_leaves_the_previous_checkpoint_readable(tmp_path):
    path, delays = tmp_path / "checkpoint.pt", random.Random(1)
    inside = 0
    for _ in range(5):
        inside += _kill_while_writing(path, delays.uniform(0.05, 0.4))
        state = load_checkpoint(path)
        # a whole checkpoint, not a mix of two: every value holds the step it was written at
        assert (state["w"] == float(state["step"])).all()
    assert inside >= 3, f"only {inside} of 5 kills fell inside a write"
    save_checkpoint(path, {"step": -1})  # the next write reuses the partial file's name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert load_checkpoint(path)["step"] == -1


def _program(nan_when):
    """An exact model, x ~ N(loc, 1), with a factor whose log-density is NaN when ``nan_when(loc, flag)``."""
    loc = torch.nn.Parameter(torch.zeros(()))

    def model(x, flag):
        pyro.param("loc", loc)
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(loc, 1.0), obs=x)
        pyro.factor("penalty", torch.where(nan_when(loc, flag), torch.nan, 0.0))

    return model


def test_a_non_finite_step_is_skipped_and_counted_in_the_history():
    pyro.clear_param_store()
    x, flag = torch.randn(64) + 3.0, torch.zeros(64)
    flag[60] = 1.0  # one batch in eight holds it (not the first, which pplgen inspects the program on)
    model = _program(lambda loc, flag: flag.any())
    result = pplgen.fit(
        model, (x, flag), epochs=4, batch_size=8, lr=0.1, seed=0, valid_fraction=0, progress=False
    )  # fmt: skip
    skipped = [row["skipped"] for row in result.history]
    assert all(0 < s < 1 for s in skipped), skipped
    assert all(math.isfinite(row["nll"]) for row in result.history)  # the mean over the steps taken
    assert torch.isfinite(pyro.param("loc")).all() and pyro.param("loc").item() > 1.0  # it still trained


def test_persistent_non_finite_steps_stop_training_naming_the_site():
    pyro.clear_param_store()
    x, flag = torch.randn(64) + 3.0, torch.zeros(64)
    model = _program(lambda loc, flag: loc > 1.0)  # once loc passes 1, every step is NaN
    with pytest.raises(ModelError, match=r"20 steps in a row.*likelihood at site 'penalty' is not finite"):
        pplgen.fit(model, (x, flag), epochs=10, batch_size=8, lr=0.1, seed=0, progress=False)


def _resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads the resident set from /proc")
def test_a_thousand_steps_keep_memory_flat():
    pyro.clear_param_store()
    torch.manual_seed(0)
    vae = pplgen.models.VAE(64, z_dim=4, hidden=32)
    x = pplgen.data.load("digits").x[:1000]
    resident, stores = [], []

    def watch(row):
        resident.append(_resident_mb())
        stores.append(len(pyro.get_param_store()))

    result = pplgen.fit(
        vae.model, x, vae.guide, epochs=20, batch_size=16, seed=0, valid_fraction=0.2, progress=False,
        callbacks=[watch],
    )  # fmt: skip
    assert len(result.history) * result.settings["num_train"] // 16 == 1000  # 50 steps an epoch
    assert len(set(stores)) == 1  # the parameter store does not grow
    growth = max(resident[5:]) - resident[4]
    assert growth < 16, f"resident memory grew {growth:.1f} MB over 15 epochs: {resident}"
