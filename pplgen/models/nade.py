"""NADE and MADE as model programs over flat binary or K-level vectors (exact family)."""

from __future__ import annotations

import pyro
import torch
from pyro.nn import PyroModule, pyro_method

from pplgen.distributions import MADE, NADE
from pplgen.errors import DataError
from pplgen.nn import MADENet, NADENet

__all__ = ["MADEModel", "NADEModel"]


def _flat_dim(dataset) -> int:
    if dataset.kind not in ("binary", "discrete"):
        raise DataError(
            f"NADE and MADE model binary or discrete data, but {dataset.name!r} is {dataset.kind!r}"
        )
    return int(dataset.x[0].numel())


class NADEModel(PyroModule):
    """Binary vectors modelled by :class:`pplgen.distributions.NADE` in the data's own order.

    References:
        Larochelle & Murray (2011), "The neural autoregressive distribution estimator".

    Args:
        dim: the number of binary coordinates D.
        hidden: the hidden layer's width (500 in the paper's MNIST experiments).

    Example:
        The likelihood is normalised: summed over all :math:`2^D` binary vectors it is one.

        >>> import itertools, pplgen, torch
        >>> nade = NADEModel(dim=3, hidden=4)
        >>> every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)))  # (8, 3)
        >>> round(pplgen.log_likelihood(nade.model, every, device="cpu").exp().sum().item(), 4)
        1.0
        >>> pplgen.sample(nade.model, 5, every, device="cpu").shape
        torch.Size([5, 3])
    """

    def __init__(self, dim: int, hidden: int = 500):
        super().__init__()
        self.config = {"dim": dim, "hidden": hidden}
        self.net = NADENet(dim, hidden)

    @classmethod
    def from_dataset(cls, dataset, **config) -> NADEModel:
        if dataset.kind != "binary":
            raise DataError(f"NADE models binary data, but {dataset.name!r} is {dataset.kind!r}")
        return cls(**{"dim": _flat_dim(dataset), **config})

    @pyro_method
    def model(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", NADE(self.net), obs=x.reshape(x.shape[0], -1))


class MADEModel(PyroModule):
    """Flat vectors modelled by :class:`pplgen.distributions.MADE`.

    In training mode each call uses one ordering drawn at random (order-agnostic training); in
    evaluation mode the density is the average over all ``num_masks`` orderings, as in the paper's
    ensembles.

    References:
        Germain, Gregor, Murray & Larochelle (2015), "MADE: masked autoencoder for distribution estimation".

    Args:
        dim: the number of coordinates D.
        hidden: hidden layer widths.
        num_levels: 2 for binary data, else the number of levels K.
        num_masks: the number of orderings M (1: the natural order only).

    Example:
        In evaluation mode the density averages two orderings and is still normalised over all
        :math:`K^D` level vectors:

        >>> import itertools, pplgen, torch
        >>> made = MADEModel(dim=2, hidden=[8], num_levels=3, num_masks=2).eval()
        >>> every = torch.tensor(list(itertools.product(range(3), repeat=2)))  # (9, 2) int64 levels
        >>> round(pplgen.log_likelihood(made.model, every, device="cpu").exp().sum().item(), 4)
        1.0
        >>> draws = pplgen.sample(made.model, 4, every, device="cpu")
        >>> draws.shape, bool(((draws >= 0) & (draws < 3)).all())
        (torch.Size([4, 2]), True)
    """

    def __init__(
        self, dim: int, hidden: list[int] | tuple[int, ...] = (500,), num_levels: int = 2, num_masks: int = 1
    ):
        super().__init__()
        hidden = [int(h) for h in hidden]
        self.config = {"dim": dim, "hidden": hidden, "num_levels": num_levels, "num_masks": num_masks}
        self.net = MADENet(dim, hidden, num_levels=num_levels, num_masks=num_masks)

    @classmethod
    def from_dataset(cls, dataset, **config) -> MADEModel:
        return cls(**{"dim": _flat_dim(dataset), "num_levels": dataset.num_levels or 2, **config})

    @pyro_method
    def model(self, x: torch.Tensor) -> None:
        mask = "random" if self.training and self.net.num_masks > 1 else None
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", MADE(self.net, mask=mask), obs=x.reshape(x.shape[0], -1))
