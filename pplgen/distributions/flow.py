"""Normalising flows as distributions: a standard normal pushed through an invertible network, and the
dequantisation that lets a flow's density bound the likelihood of discrete data."""

from __future__ import annotations

import math

import torch
from pyro.distributions import TorchDistribution, constraints

from pplgen.errors import DataError, ModelError
from pplgen.nn.flows import FlowNet

__all__ = ["Dequantized", "FlowDistribution"]


class FlowDistribution(TorchDistribution):
    r"""The density of :math:`x` when :math:`z = f(x; c) \sim N(0, I)` for a bijection :math:`f`:

    .. math::
        \log p(x \mid c) = \log N(f(x; c); 0, I) + \log \left|\det \frac{\partial f(x; c)}{\partial x}\right|.

    ``log_prob`` is exact (change of variables) and costs one forward pass of ``net``; ``rsample``
    draws :math:`z` and returns :math:`f^{-1}(z; c)`, differentiably. The network (a
    :class:`pplgen.nn.flows.FlowNet`) holds the parameters; keep it in your model's module and build the
    distribution at the sample site::

        pyro.sample("x", FlowDistribution(self.flow), obs=x)             # p(x)
        pyro.sample("x", FlowDistribution(self.flow, context=z), obs=x)  # p(x | z)

    The batch shape is the context's without its last dimension (``()`` with no context).

    References:
        Rezende & Mohamed (2015), "Variational inference with normalizing flows".
        Dinh, Sohl-Dickstein & Bengio (2017), "Density estimation using Real NVP".
        Papamakarios, Pavlakou & Murray (2017), "Masked autoregressive flow for density estimation".

    Args:
        net: the bijection, data to noise.
        context: ``(*batch_shape, context_dim)`` when the network takes one, else ``None``.

    Example:
        >>> from pplgen.nn import FlowNet, RealNVPNet
        >>> round(FlowDistribution(FlowNet(2)).log_prob(torch.zeros(2)).item(), 4)  # no layers: N(0, I)
        -1.8379
        >>> _ = torch.manual_seed(0)
        >>> flow = FlowDistribution(RealNVPNet(dim=2, layers=2, hidden=[8], norm=None))
        >>> x = flow.rsample((4,))
        >>> x.shape, flow.log_prob(x).shape, x.requires_grad
        (torch.Size([4, 2]), torch.Size([4]), True)
        >>> g = torch.linspace(-10, 10, 401)
        >>> with torch.no_grad():
        ...     mass = flow.log_prob(torch.cartesian_prod(g, g)).exp().sum() * (g[1] - g[0]) ** 2
        >>> round(mass.item(), 3)  # the density integrates to one
        1.0
    """

    arg_constraints = {}
    has_rsample = True

    def __init__(self, net: FlowNet, context: torch.Tensor | None = None, validate_args=None):
        if not isinstance(net, FlowNet):
            raise ModelError(f"FlowDistribution expects a pplgen.nn.flows.FlowNet, got {type(net).__name__}")
        self.net = net
        self.context = context
        super().__init__(self._batch_shape_of(context), torch.Size(net.event_shape), validate_args=False)

    def _batch_shape_of(self, context: torch.Tensor | None) -> torch.Size:
        expected = self.net.context_shape
        if expected is None and context is None:
            return torch.Size()
        if expected is None:
            raise DataError(
                "FlowDistribution: the network takes no context, "
                f"got a context of shape {tuple(context.shape)}"
            )
        if not isinstance(context, torch.Tensor) or context.dim() < 1 or context.shape[-1] != expected[0]:
            got = f"shape {tuple(context.shape)}" if isinstance(context, torch.Tensor) else repr(context)
            raise DataError(f"FlowDistribution: expected a context of shape (..., {expected[0]}), got {got}")
        return context.shape[:-1]

    @property
    def support(self):
        return constraints.independent(self.net.domain, 1)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self._get_checked_instance(type(self), _instance)
        new.__dict__.update(self.__dict__)
        if self.context is not None:
            new.context = self.context.expand(batch_shape + self.context.shape[-1:])
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        return new

    def check_value(self, value: torch.Tensor) -> None:
        """Raise :class:`~pplgen.errors.DataError` unless ``value`` is finite, in the support, of event
        shape ``(D,)``."""
        _check_event("FlowDistribution", value, self.event_shape[0])
        if not bool(torch.isfinite(value).all()):
            raise DataError(
                f"FlowDistribution: expected finite values, got {int((~torch.isfinite(value)).sum())} "
                "NaN or infinite entries"
            )
        inside = self.net.domain.check(value)
        if not bool(inside.all()):
            raise DataError(
                f"FlowDistribution: expected values in {self.net.domain}, got {int((~inside).sum())} "
                f"outside, e.g. {value[~inside].flatten()[0].item():g}"
            )

    def _flat_context(self, outer: torch.Size) -> torch.Tensor | None:
        if self.context is None:
            return None
        return self.context.expand(outer + self.context.shape[-1:]).reshape(-1, self.context.shape[-1])

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        self.check_value(value)
        outer = torch.broadcast_shapes(value.shape[:-1], self.batch_shape)
        x = (
            value.to(self.net.tensor_options()["dtype"])
            .expand(outer + self.event_shape)
            .reshape(-1, self.event_shape[0])
        )
        z, log_det = self.net(x, self._flat_context(outer))
        base = -0.5 * (z.pow(2).sum(-1) + z.shape[-1] * math.log(2 * math.pi))
        return (base + log_det).reshape(outer)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        outer = torch.Size(sample_shape) + self.batch_shape
        z = torch.randn(outer.numel(), self.event_shape[0], **self.net.tensor_options())
        return self.net.inverse(z, self._flat_context(outer)).reshape(outer + self.event_shape)


class Dequantized(TorchDistribution):
    r"""A distribution over discrete levels :math:`x \in \{0, \dots, K-1\}^D` made from a continuous
    density :math:`p` on :math:`[0, 1]^D` (usually a :class:`FlowDistribution` whose network starts with
    :class:`pplgen.nn.flows.Logit`): level :math:`x` is the cell :math:`[x, x + 1)/K`, so

    .. math::
        P(x) = \int_{[0,1)^D} p\!\left(\frac{x + u}{K}\right) K^{-D}\, du
        \;\ge\; \exp \mathbb{E}_u\!\left[\log p\!\left(\frac{x + u}{K}\right)\right] K^{-D}.

    ``log_prob(x)`` draws fresh uniform noise :math:`u_1..u_S \sim U[0, 1)^D` (``S = num_noise``) on
    every call and returns, in nats,

    .. math::
        \log \frac{1}{S} \sum_{s=1}^{S} p\!\left(\frac{x + u_s}{K}\right) - D \log K,

    an unbiased estimate (for ``S = 1``) of the dequantisation lower bound on :math:`\log P(x)`; for
    :math:`S > 1` its expectation is the tighter importance-weighted bound, still below
    :math:`\log P(x)`. Training maximises it (Theis et al. 2016), and it is what
    :func:`pplgen.log_likelihood` reports for a program that observes its data through this
    distribution: a stochastic lower bound per data point, which makes :func:`pplgen.bits_per_dim` an
    upper bound in expectation. ``sample`` draws from :math:`p` and returns the cell,
    :math:`\lfloor K v \rfloor` (clipped to the levels where :math:`p` puts mass outside
    :math:`[0, 1]`): floats 0/1 for :math:`K = 2`, int64 levels otherwise, as in pplgen's data sets.

    References:
        Theis, van den Oord & Bethge (2016), "A note on the evaluation of generative models".
        Uria, Murray & Larochelle (2013), "RNADE: the real-valued neural autoregressive density-estimator".
        Ho, Chen, Srinivas, Duan & Abbeel (2019), "Flow++: improving flow-based generative models with
        variational dequantization and architecture design" (the importance-weighted bound).

    Args:
        base: a continuous distribution with event shape ``(D,)`` over ``[0, 1]^D``.
        num_levels: K, the number of levels of each coordinate (2 for binary data).
        num_noise: S, noise draws per value.

    Example:
        >>> import pyro.distributions as dist
        >>> uniform = dist.Uniform(torch.zeros(2), torch.ones(2)).to_event(1)
        >>> d = Dequantized(uniform, num_levels=4)
        >>> round(d.log_prob(torch.tensor([0, 3])).item(), 4)  # a flat density: every cell has 4^-2
        -2.7726
        >>> round(-2 * math.log(4), 4)
        -2.7726
        >>> x = d.sample((5,))
        >>> x.shape, x.dtype, bool(((0 <= x) & (x < 4)).all())
        (torch.Size([5, 2]), torch.int64, True)
        >>> try:
        ...     d.log_prob(torch.tensor([0, 4]))
        ... except DataError as err:
        ...     print(err)
        Dequantized: expected integer levels 0 .. 3, got 1 values outside, e.g. 4
    """

    arg_constraints = {}
    has_rsample = False

    def __init__(self, base: TorchDistribution, num_levels: int, num_noise: int = 1, validate_args=None):
        if len(base.event_shape) != 1:
            raise ModelError(
                f"Dequantized expects a base with event shape (D,), got {tuple(base.event_shape)}"
            )
        if int(num_levels) < 2 or int(num_noise) < 1:
            raise ModelError(
                f"Dequantized expects num_levels >= 2 and num_noise >= 1, "
                f"got num_levels={num_levels}, num_noise={num_noise}"
            )
        self.base = base
        self.num_levels = int(num_levels)
        self.num_noise = int(num_noise)
        super().__init__(base.batch_shape, base.event_shape, validate_args=False)

    @property
    def support(self):
        levels = (
            constraints.boolean
            if self.num_levels == 2
            else constraints.integer_interval(0, self.num_levels - 1)
        )
        return constraints.independent(levels, 1)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(type(self), _instance)
        new.__dict__.update(self.__dict__)
        new.base = self.base.expand(batch_shape)
        TorchDistribution.__init__(new, torch.Size(batch_shape), self.event_shape, validate_args=False)
        return new

    def check_value(self, value: torch.Tensor) -> None:
        """Raise :class:`~pplgen.errors.DataError` unless ``value`` holds levels of event shape ``(D,)``."""
        _check_event("Dequantized", value, self.event_shape[0])
        outside = ~self.support.base_constraint.check(value)
        if bool(outside.any()):
            raise DataError(
                f"Dequantized: expected integer levels 0 .. {self.num_levels - 1}, got {int(outside.sum())} "
                f"values outside, e.g. {value[outside].flatten()[0].item():g}"
            )

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        self.check_value(value)
        levels = value if value.is_floating_point() else value.to(torch.get_default_dtype())
        noisy = levels + torch.rand((self.num_noise, *levels.shape), dtype=levels.dtype, device=levels.device)
        log_p = self.base.log_prob(noisy / self.num_levels)  # (S, *outer)
        log_p = torch.logsumexp(log_p, dim=0) - math.log(self.num_noise)
        return log_p - self.event_shape[0] * math.log(self.num_levels)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            v = self.base.sample(sample_shape)
        levels = torch.floor(v * self.num_levels).clamp(0, self.num_levels - 1)
        return levels if self.num_levels == 2 else levels.long()


def _check_event(label: str, value: torch.Tensor, dim: int) -> None:
    if not isinstance(value, torch.Tensor):
        raise DataError(f"{label}: expected a tensor value, got {type(value).__name__}")
    if value.dim() < 1 or value.shape[-1] != dim:
        raise DataError(
            f"{label}: expected values of event shape ({dim},), got a value of shape {tuple(value.shape)}"
        )
