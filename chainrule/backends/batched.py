"""A batch of arrays that looks like one of them: the array type inside ``cr.vmap``.

``Batched(value, level)`` holds ``value`` with the batch on axis 0 and answers as one example:
``shape``, ``ndim``, ``x[i]``, ``x.sum(axis=0)``, ``np.matmul``, ``np.linalg.solve`` all
mean what they mean for one example, and run once over the whole batch. NumPy hands every
ufunc and every NumPy function called on a ``Batched`` to it (``__array_ufunc__`` and
``__array_function__``), and a batching rule says how: elementwise operations line the
examples up and broadcast, an ``axis`` moves past the batch axis, stacks of matrices already
are stacks. Functions without a rule run once per example and are stacked
(:data:`FALLBACKS` counts them).

Because the batching happens at the level of the array namespace, below the Tensors, every
op's forward, its VJP and JVP rules and the fast kernels batch the same way: the engine
running a backward pass over Batched values computes per-example gradients.

Nested ``vmap`` nests ``Batched``: the value of a level may itself be a ``Batched`` of an
outer level. Levels are numbered in the order they open, so the innermost (largest) level is
unwrapped first and the outer ones are handled when its rule calls NumPy again.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

__all__ = [
    "Batched",
    "FALLBACKS",
    "RULES",
    "level_of",
    "levels",
    "sum_level",
    "promote",
    "index",
    "full",
    "lift",
    "at_level",
    "batch_size",
    "per_example_axes",
    "ndim_of",
    "wrap",
    "loop",
    "elementwise",
    "concrete_error",
]

# How often a NumPy function without a batching rule ran once per example, by name.
FALLBACKS: collections.Counter[str] = collections.Counter()

RULES: dict[Any, Callable[..., Any]] = {}


def concrete_error(what: str) -> TypeError:
    return TypeError(
        f"cr.vmap: {what} needs the value of one example, and inside vmap a value stands for "
        "a whole batch; write it with array operations (cr.where instead of if, a mask "
        "instead of a data-dependent shape), or call the function outside vmap"
    )


class Batched(NDArrayOperatorsMixin):
    """A batch of arrays (batch on axis 0 of ``value``) that answers as one example."""

    __slots__ = ("value", "level")
    __array_priority__ = 20.0  # below Tensor's: tensor + batched is the Tensor's operation

    def __init__(self, value: Any, level: int) -> None:
        self.value = value
        self.level = level

    # -- what one example looks like ---------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape[1:])

    @property
    def ndim(self) -> int:
        return len(self.value.shape) - 1

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def dtype(self) -> Any:
        return self.value.dtype

    @property
    def batch_size(self) -> int:
        return int(self.value.shape[0])

    @property
    def T(self) -> Any:  # noqa: N802 (NumPy's name)
        return np.transpose(self)

    @property
    def mT(self) -> Any:  # noqa: N802
        return np.swapaxes(self, -1, -2)

    def __repr__(self) -> str:
        return (
            f"<a batch of {self.batch_size} arrays of shape {self.shape} {self.dtype} "
            f"(vmap level {self.level})>"
        )

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of an unsized object (each example is 0-d)")
        return self.shape[0]

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self)))

    # -- no concrete values ------------------------------------------------------------------
    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        raise concrete_error("converting to a NumPy array (np.asarray, np.array, float)")

    def __bool__(self) -> bool:
        raise concrete_error("a truth value (if, while, and, or)")

    def __float__(self) -> float:
        raise concrete_error("float()")

    def __int__(self) -> int:
        raise concrete_error("int()")

    def __index__(self) -> int:
        raise concrete_error("using a value as an index or a size")

    def item(self, *args: Any) -> Any:
        raise concrete_error(".item()")

    def tolist(self) -> Any:
        raise concrete_error(".tolist()")

    # -- the ndarray methods ops use, as their NumPy functions -------------------------------
    def reshape(self, *shape: Any, order: Any = "C") -> Any:
        return np.reshape(self, shape[0] if len(shape) == 1 else shape, order=order)

    def transpose(self, *axes: Any) -> Any:
        return np.transpose(self, axes[0] if len(axes) == 1 else (axes or None))

    def swapaxes(self, a: int, b: int) -> Any:
        return np.swapaxes(self, a, b)

    def squeeze(self, axis: Any = None) -> Any:
        return np.squeeze(self, axis=axis)

    def ravel(self, order: Any = "C") -> Any:
        return np.ravel(self, order=order)

    def flatten(self, order: Any = "C") -> Any:
        return np.ravel(self, order=order).copy()

    def astype(self, dtype: Any, copy: bool = True, **kwargs: Any) -> Batched:
        return Batched(self.value.astype(dtype, copy=copy, **kwargs), self.level)

    def copy(self, order: Any = "C") -> Batched:
        return Batched(self.value.copy(), self.level)

    def conj(self) -> Any:
        return np.conjugate(self)

    def __copy__(self) -> Batched:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> Batched:
        return self.copy()

    def sum(self, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False):  # type: ignore[no-untyped-def]
        return np.sum(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def mean(self, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False):  # type: ignore[no-untyped-def]
        return np.mean(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def prod(self, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False):  # type: ignore[no-untyped-def]
        return np.prod(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def max(self, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        return np.max(self, axis=axis, out=out, keepdims=keepdims)

    def min(self, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        return np.min(self, axis=axis, out=out, keepdims=keepdims)

    def any(self, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        return np.any(self, axis=axis, out=out, keepdims=keepdims)

    def all(self, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        return np.all(self, axis=axis, out=out, keepdims=keepdims)

    def argmax(self, axis: Any = None) -> Any:
        return np.argmax(self, axis=axis)

    def argmin(self, axis: Any = None) -> Any:
        return np.argmin(self, axis=axis)

    def argsort(self, axis: int = -1, kind: Any = None) -> Any:
        return np.argsort(self, axis=axis, kind=kind)

    def cumsum(self, axis: Any = None, dtype: Any = None) -> Any:
        return np.cumsum(self, axis=axis, dtype=dtype)

    def cumprod(self, axis: Any = None, dtype: Any = None) -> Any:
        return np.cumprod(self, axis=axis, dtype=dtype)

    def clip(self, a_min: Any = None, a_max: Any = None) -> Any:
        return np.clip(self, a_min, a_max)

    def repeat(self, repeats: Any, axis: Any = None) -> Any:
        return np.repeat(self, repeats, axis=axis)

    def nonzero(self) -> Any:
        return np.nonzero(self)

    def dot(self, other: Any) -> Any:
        return np.dot(self, other)

    # -- indexing ----------------------------------------------------------------------------
    def __getitem__(self, index: Any) -> Any:
        outer = _top(index)
        if outer > self.level:  # the index is batched at an inner level: x is the same for all
            return promote(self, outer, batch_size(outer, index))[index]
        raw, order, _ = _raw_index(self, index)
        value = self.value
        inner = _top(raw)  # indices batched at a level between the value's and this one
        if inner > level_of(value):
            value = promote(value, inner, batch_size(inner, raw))
        out = value[raw]
        if order is not None:
            out = np.transpose(out, np.argsort(order))
        return Batched(out, self.level)

    def __setitem__(self, index: Any, values: Any) -> None:
        raw, order, rank = _raw_index(self, index)
        self.value[raw] = _laid_out(values, self.level, order, rank)

    # -- NumPy's protocols -------------------------------------------------------------------
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if not all(_known(x) for x in (*inputs, *kwargs.get("out", ()))):
            return NotImplemented  # a Tensor among them: its own operator records the op
        level = _top((inputs, kwargs))
        if method == "__call__":
            if ufunc is np.matmul:
                return _matmul(level, *inputs, **kwargs)
            if ufunc.signature is not None:
                return loop(ufunc, level, inputs, kwargs)
            return _elementwise(ufunc, level, inputs, kwargs)
        if method in ("reduce", "accumulate") and at_level(inputs[0], level):
            return _ufunc_along(ufunc, method, level, inputs[0], **kwargs)
        if method == "at" and at_level(inputs[0], level):
            target, index, *values = inputs
            raw, order, rank = _raw_index(target, index)
            laid = [_laid_out(v, level, order, rank) for v in values]
            ufunc.at(target.value, raw, *laid)
            return None
        if method == "outer":
            return _outer(ufunc, level, *inputs, **kwargs)
        if method == "at":
            raise concrete_error(f"np.{ufunc.__name__}.at writing a batch into one array")
        return loop(getattr(ufunc, method), level, inputs, kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        if not all(issubclass(t, (Batched, np.ndarray)) for t in types):
            return NotImplemented
        level = _top((args, kwargs))
        rule = RULES.get(func)
        if rule is not None:
            return rule(level, *args, **kwargs)
        return loop(func, level, args, kwargs)


# -- levels ------------------------------------------------------------------------------------
def _known(x: Any) -> bool:
    return x is None or isinstance(
        x, (Batched, np.ndarray, np.generic, int, float, complex, bool, list, tuple)
    )


def _top(values: Any) -> int:
    """The innermost (largest) level among the Batched in ``values`` (lists, tuples, dicts)."""
    if type(values) is Batched:
        return values.level
    if isinstance(values, (list, tuple)):
        return max((_top(v) for v in values), default=-1)
    if isinstance(values, dict):
        return max((_top(v) for v in values.values()), default=-1)
    return -1


def at_level(x: Any, level: int) -> bool:
    """Whether ``x`` is batched at ``level`` (the level being unwrapped now)."""
    return type(x) is Batched and x.level == level


def level_of(x: Any) -> int:
    """The innermost vmap level of ``x`` (-1 for a plain array)."""
    return x.level if type(x) is Batched else -1


def levels(x: Any) -> dict[int, int]:
    """Every vmap level ``x`` is batched at, innermost first, with its batch size."""
    out = {}
    while type(x) is Batched:
        out[x.level] = x.batch_size
        x = x.value
    return out


def sum_level(x: Any, level: int) -> Any:
    """``x`` summed over the batch of ``level`` (which may be nested inside others)."""
    if type(x) is not Batched or x.level < level:
        return x
    if x.level == level:
        return np.sum(x.value, axis=0)
    return Batched(sum_level(x.value, level), x.level)


def index(x: Any, where: Any) -> Any:
    """``x[where]``, where ``x`` may be one array and ``where`` hold a batch of indices: then
    each example indexes its copy of ``x``."""
    outer = _top(where)
    if outer > level_of(x):
        x = promote(x, outer, batch_size(outer, where))
    return x[where]


def promote(x: Any, level: int, size: int) -> Batched:
    """``x`` (unbatched at ``level``) as a batch of ``size`` copies of it (a broadcast view)."""
    return Batched(np.broadcast_to(np.expand_dims(x, 0), (size, *np.shape(x))), level)


def batch_size(level: int, values: Any) -> int:
    if type(values) is Batched:
        return values.batch_size if values.level == level else -1
    if isinstance(values, (list, tuple)):
        return max((batch_size(level, v) for v in values), default=-1)
    if isinstance(values, dict):
        return batch_size(level, list(values.values()))
    return -1


def ndim_of(x: Any) -> int:
    return x.ndim if isinstance(x, (Batched, np.ndarray, np.generic)) else np.ndim(x)


def lift(x: Any, level: int, rank: int) -> Any:
    """The value of ``x`` with its examples made ``rank``-d (ones in front), batch first; an
    unbatched ``x`` as it is (it broadcasts against the batch from the right)."""
    if not at_level(x, level):
        return x
    missing = rank - x.ndim
    return np.expand_dims(x.value, tuple(range(1, 1 + missing))) if missing > 0 else x.value


def full(x: Any, level: int, size: int) -> Any:
    """The value of ``x`` with a batch axis in front, repeating an unbatched ``x``."""
    if at_level(x, level):
        return x.value
    return promote(x, level, size).value


def _axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < max(ndim, 1):
        raise np.exceptions.AxisError(axis, ndim)
    return axis % ndim + 1 if ndim else 1


def per_example_axes(axis: Any, ndim: int) -> Any:
    """A per-example ``axis`` (None, int or tuple) as axes of the batched value."""
    if axis is None:
        return tuple(range(1, ndim + 1))
    if isinstance(axis, (tuple, list)):
        return tuple(_axis(a, ndim) for a in axis)
    return _axis(axis, ndim)


def wrap(result: Any, level: int) -> Any:
    if isinstance(result, tuple):
        parts = [wrap(r, level) for r in result]
        return type(result)(*parts) if hasattr(result, "_fields") else tuple(parts)
    return Batched(result, level)


# -- ufuncs ------------------------------------------------------------------------------------
def _elementwise(ufunc: Any, level: int, inputs: Any, kwargs: dict[str, Any]) -> Any:
    where = kwargs.get("where", True)
    rank = max(ndim_of(x) for x in (*inputs, where))
    lifted = [lift(x, level, rank) for x in inputs]
    out = kwargs.get("out")
    if out is not None or "where" in kwargs:
        kwargs = dict(kwargs)
        if "where" in kwargs:
            kwargs["where"] = lift(where, level, rank)
        if out is not None:
            if not all(at_level(o, level) for o in out):
                raise concrete_error(f"np.{ufunc.__name__}(..., out=an unbatched array)")
            kwargs["out"] = tuple(lift(o, level, rank) for o in out)
            ufunc(*lifted, **kwargs)
            return out[0] if len(out) == 1 else out
    return wrap(ufunc(*lifted, **kwargs), level)


def elementwise(func: Any, args: Any) -> Any:
    """``func(*args)``, elementwise with broadcasting, for a function that is not a ufunc (a
    SciPy function around ufuncs): each example's arguments lined up, then one call."""
    level = _top(args)
    rank = max(ndim_of(a) for a in args)
    return wrap(func(*(lift(a, level, rank) for a in args)), level)


def _ufunc_along(ufunc: Any, method: str, level: int, x: Any, **kwargs: Any) -> Any:
    axis = kwargs.pop("axis", 0)
    if method == "accumulate" and axis is None:
        raise TypeError(f"np.{ufunc.__name__}.accumulate needs an axis")
    kwargs["axis"] = per_example_axes(axis, x.ndim)
    if "where" in kwargs:
        kwargs["where"] = lift(kwargs["where"], level, x.ndim)
    out = kwargs.pop("out", None)
    result = getattr(ufunc, method)(x.value, **kwargs)
    return _into(out, Batched(result, level))


def _into(out: Any, result: Batched) -> Any:
    """``result``, written into ``out`` where the caller gave one."""
    if out is None:
        return result
    target = out[0] if isinstance(out, tuple) else out
    target[...] = result
    return target


def _outer(ufunc: Any, level: int, a: Any, b: Any, **kwargs: Any) -> Any:
    na, nb = ndim_of(a), ndim_of(b)
    if at_level(a, level):
        av = np.expand_dims(a.value, tuple(range(na + 1, na + 1 + nb)))
    else:
        av = np.expand_dims(np.asarray(a), tuple(range(na, na + nb)))
        av = np.expand_dims(av, 0)
    if at_level(b, level):
        bv = np.expand_dims(b.value, tuple(range(1, 1 + na)))
    else:
        bv = b
    return Batched(ufunc(av, bv, **kwargs), level)


def _matmul(level: int, a: Any, b: Any, **kwargs: Any) -> Any:
    """``a @ b`` for each example: NumPy's rules for 1-d operands, stacks broadcast."""
    if kwargs:
        return loop(np.matmul, level, (a, b), kwargs)
    if at_level(a, level) and not at_level(b, level) and ndim_of(b) == 2 and 1 <= a.ndim <= 2:
        # a batch of vectors (or of matrices) times one matrix, the layer's case: one product
        rows = a.value.reshape(-1, a.shape[-1])
        return Batched((rows @ b).reshape(*a.value.shape[:-1], b.shape[-1]), level)
    if at_level(b, level) and not at_level(a, level) and ndim_of(a) == 2 and b.ndim == 1:
        return Batched(np.matmul(b.value, np.swapaxes(a, -1, -2)), level)
    return _matmul_general(level, a, b)


def _matmul_general(level: int, a: Any, b: Any) -> Any:
    a1, b1 = ndim_of(a) == 1, ndim_of(b) == 1
    if a1:
        a = np.expand_dims(a, 0)
    if b1:
        b = np.expand_dims(b, -1)
    rank = max(ndim_of(a), ndim_of(b))
    a, b = lift(a, level, rank), lift(b, level, rank)
    if np.shape(a)[-1] == 1:
        # outer products (one example's weight gradient): NumPy's stacked matmul of rank-1
        # matrices runs 4x slower than einsum's outer product (float32, 32 x 256 x 784)
        out = np.einsum("...i,...j->...ij", a[..., 0], b[..., 0, :], order="C")
    else:
        out = np.matmul(a, b)
    if a1:
        out = np.squeeze(out, -2)
    if b1:
        out = np.squeeze(out, -1)
    return Batched(out, level)


# -- indexing ----------------------------------------------------------------------------------
def _is_array_index(p: Any) -> bool:
    if isinstance(p, (Batched, list)):
        return True
    return isinstance(p, np.ndarray) and p.ndim > 0


def _raw_index(x: Batched, index: Any) -> tuple[Any, Any, int]:
    """The index into ``x.value`` that does ``index`` to every example; the order of the
    result's axes relative to (batch, one example's result) where NumPy's rules for advanced
    indices move them (None: already in that order); the rank of one example's result."""
    parts = index if isinstance(index, tuple) else (index,)
    parts = tuple(np.asarray(p) if isinstance(p, list) else p for p in parts)
    if any(at_level(p, x.level) and p.dtype == bool for p in parts):
        raise concrete_error("a boolean mask that differs between examples")
    rank = _result_rank(parts, x.ndim)
    if not any(_is_array_index(p) for p in parts):
        return (slice(None), *parts), None, rank  # basic indexing: a view, batch stays first
    advanced = [
        i
        for i, p in enumerate(parts)
        if _is_array_index(p) or isinstance(p, (int, np.integer)) or _zero_d(p)
    ]
    adjacent = advanced == list(range(advanced[0], advanced[-1] + 1))
    adv_rank = len(np.broadcast_shapes(*(_index_shape(parts[i]) for i in advanced)))
    before = _dims_before(parts, advanced[0], x.ndim) if adjacent else 0
    rest = rank - adv_rank
    if any(at_level(p, x.level) for p in parts):
        size = x.batch_size
        rows = np.arange(size).reshape((size,) + (1,) * adv_rank)
        raw = (rows, *(lift(p, x.level, adv_rank) for p in parts))
        # the result is (batch, advanced..., rest...) whatever the per-example order
        order = [0] + [1 + before + k for k in range(adv_rank)]
        order += [1 + j if j < before else 1 + adv_rank + j for j in range(rest)]
        return raw, order, rank
    raw = (slice(None), *parts)
    if adjacent:
        return raw, None, rank
    # NumPy puts separated advanced indices' axes first, ahead of the batch axis
    order = [1 + k for k in range(adv_rank)] + [0] + [1 + adv_rank + j for j in range(rest)]
    return raw, order, rank


def _zero_d(p: Any) -> bool:
    return isinstance(p, np.ndarray) and p.ndim == 0 and p.dtype != bool


def _index_shape(p: Any) -> tuple[int, ...]:
    if isinstance(p, (Batched, np.ndarray)) and p.dtype == bool:
        return (int(np.count_nonzero(p)),)
    return tuple(np.shape(p)) if not isinstance(p, Batched) else p.shape


def _consumed(p: Any) -> int:
    if p is None or p is Ellipsis:
        return 0
    if isinstance(p, (Batched, np.ndarray)) and p.dtype == bool:
        return max(p.ndim, 1)
    return 1


def _expanded(parts: tuple[Any, ...], ndim: int) -> list[Any]:
    """``parts`` with the Ellipsis spelled out as slices (and one added at the end)."""
    if not any(p is Ellipsis for p in parts):
        parts = (*parts, Ellipsis)
    fill = ndim - sum(_consumed(p) for p in parts)
    out: list[Any] = []
    for p in parts:
        out.extend([slice(None)] * fill if p is Ellipsis else [p])
    return out


def _dims_before(parts: tuple[Any, ...], first: int, ndim: int) -> int:
    """How many result axes the index parts before the ``first`` advanced one make."""
    n = 0
    for p in parts[:first]:
        if p is Ellipsis:
            n += ndim - sum(_consumed(q) for q in parts)
        elif p is None or isinstance(p, slice):
            n += 1
    return n


def _result_rank(parts: tuple[Any, ...], ndim: int) -> int:
    """The rank of one example's result: slices and None keep or add an axis, the advanced
    indices together add their broadcast rank (counted by the caller)."""
    n = 0
    advanced_rank = len(
        np.broadcast_shapes(*(_index_shape(p) for p in parts if _is_array_index(p)))
    )
    for p in _expanded(parts, ndim):
        if p is None or isinstance(p, slice):
            n += 1
    return n + advanced_rank


def _laid_out(values: Any, level: int, order: Any, rank: int) -> Any:
    """``values`` for one example's ``target[index]`` (of ``rank`` axes), laid out as the
    raw index's places want them: batch first, or in ``order``."""
    if at_level(values, level):
        v = lift(values, level, rank)
    else:
        missing = rank + 1 - ndim_of(values)
        v = np.expand_dims(values, tuple(range(missing))) if missing > 0 else values
    return v if order is None else np.transpose(v, order)


# -- once per example ------------------------------------------------------------------------
def _pick(x: Any, level: int, i: int) -> Any:
    if at_level(x, level):
        return x.value[i]
    if isinstance(x, list):
        return [_pick(v, level, i) for v in x]
    if isinstance(x, tuple):
        return tuple(_pick(v, level, i) for v in x)
    if isinstance(x, dict):
        return {k: _pick(v, level, i) for k, v in x.items()}
    return x


def loop(func: Any, level: int, args: Any, kwargs: dict[str, Any]) -> Any:
    """``func`` once per example, the results stacked: for functions without a rule."""
    size = batch_size(level, (args, kwargs))
    name = getattr(func, "__name__", repr(func))
    if size == 0:
        raise ValueError(f"cr.vmap: {name} has no batching rule and the batch is empty")
    FALLBACKS[name] += 1
    results = [func(*_pick(args, level, i), **_pick(kwargs, level, i)) for i in range(size)]
    return _stack(results, level, name)


def _stack(results: list[Any], level: int, name: str) -> Any:
    first = results[0]
    if isinstance(first, (tuple, list)):
        if len({len(r) for r in results}) > 1:
            raise concrete_error(f"{name}, whose result has a different length for each example")
        parts = [_stack([r[k] for r in results], level, name) for k in range(len(first))]
        return type(first)(*parts) if hasattr(first, "_fields") else type(first)(parts)
    shapes = {np.shape(r) for r in results}
    if len(shapes) > 1:
        raise concrete_error(f"{name}, whose result has a different shape for each example")
    return Batched(np.stack(results), level)
