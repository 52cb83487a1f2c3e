"""PixelVAE: a VAE whose decoder is a shallow PixelCNN conditioned on the latent (latent family)."""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.nn import PyroModule, pyro_method
from torch import nn

from pplgen.distributions.pixelcnn import PixelCNN
from pplgen.models.images import check_images, image_settings
from pplgen.nn.mlp import MLP
from pplgen.nn.pixelcnn import PixelCNNNet

__all__ = ["PixelVAE"]

# Images with at least this many pixels (28 x 28) get the class defaults from ``from_dataset``; smaller
# ones (the 8x8 digits) get the small sizes below.
_LARGE_PIXELS = 784
_SMALL_SIZES = {"z_dim": 8, "hidden": 64, "context_dim": 32, "encoder_channels": 16, "channels": 16}


class _ConvEncoder(nn.Module):
    """Two 3x3 convolutions of stride 2 with ReLU, then one hidden layer to ``outputs`` features."""

    def __init__(self, image_shape: tuple[int, int], channels: int, hidden: int, outputs: int):
        super().__init__()
        height, width = image_shape
        self.convs = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        # a stride-2 3x3 convolution with padding 1 maps n pixels to ceil(n / 2): twice, ceil(n / 4)
        pixels = -(-height // 4) * -(-width // 4)
        self.head = MLP([2 * channels * pixels, hidden, outputs])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.convs(images.unsqueeze(1))  # (B, 2C, ceil(H/4), ceil(W/4))
        return self.head(features.flatten(1))  # (B, outputs)


class PixelVAE(PyroModule):
    r"""A VAE whose likelihood is a PixelCNN conditioned on the latent code:

    .. math::
        z \sim N(0, I), \qquad
        p(x \mid z) = \prod_{i=1}^{H} \prod_{j=1}^{W} p(x_{ij} \mid x_{<ij}, h(z)), \qquad
        q(z \mid x) = N(\mu(x), \mathrm{diag}\,s(x)^2),

    where :math:`h` is an MLP whose output, a context vector, enters every gated layer of a
    :class:`pplgen.nn.pixelcnn.PixelCNNNet` as a learned bias, and the encoder is a small convolutional
    net. The observed site ``x`` is the ``(N, H, W)`` image (floats 0/1 for binary pixels, int64 levels
    otherwise), so the graph marks it autoregressive; with the latent ``z`` the family is ``latent``.

    The PixelCNN only needs to model local detail because the latent carries the global structure,
    which is why the paper's decoders have a few PixelCNN layers rather than the deep stacks of a
    PixelCNN on its own; the default here is three. A decoder that can model everything alone tends to
    ignore the latent, and a shallow one leaves it work to do. The paper's decoder upsamples
    :math:`z` to feature maps; here the context is a vector, which suits small images.

    >>> import torch
    >>> m = PixelVAE((4, 5), z_dim=2, hidden=8, context_dim=4, encoder_channels=2, channels=4, layers=2)
    >>> trace = pyro.poutine.trace(m.model).get_trace(torch.ones(3, 20))
    >>> trace.nodes["z"]["value"].shape, trace.nodes["x"]["value"].shape
    (torch.Size([3, 2]), torch.Size([3, 4, 5]))

    References:
        Gulrajani, Kumar, Ahmed, Taiga, Visin, Vazquez & Courville (2017), "PixelVAE: a latent variable
        model for natural images".
        van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu (2016), "Conditional image
        generation with PixelCNN decoders".
        Kingma & Welling (2014), "Auto-encoding variational Bayes".

    Args:
        image_shape: (H, W).
        num_levels: 2 for binary pixels, else the number of levels K.
        z_dim: latent dimensions.
        hidden: the hidden width of the encoder's head and of the context MLP h.
        context_dim: the size of the context vector h(z) given to every PixelCNN layer.
        encoder_channels: the encoder's first convolution's feature maps (the second has twice as many).
        channels: the PixelCNN's feature maps per stack.
        layers: the PixelCNN's gated layers.
        kernel_size: the PixelCNN's later layers' kernel size.
        first_kernel_size: the PixelCNN's first layer's kernel size.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        num_levels: int = 2,
        z_dim: int = 32,
        hidden: int = 256,
        context_dim: int = 64,
        encoder_channels: int = 32,
        channels: int = 32,
        layers: int = 3,  # shallow on purpose: the latent carries the global structure
        kernel_size: int = 3,
        first_kernel_size: int = 7,
    ):
        super().__init__()
        self.config = {
            "image_shape": [int(s) for s in image_shape],
            "num_levels": num_levels,
            "z_dim": z_dim,
            "hidden": hidden,
            "context_dim": context_dim,
            "encoder_channels": encoder_channels,
            "channels": channels,
            "layers": layers,
            "kernel_size": kernel_size,
            "first_kernel_size": first_kernel_size,
        }
        self.image_shape = tuple(self.config["image_shape"])
        self.z_dim = z_dim
        # the PixelCNN checks image_shape, num_levels, channels and the kernels first
        self.net = PixelCNNNet(
            self.image_shape,
            num_levels,
            channels,
            layers,
            gated=True,
            context_dim=context_dim,
            kernel_size=kernel_size,
            first_kernel_size=first_kernel_size,
        )
        self.decoder = MLP([z_dim, hidden, context_dim])  # h(z)
        self.encoder = _ConvEncoder(self.image_shape, encoder_channels, hidden, 2 * z_dim)

    @classmethod
    def from_dataset(cls, dataset, **config) -> PixelVAE:
        settings = image_settings(dataset, "PixelVAE")
        height, width = settings["image_shape"]
        sizes = {} if height * width >= _LARGE_PIXELS else _SMALL_SIZES
        return cls(**{**settings, **sizes, **config})

    def _images(self, x: torch.Tensor) -> torch.Tensor:
        # checked here, in the program, so that a bad pixel gets a DataError on every path (fit, SVI,
        # log_likelihood), not only where the PixelCNN's own check is reached
        return check_images(x, self.image_shape, self.net.num_levels, "PixelVAE")

    def observation(self, z: torch.Tensor) -> PixelCNN:
        """p(x | z), the PixelCNN given the context h(z); its batch shape is ``z.shape[:-1]``."""
        return PixelCNN(self.net, context=self.decoder(z))

    @pyro_method
    def model(self, x: torch.Tensor) -> None:
        images = self._images(x)
        with pyro.plate("data", images.shape[0]):
            # floats of the parameters' dtype, since integer levels arrive as int64
            zeros = images.new_zeros(self.z_dim, dtype=self.decoder[0].weight.dtype)
            prior = dist.Normal(zeros, 1.0).to_event(1)
            z = pyro.sample("z", prior)
            pyro.sample("x", self.observation(z), obs=images)

    @pyro_method
    def guide(self, x: torch.Tensor) -> None:
        images = self._images(x)
        with pyro.plate("data", images.shape[0]):
            loc, raw_scale = self.encoder(self.net.scale(images)).chunk(2, dim=-1)  # (N, z_dim) each
            pyro.sample("z", dist.Normal(loc, F.softplus(raw_scale) + 1e-4).to_event(1))
