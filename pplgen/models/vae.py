"""The variational autoencoder (latent family): MLP or convolutional networks, three likelihoods."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.nn import PyroModule, pyro_method
from torch import nn

from pplgen.distributions.logistic import DiscretizedLogistic
from pplgen.errors import DataError, ModelError, support_scans
from pplgen.nn.conv import ConvDecoder, ConvEncoder, image_channels_first
from pplgen.nn.mlp import MLP

__all__ = ["ACTIVATIONS", "ARCHS", "IWAE_MNIST", "LIKELIHOODS", "VAE", "VAEBase"]

#: The likelihoods p(x | z), and how many numbers per data dimension the decoder gives for each.
LIKELIHOODS = {"bernoulli": 1, "normal": 1, "logistic": 2}
#: The encoder and decoder bodies.
ARCHS = ("mlp", "conv")
#: The activations a setting can name.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "softplus": nn.Softplus,
}
#: The networks of Burda, Grosse & Salakhutdinov (2016, Section 5), one stochastic layer of 50 units and
#: two deterministic layers of 200 tanh units in encoder and decoder; ``VAE(784, **IWAE_MNIST)`` on
#: binarized MNIST.
IWAE_MNIST = {"z_dim": 50, "hidden": 200, "layers": 2, "activation": "tanh"}

_MIN_SCALE = 1e-3  # the logistic's smallest scale: a bin of 256 levels is 0.008 wide on [-1, 1]
_MIN_POSTERIOR_SCALE = 1e-4


class VAEBase(PyroModule):
    r"""The body shared by :class:`VAE` and :class:`~pplgen.models.cvae.CVAE`: networks, likelihoods and
    data checks, with an optional context vector c (a one-hot label) fed to both networks.

    The decoder maps :math:`(z, c)` to the parameters of :math:`p(x \mid z, c)`, the encoder maps
    :math:`(x, c)` to :math:`q(z \mid x, c) = N(\mu, \mathrm{diag}\,s^2)` with
    :math:`s = \mathrm{softplus}(\cdot) + 10^{-4}`. Subclasses write ``model`` and ``guide`` with
    :meth:`model_with` and :meth:`guide_with`, and may override :meth:`prior`.

    Args:
        dim: data dimensions D (the data arrive flat, ``(N, D)``).
        z_dim: latent dimensions.
        hidden: the hidden width: of every MLP layer, or of the conv networks' fully connected layer.
        likelihood: ``"bernoulli"`` (binary data), ``"normal"`` (reals; one learned scale per dimension)
            or ``"logistic"`` (levels ``0 .. num_levels - 1``, :class:`DiscretizedLogistic` with a
            location and a scale per dimension from the decoder).
        arch: ``"mlp"`` or ``"conv"`` (:class:`~pplgen.nn.conv.ConvEncoder` and
            :class:`~pplgen.nn.conv.ConvDecoder`; needs ``image_shape``).
        image_shape: ``(H, W)`` or ``(C, H, W)`` of one data point, whose product is ``dim``.
        num_levels: K for the logistic likelihood.
        layers: the depth: hidden layers of each MLP, or stride-2 stages of the conv networks.
        activation: one of :data:`ACTIVATIONS`.
        channels: the conv networks' first-stage channels.
        context_dim: the context vector's width (0: none).
    """

    def __init__(
        self,
        dim: int,
        z_dim: int,
        hidden: int,
        likelihood: str,
        arch: str,
        image_shape: Sequence[int] | None,
        num_levels: int | None,
        layers: int,
        activation: str,
        channels: int,
        context_dim: int,
    ):
        super().__init__()
        _check_settings(
            dim, z_dim, hidden, likelihood, arch, image_shape, num_levels, layers, activation, channels
        )
        self.config = {
            "dim": dim,
            "z_dim": z_dim,
            "hidden": hidden,
            "likelihood": likelihood,
            "arch": arch,
            "image_shape": None if image_shape is None else [int(s) for s in image_shape],
            "num_levels": num_levels,
            "layers": layers,
            "activation": activation,
            "channels": channels,
        }
        self.dim, self.z_dim, self.context_dim = dim, z_dim, context_dim
        self.likelihood, self.arch, self.num_levels = likelihood, arch, num_levels
        self.image_shape = None if image_shape is None else tuple(self.config["image_shape"])
        act = ACTIVATIONS[activation]
        params = LIKELIHOODS[likelihood]
        if arch == "mlp":
            self.encoder = MLP([dim + context_dim, *[hidden] * layers, 2 * z_dim], act)
            self.decoder = MLP([z_dim + context_dim, *[hidden] * layers, params * dim], act)
        else:
            image_channels = image_channels_first(self.image_shape)[0]
            self.encoder = ConvEncoder(
                self.image_shape, 2 * z_dim, channels, hidden, layers, context_dim, activation=act
            )
            self.decoder = ConvDecoder(
                z_dim + context_dim, self.image_shape, params * image_channels, channels, hidden, layers, act
            )
        if likelihood == "normal":
            self.log_scale = nn.Parameter(torch.zeros(dim))

    @staticmethod
    def dataset_settings(dataset) -> dict:
        """The settings a :class:`pplgen.data.Dataset` fixes: ``dim``, ``likelihood``, ``num_levels`` and
        ``image_shape``. Binary data get the Bernoulli, K-level data the discretised logistic, reals the
        normal."""
        kinds = {"binary": "bernoulli", "discrete": "logistic", "continuous": "normal"}
        if dataset.kind not in kinds:
            raise DataError(
                f"a VAE models binary, discrete or continuous data, but {dataset.name!r} is {dataset.kind!r}"
            )
        image_shape = None if dataset.image_shape is None else [int(s) for s in dataset.image_shape]
        return {
            "dim": int(dataset.x[0].numel()),
            "likelihood": kinds[dataset.kind],
            "num_levels": dataset.num_levels,
            "image_shape": image_shape,
        }

    @staticmethod
    def _check_conv_data(dataset, config: dict) -> None:
        if config.get("arch") == "conv" and dataset.image_shape is None:
            raise DataError(
                f"arch='conv' needs images, but data set {dataset.name!r} has no image_shape "
                "(expected e.g. image_shape=(8, 8)); use arch='mlp'"
            )

    @property
    def _dtype(self) -> torch.dtype:
        # nn.Module's own registry: PyroModule's attribute access would send a param message per tensor
        return next(self._modules["decoder"].parameters()).dtype

    def check_data(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as flat floats ``(N, D)``, after checking its shape and that it lies in the support."""
        name = type(self).__name__
        if x.dim() < 2 or x[0].numel() != self.dim:
            raise DataError(f"{name} expects data of shape (N, {self.dim}), got shape {tuple(x.shape)}")
        flat = x.reshape(x.shape[0], -1)
        if not support_scans():  # the training loop's data were scanned whole before it began
            return flat.to(self._dtype)
        if self.likelihood == "bernoulli":
            outside = (flat != 0) & (flat != 1)
            expected = "binary data (0 or 1) for its Bernoulli likelihood"
        elif self.likelihood == "logistic":
            outside = (flat != flat.round()) | (flat < 0) | (flat > self.num_levels - 1)
            expected = f"integer levels 0 .. {self.num_levels - 1} for its discretised logistic likelihood"
        else:
            outside = ~torch.isfinite(flat.to(self._dtype))
            expected = "finite reals for its normal likelihood"
        if bool(outside.any()):
            raise DataError(
                f"{name} expects {expected}, got {int(outside.sum())} values outside that, "
                f"e.g. {float(flat[outside][0]):g}"
            )
        return flat.to(self._dtype)

    def _with_context(self, h: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        if context is None:
            return h
        return torch.cat([h, context.expand(*h.shape[:-1], context.shape[-1])], dim=-1)

    def decode(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The likelihood's parameters, shape ``(..., P, D)`` (P = 1, or 2 for the logistic)."""
        out = self.decoder(self._with_context(z, context))
        # the conv decoder orders its channels (P, C), so (..., P * C, H, W) flattens to (..., P, D) with
        # D in the data's own (C, H, W) order
        return out.reshape(*z.shape[:-1], LIKELIHOODS[self.likelihood], self.dim)

    def observation(self, z: torch.Tensor, context: torch.Tensor | None = None) -> dist.Distribution:
        """p(x | z) (or p(x | z, c)) as a distribution over one flat data point."""
        params = self.decode(z, context)
        if self.likelihood == "bernoulli":
            return dist.Bernoulli(logits=params[..., 0, :]).to_event(1)
        if self.likelihood == "normal":
            return dist.Normal(params[..., 0, :], self.log_scale.exp()).to_event(1)
        scale = F.softplus(params[..., 1, :]) + _MIN_SCALE
        return DiscretizedLogistic(params[..., 0, :], scale, self.num_levels).to_event(1)

    def encode(
        self, flat: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The location and scale of q(z | x) (or q(z | x, c)) for flat data ``(..., D)``."""
        if self.likelihood == "logistic":  # levels onto [-1, 1], the scale the decoder's locations live on
            flat = flat * (2.0 / (self.num_levels - 1)) - 1.0
        if self.arch == "mlp":
            out = self.encoder(self._with_context(flat, context))
        else:
            out = self.encoder(flat.reshape(*flat.shape[:-1], *self.image_shape), context)
        loc, raw_scale = out.chunk(2, dim=-1)
        return loc, F.softplus(raw_scale) + _MIN_POSTERIOR_SCALE

    def prior(self, context: torch.Tensor | None, like: torch.Tensor) -> dist.Distribution:
        """p(z) = N(0, I) (subclasses may condition it on the context); ``like`` gives dtype and device."""
        return dist.Normal(like.new_zeros(self.z_dim), like.new_ones(self.z_dim)).to_event(1)

    def model_with(self, x: torch.Tensor, context: torch.Tensor | None) -> None:
        """The generative program: z ~ p(z | c), then x observed under p(x | z, c), one per data point."""
        flat = self.check_data(x)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.prior(context, flat))
            pyro.sample("x", self.observation(z, context), obs=flat)

    def guide_with(self, x: torch.Tensor, context: torch.Tensor | None) -> None:
        """The amortised guide: z ~ q(z | x, c)."""
        flat = self.check_data(x)
        with pyro.plate("data", x.shape[0]):
            loc, scale = self.encode(flat, context)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))


def _check_settings(
    dim, z_dim, hidden, likelihood, arch, image_shape, num_levels, layers, activation, channels
) -> None:
    for label, value, least in (
        ("dim", dim, 1),
        ("z_dim", z_dim, 1),
        ("hidden", hidden, 1),
        ("layers", layers, 0),
        ("channels", channels, 1),
    ):
        if not isinstance(value, int) or value < least:
            raise ModelError(f"VAE setting {label} must be an integer >= {least}, got {value!r}")
    for label, value, allowed in (
        ("likelihood", likelihood, tuple(LIKELIHOODS)),
        ("arch", arch, ARCHS),
        ("activation", activation, tuple(ACTIVATIONS)),
    ):
        if value not in allowed:
            raise ModelError(f"{label} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    if likelihood == "logistic" and (num_levels is None or num_levels < 2):
        raise ModelError(f"likelihood='logistic' needs num_levels >= 2 (K levels), got {num_levels!r}")
    if arch == "conv" and image_shape is None:
        raise ModelError("arch='conv' needs image_shape, (H, W) or (C, H, W), got None")
    if image_shape is not None and math.prod(image_shape) != dim:
        raise ModelError(
            f"image_shape {tuple(image_shape)} has {math.prod(image_shape)} entries, but dim is {dim}"
        )


class VAE(VAEBase):
    r"""A variational autoencoder over flat data points.

    .. math::
        z \sim N(0, I), \qquad x \mid z \sim p_\theta(x \mid z), \qquad
        q_\phi(z \mid x) = N(\mu_\phi(x), \mathrm{diag}\, s_\phi(x)^2),

    with :math:`p_\theta(x \mid z)` a Bernoulli with logits :math:`f_\theta(z)` (binary data), a normal
    :math:`N(f_\theta(z), \mathrm{diag}\,\sigma^2)` with one learned :math:`\sigma` per dimension (reals),
    or a :class:`~pplgen.distributions.logistic.DiscretizedLogistic` whose location and scale per pixel
    come from the decoder (K-level data, as in Kingma et al. 2016). The encoder and decoder are MLPs
    (``arch="mlp"``: ``layers`` hidden layers of ``hidden`` units) or convolutional (``arch="conv"``, see
    :mod:`pplgen.nn.conv`). Latent family: trained by SVI with its ``guide``, evaluated by importance
    sampling.

    The IWAE paper's MNIST networks (Burda et al. 2016: 50 latent dimensions, two deterministic layers of
    200 tanh units each way) are ``VAE(784, z_dim=50, hidden=200, layers=2, activation="tanh")``, i.e.
    ``VAE(784, **IWAE_MNIST)``; on the command line ``--set z_dim=50 --set hidden=200 --set
    activation=tanh``.

    References:
        Kingma & Welling (2014), "Auto-encoding variational Bayes".
        Rezende, Mohamed & Wierstra (2014), "Stochastic backpropagation and approximate inference in deep
        generative models".
        Burda, Grosse & Salakhutdinov (2016), "Importance weighted autoencoders".
        Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling (2016), "Improving variational inference
        with inverse autoregressive flow".

    Args:
        dim: data dimensions D (the data are flat vectors).
        z_dim: latent dimensions.
        hidden: hidden layer width of encoder and decoder.
        likelihood: ``"bernoulli"``, ``"normal"`` or ``"logistic"``.
        arch: ``"mlp"`` or ``"conv"``.
        image_shape: ``(H, W)`` or ``(C, H, W)`` of one data point; needed by ``arch="conv"``.
        num_levels: K, the levels of the logistic likelihood.
        layers: hidden layers of each MLP, or stride-2 stages of the conv networks.
        activation: ``"relu"``, ``"tanh"``, ``"elu"`` or ``"softplus"``.
        channels: the conv networks' first-stage channels.

    >>> vae = VAE(64, z_dim=2, hidden=16)
    >>> vae.observation(torch.zeros(3, 2)).batch_shape, vae.observation(torch.zeros(3, 2)).event_shape
    (torch.Size([3]), torch.Size([64]))
    """

    def __init__(
        self,
        dim: int,
        z_dim: int = 8,
        hidden: int = 256,
        likelihood: str = "bernoulli",
        arch: str = "mlp",
        image_shape: Sequence[int] | None = None,
        num_levels: int | None = None,
        layers: int = 2,
        activation: str = "relu",
        channels: int = 32,
    ):
        super().__init__(
            dim, z_dim, hidden, likelihood, arch, image_shape, num_levels, layers, activation, channels, 0
        )

    @classmethod
    def from_dataset(cls, dataset, **config) -> VAE:
        """Sized for ``dataset``; the likelihood follows its kind (binary, discrete with K levels, reals)."""
        cls._check_conv_data(dataset, config)
        return cls(**{**cls.dataset_settings(dataset), **config})

    @pyro_method
    def model(self, x: torch.Tensor) -> None:
        self.model_with(x, None)

    @pyro_method
    def guide(self, x: torch.Tensor) -> None:
        self.guide_with(x, None)
