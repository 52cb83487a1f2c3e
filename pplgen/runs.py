"""Run directories: what ``pplgen fit --out RUN_DIR`` writes and ``sample``/``evaluate`` read back.

A run directory holds ``config.json`` (which program, which data, the fit settings: plain data),
``result.pt`` (the trained parameters, read with ``weights_only=True``), ``checkpoint.pt`` (the
training state for ``--resume``), ``history.json`` and the pictures ``graph.png`` and ``curves.png``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from pplgen import data as datasets  # noqa: E402
from pplgen import models, plot  # noqa: E402
from pplgen.errors import DataError, DataFileError, ModelError, UnknownNameError  # noqa: E402
from pplgen.infer.gan_objectives import AdversarialSettings  # noqa: E402
from pplgen.infer.result import FitResult  # noqa: E402
from pplgen.render import draw  # noqa: E402

__all__ = ["Program", "load_run", "resolve_program", "save_run", "write_samples"]


@dataclass
class Program:
    """A model program (and guide) with the plain-data spec that rebuilds it."""

    model: Callable
    guide: Callable | None
    spec: dict
    takes_labels: bool = False  # the program is called as model(x, y) with the data's labels
    adversarial: AdversarialSettings | None = None  # a zoo model's own training game (implicit family)


def _load_file(path: Path, names: list[str]) -> list[Callable]:
    if not path.is_file():
        raise DataFileError(f"no program file {path}")
    module_name = f"pplgen_user_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ModelError(f"importing {path} raised {type(exc).__name__}: {exc}") from exc
    found = []
    for name in names:
        fn = getattr(module, name, None)
        if not callable(fn):
            raise UnknownNameError(f"{path} has no callable {name!r}")
        found.append(fn)
    return found


def resolve_program(spec: str | dict, dataset, config: dict | None = None, labels: bool = False) -> Program:
    """A zoo name (``vae``) or ``path/file.py:model[,guide]`` as a :class:`Program` for ``dataset``.

    Args:
        spec: the name or path, or the plain-data spec saved in a run's ``config.json``.
        dataset: the data the program is built for (zoo models read their sizes from it).
        config: keyword arguments for a zoo model (``--set hidden=500``).
        labels: a user's program takes the data's labels, ``model(x, y)`` (zoo models say so themselves).
    """
    if isinstance(spec, str):
        if ":" in spec:
            path, _, names = spec.rpartition(":")
            spec = {"file": str(Path(path).resolve()), "names": names.split(","), "labels": labels}
        else:
            spec = {"zoo": spec, "config": dict(config or {})}
    if config and "zoo" not in spec:
        raise UnknownNameError(
            "model settings (--set) apply to zoo models; configure your own program in its file"
        )
    if "zoo" in spec:
        module = models.build(spec["zoo"], dataset, **spec.get("config", {}))
        spec = {"zoo": spec["zoo"], "config": module.config}
        takes_labels = bool(getattr(module, "takes_labels", False))
        guide, adversarial = getattr(module, "guide", None), getattr(module, "adversarial", None)
        return Program(module.model, guide, spec, takes_labels, adversarial)
    names = spec["names"]
    if not 1 <= len(names) <= 2:
        raise UnknownNameError(f"expected path.py:model or path.py:model,guide, got names {names}")
    programs = _load_file(Path(spec["file"]), names)
    guide = programs[1] if len(programs) == 2 else None
    return Program(programs[0], guide, spec, bool(spec.get("labels", False)))


def save_run(run_dir: Path, result: FitResult, program: Program, data: dict) -> None:
    """Write the run: config, parameters, history and pictures."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"program": program.spec, "data": data, "family": result.family, "settings": result.settings}
    _write_text(run_dir / "config.json", json.dumps(config, indent=2))
    _write_text(run_dir / "history.json", json.dumps(result.history, indent=2))
    result.save(run_dir / "result.pt")
    ax = draw(result.graph)
    ax.figure.savefig(run_dir / "graph.png", dpi=120, bbox_inches="tight")
    curves = plot.training_curves(result.history)
    curves.axes[0].set_title(f"{program_label(program.spec)} on {data['name']}")
    curves.savefig(run_dir / "curves.png", dpi=120, bbox_inches="tight")
    plt.close(ax.figure)
    plt.close(curves)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def program_label(spec: dict) -> str:
    return spec["zoo"] if "zoo" in spec else f"{Path(spec['file']).name}:{','.join(spec['names'])}"


def load_run(run_dir: Path, split: str = "train", device: str = "auto"):
    """The fitted result, the data set (``split``) and the :class:`Program` of a run directory."""
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise DataFileError(
            f"{run_dir} is not a run directory: no config.json (write one with pplgen fit --out)"
        )
    config = json.loads(config_path.read_text())
    dataset = datasets.load(config["data"]["name"], split=split, **config["data"].get("options", {}))
    program = resolve_program(config["program"], dataset)
    # a run trained with the graph-built guide (pplgen fit --guide auto) rebuilds it from its options
    guide = None if "guide" in config.get("settings", {}) else program.guide
    result = FitResult.load(run_dir / "result.pt", program.model, guide, device=device)
    return result, dataset, program


def write_samples(samples: torch.Tensor, dataset, out: Path) -> Path:
    """Samples in the data's own form: a PNG grid of images, a WAV file of audio, text, or a 2-D scatter.

    ``samples`` is one tensor whose first dimension indexes the samples, as :func:`pplgen.sample` gives
    it for a program with one observed site or one observed chain; the steps of a chain (``(n, T,
    x_dim)`` from a deep Markov model that reads an image as rows) are shown as the image's rows.
    """
    if isinstance(samples, dict):
        raise DataError(
            f"expected the samples of one observed site or chain, got a dict of {len(samples)} sites "
            f"({', '.join(map(repr, samples))}); write the one that holds the data"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    samples = samples.detach().cpu()
    if dataset.kind == "audio":
        out = out.with_suffix(".wav")
        rate = int(dataset.meta["sample_rate"])
        gap = torch.zeros(len(samples), rate // 4)  # a quarter second of silence after each sample
        clips = torch.cat([samples.reshape(len(samples), -1).float(), gap], dim=1)
        pcm = (clips.reshape(-1).clamp(-1, 1) * 32767).to(torch.int16)
        with wave.open(str(out), "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(rate)
            f.writeframes(pcm.numpy().tobytes())
        return out
    if dataset.kind == "token":
        out = out.with_suffix(".txt")
        vocab = dataset.meta["vocab"]
        out.write_text("\n\n".join("".join(vocab[i] for i in row.tolist()) for row in samples.long()))
        return out
    out = out.with_suffix(".png")
    if dataset.image_shape is not None:
        pixels = math.prod(dataset.image_shape)
        if samples.dim() == 0 or samples[0].numel() != pixels:
            raise DataError(
                f"expected samples of {pixels} pixels each to show as {tuple(dataset.image_shape)} images "
                f"of {dataset.name!r}, got samples of shape {tuple(samples.shape)}"
            )
        levels = (dataset.num_levels - 1) if dataset.kind == "discrete" else 1
        figure = plot.image_grid(samples.float() / levels, dataset.image_shape)
    elif samples.reshape(len(samples), -1).shape[1] == 2:
        figure = plot.scatter(samples.reshape(-1, 2), dataset.meta.get("modes"))
    else:
        raise UnknownNameError(f"no picture for samples of shape {tuple(samples.shape)} from {dataset.name}")
    figure.savefig(out, dpi=150, bbox_inches="tight")
    plt.close(figure)
    return out
