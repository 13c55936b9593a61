"""Pictures of computation graphs: what each box says, how layers collapse, and SVG/PNG/DOT.

A picture is built in two steps. :func:`scene` turns a :class:`~chainrule.viz.graph_data.Graph` into
boxes and arrows — each box with a title (the op or the tensor's name), its shape, and, once a
backward pass has run, its value and gradient; nodes made inside the same ``cr.nn`` layer can
collapse into one labelled box. Then a renderer draws the scene: Graphviz's ``dot`` when it
is installed, otherwise our own layered layout (:mod:`chainrule.viz.layout`) written out as SVG by
hand, or drawn with matplotlib for PNG.
"""

from __future__ import annotations

import html
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.tensor import Tensor
from .layout import Segment, arrange

__all__ = ["Box", "Scene", "scene", "to_dot", "to_svg", "save_png", "AUTO_COLLAPSE"]

# Above this many nodes, a graph built by cr.nn modules is drawn one box per layer.
AUTO_COLLAPSE = 150

_STYLE = {  # kind: (fill, stroke)
    "parameter": ("#e3f4e1", "#2e7d32"),
    "input": ("#eeeeee", "#616161"),
    "op": ("#ffffff", "#1f5fa8"),
    "sink": ("#fde8e6", "#c62828"),
    "group": ("#fff8dc", "#b58900"),
}


@dataclass
class Box:
    """One box of a picture: a node, or a collapsed group of nodes."""

    key: int
    kind: str  # parameter | input | op | sink | group
    title: str
    lines: list[str]
    members: list[int] = field(default_factory=list)  # node indices inside
    tooltip: str = ""  # the full text (a title is cut to _TITLE_MAX characters)


@dataclass
class Scene:
    boxes: list[Box]
    arrows: list[tuple[int, int, int]]  # (from box, to box, how many edges)
    # (from box, to box) -> the name of the argument each of those edges is, in the op
    # sheet's words (matmul: x, y); only into a node of two or more tensor inputs
    args: dict[tuple[int, int], list[str]] = field(default_factory=dict)


# -- what the boxes say -----------------------------------------------------------------------
def _shape_text(shape: tuple[int, ...]) -> str:
    return "scalar" if shape == () else "×".join(str(s) for s in shape)


def summary(value: Any) -> str:
    """A number for a scalar; shape, norm and range for an array."""
    if value is None:
        return "-"
    a = np.asarray(value, dtype=np.float64)
    if a.size == 1:
        return f"{float(a.reshape(())):.4g}"
    return f"norm {np.linalg.norm(a):.3g} [{a.min():.3g}, {a.max():.3g}]"


_TITLE_MAX = 20


def _short(text: str) -> str:
    return text if len(text) <= _TITLE_MAX else text[: _TITLE_MAX - 1] + "…"


def _index_text(index: Any) -> str:
    """``x[index]``'s index as Python writes it: ``[:, 0:3]``, ``[..., None]``, ``[array 5]``."""

    def part(p: Any) -> str:
        if isinstance(p, slice):
            text = ":".join("" if v is None else str(v) for v in (p.start, p.stop, p.step))
            return text[:-1] if p.step is None else text
        if p is Ellipsis:
            return "..."
        if p is None:
            return "None"
        shape = getattr(p, "shape", None)
        if shape is not None and shape != ():
            kind = "mask" if getattr(p, "dtype", None) == np.bool_ else "array"
            return f"{kind} {_shape_text(tuple(shape))}"
        if isinstance(p, (list, range)):
            return f"array {len(p)}"
        return str(p.item() if hasattr(p, "item") else p)

    parts = index if isinstance(index, tuple) else (index,)
    return "[" + ", ".join(part(p) for p in parts) + "]"


def _arg_names(node: Any) -> list[str]:
    """The op sheet's name of each tensor input of ``node``, in the order of its edges."""
    recorded = node.tensor._node
    if recorded is None or recorded[1] is None:
        return []
    op, inputs = recorded[0], recorded[1]
    names = list(getattr(op, "inputs", ()))
    return [
        names[i] if not op.variadic and i < len(names) else f"[{i}]"
        for i, a in enumerate(inputs)
        if isinstance(a, Tensor)
    ]


def _node_box(node: Any, sink: Any, values: bool, names: dict[int, str]) -> Box:
    if node is sink:
        kind = "sink"
    elif node.is_source:
        kind = "parameter" if node.tensor.requires_grad else "input"
    else:
        kind = "op"
    label = node.tensor.name or names.get(id(node.tensor))
    what = node.call or node.op
    if node.op == "getitem" and "index" in node.params:  # which slice: h[:, 0:3]
        what = f"{node.parents[0].name if node.parents else ''}{_index_text(node.params['index'])}"
    full = f"{label} = {what}" if (label and node.op) else (label or what or node.name)
    # (a whole sub-expression as a name: the op and the start of the name)
    short = f"{node.op}: {label}" if (label and node.op) else (label or what or node.name)
    title = full if len(full) <= _TITLE_MAX else _short(short)
    lines = [_shape_text(node.shape)]
    if values:
        lines.append("value freed by backward()" if node.freed else f"value {summary(node.value)}")
        if node.grad is not None:
            lines.append(f"grad {summary(node.grad)}")
    return Box(node.index, kind, title, lines, [node.index], "\n".join([full, *lines]))


# -- grouping by module ------------------------------------------------------------------------
def _scopes(graph: Any) -> dict[int, tuple[Any, ...]]:
    """node index -> the Modules whose forward made it (parameters: their owner's scope)."""
    out: dict[int, tuple[Any, ...]] = {}
    by_module: dict[int, tuple[Any, ...]] = {}
    for n in graph.nodes:
        node = n.tensor._node
        scope = node[5] if node is not None else ()
        if scope:
            out[n.index] = scope
            by_module.setdefault(id(scope[-1]), scope)
    for n in graph.nodes:
        if n.is_source and n.index not in out:
            for scope in by_module.values():
                params = getattr(scope[-1], "_parameters", {})
                if any(p is n.tensor for p in params.values()):
                    out[n.index] = scope
                    break
    return out


def _module_names(graph: Any, module: Any) -> dict[int, str]:
    names: dict[int, str] = {}
    if module is not None:
        for name, m in module.named_modules():
            names[id(m)] = name or type(m).__name__
    return names


def scene(
    graph: Any,
    collapse: bool | None = None,
    values: bool = True,
    module: Any = None,
    fold: bool = True,
) -> Scene:
    """Boxes and arrows for ``graph``. ``collapse=None`` collapses layers built by ``cr.nn``
    modules when the graph has more than ``AUTO_COLLAPSE`` nodes; True or False force it.
    Collapsed, a run of three or more identical layers in a row (40 x Linear, Tanh) folds
    into one box unless ``fold=False``."""
    module = module if module is not None else getattr(graph, "module", None)
    scopes = _scopes(graph)
    if collapse is None:
        collapse = len(graph.nodes) > AUTO_COLLAPSE and bool(scopes)
    # 1. which unit each node belongs to: a layer (the outermost module's child) or itself
    unit_of: dict[int, Any] = {}
    owners: dict[Any, Any] = {}
    for n in graph.nodes:
        scope = scopes.get(n.index, ())
        if collapse and len(scope) >= 2 and n is not graph.sink:
            unit_of[n.index] = ("layer", id(scope[1]))
            owners[("layer", id(scope[1]))] = scope[1]
        else:
            unit_of[n.index] = ("node", n.index)
    members: dict[Any, list[int]] = {}
    for n in graph.nodes:
        members.setdefault(unit_of[n.index], []).append(n.index)

    # 2. units in the order of their output, the last op made in them (not the first: a conv
    # reshapes its weight before any layer before it has run)
    def last_op(unit: Any) -> int:
        ops = [i for i in members[unit] if not graph.nodes[i].is_source]
        return max(ops) if ops else members[unit][0]

    order = sorted(members, key=last_op)
    if collapse and fold:
        order, folded = _fold_runs(order, owners, members, graph)
    else:
        folded = {}
    # 3. boxes
    names = _module_names(graph, module)
    param_names = (
        {id(p): name for name, p in module.named_parameters()} if module is not None else {}
    )
    counts: dict[str, int] = {}
    boxes: list[Box] = []
    box_of: dict[int, int] = {}
    for unit in order:
        key = len(boxes)
        if unit in folded:
            kinds, repeats, inner = folded[unit]
            box = Box(key, "group", f"{' → '.join(kinds)} ×{repeats}", [], inner)
        elif unit[0] == "layer":
            owner = owners[unit]
            kind = type(owner).__name__
            counts[kind] = counts.get(kind, 0) + 1
            title = (
                f"{names[id(owner)]} ({kind})" if id(owner) in names else f"{kind} #{counts[kind]}"
            )
            box = Box(key, "group", title, [], list(members[unit]))
        else:
            box = _node_box(graph.nodes[unit[1]], graph.sink, values, param_names)
            box.key = key
        if box.kind == "group":
            inside = [graph.nodes[i] for i in box.members]
            ops = sorted({m.op for m in inside if m.op})
            count = f"{len(inside)} node{'s' if len(inside) != 1 else ''}"
            box.lines = [
                f"{count}: {', '.join(ops)}" if ops else count,
                f"out {_shape_text(inside[-1].shape)}",
            ]
            if unit[0] == "layer":  # its parameters: shape, and the gradient's norm
                box.lines += _parameter_lines(owners[unit], graph, values)
            box.tooltip = "\n".join([box.title, *box.lines])
        for i in box.members:
            box_of[i] = key
        boxes.append(box)
    weights: dict[tuple[int, int], int] = {}
    args: dict[tuple[int, int], list[str]] = {}
    arg_names = {n.index: _arg_names(n) for n in graph.nodes}
    seen: dict[int, int] = {}  # how many of a node's incoming edges were met so far
    for parent, child in graph.edges:
        a, b = box_of[parent.index], box_of[child.index]
        k = seen.get(child.index, 0)
        seen[child.index] = k + 1
        if a != b:
            weights[(a, b)] = weights.get((a, b), 0) + 1
            given = arg_names[child.index]
            if boxes[b].kind != "group" and len(given) > 1 and k < len(given):
                args.setdefault((a, b), []).append(given[k])
    arrows = [(a, b, w) for (a, b), w in weights.items()]
    return Scene(boxes, arrows, args)


def _parameter_lines(owner: Any, graph: Any, values: bool) -> list[str]:
    lines = []
    for name, p in getattr(owner, "_parameters", {}).items():
        if p is None:
            continue
        text = f"{name} {_shape_text(tuple(p.shape))}"
        node = graph._by_id.get(id(p))
        grad = node.grad if node is not None and values else None
        if grad is not None:
            text += f" ‖grad‖ {np.linalg.norm(np.asarray(grad, dtype=np.float64)):.3g}"
        lines.append(text)
    return lines


def _fold_runs(
    order: list[Any], owners: dict[Any, Any], members: dict[Any, list[int]], graph: Any
) -> tuple[list[Any], dict[Any, tuple[list[str], int, list[int]]]]:
    """Fold runs of a repeating pattern of layers (period 1 to 3, three repeats or more)
    into one unit each. Returns the new order and, per folded unit, (layer kinds, repeats,
    node indices)."""

    def signature(unit: Any) -> Any:
        if unit[0] != "layer":
            return None
        inside = [graph.nodes[i] for i in members[unit]]
        return (type(owners[unit]).__name__, tuple(sorted(m.op or "" for m in inside)))

    sigs = [signature(u) for u in order]
    out: list[Any] = []
    folded: dict[Any, tuple[list[str], int, list[int]]] = {}
    i = 0
    while i < len(order):
        best = (1, 1)  # (period, repeats)
        for period in (1, 2, 3):
            pattern = sigs[i : i + period]
            if len(pattern) < period or any(p is None for p in pattern):
                continue
            repeats = 1
            while sigs[i + repeats * period : i + (repeats + 1) * period] == pattern:
                repeats += 1
            if repeats >= 3 and period * repeats > best[0] * best[1]:
                best = (period, repeats)
        period, repeats = best
        if repeats >= 3:
            span = order[i : i + period * repeats]
            unit = ("run", i)
            kinds = [type(owners[u]).__name__ for u in span[:period]]
            folded[unit] = (kinds, repeats, sorted(j for u in span for j in members[u]))
            out.append(unit)
            i += period * repeats
        else:
            out.append(order[i])
            i += 1
    return out, folded


# -- renderers ---------------------------------------------------------------------------------
def to_dot(graph: Any, collapse: bool | None = None, values: bool = True, module: Any = None):
    """Graphviz text for the scene (left to right, sources boxed, the sink in red)."""
    sc = scene(graph, collapse, values, module)
    out = ["digraph chainrule {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    for box in sc.boxes:
        fill, stroke = _STYLE[box.kind]
        shape = "box" if box.kind in ("parameter", "input", "group") else "ellipse"
        periph = 2 if box.kind == "sink" else 1
        style = "filled,dashed" if box.kind == "group" else "filled"
        label = "\\n".join([box.title, *box.lines]).replace('"', '\\"')
        tip = box.tooltip.replace("\\", "\\\\").replace('"', '\\"')
        tip = f', tooltip="{tip}"' if tip else ""
        out.append(
            f'  n{box.key} [label="{label}", shape={shape}, style="{style}", '
            f'fillcolor="{fill}", color="{stroke}", peripheries={periph}{tip}];'
        )
    for a, b, w in sc.arrows:
        if "group" in (sc.boxes[a].kind, sc.boxes[b].kind):
            extra = f' [label="×{w}"]' if w > 1 else ""
            out.append(f"  n{a} -> n{b}{extra};")
        elif (a, b) in sc.args:  # each operand labelled at its arrowhead (matmul: x, y)
            out.extend(f'  n{a} -> n{b} [headlabel="{arg}"];' for arg in sc.args[(a, b)])
        else:  # x * x uses x twice: two edges, as in the graph
            out.extend([f"  n{a} -> n{b};"] * w)
    out.append("}")
    return "\n".join(out)


def _dot_program() -> str | None:
    return shutil.which("dot")


# Text sizes in the SVG (px at zoom 1): the page keeps the smallest, an edge's label, legible.
FONT_SIZE, LABEL_FONT_SIZE = 11.0, 10.0
_CHAR_W, _LINE_H, _PAD = 6.6, 14.0, 8.0


def _box_size(box: Box) -> tuple[float, float]:
    width = max(len(t) for t in [box.title, *box.lines]) * _CHAR_W + 2 * _PAD
    height = (1 + len(box.lines)) * _LINE_H + 2 * _PAD
    return max(width, 60.0), height


@dataclass
class _Edge:
    """One drawn edge: its boxes, how many graph edges it stands for, the argument it is."""

    a: int
    b: int
    count: int
    arg: str
    path: list[Segment] = field(default_factory=list)
    tip: tuple[float, float] = (0.0, 0.0)


def _geometry(sc: Scene, direction: str | None = None) -> tuple[Any, list[_Edge]]:
    """The layout (:func:`chainrule.viz.layout.arrange`) of the scene: one edge per argument
    into a node (each with its own port and label), one per pair of boxes into a group."""
    drawn: list[_Edge] = []
    for a, b, count in sc.arrows:
        names = sc.args.get((a, b))
        if names:
            drawn.extend(_Edge(a, b, 1, name) for name in names)
        else:
            drawn.append(_Edge(a, b, count, ""))
    sizes = {box.key: _box_size(box) for box in sc.boxes}
    placed = arrange(sizes, [(e.a, e.b) for e in drawn], direction)
    for e, path, tip in zip(drawn, placed.paths, placed.tips):
        e.path, e.tip = path, tip
    return placed, drawn


def to_svg(
    graph: Any,
    collapse: bool | None = None,
    values: bool = True,
    module: Any = None,
    engine: str = "auto",
) -> str:
    """The picture as SVG text. ``engine``: "dot" (Graphviz), "builtin" (our layout), or
    "auto" (Graphviz when its ``dot`` program is installed)."""
    if engine not in ("auto", "dot", "builtin"):
        raise ValueError(f"to_svg: engine must be 'auto', 'dot' or 'builtin', got {engine!r}")
    dot = _dot_program()
    if engine == "dot" and dot is None:
        raise RuntimeError("to_svg: Graphviz's dot program is not installed; use engine='builtin'")
    if dot is not None and engine != "builtin":
        text = to_dot(graph, collapse, values, module)
        done = subprocess.run([dot, "-Tsvg"], input=text, capture_output=True, text=True)
        if done.returncode == 0:
            return done.stdout
    return _builtin_svg(scene(graph, collapse, values, module))


def _builtin_svg(sc: Scene, direction: str | None = None) -> str:
    placed, drawn = _geometry(sc, direction)
    width, height = placed.width, placed.height
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif" '
        f'font-size="{FONT_SIZE:g}" class="chainrule-graph" data-direction="{placed.direction}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
    ]
    for e in drawn:
        d = " ".join(f"{cmd} " + " ".join(f"{v:.1f}" for v in coords) for cmd, coords in e.path)
        arg = f' data-arg="{html.escape(e.arg)}"' if e.arg else ""
        out.append(
            f'<path class="edge" data-from="{e.a}" data-to="{e.b}"{arg} d="{d}" fill="none" '
            f'stroke="#777" stroke-width="{1.2 + 0.4 * min(e.count - 1, 4):.1f}" '
            'marker-end="url(#arrow)"/>'
        )
    for e in drawn:  # the argument's name beside its arrowhead, above a level line
        if not e.arg:
            continue
        x, y = e.tip
        at = (x - 4, y - 4, "end") if placed.direction == "LR" else (x + 4, y - 5, "start")
        out.append(
            f'<text class="arg" x="{at[0]:.1f}" y="{at[1]:.1f}" text-anchor="{at[2]}" '
            f'font-size="{LABEL_FONT_SIZE:g}" font-style="italic" fill="#444">'
            f"{html.escape(e.arg)}</text>"
        )
    for box in sc.boxes:
        x, y, w, h = placed.boxes[box.key]
        fill, stroke = _STYLE[box.kind]
        dash = ' stroke-dasharray="5 3"' if box.kind == "group" else ""
        width_px = 2.5 if box.kind == "sink" else 1.3
        radius = 4 if box.kind in ("parameter", "input", "group") else 12
        out.append(f'<g class="node {box.kind}" data-node="{box.key}">')
        if box.tooltip:
            out.append(f"<title>{html.escape(box.tooltip)}</title>")
        out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{radius}" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="{width_px}"{dash}/>'
        )
        for i, text in enumerate([box.title, *box.lines]):
            weight = ' font-weight="bold"' if i == 0 else ""
            ty = y + _PAD + (i + 0.8) * _LINE_H
            out.append(
                f'<text x="{x + w / 2:.1f}" y="{ty:.1f}" text-anchor="middle"{weight}>'
                f"{html.escape(text)}</text>"
            )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def save_png(
    graph: Any,
    path: str | Path,
    collapse: bool | None = None,
    values: bool = True,
    module: Any = None,
    engine: str = "auto",
) -> Path:
    """PNG via Graphviz when installed, else drawn with matplotlib from our layout."""
    path = Path(path)
    dot = _dot_program()
    if dot is not None and engine != "builtin":
        text = to_dot(graph, collapse, values, module)
        done = subprocess.run(
            [dot, "-Tpng", "-o", str(path)], input=text, text=True, capture_output=True
        )
        if done.returncode == 0:
            return path
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
        from matplotlib.path import Path as MplPath
    except ImportError as err:
        raise ImportError(
            "saving a graph as PNG needs Graphviz's dot or matplotlib "
            "(pip install 'chainrule[train]'); .svg and .html need neither"
        ) from err
    sc = scene(graph, collapse, values, module)
    placed, drawn = _geometry(sc)
    width, height = placed.width, placed.height
    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    codes_of = {"M": [MplPath.MOVETO], "L": [MplPath.LINETO], "C": [MplPath.CURVE4] * 3}
    for e in drawn:
        verts: list[tuple[float, float]] = []
        codes: list[Any] = []
        for cmd, coords in e.path:
            verts += [(coords[i], coords[i + 1]) for i in range(0, len(coords), 2)]
            codes += codes_of[cmd]
        ax.add_patch(
            FancyArrowPatch(
                path=MplPath(verts, codes), arrowstyle="-|>", mutation_scale=10, color="#777"
            )
        )
    for box in sc.boxes:
        x, y, w, h = placed.boxes[box.key]
        fill, stroke = _STYLE[box.kind]
        ax.add_patch(
            FancyBboxPatch(
                (x, y),
                w,
                h,
                boxstyle="round,pad=0,rounding_size=6",
                facecolor=fill,
                edgecolor=stroke,
                linewidth=2.5 if box.kind == "sink" else 1.2,
                linestyle="--" if box.kind == "group" else "-",
            )
        )
        for i, text in enumerate([box.title, *box.lines]):
            ax.text(
                x + w / 2,
                y + _PAD + (i + 0.5) * _LINE_H,
                text,
                ha="center",
                va="center",
                fontsize=8,
                fontweight="bold" if i == 0 else "normal",
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
