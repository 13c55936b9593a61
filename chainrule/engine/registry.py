"""The table every op is registered in, by name (filled by :func:`chainrule.engine.declare.defop`).

The engine knows ops only through this table: a Tensor's ``+`` is ``OPS["add"]``, the backward
pass sums a broadcast gradient with ``OPS["sum"]``. The op sheet (:mod:`chainrule.ops`) fills
it when it is imported; so do the CLI choices, the docs tables, ``cr.__all__`` and the tests,
which read it rather than list ops again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .op import Op

__all__ = ["OPS", "FUNCTIONS", "COMPOSED", "NOT_IMPLEMENTED", "SAVED", "numpy_functions"]


class _NotImplementedRule:
    def __repr__(self) -> str:
        return "NOT_IMPLEMENTED"

    def __reduce__(self) -> str:
        return "NOT_IMPLEMENTED"  # copied and pickled as itself: tested with `is`


NOT_IMPLEMENTED: Any = _NotImplementedRule()
"""In place of a rule: the derivative exists but is not provided (``None``: not differentiable)."""

SAVED = "saved"
"""The parameter under which a node keeps what its op's ``save()`` returned."""

OPS: dict[str, Op] = {}
"""Every primitive, by name, in the order declared."""

FUNCTIONS: dict[str, Callable[..., Any]] = {}
"""The user-facing function of each name: the op itself, or the function that ``public``
declares for it (``sum(x, axis=None, keepdims=False)`` over the op ``sum``; ``dot``). Tensor
methods call these."""

# NumPy function name -> chainrule callable, for functions whose public face is not an op's
_PUBLIC_NUMPY: dict[str, Callable[..., Any]] = {}

COMPOSED: dict[str, tuple[Callable[..., Any], Op]] = {}
"""The user-facing functions built from ops (``trace``, ``norm``, ``sort``), by name, each with
the op it is declared on: their derivatives come from the ops' rules by the chain rule."""


def numpy_functions() -> dict[str, Callable[..., Any]]:
    """NumPy function name -> the chainrule callable that handles it on Tensors."""
    out: dict[str, Callable[..., Any]] = {}
    for op in OPS.values():
        for n in op.numpy:
            out.setdefault(n, op.public)
    out.update(_PUBLIC_NUMPY)
    return out
