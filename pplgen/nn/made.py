"""The masked autoencoder for distribution estimation: an MLP made autoregressive by masks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pplgen.nn.autoregressive import AutoregressiveNet

__all__ = ["MADENet", "MaskedLinear"]


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a 0/1 mask given at each call.

    >>> layer = MaskedLinear(3, 2)
    >>> mask = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    >>> layer(torch.ones(4, 3), mask).shape
    torch.Size([4, 2])
    """

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * mask, self.bias)


class MADENet(AutoregressiveNet):
    r"""MADE: an MLP whose connections are masked so that output :math:`i` sees only inputs before
    :math:`i` in an ordering, with several orderings ("masks") trained at once.

    Every unit gets a degree: inputs the rank of their coordinate in the ordering (:math:`1..D`), hidden
    units a degree drawn uniformly from :math:`[\min, D - 1]` of the layer below. A connection exists
    when the degree does not decrease (hidden layers) or strictly increases (into the outputs), which
    makes the network autoregressive in the ordering (Germain et al. 2015, Section 4).

    Mask :math:`m = 0` uses the natural order; masks :math:`1 .. M - 1` draw a random ordering and random
    hidden degrees from a generator seeded with ``seed + m``. Only the orderings and degrees are stored
    (``(M, D)`` and ``(M, H)`` integers); the masks are rebuilt at each call. Use the network through
    :class:`pplgen.distributions.MADE`, which trains one random mask per step (order-agnostic training)
    and averages the ``M`` orderings' densities at test time.

    References:
        Germain, Gregor, Murray & Larochelle (2015), "MADE: masked autoencoder for distribution estimation".
        Uria, Murray & Larochelle (2014), "A deep and tractable density estimator" (order-agnostic training).

    Args:
        dim: the number of coordinates D.
        hidden: hidden layer widths.
        num_levels: 2 for binary data (one logit per coordinate), else K (K logits per coordinate; the
            inputs are the levels scaled into [0, 1]).
        num_masks: the number of orderings M.
        context_dim: the size of a conditioning vector, added (through an unmasked linear map) to the
            first hidden layer; ``None`` for an unconditional network.
        seed: the seed of the orderings and degrees.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = MADENet(dim=4, hidden=[16], num_masks=2)
        >>> order = net.orders[1]  # mask 1's ordering, drawn from seed + 1
        >>> jac = torch.autograd.functional.jacobian(lambda v: net.ordering(1)(v)[0], torch.ones(1, 4))
        >>> (jac[:, 0][order][:, order] != 0).int().tolist()  # in that order, each logit reads the earlier
        [[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]]
        >>> MADENet(dim=4, hidden=[8], num_levels=3)(torch.zeros(2, 4, dtype=torch.long)).shape  # K logits
        torch.Size([2, 4, 3])
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (500,),
        num_levels: int = 2,
        num_masks: int = 1,
        context_dim: int | None = None,
        seed: int = 0,
    ):
        super().__init__()
        if num_masks < 1 or num_levels < 2 or dim < 1 or not hidden:
            raise ValueError(
                f"MADENet expects dim >= 1, at least one hidden layer, num_levels >= 2 and num_masks >= 1, "
                f"got dim={dim}, hidden={list(hidden)}, num_levels={num_levels}, num_masks={num_masks}"
            )
        self.event_shape = (dim,)
        self.num_levels = num_levels
        self.num_masks = num_masks
        self.context_shape = None if context_dim is None else (context_dim,)
        outputs = dim if num_levels == 2 else dim * num_levels
        sizes = [dim, *hidden]
        self.layers = nn.ModuleList(MaskedLinear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.output = MaskedLinear(sizes[-1], outputs)
        self.context_map = None if context_dim is None else nn.Linear(context_dim, sizes[1])
        orders, degrees = zip(*(self._draw_mask(m, dim, hidden, seed) for m in range(num_masks)), strict=True)
        self.register_buffer("orders", torch.stack(orders))  # (M, D): coordinates in generation order
        for layer, stacked in enumerate(zip(*degrees, strict=True)):
            self.register_buffer(f"degrees_{layer}", torch.stack(stacked))  # (M, H_layer)

    @staticmethod
    def _draw_mask(m: int, dim: int, hidden: Sequence[int], seed: int):
        gen = torch.Generator().manual_seed(seed + m)
        order = torch.arange(dim) if m == 0 else torch.randperm(dim, generator=gen)
        rank = torch.empty(dim, dtype=torch.long)
        rank[order] = torch.arange(1, dim + 1)
        below, degrees = rank, []
        for width in hidden:
            low = min(int(below.min()), dim - 1)
            below = torch.randint(low, max(dim - 1, low) + 1, (width,), generator=gen)
            degrees.append(below)
        return order, degrees

    def _degrees(self, mask: int) -> list[torch.Tensor]:
        rank = torch.empty_like(self.orders[mask])
        rank[self.orders[mask]] = torch.arange(1, self.orders.shape[1] + 1, device=rank.device)
        return [rank] + [getattr(self, f"degrees_{i}")[mask] for i in range(len(self.layers))]

    def masks(self, mask: int) -> list[torch.Tensor]:
        """The 0/1 weight masks of mask ``mask``: one per hidden layer, then the output layer's."""
        degrees = self._degrees(mask)
        dtype = self.output.weight.dtype
        pairs = zip(degrees[:-1], degrees[1:], strict=True)
        hidden = [(out[:, None] >= inp[None, :]).to(dtype) for inp, out in pairs]
        output = (degrees[0][:, None] > degrees[-1][None, :]).to(dtype)  # (D, H_last)
        if self.num_levels > 2:
            output = output.repeat_interleave(self.num_levels, dim=0)  # (D K, H_last)
        return hidden + [output]

    def forward_mask(self, x: torch.Tensor, context: torch.Tensor | None, mask: int) -> torch.Tensor:
        """The logits under mask ``mask``: ``(B, D)`` when binary, else ``(B, D, K)``."""
        h = x.to(self.output.weight.dtype)
        if self.num_levels > 2:
            h = h / (self.num_levels - 1)
        masks = self.masks(mask)
        for i, (layer, m) in enumerate(zip(self.layers, masks, strict=False)):
            h = layer(h, m)
            if i == 0 and self.context_map is not None:
                h = h + self.context_map(context)
            h = torch.relu(h)
        out = self.output(h, masks[-1])
        return out if self.num_levels == 2 else out.reshape(x.shape[0], -1, self.num_levels)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The logits under the first mask (the natural order); see :meth:`ordering` for the others."""
        return self.forward_mask(x, context, 0)

    def ordering(self, mask: int) -> AutoregressiveNet:
        """The network under mask ``mask`` alone: an :class:`AutoregressiveNet` sharing the parameters."""
        if not 0 <= mask < self.num_masks:
            raise ValueError(f"MADENet has masks 0 .. {self.num_masks - 1}, got mask {mask}")
        return _Ordering(self, mask)


class _Ordering(AutoregressiveNet):
    """One ordering of a :class:`MADENet`; it holds no parameters of its own."""

    def __init__(self, made: MADENet, mask: int):
        super().__init__()
        object.__setattr__(self, "made", made)  # not a submodule: the parameters stay MADENet's
        self.mask = mask
        self.event_shape = made.event_shape
        self.num_levels = made.num_levels
        self.context_shape = made.context_shape

    def _device(self) -> torch.device:
        return self.made.orders.device

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.made.forward_mask(x, context, self.mask)

    def order(self, batch_size: int) -> torch.Tensor:
        return self.made.orders[self.mask].expand(batch_size, -1)

    def parameters(self, recurse: bool = True):
        return self.made.parameters(recurse)

    def state_dict(self, *args, **kwargs):
        return self.made.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.made.load_state_dict(state_dict, strict=strict, assign=assign)
