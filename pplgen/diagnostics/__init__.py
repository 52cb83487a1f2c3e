"""Inference diagnostics: ArviZ conversion, Pareto k̂ and PSIS-LOO, posterior collapse, VI against NUTS."""

from pplgen.diagnostics.inference_data import to_inference_data
from pplgen.diagnostics.psis import LOO, PSIS, describe_khat, good_threshold, psis, psis_loo
from pplgen.diagnostics.vi import Diagnosis, diagnose

__all__ = [
    "LOO",
    "PSIS",
    "Diagnosis",
    "diagnose",
    "describe_khat",
    "good_threshold",
    "psis",
    "psis_loo",
    "to_inference_data",
]
