"""The computation graph as data: ``cr.graph(sink)`` gives a :class:`Graph` of :class:`Node`.

It is a snapshot of the recorded graph, sources first and sink last, that a user can walk,
print as Graphviz text, or export as JSON or a networkx graph. It also listens to the backward
passes run from its sink: :meth:`Graph.backward_steps` gives the steps in the order the engine
really took them, and every node's gradient (d sink / d node) becomes readable.

Which gradients a Graph shows (:attr:`Node.grad`, the pictures, the page): only those of a
backward pass from its own sink. A leaf shared with an earlier graph may hold a ``.grad``
that graph's ``backward()`` left; this graph does not show it as its own.

- A pass from the sink that the Graph saw (``loss.backward()`` after ``cr.graph(loss)``, or
  :meth:`Graph.backward_steps`): the gradients that pass computed, node by node.
- Otherwise, once ``backward()`` from the sink has freed its graph (a Graph made after the
  pass): the ``.grad`` that pass left on the leaves (and on ``retain_grad()`` nodes), as it
  stands, sums of earlier passes included where they were not zeroed.
- Otherwise (no pass yet, or one run with ``retain_graph=True`` before the Graph was made):
  no gradients; :meth:`Graph.backward_steps` runs one without touching any ``.grad``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..backends import to_numpy
from ..engine.backward import run_traced, topological_order, unwatch, watch
from ..engine.registry import SAVED
from ..engine.tensor import Husk, Tensor, is_freed

__all__ = ["Graph", "Node", "BackwardStep", "graph"]


class _Passes:
    """What a Graph knows of the backward passes from its sink, shared by its nodes (so that
    a node can tell its own graph's gradients from a ``.grad`` another graph left)."""

    __slots__ = ("sink", "seen")

    def __init__(self, sink: Tensor) -> None:
        self.sink = sink
        self.seen = False  # whether the Graph recorded a pass from its sink

    def reads_grad(self) -> bool:
        """Whether a ``.grad`` can be read as this sink's: a pass from it freed its graph."""
        return not self.seen and self.sink._op is not None and is_freed(self.sink)


@dataclass(frozen=True)
class BackwardStep:
    """One step of a backward pass: the gradient that gathered at ``node`` (d sink / d node),
    the derivative rule applied there, and what it sent to each parent.

    ``contributions`` holds ``(parent, input_index, value)``: the parent's share of the chain
    rule through this node (already summed back over broadcast dimensions). A parent's own
    gradient is the sum of the contributions it receives from all its children.
    """

    node: Node
    grad: Any
    op: str | None
    formula: str
    contributions: tuple[tuple[Node, int, Any], ...]

    def __repr__(self) -> str:
        sent = ", ".join(f"{p.name}" for p, _, _ in self.contributions)
        return f"BackwardStep({self.node.name}: {self.op or 'source'} -> [{sent}])"


class Node:
    """One node of a :class:`Graph`: a tensor and how it was made."""

    __slots__ = (
        "tensor",
        "index",
        "op",
        "formula",
        "parents",
        "params",
        "traced_grad",
        "call",
        "_passes",
    )

    def __init__(self, tensor: Tensor, index: int, passes: _Passes | None = None) -> None:
        self.tensor = tensor
        self.index = index
        self._passes = passes
        node = tensor._node
        self.op: str | None = node[0].name if node else None
        self.formula: str = node[0].formula if node else ""
        # the op's parameters as the user gave them (not a value the op saved for its rules)
        self.params: dict[str, Any] = (
            {k: v for k, v in node[2].items() if k != SAVED} if node else {}
        )
        self.parents: list[Node] = []
        self.traced_grad: Any = None
        # "power(·, 4)": the op with its constant inputs shown, "·" for each tensor input
        self.call: str = _call_text(node) if node is not None and node[1] is not None else ""

    @property
    def shape(self) -> tuple[int, ...]:
        return self.tensor.shape

    @property
    def dtype(self) -> Any:
        return self.tensor.dtype

    @property
    def name(self) -> str:
        label = self.tensor.name
        if label:
            return label
        return self.op if self.op else f"input{self.index}"

    @property
    def freed(self) -> bool:
        """Whether backward() has let go of this node's value (its structure stays)."""
        return isinstance(self.tensor, Husk)

    @property
    def value(self) -> Any:
        """The tensor's value as a NumPy array; None where backward() freed it."""
        return None if self.freed else self.tensor.numpy()

    @property
    def grad(self) -> Any:
        """d sink / d node from the last backward pass from the sink that the Graph saw (any
        node); else, once a pass from the sink has freed its graph, the tensor's ``.grad``
        (leaves, ``retain_grad()`` nodes); else None: a ``.grad`` that another graph's
        backward left on a shared leaf is not this graph's (see the module's notes)."""
        if self.traced_grad is not None:
            return self.traced_grad
        if self._passes is not None and not self._passes.reads_grad():
            return None
        g = self.tensor.grad
        return None if g is None else g.numpy()

    @property
    def is_source(self) -> bool:
        return self.op is None

    def __repr__(self) -> str:
        kind = "source" if self.op is None else self.op
        return f"Node({self.index}: {self.name} [{kind}] shape={self.shape})"


class Graph:
    """The computation graph that produced ``sink``: nodes in topological order.

    >>> import chainrule as cr
    >>> x = cr.tensor(3.0, requires_grad=True, name="x")
    >>> g = cr.graph(x * x + x)
    >>> [n.name for n in g.nodes]
    ['x', 'multiply', 'add']
    >>> len(g.edges), [s.name for s in g.sources]  # x feeds multiply twice, and add
    (4, ['x'])
    """

    def __init__(self, sink: Tensor, module: Any = None) -> None:
        self.module = module  # optional: the model, to name collapsed layers by attribute
        if not isinstance(sink, Tensor):
            raise TypeError(f"graph: expected a Tensor, got {type(sink).__name__}")
        order = topological_order(sink)
        # still a topological order with every source moved to the front
        order = [t for t in order if t._node is None] + [t for t in order if t._node is not None]
        self._passes = _Passes(sink)
        self.nodes: list[Node] = [Node(t, i, self._passes) for i, t in enumerate(order)]
        by_id = {id(n.tensor): n for n in self.nodes}
        self.edges: list[tuple[Node, Node]] = []
        for n in self.nodes:
            node = n.tensor._node
            if node is None or node[1] is None:
                continue
            for a in node[1]:
                if isinstance(a, Tensor):
                    parent = by_id[id(a)]
                    n.parents.append(parent)
                    self.edges.append((parent, n))
        self.sink: Node = self.nodes[-1]
        self._by_id = by_id
        self._steps: list[BackwardStep] = []
        self._listen()

    # -- the backward pass, step by step --------------------------------------------------------
    def _listen(self) -> None:
        """Record every backward pass that starts at this graph's sink (weakly: a dropped
        Graph stops listening)."""
        sink = self.sink.tensor
        ref = weakref.ref(self)

        def record(t: Tensor, g: Any, op: Any, sent: Any) -> None:
            graph = ref()
            if graph is not None:
                graph._record(t, g, op, sent)

        record.graph_ref = ref  # type: ignore[attr-defined]
        watch(sink, record)
        weakref.finalize(self, unwatch, id(sink), record)

    def _record(self, t: Tensor, g: Any, op: Any, sent: Any) -> None:
        node = self._by_id.get(id(t))
        if node is None:
            return
        if t is self.sink.tensor:  # a new pass starts at the sink
            self._steps = []
            self._passes.seen = True
            for n in self.nodes:  # (a node this pass does not reach gets no gradient from it)
                n.traced_grad = None
        value = to_numpy(g._data if isinstance(g, Tensor) else g)
        node.traced_grad = value
        contributions = tuple(
            (self._by_id[id(a)], i, to_numpy(c._data if isinstance(c, Tensor) else c))
            for i, a, c in sent
            if id(a) in self._by_id
        )
        formula = op.formula if op is not None else ""
        name = op.name if op is not None else None
        self._steps.append(BackwardStep(node, value, name, formula, contributions))

    def backward_steps(self, grad: Any = None) -> list[BackwardStep]:
        """The steps of the last backward pass from the sink, in the engine's order (sink
        first). With none yet, one is run here without touching any ``.grad``.

        >>> import chainrule as cr
        >>> x = cr.tensor(2.0, requires_grad=True, name="x")
        >>> g = cr.graph(cr.tanh(x * x))
        >>> [(s.node.name, s.op) for s in g.backward_steps()]
        [('tanh', 'tanh'), ('multiply', 'multiply'), ('x', None)]
        """
        if not self._steps:
            if self.freed:
                raise RuntimeError(
                    "backward_steps: backward() has freed the values these steps read; make "
                    "the Graph before backward() (it records the pass as it runs: "
                    "g = cr.graph(loss); loss.backward(); g.backward_steps()), or pass "
                    "retain_graph=True to backward()"
                )
            run_traced(self.sink.tensor, grad)
        return list(self._steps)

    @property
    def freed(self) -> bool:
        """Whether backward() has freed values of this graph (without retain_graph): the
        structure stays, and the nodes whose values went say so (:attr:`Node.freed`)."""
        sink = self.sink.tensor
        return any(n.freed for n in self.nodes) or (sink._op is not None and is_freed(sink))

    @property
    def sources(self) -> list[Node]:
        """The leaves: inputs, parameters, constants given as tensors."""
        return [n for n in self.nodes if n.is_source]

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __repr__(self) -> str:
        return (
            f"Graph({len(self.nodes)} nodes, {len(self.edges)} edges, "
            f"{len(self.sources)} sources, sink={self.sink.name})"
        )

    # -- pictures (drawn by chainrule.viz.drawing) -------------------------------------------------
    def to_dot(self, collapse: bool | None = None, values: bool = True) -> str:
        """Graphviz text: sources boxed (parameters green, data grey), ops as ellipses, the
        sink in red; with values and gradients once they are known. ``collapse`` groups the
        nodes of each ``cr.nn`` layer (None: only for graphs of more than 150 nodes)."""
        from .drawing import to_dot

        return to_dot(self, collapse, values, self.module)

    def to_svg(self, collapse: bool | None = None, values: bool = True, engine: str = "auto"):
        """The picture as SVG text: Graphviz's layout when ``dot`` is installed, else our
        layered layout (``engine="builtin"`` forces it)."""
        from .drawing import to_svg

        return to_svg(self, collapse, values, self.module, engine)

    def _repr_svg_(self) -> str:  # the still picture, for a front end that shows no HTML
        return self.to_svg()

    def _repr_html_(self) -> str:
        """A notebook shows the interactive page inline, in a sandboxed frame (see
        :mod:`chainrule.viz.notebook`); taking it records the backward pass step by step
        if none was (without touching any ``.grad``)."""
        from .notebook import graph_frame

        return graph_frame(self)

    def save(
        self, path: Any, collapse: bool | None = None, values: bool = True, engine: str = "auto"
    ) -> Any:
        """Write the picture; the format follows the extension: .svg, .png, .dot, or .html
        (a self-contained interactive page with the backward pass step by step). ``engine``
        as in :meth:`to_svg` ("builtin" gives the same picture on every machine)."""
        from pathlib import Path

        from . import drawing

        path = Path(path)
        suffix = path.suffix.lower()
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".svg":
            path.write_text(self.to_svg(collapse, values, engine), encoding="utf-8")
        elif suffix == ".dot":
            path.write_text(self.to_dot(collapse, values), encoding="utf-8")
        elif suffix == ".png":
            drawing.save_png(self, path, collapse, values, self.module, engine)
        elif suffix in (".html", ".htm"):
            from .html_page import graph_html

            path.write_text(graph_html(self, collapse=collapse), encoding="utf-8")
        else:
            raise ValueError(
                f"Graph.save: unknown extension {path.suffix!r}; use .svg, .png, .dot or .html"
            )
        return path

    def to_json(self) -> dict[str, Any]:
        """The graph as plain data (nodes with op, shape, dtype, name; edges as index pairs)."""
        return {
            "sink": self.sink.index,
            "nodes": [
                {
                    "id": n.index,
                    "name": n.name,
                    "op": n.op,
                    "shape": list(n.shape),
                    "dtype": str(n.dtype),
                    "source": n.is_source,
                    "requires_grad": n.tensor.requires_grad,
                    "params": {k: repr(v) for k, v in n.params.items()},
                }
                for n in self.nodes
            ],
            "edges": [[p.index, c.index] for p, c in self.edges],
        }

    def to_networkx(self) -> Any:
        """A ``networkx.MultiDiGraph`` (networkx is optional: ``pip install chainrule[graph]``)."""
        try:
            import networkx as nx
        except ImportError as err:
            raise ImportError(
                "Graph.to_networkx needs networkx: pip install 'chainrule[graph]'"
            ) from err
        g = nx.MultiDiGraph()  # x * x has two edges from x: keep both
        for n in self.nodes:
            g.add_node(n.index, name=n.name, op=n.op, shape=n.shape, source=n.is_source)
        g.add_edges_from((p.index, c.index) for p, c in self.edges)
        return g


def _call_text(node: tuple[Any, ...]) -> str:
    op, inputs = node[0], node[1]
    if all(isinstance(a, Tensor) for a in inputs):
        return op.name
    parts = []
    for a in inputs:
        if isinstance(a, Tensor):
            parts.append("·")
        elif isinstance(a, (int, float)) or getattr(a, "shape", None) == ():
            parts.append(f"{float(a):g}")
        else:
            shape = getattr(a, "shape", None)
            parts.append("array " + "×".join(map(str, shape)) if shape is not None else "…")
    return f"{op.name}({', '.join(parts)})"


def graph(sink: Tensor, module: Any = None) -> Graph:
    """The computation graph that produced ``sink`` (see :class:`Graph`). Pass the model as
    ``module`` to label collapsed layers with their attribute names."""
    return Graph(sink, module)
