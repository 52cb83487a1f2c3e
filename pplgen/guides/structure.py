"""What an automatic guide needs to know about each latent site, read from the model's graph and a trace.

For every latent site: its plates (with their dims and sizes), whether it is local (inside a data plate)
and where the data axis sits in its value, its support and the bijection to unconstrained space, the
shape of one data point's share of its value, the observed sites it explains (its observed descendants
in the graph: the posterior of z given the data depends on them) and its latent parents. Guides sample
latents in the model's order, so a latent's parents are sampled before it and can be conditioned on.

References:
    Webb, Goliński, Zinkov, Siddharth, Rainforth, Teh & Wood (2018), "Faithful inversion of generative
    models for effective amortized inference" (which variables an inverse factor should condition on).
    Stuhlmüller, Taylor & Goodman (2013), "Learning stochastic inverses".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.infer.autoguide.initialization import InitMessenger, init_to_median, init_to_sample
from pyro.poutine.util import site_is_subsample
from torch.distributions import biject_to

from pplgen.errors import GuideError, ModelError, program_errors, program_name
from pplgen.graph import isolated

__all__ = ["LatentSpec", "PlateSpec", "data_axis", "observed_values", "read_latents"]


@dataclass(frozen=True)
class PlateSpec:
    """One plate around a site: its name, full size and tensor dim; ``data`` for a data plate.

    Example:
        >>> from pplgen.graph import inspect
        >>> def model(x):
        ...     with pyro.plate("data", len(x), dim=-2), pyro.plate("features", 3, dim=-1):
        ...         z = pyro.sample("z", dist.Normal(0.0, 1.0))
        ...         pyro.sample("x", dist.Normal(z, 1.0), obs=x)
        >>> x = torch.zeros(4, 3)
        >>> (spec,) = read_latents(model, inspect(model, x), (x,))
        >>> for plate in spec.plates:  # outermost first
        ...     print(plate)
        PlateSpec(name='data', size=4, dim=-2, data=True)
        PlateSpec(name='features', size=3, dim=-1, data=False)
    """

    name: str
    size: int
    dim: int
    data: bool


@dataclass
class LatentSpec:
    """A latent site as a guide must reproduce it.

    Attributes:
        name: the site name.
        plates: the plates around the site, outermost first.
        local: the site is inside a data plate (one value per data point: amortised).
        axis: for a local site, the index of the data axis in the site's value.
        support: the model distribution's support.
        event_shape: the model distribution's event shape.
        point_shape: the shape of one data point's share of the value (the value without the data axis);
            for a global site, the whole value shape.
        discrete: the support is discrete.
        enumerated: the model enumerates the site (Pyro's TraceEnum), so the guide leaves it out.
        explains: the local observed sites the latent explains (its observed descendants).
        parents: the latent sites it depends on in the model, directly or through deterministic sites
            (``pyro.deterministic``, and the value Pyro's ``obs_mask`` merges); sampled earlier by the guide.
        init: an unconstrained initial value (the prior median) for a global site.

    Example:
        A global Dirichlet latent: three weights on the simplex, two numbers in unconstrained space.

        >>> from pplgen.graph import inspect
        >>> def model(x):
        ...     weights = pyro.sample("weights", dist.Dirichlet(torch.ones(3)))
        ...     with pyro.plate("data", len(x)):
        ...         pyro.sample("x", dist.Categorical(weights), obs=x)
        >>> x = torch.tensor([0, 2, 2, 1])
        >>> (spec,) = read_latents(model, inspect(model, x), (x,))
        >>> spec.local, spec.explains, spec.point_shape, spec.unconstrained_shape
        (False, ('x',), torch.Size([3]), torch.Size([2]))
        >>> round(float(spec.transform(spec.init).sum()), 3)  # the initial value maps onto the simplex
        1.0
    """

    name: str
    plates: tuple[PlateSpec, ...]
    local: bool
    axis: int | None
    support: constraints.Constraint
    event_shape: torch.Size
    point_shape: torch.Size
    discrete: bool
    enumerated: bool
    explains: tuple[str, ...]
    parents: tuple[str, ...]
    init: torch.Tensor | None = None

    @property
    def transform(self):
        """The bijection from unconstrained real space onto the support."""
        return biject_to(self.support)

    @property
    def unconstrained_shape(self) -> torch.Size:
        """The shape of one data point's share in unconstrained space (a simplex loses one entry)."""
        return torch.Size(self.transform.inv.forward_shape(self.point_shape))

    @property
    def plate_shape(self) -> torch.Size:
        """The per-point shape without the event dims, i.e. the extra plates a local value spans."""
        rank = len(self.event_shape)
        return self.point_shape[: len(self.point_shape) - rank] if rank else self.point_shape


def _plates(site: dict, data_plates: tuple[str, ...]) -> tuple[PlateSpec, ...]:
    frames = [f for f in site["cond_indep_stack"] if f.vectorized]
    frames.sort(key=lambda f: f.dim)  # outermost (most negative dim) first
    return tuple(
        PlateSpec(f.name, int(f.full_size or f.size), int(f.dim), f.name in data_plates) for f in frames
    )


def data_axis(site: dict, data_plates) -> int | None:
    """Where the data axis sits in a sample site's value (its batch dims then event dims), or None for a
    site outside every data plate.

    Raises:
        ModelError: the site is inside a data plate but its value has no dimension for it.
    """
    frames = [f for f in site["cond_indep_stack"] if f.vectorized and f.name in data_plates]
    if not frames:
        return None
    axis = site["value"].dim() - len(site["fn"].event_shape) + frames[0].dim
    if axis < 0:
        raise ModelError(
            f"latent site {site['name']!r} is inside the data plate {frames[0].name!r} but its value of "
            f"shape {tuple(site['value'].shape)} has no dimension for it; expand its distribution to the "
            "plate (Pyro does this when the plate is vectorised)"
        )
    return axis


def read_latents(model: Callable, graph: nx.DiGraph, batch: tuple) -> list[LatentSpec]:
    """The latent sites of ``model`` (in program order) as :class:`LatentSpec`\\ s, traced on ``batch``.

    Args:
        model: the model program.
        graph: its graph, from :func:`pplgen.graph.inspect` on the same arguments.
        batch: the program's arguments, a mini-batch of data points first.

    Returns:
        One :class:`LatentSpec` per latent sample site.

    Raises:
        GuideError: a latent sits inside a subsampled plate.
        ModelError: the program raised, or a latent in a data plate has no dimension for it.

    References:
        Webb, Goliński, Zinkov, Siddharth, Rainforth, Teh & Wood (2018), "Faithful inversion of generative
        models for effective amortized inference" (which sites a latent's inverse conditions on).

    Example:
        >>> from pplgen.graph import inspect
        >>> def model(x):
        ...     scale = pyro.sample("scale", dist.LogNormal(0.0, 1.0))
        ...     with pyro.plate("data", len(x)):
        ...         z = pyro.sample("z", dist.Normal(torch.zeros(2), scale).to_event(1))
        ...         pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)
        >>> x = torch.zeros(5, 2)
        >>> for spec in read_latents(model, inspect(model, x), (x,)):
        ...     print(spec.name, spec.local, tuple(spec.point_shape), spec.parents, spec.explains)
        scale False () () ('x',)
        z True (2,) ('scale',) ('x',)
    """
    data_plates = tuple(graph.graph.get("data_plates", ()))
    with isolated(), pyro.validation_enabled(False), program_errors(model):
        trace = poutine.trace(InitMessenger(_initial_value)(model)).get_trace(*batch)
    specs = []
    for name, site in trace.nodes.items():
        if (
            site["type"] != "sample"
            or site_is_subsample(site)
            or graph.nodes.get(name, {}).get("kind") != "latent"
        ):
            continue
        plates = _plates(site, data_plates)
        if _subsampled(site):
            raise GuideError(
                f"latent site {name!r} is inside a subsampled plate; the automatic guide needs plates over "
                "the whole mini-batch (pplgen.fit makes the mini-batches), so drop subsample_size"
            )
        axis = data_axis(site, data_plates)
        value = site["value"]
        point_shape = value.shape if axis is None else value.shape[:axis] + value.shape[axis + 1 :]
        fn = site["fn"]
        descendants = nx.descendants(graph, name)
        explains = tuple(
            n
            for n in graph
            if n in descendants and graph.nodes[n]["kind"] == "observed" and graph.nodes[n]["local"]
        )
        parents = _latent_parents(graph, name)
        spec = LatentSpec(
            name=name,
            plates=plates,
            local=axis is not None,
            axis=axis,
            support=fn.support,
            event_shape=fn.event_shape,
            point_shape=point_shape,
            discrete=bool(fn.support.is_discrete),
            enumerated=site["infer"].get("enumerate") in ("parallel", "sequential"),
            explains=explains,
            parents=parents,
        )
        if not spec.discrete and not spec.local:
            spec.init = spec.transform.inv(value.detach()).clone()
        specs.append(spec)
    return specs


def _latent_parents(graph: nx.DiGraph, name: str) -> tuple[str, ...]:
    """The latents that ``name``'s distribution reads, looking through deterministic sites, in program
    order."""
    found, stack, seen = set(), list(graph.predecessors(name)), set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        kind = graph.nodes[node]["kind"]
        if kind == "latent":
            found.add(node)
        elif kind == "deterministic":
            stack.extend(graph.predecessors(node))
    return tuple(n for n in graph if n in found)


def _initial_value(site: dict) -> torch.Tensor:
    """Where a global mean field starts: the prior median (Pyro's ``init_to_median``), each site's prior
    read at its parents' medians.

    One prior draw from a broad prior (``HalfCauchy``, ``Normal(0, 10)``) can start far out, where
    mean-field SVI then creeps along poorly conditioned directions for thousands of steps. Discrete
    sites, which get no mean field, keep a plain prior draw (their supports have no bijection to the
    reals for the median's fallback).
    """
    if site["fn"].support.is_discrete:
        return init_to_sample(site)
    return init_to_median(site)


def _subsampled(site: dict):
    return [f for f in site["cond_indep_stack"] if f.vectorized and f.full_size not in (None, f.size)]


class _ObservedValues(poutine.messenger.Messenger):
    """Record the value at every observed site and the mask of every latent site."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, tuple[torch.Tensor, dict]] = {}
        self.masks: dict[str, torch.Tensor] = {}

    def _pyro_post_sample(self, msg):
        if site_is_subsample(msg):
            return
        if msg["is_observed"]:
            self.values[msg["name"]] = (msg["value"], msg)
            return
        mask = _mask(msg)
        if mask is not None:
            self.masks[msg["name"]] = mask


def _mask(msg: dict) -> torch.Tensor | None:
    """The site's mask (from ``poutine.mask`` or a masked distribution), None where nothing is masked."""
    mask = msg["mask"] if isinstance(msg["mask"], torch.Tensor) else None
    fn = msg["fn"]
    while hasattr(fn, "base_dist"):
        if isinstance(fn, dist.MaskedDistribution) and isinstance(fn._mask, torch.Tensor):
            mask = fn._mask if mask is None else mask & fn._mask
        fn = fn.base_dist
    return mask


def observed_values(
    model: Callable, batch: tuple, names: set[str], data_plates: tuple[str, ...], masks: dict | None = None
) -> dict:
    """The observed values at ``names`` for ``batch``, each as ``(N, ...)`` with the data axis first.

    The model is run once with its latents drawn from the prior and nothing recorded outside (blocked,
    no gradients): the observed values are the data the program reads from its arguments. ``masks``,
    when given, receives the masks of the model's masked latent sites (partly observed values).
    """
    recorder = _ObservedValues()
    with torch.no_grad(), poutine.block(), recorder, program_errors(model):
        model(*batch)
    found = {}
    for name in names:
        if name not in recorder.values:
            raise ModelError(
                f"the model {program_name(model)!r} did not observe site {name!r} on this batch, "
                "so the guide cannot condition on it"
            )
        value, msg = recorder.values[name]
        axis = data_axis(msg, data_plates)
        found[name] = value.movedim(axis, 0) if axis else value
    if masks is not None:
        masks.update(recorder.masks)
    return found
