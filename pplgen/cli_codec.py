"""``pplgen compress`` and ``pplgen decompress``: a fitted run codes data into bytes and back."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from pplgen.errors import DataError, DataFileError

__all__ = ["add_parsers", "add_points_options", "read_points"]


def _data(args, dataset, program) -> torch.Tensor:
    """What to compress: ``--input FILE.npy``, else the run's data split (``--limit`` points of it)."""
    if program.takes_labels:
        raise DataError(
            "this program is conditioned on labels, which the decoder would need too; compress with "
            "pplgen.codec.compress(result, (x, y)) in Python and keep the labels beside the bytes"
        )
    if args.input is None:
        return (dataset.subset(args.limit) if args.limit else dataset).x
    return read_points(Path(args.input), dataset)


def read_points(path: Path, dataset) -> torch.Tensor:
    """Data points from a ``.npy`` file, checked against the run's data set and cast to its dtype."""
    if not path.is_file():
        raise DataFileError(f"--input {path}: no such file")
    if path.suffix != ".npy":
        raise DataError(f"--input expects a .npy array of data points, got {path.name}")
    x = torch.from_numpy(np.load(path, allow_pickle=False))
    if tuple(x.shape[1:]) != tuple(dataset.x.shape[1:]):
        raise DataError(
            f"--input {path.name} holds data points of shape {tuple(x.shape[1:])}; the run's data "
            f"({dataset.name}) has {tuple(dataset.x.shape[1:])}"
        )
    return x.to(dataset.x.dtype)


def _compress(args) -> int:
    from pplgen.codec import compress
    from pplgen.runs import load_run

    result, dataset, program = load_run(Path(args.run_dir), split=args.split, device=args.device)
    x = _data(args, dataset, program)
    start = time.perf_counter()
    data = compress(result, x, lanes=args.lanes)
    seconds = time.perf_counter() - start
    out = Path(args.out or Path(args.run_dir) / f"{args.split}.pplz")
    out.write_bytes(data)
    values = x[0].numel() * len(x)
    print(
        f"compressed {len(x)} data points ({values} values) into {len(data)} bytes: "
        f"{8 * len(data) / max(values, 1):.4f} bits/dim, {8 * len(data) / max(len(x), 1):.1f} bits per "
        f"point, in {seconds:.1f} s ({len(x) / seconds:.0f} points/s); wrote {out}"
    )
    return 0


def _decompress(args) -> int:
    from pplgen.codec import decompress
    from pplgen.runs import load_run

    source = Path(args.file)
    if not source.is_file():
        raise DataFileError(f"{source}: no such file")
    result, _, _ = load_run(Path(args.run_dir), device=args.device)
    start = time.perf_counter()
    x = decompress(result, source.read_bytes())
    seconds = time.perf_counter() - start
    out = Path(args.out or source.with_suffix(".npy"))
    np.save(out, x.numpy())
    rate = f" ({len(x) / seconds:.0f} points/s)" if len(x) and not math.isclose(seconds, 0) else ""
    print(
        f"decompressed {len(x)} data points of shape {tuple(x.shape[1:])} in {seconds:.1f} s{rate}; "
        f"wrote {out}"
    )
    return 0


def add_points_options(p: argparse.ArgumentParser, verb: str) -> None:
    """The run and the points a command reads: ``RUN_DIR``, ``--split``, ``--input``, ``--limit``."""
    p.add_argument("run_dir")
    p.add_argument("--split", default="test", choices=("train", "valid", "test"), help=f"the data to {verb}")
    p.add_argument("--input", help=f"a .npy array of data points to {verb} instead of the split")
    p.add_argument("--limit", type=int, help=f"{verb} N points of the split drawn at random (seeded)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``compress`` and ``decompress`` to the ``pplgen`` command's subcommands."""
    p = sub.add_parser("compress", help="code data into bytes with a fitted run's model (lossless)")
    add_points_options(p, "code")
    p.add_argument("--lanes", type=int, default=16, help="rANS lanes: more is faster, 64 bits each")
    p.add_argument("--out", help="the compressed file (default RUN_DIR/SPLIT.pplz)")
    p.add_argument("--device", default="auto")
    p.set_defaults(run=_compress)

    p = sub.add_parser("decompress", help="decode bytes from pplgen compress with the same run")
    p.add_argument("run_dir")
    p.add_argument("file", help="the compressed file")
    p.add_argument("--out", help="where to write the data as .npy (default FILE with .npy)")
    p.add_argument("--device", default="auto")
    p.set_defaults(run=_decompress)
