"""Distributions usable at any ``pyro.sample`` site."""

from pplgen.distributions.autoregressive import AutoregressiveDistribution
from pplgen.distributions.flow import Dequantized, FlowDistribution
from pplgen.distributions.fvsbn import FVSBN
from pplgen.distributions.implicit import Implicit
from pplgen.distributions.logistic import DiscretizedLogistic
from pplgen.distributions.made import MADE
from pplgen.distributions.nade import NADE
from pplgen.distributions.pixelcnn import PixelCNN
from pplgen.distributions.sequence import SequenceLM
from pplgen.distributions.wavenet import WaveNet, mu_law_decode, mu_law_encode

__all__ = [
    "FVSBN",
    "MADE",
    "NADE",
    "AutoregressiveDistribution",
    "Dequantized",
    "FlowDistribution",
    "DiscretizedLogistic",
    "Implicit",
    "PixelCNN",
    "SequenceLM",
    "WaveNet",
    "mu_law_decode",
    "mu_law_encode",
]
