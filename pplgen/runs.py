"""Run directories: what ``pplgen fit --out RUN_DIR`` writes and ``sample``/``evaluate`` read back.

A run directory holds ``config.json`` (which program, which data, the fit settings: plain data),
``result.pt`` (the trained parameters, read with ``weights_only=True``), ``checkpoint.pt`` (the
training state for ``--resume``), ``history.json`` and the pictures ``graph.png`` and ``curves.png``,
with those that suit the data and the program (:func:`run_pictures`): reconstructions, codes and
traversals of a latent space, drawn audio, drawn 2-D points. ``pplgen evaluate --diagnose`` adds
``khat.png``.
"""

from __future__ import annotations

import importlib.util
import itertools
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
from matplotlib.figure import Figure  # noqa: E402

from pplgen import data as datasets  # noqa: E402
from pplgen import models, plot  # noqa: E402
from pplgen.errors import DataError, DataFileError, ModelError, UnknownNameError  # noqa: E402
from pplgen.evaluate import decode, encode, reconstruct, sample  # noqa: E402
from pplgen.infer.checkpoint import write_failed  # noqa: E402
from pplgen.infer.gan_objectives import AdversarialSettings  # noqa: E402
from pplgen.infer.result import FitResult  # noqa: E402
from pplgen.render import draw  # noqa: E402

__all__ = [
    "Program",
    "load_run",
    "resolve_program",
    "run_pictures",
    "samples_figure",
    "save_run",
    "write_samples",
]

LATENT_POINTS = 1000  # validation points encoded for latents.png and traversal.png
RECONSTRUCTIONS = 16  # images beside their reconstructions
TRAVERSED_DIMS = 6  # the code dimensions that vary most over the data, one row of traversal.png each
SWEEP = torch.linspace(-2.5, 2.5, 7)  # offsets from the mean code, one column of traversal.png each
CLIPS = 4  # drawn audio clips
POINTS_2D = 2500  # drawn points over the modes of a 2-D data set


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


def save_run(run_dir: Path, result: FitResult, program: Program, data: dict) -> list[str]:
    """Write the run: config, parameters, history and pictures; returns the names of the pictures written.

    Besides the plate diagram and the training curves, the pictures that suit the data and the program
    (:func:`run_pictures`, drawn on the validation split). A picture that cannot be drawn is named in a
    one-line warning on stderr; it never fails the run.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"program": program.spec, "data": data, "family": result.family, "settings": result.settings}
    _write_text(run_dir / "config.json", json.dumps(config, indent=2))
    _write_text(run_dir / "history.json", json.dumps(result.history, indent=2))
    result.save(run_dir / "result.pt")

    def curves():
        figure = plot.training_curves(result.history)
        figure.axes[0].set_title(f"{program_label(program.spec)} on {data['name']}")
        return figure

    pictures = {"graph.png": lambda: draw(result.graph).figure, "curves.png": curves}
    try:
        valid = datasets.load(data["name"], split="valid", **data.get("options", {}))
    except Exception as exc:  # the run is written; only the pictures of the data are missing
        _warn(f"no pictures of the data: loading the validation split raised {type(exc).__name__}: {exc}")
    else:
        pictures.update(run_pictures(result, program, valid))
    return [name for name, paint in pictures.items() if _save_picture(run_dir / name, paint)]


def _save_picture(path: Path, paint: Callable[[], Figure]) -> bool:
    """Draw and save one picture, closing its figure; a failure is a one-line warning, not an error."""
    try:
        figure = paint()
    except Exception as exc:  # a picture is never worth a failed run
        _warn(f"{path.name} not drawn: {type(exc).__name__}: {exc}")
        return False
    try:
        figure.savefig(path, dpi=120, bbox_inches="tight")
    except Exception as exc:
        _warn(f"{path.name} not saved: {type(exc).__name__}: {exc}")
        return False
    finally:
        plt.close(figure)
    return True


def _warn(message: str, kind: str = "warning") -> None:
    """One line on stderr: the first line of ``message``."""
    first = message.strip().splitlines()[0] if message.strip() else message
    print(f"pplgen: {kind}: {first}", file=sys.stderr)


def run_pictures(result: FitResult, program: Program, dataset) -> dict[str, Callable[[], Figure]]:
    """The pictures that suit a fit and its data, by file name, each a function that draws its figure.

    - a model with local latents and a guide: on images ``reconstructions.png`` (data beside their
      reconstructions), ``latents.png`` (the codes of up to 1,000 points, coloured by label) and, for
      continuous latents, ``traversal.png`` (images decoded along the codes' most varying dimensions);
      on other data ``latents.png`` only (neither when the data set's ``y`` holds actions, not labels);
    - audio: ``samples.png`` (waveforms) and ``spectrogram.png`` of a few drawn clips, unless drawing
      is slow (an autoregressive observation such as WaveNet's: ``pplgen sample`` writes them as WAV);
    - 2-D points: ``samples.png``, drawn points over the true modes.
    """
    pictures: dict[str, Callable[[], Figure]] = {}
    if _has_codes(result):
        latents = _Latents(result, program, dataset)
        if dataset.image_shape is not None:
            pictures["reconstructions.png"] = latents.reconstructions
        if dataset.y is None or not dataset.y.is_floating_point():  # a float y holds actions, not labels
            pictures["latents.png"] = latents.scatter
        continuous = not any(
            d["discrete"] for _, d in result.graph.nodes(data=True) if d["kind"] == "latent" and d["local"]
        )
        if dataset.image_shape is not None and continuous:
            pictures["traversal.png"] = latents.traversal
    if dataset.kind == "audio":
        if any(d.get("autoregressive") for _, d in result.graph.nodes(data=True) if d["kind"] == "observed"):
            _warn(
                "no audio pictures: drawing clips from an autoregressive model is slow (a minute for four "
                "one-second clips on a CPU); pplgen sample RUN_DIR writes them as WAV",
                kind="note",
            )
        else:
            clips = _Clips(result, program, dataset)
            pictures["samples.png"], pictures["spectrogram.png"] = clips.waveform, clips.spectrogram
    elif (
        dataset.image_shape is None and dataset.kind in ("binary", "continuous") and dataset.x[0].numel() == 2
    ):
        pictures["samples.png"] = lambda: samples_figure(
            sample(result, POINTS_2D, dataset.tensors(program.takes_labels)), dataset
        )
    return pictures


def _has_codes(result: FitResult) -> bool:
    """The fit has a guide and its model a latent inside a data plate: data points have codes."""
    return result.guide is not None and any(
        d["kind"] == "latent" and d["local"] for _, d in result.graph.nodes(data=True)
    )


def _unit(images: torch.Tensor, dataset) -> torch.Tensor:
    """Pixel values on [0, 1]: K-level data divided by K - 1."""
    levels = (dataset.num_levels - 1) if dataset.kind == "discrete" else 1
    return (images.float() / levels).clamp(0, 1)


class _Latents:
    """Pictures of a fit's latent space on a data set, sharing one encoding of its points."""

    def __init__(self, result: FitResult, program: Program, dataset):
        self.result, self.dataset = result, dataset.subset(LATENT_POINTS)
        self.tensors = self.dataset.tensors(program.takes_labels)
        self.split = {"valid": "validation"}.get(dataset.split, dataset.split)
        self._codes: dict[str, torch.Tensor] | None = None

    @property
    def codes(self) -> dict[str, torch.Tensor]:
        if self._codes is None:
            self._codes = encode(self.result, self.tensors, by_site=True)
        return self._codes

    def flat(self) -> tuple[torch.Tensor, list[str]]:
        """The codes ``(N, D)`` and the name of each column, ``z[3]``."""
        names = [
            f"{site}[{', '.join(map(str, index))}]"
            for site, value in self.codes.items()
            for index in itertools.product(*map(range, value.shape[1:]))
        ]
        return torch.cat([v.reshape(len(v), -1) for v in self.codes.values()], dim=1), names

    def reconstructions(self) -> Figure:
        shown = tuple(t[:RECONSTRUCTIONS] for t in self.tensors)
        recon = reconstruct(self.result, shown)
        x, image_shape = shown[0], self.dataset.image_shape
        figure = plot.reconstructions(_unit(x, self.dataset), _unit(recon, self.dataset), image_shape)
        figure.suptitle(f"{len(x)} {self.split} images, decoded from their mean codes", fontsize="medium")
        return figure

    def scatter(self) -> Figure:
        codes, _ = self.flat()
        figure = plot.latent_scatter(codes, self.dataset.y)
        figure.axes[0].set_title(f"codes (posterior means) of {len(codes)} {self.split} points")
        return figure

    def traversal(self) -> Figure:
        """The mean code, one of its most varying dimensions at a time moved by the sweep's offsets."""
        codes, names = self.flat()
        centre, order = codes.mean(0), codes.var(0).argsort(descending=True)[:TRAVERSED_DIMS]
        grid = centre.repeat(len(order), len(SWEEP), 1)  # (R, C, D)
        for row, dim in enumerate(order.tolist()):
            grid[row, :, dim] += SWEEP
        points = grid.reshape(-1, codes.shape[1])
        given = tuple(t[:1].expand(len(points), *t.shape[1:]) for t in self.tensors)  # labels: the first's
        images = _unit(decode(self.result, points, data=given), self.dataset)
        figure = plot.latent_traversal(
            images.reshape(*grid.shape[:2], -1), self.dataset.image_shape, SWEEP, [names[d] for d in order]
        )
        figure.axes[0].set_xlabel("offset from the mean code of the data")
        figure.axes[0].set_title("one code dimension moved per row (most varying first)", fontsize="medium")
        return figure


class _Clips:
    """Waveforms and spectrograms of a few clips drawn from a fit, drawn once for both pictures."""

    def __init__(self, result: FitResult, program: Program, dataset):
        self.result, self.dataset, self.program = result, dataset, program
        self._clips: torch.Tensor | None = None

    @property
    def clips(self) -> torch.Tensor:
        if self._clips is None:
            drawn = sample(self.result, CLIPS, self.dataset.tensors(self.program.takes_labels))
            self._clips = drawn.reshape(CLIPS, -1).float().cpu()
        return self._clips

    def waveform(self) -> Figure:
        return plot.waveform(self.clips, self.dataset.meta["sample_rate"])

    def spectrogram(self) -> Figure:
        return plot.spectrogram(self.clips, self.dataset.meta["sample_rate"])


def _write_text(path: Path, text: str) -> None:
    """Write ``path`` atomically: a failed write (a full disk) is a CheckpointError; the old file is kept."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_failed(path, exc, "run file") from exc


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
    figure = samples_figure(samples, dataset)
    figure.savefig(out, dpi=150, bbox_inches="tight")
    plt.close(figure)
    return out


def samples_figure(samples: torch.Tensor, dataset) -> Figure:
    """Samples of image data as a grid, 2-D samples as points over the data's modes, or trajectories as
    lines over time beside as many of the data's."""
    samples = samples.detach().cpu()
    if dataset.image_shape is not None:
        pixels = math.prod(dataset.image_shape)
        if samples.dim() == 0 or samples[0].numel() != pixels:
            raise DataError(
                f"expected samples of {pixels} pixels each to show as {tuple(dataset.image_shape)} images "
                f"of {dataset.name!r}, got samples of shape {tuple(samples.shape)}"
            )
        return plot.image_grid(_unit(samples, dataset), dataset.image_shape)
    if dataset.x.dim() == 3 and samples.dim() == 3:  # trajectories (N, T + 1, obs_dim)
        names = dataset.meta.get("observation_names")
        return plot.trajectories(samples, dataset.x[: len(samples)], names)
    if samples.reshape(len(samples), -1).shape[1] == 2:
        return plot.scatter(samples.reshape(-1, 2), dataset.meta.get("modes"))
    raise UnknownNameError(f"no picture for samples of shape {tuple(samples.shape)} from {dataset.name}")
