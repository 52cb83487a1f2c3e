r"""Adversarial variational Bayes: amortised inference with a guide that has no density.

A guide that draws its latent as a free function of the data and noise, :math:`z = E(x, \epsilon)`,
says so by sampling the site through :class:`pplgen.Implicit`::

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            eps = torch.randn(x.shape[0], noise_dim)  # the guide's own noise, not a site of the model
            pyro.sample("z", pplgen.Implicit(encoder(x, eps), event_dim=1))

The noise is drawn with ``torch.randn`` rather than at a sample site, so that the guide's sites stay
exactly the model's latents. An ``Implicit`` site has no :math:`\log q(z \mid x)`, so the ELBO cannot be
evaluated directly; :class:`AVBTrainer` estimates the missing term with a discriminator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyro
import torch
from pyro import poutine
from torch import nn

from pplgen.distributions import Implicit
from pplgen.errors import ModelError, program_errors
from pplgen.infer.adversarial import (
    CriticTrainer,
    default_discriminator,
    flat_latents,
    local_latents,
    per_point,
)
from pplgen.infer.gan_objectives import discriminator_loss

__all__ = ["AVBTrainer", "AdversarialELBO", "implicit_sites"]


def implicit_sites(guide: Callable, batch: tuple[torch.Tensor, ...]) -> list[str]:
    """The latent sites ``guide`` samples through :class:`pplgen.Implicit` (run once on ``batch``, without
    gradients and under a forked RNG)."""
    with torch.no_grad(), torch.random.fork_rng(devices=[]), pyro.validation_enabled(False):
        with program_errors(guide, role="guide"):
            trace = poutine.trace(guide).get_trace(*batch)
    found = []
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and not site["is_observed"]:
            fn = site["fn"]
            while hasattr(fn, "base_dist") and not isinstance(fn, Implicit):
                fn = fn.base_dist
            if isinstance(fn, Implicit):
                found.append(name)
    return found


@dataclass
class AdversarialELBO:
    r"""The ELBO with the log density ratio of guide and prior estimated by a discriminator
    :math:`T(x, z)`:

    .. math::
        \mathcal{L} = \mathbb{E}_{q(z \mid x)}\left[\log p(x \mid z) - T(x, z)\right],
        \qquad T^*(x, z) = \log q(z \mid x) - \log p(z),

    :math:`T^*` being the optimum of the logistic loss that tells :math:`(x, z \sim q(z \mid x))` from
    :math:`(x, z \sim p(z))`.

    Attributes:
        d_steps: discriminator updates per update of the model and guide; more keeps :math:`T` closer
            to its optimum, on which the estimate of the bound relies.

    References:
        Mescheder, Nowozin & Geiger (2017), "Adversarial variational Bayes: unifying variational
        autoencoders and generative adversarial networks".

    Example:
        >>> AdversarialELBO(d_steps=3)  # pass as pplgen.fit(..., objective=AdversarialELBO(d_steps=3))
        AdversarialELBO(d_steps=3)
        >>> AdversarialELBO(d_steps=0)
        Traceback (most recent call last):
            ...
        ValueError: expected d_steps >= 1, got 0
    """

    d_steps: int = 1

    def __post_init__(self):
        if self.d_steps < 1:
            raise ValueError(f"expected d_steps >= 1, got {self.d_steps}")


class AVBTrainer(CriticTrainer):
    r"""Fit a latent model and an implicit guide :math:`z = E(x, \epsilon)` by adversarial variational Bayes.

    Each step first trains the discriminator :math:`T(x, z)` (logistic loss) to tell the guide's
    latents for a data point, :math:`(x, z \sim q(z \mid x))`, from prior draws for the same data point,
    :math:`(x, z \sim p(z))`, then lets the model and the guide maximise the :class:`AdversarialELBO`
    :math:`\mathbb{E}_q[\log p(x \mid z) - T(x, z)]` with :math:`T` held fixed. Since
    :math:`\mathbb{E}_q[\nabla_\phi T^*(x, z)] = 0`, the guide's gradient through :math:`z` alone is the
    ELBO's (Mescheder et al. 2017, Proposition 2). The prior draws are the model's own: the model is run
    unconditioned on the latents, so any prior over local continuous latents works.

    The default discriminator is :func:`~pplgen.infer.adversarial.default_discriminator` on the flat
    data point and latents joined. The loss (history ``loss``, ``val_loss``) is the negative estimated
    bound per data point, in nats; ``t_loss`` and ``val_t_loss`` are the discriminator's logistic loss
    (2 log 2 = 1.386 when it cannot tell the two apart).

    References:
        Mescheder, Nowozin & Geiger (2017), "Adversarial variational Bayes: unifying variational
        autoencoders and generative adversarial networks".

    Example:
        A VAE whose encoder takes noise as an input, so that :math:`q(z \mid x)` has no density:

        >>> import pyro.distributions as dist
        >>> from pplgen.graph import inspect
        >>> class NoisyVAE(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.decoder, self.encoder = nn.Linear(1, 2), nn.Linear(2 + 1, 1)
        ...     def model(self, x):
        ...         with pyro.plate("data", len(x)):
        ...             z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
        ...             pyro.sample("x", dist.Normal(self.decoder(z), 1.0).to_event(1), obs=x)
        ...     def guide(self, x):
        ...         with pyro.plate("data", len(x)):
        ...             eps = torch.randn(len(x), 1)
        ...             pyro.sample("z", Implicit(self.encoder(torch.cat([x, eps], -1)), event_dim=1))
        >>> _ = torch.manual_seed(0)
        >>> vae, x = NoisyVAE(), torch.randn(8, 2)
        >>> implicit_sites(vae.guide, (x,))
        ['z']
        >>> trainer = AVBTrainer(vae.model, vae.guide, inspect(vae.model, x), torch.device("cpu"))
        >>> trainer.setup((x,), num_data=8)
        >>> data, posterior, prior, log_lik = trainer.pairs((x,))
        >>> [tuple(t.shape) for t in (data, posterior, prior, trainer.score(data, prior))]
        [(8, 2), (8, 1), (8, 1), (8,)]
        >>> sorted(trainer.step((x,), num_data=8))
        ['loss', 't_loss']
    """

    monitor = "val_loss"

    def __init__(
        self,
        *args,
        discriminator: nn.Module | None = None,
        d_lr: float | None = None,
        objective: AdversarialELBO | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if objective is not None and not isinstance(objective, AdversarialELBO):
            raise ModelError(
                f"the guide samples its latents through Implicit, which has no log q(z | x), so the "
                f"objective {type(objective).__name__} cannot score it: expected an AdversarialELBO or None"
            )
        self.objective = objective if objective is not None else AdversarialELBO()
        self.latents, latent_size = local_latents(self.graph, "AVB")
        self.observed = [n for n, kind in self.graph.nodes(data="kind") if kind == "observed"]
        data_size = sum(per_point(self.graph, n) for n in self.observed)
        self.discriminator = (
            discriminator if discriminator is not None else default_discriminator((data_size + latent_size,))
        )
        self.d_lr = d_lr if d_lr is not None else self.lr

    def pairs(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""The flat data, the guide's latents, prior latents, and :math:`\log p(x \mid z)` per data point
        at the guide's latents."""
        size = len(batch[0])
        guide_trace = poutine.trace(self.guide).get_trace(*batch)
        trace = poutine.trace(poutine.replay(self.model, trace=guide_trace)).get_trace(*batch)
        prior = poutine.trace(self.model).get_trace(*batch)
        log_lik = torch.zeros((), device=self.device)
        for name in self.observed:
            site = trace.nodes[name]
            log_lik = log_lik + (site["scale"] * site["fn"].log_prob(site["value"])).sum() / size
        x = torch.cat([trace.nodes[n]["value"].reshape(size, -1) for n in self.observed], dim=-1)
        return x, flat_latents(guide_trace, self.latents), flat_latents(prior, self.latents), log_lik

    def score(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The discriminator :math:`T(x, z)`, one score per data point."""
        scores = self.discriminator(torch.cat([x, z], dim=-1))
        return scores.squeeze(-1) if scores.dim() == 2 and scores.shape[1] == 1 else scores

    def t_loss(self, x: torch.Tensor, posterior: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        return discriminator_loss("non_saturating", self.score(x, posterior.detach()), self.score(x, prior))

    def loss(self, batch, num_data):
        x, posterior, _, log_lik = self.pairs(batch)
        return self.score(x, posterior).mean() - log_lik

    def step(self, batch, num_data):
        for _ in range(self.objective.d_steps):
            x, posterior, prior, log_lik = self.run(lambda: self.pairs(batch))
            t_loss = self.t_loss(x, posterior, prior)
            if not self.update(t_loss, self.d_optimizer, guarded=True):
                raise ModelError(
                    f"AVB's discriminator loss or its gradients are not finite ({float(t_loss)})"
                )
        loss = self.score(x, posterior).mean() - log_lik
        if not self.update(loss, self.optimizer, guarded=True):
            raise ModelError(f"AVB's loss or its gradients are not finite ({float(loss)}): lower lr")
        return {"loss": float(loss.detach()), "t_loss": float(t_loss.detach())}

    @torch.no_grad()
    def evaluate(self, batch, num_data):
        x, posterior, prior, log_lik = self.run(lambda: self.pairs(batch))
        return {
            "val_loss": float(self.score(x, posterior).mean() - log_lik),
            "val_t_loss": float(self.t_loss(x, posterior, prior)),
        }
