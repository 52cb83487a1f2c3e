"""The ``pplgen`` command: inspect, fit, sample and evaluate model programs, compress data with them, and
run the demo.

Every error about the user's input is one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from pplgen import data as datasets
from pplgen.cli_anomaly import add_parser as add_anomaly_parser
from pplgen.cli_codec import add_parsers as add_codec_parsers
from pplgen.errors import DataError, DataFileError, PplgenError
from pplgen.evaluate.ais import AISSettings
from pplgen.guides import POSTERIORS, AmortisedGuide
from pplgen.infer.gan_objectives import ADVERSARIAL_LOSSES, AdversarialSettings
from pplgen.infer.loop import CHECKPOINT
from pplgen.infer.objectives import ELBO, GRADIENTS, IWAE, Objective
from pplgen.models import ZOO

__all__ = ["build_parser", "main"]

MODEL_HELP = f"a zoo name ({', '.join(ZOO)}) or path/to/file.py:model[,guide] naming your own program"


def _pairs(items: list[str] | None, option: str) -> dict:
    """``KEY=VALUE`` strings as a dict; values read as JSON where they parse (``500``, ``[64, 64]``)."""
    pairs = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise DataError(f"{option} expects KEY=VALUE, got {item!r}")
        try:
            pairs[key] = json.loads(text)
        except json.JSONDecodeError:
            pairs[key] = text
    return pairs


def _program_and_data(args, split: str = "train"):
    from pplgen.runs import resolve_program

    options = _pairs(args.data_option, "--data-option")
    dataset = datasets.load(args.data, split=split, **options)
    program = resolve_program(args.model, dataset, _pairs(args.set, "--set"), labels=args.labels)
    return program, dataset, options


def _inspect(args) -> int:
    from pplgen.graph import inspect
    from pplgen.render import draw

    program, dataset, _ = _program_and_data(args)
    graph = inspect(program.model, *(t[: args.batch_size] for t in dataset.tensors(program.takes_labels)))
    for plate in graph.graph["data_plates"]:  # traced on a few points; the data set is larger
        graph.graph["plates"][plate] = len(dataset)
    print(f"program: {graph.graph.get('program', '')}")
    print(f"family:  {graph.graph['family']} ({graph.graph['reason']})")
    print(f"plates:  {', '.join(f'{k}={v}' for k, v in graph.graph['plates'].items()) or 'none'}")
    print("sites:")
    for name, node in graph.nodes(data=True):
        if node["kind"] == "param" and not args.params:
            continue
        shape = f"batch {tuple(node['batch_shape'])} event {tuple(node['event_shape'])}"
        plates = ",".join(node["plates"]) or "-"
        print(f"  {name:<24} {node['kind']:<13} {node['dist'] or '':<16} {shape:<34} plates {plates}")
    edges = [(u, v) for u, v in graph.edges if args.params or graph.nodes[u]["kind"] != "param"]
    print("edges:")
    for u, v in edges:
        print(f"  {u} -> {v}")
    if args.out:
        ax = draw(graph, params=args.params)
        ax.figure.savefig(args.out, dpi=120, bbox_inches="tight")
        print(f"wrote {args.out}")
    return 0


def _processes(text: str) -> int:
    """``--nproc``: a whole number of processes, at least 1."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of processes, at least 1; got {text!r}")
    return count


def _without_nproc(argv: list[str]) -> list[str]:
    """The command line less its ``--nproc N``, for the processes that torchrun starts."""
    kept, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == "--nproc":
            skip = True
        elif not token.startswith("--nproc="):
            kept.append(token)
    return kept


def _launch(nproc: int, argv: list[str]) -> int:
    """Run this ``pplgen fit`` in ``nproc`` data-parallel processes on this machine through torchrun."""
    import subprocess

    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    return subprocess.run([*launcher, "-m", "pplgen.cli", *_without_nproc(argv)], check=False).returncode


def _fit(args) -> int:
    import os

    import torch.distributed as dist

    from pplgen.infer import fit
    from pplgen.runs import program_label, save_run

    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch(args.nproc, args.argv)
    torch.manual_seed(args.seed)  # the networks' initial weights: --seed makes the whole run repeatable
    program, dataset, options = _program_and_data(args)
    valid = datasets.load(args.data, split="valid", **options)
    run_dir = Path(args.out or f"runs/{program_label(program.spec).replace(':', '-')}-{args.data}")
    guide = program.guide
    if args.guide == "auto" or args.posterior != "normal" or args.flows:
        guide = AmortisedGuide(program.model, posterior=args.posterior, flows=args.flows)
    started = time.time()
    try:
        result = fit(
            program.model,
            dataset.tensors(program.takes_labels),
            guide,
            objective=_objective(args),
            adversarial=_adversarial(args, program.adversarial),
            d_lr=args.d_lr,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            device=args.device,
            valid=valid.tensors(program.takes_labels),
            patience=args.patience,
            seed=args.seed,
            out=run_dir,
            resume=args.resume,
            checkpoint_every=args.checkpoint_every,
        )
    except KeyboardInterrupt:
        checkpoint = run_dir / CHECKPOINT
        if not checkpoint.is_file() or (checkpoint.stat().st_mtime < started and not args.resume):
            raise  # no checkpoint of this run to continue from
        resume = "run the same command with --resume to continue"
        print(f"pplgen fit: interrupted; the last checkpoint is in {run_dir}: {resume}", file=sys.stderr)
        return 130
    if dist.is_initialized():  # a data-parallel run: every rank holds the result, rank 0 writes it
        rank = dist.get_rank()
        dist.destroy_process_group()
        if rank != 0:
            return 0
    pictures = save_run(run_dir, result, program, {"name": args.data, "options": options})
    last = result.history[-1]
    skip = ("epoch", "time_s", "active_units", "latent_units")
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k not in skip and isinstance(v, float))
    steps = result.settings["steps"]
    print(f"{result.family} model, {last['epoch']} epochs on {result.device} ({steps} steps): {metrics}")
    if "active_units" in last:  # a collapsed posterior shows here first
        print(
            f"active latent units: {last['active_units']} of {last['latent_units']} "
            "(KL per dimension in history.json)"
        )
    written = ", ".join(["config.json", "result.pt", "checkpoint.pt", "history.json", *pictures])
    print(f"wrote {run_dir}/ ({written})")
    return 0


def _objective(args) -> Objective | None:
    """The latent family's objective named on the command line (None: the program's default)."""
    if args.objective == "iwae":
        return IWAE(args.k, gradient=args.gradient)
    if args.warmup or args.free_bits:
        return ELBO(warmup=args.warmup, free_bits=args.free_bits)
    return None


def _adversarial(args, base: AdversarialSettings | None) -> AdversarialSettings | None:
    """The implicit family's game and regularisers: ``base`` (a zoo model's own, or None for fit's
    defaults) with the settings named on the command line in place of its own."""
    named = {
        "loss": args.gan_loss,
        "pack": args.pack,
        "ema": args.ema,
        "r1": args.r1,
        "d_steps": args.d_steps,
    }
    if all(v is None for v in named.values()):
        return base
    return (base or AdversarialSettings()).replace(**named)


def _sample(args) -> int:
    from pplgen.evaluate import sample
    from pplgen.runs import load_run, write_samples

    run_dir = Path(args.run_dir)
    result, dataset, program = load_run(run_dir, device=args.device)
    if args.seed is not None:
        torch.manual_seed(args.seed)
    if args.n < 1:
        raise DataError(f"-n must be at least 1, got {args.n}")
    batch, num = None, args.n
    if args.image:
        conditions = _image_conditions(args, dataset, program)
    elif program.takes_labels:  # a conditional program: the labels (or actions, or images) say what to draw
        conditions = _conditions(args, dataset)
    elif args.label is not None:
        raise DataError("--label applies to programs conditioned on labels; this one takes none")
    if program.takes_labels:
        num = len(conditions)
        batch = (torch.zeros(num, *dataset.event_shape, dtype=dataset.x.dtype), conditions)
    samples = sample(result, num, batch, mean=args.mean)
    out = write_samples(samples, dataset, Path(args.out or run_dir / "samples"))
    print(f"wrote {num} samples to {out}")
    if batch is not None and dataset.meta.get("condition_shape") is not None:
        pictures = out.with_name(f"{out.stem}_images.png")
        _condition_picture(batch[1], dataset.meta["condition_shape"], pictures)
        print(f"wrote the image each sample was drawn from, in the same order, to {pictures}")
    return 0


def _conditions(args, dataset) -> torch.Tensor:
    """What each sample is drawn under: ``--label`` for all of them, else the data's labels in turn; for
    data whose ``y`` holds actions (floats, as a world model's trajectories), the data's actions in turn;
    for data whose ``y`` holds images (``meta["condition_shape"]``), the data's images of each digit in
    turn, or of the ``--label`` digit."""
    if dataset.meta.get("condition_shape") is not None and "digit" in dataset.meta:
        return _data_images(args, dataset)
    if dataset.y.is_floating_point():
        if args.label is not None:
            raise DataError(f"--label draws a class, but {dataset.name}'s y holds actions, not class labels")
        return dataset.y[torch.arange(args.n) % len(dataset.y)]
    classes = int(dataset.y.max()) + 1
    if args.label is None:
        return torch.arange(args.n) % classes
    if not 0 <= args.label < classes:
        raise DataError(f"--label must be one of 0 .. {classes - 1} for {dataset.name}, got {args.label}")
    return torch.full((args.n,), args.label, dtype=torch.long)


def _data_images(args, dataset) -> torch.Tensor:
    """``-n`` of the data's images, ``(n, H W)``: the first of each digit in turn, then the second, ...;
    with ``--label``, its images of that digit in turn."""
    digits = dataset.meta["digit"]
    classes = digits.unique().tolist()
    if args.label is not None:
        if args.label not in classes:
            raise DataError(f"--label must be one of {classes} for {dataset.name}, got {args.label}")
        classes = [args.label]
    rows = {d: (digits == d).nonzero().flatten() for d in classes}
    picks = [rows[classes[i % len(classes)]] for i in range(args.n)]
    index = torch.stack([pick[(i // len(classes)) % len(pick)] for i, pick in enumerate(picks)])
    return dataset.y[index]


def _image_conditions(args, dataset, program) -> torch.Tensor:
    """The ``--image`` files in the data's condition form, each repeated ``-n`` times: ``(files n, H W)``."""
    from pplgen.data.paired import condition_image

    shape = dataset.meta.get("condition_shape")
    if shape is None or not program.takes_labels:
        raise DataError(
            f"--image applies to runs conditioned on images (image2speech on digit_speech); the data set "
            f"{dataset.name} has no image condition"
        )
    if args.label is not None:
        raise DataError("--image and --label both choose what to draw: give one of them")
    images = []
    for name in args.image:
        try:
            images.append(condition_image(_read_picture(Path(name)), shape).reshape(-1))
        except DataError as exc:
            raise DataError(f"--image {name}: {exc}") from exc
    return torch.stack(images).to(dataset.y.dtype).repeat_interleave(args.n, 0)


def _read_picture(path: Path):
    """A PNG or JPEG (``matplotlib.image.imread``) or a ``.npy`` array (no pickles) as an array."""
    if not path.is_file():
        raise DataFileError(f"--image: no file {path}")
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        import matplotlib.image

        return matplotlib.image.imread(path)
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read it as a PNG, JPEG or .npy array: {type(exc).__name__}: {exc}") from exc


def _condition_picture(images: torch.Tensor, shape, path: Path) -> None:
    """The images the samples were drawn from, one per sample in the same order, as a PNG grid."""
    import matplotlib.pyplot as plt

    from pplgen import plot

    figure = plot.image_grid(images.float().cpu().clamp(0, 1), shape, ncols=min(len(images), 10))
    figure.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(figure)


def _evaluate(args) -> int:
    from pplgen.evaluate import summary
    from pplgen.runs import load_run

    torch.manual_seed(args.seed)
    result, dataset, program = load_run(Path(args.run_dir), split=args.split, device=args.device)
    if args.limit is not None:
        dataset = dataset.subset(args.limit)
    ais = AISSettings(steps=args.ais_steps, leapfrog_steps=args.leapfrog) if args.method == "ais" else None
    row = summary(
        result,
        dataset,
        num_samples=args.num_samples,
        labels=program.takes_labels,
        method=args.method,
        ais=ais,
    )
    if not args.json:
        _print_row(row)
    if args.diagnose:
        diagnosis = _diagnose(args, result, dataset, program)
        row["diagnosis"] = _plain(diagnosis.to_dict())
        if not args.json:
            print(diagnosis.table(), flush=True)
        _khat_picture(diagnosis, Path(args.run_dir), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(row))
    return 0


def _print_row(row: dict) -> None:
    """The evaluation in one line (two for a conditional program's label accuracy)."""
    if "nats" in row:
        print(
            f"{row['data']} {row['split']} (n={row['n']}): {row['nats']:.3f} ± {row['nats_stderr']:.3f} "
            "nats per data point, "
            f"{row['bits_per_dim']:.4f} bits/dim ({row['estimator']})",
            flush=True,
        )
    elif "fd" in row:
        print(
            f"{row['data']} {row['split']}: Fréchet distance {row['fd']:.2f}, "
            f"precision {row['precision']:.3f}, recall {row['recall']:.3f} on {row['num_samples']} samples "
            f"(features of a classifier with {row['classifier_accuracy']:.1%} test accuracy)"
        )
        if "label_accuracy" in row:
            print(f"samples of the class asked for, as the classifier sees them: {row['label_accuracy']:.1%}")
    elif "modes" in row:
        print(
            f"{row['data']} {row['split']}: {row['modes']}/{row['of_modes']} modes covered, "
            f"{row['hq_percent']:.1f}% high-quality samples, reverse KL {row['reverse_kl']:.3f}"
        )
    else:
        print(row["note"])


def _diagnose(args, result, dataset, program):
    """``pplgen.diagnose`` on the evaluated points, with the command line's settings."""
    from pplgen.diagnostics import diagnose

    if args.diagnose_samples < 25:
        raise DataError(
            f"--diagnose-samples must be at least 25 for a Pareto fit, got {args.diagnose_samples}"
        )
    nuts = {"auto": None, "yes": True, "no": False}[args.nuts]
    tensors = dataset.tensors(program.takes_labels)
    return diagnose(result, tensors, num_samples=args.diagnose_samples, nuts=nuts, seed=args.seed)


def _khat_picture(diagnosis, run_dir: Path, file) -> None:
    """``khat.png`` in the run folder, when there are per-point k̂ values."""
    if diagnosis.khat_points is None:
        return
    import matplotlib.pyplot as plt

    from pplgen import plot

    figure = plot.khat(diagnosis.khat_points, sample_size=diagnosis.num_samples)
    figure.savefig(run_dir / "khat.png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    print(f"wrote {run_dir / 'khat.png'} (Pareto k\u0302 per data point)", file=file)


def _plain(value):
    """``value`` as JSON-ready data: tensors as lists, NaN and infinities as None."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _demo(args) -> int:
    from pplgen.demo import run_demo

    run_demo(Path(args.out), epochs_scale=args.scale, device=args.device)
    return 0


def _program_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="a zoo model setting, e.g. --set hidden=500"
    )
    p.add_argument(
        "--data-option", action="append", metavar="KEY=VALUE", help="a data set option, e.g. length=4000"
    )
    p.add_argument("--labels", action="store_true", help="your program takes the labels too: model(x, y)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pplgen", description="Deep generative models as Pyro programs.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("inspect", help="print a program's sites, plates, edges and family")
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--data", required=True, choices=datasets.NAMES)
    p.add_argument("--out", help="write the plate diagram to this PNG")
    _program_options(p)
    p.add_argument("--params", action="store_true", help="show parameter sites too")
    p.add_argument("--batch-size", type=int, default=8, help="data points to trace the program with")
    p.set_defaults(run=_inspect)

    p = sub.add_parser("fit", help="train a program and write a run directory")
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--data", required=True, choices=datasets.NAMES)
    _program_options(p)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--patience", type=int, default=None, help="early stopping on the validation metric")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="run directory (default runs/MODEL-DATA)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    p.add_argument("--checkpoint-every", type=int, default=1, help="epochs between checkpoints")
    p.add_argument(
        "--nproc",
        type=_processes,
        default=1,
        help="data-parallel processes on this machine, started by torchrun (one per GPU on CUDA); "
        "--batch-size is the global batch they share",
    )
    g = p.add_argument_group("latent models")
    g.add_argument("--objective", choices=("elbo", "iwae"), default="elbo", help="the bound to maximise")
    g.add_argument("--k", type=int, default=50, help="importance samples of the IWAE bound")
    g.add_argument("--gradient", choices=GRADIENTS, default="standard", help="IWAE's guide gradient")
    g.add_argument("--warmup", type=int, default=0, help="steps of KL warm-up (ELBO)")
    g.add_argument("--free-bits", type=float, default=0.0, help="nats per latent dimension left free (ELBO)")
    g.add_argument(
        "--guide",
        choices=("program", "auto"),
        default="program",
        help="the program's own guide (when it has one) or one built from the graph",
    )
    g.add_argument("--posterior", choices=POSTERIORS, default="normal", help="the built guide's posterior")
    g.add_argument("--flows", type=int, default=0, help="IAF steps on top of the built guide's Normal")
    g = p.add_argument_group("implicit models")
    g.add_argument("--gan-loss", choices=ADVERSARIAL_LOSSES, help="the adversarial game (non_saturating)")
    g.add_argument("--pack", type=int, help="PacGAN: samples the discriminator judges together")
    g.add_argument("--ema", type=float, help="decay of the averaged generator parameters, e.g. 0.999")
    g.add_argument("--r1", type=float, help="R1 penalty weight on real data")
    g.add_argument("--d-steps", type=int, help="discriminator steps per generator step")
    g.add_argument("--d-lr", type=float, help="the discriminator's learning rate (default: --lr)")
    p.set_defaults(run=_fit)

    p = sub.add_parser("sample", help="draw samples from a fitted run, in the data's own form")
    p.add_argument("run_dir")
    p.add_argument("-n", type=int, default=64)
    p.add_argument("--out", help="output file (the suffix follows the data: .png, .wav, .txt)")
    p.add_argument("--mean", action="store_true", help="the observation's mean given the latents")
    p.add_argument("--label", type=int, help="for a program conditioned on labels: draw this class (a digit)")
    p.add_argument(
        "--image",
        action="append",
        metavar="FILE",
        help="for a program conditioned on images (image2speech): draw -n samples from this PNG, JPEG or "
        ".npy picture (repeat for more pictures)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(run=_sample)

    p = sub.add_parser("evaluate", help="test nats and bits/dim, or sample metrics for implicit models")
    p.add_argument("run_dir")
    p.add_argument("--split", default="test", choices=("train", "valid", "test"))
    p.add_argument(
        "--num-samples", type=int, default=100, help="importance samples (or AIS chains) for latent models"
    )
    p.add_argument("--method", choices=("is", "ais"), default="is", help="latent models' estimator")
    p.add_argument("--ais-steps", type=int, default=500, help="AIS temperatures")
    p.add_argument("--leapfrog", type=int, default=10, help="AIS leapfrog steps per transition")
    p.add_argument("--limit", type=int, default=None, help="evaluate N data points drawn at random (seeded)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("inference diagnostics (latent models)")
    g.add_argument(
        "--diagnose",
        action="store_true",
        help="check the guide: Pareto k-hat per point, the bound gap, collapse; writes khat.png",
    )
    g.add_argument("--diagnose-samples", type=int, default=1000, metavar="S", help="guide draws per point")
    g.add_argument(
        "--nuts",
        choices=("auto", "yes", "no"),
        default="auto",
        help="run NUTS beside the guide (auto: for at most 50 latent numbers)",
    )
    p.set_defaults(run=_evaluate)

    add_codec_parsers(sub)
    add_anomaly_parser(sub)

    p = sub.add_parser("demo", help="fit one model of each family on embedded data (about a minute)")
    p.add_argument("--out", default="pplgen-demo")
    p.add_argument(
        "--scale", type=float, default=1.0, help="multiply every epoch count (0.1 for a smoke run)"
    )
    p.add_argument("--device", default="auto")
    p.set_defaults(run=_demo)
    return parser


def _one_line_warnings(command: str):
    """A ``warnings.showwarning`` that shows pplgen's own warnings as errors are shown, on one line; other
    packages' warnings as Python shows them."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__module__.startswith("pplgen"):
            print(f"pplgen {command}: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    return show


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pplgen`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(args.command)
            return args.run(args)
    except PplgenError as exc:
        print(f"pplgen {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pplgen {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped (| head)
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
