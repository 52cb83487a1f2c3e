r"""DRAW's networks: Gaussian attention filterbanks, the read and write operations, and the recurrence.

DRAW (Gregor et al. 2015) draws an image over :math:`T` steps. A decoder LSTM adds a patch to a canvas
at each step; an encoder LSTM reads the image and the error :math:`\hat x = x - \sigma(c)` of the canvas
so far. With attention, reading and writing go through an :math:`N \times N` grid of Gaussian filters
whose centre :math:`(g_X, g_Y)`, stride :math:`\delta`, variance :math:`\sigma^2` and intensity
:math:`\gamma` come from a linear layer on the decoder's state:

.. math::
    F_X[i, a] \propto \exp\Big(-\frac{(a - \mu_X^i)^2}{2\sigma^2}\Big), \qquad
    \mu_X^i = g_X + \big(i - \tfrac{N - 1}{2}\big)\,\delta, \qquad \sum_a F_X[i, a] = 1,

    \mathrm{read}(x) = \gamma\, F_Y\, x\, F_X^\top \quad (N \times N), \qquad
    \mathrm{write}(w) = \tfrac{1}{\gamma}\, F_Y^\top\, w\, F_X \quad (H \times W).

Pixel coordinates here count from 0, so the paper's centre :math:`\tfrac{A + 1}{2}(\tilde g_X + 1)`
(pixels counted from 1) becomes :math:`\tfrac{A + 1}{2}(\tilde g_X + 1) - 1`. These modules hold the
deterministic parts only; :class:`pplgen.models.draw.DRAW` puts the sample sites around them.

References:
    Gregor, Danihelka, Graves, Rezende & Wierstra (2015), "DRAW: a recurrent neural network for image
    generation".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from pplgen.errors import ModelError

__all__ = [
    "AttentionReader",
    "AttentionWriter",
    "DRAWNet",
    "DRAWState",
    "Filters",
    "FullReader",
    "FullWriter",
    "GaussianAttention",
    "filterbank",
    "read_glimpse",
    "write_glimpse",
]

# exp(log sigma^2) underflows to 0 for very negative outputs; a floor keeps every filter defined.
_MIN_VARIANCE = 1e-8
# The posterior's scale never reaches 0, so log q stays finite early in training.
_MIN_SCALE = 1e-4


def filterbank(
    center: torch.Tensor, stride: torch.Tensor, variance: torch.Tensor, n: int, size: int
) -> torch.Tensor:
    r"""One axis of an :math:`n`-filter Gaussian grid over ``size`` pixels: shape ``(B, n, size)``.

    Filter :math:`i` is centred at :math:`\mu^i = g + (i - \tfrac{n - 1}{2})\delta` and each row is
    normalised to sum to one. The normalisation is a softmax over pixels, which equals the paper's
    division by :math:`Z` but stays finite when a centre lies far outside the image.

    Args:
        center: the grid centre :math:`g`, in pixels counted from 0, shape ``(B,)``.
        stride: the distance :math:`\delta` between neighbouring filters, shape ``(B,)``.
        variance: the isotropic variance :math:`\sigma^2`, shape ``(B,)``.
        n: the number of filters N.
        size: the image's extent along this axis (W for :math:`F_X`, H for :math:`F_Y`).

    >>> bank = filterbank(torch.tensor([3.5]), torch.tensor([2.0]), torch.tensor([1.0]), n=3, size=8)
    >>> bank.shape, torch.allclose(bank.sum(-1), torch.ones(1, 3))
    (torch.Size([1, 3, 8]), True)

    References:
        Gregor et al. (2015), "DRAW: a recurrent neural network for image generation", section 3.2.
    """
    offsets = torch.arange(n, dtype=center.dtype, device=center.device) - (n - 1) / 2
    mu = center[:, None] + offsets * stride[:, None]  # (B, n)
    pixels = torch.arange(size, dtype=center.dtype, device=center.device)
    variance = variance.clamp_min(_MIN_VARIANCE)
    return torch.softmax(-((pixels - mu[:, :, None]) ** 2) / (2 * variance[:, None, None]), dim=-1)


class Filters(NamedTuple):
    """An attention window: the filterbanks :math:`F_Y` ``(B, N, H)``, :math:`F_X` ``(B, N, W)`` and
    the intensity :math:`\\gamma` ``(B,)``."""

    fy: torch.Tensor
    fx: torch.Tensor
    gamma: torch.Tensor


def read_glimpse(images: torch.Tensor, filters: Filters) -> torch.Tensor:
    r""":math:`\gamma F_Y x F_X^\top`: images ``(B, ..., H, W)`` to glimpses ``(B, ..., N, N)``.

    Dimensions between the batch and the image (e.g. :math:`x` and :math:`\hat x` stacked) share the
    filters.
    """
    extra = images.dim() - 3
    fy, fx, gamma = (t.reshape(t.shape[:1] + (1,) * extra + t.shape[1:]) for t in filters)
    return gamma[..., None, None] * (fy @ images @ fx.transpose(-1, -2))


def write_glimpse(patches: torch.Tensor, filters: Filters) -> torch.Tensor:
    r""":math:`\tfrac{1}{\gamma} F_Y^\top w F_X`: patches ``(B, N, N)`` to images ``(B, H, W)``.

    Up to the intensity this is the adjoint of :func:`read_glimpse`: writing spreads each patch entry
    over the pixels that the same filters would read it from.
    """
    fy, fx, gamma = filters
    return (fy.transpose(-1, -2) @ patches @ fx) / gamma[:, None, None]


class GaussianAttention(nn.Module):
    r"""An :math:`N \times N` Gaussian attention window placed by a linear layer on a hidden state.

    The layer gives :math:`(\tilde g_X, \tilde g_Y, \log\sigma^2, \log\tilde\delta, \log\gamma)`, and

    .. math::
        g_X = \tfrac{W + 1}{2}(\tilde g_X + 1) - 1, \quad g_Y = \tfrac{H + 1}{2}(\tilde g_Y + 1) - 1,
        \quad \delta = \frac{\max(H, W) - 1}{N - 1}\,\tilde\delta,

    so :math:`\tilde g = 0, \tilde\delta = 1` is a grid centred on the image that spans its longer
    side.

    Args:
        hidden_size: the width of the hidden state that places the window.
        image_shape: (H, W).
        n: the grid size N.

    References:
        Gregor et al. (2015), "DRAW: a recurrent neural network for image generation", section 3.2.

    Example:
        >>> attention = GaussianAttention(hidden_size=8, image_shape=(6, 10), n=3)
        >>> filters = attention(torch.randn(2, 8))
        >>> filters.fy.shape, filters.fx.shape, filters.gamma.shape
        (torch.Size([2, 3, 6]), torch.Size([2, 3, 10]), torch.Size([2]))
        >>> torch.allclose(filters.fx.sum(-1), torch.ones(2, 3))  # each filter sums to one
        True
        >>> with torch.no_grad():
        ...     _ = attention.layer.weight.zero_(), attention.layer.bias.zero_()
        >>> [round(t[0].item(), 2) for t in attention.window(torch.zeros(1, 8))]  # centred, spanning W
        [2.5, 4.5, 4.5, 1.0, 1.0]
    """

    def __init__(self, hidden_size: int, image_shape: Sequence[int], n: int):
        super().__init__()
        self.height, self.width = _image_shape(image_shape)
        self.n = _positive("n", n)
        self.layer = nn.Linear(hidden_size, 5)

    def window(self, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The window's ``(center_y, center_x, stride, variance, gamma)`` for hidden states ``(B, hidden)``,
        each of shape ``(B,)``."""
        gx, gy, log_variance, log_stride, log_gamma = self.layer(h).unbind(-1)
        center_x = (self.width + 1) / 2 * (gx + 1) - 1
        center_y = (self.height + 1) / 2 * (gy + 1) - 1
        stride = (max(self.height, self.width) - 1) / max(self.n - 1, 1) * log_stride.exp()
        return center_y, center_x, stride, log_variance.exp(), log_gamma.exp()

    def forward(self, h: torch.Tensor) -> Filters:
        center_y, center_x, stride, variance, gamma = self.window(h)
        fy = filterbank(center_y, stride, variance, self.n, self.height)
        fx = filterbank(center_x, stride, variance, self.n, self.width)
        return Filters(fy, fx, gamma)


class AttentionReader(nn.Module):
    r"""DRAW's read with attention: :math:`[\gamma F_Y x F_X^\top, \gamma F_Y \hat x F_X^\top]`, flat.

    Both glimpses share one window, placed by the decoder's previous state. ``out_features`` is
    :math:`2N^2`.
    """

    def __init__(self, hidden_size: int, image_shape: Sequence[int], n: int):
        super().__init__()
        self.attention = GaussianAttention(hidden_size, image_shape, n)
        self.out_features = 2 * n * n

    def forward(self, x: torch.Tensor, x_hat: torch.Tensor, h_dec: torch.Tensor) -> torch.Tensor:
        glimpses = read_glimpse(torch.stack([x, x_hat], dim=1), self.attention(h_dec))  # (B, 2, N, N)
        return glimpses.flatten(1)


class FullReader(nn.Module):
    r"""DRAW's read without attention: the whole image and error image, :math:`[x, \hat x]`, flat.

    ``out_features`` is :math:`2HW`; the decoder state is not used.
    """

    def __init__(self, image_shape: Sequence[int]):
        super().__init__()
        height, width = _image_shape(image_shape)
        self.out_features = 2 * height * width

    def forward(self, x: torch.Tensor, x_hat: torch.Tensor, h_dec: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.flatten(1), x_hat.flatten(1)], dim=1)


class AttentionWriter(nn.Module):
    r"""DRAW's write with attention: a linear layer gives an :math:`N \times N` patch :math:`w`, which
    is written as :math:`\tfrac{1}{\hat\gamma}\hat F_Y^\top w \hat F_X` through a window of its own."""

    def __init__(self, hidden_size: int, image_shape: Sequence[int], n: int):
        super().__init__()
        self.attention = GaussianAttention(hidden_size, image_shape, n)
        self.patch = nn.Linear(hidden_size, n * n)
        self.n = n

    def forward(self, h_dec: torch.Tensor) -> torch.Tensor:
        patches = self.patch(h_dec).reshape(-1, self.n, self.n)
        return write_glimpse(patches, self.attention(h_dec))


class FullWriter(nn.Module):
    """DRAW's write without attention: a linear layer from the decoder state to the whole canvas."""

    def __init__(self, hidden_size: int, image_shape: Sequence[int]):
        super().__init__()
        self.image_shape = _image_shape(image_shape)
        self.layer = nn.Linear(hidden_size, self.image_shape[0] * self.image_shape[1])

    def forward(self, h_dec: torch.Tensor) -> torch.Tensor:
        return self.layer(h_dec).reshape(-1, *self.image_shape)


class DRAWState(NamedTuple):
    """The recurrence's state between steps: the canvas ``(B, H, W)`` and the decoder's and encoder's
    LSTM states ``(h, c)``, each ``(B, hidden)``."""

    canvas: torch.Tensor
    decoder: tuple[torch.Tensor, torch.Tensor]
    encoder: tuple[torch.Tensor, torch.Tensor]


class DRAWNet(nn.Module):
    r"""The deterministic recurrence of DRAW, one step at a time; the model program samples between
    steps.

    - :meth:`decode`: :math:`h^{dec}_t = \mathrm{LSTM}^{dec}(z_t, h^{dec}_{t-1})`,
      :math:`c_t = c_{t-1} + \mathrm{write}(h^{dec}_t)`.
    - :meth:`encode`: :math:`\hat x_t = x - \sigma(c_{t-1})`,
      :math:`r_t = \mathrm{read}(x, \hat x_t, h^{dec}_{t-1})`,
      :math:`h^{enc}_t = \mathrm{LSTM}^{enc}([r_t, h^{dec}_{t-1}], h^{enc}_{t-1})`, and the parameters
      :math:`(\mu_t, \sigma_t)` of :math:`q(z_t \mid h^{enc}_t)`.

    The initial canvas and LSTM states are learned vectors shared by all data points, so the first
    steps need not spend themselves on the mean image.

    Args:
        image_shape: (H, W).
        z_dim: the size of each step's latent :math:`z_t`.
        hidden: the width of both LSTMs.
        read_n: the read grid size N (attention only).
        write_n: the write grid size N (attention only).
        attention: Gaussian attention windows (True), or reading and writing whole images (False).

    References:
        Gregor et al. (2015), "DRAW: a recurrent neural network for image generation".
        Hochreiter & Schmidhuber (1997), "Long short-term memory".

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = DRAWNet(image_shape=(6, 5), z_dim=3, hidden=8, read_n=2, write_n=3)
        >>> state = net.start(batch=4)
        >>> state, loc, scale = net.encode(torch.rand(4, 6, 5), state)  # q(z_1 | x)
        >>> loc.shape, bool((scale > 0).all())
        (torch.Size([4, 3]), True)
        >>> state = net.decode(loc + scale * torch.randn(4, 3), state)  # write with z_1
        >>> state.canvas.shape, state.decoder[0].shape
        (torch.Size([4, 6, 5]), torch.Size([4, 8]))
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        z_dim: int,
        hidden: int,
        read_n: int = 2,
        write_n: int = 5,
        attention: bool = True,
    ):
        super().__init__()
        self.image_shape = _image_shape(image_shape)
        self.z_dim = _positive("z_dim", z_dim)
        self.hidden = _positive("hidden", hidden)
        if attention:
            self.reader: nn.Module = AttentionReader(hidden, self.image_shape, read_n)
            self.writer: nn.Module = AttentionWriter(hidden, self.image_shape, write_n)
        else:
            self.reader = FullReader(self.image_shape)
            self.writer = FullWriter(hidden, self.image_shape)
        self.encoder = nn.LSTMCell(self.reader.out_features + hidden, hidden)
        self.decoder = nn.LSTMCell(z_dim, hidden)
        self.posterior = nn.Linear(hidden, 2 * z_dim)
        self.initial_canvas = nn.Parameter(torch.zeros(self.image_shape))
        self.initial_decoder = nn.Parameter(torch.zeros(2, hidden))  # (h, c)
        self.initial_encoder = nn.Parameter(torch.zeros(2, hidden))

    def start(self, batch: int) -> DRAWState:
        """The state before the first step, for ``batch`` data points."""
        canvas = self.initial_canvas.expand(batch, *self.image_shape)
        decoder = tuple(s.expand(batch, self.hidden) for s in self.initial_decoder)
        encoder = tuple(s.expand(batch, self.hidden) for s in self.initial_encoder)
        return DRAWState(canvas, decoder, encoder)

    def decode(self, z: torch.Tensor, state: DRAWState) -> DRAWState:
        """One decoder step with latents ``z`` ``(B, z_dim)``: the next decoder state and canvas."""
        decoder = self.decoder(z, state.decoder)
        return state._replace(canvas=state.canvas + self.writer(decoder[0]), decoder=decoder)

    def encode(self, x: torch.Tensor, state: DRAWState) -> tuple[DRAWState, torch.Tensor, torch.Tensor]:
        """One encoder step on images ``x`` ``(B, H, W)``: the state with the new encoder state, and the
        posterior's location and scale, each ``(B, z_dim)``."""
        h_dec = state.decoder[0]
        read = self.reader(x, x - torch.sigmoid(state.canvas), h_dec)
        encoder = self.encoder(torch.cat([read, h_dec], dim=-1), state.encoder)
        loc, raw_scale = self.posterior(encoder[0]).chunk(2, dim=-1)
        return state._replace(encoder=encoder), loc, F.softplus(raw_scale) + _MIN_SCALE


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelError(f"DRAW: {name} must be a positive integer, got {value!r}")
    return value


def _image_shape(image_shape: Sequence[int]) -> tuple[int, int]:
    shape = tuple(image_shape)
    if len(shape) != 2:
        raise ModelError(f"DRAW: image_shape must be (H, W), got {shape!r}")
    return _positive("image height", shape[0]), _positive("image width", shape[1])
