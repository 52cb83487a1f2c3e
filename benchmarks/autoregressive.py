"""Autoregressive models against the papers' tables: test NLL on binarized MNIST, tiny Shakespeare
nats per character, FSDD bits per sample, and cached against naive generation speed.

    python benchmarks/autoregressive.py fit nade --data binarized_mnist --minutes 30 --set hidden=500
    python benchmarks/autoregressive.py fit charlm --data shakespeare --minutes 5
    python benchmarks/autoregressive.py fit wavenet --data fsdd --minutes 20
    python benchmarks/autoregressive.py speed wavenet

``fit`` trains a zoo model within a wall-clock budget (whole epochs; the best validation epoch is kept),
then records the exact test figure beside the published one. Every figure is appended to
``results.jsonl`` with the device, the budget and the settings; run ``render.py`` afterwards.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from common import add_fit_options, fit_settings, fit_within, pairs, record

import pplgen
from pplgen import data as datasets
from pplgen import models

PUBLISHED = {
    ("nade", "binarized_mnist"): (
        88.33,
        "NADE, fixed order, 500 hidden (Uria et al. 2016); 88.86 in Larochelle & Murray 2011",
    ),
    ("made", "binarized_mnist"): (86.64, "MADE, 32 masks (Germain et al. 2015, Table 6)"),
    ("pixelcnn", "binarized_mnist"): (
        81.30,
        "PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, Table 4)",
    ),
    ("gated_pixelcnn", "binarized_mnist"): (
        80.10,
        "Gated PixelCNN as implemented in the PixelVAE paper (Gulrajani et al. 2017)",
    ),
    ("charlm", "shakespeare"): (
        1.4697,
        "nanoGPT shakespeare_char: 6 layers, 384 wide, context 256, ~3 min on one A100",
    ),
}
# The figure each data set is compared on.
METRIC = {"binarized_mnist": "nll_nats", "shakespeare": "nats_per_char", "fsdd": "bits_per_sample"}


def reference(model: str, dataset: str) -> dict:
    value, source = PUBLISHED.get((model, dataset), (None, f"no published figure for {model} on {dataset}"))
    return {"value": value, "source": source}


def record_name(zoo: str, config: dict) -> str:
    """A zoo model's benchmark name: ``pixelcnn`` counts as ``gated_pixelcnn`` unless ``gated=False``."""
    if zoo == "pixelcnn" and config.get("gated", True):
        return "gated_pixelcnn"
    return zoo


def fit(args) -> None:
    options = pairs(args.data_option)
    train, valid, test = (datasets.load(args.data, split=s, **options) for s in ("train", "valid", "test"))
    model = models.build(args.model, train, **pairs(args.set))
    takes_labels = bool(getattr(model, "takes_labels", False))
    result, data, held_out, fit_s = fit_within(args, model, train, valid)
    nats = -pplgen.log_likelihood(result, test.tensors(takes_labels)).mean().item()
    dims = test.x[0].numel()
    value = {"nll_nats": nats, "nats_per_char": nats / dims, "bits_per_sample": nats / dims / math.log(2)}
    metric = METRIC.get(args.data, "nll_nats")
    settings = {**fit_settings(args, model, result, data, held_out), "estimator": "exact"}
    name = record_name(args.model, model.config)
    # tiny Shakespeare has no test split: its "test" is the validation text
    split = "valid" if args.data == "shakespeare" else test.split
    record(
        "autoregressive",
        name,
        args.data,
        split,
        metric,
        value[metric],
        reference(name, args.data),
        fit_s,
        settings,
    )
    if metric != "bits_per_dim":
        record(
            "autoregressive",
            name,
            args.data,
            split,
            "bits_per_dim",
            nats / dims / math.log(2),
            {"value": None, "source": "derived from the figure above"},
            fit_s,
            settings,
        )


def _speed_subject(name: str, args):
    """An untrained distribution of the benchmark's size (speed does not depend on the weights)."""
    from pplgen.distributions import PixelCNN, SequenceLM, WaveNet
    from pplgen.nn import PixelCNNNet, TransformerConfig, TransformerNet, WaveNetNet

    if name == "wavenet":  # receptive field 2,047 samples
        net = WaveNetNet(
            args.length, residual_channels=32, skip_channels=64, dilations=[2**i for i in range(10)] * 2
        )
        return WaveNet(net), {"length": args.length, "receptive_field": net.receptive_field}
    if name == "charlm":  # nanoGPT's shakespeare_char size
        net = TransformerNet(TransformerConfig(vocab_size=65, block_size=args.length, dropout=0.0))
        return SequenceLM(net), {"length": args.length, "n_layer": 6, "n_embd": 384}
    if name == "pixelcnn":
        net = PixelCNNNet((28, 28))
        return PixelCNN(net), {"image_shape": [28, 28], "gated": True}
    raise SystemExit(f"no speed benchmark for {name!r}: choose wavenet, charlm or pixelcnn")


SPEED_REFERENCES = {
    "wavenet": {
        "value": None,
        "source": "goal: >= 50x with receptive field >= 1024 (Paine et al. 2016 give no ratio)",
    },
    "charlm": {"value": None, "source": "goal: >= 10x at 256 tokens"},
    "pixelcnn": {
        "value": 183,
        "source": "Fast PixelCNN++, up to 183x at batch 256 on a GPU (Ramachandran et al. 2017); "
        "goal >= 5x at batch 64",
    },
}


def speed(args) -> None:
    """Cached against naive generation of the same samples, timed one after the other in one run."""
    torch.backends.cuda.matmul.allow_tf32 = False  # exact agreement needs the same arithmetic on both paths
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu")
    d, settings = _speed_subject(args.model, args)
    d.net.to(device).eval()
    seconds = {}
    samples = {}
    for path in ("cached", "naive"):
        torch.manual_seed(args.seed)
        if device.type == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        samples[path] = d.sample((args.batch,), naive=path == "naive")
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds[path] = time.perf_counter() - began
    settings.update(
        batch=args.batch,
        cached_s=round(seconds["cached"], 3),
        naive_s=round(seconds["naive"], 3),
        identical_samples=bool(torch.equal(samples["cached"], samples["naive"])),
        weights="untrained (speed does not depend on them)",
    )
    record(
        "generation_speed",
        args.model,
        "none",
        "none",
        "speedup",
        seconds["naive"] / seconds["cached"],
        SPEED_REFERENCES[args.model],
        seconds["cached"] + seconds["naive"],
        settings,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fit", help="train a zoo model within a time budget and record its test figure")
    p.add_argument("model")
    p.add_argument("--data", required=True, choices=datasets.NAMES)
    add_fit_options(p)
    p.set_defaults(run=fit)
    p = sub.add_parser("speed", help="cached against naive generation, side by side in one run")
    p.add_argument("model", choices=("wavenet", "charlm", "pixelcnn"))
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--length", type=int, default=2048, help="samples (wavenet) or tokens (charlm)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.set_defaults(run=speed)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    args.run(args)


if __name__ == "__main__":
    main()
