"""Grad mode (per thread) and anomaly detection: the switches a user flips around code."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _state

__all__ = [
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "detect_anomaly",
]

_local = _state.local
_flags = _state.flags


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


class _FixedMode(set_grad_enabled):
    """A mode usable as ``with m():``, ``@m()`` and bare ``@m``."""

    MODE = True

    def __new__(cls, fn: Callable[..., Any] | None = None) -> Any:
        self = super().__new__(cls)
        if fn is not None:  # used as a bare decorator: @cr.no_grad
            set_grad_enabled.__init__(self, cls.MODE)
            return self(fn)
        return self

    def __init__(self, fn: Callable[..., Any] | None = None) -> None:
        super().__init__(self.MODE)


class no_grad(_FixedMode):
    """Record nothing inside (evaluation, parameter updates). A context manager, and a
    decorator with or without parentheses.

    >>> import chainrule as cr
    >>> w = cr.tensor(1.0, requires_grad=True)
    >>> with cr.no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False
    >>> @cr.no_grad
    ... def evaluate(w):
    ...     return w * 3
    >>> evaluate(w).requires_grad
    False
    """

    MODE = False


class enable_grad(_FixedMode):
    """Record again inside a ``no_grad`` region."""

    MODE = True


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
        _state.refresh()

    def __exit__(self, *exc: Any) -> None:
        _flags.anomaly, quiet = self.prev.pop()
        _state.refresh()
        if quiet is not None:
            quiet.__exit__(*exc)
