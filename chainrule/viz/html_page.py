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
    return _TEMPLATE.format(
        title=html.escape(title),
        legend=html.escape(data["legend"]),
        svg=svg,
        data=_script_json(data),
        css=_CSS,
        js=_JS,
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
_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
<header>
  <h1>{title}</h1>
  <span class="legend">
    <span class="swatch parameter"></span>parameter
    <span class="swatch input"></span>input
    <span class="swatch op"></span>op
    <span class="swatch sink"></span>sink
    <span class="swatch current"></span>current step
    <span class="swatch parent"></span>receives from it
  </span>
</header>
<main>
<section id="graph" aria-label="computation graph">
<div id="zoom">
  <button id="zoom-out" title="zoom out">&minus;</button>
  <button id="zoom-in" title="zoom in">+</button>
  <button id="zoom-fit" title="the whole picture">Fit</button>
  <button id="zoom-read" title="the size at which every label is legible">Readable</button>
  <button id="view" hidden title="one box per layer, or every node">Expand layers</button>
  <input id="search" type="search" placeholder="find a node (/)" aria-label="find a node by name">
  <span id="found" class="note"></span>
</div>
{svg}
</section>
<aside id="panel">
  <div id="controls">
    <button id="reset" title="back to the sink (Home)">Reset</button>
    <button id="prev" title="previous step (Left arrow or p)">&#9664; Previous</button>
    <button id="play" title="play the backward pass">Play</button>
    <button id="next" title="next step (Right arrow or n)">Next &#9654;</button>
    <label id="over-label" hidden><input type="checkbox" id="over" checked> step over groups</label>
  </div>
  <div id="counter"></div>
  <section id="step" aria-live="polite">
    <h2 id="step-title"></h2>
    <p id="step-kind"></p>
    <h3>Gradient arriving from its children</h3>
    <div id="step-incoming"></div>
    <h3>Local derivative</h3>
    <p id="gradient-legend" class="note">{legend}</p>
    <p id="step-formula" class="formula"></p>
    <h3>Passes to each parent</h3>
    <div id="step-outgoing"></div>
  </section>
  <section id="inspect">
    <h2 id="inspect-title"></h2>
    <div id="inspect-body"></div>
  </section>
  <details id="order-box"><summary>The order of the backward pass</summary>
    <ol id="order"></ol>
  </details>
</aside>
</main>
<script type="application/json" id="chainrule-data">{data}</script>
<script>
{js}
</script>
</body>
</html>
"""

_CSS = """
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 Helvetica, Arial, sans-serif; color: #222; background: #fafafa;
       height: 100vh; display: flex; flex-direction: column; }
header { padding: 8px 16px; background: #fff; border-bottom: 1px solid #ddd;
         display: flex; align-items: baseline; gap: 24px; flex-wrap: wrap; }
h1 { font-size: 17px; margin: 0; }
h2 { font-size: 15px; margin: 4px 0; }
h3 { font-size: 12px; margin: 10px 0 2px; text-transform: uppercase; letter-spacing: .04em;
     color: #666; }
.legend { font-size: 12px; color: #555; }
.swatch { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 10px;
          vertical-align: -2px; border: 1.5px solid; border-radius: 3px; }
.swatch.parameter { background: #e3f4e1; border-color: #2e7d32; }
.swatch.input { background: #eee; border-color: #616161; }
.swatch.op { background: #fff; border-color: #1f5fa8; }
.swatch.sink { background: #fde8e6; border-color: #c62828; }
.swatch.current { background: #fff3e0; border: 3px solid #ef6c00; }
.swatch.parent { background: #f3e5f5; border: 3px solid #7b1fa2; }
main { flex: 1; display: flex; min-height: 0; }
#graph { flex: 1; overflow: auto; padding: 0 12px 12px; background: #fff; }
#graph svg { display: block; margin: 0 auto; }
#graph svg[hidden] { display: none; }
#zoom { position: sticky; top: 0; left: 0; z-index: 1; display: flex; gap: 4px; padding: 6px;
        width: max-content; align-items: center; background: rgba(255, 255, 255, .92);
        border-radius: 0 0 6px 0; }
#zoom button { padding: 1px 9px; }
#search { font: inherit; width: 14em; padding: 2px 6px; }
#panel { width: 430px; overflow-y: auto; padding: 10px 14px; border-left: 1px solid #ddd; }
#controls { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
button { font: inherit; padding: 3px 10px; border: 1px solid #999; border-radius: 4px;
         background: #fff; cursor: pointer; }
button:hover { background: #eef3fb; }
button:disabled { color: #aaa; cursor: default; background: #fff; }
#counter { margin: 6px 0; color: #555; }
#step, #inspect { background: #fff; border: 1px solid #ddd; border-radius: 6px;
                  padding: 6px 10px 10px; margin-bottom: 10px; }
#step-kind { margin: 0; color: #555; }
.formula { font-family: Menlo, Consolas, monospace; font-size: 12.5px; background: #f5f5f5;
           padding: 3px 6px; border-radius: 3px; margin: 2px 0; }
.item { margin: 4px 0; }
.item .who { font-weight: bold; }
.note { color: #777; font-size: 12px; }
pre { font: 12px/1.35 Menlo, Consolas, monospace; margin: 2px 0 6px; padding: 4px 6px;
      background: #f7f7fb; border-radius: 3px; max-height: 14em; overflow: auto; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 10px; margin: 4px 0; }
dt { color: #666; } dd { margin: 0; }
#order { font-size: 12px; max-height: 16em; overflow-y: auto; padding-left: 2.6em; }
#order li { cursor: pointer; } #order li.current { font-weight: bold; color: #ef6c00; }
.chainrule-graph g.node { cursor: pointer; }
.chainrule-graph g.node.pending { opacity: .45; }
.chainrule-graph g.node.current rect { stroke: #ef6c00; stroke-width: 4px; fill: #fff3e0; }
.chainrule-graph g.node.parent rect { stroke: #7b1fa2; stroke-width: 3.5px; fill: #f3e5f5; }
.chainrule-graph g.node.pinned rect { stroke-dasharray: 6 3; }
.chainrule-graph path.edge.flow { stroke: #7b1fa2; stroke-width: 2.2px; }
.chainrule-graph path.edge.arrived { stroke: #ef6c00; stroke-width: 2.2px; }
.chainrule-graph g.node.match rect { stroke: #00897b; stroke-width: 4px; }
.chainrule-graph g.node.match.pending { opacity: 1; }
"""

_JS = r"""
"use strict";
// The data written by chainrule.viz.html_page: nodes (value, gradient), boxes of the picture, and
// the backward pass's steps in the engine's order (sink first).
const data = JSON.parse(document.getElementById("chainrule-data").textContent);
const steps = data.steps;
const $ = (id) => document.getElementById(id);
// A view is one picture: one box per layer ("layers") or, with layers expanded, every node.
function makeView(svg, table, boxKey) {
  const boxes = {};  // box key -> its <g class="node"> in the SVG
  svg.querySelectorAll("g.node").forEach((g) => { boxes[g.dataset.node] = g; });
  const [, , w, h] = svg.getAttribute("viewBox").split(" ").map(Number);
  return { svg, table, boxKey, boxes, w, h, edges: Array.from(svg.querySelectorAll("path.edge")) };
}
const pictures = document.querySelectorAll("svg.chainrule-graph");
const views = [makeView(pictures[0], data.boxes, (i) => String(data.nodes[i].box))];
if (data.expanded) {
  views.push(makeView(pictures[1], data.expanded.boxes, (i) => String(data.expanded.box_of[i])));
}
let view = views[0];
let current = 0;     // index of the step shown
let pinned = null;   // box key clicked for the inspector, or null
let timer = null;    // the Play interval

// -- text helpers: every piece of data goes in via textContent, never as markup --------------
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
function num(v) {  // 4 significant digits; NaN and infinities arrive as strings
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  const a = Math.abs(v);
  return a >= 1e-3 && a < 1e5 ? String(Number(v.toPrecision(4))) : v.toExponential(3);
}
function shapeText(shape) {
  if (!shape.length) return "scalar";
  return "(" + shape.join(", ") + (shape.length === 1 ? ",)" : ")");
}
// An array as NumPy prints it: nested brackets, one row per line, columns aligned.
function formatArray(arr) {
  if (!arr) return "-";
  if (!Array.isArray(arr.data)) return num(arr.data);
  const flat = (x) => (Array.isArray(x) ? x.flatMap(flat) : [x]);
  const width = Math.max(1, ...flat(arr.data).map((v) => num(v).length));
  const fmt = (x, depth) => {
    if (!Array.isArray(x)) return num(x).padStart(width);
    if (x.length && Array.isArray(x[0])) {  // rows on their own lines, blocks apart
      const gap = "\n".repeat(Math.max(0, arr.shape.length - depth - 2));
      return "[" + x.map((r) => fmt(r, depth + 1)).join(",\n" + gap + " ".repeat(depth + 1)) + "]";
    }
    return "[" + x.map((v) => fmt(v, depth + 1)).join(", ") + "]";
  };
  return fmt(arr.data, 0);
}
// A <pre> with the array, then a note when it was cut, and its norm and range.
function arrayBlock(arr, parent) {
  parent.appendChild(el("pre", formatArray(arr)));
  if (arr && arr.truncated) {
    parent.appendChild(el("div", "the first " + arr.data.length + " of " + arr.size +
      " entries (row-major) of shape " + shapeText(arr.shape) + ": the page keeps at most " +
      data.max_array, "note"));
  }
  if (arr && arr.stats) {
    const s = arr.stats;
    parent.appendChild(el("div", "norm " + num(s.norm) + ", min " + num(s.min) +
      ", max " + num(s.max), "note"));
  }
}
function item(who, note) {  // one entry of a list in the panel: bold who, grey note
  const e = el("div", null, "item");
  e.appendChild(el("span", who, "who"));
  if (note) e.appendChild(el("span", " " + note, "note"));
  return e;
}
const nodeName = (i) => data.nodes[i].name;
const array = (i) => (i === null ? null : data.arrays[i]);  // arrays are stored once, by index
const boxOf = (k) => view.boxKey(steps[k].node);

// -- the step-through ------------------------------------------------------------------------
function show(k) {
  current = Math.max(0, Math.min(steps.length - 1, k));
  const step = steps[current];
  const node = data.nodes[step.node];
  const box = view.table[boxOf(current)];
  $("counter").textContent = "Step " + (current + 1) + " of " + steps.length;
  $("prev").disabled = current === 0;
  $("next").disabled = current === steps.length - 1;
  const made = node.op && node.op !== node.name ? " = " + node.op + "(...)" : "";
  $("step-title").textContent = node.name + made;
  const layer = data.layers[step.node];
  $("step-kind").textContent =
    (node.op ? "op " + node.op : "source (" + node.kind + "): its gradient is final") +
    ", shape " + shapeText(node.shape) +
    (box.group ? ", inside the group " + box.title : layer ? ", in the layer " + layer : "");

  // What arrived: the sink gets the seed; any other node the shares its children sent it.
  const inc = $("step-incoming");
  inc.replaceChildren();
  const d = (n) => data.nodes[data.sink].d + " / " + n.d;
  if (step.node === data.sink) inc.appendChild(item("the seed", d(node) + " = 1"));
  for (const [s, j] of step.incoming) {
    const sent = steps[s].outgoing[j];
    const e = item("from " + nodeName(steps[s].node),
                   "(step " + (s + 1) + ", as its argument " + sent.arg + ")");
    arrayBlock(array(sent.value), e);
    inc.appendChild(e);
  }
  const total = item((step.incoming.length > 1 ? "sum = " : "") + d(node));
  arrayBlock(array(step.grad), total);
  inc.appendChild(total);

  // The local rule, then each parent's share of the chain rule through this node.
  let rule = "none: a source has no parents";
  if (step.op) rule = step.formula || "(the op table gives no formula)";
  if (step.kink) rule += "   [at a kink: " + step.kink + "]";
  $("step-formula").textContent = rule;
  const out = $("step-outgoing");
  out.replaceChildren();
  if (!step.outgoing.length) {
    const why = step.op ? "no parent needs a gradient" : "the pass ends here on this path";
    out.appendChild(el("div", "nothing: " + why, "note"));
  }
  for (const o of step.outgoing) {
    const e = item("to " + nodeName(o.to), "(argument " + o.arg + ")");
    e.appendChild(el("div", o.rule, "formula"));
    arrayBlock(array(o.value), e);
    out.appendChild(e);
  }
  highlight(step);
  document.querySelectorAll("#order li").forEach((li, i) => {
    li.classList.toggle("current", i === current);
  });
  if (pinned === null) inspectNode(step.node);
}

// Keep a box on screen: scroll only when it is (partly) out of the pane, and then centre it.
function bringIntoView(g, always) {
  const pane = $("graph").getBoundingClientRect();
  const r = g.getBoundingClientRect();
  const inside = r.left >= pane.left && r.right <= pane.right && r.top >= pane.top + 30 &&
    r.bottom <= pane.bottom;
  if (always || !inside) g.scrollIntoView({ block: "center", inline: "center" });
}

// Colour the picture: the current node's box, its parents' boxes, the edges the gradient
// takes; boxes the pass has not reached yet are faded.
function highlight(step) {
  const here = view.boxKey(step.node);
  const parents = new Set(step.outgoing.map((o) => view.boxKey(o.to)));
  const children = new Set(step.incoming.map(([s]) => boxOf(s)));
  const reached = new Set();
  for (let k = 0; k <= current; k++) reached.add(boxOf(k));
  for (const [key, g] of Object.entries(view.boxes)) {
    g.classList.toggle("current", key === here);
    g.classList.toggle("parent", key !== here && parents.has(key));
    g.classList.toggle("pending", !reached.has(key) && !parents.has(key));
  }
  for (const e of view.edges) {
    e.classList.toggle("flow", e.dataset.to === here && parents.has(e.dataset.from));
    e.classList.toggle("arrived", e.dataset.from === here && children.has(e.dataset.to));
  }
  bringIntoView(view.boxes[here], false);
}

// One click: the next step, or with "step over groups" the first step outside this group box.
function stride(dir) {
  let k = current + dir;
  const box = boxOf(current);
  if ($("over").checked && view.table[box].group) {
    while (k > 0 && k < steps.length - 1 && boxOf(k) === box) k += dir;
  }
  show(k);
}
function play() {
  if (timer) { clearInterval(timer); timer = null; $("play").textContent = "Play"; return; }
  if (current === steps.length - 1) show(0);
  $("play").textContent = "Pause";
  timer = setInterval(() => {
    if (current >= steps.length - 1) play();  // stops at the last source
    else stride(1);
  }, 900);
}

// -- the inspector: a node's value and gradient ------------------------------------------------
function inspectNode(i) {
  const n = data.nodes[i];
  const note = pinned !== null ? "  (pinned: click it again to release)" : "";
  $("inspect-title").textContent = "Node " + n.id + ": " + n.name + note;
  const body = $("inspect-body");
  body.replaceChildren();
  const dl = el("dl");
  const row = (k, v) => { dl.appendChild(el("dt", k)); dl.appendChild(el("dd", v)); };
  row("op", n.op || "none: a source (" + n.kind + ")");
  row("shape", shapeText(n.shape));
  row("dtype", n.dtype);
  if (data.layers[i]) row("layer", data.layers[i]);
  if (n.parents.length) row("parents", n.parents.map(nodeName).join(", "));
  body.appendChild(dl);
  body.appendChild(el("h3", "value"));
  if (n.value !== null) arrayBlock(array(n.value), body);
  else body.appendChild(el("div", "freed by backward(): the pass let go of it once no " +
                                  "rule needed it (pass retain_graph=True to keep it)", "note"));
  body.appendChild(el("h3", "gradient " + data.nodes[data.sink].d + " / " + n.d));
  if (n.grad !== null) arrayBlock(array(n.grad), body);
  else body.appendChild(el("div", n.requires_grad ? "no gradient reached it" :
                                  "none: it does not require grad", "note"));
}
function inspectBox(key) {  // a group box lists its nodes; a click on one shows its arrays
  const box = view.table[key];
  if (!box.group) { inspectNode(box.members[0]); return; }
  $("inspect-title").textContent = box.title + " (" + box.members.length + " nodes)";
  const body = $("inspect-body");
  body.replaceChildren(el("div", "Click a node to see its arrays.", "note"));
  const list = el("ol");
  for (const i of box.members) {
    const li = el("li", nodeName(i) + " " + shapeText(data.nodes[i].shape));
    li.style.cursor = "pointer";
    li.addEventListener("click", () => inspectNode(i));
    list.appendChild(li);
  }
  body.appendChild(list);
}
const restore = () => (pinned !== null ? inspectBox(pinned) : inspectNode(steps[current].node));

// Zoom. The page opens at the scale that fits the picture in its pane, but never below the
// scale at which the smallest label is 9.5 px on screen: a bigger picture scrolls instead of
// shrinking out of legibility. - + change it, Fit shows the whole picture, Readable goes back.
const legible = 9.5 / data.min_font;
let scale = 1;
function fitScale() {
  const pane = $("graph");
  return Math.min((pane.clientWidth - 24) / view.w, (pane.clientHeight - 48) / view.h);
}
const openingScale = () => Math.min(2, Math.max(legible, fitScale()));
function zoom(s) {
  scale = Math.max(0.1, Math.min(4, s));
  for (const v of views) {
    v.svg.setAttribute("width", String(Math.round(v.w * scale)));
    v.svg.setAttribute("height", String(Math.round(v.h * scale)));
  }
}

// Search: boxes whose node names (or op names, or the layer's title) contain the text are
// outlined; Enter jumps to the next one.
let matches = [];
let matchAt = -1;
function search(text) {
  const q = text.trim().toLowerCase();
  const keys = new Set();
  if (q) {
    data.nodes.forEach((n, i) => {
      if ((n.name + " " + (n.op || "")).toLowerCase().includes(q)) keys.add(view.boxKey(i));
    });
    for (const [key, box] of Object.entries(view.table)) {
      if (box.title.toLowerCase().includes(q)) keys.add(key);
    }
  }
  matches = Object.keys(view.boxes).filter((key) => keys.has(key));
  matchAt = -1;
  for (const [key, g] of Object.entries(view.boxes)) g.classList.toggle("match", keys.has(key));
  $("found").textContent = q ? matches.length + " found" + (matches.length ? ", Enter: next" : "")
                             : "";
}
function nextMatch() {
  if (!matches.length) return;
  matchAt = (matchAt + 1) % matches.length;
  const key = matches[matchAt];
  bringIntoView(view.boxes[key], true);
  inspectBox(key);
  $("found").textContent = (matchAt + 1) + " of " + matches.length;
}

// Layers collapsed into boxes, or every node: the step, the zoom and the search carry over.
function switchView() {
  view.svg.setAttribute("hidden", "");
  view = view === views[0] ? views[views.length - 1] : views[0];
  view.svg.removeAttribute("hidden");
  $("view").textContent = view === views[0] ? "Expand layers" : "Collapse layers";
  $("over-label").hidden = !Object.values(view.table).some((b) => b.group);
  if (pinned !== null) pinned = null;
  search($("search").value);
  if (steps.length) show(current);
}

// -- wiring ----------------------------------------------------------------------------------
for (const v of views) {
  for (const [key, g] of Object.entries(v.boxes)) {
    g.addEventListener("mouseenter", () => inspectBox(key));
    g.addEventListener("mouseleave", restore);
    g.addEventListener("click", () => {  // pin this box in the inspector, or release it
      if (pinned !== null && v.boxes[pinned]) v.boxes[pinned].classList.remove("pinned");
      pinned = pinned === key ? null : key;
      if (pinned !== null) g.classList.add("pinned");
      restore();
    });
  }
}
$("reset").addEventListener("click", () => show(0));
$("prev").addEventListener("click", () => stride(-1));
$("next").addEventListener("click", () => stride(1));
$("play").addEventListener("click", play);
$("zoom-out").addEventListener("click", () => zoom(scale / 1.25));
$("zoom-in").addEventListener("click", () => zoom(scale * 1.25));
$("zoom-fit").addEventListener("click", () => zoom(fitScale()));
$("zoom-read").addEventListener("click", () => zoom(openingScale()));
$("view").hidden = views.length < 2;
$("view").addEventListener("click", switchView);
$("search").addEventListener("input", (e) => search(e.target.value));
$("search").addEventListener("keydown", (e) => {
  if (e.key === "Enter") { e.preventDefault(); nextMatch(); }
  if (e.key === "Escape") { e.target.value = ""; search(""); e.target.blur(); }
});
$("over-label").hidden = !data.collapsed;
$("over").checked = data.collapsed;
document.addEventListener("keydown", (e) => {
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  if (e.target instanceof HTMLInputElement && e.target.type !== "checkbox") return;
  const keys = { ArrowRight: () => stride(1), ArrowLeft: () => stride(-1),
                 n: () => stride(1), p: () => stride(-1),
                 Home: () => show(0), End: () => show(steps.length - 1),
                 "/": () => $("search").focus() };
  if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
});
steps.forEach((s, k) => {
  const li = el("li", nodeName(s.node) + (s.op ? " (" + s.op + ")" : " (source)"));
  li.addEventListener("click", () => show(k));
  $("order").appendChild(li);
});
zoom(openingScale());
if (steps.length) {
  show(0);
  bringIntoView(view.boxes[boxOf(0)], true);  // open on the first step, centred
} else {  // a sink that does not require grad: nothing flows back, the graph alone is shown
  $("counter").textContent = "No backward pass: the sink does not require grad.";
  for (const id of ["reset", "prev", "play", "next"]) $(id).disabled = true;
  $("step").hidden = true;
  inspectNode(data.sink);
}
"""
