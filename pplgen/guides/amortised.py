"""A guide built automatically from the model's graph: amortised encoders for local latents, mean field for
global ones."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping

import pyro
import torch
from pyro.distributions import constraints
from torch import nn

from pplgen.errors import GuideError, program_name
from pplgen.graph import inspect
from pplgen.guides.posteriors import POSTERIORS, DiscreteHead, MeanField, make_head
from pplgen.guides.structure import LatentSpec, observed_values, read_latents
from pplgen.nn.mlp import MLP

__all__ = ["AmortisedGuide", "enumerable"]


def enumerable(spec: LatentSpec) -> bool:
    """A local discrete latent that is one choice per plate entry: the guide marks it for enumeration, so
    ``TraceEnum_ELBO`` sums it out instead of using score-function gradients."""
    choice = len(spec.event_shape) == 0 or (
        spec.support is constraints.one_hot and len(spec.event_shape) == 1
    )
    return spec.discrete and spec.local and choice


def _flat(value: torch.Tensor) -> torch.Tensor:
    """One row of floats per data point."""
    return value.reshape(value.shape[0], -1).float()


class AmortisedGuide(nn.Module):
    r"""An amortised guide :math:`q(z \mid x)` built from a model program's graph.

    For every **local** latent z (inside a data plate) an encoder network maps the observed sites that z
    explains (its observed descendants in the graph) and the latents z depends on (its parents, sampled
    earlier by this guide) to the parameters of z's variational distribution; one network is shared by
    all data points, so inference is amortised. **Global** latents (outside every data plate) get a
    mean-field Normal in unconstrained space. Latents the model enumerates (``infer={"enumerate":
    "parallel"}``) are left to Pyro's ``TraceEnum_ELBO`` and have no guide site.

    The guide is built on the first batch it sees (``build``); :func:`pplgen.fit` does that, and builds
    one itself when a latent model is given no guide.

    Args:
        model: the model program; the guide is called with the model's arguments.
        posterior: ``"normal"`` (diagonal) or ``"full_rank"`` (a Cholesky factor per data point).
        flows: inverse autoregressive flow steps on top of the diagonal Normal (0 for none).
        hidden: hidden layer widths of the default encoders.
        encoder: a module used instead of the default MLP encoder, for every local latent or (a mapping)
            per latent name. It maps the inputs to features; a linear head on top gives the
            distribution's parameters. Its input is the observed value with its own per-point shape
            ``(N, ...)`` when the latent explains one observed site and has no latent parents (so a
            convolutional encoder sees images), otherwise the flat concatenation ``(N, D)``.
        init_scale: initial standard deviation of the global latents' mean field.

    References:
        Kingma & Welling (2014), "Auto-encoding variational Bayes" (amortised inference).
        Webb et al. (2018), "Faithful inversion of generative models for effective amortized inference".
        Kucukelbir et al. (2017), "Automatic differentiation variational inference" (mean field and
        full rank in unconstrained space).
        Kingma et al. (2016), "Improved variational inference with inverse autoregressive flow".
        Pyro PR #2849 (an amortised autoguide, asked for and never merged).

    Example:
        >>> import pyro, torch, pyro.distributions as dist
        >>> def model(x):
        ...     with pyro.plate("data", len(x)):
        ...         z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        ...         pyro.sample("x", dist.Normal(z.sum(-1, keepdim=True), 1.0).to_event(1), obs=x)
        >>> guide = AmortisedGuide(model).build(torch.zeros(5, 1))
        >>> guide.describe()["z"]
        'local: encoder from x to a Normal over 2 dimensions'
    """

    def __init__(
        self,
        model: Callable,
        *,
        posterior: str = "normal",
        flows: int = 0,
        hidden: tuple[int, ...] = (256, 256),
        encoder: nn.Module | Mapping[str, nn.Module] | None = None,
        init_scale: float = 0.1,
    ):
        super().__init__()
        if posterior not in POSTERIORS:
            raise GuideError(f"unknown posterior {posterior!r}: expected one of {', '.join(POSTERIORS)}")
        if flows < 0:
            raise GuideError(f"flows must be a number of IAF steps >= 0, got {flows}")
        self.model = model
        self.options = {"posterior": posterior, "flows": int(flows), "hidden": [int(h) for h in hidden]}
        self.user_encoder = encoder
        self.init_scale = init_scale
        self.specs: list[LatentSpec] = []
        self.data_plates: tuple[str, ...] = ()
        self.encoders = nn.ModuleList()
        self.heads = nn.ModuleList()
        self.globals = nn.ModuleList()
        self.built = False

    # -- construction -----------------------------------------------------------------------------
    def build(self, *batch) -> AmortisedGuide:
        """Read the model's latents on ``batch`` and create the networks (once; later calls do nothing)."""
        if self.built:
            return self
        graph = inspect(self.model, *batch)
        if graph.graph["family"] != "latent":
            raise GuideError(
                f"the model {program_name(self.model)!r} has no latent sites to guide "
                f"({graph.graph['reason']})"
            )
        self.data_plates = tuple(graph.graph["data_plates"])
        self.specs = [s for s in read_latents(self.model, graph, batch) if not s.enumerated]
        self.sizes = self._input_sizes(batch)
        device = batch[0].device if batch and isinstance(batch[0], torch.Tensor) else None
        for spec in self.specs:
            if spec.local:
                encoder, features = self._encoder(spec, batch)
                self.encoders.append(encoder)
                hidden = self.options["hidden"][-1] if self.options["hidden"] else 64
                self.heads.append(
                    make_head(spec, features, self.options["posterior"], self.options["flows"], hidden)
                )
            else:
                self.globals.append(MeanField(spec, self.init_scale))
        self.built = True
        return self.to(device) if device is not None else self

    def _input_sizes(self, batch) -> dict[str, int]:
        names = {name for spec in self.specs if spec.local for name in spec.explains}
        values = observed_values(self.model, batch, names, self.data_plates)
        self._obs_shapes = {name: tuple(v.shape[1:]) for name, v in values.items()}
        sizes = {name: math.prod(v.shape[1:]) for name, v in values.items()}
        for spec in self.specs:  # parents are read as the model sees them: constrained, per point
            sizes[spec.name] = math.prod(spec.point_shape)
        return sizes

    def _user_encoder(self, spec: LatentSpec) -> nn.Module | None:
        if isinstance(self.user_encoder, Mapping):
            return self.user_encoder.get(spec.name)
        return self.user_encoder

    def _spec(self, name: str) -> LatentSpec:
        return next(s for s in self.specs if s.name == name)

    def _parents(self, spec: LatentSpec) -> tuple[str, ...]:
        """The latent parents an encoder reads: those the guide draws a value of (one per data point, or
        one shared by all). An enumerated parent (by the model or by this guide) holds all its values at
        once along an enumeration dim instead, so the encoder cannot take it as an input."""
        drawn = {s.name for s in self.specs if not enumerable(s)}
        return tuple(p for p in spec.parents if p in drawn)

    def _encoder(self, spec: LatentSpec, batch) -> tuple[nn.Module, int]:
        width = sum(self.sizes[name] for name in (*spec.explains, *self._parents(spec))) or 1
        encoder = self._user_encoder(spec)
        if encoder is None:
            hidden = self.options["hidden"]
            encoder = MLP([width, *hidden], activation=nn.ReLU) if hidden else nn.Identity()
            if hidden:
                encoder.append(nn.ReLU())
            return encoder, hidden[-1] if hidden else width
        observed = {n: torch.zeros(2, *self._obs_shapes[n]) for n in spec.explains}
        parents = {p: self._zeros(self._spec(p), 2) for p in self._parents(spec)}
        dummy = self._inputs(spec, observed, parents, 2)
        try:
            with torch.no_grad():
                features = encoder.to(dummy.device)(dummy)
        except Exception as exc:  # the user's module can raise anything on a wrong input shape
            raise GuideError(
                f"the encoder for latent {spec.name!r} failed on inputs of shape {tuple(dummy.shape)} "
                f"(N = 2): {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.shape[0] != 2:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise GuideError(
                f"the encoder for latent {spec.name!r} should map (N, ...) inputs to (N, F) features, "
                f"got output {shape} for inputs of shape {tuple(dummy.shape)}"
            )
        return encoder, features.shape[1]

    @staticmethod
    def _zeros(spec: LatentSpec, n: int) -> torch.Tensor:
        """A stand-in value of ``spec``'s site for ``n`` data points."""
        if not spec.local:
            return torch.zeros(spec.point_shape)
        return torch.zeros(n, *spec.point_shape).movedim(0, spec.axis)

    # -- the guide program ----------------------------------------------------------------------------
    def _inputs(self, spec: LatentSpec, observed: dict, sampled: dict, n: int) -> torch.Tensor:
        parents = self._parents(spec)
        if len(spec.explains) == 1 and not parents and self._user_encoder(spec) is not None:
            return observed[spec.explains[0]].float()
        parts = [_flat(observed[name]) for name in spec.explains]
        for name in parents:
            value, parent = sampled[name], self._spec(name)
            if parent.local:
                parts.append(_flat(value.movedim(parent.axis, 0) if parent.axis else value))
            else:  # one value shared by every data point
                parts.append(value.reshape(1, -1).float().expand(n, -1))
        if not parts:
            return torch.ones(n, 1)
        return torch.cat(parts, dim=-1)

    def forward(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        """Sample every latent from q given the data in ``args``; returns the sampled values."""
        if not self.built:
            self.build(*args)
        names = {name for spec in self.specs if spec.local for name in spec.explains}
        masks: dict[str, torch.Tensor] = {}
        observed = observed_values(self.model, args, names, self.data_plates, masks) if self.encoders else {}
        n = self._data_size(args, observed)
        unique = {plate.name: plate for spec in self.specs for plate in spec.plates}
        plates = {  # one plate object per name: making a plate records a site, so only once each
            name: pyro.plate(name, n if plate.data else plate.size, dim=plate.dim)
            for name, plate in unique.items()
        }
        sampled: dict[str, torch.Tensor] = {}
        local, glob = iter(zip(self.encoders, self.heads, strict=True)), iter(self.globals)
        for spec in self.specs:
            if spec.local:
                encoder, head = next(local)
                fn = head(encoder(self._inputs(spec, observed, sampled, n)))
            else:
                fn = next(glob)()
            if spec.name in masks:  # the model masks the site (a partly observed value): so must q
                fn = fn.mask(masks[spec.name])
            with contextlib.ExitStack() as stack:
                for plate in spec.plates:
                    stack.enter_context(plates[plate.name])
                infer = {"enumerate": "parallel"} if enumerable(spec) else {}
                sampled[spec.name] = pyro.sample(spec.name, fn, infer=infer)
        return sampled

    def _data_size(self, args, observed) -> int:
        if observed:
            return next(iter(observed.values())).shape[0]
        tensors = [a for a in args if isinstance(a, torch.Tensor) and a.dim() > 0]
        return tensors[0].shape[0] if tensors else 1

    def describe(self) -> dict[str, str]:
        """One line per latent: how the guide infers it."""
        lines = {}
        local = iter(self.heads)
        for spec in self.specs:
            if not spec.local:
                lines[spec.name] = (
                    f"global: mean-field Normal over {_count(spec.init.numel(), 'unconstrained value')}"
                )
                continue
            head = next(local)
            inputs = ", ".join((*spec.explains, *self._parents(spec))) or "nothing"
            lines[spec.name] = f"local: encoder from {inputs} to {self._posterior(spec, head)}"
        return lines

    def _posterior(self, spec: LatentSpec, head: nn.Module) -> str:
        """What a local head draws, e.g. ``a Normal over 4 dimensions``."""
        if isinstance(head, DiscreteHead):
            classes = "" if head.kind == "bernoulli" else f" with {head.levels} classes"
            how = "enumerated" if enumerable(spec) else "score-function gradients"
            size = _count(math.prod(head.shape), "dimension")
            return f"a {_DISCRETE[head.kind]}{classes} over {size}, {how}"
        kind = type(head).__name__.removesuffix("Head")
        kind = {"IAF": f"Normal with {self.options['flows']} IAF steps"}.get(kind, kind)
        return f"a {kind} over {_count(math.prod(spec.point_shape), 'dimension')}"


_DISCRETE = {"bernoulli": "Bernoulli", "categorical": "Categorical", "one_hot": "OneHotCategorical"}


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
