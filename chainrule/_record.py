"""Recording: how an op is applied when a Tensor is among its inputs.

The op table calls :func:`apply` (through ``chainrule.ops._registry``) whenever a Tensor is
an argument: the forward runs on the raw arrays, and if grad mode is on and some input
requires a gradient, the result records its node (see :mod:`chainrule.tensor`). Forward-mode
tangents and anomaly checks happen here too, each behind one cheap test.

This file is the reference; with the optional C accelerator built (chainrule/_native.c), the
common case of :func:`apply` (up to eight inputs, nothing special on) runs there instead.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from . import _state
from . import ops as F
from .backend import _NAMESPACES, namespace
from .ops import _registry
from .ops._registry import NOT_IMPLEMENTED, Op
from .tensor import MANY, ONE, Tensor

__all__ = [
    "apply",
    "AnomalyError",
    "format_where",
    "user_frame",
    "check_finite",
    "overwritable",
    "overwrite",
    "OVERWRITTEN",
]

_local = _state.local
_flags = _state.flags
_levels = _state.forward_levels
_NO_PARAMS: dict[str, Any] = {}  # shared by every node without parameters; never mutated
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class AnomalyError(FloatingPointError):
    """A NaN or inf appeared while :func:`chainrule.detect_anomaly` was on."""


def apply(op: Op, args: tuple[Any, ...], params: dict[str, Any]) -> Tensor:
    # NOTE: this runs once per recorded op. The one- and two-input cases are spelled out, so
    # that the inputs are unwrapped in one pass and the forward is called without building
    # an argument tuple; anomaly mode, forward mode and tracing share one flag (``special``)
    # so that the common path tests one attribute for all three. The node goes into the
    # result's slots (see chainrule.tensor): ``a``, ``b`` are its ``_a``, ``_b``.
    if op.save is not None and not _flags.special:
        return _apply_saving(op, args, params)
    if len(args) == 2:
        a, b = args
        rg = False
        if isinstance(a, Tensor):
            rg = a._rg
            x = a.data
        else:
            x = a
        if isinstance(b, Tensor):
            rg = rg or b._rg
            y = b.data
        else:
            y = b
        xp = _NAMESPACES.get(type(x)) or namespace(x, y)
        try:
            data = op.forward(xp, x, y, **params) if params else op.forward(xp, x, y)
        except (ValueError, TypeError, IndexError) as err:
            raise _forward_error(op, (x, y), params, err) from err
    elif len(args) == 1:
        (a,) = args
        b = ONE
        rg = a._rg
        x = a.data
        xp = _NAMESPACES.get(type(x)) or namespace(x)
        try:
            data = op.forward(xp, x, **params) if params else op.forward(xp, x)
        except (ValueError, TypeError, IndexError) as err:
            raise _forward_error(op, (x,), params, err) from err
    else:
        a, b = args, MANY
        rg = False
        raw = []
        for v in args:
            if isinstance(v, Tensor):
                rg = rg or v._rg
                raw.append(v.data)
            else:
                raw.append(v)
        xp = _NAMESPACES.get(type(raw[0])) or namespace(*raw)
        try:
            data = op.forward(xp, *raw, **params)
        except (ValueError, TypeError, IndexError) as err:
            raise _forward_error(op, raw, params, err) from err
    out = _new(Tensor)
    out.data = data
    out._grad = None
    out._version = 0
    if _flags.special:
        _record_special(op, args, params, out, rg)
    elif rg and op.differentiable and _local.grad_enabled:
        out._rg = True
        out._op = op
        out._a = a
        out._b = b
        out._params = params or _NO_PARAMS
        out._seq = _next_seq()
        out._scope = _local.scope
    else:
        out._rg = False
        out._op = None
    return out


# -- results an op may write over (the op contract: forward_into) ---------------------------
OVERWRITE_MIN = 1 << 14  # elements; below it the array stays in cache and there is no gain
OVERWRITTEN = -1  # the _version of a node whose array a later op has written its result over


class _Holder:
    __slots__ = ("data",)
    data: Any


def _counts(t: Any) -> tuple[int, int]:
    """The reference counts that :func:`overwritable` compares, taken the same way."""
    return sys.getrefcount(t), sys.getrefcount(t.data)


def _baseline() -> tuple[int, int]:
    """What :func:`overwritable` sees for a tensor held by one local variable of its caller,
    and for its array held by the tensor alone (read here rather than assumed: how a call
    counts its references is the interpreter's business)."""
    probe = _Holder()
    probe.data = object()
    return _counts(probe)


_HELD_ONCE = _baseline()


def overwritable(t: Any) -> bool:
    """Whether the caller, holding ``t`` in one local variable, may let an op write its result
    over ``t``'s array: nothing else holds ``t`` or its array (no other node uses it, no user
    variable, no view), the array is a writeable NumPy float array that owns its memory and
    has at least OVERWRITE_MIN elements, and the op that made ``t`` has rules that never read
    its value (``not op.reads_out``), or ``t`` is no node and needs no gradient. In a plain
    pass only: forward mode, anomaly checks and traces keep every value."""
    if type(t) is not Tensor or _flags.special:
        return False
    op = t._op
    if t._rg if op is None else op.reads_out:
        return False
    if not _free_to_write(t.data):
        return False
    return (sys.getrefcount(t), sys.getrefcount(t.data)) == _HELD_ONCE  # _counts(t), inline


def _large_float(d: Any) -> bool:
    """A NumPy float array of at least OVERWRITE_MIN elements: one that writing over can gain
    from. Its type, size and dtype decide it, so cr.compile decides it once, at the trace."""
    return type(d) is np.ndarray and d.size >= OVERWRITE_MIN and d.dtype.kind == "f"


def _free_to_write(d: Any) -> bool:
    """The checks on the array itself, beside its reference count: a writeable NumPy float
    array that owns its memory and has at least OVERWRITE_MIN elements."""
    if not _large_float(d):
        return False
    flags = d.flags
    return bool(flags.owndata and flags.writeable)


def overwrite(xp: Any, a: Any, into: Any, forward: Any) -> Any:
    """``forward(xp, a)``, or ``into(xp, a)`` written over ``a`` where nothing but the caller's
    one variable holds that array and it is a writeable NumPy float array owning at least
    OVERWRITE_MIN elements: what a ``cr.compile``'d forward program calls for an activation
    whose input nothing else in the program reads (the checks :func:`overwritable` makes on
    a Tensor, here on the array; its other conditions hold by construction of the program)."""
    if _free_to_write(a) and sys.getrefcount(a) == _ARRAY_HELD_ONCE:
        return into(xp, a)
    return forward(xp, a)


def _array_count(xp: Any, a: Any, into: Any, forward: Any) -> int:
    """The reference count :func:`overwrite` sees, taken the same way."""
    return sys.getrefcount(a)


def _array_baseline() -> int:
    probe = object()  # held by one local variable, as a program's value is
    return _array_count(None, probe, None, None)


_ARRAY_HELD_ONCE = _array_baseline()


def _apply_saving(op: Op, args: tuple[Any, ...], params: dict[str, Any]) -> Tensor:
    """:func:`apply` for an op with a ``save()`` (see the op contract): a result that records
    a node is computed by ``save``, and the node keeps the value its rules reuse among its
    parameters, as ``saved``."""
    raw = [v.data if isinstance(v, Tensor) else v for v in args]
    rg = any(v._rg for v in args if isinstance(v, Tensor))
    record = rg and op.differentiable and _local.grad_enabled
    xp = _NAMESPACES.get(type(raw[0])) or namespace(*raw)
    try:
        data = op.save(xp, *raw, **params) if record else op.forward(xp, *raw, **params)  # type: ignore[misc]
    except (ValueError, TypeError, IndexError) as err:
        raise _forward_error(op, raw, params, err) from err
    if record:
        if not (isinstance(data, tuple) and len(data) == 2):
            raise TypeError(f"{op!r}: save() must return a pair (out, saved)")
        data, saved = data
    out = _new(Tensor)
    out.data = data
    out._grad = None
    out._version = 0
    if record:
        out._rg = True
        out._node = (op, args, {**params, _registry.SAVED: saved}, _next_seq(), None, _local.scope)
    else:
        out._rg = False
        out._op = None
    return out


def _record_special(
    op: Op, args: tuple[Any, ...], params: dict[str, Any], out: Tensor, rg: bool
) -> None:
    """The rest of :func:`apply` while anomaly mode, forward mode or a trace is on."""
    if rg and op.differentiable and _local.grad_enabled:
        out._rg = True
        where = user_frame() if _flags.anomaly else None
        out._node = (op, args, params or _NO_PARAMS, _next_seq(), where, _local.scope)
    else:
        out._rg = False
        # while cr.compile traces, ops without gradients are recorded too (the program must
        # recompute them); otherwise a result that needs no gradient carries no node
        out._node = (
            (op, args, params or _NO_PARAMS, _next_seq(), None, ()) if _flags.tracing else None
        )
    if _levels and op.differentiable:
        _push_tangents(op, args, params, out)
    if _flags.anomaly:
        where = out._where_made() if out._op is not None else user_frame()
        check_finite(out, op, args, "forward", where)


_new = Tensor.__new__
_next_seq = _state.next_seq


def raise_forward_error(op: Op, raw: Any, params: dict[str, Any], err: Exception) -> None:
    """Raise the explained error for a forward that failed (the C accelerator calls this)."""
    raise _forward_error(op, raw, params, err) from err


def _forward_error(op: Op, raw: Any, params: dict[str, Any], err: Exception) -> Exception:
    shapes = ", ".join(_describe(r) for r in raw)
    message = str(err)
    if "broadcast" in message:
        hint = "the shapes cannot be broadcast together; reshape or add an axis with None"
    elif op.name in ("matmul", "dot", "einsum"):
        hint = "the inner dimensions must agree (a (m, k) @ (k, n) -> (m, n))"
    else:  # the forward's own message says it: once, without its op name again
        prefix = f"{op.name}: "
        hint = message[len(prefix) :] if message.startswith(prefix) else message
    extra = f" with {params}" if params else ""
    cause = f" [{message}]" if hint not in message else ""
    return type(err)(f"{op.name}: inputs {shapes}{extra}: {hint}{cause}")


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is None:
        return type(value).__name__
    return f"{tuple(shape)} {value.dtype}"


def user_frame() -> tuple[str, int, str] | None:
    """(file, line, function) of the innermost frame outside chainrule."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return None
    return (frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)


def format_where(where: tuple[str, int, str] | None) -> str:
    if where is None:
        return "an unknown place (turn on cr.detect_anomaly() to record it)"
    return f"{where[0]}:{where[1]} in {where[2]}"


def check_finite(value: Any, op: Op, args: Any, phase: str, where: Any) -> None:
    data = value.data if isinstance(value, Tensor) else value
    xp = namespace(data)
    kind = getattr(data.dtype, "kind", "f")
    if kind not in "fc":
        return
    if bool(xp.all(xp.isfinite(data))):
        return
    shapes = ", ".join(_describe(a.data if isinstance(a, Tensor) else a) for a in args)
    bad = "NaN" if bool(xp.any(xp.isnan(data))) else "inf"
    raise AnomalyError(
        f"{op.name}: {bad} in the {phase} pass (inputs {shapes}, result "
        f"{_describe(data)}); the node was made at {format_where(where)}"
    )


def _push_tangents(op: Op, args: tuple[Any, ...], params: dict[str, Any], out: Tensor) -> None:
    """Forward mode: push each active level's tangents through the op's JVP rules."""
    saved = list(_levels)
    for k, level in enumerate(saved):
        tangents = [level.get(id(a)) if isinstance(a, Tensor) else None for a in args]
        if all(t is None for t in tangents):
            continue
        # Rules for level k run with only the outer levels active, so that a tangent of a
        # tangent (jvp of jvp) is tracked by the outer level and never confused with this one.
        _levels[:] = saved[:k]
        try:
            outer = bool(_levels) or out._rg
            rule_out = out if outer else out.data
            rule_args = (
                args if outer else tuple(a.data if isinstance(a, Tensor) else a for a in args)
            )
            total = None
            for i, entry in enumerate(tangents):
                if entry is None:
                    continue
                rule = op.jvps[0] if op.variadic else op.jvps[i] if i < len(op.jvps) else None
                if rule is None:
                    continue
                if rule is NOT_IMPLEMENTED:
                    raise NotImplementedError(
                        f"{op.name}: forward mode (jvp) is not implemented for input {i}; "
                        "use reverse mode (cr.grad, cr.vjp) instead"
                    )
                if op.variadic:
                    contribution = rule(i, entry[1], rule_out, *rule_args, **params)
                else:
                    contribution = rule(entry[1], rule_out, *rule_args, **params)
                total = contribution if total is None else total + contribution
            if total is not None:
                total = _fit(total, out.data)
        finally:
            _levels[:] = saved
        if total is not None:
            level[id(out)] = (out, total)


def _fit(value: Any, like: Any) -> Any:
    """Broadcast a tangent to ``like``'s shape and cast it to its dtype."""
    if tuple(value.shape) != tuple(like.shape):
        value = F.broadcast_to(value, tuple(like.shape))
    if value.dtype != like.dtype:
        value = F.astype(value, like.dtype)
    return value


_registry._apply = apply
