"""pplgen: deep generative models as Pyro programs."""

import pyro

from pplgen import errors
from pplgen.distributions import Implicit

# pplgen's models keep their parameters in their modules, never in Pyro's global parameter store, so
# two models never share state by name. This must hold before any PyroModule is built.
pyro.settings.set(module_local_params=True)

__version__ = "0.1.0"

__all__ = ["Implicit", "errors"]
