"""Lossless compression with generative models: rANS driven by an exact model's conditionals, and
bits-back coding (BB-ANS) with a latent model."""

from pplgen.codec.ans import Message
from pplgen.codec.bitsback import BitsBack, DiscretisedNormal
from pplgen.codec.stream import compress, decompress, describe

__all__ = ["BitsBack", "DiscretisedNormal", "Message", "compress", "decompress", "describe"]
