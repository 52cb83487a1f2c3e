"""pplgen: deep generative models as Pyro programs.

Write a generative model as an ordinary Pyro program; pplgen reads its structure as a graph
(:func:`inspect`), decides its family (exact, latent or implicit) and trains it the way that family
allows (:func:`fit`).
"""

import pyro

# pplgen's models keep their parameters in their modules, never in Pyro's global parameter store, so
# two models never share state by name. This must hold before any PyroModule is built.
pyro.settings.set(module_local_params=True)

from pplgen import codec, control, data, diagnostics, errors, guides, models, plot  # noqa: E402
from pplgen.diagnostics import diagnose, to_inference_data  # noqa: E402
from pplgen.distributions import Implicit  # noqa: E402
from pplgen.evaluate import (  # noqa: E402
    anomaly_scores,
    bits_per_dim,
    decode,
    encode,
    log_likelihood,
    reconstruct,
    sample,
)
from pplgen.graph import classify, inspect  # noqa: E402
from pplgen.guides import AmortisedGuide  # noqa: E402
from pplgen.infer import ELBO, IWAE, AdversarialSettings, FitResult, fit  # noqa: E402
from pplgen.render import draw, to_dot  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ELBO",
    "IWAE",
    "AdversarialSettings",
    "AmortisedGuide",
    "FitResult",
    "Implicit",
    "anomaly_scores",
    "bits_per_dim",
    "classify",
    "codec",
    "control",
    "data",
    "decode",
    "diagnose",
    "diagnostics",
    "draw",
    "encode",
    "errors",
    "fit",
    "guides",
    "inspect",
    "log_likelihood",
    "models",
    "plot",
    "reconstruct",
    "sample",
    "to_inference_data",
    "to_dot",
]
