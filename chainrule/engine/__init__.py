"""The engine: Tensor, how an op is applied and recorded, the backward pass, the modes.

Read in this order: :mod:`.modes` (the per-thread switches), :mod:`.tensor` (a value and its
node), :mod:`.op` (an op, and how calling it records a node), :mod:`.declare` (how a primitive
is declared: the contract for rules), :mod:`.backward` (the chain rule over the recorded
graph); :mod:`.forward_mode` and :mod:`.errors` hold what the call path needs beside. The
engine knows no op by heart: it finds them by name in :mod:`.registry`, which the op sheet
(:mod:`chainrule.ops`) fills.
"""

from __future__ import annotations

from .backward import backward, gradients, topological_order
from .declare import defop, kernel, public
from .errors import AnomalyError
from .modes import (
    detect_anomaly,
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
    state,
)
from .op import Op, apply
from .registry import FUNCTIONS, NOT_IMPLEMENTED, OPS, SAVED
from .tensor import Tensor, tensor

__all__ = [
    "AnomalyError",
    "FUNCTIONS",
    "NOT_IMPLEMENTED",
    "OPS",
    "Op",
    "SAVED",
    "Tensor",
    "apply",
    "backward",
    "defop",
    "kernel",
    "detect_anomaly",
    "enable_grad",
    "gradients",
    "is_grad_enabled",
    "no_grad",
    "public",
    "set_grad_enabled",
    "state",
    "tensor",
    "topological_order",
]
