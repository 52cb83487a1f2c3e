"""Log-likelihood estimators, sampling, sample metrics, anomaly scores, latent codes (encode, decode) and
linear probes of them."""

from pplgen.evaluate.ais import AISSettings
from pplgen.evaluate.anomaly import AnomalyScores, anomaly_scores, auroc
from pplgen.evaluate.codes import decode, encode, reconstruct
from pplgen.evaluate.features import (
    FeatureClassifier,
    frechet_distance,
    image_metrics,
    precision_recall,
    train_feature_classifier,
)
from pplgen.evaluate.implicit_ais import (
    GaussianObservation,
    ScaleChoice,
    choose_scale,
    gaussian_observation,
    implicit_log_likelihood,
)
from pplgen.evaluate.likelihood import Estimate, bits_per_dim, estimate, log_likelihood
from pplgen.evaluate.modes import mode_metrics
from pplgen.evaluate.probe import linear_probe
from pplgen.evaluate.report import summary
from pplgen.evaluate.sampling import sample
from pplgen.evaluate.speech import SpokenDigitClassifier

__all__ = [
    "AISSettings",
    "AnomalyScores",
    "Estimate",
    "FeatureClassifier",
    "GaussianObservation",
    "ScaleChoice",
    "SpokenDigitClassifier",
    "anomaly_scores",
    "auroc",
    "choose_scale",
    "decode",
    "encode",
    "frechet_distance",
    "gaussian_observation",
    "image_metrics",
    "implicit_log_likelihood",
    "linear_probe",
    "precision_recall",
    "reconstruct",
    "train_feature_classifier",
    "bits_per_dim",
    "estimate",
    "log_likelihood",
    "mode_metrics",
    "sample",
    "summary",
]
