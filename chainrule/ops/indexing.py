"""Indexing: ``x[index]`` (basic and advanced), ``take_along_axis``, and the scatter-add that
is the gradient of both."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import full_for, gaps, index_add, namespace
from ..engine.declare import family
from ..engine.op import Op
from ..engine.tensor import Tensor

__all__ = ["getitem", "scatter_add", "take_along_axis"]

defop = family("indexing")


def _has_integer_array(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    for p in parts:
        dtype = getattr(p, "dtype", None)
        if isinstance(p, list) or (dtype is not None and getattr(dtype, "kind", "i") != "b"):
            return True
    return False


def _scatter_add(xp: Any, values: Any, *, index: Any, shape: tuple[int, ...]) -> Any:
    # NOTE: an index that repeats an entry (x[[0, 0]]) must add both gradients there, which
    # plain assignment would not; only integer-array indices can repeat.
    if gaps.is_dask(values):  # (lazy: see gaps.scatter_add)
        return gaps.scatter_add(values, index, shape, _numpy_scatter_add)
    out = full_for(xp, values, shape)
    if _has_integer_array(index):
        return index_add(xp, out, index, values)
    parts = index if isinstance(index, tuple) else (index,)
    if any(p is None for p in parts):
        # None added size-1 axes to the result; assignment wants the index without them
        # (and, in the array API, an explicit ... for the axes it leaves out).
        index = tuple(p for p in parts if p is not None)
        if not any(p is Ellipsis for p in index):
            index = (*index, Ellipsis)
        values = xp.reshape(values, tuple(out[index].shape))
    out[index] = values
    return out


def _numpy_scatter_add(values: Any, index: Any, shape: tuple[int, ...]) -> Any:
    return _scatter_add(np, values, index=index, shape=shape)


# Both are linear: each tangent rule is the op itself, applied to the tangent.
# fmt: off
getitem: Op = defop("getitem", lambda xp, x, *, index: gaps.index(x, index),
    "x[index]: basic (slices, ints, None, ...) or advanced (arrays, masks) indices.",
    dx=(lambda g, out, x, index: scatter_add(g, index=index, shape=tuple(x.shape)),
        "d x[index]/dx: the gradient scattered back to the indexed places (repeats add)"),
    tx=lambda t, out, x, index: getitem(t, index=index))

scatter_add: Op = defop("scatter_add", _scatter_add,
    "zeros(shape) with values added at index, repeated indices accumulating.",
    dvalues=(lambda g, out, values, index, shape: getitem(g, index=index),
        "d scatter_add(v)/dv: the gradient read back at the index"),
    tvalues=lambda t, out, values, index, shape: scatter_add(t, index=index, shape=shape))
# fmt: on


def _along(x: Any, indices: Any, axis: int) -> tuple[Any, ...]:
    """The advanced index of ``take_along_axis(x, indices, axis)``: ``indices`` on ``axis``
    and, on every other axis, the position along it (0 where ``x`` is broadcast)."""
    ndim = len(x.shape)
    axis %= ndim
    raw = indices._data if isinstance(indices, Tensor) else indices
    xp = namespace(raw)
    index: list[Any] = []
    for d in range(ndim):
        if d == axis:
            index.append(raw)
            continue
        n = max(x.shape[d], raw.shape[d])
        place = [1] * ndim
        place[d] = n
        positions = xp.arange(n) if x.shape[d] == n else xp.zeros(n, dtype=raw.dtype)
        index.append(xp.reshape(positions, tuple(place)))
    return tuple(index)


def _take_along_axis(xp: Any, x: Any, indices: Any, axis: int = -1) -> Any:
    if not x.shape:
        raise ValueError("the array is 0-d: there is no axis to take along")
    if len(indices.shape) != len(x.shape):
        raise ValueError(
            f"indices must have as many dimensions as the array ({len(x.shape)}), got "
            f"{len(indices.shape)}: for one index per row use indices[:, None]"
        )
    return gaps.take_along_axis(xp, x, indices, axis)


# fmt: off
take_along_axis: Op = defop("take_along_axis", _take_along_axis,
    "The entries of x at indices along axis, one per position of indices.",
    dx=(lambda g, out, x, indices, axis=-1: scatter_add(
            g, index=_along(x, indices, axis), shape=tuple(x.shape)),
        "d take_along_axis(x, i)/dx: the gradient added back at the places read"),
    tx=lambda t, out, x, indices, axis=-1: take_along_axis(t, indices, axis=axis))
# fmt: on
