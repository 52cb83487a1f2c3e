"""Language models over token sequences: a Transformer and an LSTM, with cached generation.

Both read a block of :math:`T` tokens from a vocabulary of :math:`K` symbols and give, in one
teacher-forced pass, the logits of every conditional :math:`p(x_t \\mid x_{<t}, c)`. The input at
position :math:`t` is the token :math:`x_{t-1}`, and at position 0 a learned start-of-sequence vector,
so the first token has a proper conditional too and :math:`\\sum_t \\log p(x_t \\mid x_{<t}, c)` is the
exact log-probability of the whole block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pplgen.errors import DataError
from pplgen.nn.attention import Block, KVCache, TransformerConfig, init_weights
from pplgen.nn.autoregressive import AutoregressiveNet, Warp

__all__ = ["LSTMNet", "TokenNet", "TransformerNet"]


class TokenNet(AutoregressiveNet):
    """What the token networks share: embeddings, the start token, the context, the generation loop.

    A subclass defines :meth:`run`, which maps input embeddings to logits and carries a state from one
    call to the next (a key/value cache, an LSTM state), and :meth:`new_state`.

    A vocabulary needs :math:`K \\ge 3` symbols: the autoregressive base treats two levels as binary
    data with one Bernoulli logit, on which temperature and top-k would be silently ignored. Model a
    binary sequence with a binary network (:class:`pplgen.nn.NADENet`, :class:`pplgen.nn.MADENet`).

    Args:
        vocab_size: the number of symbols K.
        length: the block size T.
        embed_dim: the width of the token embedding.
        context_dim: the size of a conditioning vector, mapped linearly and added to every position's
            input embedding; ``None`` for an unconditional network.
        dropout: the dropout probability on the input embeddings.

    Example:
        A bigram model: the embedding of the previous token is the logits of the next, and no state.

        >>> class Bigram(TokenNet):
        ...     def __init__(self, vocab_size, length):
        ...         super().__init__(vocab_size, length, vocab_size, context_dim=None, dropout=0.0)
        ...     def run(self, h, state):
        ...         return h, state
        >>> _ = torch.manual_seed(0)
        >>> net = Bigram(vocab_size=3, length=4)
        >>> net(torch.tensor([[0, 1, 2, 0]])).shape
        torch.Size([1, 4, 3])
        >>> u = torch.rand(2, 4)
        >>> torch.equal(net.generate(u), net.generate_naive(u))
        True
        >>> try:
        ...     Bigram(vocab_size=2, length=4)
        ... except ValueError as err:
        ...     print(err)
        Bigram: vocab_size must be an integer >= 3, got 2 (two symbols are binary data: use NADENet ...
    """

    def __init__(self, vocab_size: int, length: int, embed_dim: int, context_dim: int | None, dropout: float):
        super().__init__()
        if not isinstance(vocab_size, int) or vocab_size < 3:
            raise ValueError(
                f"{type(self).__name__}: vocab_size must be an integer >= 3, got {vocab_size!r} "
                "(two symbols are binary data: use NADENet or MADENet)"
            )
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"{type(self).__name__}: length must be a positive integer, got {length!r}")
        self.event_shape = (length,)
        self.num_levels = vocab_size
        self.context_shape = None if context_dim is None else (context_dim,)
        self.wte = nn.Embedding(vocab_size, embed_dim)
        self.bos = nn.Parameter(torch.zeros(embed_dim))  # the input at position 0
        self.context_map = None if context_dim is None else nn.Linear(context_dim, embed_dim)
        self.drop = nn.Dropout(dropout)

    @property
    def vocab_size(self) -> int:
        return self.num_levels

    @property
    def length(self) -> int:
        return self.event_shape[0]

    # -- inputs -----------------------------------------------------------------------------------
    def relax(self, levels: torch.Tensor) -> torch.Tensor:
        """One-hot vectors ``(B, T, K)``, which :meth:`forward` takes in place of tokens."""
        return F.one_hot(levels.long(), self.num_levels).to(self.wte.weight.dtype)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Token embeddings ``(B, t, E)`` of int64 tokens ``(B, t)`` or float one-hot rows ``(B, t, K)``."""
        if x.is_floating_point():
            return x.to(self.wte.weight.dtype) @ self.wte.weight
        return self.wte(x)

    def prepare(self, h: torch.Tensor, start: int, context: torch.Tensor | None) -> torch.Tensor:
        """Input embeddings ``(B, t, E)`` at positions ``start ..``: the context added, then dropout."""
        if self.context_map is not None:
            h = h + self.context_map(context).unsqueeze(1)  # the same shift at every position
        return self.drop(h)

    def _check_input(self, x: torch.Tensor) -> None:
        tokens = x.dim() == 2 and not x.is_floating_point()
        relaxed = x.dim() == 3 and x.is_floating_point() and x.shape[-1] == self.num_levels
        if not (tokens or relaxed) or not 1 <= x.shape[1] <= self.length:
            raise DataError(
                f"{type(self).__name__}: expected int64 tokens (B, t) or one-hot floats (B, t, "
                f"{self.num_levels}) with 1 <= t <= {self.length}, got {x.dtype} of shape {tuple(x.shape)}"
            )

    # -- the network ------------------------------------------------------------------------------
    def new_state(self, batch: int) -> object:
        """The state :meth:`run` starts generation from (``None`` when it needs none)."""
        return None

    def run(self, h: torch.Tensor, state: object) -> tuple[torch.Tensor, object]:
        """Logits ``(B, t, K)`` from input embeddings ``(B, t, E)`` that follow ``state``; the new state."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, t, K)`` of every token of ``x`` given the tokens before it (and the context)."""
        self._check_input(x)
        tokens = self.embed(x)  # (B, t, E)
        start = self.bos.expand(x.shape[0], 1, -1)  # (B, 1, E)
        h = torch.cat([start, tokens[:, :-1]], dim=1)  # position t reads x_{t-1}
        logits, _ = self.run(self.prepare(h, 0, context), None)
        return logits

    @torch.no_grad()
    def generate(
        self,
        u: torch.Tensor,
        context: torch.Tensor | None = None,
        warp: Warp | None = None,
        prompt: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Tokens ``(B, L)`` from uniforms ``(B, L)``, ``L <= T``, one new position per step.

        Args:
            u: the uniforms; ``u[:, t]`` picks token ``t``.
            context: ``(B, context_dim)`` or ``None``.
            warp: applied to each position's logits before picking (temperature, top-k).
            prompt: ``(B, P)`` tokens to start from (``P <= L``), processed in one pass; the first ``P``
                uniforms are then unused. Without a prompt the tokens equal :meth:`generate_naive`'s.
        """
        batch, size = u.shape
        first = 0 if prompt is None else prompt.shape[1]
        if not first <= size <= self.length:
            raise DataError(
                f"{type(self).__name__}: cannot generate {size} tokens after a prompt of {first}, "
                f"in blocks of {self.length}"
            )
        tokens = torch.zeros(batch, size, dtype=torch.long, device=u.device)  # (B, L)
        if prompt is not None:
            tokens[:, :first] = prompt
        if first == size:
            return tokens
        start = self.bos.expand(batch, 1, -1)  # (B, 1, E)
        h = self.prepare(torch.cat([start, self.embed(tokens[:, :first])], dim=1), 0, context)  # (B, P+1, E)
        state = self.new_state(batch)
        for t in range(first, size):
            logits, state = self.run(h, state)  # (B, n, K): only the last position is new
            tokens[:, t] = self.pick_at(logits[:, -1], u[:, t], warp)
            if t + 1 < size:
                h = self.prepare(self.embed(tokens[:, t : t + 1]), t + 1, context)  # (B, 1, E)
        return tokens


class TransformerNet(TokenNet):
    r"""A decoder-only Transformer language model (GPT) with a key/value cache for generation.

    .. math::
        h^0_t = e_{x_{t-1}} + p_t + W_c c, \quad h^0_0 = e_{\mathrm{bos}} + p_0 + W_c c, \quad
        h^{l} = \mathrm{Block}_l(h^{l-1}), \quad
        p(x_t \mid x_{<t}, c) = \mathrm{softmax}\big(E\, \mathrm{LN}(h^L_t)\big)

    with token embeddings :math:`E` (tied to the output layer, Press & Wolf 2017), learned position
    embeddings :math:`p_t` and :math:`L` pre-LayerNorm blocks of causal self-attention. Cached
    generation runs one new position per step through every block, attending to the stored keys and
    values of the earlier ones.

    References:
        Vaswani et al. (2017), "Attention is all you need".
        Radford et al. (2019), "Language models are unsupervised multitask learners".
        Karpathy (2022), nanoGPT, https://github.com/karpathy/nanoGPT.

    Args:
        config: the sizes (:class:`pplgen.nn.attention.TransformerConfig`): ``vocab_size`` is K and
            ``block_size`` the sequence length T.
        context_dim: the size of a conditioning vector added (linearly mapped) to every input embedding.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> config = TransformerConfig(vocab_size=5, block_size=6, n_layer=1, n_head=2, n_embd=8, dropout=0.0)
        >>> net = TransformerNet(config)
        >>> x = net.relax(torch.randint(5, (1, 6))).requires_grad_()  # one-hot tokens
        >>> net(x).shape
        torch.Size([1, 6, 5])
        >>> net(x)[0, 2].sum().backward()
        >>> (x.grad[0].abs().sum(-1) > 0).tolist()  # position 2's logits read tokens 0 and 1
        [True, True, False, False, False, False]
        >>> u = torch.rand(2, 6)
        >>> torch.equal(net.generate(u), net.generate_naive(u))  # the key/value cache changes nothing
        True
    """

    def __init__(self, config: TransformerConfig, context_dim: int | None = None):
        super().__init__(config.vocab_size, config.block_size, config.n_embd, context_dim, config.dropout)
        self.config = config
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        init_weights(self, config.n_layer)
        nn.init.normal_(self.bos, mean=0.0, std=0.02)

    def prepare(self, h: torch.Tensor, start: int, context: torch.Tensor | None) -> torch.Tensor:
        position = torch.arange(start, start + h.shape[1], device=h.device)  # (t,)
        return super().prepare(h + self.wpe(position), start, context)

    def new_state(self, batch: int) -> list[KVCache]:
        return [KVCache(self.length) for _ in self.blocks]

    def run(self, h: torch.Tensor, state: list[KVCache] | None) -> tuple[torch.Tensor, list[KVCache] | None]:
        caches = state if state is not None else [None] * len(self.blocks)
        for block, cache in zip(self.blocks, caches, strict=True):
            h = block(h, cache)  # (B, t, C)
        return F.linear(self.ln_f(h), self.wte.weight), state  # (B, t, K), the head tied to the embedding


class LSTMNet(TokenNet):
    r"""A multi-layer LSTM language model; generation carries the LSTM's state :math:`(h, c)`.

    .. math::
        s_t = \mathrm{LSTM}(s_{t-1}, e_{x_{t-1}} + W_c c), \quad s_{-1} = 0,\ e_{x_{-1}} = e_{\mathrm{bos}},
        \quad p(x_t \mid x_{<t}, c) = \mathrm{softmax}(W h_t + b)

    References:
        Hochreiter & Schmidhuber (1997), "Long short-term memory".
        Karpathy (2015), char-rnn, https://github.com/karpathy/char-rnn.

    Args:
        vocab_size: the number of symbols K (at least 3).
        length: the block size T.
        hidden: the LSTM's width.
        num_layers: stacked LSTM layers.
        embed_dim: the token embedding's width; ``hidden`` when ``None``.
        dropout: on the input embeddings, between LSTM layers and before the output layer.
        context_dim: the size of a conditioning vector added (linearly mapped) to every input embedding.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = LSTMNet(vocab_size=5, length=6, hidden=8, num_layers=1, context_dim=2)
        >>> context = torch.randn(2, 2)
        >>> net(torch.randint(5, (2, 6)), context).shape
        torch.Size([2, 6, 5])
        >>> u = torch.rand(2, 6)
        >>> torch.equal(net.generate(u, context), net.generate_naive(u, context))  # carried state
        True
        >>> prompt = torch.tensor([[1, 2], [3, 4]])
        >>> net.generate(u, context, prompt=prompt)[:, :2].tolist()  # a prompt starts the sequence
        [[1, 2], [3, 4]]
    """

    def __init__(
        self,
        vocab_size: int,
        length: int,
        hidden: int = 512,
        num_layers: int = 2,
        embed_dim: int | None = None,
        dropout: float = 0.0,
        context_dim: int | None = None,
    ):
        embed_dim = hidden if embed_dim is None else embed_dim
        super().__init__(vocab_size, length, embed_dim, context_dim, dropout)
        nn.init.normal_(self.bos)  # on the scale of nn.Embedding's default N(0, 1) rows
        between = dropout if num_layers > 1 else 0.0  # nn.LSTM warns about dropout after a single layer
        self.lstm = nn.LSTM(embed_dim, hidden, num_layers=num_layers, dropout=between, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)

    def run(self, h: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None):
        out, state = self.lstm(h, state)  # (B, t, H); state: 2 x (num_layers, B, H)
        return self.head(self.drop(out)), state
