"""Process and thread state read on every op: grad mode, anomaly mode, forward-mode levels.

Kept in one tiny module so that the recording path reads plain attributes and nothing else.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

__all__ = [
    "local",
    "flags",
    "forward_levels",
    "tracers",
    "bump_epoch",
    "next_seq",
    "refresh",
    "TraceAbort",
    "check_not_tracing",
]


class _Local(threading.local):
    """Per-thread switches. Class attributes are the defaults every new thread starts with."""

    grad_enabled: bool = True
    # The Modules whose forward is running, outermost first (set by Module.__call__), so that
    # a graph picture can group the nodes of one layer.
    scope: tuple[Any, ...] = ()


local = _Local()


class _Flags:
    """Process-wide switches (``detect_anomaly`` sets ``anomaly``)."""

    anomaly: bool = False
    # True while cr.compile traces a function: every op on Tensors is recorded (even without
    # gradients), and reading a Tensor's value as a Python value aborts the trace.
    tracing: bool = False
    # anomaly or tracing or a forward-mode level active: the one test the recording path
    # makes for all three. Whoever changes one of them calls refresh().
    special: bool = False


flags = _Flags()

# Active forward-mode (JVP) levels, outermost first. Each is a dict: id(tensor) -> (tensor,
# tangent). Empty almost always, so the recording path pays one truthiness test for it.
forward_levels: list[dict[int, tuple[Any, Any]]] = []


def refresh() -> None:
    """Recompute ``flags.special`` after anomaly, tracing or the forward levels changed."""
    flags.special = flags.anomaly or flags.tracing or bool(forward_levels)


# Backward passes to record step by step, by id of their root: id(sink) -> a callback taking
# (tensor, gradient, op or None, [(input index, input tensor, contribution), ...]). Set by
# cr.graph(sink) so that Graph.backward_steps() shows the order the engine really used.
tracers: dict[int, Any] = {}


class TraceAbort(Exception):
    """Raised inside a cr.compile trace when the function depends on values (a Python
    ``if`` on a tensor, ``float(t)``, randomness); the caller falls back to eager mode."""


def check_not_tracing(what: str) -> None:
    if flags.tracing:
        raise TraceAbort(what)


# One process-wide counter numbers every recorded node and every in-place update, in the order
# they happen. A node's number orders the backward pass (a node is always made after its
# inputs, so larger numbers go first) and dates it: a tensor updated in place afterwards
# carries a larger ``_version`` than the node that used it, which the backward pass detects.
next_seq = itertools.count(1).__next__
bump_epoch = next_seq
