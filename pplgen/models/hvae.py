"""A variational autoencoder with two stochastic layers (latent family), as in the IWAE paper."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.nn import PyroModule, pyro_method
from torch import nn

from pplgen.errors import DataError
from pplgen.nn.mlp import MLP

__all__ = ["HVAE"]

# Data at least this large (binarized MNIST has 784 pixels) get the paper's sizes from ``from_dataset``;
# smaller data (the 8x8 digits) get the small ones below.
_PAPER_DIM = 784
_SMALL_SIZES = {"z1_dim": 16, "z2_dim": 8, "hidden1": 64, "hidden2": 32}


class _GaussianLayer(nn.Module):
    r"""A stochastic layer :math:`N(\mu(h), \mathrm{diag}\,\sigma(h)^2)`: two tanh layers of ``hidden``
    units, then a linear map to the mean and the scale."""

    def __init__(self, inputs: int, hidden: int, outputs: int):
        super().__init__()
        self.net = MLP([inputs, hidden, hidden, 2 * outputs], activation=nn.Tanh)

    def forward(self, h: torch.Tensor) -> dist.Distribution:
        loc, raw_scale = self.net(h).chunk(2, dim=-1)  # (B, outputs) each
        # softplus rather than the paper's exp: the same family, but a scale that cannot overflow early
        # in training, when the pre-activations are large
        return dist.Normal(loc, F.softplus(raw_scale) + 1e-4).to_event(1)


class HVAE(PyroModule):
    r"""A VAE with two stochastic layers, generated top-down and inferred bottom-up:

    .. math::
        p(x, z_1, z_2) = N(z_2; 0, I)\, N(z_1; \mu(z_2), \mathrm{diag}\,\sigma(z_2)^2)\, p(x \mid z_1),
        \qquad q(z_1, z_2 \mid x) = q(z_1 \mid x)\, q(z_2 \mid z_1),

    with :math:`p(x \mid z_1)` a Bernoulli with logits :math:`f(z_1)` for binary data, or
    :math:`N(f(z_1), \mathrm{diag}\,s^2)` with a learned scale per dimension for continuous data. Every
    conditional is computed by two deterministic tanh layers: ``hidden1`` units between :math:`x` and
    :math:`z_1`, ``hidden2`` between :math:`z_1` and :math:`z_2`. The sites ``z2``, ``z1`` (latent) and
    ``x`` (observed, the flat data) lie inside the ``data`` plate.

    The defaults are the paper's binarized-MNIST architecture, 784-100-50 with deterministic layers
    200-200 and 100-100 (Burda et al. 2016, appendix); ``from_dataset`` keeps them for data that
    large and picks 16-8 with layers 64 and 32 for smaller data such as the 8x8 digits.

    >>> import torch
    >>> m = HVAE(dim=6, z1_dim=3, z2_dim=2, hidden1=8, hidden2=4)
    >>> trace = pyro.poutine.trace(m.model).get_trace(torch.ones(5, 6))
    >>> [trace.nodes[n]["value"].shape for n in ("z2", "z1", "x")]
    [torch.Size([5, 2]), torch.Size([5, 3]), torch.Size([5, 6])]

    References:
        Burda, Grosse & Salakhutdinov (2016), "Importance weighted autoencoders".
        Rezende, Mohamed & Wierstra (2014), "Stochastic backpropagation and approximate inference in
        deep generative models".

    Args:
        dim: data dimensions D (the data are flat vectors).
        z1_dim: the lower stochastic layer's dimensions.
        z2_dim: the upper stochastic layer's dimensions.
        hidden1: the width of the two deterministic layers between x and z1 (both directions).
        hidden2: the width of the two deterministic layers between z1 and z2 (both directions).
        likelihood: ``"bernoulli"`` (binary data) or ``"normal"`` (continuous data).
    """

    def __init__(
        self,
        dim: int,
        z1_dim: int = 100,
        z2_dim: int = 50,
        hidden1: int = 200,
        hidden2: int = 100,
        likelihood: str = "bernoulli",
    ):
        super().__init__()
        if likelihood not in ("bernoulli", "normal"):
            raise ValueError(f"HVAE: likelihood must be 'bernoulli' or 'normal', got {likelihood!r}")
        sizes = {"dim": dim, "z1_dim": z1_dim, "z2_dim": z2_dim, "hidden1": hidden1, "hidden2": hidden2}
        small = {name: size for name, size in sizes.items() if not (isinstance(size, int) and size >= 1)}
        if small:
            raise ValueError(f"HVAE: sizes must be positive integers, got {small}")
        self.config = {**sizes, "likelihood": likelihood}
        self.dim, self.z2_dim, self.likelihood = dim, z2_dim, likelihood
        self.encoder1 = _GaussianLayer(dim, hidden1, z1_dim)  # q(z1 | x)
        self.encoder2 = _GaussianLayer(z1_dim, hidden2, z2_dim)  # q(z2 | z1)
        self.prior1 = _GaussianLayer(z2_dim, hidden2, z1_dim)  # p(z1 | z2)
        self.decoder = MLP([z1_dim, hidden1, hidden1, dim], activation=nn.Tanh)  # p(x | z1)
        if likelihood == "normal":
            self.log_scale = nn.Parameter(torch.zeros(dim))

    @classmethod
    def from_dataset(cls, dataset, **config) -> HVAE:
        likelihoods = {"binary": "bernoulli", "continuous": "normal"}
        if dataset.kind not in likelihoods:
            raise DataError(
                f"HVAE models binary or continuous data, but {dataset.name!r} is {dataset.kind!r}"
            )
        dim = int(dataset.x[0].numel())
        sizes = {} if dim >= _PAPER_DIM else _SMALL_SIZES
        return cls(**{"dim": dim, "likelihood": likelihoods[dataset.kind], **sizes, **config})

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        """The data as ``(N, D)`` floats, or a :class:`DataError` naming the shape expected."""
        if not isinstance(x, torch.Tensor) or x.dim() < 1 or x[0].numel() != self.dim:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise DataError(f"HVAE: expected data of shape (N, {self.dim}), got {got}")
        return x.reshape(x.shape[0], self.dim).to(self.decoder[0].weight.dtype)

    def observation(self, z1: torch.Tensor) -> dist.Distribution:
        """p(x | z1) as a distribution over one flat data point."""
        out = self.decoder(z1)  # (B, D)
        if self.likelihood == "bernoulli":
            return dist.Bernoulli(logits=out).to_event(1)
        return dist.Normal(out, self.log_scale.exp()).to_event(1)

    @pyro_method
    def model(self, x: torch.Tensor) -> None:
        flat = self._flat(x)
        with pyro.plate("data", flat.shape[0]):
            z2 = pyro.sample("z2", dist.Normal(flat.new_zeros(self.z2_dim), 1.0).to_event(1))
            z1 = pyro.sample("z1", self.prior1(z2))
            pyro.sample("x", self.observation(z1), obs=flat)

    @pyro_method
    def guide(self, x: torch.Tensor) -> None:
        flat = self._flat(x)
        with pyro.plate("data", flat.shape[0]):
            z1 = pyro.sample("z1", self.encoder1(flat))
            pyro.sample("z2", self.encoder2(z1))
