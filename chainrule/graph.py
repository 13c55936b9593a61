"""The backward pass, grad mode, and the graph as data.

backward() in one paragraph: walk from the sink to the sources once to count, for every node,
how many consumers it has in this graph; then start from the sink with gradient 1 and pop
nodes whose consumers have all reported (reverse topological order, no recursion). For each
popped node, apply its op's VJP rule to the gradient that has gathered there and add the
result into each input's pending gradient. A leaf's gradient lands in ``.grad``. Each node's
gradient is computed once, so the cost is linear in the size of the graph however many paths
join two nodes — dynamic programming over the DAG.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from . import _state
from . import ops as F
from ._record import check_finite as _check_finite
from ._record import format_where
from .backend import namespace, owned
from .ops._registry import NOT_IMPLEMENTED
from .tensor import Tensor

__all__ = [
    "backward",
    "gradients",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "detect_anomaly",
    "Graph",
    "graph",
]

_local = _state.local
_flags = _state.flags


# -- grad mode ---------------------------------------------------------------------------
class set_grad_enabled:
    """Switch recording on or off in this thread: a context manager and a decorator."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self.prev: list[bool] = []

    def __enter__(self) -> None:
        self.prev.append(_local.grad_enabled)
        _local.grad_enabled = self.mode

    def __exit__(self, *exc: Any) -> None:
        _local.grad_enabled = self.prev.pop()

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(self.mode):
                return fn(*args, **kwargs)

        return wrapper


class no_grad(set_grad_enabled):
    """Record nothing inside (evaluation, parameter updates).

    >>> import chainrule as cr
    >>> w = cr.tensor(1.0, requires_grad=True)
    >>> with cr.no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False
    """

    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Record again inside a ``no_grad`` region."""

    def __init__(self) -> None:
        super().__init__(True)


def is_grad_enabled() -> bool:
    return _local.grad_enabled


class detect_anomaly:
    """Raise at the first NaN or inf made in the forward or backward pass, naming the op, the
    shapes and the file:line of user code where that node was made.

    It checks every result, so it is for debugging, not for production runs.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.prev: list[tuple[bool, Any]] = []

    def __enter__(self) -> None:
        # NumPy's floating-point warnings are replaced by the error, which says more.
        quiet = np.errstate(all="ignore") if self.enabled else None
        if quiet is not None:
            quiet.__enter__()
        self.prev.append((_flags.anomaly, quiet))
        _flags.anomaly = self.enabled

    def __exit__(self, *exc: Any) -> None:
        _flags.anomaly, quiet = self.prev.pop()
        if quiet is not None:
            quiet.__exit__(*exc)


# -- the backward pass ---------------------------------------------------------------------
def _freed_error(t: Tensor) -> RuntimeError:
    op = t._node[0].name if t._node else "?"
    return RuntimeError(
        f"backward: the graph through {op} (shape {t.shape}) was already used by a backward "
        "pass and its saved values were freed; pass retain_graph=True to the first "
        "backward() if you need to go through the graph again"
    )


def _count_consumers(root: Tensor) -> dict[int, int]:
    """For every node reachable from root that needs a gradient: how many uses it has."""
    deps: dict[int, int] = {}
    stack = [root]
    while stack:
        t = stack.pop()
        node = t._node
        if node is None:
            continue
        inputs = node[1]
        if inputs is None:
            raise _freed_error(t)
        for a in inputs:
            if isinstance(a, Tensor) and a._rg:
                k = id(a)
                if k in deps:
                    deps[k] += 1
                else:
                    deps[k] = 1
                    stack.append(a)
    return deps


def _leading_to(root: Tensor, targets: dict[int, Any]) -> set[int]:
    """Ids of the nodes from which some target can be reached (so their gradient matters)."""
    needed: set[int] = set()
    done: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        t, expanded = stack.pop()
        k = id(t)
        if expanded:
            if k in targets or any(id(a) in needed for a in (t._node[1] if t._node else ()) or ()):
                needed.add(k)
            done.add(k)
            continue
        if k in done:
            continue
        stack.append((t, True))
        if t._node is not None and t._node[1] is not None:
            for a in t._node[1]:
                if isinstance(a, Tensor) and a._rg and id(a) not in done:
                    stack.append((a, False))
    return needed


def _seed(root: Tensor, grad: Any, create_graph: bool) -> Any:
    data = root.data
    if grad is None:
        if root.size != 1:
            raise RuntimeError(
                f"backward: the output has shape {root.shape}, not a scalar, so the gradient "
                "to start from is ambiguous; pass grad= with that shape (e.g. "
                "y.backward(cr.ones_like(y))) or reduce first (y.sum().backward())"
            )
        seed = namespace(data).ones_like(data)
        return Tensor(seed) if create_graph else seed
    if isinstance(grad, Tensor):
        g = grad if create_graph else grad.data
    elif hasattr(grad, "shape") and hasattr(grad, "dtype"):
        g = grad
    else:
        g = namespace(data).asarray(grad, dtype=data.dtype)
    if tuple(g.shape) != tuple(data.shape):
        raise ValueError(
            f"backward: grad has shape {tuple(g.shape)} but the output has shape "
            f"{tuple(data.shape)}; they must match"
        )
    if g.dtype != data.dtype:
        raise TypeError(
            f"backward: grad has dtype {g.dtype} but the output has dtype {data.dtype}; "
            f"convert it first (grad.astype({str(data.dtype)!r}))"
        )
    if create_graph and not isinstance(g, Tensor):
        g = Tensor(g)
    return g


def _run(
    root: Tensor,
    seed: Any,
    retain_graph: bool,
    create_graph: bool,
    targets: dict[int, Any] | None,
    accumulate: bool,
) -> dict[int, Any]:
    """The engine. Returns the gradients reached at ``targets`` (by id)."""
    deps = _count_consumers(root)
    needed = _leading_to(root, targets) if targets is not None else None
    captured: dict[int, Any] = {}
    stored: set[int] = {id(seed)}  # arrays already handed out: never hand one out twice
    pending: dict[int, Any] = {id(root): seed}
    ready = [root]
    anomaly = _flags.anomaly
    while ready:
        t = ready.pop()
        g = pending.pop(id(t))
        if targets is not None and id(t) in targets:
            captured[id(t)] = g
        node = t._node
        if node is None:  # a source: the gradient lands in .grad
            if accumulate and (targets is None or id(t) in targets):
                _accumulate(t, g, create_graph, stored)
            continue
        if accumulate and (
            (t._grad is not None and targets is None)  # a node that asked for retain_grad()
            or (targets is not None and id(t) in targets)  # backward(inputs=[...]) names it
        ):
            _accumulate(t, g, create_graph, stored)
        op, inputs, params, epoch, where = node
        if create_graph:
            out: Any = t
            args: Any = inputs
        else:
            out = t.data
            args = [a.data if isinstance(a, Tensor) else a for a in inputs]
        if t._version > epoch:
            raise _modified_error(op, t, -1, where)
        vjps = op.vjps
        for i, a in enumerate(inputs):
            if not isinstance(a, Tensor):
                continue
            if a._version > epoch:
                raise _modified_error(op, a, i, where)
            if not a._rg:
                continue
            k = id(a)
            if needed is not None and k not in needed:
                continue
            if op.variadic:
                c = vjps[0](i, g, out, *args, **params)
            else:
                rule = vjps[i]
                if rule is None or rule is NOT_IMPLEMENTED:
                    raise NotImplementedError(
                        f"{op.name}: no derivative with respect to input {i} "
                        f"({a.shape} {a.dtype}); it cannot be backpropagated through"
                    )
                c = rule(g, out, *args, **params)
            if c is None:  # a custom Function may return None for "no gradient"
                c = namespace(a.data).zeros_like(a.data)
            data = a.data
            if c.shape != data.shape or c.dtype != data.dtype:
                c = _fit_to(c, a, op)
            if anomaly:
                _check_finite(c, op, inputs, "backward", where)
            prev = pending.get(k)
            pending[k] = c if prev is None else prev + c
            left = deps[k] - 1
            deps[k] = left
            if left == 0:
                ready.append(a)
        if not retain_graph:
            t._node = (op, None, params, epoch, where)  # free what this node held
    return captured


def _fit_to(c: Any, a: Tensor, op: Any) -> Any:
    """Sum a gradient back over broadcast dimensions and cast it to its input's dtype."""
    shape = a.data.shape
    cshape = c.shape
    if cshape != shape:
        c = _unbroadcast(c, tuple(shape), op)
    if c.dtype != a.data.dtype:
        c = F.astype(c, dtype=a.data.dtype)
    return c


def _unbroadcast(c: Any, shape: tuple[int, ...], op: Any) -> Any:
    cshape = tuple(c.shape)
    lead = len(cshape) - len(shape)
    if lead < 0 or any(n != 1 and n != cshape[lead + i] for i, n in enumerate(shape)):
        raise RuntimeError(
            f"{op.name}: internal error, a gradient of shape {cshape} cannot be reduced to the "
            f"input's shape {shape}"
        )
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and cshape[lead + i] != 1
    )
    if axes:
        c = F.sum(c, axis=axes)
    return F.reshape(c, shape)


def _modified_error(op: Any, a: Tensor, i: int, where: Any) -> RuntimeError:
    what = "the output" if i < 0 else f"input {i}"
    return RuntimeError(
        f"backward: {what} of {op.name} (shape {a.shape}) was modified in place after "
        f"{op.name} used it (made at {format_where(where)}), so its gradient would be wrong; "
        "update it out of place (x = x + y) or make the update after backward()"
    )


def _accumulate(t: Tensor, g: Any, create_graph: bool, stored: set[int]) -> None:
    if create_graph:
        value = g if isinstance(g, Tensor) else Tensor(g)
    else:
        if id(g) in stored:
            g = g.copy() if hasattr(g, "copy") else namespace(g).asarray(g, copy=True)
        g = owned(g)
        stored.add(id(g))
        value = Tensor(g)
    prev = t._grad
    if isinstance(prev, Tensor):
        if create_graph:
            t._grad = prev + value
        else:
            t._grad = Tensor(prev.data + value.data)
    else:
        t._grad = value


def backward(
    root: Tensor,
    grad: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    inputs: Sequence[Tensor] | None = None,
) -> None:
    """Backpropagate from ``root``, accumulating into ``.grad`` of the leaves (or of
    ``inputs`` only, when given). See :meth:`Tensor.backward`."""
    if not isinstance(root, Tensor):
        raise TypeError(f"backward: expected a Tensor, got {type(root).__name__}")
    if not root._rg:
        raise RuntimeError(
            "backward: this tensor does not require grad and has no graph; make the inputs "
            "with requires_grad=True (and compute outside cr.no_grad())"
        )
    if retain_graph is None:
        retain_graph = create_graph
    seed = _seed(root, grad, create_graph)
    targets = None if inputs is None else {id(t): t for t in inputs}
    with set_grad_enabled(create_graph):
        _run(root, seed, retain_graph, create_graph, targets, accumulate=True)


def gradients(
    output: Tensor,
    inputs: Sequence[Tensor],
    grad: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> list[Any]:
    """The gradients of ``output`` with respect to ``inputs`` (leaf or not), without touching
    ``.grad``. An input the output does not depend on gets zeros. Raw arrays are returned
    unless ``create_graph`` (then Tensors that can be differentiated again)."""
    if retain_graph is None:
        retain_graph = create_graph
    targets = {id(t): t for t in inputs}
    found: dict[int, Any] = {}
    if isinstance(output, Tensor) and output._rg:
        seed = _seed(output, grad, create_graph)
        with set_grad_enabled(create_graph):
            found = _run(output, seed, retain_graph, create_graph, targets, accumulate=False)
    results = []
    for t in inputs:
        g = found.get(id(t))
        if g is None:
            zero = namespace(t.data).zeros_like(t.data)
            g = Tensor(zero) if create_graph else zero
        results.append(g)
    return results


# -- the graph as data ---------------------------------------------------------------------
class Node:
    """One node of a :class:`Graph`: a tensor and how it was made."""

    __slots__ = ("tensor", "index", "op", "parents", "params")

    def __init__(self, tensor: Tensor, index: int) -> None:
        self.tensor = tensor
        self.index = index
        node = tensor._node
        self.op: str | None = node[0].name if node else None
        self.params: dict[str, Any] = dict(node[2]) if node else {}
        self.parents: list[Node] = []

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
    def value(self) -> Any:
        return self.tensor.numpy()

    @property
    def grad(self) -> Any:
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

    def __init__(self, sink: Tensor) -> None:
        if not isinstance(sink, Tensor):
            raise TypeError(f"graph: expected a Tensor, got {type(sink).__name__}")
        order = _topological(sink)
        # still a topological order with every source moved to the front
        order = [t for t in order if t._node is None] + [t for t in order if t._node is not None]
        for t in order:
            if t._node is not None and t._node[1] is None:
                raise RuntimeError(
                    f"graph: the graph through {t._node[0].name} was freed by backward(); "
                    "call cr.graph(sink) before backward() (the Graph keeps what it shows, "
                    "gradients included), or pass retain_graph=True to backward()"
                )
        self.nodes: list[Node] = [Node(t, i) for i, t in enumerate(order)]
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

    def to_dot(self) -> str:
        """Graphviz text: sources as boxes, the sink double-circled, ops as ellipses."""
        lines = ["digraph chainrule {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
        for n in self.nodes:
            shape = "box" if n.is_source else "ellipse"
            if n is self.sink:
                shape = "doublecircle" if not n.is_source else shape
            label = f"{n.name}\\n{_shape_text(n.shape)}"
            if n.op and n.tensor.name:
                label = f"{n.tensor.name} = {n.op}\\n{_shape_text(n.shape)}"
            lines.append(f'  n{n.index} [label="{_escape(label)}", shape={shape}];')
        for parent, child in self.edges:
            lines.append(f"  n{parent.index} -> n{child.index};")
        lines.append("}")
        return "\n".join(lines)

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


def _shape_text(shape: tuple[int, ...]) -> str:
    return "scalar" if shape == () else "x".join(str(s) for s in shape)


def _escape(text: str) -> str:
    return text.replace('"', '\\"')


def _topological(sink: Tensor) -> list[Tensor]:
    """Sources first, sink last; iterative depth-first post-order (no recursion)."""
    order: list[Tensor] = []
    done: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(sink, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            if id(t) not in done:
                done.add(id(t))
                order.append(t)
            continue
        if id(t) in done:
            continue
        stack.append((t, True))
        node = t._node
        if node is not None and node[1] is not None:
            for a in reversed(node[1]):
                if isinstance(a, Tensor) and id(a) not in done:
                    stack.append((a, False))
    return order


def graph(sink: Tensor) -> Graph:
    """The computation graph that produced ``sink`` (see :class:`Graph`)."""
    return Graph(sink)
