"""Distributions usable at any ``pyro.sample`` site."""

from pplgen.distributions.autoregressive import AutoregressiveDistribution
from pplgen.distributions.fvsbn import FVSBN
from pplgen.distributions.implicit import Implicit
from pplgen.distributions.made import MADE
from pplgen.distributions.nade import NADE
from pplgen.distributions.sequence import SequenceLM

__all__ = ["FVSBN", "MADE", "NADE", "AutoregressiveDistribution", "Implicit", "SequenceLM"]
