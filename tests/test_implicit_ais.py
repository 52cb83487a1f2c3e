"""AIS log-likelihood of implicit programs with a Gaussian observation model (Wu et al. 2017).

A linear generator G(z) = W z + b with z ~ N(0, I_k), observed through N(G(z), sigma^2 I), is
probabilistic PCA: p(x) = N(b, W W^T + sigma^2 I) in closed form (Tipping & Bishop 1999).
"""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.nn import PyroModule, pyro_method

import pplgen
from pplgen.distributions.implicit import Implicit
from pplgen.errors import DataError, ModelError
from pplgen.evaluate.ais import AISSettings
from pplgen.evaluate.implicit_ais import choose_scale, gaussian_observation, implicit_log_likelihood
from pplgen.models.gan import GAN

D, K = 5, 2
GEN = torch.Generator().manual_seed(0)
W = torch.randn(D, K, generator=GEN)
B = torch.randn(D, generator=GEN)


class LinearGenerator(PyroModule):
    """x = W z + b, simulated at an Implicit site: a GAN whose generator is linear."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(K, D)
        with torch.no_grad():
            self.linear.weight.copy_(W)
            self.linear.bias.copy_(B)

    @pyro_method
    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(K), 1.0).to_event(1))
            pyro.sample("x", Implicit(self.linear(z), event_dim=1), obs=x)


def marginal(x, sigma):
    return dist.MultivariateNormal(B, covariance_matrix=W @ W.T + sigma**2 * torch.eye(D)).log_prob(x)


def ppca_data(n, sigma, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, K, generator=gen) @ W.T + B + sigma * torch.randn(n, D, generator=gen)


def test_gaussian_observation_gives_the_implicit_site_a_normal_likelihood():
    generator = LinearGenerator()
    x = ppca_data(6, 0.5, seed=1)
    noisy = gaussian_observation(generator.model, 0.5)
    trace = poutine.trace(noisy).get_trace(x)
    site = trace.nodes["x"]
    mean = generator.linear(trace.nodes["z"]["value"])
    expected = dist.Normal(mean, 0.5).log_prob(x).sum(-1)
    assert site["fn"].event_shape == (D,) and site["fn"].batch_shape == (6,)
    assert torch.allclose(site["fn"].log_prob(x), expected)
    assert torch.equal(site["value"], x)
    # the wrapper leaves the program itself implicit, and the wrapped one is a latent model
    assert pplgen.inspect(generator.model, x).graph["family"] == "implicit"
    assert pplgen.inspect(noisy, x).graph["family"] == "latent"


def test_gaussian_observation_samples_with_the_noise_scale():
    generator = LinearGenerator()
    trace = poutine.trace(poutine.uncondition(gaussian_observation(generator.model, 0.3))).get_trace(
        torch.zeros(4000, D)
    )
    residual = trace.nodes["x"]["value"] - generator.linear(trace.nodes["z"]["value"])
    assert residual.std().item() == pytest.approx(0.3, rel=0.03)
    assert residual.mean().abs().item() < 0.01


def test_ais_matches_the_ppca_marginal_and_improves_with_temperatures():
    pyro.set_rng_seed(4)
    generator = LinearGenerator()
    x = ppca_data(40, 0.5, seed=2)
    exact = marginal(x, 0.5)
    coarse = implicit_log_likelihood(
        generator.model, x, scale=0.5, num_chains=4, ais=AISSettings(steps=5, leapfrog_steps=2)
    )
    fine = implicit_log_likelihood(
        generator.model, x, scale=0.5, num_chains=32, ais=AISSettings(steps=300, leapfrog_steps=5)
    )
    assert coarse.shape == fine.shape == (40,)
    coarse_gap, fine_gap = (exact - coarse).mean().item(), (exact - fine).mean().item()
    assert abs(fine_gap) < 0.05
    assert coarse_gap > 1.0


def test_ais_on_the_noisy_program_is_ais_on_the_explicit_ppca_program():
    def ppca(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(K), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ W.T + B, 0.5).to_event(1), obs=x)

    generator = LinearGenerator()  # before seeding: initialising its layer draws random numbers
    x, settings = ppca_data(10, 0.5, seed=5), AISSettings(steps=20, leapfrog_steps=3)
    pyro.set_rng_seed(7)
    implicit = implicit_log_likelihood(generator.model, x, scale=0.5, num_chains=4, ais=settings)
    pyro.set_rng_seed(7)
    explicit = pplgen.log_likelihood(ppca, x, num_samples=4, method="ais", ais=settings)
    assert torch.allclose(implicit, explicit, atol=1e-4)


def test_choose_scale_picks_the_noise_level_of_the_data():
    pyro.set_rng_seed(5)
    generator = LinearGenerator()
    x = ppca_data(20, 0.4, seed=3)
    grid = (0.2, 0.4, 0.8)
    settings = AISSettings(steps=300, leapfrog_steps=5)
    choice = choose_scale(generator.model, x, grid, num_chains=4, ais=settings)
    assert choice.scale == 0.4
    assert list(choice.mean_log_likelihood) == list(grid)
    for sigma, score in choice.mean_log_likelihood.items():
        exact = marginal(x, sigma).mean().item()
        # AIS is a stochastic lower bound, looser where sigma is small and the posterior sharp
        assert exact - 0.4 < score < exact + 0.05


def test_a_fitted_gan_is_evaluated_through_its_fit_result():
    x = ppca_data(32, 0.5, seed=4)
    module = GAN(dim=D, z_dim=2, hidden=8)
    result = pplgen.fit(module.model, x, epochs=1, batch_size=16, seed=0)
    settings = AISSettings(steps=10, leapfrog_steps=2)
    pyro.set_rng_seed(6)
    from_result = implicit_log_likelihood(result, x[:6], scale=0.5, num_chains=3, ais=settings, max_rows=6)
    pyro.set_rng_seed(6)
    from_program = implicit_log_likelihood(
        module.model, x[:6], scale=0.5, num_chains=3, ais=settings, max_rows=6, device="cpu"
    )
    assert from_result.shape == (6,) and torch.isfinite(from_result).all()
    assert torch.allclose(from_result, from_program)


def test_a_program_with_a_likelihood_is_sent_to_log_likelihood():
    def ppca(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(K), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ W.T + B, 0.5).to_event(1), obs=x)

    with pytest.raises(ModelError, match="no observed Implicit site.*pplgen.log_likelihood"):
        implicit_log_likelihood(ppca, ppca_data(4, 0.5, seed=0), scale=0.5)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), "0.5"])
def test_a_bad_scale_is_rejected_with_its_value(scale):
    generator = LinearGenerator()
    with pytest.raises(DataError, match=f"got {scale!r}".replace("(", r"\(")):
        implicit_log_likelihood(generator.model, ppca_data(4, 0.5, seed=0), scale=scale)
    with pytest.raises(DataError, match="scale"):
        gaussian_observation(generator.model, scale)
    with pytest.raises(DataError, match="scale"):
        choose_scale(generator.model, ppca_data(4, 0.5, seed=0), [0.5, scale])


def test_choose_scale_needs_a_candidate():
    with pytest.raises(DataError, match="at least one candidate"):
        choose_scale(LinearGenerator().model, ppca_data(4, 0.5, seed=0), [])
