"""pplgen.fit on user-written programs of each family: statistics, repeatability, checkpoints."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import pplgen
from pplgen import data as datasets
from pplgen.evaluate import mode_metrics
from pplgen.infer.trainer import LocalScale
from tests import programs


# -- small user programs, written the way the README teaches -------------------------------------------
def independent_bernoulli(x):
    """Exact family: each pixel its own Bernoulli, parameters in Pyro's global param store."""
    logits = pyro.param("logits", torch.zeros(x.shape[1]))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)


def make_vae(dim=64, z_dim=4, hidden=64):
    """The user-written VAE of the reference programs (pyro.module networks, encoder guide)."""
    model, _ = programs.vae(dim, z_dim, hidden)
    return model, model.guide


def make_gan(z_dim=8, hidden=64):
    generator = nn.Sequential(
        nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2)
    )

    def model(x):
        pyro.module("generator", generator)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(z_dim), 1.0).to_event(1))
            pyro.sample("x", pplgen.Implicit(generator(z), event_dim=1), obs=x)

    return model


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits").x, datasets.load("digits", split="valid").x


# -- exact ----------------------------------------------------------------------------------------------
def test_exact_maximum_likelihood_reaches_the_closed_form(digits):
    # The MLE of independent Bernoullis is the pixel mean; its log-likelihood is known exactly.
    x, _ = digits
    result = pplgen.fit(
        independent_bernoulli, x, epochs=150, batch_size=256, lr=0.05, seed=0, valid_fraction=0
    )
    assert result.family == "exact"
    probs = torch.sigmoid(pyro.param("logits")).detach()
    mean = x.mean(0).clamp(1e-3, 1 - 1e-3)
    assert torch.allclose(probs, mean, atol=0.02)
    best = dist.Bernoulli(probs=mean).log_prob(x).sum(1).mean().item()
    ll = pplgen.log_likelihood(result, x)
    assert ll.shape == (len(x),)
    assert -ll.mean().item() == pytest.approx(-best, rel=0.01)


def test_exact_fvsbn_zoo_model_learns_and_reports_validation(digits):
    from pplgen.models import FVSBNModel

    x, x_valid = digits
    module = FVSBNModel(64)
    result = pplgen.fit(module.model, x, epochs=8, batch_size=64, lr=1e-2, valid=x_valid, seed=0)
    history = result.history
    assert [row["epoch"] for row in history] == list(range(1, 9))
    assert history[-1]["val_nll"] < history[0]["val_nll"] < 64 * math.log(2)
    assert len(pyro.get_param_store()) == 0  # a PyroModule keeps its parameters to itself
    bpd = pplgen.bits_per_dim(result, x_valid)
    assert bpd == pytest.approx(history[-1]["val_nll"] / (64 * math.log(2)), rel=1e-4)


# -- latent ---------------------------------------------------------------------------------------------
def test_svi_trains_a_user_vae_and_its_bound_holds(digits):
    x, x_valid = digits
    model, guide = make_vae()
    result = pplgen.fit(model, x, guide=guide, epochs=15, batch_size=64, valid=x_valid, seed=0)
    assert result.family == "latent"
    first, last = result.history[0], result.history[-1]
    assert last["val_loss"] < first["val_loss"] - 5
    torch.manual_seed(0)
    ll = pplgen.log_likelihood(result, x_valid, num_samples=200)
    # the importance-weighted estimate is a tighter bound than the ELBO, so at most the -ELBO in nats
    assert -ll.mean().item() <= last["val_loss"] + 0.1
    assert -ll.mean().item() > last["val_loss"] - 5


def test_local_scale_counts_local_sites_n_over_b_times():
    def model(x):
        w = pyro.sample("w", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(w, 1.0), obs=x)

    trace = pyro.poutine.trace(LocalScale(("data",), 10.0)(model)).get_trace(torch.zeros(5))
    assert trace.nodes["w"]["scale"] == 1.0
    assert trace.nodes["x"]["scale"] == 10.0


def test_svi_with_a_global_latent_recovers_the_conjugate_posterior():
    # w ~ N(0, 1), x_n ~ N(w, 1): the posterior of w is N(sum x / (N + 1), 1 / (N + 1)).
    torch.manual_seed(0)
    x = 1.5 + torch.randn(200)

    def model(x):
        w = pyro.sample("w", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(w, 1.0), obs=x)

    def guide(x):
        loc = pyro.param("w_loc", torch.tensor(0.0))
        scale = pyro.param("w_scale", torch.tensor(1.0), constraint=dist.constraints.positive)
        pyro.sample("w", dist.Normal(loc, scale))

    elbo = pyro.infer.Trace_ELBO(num_particles=16, vectorize_particles=True, max_plate_nesting=1)
    pplgen.fit(model, x, guide, epochs=300, batch_size=50, lr=0.02, seed=0, valid_fraction=0, objective=elbo)
    assert pyro.param("w_loc").item() == pytest.approx(x.sum().item() / 201, abs=0.05)
    assert pyro.param("w_scale").item() == pytest.approx(math.sqrt(1 / 201), rel=0.2)


# -- implicit -------------------------------------------------------------------------------------------
def test_adversarial_training_moves_samples_onto_the_ring():
    ring = datasets.load("ring8", num_points=4096)
    model = make_gan()
    before = pplgen.sample(model, 1000, ring.x)
    result = pplgen.fit(model, ring.x, epochs=25, batch_size=256, lr=2e-3, seed=0, valid_fraction=0.1)
    assert result.family == "implicit"
    assert result.discriminator is not None
    assert {"d_loss", "g_loss", "val_d_loss"} <= set(result.history[-1])
    after = pplgen.sample(result, 1000)
    radius = lambda s: (s.norm(dim=1) - 1).abs().mean()  # noqa: E731 - distance to the unit circle
    assert radius(after) < 0.5 * radius(before)
    modes = mode_metrics(after, ring.meta["modes"], 0.1)["modes"]
    assert modes >= 4


# -- the shared loop ----------------------------------------------------------------------------------
def _params(result):
    return {k: v.clone() for k, v in result.trainer.params.state_dict().items()}


def test_seeded_fvsbn_runs_are_identical(digits):
    from pplgen.models import FVSBNModel

    x, _ = digits
    results = [
        pplgen.fit(FVSBNModel(64).model, x, epochs=3, batch_size=100, seed=3, lr=1e-2) for _ in range(2)
    ]
    a, b = (_params(r) for r in results)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["val_nll"] for r in results[0].history] == [r["val_nll"] for r in results[1].history]


def test_resume_continues_to_the_same_parameters(digits, tmp_path):
    from pplgen.models import VAE

    x, _ = digits

    def run(epochs, out, resume):
        torch.manual_seed(0)
        vae = VAE(64, z_dim=4, hidden=32)
        return pplgen.fit(
            vae.model, x, vae.guide, epochs=epochs, batch_size=128, seed=5, out=out, resume=resume
        )

    whole = run(4, tmp_path / "whole", False)
    run(2, tmp_path / "split", False)  # "killed" after two epochs
    resumed = run(4, tmp_path / "split", True)
    a, b = _params(whole), _params(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in whole.history] == [r["loss"] for r in resumed.history]


def test_early_stopping_restores_the_best_epoch(digits):
    from pplgen.models import FVSBNModel

    x, x_valid = digits
    # a large learning rate overfits quickly, so validation stops improving
    result = pplgen.fit(
        FVSBNModel(64).model, x[:200], epochs=60, batch_size=50, lr=0.2, valid=x_valid, patience=3, seed=0
    )
    history = result.history
    assert len(history) < 60
    best_epoch = history[-1]["restored_epoch"]
    best = min(row["val_nll"] for row in history)
    assert history[best_epoch - 1]["val_nll"] == best
    assert -pplgen.log_likelihood(result, x_valid).mean().item() == pytest.approx(best, rel=1e-4)


def test_progress_bar_is_quiet_when_not_a_terminal(digits, capsys):
    x, _ = digits
    pplgen.fit(independent_bernoulli, x, epochs=1, seed=0)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_device_auto_is_cpu_without_cuda(digits):
    x, _ = digits
    result = pplgen.fit(independent_bernoulli, x, epochs=1, seed=0)
    assert result.device == torch.device("cuda" if torch.cuda.is_available() else "cpu")


def test_save_and_load_round_trip(digits, tmp_path):
    from pplgen.models import VAE

    x, x_valid = digits
    vae = VAE(64, z_dim=4, hidden=32)
    result = pplgen.fit(vae.model, x, vae.guide, epochs=2, seed=0)
    path = result.save(tmp_path / "vae.pt")
    fresh = VAE(64, z_dim=4, hidden=32)
    loaded = pplgen.FitResult.load(path, fresh.model, fresh.guide)
    assert loaded.history == result.history and loaded.family == "latent"
    for (ka, a), (kb, b) in zip(vae.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(a, b)
    torch.manual_seed(1)
    ll_a = pplgen.log_likelihood(result, x_valid[:20], num_samples=10)
    torch.manual_seed(1)
    ll_b = pplgen.log_likelihood(loaded, x_valid[:20], num_samples=10)
    assert torch.allclose(ll_a, ll_b)


def test_user_pyro_module_parameters_are_saved_and_restored(digits, tmp_path):
    x, _ = digits
    model, guide = make_vae()
    result = pplgen.fit(model, x, guide, epochs=1, seed=0)
    saved = {k: v.clone() for k, v in pyro.get_param_store().items()}
    path = result.save(tmp_path / "user.pt")
    pyro.clear_param_store()
    model2, guide2 = make_vae()
    pplgen.FitResult.load(path, model2, guide2)
    for name, value in saved.items():
        assert torch.equal(pyro.param(name).detach(), value.detach()), name
