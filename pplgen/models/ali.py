"""Adversarially learned inference (ALI / BiGAN): a GAN with an encoder guide (implicit family)."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.nn import pyro_method

from pplgen.infer.gan_objectives import AdversarialSettings
from pplgen.models.gan import GAN
from pplgen.nn.mlp import MLP

__all__ = ["ALI"]

_MIN_SCALE = 1e-3  # keeps the encoder's noise away from zero, where its log-scale gradient blows up


class ALI(GAN):
    r"""A :class:`~pplgen.models.gan.GAN` generator :math:`x = G(z)`, :math:`z \sim N(0, I)`, with an
    encoder guide :math:`q(z \mid x) = N(\mu(x), \mathrm{diag}\,s(x)^2)` (MLPs both). :func:`pplgen.fit`
    trains the pair with :class:`~pplgen.infer.adversarial.ALITrainer`: a discriminator on joint pairs
    :math:`(x, z)` tells data with encoded latents from generated data with prior latents, so that the
    encoder learns to invert the generator.

    References:
        Dumoulin, Belghazi, Poole, Mastropietro, Lamb, Arjovsky & Courville (2017), "Adversarially
        learned inference".
        Donahue, Krähenbühl & Darrell (2017), "Adversarial feature learning".

    Args:
        dim: data dimensions D (2 for ring8/grid25, 64 for 8x8 digits); the data arrive flat.
        z_dim: latent dimensions.
        hidden: hidden layer width of the generator and the encoder.
        output: ``"linear"`` for real-valued data, ``"sigmoid"`` for data in [0, 1].

    >>> ali = ALI(2, z_dim=3, hidden=8)
    >>> ali.encode(torch.zeros(5, 2))[1].shape
    torch.Size([5, 3])
    """

    @property
    def adversarial(self) -> AdversarialSettings:
        """The plain non-saturating game of the ALI paper."""
        return AdversarialSettings()

    def __init__(self, dim: int, z_dim: int = 16, hidden: int = 256, output: str = "linear"):
        super().__init__(dim, z_dim=z_dim, hidden=hidden, output=output)
        for setting in ("image_shape", "channels"):  # flat data only: the encoder is an MLP
            del self.config[setting]
        self.encoder = MLP([dim, hidden, hidden, 2 * z_dim])

    @classmethod
    def from_dataset(cls, dataset, **config) -> ALI:
        """Sized for ``dataset``, whose points (images too) it models flat."""
        settings = cls.dataset_settings(dataset)
        return cls(**{"dim": settings["dim"], "output": settings["output"], **config})

    def encode(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The location and scale of q(z | x) for flat data ``(N, D)``."""
        loc, raw_scale = self.encoder(flat).chunk(2, dim=-1)
        return loc, F.softplus(raw_scale) + _MIN_SCALE

    @pyro_method
    def guide(self, x: torch.Tensor) -> None:
        x = self.data(x)  # (N, D): ALI models its points flat
        with pyro.plate("data", x.shape[0]):
            loc, scale = self.encode(x)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))
