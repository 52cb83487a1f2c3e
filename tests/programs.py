"""Small reference Pyro programs in the style of Pyro's tutorials, for tests across pplgen.

Each builder returns ``(model, args)``: call ``model(*args)``. :data:`PROGRAMS` lists every builder with
the family pplgen should find and, where Pyro's own ``get_model_relations`` cannot read the program (it
computes ``log_prob`` and an :class:`pplgen.Implicit` site has none), a ``reference`` builder: the same
program with the implicit site replaced by a Normal around the simulated value.

Networks are tiny and batches hold 4 to 8 data points, so that every program runs in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
from pyro import poutine
from pyro.infer import config_enumerate
from pyro.nn import PyroModule, pyro_method
from torch import nn

import pplgen
from pplgen.distributions import FVSBN

Built = tuple[Callable, tuple]

BATCH, X_DIM, Z_DIM, HIDDEN = 6, 5, 2, 8


def _binary(*shape: int) -> torch.Tensor:
    return torch.randint(0, 2, shape).float()


def _mlp(inputs: int, outputs: int, hidden: int = HIDDEN) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, outputs))


def vae(x_dim: int = X_DIM, z_dim: int = Z_DIM, hidden: int = HIDDEN) -> Built:
    """Kingma & Welling (2014): a VAE whose networks are registered with ``pyro.module``."""
    encoder, decoder = _mlp(x_dim, 2 * z_dim, hidden), _mlp(z_dim, x_dim, hidden)

    def model(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(z_dim), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=decoder(z)).to_event(1), obs=x)

    def guide(x):
        pyro.module("encoder", encoder)
        with pyro.plate("data", x.shape[0]):
            loc, log_scale = encoder(x).chunk(2, dim=-1)
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))

    model.guide = guide
    return model, (_binary(BATCH, x_dim),)


class VAE(PyroModule):
    """A VAE written as a ``PyroModule`` with ``model`` and ``guide`` methods."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = PyroModule[nn.Linear](X_DIM, 2 * Z_DIM)
        self.decoder = PyroModule[nn.Linear](Z_DIM, X_DIM)

    @pyro_method
    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(Z_DIM), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x)

    @pyro_method
    def guide(self, x):
        with pyro.plate("data", x.shape[0]):
            loc, log_scale = self.encoder(x).chunk(2, dim=-1)
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))


def vae_module() -> Built:
    return VAE().model, (_binary(BATCH, X_DIM),)


def ssvae(classes: int = 3) -> Built:
    """Kingma et al. (2014) M2: a label ``y`` observed when given, else latent and enumerated."""
    decoder = _mlp(Z_DIM + classes, X_DIM)

    def model(x, y=None):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(Z_DIM), 1.0).to_event(1))
            y = pyro.sample(
                "y",
                dist.OneHotCategorical(logits=torch.zeros(classes)),
                obs=y,
                infer={"enumerate": "parallel"},
            )
            pyro.sample("x", dist.Bernoulli(logits=decoder(torch.cat([z, y], dim=-1))).to_event(1), obs=x)

    return model, (_binary(BATCH, X_DIM),)


def dmm(steps: int = 4) -> Built:
    """Krishnan et al. (2017): a deep Markov model, one latent and one observed site per step."""
    nets = nn.ModuleDict({"transition": _mlp(Z_DIM, Z_DIM), "emitter": _mlp(Z_DIM, X_DIM)})

    def model(sequences):  # (B, T, X_DIM)
        pyro.module("dmm", nets)
        z = torch.zeros(sequences.shape[0], Z_DIM)
        with pyro.plate("sequences", sequences.shape[0]):
            for t in pyro.markov(range(1, sequences.shape[1] + 1)):
                z = pyro.sample(f"z_{t}", dist.Normal(nets["transition"](z), 1.0).to_event(1))
                logits = nets["emitter"](z)
                pyro.sample(f"x_{t}", dist.Bernoulli(logits=logits).to_event(1), obs=sequences[:, t - 1])

    return model, (_binary(BATCH, steps, X_DIM),)


def gmm(components: int = 3) -> Built:
    """Pyro's Gaussian mixture tutorial: global weights and locations, an enumerated local assignment."""

    @config_enumerate
    def model(data):
        weights = pyro.sample("weights", dist.Dirichlet(0.5 * torch.ones(components)))
        scale = pyro.sample("scale", dist.LogNormal(0.0, 2.0))
        with pyro.plate("components", components):
            locs = pyro.sample("locs", dist.Normal(0.0, 10.0))
        with pyro.plate("data", len(data)):
            assignment = pyro.sample("assignment", dist.Categorical(weights))
            pyro.sample("obs", dist.Normal(locs[assignment], scale), obs=data)

    return model, (torch.tensor([0.0, 1.0, 10.0, 11.0, 12.0, -3.0]),)


def hierarchical_regression(groups: int = 3, per_group: int = 4) -> Built:
    """Gelman & Hill (2007): varying intercepts; observations nested in groups (data shaped (G, n))."""

    def model(x, y):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        sigma_group = pyro.sample("sigma_group", dist.HalfNormal(1.0))
        slope = pyro.sample("slope", dist.Normal(0.0, 1.0))
        with pyro.plate("groups", x.shape[0], dim=-2):
            intercept = pyro.sample("intercept", dist.Normal(mu, sigma_group))
            with pyro.plate("observations", x.shape[1], dim=-1):
                pyro.sample("y", dist.Normal(intercept + slope * x, 1.0), obs=y)

    return model, (torch.randn(groups, per_group), torch.randn(groups, per_group))


def flow() -> Built:
    """Durkan et al. (2019): a spline flow then an affine map as the observed site's distribution."""
    spline = T.Spline(X_DIM, count_bins=4)

    def model(x):
        pyro.module("spline", spline)
        base = dist.Normal(torch.zeros(X_DIM), 1.0).to_event(1)
        flow_dist = dist.TransformedDistribution(base, [spline, T.AffineTransform(1.0, 2.0)])
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", flow_dist, obs=x)

    return model, (torch.randn(BATCH, X_DIM),)


def gan(implicit: bool = True) -> Built:
    """Goodfellow et al. (2014): a generator whose output is simulated (``implicit=False``: a Normal
    around the simulated value, the reference Pyro's ``get_model_relations`` can read)."""
    generator = _mlp(Z_DIM, X_DIM)

    def model(x):
        pyro.module("generator", generator)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(Z_DIM), 1.0).to_event(1))
            fake = generator(z)
            output = pplgen.Implicit(fake, event_dim=1) if implicit else dist.Normal(fake, 1.0).to_event(1)
            pyro.sample("x", output, obs=x)

    return model, (torch.randn(BATCH, X_DIM),)


def autoregressive_chain(length: int = 4) -> Built:
    """A fully visible chain: each ``x_i`` is Bernoulli given every earlier observed value."""

    def model(x):  # (B, D)
        weight = pyro.param("ar_weight", 0.1 * torch.ones(length, length))
        bias = pyro.param("ar_bias", torch.zeros(length))
        seen = []
        with pyro.plate("data", x.shape[0]):
            for i in pyro.markov(range(length), history=length):
                logits = bias[i] + sum((weight[i, j] * seen[j] for j in range(i)), torch.tensor(0.0))
                seen.append(pyro.sample(f"x_{i}", dist.Bernoulli(logits=logits), obs=x[:, i]))

    return model, (_binary(BATCH, length),)


def fvsbn() -> Built:
    """Frey (1998): the fully visible sigmoid belief network as one site."""

    def model(x):
        weight = pyro.param("weight", torch.zeros(X_DIM, X_DIM))
        bias = pyro.param("bias", torch.zeros(X_DIM))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", FVSBN(weight, bias), obs=x)

    return model, (_binary(BATCH, X_DIM),)


def deterministic() -> Built:
    """A decoder output recorded with ``pyro.deterministic`` between the latent and the likelihood."""
    decoder = _mlp(Z_DIM, X_DIM)

    def model(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(Z_DIM), 1.0).to_event(1))
            loc = pyro.deterministic("loc", decoder(z), event_dim=1)
            pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)

    return model, (torch.randn(BATCH, X_DIM),)


def masked_scaled() -> Built:
    """``poutine.mask`` on missing observations, ``poutine.scale`` by a number and by a tensor."""

    def model(x, present):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        with poutine.scale(scale=0.5):
            w = pyro.sample("w", dist.Normal(z, 1.0))
        with pyro.plate("data", x.shape[0]):
            with poutine.mask(mask=present):
                pyro.sample("x", dist.Normal(w, 1.0), obs=x)
            with poutine.scale(scale=torch.linspace(0.5, 1.5, x.shape[0])):
                pyro.sample("y", dist.Normal(z, 1.0), obs=x)

    return model, (torch.randn(BATCH), torch.arange(BATCH) % 2 == 0)


def subsampled(size: int = 1000, subsample: int = 10) -> Built:
    """A plate over all the data that draws a random mini-batch of it at every call."""

    def model(data):
        loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
        with pyro.plate("data", len(data), subsample_size=subsample) as index:
            pyro.sample("obs", dist.Normal(loc, 1.0), obs=data[index])

    return model, (torch.randn(size),)


def param_model() -> Built:
    """Parameters declared with ``pyro.param``, one of them constrained."""

    def model(x):
        loc = pyro.param("loc", torch.zeros(2))
        scale = pyro.param("scale", torch.ones(2), constraint=dist.constraints.positive)
        z = pyro.sample("z", dist.Normal(loc, scale).to_event(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    return model, (torch.randn(BATCH, 2),)


@dataclass(frozen=True)
class Program:
    """A reference program, the family pplgen should find, and a variant Pyro's inspect can read."""

    name: str
    build: Callable[[], Built]
    family: str
    reference: Callable[[], Built] | None = None

    def __repr__(self) -> str:  # readable pytest ids
        return self.name


PROGRAMS = [
    Program("vae", vae, "latent"),
    Program("vae_module", vae_module, "latent"),
    Program("ssvae", ssvae, "latent"),
    Program("dmm", dmm, "latent"),
    Program("gmm", gmm, "latent"),
    Program("hierarchical_regression", hierarchical_regression, "latent"),
    Program("flow", flow, "exact"),
    Program("gan", gan, "implicit", reference=lambda: gan(implicit=False)),
    Program("autoregressive_chain", autoregressive_chain, "exact"),
    Program("fvsbn", fvsbn, "exact"),
    Program("deterministic", deterministic, "latent"),
    Program("masked_scaled", masked_scaled, "latent"),
    Program("subsampled", subsampled, "latent"),
    Program("param_model", param_model, "latent"),
]
