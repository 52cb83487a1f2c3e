"""Log-likelihood estimators, sampling and sample metrics."""

from pplgen.evaluate.ais import AISSettings
from pplgen.evaluate.likelihood import Estimate, bits_per_dim, estimate, log_likelihood
from pplgen.evaluate.modes import mode_metrics
from pplgen.evaluate.report import summary
from pplgen.evaluate.sampling import sample

__all__ = [
    "AISSettings",
    "Estimate",
    "bits_per_dim",
    "estimate",
    "log_likelihood",
    "mode_metrics",
    "sample",
    "summary",
]
