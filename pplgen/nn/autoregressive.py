"""What every autoregressive network shares: all conditionals in one pass, and generation from uniforms.

An autoregressive network computes the parameters of every conditional
:math:`p(x_i \\mid x_{<i}, c)` of one data point in a single teacher-forced pass, and generates a data
point one coordinate at a time. Generation turns pre-drawn uniforms into values by inverting each
conditional's distribution function, so that two generation paths (the cached one and the naive one,
which re-runs the whole network for every coordinate) give the same samples from the same uniforms.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["AutoregressiveNet", "Warp", "choose", "conditional_log_prob", "warp_logits"]

#: A function applied to one coordinate's logits before a value is chosen (temperature, top-k).
Warp = Callable[[torch.Tensor], torch.Tensor]


def choose(logits: torch.Tensor, u: torch.Tensor, num_levels: int) -> torch.Tensor:
    """Invert a conditional's distribution function at the uniforms ``u``.

    Args:
        logits: ``(...,)`` Bernoulli logits when ``num_levels == 2``, else ``(..., K)`` categorical logits.
        u: ``(...,)`` uniforms in [0, 1).
        num_levels: 2 for binary coordinates, else K.

    Returns:
        ``(...,)`` levels as int64: 1 where ``u`` falls below the probability of a one (binary), else the
        smallest level whose cumulative probability exceeds ``u``.

    Example:
        >>> choose(torch.zeros(2), torch.tensor([0.3, 0.7]), num_levels=2)  # p(1) = 0.5
        tensor([1, 0])
        >>> logits = torch.tensor([0.2, 0.5, 0.3]).log().expand(3, 3)  # cumulative 0.2, 0.7, 1.0
        >>> choose(logits, torch.tensor([0.1, 0.6, 0.9]), num_levels=3)
        tensor([0, 1, 2])
    """
    if num_levels == 2:
        return (u < torch.sigmoid(logits)).long()
    cdf = torch.softmax(logits, dim=-1).cumsum(-1)  # (..., K)
    return (cdf < u.unsqueeze(-1)).sum(-1).clamp(max=num_levels - 1)


def conditional_log_prob(logits: torch.Tensor, levels: torch.Tensor, num_levels: int) -> torch.Tensor:
    """:math:`\\log p(x_i \\mid x_{<i})` for every coordinate: shape ``levels.shape``.

    Args:
        logits: ``levels.shape`` Bernoulli logits when ``num_levels == 2``, else ``(*levels.shape, K)``.
        levels: the observed levels.
        num_levels: 2 for binary coordinates, else K.

    Example:
        >>> conditional_log_prob(torch.tensor([0.0, 20.0]), torch.tensor([1.0, 1.0]), 2).exp()
        tensor([0.5000, 1.0000])
        >>> logits = torch.zeros(1, 2, 4)  # two coordinates, four equally likely levels each
        >>> conditional_log_prob(logits, torch.tensor([[0, 3]]), num_levels=4).exp()
        tensor([[0.2500, 0.2500]])
    """
    if num_levels == 2:
        target = levels.to(logits.dtype)
        return -nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    log_p = torch.log_softmax(logits, dim=-1)
    return log_p.gather(-1, levels.long().unsqueeze(-1)).squeeze(-1)


def warp_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None) -> torch.Tensor:
    """Divide categorical logits by ``temperature`` and keep only the ``top_k`` largest (Fan et al. 2018).

    With ``temperature=1`` and no ``top_k`` the logits are returned unchanged, and samples come from the
    model's own distribution; otherwise they come from a sharpened or truncated one.

    References:
        Fan, Lewis & Dauphin (2018), "Hierarchical neural story generation" (top-k sampling).

    Example:
        Pass it to sampling as a :data:`Warp`, e.g. ``functools.partial(warp_logits, top_k=10)``.

        >>> logits = torch.tensor([1.0, 3.0, 2.0])
        >>> warp_logits(logits, temperature=0.5)
        tensor([2., 6., 4.])
        >>> warp_logits(logits, top_k=2)
        tensor([-inf, 3., 2.])
    """
    if temperature != 1.0:
        logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return logits


class AutoregressiveNet(nn.Module):
    """Base of the networks behind pplgen's autoregressive distributions.

    A subclass sets ``event_shape``, ``num_levels`` and ``context_shape`` and defines
    :meth:`forward`; it overrides :meth:`generate` when its architecture allows cached incremental
    generation (a running activation, an LSTM state, a key/value cache, convolution queues).

    Attributes:
        event_shape: the shape of one data point, e.g. ``(784,)`` or ``(28, 28)``.
        num_levels: 2 for binary coordinates (one Bernoulli logit each), else K (K categorical logits).
        context_shape: the shape of one conditioning input, or ``None`` for an unconditional network.

    Example:
        A subclass, :class:`pplgen.nn.NADENet`, keeps the contract: the logit of a coordinate reads only
        the coordinates before it, and cached generation gives the naive path's levels.

        >>> from pplgen.nn import NADENet
        >>> _ = torch.manual_seed(0)
        >>> net = NADENet(dim=4, hidden=8)
        >>> x = net.relax(torch.ones(1, 4, dtype=torch.long)).requires_grad_()
        >>> net(x).shape
        torch.Size([1, 4])
        >>> net(x)[0, 2].backward()
        >>> (x.grad[0] != 0).tolist()  # logit 2 reads coordinates 0 and 1
        [True, True, False, False]
        >>> u = torch.rand(3, 4)
        >>> torch.equal(net.generate(u), net.generate_naive(u))
        True
    """

    event_shape: tuple[int, ...]
    num_levels: int
    context_shape: tuple[int, ...] | None = None

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of every conditional in one teacher-forced pass.

        Args:
            x: ``(B, *event_shape)`` levels (int64, or floats for binary data), or a float relaxation of
                them that gradients can flow through (see :meth:`pplgen.nn.AutoregressiveNet.relax`).
            context: ``(B, *context_shape)`` or ``None``.

        Returns:
            ``(B, *event_shape)`` logits when binary, else ``(B, *event_shape, K)``; the logits at a
            coordinate depend only on the coordinates before it in :meth:`order`.
        """
        raise NotImplementedError

    def relax(self, levels: torch.Tensor) -> torch.Tensor:
        """A float tensor that :meth:`forward` accepts in place of ``levels``, differentiable.

        Used to check the autoregressive property through gradients. The default is the levels as
        floats; networks that embed categorical inputs take one-hot vectors instead.
        """
        return levels.float()

    def order(self, batch_size: int) -> torch.Tensor:
        """The flat coordinates in generation order, ``(batch_size, D)`` (each row its own order)."""
        size = int(torch.Size(self.event_shape).numel())
        return torch.arange(size, device=self._device()).expand(batch_size, size)

    def _device(self) -> torch.device:
        tensor = next(self.parameters(), None)
        if tensor is None:
            tensor = next(self.buffers(), torch.empty(0))
        return tensor.device

    def generate(self, u: torch.Tensor, context: torch.Tensor | None = None, warp: Warp | None = None):
        """Levels ``(B, *event_shape)`` generated from the uniforms ``u`` of the same shape.

        The default re-runs the whole network for every coordinate (:meth:`generate_naive`);
        subclasses replace it with a cached path that gives the same levels from the same ``u``.
        """
        return self.generate_naive(u, context, warp)

    def pick_at(self, logits: torch.Tensor, u: torch.Tensor, warp: Warp | None) -> torch.Tensor:
        """One coordinate's levels ``(B,)`` from its logits (``(B,)`` or ``(B, K)``) and uniforms."""
        if warp is not None and self.num_levels > 2:
            logits = warp(logits)
        return choose(logits, u, self.num_levels)

    @torch.no_grad()
    def generate_naive(self, u: torch.Tensor, context: torch.Tensor | None = None, warp: Warp | None = None):
        """Generate by running :meth:`forward` on the partial data point once per coordinate.

        Slow (D full passes), but it trusts nothing but :meth:`forward`, so it is the reference that the
        cached paths are tested against.
        """
        batch = u.shape[0]
        flat_u = u.reshape(batch, -1)
        levels = torch.zeros_like(flat_u, dtype=torch.long)  # (B, D)
        rows = torch.arange(batch, device=u.device)
        for position in self.order(batch).T:  # (B,): the coordinate each row fills now
            logits = self(self._as_input(levels.reshape(u.shape)), context)
            logits = logits.reshape(batch, flat_u.shape[1], *logits.shape[1 + len(self.event_shape) :])
            levels[rows, position] = self.pick_at(logits[rows, position], flat_u[rows, position], warp)
        return levels.reshape(u.shape)

    def _as_input(self, levels: torch.Tensor) -> torch.Tensor:
        """Levels in the form :meth:`forward` takes during generation (floats for binary data)."""
        return levels.float() if self.num_levels == 2 else levels
