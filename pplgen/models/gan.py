"""A generative adversarial network as a model program (implicit family)."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule, pyro_method

from pplgen.distributions import Implicit
from pplgen.nn import MLP

__all__ = ["GAN"]


class GAN(PyroModule):
    r"""An MLP generator :math:`x = G(z)`, :math:`z \sim N(0, I)`, observed through an
    :class:`~pplgen.Implicit` site: the program has no likelihood and trains adversarially.

    References:
        Goodfellow et al. (2014), "Generative adversarial nets".

    Args:
        dim: data dimensions D.
        z_dim: noise dimensions.
        hidden: hidden layer width.
        output: ``"linear"`` for real-valued data, ``"sigmoid"`` for data in [0, 1].
    """

    def __init__(self, dim: int, z_dim: int = 16, hidden: int = 256, output: str = "linear"):
        super().__init__()
        if output not in ("linear", "sigmoid"):
            raise ValueError(f"output must be 'linear' or 'sigmoid', got {output!r}")
        self.config = {"dim": dim, "z_dim": z_dim, "hidden": hidden, "output": output}
        self.z_dim = z_dim
        self.output = output
        self.generator = MLP([z_dim, hidden, hidden, dim])

    @classmethod
    def from_dataset(cls, dataset, **config) -> GAN:
        output = "sigmoid" if dataset.kind == "binary" else "linear"
        return cls(**{"dim": int(dataset.x[0].numel()), "output": output, **config})

    @pyro_method
    def model(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            noise = dist.Normal(x.new_zeros(self.z_dim), x.new_ones(self.z_dim)).to_event(1)
            z = pyro.sample("z", noise)
            fake = self.generator(z)
            if self.output == "sigmoid":
                fake = torch.sigmoid(fake)
            pyro.sample("x", Implicit(fake, event_dim=1), obs=x.reshape(x.shape[0], -1))
