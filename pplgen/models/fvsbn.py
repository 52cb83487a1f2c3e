"""A fully visible sigmoid belief net as a model program (exact family)."""

from __future__ import annotations

import pyro
import torch
from pyro.nn import PyroModule, PyroParam, pyro_method

from pplgen.distributions import FVSBN

__all__ = ["FVSBNModel"]


class FVSBNModel(PyroModule):
    """Binary vectors modelled by :class:`pplgen.distributions.FVSBN`; no latents, so family ``exact``.

    References:
        Frey (1998), "Graphical models for machine learning and digital communication".

    Args:
        dim: the number of binary dimensions D.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.config = {"dim": dim}
        self.weight = PyroParam(torch.zeros(dim, dim))
        self.bias = PyroParam(torch.zeros(dim))

    @classmethod
    def from_dataset(cls, dataset, **config) -> FVSBNModel:
        return cls(**{"dim": int(dataset.x[0].numel()), **config})

    @pyro_method
    def model(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", FVSBN(self.weight, self.bias), obs=x)
