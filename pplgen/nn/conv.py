"""Convolutional encoder and decoder for images of any size: the conv bodies of VAEs.

Both networks work on a pyramid of grids. Each stage halves the height and width, rounding up (a
3x3 convolution with stride 2 and padding 1), and doubles the channels:

======= ========= ============= ==============
stage   channels  8x8 digits    28x28 MNIST
======= ========= ============= ==============
0       c         8 x 8         28 x 28
1       2c        4 x 4         14 x 14
2       4c        2 x 2         7 x 7
======= ========= ============= ==============

The encoder climbs the pyramid and ends in a fully connected layer; the decoder mirrors it with
transposed convolutions whose output padding lands exactly on each finer grid, odd sizes included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from pplgen.errors import DataError, ModelError
from pplgen.nn.mlp import MLP

__all__ = ["ConvDecoder", "ConvEncoder", "image_channels_first"]


def image_channels_first(image_shape: Sequence[int]) -> tuple[int, int, int]:
    """``(C, H, W)`` for an image shape given as ``(H, W)`` (one channel) or ``(C, H, W)``."""
    shape = tuple(int(s) for s in image_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ModelError(
            f"image_shape must be (H, W) or (C, H, W) of positive sizes, got {tuple(image_shape)}"
        )
    return shape


def _grids(height: int, width: int, stages: int) -> list[tuple[int, int]]:
    """The grid at every stage: each halves the previous one, rounding up."""
    grids = [(height, width)]
    for _ in range(stages):
        h, w = grids[-1]
        grids.append((math.ceil(h / 2), math.ceil(w / 2)))
    return grids


class ConvEncoder(nn.Module):
    """Image to vector: a 3x3 convolution, ``stages`` strided 3x3 convolutions, then an MLP head.

    ``(..., *image_shape) -> (..., out_features)``; leading dimensions are batch dimensions. An
    optional context vector (e.g. a one-hot label for a conditional VAE's q(z | x, y)) joins the
    flattened features before the head.

    Strided convolutions in place of pooling follow Springenberg et al. (2015); the encoder as a whole
    is the convolutional recognition network of VAEs on images (Kingma & Welling 2014; Salimans,
    Kingma & Welling 2015).

    References:
        Springenberg, Dosovitskiy, Brox & Riedmiller (2015), "Striving for simplicity: the all
        convolutional net".
        Salimans, Kingma & Welling (2015), "Markov chain Monte Carlo and variational inference: bridging
        the gap".

    Args:
        image_shape: ``(H, W)`` or ``(C, H, W)``; inputs have exactly this trailing shape.
        out_features: the output width.
        channels: the first convolution's channels c (stage i has :math:`2^i c`).
        hidden: the head's hidden width.
        stages: the number of halvings.
        context_features: the width of the context vector (0 for none).
        activation: the module class between layers.

    >>> ConvEncoder((8, 8), out_features=6, channels=4)(torch.zeros(5, 8, 8)).shape
    torch.Size([5, 6])
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        out_features: int,
        channels: int = 32,
        hidden: int = 256,
        stages: int = 2,
        context_features: int = 0,
        activation: type[nn.Module] = nn.ReLU,
    ):
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.chw = image_channels_first(image_shape)
        self.context_features = context_features
        c, height, width = self.chw
        widths = [channels * 2**i for i in range(stages + 1)]
        layers: list[nn.Module] = [nn.Conv2d(c, widths[0], 3, padding=1), activation()]
        for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Conv2d(fan_in, fan_out, 3, stride=2, padding=1), activation()]
        layers.append(nn.Flatten())
        self.features = nn.Sequential(*layers)
        coarse_h, coarse_w = _grids(height, width, stages)[-1]
        self.head = MLP(
            [widths[-1] * coarse_h * coarse_w + context_features, hidden, out_features], activation
        )

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        rank = len(self.image_shape)
        if x.dim() < rank or tuple(x.shape[x.dim() - rank :]) != self.image_shape:
            raise DataError(
                f"ConvEncoder expects images of shape (..., {', '.join(map(str, self.image_shape))}), "
                f"got shape {tuple(x.shape)}"
            )
        batch = x.shape[: x.dim() - rank]
        h = self.features(x.reshape(-1, *self.chw))  # (B, 4c * h * w)
        if self.context_features:
            if context is None or context.shape[-1] != self.context_features:
                got = None if context is None else tuple(context.shape)
                raise DataError(
                    f"ConvEncoder expects a context of shape (..., {self.context_features}), got {got}"
                )
            context = context.expand(*batch, self.context_features).reshape(-1, self.context_features)
            h = torch.cat([h, context.to(h.dtype)], dim=-1)
        return self.head(h).reshape(*batch, -1)


class ConvDecoder(nn.Module):
    """Vector to image: an MLP onto the coarsest grid, then ``stages`` transposed convolutions.

    ``(..., in_features) -> (..., out_channels, H, W)``: per pixel, ``out_channels`` numbers (the
    logits or parameters of a likelihood, e.g. C logits for C Bernoulli channels, or a location and a
    scale per channel). Each transposed 3x3 convolution with stride 2 doubles the grid, and its output
    padding (0 or 1) trims it to the finer grid of the encoder's pyramid; a last 3x3 convolution reads
    out the parameters. Transposed ("fractionally strided") convolutions as a learned upsampling
    follow the DCGAN generator.

    References:
        Radford, Metz & Chintala (2016), "Unsupervised representation learning with deep convolutional
        generative adversarial networks".
        Dumoulin & Visin (2016), "A guide to convolution arithmetic for deep learning".

    Args:
        in_features: the input width (latent dimensions, plus any context).
        image_shape: ``(H, W)`` or ``(C, H, W)``; only H and W shape the output.
        out_channels: the parameters per pixel.
        channels: the finest stage's channels c (as in :class:`ConvEncoder`).
        hidden: the fully connected layer's width.
        stages: the number of doublings.
        activation: the module class between layers.

    >>> ConvDecoder(3, (28, 28), out_channels=2, channels=4)(torch.zeros(5, 3)).shape
    torch.Size([5, 2, 28, 28])
    """

    def __init__(
        self,
        in_features: int,
        image_shape: Sequence[int],
        out_channels: int,
        channels: int = 32,
        hidden: int = 256,
        stages: int = 2,
        activation: type[nn.Module] = nn.ReLU,
    ):
        super().__init__()
        _, height, width = image_channels_first(image_shape)
        self.in_features = in_features
        self.out_shape = (out_channels, height, width)
        grids = _grids(height, width, stages)
        widths = [channels * 2**i for i in range(stages + 1)]
        coarse_h, coarse_w = grids[-1]
        layers: list[nn.Module] = [
            MLP([in_features, hidden, widths[-1] * coarse_h * coarse_w], activation),
            activation(),
            nn.Unflatten(1, (widths[-1], coarse_h, coarse_w)),
        ]
        for i in reversed(range(stages)):
            (fine_h, fine_w), (h, w) = grids[i], grids[i + 1]
            # a stride-2 transposed 3x3 convolution with padding 1 gives 2n - 1 + output_padding
            padding = (fine_h - 2 * h + 1, fine_w - 2 * w + 1)
            layers += [
                nn.ConvTranspose2d(widths[i + 1], widths[i], 3, stride=2, padding=1, output_padding=padding),
                activation(),
            ]
        layers.append(nn.Conv2d(widths[0], out_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.shape[-1] != self.in_features:
            raise DataError(
                f"ConvDecoder expects inputs of shape (..., {self.in_features}), got {tuple(z.shape)}"
            )
        batch = z.shape[:-1]
        return self.net(z.reshape(-1, self.in_features)).reshape(*batch, *self.out_shape)
