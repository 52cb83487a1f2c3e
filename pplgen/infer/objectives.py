"""Variational objectives for the latent family: the ELBO (analytic KL, warm-up, free bits) and the
importance-weighted bound (IWAE) with its standard, sticking-the-landing and doubly reparameterised
gradients.

An objective's ``loss`` returns the negative bound per data point and a :class:`Terms` record of what it
is made of (the KL per latent site and dimension), which the trainer turns into history columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.poutine.util import site_is_subsample
from torch.distributions import Independent, kl_divergence

from pplgen.errors import GuideError
from pplgen.infer.pointwise import per_point, repeat_rows
from pplgen.infer.trainer import scaled

__all__ = ["ELBO", "IWAE", "GRADIENTS", "Objective", "Terms"]

#: The guide-gradient estimators of :class:`IWAE`.
GRADIENTS = ("standard", "stl", "dreg")


@dataclass
class Terms:
    """What one evaluation of an objective is made of, per data point.

    Attributes:
        bound: the (unweighted) lower bound on log p(x) per data point: the ELBO or the IWAE bound (a
            float, or a 0-dim tensor left on the device).
        kl: KL(q || p) per latent site, a vector over the site's flattened event per data point (a
            single entry where the divergence does not split over dimensions). Empty for IWAE.
        loc: the posterior mean in unconstrained space per local latent site, ``(N, D)`` (for active
            units).
    """

    bound: float | torch.Tensor
    kl: dict[str, torch.Tensor] = field(default_factory=dict)
    loc: dict[str, torch.Tensor] = field(default_factory=dict)


class Objective:
    """A loss for amortised SVI: ``loss(model, guide, args, num_data, data_plates, training)``.

    ``args`` is a mini-batch of ``num_data`` data points; ``data_plates`` names the plates over the data
    points. It returns the negative bound per data point (differentiable) and its :class:`Terms`.
    ``training`` is False for validation, where the true bound is reported.

    Example:
        A plain Monte Carlo ELBO in a few lines; with the exact posterior as the guide every sample gives
        :math:`\\log p(x)` itself (here :math:`x \\sim N(0, 2)`):

        >>> import pyro, pyro.distributions as dist
        >>> class MonteCarloELBO(Objective):
        ...     def loss(self, model, guide, args, num_data, data_plates, training):
        ...         guide_trace = poutine.trace(guide).get_trace(*args)
        ...         model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args)
        ...         bound = (model_trace.log_prob_sum() - guide_trace.log_prob_sum()) / num_data
        ...         return -bound, Terms(float(bound))
        >>> def model(x):
        ...     with pyro.plate("data", len(x)):
        ...         z = pyro.sample("z", dist.Normal(0.0, 1.0))
        ...         pyro.sample("x", dist.Normal(z, 1.0), obs=x)
        >>> def posterior(x):  # the exact posterior N(x / 2, 1 / 2)
        ...     with pyro.plate("data", len(x)):
        ...         pyro.sample("z", dist.Normal(x / 2, 0.5**0.5))
        >>> x = torch.tensor([1.0, -1.0])
        >>> loss, terms = MonteCarloELBO().loss(model, posterior, (x,), 2, ("data",), training=False)
        >>> round(-loss.item(), 3), round(dist.Normal(0.0, 2**0.5).log_prob(x).mean().item(), 3)
        (-1.516, -1.516)

        Pass such an objective to :func:`pplgen.fit` as ``objective=MonteCarloELBO()``.
    """

    def loss(
        self,
        model: Callable,
        guide: Callable,
        args: tuple,
        num_data: int,
        data_plates: tuple[str, ...],
        training: bool,
    ) -> tuple[torch.Tensor, Terms]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _sample_sites(trace: poutine.Trace, observed: bool):
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and not site_is_subsample(site) and site["is_observed"] == observed:
            yield name, site


def _per_dimension(guide_fn, model_fn, value: torch.Tensor, analytic: bool) -> torch.Tensor:
    """KL(q || p) at one site, shape ``batch_shape + (D,)`` over the flattened event where it factorises.

    Analytic where torch registers it (Normal against Normal, ...), else the one-sample estimate
    log q(z) - log p(z); a single column where q or p does not factorise over the event.
    """
    rank = len(model_fn.event_shape)
    batch = value.shape[: value.dim() - rank]
    guide_base, model_base = _factors(guide_fn, rank), _factors(model_fn, rank)
    if guide_base is not None and model_base is not None:
        kl = _divergence(guide_base, model_base, value, analytic)
        if kl is not None and kl.dim() >= len(batch) + rank:
            return kl.reshape(*kl.shape[: kl.dim() - rank], -1)
    kl = _divergence(guide_fn, model_fn, value, analytic)
    return kl.unsqueeze(-1)


def _factors(fn, rank: int):
    """The elementwise distribution under ``Independent`` wrappers that reinterpret all ``rank`` dims."""
    dims = 0
    while isinstance(fn, Independent) and dims < rank:
        dims += fn.reinterpreted_batch_ndims
        fn = fn.base_dist
    return fn if dims == rank and not fn.event_shape else None


def _divergence(guide_fn, model_fn, value: torch.Tensor, analytic: bool) -> torch.Tensor | None:
    if analytic:
        try:
            return kl_divergence(guide_fn, model_fn)
        except NotImplementedError:
            pass
    try:
        return guide_fn.log_prob(value) - model_fn.log_prob(value)
    except (ValueError, RuntimeError):
        return None


def _loc(fn) -> torch.Tensor | None:
    """The mean of a (possibly wrapped) Normal in unconstrained space, else None."""
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return getattr(fn, "loc", None)


class ELBO(Objective):
    r"""The evidence lower bound with analytic KL terms where they exist.

    .. math::
        \mathcal{L}(x) = \mathbb{E}_{q(z \mid x)}[\log p(x \mid z)] - \beta\,\sum_j \max\big(\lambda,
        \mathrm{KL}_j\big)

    KL divergences are computed in closed form where torch registers them (a Normal guide against a
    Normal prior) and estimated from the sample otherwise. ``warmup`` steps raise β linearly from 0 to 1
    (KL annealing); ``free_bits`` λ lets each latent dimension keep λ nats of KL, averaged over the
    mini-batch, at no cost. Both act in training only: validation reports the plain ELBO.

    Args:
        num_particles: samples of z per data point, averaged.
        analytic_kl: use closed-form KL divergences where torch has them.
        warmup: training steps over which β rises from 0 to 1 (0: β = 1 throughout).
        free_bits: λ, nats per latent dimension that are not penalised (0: none).

    References:
        Kingma & Welling (2014), "Auto-encoding variational Bayes" (analytic KL).
        Bowman, Vilnis, Vinyals, Dai, Jozefowicz & Bengio (2016), "Generating sentences from a continuous
        space"; Sønderby, Raiko, Maaløe, Sønderby & Winther (2016), "Ladder variational autoencoders"
        (KL warm-up).
        Kingma et al. (2016), "Improved variational inference with inverse autoregressive flow" (free bits).

    Example:
        With the exact posterior as the guide, :math:`q(z \mid x) = N(x/2, 1/2)` for
        :math:`z \sim N(0, 1)`, :math:`x \mid z \sim N(z, 1)`, the ELBO estimated by sampling is
        :math:`\log p(x)` exactly, and the analytic KL is
        :math:`\tfrac{1}{2}(\tfrac{1}{2} + \tfrac{1}{4} - 1 - \log \tfrac{1}{2}) = 0.222` nats:

        >>> import pyro, pyro.distributions as dist
        >>> def model(x):
        ...     with pyro.plate("data", len(x)):
        ...         z = pyro.sample("z", dist.Normal(0.0, 1.0))
        ...         pyro.sample("x", dist.Normal(z, 1.0), obs=x)
        >>> def posterior(x):
        ...     with pyro.plate("data", len(x)):
        ...         pyro.sample("z", dist.Normal(x / 2, 0.5**0.5))
        >>> x = torch.tensor([1.0, -1.0])
        >>> loss, _ = ELBO(analytic_kl=False).loss(model, posterior, (x,), 2, ("data",), training=False)
        >>> round(-loss.item(), 3), round(dist.Normal(0.0, 2**0.5).log_prob(x).mean().item(), 3)
        (-1.516, -1.516)
        >>> _, terms = ELBO().loss(model, posterior, (x,), 2, ("data",), training=False)
        >>> round(terms.kl["z"].item(), 3)
        0.222
    """

    def __init__(
        self, num_particles: int = 1, analytic_kl: bool = True, warmup: int = 0, free_bits: float = 0.0
    ):
        if num_particles < 1 or warmup < 0 or free_bits < 0:
            raise ValueError(
                f"ELBO expects num_particles >= 1, warmup >= 0 and free_bits >= 0, "
                f"got {num_particles}, {warmup}, {free_bits}"
            )
        self.num_particles = num_particles
        self.analytic_kl = analytic_kl
        self.warmup = warmup
        self.free_bits = free_bits
        self.steps = 0  # training steps taken, for the warm-up

    def __repr__(self) -> str:
        return (
            f"ELBO(num_particles={self.num_particles}, analytic_kl={self.analytic_kl}, "
            f"warmup={self.warmup}, free_bits={self.free_bits})"
        )

    def beta(self, training: bool) -> float:
        if not training or not self.warmup:
            return 1.0
        return min(1.0, (self.steps + 1) / self.warmup)

    def loss(self, model, guide, args, num_data, data_plates, training):
        # local sites count num_data / batch times, so the mini-batch estimates the whole data's bound
        model, guide = (scaled(p, data_plates, len(args[0]), num_data) for p in (model, guide))
        total, bound, terms = 0.0, 0.0, Terms(0.0)
        for _ in range(self.num_particles):
            guide_trace = poutine.trace(guide).get_trace(*args)
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args)
            model_trace.compute_log_prob(lambda name, site: site["is_observed"])
            likelihood = sum(site["log_prob"].sum() for _, site in _sample_sites(model_trace, observed=True))
            # the guide's own factors (pyro.factor in the guide) count against the bound, as in Pyro's ELBOs
            guide_trace.compute_log_prob(lambda name, site: site["is_observed"])
            factors = sum(site["log_prob"].sum() for _, site in _sample_sites(guide_trace, observed=True))
            likelihood = likelihood - factors
            penalty, divergence = 0.0, 0.0
            for name, site in _sample_sites(model_trace, observed=False):
                if name not in guide_trace.nodes:
                    raise GuideError(
                        f"the model's latent {name!r} has no guide site and is not enumerated with "
                        "TraceEnum_ELBO; pplgen's ELBO needs a guide site for every latent"
                    )
                guided = guide_trace.nodes[name]
                kl = _per_dimension(guided["fn"], site["fn"], site["value"], self.analytic_kl)
                weight = scale_and_mask(torch.ones_like(kl[..., 0]), site["scale"], site["mask"])
                kl_sum = (weight.unsqueeze(-1) * kl).reshape(-1, kl.shape[-1]).sum(0)  # (D,)
                divergence = divergence + kl_sum.sum()
                terms.kl[name] = terms.kl.get(name, 0.0) + kl_sum.detach() / (num_data * self.num_particles)
                if training and self.free_bits:
                    kl_sum = torch.maximum(kl_sum, self.free_bits * weight.sum())
                penalty = penalty + kl_sum.sum()
                loc = _loc(guided["fn"])
                local = any(f.name in data_plates for f in site["cond_indep_stack"])
                if local and loc is not None and loc.dim() > 0 and loc.shape[0] == len(args[0]):
                    terms.loc[name] = loc.detach().reshape(loc.shape[0], -1)
            total = total - (likelihood - self.beta(training) * penalty)
            bound = bound + (likelihood - divergence).detach()  # a tensor: reading it would wait for a GPU
        terms.bound = bound / self.num_particles / num_data
        return total / self.num_particles / num_data, terms

    def state_dict(self) -> dict:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state.get("steps", 0))


class IWAE(Objective):
    r"""The importance-weighted bound with K samples per data point,

    .. math::
        \mathcal{L}_K(x) = \mathbb{E}\Big[\log \frac{1}{K}
            \sum_{k=1}^{K} \frac{p(x, z_k)}{q(z_k \mid x)}\Big],
        \qquad z_k \sim q(z \mid x),

    which is the ELBO at K = 1 and tightens to log p(x) as K grows. The K samples are drawn in one pass
    by repeating each data point K times inside the data plate, so every latent must be local.

    ``gradient`` chooses the guide's gradient estimator: ``"standard"`` (the reparameterised gradient of
    the bound), ``"stl"`` (sticking the landing: the score term of log q is dropped, which removes the
    variance that does not vanish at the optimum) or ``"dreg"`` (doubly reparameterised: squared
    normalised weights, whose signal-to-noise ratio does not decay as K grows). The model's gradient is
    the standard one in every case.

    Args:
        num_samples: K.
        gradient: ``"standard"``, ``"stl"`` or ``"dreg"``.

    References:
        Burda, Grosse & Salakhutdinov (2016), "Importance weighted autoencoders".
        Roeder, Wu & Duvenaud (2017), "Sticking the landing: simple, lower-variance gradient estimators
        for variational inference".
        Tucker, Lawson, Gu & Maddison (2019), "Doubly reparameterized gradient estimators for Monte Carlo
        objectives".
        Rainforth, Kosiorek, Le, Maddison, Igl, Wood & Teh (2018), "Tighter variational bounds are not
        necessarily better".

    Example:
        With the prior as a poor guide, the bound climbs towards :math:`\log p(x)` as K grows; the three
        gradient estimators differ in their gradients only, not in the bound's value:

        >>> import pyro, pyro.distributions as dist
        >>> def model(x):
        ...     with pyro.plate("data", len(x)):
        ...         z = pyro.sample("z", dist.Normal(0.0, 1.0))
        ...         pyro.sample("x", dist.Normal(z, 1.0), obs=x)
        >>> def prior(x):
        ...     with pyro.plate("data", len(x)):
        ...         pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0))
        >>> x = torch.linspace(-2.0, 2.0, 100)
        >>> round(dist.Normal(0.0, 2**0.5).log_prob(x).mean().item(), 2)  # log p(x) per point
        -1.61
        >>> for k in (1, 10, 100):
        ...     _ = torch.manual_seed(0)
        ...     loss, _ = IWAE(k).loss(model, prior, (x,), 100, ("data",), training=False)
        ...     print(k, round(-loss.item(), 2))
        1 -2.13
        10 -1.67
        100 -1.61
        >>> values = []
        >>> for gradient in GRADIENTS:
        ...     _ = torch.manual_seed(0)
        ...     values.append(IWAE(10, gradient).loss(model, prior, (x,), 100, ("data",), True)[0].item())
        >>> values[0] == values[1] == values[2]
        True
    """

    def __init__(self, num_samples: int = 50, gradient: str = "standard"):
        if num_samples < 1:
            raise ValueError(f"IWAE expects num_samples >= 1, got {num_samples}")
        if gradient not in GRADIENTS:
            raise ValueError(f"unknown IWAE gradient {gradient!r}: expected one of {', '.join(GRADIENTS)}")
        self.num_samples = num_samples
        self.gradient = gradient

    def __repr__(self) -> str:
        return f"IWAE(num_samples={self.num_samples}, gradient={self.gradient!r})"

    def loss(self, model, guide, args, num_data, data_plates, training):
        k = self.num_samples
        rows = repeat_rows(args, k)
        size = len(rows[0])
        guide_trace = poutine.trace(guide).get_trace(*rows)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*rows)
        log_p = per_point(model_trace, data_plates, size)
        log_q = per_point(guide_trace, data_plates, size)
        log_w = log_p - log_q
        latents = {name: site["value"].detach() for name, site in _sample_sites(guide_trace, observed=False)}
        if self.gradient in ("stl", "dreg"):  # add zero whose gradient cancels the score term of log q
            fixed = per_point(
                poutine.trace(poutine.condition(guide, data=latents)).get_trace(*rows), data_plates, size
            )
            log_w = log_w + fixed - fixed.detach()
        log_w = log_w.reshape(-1, k)
        bound = torch.logsumexp(log_w, dim=1) - math.log(k)
        if self.gradient == "dreg":
            weights = torch.softmax(log_w.detach(), dim=1)
            # log p(x, z) at the detached z: its gradient reaches the model's parameters only
            conditioned = poutine.trace(poutine.condition(model, data=latents)).get_trace(*rows)
            log_p_fixed = per_point(conditioned, data_plates, size).reshape(-1, k)
            surrogate = (
                (weights * log_p_fixed).sum(1)
                + (weights**2 * log_w).sum(1)
                - (weights**2 * log_p_fixed).sum(1)
            )
            objective = bound.detach() + surrogate - surrogate.detach()
        else:
            objective = bound
        terms = Terms(float(bound.detach().mean()))
        for name, site in _sample_sites(guide_trace, observed=False):  # posterior means, for active units
            loc = _loc(site["fn"])
            if loc is not None and loc.dim() > 0 and loc.shape[0] == size:
                terms.loc[name] = loc.detach().reshape(size // k, k, -1)[:, 0]
        return -objective.mean(), terms
