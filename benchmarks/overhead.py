"""The cost of pplgen's machinery per training step: the same networks trained by a hand-written PyTorch
loop, by Pyro's plain ``pyro.infer.SVI`` (``Trace_ELBO``, and ``JitTrace_ELBO`` as a reference row) and by
``pplgen.fit``, in one process, with the seconds per step of each and the ratios to the hand-written loop.
The hand loop runs twice: with torch's default Adam, as most loops are written, and with the fused Adam
that ``pplgen.fit`` uses, so that ``ratio_pplgen_to_hand_fused`` is the cost of pplgen's machinery alone.

    python benchmarks/overhead.py --steps 200
    python benchmarks/overhead.py --models mlp_vae --clock cpu --rounds 8 --steps 160 --no-record
    python benchmarks/overhead.py --models pixelcnn --steps 40 --set pixelcnn.channels=16 --no-record
    python benchmarks/overhead.py --device cuda --steps 200

Models (binarized MNIST, batch 128, Adam at the same learning rate everywhere; the zoo's own networks, so
every way runs the identical network computation):

- ``mlp_vae``: ``VAE(784, z_dim=50, hidden=500, layers=2)``, the 784-500-500-50 MLP VAE. The hand loop
  calls the encoder, draws z = mu + s * eps, calls the decoder, and minimises the Bernoulli negative
  log-likelihood plus the analytic Gaussian KL per data point.
- ``conv_vae``: the zoo's ``VAE(..., arch="conv")`` with the same hand loop.
- ``pixelcnn``: ``PixelCNNModel`` (exact family); the hand loop minimises the Bernoulli negative
  log-likelihood of the network's logits; "plain Pyro" is SVI with an empty guide.
- ``gan``: the zoo's ``GAN`` with the default critic that ``pplgen.fit`` would build, the non-saturating
  game with one critic step per generator step (``AdversarialSettings()``). Pyro has no adversarial trainer,
  so this model compares the hand loop with ``pplgen.fit`` only.

How the time is taken: the data are on the device before any clock starts; every way first takes
``--warmup`` untimed steps; then ``--rounds`` rounds run the ways in turn (hand, Pyro, Pyro JIT, pplgen,
hand, ...), so that a busy machine slows all alike, each round ``--steps / --rounds`` timed steps per way
(batches drawn by a random permutation and gathered on the device, as ``pplgen.fit`` does). The figure of a
way is the median over rounds of its seconds per step. ``pplgen.fit`` is timed inside its training loop:
each round is one ``fit`` call (no validation, no progress bar) over ``--epoch-steps`` batches of rows for
one untimed epoch and then enough epochs for the round's steps; a callback stamps the end of every epoch,
and the stamps after the first epoch give the loop's seconds per step, everything it does included (its
per-epoch work too). Its setup (inspecting the program, checking data and guide, building the trainer) is a
separate figure: the time from the call to the first stamp, less one epoch of steps. On a GPU every clock
reading follows ``torch.cuda.synchronize()``. ``--clock cpu`` reads this process's CPU time instead of the
wall clock, which other jobs on a shared CPU disturb far less (CPU runs only); a GPU run keeps the wall
clock.

Pyro's SVI runs as a Pyro user runs it: ``pyro.optim.Adam``, Pyro's global parameter store (pplgen keeps
module-local parameters, so the store is switched on around the Pyro rows, each with its own store scope),
and Pyro's argument validation off as in ``pplgen.fit`` (``--pyro-validation`` turns it on).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time
import warnings
from collections.abc import Callable

import pyro
import torch
import torch.nn.functional as F
from common import pairs, record

import pplgen
from pplgen import data as datasets
from pplgen.errors import DataFileError
from pplgen.infer import AdversarialSettings
from pplgen.infer.adversarial import default_discriminator
from pplgen.models import GAN, VAE, PixelCNNModel

MODELS = ("mlp_vae", "conv_vae", "pixelcnn", "gan")
#: The clocks ``--clock`` can name: wall-clock time, or this process's CPU time (steadier on a CPU that other
#: jobs share; meaningless for GPU work, which runs asynchronously).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]
IMAGE_SHAPE = (28, 28)
# What issue 9 measured: plain Pyro SVI against the hand loop, and the goal for pplgen.fit.
REFERENCE = {
    "ratio_pyro_svi_to_hand": {
        "value": [1.7, 2.1],
        "source": "issue 9: Pyro SVI with Trace_ELBO took 1.7-2.1x the hand-written loop per step for the "
        "784-500-500-50 MLP VAE on a 2-core CPU",
    },
    "ratio_pplgen_to_hand": {"value": 1.10, "source": "issue 9: goal, pplgen.fit within 1.10x the hand loop"},
    "ratio_pplgen_to_hand_fused": {
        "value": 1.10,
        "source": "issue 9's goal, here against a hand loop with the same fused Adam as pplgen.fit",
    },
}


# -- the models and their hand-written steps ---------------------------------------------------------------
def build(name: str, config: dict) -> tuple[torch.nn.Module, dict]:
    """The zoo model ``name`` with ``config`` over the defaults, and the settings it was built with."""
    if name == "mlp_vae":
        settings = {"z_dim": 50, "hidden": 500, "layers": 2, **config}
        return VAE(784, **settings), settings
    if name == "conv_vae":
        settings = {"z_dim": 50, "arch": "conv", "image_shape": list(IMAGE_SHAPE), **config}
        return VAE(784, **settings), settings
    if name == "pixelcnn":
        return PixelCNNModel(IMAGE_SHAPE, **config), dict(config)
    settings = {"output": "sigmoid", "image_shape": list(IMAGE_SHAPE), **config}
    return GAN(784, **settings), settings


def vae_step(vae: VAE, optimizer: torch.optim.Optimizer) -> Callable[[torch.Tensor], None]:
    """One hand-written step of a Bernoulli VAE: encoder, reparameterised z, decoder, -ELBO per point."""
    encoder, decoder, conv = vae.encoder, vae.decoder, vae.arch == "conv"

    def step(x: torch.Tensor) -> None:
        out = encoder(x.view(len(x), *IMAGE_SHAPE) if conv else x)
        loc, raw_scale = out.chunk(2, dim=-1)
        scale = F.softplus(raw_scale) + 1e-4  # as VAE.encode
        z = loc + scale * torch.randn_like(loc)
        logits = decoder(z).reshape(len(x), -1)
        nll = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = 0.5 * (loc.pow(2) + scale.pow(2) - 1.0).sum() - scale.log().sum()
        loss = (nll + kl) / len(x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def pixelcnn_step(model: PixelCNNModel, optimizer: torch.optim.Optimizer) -> Callable[[torch.Tensor], None]:
    """One hand-written step of a binary PixelCNN: one pass of the network, Bernoulli NLL per point."""
    net = model.net

    def step(x: torch.Tensor) -> None:
        images = x.view(len(x), *IMAGE_SHAPE)
        loss = F.binary_cross_entropy_with_logits(net(images), images, reduction="sum") / len(x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def gan_step(gan: GAN, critic: torch.nn.Module, lr: float, fused: bool) -> Callable[[torch.Tensor], None]:
    """One hand-written step of the non-saturating GAN as ``AdversarialTrainer`` takes it: a critic step on
    real and detached fake images, then a generator step through the updated critic."""
    betas = (0.5, 0.999)  # AdversarialTrainer.betas
    g_optimizer = torch.optim.Adam(gan.generator.parameters(), lr=lr, betas=betas, fused=fused or None)
    d_optimizer = torch.optim.Adam(critic.parameters(), lr=lr, betas=betas, fused=fused or None)
    generator = gan.generator

    def step(x: torch.Tensor) -> None:
        real = x.view(len(x), 1, *IMAGE_SHAPE)  # the critic judges (B, pack=1, H, W)
        z = torch.randn(len(x), gan.z_dim, device=x.device)
        fake = torch.sigmoid(generator(z)).view(len(x), 1, *IMAGE_SHAPE)
        d_loss = F.softplus(-critic(real)).mean() + F.softplus(critic(fake.detach())).mean()
        d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        d_optimizer.step()
        g_loss = F.softplus(-critic(fake)).mean()
        g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        g_optimizer.step()

    return step


# -- timing ------------------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batches(num_rows: int, steps: int, batch_size: int, device: torch.device) -> list[torch.Tensor]:
    """Row indices for ``steps`` batches from random permutations of the rows, on the device."""
    passes = -(-steps * batch_size // num_rows)  # ceil
    order = torch.cat([torch.randperm(num_rows, device=device) for _ in range(passes)])
    return list(order[: steps * batch_size].split(batch_size))


def time_steps(step: Callable, data: torch.Tensor, steps: int, batch_size: int) -> float:
    """Seconds per step of ``step`` over ``steps`` batches of ``data``, gathering included."""
    sync(data.device)
    began = clock()
    for index in batches(len(data), steps, batch_size, data.device):
        step(data[index])
    sync(data.device)
    return (clock() - began) / steps


@contextlib.contextmanager
def plain_pyro(state: dict, validation: bool):
    """Pyro as a Pyro user has it: the global parameter store (here the scope ``state``), and validation."""
    local = pyro.settings.get("module_local_params")
    pyro.settings.set(module_local_params=False)
    try:
        with pyro.get_param_store().scope(state), pyro.validation_enabled(validation):
            yield
    finally:
        pyro.settings.set(module_local_params=local)


def pyro_way(model: torch.nn.Module, elbo, lr: float, validation: bool) -> Callable[[torch.Tensor], None]:
    """One ``pyro.infer.SVI`` step of the model's program and guide (an empty guide for an exact model)."""
    guide = getattr(model, "guide", None) or (lambda *args: None)
    svi = pyro.infer.SVI(model.model, guide, pyro.optim.Adam({"lr": lr}), elbo)
    state: dict = {"params": {}, "constraints": {}}  # this way's own parameter store

    def chunk(data: torch.Tensor, steps: int, batch_size: int) -> float:
        with plain_pyro(state, validation):
            return time_steps(svi.step, data, steps, batch_size)

    return chunk


def pplgen_way(model: torch.nn.Module, args, epoch_steps: int, **options) -> Callable:
    """A round of ``pplgen.fit``: one untimed epoch, then timed epochs of ``epoch_steps`` steps each.
    Returns (seconds per step in the loop, seconds of setup)."""
    guide = getattr(model, "guide", None)

    def chunk(data: torch.Tensor, steps: int, batch_size: int) -> tuple[float, float]:
        device = data.device
        rows = data[torch.randperm(len(data), device=device)[: epoch_steps * batch_size]]
        stamps: list[float] = []

        def stamp(row: dict) -> None:
            sync(device)
            stamps.append(clock())

        epochs = 1 + max(1, round(steps / epoch_steps))
        sync(device)
        began = clock()
        pplgen.fit(
            model.model,
            rows,
            guide,
            epochs=epochs,
            batch_size=batch_size,
            lr=args.lr,
            device=device,
            valid_fraction=0.0,
            progress=False,
            callbacks=[stamp],
            **options,
        )
        per_step = (stamps[-1] - stamps[0]) / ((epochs - 1) * epoch_steps)
        return per_step, stamps[0] - began - epoch_steps * per_step

    return chunk


# -- one model ---------------------------------------------------------------------------------------------
def ways_for(name: str, args, config: dict) -> tuple[dict[str, Callable], dict]:
    """The ways to train model ``name``: label -> chunk(data, steps, batch_size), and the model settings."""
    torch.manual_seed(args.seed)
    first, settings = build(name, config)
    device = torch.device(args.device)
    labels = ("hand", "hand_fused", "pyro_svi", "pyro_jit", "pplgen")
    copies = {label: copy.deepcopy(first).to(device) for label in labels}
    ways: dict[str, Callable] = {}
    if name == "gan":
        critic = default_discriminator(IMAGE_SHAPE).to(device)  # what pplgen.fit builds for these images
        for label in ("hand", "hand_fused"):
            step = gan_step(copies[label], copy.deepcopy(critic), args.lr, fused=label == "hand_fused")
            ways[label] = lambda data, steps, b, step=step: time_steps(step, data, steps, b)
        ways["pplgen"] = pplgen_way(
            copies["pplgen"],
            args,
            args.epoch_steps,
            discriminator=copy.deepcopy(critic),
            adversarial=AdversarialSettings(),
        )
        return ways, {**settings, "adversarial": "AdversarialSettings() (non-saturating, d_steps=1, pack=1)"}
    for label in ("hand", "hand_fused"):  # torch's default Adam, as most loops use it, and the fused one
        hand = copies[label]
        optimizer = torch.optim.Adam(hand.parameters(), lr=args.lr, fused=label == "hand_fused" or None)
        step = pixelcnn_step(hand, optimizer) if name == "pixelcnn" else vae_step(hand, optimizer)
        ways[label] = lambda data, steps, b, step=step: time_steps(step, data, steps, b)
    ways["pyro_svi"] = pyro_way(copies["pyro_svi"], pyro.infer.Trace_ELBO(), args.lr, args.pyro_validation)
    if not args.no_jit:
        jit = pyro.infer.JitTrace_ELBO(ignore_jit_warnings=True)
        ways["pyro_jit"] = pyro_way(copies["pyro_jit"], jit, args.lr, args.pyro_validation)
    ways["pplgen"] = pplgen_way(copies["pplgen"], args, args.epoch_steps)
    return ways, settings


def measure(name: str, data: torch.Tensor, args, config: dict) -> tuple[dict, dict]:
    """Median seconds per step of each way (and pplgen's setup seconds) over interleaved rounds."""
    ways, settings = ways_for(name, args, config)
    per_round = max(1, args.steps // args.rounds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # JIT tracer warnings about the programs' data checks
        for chunk in ways.values():  # warm-up, untimed
            chunk(data, args.warmup, args.batch_size)
        times: dict[str, list[float]] = {label: [] for label in ways}
        setups: list[float] = []
        for _ in range(args.rounds):
            for label, chunk in ways.items():
                found = chunk(data, per_round, args.batch_size)
                if label == "pplgen":
                    found, setup = found
                    setups.append(setup)
                times[label].append(found)
    medians = {label: statistics.median(values) for label, values in times.items()}
    medians["pplgen_setup"] = statistics.median(setups)
    return medians, {**settings, "rounds": {k: [round(v, 6) for v in vs] for k, vs in times.items()}}


def load_data(args, device: torch.device) -> tuple[torch.Tensor, str]:
    """Binarized MNIST's training images on the device, or random binary images of that shape."""
    try:
        x = datasets.load("binarized_mnist").x
        source = "binarized_mnist train split"
    except DataFileError:
        x = (torch.rand(50_000, 784, generator=torch.Generator().manual_seed(args.seed)) < 0.13).float()
        source = "random binary images (binarized_mnist.npz not found under PPLGEN_DATA)"
    return x.to(device), source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--steps", type=int, default=200, help="timed steps per way, over all rounds")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds the steps are split into")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps per way before the rounds")
    parser.add_argument("--epoch-steps", type=int, default=10, help="steps per epoch of pplgen.fit's rounds")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--clock", default="wall", choices=CLOCKS, help="cpu: process time, CPU runs only")
    parser.add_argument("--pyro-validation", action="store_true", help="Pyro's argument checks on")
    parser.add_argument("--no-jit", action="store_true", help="leave out the JitTrace_ELBO row")
    parser.add_argument(
        "--set", action="append", default=[], metavar="MODEL.KEY=VALUE", help="a model setting"
    )
    parser.add_argument("--no-record", action="store_true", help="print, but append nothing to results")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.clock == "cpu" and device.type != "cpu":
        parser.error("--clock cpu times CPU work only: GPU kernels run asynchronously")
    global clock
    clock = CLOCKS[args.clock]
    data, source = load_data(args, device)
    configs: dict[str, dict] = {name: {} for name in MODELS}
    for key, value in pairs(args.set).items():
        model, _, option = key.partition(".")
        if model not in configs or not option:
            parser.error(f"--set takes MODEL.KEY=VALUE with MODEL one of {', '.join(MODELS)}, got {key!r}")
        configs[model][option] = value
    print(f"device {device}, data: {source}, torch threads {torch.get_num_threads()}", flush=True)
    for name in args.models:
        began = time.perf_counter()
        medians, settings = measure(name, data, args, configs[name])
        wall = time.perf_counter() - began
        report(name, medians, {**settings, **run_settings(args, source)}, wall, args.no_record)


def run_settings(args, source: str) -> dict:
    return {
        "data": source,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "timed_steps": args.steps,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "epoch_steps": args.epoch_steps,
        "pyro_validation": args.pyro_validation,
        "torch_threads": torch.get_num_threads(),
        "statistic": "median over rounds of seconds per step",
        "clock": args.clock,
    }


def report(name: str, medians: dict, settings: dict, wall: float, dry: bool) -> None:
    hand = medians["hand"]
    figures = {
        "s_per_step_hand": hand,
        "s_per_step_pplgen": medians["pplgen"],
        "ratio_pplgen_to_hand": medians["pplgen"] / hand,
        "s_per_step_hand_fused": medians["hand_fused"],
        "ratio_pplgen_to_hand_fused": medians["pplgen"] / medians["hand_fused"],
        "setup_s_pplgen": medians["pplgen_setup"],
    }
    if "pyro_svi" in medians:
        figures["s_per_step_pyro_svi"] = medians["pyro_svi"]
        figures["ratio_pyro_svi_to_hand"] = medians["pyro_svi"] / hand
    if "pyro_jit" in medians:
        figures["s_per_step_pyro_jit"] = medians["pyro_jit"]
        figures["ratio_pyro_jit_to_hand"] = medians["pyro_jit"] / hand
    note = "" if "pyro_svi" in medians else " (Pyro has no adversarial trainer: no Pyro rows)"
    print(f"\n{name}:{note}")
    for metric, value in figures.items():
        print(f"  {metric:26s} {value:.5f}")
    if dry:
        return
    for metric, value in figures.items():
        reference = REFERENCE.get(metric, {"value": None, "source": "no peer figure: compare the ratios"})
        if metric == "ratio_pyro_svi_to_hand" and name != "mlp_vae":
            reference = {"value": None, "source": "issue 9 measured the MLP VAE only"}
        record("overhead", name, "binarized_mnist", "train", metric, value, reference, wall, settings)


if __name__ == "__main__":
    main()
