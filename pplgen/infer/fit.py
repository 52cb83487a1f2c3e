"""``pplgen.fit``: read the program's family from its graph and train it the way that family allows."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from pathlib import Path

import networkx as nx
import pyro
import torch
from pyro.infer import ELBO as PyroELBO
from torch import nn

from pplgen.errors import GuideError, ModelError, SettingsError, UnknownNameError, program_name
from pplgen.graph import inspect
from pplgen.guides import AmortisedGuide
from pplgen.infer.adversarial import AdversarialTrainer, ALITrainer
from pplgen.infer.avb import AVBTrainer, implicit_sites
from pplgen.infer.checkpoint import program_config
from pplgen.infer.checks import as_tensors, check_guide, check_observations
from pplgen.infer.distributed import join
from pplgen.infer.exact import ExactTrainer
from pplgen.infer.gan_objectives import AdversarialSettings
from pplgen.infer.loop import LoopSettings, train
from pplgen.infer.objectives import Objective
from pplgen.infer.result import FitResult
from pplgen.infer.svi import SVITrainer
from pplgen.infer.trainer import Trainer

__all__ = ["fit", "make_trainer", "resolve_device"]

FAMILIES = ("exact", "latent", "implicit")
TRAINERS: dict[str, type[Trainer]] = {
    "exact": ExactTrainer,
    "latent": SVITrainer,
    "implicit": AdversarialTrainer,
}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is CUDA when present, else the CPU; anything else as ``torch.device`` reads it.

    Raises:
        UnknownNameError: ``torch.device`` cannot read the name, or CUDA was asked for and is absent.

    Example:
        >>> resolve_device("cpu"), resolve_device("auto").type in ("cpu", "cuda")
        (device(type='cpu'), True)
        >>> resolve_device("gpu")
        Traceback (most recent call last):
            ...
        pplgen.errors.UnknownNameError: unknown device 'gpu': expected 'auto', 'cpu', 'cuda' or 'cuda:N'
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UnknownNameError(
            f"unknown device {device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UnknownNameError(f"device {str(device)!r} was asked for, but CUDA is not available here")
    return device


def _check_family(graph: nx.DiGraph, family: str | None) -> str:
    found = graph.graph["family"]
    if family is None:
        return found
    if family not in FAMILIES:
        raise UnknownNameError(f"unknown family {family!r}: expected one of {', '.join(FAMILIES)}")
    if family != found:
        raise ModelError(
            f"family {family!r} was asked for, but the program is {found}: {graph.graph['reason']}"
        )
    return family


def make_trainer(
    family: str,
    model: Callable,
    guide: Callable | None,
    batch: tuple[torch.Tensor, ...],
    device: torch.device,
    *,
    discriminator: nn.Module | None = None,
    objective: Objective | PyroELBO | None = None,
    lr: float = 1e-3,
    d_lr: float | None = None,
    guide_options: dict | None = None,
    adversarial: AdversarialSettings | None = None,
) -> Trainer:
    """Inspect the program on ``batch``, check the guide against it, and build its family's trainer.

    A latent model given no guide gets an :class:`AmortisedGuide` (with ``guide_options``), built on
    ``batch``; the trainer's ``guide`` is then that guide. A latent model whose guide samples a latent
    through ``pplgen.Implicit`` (no log q) trains with :class:`AVBTrainer`; an implicit model with a guide
    trains with :class:`ALITrainer`.
    """
    graph = inspect(model, *batch)
    family = _check_family(graph, family)
    if family == "latent":
        if guide is None:
            guide = AmortisedGuide(model, **(guide_options or {}))
        if isinstance(guide, AmortisedGuide):
            guide.build(*batch)
        check_guide(model, guide, graph, batch)
        if implicit_sites(guide, batch):
            return AVBTrainer(
                model,
                guide,
                graph,
                device,
                lr=lr,
                discriminator=discriminator,
                d_lr=d_lr,
                objective=objective,
            )
        return SVITrainer(model, guide, graph, device, lr=lr, objective=objective)
    if guide is not None and family == "exact":
        raise GuideError(
            f"the model {program_name(model)!r} has no latent sites ({graph.graph['reason']}), "
            "so a guide has nothing to infer: drop guide="
        )
    if family == "implicit":
        if objective is not None:
            raise ModelError(
                f"the program is implicit ({graph.graph['reason']}), so no likelihood exists for "
                f"{type(objective).__name__} to bound: it trains adversarially (adversarial="
                "AdversarialSettings(...)); give the observed site a likelihood to train it with an ELBO"
            )
        if guide is not None:
            check_guide(model, guide, graph, batch)
        trainer = ALITrainer if guide is not None else AdversarialTrainer
        return trainer(
            model, guide, graph, device, lr=lr, discriminator=discriminator, d_lr=d_lr, settings=adversarial
        )
    return ExactTrainer(model, None, graph, device, lr=lr)


def check_settings(counts: dict[str, int | None], rates: dict[str, float | None], valid_fraction: float):
    """Refuse, with a :class:`SettingsError` naming the setting and its value, a count (epochs, points)
    that is not a whole number of at least 1, a rate that is negative or not finite (0 freezes the
    program's parameters, as when only a discriminator should learn), or a held-out fraction outside
    [0, 1). None means unset."""
    for name, value in counts.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, Integral) or value < 1):
            raise SettingsError(f"{name} should be a whole number, at least 1; got {value!r}")
    for name, value in rates.items():
        number = isinstance(value, Real) and not isinstance(value, bool)
        if value is not None and not (number and math.isfinite(value) and value >= 0):
            raise SettingsError(f"{name} should be a number, at least 0; got {value!r}")
    if not (isinstance(valid_fraction, Real) and 0.0 <= valid_fraction < 1.0):
        raise SettingsError(f"valid_fraction should lie in [0, 1); got {valid_fraction!r}")


def _split(tensors, valid, valid_fraction: float, generator: torch.Generator):
    if valid is not None:
        return tensors, as_tensors(valid, name="valid")
    n = len(tensors[0])
    held = int(round(n * valid_fraction))
    if held == 0 or held == n:
        return tensors, None
    order = torch.randperm(n, generator=generator)
    return tuple(t[order[held:]] for t in tensors), tuple(t[order[:held]] for t in tensors)


def fit(
    model: Callable,
    data,
    guide: Callable | None = None,
    *,
    family: str | None = None,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    d_lr: float | None = None,
    device: str | torch.device = "auto",
    valid=None,
    valid_fraction: float = 0.1,
    patience: int | None = None,
    seed: int | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    checkpoint_every: int = 1,
    discriminator: nn.Module | None = None,
    objective: Objective | PyroELBO | None = None,
    adversarial: AdversarialSettings | None = None,
    progress: bool | None = None,
    callbacks: Sequence[Callable[[dict], object]] = (),
) -> FitResult:
    """Train any Pyro program on ``data`` the way its family allows.

    The program is called as ``model(*batch)`` (and ``guide(*batch)``) on mini-batches of ``data``,
    the calling convention of Pyro's ``SVI``. Its graph decides the trainer: exact maximum likelihood
    when every random choice is observed, amortised SVI with ``guide`` when there are latent sites,
    adversarial training when an observed site is :class:`pplgen.Implicit`.

    Started by ``torchrun`` (or ``pplgen fit ... --nproc N``), every process runs this same call and
    together they train one program on data-parallel shares of each global batch, their gradients
    averaged before each step (:mod:`pplgen.infer.distributed`); rank 0 shows progress, validates and
    writes checkpoints, and every rank returns the same parameters.

    Args:
        model: the model program.
        data: a tensor, or a tuple of tensors, whose first dimension indexes data points.
        guide: the guide program q(z | x) for latent models; when None, an :class:`AmortisedGuide`
            is built from the model's graph (encoders for local latents, mean field for global ones).
        family: ask for a family; an error if the graph says otherwise.
        epochs: passes over the training data.
        batch_size: data points per step; in a data-parallel run, the global batch the ranks share.
        lr: Adam's learning rate for the program's parameters.
        d_lr: the discriminator's learning rate (implicit family); ``lr`` when None.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``...
        valid: validation data, like ``data``; when None, ``valid_fraction`` of ``data`` is held out.
        valid_fraction: the share of ``data`` held out for validation when ``valid`` is None (0 for none).
        patience: stop after this many epochs without a better validation metric and restore the best.
        seed: makes a CPU run repeatable.
        out: a directory to checkpoint to (``checkpoint.pt``, written atomically).
        resume: continue from ``out/checkpoint.pt`` when it exists.
        checkpoint_every: epochs between checkpoints.
        discriminator: a critic module for the implicit family (default: an MLP on the flattened event).
        objective: the latent family's objective: :class:`pplgen.infer.ELBO` (the default: analytic
            KL, optional warm-up and free bits), :class:`pplgen.infer.IWAE`, or any Pyro ELBO; models
            that enumerate discrete latents default to Pyro's ``TraceEnum_ELBO``.
        adversarial: the implicit family's game and regularisers (:class:`AdversarialSettings`: loss,
            penalties, packing, critic steps, parameter averaging); non-saturating GAN by default.
        progress: show a progress bar; None shows it only on a terminal.
        callbacks: called with each epoch's history row; one returning True stops training.

    Returns:
        A :class:`FitResult` with the trained programs, the per-epoch history and the graph.

    Raises:
        ModelError: the program raised, has nothing to train, or is not of the ``family`` asked for.
        GuideError: the guide does not match the model's latents, or a guide came with an exact model.
        DataError: the data do not fit the program.
        UnknownNameError: an unknown ``family`` or ``device``.

    References:
        Ranganath, Gerrish & Blei (2014), "Black box variational inference".
        Kingma & Welling (2014), "Auto-encoding variational Bayes".
        Goodfellow, Pouget-Abadie, Mirza, Xu, Warde-Farley, Ozair, Courville & Bengio (2014), "Generative
        adversarial nets".
        The dispatch on the graph is pplgen's own.

    Example:
        A latent model whose exact posterior, :math:`q(z \\mid x) = N(x/2, 1/2)`, the guide's family
        holds; amortised SVI finds it:

        >>> import pyro.distributions as dist
        >>> def model(x):
        ...     with pyro.plate("data", len(x)):
        ...         z = pyro.sample("z", dist.Normal(0.0, 1.0))
        ...         pyro.sample("x", dist.Normal(z, 1.0), obs=x)
        >>> class Encoder(nn.Module):  # q(z | x) = N(a x + b, s^2)
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.loc = nn.Linear(1, 1)
        ...         self.log_scale = nn.Parameter(torch.zeros(()))
        ...     def guide(self, x):
        ...         loc = self.loc(x.unsqueeze(-1)).squeeze(-1)
        ...         with pyro.plate("data", len(x)):
        ...             pyro.sample("z", dist.Normal(loc, self.log_scale.exp()))
        >>> _ = torch.manual_seed(0)
        >>> encoder, x = Encoder(), 2**0.5 * torch.randn(64)  # x ~ N(0, 2), the model's marginal
        >>> result = fit(model, x, encoder.guide, epochs=40, batch_size=32, lr=0.05, seed=0, progress=False)
        >>> result.family, sorted(result.history[-1])[:3]
        ('latent', ['active_units', 'epoch', 'kl'])
        >>> round(encoder.loc.weight.item(), 1), round(encoder.log_scale.exp().item() ** 2, 1)  # a, s^2
        (0.5, 0.5)
    """
    check_settings(
        counts={"epochs": epochs, "batch_size": batch_size, "checkpoint_every": checkpoint_every,
                "patience": patience},
        rates={"lr": lr, "d_lr": d_lr},
        valid_fraction=valid_fraction,
    )  # fmt: skip
    device = resolve_device(device)
    replicas = join(device)  # None unless torchrun (or pplgen fit --nproc) started this process
    if replicas is not None:
        device = replicas.device  # on CUDA, the GPU of this rank
        # one seed for every rank: the same split, the same global batches
        seed = replicas.from_main(lambda: seed if seed is not None else int(torch.randint(2**31, ())))
    if seed is not None:
        pyro.set_rng_seed(seed)
    generator = torch.Generator().manual_seed(seed if seed is not None else int(torch.randint(2**62, ())))
    tensors = as_tensors(data)
    train_data, valid_data = _split(tensors, valid, valid_fraction, generator)
    check_observations(model, train_data)
    if valid_data is not None:
        check_observations(model, valid_data)

    train_data = tuple(t.to(device) for t in train_data)
    valid_data = None if valid_data is None else tuple(t.to(device) for t in valid_data)
    first = tuple(t[:batch_size] for t in train_data)
    trainer = make_trainer(
        family,
        model,
        guide,
        first,
        device,
        discriminator=discriminator,
        objective=objective,
        lr=lr,
        d_lr=d_lr,
        adversarial=adversarial,
    )
    guide = trainer.guide
    trainer.replicas = replicas
    trainer.setup(first, len(train_data[0]))
    if replicas is not None:  # rank 0 keeps the single-process noise; the others draw their own
        pyro.set_rng_seed(seed + replicas.rank)
    for plate in trainer.graph.graph["data_plates"]:  # traced on one batch; the data are larger
        trainer.graph.graph["plates"][plate] = len(train_data[0])
    family = trainer.graph.graph["family"]
    settings = {
        "family": family,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "device": str(device),
        "num_train": len(train_data[0]),
        "num_valid": 0 if valid_data is None else len(valid_data[0]),
        "program": program_name(model),
    }
    config = program_config(model)
    if config is not None:
        settings["program_config"] = config
    if replicas is not None:
        settings["world_size"] = replicas.world_size  # batch_size is the global batch, shared by them
    if family == "implicit":
        settings["adversarial"] = dataclasses.asdict(trainer.settings)
    if family == "latent":
        objective = trainer.objective  # plain data: pplgen's objectives by their settings, Pyro's by name
        settings["objective"] = (
            repr(objective) if isinstance(objective, Objective) else type(objective).__name__
        )

        if isinstance(guide, AmortisedGuide):
            settings["guide"] = {"auto": guide.options, "user_encoder": guide.user_encoder is not None}
    loop = LoopSettings(
        epochs=epochs,
        batch_size=batch_size,
        patience=patience,
        out=Path(out) if out is not None else None,
        checkpoint_every=checkpoint_every,
        resume=resume,
        progress=progress,
        callbacks=callbacks,
        meta=settings,
    )
    history = train(trainer, train_data, valid_data, loop, generator)
    # which path the steps took: bare calls of the program, or through parameter capture and on_device
    settings["steps"] = "direct" if trainer.direct else "plain"
    return FitResult(
        model=model,
        guide=guide,
        discriminator=getattr(trainer, "discriminator", None),
        history=history,
        graph=trainer.graph,
        device=device,
        family=family,
        data_spec=[
            {"shape": list(t.shape[1:]), "dtype": str(t.dtype).removeprefix("torch.")} for t in tensors
        ],
        settings=settings,
        trainer=trainer,
    )
