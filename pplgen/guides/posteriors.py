"""Variational distributions for one latent site: encoder heads for local latents, mean field for global ones.

Continuous latents are modelled in unconstrained space and mapped onto the site's support by
``biject_to(support)`` (Kucukelbir et al. 2017); real-valued sites get the Normal itself, so the analytic
KL divergence to a Normal prior stays available.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import constraints
from pyro.distributions.transforms import ConditionalAffineAutoregressive
from pyro.nn import ConditionalAutoRegressiveNN
from torch import nn
from torch.distributions.transforms import ReshapeTransform

from pplgen.errors import GuideError
from pplgen.guides.structure import LatentSpec

__all__ = ["POSTERIORS", "DiscreteHead", "FullRankHead", "MeanField", "NormalHead", "make_head"]

#: The posterior families an :class:`~pplgen.guides.AmortisedGuide` head can take for a continuous latent.
POSTERIORS = ("normal", "full_rank")
_MIN_SCALE = 1e-5  # keeps a collapsing scale away from zero, where log q would be infinite


def _place(spec: LatentSpec, per_point: torch.Tensor) -> torch.Tensor:
    """Move the data axis from 0 to where the site's value keeps it."""
    return per_point if spec.axis == 0 else per_point.movedim(0, spec.axis)


def _constrain(spec: LatentSpec, base: dist.Distribution) -> dist.Distribution:
    """``base`` (on unconstrained space) mapped onto the site's support."""
    if _is_real(spec.support):
        return base
    return dist.TransformedDistribution(base, spec.transform)


def _is_real(support) -> bool:
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    return support is constraints.real


def _scale(raw: torch.Tensor) -> torch.Tensor:
    return F.softplus(raw) + _MIN_SCALE


class NormalHead(nn.Module):
    r"""A diagonal Normal :math:`q(z \mid x) = N(\mu(h), \mathrm{diag}\,\sigma(h)^2)` from encoder features h.

    References:
        Kingma & Welling (2014), "Auto-encoding variational Bayes"; Rezende, Mohamed & Wierstra (2014).
    """

    def __init__(self, spec: LatentSpec, features: int):
        super().__init__()
        self.spec = spec
        self.size = math.prod(spec.unconstrained_shape)
        self.linear = nn.Linear(features, 2 * self.size)

    def forward(self, h: torch.Tensor) -> dist.Distribution:
        shape = (h.shape[0], *self.spec.unconstrained_shape)
        loc, raw = self.linear(h).chunk(2, dim=-1)
        loc, scale = _place(self.spec, loc.reshape(shape)), _place(self.spec, _scale(raw).reshape(shape))
        return _constrain(self.spec, dist.Normal(loc, scale).to_event(len(self.spec.event_shape)))


class FullRankHead(nn.Module):
    r"""A Normal with a full covariance over each data point's event, :math:`L(h) L(h)^\top` (Cholesky).

    Plates inside the data plate stay independent, as the model declares them.

    References:
        Kucukelbir, Tran, Ranganath, Gelman & Blei (2017), "Automatic differentiation variational
        inference" (full-rank ADVI).
    """

    def __init__(self, spec: LatentSpec, features: int):
        super().__init__()
        if spec.axis != 0:
            raise GuideError(
                f"a full-rank posterior for {spec.name!r} needs the data plate as its value's first dimension"
            )
        self.spec = spec
        rank = len(spec.event_shape)
        self.event = (
            spec.unconstrained_shape[len(spec.unconstrained_shape) - rank :] if rank else torch.Size()
        )
        self.plates = spec.unconstrained_shape[: len(spec.unconstrained_shape) - rank]
        self.dim = math.prod(self.event)
        self.tril = torch.tril_indices(self.dim, self.dim)
        self.count = math.prod(self.plates)
        self.linear = nn.Linear(features, self.count * (self.dim + self.tril.shape[1]))

    def forward(self, h: torch.Tensor) -> dist.Distribution:
        n = h.shape[0]
        out = self.linear(h).reshape(n, *self.plates, self.dim + self.tril.shape[1])
        loc, entries = out[..., : self.dim], out[..., self.dim :]
        scale_tril = loc.new_zeros(*loc.shape, self.dim)
        scale_tril[..., self.tril[0], self.tril[1]] = entries
        diagonal = _scale(scale_tril.diagonal(dim1=-2, dim2=-1))
        scale_tril = scale_tril.tril(-1) + torch.diag_embed(diagonal)
        base = dist.MultivariateNormal(loc, scale_tril=scale_tril)
        if len(self.event) != 1:
            base = dist.TransformedDistribution(base, ReshapeTransform((self.dim,), self.event))
        return _constrain(self.spec, base)


class IAFHead(nn.Module):
    r"""A diagonal Normal followed by inverse autoregressive flow steps conditioned on the features h.

    Each step is the numerically stable update :math:`z \leftarrow \sigma \odot z + (1 - \sigma) \odot m`
    with :math:`(m, s) = \mathrm{MADE}(z, h)` and :math:`\sigma = \mathrm{sigmoid}(s)`; the order is
    reversed between steps.

    References:
        Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling (2016), "Improved variational inference
        with inverse autoregressive flow".
    """

    def __init__(self, spec: LatentSpec, features: int, steps: int, hidden: int):
        super().__init__()
        if spec.axis != 0 or len(spec.unconstrained_shape) != 1 or spec.unconstrained_shape[0] < 2:
            raise GuideError(
                f"inverse autoregressive flow for {spec.name!r} needs one vector of at least 2 entries per "
                f"data point, got per-point shape {tuple(spec.point_shape)}"
            )
        self.spec = spec
        self.normal = NormalHead(spec, features)
        size = spec.unconstrained_shape[0]
        self.steps = nn.ModuleList()
        for i in range(steps):
            order = torch.arange(size) if i % 2 == 0 else torch.arange(size - 1, -1, -1)
            made = ConditionalAutoRegressiveNN(size, features, [hidden, hidden], permutation=order)
            self.steps.append(ConditionalAffineAutoregressive(made, stable=True))

    def forward(self, h: torch.Tensor) -> dist.Distribution:
        loc, raw = self.normal.linear(h).chunk(2, dim=-1)
        base = dist.Normal(loc, _scale(raw)).to_event(1)
        flow = dist.TransformedDistribution(base, [step.condition(h) for step in self.steps])
        return _constrain(self.spec, flow)


class DiscreteHead(nn.Module):
    """A Bernoulli, Categorical or one-hot Categorical posterior for a discrete latent (score-function
    gradients; enumerate the site in the model instead where its support is small)."""

    def __init__(self, spec: LatentSpec, features: int):
        super().__init__()
        self.spec = spec
        support = spec.support
        while isinstance(support, constraints.independent):
            support = support.base_constraint
        if support is constraints.boolean:
            self.kind, self.levels = "bernoulli", 1
        elif isinstance(support, constraints.integer_interval) and support.lower_bound == 0:
            self.kind, self.levels = "categorical", int(support.upper_bound) + 1
        elif support is constraints.one_hot:
            self.kind, self.levels = "one_hot", int(spec.event_shape[-1])
        else:
            raise GuideError(
                f"latent site {spec.name!r} has discrete support {support}; the automatic guide handles "
                "Bernoulli, Categorical and OneHotCategorical latents: enumerate it in the model "
                "(infer={'enumerate': 'parallel'}) or write a guide"
            )
        shape = spec.point_shape[:-1] if self.kind == "one_hot" else spec.point_shape
        self.shape = torch.Size(shape)
        self.linear = nn.Linear(features, math.prod(self.shape) * self.levels)

    def forward(self, h: torch.Tensor) -> dist.Distribution:
        n = h.shape[0]
        if self.kind == "bernoulli":
            logits = _place(self.spec, self.linear(h).reshape(n, *self.shape))
            return dist.Bernoulli(logits=logits).to_event(len(self.spec.event_shape))
        logits = _place(self.spec, self.linear(h).reshape(n, *self.shape, self.levels))
        if self.kind == "one_hot":
            return dist.OneHotCategorical(logits=logits).to_event(len(self.spec.event_shape) - 1)
        return dist.Categorical(logits=logits).to_event(len(self.spec.event_shape))


def make_head(spec: LatentSpec, features: int, posterior: str, flows: int, hidden: int) -> nn.Module:
    """The head that turns encoder features into ``spec``'s variational distribution."""
    if spec.discrete:
        return DiscreteHead(spec, features)
    if flows:
        return IAFHead(spec, features, flows, hidden)
    if posterior == "full_rank":
        return FullRankHead(spec, features)
    return NormalHead(spec, features)


class MeanField(nn.Module):
    r"""A global latent's fully factorised Normal in unconstrained space, started at the prior median.

    References:
        Kucukelbir et al. (2017), "Automatic differentiation variational inference"; Pyro's AutoNormal.
    """

    def __init__(self, spec: LatentSpec, init_scale: float = 0.1):
        super().__init__()
        if spec.discrete:
            raise GuideError(
                f"global latent {spec.name!r} is discrete: enumerate it in the model "
                "(infer={'enumerate': 'parallel'}) or write a guide for it"
            )
        self.spec = spec
        self.loc = nn.Parameter(spec.init.clone())
        self.raw_scale = nn.Parameter(torch.full_like(spec.init, math.log(math.expm1(init_scale))))

    def forward(self) -> dist.Distribution:
        base = dist.Normal(self.loc, _scale(self.raw_scale)).to_event(len(self.spec.event_shape))
        return _constrain(self.spec, base)
