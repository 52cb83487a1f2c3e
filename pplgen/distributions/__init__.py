"""Distributions usable at any ``pyro.sample`` site."""

from pplgen.distributions.fvsbn import FVSBN
from pplgen.distributions.implicit import Implicit

__all__ = ["FVSBN", "Implicit"]
