"""Model-based control with world models: forecast baselines, forecast scores and model-predictive
control. The world model itself is a zoo program (:class:`pplgen.models.WorldModel`); trajectories come
from :mod:`pplgen.data.control` (Gymnasium) and :class:`pplgen.data.LinearGaussianSystem`."""

from pplgen.control.baselines import CopyLast, LinearDynamics
from pplgen.control.metrics import forecast_scores
from pplgen.control.mpc import KnownDynamics, MPCPolicy, MPCSettings

__all__ = ["CopyLast", "KnownDynamics", "LinearDynamics", "MPCPolicy", "MPCSettings", "forecast_scores"]
