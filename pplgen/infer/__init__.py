"""Training: ``fit`` and the three trainers on one shared loop."""

from pplgen.infer.adversarial import AdversarialTrainer, ALITrainer, CriticTrainer
from pplgen.infer.avb import AdversarialELBO, AVBTrainer
from pplgen.infer.exact import ExactTrainer
from pplgen.infer.fit import fit, resolve_device
from pplgen.infer.gan_objectives import ADVERSARIAL_LOSSES, AdversarialSettings
from pplgen.infer.objectives import ELBO, IWAE, Objective
from pplgen.infer.result import FitResult
from pplgen.infer.svi import SVITrainer
from pplgen.infer.trainer import Trainer

__all__ = [
    "ELBO",
    "IWAE",
    "ADVERSARIAL_LOSSES",
    "AdversarialSettings",
    "AdversarialTrainer",
    "AdversarialELBO",
    "ALITrainer",
    "AVBTrainer",
    "CriticTrainer",
    "ExactTrainer",
    "Objective",
    "FitResult",
    "SVITrainer",
    "Trainer",
    "fit",
    "resolve_device",
]
