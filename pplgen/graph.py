"""Read a Pyro program as a graph of its sites and decide which family of models it belongs to.

:func:`inspect` runs the program once under provenance tracking, the same pipeline as Pyro's
``pyro.infer.inspect``: every site's value is tagged with the site's name, so the tensors a distribution
is built from say which earlier sites it reads. The result is plain data, a :class:`networkx.DiGraph`,
from which :func:`classify` decides the family and :mod:`pplgen.render` draws a plate diagram.

References:
    Wingate, Goodman, Stuhlmüller & Siskind (2011), "Nonstandard interpretations of probabilistic
    programs for efficient inference" (provenance tracking).
    Webb, Goliński, Zinkov, Siddharth, Rainforth, Teh & Wood (2018), "Faithful inversion of generative
    models for effective amortized inference" (dependencies read from a program).
    Koller & Friedman (2009), "Probabilistic graphical models", ch. 6 (plate notation).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import networkx as nx
import pyro
import pyro.distributions as dist
import pyro.util
import torch
from pyro import poutine
from pyro.ops.provenance import detach_provenance, get_provenance, track_provenance
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from pplgen.distributions.implicit import Implicit
from pplgen.errors import ModelError, program_errors, program_name

__all__ = ["FAMILIES", "KINDS", "NODE_ATTRIBUTES", "classify", "explain_family", "inspect", "isolated"]

#: The kinds of site a graph's nodes are (the ``kind`` attribute).
KINDS = ("latent", "observed", "implicit", "deterministic", "param")
#: The families :func:`classify` tells apart.
FAMILIES = ("exact", "latent", "implicit")
#: The attributes every node of an inspected graph carries.
NODE_ATTRIBUTES = (
    "kind", "dist", "batch_shape", "event_shape", "plates", "local", "discrete", "reparameterized",
    "autoregressive", "enumerate", "masked", "scale", "chain",
)  # fmt: skip
_WRAPPERS = (dist.Independent, dist.ExpandedDistribution, dist.MaskedDistribution)
# a site name ending in a step index: "z_3", "x[3]", "h3" (the stem is what comes before it)
_STEP = re.compile(r"(?P<stem>.*?)(?:_?(?P<index>\d+)|\[(?P<bracketed>\d+)\])")
_MIN_CHAIN = 3


def inspect(model: Callable, *args: Any, **kwargs: Any) -> nx.DiGraph:
    """Trace a program once and return the graph of its sites.

    Call it with the arguments you would pass to SVI. Inspecting has no side effects: the random number
    generators are forked, nothing is differentiated, and Pyro's parameter store gains no entries.

    Nodes are site names with the attributes listed in :data:`NODE_ATTRIBUTES`: ``kind`` (one of
    :data:`~pplgen.graph.KINDS`), ``dist`` (class name through ``Independent``/``Expanded``/``Masked``
    wrappers, ``None`` for params), ``batch_shape`` and ``event_shape`` (tuples), ``plates`` (outermost
    first), ``local`` (inside a data plate), ``discrete``, ``reparameterized``, ``autoregressive``,
    ``enumerate``, ``masked``, ``scale`` (a float, or ``"tensor"``) and ``chain`` (the name of the
    Markov chain the site is a step of, else ``None``). An edge ``u -> v`` means that v's distribution
    (a deterministic site's value, an implicit site's simulated value) reads u's value.

    The graph's attributes are ``family`` and ``reason`` (see :func:`explain_family`), ``plates`` (name
    to full size), ``plate_dims`` (name to the tensor dim of a vectorised plate), ``data_plates``
    (plates that enclose an observed site and whose size is the leading dimension of the first tensor
    argument), ``chains`` (chain name to its sites, in step order) and
    ``program`` (the program's name).

    References:
        Pyro's ``pyro.infer.inspect.get_model_relations`` (provenance tracking); Webb et al. (2018),
        "Faithful inversion of generative models for effective amortized inference".

    Args:
        model: a Pyro program.
        *args: its positional arguments; the first tensor among them holds the data points.
        **kwargs: its keyword arguments.

    Returns:
        The graph of the program's sites.

    Raises:
        ModelError: the program raised, has no sample site, or observes nothing.

    Example:
        >>> import pyro, torch, pyro.distributions as dist
        >>> def model(x):
        ...     z = pyro.sample("z", dist.Normal(0.0, 1.0))
        ...     with pyro.plate("data", len(x)):
        ...         pyro.sample("x", dist.Normal(z, 1.0), obs=x)
        >>> graph = inspect(model, torch.zeros(3))
        >>> graph.graph["family"], list(graph.edges), graph.nodes["x"]["plates"]
        ('latent', [('z', 'x')], ('data',))
    """
    trace, parents = _trace(model, args, kwargs)
    sites = [s for s in trace.nodes.values() if s["type"] in ("sample", "param") and not site_is_subsample(s)]
    if not any(site["type"] == "sample" for site in sites):
        raise ModelError(
            f"the program {program_name(model)!r} has no sample sites: there is nothing to inspect"
        )
    kinds = {site["name"]: _site_kind(site) for site in sites}
    data_plates = _data_plates(sites, kinds, args)
    graph = nx.DiGraph(program=program_name(model))
    for site in sites:
        graph.add_node(site["name"], **_site_attributes(site, kinds[site["name"]], data_plates))
    order = {name: i for i, name in enumerate(kinds)}
    for name in kinds:
        for parent in sorted((parents.get(name, frozenset()) & order.keys()) - {name}, key=order.get):
            graph.add_edge(parent, name)
    graph.graph.update(
        plates=_plate_sizes(sites),
        plate_dims={f.name: int(f.dim) for f in _frames(sites) if f.vectorized},
        data_plates=data_plates,
        chains=_group_chains(graph),
    )
    family, reason = explain_family(graph)
    graph.graph.update(family=family, reason=reason)
    return graph


def classify(graph: nx.DiGraph) -> str:
    """The family of a program's graph: ``"implicit"``, ``"latent"`` or ``"exact"``.

    Reads node ``kind`` attributes only, so it works on a graph built by hand. See :func:`explain_family`.

    Example:
        >>> graph = nx.DiGraph()
        >>> graph.add_node("z", kind="latent")
        >>> graph.add_node("x", kind="observed")
        >>> graph.add_edge("z", "x")
        >>> classify(graph)
        'latent'
        >>> graph.nodes["z"]["kind"] = "implicit"  # z now simulated: no likelihood anywhere
        >>> classify(graph)
        'implicit'
    """
    return explain_family(graph)[0]


def explain_family(graph: nx.DiGraph) -> tuple[str, str]:
    """The family of a program's graph and one sentence saying why.

    The rule: any implicit site makes the model implicit (no likelihood: train adversarially); else any
    latent site makes it latent (train with a guide, even where its likelihood is autoregressive); else
    an observed site makes it exact (maximum likelihood). A graph with none of these has nothing to fit.

    Raises:
        ModelError: no site is implicit, latent or observed.

    Example:
        >>> import torch
        >>> def coin(x):
        ...     with pyro.plate("data", len(x)):
        ...         pyro.sample("x", dist.Bernoulli(0.5), obs=x)
        >>> explain_family(inspect(coin, torch.ones(3)))
        ('exact', "exact: no site is latent and every observed site ('x') has a normalised likelihood")
        >>> explain_family(nx.DiGraph(program="empty"))
        Traceback (most recent call last):
            ...
        pplgen.errors.ModelError: the program 'empty' observes no site: there is nothing to fit
    """
    by_kind = {kind: [n for n, k in graph.nodes(data="kind") if k == kind] for kind in KINDS}
    latent, observed, implicit = by_kind["latent"], by_kind["observed"], by_kind["implicit"]
    autoregressive = [n for n in observed if graph.nodes[n].get("autoregressive")]
    detail = f"; {_sites(graph, autoregressive)} autoregressive" if autoregressive else ""
    if implicit:
        reason = (
            f"implicit: {_sites(graph, implicit)} simulated by the program (pplgen.Implicit), "
            "so no likelihood exists and a discriminator must stand in for it"
        )
        return "implicit", reason + (f"; {_sites(graph, latent)} latent" if latent else "")
    if latent and not observed:
        return "latent", (
            f"latent: {_sites(graph, latent)} latent and no site is observed; "
            "pass the data the program observes to fit it"
        )
    if latent:
        return "latent", (
            f"latent: {_sites(graph, latent)} latent and every observed site "
            f"({_names(graph, observed)}) has a likelihood{detail}"
        )
    if observed:
        return "exact", (
            f"exact: no site is latent and every observed site ({_names(graph, observed)}) "
            f"has a normalised likelihood{detail}"
        )
    program = graph.graph.get("program")
    named = f"the program {program!r}" if program else "the program"
    raise ModelError(f"{named} observes no site: there is nothing to fit")


def _names(graph: nx.DiGraph, names: list[str], limit: int = 4) -> str:
    """Quote site names for a sentence, one entry per chain, at most ``limit`` entries."""
    items: list[str] = []
    for name in names:
        chain = graph.nodes[name].get("chain")
        steps = len(graph.graph.get("chains", {}).get(chain, ()))
        item = f"'{chain}' ({steps} steps)" if chain else f"'{name}'"
        if item not in items:
            items.append(item)
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _sites(graph: nx.DiGraph, names: list[str]) -> str:
    """``site 'z' is`` or ``sites 'z', 'w' are``."""
    return f"site {_names(graph, names)} is" if len(names) == 1 else f"sites {_names(graph, names)} are"


# --- tracing -----------------------------------------------------------------------------------------


def _trace(model: Callable, args: tuple, kwargs: dict) -> tuple[poutine.Trace, dict[str, frozenset]]:
    """Run the program once under provenance tracking, with no side effects."""
    tracker = _TrackParents()
    with isolated(), program_errors(model):
        with tracker, _ParamReads(tracker.param_tensors):
            trace = poutine.trace(model).get_trace(*args, **kwargs)
    return trace, tracker.parents


@contextlib.contextmanager
def isolated() -> Iterator[None]:
    """Run a program with no side effects: every random number generator forked, gradients off, new
    parameter-store entries dropped afterwards.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> expected = torch.rand(2)
        >>> _ = torch.manual_seed(0)
        >>> with isolated():
        ...     w = pyro.param("w", torch.ones(2, requires_grad=True))
        ...     draw = torch.rand(2)  # from a forked generator
        ...     print(torch.is_grad_enabled(), "w" in pyro.get_param_store())
        False True
        >>> "w" in pyro.get_param_store(), torch.equal(torch.rand(2), expected)
        (False, True)
    """
    store = pyro.get_param_store()
    before = set(store.keys())
    rng = pyro.util.get_rng_state()
    try:
        with torch.random.fork_rng(), torch.no_grad():
            yield
    finally:
        for name in set(store.keys()) - before:
            del store[name]
        pyro.util.set_rng_state(rng)


def _tag(value: Any, name: str) -> Any:
    """The value with its provenance replaced by the site's own name (direct dependencies only)."""
    return track_provenance(detach_provenance(value), frozenset({name}))


class _TrackParents(Messenger):
    """Tag every site's value with its name and record, per site, the sites its distribution reads."""

    def __init__(self) -> None:
        super().__init__()
        self.parents: dict[str, frozenset] = {}
        # id -> (tensor, name); holding the tensor keeps its id from being reused during the trace
        self.param_tensors: dict[int, tuple[torch.Tensor, str]] = {}

    def _pyro_post_sample(self, msg: dict) -> None:
        if site_is_subsample(msg):
            return
        self.parents[msg["name"]] = _site_parents(msg)
        msg["value"] = _tag(msg["value"], msg["name"])

    def _pyro_post_param(self, msg: dict) -> None:
        value = detach_provenance(msg["value"])
        self.param_tensors[id(value)] = (value, msg["name"])
        msg["value"] = _tag(value, msg["name"])


class _ParamReads(TorchFunctionMode):
    """Add a param site's name to the provenance of every torch operation that reads its tensor.

    Networks registered with ``pyro.module``, and ``nn.Parameter`` attributes of a ``PyroModule``, read
    their own parameter tensors rather than the value returned at the param site, so tagging that value
    alone would lose the ``param -> site`` edges.
    """

    def __init__(self, tensors: dict[int, tuple[torch.Tensor, str]]) -> None:
        super().__init__()
        self.tensors = tensors

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        names = frozenset(
            self.tensors[id(leaf)][1]
            for leaf in tree_leaves((args, kwargs))
            if isinstance(leaf, torch.Tensor) and self.tensors.get(id(leaf), (None,))[0] is leaf
        )
        return _with_provenance(result, names) if names else result


def _with_provenance(result: Any, names: frozenset) -> Any:
    """Add provenance to a tensor or a plain tuple/list of tensors; leave anything else alone."""
    if isinstance(result, torch.Tensor):
        return track_provenance(result, names)
    if type(result) in (tuple, list):
        return type(result)(_with_provenance(part, names) for part in result)
    return result


def _site_parents(msg: dict) -> frozenset:
    """The names in the provenance of what a site's distribution (or value) is computed from."""
    fn = msg["fn"]
    if msg["infer"].get("_deterministic"):
        return get_provenance(msg["value"])
    base = _innermost(fn)
    if isinstance(base, Implicit):
        return get_provenance(base.value)
    try:
        return get_provenance(fn.log_prob(detach_provenance(msg["value"])))
    except Exception:  # a value outside the support under validation, or no log_prob: read the attributes
        return _attribute_provenance(fn)


def _attribute_provenance(fn: Any) -> frozenset:
    """The provenance of the tensors a distribution (and the distributions it wraps) holds."""
    provenance = frozenset()
    for value in vars(fn).values():
        if isinstance(value, torch.distributions.Distribution):
            provenance |= _attribute_provenance(value)
        elif isinstance(value, (torch.Tensor, list, tuple, dict)):
            provenance |= get_provenance(value)
    return provenance


# --- node attributes ---------------------------------------------------------------------------------


def _wrapped(fn: Any) -> Iterator[Any]:
    """A distribution and every distribution it wraps through Independent/Expanded/Masked, outermost first."""
    yield fn
    while isinstance(fn, _WRAPPERS):
        fn = fn.base_dist
        yield fn


def _innermost(fn: Any) -> Any:
    return list(_wrapped(fn))[-1]


def _site_kind(site: dict) -> str:
    if site["type"] == "param":
        return "param"
    base = _innermost(site["fn"])
    if site["infer"].get("_deterministic"):
        return "deterministic"
    if site["is_observed"]:
        return "implicit" if isinstance(base, Implicit) else "observed"
    return "deterministic" if isinstance(base, (dist.Delta, Implicit)) else "latent"


def _site_attributes(site: dict, kind: str, data_plates: tuple[str, ...]) -> dict:
    if kind == "param":
        return dict(
            kind=kind, dist=None, batch_shape=(), event_shape=tuple(site["value"].shape), plates=(),
            local=False, discrete=False, reparameterized=False, autoregressive=False, enumerate=None,
            masked=False, scale=1.0, chain=None,
        )  # fmt: skip
    fn = site["fn"]
    plates = tuple(frame.name for frame in site["cond_indep_stack"])
    wrappers = [] if kind == "deterministic" else list(_wrapped(fn))
    return dict(
        kind=kind,
        dist=type(_innermost(fn)).__name__,
        batch_shape=tuple(fn.batch_shape),
        event_shape=tuple(fn.event_shape),
        plates=plates,
        local=any(plate in data_plates for plate in plates),
        discrete=_is_discrete(fn),
        reparameterized=bool(fn.has_rsample),
        autoregressive=any(getattr(d, "autoregressive", False) for d in _wrapped(fn)),
        enumerate=site["infer"].get("enumerate"),
        masked=_is_masked(site["mask"])
        or any(isinstance(d, dist.MaskedDistribution) and _is_masked(d._mask) for d in wrappers),
        scale=_scale(site["scale"]),
        chain=None,
    )


def _is_discrete(fn: Any) -> bool:
    try:
        return bool(fn.support.is_discrete)
    except (AttributeError, NotImplementedError):
        return False


def _is_masked(mask: Any) -> bool:
    return mask is not None and mask is not True


def _scale(scale: Any) -> float | str:
    if isinstance(scale, torch.Tensor):
        return float(detach_provenance(scale)) if scale.numel() == 1 and scale.dim() == 0 else "tensor"
    return float(scale)


# --- plates and chains -------------------------------------------------------------------------------


def _frames(sites: Iterable[dict]) -> Iterator[Any]:
    for site in sites:
        yield from site.get("cond_indep_stack", ())


def _plate_sizes(sites: list[dict]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for frame in _frames(sites):
        sizes.setdefault(frame.name, int(frame.full_size if frame.full_size is not None else frame.size))
    return sizes


def _data_plates(sites: list[dict], kinds: dict[str, str], args: tuple) -> tuple[str, ...]:
    """Plates enclosing an observed site whose (subsampled or full) size is the data's leading size."""
    tensors = [arg for arg in args if isinstance(arg, torch.Tensor) and arg.dim() > 0]
    if not tensors:
        return ()
    size = tensors[0].shape[0]
    observed = [s for s in sites if kinds[s["name"]] in ("observed", "implicit")]
    names = [f.name for f in _frames(observed) if size in (f.size, f.full_size)]
    return tuple(dict.fromkeys(names))


def _group_chains(graph: nx.DiGraph) -> dict[str, list[str]]:
    """Group sites named ``stem`` + step index (same kind and distribution) into chains ``stem_t``.

    Sets each member's ``chain`` attribute and returns chain name -> sites in step order; groups of
    fewer than three sites are not chains.
    """
    groups: dict[tuple, list[tuple[int, str]]] = {}
    for name, data in graph.nodes(data=True):
        match = _STEP.fullmatch(name)
        if data["kind"] == "param" or not match or not match["stem"]:
            continue
        index = int(match["index"] or match["bracketed"])
        groups.setdefault((match["stem"], data["kind"], data["dist"]), []).append((index, name))
    chains: dict[str, list[str]] = {}
    for (stem, kind, _), members in groups.items():
        if len(members) < _MIN_CHAIN:
            continue
        chain = f"{stem}_t"
        if chain in chains or chain in graph:
            chain = f"{stem}_t ({kind})"
        chains[chain] = [name for _, name in sorted(members)]
        for name in chains[chain]:
            graph.nodes[name]["chain"] = chain
    return chains
