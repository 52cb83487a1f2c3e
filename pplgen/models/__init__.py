"""Ready model programs: examples of the style users write, built for a data set by name."""

from __future__ import annotations

import inspect

from pyro.nn import PyroModule

from pplgen.errors import UnknownNameError
from pplgen.models.ali import ALI
from pplgen.models.avb import AVB
from pplgen.models.cvae import CVAE
from pplgen.models.dmm import DMM
from pplgen.models.draw import DRAW
from pplgen.models.flows import FlowModel, MAFModel, RealNVPModel
from pplgen.models.fvsbn import FVSBNModel
from pplgen.models.gan import GAN, WGAN, ConditionalGAN
from pplgen.models.hvae import HVAE
from pplgen.models.lm import CharLSTM, CharTransformer
from pplgen.models.nade import MADEModel, NADEModel
from pplgen.models.pixelcnn import ConditionalPixelCNN, PixelCNNModel
from pplgen.models.pixelvae import PixelVAE
from pplgen.models.speech import ImageToSpeech
from pplgen.models.vae import VAE
from pplgen.models.vqvae import VQVAE
from pplgen.models.wavenet import WaveNetModel
from pplgen.models.worldmodel import WorldModel

__all__ = [
    "ALI",
    "AVB",
    "CVAE",
    "ConditionalGAN",
    "ConditionalPixelCNN",
    "CharLSTM",
    "CharTransformer",
    "DMM",
    "DRAW",
    "FVSBNModel",
    "FlowModel",
    "MAFModel",
    "RealNVPModel",
    "GAN",
    "HVAE",
    "ImageToSpeech",
    "MADEModel",
    "NADEModel",
    "PixelCNNModel",
    "PixelVAE",
    "WaveNetModel",
    "VAE",
    "VQVAE",
    "WGAN",
    "WorldModel",
    "ZOO",
    "build",
]

#: Every zoo model by the name ``build``, ``pplgen fit`` and ``pplgen inspect`` know it by.
ZOO: dict[str, type[PyroModule]] = {
    "fvsbn": FVSBNModel,
    "nade": NADEModel,
    "made": MADEModel,
    "pixelcnn": PixelCNNModel,
    "cpixelcnn": ConditionalPixelCNN,
    "charlm": CharTransformer,
    "lstmlm": CharLSTM,
    "wavenet": WaveNetModel,
    "image2speech": ImageToSpeech,
    "vae": VAE,
    "cvae": CVAE,
    "hvae": HVAE,
    "pixelvae": PixelVAE,
    "dmm": DMM,
    "worldmodel": WorldModel,
    "draw": DRAW,
    "vqvae": VQVAE,
    "realnvp": RealNVPModel,
    "maf": MAFModel,
    "gan": GAN,
    "wgan": WGAN,
    "cgan": ConditionalGAN,
    "ali": ALI,
    "avb": AVB,
}


def build(name: str, dataset, **config) -> PyroModule:
    """The zoo model ``name`` sized for ``dataset`` (a :class:`pplgen.data.Dataset`).

    The module has a ``model`` method, a ``guide`` method when its family needs one, and ``config``,
    the plain-data arguments that rebuild it.

    Example:
        >>> import torch
        >>> from pplgen.data import Dataset
        >>> bits = Dataset("toy", "train", "binary", torch.zeros(10, 16))
        >>> nade = build("nade", bits, hidden=8)
        >>> type(nade).__name__, nade.config
        ('NADEModel', {'dim': 16, 'hidden': 8})
        >>> build("nade", bits, width=8)
        Traceback (most recent call last):
        ...
        pplgen.errors.UnknownNameError: model 'nade' has no setting 'width'; its settings: dim, hidden
    """
    if name not in ZOO:
        raise UnknownNameError(f"unknown model {name!r}: the zoo has {', '.join(sorted(ZOO))}")
    settings = [p for p in inspect.signature(ZOO[name]).parameters if p not in ("self", "args", "kwargs")]
    unknown = sorted(set(config) - set(settings))
    if unknown:
        raise UnknownNameError(
            f"model {name!r} has no setting {', '.join(map(repr, unknown))}; "
            f"its settings: {', '.join(settings)}"
        )
    return ZOO[name].from_dataset(dataset, **config)
