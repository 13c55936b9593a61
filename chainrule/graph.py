"""The backward pass.

backward() in one paragraph: start from the sink with gradient 1 and keep the nodes that have
received a gradient in a heap, ordered by the sequence number each node got when it was
recorded. A node is always recorded after its inputs, so popping the largest number first is a
reverse topological order: by the time a node is popped, every consumer of it between it and
the sink has reported (no counting pass, no recursion). For each popped node, apply its op's
VJP rule to the gradient that has gathered there and add the result into each input's
pending gradient. The sources' gradients land in ``.grad`` at the end. Each node's gradient
is computed once, so the cost is linear in the size of the graph (times a log for the heap,
which stays as small as the graph is wide) however many paths join two nodes — dynamic
programming over the DAG.

This file is the reference. When the optional C accelerator is built (chainrule/_native.c,
switched by :mod:`chainrule._accel`), the plain case of the loop in :func:`_run` runs there,
the same steps in the same order; anomaly mode, create_graph and traced passes stay here.
"""

from __future__ import annotations

from collections.abc import Sequence
from heapq import heappop, heappush
from typing import Any

import numpy as np

from . import _state
from . import ops as F
from . import tensor as _tensor_module
from ._record import check_finite as _check_finite
from ._record import format_where
from .backend import namespace, owned
from .modes import set_grad_enabled
from .ops._registry import NOT_IMPLEMENTED
from .ops.reductions import _xp_sum
from .tensor import FREED, MANY, ONE, Tensor, inputs_of, wrap

__all__ = ["backward", "gradients", "run_traced"]

_flags = _state.flags


def _freed_error(t: Tensor) -> RuntimeError:
    op = t._op.name if t._op is not None else "?"
    return RuntimeError(
        f"backward: the graph through {op} (shape {t.shape}) was already used by a backward "
        "pass and its saved values were freed; pass retain_graph=True to the first "
        "backward() if you need to go through the graph again"
    )


def _leading_to(root: Tensor, targets: dict[int, Any]) -> set[int]:
    """Ids of the nodes from which some target can be reached (so their gradient matters)."""
    needed: set[int] = set()
    done: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        t, expanded = stack.pop()
        k = id(t)
        inputs = (inputs_of(t) if t._op is not None else None) or ()
        if expanded:
            if k in targets or any(id(a) in needed for a in inputs):
                needed.add(k)
            done.add(k)
            continue
        if k in done:
            continue
        stack.append((t, True))
        if inputs:
            for a in inputs:
                if isinstance(a, Tensor) and a._rg and id(a) not in done:
                    stack.append((a, False))
    return needed


def _not_scalar(root: Tensor) -> RuntimeError:
    return RuntimeError(
        f"backward: the output has shape {root.shape}, not a scalar, so the gradient "
        "to start from is ambiguous; pass grad= with that shape (e.g. "
        "y.backward(cr.ones_like(y))) or reduce first (y.sum().backward())"
    )


def _seed(root: Tensor, grad: Any, create_graph: bool) -> Any:
    data = root.data
    if grad is None:
        if type(data) is np.ndarray or isinstance(data, np.generic):
            if data.size != 1:
                raise _not_scalar(root)
            # NOTE: np.ones is a Python function (0.75 us); np.ones_like costs 0.2 us more
            seed = np.empty(data.shape, dtype=data.dtype)
            seed[...] = 1  # 0.16 us, the same ones
            return Tensor(seed) if create_graph else seed
        if root.size != 1:
            raise _not_scalar(root)
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
    needed = _leading_to(root, targets) if targets is not None else None
    captured: dict[int, Any] = {}
    stored: set[int] = {id(seed)}  # arrays already handed out: never hand one out twice
    anomaly = _flags.anomaly
    trace = _state.tracers.get(id(root)) if _state.tracers else None
    if _native_run is not None and not (create_graph or anomaly or trace):
        # the same loop in C (chainrule/_native.c); it hands back the leaves it reached
        def reached(t: Tensor, g: Any) -> None:  # a popped node that is a target or retained
            _deliver(t, g, targets, accumulate, captured, create_graph, stored)

        plain = accumulate and targets is None  # backward() with no inputs=: .grad it is,
        # for the leaves and for the nodes that asked for retain_grad()
        leaves = _native_run(root, seed, retain_graph, needed, targets, plain, reached)
        if plain:  # into .grad, in C where nothing is special
            _native_deliver(leaves, stored, lambda t, g: _accumulate(t, g, False, stored))
        else:
            for t, g in leaves:
                _deliver(t, g, targets, accumulate, captured, create_graph, stored)
        return captured
    pending: dict[int, Any] = {id(root): seed}
    # NOTE: nodes wait in a heap keyed by their sequence number, largest first. A node is
    # always recorded after its inputs, so when it is popped every consumer that can reach it
    # from the root has already reported: no counting pass over the graph is needed.
    heap: list[tuple[int, Tensor]] = []
    sources: list[Tensor] = []  # leaves reached, in order; their gradients land at the end
    if root._op is None:
        sources.append(root)
    elif root._b is FREED:
        raise _freed_error(root)
    else:
        heap.append((-root._seq, root))
    sent: list[tuple[int, Tensor, Any]] | None = None
    while heap:
        t = heappop(heap)[1]
        k = id(t)
        g = pending.pop(k)
        if targets is not None and k in targets:
            captured[k] = g
            if accumulate:  # backward(inputs=[...]) names it
                _accumulate(t, g, create_graph, stored)
        elif accumulate and t._grad is not None and targets is None:
            _accumulate(t, g, create_graph, stored)  # a node that asked for retain_grad()
        op = t._op
        params = t._params
        seq = t._seq
        if t._version > seq:
            raise _modified_error(op, t, -1, t)
        # the inputs, and the values the rules take (raw arrays, or Tensors for create_graph)
        x = t._a
        y = t._b
        if y is ONE:
            inputs: Any = (x,)
            args: Any = inputs if create_graph else (x.data,)
        elif y is MANY:
            inputs = x
            args = inputs if create_graph else [a.data if isinstance(a, Tensor) else a for a in x]
        else:
            inputs = (x, y)
            if create_graph:
                args = inputs
            else:
                args = (
                    x.data if isinstance(x, Tensor) else x,
                    y.data if isinstance(y, Tensor) else y,
                )
        out: Any = t if create_graph else t.data
        if trace is not None:
            sent = []
        vjps = op.vjps
        for i, a in enumerate(inputs):
            if not isinstance(a, Tensor):
                continue
            if a._version > seq:
                raise _modified_error(op, a, i, t)
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
                    raise _no_rule_error(op, i, a)
                c = rule(g, out, *args, **params) if params else rule(g, out, *args)
            if c is None:  # a custom Function may return None for "no gradient"
                c = _zeros_like(a)
            data = a.data
            if c.shape != data.shape or (c.dtype is not data.dtype and c.dtype != data.dtype):
                c = _fit_to(c, a, op)
            if anomaly:
                _check_finite(c, op, inputs, "backward", t._where_made())
            if sent is not None:
                sent.append((i, a, c))
            prev = pending.get(k)
            if prev is not None:
                pending[k] = prev + c
                continue
            pending[k] = c
            if a._op is None:  # its first gradient: note it (a source) or queue it (a node)
                sources.append(a)
            elif a._b is FREED:
                raise _freed_error(a)
            else:
                heappush(heap, (-a._seq, a))
        if trace is not None:
            trace(t, g, op, sent)
        if not retain_graph:  # free what this node held (its inputs); keep what made it
            t._a = None
            t._b = FREED
            t._params = _NO_PARAMS
    for t in sources:
        g = pending.pop(id(t))
        _deliver(t, g, targets, accumulate, captured, create_graph, stored)
        if trace is not None:
            trace(t, g, None, [])
    return captured


_NO_PARAMS: dict[str, Any] = {}
# The backward loop of the C accelerator and its delivery of the leaves' gradients, when it
# is on (set by chainrule._accel).
_native_run: Any = None
_native_deliver: Any = None


def _deliver(
    t: Tensor,
    g: Any,
    targets: dict[int, Any] | None,
    accumulate: bool,
    captured: dict[int, Any],
    create_graph: bool,
    stored: set[int],
) -> None:
    """Hand a leaf's gradient (or a target's, or a retained node's) to whoever asked for it."""
    k = id(t)
    if targets is not None and k in targets:
        captured[k] = g
        if accumulate:
            _accumulate(t, g, create_graph, stored)
    elif accumulate and targets is None:
        _accumulate(t, g, create_graph, stored)


def _zeros_like(t: Tensor) -> Any:
    """The gradient of a tensor nothing flowed to: zeros of its shape and dtype."""
    return namespace(t.data).zeros_like(t.data)


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
    axes = _unbroadcast_axes(tuple(c.shape), shape, op)
    # summing over leading axes alone (a bias's gradient) leaves the shape right already
    leading = len(axes) == len(c.shape) - len(shape)
    if not isinstance(c, Tensor):  # a plain backward pass: straight to the array namespace
        xp = namespace(c)
        if axes:
            c = _xp_sum(xp, c, axes)
        return c if leading else xp.reshape(c, shape)
    if axes:
        c = F.sum(c, axis=axes)
    return c if leading else F.reshape(c, shape=shape)


def _unbroadcast_axes(cshape: tuple[int, ...], shape: tuple[int, ...], op: Any) -> tuple[int, ...]:
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


def _no_rule_error(op: Any, i: int, a: Tensor) -> NotImplementedError:
    return NotImplementedError(
        f"{op.name}: no derivative with respect to input {i} ({a.shape} {a.dtype}); it "
        "cannot be backpropagated through"
    )


def _modified_error(op: Any, a: Tensor, i: int, node: Tensor) -> RuntimeError:
    what = "the output" if i < 0 else f"input {i}"
    where = format_where(node._where_made())
    return RuntimeError(
        f"backward: {what} of {op.name} (shape {a.shape}) was modified in place after "
        f"{op.name} used it (made at {where}), so its gradient would be wrong; "
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
        value = wrap(g)
    prev = t._grad
    if isinstance(prev, Tensor):
        if create_graph:
            t._grad = prev + value
        else:
            t._grad = wrap(prev.data + value.data)
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
    local = _state.local
    before = local.grad_enabled  # (set_grad_enabled's work, without its object: 0.5 us)
    local.grad_enabled = create_graph
    try:
        _run(root, seed, retain_graph, create_graph, targets, accumulate=True)
    finally:
        local.grad_enabled = before


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
    """A backward pass that changes no ``.grad`` and keeps the graph: for the step-by-step
    view of a graph that has not been through ``backward()`` yet."""
    if not root._rg:
        raise RuntimeError("backward_steps: the sink does not require grad; nothing flows back")
    seed = _seed(root, grad, create_graph=False)
    with set_grad_enabled(False):
        _run(root, seed, True, False, None, accumulate=False)


_tensor_module._engine.backward = backward
