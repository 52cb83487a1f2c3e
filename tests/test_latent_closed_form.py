"""Latent-family bounds and estimators against probabilistic PCA, whose marginal likelihood is known.

x = W z + mu + sigma * eps with z ~ N(0, I_k): p(x) = N(mu, W W^T + sigma^2 I) and the posterior is
q*(z | x) = N(M^-1 W^T (x - mu), sigma^2 M^-1) with M = W^T W + sigma^2 I (Tipping & Bishop 1999).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import pplgen
from pplgen.evaluate import AISSettings
from pplgen.guides import AmortisedGuide
from pplgen.infer import ELBO, IWAE

D, K_LATENT, SIGMA = 5, 2, 0.5


@pytest.fixture(scope="module")
def ppca():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(D, K_LATENT, generator=gen)
    mu = torch.randn(D, generator=gen)
    z = torch.randn(400, K_LATENT, generator=gen)
    x = z @ w.T + mu + SIGMA * torch.randn(400, D, generator=gen)

    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(K_LATENT), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ w.T + mu, SIGMA).to_event(1), obs=x)

    m = w.T @ w + SIGMA**2 * torch.eye(K_LATENT)
    gain = torch.linalg.solve(m, w.T)  # (k, D): the posterior mean is gain (x - mu)
    post_cov = SIGMA**2 * torch.linalg.inv(m)
    exact = dist.MultivariateNormal(mu, w @ w.T + SIGMA**2 * torch.eye(D)).log_prob(x)
    return {"model": model, "x": x, "w": w, "mu": mu, "gain": gain, "post_cov": post_cov, "exact": exact}


class ExactPosterior(nn.Module):
    """q(z | x) = N(gain (x - mu) + shift, diag(scale)^2), exact at shift = 0, scale = the posterior's sds
    (the posterior of PPCA need not be diagonal; these tests choose W so that the check is on the mean)."""

    def __init__(self, ppca, diagonal: torch.Tensor):
        super().__init__()
        self.gain, self.mu = ppca["gain"], ppca["mu"]
        self.shift = nn.Parameter(torch.zeros(K_LATENT))
        self.log_scale = nn.Parameter(diagonal.sqrt().log())

    def forward(self, x):
        with pyro.plate("data", len(x)):
            loc = (x - self.mu) @ self.gain.T + self.shift
            pyro.sample("z", dist.Normal(loc, self.log_scale.exp()).to_event(1))


def full_posterior(ppca):
    scale_tril = torch.linalg.cholesky(ppca["post_cov"])

    def guide(x):
        with pyro.plate("data", len(x)):
            loc = (x - ppca["mu"]) @ ppca["gain"].T
            pyro.sample("z", dist.MultivariateNormal(loc, scale_tril=scale_tril))

    return guide


def bound(objective, model, guide, x) -> float:
    """The bound per data point that ``objective`` reports on ``x`` (no training)."""
    with torch.no_grad():
        _, terms = objective.loss(model, guide, (x,), len(x), ("data",), training=False)
    return float(terms.bound)


def test_elbo_equals_log_p_at_the_exact_posterior_and_is_below_it_elsewhere(ppca):
    pyro.set_rng_seed(0)
    x, exact = ppca["x"], ppca["exact"].mean().item()
    at_posterior = bound(ELBO(analytic_kl=False), ppca["model"], full_posterior(ppca), x)
    assert at_posterior == pytest.approx(exact, abs=1e-4)  # log p - log q is constant: KL(q || p(z|x)) = 0
    diagonal = ExactPosterior(ppca, ppca["post_cov"].diagonal())
    assert bound(ELBO(num_particles=20), ppca["model"], diagonal, x) < exact


def test_analytic_and_sampled_kl_agree_in_expectation(ppca):
    pyro.set_rng_seed(1)
    guide = ExactPosterior(ppca, ppca["post_cov"].diagonal())
    analytic = bound(ELBO(num_particles=1, analytic_kl=True), ppca["model"], guide, ppca["x"])
    sampled = bound(ELBO(num_particles=200, analytic_kl=False), ppca["model"], guide, ppca["x"])
    assert sampled == pytest.approx(analytic, abs=0.02)


@pytest.fixture(scope="module")
def trained(ppca):
    """The automatic guide fitted to PPCA data (the model has no parameters: only q is learned)."""
    pyro.set_rng_seed(0)
    guide = AmortisedGuide(ppca["model"], hidden=(64,))
    return pplgen.fit(
        ppca["model"], ppca["x"], guide, epochs=150, batch_size=100, lr=5e-3, seed=0, valid_fraction=0
    )


def test_auto_guide_elbo_is_below_and_close_to_the_exact_marginal(ppca, trained):
    pyro.set_rng_seed(2)
    exact = ppca["exact"].mean().item()
    elbo = bound(ELBO(num_particles=50), ppca["model"], trained.guide, ppca["x"])
    assert elbo < exact
    # the mean field misses only the posterior's correlation (KL of a 2-D Gaussian to its diagonal)
    cov = ppca["post_cov"]
    mean_field_gap = 0.5 * (cov.diagonal().log().sum() - torch.logdet(cov)).item()
    assert exact - elbo < mean_field_gap + 0.05


def test_importance_sampling_converges_to_the_exact_marginal(ppca, trained):
    pyro.set_rng_seed(3)
    x, exact = ppca["x"][:100], ppca["exact"][:100]
    wide = ExactPosterior(ppca, 2.0 * ppca["post_cov"].diagonal())  # a proposal with a clear gap
    errors = []
    for k in (1, 10, 1000):
        repeats = 1000 // k  # the same number of weights for every K, so the noise is comparable
        estimate = pplgen.log_likelihood(ppca["model"], x.repeat(repeats, 1), wide, num_samples=k)
        errors.append((exact.repeat(repeats) - estimate).mean().item())
    assert errors[0] > errors[1] > errors[2] > -0.01  # a lower bound that tightens with K
    assert errors[0] > 0.1 and errors[2] < 0.01
    # the trained automatic guide is a good proposal
    assert (exact - pplgen.log_likelihood(trained, x, num_samples=1000)).mean().item() == pytest.approx(
        0, abs=0.01
    )
    # with the prior as proposal the estimate converges too, only far more slowly; K above max_rows
    # runs in chunks of samples
    few = pplgen.log_likelihood(ppca["model"], x[:20], num_samples=50)
    many = pplgen.log_likelihood(ppca["model"], x[:20], num_samples=5000, max_rows=1000)
    assert 0 < (exact[:20] - many).mean().item() < min(0.15, (exact[:20] - few).mean().item())


def test_annealed_importance_sampling_converges_to_the_exact_marginal(ppca):
    pyro.set_rng_seed(4)
    x, exact = ppca["x"][:20], ppca["exact"][:20]
    coarse = pplgen.log_likelihood(
        ppca["model"], x, num_samples=4, method="ais", ais=AISSettings(steps=5, leapfrog_steps=2)
    )
    fine = pplgen.log_likelihood(
        ppca["model"], x, num_samples=16, method="ais", ais=AISSettings(steps=300, leapfrog_steps=5)
    )
    coarse_gap, fine_gap = (exact - coarse).mean().item(), (exact - fine).mean().item()
    assert fine_gap < coarse_gap
    assert -0.03 < fine_gap < 0.05  # a stochastic lower bound: noise below, a small gap above


def test_estimate_reports_standard_error_and_estimator(ppca, trained):
    pyro.set_rng_seed(5)
    values, found = pplgen.evaluate.estimate(trained, ppca["x"][:50], num_samples=20)
    assert found.mean == pytest.approx(values.mean().item())
    assert found.stderr == pytest.approx(values.std().item() / math.sqrt(50))
    assert found.estimator == "importance-sampled, K=20"
    _, annealed = pplgen.evaluate.estimate(
        ppca["model"], ppca["x"][:4], num_samples=2, method="ais", ais=AISSettings(steps=3, leapfrog_steps=1)
    )
    assert annealed.estimator.startswith("AIS, 2 chains x 3 steps from the prior")


def test_iwae_bound_tightens_with_k_and_stays_below_log_p(ppca):
    pyro.set_rng_seed(6)
    guide = ExactPosterior(ppca, 2.0 * ppca["post_cov"].diagonal())  # deliberately too wide
    exact = ppca["exact"].mean().item()
    bounds = [bound(IWAE(k), ppca["model"], guide, ppca["x"]) for k in (1, 5, 50)]
    assert bounds[0] < bounds[1] < bounds[2] < exact + 0.01


def _guide_gradient(objective, ppca, guide, seed):
    pyro.set_rng_seed(seed)
    loss, _ = objective.loss(ppca["model"], guide, (ppca["x"][:50],), 50, ("data",), training=True)
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(guide.parameters()))])


@pytest.mark.parametrize("gradient", ["stl", "dreg"])
def test_stl_and_dreg_gradients_vanish_at_the_exact_posterior(ppca, gradient):
    """At q = p(z | x) every weight is p(x), so the path-derivative estimators are exactly zero, while the
    standard estimator is noisy around zero (Roeder et al. 2017; Tucker et al. 2019)."""
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    orthogonal = {**ppca, "w": w}
    m = w.T @ w + SIGMA**2 * torch.eye(K_LATENT)  # diagonal, so the diagonal guide can be exact
    orthogonal["gain"] = torch.linalg.solve(m, w.T)

    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(K_LATENT), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ w.T + ppca["mu"], SIGMA).to_event(1), obs=x)

    orthogonal["model"] = model
    guide = ExactPosterior(orthogonal, (SIGMA**2 * torch.linalg.inv(m)).diagonal())
    special = _guide_gradient(IWAE(8, gradient=gradient), orthogonal, guide, seed=0)
    standard = _guide_gradient(IWAE(8, gradient="standard"), orthogonal, guide, seed=0)
    assert special.abs().max() < 1e-4
    assert standard.abs().max() > 1e-2


@pytest.mark.parametrize(("gradient", "k"), [("dreg", 4), ("stl", 1)])
def test_dreg_and_stl_are_unbiased(ppca, gradient, k):
    """Averaged over many draws DReG agrees with the standard IWAE gradient; STL only at K = 1 (for
    K > 1 dropping the score term biases the IWAE gradient, which is what DReG repairs)."""
    guide = ExactPosterior(ppca, 3.0 * ppca["post_cov"].diagonal())
    with torch.no_grad():
        guide.shift.add_(0.3)
    draws = {
        name: torch.stack([_guide_gradient(IWAE(k, name), ppca, guide, seed) for seed in range(60)])
        for name in ("standard", gradient)
    }
    gap = (draws[gradient].mean(0) - draws["standard"].mean(0)).abs()
    noise = (draws[gradient].var(0) / 60 + draws["standard"].var(0) / 60).sqrt()
    assert bool((gap < 5 * noise).all()), (gap, noise)


def test_free_bits_and_warmup_change_training_not_the_reported_bound(ppca):
    guide = ExactPosterior(ppca, ppca["post_cov"].diagonal())
    x = ppca["x"][:64]
    args = (ppca["model"], guide, (x,), 64, ("data",))
    pyro.set_rng_seed(7)
    plain_loss, plain = ELBO().loss(*args, training=True)
    per_dim = plain.kl["z"]  # KL per dimension per data point, analytic
    pyro.set_rng_seed(7)
    free = ELBO(free_bits=5.0)
    free_loss, terms = free.loss(*args, training=True)
    # every dimension has less than 5 nats of KL, so each is charged 5 nats instead
    assert bool((per_dim < 5.0).all())
    expected = plain_loss.item() - per_dim.sum().item() + 5.0 * K_LATENT
    assert free_loss.item() == pytest.approx(expected, rel=1e-5)
    assert float(terms.bound) == pytest.approx(float(plain.bound), rel=1e-6)  # the plain ELBO itself
    warm = ELBO(warmup=10)
    assert [warm.beta(True)] + [warm.beta(False)] == [0.1, 1.0]
    warm.steps = 20
    assert warm.beta(True) == 1.0


def test_iwae_training_reports_active_units(ppca):
    result = pplgen.fit(
        ppca["model"],
        ppca["x"],
        AmortisedGuide(ppca["model"], hidden=(16,)),
        objective=IWAE(5),
        epochs=2,
        seed=0,
    )
    row = result.history[-1]
    assert row["latent_units"] == K_LATENT and 0 <= row["active_units"] <= K_LATENT
    assert result.settings["objective"] == "IWAE(num_samples=5, gradient='standard')"
