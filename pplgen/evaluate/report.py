"""One summary of a fitted model on a data split: what ``pplgen evaluate`` and the demo print."""

from __future__ import annotations

import math

import torch

from pplgen.evaluate.likelihood import log_likelihood
from pplgen.evaluate.modes import mode_metrics
from pplgen.evaluate.sampling import sample
from pplgen.infer.result import FitResult

__all__ = ["summary"]


def summary(
    result: FitResult, dataset, *, num_samples: int = 100, num_generated: int = 2500, labels: bool = False
) -> dict:
    """Test figures for ``result`` on ``dataset`` (a :class:`pplgen.data.Dataset`).

    Likelihood families get ``nats`` (mean negative log-likelihood per data point), ``bits_per_dim``
    and ``estimator`` (``"exact"`` or ``"importance-sampled, K=..."``: a stochastic lower bound on
    log p(x), so an upper bound on nats). Implicit models on the 2-D mixtures get PacGAN's
    ``modes``, ``hq_percent`` and ``reverse_kl`` from ``num_generated`` samples. ``labels``: the program
    takes ``(x, y)``.
    """
    row: dict = {"family": result.family, "data": dataset.name, "split": dataset.split, "n": len(dataset)}
    if result.family in ("exact", "latent"):
        ll = log_likelihood(result, dataset.tensors(labels), num_samples=num_samples)
        nats = float(-ll.mean())
        row["nats"] = nats
        row["bits_per_dim"] = nats / (dataset.x[0].numel() * math.log(2))
        row["estimator"] = "exact" if result.family == "exact" else f"importance-sampled, K={num_samples}"
    elif "modes" in dataset.meta:
        generated = sample(result, num_generated)
        row.update(mode_metrics(generated, dataset.meta["modes"], dataset.meta["std"]))
        row["of_modes"] = int(torch.as_tensor(dataset.meta["modes"]).shape[0])
    else:
        row["note"] = "no likelihood (implicit model); sample metrics exist for ring8 and grid25"
    return row
