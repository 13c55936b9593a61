"""Batching rules: how each NumPy function runs on a whole batch at once.

A rule receives the level being unwrapped and the function's own arguments; it calls the
same NumPy function on the batched values (``x.value``, batch on axis 0) with its axes moved
past the batch axis, and wraps the result. Every rule is the identity "f(batch)[i] ==
f(example i)", which ``tests/test_vmap.py`` checks for each of them against a loop.
Functions not listed here run once per example (``batched.loop``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .batched import (
    RULES,
    Batched,
    at_level,
    batch_size,
    elementwise,
    full,
    lift,
    loop,
    ndim_of,
    per_example_axes,
    wrap,
)

__all__: list[str] = []


def _rule(*funcs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(rule: Callable[..., Any]) -> Callable[..., Any]:
        for f in funcs:
            RULES[f] = rule
        return rule

    return register


_f: Any  # the loops below register one rule per NumPy function


def _size_of(level: int, *values: Any) -> int:
    return batch_size(level, values)


# -- what one example looks like ----------------------------------------------------------------
@_rule(np.shape)
def _shape(level: int, a: Any) -> tuple[int, ...]:
    return tuple(a.shape)


@_rule(np.ndim)
def _ndim_rule(level: int, a: Any) -> int:
    return int(a.ndim)


@_rule(np.size)
def _size_rule(level: int, a: Any, axis: Any = None) -> int:
    return int(a.size) if axis is None else int(a.shape[axis])


@_rule(np.result_type)
def _result_type(level: int, *values: Any) -> Any:
    return np.result_type(*(v.dtype if isinstance(v, Batched) else v for v in values))


@_rule(np.iscomplexobj)
def _iscomplexobj(level: int, x: Any) -> bool:
    return bool(np.dtype(x.dtype).kind == "c")


@_rule(np.isrealobj)
def _isrealobj(level: int, x: Any) -> bool:
    return not _iscomplexobj(level, x)


# -- elementwise functions that are not ufuncs --------------------------------------------------
@_rule(np.where)
def _where(level: int, condition: Any, *xy: Any) -> Any:
    if not xy:
        return loop(np.where, level, (condition,), {})  # the places: a different count each
    return elementwise(np.where, (condition, *xy))


@_rule(np.clip)
def _clip(level: int, a: Any, a_min: Any = None, a_max: Any = None, **kwargs: Any) -> Any:
    bounds = [b for b in (a_min, a_max) if b is not None]
    rank = max(ndim_of(b) for b in (a, *bounds))
    low = None if a_min is None else lift(a_min, level, rank)
    high = None if a_max is None else lift(a_max, level, rank)
    return Batched(np.clip(lift(a, level, rank), low, high, **kwargs), level)


@_rule(np.isclose)
def _isclose(level: int, a: Any, b: Any, *args: Any, **kwargs: Any) -> Any:
    rank = max(ndim_of(a), ndim_of(b))
    return Batched(np.isclose(lift(a, level, rank), lift(b, level, rank), *args, **kwargs), level)


def _values_rule(func: Any) -> None:
    def rule(level: int, x: Any, *args: Any, **kwargs: Any) -> Any:
        if not at_level(x, level):  # a batched decimals= or the like
            return loop(func, level, (x, *args), kwargs)
        return Batched(func(x.value, *args, **kwargs), level)

    RULES[func] = rule


for _f in (np.round, np.around, np.fix, np.nan_to_num, np.real, np.imag, np.i0, np.sinc, np.angle):
    _values_rule(_f)


# -- new arrays like one example -------------------------------------------------------------
def _like(func: Any) -> None:
    def rule(level: int, a: Any, *args: Any, shape: Any = None, **kwargs: Any) -> Any:
        if func is np.full_like and isinstance(args[0] if args else None, Batched):
            return loop(func, level, (a, *args), dict(kwargs, shape=shape))
        if shape is not None:
            shape = (a.batch_size, *((shape,) if isinstance(shape, int) else shape))
        return Batched(func(a.value, *args, shape=shape, **kwargs), level)

    RULES[func] = rule


for _f in (np.zeros_like, np.ones_like, np.empty_like, np.full_like):
    _like(_f)


@_rule(np.copy)
def _copy(level: int, a: Any, *args: Any, **kwargs: Any) -> Any:
    return a.copy()


@_rule(np.astype)
def _astype(level: int, x: Any, dtype: Any, **kwargs: Any) -> Any:
    return Batched(np.astype(x.value, dtype, **kwargs), level)


# -- reductions: the axis moves past the batch axis ----------------------------------------------
def _reduction(func: Any) -> None:
    def rule(level: int, a: Any, axis: Any = None, *args: Any, **kwargs: Any) -> Any:
        if not at_level(a, level):
            return loop(func, level, (a, axis, *args), kwargs)
        if "where" in kwargs:
            kwargs["where"] = lift(kwargs["where"], level, a.ndim)
        out = kwargs.pop("out", None)
        result = Batched(func(a.value, per_example_axes(axis, a.ndim), *args, **kwargs), level)
        if out is None:
            return result
        out[...] = result
        return out

    RULES[func] = rule


for _f in (
    np.sum, np.mean, np.prod, np.max, np.min, np.amax, np.amin, np.any, np.all, np.std,
    np.var, np.nansum, np.nanmean, np.nanprod, np.nanmax, np.nanmin, np.nanstd, np.nanvar,
    np.ptp, np.count_nonzero, np.median, np.nanmedian,
):  # fmt: skip
    _reduction(_f)


def _flattening(func: Any, default: Any = None) -> None:
    """Functions whose ``axis=None`` means "of the flattened example" (argmax, cumsum, sort
    with None, ...)."""

    def rule(level: int, a: Any, *args: Any, **kwargs: Any) -> Any:
        if not at_level(a, level):
            return loop(func, level, (a, *args), kwargs)
        if args:
            axis, args = args[0], args[1:]
        else:
            axis = kwargs.pop("axis", default)
        if axis is not None:
            return wrap(func(a.value, *args, axis=per_example_axes(axis, a.ndim), **kwargs), level)
        flat = np.reshape(a.value, (a.batch_size, a.size))
        out = func(flat, *args, axis=1, **kwargs)
        if kwargs.get("keepdims"):  # one size-1 axis for each of the example's
            out = np.reshape(out, (a.batch_size,) + (1,) * a.ndim)
        return wrap(out, level)

    RULES[func] = rule


for _f in (np.argmax, np.argmin, np.nanargmax, np.nanargmin, np.cumsum, np.cumprod):
    _flattening(_f)
for _f in (np.sort, np.argsort):
    _flattening(_f, default=-1)


@_rule(np.flip)
def _flip(level: int, m: Any, axis: Any = None) -> Any:
    return Batched(np.flip(m.value, per_example_axes(axis, m.ndim)), level)


@_rule(np.roll)
def _roll(level: int, a: Any, shift: Any, axis: Any = None) -> Any:
    if axis is None:
        flat = np.roll(np.reshape(a.value, (a.batch_size, a.size)), shift, axis=1)
        return Batched(np.reshape(flat, a.value.shape), level)
    return Batched(np.roll(a.value, shift, per_example_axes(axis, a.ndim)), level)


@_rule(np.take_along_axis)
def _take_along_axis(level: int, arr: Any, indices: Any, axis: Any = -1) -> Any:
    size = _size_of(level, arr, indices)
    a, i = full(arr, level, size), full(indices, level, size)
    if axis is None:
        a, i, axis, ndim = np.reshape(a, (size, -1)), np.reshape(i, (size, -1)), 0, 1
    else:
        ndim = ndim_of(arr)
    return Batched(np.take_along_axis(a, i, axis=per_example_axes(axis, ndim)), level)


@_rule(np.take)
def _take(level: int, a: Any, indices: Any, axis: Any = None, **kwargs: Any) -> Any:
    if not at_level(a, level) or at_level(indices, level):
        return loop(np.take, level, (a, indices), dict(kwargs, axis=axis))
    if axis is None:
        return Batched(np.take(np.reshape(a.value, (a.batch_size, a.size)), indices, 1), level)
    return Batched(np.take(a.value, indices, per_example_axes(axis, a.ndim), **kwargs), level)


@_rule(np.diff)
def _diff(level: int, a: Any, n: int = 1, axis: int = -1, **kwargs: Any) -> Any:
    if not at_level(a, level) or any(isinstance(v, Batched) for v in kwargs.values()):
        return loop(np.diff, level, (a, n, axis), kwargs)
    return Batched(np.diff(a.value, n, per_example_axes(axis, a.ndim), **kwargs), level)


# -- shapes ------------------------------------------------------------------------------------
def _per_example_shape(shape: Any, size: int) -> tuple[int, ...]:
    """A reshape target with its -1 worked out for one example of ``size`` entries (the batch
    may be empty, where NumPy could not)."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if -1 in shape:
        known = math.prod(n for n in shape if n != -1)
        shape = tuple(size // known if n == -1 and known else (0 if n == -1 else n) for n in shape)
    return shape


@_rule(np.reshape)
def _reshape(level: int, a: Any, shape: Any = None, order: Any = "C", **kwargs: Any) -> Any:
    if shape is None:
        shape = kwargs.pop("newshape")
    target = _per_example_shape(shape, a.size)
    return Batched(np.reshape(a.value, (a.batch_size, *target), order=order, **kwargs), level)


@_rule(np.ravel)
def _ravel(level: int, a: Any, order: Any = "C") -> Any:
    return Batched(np.reshape(a.value, (a.batch_size, a.size), order=order), level)


@_rule(np.transpose)
def _transpose(level: int, a: Any, axes: Any = None) -> Any:
    if axes is None:
        axes = tuple(range(a.ndim))[::-1]
    return Batched(np.transpose(a.value, (0, *per_example_axes(tuple(axes), a.ndim))), level)


@_rule(np.swapaxes)
def _swapaxes(level: int, a: Any, axis1: int, axis2: int) -> Any:
    n = a.ndim
    return Batched(
        np.swapaxes(a.value, per_example_axes(axis1, n), per_example_axes(axis2, n)), level
    )


@_rule(np.moveaxis)
def _moveaxis(level: int, a: Any, source: Any, destination: Any) -> Any:
    n = a.ndim
    moved = np.moveaxis(a.value, per_example_axes(source, n), per_example_axes(destination, n))
    return Batched(moved, level)


@_rule(np.expand_dims)
def _expand_dims(level: int, a: Any, axis: Any) -> Any:
    count = len(axis) if isinstance(axis, (tuple, list)) else 1
    return Batched(np.expand_dims(a.value, per_example_axes(axis, a.ndim + count)), level)


@_rule(np.squeeze)
def _squeeze(level: int, a: Any, axis: Any = None) -> Any:
    if axis is None:
        axis = tuple(i for i, n in enumerate(a.shape) if n == 1)
    return Batched(np.squeeze(a.value, per_example_axes(axis, a.ndim)), level)


@_rule(np.broadcast_to)
def _broadcast_to(level: int, array: Any, shape: Any, **kwargs: Any) -> Any:
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    value = lift(array, level, len(shape))
    return Batched(np.broadcast_to(value, (array.batch_size, *shape), **kwargs), level)


@_rule(np.concatenate)
def _concatenate(level: int, arrays: Any, axis: Any = 0, **kwargs: Any) -> Any:
    size = _size_of(level, arrays)
    values = [full(a, level, size) for a in arrays]
    if axis is None:
        values, axis = [np.reshape(v, (size, -1)) for v in values], 0
    ndim = max(ndim_of(a) for a in arrays)
    return Batched(np.concatenate(values, per_example_axes(axis, ndim), **kwargs), level)


@_rule(np.stack)
def _stack(level: int, arrays: Any, axis: int = 0, **kwargs: Any) -> Any:
    size = _size_of(level, arrays)
    values = [full(a, level, size) for a in arrays]
    ndim = ndim_of(arrays[0]) + 1
    return Batched(np.stack(values, per_example_axes(axis, ndim), **kwargs), level)


@_rule(np.repeat)
def _repeat(level: int, a: Any, repeats: Any, axis: Any = None) -> Any:
    if not at_level(a, level) or isinstance(repeats, Batched):
        return loop(np.repeat, level, (a, repeats), {"axis": axis})
    if axis is None:
        return Batched(np.repeat(np.reshape(a.value, (a.batch_size, a.size)), repeats, 1), level)
    return Batched(np.repeat(a.value, repeats, per_example_axes(axis, a.ndim)), level)


@_rule(np.tile)
def _tile(level: int, a: Any, reps: Any) -> Any:
    reps = (reps,) if isinstance(reps, (int, np.integer)) else tuple(reps)
    rank = max(a.ndim, len(reps))
    reps = (1,) * (rank - len(reps)) + reps
    return Batched(np.tile(lift(a, level, rank), (1, *reps)), level)


@_rule(np.pad)
def _pad(level: int, array: Any, pad_width: Any, mode: Any = "constant", **kwargs: Any) -> Any:
    if not at_level(array, level) or any(isinstance(v, Batched) for v in kwargs.values()):
        return loop(np.pad, level, (array, pad_width, mode), kwargs)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.intp), (array.ndim, 2))
    widths = np.concatenate([np.zeros((1, 2), dtype=np.intp), widths])
    return Batched(np.pad(array.value, widths, mode, **kwargs), level)


@_rule(np.diagonal)
def _diagonal(level: int, a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    n = a.ndim
    axes = per_example_axes((axis1, axis2), n)
    return Batched(np.diagonal(a.value, offset, *axes), level)


@_rule(np.trace)
def _trace(
    level: int, a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1, **kwargs: Any
) -> Any:
    axes = per_example_axes((axis1, axis2), a.ndim)
    return Batched(np.trace(a.value, offset, *axes, **kwargs), level)


@_rule(np.rot90)
def _rot90(level: int, m: Any, k: int = 1, axes: Any = (0, 1)) -> Any:
    return Batched(np.rot90(m.value, k, per_example_axes(tuple(axes), m.ndim)), level)


def _matrices(func: Any) -> None:
    """Functions of the last two axes that already take stacks (tril, inv, eigh, ...)."""

    def rule(level: int, a: Any, *args: Any, **kwargs: Any) -> Any:
        if not at_level(a, level) or a.ndim < 2 or any(isinstance(v, Batched) for v in args):
            return loop(func, level, (a, *args), kwargs)
        return wrap(func(a.value, *args, **kwargs), level)

    RULES[func] = rule


for _f in (
    np.tril, np.triu, np.linalg.inv, np.linalg.det, np.linalg.slogdet, np.linalg.cholesky,
    np.linalg.eigh, np.linalg.eigvalsh, np.linalg.qr, np.linalg.svd, np.linalg.matrix_power,
    np.linalg.eig, np.linalg.eigvals, np.linalg.pinv,
):  # fmt: skip
    _matrices(_f)


@_rule(np.linalg.solve)
def _solve(level: int, a: Any, b: Any) -> Any:
    """``solve(a, b)`` per example: ``b`` a vector (1-d) or a stack of matrices."""
    if ndim_of(a) < 2:
        return loop(np.linalg.solve, level, (a, b), {})
    vector = ndim_of(b) == 1
    if vector:
        b = np.expand_dims(b, -1)
    rank = max(ndim_of(a), ndim_of(b))
    out = np.linalg.solve(lift(a, level, rank), lift(b, level, rank))
    return Batched(np.squeeze(out, -1) if vector else out, level)


def _cumulative_rule(func: Any) -> None:
    def rule(level: int, x: Any, /, *, axis: Any = None, **kwargs: Any) -> Any:
        if not at_level(x, level):
            return loop(func, level, (x,), dict(kwargs, axis=axis))
        if axis is None:  # allowed for one axis only, as NumPy says
            if x.ndim != 1:
                return func(np.ones((2,) * x.ndim), axis=None)  # NumPy's own error
            axis = 0
        return Batched(func(x.value, axis=per_example_axes(axis, x.ndim), **kwargs), level)

    RULES[func] = rule


for _f in (np.cumulative_sum, np.cumulative_prod):
    _cumulative_rule(_f)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@_rule(np.einsum)
def _einsum(level: int, subscripts: Any, *operands: Any, **kwargs: Any) -> Any:
    """einsum with one more letter, for the batch, on the batched operands and the result."""
    if not isinstance(subscripts, str) or "out" in kwargs:
        return loop(np.einsum, level, (subscripts, *operands), kwargs)
    spec = subscripts.replace(" ", "")
    inputs, _, output = spec.partition("->")
    terms = inputs.split(",")
    if "->" not in spec:  # NumPy's implicit output: the letters used once, in order
        letters = [c for c in inputs if c.isalpha()]
        output = ("..." if "..." in inputs else "") + "".join(
            sorted(c for c in set(letters) if letters.count(c) == 1)
        )
    b = next(c for c in _LETTERS if c not in spec)
    terms = [b + t if at_level(op, level) else t for t, op in zip(terms, operands)]
    values = [op.value if at_level(op, level) else op for op in operands]
    out = np.einsum(f"{','.join(terms)}->{b}{output}", *values, **kwargs)
    return Batched(out, level)


def _partition_rule(func: Any) -> None:
    def rule(level: int, a: Any, kth: Any, axis: Any = -1, **kwargs: Any) -> Any:
        if not at_level(a, level) or isinstance(kth, Batched):
            return loop(func, level, (a, kth), dict(kwargs, axis=axis))
        if axis is None:
            flat = np.reshape(a.value, (a.batch_size, a.size))
            return Batched(func(flat, kth, axis=1, **kwargs), level)
        return Batched(func(a.value, kth, axis=per_example_axes(axis, a.ndim), **kwargs), level)

    RULES[func] = rule


for _f in (np.partition, np.argpartition):
    _partition_rule(_f)


@_rule(np.searchsorted)
def _searchsorted(level: int, a: Any, v: Any, *args: Any, **kwargs: Any) -> Any:
    """Sorted knots shared by the examples, a batch of values to place among them."""
    if at_level(a, level) or any(isinstance(x, Batched) for x in (*args, *kwargs.values())):
        return loop(np.searchsorted, level, (a, v, *args), kwargs)
    return Batched(np.searchsorted(a, v.value, *args, **kwargs), level)


@_rule(np.matrix_transpose)
def _matrix_transpose(level: int, x: Any) -> Any:
    return (
        Batched(np.swapaxes(x.value, -1, -2), level)
        if x.ndim >= 2
        else loop(np.matrix_transpose, level, (x,), {})
    )


@_rule(np.linalg.norm)
def _norm(level: int, x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    if not at_level(x, level) or x.ndim == 0:
        return loop(np.linalg.norm, level, (x, ord, axis, keepdims), {})
    if axis is None and ord is None:  # the 2-norm of the flattened example
        flat = np.reshape(x.value, (x.batch_size, x.size))
        out = np.linalg.norm(flat, axis=1)
        if keepdims:
            out = np.reshape(out, (x.batch_size,) + (1,) * x.ndim)
        return Batched(out, level)
    if axis is None:
        axis = tuple(range(x.ndim))
    axes = per_example_axes(axis, x.ndim)
    return Batched(np.linalg.norm(x.value, ord, axes, keepdims), level)


@_rule(np.lib.stride_tricks.sliding_window_view)
def _sliding_window_view(
    level: int, x: Any, window_shape: Any, axis: Any = None, **kwargs: Any
) -> Any:
    if not at_level(x, level):
        return loop(
            np.lib.stride_tricks.sliding_window_view, level, (x, window_shape, axis), kwargs
        )
    if axis is None:
        axis = tuple(range(x.ndim))
    view = np.lib.stride_tricks.sliding_window_view(
        x.value, window_shape, axis=per_example_axes(axis, x.ndim), **kwargs
    )
    return Batched(view, level)
