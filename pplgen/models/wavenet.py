"""WaveNet over spoken digits as a model program (exact family), conditioned on the digit by default."""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import torch
from pyro.nn import PyroModule, pyro_method

from pplgen.distributions.wavenet import WaveNet
from pplgen.errors import DataError
from pplgen.models.labels import one_hot_labels
from pplgen.nn.wavenet import WaveNetNet

__all__ = ["WaveNetModel"]


class WaveNetModel(PyroModule):
    r"""Audio :math:`x \in [-1, 1]^T` modelled by :class:`pplgen.distributions.wavenet.WaveNet`.

    With ``num_classes`` set (the default for a labelled data set such as ``fsdd``) the model is
    :math:`p(x \mid y)` with the one-hot label :math:`y` as WaveNet's global context (van den Oord et al.
    2016, Section 2.5), so drawing from it with a chosen digit speaks that digit. With
    ``num_classes=None`` it is the unconditional :math:`p(x)` and takes no labels. No latents: family
    ``exact``, trained by maximum likelihood.

    The defaults (32 residual and 64 skip channels, dilations 1 .. 512 twice: a receptive field of 2047
    samples, about a quarter of a second at 8 kHz) are small enough to train on a CPU; the paper's
    networks are wider and deeper.

    References:
        van den Oord, Dieleman, Zen, Simonyan, Vinyals, Graves, Kalchbrenner, Senior & Kavukcuoglu (2016),
        "WaveNet: a generative model for raw audio".

    Args:
        length: the samples T per recording.
        num_classes: the number of labels to condition on, or ``None`` for an unconditional model.
        num_levels: the μ-law levels K.
        residual_channels: the residual stream's channels R.
        skip_channels: the skip sum's channels S.
        dilations: each layer's dilation.

    Example:
        With 4 μ-law levels and 3 samples per recording there are 64 recordings; given a label their
        probabilities sum to one:

        >>> import pplgen, torch
        >>> from pplgen.distributions.wavenet import mu_law_decode
        >>> wavenet = WaveNetModel(3, num_classes=2, num_levels=4, residual_channels=4, skip_channels=4,
        ...                        dilations=(1, 2))
        >>> every = torch.cartesian_prod(*[mu_law_decode(torch.arange(4), 4)] * 3)  # (64, 3)
        >>> digit = torch.ones(64, dtype=torch.long)
        >>> round(pplgen.log_likelihood(wavenet.model, (every, digit), device="cpu").exp().sum().item(), 4)
        1.0
        >>> pplgen.sample(wavenet.model, 2, (every, digit), device="cpu").shape
        torch.Size([2, 3])
    """

    #: ``model`` takes the labels after the data, ``model(x, y)``; an unconditional instance sets it False.
    takes_labels = True

    def __init__(
        self,
        length: int = 8000,
        num_classes: int | None = 10,
        num_levels: int = 256,
        residual_channels: int = 32,
        skip_channels: int = 64,
        dilations: Sequence[int] = tuple(2**i for i in range(10)) * 2,
    ):
        super().__init__()
        self.config = {
            "length": length,
            "num_classes": num_classes,
            "num_levels": num_levels,
            "residual_channels": residual_channels,
            "skip_channels": skip_channels,
            "dilations": [int(d) for d in dilations],
        }
        self.takes_labels = num_classes is not None
        self.num_classes = num_classes
        self.net = WaveNetNet(
            length,
            num_levels=num_levels,
            residual_channels=residual_channels,
            skip_channels=skip_channels,
            dilations=dilations,
            global_dim=num_classes,
        )

    @classmethod
    def from_dataset(cls, dataset, **config) -> WaveNetModel:
        """Sized for ``dataset``: T from its event shape, the number of classes from its labels."""
        if dataset.kind != "audio" or len(dataset.event_shape) != 1:
            raise DataError(
                f"WaveNetModel models audio, 1-D sequences in [-1, 1], but {dataset.name!r} is "
                f"{dataset.kind!r} of event shape {dataset.event_shape}"
            )
        num_classes = None if dataset.y is None else int(dataset.y.max()) + 1
        return cls(**{"length": dataset.event_shape[0], "num_classes": num_classes, **config})

    def context(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """The one-hot labels ``(N, num_classes)`` as WaveNet's global context (``None`` unconditionally)."""
        if self.num_classes is None:
            return None
        return one_hot_labels(y, self.num_classes, self.net.start.dtype, model_name="WaveNetModel")

    @pyro_method
    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        context = self.context(y)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", WaveNet(self.net, context), obs=x)
