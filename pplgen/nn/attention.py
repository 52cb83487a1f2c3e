"""Causal self-attention with a key/value cache, and the pre-LayerNorm Transformer block.

The layout follows nanoGPT's ``model.py`` (Karpathy 2022): a config dataclass, one fused query/key/value
projection, :func:`torch.nn.functional.scaled_dot_product_attention` for the attention itself, and a
block :math:`x + \\mathrm{attn}(\\mathrm{LN}(x))`, then :math:`x + \\mathrm{MLP}(\\mathrm{LN}(x))` (the
pre-LayerNorm arrangement of GPT-2, Radford et al. 2019). The attention also runs incrementally: given a
:class:`KVCache` of the keys and values of the positions seen so far, it takes only the new positions and
attends to everything in the cache, so that generating :math:`T` tokens costs :math:`O(T^2)` attention
work in all instead of :math:`O(T^3)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Block", "CausalSelfAttention", "KVCache", "TransformerConfig"]


@dataclass
class TransformerConfig:
    """The sizes of a decoder-only Transformer; the defaults are nanoGPT's ``shakespeare_char`` model.

    References:
        Karpathy (2022), nanoGPT, https://github.com/karpathy/nanoGPT.

    Example:
        >>> config = TransformerConfig(n_embd=8, n_head=2)
        >>> config.n_embd // config.n_head, config.block_size  # the head size, a default
        (4, 256)
        >>> try:
        ...     TransformerConfig(n_embd=10, n_head=4)
        ... except ValueError as err:
        ...     print(err)
        n_embd must be a multiple of n_head, got n_embd=10, n_head=4
    """

    vocab_size: int = 65  # K: tokens are 0 .. K-1 (65 characters in tiny Shakespeare)
    block_size: int = 256  # T: the longest sequence, the number of position embeddings
    n_layer: int = 6  # Transformer blocks
    n_head: int = 6  # attention heads per block; n_embd must be a multiple of it
    n_embd: int = 384  # C: the width of the residual stream (64 per head)
    dropout: float = 0.2  # on embeddings, attention weights and residual branches (0 when pretraining large)
    bias: bool = (
        False  # biases in Linear and LayerNorm layers; nanoGPT finds False a little better and faster
    )

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd must be a multiple of n_head, got n_embd={self.n_embd}, n_head={self.n_head}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")


class KVCache:
    """The keys and values of one attention layer for the positions processed so far.

    The buffers ``(B, n_head, max_len, head_size)`` are allocated on the first :meth:`append`, with the
    batch size, device and dtype of the keys, and filled from the front; ``length`` positions are
    valid.

    Args:
        max_len: the most positions the cache will hold (the block size).

    Example:
        >>> cache = KVCache(max_len=4)
        >>> k, v = cache.append(torch.zeros(1, 2, 3, 5), torch.ones(1, 2, 3, 5))  # 3 positions
        >>> k, v = cache.append(torch.zeros(1, 2, 1, 5), torch.ones(1, 2, 1, 5))  # and one more
        >>> k.shape, cache.length
        (torch.Size([1, 2, 4, 5]), 4)
        >>> try:
        ...     cache.append(torch.zeros(1, 2, 1, 5), torch.ones(1, 2, 1, 5))
        ... except ValueError as err:
        ...     print(err)
        KVCache: 5 positions do not fit a cache of 4
    """

    def __init__(self, max_len: int):
        self.max_len = max_len
        self.length = 0
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``(B, nh, t, hs)`` new keys and values; return all of them, ``(B, nh, length, hs)``."""
        end = self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KVCache: {end} positions do not fit a cache of {self.max_len}")
        if self.k is None:
            shape = (k.shape[0], k.shape[1], self.max_len, k.shape[3])
            self.k = k.new_empty(shape)
            self.v = v.new_empty(shape)
        self.k[:, :, self.length : end] = k
        self.v[:, :, self.length : end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


class CausalSelfAttention(nn.Module):
    r"""Multi-head self-attention in which position :math:`t` attends to positions :math:`\le t`.

    .. math::
        \mathrm{head}_h = \mathrm{softmax}\Big(\frac{Q_h K_h^\top}{\sqrt{d}} + M\Big) V_h, \qquad
        M_{ts} = -\infty \text{ for } s > t

    References:
        Vaswani et al. (2017), "Attention is all you need".

    Args:
        config: ``n_embd``, ``n_head``, ``dropout`` and ``bias`` are read.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> attn = CausalSelfAttention(TransformerConfig(n_embd=8, n_head=2, dropout=0.0))
        >>> x = torch.randn(2, 5, 8)
        >>> y = attn(x)
        >>> changed = x.clone()
        >>> changed[:, -1] = 0.0
        >>> torch.allclose(attn(changed)[:, :-1], y[:, :-1])  # the last position is seen by no other
        True
        >>> cache = KVCache(max_len=5)
        >>> steps = torch.cat([attn(x[:, :2], cache), attn(x[:, 2:3], cache), attn(x[:, 3:], cache)], 1)
        >>> torch.allclose(steps, y, atol=1e-6)  # incremental with a cache equals one full pass
        True
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # query, key, value
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Attend from the positions of ``x`` ``(B, t, C)``; with ``cache``, they follow the cached ones.

        Without a cache the ``t`` positions are a whole sequence from its start. With one, they are the
        next ``t`` positions: their keys and values are appended to the cache, and each attends to every
        cached position and to the new positions up to itself.
        """
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        q, k, v = (
            a.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for a in (q, k, v)
        )  # (B, nh, T, hs)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.append(k, v)  # (B, nh, past + T, hs)
        mask, is_causal = _causal_mask(T, past, x.device)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0, is_causal=is_causal
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y))


def _causal_mask(new: int, past: int, device: torch.device) -> tuple[torch.Tensor | None, bool]:
    """The mask of ``new`` queries that follow ``past`` cached keys, as (``attn_mask``, ``is_causal``).

    ``is_causal`` aligns the mask to the top left, which is right only without a cache; one new query
    sees every key; otherwise query ``t`` sees keys ``0 .. past + t``.
    """
    if past == 0:
        return None, True
    if new == 1:
        return None, False
    return torch.ones(new, past + new, dtype=torch.bool, device=device).tril(diagonal=past), False


class FeedForward(nn.Module):
    """The position-wise feed-forward network: ``C -> 4C -> C`` with a GELU (Hendrycks & Gimpel 2016)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C)


class Block(nn.Module):
    """A pre-LayerNorm Transformer block: :math:`x + \\mathrm{attn}(\\mathrm{LN}(x))`, then the MLP alike.

    References:
        Vaswani et al. (2017), "Attention is all you need".
        Radford et al. (2019), "Language models are unsupervised multitask learners" (pre-LayerNorm).

    Args:
        config: ``n_embd``, ``n_head``, ``dropout`` and ``bias`` are read.

    >>> block = Block(TransformerConfig(n_embd=8, n_head=2))
    >>> block(torch.zeros(3, 5, 8)).shape
    torch.Size([3, 5, 8])
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = FeedForward(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache)  # (B, T, C)
        return x + self.mlp(self.ln_2(x))


def init_weights(module: nn.Module, n_layer: int) -> None:
    """GPT-2's initialisation: normal(0, 0.02) weights, zero biases, residual projections scaled by
    :math:`1/\\sqrt{2 L}` for :math:`L` layers (Radford et al. 2019, Section 2.3)."""
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Linear):
            std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("c_proj") else 0.02
            nn.init.normal_(sub.weight, mean=0.0, std=std)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.Embedding):
            nn.init.normal_(sub.weight, mean=0.0, std=0.02)
