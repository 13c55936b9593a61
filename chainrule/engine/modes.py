"""Every switch the engine reads, in one place, per thread.

``state`` holds this thread's modes: whether ops record (grad mode), anomaly checks, a
``cr.compile`` trace, the active forward-mode levels and the Modules whose forward is running.
Each thread starts with the defaults, so a ``no_grad`` or a ``jvp`` in one thread never leaks
into another. The recording path tests one attribute, ``state.special``, for everything but
grad mode; whoever changes anomaly, tracing or the levels calls :func:`refresh`.

The user-facing switches (``no_grad``, ``enable_grad``, ``set_grad_enabled``,
``detect_anomaly``) are defined here too, as is the one process-wide counter that orders nodes.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = [
    "state",
    "refresh",
    "next_seq",
    "TraceAbort",
    "check_not_tracing",
    "tracing",
    "forward_level",
    "transforming",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "detect_anomaly",
]

# A forward-mode level: id(tensor) -> (tensor, tangent) for every tensor that carries a tangent.
Level = dict[int, tuple[Any, Any]]


class _ThreadState(threading.local):
    """One thread's modes (``__init__`` runs once in each thread that reads them)."""

    def __init__(self) -> None:
        self.grad_enabled = True
        self.anomaly = False
        # True while cr.compile traces a function: every op on Tensors is recorded (even
        # without gradients), and reading a Tensor's value as a Python value aborts the trace.
        self.tracing = False
        # Active forward-mode (JVP) levels, outermost first.
        self.levels: list[Level] = []
        # How many functional transforms (cr.grad, cr.jvp, ...) are running their function:
        # inside one, reading a differentiated Tensor's value as a plain number is refused.
        self.transforms = 0
        # anomaly or tracing or a forward level: the one test the recording path makes
        self.special = False
        # The cr.vmap levels whose function is running, outermost first: a backward pass
        # inside one keeps each example's gradient apart (per-example gradients); a batch
        # that closed before the pass began is summed where it meets a shared value.
        self.vmap_levels: list[int] = []
        # The Modules whose forward is running, outermost first (set by Module.__call__), so
        # that a graph picture can group the nodes of one layer.
        self.scope: tuple[Any, ...] = ()


state = _ThreadState()


def refresh() -> None:
    """Recompute ``state.special`` after anomaly, tracing or the forward levels changed."""
    state.special = state.anomaly or state.tracing or bool(state.levels)


# One process-wide counter numbers every recorded node and every in-place update, in the order
# they happen. A node's number orders the backward pass (a node is always made after its
# inputs, so larger numbers go first) and dates it: a tensor updated in place afterwards
# carries a larger ``_version`` than the node that used it, which the backward pass detects.
next_seq: Callable[[], int] = itertools.count(1).__next__


# -- tracing (cr.compile) ----------------------------------------------------------------------
class TraceAbort(Exception):
    """Raised inside a cr.compile trace when the function depends on values (a Python
    ``if`` on a tensor, ``float(t)``, randomness); the caller falls back to eager mode."""


def check_not_tracing(what: str) -> None:
    if state.tracing:
        raise TraceAbort(what)


@contextmanager
def tracing() -> Iterator[None]:
    """Record every op in this thread, with or without gradients (cr.compile's trace)."""
    before = state.tracing
    state.tracing = True
    refresh()
    try:
        yield
    finally:
        state.tracing = before
        refresh()


@contextmanager
def forward_level(level: Level) -> Iterator[Level]:
    """Push tangents through every op in this thread while inside (cr.jvp)."""
    state.levels.append(level)
    refresh()
    try:
        yield level
    finally:
        state.levels.pop()  # (levels nest: the last one is this one)
        refresh()


@contextmanager
def transforming() -> Iterator[None]:
    """Mark a functional transform's call of its function (see ``state.transforms``)."""
    state.transforms += 1
    try:
        yield
    finally:
        state.transforms -= 1


# -- grad mode -------------------------------------------------------------------------------
class set_grad_enabled:
    """Switch recording on or off in this thread: a context manager and a decorator."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self.prev: list[bool] = []

    def __enter__(self) -> None:
        self.prev.append(state.grad_enabled)
        state.grad_enabled = self.mode

    def __exit__(self, *exc: Any) -> None:
        state.grad_enabled = self.prev.pop()

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
    return state.grad_enabled


# -- anomaly detection -----------------------------------------------------------------------
class detect_anomaly:
    """Raise at the first NaN or inf made in the forward or backward pass, naming the op, the
    shapes and the file:line of user code where that node was made. In this thread only.

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
        self.prev.append((state.anomaly, quiet))
        state.anomaly = self.enabled
        refresh()

    def __exit__(self, *exc: Any) -> None:
        state.anomaly, quiet = self.prev.pop()
        refresh()
        if quiet is not None:
            quiet.__exit__(*exc)
