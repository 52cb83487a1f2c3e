"""The distribution behind every autoregressive network: exact ``log_prob``, cached ``sample``."""

from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution, constraints

from pplgen.errors import DataError, support_scans
from pplgen.nn.autoregressive import AutoregressiveNet, Warp, conditional_log_prob

__all__ = ["AutoregressiveDistribution"]


class AutoregressiveDistribution(TorchDistribution):
    r"""A distribution :math:`p(x \mid c) = \prod_i p(x_i \mid x_{<i}, c)` computed by a network.

    ``log_prob`` is exact: one teacher-forced pass of the network gives every conditional. ``sample``
    generates one coordinate at a time, through the network's cached path unless ``naive=True``; both
    paths turn the same uniforms into values, so they agree from the same seed.

    The network (an :class:`pplgen.nn.AutoregressiveNet`, a ``torch.nn.Module``) holds the parameters;
    keep it in your model's module, and build the distribution at the sample site::

        pyro.sample("x", NADE(self.nade), obs=x)                    # p(x)
        pyro.sample("x", PixelCNN(self.pixelcnn, context=z), obs=x)  # p(x | z), a decoder

    The batch shape is that of ``context`` without the network's ``context_shape`` (``()`` with no
    context); a plate broadcasts it as usual.

    Args:
        net: the network.
        context: ``(*batch_shape, *net.context_shape)``, or ``None`` for an unconditional network.

    Example:
        >>> from pplgen.nn import NADENet
        >>> _ = torch.manual_seed(0)
        >>> d = AutoregressiveDistribution(NADENet(dim=3, hidden=4))
        >>> states = torch.tensor([[i >> k & 1 for k in range(3)] for i in range(8)]).float()
        >>> round(d.log_prob(states).exp().sum().item(), 4)  # normalised over all 2^3 states
        1.0
        >>> _ = torch.manual_seed(1)
        >>> cached = d.sample((5,))
        >>> _ = torch.manual_seed(1)
        >>> cached.shape, torch.equal(cached, d.sample((5,), naive=True))
        (torch.Size([5, 3]), True)
        >>> try:
        ...     AutoregressiveDistribution(NADENet(dim=3, hidden=4), context=torch.zeros(2, 1))
        ... except DataError as err:
        ...     print(err)
        AutoregressiveDistribution: the network takes no context, got a context of shape (2, 1)
    """

    arg_constraints = {}
    autoregressive = True
    #: The class name used in error messages.
    label = "AutoregressiveDistribution"

    def __init__(self, net: AutoregressiveNet, context: torch.Tensor | None = None, validate_args=None):
        self.net = net
        self.context = context
        batch_shape = self._batch_shape_of(context)
        super().__init__(batch_shape, torch.Size(net.event_shape), validate_args=False)

    def _batch_shape_of(self, context: torch.Tensor | None) -> torch.Size:
        expected = self.net.context_shape
        if expected is None:
            if context is not None:
                raise DataError(
                    f"{self.label}: the network takes no context, "
                    f"got a context of shape {tuple(context.shape)}"
                )
            return torch.Size()
        if context is None:
            raise DataError(f"{self.label}: the network needs a context of shape (..., {_dims(expected)})")
        if not isinstance(context, torch.Tensor):
            raise DataError(f"{self.label}: context should be a tensor, got {type(context).__name__}")
        split = context.dim() - len(expected)
        if split < 0 or tuple(context.shape[split:]) != tuple(expected):
            raise DataError(
                f"{self.label}: expected a context of shape (..., {_dims(expected)}), "
                f"got shape {tuple(context.shape)}"
            )
        return context.shape[:split]

    @property
    def num_levels(self) -> int:
        return self.net.num_levels

    @property
    def support(self):
        event_dim = len(self.event_shape)
        base = (
            constraints.boolean
            if self.num_levels == 2
            else constraints.integer_interval(0, self.num_levels - 1)
        )
        return constraints.independent(base, event_dim)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self._get_checked_instance(type(self), _instance)
        new.__dict__.update(self.__dict__)
        if self.context is not None:
            new.context = self.context.expand(batch_shape + torch.Size(self.net.context_shape))
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        return new

    # -- values <-> levels -------------------------------------------------------------------------
    def encode(self, value: torch.Tensor) -> torch.Tensor:
        """Values as the network's levels (the identity here; audio distributions quantise)."""
        return value

    def decode(self, levels: torch.Tensor) -> torch.Tensor:
        """Levels as values: floats for binary data, int64 levels otherwise."""
        return levels.to(self._float_dtype()) if self.num_levels == 2 else levels

    def _float_dtype(self) -> torch.dtype:
        param = next(self.net.parameters(), None)
        return param.dtype if param is not None else torch.get_default_dtype()

    def describe_support(self) -> str:
        """The values one coordinate may take, in words, for error messages."""
        return "0 or 1" if self.num_levels == 2 else f"integers 0 .. {self.num_levels - 1}"

    def check_value(self, value: torch.Tensor) -> None:
        """Raise :class:`~pplgen.errors.DataError` naming the expected event shape or support."""
        if not isinstance(value, torch.Tensor):
            raise DataError(f"{self.label}: expected a tensor value, got {type(value).__name__}")
        event = tuple(self.event_shape)
        if value.dim() < len(event) or tuple(value.shape[value.dim() - len(event) :]) != event:
            raise DataError(
                f"{self.label}: expected values of event shape {event}, "
                f"got a value of shape {tuple(value.shape)}"
            )
        if support_scans():  # not in a training loop, whose data were scanned whole before it began
            self.check_support(value)

    def check_support(self, value: torch.Tensor) -> None:
        """Raise :class:`~pplgen.errors.DataError` unless every coordinate of ``value`` is in the support."""
        outside = ~self.support.base_constraint.check(value)
        if bool(outside.any()):
            bad = value[outside]
            raise DataError(
                f"{self.label}: expected {self.describe_support()}, got {bad.numel()} outside, "
                f"e.g. {bad.flatten()[0].item():g}"
            )

    # -- density and sampling ----------------------------------------------------------------------
    def _flat_context(self, shape: torch.Size) -> torch.Tensor | None:
        """The context broadcast to ``shape`` (sample and batch dims), flat: ``(N, *context_shape)``."""
        if self.context is None:
            return None
        context_shape = torch.Size(self.net.context_shape)
        return self.context.expand(shape + context_shape).reshape(-1, *context_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        self.check_value(value)
        levels = self.encode(value)
        event = self.event_shape
        outer = torch.broadcast_shapes(levels.shape[: levels.dim() - len(event)], self.batch_shape)
        levels = levels.expand(outer + event).reshape(-1, *event)
        logits = self.net(self._network_input(levels), self._flat_context(outer))
        log_p = conditional_log_prob(logits, levels, self.num_levels)  # (N, *event)
        return log_p.reshape(outer + (-1,)).sum(-1)

    def _network_input(self, levels: torch.Tensor) -> torch.Tensor:
        return levels.to(self._float_dtype()) if self.num_levels == 2 else levels.long()

    def sample(self, sample_shape=torch.Size(), naive: bool = False, warp: Warp | None = None):
        """Draw values of shape ``sample_shape + batch_shape + event_shape``, one coordinate at a time.

        Args:
            sample_shape: leading dimensions of independent draws.
            naive: re-run the whole network for every coordinate instead of the cached path (for
                checking; both give the same values from the same seed).
            warp: a function applied to each categorical coordinate's logits (temperature, top-k).
        """
        outer = torch.Size(sample_shape) + self.batch_shape
        num = outer.numel()
        device = self.net._device()
        u = torch.rand((num, *self.event_shape), device=device)  # all the randomness, drawn up front
        with torch.no_grad():
            levels = self.generate(u, self._flat_context(outer), naive, warp)
        return self.decode(levels).reshape(outer + self.event_shape)

    def generate(self, u: torch.Tensor, context: torch.Tensor | None, naive: bool, warp: Warp | None):
        """Levels ``(N, *event_shape)`` from uniforms ``(N, *event_shape)`` and a flat context."""
        return (self.net.generate_naive if naive else self.net.generate)(u, context, warp)


def _dims(shape) -> str:
    return ", ".join(str(s) for s in shape)
