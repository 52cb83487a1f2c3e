"""Linear probes of learned representations: test accuracy of a logistic regression on the codes.

    python benchmarks/probe.py                            # digits and fsdd, vae and ali (~3 min, 2 cores)
    python benchmarks/probe.py --data fsdd --epochs-factor 4

Each model is trained on the training split without labels; :func:`pplgen.encode` then maps the
training and test points to codes (the guide's posterior mean: the VAE's encoder mean, ALI's encoder
mean), and :func:`pplgen.evaluate.linear_probe` fits a logistic regression of the class on the training
codes and reports its accuracy on the test codes (Alain & Bengio 2016; the BiGAN/ALI protocol of Donahue
et al. 2017 and Dumoulin et al. 2017). The same probe on the raw inputs (``raw``) runs beside them and is
each model's reference: a representation earns its keep where it beats its own input. FSDD is read as
its log-mel features (``features="logmel"``). No published figure exists for these small data sets.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import parse_model_runs, record

import pplgen
from pplgen import data as datasets
from pplgen import models

#: The models per data set: zoo name -> (settings, epochs at --epochs-factor 1).
MODELS = {
    "digits": {"vae": ({"z_dim": 16, "hidden": 256}, 150), "ali": ({"z_dim": 16, "hidden": 256}, 200)},
    "fsdd": {"vae": ({"z_dim": 16, "hidden": 256}, 150), "ali": ({"z_dim": 16, "hidden": 256}, 100)},
}
DATA_OPTIONS = {"digits": {}, "fsdd": {"features": "logmel"}}


def codes(name: str, train, valid, test, args) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Train the zoo model ``name`` on the training split and encode the training and test points."""
    config, epochs = MODELS[train.name][name]
    epochs = max(1, round(epochs * args.epochs_factor))
    model = models.build(name, train, **config)
    options = {"lr": args.lr, "seed": args.seed, "progress": False, "batch_size": args.batch_size}
    adversarial = getattr(model, "adversarial", None)
    if adversarial is not None:
        options.update(adversarial=adversarial, valid_fraction=0)
    else:  # the best epoch on the validation split
        options.update(valid=valid.x, patience=epochs)
    result = pplgen.fit(model.model, train.x, model.guide, epochs=epochs, **options)
    about = {"config": model.config, "epochs": epochs, "best_epoch": result.history[-1].get("restored_epoch")}
    return pplgen.encode(result, train.x), pplgen.encode(result, test.x), about


def run(data: str, args) -> None:
    train, valid, test = (datasets.load(data, s, **DATA_OPTIONS[data]) for s in ("train", "valid", "test"))
    began = time.perf_counter()
    raw = pplgen.evaluate.linear_probe(train.x.flatten(1), train.y, test.x.flatten(1), test.y)
    common = {"data_options": DATA_OPTIONS[data], "train_rows": len(train), "test_rows": len(test)}
    raw_settings = {**common, "codes": "the raw inputs, flattened", "dims": train.x[0].numel()}
    reference = {"value": None, "source": "a baseline: the same probe on the raw inputs"}
    record(
        "probe",
        "raw",
        data,
        "test",
        "probe_accuracy",
        raw,
        reference,
        time.perf_counter() - began,
        raw_settings,
    )
    for name in args.models or MODELS[data]:
        began = time.perf_counter()
        torch.manual_seed(args.seed)
        train_codes, test_codes, about = codes(name, train, valid, test, args)
        accuracy = pplgen.evaluate.linear_probe(train_codes, train.y, test_codes, test.y)
        settings = {
            **common,
            **about,
            "codes": "encode: the guide's posterior mean",
            "dims": train_codes.shape[1],
            "batch_size": args.batch_size,
            "lr": args.lr,
            "seed": args.seed,
        }
        reference = {"value": raw, "source": "the same probe on the raw inputs, same splits and run"}
        wall = time.perf_counter() - began
        record("probe", name, data, "test", "probe_accuracy", accuracy, reference, wall, settings)


def main() -> None:
    args = parse_model_runs(argparse.ArgumentParser(description=__doc__.splitlines()[0]), MODELS)
    for data in args.data:
        run(data, args)


if __name__ == "__main__":
    main()
