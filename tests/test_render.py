"""Plate diagrams and DOT text, checked through the artists and the text rather than the picture."""

import re

import matplotlib.pyplot as plt
import networkx as nx
import pyro
import pyro.distributions as dist
import pytest
import torch

import pplgen
from pplgen.graph import inspect
from pplgen.render import collapse, draw, to_dot
from tests.programs import PROGRAMS


def _graph(name):
    model, args = next(p for p in PROGRAMS if p.name == name).build()
    return inspect(model, *args)


def _gids(ax, prefix):
    artists = [*ax.patches, *ax.texts]
    return sorted(a.get_gid()[len(prefix) :] for a in artists if (a.get_gid() or "").startswith(prefix))


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("program", PROGRAMS, ids=repr)
@pytest.mark.parametrize("params", [False, True])
def test_one_patch_per_plate_and_one_label_per_node(program, params):
    model, args = program.build()
    graph = inspect(model, *args)
    shown = collapse(graph, params=params)
    ax = draw(graph, params=params)
    assert _gids(ax, "plate:") == sorted(graph.graph["plates"])
    assert _gids(ax, "plate-label:") == sorted(graph.graph["plates"])
    assert _gids(ax, "label:") == sorted(shown) == _gids(ax, "node:")
    assert _gids(ax, "edge:") == sorted(f"{u}->{v}" for u, v in shown.edges)
    assert graph.graph["family"] in ax.get_title()


def test_params_are_drawn_only_when_asked():
    graph = _graph("vae")
    assert _gids(draw(graph), "node:") == ["x", "z"]
    assert _gids(draw(graph, params=True), "node:") == ["decoder", "x", "z"]  # one node per network
    assert collapse(graph, params=True).nodes["decoder"]["members"] == [
        f"decoder$$${layer}.{p}" for layer in (0, 2) for p in ("weight", "bias")
    ]


def test_plate_labels_give_name_and_size():
    ax = draw(_graph("subsampled"))
    assert [t.get_text() for t in ax.texts if t.get_gid() == "plate-label:data"] == ["data (N=1000)"]


def test_nested_plate_boxes_nest():
    ax = draw(_graph("hierarchical_regression"))
    boxes = {a.get_gid(): a.get_bbox() for a in ax.patches if (a.get_gid() or "").startswith("plate:")}
    outer, inner = boxes["plate:groups"], boxes["plate:observations"]
    assert outer.x0 < inner.x0 < inner.x1 < outer.x1 and outer.y0 < inner.y0 < inner.y1 < outer.y1


def _long_chain(steps):
    def model(x):
        z = torch.zeros(x.shape[0])
        with pyro.plate("data", x.shape[0]):
            for t in pyro.markov(range(steps)):
                z = pyro.sample(f"z_{t}", dist.Normal(z, 1.0))
                pyro.sample(f"x_{t}", dist.Normal(z, 1.0), obs=x[:, t])

    return model, torch.zeros(3, steps)


def test_a_long_chain_draws_as_one_node():
    model, x = _long_chain(100)
    graph = inspect(model, x)
    assert len(graph.graph["chains"]["z_t"]) == 100
    ax = draw(graph)
    assert _gids(ax, "node:") == ["x_t", "z_t"]
    assert _gids(ax, "loop:") == ["z_t"]  # z_t depends on z_(t-1); x_t on no earlier x
    assert _gids(ax, "edge:") == ["z_t->x_t"]


def test_draw_on_given_axes():
    figure, ax = plt.subplots()
    assert draw(_graph("gmm"), ax) is ax and len(figure.axes) == 1


def test_png_of_vae_and_dmm(tmp_path):
    for name in ("vae", "dmm"):
        ax = draw(_graph(name), params=True)
        ax.figure.savefig(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 1000


def _clusters(dot):
    return re.findall(r"subgraph (cluster_\w+) \{", dot)


@pytest.mark.parametrize("program", PROGRAMS, ids=repr)
def test_dot_is_well_formed(program):
    model, args = program.build()
    graph = inspect(model, *args)
    dot = to_dot(graph)
    assert dot.startswith("digraph ") and dot.rstrip().endswith("}")
    assert dot.count("{") == dot.count("}")
    assert sorted(_clusters(dot)) == sorted(f"cluster_{p}" for p in graph.graph["plates"])
    for name, data in collapse(graph).nodes(data=True):
        line = next(line for line in dot.splitlines() if line.strip().startswith(f'"{name}" ['))
        assert ("fillcolor=gray" in line) == (data["kind"] == "observed")
        assert ("style=dashed" in line) == (data["kind"] == "implicit")
        assert ("shape=diamond" in line) == (data["kind"] == "deterministic")


def test_dot_nests_plates_and_collapses_chains():
    dot = to_dot(_graph("hierarchical_regression"))
    assert dot.index("cluster_groups") < dot.index("cluster_observations") < dot.index('"y" [')
    dmm = to_dot(_graph("dmm"))
    assert '"z_t" -> "z_t"' in dmm and '"z_t" -> "x_t";' in dmm and "z_1" not in dmm
    assert "shape=square" in to_dot(_graph("param_model"), params=True)
    assert '"dmm" -> "z_t"' in to_dot(_graph("dmm"), params=True)


def test_collapse_by_hand():
    graph = nx.DiGraph(plates={"data": 2})
    common = dict(plates=("data",), chain="h_t", dist="Normal")
    graph.add_nodes_from([("h_1", dict(kind="latent", **common)), ("h_2", dict(kind="latent", **common))])
    graph.add_node("w", kind="param", plates=(), chain=None, dist=None)
    graph.add_edges_from([("h_1", "h_2"), ("w", "h_1")])
    shown = collapse(graph)
    assert list(shown) == ["h_t"] and shown.nodes["h_t"]["members"] == ["h_1", "h_2"]
    assert shown.nodes["h_t"]["recurrent"] and shown.number_of_edges() == 0
    assert set(collapse(graph, params=True).edges) == {("w", "h_t")}


def test_public_names():
    assert pplgen.draw is draw and pplgen.to_dot is to_dot
