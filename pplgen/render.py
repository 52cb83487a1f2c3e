"""Draw the graph of a program as a plate diagram (matplotlib) or as Graphviz DOT text.

Both read the plain data that :func:`pplgen.graph.inspect` returns. A Markov chain (``z_1 ... z_T``) is
shown as one node, labelled with the chain's name, whose dependence on its own past is a self-loop, so
that a chain of 784 steps stays legible.

References:
    Koller & Friedman (2009), "Probabilistic graphical models", ch. 6 (plate notation).
    Pyro's ``pyro.infer.inspect.render_model`` (a plate diagram drawn from a program's relations).
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import networkx as nx

__all__ = ["collapse", "draw", "to_dot"]

RADIUS = 0.3  # a node's half height, in data units
COLUMN, ROW = 1.7, 1.0  # distance between generations (left to right) and between rows
PAD, LABEL = 0.15, 0.28  # a plate's padding per nesting level; room for its label under its members
LOOP = 0.55  # room over a chain's node for its self-loop and caption
CHAR = 0.11  # width of one character of a 9-point label, in data units (figures are drawn at UNIT)
UNIT = 0.9  # inches per data unit in a figure that draw creates
FACE = {"observed": "0.75", "implicit": "0.92"}


def collapse(graph: nx.DiGraph, *, params: bool = False) -> nx.DiGraph:
    """The graph as it is drawn: one node per site, per Markov chain, or (when ``params``) per network.

    A chain node keeps its first step's attributes, with the plates every step shares, and adds
    ``members`` (its sites) and ``recurrent`` (a step depends on an earlier step). The parameters of
    one network (``decoder$$$0.weight``, ``decoder.0.bias``: the same name before the first ``.`` or
    ``$$$``) are one param node named after it. Other nodes get ``members=[name]`` and
    ``recurrent=False``. Edges inside a group are dropped.

    Example:
        A state-space model of four steps, eight sites, is drawn as two nodes:

        >>> import pyro, torch, pyro.distributions as dist
        >>> from pplgen.graph import inspect
        >>> def ssm(x):
        ...     z = torch.zeros(())
        ...     for t in range(len(x)):
        ...         z = pyro.sample(f"z_{t}", dist.Normal(z, 1.0))
        ...         pyro.sample(f"x_{t}", dist.Normal(z, 1.0), obs=x[t])
        >>> graph = inspect(ssm, torch.zeros(4))
        >>> shown = collapse(graph)
        >>> graph.number_of_nodes(), sorted(shown), list(shown.edges)
        (8, ['x_t', 'z_t'], [('z_t', 'x_t')])
        >>> shown.nodes["z_t"]["members"], shown.nodes["z_t"]["recurrent"], shown.nodes["x_t"]["recurrent"]
        (['z_0', 'z_1', 'z_2', 'z_3'], True, False)
    """
    group = {
        name: _group(graph, name, data)
        for name, data in graph.nodes(data=True)
        if params or data["kind"] != "param"
    }
    shown = nx.DiGraph(**graph.graph)
    for name, node in group.items():
        if node not in shown:
            shown.add_node(node, **graph.nodes[name], members=[], recurrent=False)
        shown.nodes[node]["members"].append(name)
    for _, data in shown.nodes(data=True):
        plates = [graph.nodes[m]["plates"] for m in data["members"]]
        data["plates"] = tuple(p for p in plates[0] if all(p in other for other in plates))
    for u, v in graph.edges:
        if u in group and v in group:
            if group[u] == group[v]:
                shown.nodes[group[u]]["recurrent"] = True
            else:
                shown.add_edge(group[u], group[v])
    return shown


def _group(graph: nx.DiGraph, name: str, data: dict) -> str:
    """The node a site is drawn as: its chain, its network (for a parameter), or itself."""
    if data["kind"] != "param":
        return data.get("chain") or name
    network = re.split(r"\$\$\$|\.", name, maxsplit=1)[0]
    clash = network in graph and graph.nodes[network]["kind"] != "param"
    return name if clash else network


def _columns(shown: nx.DiGraph) -> dict[str, int]:
    """Left-to-right column of each node: its topological generation (cycles between chains merged),
    with every source moved next to its first child so that arrows from globals stay short."""
    condensed = nx.condensation(shown)
    column = {}
    for index, generation in enumerate(nx.topological_generations(condensed)):
        for component in generation:
            for node in condensed.nodes[component]["members"]:
                column[node] = index
    for node in shown:
        if shown.in_degree(node) == 0 and shown.out_degree(node) > 0:
            column[node] = min(column[child] for child in shown.successors(node)) - 1
    return column


def _extent(data: dict, name: str) -> tuple[float, float]:
    """Half width and half height of a node's shape: an ellipse wide enough for its label."""
    if data["kind"] == "param":
        return RADIUS / 3, RADIUS / 3
    if data["kind"] == "deterministic":
        return RADIUS * 0.6, RADIUS * 0.6
    return max(RADIUS, CHAR * len(_text(name)) / 2 + 0.1), RADIUS


def _text(name: str) -> str:
    return name.replace("$$$", ".")  # pyro.module's namespace divider


def _layout(shown: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """Node positions: x by column; y in bands, one band per tuple of plates, globals on top.

    Bands are sorted by their plates, so every plate's members lie in consecutive bands and a plate's
    rectangle holds its members and nothing else; the gap between two bands leaves room for the
    padding and labels of the plates that close above it and open below it.
    """
    column = _columns(shown)
    order = {p: i for i, p in enumerate(dict.fromkeys(p for _, ps in shown.nodes(data="plates") for p in ps))}
    bands: dict[tuple, dict[int, list[str]]] = {}
    for node, plates in shown.nodes(data="plates"):
        bands.setdefault(plates, {}).setdefault(column[node], []).append(node)
    position, y, previous = {}, 0.0, None
    for plates in sorted(bands, key=lambda ps: [order[p] for p in ps]):
        loop = LOOP if any(shown.nodes[nodes[0]]["recurrent"] for nodes in bands[plates].values()) else 0.0
        if previous is not None:
            closing = sum(p not in plates for p in previous)
            opening = sum(p not in previous for p in plates)
            y -= max(ROW, 2 * RADIUS + 0.45 + (PAD + LABEL) * closing + PAD * opening + loop)
        for col, nodes in bands[plates].items():
            for row, node in enumerate(nodes):
                position[node] = (col * COLUMN, y - row * ROW)
        y -= (max(len(nodes) for nodes in bands[plates].values()) - 1) * ROW
        previous = plates
    return position


def _node_box(shown: nx.DiGraph, position: dict, node: str) -> tuple[float, float, float, float]:
    """What a node occupies, with its label and self-loop: ``(x0, y0, x1, y1)``."""
    (x, y), data = position[node], shown.nodes[node]
    a, b = _extent(data, node)
    text = 0.8 * CHAR * len(_text(node))  # a 7-point label outside the shape
    if data["kind"] == "param":  # label on the left, away from the arrows
        return x - a - 0.05 - text, y - b, x + a, y + b
    if data["kind"] == "deterministic":  # label underneath
        return x - max(a, text / 2), y - b - 0.22, x + max(a, text / 2), y + b
    return x - a, y - b, x + a, y + b + (LOOP if data["recurrent"] else 0.0)


def _plate_boxes(shown: nx.DiGraph, position: dict) -> dict[str, tuple[float, float, float, float]]:
    """Each plate's rectangle ``(x0, y0, x1, y1)`` around its members and the plates nested in it."""
    inner: dict[str, set] = {}
    for _, plates in shown.nodes(data="plates"):
        for i, plate in enumerate(plates):
            inner.setdefault(plate, set()).update(plates[i + 1 :])
    boxes: dict[str, tuple[float, float, float, float]] = {}
    for plate in sorted(inner, key=lambda p: len(inner[p])):  # innermost first
        parts = [_node_box(shown, position, n) for n, ps in shown.nodes(data="plates") if plate in ps]
        parts += [boxes[q] for q in inner[plate]]
        x0, y0, x1, y1 = (f(part[i] for part in parts) for i, f in enumerate((min, min, max, max)))
        label = 0.8 * CHAR * len(_plate_label(shown, plate)) + 0.2
        boxes[plate] = (min(x0 - PAD, x1 + PAD - label), y0 - PAD - LABEL, x1 + PAD, y1 + PAD)
    return boxes


def _plate_label(shown: nx.DiGraph, plate: str) -> str:
    return f"{plate} (N={shown.graph.get('plates', {}).get(plate, '?')})"


def _node_patch(data: dict, xy: tuple[float, float], name: str) -> Any:
    from matplotlib.patches import Ellipse, Rectangle, RegularPolygon

    a, b = _extent(data, name)
    if data["kind"] == "param":
        patch = Rectangle((xy[0] - a, xy[1] - b), 2 * a, 2 * b, facecolor="black")
    elif data["kind"] == "deterministic":
        patch = RegularPolygon(xy, 4, radius=a, facecolor="white", edgecolor="black")
    else:
        patch = Ellipse(xy, 2 * a, 2 * b, facecolor=FACE.get(data["kind"], "white"), edgecolor="black")
        patch.set_linestyle("--" if data["kind"] == "implicit" else "-")
    patch.set_gid(f"node:{name}")
    patch.set_zorder(3)
    return patch


def _label(ax: Any, name: str, data: dict, xy: tuple[float, float]) -> None:
    """The node's name: inside its ellipse, left of a param's square, under a deterministic diamond."""
    a, b = _extent(data, name)
    if data["kind"] == "param":
        xy, where = (xy[0] - a - 0.05, xy[1]), dict(ha="right", va="center", fontsize=7)
    elif data["kind"] == "deterministic":
        xy, where = (xy[0], xy[1] - b - 0.03), dict(ha="center", va="top", fontsize=7)
    else:
        where = dict(ha="center", va="center", fontsize=9)
    ax.text(*xy, _text(name), gid=f"label:{name}", zorder=4, **where)


def _boundary(data: dict, name: str, xy: tuple[float, float], ux: float, uy: float) -> tuple[float, float]:
    """Where the ray from a node's centre along ``(ux, uy)`` leaves its shape."""
    a, b = _extent(data, name)
    t = 1.0 / ((ux / a) ** 2 + (uy / b) ** 2) ** 0.5
    return xy[0] + t * ux, xy[1] + t * uy


def _edge(ax: Any, shown: nx.DiGraph, position: dict, u: str, v: str) -> None:
    from matplotlib.patches import FancyArrowPatch

    (x0, y0), (x1, y1) = position[u], position[v]
    length = max(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5, 1e-9)
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    start = _boundary(shown.nodes[u], u, position[u], ux, uy)
    end = _boundary(shown.nodes[v], v, position[v], -ux, -uy)
    arrow = FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10, lw=0.8, shrinkA=0, shrinkB=1)
    arrow.set_gid(f"edge:{u}->{v}")
    arrow.set_zorder(2)
    ax.add_patch(arrow)


def _self_loop(ax: Any, name: str, xy: tuple[float, float]) -> None:
    """A chain's dependence on its own past: a loop over the node, captioned ``t-1 -> t``."""
    from matplotlib.patches import FancyArrowPatch

    x, y = xy
    start, end = (x - 0.18, y + RADIUS * 0.9), (x + 0.18, y + RADIUS * 0.9)
    loop = FancyArrowPatch(
        start, end, connectionstyle="arc3,rad=-1.4", arrowstyle="-|>", mutation_scale=8, lw=0.8
    )
    loop.set_gid(f"loop:{name}")
    ax.add_patch(loop)
    ax.text(x, y + RADIUS + 0.3, "t-1 → t", ha="center", va="bottom", fontsize=6, gid=f"loop-label:{name}")


def _plate(ax: Any, label: str, name: str, box: tuple[float, float, float, float]) -> None:
    from matplotlib.patches import FancyBboxPatch

    x0, y0, x1, y1 = box
    patch = FancyBboxPatch(
        (x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0,rounding_size=0.12",
        facecolor="none", edgecolor="0.3", lw=0.9, zorder=1,
    )  # fmt: skip
    patch.set_gid(f"plate:{name}")
    ax.add_patch(patch)
    ax.text(x1 - 0.08, y0 + 0.07, label, ha="right", va="bottom", fontsize=7, gid=f"plate-label:{name}")


def draw(graph: nx.DiGraph, ax: Any = None, *, params: bool = False) -> Any:
    """Draw a program's graph as a plate diagram.

    Nodes are laid out left to right by topological generation. Latent sites are white ellipses,
    observed ones grey, implicit ones dashed, deterministic sites small diamonds and params (when
    ``params``) small black squares; a Markov chain is one node with a self-loop; plates are rounded
    rectangles labelled with their name and size; the title gives the family and why. Every artist
    carries a ``gid`` (``node:NAME``, ``label:NAME``, ``edge:U->V``, ``loop:NAME``, ``plate:NAME``,
    ``plate-label:NAME``) so that the picture can be checked through them.

    References:
        Koller & Friedman (2009), "Probabilistic graphical models", ch. 6 (plate notation).

    Args:
        graph: a graph from :func:`pplgen.graph.inspect`.
        ax: matplotlib Axes to draw on; a new figure sized to the graph when ``None``.
        params: also draw param sites.

    Returns:
        The Axes drawn on.

    Example:
        >>> import matplotlib.pyplot as plt
        >>> import pyro, torch, pyro.distributions as dist
        >>> from pplgen.graph import inspect
        >>> def model(x):
        ...     z = pyro.sample("z", dist.Normal(0.0, 1.0))
        ...     with pyro.plate("data", len(x)):
        ...         pyro.sample("x", dist.Normal(z, 1.0), obs=x)
        >>> ax = draw(inspect(model, torch.zeros(3)))
        >>> len(ax.figure.axes), sorted(p.get_gid() for p in ax.patches if p.get_gid())
        (1, ['edge:z->x', 'node:x', 'node:z', 'plate:data'])
        >>> ax.get_title().splitlines()[0]
        'family: latent'
        >>> plt.close(ax.figure)
    """
    shown = collapse(graph, params=params)
    position = _layout(shown)
    boxes = _plate_boxes(shown, position)
    extents = [_node_box(shown, position, n) for n in shown] + list(boxes.values())
    x0, y0 = min(e[0] for e in extents) - 0.2, min(e[1] for e in extents) - 0.2
    x1, y1 = max(e[2] for e in extents) + 0.2, max(e[3] for e in extents) + 0.2
    if ax is None:
        ax = _new_axes(UNIT * (x1 - x0), UNIT * (y1 - y0), _title(graph, max(4.5, UNIT * (x1 - x0))))
    for name, box in boxes.items():
        _plate(ax, _plate_label(shown, name), name, box)
    for u, v in shown.edges:
        _edge(ax, shown, position, u, v)
    for name, data in shown.nodes(data=True):
        ax.add_patch(_node_patch(data, position[name], name))
        _label(ax, name, data, position[name])
        if data["recurrent"]:
            _self_loop(ax, name, position[name])
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(_title(graph, ax.figure.get_figwidth() * ax.get_position().width), fontsize=9)
    return ax


def _title(graph: nx.DiGraph, inches: float) -> str:
    """The family and the reason, wrapped to the width of the drawing (14 characters of 9 points an inch)."""
    reason = textwrap.fill(graph.graph.get("reason", ""), max(int(inches * 14), 40))
    return f"family: {graph.graph.get('family', '?')}\n{reason}"


def _new_axes(width: float, height: float, title: str) -> Any:
    """Axes filling a new figure at :data:`UNIT` inches per data unit, with room above for the title."""
    import matplotlib.pyplot as plt

    title_height = 0.17 * (title.count("\n") + 1) + 0.2
    figure = plt.figure(figsize=(max(4.5, width), height + title_height))
    return figure.add_axes((0.0, 0.0, 1.0, height / (height + title_height)))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_DOT_STYLE = {
    "latent": "shape=ellipse",
    "observed": "shape=ellipse style=filled fillcolor=gray",
    "implicit": "shape=ellipse style=dashed",
    "deterministic": "shape=diamond",
    "param": 'shape=square style=filled fillcolor=black width=0.12 label=""',
}


def _dot_node(name: str, data: dict) -> str:
    style = _DOT_STYLE[data["kind"]]
    label = f"xlabel={_quote(name)}" if data["kind"] == "param" else f"label={_quote(name)}"
    return f"{_quote(name)} [{label} {style}];"


def _dot_plates(shown: nx.DiGraph, prefix: tuple, sizes: dict, used: set, indent: str) -> list[str]:
    """The DOT lines of the nodes whose plates are ``prefix``, and of one cluster per inner plate."""
    lines = [indent + _dot_node(n, d) for n, d in shown.nodes(data=True) if d["plates"] == prefix]
    inner = dict.fromkeys(
        ps[len(prefix)]
        for _, ps in shown.nodes(data="plates")
        if ps[: len(prefix)] == prefix and len(ps) > len(prefix)
    )
    for plate in inner:
        cluster = "cluster_" + re.sub(r"\W", "_", plate)
        while cluster in used:  # crossed plates: a plate met under two parents is two clusters
            cluster += "_"
        used.add(cluster)
        lines.append(f"{indent}subgraph {cluster} {{")
        label = _quote(f"{plate} (N={sizes.get(plate, '?')})")
        lines.append(f"{indent}  label={label}; labeljust=r; labelloc=b;")
        lines += _dot_plates(shown, (*prefix, plate), sizes, used, indent + "  ")
        lines.append(f"{indent}}}")
    return lines


def to_dot(graph: nx.DiGraph, *, params: bool = False) -> str:
    """Graphviz DOT text of a program's graph (no Graphviz package needed to produce it).

    Plates are ``subgraph cluster_<name>`` blocks labelled with name and size, observed sites are
    filled grey, implicit ones dashed, deterministic ones diamonds; a chain is one node with a
    self-loop labelled ``t-1 -> t``. Render it with ``dot -Tpng``.

    References:
        Koller & Friedman (2009), "Probabilistic graphical models", ch. 6 (plate notation).

    Args:
        graph: a graph from :func:`pplgen.graph.inspect`.
        params: also show param sites.

    Returns:
        The DOT source.

    Example:
        A random walk ``h_0, ..., h_3`` is one chain node with its self-loop:

        >>> import pyro, torch, pyro.distributions as dist
        >>> from pplgen.graph import inspect
        >>> def walk(x):
        ...     h = pyro.sample("h_0", dist.Normal(0.0, 1.0))
        ...     for t in range(1, 4):
        ...         h = pyro.sample(f"h_{t}", dist.Normal(h, 1.0))
        ...     with pyro.plate("data", len(x)):
        ...         pyro.sample("x", dist.Normal(h, 1.0), obs=x)
        >>> print(to_dot(inspect(walk, torch.zeros(3))))
        digraph "...walk" {
          rankdir=LR;
          label="family: latent";
          "h_t" [label="h_t" shape=ellipse];
          subgraph cluster_data {
            label="data (N=3)"; labeljust=r; labelloc=b;
            "x" [label="x" shape=ellipse style=filled fillcolor=gray];
          }
          "h_t" -> "x";
          "h_t" -> "h_t" [label="t-1 -> t"];
        }
        <BLANKLINE>
    """
    shown = collapse(graph, params=params)
    title = f"family: {graph.graph.get('family', '?')}"
    lines = [
        f"digraph {_quote(graph.graph.get('program', 'program'))} {{",
        "  rankdir=LR;",
        f"  label={_quote(title)};",
    ]
    lines += _dot_plates(shown, (), graph.graph.get("plates", {}), set(), "  ")
    lines += [f"  {_quote(u)} -> {_quote(v)};" for u, v in shown.edges]
    lines += [
        f'  {_quote(n)} -> {_quote(n)} [label="t-1 -> t"];' for n, r in shown.nodes(data="recurrent") if r
    ]
    return "\n".join([*lines, "}"]) + "\n"
