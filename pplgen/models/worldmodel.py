"""A world model: a deep Markov model whose transitions are driven by actions (latent family), with
forecasts of future observations under given actions."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule, pyro_method
from torch import nn

from pplgen.data.trajectories import check_trajectories
from pplgen.errors import DataError
from pplgen.models.dmm import Combiner, GatedTransition
from pplgen.nn.mlp import MLP

__all__ = ["ActionCombiner", "ActionTransition", "WorldModel"]


class ActionTransition(GatedTransition):
    r"""The DMM's gated transition reading the action beside the state:
    :math:`p(z_t \mid z_{t-1}, a_{t-1}) = N(\mu([z_{t-1}, a_{t-1}]), \mathrm{diag}\,\sigma(\cdot)^2)`.

    The gate, the proposal and the linear path take :math:`[z_{t-1}, a_{t-1}]`; the linear path starts
    as the identity on the state and zero on the action.

    References:
        Krishnan, Shalit & Sontag (2017), "Structured inference networks for nonlinear state space
        models" (the gated transition; actions enter as in their Section 6.2 experiments).

    >>> loc, scale = ActionTransition(3, 1, 8)(torch.zeros(5, 3), torch.zeros(5, 1))
    >>> loc.shape
    torch.Size([5, 3])
    """

    def __init__(self, z_dim: int, act_dim: int, hidden: int):
        super().__init__(z_dim, hidden)
        inputs = z_dim + act_dim
        self.gate = MLP([inputs, hidden, z_dim])
        self.proposal = MLP([inputs, hidden, z_dim])
        self.linear = nn.Linear(inputs, z_dim)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.weight[:, :z_dim].copy_(torch.eye(z_dim))
            self.linear.bias.zero_()

    def forward(self, z_prev: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of :math:`z_t`, ``(B, z_dim)``, from ``z_prev`` ``(B, z_dim)`` and
        ``action`` ``(B, act_dim)``."""
        return super().forward(torch.cat([z_prev, action], dim=-1))


class ActionCombiner(Combiner):
    r"""The combiner :math:`q(z_t \mid z_{t-1}, a_{t-1}, h_t)`: the DMM's, reading the last action
    beside the previous state."""

    def __init__(self, z_dim: int, act_dim: int, rnn_dim: int):
        super().__init__(z_dim, rnn_dim)
        self.state = nn.Linear(z_dim + act_dim, rnn_dim)

    def forward(self, z_prev: torch.Tensor, action: torch.Tensor, h_rnn: torch.Tensor):
        return super().forward(torch.cat([z_prev, action], dim=-1), h_rnn)


class WorldModel(PyroModule):
    r"""An action-conditioned deep Markov model of trajectories :math:`o_{0:T}` under actions
    :math:`a_{0:T-1}`:

    .. math::
        z_0 \sim N(0, I), \qquad z_t \mid z_{t-1}, a_{t-1} \sim N(\mu, \mathrm{diag}\,\sigma^2)
        \;(\text{:class:`ActionTransition`}), \qquad o_t \mid z_t \sim N(m + s \odot f(z_t),
        \mathrm{diag}\,(s \odot \varsigma)^2),

    with :math:`f` an MLP, :math:`\varsigma` learned, and :math:`m, s` the observations' mean and spread
    (``obs_loc``, ``obs_scale``, fixed from the training data by :meth:`from_data`); actions are
    standardised the same way. The guide is the structured inference network of the DMM: a backward GRU
    reads :math:`(o_t, a_t)_{t \ge s}` and :class:`ActionCombiner` gives :math:`q(z_s \mid z_{s-1},
    a_{s-1}, o_{s:T}, a_{s:T-1})`. Sites ``z_0 .. z_T`` (latent) and ``o_0 .. o_T`` (observed) lie in
    ``pyro.plate("data", N)``; the program is called as ``model(obs, actions)`` with ``obs``
    ``(N, T + 1, obs_dim)`` and ``actions`` ``(N, T, act_dim)``, of any length ``T``.

    **Forecasts** (:meth:`predict`, :meth:`forecast`): the guide filters the prefix :math:`o_{0:K}`; at
    its last step it conditions on the past only, so its draw of :math:`z_K` is a draw of the filtering
    distribution. The prior then rolls each draw forward under the actions. The predictive density of
    :math:`o_{K+h}` is the mixture over the ``S`` draws of the emission densities, computed as
    :math:`\log \frac1S \sum_s N(o_{K+h}; \mathrm{loc}_s, \mathrm{scale}^2)` (log-mean-exp; a
    consistent estimate, biased low for small ``S`` by Jensen's inequality).

    References:
        Krishnan, Shalit & Sontag (2017), "Structured inference networks for nonlinear state space
        models", AAAI.
        Hafner et al. (2019), "Learning latent dynamics for planning from pixels", ICML (latent
        dynamics rolled forward under actions for planning).

    Args:
        obs_dim: dimensions of one observation.
        act_dim: dimensions of one action.
        z_dim: dimensions of the state.
        transition_dim: hidden width of the transition's networks.
        emission_dim: hidden width of the emitter's two layers.
        rnn_dim: width of the guide's GRU.
        obs_loc, obs_scale, act_loc, act_scale: per-dimension standardisation (none by default).

    Example:
        >>> model = WorldModel(obs_dim=2, act_dim=1, z_dim=4, transition_dim=8, emission_dim=8, rnn_dim=8)
        >>> obs, actions = torch.zeros(3, 6, 2), torch.zeros(3, 8, 1)  # 5 actions in the prefix, 3 to come
        >>> model.predict(obs, actions, num_samples=10).shape  # (S, N, H, obs_dim)
        torch.Size([10, 3, 3, 2])
    """

    takes_labels = True  # called as model(x, y): a data set's y holds the actions

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        z_dim: int = 16,
        transition_dim: int = 64,
        emission_dim: int = 64,
        rnn_dim: int = 64,
        obs_loc: list[float] | None = None,
        obs_scale: list[float] | None = None,
        act_loc: list[float] | None = None,
        act_scale: list[float] | None = None,
    ):
        super().__init__()
        if min(obs_dim, act_dim, z_dim, transition_dim, emission_dim, rnn_dim) < 1:
            raise DataError(
                f"WorldModel: every size must be positive, got obs_dim={obs_dim}, act_dim={act_dim}"
            )
        self.config = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.obs_dim, self.act_dim, self.z_dim = obs_dim, act_dim, z_dim
        for name, value, dim, fill in (
            ("obs_loc", obs_loc, obs_dim, 0.0),
            ("obs_scale", obs_scale, obs_dim, 1.0),
            ("act_loc", act_loc, act_dim, 0.0),
            ("act_scale", act_scale, act_dim, 1.0),
        ):
            value = torch.full((dim,), fill) if value is None else torch.as_tensor(value, dtype=torch.float32)
            if value.shape != (dim,):
                raise DataError(f"WorldModel: {name} needs {dim} values, got {list(value.shape)}")
            self.register_buffer(name, value)
        self.transition = ActionTransition(z_dim, act_dim, transition_dim)
        self.emitter = MLP([z_dim, emission_dim, emission_dim, obs_dim])
        self.obs_log_scale = nn.Parameter(torch.full((obs_dim,), -2.5))
        self.rnn = nn.GRU(obs_dim + act_dim, rnn_dim, batch_first=True)
        self.h_init = nn.Parameter(torch.zeros(1, 1, rnn_dim))
        self.combiner = ActionCombiner(z_dim, act_dim, rnn_dim)
        self.z_q_init = nn.Parameter(torch.zeros(z_dim))

    @classmethod
    def from_data(cls, obs: torch.Tensor, actions: torch.Tensor, **config) -> WorldModel:
        """A world model sized for ``obs`` ``(N, T + 1, obs_dim)`` and ``actions`` ``(N, T, act_dim)``,
        standardising both by their per-dimension mean and standard deviation."""
        check_trajectories(obs, actions, who="WorldModel.from_data")
        stats = {"obs_dim": obs.shape[-1], "act_dim": actions.shape[-1]}
        for name, value in (("obs", obs), ("act", actions)):
            flat = value.reshape(-1, value.shape[-1]).double()
            stats[f"{name}_loc"] = flat.mean(0).tolist()
            stats[f"{name}_scale"] = flat.std(0).clamp_min(1e-6).tolist()
        return cls(**{**stats, **config})  # a saved run's config repeats the sizes and statistics

    @classmethod
    def from_dataset(cls, dataset, **config) -> WorldModel:
        """A world model for a data set of trajectories: observations in ``x``, actions in ``y``."""
        if dataset.y is None or not dataset.y.is_floating_point():
            raise DataError(
                "the world model needs actions in the data set's y, (N, T, act_dim) floats; "
                f"{dataset.name!r} has y {None if dataset.y is None else tuple(dataset.y.shape)}"
            )
        return cls.from_data(dataset.x, dataset.y, **config)

    def _check(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Check the trajectories; return them in the model's dtype, the actions standardised."""
        check_trajectories(obs, actions, self.obs_dim, self.act_dim, who="WorldModel")
        dtype = self.obs_loc.dtype
        return obs.to(dtype), (actions.to(dtype) - self.act_loc) / self.act_scale

    def emission(self, z: torch.Tensor) -> dist.Distribution:
        r""":math:`p(o_t \mid z_t)` over one observation vector, in the data's units."""
        loc = self.obs_loc + self.obs_scale * self.emitter(z)
        return dist.Normal(loc, self.obs_scale * self.obs_log_scale.exp()).to_event(1)

    @pyro_method
    def model(self, obs: torch.Tensor, actions: torch.Tensor) -> None:
        obs, a = self._check(obs, actions)  # a: (N, T, act_dim)
        N = obs.shape[0]
        with pyro.plate("data", N):
            z = pyro.sample("z_0", dist.Normal(obs.new_zeros(N, self.z_dim), 1.0).to_event(1))
            pyro.sample("o_0", self.emission(z), obs=obs[:, 0])
            for t in range(1, obs.shape[1]):
                loc, scale = self.transition(z, a[:, t - 1])
                z = pyro.sample(f"z_{t}", dist.Normal(loc, scale).to_event(1))
                pyro.sample(f"o_{t}", self.emission(z), obs=obs[:, t])

    @pyro_method
    def guide(self, obs: torch.Tensor, actions: torch.Tensor) -> None:
        obs, a = self._check(obs, actions)
        N, steps = obs.shape[:2]
        a_next = torch.cat([a, a.new_zeros(N, 1, self.act_dim)], dim=1)  # (N, T + 1, act_dim): a_T = 0
        o = (obs - self.obs_loc) / self.obs_scale
        out, _ = self.rnn(torch.cat([o, a_next], dim=-1).flip(1), self.h_init.expand(-1, N, -1).contiguous())
        h = out.flip(1)  # (N, T + 1, rnn_dim): h[:, t] summarises (o_s, a_s) for s >= t
        a_prev = torch.cat([a.new_zeros(N, 1, self.act_dim), a], dim=1)  # (N, T + 1, act_dim): a_{-1} = 0
        with pyro.plate("data", N):
            z = self.z_q_init.expand(N, self.z_dim)
            for t in range(steps):
                loc, scale = self.combiner(z, a_prev[:, t], h[:, t])
                z = pyro.sample(f"z_{t}", dist.Normal(loc, scale).to_event(1))

    def _split(self, obs_prefix: torch.Tensor, actions: torch.Tensor, horizon: int | None) -> int:
        """Check a forecast's inputs and return the horizon ``H``: ``actions`` are ``(N, K + H, act_dim)``,
        the ``K`` actions inside the prefix ``(N, K + 1, obs_dim)`` and then the ``H`` to come."""
        K = obs_prefix.shape[1] - 1 if obs_prefix.dim() == 3 else 0
        if not isinstance(actions, torch.Tensor) or actions.dim() != 3 or actions.shape[1] <= K:
            got = tuple(actions.shape) if isinstance(actions, torch.Tensor) else type(actions).__name__
            raise DataError(
                f"WorldModel: a forecast from a prefix of {K + 1} observations needs actions (N, {K} + H, "
                f"{self.act_dim}), the prefix's {K} and then at least one more; got {got}"
            )
        self._check(obs_prefix, actions[:, :K])  # the prefix and its actions
        self._check(obs_prefix[:, :1].expand(-1, actions.shape[1] + 1, -1), actions)  # every action
        available = actions.shape[1] - K
        if horizon is not None and not 1 <= horizon <= available:
            raise DataError(
                f"WorldModel: horizon must lie in 1 .. {available} (the actions given), got {horizon}"
            )
        return available if horizon is None else horizon

    @torch.no_grad()
    def filter(self, obs_prefix: torch.Tensor, actions: torch.Tensor, num_samples: int = 1) -> torch.Tensor:
        """Draws of the last state :math:`z_K` given the prefix ``(N, K + 1, obs_dim)`` and its actions
        ``(N, K, act_dim)``, from the guide: ``(num_samples, N, z_dim)``."""
        S, N, K = num_samples, obs_prefix.shape[0], obs_prefix.shape[1] - 1
        repeat = lambda x: x.expand(S, *x.shape).reshape(S * N, *x.shape[1:])  # (S * N, ...), draws outermost
        trace = poutine.trace(self.guide).get_trace(repeat(obs_prefix), repeat(actions))
        return trace.nodes[f"z_{K}"]["value"].reshape(S, N, self.z_dim)

    @torch.no_grad()
    def rollout(self, z: torch.Tensor, actions: torch.Tensor, sample: bool = True) -> torch.Tensor:
        """Emission means ``(..., H, obs_dim)`` along the prior's path from states ``z`` ``(..., z_dim)``
        under ``actions`` ``(..., H, act_dim)``: states drawn from the transitions, or their means when
        ``sample`` is False."""
        a = (actions - self.act_loc) / self.act_scale
        locs = []
        for h in range(a.shape[-2]):
            loc, scale = self.transition(z, a[..., h, :])
            z = loc + scale * torch.randn_like(loc) if sample else loc
            locs.append(self.emission(z).mean)
        return torch.stack(locs, dim=-2)

    def predict(
        self,
        obs_prefix: torch.Tensor,
        actions: torch.Tensor,
        horizon: int | None = None,
        num_samples: int = 100,
    ) -> torch.Tensor:
        """Sampled future observations ``(num_samples, N, H, obs_dim)`` given the prefix ``(N, K + 1,
        obs_dim)`` and the actions ``(N, K + H', act_dim)`` (``H = horizon``, or all ``H'`` by default)."""
        H = self._split(obs_prefix, actions, horizon)
        K = obs_prefix.shape[1] - 1
        z = self.filter(obs_prefix, actions[:, :K], num_samples)  # (S, N, z_dim)
        locs = self.rollout(z, actions[:, K : K + H].expand(num_samples, -1, -1, -1))  # (S, N, H, obs_dim)
        noise = self.obs_scale * self.obs_log_scale.detach().exp()
        return locs + noise * torch.randn_like(locs)

    def forecast(
        self, obs_prefix: torch.Tensor, actions: torch.Tensor, future: torch.Tensor, num_samples: int = 100
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The predictive mean ``(N, H, obs_dim)`` of ``future`` ``(N, H, obs_dim)`` and its predictive
        log-density per step ``(N, H)`` (summed over the observation's dimensions; the log-mean-exp over
        ``num_samples`` rolled-out draws of the emission densities, see the class's docstring)."""
        H = self._split(obs_prefix, actions, future.shape[1])
        check_trajectories(future, actions[:, : H - 1], self.obs_dim, self.act_dim, who="WorldModel forecast")
        K = obs_prefix.shape[1] - 1
        z = self.filter(obs_prefix, actions[:, :K], num_samples)
        with torch.no_grad():
            locs = self.rollout(z, actions[:, K : K + H].expand(num_samples, -1, -1, -1))  # (S, N, H, D)
            emission = dist.Normal(locs, self.obs_scale * self.obs_log_scale.exp()).to_event(1)
            log_prob = emission.log_prob(future).logsumexp(0) - math.log(num_samples)  # (N, H)
        return locs.mean(0), log_prob
