"""NADE as a distribution at a ``pyro.sample`` site."""

from __future__ import annotations

import torch

from pplgen.distributions.autoregressive import AutoregressiveDistribution
from pplgen.errors import ModelError
from pplgen.nn.nade import NADENet

__all__ = ["NADE"]


class NADE(AutoregressiveDistribution):
    r"""The neural autoregressive distribution estimator over binary vectors.

    :math:`p(x \mid c) = \prod_i \mathrm{Bernoulli}(x_i \mid \sigma(b_i + V_i \, \sigma(c + W_{:,<i}
    x_{<i})))`, computed by a :class:`pplgen.nn.NADENet`. ``log_prob`` costs one pass; cached ``sample``
    keeps the running hidden pre-activation.

    >>> import pyro, torch
    >>> from pplgen.nn import NADENet
    >>> net = NADENet(dim=5, hidden=8)
    >>> d = NADE(net)
    >>> x = d.sample((3,))
    >>> x.shape, d.log_prob(x).shape
    (torch.Size([3, 5]), torch.Size([3]))

    References:
        Larochelle & Murray (2011), "The neural autoregressive distribution estimator".

    Args:
        net: the :class:`pplgen.nn.NADENet` holding the parameters.
        context: ``(*batch_shape, context_dim)`` when the network was built with ``context_dim``.
    """

    label = "NADE"

    def __init__(self, net: NADENet, context: torch.Tensor | None = None, validate_args=None):
        if not isinstance(net, NADENet):
            raise ModelError(f"NADE expects a pplgen.nn.NADENet, got {type(net).__name__}")
        super().__init__(net, context, validate_args)
