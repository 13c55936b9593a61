"""The graph as one self-contained interactive web page, with the backward pass step by step.

:func:`graph_html` writes a single HTML document — no network, no CDN, every byte of CSS and
JavaScript inline — holding the picture of the graph (our own SVG renderer, so every box
carries ``data-node``), a side panel, and the data as JSON: each node's value and gradient,
and each step of the backward pass exactly as the engine took it
(:meth:`Graph.backward_steps <chainrule.viz.graph_data.Graph.backward_steps>`). The page
steps through that pass (buttons or arrow keys): at each step the node, the gradient that
arrived from its children (listed, and summed), the op's local derivative rule, and what it
passes on to each parent. Hovering a box shows a node's value and gradient arrays; clicking
pins it.

Everything that comes from the user (tensor names, the title) reaches the page either
HTML-escaped or inside the JSON block with ``<``, ``>`` and ``&`` written as ``\\u003c``
escapes, and the script only ever sets ``textContent``: a name cannot inject markup.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
from importlib import resources
from typing import Any

import numpy as np

from ..ops.formulas import bracket, gradient_legend, named_rule
from . import drawing

__all__ = ["graph_html", "PAGE_COLLAPSE"]

# Above this many nodes, a page of a graph built by cr.nn modules opens one box per layer (a
# button expands them); the picture alone collapses later (drawing.AUTO_COLLAPSE).
PAGE_COLLAPSE = 40


def graph_html(
    graph: Any, collapse: bool | None = None, title: str | None = None, max_array: int = 64
) -> str:
    """The interactive page for ``graph`` (a :class:`~chainrule.viz.graph_data.Graph`) as HTML text.

    Runs the backward pass's step-by-step record if none was taken yet (without touching any
    ``.grad``). Arrays longer than ``max_array`` entries are cut to their first ``max_array``
    (row-major) with a note. ``collapse`` groups the nodes of each ``cr.nn`` layer into one
    box, as in :meth:`Graph.to_svg <chainrule.viz.graph_data.Graph.to_svg>`; the step-through
    then highlights the box holding the current node and can step over a whole box at once.

    >>> import chainrule as cr
    >>> x = cr.tensor(3.0, requires_grad=True, name="x")
    >>> page = graph_html(cr.graph(cr.tanh(x * x)))
    >>> page.startswith("<!DOCTYPE html>") and 'data-node="0"' in page
    True
    """
    if max_array < 1:
        raise ValueError(f"graph_html: max_array must be at least 1, got {max_array}")
    # First the steps: taking them fills in every node's gradient for the picture. A sink that
    # does not require grad has no backward pass; the page then shows the graph alone.
    # (a graph whose values backward() freed has no steps to show unless it recorded them)
    replay = graph.sink.tensor.requires_grad and (graph._steps or not graph.freed)
    steps = graph.backward_steps() if replay else []
    scopes = drawing._scopes(graph)
    if collapse is None:
        collapse = bool(scopes) and len(graph.nodes) > PAGE_COLLAPSE
    sc = drawing.scene(graph, collapse, True, graph.module)
    # With layers collapsed, the page also holds the picture of every node, shown on demand.
    grouped = any(box.kind == "group" for box in sc.boxes)
    expanded = drawing.scene(graph, False, True, graph.module) if grouped else None
    svg = _inline_svg(sc, "layers")
    if expanded is not None:
        svg += "\n" + _inline_svg(expanded, "nodes").replace("<svg ", "<svg hidden ", 1)
    title = title if title is not None else f"chainrule: the backward pass of {graph.sink.name}"
    data = _page_data(graph, sc, steps, title, max_array)
    data["layers"] = _layer_names(graph, scopes)
    if expanded is not None:
        data["expanded"] = {
            "boxes": _box_table(expanded),
            "box_of": {str(i): box.key for box in expanded.boxes for i in box.members},
        }
    data["min_font"] = min(drawing.FONT_SIZE, drawing.LABEL_FONT_SIZE)
    return _asset("page.html").format(
        title=html.escape(title),
        legend=html.escape(data["legend"]),
        svg=svg,
        data=_script_json(data),
        css=_asset("page.css"),
        js=_asset("page.js"),
    )


def _inline_svg(sc: Any, view: str) -> str:
    """The scene's SVG for the page. The page is HTML, where inline SVG needs no namespace:
    leave no URL in the document."""
    svg = drawing._builtin_svg(sc).replace(' xmlns="http://www.w3.org/2000/svg"', "", 1)
    return svg.replace("<svg ", f'<svg data-view="{view}" ', 1)


def _layer_names(graph: Any, scopes: dict[int, tuple[Any, ...]]) -> list[str | None]:
    """Per node, the layer (the model's child module) that made it, as the picture names it."""
    names = drawing._module_names(graph, graph.module)
    out: list[str | None] = []
    for n in graph.nodes:
        scope = scopes.get(n.index, ())
        if len(scope) < 2:
            out.append(None)
            continue
        kind = type(scope[1]).__name__
        out.append(f"{names[id(scope[1])]} ({kind})" if id(scope[1]) in names else kind)
    return out


def _box_table(sc: Any) -> dict[str, dict]:
    return {
        str(box.key): {
            "title": box.title,
            "group": box.kind == "group",
            "members": list(box.members),
        }
        for box in sc.boxes
    }


# -- the data block ---------------------------------------------------------------------------
def _page_data(graph: Any, sc: Any, steps: list[Any], title: str, max_array: int) -> dict:
    arrays = _Arrays(max_array)
    box_of = {i: box.key for box in sc.boxes for i in box.members}
    param_names = (
        {id(p): name for name, p in graph.module.named_parameters()}
        if graph.module is not None
        else {}
    )
    names = {n.index: n.tensor.name or param_names.get(id(n.tensor)) or n.name for n in graph.nodes}
    nodes = []
    for n in graph.nodes:
        if n is graph.sink:
            kind = "sink"
        elif n.is_source:
            kind = "parameter" if n.tensor.requires_grad else "input"
        else:
            kind = "op"
        nodes.append(
            {
                "id": n.index,
                "name": names[n.index],
                "d": "d " + bracket(names[n.index]),  # "d loss", "d (W1 @ x + b)"
                "op": n.op,
                "kind": kind,
                "shape": list(n.shape),
                "dtype": str(n.dtype),
                "requires_grad": bool(n.tensor.requires_grad),
                "parents": [p.index for p in n.parents],
                "box": box_of[n.index],
                "value": arrays.add(n.value),
                "grad": arrays.add(n.grad),
            }
        )
    boxes = _box_table(sc)
    # Where each step's gradient came from: the contributions that earlier steps sent to it,
    # as [step, contribution] references (the values themselves are stored once, there).
    incoming: dict[int, list[list[int]]] = {}
    for k, step in enumerate(steps):
        for j, (parent, _, _) in enumerate(step.contributions):
            incoming.setdefault(parent.index, []).append([k, j])
    records = []
    for step in steps:
        op = _op_of(step.node)
        inputs, tensors = _input_names(graph, step.node, names)
        out = names[step.node.index]
        rules = [named_rule(op, i, out, inputs) if t and op else "" for i, t in enumerate(tensors)]
        records.append(
            {
                "node": step.node.index,
                "op": step.op,
                "formula": ", ".join(r for r in dict.fromkeys(rules) if r) or step.formula,
                "kink": getattr(op, "kink", None),
                "grad": arrays.add(step.grad),
                "incoming": incoming.get(step.node.index, []),
                "outgoing": [
                    {
                        "to": parent.index,
                        "arg": i,
                        "rule": rules[i] if i < len(rules) and rules[i] else step.formula,
                        "value": arrays.add(value),
                    }
                    for parent, i, value in step.contributions
                ],
            }
        )
    return {
        "title": title,
        "legend": gradient_legend(names[graph.sink.index]),
        "sink": graph.sink.index,
        "collapsed": any(b["group"] for b in boxes.values()),
        "max_array": max_array,
        "nodes": nodes,
        "boxes": boxes,
        "steps": records,
        "arrays": arrays.table,
    }


def _op_of(node: Any) -> Any:
    recorded = node.tensor._node  # (op, inputs, params, ...); the op survives freeing
    return recorded[0] if recorded is not None else None


def _input_names(
    graph: Any, node: Any, names: dict[int, str]
) -> tuple[list[str | None], list[bool]]:
    """The names of the inputs of ``node``'s op, in order: a node's name, a constant's value
    (None for a constant array); and which of them are nodes of the graph."""
    recorded = node.tensor._node
    if recorded is None or recorded[1] is None:  # the inputs were not kept: the parents
        return [names[p.index] for p in node.parents], [True] * len(node.parents)
    out: list[str | None] = []
    for a in recorded[1]:
        parent = graph._by_id.get(id(a))
        if parent is not None:
            out.append(names[parent.index])
        elif isinstance(a, (int, float)) or getattr(a, "shape", None) == ():
            out.append(f"{float(a):g}")
        else:
            out.append(None)
    return out, [graph._by_id.get(id(a)) is not None for a in recorded[1]]


class _Arrays:
    """The page's arrays, each stored once: nodes and steps refer to them by position. A
    gradient appears up to three times in a backward pass (the step's gradient, the node's,
    and a child's contribution when it has one child); storing it once halves a big page."""

    def __init__(self, max_array: int) -> None:
        self.max_array = max_array
        self.table: list[dict] = []
        self._seen: dict[tuple[str, tuple[int, ...], str], int] = {}

    def add(self, value: Any) -> int | None:
        if value is None:
            return None
        a = np.asarray(value)
        key = (a.dtype.str, a.shape, hashlib.sha1(np.ascontiguousarray(a).data).hexdigest())
        if key not in self._seen:
            self._seen[key] = len(self.table)
            self.table.append(_array(a, self.max_array))
        return self._seen[key]


def _array(value: Any, max_array: int) -> dict:
    """An array as JSON: shape, size, its entries as nested lists (or the first ``max_array``
    entries, flat, when it is longer), and for arrays of several numbers norm, min and max."""
    a = np.asarray(value)
    size = int(a.size)
    truncated = size > max_array
    out: dict[str, Any] = {
        "shape": list(a.shape),
        "size": size,
        "truncated": truncated,
        "data": _json_safe((a.reshape(-1)[:max_array] if truncated else a).tolist()),
    }
    if size > 1 and a.dtype.kind in "biuf":
        f = a.astype(np.float64)
        out["stats"] = _json_safe(
            {"norm": float(np.linalg.norm(f)), "min": float(f.min()), "max": float(f.max())}
        )
    return out


def _json_safe(x: Any) -> Any:
    """NaN and infinities become the strings "NaN", "Infinity", "-Infinity" (JSON has no
    such numbers); complex numbers become their text. Recurses over an array's dimensions."""
    if isinstance(x, float):
        if math.isfinite(x):
            return x
        return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")
    if isinstance(x, complex):
        return str(x)
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    return x


def _script_json(data: Any) -> str:
    """JSON that is safe inside <script>: no "</script>", "<!--" or "&" can appear raw."""
    text = json.dumps(data, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


# -- the page ----------------------------------------------------------------------------------
def _asset(name: str) -> str:
    """One of the page's files (chainrule/viz/page/): its HTML template (str.format fields
    {title}, {legend}, {svg}, {data}, {css}, {js}), its style sheet or its script."""
    return (resources.files(__package__) / "page" / name).read_text(encoding="utf-8")
