"""PixelCNN as a distribution at a ``pyro.sample`` site."""

from __future__ import annotations

import torch

from pplgen.distributions.autoregressive import AutoregressiveDistribution
from pplgen.errors import ModelError
from pplgen.nn.pixelcnn import PixelCNNNet

__all__ = ["PixelCNN"]


class PixelCNN(AutoregressiveDistribution):
    r"""A distribution over single-channel images, one pixel at a time in raster order.

    .. math::
        p(x \mid c) = \prod_{i=1}^{H} \prod_{j=1}^{W} p(x_{ij} \mid x_{<ij}, c),

    each conditional a Bernoulli (binary pixels) or a categorical over K levels, with every logit
    computed in one pass of a :class:`pplgen.nn.pixelcnn.PixelCNNNet` (gated or original). Values are
    ``(..., H, W)``: floats 0/1 for binary pixels, int64 levels otherwise. ``sample`` uses the network's
    cached generation, which computes each layer at the new pixel only; ``sample(naive=True)`` re-runs
    the whole network per pixel and gives the same images from the same seed.

    >>> import torch
    >>> from pplgen.nn.pixelcnn import PixelCNNNet
    >>> net = PixelCNNNet((4, 5), channels=8, layers=3)
    >>> d = PixelCNN(net)
    >>> x = d.sample((2,))
    >>> x.shape, d.log_prob(x).shape
    (torch.Size([2, 4, 5]), torch.Size([2]))
    >>> labels = torch.eye(10)[torch.tensor([3, 7])]  # class-conditional: one image per one-hot label
    >>> net = PixelCNNNet((4, 5), num_levels=4, channels=8, layers=3, context_dim=10)
    >>> conditional = PixelCNN(net, labels)
    >>> conditional.sample().shape, conditional.batch_shape
    (torch.Size([2, 4, 5]), torch.Size([2]))

    References:
        van den Oord, Kalchbrenner & Kavukcuoglu (2016), "Pixel recurrent neural networks".
        van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu (2016), "Conditional image
        generation with PixelCNN decoders".

    Args:
        net: the :class:`pplgen.nn.pixelcnn.PixelCNNNet` holding the parameters.
        context: ``(*batch_shape, context_dim)`` when the network was built with ``context_dim``.
    """

    label = "PixelCNN"

    def __init__(self, net: PixelCNNNet, context: torch.Tensor | None = None, validate_args=None):
        if not isinstance(net, PixelCNNNet):
            raise ModelError(f"PixelCNN expects a pplgen.nn.pixelcnn.PixelCNNNet, got {type(net).__name__}")
        super().__init__(net, context, validate_args)
