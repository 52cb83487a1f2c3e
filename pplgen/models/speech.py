"""From a picture to a sound: WaveNet audio conditioned on an image through a learned encoder (exact)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro
import torch
from pyro.nn import PyroModule, pyro_method

from pplgen.distributions.wavenet import WaveNet
from pplgen.errors import DataError
from pplgen.nn.mlp import MLP
from pplgen.nn.wavenet import WaveNetNet

__all__ = ["ImageToSpeech"]


class ImageToSpeech(PyroModule):
    r"""Audio :math:`x \in [-1, 1]^T` given an image :math:`v \in [0, 1]^{H \times W}`: a cross-domain map.

    An image encoder, the MLP :math:`c = g_\phi(v) = W_2 \,\mathrm{ReLU}(W_1 \operatorname{vec}(v) + b_1)
    + b_2 \in \mathbb{R}^{C}`, gives WaveNet's global context (van den Oord et al. 2016, Section 2.5),
    which biases every gated unit of :class:`pplgen.nn.wavenet.WaveNetNet`:

    .. math::
        p_{\theta, \phi}(x \mid v) = \prod_{t=1}^{T} \mathrm{Categorical}\big(q(x_t) \mid
        \mathrm{softmax}\, f_\theta(q(x_{<t}), g_\phi(v))_t\big),

    with :math:`q` the μ-law quantiser. Where WaveNet's own conditioning takes a speaker's or a class's
    one-hot code, here the code is learned from another domain's data, as a text encoder's embedding
    conditions an image generator in Reed et al. (2016). There are no latents (family ``exact``): the
    encoder and WaveNet are trained together by maximum likelihood, so the encoder keeps what in the
    image predicts the sound (on ``digit_speech``, the digit) and nothing says it must keep more. The
    image's stroke style cannot choose the speaker: pairs are made by class only.

    An MLP rather than a convolutional net: the 8x8 images have 64 pixels, fewer than a small
    convolution stack's first layer would have weights, and the encoder's one job is to name the class.

    >>> model = ImageToSpeech(length=32, residual_channels=4, skip_channels=4, dilations=[1, 2], hidden=8)
    >>> model.model(torch.zeros(3, 32), torch.rand(3, 64))  # the audio's log-likelihood is at site "x"
    >>> model.context(torch.rand(3, 8, 8)).shape
    torch.Size([3, 16])

    References:
        van den Oord, Dieleman, Zen, Simonyan, Vinyals, Graves, Kalchbrenner, Senior & Kavukcuoglu (2016),
        "WaveNet: a generative model for raw audio".
        Reed, Akata, Yan, Logeswaran, Schiele & Lee (2016), "Generative adversarial text to image
        synthesis".

    Args:
        length: the samples T per clip.
        image_shape: the condition's ``(H, W)``; images come flat ``(N, H W)`` or as ``(N, H, W)``.
        context_dim: the encoder's output C, WaveNet's ``global_dim``.
        hidden: the encoder's hidden units.
        num_levels: the μ-law levels K.
        residual_channels: the residual stream's channels R.
        skip_channels: the skip sum's channels S.
        dilations: each WaveNet layer's dilation (by default 1 .. 512 twice, as the zoo's ``wavenet``).
    """

    #: ``model`` takes the images after the audio, ``model(x, image)``: the data set's ``y``.
    takes_labels = True

    def __init__(
        self,
        length: int = 4000,
        image_shape: Sequence[int] = (8, 8),
        context_dim: int = 16,
        hidden: int = 128,
        num_levels: int = 256,
        residual_channels: int = 32,
        skip_channels: int = 64,
        dilations: Sequence[int] = tuple(2**i for i in range(10)) * 2,
    ):
        super().__init__()
        self.config = {
            "length": length,
            "image_shape": [int(s) for s in image_shape],
            "context_dim": context_dim,
            "hidden": hidden,
            "num_levels": num_levels,
            "residual_channels": residual_channels,
            "skip_channels": skip_channels,
            "dilations": [int(d) for d in dilations],
        }
        self.image_shape = tuple(self.config["image_shape"])
        self.encoder = MLP([math.prod(self.image_shape), hidden, context_dim])
        self.net = WaveNetNet(
            length,
            num_levels=num_levels,
            residual_channels=residual_channels,
            skip_channels=skip_channels,
            dilations=dilations,
            global_dim=context_dim,
        )

    @classmethod
    def from_dataset(cls, dataset, **config) -> ImageToSpeech:
        """Sized for ``dataset``: T from its event shape, the image shape from ``meta["condition_shape"]``."""
        shape = dataset.meta.get("condition_shape")
        if dataset.kind != "audio" or len(dataset.event_shape) != 1 or shape is None:
            raise DataError(
                f"ImageToSpeech maps images to audio: it needs audio data with images in y "
                f"(meta['condition_shape'], as digit_speech has), but {dataset.name!r} is "
                f"{dataset.kind!r} of event shape {dataset.event_shape} with condition shape {shape}"
            )
        return cls(**{"length": dataset.event_shape[0], "image_shape": shape, **config})

    def context(self, image: torch.Tensor) -> torch.Tensor:
        """The encoder's code ``(N, context_dim)`` of images ``(N, H W)`` or ``(N, H, W)``, after checks."""
        H, W = self.image_shape
        expected = f"ImageToSpeech expects images of shape (N, {H * W}) or (N, {H}, {W}) as floats in [0, 1]"
        if image is None:
            raise DataError(f"{expected}: call model(x, image) with the images")
        if not isinstance(image, torch.Tensor) or not image.is_floating_point():
            kind = f"{image.dtype} tensor" if isinstance(image, torch.Tensor) else type(image).__name__
            raise DataError(f"{expected}, got a {kind}")
        if image.dim() not in (2, 3) or tuple(image.shape[1:]) not in ((H * W,), (H, W)):
            raise DataError(f"{expected}, got shape {tuple(image.shape)}")
        if image.numel() and not bool(((image >= 0) & (image <= 1)).all()):  # NaN fails both comparisons
            bad = "NaN" if bool(image.isnan().any()) else f"values {image.min():.3g} .. {image.max():.3g}"
            raise DataError(f"{expected}, got {bad}")
        return self.encoder(image.reshape(len(image), H * W).to(self.net.start.dtype))  # (N, C)

    @pyro_method
    def model(self, x: torch.Tensor, image: torch.Tensor | None = None) -> None:
        if image is not None and len(image) != len(x):
            raise DataError(f"ImageToSpeech expects one image per clip: {len(x)} clips, {len(image)} images")
        context = self.context(image)  # (N, C)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", WaveNet(self.net, context), obs=x)
