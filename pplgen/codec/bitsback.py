r"""Bits-back coding with a latent variable model (BB-ANS).

To code :math:`x` with :math:`p(x, z) = p(z)\,p(x \mid z)` and an encoder :math:`q(z \mid x)`, the coder

1. *pops* :math:`z` from the message with :math:`q(z \mid x)`: it decodes bits that are already there,
   which draws :math:`z \sim q` and shortens the message by :math:`-\log_2 q(z \mid x)` bits;
2. pushes :math:`x` with :math:`p(x \mid z)`, then :math:`z` with :math:`p(z)`.

The net cost is :math:`-\log_2 p(x \mid z) - \log_2 p(z) + \log_2 q(z \mid x)`, whose mean over
:math:`q` is the negative ELBO. The decoder runs the steps backwards: pop :math:`z` with the prior, pop
:math:`x` given :math:`z`, and push :math:`z` with :math:`q(z \mid x)`, which gives the coder's bits back.
Chained over a data set, only the first points in each lane pay for their latents in full.

Continuous latents are discretised into :math:`2^b` buckets of equal prior mass per dimension, so the
prior codes a bucket in exactly :math:`b` bits and the posterior's mass of a bucket is a difference of
its distribution function at the edges; the latent value is the bucket's prior median. For a prior
:math:`N(\mu, \sigma^2)` the edges are :math:`\mu + \sigma\,\Phi^{-1}(j / 2^b)`.

References:
    Townsend, Bird & Barber (2019), "Practical lossless compression with latent variables using bits
    back coding", ICLR.
    Frey & Hinton (1997), "Efficient stochastic source coding and an application to a Bayesian
    network source model" (bits back).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyro.distributions as dist
import torch
from pyro.poutine.util import site_is_subsample

from pplgen.codec.ans import Message
from pplgen.codec.sites import run, site_coder, with_placeholder
from pplgen.errors import CodecError

__all__ = ["BitsBack", "DiscretisedNormal"]


def _unwrap(fn: dist.Distribution) -> dist.Distribution:
    while isinstance(fn, dist.Independent | torch.distributions.Independent):
        fn = fn.base_dist
    return fn


def _normal(fn: dist.Distribution, name: str, role: str) -> tuple[torch.Tensor, torch.Tensor]:
    fn = _unwrap(fn)
    if not isinstance(fn, torch.distributions.Normal):
        raise CodecError(
            f"bits-back coding needs a Normal {role} for latent site {name!r}, got {type(fn).__name__}"
        )
    return fn.loc, fn.scale


class _Posterior:
    r"""A Gaussian posterior over the ``d`` latent dimensions of ``n`` points, :math:`z = \mu + L \epsilon`
    with :math:`L` lower triangular (diagonal for a factorised Normal), read one dimension at a time:
    :math:`z_i \mid z_{<i} \sim N(\mu_i + \sum_{j<i} L_{ij} \epsilon_j, L_{ii}^2)`, where
    :math:`\epsilon_{<i}` solves :math:`L_{<i,<i} \epsilon_{<i} = z_{<i} - \mu_{<i}`."""

    def __init__(self, fn: dist.Distribution, name: str, shape: torch.Size):
        fn, n = _unwrap(fn), shape[0]
        if isinstance(fn, torch.distributions.MultivariateNormal):
            if len(shape) != 2:
                raise CodecError(
                    f"latent site {name!r}: expected a (N, d) MultivariateNormal, got {tuple(shape)}"
                )
            loc, tril, self.diagonal = fn.loc.expand(shape), fn.scale_tril.expand(*shape, shape[1]), False
        else:
            loc, scale = _normal(fn, name, "posterior")
            loc, tril, self.diagonal = (
                loc.expand(shape).reshape(n, -1),
                scale.expand(shape).reshape(n, -1),
                True,
            )
        self.loc, self.tril = (
            t.detach().to(torch.float64).cpu() for t in (loc, tril)
        )  # tril: (n, d) if diagonal

    @property
    def dims(self) -> int:
        return self.loc.shape[1]

    def conditional(self, i: int, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loc, scale)`` of :math:`z_i` given the earlier dimensions' values ``z`` ``(n, >= i)``."""
        if self.diagonal:
            return self.loc[:, i], self.tril[:, i]
        if i == 0:
            return self.loc[:, 0], self.tril[:, 0, 0]
        known = (z[:, :i] - self.loc[:, :i]).unsqueeze(-1)
        eps = torch.linalg.solve_triangular(self.tril[:, :i, :i], known, upper=False).squeeze(-1)
        return self.loc[:, i] + (self.tril[:, i, :i] * eps).sum(-1), self.tril[:, i, i]


class DiscretisedNormal:
    r"""A Normal posterior over the equal-prior-mass buckets of a Normal prior, one latent dimension.

    The cumulative frequency below bucket :math:`j` is
    :math:`F(j) = \lfloor \Phi_q(e_j)\,(2^p - 2^b) \rfloor + j`, so every bucket keeps a frequency of at
    least one. Popping finds the bucket holding a cumulative frequency by bisection over :math:`j`.

    References:
        Townsend, Bird & Barber (2019), "Practical lossless compression with latent variables using bits
        back coding", ICLR (latents discretised into buckets of equal prior mass).

    Args:
        prior: ``(loc, scale)`` of the prior, ``(B,)`` each.
        posterior: ``(loc, scale)`` of :math:`q`, ``(B,)`` each.
        bits: :math:`b`, buckets per dimension :math:`2^b`.
        precision: :math:`p`, bits of the posterior's frequencies (more than ``bits``).

    Example:
        Two points' buckets (of 16 per dimension) pushed and popped again: the message gives them back
        and is left as it started.

        >>> import numpy as np, torch
        >>> prior = (torch.zeros(2), torch.ones(2))
        >>> posterior = (torch.tensor([0.5, -1.0]), torch.tensor([0.2, 0.3]))
        >>> coder = DiscretisedNormal(prior, posterior, bits=4, precision=16)
        >>> message = Message(lanes=2)
        >>> coder.push(message, np.array([9, 3]))
        >>> coder.pop(message).tolist(), message.is_initial()
        ([9, 3], True)
    """

    def __init__(self, prior, posterior, bits: int, precision: int):
        self.prior = [t.detach().to(torch.float64).cpu() for t in prior]
        self.posterior = [t.detach().to(torch.float64).cpu() for t in posterior]
        self.bits, self.precision = bits, precision

    def _below(self, buckets: np.ndarray, rows) -> np.ndarray:
        """:math:`F(j)` for the buckets ``j`` (``(k,)``) of the data points ``rows``."""
        j = torch.from_numpy(buckets.astype(np.float64))
        edge = self.prior[0][rows] + self.prior[1][rows] * torch.special.ndtri(j / 2**self.bits)
        mass = torch.special.ndtr((edge - self.posterior[0][rows]) / self.posterior[1][rows]).numpy()
        mass = np.where(buckets <= 0, 0.0, np.where(buckets >= 2**self.bits, 1.0, mass))
        spread = (1 << self.precision) - (1 << self.bits)
        return np.floor(mass * spread).astype(np.int64) + buckets.astype(np.int64)

    def push(self, message: Message, buckets: np.ndarray) -> None:
        rows = slice(None)
        starts = self._below(buckets, rows)
        message.push(starts, self._below(buckets + 1, rows) - starts, self.precision)

    def pop(self, message: Message) -> np.ndarray:
        return message.pop(len(self.prior[0]), self.precision, self._lookup)

    def _lookup(self, cf: np.ndarray, rows: slice):
        cf = cf.astype(np.int64)
        low = np.zeros(len(cf), dtype=np.int64)
        high = np.full(len(cf), 1 << self.bits, dtype=np.int64)
        while (high - low > 1).any():  # invariant: F(low) <= cf < F(high)
            mid = (low + high) // 2
            below = self._below(mid, rows) <= cf
            low, high = np.where(below, mid, low), np.where(below, high, mid)
        starts = self._below(low, rows)
        return low, starts, self._below(low + 1, rows) - starts


class BitsBack:
    """Codes the first data tensor of a latent program with one local Normal latent site, by bits back.

    References:
        Townsend, Bird & Barber (2019), "Practical lossless compression with latent variables using bits
        back coding", ICLR.
        Frey & Hinton (1997), "Efficient stochastic source coding and an application to a Bayesian
        network source model" (bits back).

    Args:
        model: the model program, ``model(x, *given)``.
        guide: its encoder, ``guide(x, *given)``, with a Normal (factorised) or MultivariateNormal (full
            covariance, coded one dimension given the ones before) at the latent site.
        precision: bits of the observation's frequency tables.
        latent_bits: buckets per latent dimension, :math:`2^b`.
        posterior_precision: bits of the posterior's frequency tables.

    Example:
        A VAE's bits-back round trip: the decoder gives the data back, and returns the bits the coder
        borrowed to draw the latents, so the message ends as it began.

        >>> import torch
        >>> from pplgen.models import VAE
        >>> _ = torch.manual_seed(0)
        >>> vae = VAE(8, z_dim=2, hidden=8)
        >>> x = torch.bernoulli(torch.full((4, 8), 0.5))
        >>> coder = BitsBack(vae.model, vae.guide, precision=16, latent_bits=8, posterior_precision=16)
        >>> message = Message(lanes=4)
        >>> coder.push(message, (x,))
        >>> torch.equal(coder.pop(message, x.shape, x.dtype, (), "cpu"), x), message.is_initial()
        (True, True)
    """

    def __init__(
        self, model: Callable, guide: Callable, precision: int, latent_bits: int, posterior_precision
    ):
        self.model, self.guide = model, guide
        self.precision, self.latent_bits, self.posterior_precision = (
            precision,
            latent_bits,
            posterior_precision,
        )

    def _latent(self, batch: tuple) -> tuple[str, torch.Size, _Posterior]:
        """The latent site's name, its value's shape, and the posterior q(z | x) of the batch."""
        trace = run(self.guide, batch)
        sites = [s for s in trace.nodes.values() if s["type"] == "sample" and not s["is_observed"]
                 and not site_is_subsample(s)]  # fmt: skip
        if len(sites) != 1:
            names = ", ".join(repr(s["name"]) for s in sites) or "none"
            raise CodecError(f"bits-back coding handles one latent site; the guide samples {names}")
        site = sites[0]
        shape, n = site["value"].shape, len(batch[0])
        if shape[0] != n:
            raise CodecError(
                f"latent site {site['name']!r} has shape {tuple(shape)}: the coder needs the data points "
                "along its first dimension"
            )
        return site["name"], shape, _Posterior(site["fn"], site["name"], shape)

    def _prior(self, batch: tuple, name: str, shape: torch.Size, posterior: _Posterior) -> list[torch.Tensor]:
        """The model's prior ``[loc, scale]`` at the latent site, ``(B, d)`` each (its buckets' edges)."""
        stand_in = posterior.loc.to(batch[0].device, torch.get_default_dtype()).reshape(shape)
        trace = run(self.model, batch, {name: stand_in})
        prior = _normal(trace.nodes[name]["fn"], name, "prior")
        return [t.detach().to(torch.float64).cpu().expand(shape).reshape(shape[0], -1) for t in prior]

    def _dimension(self, prior, posterior: _Posterior, i: int, z: torch.Tensor) -> DiscretisedNormal:
        """The coder of latent dimension ``i`` given the values ``z`` of the dimensions before it."""
        conditional = posterior.conditional(i, z)
        return DiscretisedNormal([t[:, i] for t in prior], conditional, self.latent_bits,
                                 self.posterior_precision)  # fmt: skip

    def _values(self, prior, buckets: np.ndarray) -> torch.Tensor:
        """The latent values of ``buckets`` (``(B, d)``, or one dimension's ``(B,)`` with its prior's
        columns): each bucket's prior median."""
        middle = (torch.from_numpy(buckets).to(torch.float64) + 0.5) / 2**self.latent_bits
        return prior[0] + prior[1] * torch.special.ndtri(middle)

    def _observation(self, batch: tuple, name: str, shape: torch.Size, z: torch.Tensor):
        """The observation's coder and observed value, given the latent values ``z`` (``(B, d)``)."""
        z = z.to(batch[0].device, torch.get_default_dtype()).reshape(shape)
        return site_coder(run(self.model, batch, {name: z}), self.precision, batch[0], skip=(name,))

    def push(self, message: Message, batch: tuple) -> None:
        """Code ``batch[0]`` onto ``message`` (the other tensors are given to both ends)."""
        name, shape, posterior = self._latent(batch)
        prior = self._prior(batch, name, shape, posterior)
        buckets = np.zeros((shape[0], posterior.dims), dtype=np.int64)
        z = torch.zeros(shape[0], posterior.dims, dtype=torch.float64)
        for i in range(posterior.dims):  # drawn from q, one dimension given the ones before, by decoding
            buckets[:, i] = self._dimension(prior, posterior, i, z).pop(message)
            z[:, i] = self._values([t[:, i] for t in prior], buckets[:, i])
        coder, value = self._observation(batch, name, shape, z)
        coder.push(message, value)
        ones = np.ones(len(buckets), dtype=np.int64)
        for i in reversed(range(posterior.dims)):  # each bucket with the prior: b bits
            message.push(buckets[:, i], ones, self.latent_bits)

    def pop(
        self, message: Message, x_shape: torch.Size, dtype: torch.dtype, given: tuple, device
    ) -> torch.Tensor:
        """Decode one chunk of ``x_shape`` values; ``given`` are the other tensors of the batch."""
        batch = with_placeholder(x_shape, dtype, given, device)
        name, shape, posterior = self._latent(batch)  # a stand-in posterior: only the prior is read
        prior = self._prior(batch, name, shape, posterior)
        uniform = lambda cf, rows: (cf.astype(np.int64), cf, np.ones(len(cf), dtype=np.int64))
        pops = [message.pop(x_shape[0], self.latent_bits, uniform) for _ in range(posterior.dims)]
        buckets = np.stack(pops, axis=1)
        z = self._values(prior, buckets)
        x = self._observation(batch, name, shape, z)[0].pop(message)
        batch = (x.to(device, dtype).reshape(x_shape), *given)
        _, _, posterior = self._latent(batch)
        for i in reversed(range(posterior.dims)):  # the bits the coder borrowed, given back
            self._dimension(prior, posterior, i, z).push(message, buckets[:, i])
        return batch[0]
