r"""Vectorised range asymmetric numeral systems (rANS): a stack of bits that symbols are pushed onto.

rANS (Duda 2013) codes a symbol :math:`s` of probability :math:`f_s / 2^p` by mapping the integer state
:math:`h` to :math:`h' = \lfloor h / f_s \rfloor 2^p + (h \bmod f_s) + c_s`, where :math:`c_s` is the
cumulative frequency below :math:`s`; the state grows by :math:`\log_2(2^p / f_s)` bits, the symbol's
information. Decoding reads :math:`c = h' \bmod 2^p`, finds the symbol whose interval holds it, and
inverts the map. It is a *stack*: the last symbol pushed is the first popped, which is what bits-back
coding needs (Townsend et al. 2019): popping a symbol with a distribution the message was not built
with *samples* from that distribution and shortens the message.

This module follows Giesen's 64-bit layout: each state ("head") lies in :math:`[2^{31}, 2^{63})` and
moves 32-bit words to and from a shared tail when it would leave that range. Several heads ("lanes")
run side by side, so one numpy operation codes one symbol in each lane (as craystack does). Below the
tail's first stored word lies an endless run of pseudo-random words that both ends can compute, so a
coder may pop before it has pushed anything (the first bits-back step); what it borrows there is not
stored, and the decoder gives it back.

References:
    Duda (2013), "Asymmetric numeral systems: entropy coding combining speed of Huffman coding with
    compression rate of arithmetic coding", arXiv:1311.2540.
    Giesen (2014), "Interleaved entropy coders", arXiv:1402.3392.
    Townsend, Bird & Barber (2019), "Practical lossless compression with latent variables using bits
    back coding", ICLR.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pplgen.errors import CodecError

__all__ = ["HEAD_MIN", "Message", "initial_heads", "virtual_words"]

#: The smallest value a head may hold; heads live in ``[HEAD_MIN, HEAD_MIN << 32)``.
HEAD_MIN = 1 << 31
_WORD = np.uint64(32)
_LOW_WORD = np.uint64(0xFFFFFFFF)

#: ``lookup(cf, rows) -> (symbols, starts, freqs)``: the symbols whose intervals hold the cumulative
#: frequencies ``cf`` (one per lane), for the data points ``rows`` of the call.
Lookup = Callable[[np.ndarray, slice], tuple[np.ndarray, np.ndarray, np.ndarray]]


def initial_heads(lanes: int) -> np.ndarray:
    """The heads a new message starts with: ``HEAD_MIN`` plus 31 pseudo-random bits each, so the first
    symbols popped from a new message are not all the lowest ones."""
    return np.uint64(HEAD_MIN) + (virtual_words(np.arange(lanes) + (1 << 40)) >> np.uint64(1))


def virtual_words(index: np.ndarray) -> np.ndarray:
    """The pseudo-random 32-bit words that lie below the tail, word ``index`` counted downwards from it.

    A splitmix64 hash of the index, so any stretch can be computed on its own and both coder and
    decoder agree on every word.
    """
    z = index.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x632BE59BD9B4E019)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return (z ^ (z >> np.uint64(31))) & _LOW_WORD


class Message:
    """An rANS message: ``lanes`` heads and a shared tail of 32-bit words.

    A call codes one symbol per data point for a batch of points, ``B`` of them: point ``b`` goes to
    lane ``b % lanes``, in groups of ``lanes`` points. :meth:`push` codes the groups last first and
    :meth:`pop` first first, so a pop undoes the push of the same call exactly.

    Args:
        lanes: how many heads code side by side. Each costs 64 bits when the message is written out, so
            a few dozen keep that overhead small while numpy does the work.

    >>> m = Message(lanes=2)
    >>> m.push(np.array([0, 3]), np.array([3, 1]), precision=2)  # two symbols: P = 3/4 and 1/4
    >>> symbols = m.pop(2, 2, lambda cf, rows: (cf >= 3, np.where(cf >= 3, 3, 0), np.where(cf >= 3, 1, 3)))
    >>> symbols.tolist()
    [False, True]
    """

    def __init__(self, lanes: int = 16):
        if not isinstance(lanes, int) or lanes < 1:
            raise CodecError(f"lanes must be a positive integer, got {lanes!r}")
        self.lanes = lanes
        self.heads = initial_heads(lanes)
        self._tail = np.zeros(1024, dtype=np.uint64)  # position p of the stack is _tail[p + _below]
        self._below = 0  # virtual words laid out below position 0
        self._top = 0  # words stored; negative while words are borrowed from below the tail
        self._lowest = 0
        self._given = 0  # for a message read back: how many words its coder borrowed

    @property
    def borrowed(self) -> int:
        """How many words the message ever borrowed from below its tail."""
        return -self._lowest

    def _write(self, words: np.ndarray) -> None:
        start = self._top + self._below
        if start + len(words) > len(self._tail):
            grown = np.zeros(max(len(self._tail), len(words)), dtype=np.uint64)
            self._tail = np.concatenate([self._tail, grown])
        self._tail[start : start + len(words)] = words
        self._top += len(words)

    def _read(self, count: int) -> np.ndarray:
        """Pop the top ``count`` words off the tail; below the tail lie virtual words."""
        new_top = self._top - count
        if new_top < -self._below:
            self._lay_below(-new_top)
        start = new_top + self._below
        words = self._tail[start : start + count].copy()  # in the order one push wrote them
        self._top = new_top
        self._lowest = min(self._lowest, new_top)
        return words

    def _lay_below(self, needed: int) -> None:
        """Lay virtual words below the tail so that positions down to ``-needed`` exist."""
        new = max(needed, 2 * self._below, 256)
        below = virtual_words(np.arange(new - 1, self._below - 1, -1))  # positions -new .. -_below - 1
        self._tail = np.concatenate([below, self._tail])
        self._below = new

    def push(self, starts: np.ndarray, freqs: np.ndarray, precision: int) -> None:
        """Code one symbol per data point: ``starts`` and ``freqs`` (``(B,)``) at ``precision`` bits."""
        starts = np.asarray(starts, dtype=np.uint64)
        freqs = np.asarray(freqs, dtype=np.uint64)
        p = np.uint64(precision)
        bound = np.uint64((HEAD_MIN >> precision) << 32)
        for first in reversed(range(0, len(starts), self.lanes)):
            rows = slice(first, min(first + self.lanes, len(starts)))
            k = rows.stop - rows.start
            head, freq = self.heads[:k], freqs[rows]
            full = head >= bound * freq  # these heads would overflow: move their low word to the tail
            if full.any():
                self._write(head[full] & _LOW_WORD)
                head[full] >>= _WORD
            self.heads[:k] = ((head // freq) << p) + (head % freq) + starts[rows]

    def pop(self, count: int, precision: int, lookup: Lookup) -> np.ndarray:
        """Decode one symbol for each of ``count`` data points, the inverse of :meth:`push`.

        ``lookup(cf, rows)`` names the symbols whose intervals hold the cumulative frequencies ``cf``
        (``(k,)``, one per lane) of the data points ``rows``, with their starts and frequencies.
        """
        p = np.uint64(precision)
        mask = np.uint64((1 << precision) - 1)
        out = None
        for first in range(0, count, self.lanes):
            rows = slice(first, min(first + self.lanes, count))
            k = rows.stop - rows.start
            head = self.heads[:k]
            cf = head & mask
            symbols, starts, freqs = lookup(cf, rows)
            head = np.asarray(freqs, np.uint64) * (head >> p) + cf - np.asarray(starts, np.uint64)
            low = head < np.uint64(HEAD_MIN)
            if low.any():
                head[low] = (head[low] << _WORD) | self._read(int(low.sum()))
            self.heads[:k] = head
            symbols = np.asarray(symbols)
            if out is None:
                out = np.empty(count, dtype=symbols.dtype)
            out[rows] = symbols
        return out if out is not None else np.empty(0, dtype=np.int64)

    def to_words(self) -> tuple[np.ndarray, np.ndarray, int]:
        """The stored tail (``uint32``), the heads (``uint64``) and how many words were borrowed."""
        start, stop = self._lowest + self._below, self._top + self._below
        return self._tail[start:stop].astype(np.uint32), self.heads.copy(), self.borrowed

    @classmethod
    def from_words(cls, tail: np.ndarray, heads: np.ndarray, borrowed: int) -> Message:
        """Rebuild a message from :meth:`to_words`; the borrowed words sit below the tail again."""
        message = cls(lanes=len(heads))
        message.heads = heads.astype(np.uint64).copy()
        if borrowed:
            message._lay_below(borrowed)
        message._top = -borrowed
        message._given = borrowed
        message._write(tail.astype(np.uint64))
        return message

    def is_initial(self) -> bool:
        """Whether the message is back where a new one starts: initial heads, nothing stored, and every
        borrowed word given back as it was. A decoder that ends anywhere else read a corrupted message."""
        if self._top != 0 or not (self.heads == initial_heads(self.lanes)).all():
            return False
        given_back = self._tail[self._below - self._given : self._below]
        return bool((given_back == virtual_words(np.arange(self._given - 1, -1, -1))).all())
