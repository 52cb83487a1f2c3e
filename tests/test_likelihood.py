"""Log-likelihood estimators against a closed form: probabilistic PCA has an exact marginal likelihood."""

import pyro
import pyro.distributions as dist
import pytest
import torch

import pplgen

D, K, SIGMA = 5, 2, 0.5
GEN = torch.Generator().manual_seed(0)
W = torch.randn(D, K, generator=GEN)
B = torch.randn(D, generator=GEN)


def ppca(x):
    """z ~ N(0, I), x | z ~ N(W z + b, sigma^2 I) (Tipping & Bishop 1999)."""
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(torch.zeros(K), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z @ W.T + B, SIGMA).to_event(1), obs=x)


def exact_posterior(x):
    """q(z | x) = N(M^-1 W^T (x - b), sigma^2 M^-1), M = W^T W + sigma^2 I: the true posterior."""
    m = W.T @ W + SIGMA**2 * torch.eye(K)
    cov = SIGMA**2 * torch.linalg.inv(m)
    loc = (x - B) @ W @ torch.linalg.inv(m).T
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.MultivariateNormal(loc, covariance_matrix=cov))


def marginal(x):
    return dist.MultivariateNormal(B, covariance_matrix=W @ W.T + SIGMA**2 * torch.eye(D)).log_prob(x)


@pytest.fixture
def x():
    return dist.MultivariateNormal(B, covariance_matrix=W @ W.T + SIGMA**2 * torch.eye(D)).sample((40,))


def test_importance_sampling_with_the_true_posterior_is_exact(x):
    # with q = p(z | x) every weight equals p(x), so any number of samples gives log p(x) exactly
    ll = pplgen.log_likelihood(ppca, x, exact_posterior, num_samples=3)
    assert torch.allclose(ll, marginal(x), atol=1e-4)


def test_importance_sampling_from_the_prior_converges(x):
    # the prior is a valid but poor proposal: close on average, looser for points in the tails
    error = (pplgen.log_likelihood(ppca, x, num_samples=20000) - marginal(x)).abs()
    assert error.mean() < 0.05 and error.max() < 0.3


def test_importance_sampled_bound_is_below_the_truth_on_average(x):
    def poor_guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(torch.zeros(K), 2.0).to_event(1))

    few = pplgen.log_likelihood(ppca, x, poor_guide, num_samples=2).mean()
    many = pplgen.log_likelihood(ppca, x, poor_guide, num_samples=2000).mean()
    truth = marginal(x).mean()
    assert few < many <= truth + 0.05  # E[log p_K] increases in K towards log p(x) (Burda et al. 2016)


def test_bits_per_dim_is_nats_over_d_ln2(x):
    nats = -pplgen.log_likelihood(ppca, x, exact_posterior).mean()
    assert pplgen.bits_per_dim(ppca, x, exact_posterior) == pytest.approx(
        nats.item() / (D * 0.6931471805599453), rel=1e-5
    )


def test_sample_draws_from_the_model(x):
    torch.manual_seed(0)
    draws = pplgen.sample(ppca, 20000, x)
    assert draws.shape == (20000, D)
    cov = torch.cov(draws.T)
    assert torch.allclose(draws.mean(0), B, atol=0.05)
    assert torch.allclose(cov, W @ W.T + SIGMA**2 * torch.eye(D), atol=0.12)
    means = pplgen.sample(ppca, 5, x, mean=True)
    assert means.shape == (5, D)
