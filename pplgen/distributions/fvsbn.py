"""The fully visible sigmoid belief network: the simplest exact autoregressive model of binary data."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution, constraints

__all__ = ["FVSBN"]


class FVSBN(TorchDistribution):
    r"""Fully visible sigmoid belief network over binary vectors of length :math:`D`.

    .. math::
        p(x) = \prod_{i=1}^{D} \mathrm{Bernoulli}\big(x_i \mid
               \sigma(b_i + \textstyle\sum_{j<i} W_{ij} x_j)\big)

    ``log_prob`` is exact and costs one matrix product (the strictly lower triangle of ``weight``
    is used, so :math:`x_i` sees only :math:`x_{<i}`); ``sample`` is sequential, one dimension at a
    time, which is why autoregressive generation is slow without caching.

    References:
        Frey (1998), "Graphical models for machine learning and digital communication".
        Neal (1992), "Connectionist learning of belief networks".

    Args:
        weight: ``(D, D)`` connection weights; only ``weight.tril(-1)`` is used.
        bias: ``(..., D)`` biases; leading dimensions form the batch shape (e.g. a context).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> d = FVSBN(torch.randn(3, 3), torch.randn(3))
        >>> states = torch.tensor([[i >> k & 1 for k in range(3)] for i in range(8)]).float()
        >>> round(d.log_prob(states).exp().sum().item(), 4)  # normalised over all 2^3 states
        1.0
        >>> FVSBN(torch.zeros(3, 3), torch.zeros(5, 3)).sample((2,)).shape  # a batch of 5
        torch.Size([2, 5, 3])
    """

    arg_constraints = {"weight": constraints.real, "bias": constraints.real}
    support = constraints.independent(constraints.boolean, 1)
    autoregressive = True

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, validate_args=None):
        if weight.dim() != 2 or weight.shape[0] != weight.shape[1]:
            raise ValueError(f"FVSBN expects a square (D, D) weight, got shape {tuple(weight.shape)}")
        if bias.shape[-1:] != weight.shape[:1]:
            raise ValueError(f"FVSBN expects bias of shape (..., {weight.shape[0]}), got {tuple(bias.shape)}")
        self.weight = weight
        self.bias = bias
        super().__init__(bias.shape[:-1], bias.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return FVSBN(self.weight, self.bias.expand(batch_shape + self.event_shape))

    def logits(self, value: torch.Tensor) -> torch.Tensor:
        """The conditional logits :math:`b_i + \\sum_{j<i} W_{ij} x_j` for every dimension at once."""
        return self.bias + value @ self.weight.tril(-1).T  # (..., D)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        value = value.to(self.weight.dtype)
        logits = self.logits(value)
        return -F.binary_cross_entropy_with_logits(logits, value.expand_as(logits), reduction="none").sum(-1)

    def sample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)
        bias = self.bias.expand(shape)
        x = torch.zeros(shape, dtype=self.weight.dtype, device=self.weight.device)
        lower = self.weight.tril(-1)
        with torch.no_grad():
            for i in range(shape[-1]):
                logit = bias[..., i] + x @ lower[i]
                x[..., i] = torch.bernoulli(torch.sigmoid(logit))
        return x
