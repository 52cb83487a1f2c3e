"""Multilayer perceptrons: the default encoder, decoder and discriminator body."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = ["MLP"]


class MLP(nn.Sequential):
    """A stack of linear layers with an activation between them (none after the last).

    Args:
        sizes: layer widths, input first: ``MLP([64, 256, 10])`` maps 64 features to 10.
        activation: the module class put between layers.

    >>> import torch
    >>> MLP([4, 8, 2])(torch.zeros(3, 4)).shape
    torch.Size([3, 2])
    """

    def __init__(self, sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU):
        if len(sizes) < 2:
            raise ValueError(f"MLP expects at least an input and an output size, got {list(sizes)}")
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < len(sizes) - 2:
                layers.append(activation())
        super().__init__(*layers)
