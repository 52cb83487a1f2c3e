"""One summary of a fitted model on a data split: what ``pplgen evaluate`` and the demo print."""

from __future__ import annotations

import math

import torch

from pplgen.evaluate.ais import AISSettings
from pplgen.evaluate.features import image_metrics
from pplgen.evaluate.likelihood import estimate
from pplgen.evaluate.modes import mode_metrics
from pplgen.evaluate.sampling import sample
from pplgen.infer.result import FitResult

__all__ = ["summary"]


def summary(
    result: FitResult,
    dataset,
    *,
    num_samples: int = 100,
    num_generated: int = 2500,
    labels: bool = False,
    method: str = "is",
    ais: AISSettings | None = None,
) -> dict:
    """Test figures for ``result`` on ``dataset`` (a :class:`pplgen.data.Dataset`).

    Likelihood families get ``nats`` (mean negative log-likelihood per data point), ``nats_stderr`` (its
    standard error over the points), ``bits_per_dim`` and ``estimator`` (``"exact"``,
    ``"importance-sampled, K=..."`` or ``"AIS, ..."``: for latent models a stochastic lower bound on
    log p(x), so an upper bound on nats; ``method`` and ``ais`` choose, see :func:`log_likelihood`).
    Implicit models on the 2-D mixtures get PacGAN's
    ``modes``, ``hq_percent`` and ``reverse_kl`` from ``num_generated`` samples; on labelled images,
    :func:`image_metrics` (a conditional program draws for the labels of the data points it is compared
    with, and gets ``label_accuracy``). ``labels``: the program takes ``(x, y)``.

    Example:
        No model compresses fair coin flips, so an FVSBN fitted to them stays near one bit per dimension:

        >>> import pplgen
        >>> from pplgen.data import Dataset
        >>> from pplgen.models import FVSBNModel
        >>> _ = torch.manual_seed(0)
        >>> coins = Dataset("coins", "test", "binary", torch.bernoulli(torch.full((32, 8), 0.5)))
        >>> fvsbn = FVSBNModel(8)
        >>> result = pplgen.fit(fvsbn.model, coins.x, epochs=1, valid_fraction=0, seed=0, progress=False)
        >>> row = summary(result, coins)
        >>> row["family"], row["estimator"], row["n"], round(row["bits_per_dim"], 1)
        ('exact', 'exact', 32, 1.0)
    """
    row: dict = {"family": result.family, "data": dataset.name, "split": dataset.split, "n": len(dataset)}
    if result.family in ("exact", "latent"):
        _, found = estimate(result, dataset.tensors(labels), num_samples=num_samples, method=method, ais=ais)
        row["nats"] = -found.mean
        row["nats_stderr"] = found.stderr
        row["bits_per_dim"] = -found.mean / (dataset.x[0].numel() * math.log(2))
        row["estimator"] = found.estimator
    elif "modes" in dataset.meta:
        generated = sample(result, num_generated)
        row.update(mode_metrics(generated, dataset.meta["modes"], dataset.meta["std"]))
        row["of_modes"] = int(torch.as_tensor(dataset.meta["modes"]).shape[0])
    elif dataset.image_shape is not None and dataset.y is not None:
        num = min(num_generated, 2000, len(dataset))
        if labels:  # a conditional program draws for the labels of the data points it is compared with
            asked = dataset.subset(num, seed=0)
            generated = sample(result, num, asked.tensors(True))
            row.update(image_metrics(generated, dataset, num=num, seed=0, labels=asked.y))
        else:
            row.update(image_metrics(sample(result, num), dataset, num=num))
    else:
        row["note"] = (
            "no likelihood (implicit model); sample metrics exist for ring8, grid25 and labelled images"
        )
    return row
