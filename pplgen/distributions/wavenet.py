"""WaveNet as a distribution over audio in [-1, 1]: μ-law levels, exact ``log_prob``, fast ``sample``."""

from __future__ import annotations

import math

import torch
from pyro.distributions import constraints

from pplgen.distributions.autoregressive import AutoregressiveDistribution
from pplgen.errors import DataError, ModelError
from pplgen.nn.wavenet import WaveNetNet

__all__ = ["WaveNet", "mu_law_decode", "mu_law_encode"]


def mu_law_encode(audio: torch.Tensor, num_levels: int = 256) -> torch.Tensor:
    r"""Quantise audio in [-1, 1] to ``num_levels`` μ-law levels (ITU-T G.711).

    With :math:`\mu = K - 1`, the companded value :math:`f(x) = \operatorname{sign}(x)
    \ln(1 + \mu |x|) / \ln(1 + \mu)` lies in [-1, 1] and is rounded to the nearest of :math:`K` evenly
    spaced points: level :math:`\lfloor (f(x) + 1) \mu / 2 + 1/2 \rfloor`. Quiet sounds get finer steps
    than loud ones (van den Oord et al. 2016, Section 2.2). Values outside [-1, 1] are clipped.

    >>> mu_law_encode(torch.tensor([-1.0, -0.01, 0.0, 0.01, 1.0]))
    tensor([  0,  98, 128, 157, 255])

    Args:
        audio: float samples, any shape.
        num_levels: the number of levels K (at least 2).

    Returns:
        int64 levels ``0 .. K - 1`` of the same shape, non-decreasing in ``audio``.
    """
    mu = num_levels - 1
    x = audio.clamp(-1.0, 1.0)
    f = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)  # companded, in [-1, 1]
    return torch.floor((f + 1) * (mu / 2) + 0.5).long().clamp(0, mu)


def mu_law_decode(levels: torch.Tensor, num_levels: int = 256) -> torch.Tensor:
    r"""The audio value each μ-law level stands for: the inverse of the companding at the level's centre.

    :math:`f = 2 l / \mu - 1` and :math:`x = \operatorname{sign}(f) \big((1 + \mu)^{|f|} - 1\big) / \mu`,
    so that ``mu_law_encode(mu_law_decode(l, K), K) == l`` for every level.

    Args:
        levels: integer levels ``0 .. K - 1``, any shape.
        num_levels: the number of levels K.

    Returns:
        Floats in [-1, 1] (the default float type) of the same shape.

    References:
        ITU-T Recommendation G.711 (1988), "Pulse code modulation (PCM) of voice frequencies".
        van den Oord et al. (2016), "WaveNet: a generative model for raw audio", Section 2.2.

    Example:
        >>> [round(x, 5) for x in mu_law_decode(torch.tensor([0, 128, 255])).tolist()]
        [-1.0, 9e-05, 1.0]
        >>> levels = torch.arange(8)
        >>> torch.equal(mu_law_encode(mu_law_decode(levels, 8), 8), levels)
        True
    """
    mu = num_levels - 1
    f = 2 * levels.to(torch.get_default_dtype()) / mu - 1
    return torch.sign(f) * torch.expm1(f.abs() * math.log1p(mu)) / mu


class WaveNet(AutoregressiveDistribution):
    r"""WaveNet: audio as a product of categorical conditionals over μ-law levels.

    A value :math:`x \in [-1, 1]^T` is quantised to levels :math:`l_t = q(x_t)` by
    :func:`mu_law_encode`, and

    .. math::
        p(x \mid c, y) = \prod_{t=1}^{T} \mathrm{Categorical}\big(l_t \mid
        \mathrm{softmax}(f_\theta(l_{<t}, c, y)_t)\big),

    computed by a :class:`pplgen.nn.wavenet.WaveNetNet` in one pass, with :math:`c` an optional global
    context ``(..., G)`` and :math:`y` an optional local context ``(..., C, T_local)``. This is the exact
    probability of the level sequence, a discrete distribution whose atoms are the decoded levels
    :func:`mu_law_decode`: samples are those decoded values, so ``log_prob`` of a sample is the
    log-probability that it was drawn. The natural unit is nats per sequence; divide by :math:`T \ln 2`
    for bits per sample.

    ``sample`` generates through the network's queues (Paine et al. 2016); ``naive=True`` re-runs the
    whole network per sample, and both give the same values from the same seed.

    >>> import torch
    >>> from pplgen.nn.wavenet import WaveNetNet
    >>> net = WaveNetNet(length=16, num_levels=8, residual_channels=4, skip_channels=4, dilations=[1, 2, 4])
    >>> d = WaveNet(net)
    >>> x = d.sample((3,))
    >>> x.shape, d.log_prob(x).shape, bool((x.abs() <= 1).all())
    (torch.Size([3, 16]), torch.Size([3]), True)
    >>> torch.equal(mu_law_decode(mu_law_encode(x, 8), 8), x)  # samples are decoded levels
    True

    References:
        van den Oord, Dieleman, Zen, Simonyan, Vinyals, Graves, Kalchbrenner, Senior & Kavukcuoglu (2016),
        "WaveNet: a generative model for raw audio".
        Paine, Khorrami, Chang, Zhang, Ramachandran, Hasegawa-Johnson & Huang (2016), "Fast Wavenet
        generation algorithm".

    Args:
        net: the :class:`pplgen.nn.wavenet.WaveNetNet` holding the parameters.
        context: the global context ``(*batch_shape, G)`` when the network has ``global_dim``.
        local: the local context ``(*batch_shape, C, T_local)`` when the network has ``local_channels``.

    The two are joined into the one tensor ``context`` that the network takes (see
    :meth:`pplgen.nn.WaveNetNet.join_context`); their batch dimensions broadcast to the distribution's
    batch shape.
    """

    label = "WaveNet"

    def __init__(
        self,
        net: WaveNetNet,
        context: torch.Tensor | None = None,
        local: torch.Tensor | None = None,
        validate_args=None,
    ):
        if not isinstance(net, WaveNetNet):
            raise ModelError(f"WaveNet expects a pplgen.nn.wavenet.WaveNetNet, got {type(net).__name__}")
        super().__init__(net, net.join_context(context, local, label=self.label), validate_args)

    @property
    def support(self):
        return constraints.independent(constraints.interval(-1.0, 1.0), 1)

    def encode(self, value: torch.Tensor) -> torch.Tensor:
        """Audio as μ-law levels, int64."""
        return mu_law_encode(value, self.num_levels)

    def decode(self, levels: torch.Tensor) -> torch.Tensor:
        """μ-law levels as the audio floats they stand for."""
        return mu_law_decode(levels, self.num_levels).to(self._float_dtype())

    def describe_support(self) -> str:
        return "audio values in [-1, 1]"

    def check_value(self, value: torch.Tensor) -> None:
        """Audio must come as floats (the waveform, not its levels); then the base class's checks."""
        if isinstance(value, torch.Tensor) and not value.is_floating_point():
            raise DataError(
                f"{self.label}: expected audio as floats in [-1, 1], got a {value.dtype} tensor "
                "(pass the waveform, not its levels)"
            )
        super().check_value(value)
