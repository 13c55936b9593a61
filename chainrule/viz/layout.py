"""A layered layout for computation graphs, for pictures drawn without Graphviz.

Computation graphs are DAGs with a natural direction (sources to sink), so the two main steps
of the Sugiyama method give a clean picture: put each node in a layer (longest path from the
sources, with every source pulled next to its first consumer), then order each layer by the
barycenter of its neighbours in the layer before or after, sweeping both ways a few times to
remove most edge crossings. It is deterministic, linear-ish in the graph's size and needs no
dependency; Graphviz's ``dot`` does the same job better when it is installed, and is used then.

>>> from chainrule.viz.layout import layered_layout
>>> pos = layered_layout([0, 1, 2, 3], [(0, 2), (1, 2), (2, 3)])
>>> [pos[n][0] for n in range(4)]  # layers: the two sources, then 2, then the sink
[0, 0, 1, 2]
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

__all__ = ["layered_layout", "layered_routes"]


def layered_layout(
    nodes: Sequence[Hashable], edges: Sequence[tuple[Hashable, Hashable]], sweeps: int = 4
) -> dict[Hashable, tuple[int, float]]:
    """``{node: (layer, position)}`` for a DAG (edges point from parent to child).

    ``layer`` counts from the sources (0) to the sink; ``position`` is the node's rank within
    its layer, offset so that small layers sit in the middle of large ones.
    """
    return layered_routes(nodes, edges, sweeps)[0]


def layered_routes(
    nodes: Sequence[Hashable], edges: Sequence[tuple[Hashable, Hashable]], sweeps: int = 4
) -> tuple[dict[Hashable, tuple[int, float]], dict[tuple[Hashable, Hashable], list]]:
    """The layout and, for every edge that spans more than one layer, the waypoints
    ``[(layer, position), ...]`` it passes through. Each waypoint is a placeholder node that
    took part in the ordering, so a long edge gets a lane of its own instead of running
    behind the boxes of the layers it crosses."""
    parents: dict[Hashable, list[Hashable]] = {n: [] for n in nodes}
    children: dict[Hashable, list[Hashable]] = {n: [] for n in nodes}
    for a, b in edges:
        parents[b].append(a)
        children[a].append(b)
    order = _topological(nodes, parents, children)
    layer: dict[Hashable, int] = {}
    for n in order:  # topological order: every parent is placed before its child
        layer[n] = 1 + max((layer[p] for p in parents[n]), default=-1)
    for n in reversed(order):  # a source sits just before its first consumer
        if not parents[n] and children[n]:
            layer[n] = min(layer[c] for c in children[n]) - 1
    # long edges become chains through placeholder nodes, one per layer crossed
    up: dict[Hashable, list[Hashable]] = {n: [] for n in order}
    down: dict[Hashable, list[Hashable]] = {n: [] for n in order}
    chains: dict[tuple[Hashable, Hashable], list[Hashable]] = {}
    for a, b in dict.fromkeys(edges):  # each distinct edge once
        previous = a
        chain: list[Hashable] = []
        for k in range(layer[a] + 1, layer[b]):
            dummy = ("waypoint", a, b, k)
            layer[dummy] = k
            up[dummy], down[dummy] = [], []
            chain.append(dummy)
        for step in [*chain, b]:
            down[previous].append(step)
            up[step].append(previous)
            previous = step
        if chain:
            chains[(a, b)] = chain
    depth = max(layer.values(), default=0) + 1
    rows: list[list[Hashable]] = [[] for _ in range(depth)]
    for n in [*order, *(d for chain in chains.values() for d in chain)]:
        rows[layer[n]].append(n)
    rank = {n: float(i) for row in rows for i, n in enumerate(row)}

    def reorder(row: list[Hashable], neighbours: dict[Hashable, list[Hashable]]) -> None:
        def key(n: Hashable) -> float:
            near = neighbours[n]
            return sum(rank[m] for m in near) / len(near) if near else rank[n]

        row.sort(key=key)
        for i, n in enumerate(row):
            rank[n] = float(i)

    for _ in range(sweeps):
        for row in rows[1:]:
            reorder(row, up)
        for row in reversed(rows[:-1]):
            reorder(row, down)
    widest = max((len(row) for row in rows), default=1)
    placed: dict[Hashable, tuple[int, float]] = {}
    for i, row in enumerate(rows):
        offset = (widest - len(row)) / 2.0
        for j, n in enumerate(row):
            placed[n] = (i, offset + j)
    positions = {n: placed[n] for n in order}
    routes = {edge: [placed[d] for d in chain] for edge, chain in chains.items()}
    return positions, routes


def _topological(
    nodes: Sequence[Hashable],
    parents: dict[Hashable, list[Hashable]],
    children: dict[Hashable, list[Hashable]],
) -> list[Hashable]:
    """Kahn's algorithm, keeping the given order among nodes that are ready together."""
    waiting = {n: len(parents[n]) for n in nodes}
    order_of = {n: i for i, n in enumerate(nodes)}
    ready = sorted((n for n in nodes if waiting[n] == 0), key=order_of.__getitem__, reverse=True)
    out: list[Hashable] = []
    while ready:
        n = ready.pop()
        out.append(n)
        for c in children[n]:
            waiting[c] -= 1
            if waiting[c] == 0:
                ready.append(c)
                ready.sort(key=order_of.__getitem__, reverse=True)
    if len(out) != len(nodes):
        raise ValueError("layered_layout: the graph has a cycle")
    return out
