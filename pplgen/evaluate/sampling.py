"""Drawing from a model program."""

from __future__ import annotations

from collections.abc import Callable

import pyro
import torch
from pyro import poutine

from pplgen.errors import DataError, program_errors
from pplgen.graph import inspect
from pplgen.infer.checks import as_tensors
from pplgen.infer.fit import resolve_device
from pplgen.infer.params import evaluation_mode, on_device
from pplgen.infer.result import FitResult, template_batch

__all__ = ["sample"]


def _template(model, num_samples: int, data, device) -> tuple[torch.Tensor, ...]:
    if data is None:
        if isinstance(model, FitResult):
            return template_batch(model.data_spec, num_samples, device)
        raise DataError(
            "sample needs data (a batch of the shapes the program takes) or a FitResult, "
            "so that the program knows the shape of what it draws"
        )
    tensors = as_tensors(data)
    index = torch.arange(num_samples) % len(tensors[0])
    return tuple(t[index].to(device) for t in tensors)


def sample(
    model: Callable | FitResult,
    num_samples: int,
    data=None,
    *,
    mean: bool = False,
    device: str | torch.device = "auto",
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Draw ``num_samples`` values of the observed sites from the model program.

    The program runs with its observations removed (``poutine.uncondition``), so every observed site
    draws from its distribution given the sampled latents: an ``Implicit`` site gives the generator's
    output, an autoregressive distribution generates one dimension at a time.

    Args:
        model: a model program or a :class:`FitResult`.
        num_samples: how many data points to draw.
        data: a batch whose shapes the program takes (the values at observed sites are ignored);
            needed unless ``model`` is a FitResult.
        mean: return each observed site's distribution mean given the latents (e.g. the Bernoulli
            probabilities of a VAE's decoder) instead of a draw.
        device: where to run, when ``model`` is not a FitResult.

    Returns:
        The values at the observed site, or a dict ``{site: values}`` when there are several. The
        observed steps of one Markov chain (sites ``x_1 .. x_T`` that :func:`pplgen.inspect` groups into
        the chain ``x_t``, as in a deep Markov model) are joined into one tensor stacked along a new
        step dimension after the sample dimension, ``(num_samples, T, *step_shape)``, under the
        chain's name; when the observed sites are exactly one chain, that tensor is returned alone.

    Raises:
        DataError: neither ``data`` nor a FitResult says what shapes the program takes.

    Example:
        >>> import pyro.distributions as dist
        >>> def model(x):  # x = 3 z + small noise, so draws spread with standard deviation about 3
        ...     with pyro.plate("data", len(x)):
        ...         z = pyro.sample("z", dist.Normal(0.0, 1.0))
        ...         pyro.sample("x", dist.Normal(3.0 * z, 0.1), obs=x)
        >>> _ = torch.manual_seed(0)
        >>> draws = sample(model, 1000, torch.zeros(2), device="cpu")
        >>> draws.shape, bool(2.8 < draws.std() < 3.2)
        (torch.Size([1000]), True)
        >>> sample(model, 5)
        Traceback (most recent call last):
        ...
        pplgen.errors.DataError: sample needs data (a batch of the shapes the program takes) or ...
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    device = model.device if isinstance(model, FitResult) else resolve_device(device)
    program = model.model if isinstance(model, FitResult) else model
    batch = _template(model, num_samples, data, device)
    with torch.no_grad(), on_device(device), evaluation_mode(program):
        graph = inspect(program, *batch)
        observed = [n for n, k in graph.nodes(data="kind") if k in ("observed", "implicit")]
        with pyro.validation_enabled(False), program_errors(program):
            trace = poutine.trace(poutine.uncondition(program)).get_trace(*batch)
    values = {n: trace.nodes[n]["fn"].mean if mean else trace.nodes[n]["value"] for n in observed}
    values = _join_chains(values, graph)
    return next(iter(values.values())) if len(values) == 1 else values


def _join_chains(values: dict[str, torch.Tensor], graph) -> dict[str, torch.Tensor]:
    """Stack the values of each chain's steps (``graph.graph["chains"]``) along dimension 1.

    A chain whose steps are not all in ``values``, or whose steps differ in shape, is left as it is:
    stacking it would drop steps or fail. Other sites keep their place and name.
    """
    chains = graph.graph.get("chains", {})
    joined: dict[str, torch.Tensor] = {}
    for name, value in values.items():
        chain = graph.nodes[name].get("chain")
        steps = chains.get(chain, ())
        whole = bool(steps) and all(step in values for step in steps)
        if not whole or len({values[step].shape for step in steps}) > 1:
            joined[name] = value
        elif chain not in joined:
            joined[chain] = torch.stack([values[step] for step in steps], dim=1)  # (n, T, *step_shape)
    return joined
