"""Coding the value of an observed site with the distribution the program gives it.

Two kinds of distribution can drive a coder:

- **factorised** ones, whose coordinates are independent given what the program has already drawn
  (Bernoulli pixels, categorical levels, the discretised logistic; each wrapped in ``to_event`` or not):
  one table per coordinate from a single evaluation;
- **autoregressive** ones (:class:`pplgen.distributions.AutoregressiveDistribution`: NADE, PixelCNN,
  WaveNet, the sequence models), whose conditional at a coordinate depends on the coordinates before it.
  Decoding must then run the network's own generation path, one coordinate at a time, with each decoded
  value fed back. Coding runs the *same* path with the true values fed back, so both ends compute every
  conditional with exactly the same arithmetic; a teacher-forced pass would be faster but may differ
  from the generation path in the last bits, and then a table would differ by one and decoding fail.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import pyro.distributions as dist
import torch

from pplgen.codec.ans import Message
from pplgen.codec.tables import Table, bernoulli_table, categorical_table
from pplgen.distributions import AutoregressiveDistribution
from pplgen.errors import CodecError, DataError

__all__ = ["Autoregressive", "Factorised", "observation_coder"]


def _unwrapped(fn: dist.Distribution) -> dist.Distribution:
    while isinstance(fn, dist.Independent | torch.distributions.Independent):
        fn = fn.base_dist
    return fn


class Factorised:
    """Codes values of ``(N, *event)`` whose coordinates the distribution ``fn`` treats as independent.

    Args:
        fn: a Bernoulli, or a distribution over the integers ``0 .. K-1`` with ``enumerate_support``
            (categorical, discretised logistic, binomial), possibly wrapped in ``Independent``.
        value_shape: ``(N, *event)``, the shape of the values coded.
        precision: bits of the frequency tables.
    """

    def __init__(self, fn: dist.Distribution, value_shape: torch.Size, precision: int):
        base = _unwrapped(fn)
        self.num_points = value_shape[0]
        if isinstance(base, dist.Bernoulli | torch.distributions.Bernoulli):
            logits = base.logits.expand(value_shape).reshape(self.num_points, -1)  # (N, D)
            self.table = bernoulli_table(logits, precision)
        elif getattr(base, "has_enumerate_support", False):
            support = base.enumerate_support(expand=False)  # (K, 1, ...)
            levels = support.reshape(-1)
            if not torch.equal(levels.cpu(), torch.arange(len(levels)).to(levels.dtype)):
                raise CodecError(f"{type(base).__name__}: the coder needs the support 0 .. K-1, got {levels}")
            log_p = base.log_prob(support).expand((len(levels), *value_shape))  # (K, N, *event)
            self.table = categorical_table(
                log_p.movedim(0, -1).reshape(self.num_points, -1, len(levels)), precision
            )
        else:
            raise CodecError(
                f"cannot code values of a {type(base).__name__}: the coder needs a discrete distribution "
                "(Bernoulli, Categorical, DiscretizedLogistic) or an autoregressive one"
            )
        self.value_shape = value_shape

    def _symbols(self, value: torch.Tensor) -> np.ndarray:
        symbols = value.detach().reshape(self.num_points, -1).long()  # (N, D)
        num_symbols = self.table.cum.shape[-1] - 1
        if (
            not torch.equal(symbols.to(value.dtype), value.reshape(symbols.shape))
            or not ((symbols >= 0) & (symbols < num_symbols)).all()
        ):
            raise DataError(
                f"the coder codes values in 0 .. {num_symbols - 1} (the distribution's support); the data "
                "holds other values (non-integers, or out of range)"
            )
        return symbols.cpu().numpy()

    def push(self, message: Message, value: torch.Tensor) -> None:
        symbols = self._symbols(value)
        for index in reversed(range(symbols.shape[1])):
            self.table.column(index).push(message, symbols[:, index])

    def pop(self, message: Message) -> torch.Tensor:
        num_coords = self.table.cum.shape[1]
        symbols = np.stack([self.table.column(i).pop(message) for i in range(num_coords)], axis=1)
        return torch.from_numpy(symbols).reshape(self.value_shape)

    def bits(self, value: torch.Tensor) -> float:
        symbols = self._symbols(value)
        return sum(self.table.column(i).bits(symbols[:, i]) for i in range(symbols.shape[1]))


@contextmanager
def _picking(net: torch.nn.Module, pick: Callable) -> None:
    """Let ``pick(logits, ids)`` choose every level ``net.generate`` asks for; ``ids`` are the entries
    of the ``u`` it was given."""
    net.pick_at = lambda logits, u, warp: pick(logits, u.long())
    try:
        yield
    finally:
        del net.pick_at


class Autoregressive:
    """Codes values of an :class:`AutoregressiveDistribution` through its network's generation path.

    The uniforms ``generate`` is given are replaced by each entry's flat index (data point times
    coordinates plus coordinate), so the picker knows which point and coordinate every request is for.
    A request for entries that are all decided already (WaveNet's verifying pass) is answered with the
    decided levels and codes nothing.
    """

    def __init__(self, fn: AutoregressiveDistribution, value_shape: torch.Size, precision: int):
        self.fn, self.net, self.precision = fn, fn.net, precision
        self.num_points = value_shape[0]
        event = torch.Size(fn.event_shape)
        self.num_coords = event.numel()
        self.context = fn._flat_context(value_shape[: len(value_shape) - len(event)])
        self.value_shape = value_shape

    def _table(self, logits: torch.Tensor) -> Table:
        if self.net.num_levels == 2:
            return bernoulli_table(logits, self.precision)
        return categorical_table(logits, self.precision)

    def _run(self, choose: Callable) -> torch.Tensor:
        """Run generation; ``choose(table, rows, coords)`` gives the levels of a request's entries."""
        n, size = self.num_points, self.num_coords
        decided = torch.full((n * size,), -1, dtype=torch.long)  # every entry's level, once chosen

        def pick(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
            ids = ids.cpu()
            known = decided[ids]
            if (known >= 0).all():
                return known.to(logits.device)
            if (known >= 0).any():
                raise CodecError("the network's generation path revisited some coordinates but not others")
            levels = torch.as_tensor(choose(self._table(logits), ids // size, ids % size)).long()
            decided[ids] = levels
            return levels.to(logits.device)

        ids = torch.arange(n * size, dtype=torch.float64, device=self.net._device())  # exact to 2^53
        with _picking(self.net, pick), torch.no_grad():
            return self.net.generate(ids.reshape(n, *self.fn.event_shape), self.context, None)

    def _replayed(self, value: torch.Tensor) -> list[tuple[Table, np.ndarray]]:
        """Each request's table and true levels, in the order the generation path makes them."""
        levels = self.fn.encode(value.detach()).long()
        if (
            not torch.equal(self.fn.decode(levels).to(value.dtype), value)
            or not ((levels >= 0) & (levels < self.net.num_levels)).all()
        ):
            raise DataError(
                f"the data holds values between or outside {self.fn.label}'s levels, which decoding could "
                "not give back; compress values on its levels (decode(encode(x)), e.g. mu-law audio)"
            )
        truth = levels.reshape(self.num_points, -1).long().cpu()  # (N, D)
        calls: list[tuple[Table, np.ndarray]] = []

        def replay(table: Table, rows: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
            levels = truth[rows, coords]
            calls.append((table, levels.numpy()))
            return levels

        self._run(replay)
        return calls

    def push(self, message: Message, value: torch.Tensor) -> None:
        for table, levels in reversed(self._replayed(value)):
            table.push(message, levels)

    def pop(self, message: Message) -> torch.Tensor:
        levels = self._run(lambda table, rows, coords: torch.from_numpy(table.pop(message)))
        return self.fn.decode(levels.reshape(self.value_shape))

    def bits(self, value: torch.Tensor) -> float:
        """What coding ``value`` costs with the rounded tables, along the generation path."""
        return float(sum(table.bits(levels) for table, levels in self._replayed(value)))


def observation_coder(fn: dist.Distribution, value_shape: torch.Size, precision: int):
    """The coder for values of shape ``value_shape`` (``(N, *event)``) drawn from ``fn``."""
    base = _unwrapped(fn)
    if isinstance(base, AutoregressiveDistribution):
        return Autoregressive(base, value_shape, precision)
    return Factorised(fn, value_shape, precision)
