"""The two ops at the edges of ``cr.vmap``: into a batch and out of it.

``batch(x, axis=, level=, size=)`` makes the examples along ``axis`` of ``x`` one batched
value (:class:`~chainrule.backends.batched.Batched`); ``axis=None`` means every example is
``x`` itself. ``unbatch`` puts a batch back as an axis of one array, or, with ``axis=None``,
sums it (the gradient of a value every example shared). Each is the other's transpose, so a
gradient flows through ``vmap`` both ways: ``cr.grad`` of a vmapped function, and per-example
gradients from ``cr.vmap(cr.grad(f))``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends.batched import Batched, at_level, level_of, promote, sum_level
from ..engine.declare import family
from ..engine.op import Op

__all__ = ["batch", "unbatch"]

defop = family("batching")


def _batch(xp: Any, x: Any, *, axis: int | None, level: int, size: int) -> Any:
    if level_of(x) > level:  # batched at a level opened later: batch each of its examples
        inner = None if axis is None else axis % x.ndim + 1
        return Batched(_batch(xp, x.value, axis=inner, level=level, size=size), x.level)
    if axis is None:
        return promote(x, level, size)
    return Batched(np.moveaxis(x, axis, 0), level)


def _unbatch(xp: Any, x: Any, *, axis: int | None, level: int, size: int) -> Any:
    if level_of(x) > level:
        inner = None if axis is None else axis % (x.ndim + 1) + 1
        return Batched(_unbatch(xp, x.value, axis=inner, level=level, size=size), x.level)
    if axis is None:
        return sum_level(x, level)
    if not at_level(x, level):  # the same for every example (a gradient that did not vary)
        x = promote(x, level, size)
    return np.moveaxis(x.value, 0, axis)


# Each is linear and the other's transpose; its tangent rule is itself.
# fmt: off
batch: Op = defop("batch", _batch,
    "The examples along axis of x as one batched value (axis None: x for every example).",
    numpy=(),
    dx=(lambda g, out, x, axis, level, size: unbatch(g, axis=axis, level=level, size=size),
        "d batch(x)/dx: the batch of gradients put back as the axis (summed for axis None)"),
    tx=lambda t, out, x, axis, level, size: batch(t, axis=axis, level=level, size=size))

unbatch: Op = defop("unbatch", _unbatch,
    "A batched value as an axis of one array (axis None: summed over the batch).",
    numpy=(),
    dx=(lambda g, out, x, axis, level, size: batch(g, axis=axis, level=level, size=size),
        "d unbatch(x)/dx: the gradient split into its examples"),
    tx=lambda t, out, x, axis, level, size: unbatch(t, axis=axis, level=level, size=size))
# fmt: on
