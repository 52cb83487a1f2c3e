"""Token sequences under an LSTM or Transformer language model, with temperature and top-k sampling."""

from __future__ import annotations

import functools
import math

import torch

from pplgen.distributions.autoregressive import AutoregressiveDistribution
from pplgen.errors import DataError, ModelError
from pplgen.nn.autoregressive import Warp, warp_logits
from pplgen.nn.sequence import TokenNet

__all__ = ["SequenceLM"]


class SequenceLM(AutoregressiveDistribution):
    r"""A block of :math:`T` tokens from a vocabulary of :math:`K` under a neural language model.

    .. math::
        p(x \mid c) = \prod_{t=0}^{T-1} p(x_t \mid x_{<t}, c), \qquad
        p(x_t \mid x_{<t}, c) = \mathrm{softmax}(\ell_t)_{x_t}

    where the logits :math:`\ell_t` come from a :class:`pplgen.nn.TransformerNet` or
    :class:`pplgen.nn.LSTMNet` (the first token is conditioned on a learned start token, so this is an
    exact distribution over whole blocks). ``log_prob`` is the model's own, always unwarped.

    ``sample`` draws one token at a time through the network's cache (key/value cache or LSTM state)
    from the warped conditionals :math:`\mathrm{softmax}(\mathrm{top}_k(\ell_t) / \tau)`: logits outside
    the ``top_k`` largest are dropped and the rest divided by the ``temperature`` :math:`\tau`. Only at
    :math:`\tau = 1` without top-k are the samples drawn from :math:`p(x \mid c)` itself; a lower
    temperature sharpens the conditionals towards greedy decoding (:math:`\tau \to 0`), a higher one
    flattens them. :meth:`generate_from` continues a prompt.

    >>> from pplgen.nn.attention import TransformerConfig
    >>> from pplgen.nn.sequence import TransformerNet
    >>> net = TransformerNet(TransformerConfig(vocab_size=3, block_size=4, n_layer=1, n_head=2, n_embd=8))
    >>> d = SequenceLM(net.eval())
    >>> x = d.sample((5,))
    >>> x.shape, x.dtype, d.log_prob(x).shape
    (torch.Size([5, 4]), torch.int64, torch.Size([5]))
    >>> states = torch.cartesian_prod(*[torch.arange(3)] * 4)  # all 81 blocks
    >>> round(d.log_prob(states).exp().sum().item(), 4)
    1.0
    >>> SequenceLM(net, temperature=0.5, top_k=2).generate_from(torch.tensor([2, 0]), 2).shape
    torch.Size([4])

    References:
        Hochreiter & Schmidhuber (1997), "Long short-term memory".
        Vaswani et al. (2017), "Attention is all you need".
        Radford et al. (2019), "Language models are unsupervised multitask learners".
        Fan, Lewis & Dauphin (2018), "Hierarchical neural story generation" (top-k sampling).
        Karpathy (2015), "The unreasonable effectiveness of recurrent neural networks" (char-rnn).

    Args:
        net: the :class:`pplgen.nn.TransformerNet` or :class:`pplgen.nn.LSTMNet` holding the parameters.
        context: ``(*batch_shape, context_dim)`` when the network was built with ``context_dim`` (a decoder
            :math:`p(x \mid z)`).
        temperature: :math:`\tau > 0`, used by ``sample`` and :meth:`generate_from` only.
        top_k: keep the ``top_k`` most likely tokens at each step (``1 <= top_k <= K``), or ``None`` for all.
    """

    label = "SequenceLM"

    def __init__(
        self,
        net: TokenNet,
        context: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        validate_args=None,
    ):
        if not isinstance(net, TokenNet):
            raise ModelError(
                f"SequenceLM expects a pplgen.nn.TransformerNet or LSTMNet, got {type(net).__name__}"
            )
        _check_warp(temperature, top_k, net.num_levels)
        self.temperature = float(temperature)
        self.top_k = top_k
        super().__init__(net, context, validate_args)

    def warp(self) -> Warp | None:
        """The temperature and top-k as one function on logits; ``None`` when they change nothing."""
        if self.temperature == 1.0 and self.top_k is None:
            return None
        return functools.partial(warp_logits, temperature=self.temperature, top_k=self.top_k)

    def describe_support(self) -> str:
        return f"token ids 0 .. {self.num_levels - 1} (a vocabulary of {self.num_levels} symbols)"

    def generate(self, u, context, naive, warp):
        return super().generate(u, context, naive, warp if warp is not None else self.warp())

    def generate_from(self, prompt: torch.Tensor, num_tokens: int, warp: Warp | None = None) -> torch.Tensor:
        r"""Continue ``prompt`` by ``num_tokens`` tokens, with the distribution's temperature and top-k.

        The prompt is fed through the network in one pass, then the continuation is generated one token
        at a time from the cache. The continuation follows :math:`p(x_{P:} \mid x_{<P}, c)` (at
        temperature 1 without top-k).

        Args:
            prompt: ``(*S, P)`` tokens; ``S`` broadcasts against the batch shape.
            num_tokens: how many tokens to add; ``P + num_tokens`` may not exceed the block size T.
            warp: replaces the distribution's temperature and top-k.

        Returns:
            ``(*broadcast(S, batch_shape), P + num_tokens)`` int64 tokens, the prompt first.
        """
        if not isinstance(prompt, torch.Tensor) or prompt.dim() < 1:
            raise DataError(f"{self.label}: expected a prompt tensor of shape (..., P), got {prompt!r}")
        size = prompt.shape[-1] + num_tokens
        if not isinstance(num_tokens, int) or num_tokens < 0 or size > self.net.length:
            raise DataError(
                f"{self.label}: a prompt of {prompt.shape[-1]} tokens and {num_tokens!r} more must fit a "
                f"block of {self.net.length}"
            )
        self.check_support(prompt)
        outer = torch.broadcast_shapes(prompt.shape[:-1], self.batch_shape)
        device = self.net._device()
        flat = prompt.to(device).long().expand(outer + prompt.shape[-1:]).reshape(outer.numel(), -1)  # (N, P)
        u = torch.rand(flat.shape[0], size, device=device)  # (N, P + num_tokens)
        warp = warp if warp is not None else self.warp()
        tokens = self.net.generate(u, self._flat_context(outer), warp, prompt=flat)
        return tokens.reshape(outer + (size,))


def _check_warp(temperature: float, top_k: int | None, vocab_size: int) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise ModelError(f"SequenceLM: temperature must be a number > 0, got {temperature!r}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ModelError(f"SequenceLM: temperature must be a finite number > 0, got {temperature!r}")
    if top_k is None:
        return
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= vocab_size:
        raise ModelError(
            f"SequenceLM: top_k must be None or an integer 1 .. {vocab_size} (the vocabulary), got {top_k!r}"
        )
