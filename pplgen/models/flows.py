"""RealNVP and MAF as model programs over flat vectors (exact family), dequantised for discrete data."""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import torch
from pyro.nn import PyroModule, pyro_method

from pplgen.distributions.flow import Dequantized, FlowDistribution
from pplgen.errors import DataError
from pplgen.nn.flows import FlowNet, MAFNet, RealNVPNet

__all__ = ["FlowModel", "MAFModel", "RealNVPModel"]

# Data of at most this many coordinates (the 8x8 digits, 2-D mixtures) get the small settings of
# ``from_dataset``, so that a quick CPU run trains them; larger data get the papers' sizes.
SMALL_DIM = 256


class FlowModel(PyroModule):
    r"""What the flow models share: the data observed through a :class:`FlowDistribution`, inside a
    plate over the data points, with no latent sites (family ``exact``, trained by maximum likelihood).

    Continuous data are modelled as they are. Discrete data (binary, or K levels) are observed through
    :class:`pplgen.distributions.flow.Dequantized`: the flow models :math:`v = (x + u)/K \in [0, 1)^D`
    after a :class:`pplgen.nn.flows.Logit`, and the density of a level vector is the flow's density at
    :math:`v` minus :math:`D \log K`. :func:`pplgen.log_likelihood` then reports, per data point, an
    unbiased estimate of a lower bound on the discrete :math:`\log P(x)` in nats (fresh noise each
    call), and :func:`pplgen.bits_per_dim` an upper bound on bits per dimension in expectation.
    Sampling returns levels (floats 0/1 for binary data, int64 levels otherwise).

    Subclasses pass their own settings to ``__init__`` and then set ``self.net`` (a
    :class:`pplgen.nn.flows.FlowNet` that starts with ``Logit(self.logit)`` when ``self.logit`` is set).

    References:
        Theis, van den Oord & Bethge (2016), "A note on the evaluation of generative models".

    Args:
        dim: the number of coordinates D.
        num_levels: K for discrete data (2 for binary), ``None`` for continuous data.
        alpha: the logit squeeze for discrete data.
        num_noise: dequantisation noise draws per data point (see :class:`Dequantized`).
        **settings: the subclass's own settings, kept in ``config``.

    Example:
        The same flow over reals, and over binary data through dequantisation:

        >>> import pplgen, torch
        >>> type(RealNVPModel(4, layers=2, hidden=[8]).distribution()).__name__
        'FlowDistribution'
        >>> bits = RealNVPModel(4, num_levels=2, layers=2, hidden=[8], norm=None)
        >>> type(bits.distribution()).__name__, bits.config["alpha"]
        ('Dequantized', 0.05)
        >>> draws = pplgen.sample(bits.model, 6, torch.zeros(2, 4), device="cpu")
        >>> draws.shape, set(draws.unique().tolist()) <= {0.0, 1.0}
        (torch.Size([6, 4]), True)
    """

    #: Settings ``from_dataset`` uses for data of at most ``SMALL_DIM`` coordinates.
    small_config: dict = {}

    def __init__(self, dim: int, num_levels: int | None, alpha: float, num_noise: int, **settings):
        super().__init__()
        if num_levels is not None and num_levels < 2:
            raise DataError(
                f"flow models expect num_levels >= 2 (or None for continuous data), got {num_levels}"
            )
        settings = {
            k: [int(s) for s in v] if isinstance(v, (list, tuple)) else v for k, v in settings.items()
        }
        self.config = {
            "dim": dim,
            "num_levels": num_levels,
            **settings,
            "alpha": alpha,
            "num_noise": num_noise,
        }
        self.dim = dim
        self.num_levels = num_levels
        self.num_noise = num_noise
        self.logit = None if num_levels is None else alpha

    @classmethod
    def from_dataset(cls, dataset, **config) -> FlowModel:
        levels = {"binary": 2, "continuous": None}
        if dataset.kind == "discrete":
            levels["discrete"] = int(dataset.num_levels)
        if dataset.kind not in levels:
            raise DataError(
                f"{cls.__name__} models binary, discrete or continuous vectors, but {dataset.name!r} is "
                f"{dataset.kind!r}"
            )
        dim = int(dataset.x[0].numel())
        sized = dict(cls.small_config) if dim <= SMALL_DIM else {}
        return cls(
            **{"dim": dim, "num_levels": levels[dataset.kind], **sized, **cls._extra(dataset), **config}
        )

    @classmethod
    def _extra(cls, dataset) -> dict:
        """Settings read off the data set besides its size and levels."""
        return {}

    def distribution(self) -> FlowDistribution | Dequantized:
        """The distribution of one flat data point."""
        flow = FlowDistribution(self.net)
        return flow if self.num_levels is None else Dequantized(flow, self.num_levels, self.num_noise)

    @pyro_method
    def model(self, x: torch.Tensor) -> None:
        if x.dim() < 1 or x[0].numel() != self.dim:
            raise DataError(
                f"{type(self).__name__}: expected data of shape (N, {self.dim}), got shape {tuple(x.shape)}"
            )
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", self.distribution(), obs=x.reshape(x.shape[0], self.dim))


class RealNVPModel(FlowModel):
    r"""Flat vectors modelled by RealNVP (:class:`pplgen.nn.flows.RealNVPNet`): affine couplings with
    checkerboard masks for images, halves otherwise; see :class:`FlowModel` for discrete data.

    The defaults (6 couplings with two hidden layers of 512) suit binarized MNIST on a GPU;
    ``from_dataset`` uses 6 couplings of 128 units for data of at most 256 coordinates such as the
    8x8 digits.

    References:
        Dinh, Sohl-Dickstein & Bengio (2017), "Density estimation using Real NVP".

    Args:
        dim: the number of coordinates D.
        num_levels: K for discrete data (2 for binary), ``None`` for continuous data.
        layers: coupling layers.
        hidden: each coupling's conditioner widths.
        image_shape: ``(H, W)`` for checkerboard masks, or ``None`` for halves.
        norm: ``"batchnorm"`` (the paper's), ``"actnorm"`` or ``None``, after each layer.
        alpha: the logit squeeze for discrete data (0.05 in the paper).
        num_noise: dequantisation noise draws per data point (see :class:`Dequantized`).

    Example:
        The network maps data to noise and back, and the program's log-likelihood is the change of
        variables :math:`\log N(f(x); 0, I) + \log |\det \partial f / \partial x|`:

        >>> import pplgen, torch
        >>> _ = torch.manual_seed(0)
        >>> flow = RealNVPModel(4, layers=2, hidden=[8], norm=None)
        >>> x = torch.randn(5, 4)
        >>> z, log_det = flow.net(x)
        >>> torch.allclose(flow.net.inverse(z), x, atol=1e-5)
        True
        >>> by_hand = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1) + log_det
        >>> torch.allclose(pplgen.log_likelihood(flow.model, x, device="cpu"), by_hand.detach(), atol=1e-5)
        True
    """

    small_config = {"layers": 6, "hidden": [128, 128]}

    def __init__(
        self,
        dim: int,
        num_levels: int | None = None,
        layers: int = 6,
        hidden: Sequence[int] = (512, 512),
        image_shape: Sequence[int] | None = None,
        norm: str | None = "batchnorm",
        alpha: float = 0.05,
        num_noise: int = 1,
    ):
        super().__init__(
            dim,
            num_levels,
            alpha,
            num_noise,
            layers=layers,
            hidden=hidden,
            image_shape=image_shape,
            norm=norm,
        )
        self.net: FlowNet = RealNVPNet(dim, layers, hidden, image_shape, norm=norm, logit=self.logit)

    @classmethod
    def _extra(cls, dataset) -> dict:
        return {} if dataset.image_shape is None else {"image_shape": tuple(dataset.image_shape)}


class MAFModel(FlowModel):
    r"""Flat vectors modelled by a masked autoregressive flow (:class:`pplgen.nn.flows.MAFNet`); see
    :class:`FlowModel` for discrete data.

    The defaults are the paper's binarized-MNIST flow (5 MADE layers of one hidden layer of 1024 units,
    logit squeeze :math:`\lambda = 10^{-6}`); ``from_dataset`` uses 5 layers of 128 units for data of at
    most 256 coordinates such as the 8x8 digits. Sampling inverts each MADE in D passes.

    References:
        Papamakarios, Pavlakou & Murray (2017), "Masked autoregressive flow for density estimation".

    Args:
        dim: the number of coordinates D.
        num_levels: K for discrete data (2 for binary), ``None`` for continuous data.
        layers: MADE layers.
        hidden: each MADE's hidden widths.
        norm: ``"batchnorm"`` (the paper's), ``"actnorm"`` or ``None``, after each layer.
        alpha: the logit squeeze for discrete data.
        num_noise: dequantisation noise draws per data point (see :class:`Dequantized`).
        seed: the seed of the MADE degrees.

    Example:
        One MADE layer is autoregressive: noise coordinate :math:`i` depends on data coordinates
        :math:`\le i` only, so the Jacobian of data to noise is lower triangular. Inverting takes one pass
        per coordinate:

        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> maf = MAFModel(3, layers=1, hidden=[8], norm=None)
        >>> x = torch.randn(4, 3)
        >>> jacobian = torch.autograd.functional.jacobian(lambda v: maf.net(v[None])[0][0], x[0])
        >>> bool((jacobian.triu(1) == 0).all()), bool((jacobian.diagonal() != 0).all())
        (True, True)
        >>> z, _ = maf.net(x)
        >>> torch.allclose(maf.net.inverse(z.detach()), x, atol=1e-4)
        True
    """

    small_config = {"layers": 5, "hidden": [128]}

    def __init__(
        self,
        dim: int,
        num_levels: int | None = None,
        layers: int = 5,
        hidden: Sequence[int] = (1024,),
        norm: str | None = "batchnorm",
        alpha: float = 1e-6,
        num_noise: int = 1,
        seed: int = 0,
    ):
        super().__init__(
            dim, num_levels, alpha, num_noise, layers=layers, hidden=hidden, norm=norm, seed=seed
        )
        self.net: FlowNet = MAFNet(dim, layers, hidden, norm=norm, logit=self.logit, seed=seed)
