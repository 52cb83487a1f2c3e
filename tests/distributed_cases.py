"""Programs trained data-parallel in ``tests/test_distributed.py``, one per trainer, and the worker that
``torchrun`` starts: ``python -m torch.distributed.run --nproc-per-node 2 tests/distributed_cases.py OUT``.

Each program's objective has no sampling noise (an exact likelihood; point-mass guides; a generator with
no latent), so two ranks that average their gradients must reach the parameters of one process that sees
the whole global batch, up to floating-point rounding.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from torch import nn

import pplgen

N, D = 48, 6
FIT = dict(epochs=2, batch_size=16, lr=0.05, seed=0, valid_fraction=0.25, progress=False, device="cpu")


def _data() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.bernoulli(torch.full((N, D), 0.3), generator=g)


def exact() -> tuple[Callable, tuple, dict, list[nn.Module]]:
    """A fully visible sigmoid belief net: x_i | x_<i ~ Bernoulli(sigmoid(W_i x_<i + b_i))."""
    torch.manual_seed(0)
    net = nn.Linear(D, D)
    mask = torch.ones(D, D).tril(-1)

    def model(x):
        pyro.module("net", net)
        logits = nn.functional.linear(x, net.weight * mask, net.bias)
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)

    return model, (_data(),), {}, [net]


def latent() -> tuple[Callable, tuple, dict, list[nn.Module]]:
    """A global weight and a code per point, inferred by point-mass guides (MAP by SVI)."""
    torch.manual_seed(0)
    decoder, encoder = nn.Linear(2, D), nn.Linear(D, 2)

    def model(x):
        pyro.module("decoder", decoder)
        w = pyro.sample("w", dist.Normal(torch.zeros(D), 1.0).to_event(1))  # global
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=decoder(z) + w).to_event(1), obs=x)

    def guide(x):
        pyro.module("encoder", encoder)
        w_loc = pyro.param("w_loc", torch.zeros(D))
        pyro.sample("w", dist.Delta(w_loc, event_dim=1))
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Delta(encoder(x), event_dim=1))

    return model, (_data(),), {"guide": guide}, [decoder, encoder]


def implicit() -> tuple[Callable, tuple, dict, list[nn.Module]]:
    """A generator of x from a given context c, with no latent, against a discriminator."""
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, D))
    critic = nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, 1))

    def model(x, c):
        pyro.module("generator", generator)
        with pyro.plate("data", len(x)):
            pyro.sample("x", pplgen.Implicit(torch.sigmoid(generator(c)), event_dim=1), obs=x)

    context = torch.randn(N, 2, generator=torch.Generator().manual_seed(2))
    return model, (_data(), context), {"discriminator": critic}, [generator, critic]


def skipped() -> tuple[Callable, tuple, dict, list[nn.Module]]:
    """The exact model with a factor that is NaN on batches holding a flagged point: one rank's share
    goes non-finite, and every rank must skip that step, as one process skips it."""
    model, (x,), _, networks = exact()
    flag = torch.zeros(N)
    flag[[30, 45]] = 1.0  # two training points, past the first batch (inspected); the first 8 validate

    def flagged(x, flag):
        model(x)
        pyro.factor("fault", torch.where(flag.bool().any(), torch.nan, 0.0))

    valid = (x[:8], flag[:8])
    return flagged, (x[8:], flag[8:]), {"valid": valid}, networks


CASES = {"exact": exact, "latent": latent, "implicit": implicit, "skipped": skipped}


def train(name: str) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Fit one case; its parameters (by network and pyro.param name) and its history."""
    pyro.clear_param_store()
    model, data, options, networks = CASES[name]()
    result = pplgen.fit(model, data, **options, **FIT)
    params = {f"{i}.{k}": v.clone() for i, net in enumerate(networks) for k, v in net.state_dict().items()}
    params.update({k: v.detach().clone() for k, v in pyro.get_param_store().items()})
    return params, result.history


if __name__ == "__main__":  # one rank of a torchrun launch: train every case, save what this rank holds
    import torch.distributed as dist_

    out = Path(sys.argv[1])
    found = {name: train(name) for name in CASES}
    torch.save(found, out / f"rank{dist_.get_rank()}.pt")
    dist_.destroy_process_group()
