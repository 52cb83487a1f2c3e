"""Bad input gets a pplgen error naming what was expected and what came: never a deep traceback or NaN."""

import errno
import os
import pickle
import random
import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch

import pplgen
from pplgen import data as datasets
from pplgen.errors import (
    CheckpointError,
    DataError,
    DataFileError,
    GuideError,
    ModelError,
    PplgenError,
    SettingsError,
    UnknownNameError,
)
from pplgen.infer import checkpoint
from pplgen.infer.checkpoint import ResumeWarning, VersionWarning, load_checkpoint, save_checkpoint
from pplgen.models import VAE, build


def bernoulli_model(x):
    logits = pyro.param("logits", torch.zeros(4))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)


def latent_model(x):
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z.sum(-1, keepdim=True).expand(-1, 4), 1.0).to_event(1), obs=x)


def guide_with(*names):
    def guide(x):
        with pyro.plate("data", x.shape[0]):
            for name in names:
                pyro.sample(name, dist.Normal(torch.zeros(2), 1.0).to_event(1))

    return guide


X = torch.bernoulli(torch.full((20, 4), 0.5))


def test_every_error_is_a_pplgen_error_and_a_builtin():
    assert issubclass(DataError, ValueError) and issubclass(DataError, PplgenError)
    assert issubclass(DataFileError, FileNotFoundError)
    assert issubclass(CheckpointError, ValueError)


def test_nan_in_data():
    x = X.clone()
    x[3, 1] = float("nan")
    with pytest.raises(
        DataError, match=r"NaN or infinite values in 1 of 20 data points \(first at index 3\)"
    ):
        pplgen.fit(bernoulli_model, x, epochs=1)


def test_empty_and_mismatched_data():
    with pytest.raises(DataError, match="no data points"):
        pplgen.fit(bernoulli_model, X[:0], epochs=1)
    with pytest.raises(DataError, match="share their first"):
        pplgen.fit(bernoulli_model, (X, X[:5]), epochs=1)
    with pytest.raises(DataError, match="torch.Tensor"):
        pplgen.fit(bernoulli_model, [[0, 1]], epochs=1)


def test_non_binary_data_at_a_bernoulli_site():
    x = X.clone()
    x[0, 0] = 0.5
    with pytest.raises(DataError, match=r"site 'x' \(Bernoulli\) expects values in its support.*e\.g\. 0\.5"):
        pplgen.fit(bernoulli_model, x, epochs=1)


def test_observed_value_of_the_wrong_event_shape():
    with pytest.raises(
        DataError,
        match=r"site 'x' expects observations of event shape \(4,\), got a value of shape \(\d+, 5\)",
    ):
        pplgen.fit(bernoulli_model, torch.zeros(20, 5), epochs=1)


def test_program_with_no_sample_sites():
    def nothing(x):
        return x * 2

    with pytest.raises(ModelError, match="no sample sites"):
        pplgen.fit(nothing, X, epochs=1)
    with pytest.raises(ModelError, match="no sample sites"):
        pplgen.inspect(nothing, X)


def test_program_that_raises_is_named():
    def broken_model(x):
        raise RuntimeError("decoder exploded")

    with pytest.raises(
        ModelError, match=r"model program '.*broken_model' raised RuntimeError: decoder exploded"
    ):
        pplgen.fit(broken_model, X, epochs=1)


def test_guide_missing_a_latent():
    with pytest.raises(GuideError, match=r"has no site for the model's latent 'z'"):
        pplgen.fit(latent_model, X, guide_with(), epochs=1)


def test_guide_with_a_latent_the_model_lacks():
    with pytest.raises(GuideError, match=r"samples 'w', which the model .* does not have"):
        pplgen.fit(latent_model, X, guide_with("z", "w"), epochs=1)


def test_latent_model_without_a_guide_gets_one_and_exact_model_with_one_refuses():
    result = pplgen.fit(latent_model, X, epochs=1)
    assert isinstance(result.guide, pplgen.AmortisedGuide)
    with pytest.raises(GuideError, match="drop guide="):
        pplgen.fit(bernoulli_model, X, guide_with("z"), epochs=1)


def test_family_mismatch_and_unknown_names():
    with pytest.raises(ModelError, match="family 'exact' was asked for, but the program is latent"):
        pplgen.fit(latent_model, X, guide_with("z"), family="exact", epochs=1)
    with pytest.raises(UnknownNameError, match="unknown family"):
        pplgen.fit(bernoulli_model, X, family="autoregressive", epochs=1)
    with pytest.raises(UnknownNameError, match="unknown model 'vea': the zoo has ali, avb, cgan, charlm, "):
        build("vea", datasets.load("digits"))
    with pytest.raises(UnknownNameError, match="unknown device"):
        pplgen.fit(bernoulli_model, X, device="tpu", epochs=1)


def test_implicit_site_has_no_likelihood():
    from pplgen.errors import ImplicitLikelihoodError

    def gan(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(4), 1.0).to_event(1))
            pyro.sample("x", pplgen.Implicit(z, event_dim=1), obs=x)

    with pytest.raises(ImplicitLikelihoodError, match="sample metrics"):
        pplgen.log_likelihood(gan, X)


def test_missing_data_file(tmp_path):
    with pytest.raises(DataFileError, match="binarized_mnist.npz.*PPLGEN_DATA"):
        datasets.load("binarized_mnist", root=tmp_path)


@pytest.fixture
def saved(tmp_path):
    vae = VAE(4, z_dim=2, hidden=8)
    result = pplgen.fit(vae.model, X, vae.guide, epochs=1, seed=0)
    return result.save(tmp_path / "vae.pt")


def test_truncated_checkpoint(saved):
    blob = saved.read_bytes()
    saved.write_bytes(blob[: len(blob) // 2])
    vae = VAE(4, z_dim=2, hidden=8)
    with pytest.raises(CheckpointError, match="corrupted, truncated or unsafe"):
        pplgen.FitResult.load(saved, vae.model, vae.guide)


def test_corrupted_checkpoint(saved):
    saved.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="corrupted, truncated or unsafe"):
        pplgen.FitResult.load(saved, VAE(4, z_dim=2, hidden=8).model)


def test_a_flipped_byte_in_a_parameter_is_refused(tmp_path):
    """torch.load reads a tensor whose bytes were changed without a word; the digest refuses it."""
    weights = torch.arange(1.0, 65.0)
    path = save_checkpoint(tmp_path / "checkpoint.pt", {"params": {"w": weights}})
    blob = bytearray(path.read_bytes())
    at = bytes(blob).index(weights.numpy().tobytes()) + 4 * 10 + 2  # inside w[10]
    blob[at] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="corrupted or was altered.*digest"):
        load_checkpoint(path)


def test_checkpoint_with_random_flipped_bits_is_refused_or_unchanged(saved):
    """Wherever a bit flips, the file is refused with a CheckpointError, or (a flip in the zip's own
    bookkeeping) loads with every value as written."""
    blob, original = saved.read_bytes(), checkpoint.digest(load_checkpoint(saved))
    flips, refused = random.Random(0), 0
    for _ in range(150):
        spoiled = bytearray(blob)
        spoiled[flips.randrange(len(blob))] ^= 1 << flips.randrange(8)
        saved.write_bytes(bytes(spoiled))
        try:
            state = load_checkpoint(saved)
        except CheckpointError:
            refused += 1
        else:
            assert checkpoint.digest(state) == original
    assert refused >= 50, refused  # the rest fell in bytes torch.load never reads


def test_checkpoint_for_another_program(saved):
    other = VAE(4, z_dim=3, hidden=8)
    with pytest.raises(CheckpointError, match=r"another program: program_config\.z_dim 2 \(now 3\)"):
        pplgen.FitResult.load(saved, other.model, other.guide)


def test_checkpoint_for_another_program_of_the_same_shapes(saved):
    """Nothing but the configuration tells these apart: the parameters would load."""
    other = VAE(4, z_dim=2, hidden=8, activation="tanh")
    with pytest.raises(CheckpointError, match=r"program_config\.activation 'relu' \(now 'tanh'\)"):
        pplgen.FitResult.load(saved, other.model, other.guide)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch /tmp/pplgen-pwned",))


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save(
        {"format": "pplgen-checkpoint", "version": 1, "payload": _RunsCode()}, path, pickle_module=pickle
    )
    if os.path.exists("/tmp/pplgen-pwned"):
        os.remove("/tmp/pplgen-pwned")
    with pytest.raises(CheckpointError, match="unsafe"):
        pplgen.FitResult.load(path, VAE(4, z_dim=2, hidden=8).model)
    assert not os.path.exists("/tmp/pplgen-pwned")


@pytest.mark.parametrize(
    "setting, value",
    [("epochs", 0), ("epochs", 2.5), ("batch_size", 0), ("batch_size", True), ("checkpoint_every", 0),
     ("patience", 0), ("lr", -0.5), ("lr", float("nan")), ("d_lr", -1e-3), ("valid_fraction", 1.0)],
)  # fmt: skip
def test_settings_out_of_range_are_refused_by_name(setting, value):
    vae = VAE(4, z_dim=2, hidden=8)
    with pytest.raises(SettingsError, match=rf"^{setting} should .*; got {value!r}$"):
        pplgen.fit(vae.model, X, vae.guide, progress=False, **{setting: value})


def _fit_to(out, **options):
    pyro.clear_param_store()
    vae = VAE(4, **{"z_dim": 2, "hidden": 8, **options.pop("config", {})})
    return pplgen.fit(vae.model, X, vae.guide, out=out, seed=0, progress=False, **options)


def test_resuming_with_more_epochs_says_nothing(tmp_path):
    _fit_to(tmp_path, epochs=1, batch_size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(_fit_to(tmp_path, epochs=2, batch_size=8, resume=True).history) == 2


def test_resuming_with_other_settings_is_reported(tmp_path):
    _fit_to(tmp_path, epochs=1, batch_size=8)
    with pytest.warns(ResumeWarning, match=r"batch_size 8 \(now 16\); lr 0\.001 \(now 0\.01\): the run will"):
        _fit_to(tmp_path, epochs=2, batch_size=16, lr=0.01, resume=True)


def test_resuming_another_model_is_refused(tmp_path):
    _fit_to(tmp_path, epochs=1)
    with pytest.raises(CheckpointError, match=r"another program: program_config\.activation 'relu'"):
        _fit_to(tmp_path, epochs=2, resume=True, config={"activation": "tanh"})


def test_checkpoint_from_other_versions_is_reported(saved, monkeypatch):
    state = load_checkpoint(saved)
    written = {**state.pop("versions"), "torch": "1.0.0"}
    monkeypatch.setattr(checkpoint, "versions", lambda: written)
    save_checkpoint(saved, {k: v for k, v in state.items() if k not in ("format", "version")})
    monkeypatch.undo()
    vae = VAE(4, z_dim=2, hidden=8)
    with pytest.warns(VersionWarning, match=r"torch 1\.0\.0 \(now .*\): results may differ"):
        pplgen.FitResult.load(saved, vae.model, vae.guide)


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(CheckpointError, match="the disk is full.*the previous checkpoint is kept"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left behind
