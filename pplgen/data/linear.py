"""A linear-Gaussian control system whose dynamics are known: trajectories, and the exact forecast.

It is the test bed of sequence models driven by actions: a model that has learned the dynamics should
forecast about as well as the Kalman predictor of the true system.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from pplgen.data.trajectories import check_trajectories

__all__ = ["LinearGaussianSystem"]


@dataclasses.dataclass
class LinearGaussianSystem:
    r"""The system :math:`x_{t+1} = A x_t + B a_t + w_t`, :math:`o_t = x_t + v_t`, with
    :math:`w_t \sim N(0, q^2 I)`, :math:`v_t \sim N(0, r^2 I)`, :math:`x_0 \sim N(0, s_0^2 I)` and actions
    :math:`a_t \sim N(0, I)`.

    The default is a damped rotation in two dimensions pushed by one action, so that an observation
    a few steps on is far from the last one (copying it is a poor forecast) but the dynamics are easy.
    :meth:`forecast` is the exact predictive distribution of the true system (a Kalman filter over the
    prefix, then the mean and covariance carried forward under the actions), the best any model can do.

    References:
        Kalman (1960), "A new approach to linear filtering and prediction problems".

    Example:
        >>> system = LinearGaussianSystem.rotation()
        >>> obs, actions = system.simulate(4, steps=10, seed=0)
        >>> obs.shape, actions.shape
        (torch.Size([4, 11, 2]), torch.Size([4, 10, 1]))
    """

    A: torch.Tensor  # (D, D)
    B: torch.Tensor  # (D, A)
    process_scale: float = 0.1  # q
    obs_scale: float = 0.05  # r
    init_scale: float = 1.5  # s_0

    @classmethod
    def rotation(
        cls, angle: float = 0.3, decay: float = 0.95, push: float = 0.6, **scales
    ) -> LinearGaussianSystem:
        """A damped rotation ``decay * R(angle)`` in the plane, the action pushing the first coordinate."""
        c, s = math.cos(angle), math.sin(angle)
        A = decay * torch.tensor([[c, -s], [s, c]])
        return cls(A=A, B=torch.tensor([[push], [0.0]]), **scales)

    @property
    def obs_dim(self) -> int:
        return self.A.shape[0]

    @property
    def act_dim(self) -> int:
        return self.B.shape[1]

    def simulate(self, num: int, steps: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """``num`` trajectories: observations ``(num, steps + 1, D)`` and actions ``(num, steps, A)``."""
        g = torch.Generator().manual_seed(seed)
        noise = lambda *shape: torch.randn(*shape, generator=g)
        actions = noise(num, steps, self.act_dim)
        x = self.init_scale * noise(num, self.obs_dim)  # (N, D)
        states = [x]
        for t in range(steps):
            x = x @ self.A.T + actions[:, t] @ self.B.T + self.process_scale * noise(num, self.obs_dim)
            states.append(x)
        states = torch.stack(states, dim=1)  # (N, T + 1, D)
        return states + self.obs_scale * noise(*states.shape), actions

    def forecast(
        self, obs_prefix: torch.Tensor, actions: torch.Tensor, future: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact forecast of ``future`` (``(N, H, D)``) given the prefix ``(N, K + 1, D)`` and the
        actions ``(N, K + H, A)``: the predictive means ``(N, H, D)`` and log-densities ``(N, H)``."""
        K, H = obs_prefix.shape[1] - 1, future.shape[1]
        check_trajectories(obs_prefix, actions[:, :K], self.obs_dim, self.act_dim, "LinearGaussianSystem")
        A, B = self.A.to(obs_prefix), self.B.to(obs_prefix)
        D = self.obs_dim
        eye = torch.eye(D, dtype=obs_prefix.dtype, device=obs_prefix.device)
        Q, R = self.process_scale**2 * eye, self.obs_scale**2 * eye
        mean = torch.zeros_like(obs_prefix[:, 0])  # (N, D), the prior of x_0
        cov = (self.init_scale**2 * eye).expand(len(mean), D, D)
        for t in range(K + 1):  # filter: x_t given o_0 .. o_t
            if t > 0:
                mean, cov = mean @ A.T + actions[:, t - 1] @ B.T, A @ cov @ A.T + Q
            gain = cov @ torch.linalg.inv(cov + R)  # (N, D, D)
            mean = mean + (gain @ (obs_prefix[:, t] - mean).unsqueeze(-1)).squeeze(-1)
            cov = (eye - gain) @ cov
        means, log_probs = [], []
        for h in range(H):  # predict: x_{K+h+1} under the actions, o = x + v
            mean, cov = mean @ A.T + actions[:, K + h] @ B.T, A @ cov @ A.T + Q
            predictive = torch.distributions.MultivariateNormal(mean, cov + R)
            means.append(mean)
            log_probs.append(predictive.log_prob(future[:, h]))
        return torch.stack(means, 1), torch.stack(log_probs, 1)
