"""Contract cases for the token language models (see ``tests/ar_contract.py``)."""

import torch

from pplgen.distributions.sequence import SequenceLM
from pplgen.nn.attention import TransformerConfig
from pplgen.nn.sequence import LSTMNet, TransformerNet
from tests.ar_contract import Case, grid


def _seeded(build):
    def make():
        torch.manual_seed(7)
        net = build()
        with torch.no_grad():  # larger weights than GPT-2's init, so no conditional is nearly uniform
            for p in net.parameters():
                p.add_(0.5 * torch.randn_like(p))
        return net.eval()

    return make


def _context(n):
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(3))


def tiny_transformer(vocab=5, length=5, context_dim=None):
    config = TransformerConfig(vocab, length, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    return TransformerNet(config, context_dim=context_dim)


CASES = [
    Case(
        "transformer_lm",
        _seeded(lambda: tiny_transformer(vocab=5, length=5)),
        SequenceLM,
        states=lambda: grid(range(5), (5,)),
        bad_value=lambda: torch.tensor([0, 1, 2, 3, 5]),
    ),
    Case(
        "transformer_lm_context",
        _seeded(lambda: tiny_transformer(vocab=4, length=6, context_dim=3)),
        SequenceLM,
        states=lambda: grid(range(4), (6,)),
        bad_value=lambda: torch.tensor([0, 1, -1, 3, 0, 0]),
        context=_context,
    ),
    Case(
        "lstm_lm",
        _seeded(lambda: LSTMNet(vocab_size=4, length=6, hidden=16, num_layers=2, embed_dim=8)),
        SequenceLM,
        states=lambda: grid(range(4), (6,)),
        bad_value=lambda: torch.tensor([0, 1, 2, 3, 4, 0]),
    ),
]
