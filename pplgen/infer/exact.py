"""Maximum likelihood for programs whose random choices are all observed."""

from __future__ import annotations

import torch
from pyro import poutine

from pplgen.infer.trainer import Trainer

__all__ = ["ExactTrainer"]


class ExactTrainer(Trainer):
    r"""Minimise the exact negative log-likelihood :math:`-\frac{1}{B}\sum_b \log p(x_b)` of a mini-batch.

    With no latent sites the joint density of the trace *is* the likelihood, so no guide and no
    sampling are needed: autoregressive models and flows train this way (Larochelle & Murray 2011;
    Germain et al. 2015; van den Oord et al. 2016).

    Example:
        Three independent coins, each with a learned logit; at logits 0 the negative log-likelihood is
        :math:`3 \log 2` nats per data point:

        >>> import math, pyro, pyro.distributions as dist
        >>> from pplgen.graph import inspect
        >>> class Coins(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.logits = torch.nn.Parameter(torch.zeros(3))
        ...     def model(self, x):
        ...         with pyro.plate("data", len(x)):
        ...             pyro.sample("x", dist.Bernoulli(logits=self.logits).to_event(1), obs=x)
        >>> coins, x = Coins(), torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
        >>> trainer = ExactTrainer(coins.model, None, inspect(coins.model, x), torch.device("cpu"), lr=0.1)
        >>> trainer.setup((x,), num_data=2)
        >>> round(float(trainer.step((x,), num_data=2)["nll"]), 3), round(3 * math.log(2), 3)
        (2.079, 2.079)
        >>> [round(logit, 3) for logit in coins.logits.tolist()]  # only the first coin's data are uneven
        [0.1, 0.0, 0.0]
    """

    monitor = "val_nll"

    def loss(self, batch: tuple[torch.Tensor, ...], num_data: int) -> torch.Tensor:
        trace = poutine.trace(self.scaled(self.model, len(batch[0]), num_data)).get_trace(*batch)
        return -trace.log_prob_sum() / num_data

    def step(self, batch, num_data):
        metrics = super().step(batch, num_data)
        metrics["nll"] = metrics.pop("loss")
        return metrics

    @torch.no_grad()
    def evaluate(self, batch, num_data):
        return {"val_nll": super().evaluate(batch, num_data)["val_loss"]}
