"""What ``pplgen.fit`` returns: the trained programs, their history and graph, saved and loaded safely."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import torch
from torch import nn

from pplgen.errors import CheckpointError
from pplgen.infer.checkpoint import compare_settings, load_checkpoint, program_config, save_checkpoint
from pplgen.infer.gan_objectives import AdversarialSettings
from pplgen.infer.trainer import Trainer

__all__ = ["FitResult", "template_batch"]


def template_batch(data_spec: list[dict], size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """A batch of zeros with the shapes and dtypes of the data a program was fitted to."""
    return tuple(
        torch.zeros((size, *spec["shape"]), dtype=getattr(torch, spec["dtype"]), device=device)
        for spec in data_spec
    )


@dataclass
class FitResult:
    """The outcome of :func:`pplgen.fit`.

    Attributes:
        model: the model program, its parameters trained in place.
        guide: the guide program (latent family), else None.
        discriminator: the discriminator module (implicit family), else None.
        history: one dict per epoch: training metrics, validation metrics, seconds.
        graph: the program's graph from :func:`pplgen.inspect`.
        device: where the parameters live.
        family: ``"exact"``, ``"latent"`` or ``"implicit"``.
        data_spec: shape (without the data dimension) and dtype of each data tensor.
        settings: the plain-data settings the fit ran with.

    Example:
        Fit three coins, save the result and load it into a fresh copy of the program:

        >>> import os, tempfile, pyro, pplgen, pyro.distributions as dist
        >>> class Coins(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.logits = nn.Parameter(torch.zeros(3))
        ...     def model(self, x):
        ...         with pyro.plate("data", len(x)):
        ...             pyro.sample("x", dist.Bernoulli(logits=self.logits).to_event(1), obs=x)
        >>> coins, x = Coins(), torch.tensor([[1.0, 0.0, 1.0]]).expand(20, 3)
        >>> result = pplgen.fit(coins.model, x, epochs=2, batch_size=5, lr=0.1, seed=0, progress=False)
        >>> result.family, len(result.history), result.data_spec
        ('exact', 2, [{'shape': [3], 'dtype': 'float32'}])
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = result.save(os.path.join(folder, "coins.pt"))
        ...     fresh = Coins()
        ...     loaded = FitResult.load(path, fresh.model, device="cpu")
        >>> torch.equal(fresh.logits, coins.logits), loaded.history == result.history
        (True, True)
    """

    model: Callable
    guide: Callable | None
    discriminator: nn.Module | None
    history: list[dict]
    graph: nx.DiGraph
    device: torch.device
    family: str
    data_spec: list[dict]
    settings: dict = field(default_factory=dict)
    trainer: Trainer | None = field(default=None, repr=False)

    def save(self, path: str | os.PathLike) -> Path:
        """Write parameters, history and settings to one file (atomically; tensors and plain data only)."""
        return save_checkpoint(
            path,
            {
                "trainer": self.trainer.state_dict(),
                "history": self.history,
                "family": self.family,
                "data_spec": self.data_spec,
                "settings": self.settings,
            },
        )

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        model: Callable,
        guide: Callable | None = None,
        *,
        discriminator: nn.Module | None = None,
        device: str | torch.device = "auto",
    ) -> FitResult:
        """Load saved parameters into ``model`` (and ``guide``, ``discriminator``) of the same shape.

        The file is read with ``torch.load(weights_only=True)``: it cannot run code. The programs
        are the user's own; a checkpoint that does not match them raises ``CheckpointError``.
        """
        from pplgen.infer.fit import make_trainer, resolve_device

        device = resolve_device(device)
        state = load_checkpoint(path, map_location=device)
        config = program_config(model)
        if config is not None:  # a zoo model: it must be built as the one that was saved
            compare_settings(state["settings"], {"program_config": config}, path, resuming=False)
        batch = template_batch(state["data_spec"], 2, device)
        auto = state["settings"].get("guide", {})
        if guide is None and auto.get("user_encoder"):
            raise CheckpointError(
                "this fit used an AmortisedGuide with your own encoder: pass guide=AmortisedGuide(model, "
                "encoder=...) built the same way"
            )
        adversarial = state["settings"].get("adversarial")  # the default critic's width depends on packing
        trainer = make_trainer(
            state["family"], model, guide, batch, device, discriminator=discriminator, lr=1e-3,
            guide_options=auto.get("auto"),
            adversarial=AdversarialSettings(**adversarial) if adversarial else None,
        )  # fmt: skip
        trainer.setup(batch, num_data=2)
        trainer.load_state_dict(state["trainer"], optimizer=False)
        return cls(
            model=model,
            guide=trainer.guide,
            discriminator=getattr(trainer, "discriminator", None),
            history=list(state["history"]),
            graph=trainer.graph,
            device=device,
            family=state["family"],
            data_spec=list(state["data_spec"]),
            settings=dict(state["settings"]),
            trainer=trainer,
        )
