"""The deep Markov model: a nonlinear Gaussian state-space model with a structured inference network
(latent family)."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.nn import PyroModule, pyro_method
from torch import nn

from pplgen.errors import DataError
from pplgen.nn.mlp import MLP

__all__ = ["DMM", "Combiner", "GatedTransition"]

LIKELIHOODS = ("bernoulli", "normal")
RNNS = {"gru": nn.GRU, "lstm": nn.LSTM}


class GatedTransition(nn.Module):
    r"""The gated transition :math:`p(z_t \mid z_{t-1}) = N(\mu_t, \mathrm{diag}\,\sigma_t^2)` of a deep
    Markov model.

    A gate :math:`g_t = \mathrm{sigmoid}(\mathrm{MLP}_g(z_{t-1}))` mixes a linear map of the previous
    state with a nonlinear proposal :math:`h_t = \mathrm{MLP}_h(z_{t-1})`:

    .. math::
        \mu_t = (1 - g_t) \odot (A z_{t-1} + b) + g_t \odot h_t, \qquad
        \sigma_t = \mathrm{softplus}(W_\sigma\, \mathrm{ReLU}(h_t) + b_\sigma).

    :math:`A` starts as the identity, so an untrained transition keeps the state near where it was and
    the gate learns where the dynamics need to be nonlinear.

    References:
        Krishnan, Shalit & Sontag (2017), "Structured inference networks for nonlinear state space
        models", Section 5 (the gated transition function).

    Args:
        z_dim: state dimensions.
        hidden: hidden width of the gate and proposal networks.

    >>> loc, scale = GatedTransition(3, 8)(torch.zeros(5, 3))
    >>> loc.shape, bool((scale > 0).all())
    (torch.Size([5, 3]), True)
    """

    def __init__(self, z_dim: int, hidden: int):
        super().__init__()
        self.gate = MLP([z_dim, hidden, z_dim])
        self.proposal = MLP([z_dim, hidden, z_dim])
        self.linear = nn.Linear(z_dim, z_dim)
        self.scale = nn.Linear(z_dim, z_dim)
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(z_dim))
            self.linear.bias.zero_()

    def forward(self, z_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and standard deviation of :math:`z_t`, each of ``z_prev``'s shape ``(B, z_dim)``."""
        gate = torch.sigmoid(self.gate(z_prev))
        proposed = self.proposal(z_prev)
        loc = (1 - gate) * self.linear(z_prev) + gate * proposed
        scale = F.softplus(self.scale(F.relu(proposed)))
        return loc, scale


class Combiner(nn.Module):
    r"""The combiner of the structured inference network: :math:`q(z_t \mid z_{t-1}, h_t)` from the
    previous state and the backward RNN's summary :math:`h_t` of :math:`x_{t:T}`.

    .. math::
        \bar h_t = \tfrac12 \left(\tanh(W z_{t-1} + b) + h_t\right), \qquad
        q(z_t \mid z_{t-1}, x_{t:T}) = N\!\left(W_\mu \bar h_t + b_\mu,\;
        \mathrm{diag}\,\mathrm{softplus}(W_\sigma \bar h_t + b_\sigma)^2\right).

    The posterior of a Markov model given all data factorises as :math:`\prod_t p(z_t \mid z_{t-1},
    x_{t:T})`, so conditioning on the past state and the future observations is all a guide needs.

    References:
        Krishnan, Shalit & Sontag (2017), "Structured inference networks for nonlinear state space
        models", Sections 4 and 5 (the "ST-R" inference network and its combiner function).

    Args:
        z_dim: state dimensions.
        rnn_dim: width of the RNN's hidden state.
    """

    def __init__(self, z_dim: int, rnn_dim: int):
        super().__init__()
        self.state = nn.Linear(z_dim, rnn_dim)
        self.loc = nn.Linear(rnn_dim, z_dim)
        self.scale = nn.Linear(rnn_dim, z_dim)

    def forward(self, z_prev: torch.Tensor, h_rnn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and standard deviation of :math:`q(z_t \\mid \\cdot)`, each ``(B, z_dim)``."""
        h = 0.5 * (torch.tanh(self.state(z_prev)) + h_rnn)
        return self.loc(h), F.softplus(self.scale(h))


class DMM(PyroModule):
    r"""A deep Markov model over fixed-length sequences :math:`x_{1:T}` of ``x_dim``-vectors.

    .. math::
        z_t \mid z_{t-1} \sim N(\mu(z_{t-1}), \mathrm{diag}\,\sigma(z_{t-1})^2), \qquad
        x_t \mid z_t \sim \mathrm{Bernoulli}(\mathrm{sigmoid}(f(z_t)))
        \;\text{or}\; N(f(z_t), \mathrm{diag}\,s^2),

    with :math:`(\mu, \sigma)` the :class:`GatedTransition`, :math:`f` an MLP emitter with two hidden
    layers, and :math:`z_0` a learned initial state (``z_init``). The guide is the structured
    inference network ("ST-R"): a backward RNN (GRU or LSTM, learned initial state) reads
    :math:`x_{t:T}` and the :class:`Combiner` gives :math:`q(z_t \mid z_{t-1}, x_{t:T})`, a diagonal
    Normal, starting from a learned state of its own (``z_q_init``). The initial states are parameters
    named apart from the ``z_t`` sites, so the graph's chain of latents starts at ``z_1``.

    The sites are ``z_1 .. z_T`` (latent) and ``x_1 .. x_T`` (observed), each a vector event inside
    ``pyro.plate("data", N)``, so :func:`pplgen.inspect` finds two chains and the family ``latent``.
    The data arrive flat, ``x`` of shape ``(N, T * x_dim)`` (or ``(N, T, x_dim)``): an image of
    ``image_shape`` (H, W) is read as H steps of W-pixel rows. Drawing from the program
    (:func:`pplgen.sample`) gives the chain ``(n, T, x_dim)``; :meth:`as_data` flattens it into data rows.

    The defaults are the sizes Pyro's DMM example uses for the paper's polyphonic-music data (88 notes
    per step): 100 state dimensions, 200 transition and 100 emission hidden units, 600 RNN units. A
    fraction of that suffices for the 8x8 digits (e.g. ``z_dim=8`` and 32 units throughout).

    References:
        Krishnan, Shalit & Sontag (2017), "Structured inference networks for nonlinear state space
        models", AAAI.
        Krishnan, Shalit & Sontag (2015), "Deep Kalman filters".

    Args:
        steps: the sequence length T.
        x_dim: dimensions of one observation :math:`x_t`.
        z_dim: dimensions of the state :math:`z_t`.
        transition_dim: hidden width of the gated transition's networks.
        emission_dim: hidden width of the emitter's two layers.
        rnn_dim: width of the guide's RNN.
        rnn: ``"gru"`` or ``"lstm"``.
        likelihood: ``"bernoulli"`` for binary data or ``"normal"`` for continuous data.

    Example:
        Sequences of 4 steps of 3 dimensions arrive flat; the graph has two chains, and a draw is the
        chain of observations:

        >>> import pplgen, torch
        >>> dmm = DMM(steps=4, x_dim=3, z_dim=2, transition_dim=8, emission_dim=8, rnn_dim=8)
        >>> graph = pplgen.inspect(dmm.model, torch.zeros(5, 12))
        >>> graph.graph["family"], graph.graph["chains"]["z_t"]
        ('latent', ['z_1', 'z_2', 'z_3', 'z_4'])
        >>> draws = pplgen.sample(dmm.model, 2, torch.zeros(5, 12), device="cpu")
        >>> draws.shape, dmm.as_data(draws).shape
        (torch.Size([2, 4, 3]), torch.Size([2, 12]))
    """

    def __init__(
        self,
        steps: int,
        x_dim: int,
        z_dim: int = 100,
        transition_dim: int = 200,
        emission_dim: int = 100,
        rnn_dim: int = 600,
        rnn: str = "gru",
        likelihood: str = "bernoulli",
    ):
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        if rnn not in RNNS:
            raise ValueError(f"rnn must be one of {tuple(RNNS)}, got {rnn!r}")
        if steps < 1 or x_dim < 1:
            raise ValueError(f"steps and x_dim must be positive, got steps={steps}, x_dim={x_dim}")
        self.config = {
            "steps": steps,
            "x_dim": x_dim,
            "z_dim": z_dim,
            "transition_dim": transition_dim,
            "emission_dim": emission_dim,
            "rnn_dim": rnn_dim,
            "rnn": rnn,
            "likelihood": likelihood,
        }
        self.steps, self.x_dim, self.z_dim = steps, x_dim, z_dim
        self.likelihood = likelihood
        # model p(z, x)
        self.transition = GatedTransition(z_dim, transition_dim)
        self.emitter = MLP([z_dim, emission_dim, emission_dim, x_dim])
        self.obs_log_scale = nn.Parameter(torch.zeros(x_dim))
        self.z_init = nn.Parameter(torch.zeros(z_dim))
        # guide q(z | x)
        self.rnn = RNNS[rnn](x_dim, rnn_dim, batch_first=True)
        self.h_init = nn.Parameter(torch.zeros(1, 1, rnn_dim))
        self.c_init = nn.Parameter(torch.zeros(1, 1, rnn_dim)) if rnn == "lstm" else None
        self.combiner = Combiner(z_dim, rnn_dim)
        self.z_q_init = nn.Parameter(torch.zeros(z_dim))

    @classmethod
    def from_dataset(cls, dataset, **config) -> DMM:
        """A DMM that reads each image of ``dataset`` as a sequence of its rows.

        Data without an ``image_shape`` need ``steps`` in ``config``: each point is then ``steps``
        equal slices of its flat vector.
        """
        if dataset.kind not in ("binary", "continuous"):
            raise DataError(
                f"the DMM models binary or continuous sequences, but {dataset.name!r} is {dataset.kind!r}"
            )
        dim = int(dataset.x[0].numel())
        if "steps" in config:
            steps = int(config.pop("steps"))
        elif dataset.image_shape is not None and len(dataset.image_shape) == 2:
            steps = int(dataset.image_shape[0])
        else:
            raise DataError(
                f"the DMM reads an image of shape (H, W) as H steps, but {dataset.name!r} has image_shape "
                f"{dataset.image_shape}; pass steps=T to cut its {dim}-dimensional points into T steps"
            )
        if dim % steps:
            raise DataError(
                f"{dataset.name!r} points have {dim} dimensions, which {steps} steps do not divide"
            )
        likelihood = "bernoulli" if dataset.kind == "binary" else "normal"
        return cls(**{"steps": steps, "x_dim": dim // steps, "likelihood": likelihood, **config})

    def sequences(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` of shape ``(N, T * x_dim)`` or ``(N, T, x_dim)`` as sequences ``(N, T, x_dim)`` in the
        model's dtype."""
        shape = (self.steps, self.x_dim)
        if x.dim() < 2 or tuple(x.shape[1:]) not in (shape, (self.steps * self.x_dim,)):
            raise DataError(
                f"DMM: expected sequences of shape (N, {self.steps * self.x_dim}) or (N, {self.steps}, "
                f"{self.x_dim}) ({self.steps} steps of {self.x_dim} dimensions), got shape {tuple(x.shape)}"
            )
        return x.reshape(x.shape[0], *shape).to(self.z_init.dtype)

    def as_data(self, samples: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        """Flat data rows ``(n, T * x_dim)`` from draws: the ``(n, T, x_dim)`` chain that
        :func:`pplgen.sample` returns, or per-step draws ``{"x_1": ..., "x_T": ...}``."""
        if isinstance(samples, torch.Tensor):
            return samples.flatten(1)
        return torch.stack([samples[f"x_{t}"] for t in range(1, self.steps + 1)], dim=1).flatten(1)

    def emission(self, z: torch.Tensor) -> dist.Distribution:
        r""":math:`p(x_t \mid z_t)` as a distribution over one step's vector."""
        out = self.emitter(z)
        if self.likelihood == "bernoulli":
            return dist.Bernoulli(logits=out).to_event(1)
        return dist.Normal(out, self.obs_log_scale.exp()).to_event(1)

    @pyro_method
    def model(self, x: torch.Tensor) -> None:
        seq = self.sequences(x)  # (N, T, x_dim)
        with pyro.plate("data", seq.shape[0]):
            z = self.z_init.expand(seq.shape[0], self.z_dim)
            for t in range(1, self.steps + 1):
                loc, scale = self.transition(z)
                z = pyro.sample(f"z_{t}", dist.Normal(loc, scale).to_event(1))
                pyro.sample(f"x_{t}", self.emission(z), obs=seq[:, t - 1])

    def backward_states(self, seq: torch.Tensor) -> torch.Tensor:
        """The RNN's summaries ``h[:, t]`` of :math:`x_{t:T}`: ``(N, T, rnn_dim)``, read from the end."""
        batch = seq.shape[0]
        h_0 = self.h_init.expand(-1, batch, -1).contiguous()
        state = h_0 if self.c_init is None else (h_0, self.c_init.expand(-1, batch, -1).contiguous())
        out, _ = self.rnn(seq.flip(1), state)
        return out.flip(1)

    @pyro_method
    def guide(self, x: torch.Tensor) -> None:
        seq = self.sequences(x)
        h = self.backward_states(seq)  # (N, T, rnn_dim)
        with pyro.plate("data", seq.shape[0]):
            z = self.z_q_init.expand(seq.shape[0], self.z_dim)
            for t in range(1, self.steps + 1):
                loc, scale = self.combiner(z, h[:, t - 1])
                z = pyro.sample(f"z_{t}", dist.Normal(loc, scale).to_event(1))
