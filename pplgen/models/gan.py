"""Generative adversarial networks as model programs (implicit family): the GAN, its WGAN-GP variant
and the class-conditional GAN."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule, pyro_method
from torch import nn

from pplgen.distributions import Implicit
from pplgen.errors import DataError, ModelError
from pplgen.infer.gan_objectives import AdversarialSettings
from pplgen.models.labels import one_hot_labels
from pplgen.nn import MLP, ConvDecoder
from pplgen.nn.conv import image_channels_first

__all__ = ["GAN", "WGAN", "ConditionalGAN"]

OUTPUTS = ("linear", "sigmoid")


def _generator(
    in_features: int, dim: int, hidden: int, image_shape: tuple[int, ...] | None, channels: int
) -> nn.Module:
    """An MLP ``in -> hidden -> hidden -> dim``, or for images the DCGAN-style transposed-convolution
    stack of :class:`~pplgen.nn.ConvDecoder` with one output channel per image channel."""
    if image_shape is None:
        return MLP([in_features, hidden, hidden, dim])
    return ConvDecoder(in_features, image_shape, image_channels_first(image_shape)[0], channels, hidden)


class GAN(PyroModule):
    r"""A generator :math:`x = G(z)`, :math:`z \sim N(0, I)`, observed through an :class:`~pplgen.Implicit`
    site: the program has no likelihood and trains adversarially.

    Flat data (the 2-D mixtures ring8 and grid25) get an MLP generator. Images (a data set with an
    ``image_shape``, such as digits) get the DCGAN architecture (Radford et al. 2016): a fully connected
    layer onto a coarse grid, then strided transposed convolutions; the program then simulates whole
    images, so the default discriminator is convolutional too.

    The zoo trains it with PacGAN2 packing and an average of the generator's weights
    (:attr:`adversarial`), which cover every mode of ring8 where a plain GAN drops some. ``pplgen fit``
    uses them unless its options say otherwise; from Python, pass ``adversarial=gan.adversarial`` to
    :func:`pplgen.fit`.

    References:
        Goodfellow et al. (2014), "Generative adversarial nets".
        Radford, Metz & Chintala (2016), "Unsupervised representation learning with deep convolutional
        generative adversarial networks".

    Args:
        dim: data dimensions D (the product of ``image_shape`` for images).
        z_dim: noise dimensions.
        hidden: hidden layer width.
        output: ``"linear"`` for real-valued data, ``"sigmoid"`` for data in [0, 1].
        image_shape: ``(H, W)`` or ``(C, H, W)`` for images; None for flat data.
        channels: the finest stage's channels of the convolutional generator.

    >>> GAN(2, z_dim=3, hidden=8).generate(torch.zeros(5, 3)).shape
    torch.Size([5, 2])
    >>> GAN(64, image_shape=(8, 8), channels=4).generate(torch.zeros(5, 16)).shape
    torch.Size([5, 8, 8])
    """

    @property
    def adversarial(self) -> AdversarialSettings:
        """How ``pplgen fit`` trains the zoo model unless told otherwise: PacGAN2 and parameter averaging,
        and for images an R1 penalty (γ = 10), without which the critic soon tells the generator's grey
        pixels from the data's binary ones and the generator's gradients vanish."""
        return AdversarialSettings(pack=2, ema=0.999, r1=10.0 if self.image_shape else 0.0)

    def __init__(
        self,
        dim: int,
        z_dim: int = 16,
        hidden: int = 256,
        output: str = "linear",
        image_shape: Sequence[int] | None = None,
        channels: int = 32,
    ):
        super().__init__()
        if output not in OUTPUTS:
            raise ModelError(f"output must be one of {', '.join(map(repr, OUTPUTS))}, got {output!r}")
        shape = None if image_shape is None else tuple(int(s) for s in image_shape)
        if shape is not None and (len(shape) not in (2, 3) or torch.Size(shape).numel() != dim):
            raise ModelError(f"image_shape must be (H, W) or (C, H, W) with {dim} values, got {shape}")
        self.config = {
            "dim": dim,
            "z_dim": z_dim,
            "hidden": hidden,
            "output": output,
            "image_shape": None if shape is None else list(shape),
            "channels": channels,
        }
        self.dim, self.z_dim, self.output, self.image_shape = dim, z_dim, output, shape
        self.generator = _generator(z_dim, dim, hidden, shape, channels)

    @staticmethod
    def dataset_settings(dataset) -> dict:
        """What ``dataset`` decides: ``dim``, ``output`` (sigmoid for binary data) and ``image_shape``."""
        return {
            "dim": int(dataset.x[0].numel()),
            "output": "sigmoid" if dataset.kind == "binary" else "linear",
            "image_shape": None if dataset.image_shape is None else list(dataset.image_shape),
        }

    @classmethod
    def from_dataset(cls, dataset, **config) -> GAN:
        """Sized for ``dataset``: sigmoid outputs for binary data, a convolutional generator for images."""
        return cls(**{**cls.dataset_settings(dataset), **config})

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one simulated data point (the image, or ``(D,)``)."""
        return self.image_shape or (self.dim,)

    def generate(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """G(z), shape ``(N, *event_shape)``; a context (a one-hot label) joins the noise."""
        inputs = z if context is None else torch.cat([z, context.to(z.dtype)], dim=-1)
        fake = self.generator(inputs).reshape(len(z), *self.event_shape)
        return torch.sigmoid(fake) if self.output == "sigmoid" else fake

    def data(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as ``(N, *event_shape)`` in the generator's dtype, flat rows or images alike."""
        if x.dim() < 1 or math.prod(x.shape[1:]) != self.dim:
            image = "" if self.image_shape is None else f" or (N, {', '.join(map(str, self.image_shape))})"
            name, got = type(self).__name__, tuple(x.shape)
            raise DataError(f"{name} expects data of shape (N, {self.dim}){image}, got shape {got}")
        return x.reshape(len(x), *self.event_shape).to(next(self.parameters()).dtype)

    def noise(self, x: torch.Tensor) -> torch.Tensor:
        return pyro.sample("z", dist.Normal(x.new_zeros(self.z_dim), x.new_ones(self.z_dim)).to_event(1))

    @pyro_method
    def model(self, x: torch.Tensor) -> None:
        x = self.data(x)
        with pyro.plate("data", x.shape[0]):
            fake = self.generate(self.noise(x))
            pyro.sample("x", Implicit(fake, event_dim=len(self.event_shape)), obs=x)


class WGAN(GAN):
    r"""The :class:`GAN` program trained as a Wasserstein GAN with a gradient penalty: a critic with
    unbounded scores, five critic steps per generator step, λ = 10 on interpolates, and Adam with
    β = (0, 0.9) (:attr:`adversarial`).

    References:
        Arjovsky, Chintala & Bottou (2017), "Wasserstein generative adversarial networks".
        Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville (2017), "Improved training of Wasserstein GANs".

    The arguments are :class:`GAN`'s.

    Example:
        The program is the GAN's; only the training settings differ:

        >>> import pplgen, torch
        >>> wgan = WGAN(2, z_dim=3, hidden=8)
        >>> pplgen.inspect(wgan.model, torch.zeros(4, 2)).graph["family"]
        'implicit'
        >>> settings = wgan.adversarial
        >>> settings.loss, settings.d_steps, settings.gradient_penalty
        ('wgan_gp', 5, 10.0)
    """

    @property
    def adversarial(self) -> AdversarialSettings:
        return AdversarialSettings(loss="wgan_gp", d_steps=5, ema=0.999)


class ConditionalGAN(GAN):
    r"""A class-conditional GAN: :math:`x = G(z, y)` for a given label :math:`y`.

    The one-hot label joins the generator's noise and is the ``Implicit`` site's context, so the
    discriminator judges pairs :math:`(x, y)`, real ones from the data and generated ones :math:`(G(z,
    y), y)`: the generator must draw the class it is asked for (Mirza & Osindero 2014). ``model(x, y)``
    takes the labels after the data (``takes_labels``); ``pplgen sample RUN --label 3`` draws class 3.

    References:
        Mirza & Osindero (2014), "Conditional generative adversarial nets".

    Args:
        num_classes: C, the number of labels.

    The other arguments are :class:`GAN`'s.

    Example:
        The labels reach the ``Implicit`` site as its context, which the discriminator is shown:

        >>> import pplgen, pyro, torch
        >>> cgan = ConditionalGAN(2, num_classes=3, z_dim=3, hidden=8)
        >>> x, y = torch.zeros(4, 2), torch.tensor([0, 1, 2, 0])
        >>> trace = pyro.poutine.trace(cgan.model).get_trace(x, y)
        >>> trace.nodes["x"]["fn"].context.argmax(-1).tolist()
        [0, 1, 2, 0]
        >>> pplgen.sample(cgan.model, 4, (x, y), device="cpu").shape
        torch.Size([4, 2])
    """

    #: ``model`` takes the labels after the data: ``model(x, y)``.
    takes_labels = True

    def __init__(
        self,
        dim: int,
        num_classes: int = 10,
        z_dim: int = 16,
        hidden: int = 256,
        output: str = "linear",
        image_shape: Sequence[int] | None = None,
        channels: int = 32,
    ):
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ModelError(
                f"ConditionalGAN setting num_classes must be an integer >= 1, got {num_classes!r}"
            )
        super().__init__(dim, z_dim, hidden, output, image_shape, channels)
        self.config["num_classes"] = num_classes
        self.num_classes = num_classes
        self.generator = _generator(z_dim + num_classes, dim, hidden, self.image_shape, channels)

    @classmethod
    def from_dataset(cls, dataset, **config) -> ConditionalGAN:
        """Sized for ``dataset`` as :meth:`GAN.from_dataset`, with the number of classes from its labels."""
        if dataset.y is None:
            raise DataError(
                f"a ConditionalGAN is conditioned on labels, but data set {dataset.name!r} has none"
            )
        return super().from_dataset(dataset, **{"num_classes": int(dataset.y.max()) + 1, **config})

    def one_hot(self, y: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        """The labels as one-hot rows ``(N, num_classes)``, after checking them against the data ``x``."""
        return one_hot_labels(y, self.num_classes, x.dtype, model_name="ConditionalGAN", num=len(x))

    @pyro_method
    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        x = self.data(x)
        label = self.one_hot(y, x)
        with pyro.plate("data", x.shape[0]):
            fake = self.generate(self.noise(x), label)
            pyro.sample("x", Implicit(fake, event_dim=len(self.event_shape), context=label), obs=x)
