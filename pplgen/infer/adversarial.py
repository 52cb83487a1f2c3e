"""Adversarial training for programs whose observed site is simulated (``pplgen.Implicit``): GANs, and
ALI/BiGAN when the program comes with a guide for its latents."""

from __future__ import annotations

import functools
import math

import pyro
import torch
from pyro import poutine
from torch import nn

from pplgen.distributions import Implicit
from pplgen.errors import ModelError, program_name
from pplgen.infer.gan_objectives import (
    AdversarialSettings,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    r1_penalty,
)
from pplgen.infer.trainer import Trainer
from pplgen.nn import MLP

__all__ = [
    "ALITrainer",
    "AdversarialTrainer",
    "CriticTrainer",
    "default_discriminator",
    "flat_latents",
    "local_latents",
    "per_point",
]


def default_discriminator(
    event_shape: tuple[int, ...], hidden: int = 256, pack: int = 1, spectral_norm: bool = False
) -> nn.Module:
    """An MLP critic on the flattened event (``pack`` events side by side), ``pack*D -> hidden -> hidden
    -> 1`` with leaky ReLUs, each linear layer spectrally normalised when asked (Miyato et al. 2018)."""
    features = (math.prod(event_shape) if event_shape else 1) * pack
    critic = MLP([features, hidden, hidden, 1], activation=functools.partial(nn.LeakyReLU, 0.2))
    if spectral_norm:
        for i, layer in enumerate(critic):
            if isinstance(layer, nn.Linear):
                critic[i] = nn.utils.parametrizations.spectral_norm(layer)
    return nn.Sequential(nn.Flatten(), critic)


def _implicit_fn(site) -> Implicit | None:
    fn = site["fn"]
    while hasattr(fn, "base_dist") and not isinstance(fn, Implicit):
        fn = fn.base_dist
    return fn if isinstance(fn, Implicit) else None


def flat_latents(trace, names: list[str]) -> torch.Tensor:
    """The values of the latent sites ``names`` in ``trace``, each flattened per data point and joined:
    shape ``(B, sum of the sites' sizes)``."""
    values = [trace.nodes[name]["value"] for name in names]
    return torch.cat([v.reshape(v.shape[0], -1) for v in values], dim=-1)


def per_point(graph, name: str) -> int:
    """How many numbers of site ``name`` belong to one data point (its size over the data plates' sizes)."""
    node = graph.nodes[name]
    sizes = [graph.graph["plates"][p] for p in node["plates"] if p in graph.graph["data_plates"]]
    return math.prod(node["batch_shape"]) * math.prod(node["event_shape"]) // max(sizes, default=1)


def local_latents(graph, trainer: str) -> tuple[list[str], int]:
    """The graph's latent sites and their size per data point; every one must be a continuous latent
    inside a data plate, since a discriminator judges them together with the data point they explain."""
    latents = [n for n, kind in graph.nodes(data="kind") if kind == "latent"]
    bad = [n for n in latents if not graph.nodes[n]["local"] or graph.nodes[n]["discrete"]]
    if not latents or bad:
        found = f"{bad} are global or discrete" if bad else "it has none"
        raise ModelError(
            f"the {trainer} trainer needs continuous latent sites inside the data plate, but {found}"
        )
    return latents, sum(per_point(graph, name) for name in latents)


class CriticTrainer(Trainer):
    """A trainer with a second player: a discriminator with its own Adam optimiser and learning rate.

    Subclasses set ``discriminator`` and ``d_lr`` in their constructor; this class moves the
    discriminator to the device, builds its optimiser, switches its mode with the program's, saves it in
    checkpoints, and takes guarded steps (:meth:`_update`).
    """

    discriminator: nn.Module
    d_lr: float
    d_optimizer: torch.optim.Optimizer | None = None

    def setup(self, batch, num_data):
        self.discriminator.to(self.device)
        super().setup(batch, num_data)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=self.d_lr, betas=self.betas)

    def train(self, mode: bool = True) -> None:
        super().train(mode)
        self.discriminator.train(mode)

    def _update(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> bool:
        """Take the step unless the loss or a gradient is not finite; returns whether it was taken."""
        optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            return False
        loss.backward()
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not all(bool(torch.isfinite(g).all()) for g in grads):
            optimizer.zero_grad(set_to_none=True)
            return False
        optimizer.step()
        return True

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


class AdversarialTrainer(CriticTrainer):
    r"""Train a generator program against a discriminator.

    Each step runs the program on a mini-batch: Pyro samples its latent sites, and the ``Implicit``
    site holds both the simulated value (``site["fn"].value``) and the data (``site["value"]``). The
    discriminator D and the program's parameters then take turns on the game that
    :class:`AdversarialSettings` names (non-saturating GAN by default; WGAN-GP; hinge), with optional R1
    or gradient penalties, PacGAN packing, several critic steps per generator step and an exponential
    moving average of the program's parameters. The program's parameters also minimise the negative
    log-likelihood of any other observed site. A step whose loss or gradients are not finite is skipped
    (nothing is updated) and counted in the history's ``skipped``; too many in a row stop training with a
    :class:`ModelError`.

    References:
        Goodfellow et al. (2014), "Generative adversarial nets".
        Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville (2017), "Improved training of Wasserstein GANs".
        Mescheder, Geiger & Nowozin (2018), "Which training methods for GANs do actually converge?" (R1).
        Lin, Khetan, Fanti & Oh (2018), "PacGAN: the power of two samples in generative adversarial
        networks".
        Heusel et al. (2017), "GANs trained by a two time-scale update rule..." (separate learning rates).
        Yazıcı et al. (2019), "The unusual effectiveness of averaging in GAN training" (EMA).
    """

    monitor = "val_d_loss"
    betas = (0.5, 0.999)  # the usual GAN setting (Radford et al. 2016)

    def __init__(
        self,
        *args,
        discriminator: nn.Module | None = None,
        d_lr: float | None = None,
        settings: AdversarialSettings | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        implicit = [n for n, kind in self.graph.nodes(data="kind") if kind == "implicit"]
        if len(implicit) != 1:
            raise ModelError(
                f"the adversarial trainer expects one Implicit site, found {len(implicit)}: {implicit}"
            )
        self.site = implicit[0]
        self.settings = settings if settings is not None else AdversarialSettings()
        if self.settings.loss == "wgan_gp":
            self.betas = (0.0, 0.9)  # Adam's settings in Gulrajani et al. (2017)
        self.discriminator = (
            discriminator
            if discriminator is not None
            else default_discriminator(
                self.judged_shape(), pack=self.settings.pack, spectral_norm=self.settings.spectral_norm
            )
        )
        self.d_lr = d_lr if d_lr is not None else self.lr
        self.average: dict[str, torch.Tensor] = {}
        self.bad_steps = 0
        self.averaged_steps = 0

    def judged_shape(self) -> tuple[int, ...]:
        """The event shape of one sample the discriminator judges: the implicit site's event."""
        return tuple(self.graph.nodes[self.site]["event_shape"])

    def setup(self, batch, num_data):
        super().setup(batch, num_data)
        with torch.no_grad(), torch.random.fork_rng(devices=self._rng_devices()):
            real, _, _ = self.run(lambda: self.simulate(batch))
            self._check_scores(real)
        if self.settings.ema is not None:
            self.average = {k: v.detach().clone() for k, v in self.params.items()}

    def _check_scores(self, real: torch.Tensor) -> None:
        expected = len(self.pack(real))
        if self.critic(real).shape != (expected,):
            packed = "packed " if self.settings.pack > 1 else ""
            raw = tuple(self.discriminator(self.pack(real)).shape)
            raise ModelError(
                f"the discriminator should return one score per {packed}sample, shape ({expected},) or "
                f"({expected}, 1); it returned shape {raw}"
            )

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """``pack`` samples side by side: (B, D) -> (B // pack, pack * D), the remainder dropped."""
        p = self.settings.pack
        return x if p == 1 else x[: len(x) // p * p].reshape(len(x) // p, -1)

    def critic(self, x: torch.Tensor) -> torch.Tensor:
        """The discriminator's scores on (packed) flat samples, shape ``(B // pack,)``."""
        scores = self.discriminator(self.pack(x))
        return scores.squeeze(-1) if scores.dim() == 2 and scores.shape[1] == 1 else scores

    def simulate(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the program once: (real, fake, negative log-likelihood of the other observed sites)."""
        return self.observations(poutine.trace(self.model).get_trace(*batch), len(batch[0]))

    def observations(self, trace, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """From a trace of the program: the data and the simulated values, flat per data point, and the
        negative log-likelihood per data point of the other observed sites."""
        site = trace.nodes[self.site]
        fake = _implicit_fn(site).value
        real = site["value"]
        others = torch.zeros((), device=real.device)
        for name, other in trace.nodes.items():
            if other["type"] == "sample" and other["is_observed"] and name != self.site:
                others = others - other["fn"].log_prob(other["value"]).sum() / size
        flat = (real.shape[0], -1)
        return real.reshape(flat), fake.expand_as(real).reshape(flat), others

    def g_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """What the program's parameters minimise: the generator's side of the game."""
        return generator_loss(self.settings.loss, self.critic(fake))

    def loss(self, batch, num_data):
        real, fake, others = self.simulate(batch)
        return self.g_loss(real, fake) + others

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        s = self.settings
        # the real side is detached too: under ALI it carries the encoder's graph, which the generator
        # step still needs after this loss is backpropagated
        loss = discriminator_loss(s.loss, self.critic(real.detach()), self.critic(fake.detach()))
        if s.gradient_penalty:
            loss = loss + s.gradient_penalty * gradient_penalty(self.critic, real, fake)
        if s.r1:
            loss = loss + s.r1 * r1_penalty(self.critic, real)
        return loss

    def step(self, batch, num_data):
        taken = True
        for i in range(self.settings.d_steps):
            # only the last draw feeds the generator's step: the earlier ones need no graph through it
            with torch.set_grad_enabled(i == self.settings.d_steps - 1):
                real, fake, others = self.run(lambda: self.simulate(batch))
            d_loss = self.d_loss(real, fake)
            taken &= self._update(d_loss, self.d_optimizer)
        g_loss = self.g_loss(real, fake) + others
        taken &= self._update(g_loss, self.optimizer)
        self._count(taken)
        if taken and self.average:
            self.averaged_steps += 1
            # the decay warms up, (1 + t) / (10 + t), so that the average soon forgets the initial weights
            decay = min(self.settings.ema, (1 + self.averaged_steps) / (10 + self.averaged_steps))
            with torch.no_grad():
                for key, value in self.params.items():
                    self.average[key].lerp_(value.detach(), 1.0 - decay)
        return {
            "d_loss": float(d_loss.detach()),
            "g_loss": float(g_loss.detach()),
            "skipped": float(not taken),
        }

    def _count(self, taken: bool) -> None:
        self.bad_steps = 0 if taken else self.bad_steps + 1
        if self.bad_steps >= self.settings.max_bad_steps:
            raise ModelError(
                f"adversarial training diverged: {self.bad_steps} steps in a row had a non-finite loss or "
                "gradient and were skipped; lower the learning rates, or use loss='wgan_gp' or an r1 penalty"
            )

    def finish(self) -> None:
        """End with the averaged parameters, when an average is kept."""
        if self.average:
            with torch.no_grad():
                for key, value in self.params.items():
                    value.copy_(self.average[key])

    @torch.no_grad()
    def evaluate(self, batch, num_data):
        with pyro.validation_enabled(False):
            real, fake, _ = self.run(lambda: self.simulate(batch))
        return {
            "val_d_loss": float(discriminator_loss(self.settings.loss, self.critic(real), self.critic(fake)))
        }

    def state_dict(self):
        average = {k: v.clone() for k, v in self.average.items()}
        return {**super().state_dict(), "average": average, "averaged_steps": self.averaged_steps}

    def load_state_dict(self, state, *, optimizer=True):
        super().load_state_dict(state, optimizer=optimizer)
        self.averaged_steps = int(state.get("averaged_steps", 0))
        for key, value in state.get("average", {}).items():
            if key in self.average:
                self.average[key].copy_(value)


class ALITrainer(AdversarialTrainer):
    r"""Adversarially learned inference: a generator and an encoder trained against a joint discriminator.

    The program is an implicit model, :math:`z \sim p(z)`, :math:`x = G(z)` observed through an
    ``Implicit`` site, and the guide an encoder :math:`q(z \mid x)` that samples the model's latents.
    The discriminator :math:`D(x, z)` judges pairs: real ones :math:`(x, z)` with :math:`x` from the data
    and :math:`z \sim q(z \mid x)`, fake ones :math:`(G(z), z)` with :math:`z \sim p(z)`; the default
    discriminator is :func:`default_discriminator` on the flat data point and latents joined. The
    generator and the encoder minimise the generator's loss with the labels swapped on the encoder's
    side,

    .. math::
        \ell_G(D(G(z), z)) + \ell_G(-D(x, E(x))),

    so the generator makes its pairs look real and the encoder makes its pairs look fake (with the
    non-saturating loss, :math:`-\log \sigma(D(G(z), z)) - \log(1 - \sigma(D(x, E(x))))`). At the game's
    optimum the two joint distributions agree, so the encoder inverts the generator. Every setting of
    :class:`AdversarialSettings` (losses, penalties on the joint pairs, packing, critic steps, EMA) applies.

    References:
        Dumoulin, Belghazi, Poole, Mastropietro, Lamb, Arjovsky & Courville (2017), "Adversarially
        learned inference".
        Donahue, Krähenbühl & Darrell (2017), "Adversarial feature learning".
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.guide is None:
            raise ModelError(
                f"ALI trains an encoder together with the generator, but the model "
                f"{program_name(self.model)!r} came without a guide: pass guide= (an encoder q(z | x))"
            )
        self.latents, _ = local_latents(self.graph, "ALI")

    def judged_shape(self) -> tuple[int, ...]:
        """One data point and its latents, flat and joined."""
        _, latent_size = local_latents(self.graph, "ALI")
        return (math.prod(super().judged_shape()) + latent_size,)

    def simulate(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Real pairs (data, encoder's latents), fake pairs (generated data, prior latents), and the
        negative log-likelihood of the program's other observed sites."""
        guide_trace = poutine.trace(self.guide).get_trace(*batch)
        trace = poutine.trace(self.model).get_trace(*batch)
        real, fake, others = self.observations(trace, len(batch[0]))
        real = torch.cat([real, flat_latents(guide_trace, self.latents)], dim=-1)
        return real, torch.cat([fake, flat_latents(trace, self.latents)], dim=-1), others

    def g_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        loss = self.settings.loss
        return generator_loss(loss, self.critic(fake)) + generator_loss(loss, -self.critic(real))
