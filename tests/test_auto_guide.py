"""The automatic amortised guide on Pyro-tutorial programs: each is fitted with no hand-written guide, and
the fit is checked against baselines, closed forms and the guide's own bounds."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from torch import nn

import pplgen
from pplgen.errors import GuideError
from pplgen.guides.amortised import AmortisedGuide
from pplgen.infer.result import FitResult
from tests import tutorial_programs as programs


def base(fn):
    """The distribution under Pyro's mask / independent wrappers."""
    while isinstance(fn, (dist.MaskedDistribution, dist.Independent)):
        fn = fn.base_dist
    return fn


def global_posterior(guide: AmortisedGuide) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each global latent's mean-field centre (its location mapped onto the support) and scale (in
    unconstrained space)."""
    specs = [spec for spec in guide.specs if not spec.local]
    return {
        spec.name: (spec.transform(field.loc.detach()), F.softplus(field.raw_scale.detach()))
        for spec, field in zip(specs, guide.globals, strict=True)
    }


def guide_sites(guide, *args) -> dict:
    with torch.no_grad():
        trace = poutine.trace(guide).get_trace(*args)
    return {name: site for name, site in trace.nodes.items() if site["type"] == "sample"}


# -- 1. the VAE ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vae(digits):
    train, valid = digits
    model = programs.vae(z_dim=4, hidden=64)
    return pplgen.fit(model, train.x, epochs=15, batch_size=64, lr=3e-3, valid=valid.x, seed=0)


def test_vae_with_no_guide_beats_the_independent_pixel_baseline(vae, digits):
    train, valid = digits
    assert isinstance(vae.guide, AmortisedGuide)
    assert vae.guide.describe() == {"z": "local: encoder from x to a Normal over 4 dimensions"}
    means = train.x.mean(0).clamp(1e-3, 1 - 1e-3)  # the best independent Bernoulli pixels
    baseline = -dist.Bernoulli(probs=means).log_prob(valid.x).sum(1).mean().item()
    first, last = vae.history[0], vae.history[-1]
    assert last["val_loss"] < first["val_loss"]
    assert last["val_loss"] < baseline - 3.0
    assert len(last["kl_per_dim"]["z"]) == 4 and sum(last["kl_per_dim"]["z"]) > 1.0
    assert last["latent_units"] == 4 and 1 <= last["active_units"] <= 4


def test_vae_importance_sampled_likelihood_is_at_least_the_elbo(vae, digits):
    _, valid = digits
    elbo = -vae.history[-1]["val_loss"]
    one = pplgen.log_likelihood(vae, valid.x, num_samples=1)  # one importance sample: the ELBO itself
    many = pplgen.log_likelihood(vae, valid.x, num_samples=100)
    assert one.mean().item() == pytest.approx(elbo, abs=0.5)
    assert many.mean().item() > elbo + 0.1
    assert many.mean().item() > one.mean().item() + 0.1


# -- 2. the semi-supervised VAE (M2) --------------------------------------------------------------------
def test_semi_supervised_vae_classifies_the_unlabelled_digits(digits):
    train, _ = digits
    x, y = train.x, train.y
    labelled = torch.zeros(len(x), dtype=torch.bool)
    labelled[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:300]] = True
    hidden = torch.where(labelled, y, torch.zeros_like(y))  # the missing labels are not passed at all
    model = programs.ssvae(z_dim=4, hidden=64)
    guide = AmortisedGuide(model, hidden=(128,))
    result = pplgen.fit(model, (x, hidden, labelled), guide, epochs=10, batch_size=64, lr=3e-3, seed=0)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert guide.describe()["y_unobserved"] == (
        "local: encoder from x to a Categorical with 10 classes over 1 dimension, enumerated"
    )
    site = guide_sites(guide, x, hidden, labelled)["y_unobserved"]
    assert site["infer"] == {"enumerate": "parallel"}
    assert torch.equal(site["fn"]._mask, ~labelled)  # q(y | x) counts only where the model's y is latent
    predicted = base(site["fn"]).logits.argmax(-1)
    accuracy = (predicted[~labelled] == y[~labelled]).float().mean().item()
    assert accuracy > 0.5  # chance is 0.1


# -- 3. the Gaussian mixture ----------------------------------------------------------------------------
def test_gaussian_mixture_recovers_the_component_locations():
    data = programs.gmm_data(n=300, locs=(-4.0, 0.0, 5.0), scale=0.5)
    model = programs.gmm()
    fits = []
    for seed in range(3):  # as in Pyro's tutorial: a few initialisations, keep the best bound
        pyro.clear_param_store()
        result = pplgen.fit(model, data, epochs=200, batch_size=300, lr=0.05, valid_fraction=0, seed=seed)
        fits.append((result.history[-1]["loss"], result.guide))
    _, guide = min(fits, key=lambda fit: fit[0])
    assert set(guide.describe()) == {"weights", "scale", "locs"}  # the assignment is left to TraceEnum
    posterior = global_posterior(guide)
    locs = posterior["locs"][0].sort().values
    assert torch.allclose(locs, torch.tensor([-4.0, 0.0, 5.0]), atol=0.2)
    assert posterior["scale"][0].item() == pytest.approx(0.5, abs=0.1)
    assert torch.allclose(posterior["weights"][0].sort().values, torch.full((3,), 1 / 3), atol=0.1)


# -- 4. Bayesian regression ----------------------------------------------------------------------------
def test_regression_mean_field_recovers_coefficients_and_noise():
    x, y = programs.regression_data(n=200, a=1.0, b=(2.0, -1.0), sigma=0.5)
    result = pplgen.fit(
        programs.regression(), (x, y), epochs=1000, batch_size=200, lr=0.05, valid_fraction=0, seed=0
    )
    posterior = global_posterior(result.guide)
    assert posterior["a"][0].item() == pytest.approx(1.0, abs=0.1)
    assert torch.allclose(posterior["b"][0], torch.tensor([2.0, -1.0]), atol=0.2)
    assert posterior["sigma"][0].item() == pytest.approx(0.5, abs=0.1)


def test_regression_mean_field_matches_the_conjugate_posterior_means_and_underestimates_spread():
    # With sigma known and Normal priors the posterior of (a, b) is Normal with precision
    # Λ = XᵀX / σ² + I / s²; the best mean field has the exact means and variances 1 / Λ_ii, below the
    # marginal variances Σ_ii = (Λ⁻¹)_ii when the covariates are correlated (Bishop 2006, §10.1.2).
    sigma, prior_scale = 0.5, 10.0
    x, y = programs.regression_data(n=200, sigma=sigma, correlation=0.8)
    design = torch.cat([torch.ones(len(x), 1), x], dim=1)
    precision = design.T @ design / sigma**2 + torch.eye(3) / prior_scale**2
    covariance = torch.linalg.inv(precision)
    mean = covariance @ design.T @ y / sigma**2
    marginal_sd, mean_field_sd = covariance.diag().sqrt(), precision.diag().rsqrt()

    model = programs.regression(prior_scale=prior_scale, sigma=sigma)
    guide = AmortisedGuide(model)
    iterates = []

    def record(row):  # Polyak averaging of the last iterates: SGD noise averages out
        if row["epoch"] > 250:
            (a_loc, a_sd), (b_loc, b_sd) = global_posterior(guide).values()
            iterates.append(torch.stack([torch.cat([a_loc[None], b_loc]), torch.cat([a_sd[None], b_sd])]))

    settings = dict(epochs=500, batch_size=200, valid_fraction=0, seed=0)
    pplgen.fit(model, (x, y), guide, lr=0.05, **settings)
    pplgen.fit(model, (x, y), guide, lr=0.005, callbacks=[record], **settings)  # the same guide, annealed
    loc, sd = torch.stack(iterates).mean(0)  # (a, b1, b2) each
    assert torch.allclose(loc, mean, atol=0.25 * marginal_sd.min().item())
    assert torch.all(sd[1:] < 0.85 * marginal_sd[1:])  # correlated coefficients: too narrow, as expected
    assert torch.allclose(sd, mean_field_sd, rtol=0.25)


# -- 5. local latents in a group plate, and a Markov chain ------------------------------------------------
def test_random_intercepts_encoder_learns_the_exact_conditional_posterior():
    generator = torch.Generator().manual_seed(0)
    groups, members = 200, 5
    intercepts = 3.0 + 2.0 * torch.randn(groups, generator=generator)
    y = intercepts[:, None] + torch.randn(groups, members, generator=generator)  # (G, M)
    model = programs.random_intercepts()
    guide = AmortisedGuide(model, hidden=(32,))
    result = pplgen.fit(model, y, guide, epochs=100, batch_size=50, lr=0.02, seed=0)
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]
    spec = next(s for s in guide.specs if s.name == "intercept")
    assert (spec.local, spec.explains, spec.parents) == (True, ("y",), ("mu", "tau"))
    assert guide.describe()["intercept"] == "local: encoder from y, mu, tau to a Normal over 1 dimension"
    # given the mu and tau the guide drew, intercept | y is Normal in closed form (unit noise)
    sites = guide_sites(guide, y)
    mu, tau, q = sites["mu"]["value"], sites["tau"]["value"], base(sites["intercept"]["fn"])
    precision = 1 / tau**2 + members
    exact_mean, exact_sd = (mu / tau**2 + y.sum(1)) / precision, precision.rsqrt()
    assert (q.loc - exact_mean).abs().mean() < 0.25 * exact_sd
    assert (q.scale / exact_sd).median().item() == pytest.approx(1.0, abs=0.2)


def test_deep_markov_model_encoders_read_the_present_and_future(digits):
    train, valid = digits
    rows = train.x.reshape(-1, 8, 8)  # each digit as a sequence of 8 rows of 8 pixels
    model = programs.dmm(z_dim=4, hidden=32)
    guide = AmortisedGuide(model, hidden=(64,))
    result = pplgen.fit(model, rows, guide, epochs=4, batch_size=64, lr=3e-3, seed=0)
    losses = [row["val_loss"] for row in result.history]
    assert losses[-1] < losses[0] - 3.0
    specs = {spec.name: spec for spec in guide.specs}
    for t in range(1, 9):
        future = tuple(f"x_{s}" for s in range(t, 9))
        assert specs[f"z_{t}"].explains == future
        assert specs[f"z_{t}"].parents == ((f"z_{t - 1}",) if t > 1 else ())
    assert guide.describe()["z_7"] == "local: encoder from x_7, x_8, z_6 to a Normal over 4 dimensions"


# -- 6. options ---------------------------------------------------------------------------------------------
def test_full_rank_and_flow_posteriors_train_as_well_as_the_diagonal(digits):
    train, valid = digits
    final = {}
    for name, options in {"normal": {}, "full_rank": {"posterior": "full_rank"}, "iaf": {"flows": 2}}.items():
        pyro.clear_param_store()
        model = programs.vae(z_dim=4, hidden=64)
        guide = AmortisedGuide(model, hidden=(64,), **options)
        result = pplgen.fit(model, train.x, guide, epochs=10, batch_size=64, lr=3e-3, valid=valid.x, seed=0)
        final[name] = result.history[-1]["val_loss"]
        assert final[name] < result.history[0]["val_loss"] - 3.0
    assert guide.describe()["z"] == "local: encoder from x to a Normal with 2 IAF steps over 4 dimensions"
    assert final["full_rank"] < final["normal"] + 2.0
    assert final["iaf"] < final["normal"] + 2.0


def test_user_encoder_reads_images_and_is_trained(digits):
    train, valid = digits
    model = programs.vae(z_dim=4, hidden=64, images=True)
    conv = nn.Sequential(
        nn.Unflatten(1, (1, 8)),  # (N, 8, 8) -> (N, 1, 8, 8)
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),  # (N, 128)
    )
    before = [p.detach().clone() for p in conv.parameters()]
    guide = AmortisedGuide(model, encoder=conv)
    result = pplgen.fit(model, train.x, guide, epochs=4, batch_size=64, lr=3e-3, valid=valid.x, seed=0)
    assert guide.encoders[0] is conv
    assert all(not torch.equal(p, b) for p, b in zip(conv.parameters(), before, strict=True))
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]
    assert result.settings["guide"]["user_encoder"] is True


# -- 7. bad input --------------------------------------------------------------------------------------------
def test_discrete_global_latent_is_refused_with_a_remedy():
    with pytest.raises(GuideError, match=r"global latent 'switch' is discrete: enumerate it"):
        pplgen.fit(programs.discrete_global(), torch.randn(20), epochs=1)


def test_unknown_posterior_and_negative_flows_are_refused():
    model = programs.vae()
    with pytest.raises(GuideError, match=r"unknown posterior 'bogus': expected one of normal, full_rank"):
        AmortisedGuide(model, posterior="bogus")
    with pytest.raises(GuideError, match=r"flows must be a number of IAF steps >= 0, got -1"):
        AmortisedGuide(model, flows=-1)


class BatchMean(nn.Module):
    def forward(self, x):
        return x.mean(0, keepdim=True)


@pytest.mark.parametrize(
    "encoder, message",
    [
        (nn.Sequential(nn.Linear(64, 8), nn.Unflatten(1, (2, 4))), r"got output \(2, 2, 4\) for inputs"),
        (BatchMean(), r"should map \(N, \.\.\.\) inputs to \(N, F\) features, got output \(1, 64\)"),
        (nn.Linear(10, 8), r"failed on inputs of shape \(2, 64\) \(N = 2\): RuntimeError"),
    ],
    ids=["three_dims", "one_row", "wrong_input"],
)
def test_user_encoder_of_the_wrong_shape_is_refused(encoder, message):
    model = programs.vae()
    x = (torch.rand(20, 64) > 0.5).float()
    with pytest.raises(GuideError, match=rf"the encoder for latent 'z' .*{message}"):
        pplgen.fit(model, x, AmortisedGuide(model, encoder=encoder), epochs=1)


def test_hand_written_guide_on_the_wrong_support_or_shape_is_refused():
    x = torch.randn(20)

    def real_guide(x):  # a Normal for a positive latent: draws negative rates
        with pyro.plate("data", x.shape[0]):
            pyro.sample("rate", dist.Normal(0.0, 1.0))

    with pytest.raises(GuideError, match=r"'rate' draws values outside the model's support"):
        pplgen.fit(programs.positive_latent(), x, real_guide, epochs=1)

    def global_guide(x):  # one rate for all the data where the model has one per point
        pyro.sample("rate", dist.LogNormal(0.0, 1.0))

    with pytest.raises(GuideError, match=r"'rate' draws values of shape \(\).* has shape \(18,\)"):
        pplgen.fit(programs.positive_latent(), x, global_guide, epochs=1)


# -- the guide's structure on harder graphs --------------------------------------------------------------
def test_enumerated_and_simplex_parents_are_handled():
    x = torch.cat([torch.randn(30) - 3.0, torch.randn(30) + 3.0])

    def mixture_of_latents(x):  # z's prior reads an assignment that the model enumerates
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Categorical(torch.ones(2) / 2), infer={"enumerate": "parallel"})
            z = pyro.sample("z", dist.Normal(torch.tensor([-3.0, 3.0])[c], 1.0))
            pyro.sample("x", dist.Normal(z, 0.5), obs=x)

    guide = pplgen.fit(mixture_of_latents, x, epochs=1).guide
    assert guide.describe() == {"z": "local: encoder from x to a Normal over 1 dimension"}

    def simplex_parent(x):  # z's prior reads a global simplex (3 values, 2 unconstrained)
        weights = pyro.sample("weights", dist.Dirichlet(torch.ones(3)))
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(weights @ torch.tensor([-3.0, 0.0, 3.0]), 1.0))
            pyro.sample("x", dist.Normal(z, 0.5), obs=x)

    guide = pplgen.fit(simplex_parent, x, epochs=1).guide
    assert guide.describe()["z"] == "local: encoder from x, weights to a Normal over 1 dimension"
    assert guide.encoders[0][0].in_features == 1 + 3


# -- 8. save and load ---------------------------------------------------------------------------------------
def test_saved_fit_reloads_its_automatic_guide(digits, tmp_path):
    train, valid = digits
    model = programs.vae(z_dim=4, hidden=32)
    guide = AmortisedGuide(model, hidden=(32,), flows=1)
    result = pplgen.fit(model, train.x, guide, epochs=2, batch_size=128, seed=0)
    path = result.save(tmp_path / "vae.pt")
    pyro.set_rng_seed(1)
    expected = pplgen.log_likelihood(result, valid.x, num_samples=10)

    pyro.clear_param_store()
    fresh = programs.vae(z_dim=4, hidden=32)  # new networks: only the file carries the weights
    loaded = FitResult.load(path, fresh)
    assert isinstance(loaded.guide, AmortisedGuide) and loaded.guide is not guide
    assert loaded.guide.options == {"posterior": "normal", "flows": 1, "hidden": [32]}
    pyro.set_rng_seed(1)
    assert torch.equal(pplgen.log_likelihood(loaded, valid.x, num_samples=10), expected)
    assert math.isfinite(expected.mean().item())
