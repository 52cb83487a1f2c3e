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
    """

    monitor = "val_nll"

    def loss(self, batch: tuple[torch.Tensor, ...], num_data: int) -> torch.Tensor:
        trace = poutine.trace(self.scaled(self.model, len(batch[0]), num_data)).get_trace(*batch)
        return -trace.log_prob_sum() / num_data

    def step(self, batch, num_data):
        return {"nll": super().step(batch, num_data)["loss"]}

    @torch.no_grad()
    def evaluate(self, batch, num_data):
        return {"val_nll": super().evaluate(batch, num_data)["val_loss"]}
