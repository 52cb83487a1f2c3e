"""Data-parallel training on ``torch.distributed``: several processes, one global mini-batch.

Every process (a *rank*) holds the whole program and the whole data set. At each step the ranks draw
the same global mini-batch (their shuffling generators share one seed), each takes its contiguous share
of it, computes the objective on that share, and the gradients are averaged across ranks, weighted by
the share's size, before any optimiser steps. Every rank therefore takes the same step, and for an
objective without sampling noise the run gives the parameters of one process with the same global batch.

This is the all-reduce of PyTorch's ``DistributedDataParallel`` (Li et al. 2020), done on the set of
parameters that pplgen finds in a program (``pyro.param`` sites, ``pyro.module`` and ``PyroModule``
networks of the model and the guide, a discriminator) rather than on one wrapped ``nn.Module``: a Pyro
program's loss comes from its trace, not from a module's ``forward``, so DDP's wrapper has nothing to wrap.

A run is started by ``torchrun``, whose environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``) :func:`join` reads, or by ``pplgen fit ... --nproc N`` on one machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pplgen.errors import SettingsError

__all__ = ["Replicas", "join"]


def _world_size_from_environment() -> int:
    text = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(text)
    except ValueError:
        raise SettingsError(f"WORLD_SIZE should be a whole number of processes; got {text!r}") from None


def join(device: torch.device) -> Replicas | None:
    """This process's place in a distributed run, or None when it runs alone.

    A process that ``torchrun`` started (``WORLD_SIZE`` above 1) joins the process group here unless the
    caller has already initialised it: NCCL when training on CUDA, Gloo on the CPU. On CUDA each rank uses
    the GPU numbered by its ``LOCAL_RANK``.

    Example:
        Outside ``torchrun`` there is nothing to join:

        >>> join(torch.device("cpu")) is None
        True
    """
    if not dist.is_available():
        return None
    if not dist.is_initialized():
        if _world_size_from_environment() <= 1:
            return None
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if dist.get_world_size() == 1:
        return None
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    on = torch.device("cuda", local_rank) if device.type == "cuda" else device
    return Replicas(dist.get_rank(), dist.get_world_size(), local_rank, on)


@dataclass
class Replicas:
    """The ranks of a data-parallel run, seen from one of them.

    Attributes:
        rank: this process's number, 0 to ``world_size - 1``; rank 0 logs, validates and checkpoints.
        world_size: the number of processes.
        local_rank: this process's number on its machine (its GPU).
        device: where this rank trains; NCCL reduces only tensors on its GPU.
        weight: this rank's share of the current global batch, set by :meth:`shard`.

    References:
        Li, Zhao, Varma, Salpekar, Noordhuis, Li, Paszke, Smith, Vaughan, Damania & Chintala (2020),
        "PyTorch distributed: experiences on accelerating data parallel training".

    Example:
        The shares of a global batch of 5 points on 2 ranks (no process group is needed to shard):

        >>> first, second = Replicas(0, 2, 0), Replicas(1, 2, 0)
        >>> index = torch.arange(5)
        >>> first.shard(index), first.weight, second.shard(index), second.weight
        (tensor([0, 1, 2]), 0.6, tensor([3, 4]), 0.4)
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device = torch.device("cpu")
    weight: float = 1.0

    @property
    def main(self) -> bool:
        """Whether this is rank 0."""
        return self.rank == 0

    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous share of a global batch's indices; sets ``weight``.

        A rank whose share is empty (a last batch smaller than the world) computes on one point with
        weight 0, so that it still takes part in the all-reduce and adds nothing to it.
        """
        mine = index.tensor_split(self.world_size)[self.rank]
        self.weight = len(mine) / len(index)
        return mine if len(mine) else index[:1]

    def average_gradients(self, params: Iterable[torch.Tensor], *, finite: bool = True) -> bool:
        """Replace each gradient by the weighted sum over ranks, ``sum_r weight_r * grad_r``.

        A parameter without a gradient on every rank keeps none; one with a gradient on some ranks
        counts zero on the others. ``finite`` says whether this rank's loss was finite; the return value
        is whether it was on every rank, so that all ranks skip a bad step together.
        """
        params = list(params)
        device = params[0].device if params else torch.device("cpu")
        flags = [p.grad is not None for p in params] + [not finite]  # which have gradients; a bad loss
        has = torch.tensor(flags, device=device, dtype=torch.float)
        dist.all_reduce(has, op=dist.ReduceOp.MAX)
        if has[-1]:
            return False  # every rank sees the flag: all skip the step
        used = [p for p, h in zip(params, has[:-1].tolist(), strict=True) if h]
        for p in used:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        for dtype in dict.fromkeys(p.dtype for p in used):
            group = [p for p in used if p.dtype == dtype]
            flat = torch.cat([p.grad.reshape(-1) for p in group]) * self.weight
            dist.all_reduce(flat)
            for p, value in zip(group, flat.split([p.numel() for p in group]), strict=True):
                p.grad.copy_(value.view_as(p))
        return True

    def broadcast(self, tensors: Iterable[torch.Tensor]) -> None:
        """Copy rank 0's values into ``tensors`` on every rank (parameters and buffers at the start)."""
        with torch.no_grad():
            for tensor in tensors:
                dist.broadcast(tensor.data, src=0)

    def sum_over_ranks(self, values: list[float]) -> list[float]:
        """Each of ``values`` summed over the ranks (the sums behind an epoch's mean metrics)."""
        totals = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(totals)
        return totals.tolist()

    def from_main(self, fn: Callable[[], object]) -> object:
        """``fn()`` computed on rank 0 and sent to every rank (validation, a shared seed)."""
        box = [fn() if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]
