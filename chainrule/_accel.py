"""The optional C accelerator (``chainrule/_native.c``): switched on at import when it was built.

The accelerator runs the two innermost loops of the library, the recording step
(:func:`chainrule._record.apply`) and the backward loop (:func:`chainrule.graph._run`), on the
same Tensors, op table and rules as the pure-Python code, in the same order, so it gives the
same values and gradients bit for bit (where an op declares ``vjp_into``, the same rule writing
into a gradient array that the loop alone holds: see :mod:`chainrule.ops._registry`). It
also does the optimizers' updates (SGD's, with momentum, weight decay and Nesterov, and
Adam's and AdamW's) in one pass over each parameter and its buffers, without NumPy's
temporaries and with NumPy's bits (:mod:`chainrule.optim`). Only
the common cases go to it: anomaly mode, forward mode, ``cr.compile`` tracing,
``create_graph=True`` and the step-by-step view of ``cr.graph(...).backward_steps()`` always
run the Python code, which is the reference to read.

``CHAINRULE_PURE_PYTHON=1`` in the environment keeps the accelerator off;
:func:`use_accelerator` switches it at run time (to step through the engine in a debugger,
say), and :func:`accelerated` says whether it is on.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from . import _record, _state
from .backend import _NAMESPACES, namespace
from .ops import _registry
from .ops._registry import NOT_IMPLEMENTED
from .tensor import FREED, MANY, ONE, Tensor

__all__ = ["accelerated", "available", "use_accelerator"]

# (the package's name ``graph`` is the function cr.graph; the engine module is this one)
graph: Any = importlib.import_module(".graph", __package__)
compiled: Any = importlib.import_module(".compile", __package__)  # cr.compile's module
optim: Any = importlib.import_module(".optim", __package__)

try:
    from . import _native  # type: ignore[attr-defined]
except ImportError:  # not built (no C compiler when it was installed): pure Python
    _native = None


def _error(kind: str, *details: Any) -> Exception:
    """The exception the accelerator raises, built by the same functions as in Python."""
    if kind == "freed":
        return graph._freed_error(*details)
    if kind == "modified":
        return graph._modified_error(*details)
    return graph._no_rule_error(*details)


if _native is not None:
    _native.configure(
        Tensor,
        ONE,
        MANY,
        FREED,
        NOT_IMPLEMENTED,
        _record._NO_PARAMS,
        _NAMESPACES,
        namespace,
        _state.flags,
        _state.local,
        _state.next_seq,
        _record.apply,
        _record.raise_forward_error,
        _error,
        graph._fit_to,
        graph._zeros_like,
        _registry.Op,
    )


def available() -> bool:
    """Whether the C accelerator was built for this installation."""
    return _native is not None


def accelerated() -> bool:
    """Whether the C accelerator is in use now."""
    return graph._native_run is not None


def use_accelerator(on: bool = True) -> bool:
    """Switch the C accelerator on or off (a no-op when it was not built). Returns whether it
    was on before, so that a caller can restore it."""
    before = accelerated()
    if on and _native is not None:
        _registry._apply = _native.apply
        graph._native_run = _native.run
        graph._native_deliver = _native.deliver
        compiled.take = _native.take
        optim._sgd_update = _native.sgd_update
        optim._adam_update = _native.adam_update
    else:
        _registry._apply = _record.apply
        graph._native_run = None
        graph._native_deliver = None
        compiled.take = compiled._take
        optim._sgd_update = None
        optim._adam_update = None
    return before


use_accelerator(os.environ.get("CHAINRULE_PURE_PYTHON", "") in ("", "0"))
