"""The table of derivatives: every primitive chainrule knows, declared once.

``cr.ops.table()`` lists them with their derivative formulas and kink conventions.
"""

from __future__ import annotations

from . import elementwise, indexing, linalg, nn, reductions, shape
from ._registry import NOT_IMPLEMENTED, REGISTRY, Op, defop, numpy_functions, public, table
from .elementwise import *  # noqa: F403
from .indexing import *  # noqa: F403
from .linalg import *  # noqa: F403
from .nn import *  # noqa: F403
from .reductions import *  # noqa: F403
from .shape import *  # noqa: F403

__all__ = [
    "Op",
    "REGISTRY",
    "NOT_IMPLEMENTED",
    "defop",
    "public",
    "table",
    "numpy_functions",
    *elementwise.__all__,
    *indexing.__all__,
    *linalg.__all__,
    *nn.__all__,
    *reductions.__all__,
    *shape.__all__,
]
