"""Contract cases for WaveNet (see ``tests/ar_contract.py``): tiny nets whose receptive field covers T.

Values are audio floats, so ``states`` are every sequence of decoded μ-law levels. With a local context
the case's ``context`` is the network's joined context (``WaveNetNet.join_context``), which the case's
``dist`` splits back into the two arguments of :class:`WaveNet`.
"""

import torch

from pplgen.distributions.wavenet import WaveNet, mu_law_decode
from pplgen.nn.wavenet import WaveNetNet
from tests.ar_contract import Case, grid

K = 4  # levels


def _seeded(**kwargs):
    def make():
        torch.manual_seed(11)
        net = WaveNetNet(num_levels=K, residual_channels=6, skip_channels=8, **kwargs)
        with torch.no_grad():  # non-zero biases and a larger scale, so no conditional is nearly uniform
            for p in net.parameters():
                p.add_(0.5 * torch.randn_like(p))
        return net

    return make


def _states(length):
    return lambda: grid(mu_law_decode(torch.arange(K), K), (length,))


def _randn(*shape):
    return lambda n: torch.randn(n, *shape, generator=torch.Generator().manual_seed(3))


def _joined(net_kwargs, *, global_dim=None, local_shape=None):
    """A joined (global, local) context for ``n`` data points, as the network takes it."""
    net = WaveNetNet(num_levels=K, residual_channels=1, skip_channels=1, **net_kwargs)

    def context(n):
        gen = torch.Generator().manual_seed(5)
        glob = None if global_dim is None else torch.randn(n, global_dim, generator=gen)
        local = None if local_shape is None else torch.randn(n, *local_shape, generator=gen)
        return net.join_context(glob, local)

    return context


def _split(net, context):
    return WaveNet(net, *net.split_context(context))


LOCAL = {"length": 5, "dilations": [1, 2, 4], "local_channels": 2, "local_length": 2}
BOTH = {**LOCAL, "global_dim": 3, "upsample": "learned"}

CASES = [
    Case(
        "wavenet",
        _seeded(length=5, dilations=[1, 2, 4]),
        WaveNet,
        states=_states(5),
        bad_value=lambda: torch.tensor([0.0, 0.5, -0.5, 0.0, 1.5]),
    ),
    Case(
        "wavenet_global",
        _seeded(length=4, dilations=[1, 2], global_dim=3),
        WaveNet,
        states=_states(4),
        bad_value=lambda: torch.tensor([0.0, -1.25, 0.0, 0.0]),
        context=_randn(3),
    ),
    Case(
        "wavenet_local",
        _seeded(**LOCAL),
        _split,
        states=_states(5),
        bad_value=lambda: torch.tensor([0.0, 0.0, float("nan"), 0.0, 0.0]),
        context=_joined(LOCAL, local_shape=(2, 2)),
    ),
    Case(
        "wavenet_global_local_learned",
        _seeded(**BOTH),
        _split,
        states=_states(5),
        bad_value=lambda: torch.tensor([2.0, 0.0, 0.0, 0.0, 0.0]),
        context=_joined(BOTH, global_dim=3, local_shape=(2, 2)),
    ),
]
