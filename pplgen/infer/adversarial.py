"""Adversarial training for programs whose observed site is simulated (``pplgen.Implicit``)."""

from __future__ import annotations

import functools
import math

import pyro
import torch
import torch.nn.functional as F
from pyro import poutine
from torch import nn

from pplgen.distributions import Implicit
from pplgen.errors import ModelError
from pplgen.infer.trainer import Trainer
from pplgen.nn import MLP

__all__ = ["AdversarialTrainer", "default_discriminator"]


def default_discriminator(event_shape: tuple[int, ...], hidden: int = 256) -> nn.Module:
    """An MLP critic on the flattened event: ``D -> hidden -> hidden -> 1`` with leaky ReLUs."""
    features = math.prod(event_shape) if event_shape else 1
    return nn.Sequential(
        nn.Flatten(), MLP([features, hidden, hidden, 1], activation=functools.partial(nn.LeakyReLU, 0.2))
    )


def _implicit_fn(site) -> Implicit | None:
    fn = site["fn"]
    while hasattr(fn, "base_dist") and not isinstance(fn, Implicit):
        fn = fn.base_dist
    return fn if isinstance(fn, Implicit) else None


class AdversarialTrainer(Trainer):
    r"""Train a generator program against a discriminator, the non-saturating GAN game.

    Each step runs the program on a mini-batch: Pyro samples its latent sites, and the ``Implicit``
    site holds both the simulated value (``site["fn"].value``) and the data (``site["value"]``). The
    discriminator :math:`D` minimises :math:`-\log\sigma(D(x)) - \log(1-\sigma(D(G(z))))`; the
    program's parameters minimise :math:`-\log\sigma(D(G(z)))` plus the negative log-likelihood of
    any other observed site.

    References:
        Goodfellow et al. (2014), "Generative adversarial nets".
    """

    monitor = "val_d_loss"
    betas = (0.5, 0.999)  # the usual GAN setting (Radford et al. 2016)

    def __init__(self, *args, discriminator: nn.Module | None = None, d_lr: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        implicit = [n for n, kind in self.graph.nodes(data="kind") if kind == "implicit"]
        if len(implicit) != 1:
            raise ModelError(
                f"the adversarial trainer expects one Implicit site, found {len(implicit)}: {implicit}"
            )
        self.site = implicit[0]
        event_shape = tuple(self.graph.nodes[self.site]["event_shape"])
        self.discriminator = (
            discriminator if discriminator is not None else default_discriminator(event_shape)
        )
        self.d_lr = d_lr if d_lr is not None else self.lr
        self.d_optimizer: torch.optim.Optimizer | None = None

    def setup(self, batch, num_data):
        self.discriminator.to(self.device)
        super().setup(batch, num_data)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=self.d_lr, betas=self.betas)

    def train(self, mode: bool = True) -> None:
        super().train(mode)
        self.discriminator.train(mode)

    def simulate(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the program once: (real, fake, negative log-likelihood of the other observed sites)."""
        trace = poutine.trace(self.model).get_trace(*batch)
        site = trace.nodes[self.site]
        fake = _implicit_fn(site).value
        real = site["value"]
        others = torch.zeros((), device=real.device)
        for name, other in trace.nodes.items():
            if other["type"] == "sample" and other["is_observed"] and name != self.site:
                others = others - other["fn"].log_prob(other["value"]).sum() / len(batch[0])
        flat = (real.shape[0], -1)
        return real.reshape(flat), fake.expand_as(real).reshape(flat), others

    def loss(self, batch, num_data):
        real, fake, others = self.simulate(batch)
        return F.softplus(-self.discriminator(fake)).mean() + others

    def step(self, batch, num_data):
        real, fake, others = self.run(lambda: self.simulate(batch))
        d_loss = (
            F.softplus(-self.discriminator(real)).mean()
            + F.softplus(self.discriminator(fake.detach())).mean()
        )
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()

        g_loss = F.softplus(-self.discriminator(fake)).mean() + others
        self.optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        self.optimizer.step()
        return {"d_loss": float(d_loss.detach()), "g_loss": float(g_loss.detach())}

    @torch.no_grad()
    def evaluate(self, batch, num_data):
        with pyro.validation_enabled(False):
            real, fake, _ = self.run(lambda: self.simulate(batch))
        d_loss = F.softplus(-self.discriminator(real)).mean() + F.softplus(self.discriminator(fake)).mean()
        return {"val_d_loss": float(d_loss)}

    def state_dict(self):
        return {
            **super().state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
        }

    def load_state_dict(self, state, *, optimizer=True):
        super().load_state_dict(state, optimizer=optimizer)
        self.discriminator.load_state_dict(state["discriminator"])
        if optimizer:
            self.d_optimizer.load_state_dict(state["d_optimizer"])
