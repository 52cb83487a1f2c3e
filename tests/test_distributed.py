"""Data-parallel training: two Gloo processes started by torchrun reach the parameters of one process with
the same global batch, for every trainer; ``pplgen fit --nproc 2`` writes one run from rank 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pplgen.cli import main
from pplgen.infer.distributed import Replicas
from tests import distributed_cases

ROOT = Path(__file__).resolve().parents[1]


def _environment() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    proc = subprocess.run(
        [*launcher, *args], cwd=ROOT, env=_environment(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """What each of two torchrun ranks held after training every case."""
    out = tmp_path_factory.mktemp("ranks")
    _torchrun(str(ROOT / "tests" / "distributed_cases.py"), str(out))
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


@pytest.mark.parametrize("case", sorted(distributed_cases.CASES))
def test_two_ranks_match_one_process_with_the_same_global_batch(case, ranks):
    alone, history = distributed_cases.train(case)
    for rank in ranks:
        params, rank_history = rank[case]
        assert params.keys() == alone.keys()
        for name, value in alone.items():
            torch.testing.assert_close(params[name], value, rtol=1e-5, atol=1e-6, msg=f"{case}: {name}")
        for row, alone_row in zip(rank_history, history, strict=True):  # training means and validation
            for key, value in alone_row.items():
                if key != "time_s" and isinstance(value, float):
                    assert row[key] == pytest.approx(value, rel=1e-5, abs=1e-6), (case, key)
    if case == "skipped":  # the case did skip steps, yet trained on the others
        assert all(0 < row["skipped"] < 1 for row in history), history
    moved = distributed_cases.CASES[case]()[-1]  # the parameters did train: they left their start
    start = {f"{i}.{k}": v for i, net in enumerate(moved) for k, v in net.state_dict().items()}
    assert any(not torch.allclose(alone[k], v) for k, v in start.items())


def test_an_empty_share_adds_nothing():
    last = torch.arange(3)  # a last global batch of 3 points on 4 ranks
    shares = [Replicas(r, 4, r) for r in range(4)]
    taken = [replica.shard(last) for replica in shares]
    assert [replica.weight for replica in shares] == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0.0])
    assert [t.tolist() for t in taken] == [[0], [1], [2], [0]]  # the last computes on one point, weighted 0


def test_fit_nproc_runs_torchrun_and_rank_0_writes_the_run(tmp_path):
    out = tmp_path / "run"
    argv = ["fit", "fvsbn", "--data", "digits", "--epochs", "1", "--nproc", "2", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "pplgen.cli", *argv], cwd=ROOT, env=_environment(), capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("wrote ") == 1  # rank 0 alone reports and writes
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["world_size"] == 2, config


def test_nproc_below_one_is_refused(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["fit", "fvsbn", "--data", "digits", "--nproc", "0"])
    assert raised.value.code == 2
    assert "expected a whole number of processes, at least 1; got '0'" in capsys.readouterr().err
