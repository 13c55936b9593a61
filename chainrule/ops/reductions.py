"""Reductions: sum, mean, var, std, max, min (and argmax/argmin, not differentiable).

A reduction's VJP broadcasts the incoming gradient back over the reduced axes; ``_expand``
does that once for all of them.
"""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np

from ..backends import gaps
from ..engine.backward import xp_sum
from ..engine.declare import family, public
from ..engine.op import Op
from ..engine.tensor import Tensor
from .elementwise import equal, where
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

defop = family("reduction")


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
    """Broadcast a reduced gradient ``g`` back to the shape of ``x`` (on Dask, in ``x``'s
    blocks: ``gaps.broadcast_like``; a recorded gradient graph keeps the op)."""
    g = kept(g, x, axis, keepdims)
    if gaps.is_dask(x) and not isinstance(g, Tensor):
        return gaps.broadcast_like(g, x)
    return broadcast_to(g, shape=tuple(x.shape))


def _count(x: Any, axis: Any) -> int:
    """How many entries of ``x`` a reduction over ``axis`` takes in (the n of a mean)."""
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


# Sum and mean are linear: their tangent rules are the op itself, applied to the tangent.
# fmt: off
_sum: Op = defop("sum", _xp_sum, "Sum over the given axes (all when None).",
    dx=(lambda g, out, x, axis=None, keepdims=False: expand(g, x, axis, keepdims),
        "d sum(x)/dx_i = 1"),
    tx=lambda t, out, x, axis=None, keepdims=False: _sum(t, axis=axis, keepdims=keepdims))
# fmt: on


@public(_sum)
def sum(x: Any, axis: Any = None, keepdims: bool = False, **numpy_kwargs: Any) -> Any:
    """Sum over ``axis`` (all axes when None), keeping reduced axes as size 1 if asked."""
    _no_numpy_extras("sum", numpy_kwargs)
    return _sum(x, axis=_as_axis(axis), keepdims=keepdims)


def _no_numpy_extras(name: str, kwargs: dict[str, Any]) -> None:
    for key, value in kwargs.items():
        if value is not None and not (key == "initial" and value is None):
            raise TypeError(f"{name}: argument {key}={value!r} is not supported on Tensors")


# fmt: off
_mean: Op = defop("mean", _xp_mean, "Arithmetic mean over the given axes.",
    dx=(lambda g, out, x, axis=None, keepdims=False: expand(g / _count(x, axis), x, axis, keepdims),
        "d mean(x)/dx_i = 1/n"),
    tx=lambda t, out, x, axis=None, keepdims=False: _mean(t, axis=axis, keepdims=keepdims))
# fmt: on


@public(_mean)
def mean(x: Any, axis: Any = None, keepdims: bool = False, **numpy_kwargs: Any) -> Any:
    """Mean over ``axis`` (all axes when None)."""
    _no_numpy_extras("mean", numpy_kwargs)
    return _mean(x, axis=_as_axis(axis), keepdims=keepdims)


def _var_forward(xp: Any, x: Any, axis: Any = None, keepdims: bool = False, ddof: Any = 0) -> Any:
    return xp.var(x, axis=_as_axis(axis), keepdims=keepdims, correction=ddof)


def _centered(x: Any, axis: Any) -> Any:
    return x - _mean(x, axis=axis, keepdims=True)


def _dof(x: Any, axis: Any, ddof: Any) -> Any:
    """The divisor of var and std: n - ddof, and 0 when ddof >= n (an empty axis, or a
    correction of n or more), as NumPy and PyTorch clamp it in the forward pass."""
    return builtins.max(_count(x, axis) - ddof, 0)


def _var_scale(x: Any, axis: Any, ddof: Any) -> float:
    # NOTE: 2 / (n - ddof) as a Python float, inf where the divisor is 0 (Python's 2.0 / 0
    # would raise ZeroDivisionError): the gradient is then 2 (x_i - mean) / 0, +-inf, or NaN
    # where x_i equals the mean, as in PyTorch
    dof = _dof(x, axis, ddof)
    return 2.0 / dof if dof > 0 else math.inf


def _var_vjp(
    g: Any, out: Any, x: Any, axis: Any = None, keepdims: bool = False, ddof: Any = 0
) -> Any:
    # d var(x)/dx_i = 2 (x_i - mean(x)) / (n - ddof)
    return expand(g, x, axis, keepdims) * _centered(x, axis) * _var_scale(x, axis, ddof)


def _var_jvp(
    t: Any, out: Any, x: Any, axis: Any = None, keepdims: bool = False, ddof: Any = 0
) -> Any:
    scale = _var_scale(x, axis, ddof)
    return _sum(t * _centered(x, axis), axis=axis, keepdims=keepdims) * scale


# fmt: off
_var: Op = defop("var", _var_forward,
    "Variance over the given axes (ddof=1 for the unbiased estimate).",
    dx=(_var_vjp, "d var(x)/dx_i = 2 (x_i - mean(x)) / (n - ddof)"), tx=_var_jvp)
# fmt: on


@public(_var)
def var(
    x: Any,
    axis: Any = None,
    keepdims: bool = False,
    ddof: Any = 0,
    correction: Any = None,
    **numpy_kwargs: Any,
) -> Any:
    """Variance over ``axis``; ``ddof`` (NumPy) or ``correction`` (array API) subtracts from n.

    When ``ddof >= n`` (an empty axis included) chainrule does what PyTorch does (and NumPy,
    for the value): no error; the value is NaN (0/0) or inf, with NumPy's RuntimeWarning
    "Degrees of freedom <= 0", and the gradient 2 (x_i - mean) / 0 is +-inf, or NaN where
    x_i equals the mean (over an empty axis the gradient is empty).

    >>> import warnings
    >>> import chainrule as cr, numpy as np
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", RuntimeWarning)
    ...     cr.var(cr.tensor(np.zeros((2, 0))), axis=1)
    tensor([nan, nan])
    """
    _no_numpy_extras("var", numpy_kwargs)
    return _var(
        x, axis=_as_axis(axis), keepdims=keepdims, ddof=ddof if correction is None else correction
    )


def _std_forward(xp: Any, x: Any, axis: Any = None, keepdims: bool = False, ddof: Any = 0) -> Any:
    return xp.std(x, axis=_as_axis(axis), keepdims=keepdims, correction=ddof)


def _std_vjp(
    g: Any, out: Any, x: Any, axis: Any = None, keepdims: bool = False, ddof: Any = 0
) -> Any:
    # d std(x)/dx_i = (x_i - mean(x)) / ((n - ddof) std(x)); NOTE: 0 where std(x) = 0 (all
    # entries equal, or just one), as PyTorch defines it, not 0 * inf
    s = expand(out, x, axis, keepdims)
    zero = equal(s, 0)
    scale = _dof(x, axis, ddof) * where(zero, 1.0, s)
    return where(zero, 0.0, expand(g, x, axis, keepdims) * _centered(x, axis) / scale)


def _std_jvp(
    t: Any, out: Any, x: Any, axis: Any = None, keepdims: bool = False, ddof: Any = 0
) -> Any:
    zero = equal(out, 0)
    scale = _dof(x, axis, ddof) * where(zero, 1.0, out)
    return where(zero, 0.0, _sum(t * _centered(x, axis), axis=axis, keepdims=keepdims) / scale)


# fmt: off
_std: Op = defop("std", _std_forward,
    "Standard deviation over the given axes (ddof=1 for the square root of the unbiased "
    "variance).",
    kink="where the spread is 0 (all entries equal) the gradient is 0",
    dx=(_std_vjp, "d std(x)/dx_i = (x_i - mean(x)) / ((n - ddof) std(x))"), tx=_std_jvp)
# fmt: on


@public(_std)
def std(
    x: Any,
    axis: Any = None,
    keepdims: bool = False,
    ddof: Any = 0,
    correction: Any = None,
    **numpy_kwargs: Any,
) -> Any:
    """Standard deviation over ``axis``; ``ddof`` (NumPy) or ``correction`` (array API)
    subtracts from n. Where the spread is 0 the gradient is 0.

    When ``ddof >= n`` (an empty axis included) chainrule does what PyTorch does (and NumPy,
    for the value): no error; the value is NaN or inf, with NumPy's RuntimeWarning, and the
    gradient is NaN ((x_i - mean) over 0 times that value).
    """
    _no_numpy_extras("std", numpy_kwargs)
    return _std(
        x, axis=_as_axis(axis), keepdims=keepdims, ddof=ddof if correction is None else correction
    )


def _extreme_vjp(g: Any, out: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    # NOTE: ties share the gradient equally: each of the k maximal entries gets g / k.
    hit = _as_float(equal(x, expand(out, x, axis, keepdims)), g)
    ties = _sum(hit, axis=axis, keepdims=True)
    return expand(g, x, axis, keepdims) * hit / ties


def _as_float(mask: Any, like: Any) -> Any:
    return astype(mask, dtype=like.dtype)


def _extreme_jvp(t: Any, out: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    hit = _as_float(equal(x, expand(out, x, axis, keepdims)), t)
    return _sum(t * hit, axis=axis, keepdims=keepdims) / _sum(hit, axis=axis, keepdims=keepdims)


# fmt: off
_max: Op = defop("max",
    lambda xp, x, axis=None, keepdims=False: xp.max(x, axis=_as_axis(axis), keepdims=keepdims),
    "Largest entry over the given axes.", numpy=("max", "amax"),
    kink="ties share the gradient equally (1/k each of k maximal entries)",
    dx=(_extreme_vjp, "d max(x)/dx_i = 1 for the maximal entry, 0 elsewhere"), tx=_extreme_jvp)

_min: Op = defop("min",
    lambda xp, x, axis=None, keepdims=False: xp.min(x, axis=_as_axis(axis), keepdims=keepdims),
    "Smallest entry over the given axes.", numpy=("min", "amin"),
    kink="ties share the gradient equally (1/k each of k minimal entries)",
    dx=(_extreme_vjp, "d min(x)/dx_i = 1 for the minimal entry, 0 elsewhere"), tx=_extreme_jvp)
# fmt: on


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


# -- no gradient ------------------------------------------------------------------------------
# fmt: off
argmax: Op = defop("argmax",
    lambda xp, x, axis=None, keepdims=False: xp.argmax(x, axis=axis, keepdims=keepdims),
    "Index of the largest entry (integer result, no gradient).")
argmin: Op = defop("argmin",
    lambda xp, x, axis=None, keepdims=False: xp.argmin(x, axis=axis, keepdims=keepdims),
    "Index of the smallest entry (integer result, no gradient).")
all: Op = defop("all",
    lambda xp, x, axis=None, keepdims=False: xp.all(x, axis=_as_axis(axis), keepdims=keepdims),
    "Whether every entry is true (boolean result, no gradient).")
any: Op = defop("any",
    lambda xp, x, axis=None, keepdims=False: xp.any(x, axis=_as_axis(axis), keepdims=keepdims),
    "Whether some entry is true (boolean result, no gradient).")
# fmt: on
