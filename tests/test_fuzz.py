"""Fuzzing with hypothesis: random Pyro programs through ``inspect`` and ``fit``, and random bad data
through every zoo model.

Random programs (:mod:`tests.fuzz_programs`): DAGs of Normal, Bernoulli and Categorical sites in random
plates, some observed. ``inspect`` must read each without raising, its edges between sample sites must
be the program's own dependencies and agree with Pyro's ``get_model_relations``, its nodes must say what
each site is, and its family must follow the rule; ``fit`` must train the program for an epoch to a finite
loss or refuse it with a :class:`~pplgen.errors.PplgenError`.

Bad data: every zoo model, built tiny, is fitted on its data corrupted one way (NaN, inf, complex or
half-precision or integer or boolean values, a wrong width or number of dimensions, no rows, values
outside the support, bad labels). It must refuse with a PplgenError whose message names what came, never
let a torch or Pyro error escape (bare, or merely wrapped as "the program raised ...") and never train
silently on data it cannot model.

Every example tried is counted in :data:`COUNTS`; :func:`fuzz_counts` returns them and the last test
checks that the fast tests tried at least :data:`MINIMUM_COUNTS`.
"""

from __future__ import annotations

import math
from collections import Counter

import pyro
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pyro.infer.inspect import get_model_relations

import pplgen
from pplgen.data import Dataset, load
from pplgen.errors import ModelError, PplgenError
from pplgen.graph import FAMILIES
from tests import fuzz_programs as fp

#: Examples tried so far in this process, by test: ``inspect``, ``fit``, ``fit_outcome:<what happened>``,
#: ``bad_data``, ``bad_data:<model>``.
COUNTS: Counter = Counter()
#: What the fast tests must have tried when :func:`test_fuzz_counts` runs after them.
MINIMUM_COUNTS = {"inspect": 80, "inspect_bad_args": 30, "fit": 30, "bad_data": 150}


def fuzz_counts() -> dict[str, int]:
    """The number of programs and inputs tried so far in this process, by kind (see :data:`COUNTS`)."""
    return dict(sorted(COUNTS.items()))


def _fuzz_settings(examples: int, shrink: bool = True):
    """Deterministic settings; without ``shrink`` a failure is reported as first found (a zoo model's
    failing fit is too slow to shrink)."""
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        phases=phases,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


# --- random programs: inspection ----------------------------------------------------------------------


def _expected_family(spec: fp.ProgramSpec) -> str:
    """The rule of ``pplgen.graph.explain_family`` for these programs (no Implicit or Delta sites): any
    latent site, discrete ones included, makes the program latent (also when it observes nothing);
    otherwise it observes every site and is exact."""
    return "latent" if any(not s.observed for s in spec.sites) else "exact"


def _check_inspection(spec: fp.ProgramSpec) -> None:
    program, data = fp.build(spec), fp.make_data(spec)
    graph = pplgen.inspect(program, *data)  # must not raise: the program is valid
    assert not pyro.get_param_store().keys(), "inspect left parameters in Pyro's store"

    # edges between sample sites: the program's own dependencies, and Pyro's reading of them
    sample_edges = {(u, v) for u, v in graph.edges if graph.nodes[u]["kind"] != "param"}
    relations = get_model_relations(program, data)
    pyro_edges = {(up, site) for site, ups in relations["sample_sample"].items() for up in ups}
    assert sample_edges == spec.edges() == pyro_edges
    # every learned offset is a param node read by its site alone
    params = {n for n, kind in graph.nodes(data="kind") if kind == "param"}
    assert params == {s.param for s in spec.sites if s.learned}
    assert {(u, v) for u, v in graph.edges if u in params} == {
        (s.param, s.name) for s in spec.sites if s.learned
    }

    data_plates = ("data",) if data else ()
    assert graph.graph["data_plates"] == data_plates
    for site in spec.sites:
        node = graph.nodes[site.name]
        assert node["kind"] == ("observed" if site.observed else "latent")
        assert node["dist"] == fp.DIST_NAMES[site.kind]
        assert node["plates"] == fp.PLATES[site.level]
        assert node["local"] == (site.level != "global" and bool(data_plates))
        assert node["discrete"] == (site.kind != "normal")
        assert node["reparameterized"] == (site.kind == "normal")
        assert node["event_shape"] == ()
        size = len(data[0]) if data else spec.num_data
        assert (
            node["batch_shape"] == {"global": (), "data": (size,), "inner": (fp.INNER_SIZE, size)}[site.level]
        )

    family = _expected_family(spec)
    assert graph.graph["family"] == family == pplgen.classify(graph) and family in FAMILIES
    assert graph.graph["reason"].startswith(f"{family}: ")
    if family == "latent" and not any(s.observed for s in spec.sites):
        assert "no site is observed" in graph.graph["reason"]


def _inspection_test(examples: int):
    @_fuzz_settings(examples)
    @given(spec=fp.program_specs())
    def check(spec):
        COUNTS["inspect"] += 1
        pyro.clear_param_store()
        _check_inspection(spec)

    return check


def test_inspect_random_programs():
    _inspection_test(100)()


@pytest.mark.slow
def test_inspect_random_programs_many():
    _inspection_test(600)()


@st.composite
def _mangled(draw, spec: fp.ProgramSpec) -> tuple:
    """The spec's data, one tensor spoiled: a dimension added or dropped, a wrong size, out of support,
    or a NaN."""
    data = list(fp.make_data(spec))
    i = draw(st.integers(0, len(data) - 1))
    x = data[i]
    how = draw(st.sampled_from(["unsqueeze", "flatten", "narrow", "float", "outside", "nan", "drop"]))
    if how == "unsqueeze":
        data[i] = x.unsqueeze(-1)
    elif how == "flatten":
        data[i] = x.reshape(-1)
    elif how == "narrow":
        data[i] = x[: len(x) - draw(st.integers(1, len(x) - 1))]
    elif how == "float":
        data[i] = x.float() + 0.5
    elif how == "outside":
        data[i] = x + draw(st.sampled_from([2, -3, fp.NUM_CATEGORIES]))
    elif how == "nan":
        data[i] = x.float().clone().fill_(math.nan)
    else:
        del data[i]
    return tuple(data)


def _inspect_bad_args_test(examples: int):
    @_fuzz_settings(examples)
    @given(st.data())
    def check(draws):
        spec = draws.draw(fp.program_specs().filter(lambda s: bool(s.data_sites)), label="spec")
        args = draws.draw(_mangled(spec), label="args")
        COUNTS["inspect_bad_args"] += 1
        pyro.clear_param_store()
        try:
            graph = pplgen.inspect(fp.build(spec), *args)
        except PplgenError as err:
            assert str(err), "a PplgenError with no message"
            COUNTS[f"inspect_bad_args:{type(err).__name__}"] += 1
        else:
            assert graph.graph["family"] in FAMILIES
            COUNTS["inspect_bad_args:read"] += 1

    return check


def test_inspect_spoiled_arguments_raise_only_pplgen_errors():
    """Property 1 beyond valid programs: arguments the program cannot take give a PplgenError or a graph,
    never another exception."""
    _inspect_bad_args_test(40)()


# --- random programs: fitting -------------------------------------------------------------------------


@st.composite
def _fit_cases(draw) -> tuple[fp.ProgramSpec, int]:
    """A spec that observes local data (fit needs data points), most of them with a parameter."""
    spec = draw(fp.program_specs().filter(lambda s: bool(s.data_sites)))
    if not spec.has_params and draw(st.integers(0, 4)):  # four in five get a learned offset
        first, *rest = spec.sites
        spec = fp.ProgramSpec((fp.SiteSpec(**{**vars(first), "learned": True}), *rest), spec.num_data)
    return spec, draw(st.integers(1, spec.num_data))


def _check_fit(spec: fp.ProgramSpec, batch_size: int) -> str:
    program, data = fp.build(spec), fp.make_data(spec)
    try:
        result = pplgen.fit(
            program, data, epochs=1, batch_size=batch_size, progress=False, device="cpu", seed=0
        )
    except PplgenError as err:
        assert str(err).strip(), "a PplgenError with no message"
        if not spec.has_params and isinstance(err, ModelError):
            assert "nothing to train" in str(err)
        return type(err).__name__
    assert isinstance(result, pplgen.FitResult)
    assert result.family == _expected_family(spec)
    row = result.history[-1]
    loss = row["nll"] if result.family == "exact" else row["loss"]
    assert math.isfinite(loss), f"a non-finite loss {loss} after one epoch"
    return f"{result.family}:{result.settings.get('objective', 'nll').split('(')[0]}"


def _fit_test(examples: int):
    @_fuzz_settings(examples)
    @given(case=_fit_cases())
    def check(case):
        COUNTS["fit"] += 1
        pyro.clear_param_store()
        COUNTS[f"fit_outcome:{_check_fit(*case)}"] += 1

    return check


def test_fit_random_programs():
    _fit_test(40)()


@pytest.mark.slow
def test_fit_random_programs_many():
    _fit_test(300)()


def test_svi_validation_on_one_point_does_not_warn():
    """Found by the fit fuzzing: six data points hold one out for validation, and a variance over one point
    made torch warn from pplgen's code."""
    spec = fp.ProgramSpec(
        (
            fp.SiteSpec("s0", "normal", (), "data", observed=False, learned=False),
            fp.SiteSpec("s1", "normal", (0,), "data", observed=True, learned=True),
        ),
        num_data=6,
    )
    pplgen.fit(
        fp.build(spec), fp.make_data(spec), epochs=1, batch_size=1, progress=False, device="cpu", seed=0
    )


# --- random bad data for every zoo model --------------------------------------------------------------

_N = 24
_WAVENET = {"residual_channels": 4, "skip_channels": 4, "dilations": [1, 2], "num_levels": 16}
_LATENT = {"transition_dim": 4, "emission_dim": 4, "rnn_dim": 4, "z_dim": 2}
_GAN = {"z_dim": 2, "hidden": 8}
#: Each zoo model: the data set it is built for and a tiny configuration.
ZOO_CASES = {
    "fvsbn": ("digits", {}),
    "nade": ("digits", {"hidden": 8}),
    "made": ("digits", {"hidden": [16]}),
    "pixelcnn": ("digits", {"channels": 4, "layers": 1, "first_kernel_size": 3}),
    "cpixelcnn": ("digits", {"channels": 4, "layers": 1, "first_kernel_size": 3}),
    "charlm": ("tokens", {"n_layer": 1, "n_head": 1, "n_embd": 8, "dropout": 0.0}),
    "lstmlm": ("tokens", {"hidden": 8, "num_layers": 1, "dropout": 0.0}),
    "wavenet": ("audio", _WAVENET),
    "image2speech": ("speech", {"context_dim": 4, "hidden": 8, **_WAVENET}),
    "vae": ("digits", {"z_dim": 2, "hidden": 16}),
    "cvae": ("digits", {"z_dim": 2, "hidden": 16}),
    "hvae": ("digits", {"z1_dim": 2, "z2_dim": 2, "hidden1": 8, "hidden2": 8}),
    "pixelvae": (
        "digits",
        {
            "z_dim": 2,
            "hidden": 8,
            "context_dim": 4,
            "encoder_channels": 4,
            "channels": 4,
            "layers": 1,
            "first_kernel_size": 3,
        },
    ),  # fmt: skip
    "dmm": ("digits", _LATENT),
    "worldmodel": ("trajectories", _LATENT),
    "draw": ("digits", {"steps": 2, "z_dim": 2, "hidden": 8}),
    "vqvae": (
        "digits",
        {
            "num_codes": 4,
            "code_dim": 2,
            "channels": 4,
            "res_blocks": 1,
            "prior_channels": 4,
            "prior_layers": 1,
        },
    ),
    "realnvp": ("ring8", {"layers": 2, "hidden": [8], "norm": None}),
    "maf": ("ring8", {"layers": 2, "hidden": [8], "norm": None}),
    "gan": ("ring8", _GAN),
    "wgan": ("ring8", _GAN),
    "cgan": ("ring8", _GAN),
    "ali": ("ring8", _GAN),
    "avb": ("digits", {"z_dim": 2, "hidden": 8, "noise_dim": 2}),
}
assert set(ZOO_CASES) == set(pplgen.models.ZOO), "a zoo model without a fuzz case"

#: Corruptions that must be refused with a PplgenError.
REFUSED = ("nan", "inf", "complex", "narrow", "wide", "flat", "empty", "support", "labels")
#: Other dtypes: the values are still valid data, so the model may train on them or refuse them cleanly.
TOLERATED = ("half", "int", "bool")


def _dataset(kind: str) -> Dataset:
    generator = torch.Generator().manual_seed(0)
    if kind == "digits":
        return load("digits").subset(_N, seed=0)
    if kind == "ring8":
        return load("ring8", num_points=_N)
    if kind == "tokens":
        return Dataset(
            "tokens", "train", "token", torch.randint(0, 5, (_N, 12), generator=generator), num_levels=5
        )
    waveforms = torch.rand(_N, 32, generator=generator) * 2 - 1
    if kind == "audio":
        return Dataset("audio", "train", "audio", waveforms, y=torch.arange(_N) % 3)
    if kind == "speech":
        images = load("digits").subset(_N, seed=0).x
        return Dataset("speech", "train", "audio", waveforms, y=images, meta={"condition_shape": (8, 8)})
    obs, actions = torch.randn(_N, 5, 3, generator=generator), torch.randn(_N, 4, 1, generator=generator)
    return Dataset("trajectories", "train", "continuous", obs, y=actions)


_BUILT: dict[str, tuple] = {}


def _zoo_model(name: str) -> tuple:
    """The tiny zoo model ``name`` and its good data (built once per process)."""
    if name not in _BUILT:
        kind, config = ZOO_CASES[name]
        dataset = _dataset(kind)
        model = pplgen.models.build(name, dataset, **config)
        _BUILT[name] = (model, dataset.tensors(getattr(model, "takes_labels", False)), dataset)
    return _BUILT[name]


#: The zoo models called as ``model(x, y)``: labels, images or actions after the data.
LABELLED = ("cpixelcnn", "wavenet", "image2speech", "cvae", "cgan", "worldmodel")


def _applies(name: str, corruption: str) -> bool:
    """Whether a corruption means anything for a model: values outside a support need a bounded one (not
    ring8's or the trajectories' reals), bad labels need labels."""
    if corruption == "support":
        return ZOO_CASES[name][0] in ("digits", "tokens", "audio", "speech")
    if corruption == "labels":
        return name in LABELLED
    return True


@st.composite
def _corrupt(draw, tensors: tuple, dataset: Dataset, corruption: str) -> tuple[tuple, list[str]]:
    """The tensors spoiled by ``corruption`` and words of which the error message must hold one."""
    x, rest = tensors[0], tuple(tensors[1:])
    index = draw(st.integers(0, x.numel() - 1))
    if corruption in ("nan", "inf"):
        bad = x.float().clone()
        bad.view(-1)[index] = (
            math.nan if corruption == "nan" else draw(st.sampled_from([math.inf, -math.inf]))
        )
        return (bad, *rest), ["NaN", "infinite"]
    if corruption == "complex":
        imaginary = draw(st.sampled_from([0.0, 0.5]))
        return (x.to(torch.complex64) + 1j * imaginary, *rest), ["complex"]
    if corruption in TOLERATED:
        dtype = {"half": torch.float16, "int": draw(st.sampled_from([torch.int64, torch.int32, torch.uint8])),
                 "bool": torch.bool}[corruption]  # fmt: skip
        return (x.to(dtype), *rest), []
    if corruption in ("narrow", "wide"):
        k = draw(st.integers(1, x.shape[-1] - 1))
        bad = x[..., :-k] if corruption == "narrow" else torch.cat([x, x[..., :k]], dim=-1)
        return (bad, *rest), ["shape", "dimension"]
    if corruption == "flat":  # one number per data point, or the data's own dims lost
        bad = draw(st.sampled_from([x.reshape(len(x), -1)[:, 0], x.reshape(len(x), -1)[:, :1]]))
        return (bad, *rest), ["shape", "dimension"]
    if corruption == "empty":
        return (x[:0], *(t[:0] for t in rest)), ["no data points", "empty"]
    if corruption == "support":
        value = draw(
            st.sampled_from([2, -1, 5, 7]) if dataset.kind == "token" else st.sampled_from([0.5, 2.0, -1.5])
        )
        if dataset.kind == "audio":
            value = draw(st.sampled_from([1.5, -2.0]))
        bad = x.clone()
        bad.view(-1)[index] = value if dataset.kind != "token" else dataset.num_levels + abs(value)
        return (bad, *rest), [f"{float(bad.view(-1)[index]):g}", "support", "expect"]
    # labels: the conditioning tensor spoiled
    y = rest[0]
    how = draw(st.sampled_from(["short", "nan", "extra_dim", "range"]))
    if how == "short":
        return (x, y[:-1]), ["shape", "dimension"]
    if how == "nan":
        return (x, y.float().clone().fill_(math.nan)), ["NaN", "infinite"]
    if how == "extra_dim":
        return (x, y.unsqueeze(-1)), ["shape"]
    if not y.is_floating_point():  # class labels out of range
        return (x, y + draw(st.sampled_from([100, -100, 10]))), ["label", "expect"]
    if dataset.kind == "audio":  # images outside [0, 1]
        return (x, y + 2.0), ["expect"]
    return (x, y[..., :0]), ["shape", "action", "dimension"]  # actions of no width


def _is_wrapped_crash(err: PplgenError) -> bool:
    """A ModelError that only relays an exception raised deep inside torch or Pyro by the zoo program."""
    return isinstance(err, ModelError) and err.__cause__ is not None and " raised " in str(err)


def _check_bad_data(name: str, corruption: str, spoiled: tuple, words: list[str]) -> str:
    model, _, _ = _zoo_model(name)
    try:
        result = pplgen.fit(
            model.model, spoiled, getattr(model, "guide", None), epochs=1, batch_size=16, progress=False,
            device="cpu", seed=0,
        )  # fmt: skip
    except PplgenError as err:
        message = str(err)
        assert not _is_wrapped_crash(err), f"a deep error, only wrapped: {message}"
        if words:
            assert any(word.lower() in message.lower() for word in words), (
                f"the message does not say what came (one of {words}): {message}"
            )
        return type(err).__name__
    assert corruption in TOLERATED, f"{name} trained on {corruption} data without a word"
    values = [v for k, v in result.history[-1].items() if k.endswith("loss") or k.endswith("nll")]
    assert values and all(math.isfinite(v) for v in values), f"non-finite losses {result.history[-1]}"
    return "trained"


def _bad_data_cases(slow: bool = False) -> list:
    cases = []
    for name in ZOO_CASES:
        for corruption in REFUSED + TOLERATED:
            if not _applies(name, corruption):
                continue
            marks = [pytest.mark.slow] if slow else []
            cases.append(pytest.param(name, corruption, marks=marks, id=f"{name}-{corruption}"))
    return cases


def _bad_data_test(name: str, corruption: str, examples: int) -> None:
    model, tensors, dataset = _zoo_model(name)

    @_fuzz_settings(examples, shrink=False)
    @given(st.data())
    def check(draws):
        spoiled, words = draws.draw(_corrupt(tensors, dataset, corruption))
        COUNTS["bad_data"] += 1
        COUNTS[f"bad_data:{name}"] += 1
        COUNTS[f"bad_data_outcome:{_check_bad_data(name, corruption, spoiled, words)}"] += 1

    check()


@pytest.mark.parametrize(("name", "corruption"), _bad_data_cases())
def test_zoo_refuses_bad_data(name, corruption):
    _bad_data_test(name, corruption, examples=2)


@pytest.mark.parametrize(("name", "corruption"), _bad_data_cases(slow=True))
def test_zoo_refuses_bad_data_many(name, corruption):
    _bad_data_test(name, corruption, examples=12)


# --- the counts ---------------------------------------------------------------------------------------


def test_fuzz_counts():
    """Runs last in this module: the fast tests above tried at least :data:`MINIMUM_COUNTS` examples.

    Skipped when the fast tests were deselected (``-m slow``, ``-k``), which leaves nothing to count."""
    counts = fuzz_counts()
    if not all(counts.get(key) for key in MINIMUM_COUNTS):
        pytest.skip("some of the fast fuzz tests did not run in this process")
    for key, minimum in MINIMUM_COUNTS.items():
        assert counts.get(key, 0) >= minimum, (key, counts)
