"""The pplgen command: each subcommand end to end, and errors as one line with exit status 2."""

import contextlib
import errno
import io
import json
import subprocess
import sys
import textwrap
import wave
from pathlib import Path

import matplotlib.image
import pytest
import torch

import pplgen
from pplgen.cli import main
from pplgen.runs import load_run, write_samples
from tests.conftest import needs_data_file

USER_PROGRAM = textwrap.dedent(
    """
    import torch, pyro, pyro.distributions as dist

    net = torch.nn.Linear(2, 64)
    enc = torch.nn.Linear(64, 4)

    def model(x):
        pyro.module("net", net)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=net(z)).to_event(1), obs=x)

    def guide(x):
        pyro.module("enc", enc)
        with pyro.plate("data", x.shape[0]):
            loc, log_scale = enc(x).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))

    def broken(x):
        raise KeyError("no such layer")
    """
)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_prints_sites_edges_and_family(capsys, tmp_path):
    code, out, _ = run(capsys, "inspect", "vae", "--data", "digits", "--out", str(tmp_path / "g.png"))
    assert code == 0
    assert "family:  latent" in out
    assert "z -> x" in out
    assert "plates:  data=" in out
    assert (tmp_path / "g.png").stat().st_size > 1000


def test_fit_sample_evaluate_an_exact_model(capsys, tmp_path):
    run_dir = tmp_path / "run"
    code, out, _ = run(capsys, "fit", "fvsbn", "--data", "digits", "--epochs", "2", "--out", str(run_dir))
    assert code == 0 and "exact model, 2 epochs" in out
    for name in ("config.json", "result.pt", "checkpoint.pt", "history.json", "graph.png", "curves.png"):
        assert (run_dir / name).is_file(), name
    code, out, _ = run(capsys, "sample", str(run_dir), "-n", "16")
    assert code == 0 and (run_dir / "samples.png").is_file()
    code, out, _ = run(capsys, "evaluate", str(run_dir), "--json")
    row = json.loads(out)
    assert row["estimator"] == "exact" and row["split"] == "test" and 0 < row["bits_per_dim"] < 1
    history = json.loads((run_dir / "history.json").read_text())
    assert row["nats"] == pytest.approx(history[-1]["val_nll"], rel=0.15)  # test and valid are alike
    code, out, _ = run(capsys, "evaluate", str(run_dir))
    assert "nats per data point" in out and "(exact)" in out
    code, out, _ = run(capsys, "evaluate", str(run_dir), "--diagnose", "--limit", "20")
    assert code == 0 and "Nothing to check: the likelihood is exact" in out
    assert not (run_dir / "khat.png").exists()  # no k̂ without a guide


def test_fit_and_evaluate_a_gan_reports_sample_metrics(capsys, tmp_path):
    run_dir = tmp_path / "gan"
    assert (
        run(
            capsys,
            "fit",
            "gan",
            "--data",
            "ring8",
            "--epochs",
            "1",
            "--batch-size",
            "512",
            "--out",
            str(run_dir),
        )[0]
        == 0
    )
    code, out, _ = run(capsys, "evaluate", str(run_dir))
    assert code == 0 and "modes covered" in out and "high-quality" in out


def test_fit_a_user_program_from_a_file(capsys, tmp_path):
    path = tmp_path / "my_model.py"
    path.write_text(USER_PROGRAM)
    run_dir = tmp_path / "mine"
    code, out, err = run(
        capsys, "fit", f"{path}:model,guide", "--data", "digits", "--epochs", "1", "--out", str(run_dir)
    )
    assert code == 0, err
    assert "latent model" in out
    code, out, _ = run(capsys, "evaluate", str(run_dir), "--num-samples", "5")
    assert code == 0 and "importance-sampled, K=5" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fit", "vea", "--data", "digits"], "unknown model 'vea'"),
        (["evaluate", "nowhere"], "not a run directory"),
        (["fit", "vae", "--data", "binarized_mnist"], "PPLGEN_DATA"),
        (["fit", "{file}:broken", "--data", "digits"], "raised KeyError"),
        (["fit", "{file}:missing", "--data", "digits"], "has no callable 'missing'"),
        (["fit", "fvsbn", "--data", "digits", "--epochs", "0"], "epochs should be a whole number, at least"),
        (["fit", "fvsbn", "--data", "digits", "--batch-size", "0"], "batch_size should be a whole number"),
        (["fit", "fvsbn", "--data", "digits", "--checkpoint-every", "0"], "checkpoint_every should be"),
        (["fit", "fvsbn", "--data", "digits", "--lr", "-1"], "lr should be a number, at least 0; got -1.0"),
    ],
)
def test_errors_are_one_line_and_exit_2(capsys, tmp_path, monkeypatch, argv, message):
    path = tmp_path / "prog.py"
    path.write_text(USER_PROGRAM)
    monkeypatch.setenv("PPLGEN_DATA", str(tmp_path))
    argv = [a.replace("{file}", str(path)) for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_corrupted_run_checkpoint(capsys, tmp_path):
    run_dir = tmp_path / "run"
    run(capsys, "fit", "fvsbn", "--data", "digits", "--epochs", "1", "--out", str(run_dir))
    (run_dir / "result.pt").write_bytes(b"\x00" * 100)
    code, _, err = run(capsys, "sample", str(run_dir))
    assert code == 2 and "corrupted, truncated or unsafe" in err and err.count("\n") == 1


@pytest.mark.filterwarnings("always::pplgen.infer.checkpoint.ResumeWarning")
def test_resuming_with_other_settings_warns_on_one_line(capsys, tmp_path):
    fit = ("fit", "fvsbn", "--data", "digits", "--out", str(tmp_path / "run"))
    run(capsys, *fit, "--epochs", "1", "--batch-size", "8")
    code, out, err = run(capsys, *fit, "--epochs", "2", "--batch-size", "16", "--resume")
    assert code == 0 and "2 epochs" in out
    assert err.startswith("pplgen fit: warning: resuming from checkpoint") and err.count("\n") == 1
    assert "batch_size 8 (now 16)" in err


def test_a_full_disk_while_writing_the_run_is_one_line(capsys, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    fit = ("fit", "fvsbn", "--data", "digits", "--epochs", "1", "--out", str(run_dir))
    run(capsys, *fit)
    history = (run_dir / "history.json").read_text()

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    code, _, err = run(capsys, *fit)
    assert code == 2 and err.count("\n") == 1
    assert "(the disk is full)" in err and "the previous run file is kept" in err
    monkeypatch.undo()
    assert (run_dir / "history.json").read_text() == history
    assert not list(run_dir.glob(".*.tmp"))


def test_console_script_exit_status():
    proc = subprocess.run(
        [sys.executable, "-m", "pplgen.cli", "fit", "nope", "--data", "digits"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("pplgen fit: error: unknown model 'nope': the zoo has ali, avb, cgan, ")
    assert proc.stderr.count("\n") == 1  # one line, no traceback


def test_demo_writes_pictures_and_a_table(capsys, tmp_path):
    code, out, _ = run(capsys, "demo", "--out", str(tmp_path), "--scale", "0.02")
    assert code == 0
    for model in ("fvsbn", "vae", "gan"):
        for picture in ("graph.png", "curves.png", "samples.png"):
            assert (tmp_path / model / picture).stat().st_size > 1000, (model, picture)
    rows = json.loads((tmp_path / "summary.json").read_text())
    assert [r["family"] for r in rows] == ["exact", "latent", "implicit"]
    assert rows[0]["estimator"] == "exact" and rows[1]["estimator"].startswith("importance-sampled")
    assert 0 <= rows[2]["modes"] <= 8
    assert "| fvsbn | digits | exact |" in out


@needs_data_file("fsdd.npz")
def test_a_digit_conditioned_wavenet_speaks_a_chosen_digit(capsys, tmp_path):
    run_dir = tmp_path / "wavenet"
    settings = ["--set", "residual_channels=4", "--set", "skip_channels=4", "--set", "dilations=[1, 2, 4]"]
    argv = ["fit", "wavenet", "--data", "fsdd", "--data-option", "length=64", *settings]
    assert main([*argv, "--epochs", "1", "--batch-size", "256", "--out", str(run_dir)]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["options"] == {"length": 64} and config["program"]["config"]["num_classes"] == 10
    assert main(["sample", str(run_dir), "-n", "3", "--label", "7", "--seed", "0"]) == 0
    with wave.open(str(run_dir / "samples.wav")) as f:  # three clips, each followed by 1/4 s of silence
        assert f.getframerate() == 8000 and f.getnframes() == 3 * (64 + 2000)
    capsys.readouterr()
    assert main(["sample", str(run_dir), "-n", "2", "--label", "10"]) == 2
    assert "--label must be one of 0 .. 9 for fsdd, got 10" in capsys.readouterr().err


def test_pixelcnn_writes_a_picture_and_refuses_labels(tmp_path):
    run_dir = tmp_path / "pixelcnn"
    argv = ["fit", "pixelcnn", "--data", "digits", "--set", "channels=8", "--set", "layers=2"]
    assert main([*argv, "--epochs", "1", "--out", str(run_dir)]) == 0
    assert main(["sample", str(run_dir), "-n", "4"]) == 0
    assert (run_dir / "samples.png").stat().st_size > 500
    assert main(["sample", str(run_dir), "-n", "4", "--label", "3"]) == 2  # not a conditional program


@needs_data_file("tinyshakespeare.txt.gz")
def test_a_character_lstm_writes_text(tmp_path):
    run_dir = tmp_path / "lstmlm"
    argv = ["fit", "lstmlm", "--data", "shakespeare", "--data-option", "block_size=16", "--set", "hidden=8"]
    assert main([*argv, "--set", "num_layers=1", "--epochs", "1", "--out", str(run_dir)]) == 0
    assert main(["sample", str(run_dir), "-n", "2", "--seed", "0"]) == 0
    text = (run_dir / "samples.txt").read_text()
    assert len(text) == 2 * 16 + 2  # two blocks of 16 characters, a blank line between


def test_a_deep_markov_model_draws_its_steps_as_the_rows_of_each_digit(capsys, tmp_path):
    run_dir = tmp_path / "dmm"
    sizes = ["--set", "z_dim=3", "--set", "transition_dim=8", "--set", "emission_dim=8", "--set", "rnn_dim=8"]
    assert main(["fit", "dmm", "--data", "digits", *sizes, "--epochs", "1", "--out", str(run_dir)]) == 0
    out = tmp_path / "s.png"
    assert main(["sample", str(run_dir), "-n", "8", "--out", str(out), "--seed", "0"]) == 0
    assert f"wrote 8 samples to {out}" in capsys.readouterr().out
    # the same draws, as 8 steps of 8 pixels; drawn as flat rows, step t must be row t of each image
    result, dataset, _ = load_run(run_dir)
    torch.manual_seed(0)
    steps = pplgen.sample(result, 8)
    assert steps.shape == (8, 8, 8)
    rows = write_samples(steps.flatten(1), dataset, tmp_path / "rows.png")
    assert (matplotlib.image.imread(out) == matplotlib.image.imread(rows)).all()


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    """A small VAE fitted for two epochs on digits: its run directory and what ``pplgen fit`` printed."""
    run_dir = tmp_path_factory.mktemp("vae") / "run"
    sizes = ["--set", "z_dim=4", "--set", "hidden=32"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["fit", "vae", "--data", "digits", *sizes, "--epochs", "2", "--out", str(run_dir)])
    assert code == 0
    return run_dir, printed.getvalue()


def test_fitting_a_vae_draws_its_latent_space(vae_run):
    run_dir, out = vae_run
    pictures = ("graph.png", "curves.png", "reconstructions.png", "latents.png", "traversal.png")
    for name in pictures:
        assert (run_dir / name).stat().st_size > 1000, name
    assert f"({', '.join(['config.json', 'result.pt', 'checkpoint.pt', 'history.json', *pictures])})" in out
    height, width, _ = matplotlib.image.imread(run_dir / "traversal.png").shape
    assert height > 400 and width > 400  # six rows of seven images


def test_evaluate_diagnose_prints_khat_and_a_verdict(vae_run, capsys):
    run_dir, _ = vae_run
    argv = ["evaluate", str(run_dir), "--diagnose", "--limit", "60", "--diagnose-samples", "100"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    lines = out.splitlines()
    assert "nats per data point" in lines[0]  # the usual evaluation comes first
    assert "Pareto k\u0302 per data point" in out and "S=100" in out and "Verdict:" in out
    assert f"wrote {run_dir / 'khat.png'}" in lines[-1]
    assert (run_dir / "khat.png").stat().st_size > 1000


def test_evaluate_diagnose_as_json(vae_run, capsys):
    run_dir, _ = vae_run
    argv = ["evaluate", str(run_dir), "--diagnose", "--limit", "60", "--diagnose-samples", "100", "--json"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    row = json.loads(out)  # stdout holds the JSON alone; where khat.png went is said on stderr
    diagnosis = row["diagnosis"]
    assert diagnosis["verdicts"] and diagnosis["verdicts"][0].startswith("Inference")
    assert len(diagnosis["khat_points"]) == 60 and diagnosis["num_samples"] == 100
    json.dumps(diagnosis, allow_nan=False)  # strict JSON: no NaN, no tensors
    assert "khat.png" in err
    code, _, err = run(capsys, "evaluate", str(run_dir), "--diagnose", "--diagnose-samples", "10")
    assert code == 2 and "--diagnose-samples must be at least 25" in err and err.count("\n") == 1
