"""The conditional variational autoencoder: a VAE given the class label (latent family)."""

from __future__ import annotations

from collections.abc import Sequence

import pyro.distributions as dist
import torch
from pyro.nn import pyro_method
from torch import nn

from pplgen.errors import DataError, ModelError
from pplgen.models.labels import one_hot_labels
from pplgen.models.vae import VAEBase

__all__ = ["CVAE", "PRIORS"]

#: ``"standard"``: p(z | y) = N(0, I), as in M2; ``"learned"``: a Gaussian per class, as Sohn et al.'s
#: prior network for a one-hot input.
PRIORS = ("standard", "learned")


class CVAE(VAEBase):
    r"""A VAE conditioned on a class label :math:`y \in \{0, \dots, C-1\}`.

    .. math::
        z \mid y \sim p(z \mid y), \qquad x \mid z, y \sim p_\theta(x \mid z, y), \qquad
        q_\phi(z \mid x, y) = N(\mu_\phi(x, y), \mathrm{diag}\, s_\phi(x, y)^2).

    The one-hot label joins the input of both networks (for ``arch="conv"``, the encoder's features
    before its fully connected head). The prior is N(0, I), the form of Kingma et al.'s (2014) model
    M2 with its label observed, or with ``prior="learned"`` a Gaussian :math:`N(\mu_y,
    \mathrm{diag}\,\sigma_y^2)` per class, Sohn et al.'s (2015) prior network for a one-hot condition.
    Training maximises the conditional ELBO

    .. math::
        \log p(x \mid y) \ge \mathbb{E}_{q(z \mid x, y)}[\log p(x \mid z, y)]
        - \mathrm{KL}(q(z \mid x, y) \,\|\, p(z \mid y)).

    ``model(x, y)`` and ``guide(x, y)`` take the labels after the data (``takes_labels``), so
    ``pplgen fit cvae`` passes them and ``pplgen sample RUN --label 3`` draws class 3: the program runs
    with its observation removed on a batch whose labels are all 3. Likelihoods, architectures and
    the other settings are those of :class:`~pplgen.models.vae.VAE`.

    References:
        Sohn, Lee & Yan (2015), "Learning structured output representation using deep conditional
        generative models".
        Kingma, Rezende, Mohamed & Welling (2014), "Semi-supervised learning with deep generative models".

    Args:
        num_classes: C, the number of labels.
        prior: one of :data:`PRIORS`.

    The other arguments are :class:`~pplgen.models.vae.VAE`'s.

    Example:
        With ``prior="learned"`` each class has its own prior mean; the program takes the labels after
        the data:

        >>> import pplgen, torch
        >>> cvae = CVAE(16, num_classes=3, z_dim=2, hidden=8, prior="learned")
        >>> x, y = torch.zeros(4, 16), torch.tensor([0, 1, 2, 1])
        >>> pplgen.inspect(cvae.model, x, y).graph["family"]
        'latent'
        >>> with torch.no_grad():
        ...     cvae.prior_loc[2] = 5.0
        >>> cvae.prior(cvae.one_hot(y, x), x).mean[:, 0].tolist()
        [0.0, 0.0, 5.0, 0.0]
        >>> pplgen.sample(cvae.model, 4, (x, y), device="cpu").shape
        torch.Size([4, 16])
    """

    #: ``model`` and ``guide`` take the labels after the data: ``model(x, y)``.
    takes_labels = True

    def __init__(
        self,
        dim: int,
        num_classes: int = 10,
        z_dim: int = 8,
        hidden: int = 256,
        likelihood: str = "bernoulli",
        arch: str = "mlp",
        image_shape: Sequence[int] | None = None,
        num_levels: int | None = None,
        layers: int = 2,
        activation: str = "relu",
        channels: int = 32,
        prior: str = "standard",
    ):
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ModelError(f"CVAE setting num_classes must be an integer >= 1, got {num_classes!r}")
        if prior not in PRIORS:
            raise ModelError(f"prior must be one of {', '.join(map(repr, PRIORS))}, got {prior!r}")
        super().__init__(
            dim,
            z_dim,
            hidden,
            likelihood,
            arch,
            image_shape,
            num_levels,
            layers,
            activation,
            channels,
            num_classes,
        )
        self.config.update(num_classes=num_classes, prior=prior)
        self.num_classes = num_classes
        self.prior_kind = prior
        if prior == "learned":
            self.prior_loc = nn.Parameter(torch.zeros(num_classes, z_dim))
            self.prior_log_scale = nn.Parameter(torch.zeros(num_classes, z_dim))

    @classmethod
    def from_dataset(cls, dataset, **config) -> CVAE:
        """Sized for ``dataset``: as :meth:`VAE.from_dataset`, and the number of classes from its labels."""
        if dataset.y is None:
            raise DataError(f"a CVAE is conditioned on labels, but data set {dataset.name!r} has none (y)")
        cls._check_conv_data(dataset, config)
        settings = {**cls.dataset_settings(dataset), "num_classes": int(dataset.y.max()) + 1}
        return cls(**{**settings, **config})

    def one_hot(self, y: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        """The labels as one-hot rows ``(N, num_classes)``, after checking them against the data ``x``."""
        return one_hot_labels(
            y,
            self.num_classes,
            self._dtype,
            model_name="CVAE",
            num=len(x),
            call="model(x, y) and guide(x, y)",
        )

    def prior(self, context: torch.Tensor, like: torch.Tensor) -> dist.Distribution:
        """p(z | y): N(0, I), or the label's learned Gaussian."""
        if self.prior_kind == "standard":
            return super().prior(context, like)
        loc = context @ self.prior_loc  # (N, z_dim)
        return dist.Normal(loc, (context @ self.prior_log_scale).exp()).to_event(1)

    @pyro_method
    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        self.model_with(x, self.one_hot(y, x))

    @pyro_method
    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        self.guide_with(x, self.one_hot(y, x))
