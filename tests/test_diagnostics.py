"""Inference diagnostics: PSIS against ArviZ and known tails; InferenceData against closed-form posteriors;
PSIS-LOO against the exact leave-one-out predictive; k̂ for good and bad guides; posterior collapse; VI
against NUTS on the same program."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.distributions import constraints
from pyro.nn import PyroModule
from torch import nn

import pplgen
from pplgen.diagnostics import describe_khat, good_threshold, psis, psis_loo
from pplgen.diagnostics.inference_data import arviz
from pplgen.distributions import FVSBN
from pplgen.errors import ImplicitLikelihoodError
from tests import programs
from tests import tutorial_programs as tutorial

PRIOR_SCALE, NOISE, N = 10.0, 1.0, 50


# -- PSIS ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("draws", [30, 400, 4000])
def test_psis_matches_arviz(draws):
    generator = torch.Generator().manual_seed(draws)
    log_ratios = 1.5 * torch.randn(6, draws, generator=generator, dtype=torch.float64)
    log_ratios[3] = torch.distributions.StudentT(2.0).sample((draws,)).double()  # a heavy tail
    ours = psis(log_ratios)
    log_weights, khat = arviz().psislw(log_ratios.numpy())
    assert torch.allclose(ours.khat, torch.as_tensor(khat), atol=1e-9)
    assert torch.allclose(ours.log_weights, torch.as_tensor(log_weights), atol=1e-9)
    assert torch.allclose(ours.log_weights.exp().sum(-1), torch.ones(6, dtype=torch.float64))


@pytest.mark.parametrize("shape", [0.2, 0.6, 0.9])
def test_khat_recovers_the_shape_of_generalised_pareto_ratios(shape):
    # ratios drawn from a generalised Pareto with shape k have a tail of shape k (Vehtari et al. 2024)
    uniform = torch.rand(8, 8000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ratios = torch.expm1(-shape * torch.log1p(-uniform)) / shape
    khat = psis(ratios.log()).khat
    assert abs(float(khat.mean()) - shape) < 0.08


def test_psis_refuses_too_few_draws_and_nan():
    with pytest.raises(ValueError, match="at least 25 draws per set of ratios, got 10"):
        psis(torch.randn(10))
    with pytest.raises(ValueError, match="contain NaN"):
        psis(torch.tensor([0.0] * 29 + [math.nan]))
    assert good_threshold(100) == pytest.approx(0.5) and good_threshold(10**6) == pytest.approx(0.7)
    assert describe_khat(0.3, 1000).startswith("k̂ = 0.30 < 0.5: good")
    assert "bad" in describe_khat(0.8, 1000) and "very bad" in describe_khat(1.2, 1000)


# -- conjugate models ---------------------------------------------------------------------------------------
def normal_mean(x):
    mu = pyro.sample("mu", dist.Normal(0.0, PRIOR_SCALE))
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(mu, NOISE), obs=x)


def normal_posterior(x: torch.Tensor) -> tuple[float, float]:
    precision = 1 / PRIOR_SCALE**2 + len(x) / NOISE**2
    return float(x.sum() / NOISE**2 / precision), precision**-0.5


@pytest.fixture(scope="module")
def normal_fit():
    pyro.set_rng_seed(0)
    x = 3.0 + torch.randn(N, generator=torch.Generator().manual_seed(0))
    result = pplgen.fit(normal_mean, x, epochs=2000, batch_size=N, lr=0.01, valid_fraction=0, seed=0)
    return result, x


def test_inference_data_posterior_matches_the_normal_normal_closed_form(normal_fit):
    result, x = normal_fit
    idata = pplgen.to_inference_data(result, x, num_samples=2000)
    assert {"posterior", "log_likelihood", "posterior_predictive", "prior", "prior_predictive"} <= set(
        idata.groups()
    )
    assert {"observed_data", "sample_stats"} <= set(idata.groups())
    mean, sd = normal_posterior(x)
    draws = torch.as_tensor(idata.posterior["mu"].values)
    assert draws.shape == (1, 2000)
    assert abs(float(draws.mean()) - mean) < 0.25 * sd
    assert float(draws.std()) == pytest.approx(sd, rel=0.15)
    assert dict(idata.log_likelihood["x"].sizes) == {"chain": 1, "draw": 2000, "data": N}
    assert torch.allclose(torch.as_tensor(idata.observed_data["x"].values), x)
    # the pointwise log-likelihood is log N(x_n; mu_s, 1) at each draw
    expected = dist.Normal(draws[0, :, None], NOISE).log_prob(x)
    assert torch.allclose(torch.as_tensor(idata.log_likelihood["x"].values[0]), expected, atol=1e-5)
    # the prior predictive spreads as the prior does: sd sqrt(10^2 + 1)
    prior_predictive = torch.as_tensor(idata.prior_predictive["x"].values)
    assert float(prior_predictive.std()) == pytest.approx(math.hypot(PRIOR_SCALE, NOISE), rel=0.1)
    elbo = idata.sample_stats["elbo"]
    assert elbo.sizes["epoch"] == len(result.history) and float(elbo[-1]) == pytest.approx(
        -result.history[-1]["loss"]
    )
    assert (idata.sample_stats["log_weight"] == idata.sample_stats["lp"] - idata.sample_stats["log_q"]).all()


def test_loo_from_arviz_agrees_with_direct_psis_loo_and_the_exact_leave_one_out(normal_fit):
    result, x = normal_fit
    idata = pplgen.to_inference_data(result, x, num_samples=2000)
    loo = arviz().loo(idata, pointwise=True)
    direct = psis_loo(torch.as_tensor(idata.log_likelihood["x"].values[0]))
    assert loo.elpd_loo == pytest.approx(direct.elpd, abs=1e-6)
    assert loo.p_loo == pytest.approx(direct.p_loo, abs=1e-6)
    assert loo.se == pytest.approx(direct.se, abs=1e-6)
    assert torch.allclose(torch.as_tensor(loo.pareto_k.values), direct.khat, atol=1e-4)  # float32 input
    # exact: p(x_n | x_-n) = N(x_n; m_-n, 1 + v_-n), the posterior from the other points
    v = 1 / (1 / PRIOR_SCALE**2 + (N - 1) / NOISE**2)
    m = v * (x.sum() - x) / NOISE**2
    exact = float(dist.Normal(m, (NOISE**2 + v) ** 0.5).log_prob(x).sum())
    assert direct.elpd == pytest.approx(exact, abs=0.5)
    assert float(direct.khat.max()) < 0.5


def test_well_fit_guide_has_small_khat_and_a_too_narrow_one_large(normal_fit):
    result, x = normal_fit
    good = pplgen.diagnose(result, x, nuts=False)
    assert good.khat < 0.5 and good.khat_points_of == "loo"
    assert good.verdicts[0].startswith("Inference worked")
    assert 0 <= good.gap < 0.01
    mean, sd = normal_posterior(x)

    def narrow(x):  # centred right but five times too narrow
        pyro.sample("mu", dist.Normal(pyro.param("narrow_loc", torch.tensor(mean)), sd / 5))

    fixed = pplgen.fit(normal_mean, x, narrow, epochs=1, lr=1e-12, valid_fraction=0)
    bad = pplgen.diagnose(fixed, x, nuts=False)
    assert bad.khat > bad.threshold > good.khat
    assert bad.verdicts[0].startswith("Inference did not work: k̂ = ")
    assert bad.gap > 10 * good.gap


def test_beta_bernoulli_with_a_hand_written_guide():
    x = (torch.rand(80, generator=torch.Generator().manual_seed(2)) < 0.3).float()

    def model(x):
        p = pyro.sample("p", dist.Beta(2.0, 2.0))
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Bernoulli(p), obs=x)

    def guide(x):
        alpha = pyro.param("alpha", torch.tensor(10.0), constraint=constraints.positive)
        beta = pyro.param("beta", torch.tensor(10.0), constraint=constraints.positive)
        pyro.sample("p", dist.Beta(alpha, beta))

    settings = dict(epochs=1500, batch_size=80, lr=0.05, valid_fraction=0, seed=0)
    result = pplgen.fit(model, x, guide, objective=pplgen.ELBO(num_particles=4), **settings)
    posterior = dist.Beta(2.0 + x.sum(), 2.0 + len(x) - x.sum())
    idata = pplgen.to_inference_data(result, x, num_samples=2000, prior_samples=0, predictive=False)
    draws = torch.as_tensor(idata.posterior["p"].values)
    assert abs(float(draws.mean() - posterior.mean)) < 0.2 * float(posterior.stddev)
    assert float(draws.std()) == pytest.approx(float(posterior.stddev), rel=0.15)
    assert pplgen.diagnose(result, x, num_samples=500, nuts=False).khat < 0.5


# -- amortised local latents ---------------------------------------------------------------------------------
SIGMA = 0.5  # x_n = z_n + noise: z_n | x_n ~ N(x_n / (1 + σ²), σ² / (1 + σ²))


def denoise(x):
    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, SIGMA), obs=x)


@pytest.fixture(scope="module")
def denoise_data():
    generator = torch.Generator().manual_seed(3)
    return torch.randn(400, generator=generator) + SIGMA * torch.randn(400, generator=generator)


def test_amortised_posterior_has_a_data_axis_and_matches_the_closed_form(denoise_data):
    x = denoise_data
    result = pplgen.fit(denoise, x, epochs=150, batch_size=100, lr=0.01, valid_fraction=0, seed=0)
    idata = pplgen.to_inference_data(result, x[:100], num_samples=500)
    z = torch.as_tensor(idata.posterior["z"].values[0])  # (draw, data)
    assert idata.posterior["z"].dims == ("chain", "draw", "data")
    shrink = 1 / (1 + SIGMA**2)
    assert (z.mean(0) - shrink * x[:100]).abs().mean() < 0.1
    assert float(z.std(0).mean()) == pytest.approx((SIGMA**2 * shrink) ** 0.5, rel=0.15)
    found = pplgen.diagnose(result, x[:100], num_samples=500)
    assert found.khat_points_of == "importance" and found.khat_points.shape == (100,)
    assert float((found.khat_points < found.threshold).double().mean()) > 0.9
    assert found.verdicts[0].startswith("Inference worked")
    assert found.active_units == {"z": 1} and found.kl_per_dim["z"][0] > 0.5


def test_amortised_guide_that_ignores_the_data_is_flagged_point_by_point(denoise_data):
    x = denoise_data[:100]

    def blind(x):  # every point gets the same narrow posterior
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(pyro.param("blind_loc", torch.tensor(0.0)), 0.2))

    result = pplgen.fit(denoise, x, blind, epochs=1, lr=1e-12, valid_fraction=0)
    found = pplgen.diagnose(result, x, num_samples=500, nuts=False)
    assert float((found.khat_points >= found.threshold).double().mean()) > 0.5
    assert found.verdicts[0].startswith("Inference did not work: the guide's posteriors are unreliable")


# -- posterior collapse ------------------------------------------------------------------------------------
D = 12


def markov_chain_bits(n: int, seed: int) -> torch.Tensor:
    """Binary sequences that copy the previous bit with probability 0.9: an FVSBN models them exactly."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, D)
    x[:, 0] = (torch.rand(n, generator=generator) < 0.5).float()
    for i in range(1, D):
        flip = torch.rand(n, generator=generator) < 0.1
        x[:, i] = torch.where(flip, 1 - x[:, i - 1], x[:, i - 1])
    return x


class ChainVAE(PyroModule):
    """z (2-D) -> decoder biases; with ``autoregressive`` the decoder is an FVSBN over the bits, started
    at the true chain (a decoder that needs no z), else independent Bernoulli bits (which need z)."""

    def __init__(self, autoregressive: bool):
        super().__init__()
        self.to_bias = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, D))
        self.weight = nn.Parameter(torch.zeros(D, D))
        self.autoregressive = autoregressive
        if autoregressive:
            logit = math.log(0.9 / 0.1)
            with torch.no_grad():
                self.weight.copy_(torch.diag(torch.full((D - 1,), 2 * logit), -1))
                self.to_bias[-1].weight.zero_()
                self.to_bias[-1].bias.fill_(-logit)
                self.to_bias[-1].bias[0] = 0.0

    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            bias = self.to_bias(z)
            if self.autoregressive:
                pyro.sample("x", FVSBN(torch.tril(self.weight, -1), bias), obs=x)
            else:
                pyro.sample("x", dist.Bernoulli(logits=bias).to_event(1), obs=x)


@pytest.mark.parametrize("autoregressive", [True, False])
def test_posterior_collapse_fires_for_an_overpowered_decoder_only(autoregressive):
    x, test = markov_chain_bits(1000, 0), markov_chain_bits(300, 1)
    vae = ChainVAE(autoregressive)
    result = pplgen.fit(vae.model, x, epochs=40, batch_size=100, lr=1e-2, seed=0)
    found = pplgen.diagnose(result, test, num_samples=200)
    assert found.collapsed is autoregressive
    if autoregressive:
        assert found.active_units == {"z": 0} and max(found.kl_per_dim["z"]) < 0.05
        assert found.verdicts[0].startswith("Inference did not work: posterior collapse")
    else:
        assert found.active_units == {"z": 2} and min(found.kl_per_dim["z"]) > 0.3


# -- VI against NUTS ---------------------------------------------------------------------------------------
def test_mean_field_is_overconfident_against_nuts_on_correlated_regression():
    x, y = tutorial.regression_data(n=100, sigma=0.5, correlation=0.9)
    model = tutorial.regression(sigma=0.5)
    result = pplgen.fit(model, (x, y), epochs=600, batch_size=100, lr=0.02, valid_fraction=0, seed=0)
    found = pplgen.diagnose(result, (x, y), num_samples=500, nuts_samples=300, nuts_warmup=300)
    spreads = {m.name: m.sd_ratio for m in found.marginals}
    assert set(spreads) == {"a", "b[0]", "b[1]"}
    assert spreads["b[0]"] < 0.6 and spreads["b[1]"] < 0.6  # correlated coefficients: far too narrow
    assert any("overconfident for b[0], b[1]" in v for v in found.verdicts)
    assert found.nuts_divergences == 0


def test_nuts_and_vi_inference_data_line_up_in_one_forest_plot(normal_fit):
    result, x = normal_fit
    mcmc = pyro.infer.MCMC(
        pyro.infer.NUTS(normal_mean), num_samples=200, warmup_steps=200, disable_progbar=True
    )
    mcmc.run(x)
    nuts, vi = pplgen.to_inference_data(mcmc, x), pplgen.to_inference_data(result, x, num_samples=200)
    assert nuts.log_likelihood["x"].dims == vi.log_likelihood["x"].dims == ("chain", "draw", "data")
    mean, sd = normal_posterior(x)
    assert abs(float(nuts.posterior["mu"].mean()) - mean) < 0.3 * sd
    compared = arviz().compare({"vi": vi, "nuts": nuts})
    assert set(compared.index) == {"vi", "nuts"}
    axes = arviz().plot_forest([vi, nuts], model_names=["VI", "NUTS"], var_names=["mu"])
    labels = {t.get_text() for t in axes[0].get_legend().get_texts()}
    assert labels == {"VI", "NUTS"}


# -- other families and bad input ----------------------------------------------------------------------------
def test_exact_model_gets_its_exact_log_likelihood_and_nothing_to_check():
    model, (x,) = programs.fvsbn()
    result = pplgen.fit(model, x, epochs=3, valid_fraction=0, seed=0)
    idata = pplgen.to_inference_data(result, x)
    assert set(idata.groups()) == {"log_likelihood", "observed_data", "sample_stats"}
    per_point = torch.as_tensor(idata.log_likelihood["x"].values).reshape(-1)
    assert torch.allclose(per_point, pplgen.log_likelihood(result, x), atol=1e-5)
    assert pplgen.diagnose(result, x).verdicts == [
        "Nothing to check: the likelihood is exact (maximum likelihood, no approximate posterior)."
    ]


def test_bad_input_gets_clear_errors(normal_fit):
    result, x = normal_fit
    with pytest.raises(
        TypeError, match="expected a FitResult from pplgen.fit or a pyro.infer.MCMC, got dict"
    ):
        pplgen.to_inference_data({}, x)
    with pytest.raises(ValueError, match="num_samples must be at least 1, got 0"):
        pplgen.to_inference_data(result, x, num_samples=0)
    with pytest.raises(ValueError, match="at least 25 for a Pareto fit, got 10"):
        pplgen.diagnose(result, x, num_samples=10)
    gan, (data,) = programs.gan()
    fitted = pplgen.fit(gan, data, epochs=1, valid_fraction=0)
    with pytest.raises(ImplicitLikelihoodError, match="an implicit model has no likelihood"):
        pplgen.to_inference_data(fitted, data)
