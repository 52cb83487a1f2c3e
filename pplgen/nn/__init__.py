"""Network building blocks."""

from pplgen.nn.autoregressive import AutoregressiveNet, choose, conditional_log_prob, warp_logits
from pplgen.nn.made import MADENet, MaskedLinear
from pplgen.nn.mlp import MLP
from pplgen.nn.nade import NADENet

__all__ = [
    "MLP",
    "AutoregressiveNet",
    "MADENet",
    "MaskedLinear",
    "NADENet",
    "choose",
    "conditional_log_prob",
    "warp_logits",
]
