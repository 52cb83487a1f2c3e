"""The graph of a program: edges agree with Pyro's inspect, kinds, plates, flags, chains, the family rule."""

import networkx as nx
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer.inspect import get_model_relations

import pplgen
from pplgen.errors import ModelError
from pplgen.graph import FAMILIES, KINDS, NODE_ATTRIBUTES, classify, explain_family, inspect
from tests import programs
from tests.programs import PROGRAMS


def _inspect(program):
    model, args = program.build()
    return inspect(model, *args)


def _sample_edges(graph):
    """Edges between non-deterministic sample sites, with ``u -> det -> v`` contracted to ``u -> v``."""
    graph = graph.copy()
    for node in [n for n, kind in graph.nodes(data="kind") if kind in ("deterministic", "param")]:
        if graph.nodes[node]["kind"] == "deterministic":
            graph.add_edges_from((u, v) for u in graph.predecessors(node) for v in graph.successors(node))
        graph.remove_node(node)
    return {(u, v) for u, v in graph.edges if u != v}


def _pyro_edges(build):
    model, args = build()
    relations = get_model_relations(model, args)
    kinds = {n: k for n, k in inspect(model, *args).nodes(data="kind")}
    return {
        (u, v) for v, ups in relations["sample_sample"].items() if kinds[v] != "deterministic" for u in ups
    }


@pytest.mark.parametrize("program", PROGRAMS, ids=repr)
def test_edges_agree_with_pyro(program):
    graph = _inspect(program)
    assert _sample_edges(graph) == _pyro_edges(program.reference or program.build)


@pytest.mark.parametrize("program", PROGRAMS, ids=repr)
def test_family_and_reason(program):
    graph = _inspect(program)
    assert graph.graph["family"] == program.family == classify(graph)
    assert graph.graph["reason"].startswith(program.family + ": ")
    assert graph.graph["program"].endswith(".model")


@pytest.mark.parametrize("program", PROGRAMS, ids=repr)
def test_every_node_has_every_attribute(program):
    graph = _inspect(program)
    for name, data in graph.nodes(data=True):
        assert set(NODE_ATTRIBUTES) <= set(data), name
        assert data["kind"] in KINDS
        assert isinstance(data["batch_shape"], tuple) and isinstance(data["event_shape"], tuple)
        assert isinstance(data["plates"], tuple)
        assert all(plate in graph.graph["plates"] for plate in data["plates"])
        assert data["scale"] == "tensor" or isinstance(data["scale"], float)
        assert (data["dist"] is None) == (data["kind"] == "param")
    assert graph.graph["family"] in FAMILIES
    assert set(graph.graph) >= {"family", "reason", "plates", "data_plates", "chains", "program"}


def test_vae_kinds_params_and_locality():
    graph = _graph("vae")
    nodes = graph.nodes
    assert (nodes["z"]["kind"], nodes["x"]["kind"]) == ("latent", "observed")
    assert nodes["z"]["plates"] == ("data",) and nodes["z"]["local"]
    assert nodes["z"]["reparameterized"] and not nodes["z"]["discrete"]
    assert nodes["x"]["dist"] == "Bernoulli" and nodes["x"]["discrete"]
    assert nodes["x"]["event_shape"] == (programs.X_DIM,) and nodes["x"]["batch_shape"] == (programs.BATCH,)
    params = [n for n, k in nodes(data="kind") if k == "param"]
    assert params and all(n.startswith("decoder$$$") for n in params)
    assert all(graph.has_edge(p, "x") for p in params)
    assert nodes["decoder$$$0.weight"]["event_shape"] == (programs.HIDDEN, programs.Z_DIM)


def test_pyro_module_parameters_are_nodes():
    graph = _graph("vae_module")
    params = {n for n, k in graph.nodes(data="kind") if k == "param"}
    assert params == {"decoder.weight", "decoder.bias"}
    assert all(graph.has_edge(p, "x") for p in params)


def _build(name):
    return next(p for p in PROGRAMS if p.name == name).build()


def _graph(name):
    model, args = _build(name)
    return inspect(model, *args)


def test_enumerated_discrete_latents():
    ssvae = _graph("ssvae").nodes["y"]
    assert ssvae["kind"] == "latent" and ssvae["discrete"] and ssvae["enumerate"] == "parallel"
    gmm = _graph("gmm").nodes
    assert gmm["assignment"]["enumerate"] == "parallel" and gmm["assignment"]["discrete"]
    assert gmm["weights"]["enumerate"] is None and not gmm["weights"]["local"]
    assert gmm["locs"]["plates"] == ("components",) and not gmm["locs"]["local"]


def test_ssvae_with_label_observed():
    model, (x,) = _build("ssvae")
    y = torch.nn.functional.one_hot(torch.arange(x.shape[0]) % 3, 3).float()
    assert inspect(model, x, y).nodes["y"]["kind"] == "observed"


def test_nested_plates():
    graph = _graph("hierarchical_regression")
    assert graph.nodes["y"]["plates"] == ("groups", "observations")
    assert graph.nodes["intercept"]["plates"] == ("groups",)
    assert graph.graph["plates"] == {"groups": 3, "observations": 4}
    assert graph.graph["data_plates"] == ("groups",)


def test_mask_and_scale():
    nodes = _graph("masked_scaled").nodes
    assert nodes["x"]["masked"] and not nodes["y"]["masked"] and not nodes["z"]["masked"]
    assert (nodes["z"]["scale"], nodes["w"]["scale"], nodes["x"]["scale"]) == (1.0, 0.5, 1.0)
    assert nodes["y"]["scale"] == "tensor"


def test_subsampled_plate():
    graph = _graph("subsampled")
    assert graph.graph["plates"] == {"data": 1000} and graph.graph["data_plates"] == ("data",)
    assert graph.nodes["obs"]["batch_shape"] == (10,) and graph.nodes["obs"]["scale"] == 100.0
    assert "data" not in graph  # a plate's subsample site is not a node


def test_autoregressive_and_implicit_flags():
    assert _graph("fvsbn").nodes["x"]["autoregressive"]
    assert not _graph("flow").nodes["x"]["autoregressive"]
    gan = _graph("gan")
    assert gan.nodes["x"]["kind"] == "implicit" and gan.nodes["x"]["dist"] == "Implicit"
    assert gan.has_edge("z", "x")


def test_deterministic_site_sits_between_parents_and_children():
    graph = _graph("deterministic")
    assert graph.nodes["loc"]["kind"] == "deterministic" and not graph.nodes["loc"]["masked"]
    assert graph.has_edge("z", "loc") and graph.has_edge("loc", "x") and not graph.has_edge("z", "x")


def test_param_sites():
    graph = _graph("param_model")
    assert graph.nodes["scale"]["kind"] == "param" and graph.nodes["scale"]["event_shape"] == (2,)
    assert graph.has_edge("loc", "z") and graph.has_edge("scale", "z")


def test_data_plates_need_a_tensor_argument():
    def model(n):
        with pyro.plate("data", n):
            pyro.sample("x", dist.Normal(0.0, 1.0), obs=torch.zeros(n))

    graph = inspect(model, 3)
    assert graph.graph["data_plates"] == () and not graph.nodes["x"]["local"]


def test_markov_chains_are_grouped():
    graph = _graph("dmm")
    steps = range(1, 5)
    assert graph.graph["chains"] == {"z_t": [f"z_{t}" for t in steps], "x_t": [f"x_{t}" for t in steps]}
    assert all(graph.nodes[f"z_{t}"]["chain"] == "z_t" for t in steps)
    assert graph.graph["data_plates"] == ("sequences",)
    chain = _graph("autoregressive_chain")
    assert chain.graph["chains"] == {"x_t": ["x_0", "x_1", "x_2", "x_3"]}
    assert all(chain.has_edge(f"x_{i}", f"x_{j}") for j in range(4) for i in range(j))


def test_short_runs_are_not_chains():
    def model():
        a = pyro.sample("z_1", dist.Normal(0.0, 1.0))
        pyro.sample("z_2", dist.Normal(a, 1.0), obs=torch.tensor(0.0))

    graph = inspect(model)
    assert graph.graph["chains"] == {} and graph.nodes["z_1"]["chain"] is None


def test_no_side_effects():
    pyro.get_param_store().setdefault("existing", torch.ones(1))  # a user's trained parameter
    model, (x,) = programs.param_model()
    vae, args = programs.vae()
    x.requires_grad_(True)
    keys, rng = set(pyro.get_param_store().keys()), torch.get_rng_state()
    inspect(model, x)
    inspect(vae, *args)
    assert torch.equal(torch.get_rng_state(), rng)
    assert set(pyro.get_param_store().keys()) == keys
    assert x.grad is None


def test_a_program_that_raises_is_a_model_error():
    def broken(x):
        pyro.sample("z", dist.Normal(0.0, 1.0))
        raise RuntimeError("shapes do not match")

    with pytest.raises(ModelError, match="broken.*RuntimeError: shapes do not match"):
        inspect(broken, torch.zeros(2))


def test_a_program_without_sample_sites_is_a_model_error():
    def empty(x):
        return pyro.param("w", torch.zeros(1)) * x

    with pytest.raises(ModelError, match="empty.*no sample sites"):
        inspect(empty, torch.zeros(2))


def test_a_program_that_observes_nothing_is_a_model_error():
    def model():
        pyro.deterministic("d", torch.zeros(1))

    with pytest.raises(ModelError, match="model.*observes no site"):
        inspect(model)


def _hand_built(**kinds):
    graph = nx.DiGraph(program="by_hand")
    graph.add_nodes_from((name, {"kind": kind}) for name, kind in kinds.items())
    return graph


@pytest.mark.parametrize(
    ("kinds", "family"),
    [
        ({"x": "observed"}, "exact"),
        ({"x": "observed", "w": "param", "d": "deterministic"}, "exact"),
        ({"z": "latent", "x": "observed"}, "latent"),
        ({"z": "latent"}, "latent"),
        ({"z": "latent", "x": "implicit"}, "implicit"),
        ({"x": "implicit", "y": "observed"}, "implicit"),
    ],
)
def test_classify_hand_built_graphs(kinds, family):
    graph = _hand_built(**kinds)
    assert classify(graph) == family
    reason = explain_family(graph)[1]
    decisive = {"exact": "observed", "latent": "latent", "implicit": "implicit"}[family]
    assert reason.startswith(family) and all(f"'{n}'" in reason for n, k in kinds.items() if k == decisive)


def test_classify_refuses_a_graph_with_nothing_to_fit():
    with pytest.raises(ModelError, match="by_hand"):
        classify(_hand_built(w="param"))


def test_public_names():
    assert pplgen.inspect is inspect and pplgen.classify is classify


def test_obs_mask_splits_a_site():
    def model(x, present):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(z, 1.0), obs=x, obs_mask=present)

    graph = inspect(model, torch.zeros(4), torch.tensor([True, False, True, True]))
    kinds = {n: (k, graph.nodes[n]["masked"]) for n, k in graph.nodes(data="kind")}
    assert kinds["x_observed"] == ("observed", True) and kinds["x_unobserved"] == ("latent", True)
    assert kinds["x"] == ("deterministic", False) and graph.has_edge("x_unobserved", "x")


def test_a_latent_model_with_an_autoregressive_likelihood_is_latent():
    graph = _hand_built(z="latent", x="observed")
    graph.nodes["x"]["autoregressive"] = True
    family, reason = explain_family(graph)
    assert family == "latent" and "site 'x' is autoregressive" in reason
