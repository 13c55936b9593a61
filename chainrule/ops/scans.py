"""Cumulative sums and products, and the product reduction, whose rules are built on them.

A product's derivative with respect to one factor is the product of all the others. Dividing
the whole product by that factor fails where it is 0, so the rules form the others' product
from exclusive running products from the left and from the right: right everywhere, zeros
included.
"""

from __future__ import annotations

from typing import Any

from ..backends import namespace
from ..engine.declare import family, public
from ..engine.op import Op
from ..engine.tensor import data_of
from .reductions import _as_axis, _sum, axes_of, expand
from .shape import _concatenate, flip, reshape, stack, transpose

__all__ = ["cumsum", "cumprod", "prod"]

defop = family("scan")


def _cumulative(xp: Any, name: str, x: Any, axis: int) -> Any:
    fn = getattr(xp, f"cumulative_{name}", None)  # the array API's name (NumPy 2.1 has it)
    return fn(x, axis=axis) if fn is not None else getattr(xp, f"cum{name}")(x, axis=axis)


def _reverse_cumsum(g: Any, axis: int) -> Any:
    return flip(_cumsum(flip(g, axis=axis), axis=axis), axis=axis)


def _ones_slice(v: Any) -> Any:
    """Ones shaped as ``v`` with its last axis of length 1 (a constant)."""
    raw = data_of(v)
    return namespace(raw).ones((*raw.shape[:-1], 1), dtype=raw.dtype)


def _exclusive_products(v: Any) -> tuple[Any, Any]:
    """For each position i of the last axis of ``v``: the product of the entries before it,
    and the product of the entries after it (1 where there are none)."""
    n = v.shape[-1]
    if n == 0:
        return v, v
    one = _ones_slice(v)
    left = _cumprod(_concatenate(one, v[..., : n - 1], axis=-1), axis=-1)
    reversed_v = flip(v, axis=-1)
    right = _cumprod(_concatenate(one, reversed_v[..., : n - 1], axis=-1), axis=-1)
    return left, flip(right, axis=-1)


def _to_last(x: Any, axes: tuple[int, ...]) -> tuple[Any, tuple[int, ...], tuple[int, ...]]:
    """``x`` with the axes ``axes`` moved to the end and merged into one; the permutation and
    the permuted shape, to undo it."""
    ndim = len(x.shape)
    perm = tuple(a for a in range(ndim) if a not in axes) + axes
    moved = transpose(x, perm) if perm != tuple(range(ndim)) else x
    shape = tuple(moved.shape)
    kept = shape[: ndim - len(axes)]
    return reshape(moved, shape=(*kept, -1)), perm, shape


def _from_last(v: Any, perm: tuple[int, ...], shape: tuple[int, ...]) -> Any:
    v = reshape(v, shape=shape)
    if perm == tuple(range(len(perm))):
        return v
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return transpose(v, tuple(inverse))


def _others(x: Any, axis: Any) -> Any:
    """For each entry of ``x``, the product of the other entries of its slice along ``axis``."""
    moved, perm, shape = _to_last(x, axes_of(axis, len(x.shape)))
    left, right = _exclusive_products(moved)
    return _from_last(left * right, perm, shape)


def _cumprod_dx(g: Any, out: Any, x: Any, *, axis: int) -> Any:
    # d out_j/d x_i = (prod_{k<i} x_k)(prod_{i<k<=j} x_k) for j >= i. The sum over j of g_j
    # times the second factor, s_i, satisfies s_i = g_i + x_{i+1} s_{i+1}: one step per entry
    # along the axis (no division, so zeros are right)
    moved, perm, shape = _to_last(x, (axis % len(x.shape),))
    gm = _to_last(g, (axis % len(x.shape),))[0]
    n = moved.shape[-1]
    if n == 0:
        return g
    s = [gm[..., n - 1]]
    for i in range(n - 2, -1, -1):
        s.append(gm[..., i] + moved[..., i + 1] * s[-1])
    left, _ = _exclusive_products(moved)
    return _from_last(left * stack(s[::-1], axis=-1), perm, shape)


# fmt: off
_cumsum: Op = defop("cumsum", lambda xp, x, *, axis: _cumulative(xp, "sum", x, axis),
    "Running sum along axis.", numpy=(),
    dx=(lambda g, out, x, axis: _reverse_cumsum(g, axis),
        "d cumsum(x)_j/dx_i = 1 for j >= i: the gradient summed from the end"),
    tx=lambda t, out, x, axis: _cumsum(t, axis=axis))

_cumprod: Op = defop("cumprod", lambda xp, x, *, axis: _cumulative(xp, "prod", x, axis),
    "Running product along axis.", numpy=(),
    dx=(_cumprod_dx, "d cumprod(x)_j/dx_i = prod_{k <= j, k != i} x_k for j >= i"),
    tx=lambda t, out, x, axis: _cumprod_tangent(t, out, x, axis))

_prod: Op = defop("prod",
    lambda xp, x, axis=None, keepdims=False: xp.prod(x, axis=_as_axis(axis), keepdims=keepdims),
    "Product over the given axes (all when None).", numpy=(),
    kink="where factors are 0, the product of the others (never 0/0)",
    dx=(lambda g, out, x, axis=None, keepdims=False: expand(g, x, axis, keepdims)
                                                     * _others(x, axis),
        "d prod(x)/dx_i = prod_{j != i} x_j"),
    tx=lambda t, out, x, axis=None, keepdims=False: _sum(
        t * _others(x, axis), axis=axis, keepdims=keepdims))
# fmt: on


def _cumprod_tangent(t: Any, out: Any, x: Any, axis: int) -> Any:
    # the product rule along the axis: out_j = out_{j-1} x_j, so
    # tangent_j = tangent_{j-1} x_j + out_{j-1} t_j
    ax = (axis % len(x.shape),)
    moved, perm, shape = _to_last(x, ax)
    tm, om = _to_last(t, ax)[0], _to_last(out, ax)[0]
    n = moved.shape[-1]
    if n == 0:
        return t
    terms = [tm[..., 0]]
    for j in range(1, n):
        terms.append(terms[-1] * moved[..., j] + om[..., j - 1] * tm[..., j])
    return _from_last(stack(terms, axis=-1), perm, shape)


def _flat_axis(x: Any, axis: Any) -> tuple[Any, int]:
    """``x`` and the axis to scan along: NumPy flattens when ``axis`` is None."""
    if axis is None:
        return reshape(x, shape=(-1,)), 0
    return x, int(axis)


@public(_cumsum, numpy=("cumsum", "cumulative_sum"))
def cumsum(x: Any, axis: Any = None, dtype: Any = None) -> Any:
    """Running sum along ``axis`` (over the flattened array when None, as NumPy does)."""
    x, axis = _flat_axis(x, axis)
    out = _cumsum(x, axis=axis)
    return out if dtype is None else out.astype(dtype)


@public(_cumprod, numpy=("cumprod", "cumulative_prod"))
def cumprod(x: Any, axis: Any = None, dtype: Any = None) -> Any:
    """Running product along ``axis`` (over the flattened array when None). Its gradient is
    exact where entries are 0; it takes one step per entry along the axis."""
    x, axis = _flat_axis(x, axis)
    out = _cumprod(x, axis=axis)
    return out if dtype is None else out.astype(dtype)


@public(_prod, numpy=("prod",))
def prod(x: Any, axis: Any = None, keepdims: bool = False, dtype: Any = None) -> Any:
    """Product over ``axis`` (all axes when None). Its gradient is the product of the other
    factors, right where some are 0."""
    out = _prod(x, axis=_as_axis(axis), keepdims=keepdims)
    return out if dtype is None else out.astype(dtype)
