"""Adversarial guides: ALI/BiGAN on a linear-Gaussian toy whose joint is known, AVB against an exact
bimodal posterior, and the zoo's ALI and AVB on embedded data."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pplgen
from pplgen.data.embedded import digits, ring8
from pplgen.errors import GuideError, ModelError
from pplgen.infer.adversarial import ALITrainer
from pplgen.infer.avb import AVBTrainer
from pplgen.infer.gan_objectives import AdversarialSettings
from pplgen.infer.objectives import ELBO
from pplgen.models.ali import ALI
from pplgen.models.avb import AVB

# -- ALI ---------------------------------------------------------------------------------------------------

LOC, SCALE, NOISE = 3.0, 0.5, 0.1  # data N(3, 0.5^2); the generator adds N(0, 0.1^2) to a z + b


class LinearPair(nn.Module):
    r"""Generator :math:`x = a z + b + 0.1 \eta` and encoder :math:`z = c x + d + 0.2 \epsilon`.

    For data :math:`N(3, 0.5^2)` the joint game has an exact solution: :math:`a^2 + 0.01 = 0.25`,
    :math:`b = 3`, and the encoder is the generator's posterior, :math:`c = a / 0.25`,
    :math:`d = -3c`, whose standard deviation :math:`\sqrt{1 - a^2 / 0.25} = 0.2` is fixed here.
    """

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(1.0))
        self.b = nn.Parameter(torch.tensor(0.0))
        self.c = nn.Parameter(torch.tensor(1.0))
        self.d = nn.Parameter(torch.tensor(0.0))

    def generate(self, z):
        return self.a * z + self.b + NOISE * torch.randn_like(z)

    def encode(self, x):
        return self.c * x + self.d

    def model(self, x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
            pyro.sample("x", pplgen.Implicit(self.generate(z), event_dim=1), obs=x)

    def guide(self, x):
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(self.encode(x), 0.2).to_event(1))


def gaussian_data(n=2000, seed=0):
    return LOC + SCALE * torch.randn(n, 1, generator=torch.Generator().manual_seed(seed))


def small_critic(width: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(width, 32), nn.LeakyReLU(0.2), nn.Linear(32, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1)
    )


def test_ali_learns_a_linear_gaussian_joint_and_an_encoder_that_inverts_the_generator():
    pair, critic = LinearPair(), small_critic(2)
    result = pplgen.fit(
        pair.model,
        gaussian_data(),
        pair.guide,
        epochs=100,
        batch_size=100,
        lr=1e-2,
        seed=0,
        valid_fraction=0,
        discriminator=critic,
        adversarial=AdversarialSettings(r1=0.1, ema=0.99),
        progress=False,
    )
    assert isinstance(result.trainer, ALITrainer)
    with torch.no_grad():
        z = torch.randn(4000, 1, generator=torch.Generator().manual_seed(1))
        fake = pair.generate(z)
        # the generator's marginal is the data's
        assert fake.mean().item() == pytest.approx(LOC, abs=0.1)
        assert fake.std().item() == pytest.approx(SCALE, abs=0.1)
        # the encoder inverts the generator
        encoded = pair.encode(fake) + 0.2 * torch.randn_like(z)
        assert abs(torch.corrcoef(torch.cat([z, encoded], 1).T)[0, 1].item()) > 0.9
        # the trained discriminator tells fresh real pairs from fresh fake ones no better than chance
        x = gaussian_data(4000, seed=2)
        real = torch.cat([x, pair.encode(x) + 0.2 * torch.randn_like(x)], 1)
        hits = (critic(real) > 0).float().mean() + (critic(torch.cat([fake, z], 1)) < 0).float().mean()
        assert (hits / 2).item() == pytest.approx(0.5, abs=0.1)


def test_the_encoder_plays_with_swapped_labels_and_the_guide_is_trained():
    pair = LinearPair()
    data = gaussian_data(200)
    critic = nn.Linear(2, 1)
    result = pplgen.fit(
        pair.model, data, pair.guide, epochs=1, batch_size=50, seed=0, valid_fraction=0, discriminator=critic
    )
    trainer = result.trainer
    assert any(m is pair for _, m in trainer.modules())
    assert {id(pair.c), id(pair.d)} <= {id(p) for p in trainer.params}
    assert pair.c.item() != 1.0 and pair.d.item() != 0.0  # the encoder's parameters were updated
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    with torch.no_grad():
        expected = F.softplus(-critic(fake)).mean() + F.softplus(critic(real)).mean()
        assert trainer.g_loss(real, fake).item() == pytest.approx(expected.item(), rel=1e-6)


def test_the_zoo_ali_trains_samples_and_rebuilds_on_ring8():
    data = ring8("train", num_points=256)
    ali = ALI.from_dataset(data, z_dim=3, hidden=16)
    before = [p.detach().clone() for p in ali.encoder.parameters()]
    result = pplgen.fit(ali.model, data.x, ali.guide, epochs=2, batch_size=64, seed=0, progress=False)
    assert isinstance(result.trainer, ALITrainer)
    assert result.graph.graph["family"] == "implicit"
    first = next(m for m in result.trainer.discriminator.modules() if isinstance(m, nn.Linear))
    assert first.in_features == 2 + 3  # the default discriminator sees x and z joined
    assert all(not torch.equal(b, p) for b, p in zip(before, ali.encoder.parameters(), strict=True))
    assert pplgen.sample(result, 10).shape == (10, 2)
    assert ALI(**ali.config).config == ali.config
    assert {"d_loss", "g_loss", "val_d_loss"} <= set(result.history[-1])


def test_an_ali_guide_whose_latents_do_not_match_is_refused():
    pair = LinearPair()

    def guide(x):
        with pyro.plate("data", len(x)):
            pyro.sample("code", dist.Normal(pair.encode(x), 0.2).to_event(1))

    with pytest.raises(GuideError, match="no site for the model's latent 'z'"):
        pplgen.fit(pair.model, gaussian_data(100), guide, epochs=1, batch_size=50)


# -- AVB ---------------------------------------------------------------------------------------------------


class NoisyEncoder(nn.Module):
    """An implicit guide z = E(x, eps): an MLP on the data point and four noise inputs."""

    def __init__(self, noise_scale: float = 1.0):
        super().__init__()
        self.noise_scale = noise_scale
        self.net = nn.Sequential(nn.Linear(5, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))

    def draw(self, x):
        return self.net(torch.cat([x, self.noise_scale * torch.randn(len(x), 4)], 1))

    def guide(self, x):
        with pyro.plate("data", len(x)):
            pyro.sample("z", pplgen.Implicit(self.draw(x), event_dim=1))


def linear_gaussian(x):
    """z ~ N(0, 1), x ~ N(z, 1): no parameters."""
    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)


def test_the_discriminator_learns_the_log_density_ratio_of_guide_and_prior():
    """With a fixed guide q(z | x) = N(x / 2, 0.6^2), T should reach log q(z | x) - log p(z), whose mean
    under q is the closed-form KL(q || p)."""

    class Fixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.slope = nn.Parameter(torch.tensor(0.5))  # lr=0 keeps it; an optimiser needs a parameter

        def guide(self, x):
            with pyro.plate("data", len(x)):
                z = self.slope * x + 0.6 * torch.randn_like(x)
                pyro.sample("z", pplgen.Implicit(z, event_dim=1))

    data = torch.randn(1000, 1, generator=torch.Generator().manual_seed(0)) * 2**0.5
    critic = small_critic(2)
    guide = Fixed()
    result = pplgen.fit(
        linear_gaussian, data, guide.guide, epochs=40, batch_size=100, lr=0.0, d_lr=3e-3, seed=0,
        discriminator=critic, progress=False,
    )  # fmt: skip
    assert isinstance(result.trainer, AVBTrainer)
    assert result.settings["objective"] == "AdversarialELBO"
    assert {"loss", "t_loss", "val_loss", "val_t_loss"} <= set(result.history[-1])
    x = torch.randn(4000, 1, generator=torch.Generator().manual_seed(1)) * 2**0.5
    with torch.no_grad():
        z = 0.5 * x + 0.6 * torch.randn_like(x)
        ratio = dist.Normal(0.5 * x, 0.6).log_prob(z) - dist.Normal(0.0, 1.0).log_prob(z)
        t = critic(torch.cat([x, z], 1))
    kl = 0.5 * (0.36 + 0.25 * x.pow(2) - 1.0 - torch.log(torch.tensor(0.36)))
    assert torch.corrcoef(torch.cat([t, ratio], 1).T)[0, 1].item() > 0.9
    assert t.mean().item() == pytest.approx(kl.mean().item(), abs=0.15)


SIGMA = 0.3  # x ~ N(z^2, 0.3^2): given x = 1 the posterior has two modes, near z = -1 and z = +1


def squared(x):
    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z * z, SIGMA).to_event(1), obs=x)


class GaussianEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, 64), nn.ReLU(), nn.Linear(64, 2))

    def params(self, x):
        loc, raw = self.net(x).chunk(2, -1)
        return loc, F.softplus(raw) + 1e-3

    def draw(self, x):
        loc, scale = self.params(x)
        return loc + scale * torch.randn_like(loc)

    def guide(self, x):
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(*self.params(x)).to_event(1))


def histogram_kl(draws: torch.Tensor, x: float) -> float:
    """KL(exact posterior || histogram of the draws) on a grid of 81 bins over [-4, 4]."""
    grid = torch.linspace(-4, 4, 81)
    log_post = dist.Normal(0.0, 1.0).log_prob(grid) + dist.Normal(grid**2, SIGMA).log_prob(torch.tensor(x))
    post = (log_post - log_post.logsumexp(0)).exp()
    half = (grid[1] - grid[0]) / 2
    counts = torch.histogram(draws.clamp(-4, 4), torch.cat([grid - half, grid[-1:] + half])).hist + 0.5
    return float((post * (post.clamp_min(1e-30).log() - (counts / counts.sum()).log())).sum())


def test_avb_finds_both_modes_of_a_bimodal_posterior_where_a_gaussian_guide_finds_one():
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(2000, 1, generator=generator)
    data = z * z + SIGMA * torch.randn(2000, 1, generator=generator)
    # noise enters at scale 3 so that the encoder's first draws straddle z = 0, where the modes split
    implicit, gaussian = NoisyEncoder(noise_scale=3.0), GaussianEncoder()
    settings = {"epochs": 100, "batch_size": 100, "lr": 3e-3, "seed": 3, "progress": False}
    avb = pplgen.fit(squared, data, implicit.guide, discriminator=small_critic(2), **settings)
    svi = pplgen.fit(squared, data, gaussian.guide, **settings)
    assert isinstance(avb.trainer, AVBTrainer) and not isinstance(svi.trainer, AVBTrainer)
    at = torch.ones(20000, 1)
    with torch.no_grad():
        avb_draws, gaussian_draws = implicit.draw(at).squeeze(1), gaussian.draw(at).squeeze(1)
    assert 0.05 < (avb_draws > 0).float().mean().item() < 0.95  # mass in both modes
    assert histogram_kl(avb_draws, 1.0) < 0.5 * histogram_kl(gaussian_draws, 1.0)


def test_an_implicit_guide_refuses_an_objective_that_needs_its_density():
    with pytest.raises(ModelError, match="has no log q"):
        pplgen.fit(linear_gaussian, torch.randn(64, 1), NoisyEncoder().guide, objective=ELBO(), epochs=1)


def test_the_zoo_avb_trains_samples_and_rebuilds_on_binary_digits():
    data = digits("train")
    avb = AVB.from_dataset(data, z_dim=2, hidden=32, noise_dim=3)
    result = pplgen.fit(avb.model, data.x, avb.guide, epochs=2, batch_size=128, seed=0, progress=False)
    assert isinstance(result.trainer, AVBTrainer)
    assert result.graph.graph["family"] == "latent"
    first = next(m for m in result.trainer.discriminator.modules() if isinstance(m, nn.Linear))
    assert first.in_features == 64 + 2  # the default discriminator sees x and z joined
    samples = pplgen.sample(result, 5)
    assert samples.shape == (5, 64) and set(samples.unique().tolist()) <= {0.0, 1.0}
    assert AVB(**avb.config).config == avb.config
    assert avb.infer(data.x[:7]).shape == (7, 2)
    with pytest.raises(ModelError, match="expected arch='mlp', got 'conv'"):
        AVB(64, arch="conv")
