"""Random Pyro programs for the fuzz tests: a hypothesis strategy for plain-data specs, and the closure
each spec builds.

A spec is a DAG of Normal, Bernoulli and Categorical sample sites. Site ``i`` reads a subset of the
earlier sites: its Normal location or Bernoulli logit is a fixed weighted sum of its parents' values
(cast to float), its Categorical logits a fixed linear map of that sum. Each site lives at one of three
plate levels: global, inside ``pyro.plate("data", N)``, or also inside a nested ``pyro.plate("inner", M)``.
A site reads only sites at its own level or an outer one, so every value broadcasts. Observed local
sites take their values from the program's arguments (one tensor per site, ``(N,)`` or ``(N, M)``, so
that ``pplgen.fit`` can cut them into mini-batches); observed global sites hold a constant. A site may
add a learned ``pyro.param`` offset to its location or logits.

No source text is generated: :func:`build` returns a closure over the spec.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from hypothesis import strategies as st

KINDS = ("normal", "bernoulli", "categorical")
#: Plate levels, outermost first: a site reads sites of its own level or an outer one.
LEVELS = ("global", "data", "inner")
PLATES = {"global": (), "data": ("data",), "inner": ("data", "inner")}
DIST_NAMES = {"normal": "Normal", "bernoulli": "Bernoulli", "categorical": "Categorical"}
NUM_CATEGORIES = 3
INNER_SIZE = 2  # never equal to a data size, so only "data" is a data plate


@dataclass(frozen=True)
class SiteSpec:
    """One sample site: its distribution, the earlier sites it reads, its plate level, observed or not,
    and whether a learned offset (a ``pyro.param``) shifts its location or logits."""

    name: str
    kind: str
    parents: tuple[int, ...]
    level: str
    observed: bool
    learned: bool

    @property
    def param(self) -> str:
        return f"offset_{self.name}"


@dataclass(frozen=True)
class ProgramSpec:
    """A random program: its sites in program order and the number of data points."""

    sites: tuple[SiteSpec, ...]
    num_data: int

    @property
    def data_sites(self) -> tuple[SiteSpec, ...]:
        """The observed local sites, whose values are the program's arguments, in argument order."""
        return tuple(s for s in self.sites if s.observed and s.level != "global")

    @property
    def has_params(self) -> bool:
        return any(s.learned for s in self.sites)

    def edges(self) -> set[tuple[str, str]]:
        """The sample-site edges ``parent -> child`` the program has by construction."""
        return {(self.sites[p].name, s.name) for s in self.sites for p in s.parents}


@st.composite
def program_specs(draw, max_sites: int = 6) -> ProgramSpec:
    """A random :class:`ProgramSpec` of 1 to ``max_sites`` sites."""
    count = draw(st.integers(1, max_sites))
    sites: list[SiteSpec] = []
    for i in range(count):
        level = draw(st.sampled_from(LEVELS))
        readable = [j for j, s in enumerate(sites) if LEVELS.index(s.level) <= LEVELS.index(level)]
        parents = draw(st.lists(st.sampled_from(readable), unique=True, max_size=3)) if readable else []
        sites.append(
            SiteSpec(
                name=f"s{i}",
                kind=draw(st.sampled_from(KINDS)),
                parents=tuple(sorted(parents)),
                level=level,
                observed=draw(st.booleans()),
                learned=draw(st.booleans()),
            )
        )
    return ProgramSpec(tuple(sites), num_data=draw(st.integers(6, 12)))


def _weights(spec: SiteSpec) -> list[float]:
    """Fixed non-zero weights, one per parent (a zero weight would cut the dependency)."""
    return [0.5 + 0.25 * ((7 * int(spec.name[1:]) + 3 * k) % 5) for k in range(len(spec.parents))]


def _direction() -> torch.Tensor:
    """The fixed map from a Categorical site's parent sum to its logits."""
    return torch.linspace(-1.0, 1.0, NUM_CATEGORIES)


def _distribution(spec: SiteSpec, values: list[torch.Tensor]) -> dist.Distribution:
    total = torch.tensor(0.1 * (1 + int(spec.name[1:])))
    for weight, parent in zip(_weights(spec), spec.parents, strict=True):
        total = total + weight * values[parent].float()
    if spec.learned:
        total = total + pyro.param(spec.param, torch.tensor(0.0))
    if spec.kind == "normal":
        return dist.Normal(total, 1.0)
    if spec.kind == "bernoulli":
        return dist.Bernoulli(logits=total)
    return dist.Categorical(logits=total.unsqueeze(-1) * _direction())


def _site(spec: SiteSpec, values: list[torch.Tensor], obs: torch.Tensor | None) -> torch.Tensor:
    return pyro.sample(spec.name, _distribution(spec, values), obs=obs)


def global_value(spec: SiteSpec) -> torch.Tensor:
    """The constant an observed global site holds."""
    return {"normal": torch.tensor(0.3), "bernoulli": torch.tensor(1.0), "categorical": torch.tensor(1)}[
        spec.kind
    ]


def build(spec: ProgramSpec):
    """The program a spec describes, called as ``program(*data)`` with :func:`make_data`'s tensors."""
    data_sites = spec.data_sites

    def program(*data: torch.Tensor) -> None:
        observed = dict(zip((s.name for s in data_sites), data, strict=True))
        size = data[0].shape[0] if data else spec.num_data
        values: list[torch.Tensor] = []
        data_plate = pyro.plate("data", size, dim=-1)
        inner_plate = pyro.plate("inner", INNER_SIZE, dim=-2)
        for site in spec.sites:
            if site.level == "global":
                obs = global_value(site) if site.observed else None
                values.append(_site(site, values, obs))
                continue
            obs = observed.get(site.name)
            with data_plate:
                if site.level == "data":
                    values.append(_site(site, values, obs))
                    continue
                with inner_plate:  # observed (N, M) data, a site of batch shape (M, N)
                    values.append(_site(site, values, None if obs is None else obs.transpose(0, 1)))

    program.__qualname__ = program.__name__ = "fuzz_program"
    return program


def make_data(spec: ProgramSpec, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Valid observations for the spec's observed local sites: ``(N,)`` or ``(N, M)`` each, in support."""
    generator = torch.Generator().manual_seed(seed)
    tensors = []
    for site in spec.data_sites:
        shape = (spec.num_data,) if site.level == "data" else (spec.num_data, INNER_SIZE)
        if site.kind == "normal":
            tensors.append(torch.randn(shape, generator=generator))
        elif site.kind == "bernoulli":
            tensors.append(torch.randint(0, 2, shape, generator=generator).float())
        else:
            tensors.append(torch.randint(0, NUM_CATEGORIES, shape, generator=generator))
    return tuple(tensors)
