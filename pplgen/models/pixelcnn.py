"""PixelCNN as a model program over images (exact family)."""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import torch
from pyro.nn import PyroModule, pyro_method

from pplgen.distributions.pixelcnn import PixelCNN
from pplgen.models.images import check_images, image_settings
from pplgen.nn.pixelcnn import PixelCNNNet

__all__ = ["PixelCNNModel"]


class PixelCNNModel(PyroModule):
    """Single-channel images modelled by :class:`pplgen.distributions.pixelcnn.PixelCNN`, pixel by pixel
    in raster order; no latents, so family ``exact``.

    The data arrive flat, ``x`` of shape ``(N, H * W)`` (float 0/1 for binary images, int64 levels
    otherwise), and are observed as ``(N, H, W)`` images. The defaults are those of a gated PixelCNN
    for binarized MNIST; a few channels and layers suffice for the 8x8 digits.

    References:
        van den Oord, Kalchbrenner & Kavukcuoglu (2016), "Pixel recurrent neural networks".
        van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu (2016), "Conditional image
        generation with PixelCNN decoders".

    Args:
        image_shape: (H, W).
        num_levels: 2 for binary pixels, else the number of levels K.
        channels: feature maps per layer.
        layers: gated layers (or masked convolutions of the original PixelCNN).
        gated: the gated PixelCNN without a blind spot (True) or the original PixelCNN (False).
        kernel_size: the later layers' kernel size.
        first_kernel_size: the first layer's kernel size.
        hidden: the width of the output 1x1 layer (``None``: ``channels``).
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        num_levels: int = 2,
        channels: int = 64,  # feature maps per layer, a common width for binarized MNIST
        layers: int = 10,  # a receptive field of 3 + 9 = 12 pixels each side, enough for 28 x 28 digits
        gated: bool = True,
        kernel_size: int = 3,
        first_kernel_size: int = 7,
        hidden: int | None = None,
    ):
        super().__init__()
        self.config = {
            "image_shape": [int(s) for s in image_shape],
            "num_levels": num_levels,
            "channels": channels,
            "layers": layers,
            "gated": gated,
            "kernel_size": kernel_size,
            "first_kernel_size": first_kernel_size,
            "hidden": hidden,
        }
        self.image_shape = tuple(self.config["image_shape"])
        self.net = PixelCNNNet(
            self.image_shape,
            num_levels,
            channels,
            layers,
            gated,
            None,
            kernel_size,
            first_kernel_size,
            hidden,
        )

    @classmethod
    def from_dataset(cls, dataset, **config) -> PixelCNNModel:
        return cls(**{**image_settings(dataset, "PixelCNN"), **config})

    @pyro_method
    def model(self, x: torch.Tensor) -> None:
        images = check_images(x, self.image_shape, self.net.num_levels, "PixelCNN")  # (N, H, W)
        with pyro.plate("data", images.shape[0]):
            pyro.sample("x", PixelCNN(self.net), obs=images)
