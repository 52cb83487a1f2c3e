"""Character-level language models for tiny Shakespeare (exact family): a Transformer and an LSTM."""

from __future__ import annotations

import pyro
import torch
from pyro.nn import PyroModule, pyro_method

from pplgen.distributions.sequence import SequenceLM
from pplgen.errors import DataError
from pplgen.nn.attention import TransformerConfig
from pplgen.nn.sequence import LSTMNet, TokenNet, TransformerNet

__all__ = ["CharLSTM", "CharTransformer", "TokenLM"]


class TokenLM(PyroModule):
    r"""Blocks of tokens observed under :class:`pplgen.distributions.SequenceLM`; no latents, so ``exact``.

    :math:`\log p(x) = \sum_n \sum_t \log p(x_{n,t} \mid x_{n,<t})`, trained by maximum likelihood
    (``nats_per_char`` is the negative log-likelihood over the block size). A subclass builds the network
    in ``build``; ``config`` holds the plain-data arguments that rebuild the module.

    Args:
        vocab_size: the number of symbols K (65 characters in tiny Shakespeare).
        length: the block size T (256 in the data set).
        **sizes: the subclass's network sizes.
    """

    def __init__(self, vocab_size: int, length: int, **sizes):
        super().__init__()
        self.config = {"vocab_size": vocab_size, "length": length, **sizes}
        self.net = self.build(vocab_size, length, **sizes)

    def build(self, vocab_size: int, length: int, **sizes) -> TokenNet:
        raise NotImplementedError

    @classmethod
    def from_dataset(cls, dataset, **config) -> TokenLM:
        if dataset.kind != "token" or dataset.x.dim() != 2:
            raise DataError(
                f"{cls.__name__} models token blocks (N, T), got {dataset.kind} data of shape "
                f"{tuple(dataset.x.shape)}"
            )
        return cls(**{"vocab_size": int(dataset.num_levels), "length": int(dataset.x.shape[1]), **config})

    @pyro_method
    def model(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", SequenceLM(self.net), obs=x)


class CharTransformer(TokenLM):
    """A character-level GPT (zoo name ``charlm``); the defaults are nanoGPT's ``shakespeare_char``
    (6 layers, 6 heads, 384 wide, dropout 0.2: about 10.7 M parameters, 1.47 validation nats per character
    after 5000 steps of 64 blocks of 256 characters in Karpathy's run).

    References:
        Radford et al. (2019), "Language models are unsupervised multitask learners".
        Karpathy (2022), nanoGPT ``config/train_shakespeare_char.py``.

    Example:
        A tiny model over 3 symbols: its probabilities of all 27 blocks of 3 characters sum to one.

        >>> import pplgen, torch
        >>> lm = CharTransformer(vocab_size=3, length=3, n_layer=1, n_head=2, n_embd=8)
        >>> blocks = torch.cartesian_prod(*[torch.arange(3)] * 3)  # (27, 3)
        >>> round(pplgen.log_likelihood(lm.model, blocks, device="cpu").exp().sum().item(), 4)
        1.0
        >>> text = pplgen.sample(lm.model, 2, blocks, device="cpu")
        >>> text.shape, text.dtype
        (torch.Size([2, 3]), torch.int64)
    """

    def __init__(
        self,
        vocab_size: int,
        length: int = 256,
        n_layer: int = 6,
        n_head: int = 6,
        n_embd: int = 384,
        dropout: float = 0.2,
    ):
        super().__init__(vocab_size, length, n_layer=n_layer, n_head=n_head, n_embd=n_embd, dropout=dropout)

    def build(self, vocab_size: int, length: int, **sizes) -> TokenNet:
        return TransformerNet(TransformerConfig(vocab_size=vocab_size, block_size=length, **sizes))


class CharLSTM(TokenLM):
    """A character-level LSTM (zoo name ``lstmlm``) in the style of char-rnn: 2 layers, 512 wide.

    References:
        Hochreiter & Schmidhuber (1997), "Long short-term memory".
        Karpathy (2015), char-rnn, https://github.com/karpathy/char-rnn.

    Example:
        >>> import pplgen, torch
        >>> lm = CharLSTM(vocab_size=3, length=3, hidden=8, num_layers=1)
        >>> blocks = torch.cartesian_prod(*[torch.arange(3)] * 3)  # all 27 blocks of 3 characters
        >>> pplgen.inspect(lm.model, blocks).graph["family"]
        'exact'
        >>> round(pplgen.log_likelihood(lm.model, blocks, device="cpu").exp().sum().item(), 4)
        1.0
    """

    def __init__(
        self, vocab_size: int, length: int = 256, hidden: int = 512, num_layers: int = 2, dropout: float = 0.2
    ):
        super().__init__(vocab_size, length, hidden=hidden, num_layers=num_layers, dropout=dropout)

    def build(self, vocab_size: int, length: int, **sizes) -> TokenNet:
        return LSTMNet(vocab_size, length, **sizes)
