"""Errors that say what to do: a failed forward restated with the op, shapes and dtypes; the
anomaly check (NaN or inf) with the place in user code where the node was made."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from ..backends import namespace
from ..backends.devices import mixed_devices
from .inputs import NOT_NUMBERS, not_numbers_hint
from .tensor import Tensor

if TYPE_CHECKING:
    from .op import Op

__all__ = [
    "AnomalyError",
    "forward_error",
    "user_frame",
    "format_where",
    "check_finite",
    "is_complex",
    "complex_error",
    "check_devices",
]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class AnomalyError(FloatingPointError):
    """A NaN or inf appeared while :func:`chainrule.detect_anomaly` was on."""


def forward_error(op: Op, raw: Any, params: dict[str, Any], err: Exception) -> Exception:
    """The forward's error, restated with the op, the shapes and dtypes, and a hint."""
    shapes = ", ".join(_describe(r) for r in raw)
    message = str(err)
    odd = next((r.dtype for r in raw if _kind(r) in NOT_NUMBERS), None)
    devices = mixed_devices(raw)
    if devices is not None:
        hint = devices
    elif odd is not None:
        what = not_numbers_hint(odd.kind)
        hint = f"{op.name} computes with numbers and booleans, not {odd} values {what}"
    elif "broadcast" in message:
        hint = "the shapes cannot be broadcast together; reshape or add an axis with None"
    elif op.name in ("matmul", "dot", "einsum"):
        hint = "the inner dimensions must agree (a (m, k) @ (k, n) -> (m, n))"
    else:  # the forward's own message says it: once, without its op name again
        prefix = f"{op.name}: "
        hint = message[len(prefix) :] if message.startswith(prefix) else message
    extra = f" with {params}" if params else ""
    cause = f" [{message}]" if hint not in message else ""
    return _same_kind(err, f"{op.name}: inputs {shapes}{extra}: {hint}{cause}")


def check_devices(op: Op, raw: Any) -> None:
    """Raise TypeError where an op's inputs are on different devices (GPU and host): run by
    ``apply`` when the first input is not a NumPy array, so that an op cannot copy the other
    input silently (see chainrule.backends.devices)."""
    problem = mixed_devices(raw)
    if problem is not None:
        shapes = ", ".join(f"{_describe(r)} ({type(r).__module__.split('.')[0]})" for r in raw)
        raise TypeError(f"{op.name}: inputs {shapes}: {problem}")


def _kind(value: Any) -> str:
    return str(getattr(getattr(value, "dtype", None), "kind", ""))


def _same_kind(err: Exception, message: str) -> Exception:
    """``err``'s class with ``message``; for a class that cannot be made from a message alone
    (NumPy's ``UFuncTypeError`` family takes the ufunc and the dtypes), the nearest built-in
    class it derives from (TypeError, ValueError, ...), so that ``except`` clauses still
    match."""
    try:
        same = type(err)(message)
        if str(same) == message:
            return same
    except Exception:
        pass
    for cls in type(err).__mro__:
        if cls.__module__ == "builtins" and issubclass(cls, Exception):
            return cls(message)
    return RuntimeError(message)


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
    data = value._data if isinstance(value, Tensor) else value
    xp = namespace(data)
    kind = getattr(data.dtype, "kind", "f")
    if kind not in "fc":
        return
    if bool(xp.all(xp.isfinite(data))):
        return
    shapes = ", ".join(_describe(a._data if isinstance(a, Tensor) else a) for a in args)
    bad = "NaN" if bool(xp.any(xp.isnan(data))) else "inf"
    raise AnomalyError(
        f"{op.name}: {bad} in the {phase} pass (inputs {shapes}, result "
        f"{_describe(data)}); the node was made at {format_where(where)}"
    )


def is_complex(dtype: Any) -> bool:
    return getattr(dtype, "kind", "") == "c" or "complex" in str(dtype)


def complex_error(op: Any, what: str, dtype: Any) -> str:
    """Why a complex derivative of a real value is refused rather than its real part kept."""
    return (
        f"{op.name}: the {what} of a real ({dtype}) value came out complex: the computation "
        "passes through complex numbers, which chainrule does not differentiate yet (keeping "
        "the real part would give a wrong number); write it with real arithmetic (for "
        "|a + ib|, sqrt(a**2 + b**2))"
    )
