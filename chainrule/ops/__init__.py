"""The op sheet: every primitive chainrule knows, declared once, grouped by family.

Each family file declares its ops with :func:`~chainrule.engine.declare.defop` (the contract is in
that module's docstring); ``cr.ops.table()`` lists them with their derivative formulas and kink
conventions. Tensor creation (``zeros``, ``arange``, ...) and random draws live here too.
"""

from __future__ import annotations

from ..engine.declare import defop, family, kernel, public
from ..engine.op import Op
from ..engine.registry import NOT_IMPLEMENTED, OPS, numpy_functions
from . import (
    arrays,
    creation,
    elementwise,
    indexing,
    linalg,
    matrices,
    nn,
    random,
    reductions,
    scans,
    shape,
    special,
)
from . import batching as batching  # the edges of cr.vmap (not public functions)
from . import conv as conv  # sliding windows, for cr.nn's convolution and pooling
from . import kernels as kernels  # attaches the fast kernels to their ops
from .arrays import *  # noqa: F403
from .creation import *  # noqa: F403
from .elementwise import *  # noqa: F403
from .indexing import *  # noqa: F403
from .linalg import *  # noqa: F403
from .nn import *  # noqa: F403
from .reductions import *  # noqa: F403
from .scans import *  # noqa: F403
from .shape import *  # noqa: F403
from .table import table

FUNCTION_NAMES = [
    *elementwise.__all__,
    *indexing.__all__,
    *linalg.__all__,
    *nn.__all__,
    *reductions.__all__,
    *scans.__all__,
    *shape.__all__,
    *arrays.__all__,
]
"""The names of the user-facing functions of the op sheet (``cr.tanh``, ``cr.sum``, ...)."""

__all__ = [
    "Op",
    "OPS",
    "NOT_IMPLEMENTED",
    "defop",
    "family",
    "kernel",
    "public",
    "table",
    "numpy_functions",
    "random",
    "matrices",
    "special",
    *creation.__all__,
    *FUNCTION_NAMES,
]
