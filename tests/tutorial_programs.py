"""Model programs in the style of Pyro's tutorials, written with no guide, for the automatic guide's tests.

Each builder returns a plain Pyro function (networks registered with ``pyro.module``, not PyroModules),
called the way ``pplgen.fit`` calls it: ``model(*batch)`` on mini-batches whose first dimension indexes
the data points. The ``*_data`` builders draw seeded synthetic data from the true values they are given.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from tests import programs as reference_programs

IMAGE = (8, 8)  # the digits' image shape
PIXELS = 64


def mlp(inputs: int, outputs: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs))


def vae(z_dim: int = 4, hidden: int = 64, images: bool = False):
    """Kingma & Welling (2014), "Auto-encoding variational Bayes": Pyro's VAE tutorial with no guide.

    ``images=True`` observes each digit as an ``(8, 8)`` image (``to_event(2)``) rather than a flat
    vector, so an encoder can read it as a picture.
    """
    decoder = mlp(z_dim, PIXELS, hidden)

    def model(x):  # (N, 64)
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(z_dim), 1.0).to_event(1))
            logits = decoder(z)  # (N, 64)
            if images:
                image = dist.Bernoulli(logits=logits.reshape(-1, *IMAGE)).to_event(2)
                pyro.sample("x", image, obs=x.reshape(-1, *IMAGE))
            else:
                pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)

    model.decoder = decoder
    return model


def ssvae(z_dim: int = 4, hidden: int = 64, classes: int = 10):
    """Kingma, Rezende, Mohamed & Welling (2014), "Semi-supervised learning with deep generative models"
    (M2): the label is observed where ``labelled`` is true and latent elsewhere (Pyro's ``obs_mask``
    makes a latent site ``y_unobserved`` for the missing labels).

    Called as ``model(x, y, labelled)``; ``y`` holds any valid class where a label is missing.
    """
    decoder = mlp(z_dim + classes, PIXELS, hidden)

    def model(x, y, labelled):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0]):
            label = pyro.sample("y", dist.Categorical(logits=torch.zeros(classes)), obs=y, obs_mask=labelled)
            z = pyro.sample("z", dist.Normal(torch.zeros(z_dim), 1.0).to_event(1))
            # an enumerated label carries enumeration dims on the left: broadcast z to them
            onehot = F.one_hot(label, classes).float()  # (..., N, classes)
            z = z.expand(*onehot.shape[:-1], z_dim)
            logits = decoder(torch.cat([z, onehot], dim=-1))
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)

    return model


def gmm(components: int = 3):
    """Pyro's Gaussian mixture tutorial: global ``weights``, ``scale`` and ``locs``; the local
    ``assignment`` enumerated in the model (the reference program of :mod:`tests.programs`)."""
    return reference_programs.gmm(components)[0]


def gmm_data(n: int = 300, locs=(-4.0, 0.0, 5.0), scale: float = 0.5, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    assignment = torch.randint(len(locs), (n,), generator=generator)
    return torch.tensor(locs)[assignment] + scale * torch.randn(n, generator=generator)


def regression(prior_scale: float = 10.0, sigma: float | None = None):
    """Pyro's Bayesian regression tutorial: global intercept ``a``, coefficients ``b`` and noise ``sigma``.

    ``sigma`` fixes the noise, which makes the posterior of ``(a, b)`` Gaussian in closed form.
    """

    def model(x, y):  # (N, P), (N,)
        a = pyro.sample("a", dist.Normal(0.0, prior_scale))
        b = pyro.sample("b", dist.Normal(torch.zeros(x.shape[1]), prior_scale).to_event(1))
        noise = pyro.sample("sigma", dist.Uniform(0.0, 10.0)) if sigma is None else sigma
        mean = a + x @ b
        with pyro.plate("data", x.shape[0]):
            pyro.sample("obs", dist.Normal(mean, noise), obs=y)

    return model


def regression_data(n: int = 200, a: float = 1.0, b=(2.0, -1.0), sigma: float = 0.5, correlation=0.8, seed=0):
    """Correlated covariates, so the coefficients' posterior is correlated and mean field shows its
    underestimated spread."""
    generator = torch.Generator().manual_seed(seed)
    common = torch.randn(n, 1, generator=generator)
    x = correlation**0.5 * common + (1 - correlation) ** 0.5 * torch.randn(n, len(b), generator=generator)
    y = a + x @ torch.tensor(b) + sigma * torch.randn(n, generator=generator)
    return x, y


def random_intercepts():
    """Gelman & Hill (2007), varying intercepts: groups are the data points, each with several
    observations in a plate nested inside the data plate (data shaped ``(G, M)``, observed as ``(M, G)``
    so that the data axis is not the leading one)."""

    def model(y):  # (G, M)
        mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
        tau = pyro.sample("tau", dist.HalfNormal(5.0))
        with pyro.plate("groups", y.shape[0], dim=-1):
            intercept = pyro.sample("intercept", dist.Normal(mu, tau))
            with pyro.plate("members", y.shape[1], dim=-2):
                pyro.sample("y", dist.Normal(intercept, 1.0), obs=y.T)

    return model


def dmm(z_dim: int = 4, hidden: int = 32, x_dim: int = 8):
    """Krishnan, Shalit & Sontag (2017), "Structured inference networks for nonlinear state space models":
    a deep Markov model with a latent ``z_t`` and an observed ``x_t`` per step, in the data plate."""
    transition, emitter = mlp(z_dim, z_dim, hidden), mlp(z_dim, x_dim, hidden)

    def model(sequences):  # (N, T, x_dim)
        pyro.module("transition", transition)
        pyro.module("emitter", emitter)
        z = torch.zeros(sequences.shape[0], z_dim)
        with pyro.plate("sequences", sequences.shape[0]):
            for t in pyro.markov(range(1, sequences.shape[1] + 1)):
                z = pyro.sample(f"z_{t}", dist.Normal(transition(z), 1.0).to_event(1))
                logits = emitter(z)
                pyro.sample(f"x_{t}", dist.Bernoulli(logits=logits).to_event(1), obs=sequences[:, t - 1])

    return model


def discrete_global():
    """A global Bernoulli switch that nothing enumerates: no automatic guide can handle it."""

    def model(x):
        switch = pyro.sample("switch", dist.Bernoulli(0.5))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(3.0 * switch, 1.0), obs=x)

    return model


def positive_latent():
    """A positive per-point latent (LogNormal), to check hand-written guides against its support."""

    def model(x):
        with pyro.plate("data", x.shape[0]):
            rate = pyro.sample("rate", dist.LogNormal(0.0, 1.0))
            pyro.sample("x", dist.Normal(rate, 1.0), obs=x)

    return model
