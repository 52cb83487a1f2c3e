"""Adversarial training for programs whose observed site is simulated (``pplgen.Implicit``): GANs, and
ALI/BiGAN when the program comes with a guide for its latents."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

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
from pplgen.infer.trainer import Trainer, adam
from pplgen.nn import MLP, ConvEncoder

__all__ = [
    "ALITrainer",
    "Critic",
    "AdversarialTrainer",
    "CriticTrainer",
    "default_discriminator",
    "flat_latents",
    "local_latents",
    "packed_shape",
    "per_point",
    "Simulated",
]


def packed_shape(event_shape: Sequence[int], pack: int) -> tuple[int, ...]:
    """The shape of ``pack`` samples judged together: flat events side by side, ``(pack * D,)``; images
    stacked as channels, ``(H, W) -> (pack, H, W)`` and ``(C, H, W) -> (pack * C, H, W)``, as PacGAN
    packs them (Lin et al. 2018)."""
    shape = tuple(int(s) for s in event_shape)
    if len(shape) == 2:
        return (pack, *shape)
    if len(shape) == 3:
        return (pack * shape[0], *shape[1:])
    return (pack * math.prod(shape),)


_leaky = functools.partial(nn.LeakyReLU, 0.2)


class Critic(nn.Module):
    r"""A discriminator made of a feature network :math:`\phi` and a one-unit head, with the context
    projected onto the features when there is one:

    .. math::
        D(x, c) = w^\top \phi(x) + (V c)^\top \phi(x),

    the projection discriminator of Miyato & Koyama (2018), which conditions far more strongly than
    joining :math:`c` to the input (Mirza & Osindero 2014).

    Args:
        body: the feature network, ``(B, *shape) -> (B, features)``.
        features: its output width.
        context: the context's width (0 for an unconditional critic).
    """

    def __init__(self, body: nn.Module, features: int, context: int = 0):
        super().__init__()
        self.body, self.context = body, context
        self.head = nn.Linear(features, 1)
        self.embed = nn.Linear(context, features, bias=False) if context else None

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        h = self.body(x)
        score = self.head(h)
        if self.embed is not None:
            if context is None or context.shape != (len(x), self.context):
                got = None if context is None else tuple(context.shape)
                raise ModelError(
                    f"the critic expects a context of shape ({len(x)}, {self.context}), got {got}"
                )
            score = score + (self.embed(context.to(h.dtype)) * h).sum(-1, keepdim=True)
        return score


def default_discriminator(
    event_shape: Sequence[int],
    hidden: int = 256,
    pack: int = 1,
    spectral_norm: bool = False,
    context: int = 0,
) -> Critic:
    """The critic :func:`pplgen.fit` builds from the shape of the samples it judges.

    Images, events of shape ``(H, W)`` or ``(C, H, W)``, get convolutional features in the style of the
    DCGAN discriminator (Radford et al. 2016): :class:`~pplgen.nn.ConvEncoder` with leaky ReLUs and
    strided convolutions. Any other event is flattened into an MLP, ``D -> hidden -> hidden``, with
    leaky ReLUs. ``pack`` samples are judged together (:func:`packed_shape`). With a ``context`` of that
    width (what the samples are conditioned on: the ``Implicit`` site's ``context``, such as a one-hot
    label), the critic is called ``critic(x, context)`` and projects the context onto its features
    (:class:`Critic`). With ``spectral_norm`` every linear and convolutional layer is spectrally
    normalised (Miyato et al. 2018).
    """
    shape = packed_shape(event_shape, pack)
    if len(shape) == 3:
        features = ConvEncoder(shape, hidden, channels=64, hidden=hidden, stages=2, activation=_leaky)
    else:
        features = nn.Sequential(nn.Flatten(), MLP([shape[0], hidden, hidden], activation=_leaky))
    critic = Critic(nn.Sequential(features, _leaky()), hidden, context * pack)
    if spectral_norm:
        for layer in critic.modules():
            if isinstance(layer, nn.Linear | nn.Conv2d):
                nn.utils.parametrizations.spectral_norm(layer)
    return critic


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


class Simulated(NamedTuple):
    """One run of an implicit program, as the discriminator sees it."""

    real: torch.Tensor  # the data, (B, *shape of one sample)
    fake: torch.Tensor  # the simulated values, same shape
    context: torch.Tensor | None  # what the simulation is conditioned on, (B, K)
    others: torch.Tensor  # negative log-likelihood per data point of the other observed sites


class CriticTrainer(Trainer):
    """A trainer with a second player: a discriminator with its own Adam optimiser and learning rate.

    Subclasses set ``discriminator`` and ``d_lr`` in their constructor; this class moves the
    discriminator to the device, builds its optimiser, switches its mode with the program's, saves it in
    checkpoints, and takes guarded steps (``update(..., guarded=True)``).

    Example:
        A GAN's trainer, with the critic learning four times as fast as the generator (two time-scales):

        >>> import pyro.distributions as dist
        >>> from pplgen.graph import inspect
        >>> _ = torch.manual_seed(0)
        >>> net, x = nn.Linear(1, 2), torch.randn(8, 2)
        >>> def generator(x):  # a program as a function; pyro.module registers the network
        ...     pyro.module("net", net)
        ...     with pyro.plate("data", len(x)):
        ...         z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
        ...         pyro.sample("x", Implicit(net(z), event_dim=1), obs=x)
        >>> graph, cpu = inspect(generator, x), torch.device("cpu")
        >>> trainer = AdversarialTrainer(generator, None, graph, cpu, lr=1e-4, d_lr=4e-4)
        >>> isinstance(trainer, CriticTrainer)
        True
        >>> trainer.setup((x,), num_data=8)
        >>> trainer.optimizer.param_groups[0]["lr"], trainer.d_optimizer.param_groups[0]["lr"]
        (0.0001, 0.0004)
        >>> sorted(trainer.state_dict())  # the critic and its optimiser are checkpointed too
        ['average', 'averaged_steps', 'd_optimizer', 'discriminator', 'optimizer', 'params']
    """

    discriminator: nn.Module
    d_lr: float
    d_optimizer: torch.optim.Optimizer | None = None

    def setup(self, batch, num_data):
        if self.discriminator is not None:  # else the first loss builds a default one on the device
            self.discriminator.to(self.device)
        super().setup(batch, num_data)
        self.d_optimizer = adam(list(self.discriminator.parameters()), self.d_lr, self.betas)

    def train(self, mode: bool = True) -> None:
        super().train(mode)
        self.discriminator.train(mode)

    def tensors(self) -> list[torch.Tensor]:
        return [*super().tensors(), *self.discriminator.parameters(), *self.discriminator.buffers()]

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
        Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter (2017), "GANs trained by a two time-scale update
        rule converge to a local Nash equilibrium" (separate learning rates).
        Yazıcı, Foo, Winkler, Yap, Piliouras & Chandrasekhar (2019), "The unusual effectiveness of
        averaging in GAN training" (EMA).

    Example:
        A generator of 2-D points; with ``pack=2`` the default critic, built from the samples' shape,
        scores pairs of samples:

        >>> import pyro.distributions as dist
        >>> from pplgen.graph import inspect
        >>> class Generator(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.net = nn.Linear(1, 2)
        ...     def model(self, x):
        ...         with pyro.plate("data", len(x)):
        ...             z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
        ...             pyro.sample("x", Implicit(self.net(z), event_dim=1), obs=x)
        >>> _ = torch.manual_seed(0)
        >>> generator, x = Generator(), torch.randn(8, 2)
        >>> settings = AdversarialSettings(loss="hinge", pack=2)
        >>> graph = inspect(generator.model, x)
        >>> trainer = AdversarialTrainer(generator.model, None, graph, torch.device("cpu"), settings=settings)
        >>> trainer.setup((x,), num_data=8)
        >>> type(trainer.discriminator).__name__, tuple(trainer.critic(x).shape)
        ('Critic', (4,))
        >>> sorted(trainer.step((x,), num_data=8)), sorted(trainer.validate((x,), batch_size=8))
        (['d_loss', 'g_loss', 'skipped'], ['val_d_loss'])
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
        self.discriminator = discriminator  # None: built by the first call of critic(), from the samples
        self.d_lr = d_lr if d_lr is not None else self.lr
        self.average: dict[str, torch.Tensor] = {}
        self.max_bad_steps = self.settings.max_bad_steps
        self.failed: list[str] = []  # the players whose last step was skipped
        self.averaged_steps = 0

    def setup(self, batch, num_data):
        super().setup(batch, num_data)
        with torch.no_grad(), torch.random.fork_rng(devices=self._rng_devices()):
            real, _, context, _ = self.run(lambda: self.simulate(batch))
            self._check_scores(real, context)
        if self.settings.ema is not None:
            self.average = {k: v.detach().clone() for k, v in self.params.items()}

    def _check_scores(self, real: torch.Tensor, context: torch.Tensor | None) -> None:
        expected = len(self.pack(real))
        if self.critic(real, context).shape != (expected,):
            packed = "packed " if self.settings.pack > 1 else ""
            raw = tuple(self._scores(real, context).shape)
            raise ModelError(
                f"the discriminator should return one score per {packed}sample, shape ({expected},) or "
                f"({expected}, 1); it returned shape {raw}"
            )

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """``pack`` samples judged together, ``(B, *shape) -> (B // pack, *packed_shape(shape, pack))``,
        the remainder dropped."""
        p = self.settings.pack
        n = len(x) // p
        return x[: n * p].reshape(n, *packed_shape(x.shape[1:], p))

    def _scores(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if self.discriminator is None:
            width = 0 if context is None else context.shape[1]
            s = self.settings
            self.discriminator = default_discriminator(
                x.shape[1:], pack=s.pack, spectral_norm=s.spectral_norm, context=width
            ).to(x.device)
        if context is None:
            return self.discriminator(self.pack(x))
        return self.discriminator(self.pack(x), self.pack(context))

    def critic(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The discriminator's scores on (packed) samples, shape ``(B // pack,)``, given the context
        ``(B, K)`` the samples are conditioned on, when the program has one."""
        scores = self._scores(x, context)
        return scores.squeeze(-1) if scores.dim() == 2 and scores.shape[1] == 1 else scores

    def simulate(self, batch) -> Simulated:
        """Run the program once: real and simulated samples, their context and the other sites' loss."""
        return self.observations(poutine.trace(self.model).get_trace(*batch), len(batch[0]))

    def observations(self, trace, size: int) -> Simulated:
        """From a trace of the program: the data and the simulated values, ``(B, *event)``; what the
        simulation is conditioned on (the ``Implicit`` site's context, ``(B, K)``, or None); and the
        negative log-likelihood per data point of any other observed sites, which the program's
        parameters minimise."""
        site = trace.nodes[self.site]
        implicit = _implicit_fn(site)
        fake, real = implicit.value, site["value"]
        others = torch.zeros((), device=real.device)
        for name, other in trace.nodes.items():
            if other["type"] == "sample" and other["is_observed"] and name != self.site:
                others = others - other["fn"].log_prob(other["value"]).sum() / size
        event = tuple(implicit.event_shape)
        # one event per data point keeps its shape (an image stays an image); anything else is flattened
        shape = (size, *event) if event and real.shape == (size, *event) else (size, -1)
        context = None if implicit.context is None else implicit.context.reshape(size, -1).to(real.dtype)
        return Simulated(real.reshape(shape), fake.expand_as(real).reshape(shape), context, others)

    def g_loss(
        self, real: torch.Tensor, fake: torch.Tensor, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """What the program's parameters minimise: the generator's side of the game."""
        return generator_loss(self.settings.loss, self.critic(fake, context))

    def loss(self, batch, num_data):
        real, fake, context, others = self.simulate(batch)
        return self.g_loss(real, fake, context) + others

    def d_loss(
        self, real: torch.Tensor, fake: torch.Tensor, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        s = self.settings
        critic = functools.partial(self.critic, context=context)
        # the real side is detached too: under ALI it carries the encoder's graph, which the generator
        # step still needs after this loss is backpropagated
        loss = discriminator_loss(s.loss, critic(real.detach()), critic(fake.detach()))
        if s.gradient_penalty:
            loss = loss + s.gradient_penalty * gradient_penalty(critic, real, fake)
        if s.r1:
            loss = loss + s.r1 * r1_penalty(critic, real)
        return loss

    def step(self, batch, num_data):
        d_taken = True
        for i in range(self.settings.d_steps):
            # only the last draw feeds the generator's step: the earlier ones need no graph through it
            with torch.set_grad_enabled(i == self.settings.d_steps - 1):
                real, fake, context, others = self.run(lambda: self.simulate(batch))
            d_loss = self.d_loss(real, fake, context)
            d_taken &= self.update(d_loss, self.d_optimizer, guarded=True)
        g_loss = self.g_loss(real, fake, context) + others
        g_taken = self.update(g_loss, self.optimizer, guarded=True)
        taken = d_taken and g_taken
        if not taken:  # which player's loss or gradient was not finite, for the message if training stops
            players = (("discriminator", d_taken), ("generator", g_taken))
            self.failed = [name for name, ok in players if not ok]
        self.count(taken, batch)
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

    remedy = "lower the learning rates, or use loss='wgan_gp' or an r1 penalty"

    def culprits(self, batch) -> str:
        return f"the {' and the '.join(self.failed)}'s loss or gradient was not finite"

    def finish(self) -> None:
        """End with the averaged parameters, when an average is kept."""
        if self.average:
            with torch.no_grad():
                for key, value in self.params.items():
                    value.copy_(self.average[key])

    @torch.no_grad()
    def evaluate(self, batch, num_data):
        with pyro.validation_enabled(False):
            real, fake, context, _ = self.run(lambda: self.simulate(batch))
        scores = self.critic(real, context), self.critic(fake, context)
        return {"val_d_loss": float(discriminator_loss(self.settings.loss, *scores))}

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

    Example:
        The discriminator judges (x, z) pairs: a 2-D data point joined to its 1-D latent.

        >>> import pyro.distributions as dist
        >>> from pplgen.graph import inspect
        >>> class BiGAN(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.generator, self.encoder = nn.Linear(1, 2), nn.Linear(2, 1)
        ...     def model(self, x):
        ...         with pyro.plate("data", len(x)):
        ...             z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
        ...             pyro.sample("x", Implicit(self.generator(z), event_dim=1), obs=x)
        ...     def guide(self, x):
        ...         with pyro.plate("data", len(x)):
        ...             pyro.sample("z", dist.Normal(self.encoder(x), 0.1).to_event(1))
        >>> _ = torch.manual_seed(0)
        >>> bigan, x = BiGAN(), torch.randn(8, 2)
        >>> trainer = ALITrainer(bigan.model, bigan.guide, inspect(bigan.model, x), torch.device("cpu"))
        >>> trainer.setup((x,), num_data=8)
        >>> real, fake, context, _ = trainer.simulate((x,))
        >>> tuple(real.shape), tuple(fake.shape), context
        ((8, 3), (8, 3), None)
        >>> torch.equal(real[:, :2], x)  # real pairs hold the data themselves
        True
        >>> sorted(trainer.step((x,), num_data=8))
        ['d_loss', 'g_loss', 'skipped']
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.guide is None:
            raise ModelError(
                f"ALI trains an encoder together with the generator, but the model "
                f"{program_name(self.model)!r} came without a guide: pass guide= (an encoder q(z | x))"
            )
        self.latents, _ = local_latents(self.graph, "ALI")

    def simulate(self, batch) -> Simulated:
        """Real pairs (data, encoder's latents), fake pairs (generated data, prior latents), their
        context, and the negative log-likelihood of the program's other observed sites."""
        guide_trace = poutine.trace(self.guide).get_trace(*batch)
        trace = poutine.trace(self.model).get_trace(*batch)
        real, fake, context, others = self.observations(trace, len(batch[0]))
        real = torch.cat([real.flatten(1), flat_latents(guide_trace, self.latents)], dim=-1)
        fake = torch.cat([fake.flatten(1), flat_latents(trace, self.latents)], dim=-1)
        return Simulated(real, fake, context, others)

    def g_loss(
        self, real: torch.Tensor, fake: torch.Tensor, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        loss = self.settings.loss
        return generator_loss(loss, self.critic(fake, context)) + generator_loss(
            loss, -self.critic(real, context)
        )
