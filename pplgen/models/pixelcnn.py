"""PixelCNN as a model program over images (exact family)."""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import torch
from pyro.nn import PyroModule, pyro_method

from pplgen.distributions.pixelcnn import PixelCNN
from pplgen.errors import ModelError
from pplgen.models.images import check_images, image_settings
from pplgen.models.labels import one_hot_labels
from pplgen.nn.pixelcnn import PixelCNNNet

__all__ = ["ConditionalPixelCNN", "PixelCNNModel"]


class PixelCNNModel(PyroModule):
    r"""Single-channel images modelled by :class:`pplgen.distributions.pixelcnn.PixelCNN`, pixel by pixel
    in raster order; no latents, so family ``exact``.

    The data arrive flat, ``x`` of shape ``(N, H * W)`` (float 0/1 for binary images, int64 levels
    otherwise), and are observed as ``(N, H, W)`` images. The defaults are those of a gated PixelCNN
    for binarized MNIST; a few channels and layers suffice for the 8x8 digits.

    With ``num_classes`` set the model is the class-conditional :math:`p(x \mid y)`: the one-hot label
    adds a learned bias to every layer's gates (van den Oord et al. 2016, "conditional PixelCNN"), and
    the program is called as ``model(x, y)``; the zoo's ``cpixelcnn`` sets it from the data's labels.

    References:
        van den Oord, Kalchbrenner & Kavukcuoglu (2016), "Pixel recurrent neural networks".
        van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu (2016), "Conditional image
        generation with PixelCNN decoders".

    Args:
        image_shape: (H, W).
        num_levels: 2 for binary pixels, else the number of levels K.
        channels: feature maps per layer.
        layers: gated layers (or masked convolutions of the original PixelCNN).
        gated: the gated PixelCNN without a blind spot (True) or the original PixelCNN (False).
        kernel_size: the later layers' kernel size.
        first_kernel_size: the first layer's kernel size.
        hidden: the width of the output 1x1 layer (``None``: ``channels``).
        num_classes: the number of labels to condition on, or ``None`` (the default) for :math:`p(x)`.

    Example:
        Flat rows in, ``(N, H, W)`` images observed; the probabilities of all 16 binary 2x2 images sum
        to one:

        >>> import pplgen, torch
        >>> pixelcnn = PixelCNNModel((2, 2), channels=4, layers=2)
        >>> images = torch.cartesian_prod(*[torch.tensor([0.0, 1.0])] * 4)  # (16, 4)
        >>> pplgen.inspect(pixelcnn.model, images).graph["family"]
        'exact'
        >>> round(pplgen.log_likelihood(pixelcnn.model, images, device="cpu").exp().sum().item(), 4)
        1.0
        >>> pplgen.sample(pixelcnn.model, 3, images, device="cpu").shape
        torch.Size([3, 2, 2])
    """

    #: ``model`` takes the labels after the data, ``model(x, y)``, when the instance has ``num_classes``.
    takes_labels = False

    def __init__(
        self,
        image_shape: Sequence[int],
        num_levels: int = 2,
        channels: int = 64,  # feature maps per layer, a common width for binarized MNIST
        layers: int = 10,  # a receptive field of 3 + 9 = 12 pixels each side, enough for 28 x 28 digits
        gated: bool = True,
        kernel_size: int = 3,
        first_kernel_size: int = 7,
        hidden: int | None = None,
        num_classes: int | None = None,
    ):
        super().__init__()
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
            raise ModelError(
                f"PixelCNN setting num_classes must be None or an integer >= 1, got {num_classes!r}"
            )
        self.config = {
            "image_shape": [int(s) for s in image_shape],
            "num_levels": num_levels,
            "channels": channels,
            "layers": layers,
            "gated": gated,
            "kernel_size": kernel_size,
            "first_kernel_size": first_kernel_size,
            "hidden": hidden,
            "num_classes": num_classes,
        }
        self.num_classes, self.takes_labels = num_classes, num_classes is not None
        self.image_shape = tuple(self.config["image_shape"])
        self.net = PixelCNNNet(
            self.image_shape,
            num_levels,
            channels,
            layers,
            gated,
            num_classes,
            kernel_size,
            first_kernel_size,
            hidden,
        )

    @classmethod
    def from_dataset(cls, dataset, **config) -> PixelCNNModel:
        return cls(**{**image_settings(dataset, "PixelCNN"), **config})

    def context(self, y: torch.Tensor | None, num: int) -> torch.Tensor | None:
        """The one-hot labels ``(N, num_classes)`` (``None`` for the unconditional model)."""
        if self.num_classes is None:
            if y is not None:
                raise ModelError("this PixelCNN takes no labels (num_classes=None): call model(x)")
            return None
        return one_hot_labels(
            y, self.num_classes, self.net.head[1].weight.dtype, model_name="PixelCNN", num=num
        )

    @pyro_method
    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        images = check_images(x, self.image_shape, self.net.num_levels, "PixelCNN")  # (N, H, W)
        context = self.context(y, len(images))
        with pyro.plate("data", images.shape[0]):
            pyro.sample("x", PixelCNN(self.net, context), obs=images)


class ConditionalPixelCNN(PixelCNNModel):
    r"""The class-conditional PixelCNN :math:`p(x \mid y)` (the zoo's ``cpixelcnn``): a
    :class:`PixelCNNModel` with ``num_classes`` taken from the data's labels, called as ``model(x, y)``;
    ``pplgen sample RUN --label 3`` draws threes.

    References:
        van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu (2016), "Conditional image
        generation with PixelCNN decoders".

    Example:
        >>> import torch
        >>> model = ConditionalPixelCNN((4, 4), channels=8, layers=2, num_classes=3)
        >>> model.takes_labels
        True
    """

    @classmethod
    def from_dataset(cls, dataset, **config) -> ConditionalPixelCNN:
        if dataset.y is None or dataset.y.is_floating_point():
            raise ModelError(f"cpixelcnn conditions on class labels, but {dataset.name!r} has none")
        return super().from_dataset(dataset, **{"num_classes": int(dataset.y.max()) + 1, **config})
