"""DRAW, the deep recurrent attentive writer, as a model program over binary images (latent family)."""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule, pyro_method

from pplgen.errors import DataError, ModelError
from pplgen.models.images import check_images, image_settings
from pplgen.nn.draw import DRAWNet

__all__ = ["DRAW"]

#: Settings for small images such as the 8 x 8 digits, set by hand rather than tuned: the paper's 64
#: steps and 256 units are far more than 64 pixels need.
SMALL_IMAGE_SETTINGS = {"steps": 16, "z_dim": 10, "hidden": 128, "read_n": 4, "write_n": 4}
_SMALL_IMAGE = 16  # at most this many pixels on the longer side


class DRAW(PyroModule):
    r"""DRAW: a canvas drawn over :math:`T` steps by a recurrent decoder, read by a recurrent encoder.

    The model, for :math:`t = 1 \dots T`:

    .. math::
        z_t \sim N(0, I), \quad h^{dec}_t = \mathrm{LSTM}^{dec}(z_t, h^{dec}_{t-1}), \quad
        c_t = c_{t-1} + \mathrm{write}(h^{dec}_t), \qquad x \sim \mathrm{Bernoulli}(\sigma(c_T)).

    The guide reads :math:`r_t = \mathrm{read}(x, x - \sigma(c_{t-1}), h^{dec}_{t-1})`, updates
    :math:`h^{enc}_t = \mathrm{LSTM}^{enc}([r_t, h^{dec}_{t-1}], h^{enc}_{t-1})` and samples
    :math:`z_t \sim q(z_t \mid h^{enc}_t) = N(\mu_t, \mathrm{diag}\,\sigma_t^2)`. It needs
    :math:`h^{dec}_{t-1}`, so it re-runs the decoder with its own :math:`z`'s; model and guide share the
    networks of one :class:`pplgen.nn.draw.DRAWNet`. The latent sites are ``z_0 ... z_{T-1}`` (a chain
    in :func:`pplgen.inspect`'s graph) and the observed site is ``x``, all inside the plate ``data``.

    The defaults are the paper's binarized-MNIST settings with attention (Table 3: 64 steps, a 2 x 2
    read, a 5 x 5 write, 256 LSTM units, 100-dimensional :math:`z_t`). ``from_dataset`` uses
    ``SMALL_IMAGE_SETTINGS`` for images of at most 16 pixels a side, such as the 8 x 8 digits.

    The data arrive flat, ``x`` of shape ``(N, H * W)`` (or ``(N, H, W)``), float 0/1; samples are flat.

    References:
        Gregor, Danihelka, Graves, Rezende & Wierstra (2015), "DRAW: a recurrent neural network for
        image generation".
        Kingma & Welling (2014), "Auto-encoding variational Bayes".

    Args:
        image_shape: (H, W); need not be square.
        steps: the number of steps T.
        z_dim: the size of each step's latent :math:`z_t`.
        hidden: the width of the encoder and decoder LSTMs.
        read_n: the read grid N (attention only).
        write_n: the write grid N (attention only).
        attention: Gaussian attention (True) or reading and writing whole images (False).

    >>> import pplgen
    >>> module = DRAW((8, 8), steps=3, z_dim=2, hidden=8)
    >>> pplgen.sample(module.model, 2, torch.zeros(1, 64)).shape
    torch.Size([2, 64])
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        steps: int = 64,  # T for binarized MNIST with attention (Gregor et al. 2015, Table 3)
        z_dim: int = 100,
        hidden: int = 256,
        read_n: int = 2,
        write_n: int = 5,
        attention: bool = True,
    ):
        super().__init__()
        self.config = {
            "image_shape": [int(s) for s in image_shape],
            "steps": steps,
            "z_dim": z_dim,
            "hidden": hidden,
            "read_n": read_n,
            "write_n": write_n,
            "attention": attention,
        }
        self.image_shape = tuple(self.config["image_shape"])
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ModelError(f"DRAW: steps must be a positive integer, got {steps!r}")
        self.steps = steps
        self.net = DRAWNet(self.image_shape, z_dim, hidden, read_n, write_n, attention)

    @classmethod
    def from_dataset(cls, dataset, **config) -> DRAW:
        shape = image_settings(dataset, "DRAW", kinds=("binary",))["image_shape"]
        small = SMALL_IMAGE_SETTINGS if max(shape) <= _SMALL_IMAGE else {}
        return cls(**{"image_shape": shape, **small, **config})

    def _images(self, x: torch.Tensor) -> torch.Tensor:
        """The data as images ``(N, H, W)`` in the model's dtype, or a DataError naming the expected shape,
        dtype or support."""
        images = check_images(x, self.image_shape, 2, "DRAW")
        if not x.is_floating_point():  # the canvas's Bernoulli likelihood scores floats
            raise DataError(f"DRAW: expected binary images as floats 0.0/1.0, got dtype {x.dtype}")
        return images.to(next(self.parameters()).dtype)

    @pyro_method
    def model(self, x: torch.Tensor) -> None:
        x = self._images(x)
        batch = x.shape[0]
        state = self.net.start(batch)
        prior = dist.Normal(x.new_zeros(self.net.z_dim), x.new_ones(self.net.z_dim)).to_event(1)
        with pyro.plate("data", batch):
            for t in range(self.steps):
                z = pyro.sample(f"z_{t}", prior)
                state = self.net.decode(z, state)
            likelihood = dist.Bernoulli(logits=state.canvas.flatten(1)).to_event(1)
            pyro.sample("x", likelihood, obs=x.reshape(batch, -1))

    @pyro_method
    def guide(self, x: torch.Tensor) -> None:
        images = self._images(x)
        state = self.net.start(images.shape[0])
        with pyro.plate("data", images.shape[0]):
            for t in range(self.steps):
                state, loc, scale = self.net.encode(images, state)
                z = pyro.sample(f"z_{t}", dist.Normal(loc, scale).to_event(1))
                state = self.net.decode(z, state)
