"""The VQ-VAE with a PixelCNN prior over its code grid, trained jointly as one program (latent family)."""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import TorchDistribution
from pyro.nn import PyroModule, pyro_method
from torch import nn
from torch.distributions import constraints

from pplgen.distributions.autoregressive import AutoregressiveDistribution
from pplgen.distributions.pixelcnn import PixelCNN
from pplgen.errors import DataError, ModelError
from pplgen.models.images import image_batch, image_settings, pixels_outside
from pplgen.nn.pixelcnn import PixelCNNNet
from pplgen.nn.vq import Quantized, VectorQuantizer, code_perplexity

__all__ = ["CodebookPrior", "VQVAE"]


def _as_levels(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    """Code indices in the form an autoregressive distribution over K levels takes (floats when K = 2)."""
    return indices.float() if num_codes == 2 else indices


class _CodebookVectors(constraints.Constraint):
    """Grids whose every vector is an entry of the quantiser's codebook: a discrete set."""

    is_discrete = True

    def __init__(self, quantizer: VectorQuantizer, event_dim: int):
        super().__init__()
        self.quantizer = quantizer
        self.event_dim = event_dim

    def check(self, value: torch.Tensor) -> torch.Tensor:
        nearest = self.quantizer.lookup(self.quantizer.nearest(value))
        hit = torch.isclose(value, nearest, rtol=1e-5, atol=1e-6).all(-1)  # (..., h, w)
        return hit.flatten(-(self.event_dim - 1)).all(-1)


class CodebookPrior(TorchDistribution):
    r"""A distribution over grids of codebook vectors: an autoregressive prior over the code indices,
    read through the codebook.

    .. math::
        p(z_q = (e_{k_{ij}})_{ij}) = p(k), \qquad k \sim \text{the index prior (e.g. a PixelCNN)}.

    ``sample`` draws an index grid and looks it up; ``log_prob`` finds each vector's code (its nearest
    codebook entry, which for a codebook vector is itself) and scores the index grid. The lookup has
    no gradient, so the index prior learns from the codes as data while nothing flows back into the
    vectors or the codebook. The support is discrete, the set of grids of codebook vectors.

    Args:
        index_prior: an :class:`~pplgen.distributions.AutoregressiveDistribution` over ``(h, w)`` grids
            with K = ``quantizer.num_codes`` levels.
        quantizer: the :class:`~pplgen.nn.vq.VectorQuantizer` whose codebook the indices point into.
    """

    arg_constraints = {}
    has_rsample = False
    autoregressive = True

    def __init__(
        self, index_prior: AutoregressiveDistribution, quantizer: VectorQuantizer, validate_args=None
    ):
        if index_prior.num_levels != quantizer.num_codes:
            raise ModelError(
                f"CodebookPrior: the index prior has {index_prior.num_levels} levels, "
                f"expected one per code ({quantizer.num_codes})"
            )
        self.index_prior = index_prior
        self.quantizer = quantizer
        event_shape = index_prior.event_shape + (quantizer.code_dim,)
        super().__init__(index_prior.batch_shape, event_shape, validate_args=False)

    @property
    def support(self) -> constraints.Constraint:
        return _CodebookVectors(self.quantizer, len(self.event_shape))

    def expand(self, batch_shape, _instance=None) -> CodebookPrior:
        new = self._get_checked_instance(CodebookPrior, _instance)
        new.index_prior = self.index_prior.expand(batch_shape)
        new.quantizer = self.quantizer
        TorchDistribution.__init__(new, torch.Size(batch_shape), self.event_shape, validate_args=False)
        return new

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        indices = self.index_prior.sample(sample_shape).long()  # (*sample_shape, *batch_shape, h, w)
        return self.quantizer.lookup(indices)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        event = tuple(self.event_shape)
        if (
            not isinstance(value, torch.Tensor)
            or value.dim() < len(event)
            or value.shape[-len(event) :] != event
        ):
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise DataError(f"CodebookPrior: expected code grids of event shape {event}, got {got}")
        indices = self.quantizer.nearest(value)
        return self.index_prior.log_prob(_as_levels(indices, self.quantizer.num_codes))


class _Residual(nn.Module):
    """ReLU, 3x3 convolution, ReLU, 1x1 convolution, plus the input (van den Oord et al. 2017, sec. 4)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _encoder(channels: int, code_dim: int, downsample: int, res_blocks: int) -> nn.Sequential:
    """(B, 1, H, W) to (B, code_dim, H / 2^s, W / 2^s): strided 4x4 convolutions, then residual blocks."""
    layers: list[nn.Module] = []
    for i in range(downsample):
        layers += [nn.Conv2d(1 if i == 0 else channels, channels, 4, stride=2, padding=1), nn.ReLU()]
    layers.append(nn.Conv2d(channels if downsample else 1, channels, 3, padding=1))
    layers += [_Residual(channels) for _ in range(res_blocks)]
    return nn.Sequential(*layers, nn.ReLU(), nn.Conv2d(channels, code_dim, 1))


def _decoder(code_dim: int, channels: int, downsample: int, res_blocks: int, outputs: int) -> nn.Sequential:
    """The mirror of :func:`_encoder`, ending in ``outputs`` logits per pixel."""
    layers: list[nn.Module] = [nn.Conv2d(code_dim, channels, 3, padding=1)]
    layers += [_Residual(channels) for _ in range(res_blocks)]
    for _ in range(downsample):
        layers += [nn.ReLU(), nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1)]
    return nn.Sequential(*layers, nn.ReLU(), nn.Conv2d(channels, outputs, 1))


class VQVAE(PyroModule):
    r"""The VQ-VAE: a convolutional encoder, a vector-quantised grid of codes, a convolutional decoder
    and a PixelCNN prior over the codes, all in one Pyro program (family ``latent``).

    **Model.** The latent site ``"codes"`` is an :math:`h \times w` grid of codebook vectors drawn
    from :class:`CodebookPrior`, a gated :class:`~pplgen.nn.pixelcnn.PixelCNNNet` over the K code
    indices read through the codebook; then :math:`x \mid z_q` is Bernoulli for binary images, or
    categorical over ``num_levels`` levels per pixel for discrete ones.

    **Guide.** The encoder gives :math:`z_e(x)` on the grid; the :class:`~pplgen.nn.vq.VectorQuantizer`
    picks each position's nearest code, and the guide is a point mass (``Delta``) at the quantised
    vectors :math:`z_q` carrying the straight-through gradient, so the decoder receives the codes while
    the encoder receives the decoder's gradient. The latent is the vectors rather than the indices for
    that reason; the prior maps them back to indices. In training mode the guide also adds the VQ losses
    as ``pyro.factor("vq_loss", codebook + commitment, has_rsample=True)``. Pyro's ``Trace_ELBO``
    subtracts the guide's log-densities, factors included, from the ELBO, so a positive guide factor
    is *added* to the loss and minimised: the training loss per data point is

    .. math::
        -\log p(x \mid z_q) - \log p(k) + \lVert \mathrm{sg}(z_e) - e \rVert^2
        + \beta \lVert z_e - \mathrm{sg}(e) \rVert^2 .

    Any objective that scores every guide site does the same (Pyro's ``Trace_ELBO`` and
    ``TraceEnum_ELBO``); one that keeps only the guide's latent sites would drop the VQ losses, and the
    codebook would then learn only with ``ema_decay`` set.

    **One stage instead of two.** The paper trains the autoencoder first and fits the PixelCNN prior
    to the frozen encoder's codes afterwards. Here both happen in the same steps: the prior's term
    :math:`\log p(k)` sees the codes only through the index lookup, which has no gradient, so the
    prior learns the code distribution as data while the encoder, codebook and decoder learn from the
    reconstruction and VQ losses alone, exactly as in the first stage. The codes drift while the
    encoder trains, so the prior chases a moving target; :meth:`prior_model` on :meth:`encode`'s codes
    is the explicit second stage that refits it on the final, frozen codes.

    **What the numbers mean.** Outside training mode the factor is left out, so the validation loss of
    :func:`pplgen.fit` and :func:`pplgen.log_likelihood` are both :math:`\log p(x \mid k(x)) + \log
    p(k(x))`, the joint probability of the data with the encoder's codes. The guide is deterministic,
    so every importance sample is the same and ``num_samples`` changes nothing; since
    :math:`p(x) = \sum_k p(k)\, p(x \mid k)` is a sum of non-negative terms, this one term is a lower
    bound on :math:`\log p(x)` in nats (the paper's bound, whose KL term is :math:`\log K` per code
    with a uniform prior; here it is the learned prior's code log-probability).

    >>> vq = VQVAE((8, 8), num_codes=8, channels=8, downsample=1, prior_channels=8, prior_layers=2)
    >>> vq.code_shape, vq.encode(torch.zeros(3, 64)).shape
    ((4, 4), torch.Size([3, 4, 4]))

    References:
        van den Oord, Vinyals & Kavukcuoglu (2017), "Neural discrete representation learning".
        Razavi, van den Oord & Vinyals (2019), "Generating diverse high-fidelity images with VQ-VAE-2".
        van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu (2016), "Conditional image
        generation with PixelCNN decoders".

    Args:
        image_shape: (H, W), both divisible by 2^``downsample``.
        num_levels: 2 for binary pixels (float 0/1), else K levels (int64 0..K-1).
        num_codes: the codebook's size.
        code_dim: the size of each code vector.
        channels: feature maps of the encoder and decoder.
        downsample: stride-2 convolutions in the encoder; the code grid is (H, W) / 2^downsample.
        res_blocks: residual blocks in the encoder and in the decoder (2 in the paper).
        beta: the commitment loss's weight.
        ema_decay: the codebook's moving-average decay, or ``None`` to learn it by gradient.
        prior_channels: feature maps of the PixelCNN prior.
        prior_layers: gated layers of the PixelCNN prior.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        num_levels: int = 2,
        num_codes: int = 64,  # 512 in the paper for ImageNet; binary digits need far fewer
        code_dim: int = 16,
        channels: int = 64,
        downsample: int = 2,  # 28 x 28 images to a 7 x 7 grid of codes
        res_blocks: int = 2,
        beta: float = 0.25,  # the commitment weight of both papers
        ema_decay: float | None = None,
        prior_channels: int = 32,
        prior_layers: int = 5,  # first kernel 7 plus four 3x3 layers: a 7 x 7 grid is fully seen
    ):
        super().__init__()
        height, width = (int(s) for s in image_shape)
        scale = 2**downsample
        if downsample < 0 or height % scale or width % scale:
            raise ModelError(
                f"VQVAE: image_shape must be divisible by 2^downsample = {scale}, "
                f"got image_shape={(height, width)}, downsample={downsample}"
            )
        if num_levels < 2:
            raise ModelError(f"VQVAE: num_levels must be at least 2, got {num_levels}")
        self.config = {
            "image_shape": [height, width],
            "num_levels": num_levels,
            "num_codes": num_codes,
            "code_dim": code_dim,
            "channels": channels,
            "downsample": downsample,
            "res_blocks": res_blocks,
            "beta": beta,
            "ema_decay": ema_decay,
            "prior_channels": prior_channels,
            "prior_layers": prior_layers,
        }
        self.image_shape = (height, width)
        self.code_shape = (height // scale, width // scale)
        self.num_levels = num_levels
        outputs = 1 if num_levels == 2 else num_levels
        self.encoder = _encoder(channels, code_dim, downsample, res_blocks)
        self.quantizer = VectorQuantizer(num_codes, code_dim, beta=beta, ema_decay=ema_decay)
        self.decoder = _decoder(code_dim, channels, downsample, res_blocks, outputs)
        self.prior = PixelCNNNet(self.code_shape, num_codes, prior_channels, prior_layers)

    @classmethod
    def from_dataset(cls, dataset, **config) -> VQVAE:
        """Sized for ``dataset``: 8x8 digits get a 4x4 code grid, 28x28 MNIST a 7x7 one."""
        settings = image_settings(dataset, "VQVAE")
        downsample = 2 if min(settings["image_shape"]) >= 16 else 1
        return cls(**{**settings, "downsample": downsample, **config})

    # -- the pieces ---------------------------------------------------------------------------------
    def _check(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as ``(N, H * W)`` (binary pixels in the model's dtype), or a DataError naming the expected
        shape and support."""
        x = image_batch(x, self.image_shape, "VQVAE").flatten(1)
        outside = pixels_outside(x, self.num_levels)
        if bool(outside.any()):  # the shared check, in the wording tests/test_vqvae.py matches
            levels = f"integer levels 0 .. {self.num_levels - 1}"
            expected = "binary pixels (0 or 1)" if self.num_levels == 2 else levels
            raise DataError(
                f"VQVAE: expected {expected}, got {int(outside.sum())} values outside, "
                f"e.g. {float(x[outside][0]):g}"
            )
        return x.to(self.decoder[-1].weight.dtype) if self.num_levels == 2 else x

    def quantize(self, x: torch.Tensor) -> Quantized:
        """Encode and quantise images: every field of the result on the ``(N, h, w)`` code grid."""
        x = self._check(x)
        scaled = x.to(self.decoder[-1].weight.dtype) / (self.num_levels - 1)  # into [0, 1]
        z_e = self.encoder(scaled.reshape(-1, 1, *self.image_shape))  # (N, D, h, w)
        return self.quantizer(z_e.permute(0, 2, 3, 1))  # (N, h, w, D) grids

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code indices of images ``x``: ``(N, h, w)`` int64, the data of :meth:`prior_model`."""
        return self.quantize(x).indices

    def logits(self, codes: torch.Tensor) -> torch.Tensor:
        """The decoder's logits for code grids ``(N, h, w, D)``: ``(N, H * W)``, or ``(N, H * W, K)``."""
        out = self.decoder(codes.permute(0, 3, 1, 2))  # (N, 1 or K, H, W)
        return out.flatten(1) if self.num_levels == 2 else out.flatten(2).transpose(1, 2)

    def observation(self, codes: torch.Tensor) -> dist.Distribution:
        """p(x | codes) over flat images, for code grids of shape ``(N, h, w, D)``."""
        logits = self.logits(codes)
        if self.num_levels == 2:
            return dist.Bernoulli(logits=logits).to_event(1)
        return dist.Categorical(logits=logits).to_event(1)

    def index_prior(self) -> PixelCNN:
        """The PixelCNN distribution over ``(h, w)`` grids of code indices."""
        return PixelCNN(self.prior)

    # -- the programs -------------------------------------------------------------------------------
    @pyro_method
    def model(self, x: torch.Tensor) -> None:
        x = self._check(x)
        with pyro.plate("data", x.shape[0]):
            codes = pyro.sample("codes", CodebookPrior(self.index_prior(), self.quantizer))  # (N, h, w, D)
            pyro.sample("x", self.observation(codes), obs=x if self.num_levels == 2 else x.long())

    @pyro_method
    def guide(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            q = self.quantize(x)
            pyro.sample("codes", dist.Delta(q.quantized, event_dim=3))
            if self.training:
                pyro.factor("vq_loss", q.loss.flatten(1).sum(1), has_rsample=True)

    @pyro_method
    def prior_model(self, codes: torch.Tensor) -> None:
        """The second stage on its own: the PixelCNN prior over code grids (family ``exact``).

        ``pplgen.fit(vq.prior_model, vq.encode(x))`` refits only the prior, on the codes of the frozen
        encoder (the other parameters receive no gradient, so the optimiser leaves them alone).

        Args:
            codes: ``(N, h, w)`` or ``(N, h * w)`` int64 code indices.
        """
        height, width = self.code_shape
        num_codes = self.quantizer.num_codes
        if not isinstance(codes, torch.Tensor) or codes.dim() < 1 or codes[0].numel() != height * width:
            got = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise DataError(
                f"VQVAE.prior_model: expected code grids of shape (N, {height}, {width}), got {got}"
            )
        if codes.is_floating_point() or bool(((codes < 0) | (codes >= num_codes)).any()):
            raise DataError(
                f"VQVAE.prior_model: expected int64 code indices 0 .. {num_codes - 1}, "
                f"got {codes.dtype} values from {codes.min().item():g} to {codes.max().item():g}"
            )
        levels = _as_levels(codes.reshape(-1, height, width), num_codes)
        with pyro.plate("data", codes.shape[0]):
            pyro.sample("codes", self.index_prior(), obs=levels)

    # -- reports ------------------------------------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The mean of p(x | codes(x)), flat like ``x``: pixel probabilities, or expected levels."""
        logits = self.logits(self.quantize(x).quantized)
        if self.num_levels == 2:
            return torch.sigmoid(logits)
        levels = torch.arange(self.num_levels, dtype=logits.dtype, device=logits.device)
        return torch.softmax(logits, dim=-1) @ levels

    @torch.no_grad()
    def codebook_usage(self, x: torch.Tensor) -> dict[str, float]:
        """How many codes the images ``x`` use: ``perplexity`` (see :func:`~pplgen.nn.vq.code_perplexity`)
        and ``codes_used``. Pass as a ``fit`` callback to record it in the history::

            pplgen.fit(vq.model, x, vq.guide, callbacks=[lambda row: row.update(vq.codebook_usage(x_valid))])
        """
        indices = self.encode(x)
        return {
            "perplexity": code_perplexity(indices, self.quantizer.num_codes),
            "codes_used": int(indices.unique().numel()),
        }
