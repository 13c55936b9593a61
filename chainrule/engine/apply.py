"""Applying an op: how a Tensor is made, and how it records its place in the graph.

Every op called with a Tensor among its inputs comes here (``Op.__call__`` -> :func:`apply`):
the op's forward runs on the raw arrays, and when grad mode is on and some input requires a
gradient, the result records its node (see :mod:`chainrule.engine.tensor`). Forward-mode
tangents, anomaly checks and the recording of a ``cr.compile`` trace take the longer path,
:func:`_apply_special`, behind one test of ``state.special``.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from ..backends import NAMESPACES, namespace
from .modes import next_seq, state
from .registry import NOT_IMPLEMENTED, OPS, SAVED
from .tensor import MANY, ONE, Tensor

if TYPE_CHECKING:
    from .op import Op

__all__ = [
    "apply",
    "AnomalyError",
    "NO_PARAMS",
    "format_where",
    "user_frame",
    "check_finite",
    "forward_error",
]

NO_PARAMS: dict[str, Any] = {}  # shared by every node without parameters; never mutated
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_new = Tensor.__new__


class AnomalyError(FloatingPointError):
    """A NaN or inf appeared while :func:`chainrule.detect_anomaly` was on."""


def apply(op: Op, args: tuple[Any, ...], params: dict[str, Any]) -> Tensor:
    """Run ``op`` on the arrays inside ``args``; record the node when a gradient may flow."""
    if state.special or op.save is not None:
        return _apply_special(op, args, params)
    # NOTE: this runs once per op on Tensors. The one- and two-input cases are spelled out so
    # that the inputs are unwrapped in one pass and the forward is called without building
    # an argument tuple. The node goes into the result's slots: ``_a``, ``_b`` hold the
    # inputs (see chainrule.engine.tensor).
    n = len(args)
    if n == 2:
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
        xp = NAMESPACES.get(type(x)) or namespace(x, y)
        try:
            data = op.forward(xp, x, y, **params) if params else op.forward(xp, x, y)
        except (ValueError, TypeError, IndexError) as err:
            raise forward_error(op, (x, y), params, err) from err
    elif n == 1:
        (a,) = args
        b = ONE
        rg = a._rg
        x = a.data
        xp = NAMESPACES.get(type(x)) or namespace(x)
        try:
            data = op.forward(xp, x, **params) if params else op.forward(xp, x)
        except (ValueError, TypeError, IndexError) as err:
            raise forward_error(op, (x,), params, err) from err
    else:
        a, b = args, MANY
        raw = [v.data if isinstance(v, Tensor) else v for v in args]
        rg = any(v._rg for v in args if isinstance(v, Tensor))
        xp = NAMESPACES.get(type(raw[0])) or namespace(*raw)
        try:
            data = op.forward(xp, *raw, **params)
        except (ValueError, TypeError, IndexError) as err:
            raise forward_error(op, raw, params, err) from err
    out = _new(Tensor)
    out.data = data
    out._grad = None
    out._version = 0
    if rg and op.differentiable and state.grad_enabled:
        out._rg = True
        out._op = op
        out._a = a
        out._b = b
        out._params = params or NO_PARAMS
        out._seq = next_seq()
        out._scope = state.scope
    else:
        out._rg = False
        out._op = None
    return out


def _apply_special(op: Op, args: tuple[Any, ...], params: dict[str, Any]) -> Tensor:
    """:func:`apply` for an op with a ``save()``, or while anomaly mode, forward mode or a
    ``cr.compile`` trace is on."""
    raw = [v.data if isinstance(v, Tensor) else v for v in args]
    rg = any(v._rg for v in args if isinstance(v, Tensor))
    record = rg and op.differentiable and state.grad_enabled
    # a plain pass keeps what save() hands its rules (see the op contract)
    saving = record and op.save is not None and not state.special
    xp = NAMESPACES.get(type(raw[0])) or namespace(*raw)
    try:
        data = op.save(xp, *raw, **params) if saving else op.forward(xp, *raw, **params)  # type: ignore[misc]
    except (ValueError, TypeError, IndexError) as err:
        raise forward_error(op, raw, params, err) from err
    if saving:
        if not (isinstance(data, tuple) and len(data) == 2):
            raise TypeError(f"{op!r}: save() must return a pair (out, saved)")
        data, saved = data
        params = {**params, SAVED: saved}
    out = Tensor(data)
    if record:
        out._rg = True
        where = user_frame() if state.anomaly else None
        out._node = (op, args, params or NO_PARAMS, next_seq(), where, state.scope)
    elif state.tracing:
        # while cr.compile traces, ops without gradients are recorded too (the program must
        # recompute them); otherwise a result that needs no gradient carries no node
        out._node = (op, args, params or NO_PARAMS, next_seq(), None, ())
    if state.levels and op.differentiable:
        _push_tangents(op, args, params, out)
    if state.anomaly:
        where = out._where_made() if out._op is not None else user_frame()
        check_finite(out, op, args, "forward", where)
    return out


# -- forward mode ------------------------------------------------------------------------------
def _push_tangents(op: Op, args: tuple[Any, ...], params: dict[str, Any], out: Tensor) -> None:
    """Push each active level's tangents through the op's JVP rules."""
    levels = state.levels
    saved = list(levels)
    for k, level in enumerate(saved):
        tangents = [level.get(id(a)) if isinstance(a, Tensor) else None for a in args]
        if all(t is None for t in tangents):
            continue
        # Rules for level k run with only the outer levels active, so that a tangent of a
        # tangent (jvp of jvp) is tracked by the outer level and never confused with this one.
        levels[:] = saved[:k]
        try:
            total = _tangent(op, args, params, out, tangents, outer=bool(levels) or out._rg)
        finally:
            levels[:] = saved
        if total is not None:
            level[id(out)] = (out, total)


def _tangent(
    op: Op,
    args: tuple[Any, ...],
    params: dict[str, Any],
    out: Tensor,
    tangents: list[Any],
    outer: bool,
) -> Any:
    """The tangent of ``out``: the sum of each input's contribution through its JVP rule.
    The rules see Tensors when an outer level or a gradient must see through them."""
    rule_out = out if outer else out.data
    rule_args = args if outer else tuple(a.data if isinstance(a, Tensor) else a for a in args)
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
        lead = (i,) if op.variadic else ()
        contribution = rule(*lead, entry[1], rule_out, *rule_args, **params)
        total = contribution if total is None else total + contribution
    if total is None:
        return None
    like = out.data
    if tuple(total.shape) != tuple(like.shape):
        total = OPS["broadcast_to"](total, shape=tuple(like.shape))
    if total.dtype != like.dtype:
        total = OPS["astype"](total, dtype=like.dtype)
    return total


# -- errors that say what to do ------------------------------------------------------------------
def forward_error(op: Op, raw: Any, params: dict[str, Any], err: Exception) -> Exception:
    """The forward's error, restated with the op, the shapes and dtypes, and a hint."""
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
    """Raise :class:`AnomalyError` if ``value`` (a result or a gradient) holds a NaN or inf."""
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
