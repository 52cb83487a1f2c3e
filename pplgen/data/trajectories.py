"""Trajectories of a controlled system as tensors: observations ``(N, T + 1, obs_dim)`` and the actions
between them ``(N, T, act_dim)``; their checks and windows."""

from __future__ import annotations

import torch

from pplgen.errors import DataError

__all__ = ["check_trajectories", "windows"]


def check_trajectories(
    obs: torch.Tensor, actions: torch.Tensor, obs_dim: int | None = None, act_dim: int | None = None, who=""
) -> None:
    """Raise :class:`~pplgen.errors.DataError` unless ``obs`` is ``(N, T + 1, obs_dim)`` and ``actions``
    ``(N, T, act_dim)``, both floating point and finite (``obs_dim``, ``act_dim`` checked when given).

    >>> check_trajectories(torch.zeros(2, 5, 3), torch.zeros(2, 3, 1))
    Traceback (most recent call last):
    ...
    pplgen.errors.DataError: expected observations (N, T + 1, obs_dim) and actions (N, T, act_dim): ...
    """
    who = f"{who}: " if who else ""
    for name, value, dim in (("observations", obs, obs_dim), ("actions", actions, act_dim)):
        if not isinstance(value, torch.Tensor) or value.dim() != 3 or not value.is_floating_point():
            got = (
                f"shape {tuple(value.shape)} {value.dtype}"
                if isinstance(value, torch.Tensor)
                else type(value)
            )
            raise DataError(f"{who}expected {name} as a float tensor (N, steps, dim), got {got}")
        if dim is not None and value.shape[-1] != dim:
            raise DataError(
                f"{who}expected {name} of {dim} dimensions per step, got shape {tuple(value.shape)}"
            )
        if not torch.isfinite(value).all():
            bad = int((~torch.isfinite(value)).flatten(1).any(1).nonzero()[0])
            raise DataError(f"{who}{name} contain NaN or infinite values (first in sequence {bad})")
    if obs.shape[0] != actions.shape[0] or obs.shape[1] != actions.shape[1] + 1:
        raise DataError(
            f"{who}expected observations (N, T + 1, obs_dim) and actions (N, T, act_dim): one action between "
            f"two observations; got observations {tuple(obs.shape)} and actions {tuple(actions.shape)}"
        )


def windows(
    obs: torch.Tensor, actions: torch.Tensor, steps: int, stride: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut trajectories into windows of ``steps`` actions (``steps + 1`` observations), ``stride`` apart
    (``steps`` by default, so windows share only their end points).

    >>> obs, actions = windows(torch.zeros(3, 101, 2), torch.zeros(3, 100, 1), steps=25)
    >>> obs.shape, actions.shape
    (torch.Size([12, 26, 2]), torch.Size([12, 25, 1]))
    """
    check_trajectories(obs, actions, who="windows")
    stride = stride or steps
    if not 1 <= steps <= actions.shape[1] or stride < 1:
        raise DataError(
            f"windows: expected 1 <= steps <= {actions.shape[1]} (the trajectories' length) and stride >= 1, "
            f"got steps={steps}, stride={stride}"
        )
    o = obs.unfold(1, steps + 1, stride).movedim(-1, 2)  # (N, W, steps + 1, D)
    a = actions.unfold(1, steps, stride).movedim(-1, 2)  # (N, W, steps, A): the same W windows
    return o.flatten(0, 1), a.flatten(0, 1)
