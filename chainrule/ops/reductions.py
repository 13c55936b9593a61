"""Reductions: sum, mean, var, std, max, min (and argmax/argmin, not differentiable).

A reduction's VJP broadcasts the incoming gradient back over the reduced axes; ``_expand``
does that once for all of them.
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from ..backends import namespace
from ..engine.backward import xp_sum
from ..engine.declare import defop, public
from ..engine.op import Op
from ..engine.tensor import Tensor
from .elementwise import equal, sqrt
from .shape import astype, broadcast_to, reshape

__all__ = [
    "sum",
    "mean",
    "var",
    "std",
    "max",
    "min",
    "argmax",
    "argmin",
    "all",
    "any",
    "axes_of",
    "expand",
    "kept",
]

F = "reduction"


def axes_of(axis: Any, ndim: int) -> tuple[int, ...]:
    """Normalize ``axis`` (None, int or tuple, negative allowed) to a sorted tuple."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    out = []
    for a in axis:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for an array of {ndim} dimensions")
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(out))


def kept(g: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    """A reduced gradient ``g`` with the reduced axes of ``x`` back as size 1, ready to
    broadcast against ``x``."""
    if keepdims or not g.shape:  # a scalar broadcasts as it is
        return g
    shape = tuple(x.shape)
    axes = axes_of(axis, len(shape))
    return reshape(g, shape=tuple(1 if i in axes else n for i, n in enumerate(shape)))


def expand(g: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    """Broadcast a reduced gradient ``g`` back to the shape of ``x``."""
    g = kept(g, x, axis, keepdims)
    if isinstance(g, Tensor):
        return broadcast_to(g, shape=tuple(x.shape))
    # NOTE: a plain backward pass fills a new array: 0.3 us, where np.broadcast_to costs
    # 2.4 us (a Python-level nditer), and one that the engine can keep as .grad uncopied.
    out = namespace(g).empty(tuple(x.shape), dtype=g.dtype)
    out[...] = g
    return out


def _count(x: Any, axis: Any) -> int:
    if axis is None and type(x) is np.ndarray:
        return x.size
    n = 1
    for a in axes_of(axis, len(x.shape)):
        n *= x.shape[a]
    return n


_add_reduce: Any = np.add.reduce


def _xp_sum(xp: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return xp_sum(xp, x, _as_axis(axis), keepdims)


def _xp_mean(xp: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    if type(x) is np.ndarray:
        axis = _as_axis(axis)
        if x.dtype in _SUM_THEN_DIVIDE and x.size:
            # NOTE: what np.mean computes for these dtypes (a sum, then a division by the
            # count), bit for bit, without its Python-level dispatch: 1 us instead of 3-4.
            mean = _add_reduce(x, axis=axis, keepdims=keepdims) / _count(x, axis)
            return mean if mean.dtype == x.dtype else x.dtype.type(mean)
        return x.mean(axis=axis, keepdims=keepdims)
    return xp.mean(x, axis=_as_axis(axis), keepdims=keepdims)


_SUM_THEN_DIVIDE = (np.dtype(np.float32), np.dtype(np.float64))


def _as_axis(axis: Any) -> Any:
    return tuple(axis) if isinstance(axis, list) else axis


_sum: Op = defop(
    "sum",
    _xp_sum,
    vjp=[lambda g, out, x, axis=None, keepdims=False: expand(g, x, axis, keepdims)],
    jvp=[lambda t, out, x, axis=None, keepdims=False: _sum(t, axis=axis, keepdims=keepdims)],
    formula="d sum(x)/dx_i = 1",
    numpy=("sum",),
    family=F,
    description="Sum over the given axes (all when None).",
)


@public(_sum)
def sum(x: Any, axis: Any = None, keepdims: bool = False, **numpy_kwargs: Any) -> Any:
    """Sum over ``axis`` (all axes when None), keeping reduced axes as size 1 if asked."""
    _no_numpy_extras("sum", numpy_kwargs)
    return _sum(x, axis=_as_axis(axis), keepdims=keepdims)


def _no_numpy_extras(name: str, kwargs: dict[str, Any]) -> None:
    for key, value in kwargs.items():
        if value is not None and not (key == "initial" and value is None):
            raise TypeError(f"{name}: argument {key}={value!r} is not supported on Tensors")


def scalar(g: Any) -> Any:
    """A 0-d NumPy array as a NumPy scalar, anything else as it is. NOTE: arithmetic on the
    scalar skips the ufunc machinery (a division: 0.07 us, not 0.6) and gives the same bits:
    for the 0-d gradient of a loss divided by a count."""
    return g[()] if type(g) is np.ndarray and not g.shape else g


def _mean_vjp(g: Any, out: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return expand(scalar(g) / _count(x, axis), x, axis, keepdims)  # d mean(x)/dx_i = 1/n


_mean: Op = defop(
    "mean",
    _xp_mean,
    vjp=[_mean_vjp],
    jvp=[lambda t, out, x, axis=None, keepdims=False: _mean(t, axis=axis, keepdims=keepdims)],
    formula="d mean(x)/dx_i = 1/n",
    numpy=("mean",),
    family=F,
    description="Arithmetic mean over the given axes.",
)


@public(_mean)
def mean(x: Any, axis: Any = None, keepdims: bool = False, **numpy_kwargs: Any) -> Any:
    """Mean over ``axis`` (all axes when None)."""
    _no_numpy_extras("mean", numpy_kwargs)
    return _mean(x, axis=_as_axis(axis), keepdims=keepdims)


def _var_forward(xp: Any, x: Any, axis: Any = None, keepdims: bool = False, ddof: Any = 0) -> Any:
    return xp.var(x, axis=_as_axis(axis), keepdims=keepdims, correction=ddof)


def _centered(x: Any, axis: Any) -> Any:
    return x - _mean(x, axis=axis, keepdims=True)


def _var_vjp(
    g: Any, out: Any, x: Any, axis: Any = None, keepdims: bool = False, ddof: Any = 0
) -> Any:
    # d var(x)/dx_i = 2 (x_i - mean(x)) / (n - ddof)
    return expand(g, x, axis, keepdims) * _centered(x, axis) * (2.0 / (_count(x, axis) - ddof))


def _var_jvp(
    t: Any, out: Any, x: Any, axis: Any = None, keepdims: bool = False, ddof: Any = 0
) -> Any:
    scale = 2.0 / (_count(x, axis) - ddof)
    return _sum(t * _centered(x, axis), axis=axis, keepdims=keepdims) * scale


_var: Op = defop(
    "var",
    _var_forward,
    vjp=[_var_vjp],
    jvp=[_var_jvp],
    formula="d var(x)/dx_i = 2 (x_i - mean(x)) / (n - ddof)",
    numpy=("var",),
    family=F,
    description="Variance over the given axes (ddof=1 for the unbiased estimate).",
)


@public(_var)
def var(
    x: Any,
    axis: Any = None,
    keepdims: bool = False,
    ddof: Any = 0,
    correction: Any = None,
    **numpy_kwargs: Any,
) -> Any:
    """Variance over ``axis``; ``ddof`` (NumPy) or ``correction`` (array API) subtracts from n."""
    _no_numpy_extras("var", numpy_kwargs)
    return _var(
        x, axis=_as_axis(axis), keepdims=keepdims, ddof=ddof if correction is None else correction
    )


@public(_var, numpy=("std",), face=False)
def std(
    x: Any,
    axis: Any = None,
    keepdims: bool = False,
    ddof: Any = 0,
    correction: Any = None,
    **numpy_kwargs: Any,
) -> Any:
    """Standard deviation: ``sqrt(var(x))``. Its gradient is infinite where the spread is 0."""
    return sqrt(var(x, axis, keepdims, ddof, correction, **numpy_kwargs))


def _extreme_vjp(g: Any, out: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    # NOTE: ties share the gradient equally: each of the k maximal entries gets g / k.
    hit = _as_float(equal(x, expand(out, x, axis, keepdims)), g)
    count = _sum(hit, axis=axis, keepdims=True)
    return expand(g, x, axis, keepdims) * hit / count


def _as_float(mask: Any, like: Any) -> Any:
    return astype(mask, dtype=like.dtype)


def _extreme_jvp(t: Any, out: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    hit = _as_float(equal(x, expand(out, x, axis, keepdims)), t)
    return _sum(t * hit, axis=axis, keepdims=keepdims) / _sum(hit, axis=axis, keepdims=keepdims)


_max: Op = defop(
    "max",
    lambda xp, x, axis=None, keepdims=False: xp.max(x, axis=_as_axis(axis), keepdims=keepdims),
    vjp=[_extreme_vjp],
    jvp=[_extreme_jvp],
    formula="d max(x)/dx_i = 1 for the maximal entry, 0 elsewhere",
    kink="ties share the gradient equally (1/k each of k maximal entries)",
    numpy=("max", "amax"),
    family=F,
    description="Largest entry over the given axes.",
)

_min: Op = defop(
    "min",
    lambda xp, x, axis=None, keepdims=False: xp.min(x, axis=_as_axis(axis), keepdims=keepdims),
    vjp=[_extreme_vjp],
    jvp=[_extreme_jvp],
    formula="d min(x)/dx_i = 1 for the minimal entry, 0 elsewhere",
    kink="ties share the gradient equally (1/k each of k minimal entries)",
    numpy=("min", "amin"),
    family=F,
    description="Smallest entry over the given axes.",
)


@public(_max)
def max(x: Any, axis: Any = None, keepdims: bool = False, **numpy_kwargs: Any) -> Any:
    """Largest entry over ``axis``; ties share the gradient equally."""
    _no_numpy_extras("max", numpy_kwargs)
    return _max(x, axis=_as_axis(axis), keepdims=keepdims)


@public(_min)
def min(x: Any, axis: Any = None, keepdims: bool = False, **numpy_kwargs: Any) -> Any:
    """Smallest entry over ``axis``; ties share the gradient equally."""
    _no_numpy_extras("min", numpy_kwargs)
    return _min(x, axis=_as_axis(axis), keepdims=keepdims)


argmax: Op = defop(
    "argmax",
    lambda xp, x, axis=None, keepdims=False: xp.argmax(x, axis=axis, keepdims=keepdims),
    vjp=[None],
    numpy=("argmax",),
    family=F,
    description="Index of the largest entry (integer result, no gradient).",
)

argmin: Op = defop(
    "argmin",
    lambda xp, x, axis=None, keepdims=False: xp.argmin(x, axis=axis, keepdims=keepdims),
    vjp=[None],
    numpy=("argmin",),
    family=F,
    description="Index of the smallest entry (integer result, no gradient).",
)

all: Op = defop(
    "all",
    lambda xp, x, axis=None, keepdims=False: xp.all(x, axis=_as_axis(axis), keepdims=keepdims),
    vjp=[None],
    numpy=("all",),
    family=F,
    description="Whether every entry is true (boolean result, no gradient).",
)

any: Op = defop(
    "any",
    lambda xp, x, axis=None, keepdims=False: xp.any(x, axis=_as_axis(axis), keepdims=keepdims),
    vjp=[None],
    numpy=("any",),
    family=F,
    description="Whether some entry is true (boolean result, no gradient).",
)
