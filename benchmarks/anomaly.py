"""Leave-one-class-out anomaly detection: AUROC of each family's anomaly score on digits and spoken digits.

    python benchmarks/anomaly.py                          # digits and fsdd, every model (~13 min, 2 cores)
    python benchmarks/anomaly.py --data digits --epochs-factor 4 --classes 3 5

For each class c in turn, a model is trained on the nine other classes of the training split (the same
nine classes of the validation split choose the best epoch for the models with a likelihood), and then
scores the test split: the test points of the nine classes are normal, those of class c anomalous. The
figure is the AUROC of telling them apart by :func:`pplgen.anomaly_scores` (higher = more anomalous),
and the record's value is the mean over the ten classes, with each class's AUROC in its settings.

One model of each family: exact (NADE on the binary digits; a masked autoregressive flow on FSDD's
log-mel features), latent (a VAE: importance-sampled -log p with K draws from its encoder) and implicit (a
GAN: minus its critic's logit, which is not a density; trained unpacked, so that its critic judges single
points). FSDD is read as its log-mel features (``features="logmel"``: 8 frames x 16 mel bands,
standardised), far cheaper than 8,000-sample waveforms for forty trainings on a CPU.

No published figure exists for this protocol on these data, so two simple baselines run beside the
models on the same splits and are recorded too: the distance to the nearest training point (``knn``),
and the negative log-density of one Gaussian fitted to the training points with a Ledoit-Wolf shrunk
covariance (``gaussian``). The nearest-neighbour baseline's mean is each model's reference.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import torch
from common import parse_model_runs, record

import pplgen
from pplgen import data as datasets
from pplgen import models

#: The models per data set: zoo name -> (settings, epochs at --epochs-factor 1).
MODELS = {
    "digits": {
        "nade": ({"hidden": 100}, 300),
        "vae": ({"z_dim": 8, "hidden": 256}, 150),
        "gan": ({"image_shape": None, "hidden": 256}, 60),  # MLPs: ten conv GANs would take too long
    },
    "fsdd": {
        "maf": ({}, 60),
        "vae": ({"z_dim": 16, "hidden": 256}, 150),
        "gan": ({"hidden": 256}, 60),
    },
}
DATA_OPTIONS = {"digits": {}, "fsdd": {"features": "logmel"}}
BASELINES = ("knn", "gaussian")


@dataclass
class Fold:
    """One held-out class: training and validation points of the nine others, and the scored test points."""

    held_out: int
    train: torch.Tensor
    valid: torch.Tensor
    normal: torch.Tensor
    anomalous: torch.Tensor


def folds(name: str, classes: list[int]) -> tuple[list[Fold], datasets.Dataset]:
    """The leave-one-class-out folds of a data set, and its training split (which sizes the models)."""
    train, valid, test = (datasets.load(name, s, **DATA_OPTIONS[name]) for s in ("train", "valid", "test"))
    found = [
        Fold(c, train.x[train.y != c], valid.x[valid.y != c], test.x[test.y != c], test.x[test.y == c])
        for c in classes
    ]
    return found, train


def baseline_scores(kind: str, train: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The nearest training point's Euclidean distance, or -log N(x; mean, Ledoit-Wolf covariance)."""
    if kind == "knn":
        return torch.cdist(x.double(), train.double()).min(dim=1).values
    from sklearn.covariance import LedoitWolf

    flat = train.reshape(len(train), -1).double()
    cov = torch.from_numpy(LedoitWolf().fit(flat.numpy()).covariance_)
    gaussian = torch.distributions.MultivariateNormal(flat.mean(0), covariance_matrix=cov)
    return -gaussian.log_prob(x.reshape(len(x), -1).double())


def fit(name: str, dataset: datasets.Dataset, fold: Fold, args) -> tuple[pplgen.FitResult, dict]:
    """Train the zoo model ``name`` on the fold's nine classes; the result and its settings."""
    config, epochs = MODELS[dataset.name][name]
    model = models.build(name, dataset, **config)
    epochs = max(1, round(epochs * args.epochs_factor))
    options = {"lr": args.lr, "seed": args.seed, "progress": False, "batch_size": args.batch_size}
    adversarial = getattr(model, "adversarial", None)
    if adversarial is not None:  # unpacked: the critic must judge one point at a time
        options.update(adversarial=adversarial.replace(pack=1), valid_fraction=0)
    else:  # the best epoch on the nine classes' validation points
        options.update(valid=fold.valid, patience=epochs)
    result = pplgen.fit(model.model, fold.train, getattr(model, "guide", None), epochs=epochs, **options)
    about = {"config": model.config, "epochs": epochs, "batch_size": args.batch_size, "lr": args.lr}
    return result, {**about, "epochs_run": len(result.history)}


def evaluate(name: str, dataset, all_folds: list[Fold], args) -> tuple[list[float], dict, float]:
    """Per-class AUROCs of one model or baseline, what the scores were, and the seconds taken."""
    began, per_class, about = time.perf_counter(), [], {}
    for fold in all_folds:
        torch.manual_seed(args.seed)
        if name in BASELINES:
            normal, anomalous = (baseline_scores(name, fold.train, x) for x in (fold.normal, fold.anomalous))
        else:
            result, about = fit(name, dataset, fold, args)
            normal, anomalous = (
                pplgen.anomaly_scores(result, x, num_samples=args.k) for x in (fold.normal, fold.anomalous)
            )
            about["estimator"] = normal.estimator
            about["best_epoch"] = result.history[-1].get("restored_epoch")  # of the last fold
        per_class.append(pplgen.evaluate.auroc(normal, anomalous))
        print(f"{dataset.name} {name} held out {fold.held_out}: AUROC {per_class[-1]:.4f}", flush=True)
    return per_class, about, time.perf_counter() - began


def run(data: str, args) -> None:
    all_folds, dataset = folds(data, args.classes)
    reference = None
    for name in (*BASELINES, *(args.models or MODELS[data])):
        per_class, about, wall = evaluate(name, dataset, all_folds, args)
        mean = sum(per_class) / len(per_class)
        stderr = (
            torch.tensor(per_class).std().item() / math.sqrt(len(per_class)) if len(per_class) > 1 else None
        )
        settings = {
            "protocol": "leave one class out: train on nine classes, test points of the held-out class "
            "against the test points of the nine",
            "data_options": DATA_OPTIONS[data],
            "held_out": args.classes,
            "per_class": per_class,
            "stderr": stderr,
            "seed": args.seed,
            **about,
        }
        if name == "knn":
            reference = mean
            source = {"value": None, "source": "a baseline: distance to the nearest training point"}
        elif name == "gaussian":
            source = {"value": None, "source": "a baseline: -log density of a Ledoit-Wolf Gaussian"}
        else:
            source = {
                "value": reference,
                "source": "nearest-training-point distance, same protocol, splits and run (no published "
                "figure for leave-one-class-out on these data)",
            }
        record("anomaly", name, data, "test", "auroc", mean, source, wall, settings)


def main() -> None:
    def extra(parser):
        parser.add_argument(
            "--classes", nargs="+", type=int, default=list(range(10)), help="held-out classes"
        )
        parser.add_argument("--k", type=int, default=100, help="importance samples per point (latent models)")

    args = parse_model_runs(argparse.ArgumentParser(description=__doc__.splitlines()[0]), MODELS, extra)
    for data in args.data:
        run(data, args)


if __name__ == "__main__":
    main()
