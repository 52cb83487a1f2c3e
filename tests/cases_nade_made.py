"""Contract cases for NADE and MADE (see ``tests/ar_contract.py``)."""

import torch

from pplgen.distributions import MADE, NADE
from pplgen.nn import MADENet, NADENet
from tests.ar_contract import Case, grid


def _seeded(build):
    def make():
        torch.manual_seed(7)
        net = build()
        with torch.no_grad():  # non-zero biases, so no conditional is trivially uniform
            for p in net.parameters():
                p.add_(0.5 * torch.randn_like(p))
        return net

    return make


def _context(n):
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(3))


CASES = [
    Case(
        "nade",
        _seeded(lambda: NADENet(dim=10, hidden=16)),
        NADE,
        states=lambda: grid([0.0, 1.0], (10,)),
        bad_value=lambda: torch.tensor([0.0] * 9 + [2.0]),
    ),
    Case(
        "nade_context",
        _seeded(lambda: NADENet(dim=6, hidden=16, context_dim=3)),
        NADE,
        states=lambda: grid([0.0, 1.0], (6,)),
        bad_value=lambda: torch.tensor([0.0] * 5 + [0.5]),
        context=_context,
    ),
    Case(
        "made_one_mask",
        _seeded(lambda: MADENet(dim=8, hidden=[64, 64])),
        MADE,
        states=lambda: grid([0.0, 1.0], (8,)),
        bad_value=lambda: torch.tensor([-1.0] + [0.0] * 7),
    ),
    Case(
        "made_third_ordering",
        _seeded(lambda: MADENet(dim=6, hidden=[64], num_masks=4).ordering(2)),
        lambda net, context: MADE(net.made, context, mask=net.mask),
        states=lambda: grid([0.0, 1.0], (6,)),
        bad_value=lambda: torch.tensor([3.0] + [0.0] * 5),
    ),
    Case(
        "made_levels_context",
        _seeded(lambda: MADENet(dim=4, hidden=[64], num_levels=4, context_dim=3)),
        MADE,
        states=lambda: grid([0, 1, 2, 3], (4,)),
        bad_value=lambda: torch.tensor([0, 1, 2, 4]),
        context=_context,
    ),
]
