"""The backward pass: the chain rule, applied once per node, from the sink to the sources.

In one paragraph: start from the sink with gradient 1 and keep the nodes that have received a
gradient in a heap, ordered by the sequence number each node got when it was recorded. A node
is always recorded after its inputs, so popping the largest number first is a reverse
topological order: by the time a node is popped, every consumer of it between it and the sink
has reported (no counting pass, no recursion). For each popped node, apply its op's VJP rule
to the gradient that has gathered there (:func:`_chain_rule`) and add the result into each
input's pending gradient. The sources' gradients land in ``.grad`` at the end. Each node's
gradient is computed once, so the cost is linear in the size of the graph (times a log for the
heap, which stays as small as the graph is wide) however many paths join two nodes: dynamic
programming over the DAG.

The engine, not the rules, owns the shared chores: summing a gradient back over broadcast
dimensions (:func:`fit_to`), accumulating over fan-out (``pending``), freeing what a node
saved once its rule has run (:func:`_free`), and refusing a value changed in place after an
op used it (:func:`_modified_error`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from heapq import heappop, heappush
from typing import Any

import numpy as np

from ..backends import namespace, owned
from ..backends.batched import Batched, levels
from .errors import check_finite, complex_error, format_where, is_complex
from .modes import set_grad_enabled, state
from .registry import NOT_IMPLEMENTED, OPS, SAVED
from .tensor import (
    FREED_NO_PARAMS,
    MANY,
    ONE,
    Freed,
    Tensor,
    husk,
    inputs_of,
    structure_of,
    wrap,
)

__all__ = [
    "backward",
    "gradients",
    "run_traced",
    "watch",
    "unwatch",
    "fit_to",
    "unbroadcast_axes",
    "xp_sum",
    "topological_order",
]

# A watcher sees every step of a backward pass from one root: (node, its gradient, its op or
# None for a source, [(input index, input, contribution), ...]). ``cr.graph`` watches its
# sink so that ``Graph.backward_steps()`` shows the order the engine really used.
Watcher = Callable[[Tensor, Any, Any, list[tuple[int, Tensor, Any]]], None]
_WATCHERS: dict[int, Watcher] = {}


def watch(root: Tensor, watcher: Watcher) -> None:
    """Call ``watcher`` at every step of the backward passes that start at ``root``."""
    _WATCHERS[id(root)] = watcher


def unwatch(root_id: int, watcher: Watcher) -> None:
    """Stop ``watcher`` (if it is still the one watching the root with this id)."""
    if _WATCHERS.get(root_id) is watcher:
        del _WATCHERS[root_id]


# -- the entry points ------------------------------------------------------------------------
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
    with set_grad_enabled(create_graph):  # the rules record only for create_graph=True
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
            zero = _zeros_like(t)
            g = Tensor(zero) if create_graph else zero
        results.append(g)
    return results


def run_traced(root: Tensor, grad: Any = None) -> None:
    """A backward pass that changes no ``.grad`` and keeps the graph: for a watcher to see the
    steps of a graph that has not been through ``backward()`` yet."""
    if not root._rg:
        raise RuntimeError("backward_steps: the sink does not require grad; nothing flows back")
    seed = _seed(root, grad, create_graph=False)
    with set_grad_enabled(False):
        _run(root, seed, True, False, None, accumulate=False)


# -- the loop ----------------------------------------------------------------------------------
def _run(
    root: Tensor,
    seed: Any,
    retain_graph: bool,
    create_graph: bool,
    targets: dict[int, Any] | None,
    accumulate: bool,
) -> dict[int, Any]:
    """The engine. Returns the gradients reached at ``targets`` (by id)."""
    needed = _leading_to(root, targets) if targets is not None else None
    out = _Delivery(targets, accumulate, create_graph, seed)
    watcher = _WATCHERS.get(id(root)) if _WATCHERS else None
    anomaly = state.anomaly
    # ids of pending gradients the engine alone holds, which it may write over (see _fresh);
    # none while a watcher keeps what it is shown, or while the pass is itself recorded
    owned: set[int] | None = set() if watcher is None and not create_graph else None
    pending: dict[int, Any] = {id(root): seed}  # gradients gathering at nodes not yet popped
    heap: list[tuple[int, Tensor]] = []  # (-seq, node): the latest recorded pops first
    sources: list[Tensor] = []  # leaves reached, in order; their gradients land at the end
    nodes_wanted = out.nodes_wanted
    husks: dict[Any, Any] = {}  # id -> the Husk of each node freed (see _free)
    _enqueue(root, heap, sources)
    while heap:
        t = heappop(heap)[1]
        g = pending.pop(id(t))
        writable = owned is not None and id(g) in owned
        if owned is not None:
            owned.discard(id(g))
        if nodes_wanted and out.wants(t):  # a target, or retain_grad() was called
            out.deliver(t, g)
            writable = False
        sent = _chain_rule(t, g, create_graph, needed, writable, owned)
        for _, a, c in sent:
            if anomaly:
                check_finite(c, t._op, inputs_of(t), "backward", t._where_made())
            k = id(a)
            prev = pending.get(k)
            if prev is None:
                pending[k] = c
                _enqueue(a, heap, sources)
            else:  # fan-out: the sum over the paths from a to the sink
                pending[k] = _add(prev, c, owned)
        if watcher is not None:
            watcher(t, g, t._op, sent)
        if not retain_graph:
            _free(t, husks)
    for t in sources:
        g = pending.pop(id(t))
        out.deliver(t, g)
        if watcher is not None:
            watcher(t, g, None, [])
    return out.captured


def _enqueue(t: Tensor, heap: list[tuple[int, Tensor]], sources: list[Tensor]) -> None:
    """Note a tensor that has just received its first gradient: a source, or a node to pop."""
    if t._op is None:
        sources.append(t)
    elif type(t._params) is Freed:
        raise _freed_error(t)
    else:
        heappush(heap, (-t._seq, t))


def _chain_rule(
    t: Tensor,
    g: Any,
    create_graph: bool,
    needed: set[int] | None,
    writable: bool = False,
    owned: set[int] | None = None,
) -> list[tuple[int, Tensor, Any]]:
    """The chain rule at node ``t``: [(input index, input, d sink / d input through t)] for
    each input that wants a gradient, each fitted to its input's shape and dtype. Where
    ``writable`` (the engine alone holds ``g``), an op's fast kernel may write into ``g``;
    results the engine alone holds are noted in ``owned``."""
    op = t._op
    seq = t._seq
    if t._version > seq:
        raise _modified_error(t, t, -1)
    # the inputs, and what the rules see: raw arrays in a plain pass, Tensors when the pass is
    # recorded (create_graph). (Spelled out for one and two inputs: this runs once per node.)
    x, y = t._a, t._b
    if y is ONE:
        inputs: Sequence[Any] = (x,)
        args: Sequence[Any] = inputs if create_graph else (x._data,)
    elif y is MANY:
        inputs = x
        args = x if create_graph else [v._data if isinstance(v, Tensor) else v for v in x]
    else:
        inputs = (x, y)
        if create_graph:
            args = inputs
        else:
            args = (
                x._data if isinstance(x, Tensor) else x,
                y._data if isinstance(y, Tensor) else y,
            )
    out = t if create_graph else t._data
    params = t._params
    # a plain pass runs the op's fast kernels (the sheet's rules where it has none); a
    # recorded one runs the sheet's rules, which take no saved value (see declare.kernel)
    rules = op.vjps if create_graph else op.fast_vjps
    if create_graph and SAVED in params:
        params = {k: v for k, v in params.items() if k != SAVED}
    custom = op.family == "custom"  # a Function's code may keep what it returns
    sent: list[tuple[int, Tensor, Any]] = []
    for i, value in enumerate(inputs):
        if not isinstance(value, Tensor):
            continue
        a = value  # a Tensor (typed so in backward.pxd, for the compiled build)
        if a._version > seq:
            raise _modified_error(t, a, i)
        if not a._rg or (needed is not None and id(a) not in needed):
            continue
        if op.variadic:
            c = rules[0](i, g, out, *args, **params)
        else:
            rule = rules[i]
            if rule is None or rule is NOT_IMPLEMENTED:
                raise _no_rule_error(op, i, a)
            if writable and op.vjp_into is not None:  # g is this rule's alone: write into it
                rule = op.vjp_into
            c = rule(g, out, *args, **params) if params else rule(g, out, *args)
        if c is None:  # a custom Function may return None for "no gradient"
            c = _zeros_like(a)
        data = a._data
        if (
            c.shape != data.shape
            or (c.dtype is not data.dtype and c.dtype != data.dtype)
            or type(c) is Batched  # (inside cr.vmap: a batch may need summing, see fit_to)
            or (type(c) is Tensor and type(c._data) is Batched)
        ):
            c = fit_to(c, a, op)
        if owned is not None and type(c) is np.ndarray and c.size >= REUSE_MIN and not custom:
            if (writable and c is g) or _fresh(c, g, out, args, params, sent):
                owned.add(id(c))
        sent.append((i, a, c))
    return sent


# NOTE: below this many elements an array stays in cache and costs little to allocate, so the
# checks of _fresh would cost more than writing over it saves
REUSE_MIN = 1 << 14


def _fresh(
    c: Any, g: Any, out: Any, args: Sequence[Any], params: dict[str, Any], sent: Any
) -> bool:
    """Whether the engine alone holds ``c``, a rule's result: an array owning writeable memory
    that is none of the values the rule was given (``g``, ``out``, the inputs, the parameters
    and what the forward saved), nor another result of the same node."""
    if c.base is not None or not c.flags.writeable or c is g or c is out:
        return False
    if any(c is v for v in args) or any(c is v for v in params.values()):
        return False
    return all(c is not s for _, _, s in sent)


def _add(prev: Any, c: Any, owned: set[int] | None) -> Any:
    """``prev + c``, written into ``prev`` where the engine alone holds it (the same bits: one
    elementwise sum of arrays of one shape and dtype)."""
    if owned is None:
        return prev + c
    owned.discard(id(c))  # used up here (first: c may be prev itself)
    if id(prev) in owned:
        return np.add(prev, c, prev)
    total = prev + c
    if type(total) is np.ndarray:
        owned.add(id(total))  # the engine's own array
    return total


#: A node's value of at most this many bytes stays in the graph after backward() (a husk
#: would take as much memory as the value): the pictures of small graphs keep their numbers.
HUSK_MIN = 64
_NDARRAY, _GENERIC = np.ndarray, np.generic  # (read once: this runs for every input freed)


def _free(t: Tensor, husks: dict[Any, Any]) -> None:
    """Let go of what node ``t`` kept for its rule: the values of its inputs that were nodes
    (each replaced by its husk, shared through ``husks`` by id: a node without its value;
    values of HUSK_MIN bytes or fewer stay) and what its op saved. The structure stays (op,
    inputs, the parameters that describe the op, number) for pictures, and the parameters'
    type, :class:`Freed`, lets a second pass say the graph was freed. Where ``t`` itself was
    already replaced by a husk (among the inputs of a node freed before it), that husk gets
    the same structure and the gradient ``retain_grad()`` kept."""
    b = t._b
    if b is MANY:
        t._a = tuple([_husked(a, husks) for a in t._a])
    else:
        t._a = _husked(t._a, husks)
        if b is not ONE:
            t._b = _husked(b, husks)
    params = t._params
    if params:
        t._params = Freed({k: v for k, v in params.items() if k != SAVED and _describes(v)})
    else:
        t._params = FREED_NO_PARAMS
    h = husks.get(id(t)) if husks else None
    if h is not None:
        h._a, h._b, h._params, h._grad = t._a, t._b, t._params, t._grad


def _husked(a: Any, husks: dict[Any, Any]) -> Any:
    """``a`` as a freed node keeps it: its husk if it is a node with a value of more than
    HUSK_MIN bytes, else itself (a leaf, a constant, a small value)."""
    if not isinstance(a, Tensor):
        return a
    t = a  # (typed in backward.pxd: its slots are read as C fields)
    if t._op is None:
        return a
    data = t._data
    if type(data) is _NDARRAY:
        if data.nbytes <= HUSK_MIN:
            return a
    elif isinstance(data, _GENERIC):
        return a
    key = id(a)
    h = husks.get(key)
    if h is None:
        h = husks[key] = husk(t)
    return h


_PLAIN = (type(None), bool, int, float, complex, str, slice, type(Ellipsis), np.dtype, type)


def _describes(value: Any) -> bool:
    """Whether an op's parameter is a description (a number, a name, a dtype, a tuple of
    them) that a freed node keeps, rather than a value (an array, a Function's context)."""
    if isinstance(value, (tuple, list)):
        return all(_describes(v) for v in value)
    return isinstance(value, _PLAIN) or isinstance(value, np.generic)


class _Delivery:
    """Where finished gradients go: ``.grad`` (``backward()``), and/or the ``captured``
    dictionary (``gradients()`` and ``backward(inputs=...)``)."""

    def __init__(
        self, targets: dict[int, Any] | None, accumulate: bool, create_graph: bool, seed: Any
    ) -> None:
        self.targets = targets
        self.accumulate = accumulate
        self.create_graph = create_graph
        self.captured: dict[int, Any] = {}
        self.handed_out: set[int] = {id(seed)}  # arrays in some .grad: never store one twice
        # whether any node (not a leaf) may want its gradient: a target, or retain_grad()
        self.nodes_wanted = targets is not None or accumulate

    def wants(self, t: Tensor) -> bool:
        """Whether the gradient of node ``t`` (not a leaf) is asked for."""
        if self.targets is not None:
            return id(t) in self.targets
        return self.accumulate and t._grad is not None  # retain_grad() was called

    def deliver(self, t: Tensor, g: Any) -> None:
        if self.targets is not None:
            if id(t) not in self.targets:
                return
            self.captured[id(t)] = g
        if self.accumulate:
            self._accumulate(t, g)

    def _accumulate(self, t: Tensor, g: Any) -> None:
        """``t.grad += g``: a Tensor of its own, never an array another ``.grad`` holds."""
        if type(g) is Batched or (type(g) is Tensor and type(g._data) is Batched):
            _check_batched_grad(t, g)
        if self.create_graph:
            value = g if isinstance(g, Tensor) else Tensor(g)
        else:
            if id(g) in self.handed_out:
                g = g.copy() if hasattr(g, "copy") else namespace(g).asarray(g, copy=True)
            g = owned(g)
            self.handed_out.add(id(g))
            value = wrap(g)
        prev = t._grad
        if not isinstance(prev, Tensor):  # the first gradient (or the retain_grad marker)
            t._grad = value
        elif self.create_graph:
            t._grad = prev + value
        else:
            t._grad = wrap(prev._data + value._data)


def _check_batched_grad(t: Tensor, g: Any) -> None:
    """Refuse to keep one gradient per example in the ``.grad`` of a tensor the examples
    share: ``backward()`` inside ``cr.vmap`` has no single answer to store there."""
    running = [level for level in levels(g._data if isinstance(g, Tensor) else g)
               if level in state.vmap_levels]  # fmt: skip
    if any(level not in levels(t._data) for level in running):
        raise RuntimeError(
            f"backward() inside cr.vmap would store one gradient per example in the .grad of "
            f"a tensor the examples share (shape {t.shape}); for per-example gradients use "
            "cr.vmap(cr.grad(f)), for their sum call backward() on the result of the vmap"
        )


# -- the seed and the sub-graph that matters -----------------------------------------------------
def _seed(root: Tensor, grad: Any, create_graph: bool) -> Any:
    """The gradient to start from: 1 for a one-element root, else ``grad`` (checked)."""
    data = root._data
    if grad is None:
        if root.size != 1:
            raise RuntimeError(
                f"backward: the output has shape {root.shape}, not a scalar, so the gradient "
                "to start from is ambiguous; pass grad= with that shape (e.g. "
                "y.backward(cr.ones_like(y))) or reduce first (y.sum().backward())"
            )
        if type(data) is np.ndarray or isinstance(data, np.generic):
            seed = np.ones(data.shape, dtype=data.dtype)
        else:
            seed = namespace(data).ones_like(data)
        return Tensor(seed) if create_graph else seed
    if isinstance(grad, Tensor):
        g = grad if create_graph else grad._data
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


def _leading_to(root: Tensor, targets: dict[int, Any]) -> set[int]:
    """Ids of the tensors that need a gradient from which some target can be reached (so their
    gradient matters): in topological order, each is a target or has an input that is one."""
    needed: set[int] = set()
    for t in topological_order(root):
        if not t._rg:
            continue  # no gradient flows through it
        inputs = (inputs_of(t) if t._op is not None else None) or ()
        if id(t) in targets or any(id(a) in needed for a in inputs):
            needed.add(id(t))
    return needed


def topological_order(sink: Tensor) -> list[Tensor]:
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
        inputs = structure_of(t) if t._op is not None else None
        for a in reversed(inputs or ()):
            if isinstance(a, Tensor) and id(a) not in done:
                stack.append((a, False))
    return order


# -- broadcasting: summed back once, here, for every rule --------------------------------------
def fit_to(c: Any, a: Tensor, op: Any) -> Any:
    """Sum a gradient back over broadcast dimensions and cast it to its input's dtype."""
    if type(c) is Batched or (type(c) is Tensor and type(c._data) is Batched):
        c = _fit_batches(c, a._data)
    shape = tuple(a._data.shape)
    if tuple(c.shape) != shape:
        c = _unbroadcast(c, shape, op)
    if c.dtype != a._data.dtype:
        if is_complex(c.dtype) and not is_complex(a._data.dtype):
            raise TypeError(complex_error(op, "gradient", a._data.dtype))
        c = OPS["astype"](c, dtype=a._data.dtype)
    return c


def _fit_batches(c: Any, data: Any) -> Any:
    """Sum ``c`` over each ``cr.vmap`` batch that its input was shared by (not batched at)
    and that closed before this pass: a batch is a broadcast dimension too. A batch whose
    vmap is still running stays apart: there the gradients asked for are per example."""
    batches = levels(c._data if isinstance(c, Tensor) else c)
    if not batches:
        return c
    shared = levels(data)
    for level, size in batches.items():
        if level not in shared and level not in state.vmap_levels:
            c = OPS["unbatch"](c, axis=None, level=level, size=size)
    return c


def _unbroadcast(c: Any, shape: tuple[int, ...], op: Any) -> Any:
    axes = unbroadcast_axes(tuple(c.shape), shape, op)
    # summing over leading axes alone (a bias's gradient) leaves the shape right already
    leading = len(axes) == len(c.shape) - len(shape)
    if not isinstance(c, Tensor):  # a plain backward pass: straight to the array namespace
        xp = namespace(c)
        if axes:
            c = xp_sum(xp, c, axes)
        return c if leading else xp.reshape(c, shape)
    if axes:
        c = OPS["sum"](c, axis=axes)
    return c if leading else OPS["reshape"](c, shape=shape)


def xp_sum(xp: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """``xp.sum(x, axis=axis, keepdims=keepdims)``; for a NumPy array, the ufunc reduction
    that ``np.sum`` calls, without its Python layers (the same bits). The one sum the engine,
    the op sheet's ``sum`` and ``cr.compile``'s programs use."""
    if type(x) is np.ndarray:
        return _ADD_REDUCE(x, axis=axis, keepdims=keepdims)
    return xp.sum(x, axis=axis, keepdims=keepdims)


_ADD_REDUCE: Any = np.add.reduce  # (NumPy's stubs want keepdims as a literal)


def unbroadcast_axes(cshape: tuple[int, ...], shape: tuple[int, ...], op: Any) -> tuple[int, ...]:
    """The axes to sum a gradient of shape ``cshape`` over to give ``shape``."""
    axes = _AXES.get((cshape, shape))
    if axes is None:
        if len(_AXES) > 4096:  # the pairs of shapes a program meets are few; never grow
            _AXES.clear()
        axes = _AXES[cshape, shape] = _find_axes(cshape, shape, op)
    return axes


_AXES: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[int, ...]] = {}


def _find_axes(cshape: tuple[int, ...], shape: tuple[int, ...], op: Any) -> tuple[int, ...]:
    lead = len(cshape) - len(shape)
    if lead < 0 or any(n != 1 and n != cshape[lead + i] for i, n in enumerate(shape)):
        raise RuntimeError(
            f"{op.name}: internal error, a gradient of shape {cshape} cannot be reduced to the "
            f"input's shape {shape}"
        )
    return tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and cshape[lead + i] != 1
    )


# -- errors ----------------------------------------------------------------------------------------
def _modified_error(node: Tensor, a: Tensor, i: int) -> RuntimeError:
    """A value (the node's own, ``i = -1``, or its input ``i``) was updated in place after the
    node used it: its rule would read the new value and give a wrong gradient."""
    op = node._op
    what = "the output" if i < 0 else f"input {i}"
    return RuntimeError(
        f"backward: {what} of {op.name} (shape {a.shape}, {a._data.dtype}) was modified in "
        f"place after {op.name} used it (made at {format_where(node._where_made())}; the "
        f"value is at version {a._version}, later than {op.name}, recorded at {node._seq}), "
        "so its gradient would be wrong. Update it out of place (x = x + y) or after "
        "backward(); taking x.data counts as an update (it may be written): read the value "
        "with x.numpy() or x.item()"
    )


def _freed_error(t: Tensor) -> RuntimeError:
    op = t._op.name if t._op is not None else "?"
    return RuntimeError(
        f"backward: the graph through {op} (shape {t.shape}) was already used by a backward "
        "pass and its saved values were freed; pass retain_graph=True to the first "
        "backward() if you need to go through the graph again"
    )


def _no_rule_error(op: Any, i: int, a: Tensor) -> NotImplementedError:
    return NotImplementedError(
        f"{op.name}: no derivative with respect to input {i} ({a.shape} {a.dtype}); it "
        "cannot be backpropagated through"
    )


def _zeros_like(t: Tensor) -> Any:
    """The gradient of a tensor nothing flowed to: zeros of its shape and dtype."""
    return namespace(t._data).zeros_like(t._data)
