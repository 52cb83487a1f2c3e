"""The neural autoregressive distribution estimator's network (binary data, fixed order)."""

from __future__ import annotations

import math

import torch
from torch import nn

from pplgen.nn.autoregressive import AutoregressiveNet, Warp

__all__ = ["NADENet"]


class NADENet(AutoregressiveNet):
    r"""NADE: one hidden layer whose weights are shared across the conditionals.

    .. math::
        h_i = \sigma\big(c + W_{:,<i}\, x_{<i}\big), \qquad
        p(x_i = 1 \mid x_{<i}) = \sigma\big(b_i + V_{i,:}\, h_i\big)

    The pre-activations :math:`a_i = c + W_{:,<i} x_{<i}` are an exclusive running sum, so all :math:`D`
    conditionals cost :math:`O(DH)` in one pass, and cached generation keeps :math:`a` and adds one
    column per coordinate (:math:`O(DH)` in all, against :math:`O(D^2 H)` for re-running the network).

    References:
        Larochelle & Murray (2011), "The neural autoregressive distribution estimator".
        Uria, Côté, Gregor, Murray & Larochelle (2016), "Neural autoregressive distribution estimation".

    Args:
        dim: the number of binary coordinates D.
        hidden: the hidden layer's width H (500 in the paper's MNIST experiments).
        context_dim: the size of a conditioning vector, which shifts the hidden bias :math:`c` through
            a linear map; ``None`` for an unconditional network.

    Example:
        >>> from pplgen.distributions import NADE
        >>> _ = torch.manual_seed(0)
        >>> net = NADENet(dim=3, hidden=5)
        >>> states = torch.tensor([[i >> k & 1 for k in range(3)] for i in range(8)]).float()
        >>> round(NADE(net).log_prob(states).exp().sum().item(), 4)  # normalised over all 2^3 states
        1.0
        >>> u = torch.rand(4, 3)
        >>> torch.equal(net.generate(u), net.generate_naive(u))  # the running sum changes nothing
        True
    """

    num_levels = 2

    def __init__(self, dim: int, hidden: int = 500, context_dim: int | None = None):
        super().__init__()
        self.event_shape = (dim,)
        self.context_shape = None if context_dim is None else (context_dim,)
        bound = 1.0 / math.sqrt(dim)
        self.W = nn.Parameter(torch.empty(dim, hidden).uniform_(-bound, bound))  # column i feeds h_{>i}
        self.c = nn.Parameter(torch.zeros(hidden))
        self.V = nn.Parameter(torch.empty(dim, hidden).uniform_(-bound, bound))
        self.b = nn.Parameter(torch.zeros(dim))
        self.context_map = None if context_dim is None else nn.Linear(context_dim, hidden)

    def _hidden_bias(self, batch: int, context: torch.Tensor | None) -> torch.Tensor:
        if self.context_map is None:
            return self.c.expand(batch, -1)  # (B, H)
        return self.c + self.context_map(context)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = x.to(self.W.dtype)
        contributions = x.unsqueeze(-1) * self.W  # (B, D, H): x_j W_j
        before = contributions.cumsum(1) - contributions  # exclusive: sum over j < i
        h = torch.sigmoid(self._hidden_bias(x.shape[0], context).unsqueeze(1) + before)  # (B, D, H)
        return self.b + (h * self.V).sum(-1)  # (B, D)

    @torch.no_grad()
    def generate(self, u: torch.Tensor, context: torch.Tensor | None = None, warp: Warp | None = None):
        a = self._hidden_bias(u.shape[0], context).clone()  # (B, H): c + W x_<i, updated in place
        levels = torch.zeros_like(u, dtype=torch.long)  # (B, D)
        for i in range(u.shape[1]):
            logit = self.b[i] + torch.sigmoid(a) @ self.V[i]  # (B,)
            levels[:, i] = self.pick_at(logit, u[:, i], warp)
            a += levels[:, i, None].to(a.dtype) * self.W[i]
        return levels
