"""Images per second of the zoo's image models on binarized MNIST (28x28): in training (``pplgen.fit``
steps) and in generation (``pplgen.sample``), with the share of the device's peak arithmetic on a GPU.

    python benchmarks/throughput.py --device cuda --batch-size 256 --steps 50 --peak-tflops 67
    python benchmarks/throughput.py --device cuda --bf16 --peak-tflops 989 --models vae pixelcnn draw
    python benchmarks/throughput.py --device cpu --steps 5 --batch-size 32 --sample-num 8 --no-record

Training throughput is the data images of the second of two epochs of ``--steps`` steps each (the first
warms up), divided by that epoch's own ``time_s`` (``pplgen.fit``'s loop, no validation). For adversarial
models an image is one data image of a step, critic steps included. Generation throughput is
``--sample-num`` images from ``pplgen.sample`` (after a two-image warm-up) over the seconds they took;
autoregressive models (NADE, MADE, FVSBN, PixelCNN, the PixelVAE's decoder, the VQ-VAE's prior, MAF's
inverse) generate one pixel (or code) at a time, so theirs is far lower; MADE and MAF re-run their whole
network for each pixel (no cached path), so their generation cost grows as D^2.

FLOPs per training image are counted with ``torch.utils.flop_counter.FlopCounterMode`` over one further
training step (``result.trainer.step``) divided by the batch size. That counter counts matrix products and
convolutions (and attention), not element-wise work, so it is a lower bound on the arithmetic done (and 0
for a model built from other operations, such as NADE's cumulative sums); masked weights count in full. With
``--peak-tflops P`` the achieved training FLOP/s is also recorded as a fraction of P x 10^12. The figure is
the user's, for their device and precision: for an H100 SXM, NVIDIA's data sheet gives 989 TFLOPS for
dense BF16 tensor-core work (``--bf16 --peak-tflops 989``) and 67 TFLOPS for FP32 (``--peak-tflops 67``).
PyTorch lets cuDNN convolutions use TF32 tensor cores by default (the record's settings say whether
``allow_tf32`` was on), so a convolutional model's FP32 share can exceed what plain FP32 would allow. No
device table is built in.

``--bf16`` runs training and generation under ``torch.autocast(dtype=torch.bfloat16)`` (GPU only).
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from common import device_name, record

import pplgen
from pplgen import data as datasets
from pplgen import models
from pplgen.infer import IWAE

# benchmark name -> (zoo name, build settings, fit options); all apply to binarized MNIST 28x28
IMAGE_MODELS = {
    "vae": ("vae", {}, {}),
    "vae_conv": ("vae", {"arch": "conv"}, {}),
    "iwae": ("vae", {}, {"objective": "iwae"}),
    "draw": ("draw", {}, {}),
    "pixelcnn": ("pixelcnn", {}, {}),
    "pixelvae": ("pixelvae", {}, {}),
    "hvae": ("hvae", {}, {}),
    "vqvae": ("vqvae", {}, {}),
    "gan": ("gan", {}, {}),
    "wgan": ("wgan", {}, {}),
    "realnvp": ("realnvp", {}, {}),
    "maf": ("maf", {}, {}),
    "nade": ("nade", {}, {}),
    "made": ("made", {}, {}),
    "fvsbn": ("fvsbn", {}, {}),
    "avb": ("avb", {}, {}),
    "ali": ("ali", {}, {}),
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def precision(args, device: torch.device):
    """The autocast context of ``--bf16`` (a no-op without it)."""
    if not args.bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def train_flops(result, batch: tuple[torch.Tensor, ...], num_data: int) -> int:
    """Matrix and convolution FLOPs of one training step on ``batch``."""
    from torch.utils.flop_counter import FlopCounterMode

    result.trainer.train(True)
    with FlopCounterMode(display=False) as counter:
        result.trainer.step(batch, num_data)
    return int(counter.get_total_flops())


def measure(name: str, args, train, device: torch.device) -> dict:
    """Training and generation images per second of one zoo model, and its FLOPs per training image."""
    zoo, config, options = IMAGE_MODELS[name]
    torch.manual_seed(args.seed)
    model = models.build(zoo, train, **config)
    fit_options = {"objective": IWAE(args.iwae_k)} if options.get("objective") == "iwae" else {}
    rows = args.steps * args.batch_size
    data = train.x[:rows].to(device)  # a seeded random subset: train was drawn with subset()
    with precision(args, device):
        result = pplgen.fit(
            model.model,
            data,
            getattr(model, "guide", None),
            epochs=2,  # the first warms up
            batch_size=args.batch_size,
            lr=args.lr,
            valid_fraction=0.0,
            seed=args.seed,
            device=device,
            progress=False,
            **fit_options,
        )
        train_s = result.history[-1]["time_s"]
        flops = train_flops(result, (data[: args.batch_size],), rows)
        pplgen.sample(result, 2)  # warm-up
        synchronize(device)
        began = time.perf_counter()
        pplgen.sample(result, args.sample_num)
        synchronize(device)
        sample_s = time.perf_counter() - began
    return {
        "config": model.config,
        "train_images_per_s": rows / train_s,
        "train_s": train_s,
        "generate_images_per_s": args.sample_num / sample_s,
        "generate_s": sample_s,
        "flops_per_image": flops / args.batch_size,
        "objective": result.settings.get("objective"),
    }


def report(name: str, found: dict, args, wall_s: float) -> None:
    settings = {
        "config": found["config"],
        "batch_size": args.batch_size,
        "steps": args.steps,
        "sample_num": args.sample_num,
        "bf16": args.bf16,
        "threads": torch.get_num_threads(),
        "train_s": round(found["train_s"], 4),
        "generate_s": round(found["generate_s"], 4),
        "flops_per_image": found["flops_per_image"],
        "flops_counted": "matrix products and convolutions (FlopCounterMode), one training step",
        "objective": found["objective"],
        "iwae_k": args.iwae_k if name == "iwae" else None,
        "device_option": args.device,  # the record's device is common.device_name()
        "allow_tf32": {
            "matmul": torch.backends.cuda.matmul.allow_tf32,
            "cudnn": torch.backends.cudnn.allow_tf32,
        },
        "weights": "trained for the two timed epochs only (speed does not depend on them)",
    }
    achieved = found["train_images_per_s"] * found["flops_per_image"]
    peak_share = achieved / (args.peak_tflops * 1e12) if args.peak_tflops else None
    line = (
        f"{name:9s} train {found['train_images_per_s']:10.1f} img/s   generate "
        f"{found['generate_images_per_s']:10.1f} img/s   {found['flops_per_image'] / 1e6:9.2f} MFLOP/img "
        f"{achieved / 1e9:9.2f} GFLOP/s"
    )
    print(line + (f"   {100 * peak_share:.3f}% of {args.peak_tflops} TFLOP/s" if peak_share else ""))
    if not args.record:
        return
    no_ref = {
        "value": None,
        "source": "images per second; no peer figure, compared across models and devices",
    }
    for phase in ("train", "generate"):  # one benchmark each, so that RESULTS.md shows them apart
        value = found[f"{phase}_images_per_s"]
        phase_settings = {**settings, "phase": phase, "unit": "images/s"}
        benchmark, split = (
            ("train_throughput", "train") if phase == "train" else ("generation_throughput", "none")
        )
        record(benchmark, name, "binarized_mnist", split, "throughput", value, no_ref, wall_s, phase_settings)
    if peak_share is not None:
        source = f"the peak TFLOP/s the user gave (--peak-tflops) for {device_name()}"
        peak_settings = {**settings, "achieved_tflops": achieved / 1e12, "peak_tflops": args.peak_tflops}
        ref = {"value": None, "source": source}
        value = peak_share
        record(
            "train_throughput",
            name,
            "binarized_mnist",
            "train",
            "peak_fraction",
            value,
            ref,
            wall_s,
            peak_settings,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(IMAGE_MODELS), choices=list(IMAGE_MODELS))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed epoch")
    parser.add_argument("--sample-num", type=int, default=None, help="images generated (default: batch)")
    parser.add_argument("--iwae-k", type=int, default=5, help="importance samples of the iwae model")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (GPU)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, for the fraction")
    parser.add_argument("--no-record", dest="record", action="store_false", help="print only")
    args = parser.parse_args()
    args.sample_num = args.sample_num or args.batch_size
    device = torch.device(args.device)
    if args.bf16 and device.type != "cuda":
        parser.error("--bf16 is for the GPU")
    rows = args.steps * args.batch_size
    train = datasets.load("binarized_mnist", split="train").subset(rows, seed=args.seed)
    print(f"device: {device_name() if device.type == 'cuda' else device}, batch {args.batch_size}")
    for name in args.models:
        began = time.perf_counter()
        found = measure(name, args, train, device)
        report(name, found, args, time.perf_counter() - began)


if __name__ == "__main__":
    main()
