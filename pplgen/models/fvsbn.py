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

    Example:
        An untrained FVSBN (zero weights and biases) gives every coordinate probability 1/2, so each
        vector of D bits has probability :math:`2^{-D}`:

        >>> import math, pplgen, torch
        >>> fvsbn = FVSBNModel(dim=5)
        >>> graph = pplgen.inspect(fvsbn.model, torch.zeros(3, 5))
        >>> graph.graph["family"]
        'exact'
        >>> x = torch.tensor([[0.0, 1.0, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
        >>> log_p = pplgen.log_likelihood(fvsbn.model, x, device="cpu")
        >>> torch.allclose(log_p, torch.full((2,), -5 * math.log(2)))
        True
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
