"""Faults injected into training and its checkpoints, and hostile input fuzzed: how many were tried, and
how many were survived with nothing lost.

    python benchmarks/faults.py                                  # every campaign, ~8 minutes on 2 cores
    python benchmarks/faults.py --campaigns kill nan --runs 1 --no-record

Campaigns (``--campaigns``), each recording what it injected and what it survived, as the metrics
``FAULT_injected`` and ``FAULT_survived`` (``sigkill``, ``sigkill_mid_write``, ``full_disk``,
``nan_gradient``, ``bit_flip``, ``truncation``, ``code_pickle``, ``bad_input``):

- ``kill``: ``pplgen fit MODEL --data digits --out RUN`` is killed with SIGKILL ``--kills-per-run`` times,
  each at a random moment (uniform over ``--kill-window`` seconds once a checkpoint newer than the last
  restart is on disk), and restarted with ``--resume`` each time, for an FVSBN (exact likelihood), a VAE
  (SVI) and a GAN (adversarial). A kill is survived when its run ends with exactly the parameters of an
  uninterrupted run with the same seed.
- ``write``: a process rewriting a 32 MB checkpoint in a loop is killed during its writes (the writer of
  ``tests/test_faults.py``). Survived: the previous checkpoint loads whole.
- ``disk``: a full disk (``ENOSPC`` from ``fsync``) is injected into a random checkpoint write of an
  in-process ``pplgen.fit``. Survived: ``CheckpointError`` names the full disk, the previous checkpoint
  loads, and resuming from it ends with exactly the uninterrupted run's parameters.
- ``nan``: NaN is injected into the gradient of a VAE's decoder weights on a random share (``--nan-rate``)
  of training steps (a tensor hook, so it fires on backward passes only). Survived: every poisoned step
  was skipped and counted in the history's ``skipped``, and the parameters end finite. The peer figure is
  Pyro's own loop, ``pyro.infer.SVI`` with ``pyro.optim.Adam``, run on the same program with the same
  injections in the same process: a run survives if its parameters end finite.
- ``tamper``: a fitted VAE's checkpoint with a random bit flipped, truncated at a random length, or
  replaced by a pickle crafted to run code. Survived: refused with ``CheckpointError``, or loaded with
  every value as written (the flip fell in bytes ``torch.load`` never reads), and no code ran. The peer
  figure is ``torch.load(weights_only=True)`` alone on the same files, in the same process.
- ``fuzz``: ``tests/test_fuzz.py`` run whole under pytest, its slow cases too: random Pyro programs
  inspected and fitted, bad arguments to them, and bad data for every zoo model. Recorded: the examples
  tried of each kind (``tests.test_fuzz.fuzz_counts``) and the fuzz tests that failed.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyro
import torch
from common import record

import pplgen
from pplgen.errors import CheckpointError
from pplgen.infer import checkpoint
from pplgen.infer.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fuzz tests and the checkpoint writer live in tests/

CAMPAIGNS = ("kill", "write", "disk", "nan", "tamper", "fuzz")
#: The zoo models the kill campaign trains, with epochs enough for two kills between checkpoints.
KILL_EPOCHS = {"fvsbn": 30, "vae": 12, "gan": 8}
NO_PEER = {"value": None, "source": "no peer figure measured for this fault"}


def _record(args, model: str, metric: str, value, settings: dict, wall_s: float, **options) -> None:
    """One figure: ``reference`` (NO_PEER by default) and ``dataset`` ("digits") may be given."""
    reference, dataset = options.get("reference", NO_PEER), options.get("dataset", "digits")
    if args.record:
        record("faults", model, dataset, "train", metric, value, reference, wall_s, settings)
    else:
        print(model, metric, value, "peer:", reference["value"], settings)


def _record_pair(args, model: str, fault: str, injected: int, survived: int, settings, wall_s, **options):
    """``FAULT_injected`` and ``FAULT_survived``; a peer figure goes beside the survivors only."""
    reference = options.pop("reference", NO_PEER)
    _record(args, model, f"{fault}_injected", injected, settings, wall_s, **options)
    _record(args, model, f"{fault}_survived", survived, settings, wall_s, reference=reference, **options)


def _final_params(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoint.pt")["trainer"]["params"]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- kill: SIGKILL at random moments, then --resume --------------------------------------------------


def _cli(*argv: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "pplgen.cli", *argv], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _epochs_done(run: Path) -> int:
    try:
        return len(load_checkpoint(run / "checkpoint.pt")["history"])
    except CheckpointError:  # not written yet
        return 0


def _killed_run(argv: list[str], out: Path, kills: int, window: float, rng: random.Random) -> int:
    """Run ``pplgen fit``, SIGKILL it ``kills`` times (resuming after each) and let the last one finish.
    Returns the kills that landed (a run that ended before its kill is not killed again)."""
    proc, landed = _cli(*argv, "--out", str(out)), 0
    for _ in range(kills):
        before = _epochs_done(out)
        while _epochs_done(out) <= before and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, window))
        if proc.poll() is not None:
            break
        proc.kill()
        proc.wait(timeout=60)
        landed += 1
        proc = _cli(*argv, "--out", str(out), "--resume")
    if proc.wait(timeout=1800) != 0:
        raise RuntimeError(f"pplgen {' '.join(argv)} failed after {landed} kills")
    return landed


def kill_campaign(args, rng: random.Random, scratch: Path) -> None:
    for name in args.kill_models:
        began = time.perf_counter()
        argv = ["fit", name, "--data", "digits", "--epochs", str(KILL_EPOCHS[name]), "--batch-size", "32"]
        argv += ["--seed", "0"]
        whole = scratch / f"{name}-whole"
        if _cli(*argv, "--out", str(whole)).wait(timeout=1800) != 0:
            raise RuntimeError(f"pplgen {' '.join(argv)} failed")
        expected = _final_params(whole)
        injected = survived = 0
        for run in range(args.runs):
            out = scratch / f"{name}-killed-{run}"
            landed = _killed_run(argv, out, args.kills_per_run, args.kill_window, rng)
            injected += landed
            survived += landed if _same(_final_params(out), expected) else 0
        settings = {
            "fault": "SIGKILL at a random moment, then pplgen fit --resume",
            "command": f"pplgen {' '.join(argv)} --out RUN",
            "runs": args.runs, "kills_per_run": args.kills_per_run, "kill_window_s": args.kill_window,
            "survived_means": "the run ended with exactly the parameters of an uninterrupted run",
        }  # fmt: skip
        wall = time.perf_counter() - began
        _record_pair(args, name, "sigkill", injected, survived, settings, wall)


# --- write: kills during checkpoint writes -----------------------------------------------------------


def write_campaign(args, rng: random.Random, scratch: Path) -> None:
    from tests.test_faults import _kill_while_writing

    began, path = time.perf_counter(), scratch / "writer" / "checkpoint.pt"
    path.parent.mkdir()
    injected = survived = 0
    for _ in range(args.write_kills):
        injected += _kill_while_writing(path, rng.uniform(0.05, 0.4))
        try:
            state = load_checkpoint(path)
        except CheckpointError:
            continue
        survived += bool((state["w"] == float(state["step"])).all())
    settings = {
        "fault": "SIGKILL during a checkpoint write (before its rename)",
        "kills": args.write_kills, "checkpoint_mb": 32,
        "survived_means": "the previous checkpoint loaded whole",
    }  # fmt: skip
    wall = time.perf_counter() - began
    _record_pair(args, "checkpoint", "sigkill_mid_write", injected, survived, settings, wall)


# --- disk: ENOSPC in a checkpoint write, then resume -------------------------------------------------


def _fit(name: str, out: Path, epochs: int, resume: bool = False):
    pyro.clear_param_store()
    torch.manual_seed(0)  # the same initial parameters every time
    dataset = pplgen.data.load("digits")
    model = pplgen.models.build(name, dataset)
    return pplgen.fit(
        model.model, dataset.x, getattr(model, "guide", None), epochs=epochs, batch_size=32, seed=0,
        out=out, resume=resume, progress=False, device="cpu",
    )  # fmt: skip


class _FullDisk:
    """``os.fsync`` that fails with ENOSPC on its ``at``-th call (1-based)."""

    def __init__(self, at: int):
        self.at, self.calls, self.fsync = at, 0, os.fsync

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if self.calls == self.at:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.fsync(fd)


def disk_campaign(args, rng: random.Random, scratch: Path) -> None:
    for name in args.disk_models:
        began = time.perf_counter()
        _fit(name, scratch / f"{name}-disk-whole", args.disk_epochs)
        expected = _final_params(scratch / f"{name}-disk-whole")
        injected = survived = 0
        for run in range(args.runs):
            out, full = scratch / f"{name}-disk-{run}", _FullDisk(rng.randint(2, args.disk_epochs))
            os.fsync = full
            try:
                _fit(name, out, args.disk_epochs)
            except CheckpointError as err:
                injected += 1
                kept = "the disk is full" in str(err) and _epochs_done(out) == full.at - 1
            else:
                raise RuntimeError("the full disk was never reached: the fit wrote too few checkpoints")
            finally:
                os.fsync = full.fsync
            _fit(name, out, args.disk_epochs, resume=True)
            survived += kept and _same(_final_params(out), expected)
        settings = {
            "fault": "ENOSPC from fsync in a random checkpoint write of pplgen.fit, then resume=True",
            "runs": args.runs, "epochs": args.disk_epochs, "batch_size": 32, "checkpoint_every": 1,
            "survived_means": "CheckpointError named the full disk, the previous checkpoint loaded, and the "
            "resumed run ended with exactly the uninterrupted run's parameters",
        }  # fmt: skip
        wall = time.perf_counter() - began
        _record_pair(args, name, "full_disk", injected, survived, settings, wall)


# --- nan: NaN gradients on random steps, pplgen beside Pyro's SVI ------------------------------------


class _PoisonGradient:
    """A tensor hook that turns the gradient into NaN on a random share of backward passes."""

    def __init__(self, rate: float, seed: int):
        self.rate, self.random, self.poisoned = rate, random.Random(seed), 0

    def __call__(self, grad: torch.Tensor) -> torch.Tensor:
        if self.random.random() < self.rate:
            self.poisoned += 1
            return torch.full_like(grad, math.nan)
        return grad


def _poisoned_vae(rate: float, seed: int):
    pyro.clear_param_store()
    torch.manual_seed(seed)
    vae = pplgen.models.build("vae", pplgen.data.load("digits"))
    poison = _PoisonGradient(rate, seed)
    decoder_weights = [p for name, p in vae.named_parameters() if name.startswith("decoder")]
    decoder_weights[0].register_hook(poison)
    return vae, poison


def _finite(module: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())


def _pyro_svi(vae, x: torch.Tensor, steps: int, batch_size: int, seed: int) -> None:
    """Pyro's own loop, as a Pyro user writes it: the global parameter store and ``pyro.optim.Adam``."""
    local = pyro.settings.get("module_local_params")
    pyro.settings.set(module_local_params=False)  # pplgen's setting; a plain Pyro user has Pyro's default
    try:
        svi = pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), pyro.infer.Trace_ELBO())
        generator = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            svi.step(x[torch.randint(len(x), (batch_size,), generator=generator)])
    finally:
        pyro.settings.set(module_local_params=local)


def nan_campaign(args, rng: random.Random, scratch: Path) -> None:
    began = time.perf_counter()
    x = pplgen.data.load("digits").x
    poisoned = survived = peer_survived = steps = 0
    peer_ends: Counter = Counter()  # how Pyro's runs ended
    for _ in range(args.runs):
        seed = rng.randrange(2**31)
        vae, poison = _poisoned_vae(args.nan_rate, seed)
        result = pplgen.fit(
            vae.model, x, vae.guide, epochs=args.nan_epochs, batch_size=32, seed=seed, progress=False,
            device="cpu",
        )  # fmt: skip
        per_epoch = math.ceil(result.settings["num_train"] / 32)
        skipped = round(sum(row["skipped"] * per_epoch for row in result.history))
        poisoned += poison.poisoned
        steps += per_epoch * len(result.history)
        survived += poison.poisoned if skipped == poison.poisoned and _finite(vae) else 0

        vae, poison = _poisoned_vae(args.nan_rate, seed)  # the same injections into Pyro's loop
        try:
            _pyro_svi(vae, x, per_epoch * args.nan_epochs, 32, seed)
        except ValueError as err:  # Pyro's argument validation, on the NaN parameters
            peer_ends[f"raised {type(err).__name__}"] += 1
        else:
            ended = "finite" if _finite(vae) else "non-finite parameters"
            peer_ends[ended] += 1
            peer_survived += poison.poisoned if ended == "finite" else 0
    settings = {
        "fault": "NaN gradient of the VAE decoder's first weights on a random share of steps",
        "runs": args.runs, "nan_rate": args.nan_rate, "epochs": args.nan_epochs, "batch_size": 32,
        "steps": steps, "poisoned_steps": poisoned, "pyro_svi_runs_ended": dict(peer_ends),
        "survived_means": "poisoned steps of runs in which every one was skipped and counted in the history "
        "and the parameters ended finite",
    }  # fmt: skip
    peer = {
        "value": peer_survived,
        "source": "pyro.infer.SVI with pyro.optim.Adam (Pyro 1.9): the poisoned steps of its runs that ended "
        "with finite parameters, same program and injections, measured in this run",
    }
    wall = time.perf_counter() - began
    _record_pair(args, "vae", "nan_gradient", poisoned, survived, settings, wall, reference=peer)


# --- tamper: flipped bits, truncations, pickles that run code ----------------------------------------


#: The tamper campaign's faults.
FAULTS = {
    "bit_flip": "one random bit of the checkpoint flipped",
    "truncation": "the checkpoint cut at a random length",
    "code_pickle": "a checkpoint whose unpickling would run code (os.system, subprocess, eval, exec, "
    "Path.touch)",
}


class _RunsCode:
    """Unpickled, it would call ``call(*arguments)``."""

    def __init__(self, call, *arguments):
        self.call, self.arguments = call, arguments

    def __reduce__(self):
        return self.call, self.arguments


def _crafted(marker: Path) -> list:
    """Objects whose unpickling would create ``marker``, each by another route."""
    command = f"touch {marker}"
    return [
        _RunsCode(os.system, command),
        _RunsCode(subprocess.call, ["touch", str(marker)]),
        _RunsCode(eval, f"open({str(marker)!r}, 'w').close()"),
        _RunsCode(exec, f"import os; os.system({command!r})"),
        _RunsCode(Path.touch, marker),
    ]


def tamper_campaign(args, rng: random.Random, scratch: Path) -> None:
    began = time.perf_counter()
    pyro.clear_param_store()
    dataset = pplgen.data.load("digits")
    vae = pplgen.models.build("vae", dataset)
    result = pplgen.fit(vae.model, dataset.x, vae.guide, epochs=1, seed=0, progress=False)
    path = result.save(scratch / "vae.pt")
    blob, original = path.read_bytes(), checkpoint.digest(load_checkpoint(path))
    original_raw = checkpoint.digest(torch.load(path, weights_only=True))  # the peer reads the digest too
    spoiled_path, marker = scratch / "spoiled.pt", scratch / "code-ran"
    # [injected, survived by pplgen, survived by torch.load(weights_only=True) alone]
    outcomes = {"bit_flip": [0, 0, 0], "truncation": [0, 0, 0], "code_pickle": [0, 0, 0]}
    endings: dict[str, Counter] = {kind: Counter() for kind in outcomes}

    def attempt(kind: str, content: bytes) -> None:
        spoiled_path.write_bytes(content)
        outcomes[kind][0] += 1
        try:
            raw = torch.load(spoiled_path, weights_only=True)
        except Exception:  # refused, in one of the many ways torch.load refuses
            outcomes[kind][2] += not marker.exists()
        else:
            outcomes[kind][2] += checkpoint.digest(raw) == original_raw
        marker.unlink(missing_ok=True)
        try:
            state = load_checkpoint(spoiled_path)
        except CheckpointError:
            ending = "refused" if not marker.exists() else "refused after running code"
        else:
            unchanged = checkpoint.digest(state) == original
            ending = "loaded unchanged" if unchanged else "loaded with other values"
        endings[kind][ending] += 1
        outcomes[kind][1] += ending == "refused" or (kind == "bit_flip" and ending == "loaded unchanged")
        marker.unlink(missing_ok=True)

    for _ in range(args.flips):
        spoiled = bytearray(blob)
        spoiled[rng.randrange(len(blob))] ^= 1 << rng.randrange(8)
        attempt("bit_flip", bytes(spoiled))
    for _ in range(args.truncations):
        attempt("truncation", blob[: rng.randrange(len(blob))])
    for payload in _crafted(marker):
        crafted = scratch / "crafted.pt"
        torch.save({"format": "pplgen-checkpoint", "version": 2, "trainer": payload}, crafted)
        attempt("code_pickle", crafted.read_bytes())
    wall = time.perf_counter() - began
    for kind, (injected, survived, peer_survived) in outcomes.items():
        settings = {
            "fault": FAULTS[kind], "checkpoint_bytes": len(blob),
            "endings": dict(endings[kind]),
            "survived_means": "refused with CheckpointError and no code ran, or (a flipped bit) loaded with "
            "every value as written",
        }  # fmt: skip
        peer = {
            "value": peer_survived,
            "source": f"torch.load(weights_only=True) alone (torch {torch.__version__}), the same files, "
            "measured in this run",
        }
        _record_pair(args, "checkpoint", kind, injected, survived, settings, wall, reference=peer)


# --- fuzz: the fuzz tests, counted -------------------------------------------------------------------


class _Outcomes:
    """A pytest plugin counting the tests that passed and failed."""

    def __init__(self):
        self.passed = self.failed = 0

    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.failed += 1
        elif report.when == "call" and report.passed:
            self.passed += 1


def fuzz_campaign(args, rng: random.Random, scratch: Path) -> None:
    import pytest

    began, outcomes = time.perf_counter(), _Outcomes()
    argv = [str(ROOT / "tests" / "test_fuzz.py"), "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT)]
    pytest.main(argv, plugins=[outcomes])
    counts = sys.modules["tests.test_fuzz"].fuzz_counts()
    wall = time.perf_counter() - began
    # an outcome is counted only after its example passed its checks (a clear error, or a sound fit)
    outcomes_of = {
        kind: {key.split(":", 1)[1]: n for key, n in counts.items() if key.startswith(f"{kind}:")}
        for kind in ("bad_data_outcome", "inspect_bad_args", "fit_outcome")
    }
    settings = {
        "command": "pytest tests/test_fuzz.py (slow cases included)",
        "tests_passed": outcomes.passed, "tests_failed": outcomes.failed,
        "random_programs": {"inspected": counts["inspect"], "fitted": counts["fit"]},
        "outcomes": outcomes_of,
        "bad_inputs": {"zoo_data": counts["bad_data"], "program_arguments": counts["inspect_bad_args"]},
        "survived_means": "refused with a pplgen error naming what came, or handled soundly: valid values "
        "of another dtype trained with finite losses, a random program's odd arguments inspected into a "
        "graph of a known family",
    }  # fmt: skip
    tried = counts["bad_data"] + counts["inspect_bad_args"]
    survived = sum(outcomes_of["bad_data_outcome"].values()) + sum(outcomes_of["inspect_bad_args"].values())
    fuzzed = "fuzzed (the zoo's tiny data sets, random programs' own)"
    programs = counts["inspect"] + counts["fit"]
    _record(args, "random_programs", "programs_fuzzed", programs, settings, wall, dataset=fuzzed)
    _record_pair(args, "zoo_and_programs", "bad_input", tried, survived, settings, wall, dataset=fuzzed)
    _record(args, "fuzz_tests", "tests_failed", outcomes.failed, settings, wall, dataset=fuzzed)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--campaigns", nargs="+", choices=CAMPAIGNS, default=list(CAMPAIGNS))
    p.add_argument("--runs", type=int, default=3, help="runs per model of the kill, disk and nan campaigns")
    p.add_argument("--kill-models", nargs="+", choices=list(KILL_EPOCHS), default=list(KILL_EPOCHS))
    p.add_argument("--kills-per-run", type=int, default=2)
    p.add_argument("--kill-window", type=float, default=0.5, help="seconds over which a kill is drawn")
    p.add_argument("--write-kills", type=int, default=10)
    p.add_argument("--disk-models", nargs="+", choices=("fvsbn", "vae"), default=["fvsbn", "vae"])
    p.add_argument("--disk-epochs", type=int, default=5)
    p.add_argument("--nan-rate", type=float, default=0.05)
    p.add_argument("--nan-epochs", type=int, default=3)
    p.add_argument("--flips", type=int, default=300)
    p.add_argument("--truncations", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-record", dest="record", action="store_false")
    args = p.parse_args()
    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.campaigns:
            globals()[f"{name}_campaign"](args, rng, Path(scratch))


if __name__ == "__main__":
    main()
