"""Indexing: ``x[index]`` (basic and advanced) and the scatter-add that is its gradient."""

from __future__ import annotations

from typing import Any

from ..backend import index_add
from ._registry import Op, defop

__all__ = ["getitem", "scatter_add"]

F = "indexing"


def _has_integer_array(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    for p in parts:
        dtype = getattr(p, "dtype", None)
        if isinstance(p, list) or (dtype is not None and getattr(dtype, "kind", "i") != "b"):
            return True
    return False


def _scatter_add(xp: Any, g: Any, index: Any, shape: tuple[int, ...]) -> Any:
    # NOTE: an index that repeats an entry (x[[0, 0]]) must add both gradients there, which
    # plain assignment would not; only integer-array indices can repeat.
    out = xp.zeros(shape, dtype=g.dtype)
    if _has_integer_array(index):
        return index_add(xp, out, index, g)
    parts = index if isinstance(index, tuple) else (index,)
    if any(p is None for p in parts):
        # None added size-1 axes to the result; assignment wants the index without them
        # (and, in the array API, an explicit ... for the axes it leaves out).
        index = tuple(p for p in parts if p is not None)
        if not any(p is Ellipsis for p in index):
            index = (*index, Ellipsis)
        g = xp.reshape(g, tuple(out[index].shape))
    out[index] = g
    return out


getitem: Op = defop(
    "getitem",
    lambda xp, x, index: x[index],
    vjp=[lambda g, out, x, index: scatter_add(g, index=index, shape=tuple(x.shape))],
    jvp=[lambda t, out, x, index: getitem(t, index=index)],
    formula="d x[index]/dx: the gradient scattered back to the indexed places (repeats add)",
    family=F,
    description="x[index]: basic (slices, ints, None, ...) or advanced (arrays, masks) indices.",
)

scatter_add: Op = defop(
    "scatter_add",
    _scatter_add,
    vjp=[lambda g, out, values, index, shape: getitem(g, index=index)],
    jvp=[lambda t, out, values, index, shape: scatter_add(t, index=index, shape=shape)],
    formula="d scatter_add(v)/dv: the gradient read back at the index",
    family=F,
    description="zeros(shape) with v added at index, repeated indices accumulating.",
)
