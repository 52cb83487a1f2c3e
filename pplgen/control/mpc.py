"""Model-predictive control with a learned (or known) dynamics model: the cross-entropy method over action
sequences, replanned at every step."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

from pplgen.errors import DataError

__all__ = ["KnownDynamics", "MPCPolicy", "MPCSettings"]


@dataclasses.dataclass
class MPCSettings:
    """How the planner searches (the defaults suit Pendulum swing-up).

    Example:
        >>> MPCSettings(horizon=10, iterations=1).candidates  # one iteration: random shooting
        300
        >>> MPCSettings(candidates=10)  # fewer candidates than the default 30 elites
        Traceback (most recent call last):
        ...
        pplgen.errors.DataError: MPCSettings: expected positive sizes and elites <= candidates, got ...
    """

    horizon: int = 25  # planning horizon in steps
    candidates: int = 300  # action sequences drawn per iteration
    iterations: int = 4  # CEM iterations per step; 1 is random shooting
    elites: int = 30  # best sequences that set the next iteration's mean and spread
    history: int = 8  # past steps the model filters to find its current state
    particles: int = 1  # state draws per candidate; 1 plans on the mean path

    def __post_init__(self) -> None:
        if min(self.horizon, self.candidates, self.iterations, self.elites, self.particles) < 1 or (
            self.elites > self.candidates or self.history < 0
        ):
            raise DataError(f"MPCSettings: expected positive sizes and elites <= candidates, got {self}")


class KnownDynamics:
    """A known step function ``step(obs (..., D), action (..., A)) -> next obs`` as a planning model (the
    planner's ceiling: planning with the true simulator).

    >>> from pplgen.data.control import pendulum_step
    >>> KnownDynamics(pendulum_step).rollout(torch.zeros(4, 3), torch.zeros(4, 6, 1)).shape
    torch.Size([4, 6, 3])
    """

    def __init__(self, step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
        self.step = step

    def filter(self, obs_prefix: torch.Tensor, actions: torch.Tensor, num_samples: int = 1) -> torch.Tensor:
        """The last observation is the state: ``(num_samples, N, D)``."""
        return obs_prefix[:, -1].expand(num_samples, -1, -1)

    def rollout(self, state: torch.Tensor, actions: torch.Tensor, sample: bool = True) -> torch.Tensor:
        """Observations ``(..., H, D)`` from ``state`` ``(..., D)`` under ``actions`` ``(..., H, A)``."""
        path = []
        for h in range(actions.shape[-2]):
            state = self.step(state, actions[..., h, :])
            path.append(state)
        return torch.stack(path, dim=-2)


class MPCPolicy:
    r"""A receding-horizon policy: at each step the model filters the recent history into states, the
    cross-entropy method (CEM) searches action sequences for the highest predicted return, and the first
    action of the final mean is taken. The search starts from the previous plan shifted by one step.

    The model needs ``filter(obs_prefix (1, K + 1, D), actions (1, K, A), num_samples) -> (S, 1, ...)``
    and ``rollout(states (..., ...), actions (..., H, A), sample) -> (..., H, D)``, as
    :class:`~pplgen.models.WorldModel` and :class:`KnownDynamics` have. The predicted return of a
    sequence is :math:`\sum_h r(\hat o_{t+h+1}, a_{t+h})`, averaged over the particles.

    References:
        Chua, Calandra, McAllister & Levine (2018), "Deep reinforcement learning in a handful of trials
        using probabilistic dynamics models" (CEM planning through a learned model).
        Nagabandi, Kahn, Fearing & Levine (2018), "Neural network dynamics for model-based deep
        reinforcement learning with model-free fine-tuning" (random-shooting MPC).
        Hafner et al. (2019), "Learning latent dynamics for planning from pixels" (CEM in a latent model).

    Args:
        model: the dynamics model.
        reward: ``reward(obs (..., D), actions (..., A)) -> (...)``.
        low, high: the action bounds, each ``act_dim`` values.
        settings: the search's sizes.
        seed: seeds the planner's own generator.

    Example:
        Steering a point mass (``obs + action``, actions in [-1, 1]) to 2 with the true dynamics: the
        first action pushes at full strength, and four steps arrive near the target.

        >>> import numpy as np
        >>> step = lambda obs, action: obs + action
        >>> reward = lambda obs, action: -(obs - 2.0).pow(2).sum(-1)
        >>> settings = MPCSettings(horizon=3, candidates=50, iterations=2, elites=5, history=0)
        >>> policy = MPCPolicy(KnownDynamics(step), reward, low=[-1.0], high=[1.0], settings=settings)
        >>> obs = np.zeros(1, dtype=np.float32)
        >>> first = policy(obs)
        >>> first.shape, bool(first[0] > 0.9)
        ((1,), True)
        >>> obs = obs + first
        >>> for _ in range(3):
        ...     obs = obs + policy(obs)
        >>> bool(abs(obs[0] - 2.0) < 0.25)
        True
    """

    def __init__(
        self, model, reward: Callable, low, high, settings: MPCSettings | None = None, seed: int = 0
    ):
        self.model, self.reward = model, reward
        self.low = torch.as_tensor(np.asarray(low, dtype=np.float32)).reshape(-1)
        self.high = torch.as_tensor(np.asarray(high, dtype=np.float32)).reshape(-1)
        self.settings = settings or MPCSettings()
        self.generator = torch.Generator().manual_seed(seed)
        self.reset()

    def reset(self) -> None:
        """Forget the episode: its history and the last plan."""
        self.observations: list[torch.Tensor] = []
        self.actions: list[torch.Tensor] = []
        self.plan = ((self.low + self.high) / 2).expand(self.settings.horizon, -1).clone()  # (H, A)

    @torch.no_grad()
    def __call__(self, obs: np.ndarray) -> np.ndarray:
        s = self.settings
        self.observations.append(torch.as_tensor(np.asarray(obs, dtype=np.float32)))
        K = min(s.history, len(self.actions))
        prefix = torch.stack(self.observations[-K - 1 :])[None]  # (1, K + 1, D)
        done = torch.stack(self.actions[-K:])[None] if K else prefix.new_zeros(1, 0, len(self.low))
        states = self.model.filter(prefix, done, s.particles)[:, 0]  # (S, ...)
        action = self._search(states)
        self.actions.append(action)
        return action.numpy()

    def _search(self, states: torch.Tensor) -> torch.Tensor:
        """CEM from the shifted previous plan; returns the first action ``(A,)``."""
        s, width = self.settings, self.high - self.low
        mean, std = self.plan, (width / 2).expand_as(self.plan)
        for _ in range(s.iterations):
            noise = torch.randn(s.candidates, *mean.shape, generator=self.generator)
            candidates = torch.minimum(torch.maximum(mean + std * noise, self.low), self.high)  # (C, H, A)
            returns = self._returns(states, candidates)  # (C,)
            elite = candidates[returns.topk(s.elites).indices]  # (E, H, A)
            mean, std = elite.mean(0), elite.std(0).clamp_min(1e-3 * width)
        self.plan = torch.cat([mean[1:], mean[-1:]])
        return mean[0]

    def _returns(self, states: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Predicted returns ``(C,)`` of ``candidates`` ``(C, H, A)`` from ``states`` ``(S, ...)``."""
        C, S = len(candidates), len(states)
        start = states.expand(C, *states.shape).reshape(C * S, *states.shape[1:])
        actions = candidates.repeat_interleave(S, dim=0)  # (C * S, H, A)
        predicted = self.model.rollout(start, actions, sample=S > 1)  # (C * S, H, D)
        return self.reward(predicted, actions).sum(-1).reshape(C, S).mean(1)
