"""ArviZ ``InferenceData`` for fitted pplgen programs and for MCMC on the same programs.

Every call into ArviZ is in this module: ArviZ 1.x (Python >= 3.12) replaces the container with xarray's
``DataTree``, and moving to it should touch this file only.

References:
    Kumar, Carroll, Hartikainen & Martin (2019), "ArviZ a unified library for exploratory analysis of
    Bayesian models in Python", JOSS 4(33).
"""

from __future__ import annotations

import warnings

import numpy as np
import pyro
import torch

from pplgen.diagnostics.draws import Draws, draw, replay_draws
from pplgen.errors import ImplicitLikelihoodError, ModelError
from pplgen.graph import inspect
from pplgen.infer.checks import as_tensors
from pplgen.infer.params import evaluation_mode, on_device
from pplgen.infer.result import FitResult

__all__ = ["arviz", "from_draws", "to_inference_data"]


def arviz():
    """The ``arviz`` module, imported quietly (0.2x announces its coming refactor on import)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az
    return az


def to_inference_data(
    result: FitResult | pyro.infer.MCMC,
    data,
    *,
    num_samples: int = 100,
    prior_samples: int | None = None,
    predictive: bool = True,
    max_rows: int = 1024,
):
    """An ArviZ ``InferenceData`` of a fitted model, for ArviZ's own summaries, LOO and plots.

    For a latent model, ``num_samples`` joint draws of every latent from the guide over all of ``data``
    give the groups:

    - ``posterior``: global latents as ``(chain, draw, ...)``; local latents with the data-point axis,
      named after its plate (``(chain, draw, data, ...)``);
    - ``log_likelihood``: each observed site's log density per data point given the draw's latents, so
      that ``az.loo`` and ``az.waic`` work. As in ArviZ's MCMC converter, local latents are held at the
      draw's value: for an amortised model this is log p(x_n | z_n), not the marginal log p(x_n) that
      :func:`pplgen.log_likelihood` estimates;
    - ``posterior_predictive``: the observations drawn afresh given each draw's latents (``predictive``);
    - ``prior`` and ``prior_predictive``: ``prior_samples`` draws of the program run forward;
    - ``observed_data``: the values the program observed;
    - ``sample_stats``: per draw ``lp`` (log p(x, z)), ``log_q`` and ``log_weight`` (their difference,
      the importance ratio); per epoch the training history: ``elbo`` and ``val_elbo`` in nats per data
      point, on an ``epoch`` axis.

    Axes are named after the program's plates where a plate sits on them, else ``{site}_dim_{i}``.
    An exact model gets one draw: ``log_likelihood`` (exact), ``observed_data`` and the history.
    A ``pyro.infer.MCMC`` run on the same program is converted by ArviZ's own ``from_pyro`` with the
    same axis names, so ``az.plot_forest([vi, nuts])`` compares the two posteriors.

    Args:
        result: what :func:`pplgen.fit` returned, or a finished ``pyro.infer.MCMC``.
        data: the data, as passed to ``fit`` (for MCMC: as passed to ``mcmc.run``).
        num_samples: S, joint draws from the guide.
        prior_samples: draws from the prior (default ``num_samples``; 0 for none).
        predictive: include the posterior predictive group.
        max_rows: data points traced in one pass.

    References:
        Vehtari, Gelman & Gabry (2017), "Practical Bayesian model evaluation using leave-one-out
        cross-validation and WAIC" (what the pointwise log-likelihood is for).

    Example:
        >>> import torch, pyro, pyro.distributions as dist, pplgen
        >>> def model(x):
        ...     mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
        ...     with pyro.plate("data", len(x)):
        ...         pyro.sample("x", dist.Normal(mu, 1.0), obs=x)
        >>> x = torch.randn(50) + 3.0
        >>> result = pplgen.fit(model, x, epochs=2000, batch_size=50, lr=0.01, valid_fraction=0, seed=0)
        >>> idata = pplgen.to_inference_data(result, x, num_samples=200)
        >>> dict(idata.posterior["mu"].sizes), dict(idata.log_likelihood["x"].sizes)
        ({'chain': 1, 'draw': 200}, {'chain': 1, 'draw': 200, 'data': 50})
        >>> abs(float(idata.posterior["mu"].mean()) - float(x.mean())) < 0.2
        True
    """
    tensors = as_tensors(data)
    if isinstance(result, pyro.infer.MCMC):
        return _from_mcmc(result, tensors)
    if not isinstance(result, FitResult):
        raise TypeError(
            f"expected a FitResult from pplgen.fit or a pyro.infer.MCMC, got {type(result).__name__}"
        )
    if result.family == "implicit":
        raise ImplicitLikelihoodError(
            "an implicit model has no likelihood, so there is no posterior or log-likelihood to convert; "
            "judge it with pplgen evaluate's sample metrics"
        )
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    exact = result.family == "exact"
    tensors = tuple(t.to(result.device) for t in tensors)
    prior_samples = 0 if exact else num_samples if prior_samples is None else prior_samples
    with torch.no_grad(), on_device(result.device), evaluation_mode(result.model, result.guide):
        graph = result.graph
        posterior = draw(
            result.model, None if exact else result.guide, tensors, graph, 1 if exact else num_samples,
            predictive=predictive and not exact, max_rows=max_rows,
        )  # fmt: skip
        prior = draw(result.model, None, tensors, graph, prior_samples, prior=True, max_rows=max_rows) if (
            prior_samples
        ) else None  # fmt: skip
    return from_draws(posterior, prior, history=result.history, elbo=not exact)


def from_draws(
    posterior: Draws,
    prior: Draws | None = None,
    *,
    history=(),
    elbo: bool = True,
    chains: int = 1,
    latents=True,
):
    """An ``InferenceData`` from joint draws (:func:`pplgen.diagnostics.draws.draw`) and a fit's history.

    ``chains``: the draws are that many chains, one after the other. ``latents``: include the
    ``posterior`` and ``sample_stats`` groups (left to ArviZ's own converter for MCMC).
    """
    az = arviz()

    def dataset(group: dict[str, torch.Tensor], draws: bool = True):
        if not group:
            return None
        if not draws:
            dims = {name: list(posterior.dims[name]) for name in group}
            return az.dict_to_dataset({n: v.numpy() for n, v in group.items()}, dims=dims, default_dims=[])
        arrays = {name: value.reshape(chains, -1, *value.shape[1:]).numpy() for name, value in group.items()}
        dims = {name: list(posterior.dims.get(name, ())[: value.dim() - 1]) for name, value in group.items()}
        return az.dict_to_dataset(arrays, dims=dims, library=pyro)

    groups = {
        "log_likelihood": dataset(posterior.log_likelihood),
        "posterior_predictive": dataset(posterior.predictive),
        "observed_data": dataset(posterior.observed, draws=False),
    }
    if latents:
        groups["posterior"] = dataset(posterior.latents)
        groups["sample_stats"] = dataset(_draw_stats(posterior))
    if prior is not None:
        groups["prior"] = dataset(prior.latents)
        groups["prior_predictive"] = dataset(prior.predictive)
    idata = az.InferenceData(**{name: group for name, group in groups.items() if group is not None})
    _add_history(idata, list(history), elbo)
    return idata


def _draw_stats(draws: Draws) -> dict[str, torch.Tensor]:
    stats = {"lp": draws.log_p}
    if draws.log_q is not None:
        stats.update(log_q=draws.log_q, log_weight=draws.log_p - draws.log_q)
    return stats


def _add_history(idata, history: list[dict], elbo: bool) -> None:
    """The per-epoch training history in ``sample_stats``, on its own ``epoch`` axis (nats per data point)."""
    if not history:
        return
    import xarray as xr

    epochs = [row["epoch"] for row in history]
    columns = {"loss": "elbo", "val_loss": "val_elbo"} if elbo else {"loss": "loss", "val_loss": "val_loss"}
    sign = -1.0 if elbo else 1.0
    found = {
        name: xr.DataArray(
            [sign * row.get(key, np.nan) for row in history], dims=["epoch"], coords={"epoch": epochs}
        )
        for key, name in columns.items()
        if any(key in row for row in history)
    }
    if "sample_stats" in idata.groups():
        idata.sample_stats = idata.sample_stats.assign(found)
    else:
        idata.add_groups(sample_stats=xr.Dataset(found))


def _from_mcmc(mcmc: pyro.infer.MCMC, tensors: tuple[torch.Tensor, ...]):
    """ArviZ's own converter for the chains and their statistics, with pplgen's axis names; the pointwise
    log-likelihood and the predictive from the same code as the VI draws, so that the two line up."""
    az = arviz()
    model = getattr(mcmc.kernel, "model", None)
    if model is None:
        raise ModelError("the MCMC kernel has no model program (a potential_fn kernel?): nothing to replay")
    samples = {name: value.detach() for name, value in mcmc.get_samples().items()}
    with torch.no_grad():
        graph = inspect(model, *tensors)
        replayed = replay_draws(model, samples, tensors, graph)
    dims = {name: list(replayed.dims[name]) for name in samples if replayed.dims.get(name)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        idata = az.from_pyro(mcmc, log_likelihood=False, dims=dims)
    idata.extend(from_draws(replayed, chains=mcmc.num_chains, latents=False), join="right")
    return idata
