"""Amortised guides, including one built automatically from a model program's graph."""

from pplgen.guides.amortised import AmortisedGuide
from pplgen.guides.posteriors import POSTERIORS
from pplgen.guides.structure import LatentSpec, PlateSpec, read_latents

__all__ = ["POSTERIORS", "AmortisedGuide", "LatentSpec", "PlateSpec", "read_latents"]
