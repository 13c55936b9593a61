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
