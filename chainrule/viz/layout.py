"""A layered layout for computation graphs, for pictures drawn without Graphviz.

Computation graphs are DAGs with a natural direction (sources to sink), so the Sugiyama
method gives a clean picture in four steps:

1. **layers**: each node one layer past its deepest parent, then pulled down next to its
   first consumer (a parameter, or a chain of side ops on it, sits by the op that uses it);
   an edge that spans several layers gets a placeholder (a waypoint) in each layer it
   crosses, so that it runs in a lane of its own;
2. **order**: each layer sorted by the barycenter of its neighbours in the layer before or
   after, sweeping both ways a few times to remove most edge crossings;
3. **straighten**: each node moved toward the mean position of its neighbours, keeping the
   order and the gaps (an isotonic regression per layer), so that chains run straight;
4. **fold**: a deep graph would be one long strip (a 2-layer network is ten times wider than
   tall), so the layers are cut into bands placed one below the other, like lines of text,
   and the layers run left to right or top to bottom, whichever with the number of bands
   brings the aspect ratio nearest a screen's. An edge from one band to the next wraps
   around through the gap between them.

It is deterministic, about linear in the graph's size, and needs no dependency.

>>> from chainrule.viz.layout import layered_layout
>>> pos = layered_layout([0, 1, 2, 3], [(0, 2), (1, 2), (2, 3)])
>>> [pos[n][0] for n in range(4)]  # layers: the two sources, then 2, then the sink
[0, 0, 1, 2]
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["layered_layout", "arrange", "Arrangement", "Segment"]

# An SVG path command: ("M", (x, y)), ("L", (x, y)) or ("C", (x1, y1, x2, y2, x, y)).
Segment = tuple[str, tuple[float, ...]]

# The aspect ratio (width / height) a picture aims at, and the range it must stay in.
TARGET_ASPECT = 1.6
MAX_ASPECT = 3.0
_MARGIN = 8.0
_GAP_MAIN = {"LR": 56.0, "TB": 46.0}  # between layers (room for the edges' labels)
_GAP_CROSS = 16.0  # between boxes of one layer
_WAYPOINT = 6.0  # the breadth of a long edge's lane
_BAND_GAP = 36.0  # between bands, plus a lane per edge that wraps through it
_LANE = 5.0


def layered_layout(
    nodes: Sequence[Hashable], edges: Sequence[tuple[Hashable, Hashable]], sweeps: int = 4
) -> dict[Hashable, tuple[int, float]]:
    """``{node: (layer, position)}`` for a DAG (edges point from parent to child): steps 1
    and 2 alone, without sizes.

    ``layer`` counts from the sources (0) to the sink; ``position`` is the node's rank within
    its layer, offset so that small layers sit in the middle of large ones.
    """
    ordered = _Ordered(nodes, edges, sweeps)
    widest = max((len(row) for row in ordered.rows), default=1)
    placed: dict[Hashable, tuple[int, float]] = {}
    for i, row in enumerate(ordered.rows):
        offset = (widest - len(row)) / 2.0
        for j, n in enumerate(row):
            placed[n] = (i, offset + j)
    return {n: placed[n] for n in nodes}


class _Ordered:
    """Steps 1 and 2: ``rows`` (the layers, each in its order, waypoints included),
    ``layer`` of every node and waypoint, ``up``/``down`` neighbours, and the ``chains`` of
    waypoints of the long edges."""

    def __init__(
        self, nodes: Sequence[Hashable], edges: Sequence[tuple[Hashable, Hashable]], sweeps: int
    ) -> None:
        parents: dict[Hashable, list[Hashable]] = {n: [] for n in nodes}
        children: dict[Hashable, list[Hashable]] = {n: [] for n in nodes}
        for a, b in edges:
            parents[b].append(a)
            children[a].append(b)
        order = _topological(nodes, parents, children)
        layer: dict[Hashable, int] = {}
        for n in order:  # topological order: every parent is placed before its child
            layer[n] = 1 + max((layer[p] for p in parents[n]), default=-1)
        for n in reversed(order):  # a side input (W, or reshape(W)) sits by its first consumer
            if children[n]:
                layer[n] = max(layer[n], min(layer[c] for c in children[n]) - 1)
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
        self.rows, self.layer, self.up, self.down, self.chains = rows, layer, up, down, chains


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


# -- step 3: straight chains -------------------------------------------------------------------
def _pack(desired: list[float], sizes: list[float], gap: float) -> list[float]:
    """Centres as near ``desired`` as possible (least squares) in the given order, each box at
    least ``gap`` from the next: pool-adjacent-violators on the centres minus their offsets."""
    offsets = [0.0]
    for a, b in zip(sizes, sizes[1:]):
        offsets.append(offsets[-1] + (a + b) / 2 + gap)
    blocks: list[list[float]] = []  # [sum, count]
    for d, o in zip(desired, offsets):
        blocks.append([d - o, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
    out: list[float] = []
    for s, c in blocks:
        out.extend([s / c] * int(c))
    return [q + o for q, o in zip(out, offsets)]


def _straighten(
    ordered: _Ordered, cross: dict[Hashable, float], iterations: int = 6
) -> dict[Hashable, float]:
    """The centre of every node across its layer (step 3)."""
    pos: dict[Hashable, float] = {}
    for row in ordered.rows:
        pos.update(zip(row, _pack([0.0] * len(row), [cross[n] for n in row], _GAP_CROSS)))

    def place(row: list[Hashable], neighbours: dict[Hashable, list[Hashable]]) -> None:
        desired = [
            sum(pos[m] for m in neighbours[n]) / len(neighbours[n]) if neighbours[n] else pos[n]
            for n in row
        ]
        pos.update(zip(row, _pack(desired, [cross[n] for n in row], _GAP_CROSS)))

    for _ in range(iterations):
        for row in ordered.rows[1:]:
            place(row, ordered.up)
        for row in reversed(ordered.rows[:-1]):
            place(row, ordered.down)
    return pos


# -- step 4: bands, and the whole picture --------------------------------------------------------
@dataclass
class Arrangement:
    """Where everything goes: ``boxes`` maps a node to ``(x, y, width, height)``; ``paths[i]``
    and ``tips[i]`` are the path and the arrowhead's point of the ``i``-th edge given (each
    edge into a node arrives at a port of its own); ``direction`` is "LR" (layers left to
    right) or "TB" (top to bottom), ``bands`` how many strips the layers were folded into."""

    boxes: dict[Hashable, tuple[float, float, float, float]]
    paths: list[list[Segment]]
    tips: list[tuple[float, float]]
    direction: str
    bands: int
    width: float
    height: float


class _Plan:
    """One direction's geometry before folding: the breadth of each layer along the flow,
    each node's centre across it."""

    def __init__(
        self,
        ordered: _Ordered,
        sizes: dict[Hashable, tuple[float, float]],
        direction: str,
    ) -> None:
        self.ordered, self.direction = ordered, direction
        lr = direction == "LR"
        self.main = {n: (w if lr else h) for n, (w, h) in sizes.items()}
        self.cross = {n: (h if lr else w) for n, (w, h) in sizes.items()}
        for row in ordered.rows:
            for n in row:
                if n not in sizes:  # a waypoint
                    self.main[n], self.cross[n] = 0.0, _WAYPOINT
        self.gap = _GAP_MAIN[direction]
        self.depth = [max([self.main[n] for n in row] + [12.0]) for row in ordered.rows]
        self.centre = _straighten(ordered, self.cross)

    def cuts(self, k: int) -> list[int]:
        """Where the bands start: ``k`` runs of layers of about equal length, each cut placed
        where few edges cross it (within a fifth of a band of the even split)."""
        rows = self.ordered.rows
        steps = [d + self.gap for d in self.depth]
        total = sum(steps)
        before = [0.0]
        for s in steps:
            before.append(before[-1] + s)
        starts = [0]
        for j in range(1, k):
            aim = total * j / k
            window = [
                i
                for i in range(starts[-1] + 1, len(rows))
                if abs(before[i] - aim) <= 0.2 * total / k
            ]
            if not window:
                window = [min(range(starts[-1] + 1, len(rows)), key=lambda i: abs(before[i] - aim))]
            crossing = {i: sum(len(self.ordered.up[n]) for n in rows[i]) for i in window}
            starts.append(min(window, key=lambda i: (crossing[i], abs(before[i] - aim))))
            if starts[-1] >= len(rows) - 1:
                break
        return starts

    def bands(self, k: int) -> list[tuple[int, int, float, float, int]]:
        """(first layer, end layer, least and greatest cross position, wrapping edges after)."""
        rows = self.ordered.rows
        starts = self.cuts(k)
        out = []
        for s, e in zip(starts, [*starts[1:], len(rows)]):
            members = [n for row in rows[s:e] for n in row]
            lo = min(self.centre[n] - self.cross[n] / 2 for n in members)
            hi = max(self.centre[n] + self.cross[n] / 2 for n in members)
            wraps = sum(len(self.ordered.up[n]) for n in rows[e]) if e < len(rows) else 0
            out.append((s, e, lo, hi, wraps))
        return out

    def extent(self, k: int) -> tuple[float, float, int]:
        """Width, height and the number of bands (which may be fewer than ``k``)."""
        bands = self.bands(k)
        lanes = max((b[4] for b in bands), default=0)
        side = (_LANE * lanes + 12.0) if len(bands) > 1 else 0.0
        along = max(sum(self.depth[s:e]) + self.gap * (e - s - 1) for s, e, *_ in bands)
        along += 2 * _MARGIN + 2 * side
        across = sum(hi - lo for _, _, lo, hi, _ in bands) + 2 * _MARGIN
        across += sum(_BAND_GAP + _LANE * b[4] for b in bands[:-1])
        w, h = (along, across) if self.direction == "LR" else (across, along)
        return w, h, len(bands)


def _choose(plans: list[_Plan], bands: int | None) -> tuple[_Plan, int]:
    """The direction and the number of bands: left to right in one band while its aspect
    ratio is at most 3:1 (a small graph reads as time flowing right), else the folding whose
    aspect ratio is nearest 1.6:1, preferring fewer bands on a tie."""
    if bands is not None:
        return plans[0], bands
    first = plans[0]
    w, h, _ = first.extent(1)
    if 1 / MAX_ASPECT <= w / h <= MAX_ASPECT and first.direction == "LR":
        return first, 1
    best: tuple[float, int, _Plan, int] | None = None
    for plan in plans:
        for k in range(1, min(len(plan.ordered.rows), 24) + 1):
            w, h, got = plan.extent(k)
            if got < k:
                break
            score = abs(math.log(w / h / TARGET_ASPECT)) + 0.02 * k
            if best is None or score < best[0]:
                best = (score, k, plan, k)
    assert best is not None
    return best[2], best[3]


def arrange(
    sizes: dict[Any, tuple[float, float]],
    edges: Sequence[tuple[Hashable, Hashable]],
    direction: str | None = None,
    bands: int | None = None,
) -> Arrangement:
    """Lay out boxes of the given ``(width, height)`` joined by ``edges`` (parent, child;
    repeats allowed: ``x * x`` has two). ``direction`` ("LR" or "TB") and ``bands`` force
    the choice that is otherwise made for the aspect ratio.

    >>> a = arrange({"x": (40, 20), "y": (40, 20), "f": (40, 20)}, [("x", "f"), ("y", "f")])
    >>> a.direction, a.bands, len(a.tips)
    ('LR', 1, 2)
    >>> a.tips[0] != a.tips[1]  # two edges into f, two ports
    True
    """
    if direction not in (None, "LR", "TB"):
        raise ValueError(f"arrange: direction must be 'LR' or 'TB', got {direction!r}")
    nodes = list(sizes)
    if not nodes:
        return Arrangement({}, [], [], direction or "LR", 0, 2 * _MARGIN, 2 * _MARGIN)
    try:
        ordered = _Ordered(nodes, edges, sweeps=6)
        back: set[int] = set()
    except ValueError:  # a layer called twice: lay out the edges that go forward in the order given
        rank = {n: i for i, n in enumerate(nodes)}
        back = {i for i, (a, b) in enumerate(edges) if rank[a] >= rank[b]}
        ordered = _Ordered(nodes, [e for i, e in enumerate(edges) if i not in back], sweeps=6)
    directions = [direction] if direction else ["LR", "TB"]
    plan, k = _choose([_Plan(ordered, sizes, d) for d in directions], bands)
    return _build(plan, plan.bands(max(1, k)), sizes, edges, back)


def _build(
    plan: _Plan,
    bands: list[tuple[int, int, float, float, int]],
    sizes: dict[Hashable, tuple[float, float]],
    edges: Sequence[tuple[Hashable, Hashable]],
    back: set[int],
) -> Arrangement:
    ordered, lr = plan.ordered, plan.direction == "LR"
    lanes = max((b[4] for b in bands), default=0)
    side = (_LANE * lanes + 12.0) if len(bands) > 1 else 0.0
    band_of: dict[int, int] = {}
    start: dict[int, float] = {}  # where each layer begins along the flow
    offset: list[float] = []  # each band's shift across
    across = _MARGIN
    for j, (s, e, lo, hi, wraps) in enumerate(bands):
        along = _MARGIN + side
        for i in range(s, e):
            band_of[i], start[i] = j, along
            along += plan.depth[i] + plan.gap
        offset.append(across - lo)
        across += hi - lo + _BAND_GAP + _LANE * wraps
    along_end = [start[e - 1] + plan.depth[e - 1] for s, e, *_ in bands]
    length = max(along_end) + side + _MARGIN
    breadth = across - _BAND_GAP - _LANE * bands[-1][4] + _MARGIN

    def at(n: Hashable) -> tuple[float, float]:  # (along, across) of a node's centre
        i = ordered.layer[n]
        return start[i] + plan.depth[i] / 2, plan.centre[n] + offset[band_of[i]]

    def xy(m: float, c: float) -> tuple[float, float]:
        return (m, c) if lr else (c, m)

    boxes = {}
    for n, (w, h) in sizes.items():
        m, c = at(n)
        x, y = xy(m, c)
        boxes[n] = (x - w / 2, y - h / 2, w, h)
    # ports: the edges into a node, in the order they come from across, spread over its side
    approach: dict[int, float] = {}
    for i, (a, b) in enumerate(edges):
        chain = ordered.chains.get((a, b), [])
        approach[i] = at(chain[-1] if chain else a)[1]
    into: dict[Hashable, list[int]] = {}
    for i, (_, b) in enumerate(edges):
        into.setdefault(b, []).append(i)
    port: dict[int, float] = {}
    for b, ins in into.items():
        ins.sort(key=lambda i: (approach[i], i))
        breadth_b = plan.cross[b]
        step = min(16.0 if lr else 40.0, 0.8 * breadth_b / len(ins))
        for j, i in enumerate(ins):
            port[i] = at(b)[1] + (j + 0.5 - len(ins) / 2) * step
    wrap_lane: dict[tuple[Hashable, Hashable], int] = {}
    counters = [0] * len(bands)
    paths: list[list[Segment]] = []
    tips: list[tuple[float, float]] = []
    for i, (a, b) in enumerate(edges):
        chain = [a, *ordered.chains.get((a, b), []), b]
        m, c = at(a)
        m += plan.main[a] / 2
        points: list[Segment] = [("M", xy(m, c))]
        if i in back:  # an edge against the flow: straight, without a lane
            chain = []
            entry, target = at(b)[0] - plan.main[b] / 2, port[i]
            points.append(("L", xy(entry, target)))
        for u, v in zip(chain, chain[1:]):
            lu, lv = ordered.layer[u], ordered.layer[v]
            entry = at(v)[0] - plan.main[v] / 2 if v in sizes else start[lv]
            target = port[i] if v == b else at(v)[1]
            if band_of[lu] != band_of[lv]:  # wrap round to the next band, in a lane of its own
                key = (u, v)
                if key not in wrap_lane:
                    wrap_lane[key] = counters[band_of[lu]]
                    counters[band_of[lu]] += 1
                lane = wrap_lane[key]
                hi = bands[band_of[lu]][3]
                right = along_end[band_of[lu]] + 8.0 + _LANE * lane
                left = _MARGIN + side - 8.0 - _LANE * lane
                gutter = hi + offset[band_of[lu]] + _BAND_GAP / 2 + _LANE * lane
                for p in ((right, c), (right, gutter), (left, gutter), (left, target)):
                    points.append(("L", xy(*p)))
                points.append(("L", xy(entry, target)))
            else:  # an S-curve, level at both ends
                mid = (m + entry) / 2
                points.append(("C", (*xy(mid, c), *xy(mid, target), *xy(entry, target))))
            m, c = entry, target
            if v not in sizes:  # straight through the waypoint's layer
                m = start[lv] + plan.depth[lv]
                points.append(("L", xy(m, c)))
        paths.append(points)
        tips.append(xy(entry, target))
    width, height = xy(length, breadth)
    return Arrangement(boxes, paths, tips, plan.direction, len(bands), width, height)
