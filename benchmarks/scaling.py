"""How training and evaluation cost grows: seconds per epoch against the number of data points N and the
image size, and time and peak memory against K, the importance samples of the log-likelihood estimator
and of IWAE training. Each sweep's slope on log-log axes (time proportional to size^slope) is recorded
beside the slope expected and why.

    python benchmarks/scaling.py                         # every sweep, sizes for a 2-core CPU
    python benchmarks/scaling.py --sweeps n image --no-record
    python benchmarks/scaling.py --sweeps k_eval --ks-eval 10 100 1000 5000 --eval-rows 100
    python benchmarks/scaling.py --ns 1000 2000 4000 8000 16000 --sides 8 16 28 56 84 --device cuda

Sweeps (``--sweeps``):

- ``n``: epochs of ``pplgen.fit`` for a VAE (MLP) and a PixelCNN on ``--ns`` rows of binarized MNIST
  (28x28); expected slope 1 (an epoch is N / batch steps of equal cost).
- ``image``: epochs on ``--image-rows-vae`` (or ``--image-rows-pixelcnn``) rows of binarized MNIST
  resampled to each of ``--sides`` (``torch.nn.functional.interpolate``, bilinear with antialiasing,
  then re-binarised at 0.5); the slope is taken against the pixel count. The expected slope is that of
  the arithmetic, FLOPs per epoch counted with ``torch.utils.flop_counter.FlopCounterMode``: it tends to
  1 as the pixel-sized layers dominate (the VAE's first encoder and last decoder layers are ``pixels x
  hidden`` matrices, beside its fixed ``hidden x hidden`` layers; every PixelCNN layer convolves every
  pixel). Per-step overhead (Pyro's bookkeeping, the optimiser) pulls the measured slope lower still.
- ``k_eval``: ``pplgen.log_likelihood(model, x, guide, num_samples=K)`` of an (untrained) VAE on
  ``--eval-rows`` test images. The estimator repeats each point K times inside the data plate, at most
  ``--max-rows`` rows per pass, so time should grow as K (slope 1) and peak memory stay flat (slope 0).
- ``k_train``: epochs of IWAE(K) training of the same VAE. All K samples of a step are held at once
  for the gradient, so time grows as K (slope 1 once K x batch rows dominate) and so does the memory
  above the smallest K's (``slope_extra_memory_vs_k``: that excess against K minus the smallest K).

Every point runs in a fresh subprocess so that its peak memory is its own: on the CPU the resident set's
high-water mark above the resident set after setup (``/proc/self/clear_refs`` resets the mark; where that
is not possible, the ``ru_maxrss`` delta); on a GPU ``torch.cuda.max_memory_allocated``. Peak memory is
taken over the whole call above the level after setup (data loaded, model built): on the CPU freed memory
stays resident and is reused, so a steady-state epoch alone would show none. It includes ``fit``'s one-off
checks of the data, a transient proportional to the data's size (so O(N) in the ``n`` sweep, constant in
K). Epoch times are the median of ``--timed-epochs`` epochs after a warm-up epoch, each the training
loop's own ``time_s`` (no validation); an estimate is timed once, after a two-point warm-up.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from common import record

SWEEPS = ("n", "image", "k_eval", "k_train")
# The VAE and PixelCNN sizes of every sweep: small enough for a CPU run, named in each record's settings.
VAE_CONFIG = {"z_dim": 32, "hidden": 256}
PIXELCNN_CONFIG = {"channels": 16, "layers": 4}
# (sweep, quantity measured) -> (expected slope, why): the reference of each slope record.
EXPECTED = {
    ("n", "time"): (1.0, "an epoch is N / batch_size optimiser steps of equal cost"),
    ("image", "time"): (
        None,
        "the slope of the counted FLOPs per epoch (FlopCounterMode: matrix products and convolutions) "
        "against pixels; it tends to 1 as the pixel-sized layers dominate (the VAE's first and last "
        "layers are pixels x hidden matrices, every PixelCNN layer convolves every pixel)",
    ),
    ("k_eval", "time"): (1.0, "K samples per point are K x rows through the encoder and decoder"),
    ("k_eval", "memory"): (
        0.0,
        "the estimator evaluates at most max_rows rows per pass, whatever K (once rows x K > max_rows)",
    ),
    ("k_train", "time"): (1.0, "an IWAE step pushes batch x K rows forward and back"),
    ("k_train", "memory"): (
        1.0,
        "peak memory above the smallest K's against K minus the smallest K: the IWAE gradient needs all K "
        "samples of a step at once (not chunked), so activations grow as K",
    ),
}


# -- one point, run in its own process ------------------------------------------------------------------
class PeakMemory:
    """Peak memory in MB above the level at ``start()``: the CUDA allocator's peak on a GPU, the resident
    set's high-water mark (reset through ``/proc/self/clear_refs``) on the CPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.how = "torch.cuda.max_memory_allocated" if device.type == "cuda" else None

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            return
        self.base = _status_kb("VmRSS") * 1024
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM, the peak resident set (Linux >= 4.0)
            self.how = "VmHWM above VmRSS after setup"
        except OSError:
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.how = "ru_maxrss delta"

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        elif self.how == "ru_maxrss delta":
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        else:
            peak = _status_kb("VmHWM") * 1024
        return max(0.0, (peak - self.base) / 2**20)


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def resampled_mnist(rows: int, side: int, split: str, seed: int) -> torch.Tensor:
    """``rows`` binarized MNIST images resampled to ``side x side``, re-binarised: ``(rows, side**2)``."""
    import torch.nn.functional as F

    from pplgen import data as datasets

    images = datasets.load("binarized_mnist", split=split).subset(rows, seed=seed).x
    if side == 28:
        return images.clone()
    images = images.reshape(-1, 1, 28, 28)
    scaled = F.interpolate(images, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    return (scaled > 0.5).float().reshape(rows, side * side)


def build(name: str, side: int, images: torch.Tensor):
    from pplgen.data import Dataset
    from pplgen.models import VAE, PixelCNNModel

    dataset = Dataset("binarized_mnist", "train", "binary", images, num_levels=2, image_shape=(side, side))
    if name == "vae":
        return VAE.from_dataset(dataset, **VAE_CONFIG)
    return PixelCNNModel.from_dataset(dataset, **PIXELCNN_CONFIG)


def run_point(point: dict) -> dict:
    """Time (and measure the peak memory of) one point; called in a fresh process."""
    import pplgen
    from pplgen.infer import IWAE

    torch.manual_seed(point["seed"])
    device = torch.device(point["device"])
    side = point.get("side", 28)
    split = "test" if point["sweep"] == "k_eval" else "train"
    images = resampled_mnist(point["rows"], side, split, point["seed"]).to(device)
    model = build(point["model"], side, images).to(device)
    memory = PeakMemory(device)
    if point["sweep"] == "k_eval":
        guide = model.guide
        options = {"max_rows": point["max_rows"], "device": device}
        memory.start()
        pplgen.log_likelihood(model.model, images[:2], guide, num_samples=2, **options)  # warm-up
        began = time.perf_counter()
        pplgen.log_likelihood(model.model, images, guide, num_samples=point["k"], **options)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - began
        return {"seconds": seconds, "peak_mb": memory.peak_mb(), "memory": memory.how}
    fit_options = {"batch_size": point["batch_size"], "valid_fraction": 0.0, "seed": point["seed"]}
    fit_options.update(device=device, progress=False)
    if point["sweep"] == "k_train":
        fit_options["objective"] = IWAE(point["k"])
    guide = getattr(model, "guide", None)
    memory.start()
    epochs = 1 + point["timed_epochs"]  # epoch 1 warms up
    result = pplgen.fit(model.model, images, guide, epochs=epochs, **fit_options)
    seconds = statistics.median(row["time_s"] for row in result.history[1:])
    found = {"seconds": seconds, "peak_mb": memory.peak_mb(), "memory": memory.how}
    steps = math.ceil(point["rows"] / point["batch_size"])
    return {**found, "flops_per_epoch": steps * step_flops(result, images[: point["batch_size"]])}


def step_flops(result, batch: torch.Tensor) -> int:
    """Matrix-product and convolution FLOPs of one training step (``FlopCounterMode``)."""
    from torch.utils.flop_counter import FlopCounterMode

    result.trainer.train(True)
    with FlopCounterMode(display=False) as counter:
        result.trainer.step((batch,), len(batch))
    return int(counter.get_total_flops())


def measure(point: dict) -> dict:
    """Run one point in a subprocess and return what it printed (its last line, JSON)."""
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--point", json.dumps(point)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"point {point} failed:\n{done.stderr[-3000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    found["wall_s"] = time.perf_counter() - began
    print(json.dumps({**point, **{k: round(v, 4) if isinstance(v, float) else v for k, v in found.items()}}))
    return found


# -- the sweeps --------------------------------------------------------------------------------------------
def slope(sizes: list[float], values: list[float]) -> float:
    """The least-squares slope of log(value) against log(size)."""
    xs, ys = [math.log(s) for s in sizes], [math.log(max(v, 1e-12)) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def sweep_points(args, sweep: str) -> list[tuple[str, str, list[dict], list[float]]]:
    """(model, size name, points, sizes) for each model of ``sweep``."""
    base = {"sweep": sweep, "device": args.device, "seed": args.seed, "batch_size": args.batch_size}
    base["timed_epochs"] = args.timed_epochs
    if sweep == "n":
        return [
            (m, "n", [{**base, "model": m, "rows": n} for n in args.ns], [float(n) for n in args.ns])
            for m in ("vae", "pixelcnn")
        ]
    if sweep == "image":
        rows = {"vae": args.image_rows_vae, "pixelcnn": args.image_rows_pixelcnn}
        pixels = [float(s * s) for s in args.sides]
        return [
            (m, "pixels", [{**base, "model": m, "rows": rows[m], "side": s} for s in args.sides], pixels)
            for m in rows
        ]
    if sweep == "k_eval":
        base.update(model="vae", rows=args.eval_rows, max_rows=args.max_rows)
        return [("vae", "k", [{**base, "k": k} for k in args.ks_eval], [float(k) for k in args.ks_eval])]
    base.update(model="vae", rows=args.train_k_rows)
    return [("iwae", "k", [{**base, "k": k} for k in args.ks_train], [float(k) for k in args.ks_train])]


def run_sweep(args, sweep: str) -> None:
    split = "test" if sweep == "k_eval" else "train"
    for model, size_name, points, sizes in sweep_points(args, sweep):
        began = time.perf_counter()
        found = [measure(p) for p in points]
        wall_s = time.perf_counter() - began
        seconds, peaks = [f["seconds"] for f in found], [f["peak_mb"] for f in found]
        settings = sweep_settings(args, sweep, model, points, sizes, found)
        settings["size"] = size_name
        if args.record:
            time_metric = "s_per_epoch" if sweep != "k_eval" else "s_per_estimate"
            ref = {"value": None, "source": f"one point of the {sweep} sweep; the slope records compare"}
            for metric, values in ((time_metric, seconds), ("peak_mb", peaks)):
                for i, size in enumerate(sizes):
                    point_settings = {**settings, size_name: size}
                    wall = found[i]["wall_s"]
                    record(
                        "scaling",
                        model,
                        "binarized_mnist",
                        split,
                        metric,
                        values[i],
                        ref,
                        wall,
                        point_settings,
                    )
        measured = {"time": slope(sizes, seconds), "memory": slope(sizes, [max(p, 1.0) for p in peaks])}
        if sweep == "k_train" and len(sizes) > 2:  # a fixed part hides the growth: fit what K adds to it
            extra = [(k - sizes[0], p - peaks[0]) for k, p in zip(sizes[1:], peaks[1:], strict=True)]
            measured["memory"] = slope([k for k, _ in extra], [max(p, 1.0) for _, p in extra])
        for quantity in ("time", "memory"):
            value, reason = EXPECTED[sweep, quantity] if (sweep, quantity) in EXPECTED else (None, None)
            if reason is None:
                continue
            if value is None:  # expected from the counted arithmetic
                value = settings["flop_slope"]
            metric = f"slope_{quantity}_vs_{size_name}"
            if sweep == "k_train" and quantity == "memory":
                metric = "slope_extra_memory_vs_k"
            print(f"{sweep} {model}: {metric} = {measured[quantity]:.3f} (expected {value:.3f}: {reason})")
            if args.record:
                ref = {"value": value, "source": f"expected: {reason}"}
                value = measured[quantity]
                record("scaling", model, "binarized_mnist", split, metric, value, ref, wall_s, settings)


def sweep_settings(args, sweep: str, model: str, points: list[dict], sizes: list[float], found) -> dict:
    """What every record of one sweep of one model carries."""
    settings = {
        "config": PIXELCNN_CONFIG if model == "pixelcnn" else VAE_CONFIG,
        "sizes": sizes,
        "seconds": [round(f["seconds"], 4) for f in found],
        "peak_mb": [round(f["peak_mb"], 1) for f in found],
        "memory": found[0]["memory"],
        "rows": points[0]["rows"],
        "batch_size": args.batch_size,
        "timed_epochs": args.timed_epochs if sweep != "k_eval" else None,
        "seed": args.seed,
        "device_option": args.device,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "images": "binarized MNIST (28x28)"
        if sweep != "image"
        else "binarized MNIST resampled (bilinear, antialiased) to each side, re-binarised at 0.5",
    }
    if "flops_per_epoch" in found[0]:
        flops = [f["flops_per_epoch"] for f in found]
        settings.update(flops_per_epoch=flops, flop_slope=round(slope(sizes, flops), 4))
    if sweep == "k_eval":
        settings.update(max_rows=args.max_rows, weights="untrained")
    elif sweep == "k_train":
        settings.update(objective="IWAE(K), standard gradient")
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", nargs="+", default=list(SWEEPS), choices=SWEEPS)
    parser.add_argument("--ns", nargs="+", type=int, default=[1000, 2000, 4000, 8000], help="rows (n)")
    parser.add_argument("--sides", nargs="+", type=int, default=[8, 16, 28, 56], help="image sides (image)")
    parser.add_argument("--image-rows-vae", type=int, default=4000, help="rows per point (image, VAE)")
    parser.add_argument("--image-rows-pixelcnn", type=int, default=500, help="rows per point (image)")
    parser.add_argument("--ks-eval", nargs="+", type=int, default=[10, 100, 1000, 5000], help="K (k_eval)")
    parser.add_argument("--eval-rows", type=int, default=128, help="test images (k_eval)")
    parser.add_argument("--max-rows", type=int, default=1024, help="rows per pass of the estimator")
    parser.add_argument("--ks-train", nargs="+", type=int, default=[1, 5, 10, 50], help="K (k_train)")
    parser.add_argument("--train-k-rows", type=int, default=500, help="rows per point (k_train)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--timed-epochs", type=int, default=3, help="epochs after the warm-up (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-record", dest="record", action="store_false", help="print only")
    parser.add_argument("--point", help=argparse.SUPPRESS)  # one point, in a subprocess
    args = parser.parse_args()
    if args.point:
        print(json.dumps(run_point(json.loads(args.point))))
        return
    for sweep in args.sweeps:
        run_sweep(args, sweep)


if __name__ == "__main__":
    main()
