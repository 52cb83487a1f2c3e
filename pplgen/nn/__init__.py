"""Network building blocks."""

from pplgen.nn.mlp import MLP

__all__ = ["MLP"]
