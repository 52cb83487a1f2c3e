"""A program's graph as a plate diagram."""

from __future__ import annotations

import networkx as nx
from matplotlib.figure import Figure

from pplgen.render import draw

__all__ = ["plate_diagram"]


def plate_diagram(graph: nx.DiGraph, params: bool = False) -> Figure:
    """The plate diagram of a program's graph (:func:`pplgen.render.draw`) on a figure of its own.

    Args:
        graph: a graph from :func:`pplgen.graph.inspect`.
        params: also draw param sites.

    Returns:
        A new figure sized to the graph.
    """
    return draw(graph, ax=None, params=params).figure
