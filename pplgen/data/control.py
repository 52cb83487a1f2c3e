"""Trajectories of a Gymnasium control environment (Pendulum by default), collected with a seeded policy.

Gymnasium is an optional dependency (``pip install "pplgen[control]"``), imported only when trajectories
are collected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from pplgen.data.dataset import Dataset, check_split
from pplgen.errors import DataError, MissingDependencyError

__all__ = [
    "Trajectories",
    "collect",
    "pendulum",
    "pendulum_reward",
    "pendulum_step",
]

#: Episodes per split of :func:`pendulum`, and one seed per split so that the splits differ.
PENDULUM_SIZES = {"train": 400, "valid": 50, "test": 50}
_SPLIT_SEEDS = {"train": 0, "valid": 1, "test": 2}
# Pendulum-v1's maximal torque and its reward's weights (gymnasium/envs/classic_control/pendulum.py).
PENDULUM_MAX_TORQUE = 2.0
_SPEED_COST, _TORQUE_COST = 0.1, 0.001

#: A policy maps the latest observation (a NumPy vector) to an action the environment accepts. It may have
#: a ``reset()`` method, called at the start of every episode.
Policy = Callable[[np.ndarray], object]


class Trajectories(NamedTuple):
    """Episodes of equal length: ``obs`` ``(N, T + 1, obs_dim)``, ``actions`` ``(N, T, act_dim)`` (a
    one-hot vector for a discrete action space) and ``rewards`` ``(N, T)``, all float32.

    Action ``t`` is taken in ``obs[:, t]``, leads to ``obs[:, t + 1]`` and earns ``rewards[:, t]``.

    Example:
        One episode of three steps rolled out by hand with :func:`pendulum_step`, from the upright
        pendulum at rest under a constant torque:

        >>> obs = [torch.tensor([[1.0, 0.0, 0.0]])]  # (cos θ, sin θ, θ'), θ = 0
        >>> actions = torch.full((1, 3, 1), 0.5)
        >>> for t in range(3):
        ...     obs.append(pendulum_step(obs[-1], actions[:, t]))
        >>> obs = torch.stack(obs, dim=1)  # (N, T + 1, 3)
        >>> episodes = Trajectories(obs, actions, pendulum_reward(obs[:, :-1], actions))
        >>> [tuple(part.shape) for part in episodes]
        [(1, 4, 3), (1, 3, 1), (1, 3)]
        >>> bool(episodes.obs[0, -1, 2] > 0)  # a positive torque turns it the positive way
        True
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor


def _gymnasium():
    try:
        import gymnasium
    except ImportError as exc:
        raise MissingDependencyError(
            'collecting trajectories needs gymnasium, which is not installed: pip install "pplgen[control]"'
        ) from exc
    return gymnasium


def _as_vector(action, space) -> np.ndarray:
    """The action as the float vector the models see: a Box action as it is, a discrete one one-hot."""
    if hasattr(space, "n"):
        vector = np.zeros(int(space.n), dtype=np.float32)
        vector[int(action)] = 1.0
        return vector
    return np.asarray(action, dtype=np.float32).reshape(space.shape)


def _episode(env, policy: Policy | None, steps: int, seed: int):
    """One episode of ``steps`` steps, or None when the environment ended it sooner."""
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    if hasattr(policy, "reset"):
        policy.reset()
    seen, done, rewards = [obs], [], []
    for _ in range(steps):
        action = env.action_space.sample() if policy is None else policy(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        seen.append(obs)
        done.append(_as_vector(action, env.action_space))
        rewards.append(reward)
        if terminated or truncated:
            return None
    return np.stack(seen), np.stack(done), np.asarray(rewards, dtype=np.float32)


def collect(
    env: str = "Pendulum-v1",
    num_episodes: int = 100,
    steps: int = 50,
    policy: Policy | None = None,
    seed: int = 0,
    max_tries: int = 10,
) -> Trajectories:
    """Run ``num_episodes`` episodes of ``steps`` steps of a Gymnasium environment under ``policy``.

    Episode ``i`` resets the environment (and seeds its action space) with the ``i``-th number drawn from
    ``seed``, so the same ``seed`` gives the same episodes and different seeds different ones. ``policy``
    ``None`` is the uniform random policy (``env.action_space.sample()``). Episodes that the environment
    ends before ``steps`` (CartPole's pole falling) are dropped and others run in their place, at most
    ``max_tries * num_episodes`` in all.

    Args:
        env: a Gymnasium environment id (``"Pendulum-v1"``, ``"CartPole-v1"``, ...).
        num_episodes: how many episodes to return.
        steps: actions per episode ``T``.
        policy: a callable from the observation to an action, with an optional ``reset()``.
        seed: the seed of the episodes' seeds.
        max_tries: bounds the episodes run per episode kept.

    Returns:
        :class:`Trajectories`: observations ``(N, T + 1, obs_dim)``, actions ``(N, T, act_dim)`` and
        rewards ``(N, T)``.

    Raises:
        MissingDependencyError: gymnasium is not installed.
        DataError: too few episodes lasted ``steps`` steps.

    Example:
        >>> episodes = collect("Pendulum-v1", num_episodes=2, steps=5, seed=0)
        >>> episodes.obs.shape, episodes.actions.shape, episodes.rewards.shape
        (torch.Size([2, 6, 3]), torch.Size([2, 5, 1]), torch.Size([2, 5]))
        >>> torch.allclose(pendulum_reward(episodes.obs[:, :-1], episodes.actions), episodes.rewards)
        True
        >>> torch.equal(episodes.obs, collect(num_episodes=2, steps=5, seed=0).obs)  # same seed
        True
        >>> still = collect(num_episodes=1, steps=3, policy=lambda obs: np.zeros(1, dtype=np.float32))
        >>> still.actions.flatten().tolist()
        [0.0, 0.0, 0.0]

    References:
        Towers et al. (2024), "Gymnasium: a standard interface for reinforcement learning environments".
    """
    if num_episodes < 1 or steps < 1:
        raise DataError(f"collect: expected num_episodes >= 1 and steps >= 1, got {num_episodes}, {steps}")
    gym = _gymnasium()
    made = gym.make(env, max_episode_steps=steps + 1)  # the time limit must not cut an episode short
    seeds = np.random.default_rng(seed).integers(2**31, size=max_tries * num_episodes).tolist()
    kept = []
    try:
        for s in seeds:
            episode = _episode(made, policy, steps, s)
            if episode is not None:
                kept.append(episode)
            if len(kept) == num_episodes:
                break
    finally:
        made.close()
    if len(kept) < num_episodes:
        raise DataError(
            f"collect: only {len(kept)} of {len(seeds)} episodes of {env} lasted {steps} steps, "
            f"{num_episodes} were asked for; ask for shorter episodes or a policy that keeps them going"
        )
    obs, actions, rewards = (torch.from_numpy(np.stack(parts)).float() for parts in zip(*kept, strict=True))
    return Trajectories(obs, actions, rewards)


def pendulum(split: str = "train", *, num_episodes: int | None = None, steps: int = 50) -> Dataset:
    """Pendulum-v1 under the uniform random policy: observations :math:`(\\cos\\theta, \\sin\\theta,
    \\dot\\theta)` in ``x`` ``(N, T + 1, 3)`` and torques in ``y`` ``(N, T, 1)``.

    ``y`` holds the actions, not class labels: a program of the trajectories is called as
    ``model(x, y)`` (``dataset.tensors(labels=True)``, as the zoo's ``worldmodel`` is). The splits are
    episodes from seeds 0 (train, 400), 1 (valid, 50) and 2 (test, 50).

    Args:
        split: ``"train"``, ``"valid"`` or ``"test"``.
        num_episodes: episodes in the split (the sizes above by default).
        steps: actions per episode.

    Example:
        >>> data = pendulum("valid", num_episodes=3, steps=4)
        >>> data
        Dataset(name='pendulum', split='valid', kind='continuous', x=(3, 5, 3) float32)
        >>> [tuple(t.shape) for t in data.tensors(labels=True)]  # model(x, y): observations, torques
        [(3, 5, 3), (3, 4, 1)]

    References:
        Towers et al. (2024), "Gymnasium: a standard interface for reinforcement learning environments".
    """
    check_split("pendulum", split)
    num = num_episodes or PENDULUM_SIZES[split]
    obs, actions, rewards = collect("Pendulum-v1", num, steps, seed=_SPLIT_SEEDS[split])
    meta = {
        "env": "Pendulum-v1",
        "policy": "uniform random",
        "seed": _SPLIT_SEEDS[split],
        "rewards": rewards,
        "observation_names": ["cos θ", "sin θ", "θ'"],
    }
    return Dataset(name="pendulum", split=split, kind="continuous", x=obs, y=actions, meta=meta)


def pendulum_reward(obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    r"""Pendulum-v1's reward :math:`-(\theta^2 + 0.1\,\dot\theta^2 + 0.001\,u^2)` from observations
    :math:`(\cos\theta, \sin\theta, \dot\theta)` ``(..., 3)`` and torques ``(..., 1)``, the angle
    normalised to :math:`[-\pi, \pi)` and the torque clipped to :math:`[-2, 2]` as the environment does.

    >>> pendulum_reward(torch.tensor([[-1.0, 0.0, 0.0]]), torch.tensor([[2.0]]))  # hanging, full torque
    tensor([-9.8736])
    """
    theta = torch.atan2(obs[..., 1], obs[..., 0])
    torque = actions[..., 0].clamp(-PENDULUM_MAX_TORQUE, PENDULUM_MAX_TORQUE)
    return -(theta.pow(2) + _SPEED_COST * obs[..., 2].pow(2) + _TORQUE_COST * torque.pow(2))


def pendulum_step(obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """The true next observation of Pendulum-v1 (its Euler step, g = 10, m = l = 1, dt = 0.05): the
    reference world model for planning. ``obs`` ``(..., 3)``, ``actions`` ``(..., 1)``."""
    theta, speed = torch.atan2(obs[..., 1], obs[..., 0]), obs[..., 2]
    torque = actions[..., 0].clamp(-PENDULUM_MAX_TORQUE, PENDULUM_MAX_TORQUE)
    speed = (speed + (3 * 10.0 / 2 * torch.sin(theta) + 3.0 * torque) * 0.05).clamp(-8.0, 8.0)
    theta = theta + speed * 0.05
    return torch.stack([torch.cos(theta), torch.sin(theta), speed], dim=-1)
