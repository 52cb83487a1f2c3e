r"""Log-likelihood of an implicit (decoder-based) model under a Gaussian observation model, by AIS.

A GAN generator :math:`x = G(z)` has no density. Wu et al. (2017) give it one by observing the data
through Gaussian noise, :math:`p_\sigma(x \mid z) = N(x; G(z), \sigma^2 I)`, so that the program becomes a
latent-variable model whose :math:`\log p_\sigma(x)` annealed importance sampling can estimate, with
:math:`\sigma` chosen on validation data.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from pyro.poutine.messenger import Messenger

from pplgen.distributions.implicit import Implicit
from pplgen.errors import DataError, ModelError, program_errors, program_name
from pplgen.evaluate.ais import AISSettings, annealed_log_weights
from pplgen.graph import inspect
from pplgen.infer.checks import as_tensors, chunks
from pplgen.infer.fit import resolve_device
from pplgen.infer.params import evaluation_mode, on_device
from pplgen.infer.result import FitResult

__all__ = [
    "GaussianObservation",
    "ScaleChoice",
    "choose_scale",
    "gaussian_observation",
    "implicit_log_likelihood",
]


def _checked_scale(scale) -> float:
    """``scale`` as a float, if it is a finite positive number."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise DataError(f"the observation noise scale must be a positive number, got {scale!r}")
    if not (math.isfinite(scale) and scale > 0):
        raise DataError(f"the observation noise scale must be finite and > 0, got {scale!r}")
    return float(scale)


class GaussianObservation(Messenger):
    r"""Observe every :class:`~pplgen.Implicit` site through Gaussian noise of standard deviation ``scale``.

    An observed site ``pyro.sample(name, Implicit(G(z), event_dim), obs=x)`` is given the distribution
    :math:`N(G(z), \sigma^2 I)` over its event, observed at the same ``x``. Other sites pass unchanged.
    Used as a context manager around a program; :func:`gaussian_observation` wraps one.

    References:
        Wu, Burda, Salakhutdinov & Grosse (2017), "On the quantitative analysis of decoder-based
        generative models".

    Example:
        Under the handler the generator's output :math:`2z` is observed through :math:`N(2z, 0.3^2)`, and
        the program becomes a latent model:

        >>> import pplgen, pyro, pyro.distributions as dist
        >>> def gan(x):
        ...     with pyro.plate("data", len(x)):
        ...         z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
        ...         pyro.sample("x", Implicit(2.0 * z, event_dim=1), obs=x)
        >>> x = torch.tensor([[0.5], [-1.0]])
        >>> with GaussianObservation(0.3):
        ...     trace = pyro.poutine.trace(gan).get_trace(x)
        ...     family = pplgen.inspect(gan, x).graph["family"]
        >>> z = trace.nodes["z"]["value"]
        >>> torch.allclose(trace.nodes["x"]["fn"].log_prob(x), dist.Normal(2.0 * z, 0.3).log_prob(x).sum(-1))
        True
        >>> family, pplgen.inspect(gan, x).graph["family"]
        ('latent', 'implicit')
    """

    def __init__(self, scale: float):
        super().__init__()
        self.scale = _checked_scale(scale)

    def _pyro_sample(self, msg: dict) -> None:
        fn = msg["fn"]
        # Runs after the program's plates (inner handlers come first), so the value already has the
        # plates' batch shape; an unobserved Implicit is a deterministic output and stays one.
        if msg["is_observed"] and isinstance(fn, Implicit):
            loc = fn.value
            noise = dist.Normal(loc, torch.full_like(loc, self.scale))
            msg["fn"] = noise.to_event(len(fn.event_shape))


def gaussian_observation(model: Callable, scale: float) -> Callable:
    r"""``model`` with each observed :class:`~pplgen.Implicit` site replaced by
    :math:`N(\text{site.value}, \text{scale}^2 I)` observed at the same data (see
    :class:`GaussianObservation`): an implicit program becomes a latent-variable model with a likelihood.

    References:
        Wu, Burda, Salakhutdinov & Grosse (2017), "On the quantitative analysis of decoder-based
        generative models".

    Args:
        model: a Pyro program with observed ``Implicit`` sites.
        scale: the noise standard deviation :math:`\sigma` (> 0).

    Example:
        >>> import pyro, torch, pyro.distributions as dist
        >>> def gan(x):
        ...     with pyro.plate("data", len(x)):
        ...         z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        ...         pyro.sample("x", Implicit(z.sum(-1, keepdim=True), event_dim=1), obs=x)
        >>> trace = pyro.poutine.trace(gaussian_observation(gan, 0.1)).get_trace(torch.zeros(3, 1))
        >>> type(trace.nodes["x"]["fn"].base_dist).__name__, trace.nodes["x"]["fn"].base_dist.scale[0, 0]
        ('Normal', tensor(0.1000))
    """
    scale = _checked_scale(scale)

    @functools.wraps(model)
    def observed(*args, **kwargs):
        with GaussianObservation(scale):
            return model(*args, **kwargs)

    return observed


def _resolve(model, device) -> tuple[Callable, torch.device]:
    if isinstance(model, FitResult):
        return model.model, model.device
    return model, resolve_device(device)


def implicit_log_likelihood(
    model: Callable | FitResult,
    data,
    *,
    scale: float,
    num_chains: int = 16,
    ais: AISSettings | None = None,
    max_rows: int = 1024,
    device: str | torch.device = "auto",
) -> torch.Tensor:
    r"""AIS estimate of :math:`\log p_\sigma(x_n)` per data point (nats, shape ``(N,)``) for an implicit
    program observed through Gaussian noise,

    .. math::
        p_\sigma(x) = \int p(z)\, N(x; G(z), \sigma^2 I)\, dz,

    with ``num_chains`` annealed importance sampling chains per point from the prior over the latents
    (:func:`~pplgen.evaluate.ais.annealed_log_weights`; settings in ``ais``). Like every AIS estimate it is
    unbiased in :math:`p_\sigma(x)` and so, in expectation, a lower bound on :math:`\log p_\sigma(x)`.
    The value depends strongly on :math:`\sigma`; pick it on validation data with :func:`choose_scale`.

    References:
        Wu, Burda, Salakhutdinov & Grosse (2017), "On the quantitative analysis of decoder-based
        generative models".
        Neal (2001), "Annealed importance sampling".

    Args:
        model: an implicit model program (observed :class:`~pplgen.Implicit` sites), or a
            :class:`FitResult` (its model and device are used).
        data: a tensor or tuple of tensors, as passed to ``fit``.
        scale: the observation noise standard deviation :math:`\sigma` (> 0).
        num_chains: AIS chains per data point.
        ais: the AIS settings (temperatures, leapfrog steps); ``initial`` must be ``"prior"``, since an
            implicit program has no guide for its latents' posterior under the noise model.
        max_rows: data rows (points times chains) annealed together.
        device: where to evaluate, when ``model`` is not a FitResult.

    Raises:
        ModelError: the program has no observed Implicit site (use :func:`pplgen.log_likelihood`), or
            no plate over the data points.
        DataError: ``scale`` is not a finite positive number, or the data are malformed.

    Example:
        For the generator :math:`x = z`, :math:`z \sim N(0, 1)`, observed with :math:`\sigma = 1` the
        exact value is :math:`\log N(x; 0, 2)` (variance 2), which AIS recovers:

        >>> import pyro, pyro.distributions as dist
        >>> def gan(x):
        ...     with pyro.plate("data", len(x)):
        ...         z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
        ...         pyro.sample("x", Implicit(z, event_dim=1), obs=x)
        >>> x = torch.tensor([[-1.0], [0.0], [2.0]])
        >>> _ = torch.manual_seed(0)
        >>> settings = AISSettings(steps=100, leapfrog_steps=2)
        >>> found = implicit_log_likelihood(gan, x, scale=1.0, num_chains=64, ais=settings, device="cpu")
        >>> exact = dist.Normal(0.0, 2.0**0.5).log_prob(x[:, 0])
        >>> found.shape, bool((found - exact).abs().max() < 0.2)
        (torch.Size([3]), True)
    """
    scale = _checked_scale(scale)
    if num_chains < 1:
        raise ValueError(f"num_chains must be at least 1, got {num_chains}")
    settings = ais or AISSettings()
    if settings.initial != "prior":
        raise ValueError(f"implicit AIS starts from the prior; got AISSettings(initial={settings.initial!r})")
    program, device = _resolve(model, device)
    tensors = tuple(t.to(device) for t in as_tensors(data))
    observed = gaussian_observation(program, scale)
    data_plates = _data_plates(program, observed, tensors, device)
    points = max(1, max_rows // num_chains)
    results = []
    with on_device(device), pyro.validation_enabled(False), evaluation_mode(program):
        for batch in chunks(tensors, points):
            with program_errors(program):
                log_w = annealed_log_weights(observed, None, batch, data_plates, num_chains, settings)
            results.append(torch.logsumexp(log_w, dim=1) - math.log(num_chains))
    return torch.cat(results).cpu()


def _data_plates(program, observed, tensors, device) -> tuple[str, ...]:
    """The data plates of the noisy program, once the original is known to be implicit."""
    template = tuple(t[:2] for t in tensors)
    with torch.no_grad(), on_device(device):
        graph = inspect(program, *template)
        if not any(kind == "implicit" for _, kind in graph.nodes(data="kind")):
            raise ModelError(
                f"the program {program_name(program)!r} has no observed Implicit site "
                f"(its family is {graph.graph['family']!r}): its likelihood exists already, so "
                "evaluate it with pplgen.log_likelihood"
            )
        noisy = inspect(observed, *template)
    if noisy.graph["family"] != "latent":
        raise ModelError(
            f"with Gaussian observations the program {program_name(program)!r} should be a latent "
            f"model, but it is {noisy.graph['family']!r}: {noisy.graph['reason']}"
        )
    if not noisy.graph["data_plates"]:
        raise ModelError(
            "the program has no plate over the data points, so log p(x) cannot be split per point"
        )
    return tuple(noisy.graph["data_plates"])


@dataclass
class ScaleChoice:
    r"""The observation noise scale with the highest validation log-likelihood, and every scale's score.

    Attributes:
        scale: the chosen :math:`\sigma`.
        mean_log_likelihood: each candidate :math:`\sigma` to the mean AIS :math:`\log p_\sigma(x)`
            over the validation points, in nats.

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> def gan(x):
        ...     with pyro.plate("data", len(x)):
        ...         z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
        ...         pyro.sample("x", Implicit(z, event_dim=1), obs=x)
        >>> valid = torch.linspace(-2.0, 2.0, 9)[:, None]
        >>> _ = torch.manual_seed(0)
        >>> choice = choose_scale(gan, valid, [0.01, 1.0], num_chains=4, ais=AISSettings(10, 2), device="cpu")
        >>> list(choice.mean_log_likelihood), choice.scale
        ([0.01, 1.0], 1.0)
    """

    scale: float
    mean_log_likelihood: dict[float, float]


def choose_scale(model: Callable | FitResult, valid_data, scales: Sequence[float], **kwargs) -> ScaleChoice:
    r"""Pick the observation noise :math:`\sigma` among ``scales`` by mean validation log-likelihood, as
    Wu et al. (2017) do for the Gaussian observation model of a GAN generator.

    References:
        Wu, Burda, Salakhutdinov & Grosse (2017), "On the quantitative analysis of decoder-based
        generative models".

    Args:
        model: an implicit model program or a :class:`FitResult`.
        valid_data: validation data, as passed to ``fit``.
        scales: candidate noise standard deviations (each > 0).
        **kwargs: passed to :func:`implicit_log_likelihood` (``num_chains``, ``ais``, ``max_rows``,
            ``device``).

    Example:
        Data spread as :math:`N(0, 2)` (variance 2) from the generator :math:`x = z`, :math:`z \sim N(0, 1)`:
        the noise that makes up the missing variance, :math:`\sigma = 1`, wins.

        >>> import pyro, pyro.distributions as dist
        >>> def gan(x):
        ...     with pyro.plate("data", len(x)):
        ...         z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
        ...         pyro.sample("x", Implicit(z, event_dim=1), obs=x)
        >>> valid = dist.Normal(0.0, 2.0**0.5).icdf(torch.linspace(0.05, 0.95, 19))[:, None]
        >>> _ = torch.manual_seed(0)
        >>> settings = AISSettings(steps=20, leapfrog_steps=2)
        >>> choose_scale(gan, valid, [0.1, 1.0, 3.0], num_chains=4, ais=settings, device="cpu").scale
        1.0
    """
    candidates = [_checked_scale(s) for s in scales]
    if not candidates:
        raise DataError("choose_scale needs at least one candidate scale, got none")
    scores = {
        s: float(implicit_log_likelihood(model, valid_data, scale=s, **kwargs).mean()) for s in candidates
    }
    return ScaleChoice(max(scores, key=scores.get), scores)
