"""The discretised logistic: a likelihood for pixels that take K ordered levels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution, constraints
from torch.distributions.utils import broadcast_all

from pplgen.errors import ModelError

__all__ = ["DiscretizedLogistic"]


class DiscretizedLogistic(TorchDistribution):
    r"""A logistic distribution rounded to the integer levels :math:`0, \dots, K-1`.

    Level :math:`k` stands for the point :math:`c_k = 2k/(K-1) - 1` of :math:`[-1, 1]`, and its bin is
    :math:`[c_k - h, c_k + h]` with half-width :math:`h = 1/(K-1)`. With :math:`F` the logistic
    distribution function of location :math:`\mu` and scale :math:`s`,

    .. math::
        p(k) = F(c_k + h) - F(c_k - h), \qquad
        p(0) = F(c_0 + h), \qquad p(K-1) = 1 - F(c_{K-1} - h),

    so the edge bins take the tails and the K masses sum to one.

    ``log_prob`` is exact and stable for any location and scale. Writing :math:`a = (c_k + h - \mu)/s`
    and :math:`b = (c_k - h - \mu)/s`, the difference of sigmoids factors as

    .. math::
        \sigma(a) - \sigma(b) = \sigma(a)\,\sigma(-b)\,\big(1 - e^{-(a - b)}\big),

    whose logarithm is a sum of log-sigmoids and ``log(-expm1(-(a - b)))``, none of which cancels.
    PixelCNN++ subtracts the sigmoids directly and, where that difference underflows, falls back to
    the density at the bin's centre times the bin width; the factored form needs no fallback, so the
    value is the bin's mass in every regime, and so is its gradient.

    Values are levels as integers (``long``) or integer-valued floats; ``sample`` returns ``long``.

    References:
        Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling (2016), "Improving variational inference
        with inverse autoregressive flow" (the discretised logistic likelihood).
        Salimans, Karpathy, Chen & Kingma (2017), "PixelCNN++: improving the PixelCNN with discretized
        logistic mixture likelihood and other modifications".

    Args:
        loc: :math:`\mu`, on the scale where the levels span :math:`[-1, 1]`.
        scale: :math:`s > 0`, on the same scale.
        num_levels: K, at least 2.

    >>> d = DiscretizedLogistic(torch.tensor(0.0), torch.tensor(0.2), num_levels=5)
    >>> round(float(d.log_prob(torch.arange(5)).exp().sum()), 6)
    1.0
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    has_enumerate_support = True

    def __init__(self, loc, scale, num_levels: int, validate_args=None):
        if int(num_levels) != num_levels or num_levels < 2:
            raise ModelError(f"DiscretizedLogistic expects num_levels >= 2 (an integer), got {num_levels!r}")
        self.loc, self.scale = broadcast_all(loc, scale)
        self.num_levels = int(num_levels)
        super().__init__(self.loc.shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        return constraints.integer_interval(0, self.num_levels - 1)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(DiscretizedLogistic, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape)
        new.scale = self.scale.expand(batch_shape)
        new.num_levels = self.num_levels
        super(DiscretizedLogistic, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def half_width(self) -> float:
        """:math:`h = 1/(K-1)`, half a bin on the :math:`[-1, 1]` scale."""
        return 1.0 / (self.num_levels - 1)

    def centre(self, levels: torch.Tensor) -> torch.Tensor:
        """The point :math:`c_k = 2k/(K-1) - 1` of :math:`[-1, 1]` that level :math:`k` stands for."""
        return levels.to(self.loc.dtype) * (2 * self.half_width) - 1.0

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        centred = self.centre(value) - self.loc
        upper = (centred + self.half_width) / self.scale  # a: the bin's upper edge, standardised
        lower = (centred - self.half_width) / self.scale  # b
        log_below_upper = F.logsigmoid(upper)  # log F(upper edge)
        log_above_lower = F.logsigmoid(-lower)  # log(1 - F(lower edge))
        # a - b = 2h/s > 0, so expm1 is exact here even when the bin is a sliver of a wide logistic
        log_gap = torch.log(-torch.expm1(-(2 * self.half_width) / self.scale))
        interior = log_below_upper + log_above_lower + log_gap
        level = value.to(self.loc.dtype)
        # every branch is finite, so the unused ones pass zero (not NaN) gradients through where
        return torch.where(
            level <= 0,
            log_below_upper,
            torch.where(level >= self.num_levels - 1, log_above_lower, interior),
        )

    def sample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            tiny = torch.finfo(self.loc.dtype).tiny
            u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device).clamp(tiny, 1.0 - 1e-7)
            draw = self.loc.expand(shape) + self.scale.expand(shape) * (u.log() - (-u).log1p())
            # the level whose bin [c_k - h, c_k + h) holds the draw; the edge bins take the tails
            levels = torch.round((draw + 1.0) / (2 * self.half_width))
            return levels.clamp(0, self.num_levels - 1).long()

    def _exceedance(self) -> tuple[torch.Tensor, torch.Tensor]:
        """:math:`P(L \\ge k)` for :math:`k = 1 .. K-1` (last dimension), and those k."""
        k = torch.arange(1, self.num_levels, dtype=self.loc.dtype, device=self.loc.device)
        lower_edges = self.centre(k) - self.half_width  # (K-1,)
        survival = torch.sigmoid((self.loc.unsqueeze(-1) - lower_edges) / self.scale.unsqueeze(-1))
        return survival, k

    @property
    def mean(self):
        # E[L] = sum_{k >= 1} P(L >= k) for a variable on 0, 1, 2, ...
        survival, _ = self._exceedance()
        return survival.sum(-1)

    @property
    def variance(self):
        # E[L^2] = sum_{k >= 1} (2k - 1) P(L >= k)
        survival, k = self._exceedance()
        second_moment = (survival * (2 * k - 1)).sum(-1)
        return (second_moment - survival.sum(-1) ** 2).clamp(min=0)

    def enumerate_support(self, expand: bool = True):
        values = torch.arange(self.num_levels, device=self.loc.device)
        values = values.reshape((-1,) + (1,) * len(self.batch_shape))
        return values.expand((-1,) + self.batch_shape) if expand else values
