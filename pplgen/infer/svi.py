"""Amortised stochastic variational inference for programs with latent sites."""

from __future__ import annotations

import torch
from pyro.infer import ELBO, Trace_ELBO

from pplgen.infer.trainer import Trainer

__all__ = ["SVITrainer"]


class SVITrainer(Trainer):
    r"""Maximise the evidence lower bound with a guide :math:`q(z \mid x)` shared over the data.

    .. math::
        \log p(x) \ge \mathbb{E}_{q(z \mid x)}\left[\log p(x, z) - \log q(z \mid x)\right]

    The loss is the negative ELBO per data point, in nats; local sites are scaled by N/B so that the
    mini-batch estimate is unbiased for models with global latents too.

    References:
        Kingma & Welling (2014), "Auto-encoding variational Bayes".
        Rezende et al. (2014), "Stochastic backpropagation and approximate inference".
        Hoffman et al. (2013), "Stochastic variational inference".
    """

    monitor = "val_loss"

    def __init__(self, *args, elbo: ELBO | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.elbo = elbo if elbo is not None else Trace_ELBO()

    def loss(self, batch: tuple[torch.Tensor, ...], num_data: int) -> torch.Tensor:
        size = len(batch[0])
        model = self.scaled(self.model, size, num_data)
        guide = self.scaled(self.guide, size, num_data)
        return self.elbo.differentiable_loss(model, guide, *batch) / num_data
