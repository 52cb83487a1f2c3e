"""The contract every autoregressive distribution meets, as data: one :class:`Case` per distribution.

Each ``tests/cases_*.py`` module defines ``CASES``, a list of :class:`Case`; ``test_autoregressive.py``
runs every contract test over all of them (as zuko runs one suite over every flow).
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from pplgen.distributions import AutoregressiveDistribution
from pplgen.nn import AutoregressiveNet


@dataclass
class Case:
    """A small, seeded instance of one autoregressive distribution.

    Attributes:
        name: the test id.
        net: builds the network (seed it inside, so every call gives the same parameters).
        dist: wraps a network and a context (or ``None``) into the distribution.
        context: a context for ``n`` data points, ``(n, *context_shape)``; ``None`` for unconditional.
        states: every value of one event, ``(S, *event_shape)``, in the distribution's value form (at most
            a few thousand), for the normalisation and sampling tests.
        full_dependence: the logits at each coordinate depend on *every* earlier coordinate (checked by
            gradients), e.g. no blind spot and a receptive field that covers the event.
        bad_value: a value outside the support, of one event's shape.
    """

    name: str
    net: Callable[[], AutoregressiveNet]
    dist: Callable[[AutoregressiveNet, torch.Tensor | None], AutoregressiveDistribution]
    states: Callable[[], torch.Tensor]
    bad_value: Callable[[], torch.Tensor]
    context: Callable[[int], torch.Tensor] | None = None
    full_dependence: bool = True

    def __repr__(self) -> str:
        return self.name


def grid(levels, shape) -> torch.Tensor:
    """Every tensor of ``shape`` with entries from ``levels`` (a list or 1-D tensor): ``(S, *shape)``."""
    levels = torch.as_tensor(levels)
    size = int(torch.Size(shape).numel())
    index = torch.tensor(list(itertools.product(range(len(levels)), repeat=size)))
    return levels[index].reshape(-1, *shape)


def all_cases() -> list[Case]:
    """The cases of every ``tests/cases_*.py`` module, in file order."""
    cases = []
    for path in sorted(Path(__file__).parent.glob("cases_*.py")):
        cases.extend(importlib.import_module(f"tests.{path.stem}").CASES)
    return cases
