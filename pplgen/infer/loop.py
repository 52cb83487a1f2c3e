"""The one training loop that all three trainers run on."""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyro
import torch
from tqdm import tqdm  # the plain bar: tqdm.auto warns in a notebook without ipywidgets

from pplgen.errors import data_scanned
from pplgen.infer.checkpoint import compare_settings, load_checkpoint, save_checkpoint
from pplgen.infer.trainer import Trainer, mean_metrics

__all__ = ["LoopSettings", "train"]

CHECKPOINT = "checkpoint.pt"
POSTFIX_EVERY = 25  # steps between updates of the progress bar's figures


@dataclass
class LoopSettings:
    """How the loop runs; every field has the default ``pplgen.fit`` uses."""

    epochs: int = 10  # passes over the training data
    batch_size: int = 128  # data points per step
    patience: int | None = None  # stop after this many epochs without a better validation metric
    min_delta: float = 0.0  # an improvement smaller than this does not count
    out: Path | None = None  # directory for checkpoint.pt; None keeps nothing on disk
    checkpoint_every: int = 1  # epochs between checkpoints
    resume: bool = False  # continue from out/checkpoint.pt when it exists
    progress: bool | None = None  # a progress bar; None shows it only on a terminal
    callbacks: Sequence[Callable[[dict], object]] = field(default_factory=tuple)  # return True to stop
    meta: dict = field(default_factory=dict)  # plain data stored with every checkpoint


def _rng_state(generator: torch.Generator) -> dict:
    version, mt, gauss = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002 - the legacy global state is what Pyro seeds
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [version, list(mt), gauss],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "shuffle": generator.get_state(),
    }


def _set_rng_state(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))  # noqa: NPY002
    generator.set_state(state["shuffle"])


def _validation(trainer: Trainer, valid: tuple[torch.Tensor, ...], batch_size: int) -> dict:
    """The validation metrics; in a data-parallel run rank 0's, sent to every rank so all decide alike."""
    if trainer.replicas is None:
        return trainer.validate(valid, batch_size)
    return trainer.replicas.from_main(lambda: trainer.validate(valid, batch_size))


def train(
    trainer: Trainer,
    data: tuple[torch.Tensor, ...],
    valid: tuple[torch.Tensor, ...] | None,
    settings: LoopSettings,
    generator: torch.Generator,
) -> list[dict]:
    """Run ``trainer`` for ``settings.epochs`` epochs over ``data`` (already on the trainer's device).

    Returns the history: one dict per epoch with the mean training metrics, the validation metrics,
    and the seconds it took. Checkpoints (parameters, optimiser state, history, every RNG state) are
    written to ``settings.out`` so that a resumed run continues exactly where the last one stopped.
    In a data-parallel run (``trainer.replicas``) each rank trains on its share of every global batch,
    and rank 0 alone shows progress, validates and writes checkpoints.
    """
    num_data = len(data[0])
    steps_per_epoch = math.ceil(num_data / settings.batch_size)
    history: list[dict] = []
    best: tuple[float, int, dict] | None = None  # (metric, epoch, params)
    checkpoint = settings.out / CHECKPOINT if settings.out is not None else None
    start = 0
    if settings.resume and checkpoint is not None and checkpoint.is_file():
        state = load_checkpoint(checkpoint, map_location=trainer.device)
        compare_settings(state.get("meta", {}), settings.meta, checkpoint)
        trainer.load_state_dict(state["trainer"])
        history = list(state["history"])
        _set_rng_state(state["rng"], generator)
        if state.get("best") is not None:
            best = (state["best"]["metric"], state["best"]["epoch"], state["best"]["params"])
        start = len(history)

    replicas = trainer.replicas  # a data-parallel run: rank 0 shows progress, validates, checkpoints
    main = replicas is None or replicas.main
    bar = tqdm(
        total=settings.epochs * steps_per_epoch,
        initial=start * steps_per_epoch,
        disable=not main or (None if settings.progress is None else not settings.progress),
        desc=type(trainer).__name__.removesuffix("Trainer").lower(),
        unit="step",
        dynamic_ncols=True,
    )
    trainer.train(True)
    with bar, pyro.validation_enabled(False), data_scanned():  # fit checked every point before training
        for epoch in range(start, settings.epochs):
            began = time.perf_counter()
            order = torch.randperm(num_data, generator=generator).to(trainer.device)
            rows = []
            for i in range(steps_per_epoch):
                index = order[i * settings.batch_size : (i + 1) * settings.batch_size]
                points = len(index)
                if replicas is not None:
                    index = replicas.shard(index)
                    points = round(replicas.weight * points)
                metrics = trainer.step(tuple(t[index] for t in data), num_data)
                rows.append((points, metrics))
                bar.update()
                if not bar.disable and i % POSTFIX_EVERY == 0:  # reading a GPU's loss waits for it
                    bar.set_postfix({k: f"{float(v):.4g}" for k, v in metrics.items()}, refresh=False)
            row = {"epoch": epoch + 1, **mean_metrics(rows, replicas)}
            if valid is not None:
                row.update(_validation(trainer, valid, settings.batch_size))
            row["time_s"] = time.perf_counter() - began
            history.append(row)

            stop = any(callback(row) is True for callback in settings.callbacks)
            metric = row.get(trainer.monitor)
            if metric is not None and math.isfinite(metric):
                if best is None or metric < best[0] - settings.min_delta:
                    best = (metric, epoch + 1, trainer.params.state_dict())
                elif settings.patience is not None and epoch + 1 - best[1] >= settings.patience:
                    stop = True
            if main and checkpoint is not None and ((epoch + 1) % settings.checkpoint_every == 0 or stop):
                save_checkpoint(
                    checkpoint,
                    {
                        "trainer": trainer.state_dict(),
                        "history": history,
                        "rng": _rng_state(generator),
                        "best": None
                        if best is None
                        else dict(zip(("metric", "epoch", "params"), best, strict=True)),
                        "meta": settings.meta,
                    },
                )
            if stop:
                break

    if settings.patience is not None and best is not None:
        trainer.params.load_state_dict(copy.deepcopy(best[2]))
        history[-1]["restored_epoch"] = best[1]
    trainer.finish()
    return history
