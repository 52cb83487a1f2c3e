"""The variational autoencoder with MLP encoder and decoder (latent family)."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.nn import PyroModule, pyro_method

from pplgen.nn import MLP

__all__ = ["VAE"]


class VAE(PyroModule):
    r"""A VAE: :math:`z \sim N(0, I)`, :math:`x \mid z \sim \mathrm{Bernoulli}(\sigma(f(z)))` for binary
    data or :math:`N(f(z), \mathrm{diag}\,\sigma^2)` for continuous data; the guide is an MLP encoder
    :math:`q(z \mid x) = N(\mu(x), \mathrm{diag}\,s(x)^2)`.

    References:
        Kingma & Welling (2014), "Auto-encoding variational Bayes".
        Rezende, Mohamed & Wierstra (2014), "Stochastic backpropagation and approximate inference".

    Args:
        dim: data dimensions D (the data are flat vectors).
        z_dim: latent dimensions.
        hidden: hidden layer width of encoder and decoder.
        likelihood: ``"bernoulli"`` or ``"normal"``.
    """

    def __init__(self, dim: int, z_dim: int = 8, hidden: int = 256, likelihood: str = "bernoulli"):
        super().__init__()
        if likelihood not in ("bernoulli", "normal"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'normal', got {likelihood!r}")
        self.config = {"dim": dim, "z_dim": z_dim, "hidden": hidden, "likelihood": likelihood}
        self.z_dim = z_dim
        self.likelihood = likelihood
        self.decoder = MLP([z_dim, hidden, hidden, dim])
        self.encoder = MLP([dim, hidden, hidden, 2 * z_dim])
        self.log_scale = torch.nn.Parameter(torch.zeros(dim))

    @classmethod
    def from_dataset(cls, dataset, **config) -> VAE:
        likelihood = "bernoulli" if dataset.kind == "binary" else "normal"
        return cls(**{"dim": int(dataset.x[0].numel()), "likelihood": likelihood, **config})

    def observation(self, z: torch.Tensor) -> dist.Distribution:
        """p(x | z) as a distribution over one data point."""
        out = self.decoder(z)
        if self.likelihood == "bernoulli":
            return dist.Bernoulli(logits=out).to_event(1)
        return dist.Normal(out, self.log_scale.exp()).to_event(1)

    @pyro_method
    def model(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            prior = dist.Normal(x.new_zeros(self.z_dim), x.new_ones(self.z_dim)).to_event(1)
            z = pyro.sample("z", prior)
            pyro.sample("x", self.observation(z), obs=x.reshape(x.shape[0], -1))

    @pyro_method
    def guide(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            loc, raw_scale = self.encoder(x.reshape(x.shape[0], -1)).chunk(2, dim=-1)
            pyro.sample("z", dist.Normal(loc, F.softplus(raw_scale) + 1e-4).to_event(1))
