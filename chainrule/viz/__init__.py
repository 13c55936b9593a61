"""Pictures: the graph as data (``cr.graph``), its layout, SVG and Graphviz drawings, the
interactive HTML page, and plots (activations, costs, training curves)."""

from __future__ import annotations

from .graph_data import BackwardStep, Graph, Node, graph
from .history import plot_history
from .plots import plot_activations, plot_costs

__all__ = [
    "Graph",
    "Node",
    "BackwardStep",
    "graph",
    "plot_history",
    "plot_activations",
    "plot_costs",
]
