"""Network building blocks."""

from pplgen.nn.attention import Block, CausalSelfAttention, KVCache, TransformerConfig
from pplgen.nn.autoregressive import AutoregressiveNet, choose, conditional_log_prob, warp_logits
from pplgen.nn.conv import ConvDecoder, ConvEncoder
from pplgen.nn.draw import DRAWNet, GaussianAttention, filterbank
from pplgen.nn.flows import (
    ActNorm,
    AffineCoupling,
    BatchNorm,
    Bijection,
    FlowNet,
    Logit,
    MAFNet,
    MaskedAutoregressive,
    Permutation,
    RealNVPNet,
    checkerboard_mask,
    half_mask,
)
from pplgen.nn.made import MADENet, MaskedLinear
from pplgen.nn.mlp import MLP
from pplgen.nn.nade import NADENet
from pplgen.nn.pixelcnn import MaskedConv2d, PixelCNNNet
from pplgen.nn.sequence import LSTMNet, TokenNet, TransformerNet
from pplgen.nn.vq import Quantized, VectorQuantizer, code_perplexity
from pplgen.nn.wavenet import WaveNetNet

__all__ = [
    "ActNorm",
    "AffineCoupling",
    "BatchNorm",
    "Bijection",
    "FlowNet",
    "Logit",
    "MAFNet",
    "MaskedAutoregressive",
    "Permutation",
    "RealNVPNet",
    "checkerboard_mask",
    "half_mask",
    "MLP",
    "Block",
    "CausalSelfAttention",
    "ConvDecoder",
    "ConvEncoder",
    "DRAWNet",
    "GaussianAttention",
    "filterbank",
    "KVCache",
    "LSTMNet",
    "TokenNet",
    "TransformerConfig",
    "TransformerNet",
    "WaveNetNet",
    "Quantized",
    "VectorQuantizer",
    "code_perplexity",
    "AutoregressiveNet",
    "MADENet",
    "MaskedConv2d",
    "MaskedLinear",
    "NADENet",
    "PixelCNNNet",
    "choose",
    "conditional_log_prob",
    "warp_logits",
]
