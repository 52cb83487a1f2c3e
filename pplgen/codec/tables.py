r"""Integer frequency tables: a model's probabilities rounded so that rANS can code with them.

A distribution over :math:`K` symbols becomes the cumulative table

.. math::
    C_k = \lfloor P(s < k)\,(2^p - K) \rfloor + k, \qquad k = 0, \dots, K,

so :math:`C_0 = 0`, :math:`C_K = 2^p`, and every symbol keeps a frequency :math:`C_{k+1} - C_k \ge 1`
(a symbol the model thinks impossible still codes, at about :math:`p` bits). Coding :math:`s` costs
:math:`p - \log_2 (C_{s+1} - C_s)` bits, within about :math:`K/2^p` of the model's own
:math:`-\log_2 P(s)` per symbol.

The table is computed in float64 from the model's float32 output, so the coder and the decoder, which
see the same float32 numbers, build the same integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pplgen.codec.ans import Message

__all__ = ["Table", "bernoulli_table", "categorical_table"]


@dataclass
class Table:
    """Cumulative frequencies ``cum`` (``(B, K + 1)``, int64) of one symbol per data point.

    Tables built for many coordinates at once (``(B, D, K + 1)``) are sliced with :meth:`column`.
    """

    cum: np.ndarray
    precision: int

    def column(self, index: int) -> Table:
        """The table of coordinate ``index`` of a ``(B, D, K + 1)`` table."""
        return Table(self.cum[:, index], self.precision)

    def push(self, message: Message, symbols: np.ndarray) -> None:
        """Code ``symbols`` (``(B,)`` ints in ``0 .. K-1``) onto ``message``."""
        rows = np.arange(len(symbols))
        starts = self.cum[rows, symbols]
        message.push(starts, self.cum[rows, symbols + 1] - starts, self.precision)

    def pop(self, message: Message) -> np.ndarray:
        """Decode one symbol per data point, ``(B,)`` int64."""
        return message.pop(len(self.cum), self.precision, self._lookup)

    def _lookup(self, cf: np.ndarray, rows: slice):
        cum = self.cum[rows]  # (k, K + 1)
        symbols = (cum[:, 1:-1] <= cf.astype(np.int64)[:, None]).sum(1)  # (k,)
        picked = np.arange(len(symbols))
        starts = cum[picked, symbols]
        return symbols, starts, cum[picked, symbols + 1] - starts

    def bits(self, symbols: np.ndarray) -> float:
        """What coding ``symbols`` costs in bits: :math:`\\sum -\\log_2` of their rounded probabilities."""
        rows = np.arange(len(symbols))
        freqs = self.cum[rows, symbols + 1] - self.cum[rows, symbols]
        return float(self.precision * len(symbols) - np.log2(freqs).sum())


def _from_cdf(below: np.ndarray, precision: int) -> Table:
    """A table from ``below`` (``(..., K + 1)`` float64): P(s < k), with exact 0 and 1 at the ends."""
    num_symbols = below.shape[-1] - 1
    below[..., 0], below[..., -1] = 0.0, 1.0
    spread = (1 << precision) - num_symbols
    cum = np.floor(np.clip(below, 0.0, 1.0) * spread).astype(np.int64) + np.arange(num_symbols + 1)
    return Table(cum, precision)


def categorical_table(logits: torch.Tensor, precision: int) -> Table:
    """Tables for categorical ``logits`` (``(..., K)``; any normalisation): cumulative ``(..., K + 1)``."""
    probs = torch.softmax(logits.detach().to(torch.float64), dim=-1).cpu().numpy()  # (..., K)
    below = np.concatenate([np.zeros(probs.shape[:-1] + (1,)), np.cumsum(probs, axis=-1)], axis=-1)
    return _from_cdf(below, precision)


def bernoulli_table(logits: torch.Tensor, precision: int) -> Table:
    """Two-symbol tables (0, then 1) for Bernoulli ``logits`` (any shape ``S``): cumulative ``(*S, 3)``."""
    zero = torch.sigmoid(-logits.detach().to(torch.float64)).cpu().numpy()  # P(s = 0)
    below = np.stack([np.zeros_like(zero), zero, np.ones_like(zero)], axis=-1)
    return _from_cdf(below, precision)
