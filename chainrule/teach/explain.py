"""The chain rule, step by step, for a small expression (``chainrule explain``).

``explain("x**4 + x**2", {"x": 3.0})`` builds the expression with chainrule's ops, one named
node per sub-expression, runs the backward pass and writes it out as a hand derivation would:
the forward values, then each step of the engine's backward pass with the local derivative of
every edge (the op table's formula, the numbers filled in) and every node's gradient as the sum
over its outgoing edges, then the final derivatives next to central differences.

EXPR is read with Python's ``ast`` and an allow-list: numbers, the variables given, unary
``+ -``, binary ``+ - * / ** @`` and calls by bare name to the differentiable elementwise, nn
and reduction ops of the table (``tanh``, ``sigmoid``, ``exp``, ``sum``, ...). Anything else is
refused with :class:`ExplainError` before anything runs; nothing is ever passed to ``eval``.

>>> e = explain("x**4 + x**2", {"x": 3.0})
>>> [(row.name, float(row.value)) for row in e.forward]
[('x', 3.0), ('x ** 4', 81.0), ('x ** 2', 9.0), ('x ** 4 + x ** 2', 90.0)]
>>> e.step("x").gradient_line
'dL/dx = 6 + 108 = 114'
"""

from __future__ import annotations

import inspect
import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine.tensor import Tensor, tensor
from ..ops import OPS
from ..ops.formulas import differential, fill, gradient_legend, split
from ..viz.graph_data import Graph, Node, graph
from .expression import (
    MAX_ENTRIES,
    ExplainError,
    _build,
    _Builder,
    _check_program,
    _parse,
    _Term,
    functions,
    parse_at,
)

__all__ = [
    "explain",
    "functions",
    "parse_at",
    "Explanation",
    "ExplainError",
    "Forward",
    "Edge",
    "Step",
    "Derivative",
    "MAX_ENTRIES",
]


# -- formulas -----------------------------------------------------------------------------------
def _num(value: Any, digits: int = 6) -> str:
    a = np.asarray(value)
    if a.ndim == 0:
        v = float(a)
        return f"{v:.{digits}g}" if v != 0 else "0"
    text = np.array2string(
        a, separator=", ", max_line_width=10**6, formatter={"float_kind": lambda v: f"{v:.4g}"}
    )
    return " ".join(text.split())


def _sum_text(values: list[Any]) -> str:
    out = _num(values[0])
    for v in values[1:]:
        neg = np.ndim(v) == 0 and float(v) < 0
        out += f" - {_num(-np.asarray(v))}" if neg else f" + {_num(v)}"
    return out


def _plain(term: _Term) -> list[Any]:
    return [t.value.numpy() if isinstance(t.value, Tensor) else t.value for t in term.inputs]


def _local(term: _Term, i: int) -> Any:
    """d term / d input i at the inputs' values, by chainrule's own backward pass: a number for
    scalars, the elementwise derivative for elementwise ops, else None (a Jacobian)."""
    from ..transforms.derivatives import grad

    op, out, x = term.op, term.value, term.inputs[i].value
    assert op is not None
    elementwise = op.family in ("elementwise", "nn") and "axis" not in op.param_names
    if np.shape(x) != out.shape or (out.shape != () and not elementwise):
        return None
    plain = _plain(term)

    def f(a: Any) -> Any:
        values = list(plain)
        values[i] = a
        return OPS["sum"].public(op.public(*values, **term.params))

    with np.errstate(all="ignore"):
        return np.asarray(grad(f)(np.asarray(plain[i], dtype=np.float64)))


def _kink(term: _Term, i: int) -> str | None:
    """The op's kink convention, when input i sits where the one-sided derivatives differ
    (for an elementwise op on arrays: at any entry)."""
    op = term.op
    if op is None or not op.kink:
        return None
    plain = [np.asarray(v, dtype=np.float64) for v in _plain(term)]
    elementwise = op.family in ("elementwise", "nn") and "axis" not in op.param_names
    if any(v.ndim for v in plain) and not (elementwise and plain[i].shape == term.value.shape):
        return None

    def f(a: Any) -> Any:
        values = list(plain)
        values[i] = a
        return np.asarray(op.public(*values, **term.params), dtype=np.float64)

    x = plain[i]
    h = 1e-7 * np.maximum(1.0, np.abs(x))
    with np.errstate(all="ignore"):
        right, left = (f(x + h) - f(x)) / h, (f(x) - f(x - h)) / h
    jump = np.abs(right - left) > 1e-3 * (1 + np.abs(right) + np.abs(left))
    return op.kink if bool(np.any(jump)) else None


def _params(term: _Term, formula: str, defaults: bool) -> dict[str, str]:
    """Placeholder in the formula -> the op parameter's value (given, or also the defaults).
    The table names a parameter itself (negative_slope) or by its place: clip(x, lo, hi)."""
    assert term.op is not None
    op = term.op
    head = re.match(r"d\s*\w+\(([^)]*)\)", formula)
    places = [a.strip() for a in head.group(1).split(",")][op.nin :] if head else []
    signature = inspect.signature(op.forward).parameters
    out = {}
    for k, name in enumerate(op.param_names):
        value = term.params.get(name, signature[name].default if defaults else None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = _num(value)
            if k < len(places) and places[k].isidentifier():
                out[places[k]] = _num(value)
    return out


def _derivative(term: _Term, parent: str, i: int, local: Any) -> str:
    """``d tanh(u)/du = 1 - tanh(u)^2 = 1 - tanh(0.5)^2 = 0.786448``, u the sub-expression."""
    assert term.op is not None
    op = term.op
    clause = op.formulas[i] if i < len(op.formulas) else ""
    head = f"{differential(term.text)}/{differential(parent)}"
    _, rhs, note = split(clause) if clause else ("", "", "")
    value = [] if local is None else [_num(local)]
    kink = _kink(term, i)
    kink = f"   [at a kink; the table's convention: {kink}]" if kink else ""
    if not clause or rhs == clause:
        return " = ".join([head, *value]) + f"   (the table: {op.formula}){kink}"
    note = f"  {note}" if note else ""
    names = dict(zip(op.inputs, (t.text for t in term.inputs)))
    names |= {"out": term.text, **_params(term, clause, False)}
    parts = [head, fill(rhs, names)]
    if all(np.ndim(t.value) == 0 for t in term.inputs):
        numbers = dict(zip(op.inputs, (_num(v) for v in _plain(term))))
        numbers |= {"out": _num(term.value.numpy()), **_params(term, clause, True)}
        parts.append(fill(rhs, numbers))
    parts += value
    kept = [p for k, p in enumerate(parts) if k == 0 or p != parts[k - 1]]
    return " = ".join(kept) + note + kink


# -- the report ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Forward:
    """One node of the forward pass: its name (the sub-expression), op, value, inputs."""

    name: str
    op: str | None
    value: Any
    made_as: str


@dataclass(frozen=True)
class Edge:
    """One edge child -> parent of the backward pass."""

    child: str
    parent: str
    input_index: int
    derivative: str  # the table's formula for this input, with the texts and numbers filled in
    local: Any  # its value (None where it is a Jacobian rather than a number per entry)
    upstream: Any  # dL/dchild
    contribution: Any  # what passes to the parent: upstream times the local derivative

    @property
    def passes(self) -> str:
        if self.local is None or np.ndim(self.contribution) > 0:
            return _num(self.contribution)
        local = _num(self.local)
        local = f"({local})" if local.startswith("-") else local
        return f"{_num(self.upstream)} * {local} = {_num(self.contribution)}"


@dataclass(frozen=True)
class Step:
    """One step of the engine's backward pass: a node, its gradient as the sum of what its
    children passed it, and the edges to its parents."""

    node: str
    op: str | None
    grad: Any
    terms: tuple[tuple[str, Any], ...]  # (child, what it passed), in the order they came
    edges: tuple[Edge, ...]
    symbol: str = "L"

    @property
    def gradient_line(self) -> str:
        head = f"d{self.symbol}/{differential(self.node)}"
        if len(self.terms) < 2:
            return f"{head} = {_num(self.grad)}"
        return f"{head} = {_sum_text([v for _, v in self.terms])} = {_num(self.grad)}"


@dataclass(frozen=True)
class Derivative:
    """dL/dvariable by backprop, by central differences, and their largest difference."""

    name: str
    backprop: Any
    numerical: Any
    difference: float
    used: bool = True


@dataclass
class Explanation:
    """The forward values, the backward steps and the checked derivatives of one expression.
    ``str()`` (or :meth:`text`) is the report; ``.graph`` is the :class:`Graph` to draw."""

    expr: str
    at: dict[str, Any]
    symbol: str
    forward: list[Forward]
    steps: list[Step]
    derivatives: list[Derivative]
    graph: Graph
    notes: list[str]
    definitions: list[tuple[str, str]] = field(default_factory=list)  # (name, what it names)
    sink_text: str = ""  # the sink's expression (forward[-1].name, unless it is named)

    def step(self, name: str) -> Step:
        """The backward step at the node of this name (a variable or a sub-expression)."""
        for s in self.steps:
            if s.node == name:
                return s
        raise KeyError(f"no node {name!r}; the nodes are {[s.node for s in self.steps]}")

    def derivative(self, name: str) -> Derivative:
        """The final derivative with respect to variable ``name``."""
        for d in self.derivatives:
            if d.name == name:
                return d
        raise KeyError(f"no variable {name!r}")

    def text(self) -> str:
        at = ", ".join(f"{k} = {_num(v)}" for k, v in self.at.items())
        out = [f"{name} = {value}" for name, value in self.definitions]
        out += [f"{self.symbol} = {self.sink_text or self.forward[-1].name}   at {at}", ""]
        out.append("Forward pass (sources first)")
        width = max(len(r.name) for r in self.forward)
        for r in self.forward:
            mark = f"   <- {self.symbol}" if r is self.forward[-1] else ""
            out.append(f"  {r.name:<{width}}  = {_num(r.value):<12}  {r.made_as}{mark}")
        out += ["", "Backward pass (the engine's order, sink first)"]
        if any(
            re.search(r"(?<![\w.])g(?![\w(])", e.derivative) for s in self.steps for e in s.edges
        ):
            out.append(f"  ({gradient_legend(self.symbol)})")
        for k, s in enumerate(self.steps, 1):
            out.append(f"  {k}. {s.node}   [{s.op or 'source'}]")
            seed = f"   (the seed: d{self.symbol}/d{self.symbol})" if not s.terms else ""
            via = f"   (via {', '.join(c for c, _ in s.terms)})" if len(s.terms) > 1 else ""
            out.append(f"     {s.gradient_line}{seed}{via}")
            for e in s.edges:
                out.append(f"     -> {e.parent}:  {e.derivative}")
                out.append(f"        passes {e.passes}")
        out += ["", "Derivatives: backprop against central differences (cr.numerical_grad)"]
        rows = [("", "backprop", "numerical", "|difference|")]
        for d in self.derivatives:
            name = f"d{self.symbol}/d{d.name}"
            rows.append((name, _num(d.backprop, 12), _num(d.numerical, 12), f"{d.difference:.1e}"))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            cells = "  ".join(c.ljust(w) for c, w in zip(row, widths))
            out.append(f"  {cells}  {row[3]}")
        out += [f"note: {n}" for n in self.notes]
        return "\n".join(line.rstrip() for line in out)

    def __str__(self) -> str:
        return self.text()


def _variables(at: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in at.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ExplainError(f"{name!r} is not a variable name (x, w1, b, ...)")
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ExplainError(
                f"{name}: {value!r} is not a number or an array of numbers"
            ) from None
        if not np.all(np.isfinite(array)):
            raise ExplainError(f"{name}: give a finite value, not {value!r}")
        if array.size == 0:
            raise ExplainError(f"{name}: an empty array; give at least one number")
        out[name] = array
    if sum(a.size for a in out.values()) > MAX_ENTRIES:
        raise ExplainError(
            f"the variables have more than {MAX_ENTRIES} entries in all: explain is for small "
            "expressions (for large arrays use cr.gradcheck)"
        )
    return out


def explain(
    expr: str, at: Mapping[str, Any], names: Mapping[str, str] | None = None
) -> Explanation:
    """The chain rule for ``expr`` at the point ``at``, step by step (see the module doc).

    ``at`` maps each variable to a number (or an array); each becomes a leaf tensor in float64
    that requires grad. ``expr`` may be several statements, separated by ``;`` or new lines:
    ``h = ...`` names an intermediate, and the last statement is the sink. ``names`` maps more
    names to expressions, as statements before ``expr``; a named expression is called by its
    name everywhere, also where ``expr`` writes it out in full. Raises :class:`ExplainError`
    for anything outside the allow-list, before anything is evaluated.

    >>> e = explain("sigmoid(w*x + b)", {"w": 0.5, "x": 2.0, "b": -0.5})
    >>> round(float(e.derivative("w").backprop), 6)  # sigmoid(0.5) (1 - sigmoid(0.5)) x
    0.470007
    >>> e = explain("z = w*x + b; sigmoid(z)", {"w": 0.5, "x": 2.0, "b": -0.5})
    >>> e.step("sigmoid(z)").edges[0].derivative
    'd sigmoid(z)/dz = sigmoid(z) (1 - sigmoid(z)) = sigmoid(0.5) (1 - sigmoid(0.5)) = 0.235004'
    """
    from ..transforms.check import numerical_grad

    values = _variables(at)
    expr = _with_names(expr.strip(), names or {})
    if not expr:
        raise ExplainError("EXPR is empty; give an expression such as 'x**4 + x**2'")
    program = _parse(expr, values)
    _check_program(program, values)
    leaves = {n: tensor(v, requires_grad=True, name=n) for n, v in values.items()}
    builder = _Builder(leaves, program.defined)
    top = _build(builder, program)
    sink = top.value
    if not isinstance(sink, Tensor) or not sink.requires_grad:
        raise ExplainError(f"EXPR {expr!r} uses none of the variables; nothing to differentiate")
    if sink.shape != ():
        whole = top.definition or top.text
        raise ExplainError(
            f"EXPR gives an array of shape {sink.shape}, not a number: differentiate a scalar, "
            f"such as sum({whole})"
        )
    last = program.statements[-1][0]
    taken = set(values) | set(program.defined)
    symbol = last or next(s for s in ("L", "f", "F", "loss", "ell") if s not in taken)
    named = [t for t in builder.memo.values() if t.definition]
    definitions = [(t.text, t.definition) for t in named if t is not top]
    g = graph(sink)
    terms = {id(t.value): t for t in reversed(builder.memo.values())}
    with np.errstate(all="ignore"):
        traced = g.backward_steps()
    received: dict[int, list[tuple[str, Any]]] = {}
    steps = []
    for s in traced:
        term = terms.get(id(s.node.tensor))
        edges = []
        for parent, i, value in s.contributions:
            received.setdefault(id(parent), []).append((s.node.name, value))
            if term is None or term.op is None:  # not built here: the table's formula as is
                edges.append(Edge(s.node.name, parent.name, i, s.formula, None, s.grad, value))
                continue
            local = _local(term, i)
            text = _derivative(term, parent.name, i, local)
            edges.append(Edge(s.node.name, parent.name, i, text, local, s.grad, value))
        got = tuple(received.get(id(s.node), ()))
        steps.append(Step(s.node.name, s.op, s.grad, got, tuple(edges), symbol))
    forward = [_forward_row(n, terms.get(id(n.tensor))) for n in g.nodes]

    variables = list(values)
    point = [values[n] for n in variables]

    def f(*args: Any) -> Any:
        return _Builder(dict(zip(variables, args)), program.defined).run(program).value

    in_graph = {n.tensor.name: n for n in g.sources}
    derivatives, notes = [], []
    for k, name in enumerate(variables):
        node = in_graph.get(name)
        back = np.zeros_like(point[k]) if node is None else np.asarray(node.grad)
        with np.errstate(all="ignore"):
            num = np.asarray(numerical_grad(f, *point, argnums=k))
        diff = float(np.max(np.abs(back - num)))
        derivatives.append(Derivative(name, back, num, diff, node is not None))
        if node is None:
            notes.append(f"{name} is given but EXPR does not use it: d{symbol}/d{name} = 0")
        elif np.all(np.isfinite(num)) and diff > 1e-5 * (1 + float(np.max(np.abs(back)))):
            kinked = any("at a kink" in e.derivative for s in steps for e in s.edges)
            why = (
                ": EXPR is at a kink, where central differences average the two sides and "
                "backprop follows the table's convention (marked in the steps)"
                if kinked
                else ""
            )
            notes.append(f"d{symbol}/d{name}: backprop and central differences disagree{why}")
    if not all(np.all(np.isfinite(n.value)) for n in g.nodes):
        notes.append("some values are not finite: a function is used outside its domain")
    elif not all(np.all(np.isfinite(d.backprop)) for d in derivatives):
        notes.append(
            "a derivative is not finite here (as sqrt'(0)): the slope is infinite or undefined"
        )
    unused = [t.text for t in named if id(t.value) not in {id(n.tensor) for n in g.nodes}]
    notes += [f"{n} is assigned but {symbol} does not use it" for n in unused]
    sink_text = top.definition or top.text
    return Explanation(
        expr, dict(values), symbol, forward, steps, derivatives, g, notes, definitions, sink_text
    )


def _with_names(expr: str, names: Mapping[str, str]) -> str:
    """``names`` ({"h": "tanh(x)"}) as statements before ``expr``: "h = tanh(x)\nexpr"."""
    lines = []
    for name, value in names.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ExplainError(f"--name {name}=...: {name!r} is not a name (h, z1, hidden, ...)")
        value = str(value).strip()
        if not value or any(c in value for c in ";\n\r"):
            raise ExplainError(f"--name {name}={value}: give one expression, as in {name}=tanh(x)")
        lines.append(f"{name} = {value}")
    return "\n".join([*lines, expr]) if lines and expr else expr


def _forward_row(n: Node, term: _Term | None) -> Forward:
    if n.is_source or term is None or term.op is None:
        return Forward(n.name, n.op, n.value, "variable" if n.is_source else str(n.op))
    params = ", ".join(f"{k}={v!r}" for k, v in term.params.items())
    return Forward(n.name, n.op, n.value, f"{term.op.name} ({params})" if params else term.op.name)
