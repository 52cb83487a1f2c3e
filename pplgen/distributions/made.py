"""MADE as a distribution: one ordering, one random ordering per call, or the average over orderings."""

from __future__ import annotations

import math

import torch

from pplgen.distributions.autoregressive import AutoregressiveDistribution
from pplgen.errors import ModelError
from pplgen.nn.made import MADENet

__all__ = ["MADE"]


class MADE(AutoregressiveDistribution):
    r"""The masked autoencoder for distribution estimation over binary or K-level vectors.

    A :class:`pplgen.nn.MADENet` with :math:`M` masks defines one autoregressive distribution
    :math:`p_m` per ordering. ``mask`` chooses which distribution this is:

    - ``None`` (the default): the ensemble :math:`p(x) = \frac{1}{M} \sum_m p_m(x)`, an exact density
      whose ``log_prob`` costs :math:`M` passes; sampling picks an ordering per draw. This is how MADE is
      evaluated with several masks (Germain et al. 2015, Table 6: 32 masks).
    - ``"random"``: :math:`p_m` for one ordering drawn uniformly per call, the objective of
      order-agnostic training, :math:`\mathbb{E}_m[-\log p_m(x)] \ge -\log p(x)`. Use it while
      training (the zoo's ``made`` model does so in training mode).
    - an integer :math:`m`: that ordering alone.

    >>> from pplgen.nn import MADENet
    >>> net = MADENet(dim=4, hidden=[16], num_masks=3)
    >>> states = torch.tensor([[i >> k & 1 for k in range(4)] for i in range(16)]).float()
    >>> round(MADE(net).log_prob(states).exp().sum().item(), 4)
    1.0

    References:
        Germain, Gregor, Murray & Larochelle (2015), "MADE: masked autoencoder for distribution estimation".

    Args:
        net: the :class:`pplgen.nn.MADENet` holding the parameters.
        context: ``(*batch_shape, context_dim)`` when the network was built with ``context_dim``.
        mask: ``None``, ``"random"`` or an ordering's index.
    """

    label = "MADE"

    def __init__(
        self,
        net: MADENet,
        context: torch.Tensor | None = None,
        mask: int | str | None = None,
        validate_args=None,
    ):
        if not isinstance(net, MADENet):
            raise ModelError(f"MADE expects a pplgen.nn.MADENet, got {type(net).__name__}")
        if mask == "random":
            mask = int(torch.randint(net.num_masks, ()))
        elif mask is not None and not (isinstance(mask, int) and 0 <= mask < net.num_masks):
            raise ValueError(f"MADE: mask must be None, 'random' or 0 .. {net.num_masks - 1}, got {mask!r}")
        self.made = net
        self.mask = mask
        super().__init__(net if mask is None else net.ordering(mask), context, validate_args)

    def _orderings(self) -> list[AutoregressiveDistribution]:
        return [
            AutoregressiveDistribution(self.made.ordering(m), self.context)
            for m in range(self.made.num_masks)
        ]

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self.mask is not None or self.made.num_masks == 1:
            return super().log_prob(value)
        self.check_value(value)
        log_p = torch.stack([d.expand(self.batch_shape).log_prob(value) for d in self._orderings()])
        return torch.logsumexp(log_p, dim=0) - math.log(self.made.num_masks)

    def generate(self, u, context, naive, warp):
        if self.mask is not None or self.made.num_masks == 1:
            return super().generate(u, context, naive, warp)
        which = torch.randint(self.made.num_masks, (u.shape[0],), device=u.device)  # an ordering per draw
        levels = torch.zeros_like(u, dtype=torch.long)
        for m in which.unique().tolist():
            rows = which == m
            net = self.made.ordering(m)
            part = context[rows] if context is not None else None
            levels[rows] = (net.generate_naive if naive else net.generate)(u[rows], part, warp)
        return levels
