"""Amortised stochastic variational inference for programs with latent sites."""

from __future__ import annotations

import networkx as nx
import torch
from pyro.infer import ELBO as PyroELBO
from pyro.infer import TraceEnum_ELBO

from pplgen.errors import ModelError
from pplgen.infer.checks import chunks
from pplgen.infer.objectives import ELBO, Objective, Terms
from pplgen.infer.trainer import Trainer

__all__ = ["ACTIVE_THRESHOLD", "SVITrainer", "default_objective"]

ACTIVE_THRESHOLD = 0.01  # Burda et al. (2016): a unit is active when Cov_x(E_q[u]) exceeds this


def _enumerated(graph: nx.DiGraph) -> list[str]:
    return [n for n, d in graph.nodes(data=True) if d["kind"] == "latent" and d.get("enumerate")]


def _discrete(graph: nx.DiGraph) -> list[str]:
    return [n for n, d in graph.nodes(data=True) if d["kind"] == "latent" and d.get("discrete")]


def default_objective(graph: nx.DiGraph) -> Objective | PyroELBO:
    """pplgen's :class:`ELBO` (analytic KL); Pyro's ``TraceEnum_ELBO`` when a latent is discrete, so that
    it is summed out where the model or guide enumerates it (and scored where neither does)."""
    if _discrete(graph):
        nesting = max((-dim for dim in graph.graph.get("plate_dims", {}).values()), default=1)
        return TraceEnum_ELBO(max_plate_nesting=nesting)
    return ELBO()


class SVITrainer(Trainer):
    r"""Maximise a lower bound on :math:`\log p(x)` with a guide :math:`q(z \mid x)` shared over the data.

    .. math::
        \log p(x) \ge \mathbb{E}_{q(z \mid x)}\left[\log p(x, z) - \log q(z \mid x)\right]

    The objective is an :class:`pplgen.infer.objectives.Objective` (:class:`ELBO` by default, or
    :class:`IWAE`) or any Pyro ELBO (``TraceEnum_ELBO`` by default when the model enumerates discrete
    latents). The loss is the negative bound per data point, in nats; local sites are scaled by N/B so
    that the mini-batch estimate is unbiased for models with global latents too.

    Validation adds, for pplgen's ELBO, ``val_kl`` (KL per data point), ``kl_per_dim`` (per latent site,
    the KL of each dimension) and ``active_units`` (dimensions whose posterior mean varies across the
    data by more than 0.01; Burda et al. 2016), so that a collapsing posterior shows in the history.

    References:
        Kingma & Welling (2014), "Auto-encoding variational Bayes".
        Rezende, Mohamed & Wierstra (2014), "Stochastic backpropagation and approximate inference in deep
        generative models".
        Hoffman, Blei, Wang & Paisley (2013), "Stochastic variational inference".

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> from pplgen.graph import inspect
        >>> def model(x):
        ...     with pyro.plate("data", len(x)):
        ...         z = pyro.sample("z", dist.Normal(0.0, 1.0))
        ...         pyro.sample("x", dist.Normal(z, 1.0), obs=x)
        >>> class Encoder(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.net = torch.nn.Linear(1, 2)
        ...     def guide(self, x):
        ...         loc, log_scale = self.net(x.unsqueeze(-1)).unbind(-1)
        ...         with pyro.plate("data", len(x)):
        ...             pyro.sample("z", dist.Normal(loc, log_scale.exp()))
        >>> _ = torch.manual_seed(0)
        >>> x, encoder = torch.linspace(-2.0, 2.0, 8), Encoder()
        >>> trainer = SVITrainer(model, encoder.guide, inspect(model, x), torch.device("cpu"))
        >>> trainer.objective
        ELBO(num_particles=1, analytic_kl=True, warmup=0, free_bits=0.0)
        >>> trainer.setup((x,), num_data=8)
        >>> sorted(trainer.step((x,), num_data=8))  # skipped: 1.0 when the loss or a gradient was not finite
        ['kl', 'loss', 'skipped']
        >>> row = trainer.validate((x,), batch_size=4)
        >>> sorted(row), row["latent_units"]
        (['active_units', 'kl_per_dim', 'latent_units', 'val_kl', 'val_loss'], 1)
    """

    monitor = "val_loss"

    def __init__(self, *args, objective: Objective | PyroELBO | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.objective = objective if objective is not None else default_objective(self.graph)
        discrete = _discrete(self.graph)
        if discrete and isinstance(self.objective, Objective):
            raise ModelError(
                f"the model has discrete latents {discrete}, which pplgen's {type(self.objective).__name__} "
                "does not sum out or score: use pyro.infer.TraceEnum_ELBO (the default for such models)"
            )

    def terms(
        self, batch: tuple[torch.Tensor, ...], num_data: int, training: bool
    ) -> tuple[torch.Tensor, Terms]:
        """The loss per data point and what it is made of."""
        if isinstance(self.objective, Objective):
            return self.objective.loss(self.model, self.guide, batch, num_data, self.data_plates, training)
        size = len(batch[0])
        model, guide = self.scaled(self.model, size, num_data), self.scaled(self.guide, size, num_data)
        if torch.is_grad_enabled():
            loss = self.objective.differentiable_loss(model, guide, *batch) / num_data
        else:  # some Pyro ELBOs refuse differentiable_loss when nothing can be differentiated
            loss = torch.as_tensor(self.objective.loss(model, guide, *batch) / num_data)
        return loss, Terms(-float(loss.detach()))

    def loss(self, batch: tuple[torch.Tensor, ...], num_data: int) -> torch.Tensor:
        return self.terms(batch, num_data, training=True)[0]

    def step(self, batch, num_data):
        loss, terms = self.run(lambda: self.terms(batch, num_data, training=True))
        taken = self.update(loss, self.optimizer, guarded=True)
        self.count(taken, batch)
        if hasattr(self.objective, "steps"):
            self.objective.steps += 1
        # left on the device: the loop reads the epoch's mean once
        metrics = {"loss": loss.detach(), "skipped": float(not taken)}
        if terms.kl:
            metrics["kl"] = sum(kl.detach().sum() for kl in terms.kl.values())
        return metrics

    @torch.no_grad()
    def validate(self, valid: tuple[torch.Tensor, ...], batch_size: int) -> dict:
        self.train(False)
        num_data = len(valid[0])
        loss, kl, locs = 0.0, {}, {}
        try:
            for batch in chunks(valid, batch_size):
                value, terms = self.run(lambda b=batch: self.terms(b, num_data, training=False))
                share = len(batch[0]) / num_data  # each batch's figures are means over its points
                loss += float(value) * share
                for name, site_kl in terms.kl.items():
                    kl[name] = kl.get(name, 0.0) + site_kl.cpu() * share
                for name, loc in terms.loc.items():
                    locs.setdefault(name, []).append(loc.cpu())
        finally:
            self.train(True)
        row: dict = {"val_loss": loss}
        if kl:
            row["val_kl"] = sum(float(v.sum()) for v in kl.values())
            row["kl_per_dim"] = {name: [round(float(x), 5) for x in v] for name, v in kl.items()}
        if locs and num_data > 1:  # a variance over the data needs two points
            means = [torch.cat(v) for v in locs.values()]
            row["active_units"] = sum(int((m.var(0) > ACTIVE_THRESHOLD).sum()) for m in means)
            row["latent_units"] = sum(m.shape[1] for m in means)
        return row

    def state_dict(self) -> dict:
        objective = self.objective.state_dict() if isinstance(self.objective, Objective) else {}
        return {**super().state_dict(), "objective": objective}

    def load_state_dict(self, state: dict, *, optimizer: bool = True) -> None:
        super().load_state_dict(state, optimizer=optimizer)
        if isinstance(self.objective, Objective):
            self.objective.load_state_dict(state.get("objective", {}))
