"""The adversarial games and their regularisers: what a discriminator and a generator each minimise.

Each loss takes the critic's scores on real and generated data (shape ``(B,)``) and returns the
discriminator's and the generator's loss. Penalties take the critic and the data and return a scalar.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "ADVERSARIAL_LOSSES",
    "AdversarialSettings",
    "discriminator_loss",
    "generator_loss",
    "gradient_penalty",
    "r1_penalty",
]

#: The games :class:`AdversarialSettings` can name.
ADVERSARIAL_LOSSES = ("non_saturating", "wgan_gp", "hinge")


@dataclass
class AdversarialSettings:
    """How the implicit family trains (``pplgen.fit(..., adversarial=AdversarialSettings(...))``).

    Attributes:
        loss: ``"non_saturating"`` (Goodfellow et al. 2014), ``"wgan_gp"`` (Gulrajani et al. 2017: a
            Wasserstein critic with a gradient penalty) or ``"hinge"`` (Lim & Ye 2017; Miyato et al. 2018).
        gradient_penalty: λ of the WGAN-GP penalty on interpolates (None: 10 for ``wgan_gp``, else 0).
        r1: γ of the R1 penalty γ/2 E‖∇D(x)‖² on real data (Mescheder, Geiger & Nowozin 2018); 0 for none.
        pack: PacGAN packing: the discriminator judges ``pack`` samples at once, which penalises mode
            collapse (Lin, Khetan, Fanti & Oh 2018); 1 for none.
        d_steps: discriminator updates per generator update (5 is usual for WGAN-GP).
        ema: decay of an exponential moving average of the program's parameters (e.g. 0.999), which the
            trained program ends with (Yazıcı et al. 2019); None for none.
        spectral_norm: spectral normalisation of the default discriminator's layers (Miyato et al. 2018).
        max_bad_steps: consecutive steps with a non-finite loss or gradient that are skipped before
            training stops with an error.

    References:
        Goodfellow, Pouget-Abadie, Mirza, Xu, Warde-Farley, Ozair, Courville & Bengio (2014), "Generative
        adversarial nets".
        Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville (2017), "Improved training of Wasserstein GANs".
        Lim & Ye (2017), "Geometric GAN" (hinge loss).
        Miyato, Kataoka, Koyama & Yoshida (2018), "Spectral normalization for generative adversarial
        networks".
        Mescheder, Geiger & Nowozin (2018), "Which training methods for GANs do actually converge?" (R1).
        Lin, Khetan, Fanti & Oh (2018), "PacGAN: the power of two samples in generative adversarial
        networks".
        Yazıcı, Foo, Winkler, Yap, Piliouras & Chandrasekhar (2019), "The unusual effectiveness of
        averaging in GAN training" (EMA).

    Example:
        >>> settings = AdversarialSettings(loss="wgan_gp", d_steps=5)
        >>> settings.gradient_penalty  # WGAN-GP brings its penalty
        10.0
        >>> settings.replace(loss="hinge").gradient_penalty, settings.replace(loss="hinge").d_steps
        (0.0, 5)
        >>> AdversarialSettings(loss="minimax")
        Traceback (most recent call last):
            ...
        ValueError: unknown adversarial loss 'minimax': expected one of non_saturating, wgan_gp, hinge
    """

    loss: str = "non_saturating"
    gradient_penalty: float | None = None
    r1: float = 0.0
    pack: int = 1
    d_steps: int = 1
    ema: float | None = None
    spectral_norm: bool = False
    max_bad_steps: int = 20

    def __post_init__(self):
        if self.loss not in ADVERSARIAL_LOSSES:
            raise ValueError(
                f"unknown adversarial loss {self.loss!r}: expected one of {', '.join(ADVERSARIAL_LOSSES)}"
            )
        if self.gradient_penalty is None:
            self.gradient_penalty = 10.0 if self.loss == "wgan_gp" else 0.0
        if self.pack < 1 or self.d_steps < 1 or self.r1 < 0 or self.gradient_penalty < 0:
            raise ValueError(
                f"expected pack >= 1, d_steps >= 1, r1 >= 0 and gradient_penalty >= 0, got {self.pack}, "
                f"{self.d_steps}, {self.r1}, {self.gradient_penalty}"
            )
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise ValueError(f"ema is a decay in (0, 1), got {self.ema}")

    def replace(self, **changes) -> AdversarialSettings:
        """These settings with ``changes`` (those not None) in place; a new ``loss`` brings its own
        gradient penalty (λ = 10 for WGAN-GP, else none) unless ``gradient_penalty`` is given too."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if "loss" in changes:
            changes.setdefault("gradient_penalty", None)
        return dataclasses.replace(self, **changes)


def discriminator_loss(loss: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The critic's loss from its scores on real and generated samples."""
    if loss == "non_saturating":  # -log sigmoid(D(x)) - log(1 - sigmoid(D(G(z))))
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if loss == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    return fake.mean() - real.mean()  # wgan_gp: the Wasserstein critic, penalty added separately


def generator_loss(loss: str, fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss from the critic's scores on its samples."""
    if loss == "non_saturating":  # -log sigmoid(D(G(z))): strong gradients early (Goodfellow et al. 2014)
        return F.softplus(-fake).mean()
    return -fake.mean()


def _input_gradient(critic: Callable, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.reshape(len(x), -1)


def gradient_penalty(critic: Callable, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E (‖∇D(x̂)‖ − 1)² at random interpolates x̂ of real and generated samples (Gulrajani et al. 2017)."""
    mix = torch.rand(len(real), *([1] * (real.dim() - 1)), device=real.device)
    grad = _input_gradient(critic, mix * real.detach() + (1 - mix) * fake.detach())
    return (grad.norm(dim=1) - 1.0).pow(2).mean()


def r1_penalty(critic: Callable, real: torch.Tensor) -> torch.Tensor:
    """½ E ‖∇D(x)‖² on real samples (Mescheder, Geiger & Nowozin 2018)."""
    return 0.5 * _input_gradient(critic, real).pow(2).sum(1).mean()
