"""The trainable tensors of Pyro programs, found wherever the program keeps them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger
from torch import nn

__all__ = ["ParamSet", "evaluation_mode", "modules_of", "on_device"]


def modules_of(program: Callable | None) -> list[nn.Module]:
    """The modules a program is part of: the program itself if it is a module, or its ``__self__``."""
    if program is None:
        return []
    if isinstance(program, nn.Module):
        return [program]
    owner = getattr(program, "__self__", None)
    return [owner] if isinstance(owner, nn.Module) else []


@contextlib.contextmanager
def evaluation_mode(*programs: Callable | None) -> Iterator[None]:
    """Put the programs' modules in evaluation mode (``module.eval()``), restoring their modes after.

    Evaluation and sampling run this way, so modules that train differently (dropout, MADE's random
    orderings) give their test-time behaviour.
    """
    modes = {
        id(m): (m, [(sub, sub.training) for sub in m.modules()]) for p in programs for m in modules_of(p)
    }
    for module, _ in modes.values():
        module.eval()
    try:
        yield
    finally:
        for _, saved in modes.values():
            for sub, training in saved:
                sub.training = training


class _MoveParams(Messenger):
    """Moves every parameter a program declares (``pyro.param``, ``pyro.module``) to one device, in place."""

    def __init__(self, device: torch.device):
        super().__init__()
        self.device = device

    def _pyro_post_param(self, msg):
        value = msg["value"]
        leaf = value.unconstrained() if hasattr(value, "unconstrained") else value
        if leaf.device != self.device:
            leaf.data = leaf.data.to(self.device)
            if leaf is not value:  # the constrained view was computed on the old device
                msg["value"] = value.to(self.device)


@contextlib.contextmanager
def on_device(device: torch.device) -> Iterator[None]:
    """Run a program on ``device``: new tensors default to it and declared parameters move to it."""
    with torch.device(device), _MoveParams(device):
        yield


class ParamSet:
    """An ordered, de-duplicated set of the leaf tensors that training updates.

    Parameters come from two places: the modules a program belongs to (a ``PyroModule`` whose method
    is the model) and the ``param`` sites of a trace (``pyro.param``, ``pyro.module``, and PyroModule
    parameters reached through ``forward``). Each tensor gets a stable key, so a checkpoint can be
    loaded into a fresh copy of the same program.
    """

    def __init__(self) -> None:
        self._tensors: dict[str, torch.Tensor] = {}
        self._ids: set[int] = set()
        # a module's persistent buffers (batch-norm statistics, EMA codebooks): saved, never optimised
        self._buffers: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._tensors)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self._tensors.values())

    def items(self):
        return self._tensors.items()

    def add(self, key: str, tensor: torch.Tensor) -> bool:
        """Add a tensor unless it is already present; returns whether it was new."""
        if id(tensor) in self._ids or not tensor.requires_grad:
            return False
        while key in self._tensors:
            key += "+"
        self._tensors[key] = tensor
        self._ids.add(id(tensor))
        return True

    def add_module(self, role: str, module: nn.Module) -> list[torch.Tensor]:
        names = set(module.state_dict(keep_vars=True))
        for name, buffer in module.named_buffers():
            if name in names and id(buffer) not in self._ids:
                self._buffers[f"{role}.{name}"] = buffer
                self._ids.add(id(buffer))
        return [p for name, p in module.named_parameters() if self.add(f"{role}.{name}", p)]

    def add_trace(self, trace: poutine.Trace) -> list[torch.Tensor]:
        """Add the parameters of a ``poutine.trace(param_only=True)`` trace; returns the new ones."""
        new = []
        for name, site in trace.nodes.items():
            value = site["value"]
            leaf = value.unconstrained() if hasattr(value, "unconstrained") else value
            if self.add(f"param.{name}", leaf):
                new.append(leaf)
        return new

    def state_dict(self) -> dict[str, torch.Tensor]:
        tensors = {**self._tensors, **{f"buffer:{k}": v for k, v in self._buffers.items()}}
        return {key: tensor.detach().clone() for key, tensor in tensors.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Copy saved values in; keys and shapes must match exactly (a different program refuses)."""
        from pplgen.errors import CheckpointError

        tensors = {**self._tensors, **{f"buffer:{k}": v for k, v in self._buffers.items()}}
        missing = sorted(set(tensors) - set(state))
        unexpected = sorted(set(state) - set(tensors))
        if missing or unexpected:
            raise CheckpointError(
                f"checkpoint does not match the program: missing parameters {missing[:5]}, "
                f"unexpected parameters {unexpected[:5]}"
            )
        for key, tensor in tensors.items():
            saved = state[key]
            if saved.shape != tensor.shape:
                raise CheckpointError(
                    f"checkpoint parameter {key!r} has shape {tuple(saved.shape)}, "
                    f"the program's has {tuple(tensor.shape)}"
                )
            with torch.no_grad():
                tensor.copy_(saved)
