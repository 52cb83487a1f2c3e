"""Joint draws of a fitted program's latents over a whole data set, with what each draw implies.

A draw is one joint sample of every latent: global latents (outside the data plates) once, local latents
once per data point. The data is traced in chunks of at most ``max_rows`` points; the global latents of the
first chunk are replayed in the others, so every chunk of one draw shares them. Each draw records the
latents' values, the observations' values, their pointwise log-likelihoods given the latents, a fresh draw
of every observation given the latents (the predictive), and the joint log densities log p and log q that
importance ratios are made of. The values stay plain tensors; ``inference_data`` turns them into ArviZ's
container.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from pplgen.errors import ImplicitLikelihoodError, ModelError
from pplgen.guides.structure import data_axis
from pplgen.infer.checks import chunks
from pplgen.infer.pointwise import per_point

__all__ = ["Draws", "draw", "replay_draws"]


@dataclass
class Draws:
    """S joint draws over N data points, as plain tensors with a leading draw axis.

    Attributes:
        latents: each latent site's values, ``(S, *value_shape)``, the data axis holding all N points.
        observed: each observed site's values over the data (no draw axis).
        log_likelihood: each observed site's log density given the draw's latents, ``(S, *batch_shape)``.
        predictive: each observed site drawn afresh given the draw's latents, ``(S, *value_shape)``.
        dims: the name of every axis of each site's value (without the draw axis): the plate's name where
            a plate sits on the axis, else ``{site}_dim_{i}``.
        log_p: log p(x, z) of each draw over the whole data, ``(S,)``.
        log_q: log q(z | x) of each draw, ``(S,)``; None when the draws come from the prior or the guide
            has no density (an implicit guide).
        point_log_weight: log p(x_n, z_n) - log q(z_n | x_n) per draw and data point, ``(S, N)``, when
            every latent is local (the weights then split per point); else None.
    """

    latents: dict[str, torch.Tensor]
    observed: dict[str, torch.Tensor]
    log_likelihood: dict[str, torch.Tensor]
    predictive: dict[str, torch.Tensor]
    dims: dict[str, tuple[str, ...]]
    log_p: torch.Tensor
    log_q: torch.Tensor | None
    point_log_weight: torch.Tensor | None = None


def draw(
    model: Callable,
    guide: Callable | None,
    tensors: tuple[torch.Tensor, ...],
    graph: nx.DiGraph,
    num_samples: int,
    *,
    prior: bool = False,
    predictive: bool = True,
    max_rows: int = 1024,
) -> Draws:
    """``num_samples`` joint draws of the latents from the guide (or the prior) over all of ``tensors``.

    Args:
        model: the model program.
        guide: the guide program; None for a model without latents, or with ``prior=True``.
        tensors: the data, as passed to ``fit``.
        graph: the model's graph (:func:`pplgen.inspect`): which sites are latent and which plates hold
            the data points.
        num_samples: S.
        prior: draw the latents (and the observations) from the model itself.
        predictive: also draw the observations afresh given each draw's latents.
        max_rows: data points traced in one pass.

    Raises:
        ModelError: a latent has no site in the guide.
    """
    layout = _Layout.of(graph)
    pieces = list(chunks(tensors, max_rows))
    draws = []
    for _ in range(num_samples):
        parts = _one_draw(model, None if prior else guide, pieces, layout, prior, predictive)
        draws.append(layout.extract(parts))
    return layout.stack(draws)


def replay_draws(
    model: Callable,
    samples: dict[str, torch.Tensor],
    tensors: tuple[torch.Tensor, ...],
    graph: nx.DiGraph,
    *,
    predictive: bool = True,
) -> Draws:
    """The model run at given draws of its latents (MCMC's ``get_samples()``: ``(S, ...)`` per site).

    All of the data is traced in one pass, since a local latent's draws cover every data point.
    """
    layout = _Layout.of(graph)
    count = len(next(iter(samples.values())))
    draws = []
    for index in range(count):
        given = poutine.Trace()
        for name, values in samples.items():
            given.add_node(name, type="sample", name=name, value=values[index], is_observed=False, infer={})
        parts = _one_draw(model, None, [tensors], layout, False, predictive, given=given)
        draws.append(layout.extract(parts))
    return layout.stack(draws)


@dataclass
class _Layout:
    """Which sites are latent and which plates hold the data; the names and joins of every site's axes."""

    latent: set[str]
    observed: set[str]
    data_plates: tuple[str, ...]
    prior: bool = False
    axes: dict | None = None  # name -> (names of the value's axes, the data axis or None)

    @classmethod
    def of(cls, graph: nx.DiGraph) -> _Layout:
        def kind(wanted: str) -> set[str]:
            return {name for name, found in graph.nodes(data="kind") if found == wanted}

        return cls(kind("latent"), kind("observed"), tuple(graph.graph.get("data_plates", ())))

    def local(self, site) -> bool:
        return any(f.name in self.data_plates for f in site["cond_indep_stack"])

    def learn(self, trace) -> None:
        self.axes = {}
        for name in _sites(trace):
            site = trace.nodes[name]
            value = _full_value(site)
            batch_rank = value.dim() - site["fn"].event_dim
            plates = {f.dim: f.name for f in site["cond_indep_stack"] if f.vectorized}
            names = tuple(plates.get(axis - batch_rank, f"{name}_dim_{axis}") for axis in range(value.dim()))
            self.axes[name] = (names, data_axis({**site, "value": value}, self.data_plates))

    def join(self, name: str, parts: list[torch.Tensor]) -> torch.Tensor:
        axis = self.axes[name][1]
        return torch.cat(parts, axis).detach().cpu() if axis is not None else parts[0].detach().cpu()

    def extract(self, parts: list[dict]) -> dict:
        """What one draw's traces say, joined over the chunks; the traces themselves are dropped."""
        if self.axes is None:
            self.learn(parts[0]["model"])
        row = {"latents": {}, "observed": {}, "log_likelihood": {}, "predictive": {}}
        for name in _sites(parts[0]["model"]):
            site = parts[0]["model"].nodes[name]
            values = [_full_value(p["model"].nodes[name]) for p in parts]
            if name in self.latent:
                row["latents"][name] = self.join(name, values)
            elif name in self.observed and not site["is_observed"]:  # drawn from the prior predictive
                row["predictive"][name] = self.join(name, values)
            elif name in self.observed:
                row["observed"][name] = self.join(name, values)
                densities = [
                    p["model"].nodes[name]["fn"].log_prob(v) for p, v in zip(parts, values, strict=True)
                ]
                row["log_likelihood"][name] = self.join(name, densities)
                if parts[0]["predictive"] is not None:
                    fresh = [_full_value(p["predictive"].nodes[name]) for p in parts]
                    row["predictive"][name] = self.join(name, fresh)
        row["log_p"] = self.joint(parts, "model")
        row["log_q"] = row["point_log_weight"] = None
        if parts[0]["guide"] is not None:
            try:
                row["log_q"] = self.joint(parts, "guide")
            except ImplicitLikelihoodError:
                pass  # an implicit guide (AVB) samples but has no density
        if row["log_q"] is not None and self.data_plates and self.all_local(parts[0]["model"]):
            row["point_log_weight"] = torch.cat(
                [
                    per_point(p["model"], self.data_plates, p["size"])
                    - per_point(p["guide"], self.data_plates, p["size"])
                    for p in parts
                ]
            ).double()
        return row

    def all_local(self, trace) -> bool:
        return all(self.local(trace.nodes[n]) for n in _sites(trace) if n in self.latent)

    def joint(self, parts: list[dict], role: str) -> torch.Tensor:
        """The log density of one draw's ``role`` traces over all chunks, each global latent counted once.

        A guide's own factors (``pyro.factor``) count with log q, as in the ELBO.
        """
        total = torch.zeros((), dtype=torch.float64)
        for index, part in enumerate(parts):
            trace = part[role]
            trace.compute_log_prob()
            for name in _sites(trace):
                site = trace.nodes[name]
                if index > 0 and name in self.latent and not self.local(site):
                    continue  # replayed in this chunk: counted with the first
                total = total + site["log_prob_sum"].detach().double().cpu()
        return total

    def stack(self, draws: list[dict]) -> Draws:
        def stacked(group: str) -> dict[str, torch.Tensor]:
            return {name: torch.stack([d[group][name] for d in draws]) for name in draws[0][group]}

        weights = [d["point_log_weight"] for d in draws]
        return Draws(
            latents=stacked("latents"),
            observed=draws[0]["observed"],
            log_likelihood=stacked("log_likelihood"),
            predictive=stacked("predictive"),
            dims={name: names for name, (names, _) in self.axes.items()},
            log_p=torch.stack([d["log_p"] for d in draws]),
            log_q=None if draws[0]["log_q"] is None else torch.stack([d["log_q"] for d in draws]),
            point_log_weight=None if weights[0] is None else torch.stack(weights),
        )


def _one_draw(model, guide, pieces, layout: _Layout, prior: bool, predictive: bool, given=None) -> list[dict]:
    """The traces of one joint draw, chunk by chunk, the first chunk's global latents replayed in the rest.

    ``given``: a trace of every latent's value to replay in place of the guide's.
    """
    held = None
    parts = []
    for batch in pieces:
        fresh = guide_trace = None
        if prior:
            model_trace = poutine.trace(_replayed(poutine.uncondition(model), held)).get_trace(*batch)
        else:
            if guide is not None:
                guide_trace = poutine.trace(_replayed(guide, held)).get_trace(*batch)
            source = given if given is not None else guide_trace
            model_trace = poutine.trace(_replayed(model, source)).get_trace(*batch)
            _check_guided(model_trace, source, layout.latent)
            if predictive:
                fresh = poutine.trace(_replayed(poutine.uncondition(model), source)).get_trace(*batch)
        if held is None:
            held = _global_trace(guide_trace or model_trace, layout)
        parts.append({"model": model_trace, "guide": guide_trace, "predictive": fresh, "size": len(batch[0])})
    return parts


def _replayed(fn, trace):
    return poutine.replay(fn, trace=trace) if trace is not None else fn


def _check_guided(model_trace, guide_trace, latent) -> None:
    unguided = [
        n for n in _sites(model_trace) if n in latent and (guide_trace is None or n not in guide_trace)
    ]
    if unguided:
        raise ModelError(
            f"the latents {unguided} have no site in the guide (enumerated or missing), so their posterior "
            "draws would come from the prior; give the guide a site for each"
        )


def _sites(trace) -> list[str]:
    return [
        name for name, site in trace.nodes.items() if site["type"] == "sample" and not site_is_subsample(site)
    ]


def _global_trace(trace, layout: _Layout) -> poutine.Trace:
    """The global latent sites of ``trace``, to be replayed in the other chunks of the same draw."""
    held = poutine.Trace()
    for name in _sites(trace):
        site = trace.nodes[name]
        if name in layout.latent and not layout.local(site) and not site["is_observed"]:
            held.add_node(name, **site)
    return held


def _full_value(site) -> torch.Tensor:
    """The site's value broadcast to its distribution's full batch and event shape."""
    value = site["value"]
    shape = torch.broadcast_shapes(value.shape, site["fn"].shape())
    return value.expand(shape) if value.shape != shape else value
