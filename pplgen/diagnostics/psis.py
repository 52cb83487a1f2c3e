r"""Pareto smoothed importance sampling: smoothed weights, the shape estimate k̂, and PSIS-LOO.

Importance ratios :math:`r_s = p(\theta_s \mid y) / q(\theta_s)` with heavy tails make plain importance
sampling unreliable. PSIS fits a generalised Pareto distribution to the largest ratios and replaces them by
the fitted distribution's expected order statistics. The fitted shape :math:`\hat k` says how heavy the
tail is: the ratios have finite variance for :math:`k < 1/2` and a finite mean for :math:`k < 1`; in
practice estimates are reliable while :math:`\hat k` stays below :math:`\min(1 - 1/\log_{10} S, 0.7)`.

References:
    Vehtari, Simpson, Gelman, Yao & Gabry (2024), "Pareto smoothed importance sampling", JMLR 25(72).
    Zhang & Stephens (2009), "A new and efficient estimation method for the generalized Pareto
    distribution" (the fit, with the weakly informative prior on k of Vehtari et al.).
    Yao, Vehtari, Simpson & Gelman (2018), "Yes, but did it work?: Evaluating variational inference".
    Vehtari, Gelman & Gabry (2017), "Practical Bayesian model evaluation using leave-one-out
    cross-validation and WAIC" (PSIS-LOO).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["LOO", "PSIS", "describe_khat", "good_threshold", "psis", "psis_loo"]

MIN_DRAWS = 25  # the tail then holds at least 5 ratios, the fewest a Pareto fit is made from
PRIOR_K, PRIOR_WEIGHT = 0.5, 10  # k shrunk towards 0.5 as if by 10 extra ratios (Vehtari et al. 2024)


@dataclass
class PSIS:
    """Pareto-smoothed log weights, normalised over the draws, and the shape estimate per set of weights.

    Attributes:
        log_weights: the smoothed, truncated and normalised log weights, the input's shape.
        khat: :math:`\\hat k` for each set of ratios, the input's shape without the draws' axis.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> smoothed = psis(torch.randn(2, 100))  # two sets of 100 log ratios
        >>> smoothed.log_weights.shape, smoothed.khat.shape
        (torch.Size([2, 100]), torch.Size([2]))
        >>> smoothed.log_weights.exp().sum(-1)  # normalised over the draws
        tensor([1.0000, 1.0000], dtype=torch.float64)

    References:
        Vehtari, Simpson, Gelman, Yao & Gabry (2024), "Pareto smoothed importance sampling", JMLR 25(72).
    """

    log_weights: torch.Tensor
    khat: torch.Tensor


def good_threshold(num_draws: int) -> float:
    """The k̂ below which PSIS estimates from ``num_draws`` draws are reliable: min(1 - 1/log10 S, 0.7).

    Raises:
        ValueError: fewer than 2 draws.

    Example:
        >>> good_threshold(100), round(good_threshold(1000), 3), good_threshold(10**6)  # at most 0.7
        (0.5, 0.667, 0.7)

    References:
        Vehtari, Simpson, Gelman, Yao & Gabry (2024), "Pareto smoothed importance sampling", JMLR 25(72).
    """
    if num_draws < 2:
        raise ValueError(f"expected at least 2 draws, got {num_draws}")
    return min(1.0 - 1.0 / math.log10(num_draws), 0.7)


def psis(log_ratios: torch.Tensor, dim: int = -1) -> PSIS:
    """Pareto smoothed importance sampling of the log ratios along ``dim`` (the draws).

    Args:
        log_ratios: log importance ratios :math:`\\log r_s`, up to a constant, with the draws along ``dim``.
        dim: the draws' dimension.

    Returns:
        :class:`PSIS`: the smoothed log weights, normalised along ``dim``, and :math:`\\hat k` per set of
        ratios.

    Raises:
        ValueError: fewer than 25 draws, or a ratio that is NaN.

    Example:
        Draws from :math:`q = N(0, 1)` weighted towards a narrower and a wider normal target: a proposal
        wider than its target gives bounded ratios, a narrower one a heavy tail.

        >>> _ = torch.manual_seed(0)
        >>> draws = torch.randn(1000)
        >>> def log_ratios(target_sd):
        ...     target = torch.distributions.Normal(0.0, target_sd)
        ...     return target.log_prob(draws) - torch.distributions.Normal(0.0, 1.0).log_prob(draws)
        >>> bool(psis(log_ratios(0.5)).khat < 0.5), bool(psis(log_ratios(2.0)).khat > good_threshold(1000))
        (True, True)

    References:
        Vehtari, Simpson, Gelman, Yao & Gabry (2024), "Pareto smoothed importance sampling", JMLR 25(72).
        Zhang & Stephens (2009), "A new and efficient estimation method for the generalized Pareto
        distribution".
    """
    if log_ratios.shape[dim] < MIN_DRAWS:
        raise ValueError(
            f"Pareto smoothing needs at least {MIN_DRAWS} draws per set of ratios, "
            f"got {log_ratios.shape[dim]}"
        )
    if torch.isnan(log_ratios).any():
        raise ValueError("the log importance ratios contain NaN: the model or guide density is not finite")
    ratios = log_ratios.detach().double().cpu().movedim(dim, -1)
    flat = ratios.reshape(-1, ratios.shape[-1])
    results = [_smooth(row) for row in flat]
    log_weights = torch.stack([lw for lw, _ in results]).reshape(ratios.shape).movedim(-1, dim)
    khat = torch.tensor([k for _, k in results], dtype=torch.float64).reshape(ratios.shape[:-1])
    return PSIS(log_weights, khat)


def _smooth(log_ratios: torch.Tensor) -> tuple[torch.Tensor, float]:
    """One set of log ratios (S,): smoothed normalised log weights and k̂."""
    draws = len(log_ratios)
    log_ratios = log_ratios - log_ratios.max()  # the largest ratio is 1
    tail = math.ceil(min(draws / 5.0, 3.0 * math.sqrt(draws)))
    ordered, order = log_ratios.sort()
    log_cutoff = max(float(ordered[-tail - 1]), math.log(torch.finfo(torch.float64).tiny))
    above = ordered[-tail:] > log_cutoff
    if above.sum() <= 4:  # the tail is flat: nothing to fit or smooth
        return log_ratios - torch.logsumexp(log_ratios, 0), math.inf
    excess = ordered[-tail:][above].exp() - math.exp(log_cutoff)
    k, sigma = _fit_pareto(excess)
    if math.isfinite(k):
        count = len(excess)
        probabilities = (torch.arange(1, count + 1, dtype=torch.float64) - 0.5) / count
        smoothed = (_pareto_quantile(probabilities, k, sigma) + math.exp(log_cutoff)).log().clamp(max=0.0)
        positions = order[-tail:][above]
        log_ratios = log_ratios.clone()
        log_ratios[positions] = smoothed
    return log_ratios - torch.logsumexp(log_ratios, 0), k


def _fit_pareto(excess: torch.Tensor) -> tuple[float, float]:
    """Shape k and scale sigma of a generalised Pareto fitted to sorted positive values (Zhang & Stephens).

    The profile likelihood of theta = -k / sigma is averaged over a grid of theta placed by the
    data's quartile; k is then shrunk towards 0.5 by the weakly informative prior.
    """
    n = len(excess)
    grid = 30 + int(math.sqrt(n))
    j = torch.arange(1, grid + 1, dtype=torch.float64)
    quartile = excess[int(n / 4 + 0.5) - 1]
    theta = 1.0 / excess[-1] + (1.0 - torch.sqrt(grid / (j - 0.5))) / (3.0 * quartile)
    k = torch.log1p(-theta[:, None] * excess).mean(1)
    profile = n * (torch.log(-theta / k) - k - 1.0)
    weights = 1.0 / torch.exp(profile[None, :] - profile[:, None]).sum(1)
    keep = weights >= 10 * torch.finfo(torch.float64).eps
    weights, theta = weights[keep] / weights[keep].sum(), theta[keep]
    theta_hat = float((theta * weights).sum())
    k_hat = float(torch.log1p(-theta_hat * excess).mean())
    sigma = -k_hat / theta_hat
    k_hat = (n * k_hat + PRIOR_WEIGHT * PRIOR_K) / (n + PRIOR_WEIGHT)
    return k_hat, sigma


def _pareto_quantile(p: torch.Tensor, k: float, sigma: float) -> torch.Tensor:
    """The generalised Pareto's quantile function at p in (0, 1)."""
    if abs(k) < torch.finfo(torch.float64).eps:
        return -sigma * torch.log1p(-p)
    return sigma * torch.expm1(-k * torch.log1p(-p)) / k


@dataclass
class LOO:
    """PSIS leave-one-out cross-validation (Vehtari, Gelman & Gabry 2017).

    Attributes:
        elpd: the expected log pointwise predictive density, summed over the data points.
        se: its standard error, sqrt(N var(elpd_i)).
        p_loo: the effective number of parameters, lppd - elpd.
        pointwise: elpd_i per data point.
        khat: k̂ of each point's leave-one-out ratios 1 / p(y_i | theta_s).

    Example:
        Twenty points from :math:`N(1, 1)`, and draws from the posterior of their mean under a flat prior:

        >>> _ = torch.manual_seed(0)
        >>> y = torch.randn(20) + 1.0
        >>> theta = y.mean() + torch.randn(2000) / math.sqrt(20)  # (S,)
        >>> loo = psis_loo(torch.distributions.Normal(theta[:, None], 1.0).log_prob(y))  # from (S, N)
        >>> loo.pointwise.shape, loo.khat.shape
        (torch.Size([20]), torch.Size([20]))
        >>> math.isclose(loo.elpd, float(loo.pointwise.sum())), loo.se > 0, bool((loo.khat < 0.5).all())
        (True, True, True)

    References:
        Vehtari, Gelman & Gabry (2017), "Practical Bayesian model evaluation using leave-one-out
        cross-validation and WAIC".
    """

    elpd: float
    se: float
    p_loo: float
    pointwise: torch.Tensor
    khat: torch.Tensor


def psis_loo(log_likelihood: torch.Tensor) -> LOO:
    """PSIS-LOO from pointwise log-likelihoods ``(S, N)`` of S posterior draws and N data points.

    Each point's leave-one-out predictive density :math:`p(y_i \\mid y_{-i})` is estimated by importance
    sampling the full posterior's draws with ratios :math:`1 / p(y_i \\mid \\theta_s)`, smoothed by
    :func:`psis`.

    Args:
        log_likelihood: :math:`\\log p(y_i \\mid \\theta_s)`, shape ``(S, N)`` (or ``(S, ...)``, flattened
            to one column per data point).

    Returns:
        :class:`LOO`: elpd, its standard error, p_loo, and elpd and k̂ per point.

    Raises:
        ValueError: fewer than 25 draws, or a log-likelihood that is NaN.

    Example:
        Two models of twenty points from :math:`N(1, 1)` that learn the mean, one with the right spread
        and one three times too wide; LOO prefers the first, and counts about one parameter:

        >>> _ = torch.manual_seed(0)
        >>> y = torch.randn(20) + 1.0
        >>> theta = y.mean() + torch.randn(2000) / math.sqrt(20)  # posterior draws of the mean, (S,)
        >>> loo = psis_loo(torch.distributions.Normal(theta[:, None], 1.0).log_prob(y))
        >>> wide = psis_loo(torch.distributions.Normal(theta[:, None], 3.0).log_prob(y))
        >>> loo.elpd > wide.elpd, 0.5 < loo.p_loo < 2.0
        (True, True)

    References:
        Vehtari, Gelman & Gabry (2017), "Practical Bayesian model evaluation using leave-one-out
        cross-validation and WAIC".
        Vehtari, Simpson, Gelman, Yao & Gabry (2024), "Pareto smoothed importance sampling", JMLR 25(72).
    """
    log_lik = log_likelihood.detach().double().cpu().reshape(log_likelihood.shape[0], -1)
    smoothed = psis(-log_lik, dim=0)
    pointwise = torch.logsumexp(smoothed.log_weights + log_lik, dim=0)
    lppd = float((torch.logsumexp(log_lik, dim=0) - math.log(log_lik.shape[0])).sum())
    elpd = float(pointwise.sum())
    se = math.sqrt(len(pointwise) * float(pointwise.var(unbiased=False)))
    return LOO(elpd, se, lppd - elpd, pointwise, smoothed.khat)


def describe_khat(khat: float, num_draws: int) -> str:
    """What a k̂ of importance ratios between an approximation and its target says, in words.

    Args:
        khat: the Pareto shape estimate.
        num_draws: the draws it was estimated from (sets the threshold :func:`good_threshold`).

    Returns:
        The verdict (good, fair, bad, very bad) and what it means, in one or two sentences.

    Example:
        >>> describe_khat(0.8, num_draws=1000)
        'k̂ = 0.80 >= 0.67: bad. The approximation misses part of the target ...'
        >>> [describe_khat(k, 1000).split(": ")[1].split(".")[0] for k in (0.3, 0.6, 0.8, 1.2)]
        ['good', 'fair', 'bad', 'very bad']

    References:
        Vehtari, Simpson, Gelman, Yao & Gabry (2024), "Pareto smoothed importance sampling", JMLR 25(72).
        Yao, Vehtari, Simpson & Gelman (2018), "Yes, but did it work?: Evaluating variational inference".
    """
    threshold = good_threshold(num_draws)
    if khat < 0.5:
        return (
            f"k̂ = {khat:.2f} < 0.5: good. The importance ratios have finite variance, so the approximation "
            "is close to its target and estimates from it are reliable."
        )
    if khat < threshold:
        return (
            f"k̂ = {khat:.2f} < {threshold:.2f}: fair. Pareto smoothing still gives usable estimates, but the "
            "approximation is not close: trust means more than tails and variances."
        )
    if khat < 1.0:
        return (
            f"k̂ = {khat:.2f} >= {threshold:.2f}: bad. The approximation misses part of the target (often "
            f"it is too narrow); importance sampling cannot repair it with {num_draws} draws."
        )
    return (
        f"k̂ = {khat:.2f} >= 1: very bad. The importance ratios have no finite mean; the approximation "
        "and estimates drawn from it are not to be trusted."
    )
