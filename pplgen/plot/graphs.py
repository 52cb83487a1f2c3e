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

    Example:
        A coin whose bias is a parameter: drawn only with ``params=True``.

        >>> import matplotlib.pyplot as plt
        >>> import pyro, torch, pyro.distributions as dist
        >>> from pplgen.graph import inspect
        >>> def coin(flips):
        ...     bias = pyro.param("bias", torch.tensor(0.0))
        ...     with pyro.plate("flips", len(flips)):
        ...         pyro.sample("flip", dist.Bernoulli(logits=bias), obs=flips)
        >>> graph = inspect(coin, torch.ones(4))
        >>> for params in (False, True):
        ...     figure = plate_diagram(graph, params=params)
        ...     print(len(figure.axes), sorted(p.get_gid() for p in figure.axes[0].patches if p.get_gid()))
        ...     plt.close(figure)
        1 ['node:flip', 'plate:flips']
        1 ['edge:bias->flip', 'node:bias', 'node:flip', 'plate:flips']

    References:
        Koller & Friedman (2009), "Probabilistic graphical models: principles and techniques", ch. 6
        (plate notation).
    """
    return draw(graph, ax=None, params=params).figure
