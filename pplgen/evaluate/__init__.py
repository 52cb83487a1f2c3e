"""Log-likelihood estimators, sampling and sample metrics."""

from pplgen.evaluate.likelihood import bits_per_dim, log_likelihood
from pplgen.evaluate.modes import mode_metrics
from pplgen.evaluate.report import summary
from pplgen.evaluate.sampling import sample

__all__ = ["bits_per_dim", "log_likelihood", "mode_metrics", "sample", "summary"]
