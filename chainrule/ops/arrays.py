"""NumPy's array functions built from the op sheet's primitives: rearranging (ravel, moveaxis,
rot90, tril, diagonal, repeat, tile, roll, split, ...), products (tensordot, kron, cross),
differences, sorting and the order statistics (sort, median, quantile), and the NaN-skipping
reductions.

Each is a composition of ops that have rules, so its derivative needs no rule of its own and
is right by construction; each is registered as the function NumPy dispatches to on Tensors
(``np.rot90(t)``). An index that depends on the values (the order of a sort) is computed on
the values and used as a constant, as every autodiff library does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backends import from_host, namespace, to_host
from ..engine.declare import public
from ..engine.op import gather
from ..engine.tensor import Tensor, data_of
from .elementwise import isnan, not_equal, where
from .indexing import getitem, scatter_add, take_along_axis
from .linalg import _LETTERS, _einsum, einsum, matmul
from .reductions import _max, _min, _sum, argmax, axes_of, mean, sum
from .reductions import max as _amax
from .reductions import min as _amin
from .shape import (
    _concatenate,
    _ndim,
    _permute,
    astype,
    broadcast_to,
    flip,
    reshape,
    stack,
)

__all__ = [
    "ravel",
    "moveaxis",
    "swapaxes",
    "fliplr",
    "flipud",
    "rot90",
    "tril",
    "triu",
    "diagonal",
    "diag",
    "diagflat",
    "trace",
    "repeat",
    "tile",
    "roll",
    "take",
    "split",
    "array_split",
    "hsplit",
    "vsplit",
    "diff",
    "tensordot",
    "kron",
    "cross",
    "convolve",
    "correlate",
    "nonzero",
    "select",
    "argwhere",
    "flatnonzero",
    "isclose",
    "allclose",
    "trapezoid",
    "sort",
    "argsort",
    "median",
    "partition",
    "interp",
    "meshgrid",
    "quantile",
    "percentile",
    "nanquantile",
    "nanpercentile",
    "nanmedian",
    "ptp",
    "average",
    "nansum",
    "nanmean",
    "nanmax",
    "nanmin",
    "count_nonzero",
]


def _shape(v: Any) -> tuple[int, ...]:
    return tuple(getattr(v, "shape", ()))


def _arange(v: Any, n: int) -> Any:
    return namespace(data_of(v)).arange(n)


def _along(x: Any, index: Any, axis: int) -> Any:
    """``x`` indexed by the integer array ``index`` along ``axis`` (NumPy's ``take``)."""
    axis %= _ndim(x)
    return getitem(x, index=(slice(None),) * axis + (index,))


# -- rearranging ---------------------------------------------------------------------------------
@public(reshape, numpy=("ravel",), face=False)
def ravel(x: Any) -> Any:
    """``x`` flattened to one dimension."""
    return reshape(x, shape=(-1,))


@public(_permute, numpy=("moveaxis",), face=False)
def moveaxis(x: Any, source: Any, destination: Any) -> Any:
    """Move axes of ``x`` to new positions; the others keep their order."""
    n = _ndim(x)
    src = [s % n for s in ((source,) if isinstance(source, int) else source)]
    dst = [d % n for d in ((destination,) if isinstance(destination, int) else destination)]
    if len(src) != len(dst):
        raise ValueError("moveaxis: source and destination must have the same number of axes")
    order = [a for a in range(n) if a not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return _permute(x, axes=tuple(order))


@public(_permute, numpy=("swapaxes",), face=False)
def swapaxes(x: Any, axis1: int, axis2: int) -> Any:
    """``x`` with two axes exchanged."""
    n = _ndim(x)
    order = list(range(n))
    order[axis1 % n], order[axis2 % n] = order[axis2 % n], order[axis1 % n]
    return _permute(x, axes=tuple(order))


@public(flip, numpy=("fliplr",), face=False)
def fliplr(x: Any) -> Any:
    """Reverse the second axis (columns)."""
    if _ndim(x) < 2:
        raise ValueError(f"fliplr: needs at least 2 dimensions, got shape {_shape(x)}")
    return flip(x, axis=1)


@public(flip, numpy=("flipud",), face=False)
def flipud(x: Any) -> Any:
    """Reverse the first axis (rows)."""
    if _ndim(x) < 1:
        raise ValueError("flipud: needs at least 1 dimension")
    return flip(x, axis=0)


@public(flip, numpy=("rot90",), face=False)
def rot90(x: Any, k: int = 1, axes: tuple[int, int] = (0, 1)) -> Any:
    """Rotate by 90 degrees ``k`` times in the plane of ``axes`` (from the first axis toward
    the second), as NumPy does."""
    a, b = axes
    k %= 4
    if k == 0:
        return x
    if k == 2:
        return flip(flip(x, axis=a), axis=b)
    if k == 1:
        return swapaxes(flip(x, axis=b), a, b)
    return flip(swapaxes(x, a, b), axis=b)


def _triangle(x: Any, k: int, lower: bool) -> Any:
    n, m = _shape(x)[-2:]
    rows = np.arange(n)[:, None]
    cols = np.arange(m)[None, :]
    keep = cols - rows <= k if lower else cols - rows >= k
    xp = namespace(data_of(x))
    return where(xp.asarray(keep), x, 0.0)


@public(where, numpy=("tril",), face=False)
def tril(x: Any, k: int = 0) -> Any:
    """The lower triangle of the last two axes (entries above the k-th diagonal set to 0)."""
    return _triangle(x, k, lower=True)


@public(where, numpy=("triu",), face=False)
def triu(x: Any, k: int = 0) -> Any:
    """The upper triangle of the last two axes (entries below the k-th diagonal set to 0)."""
    return _triangle(x, k, lower=False)


@public(getitem, numpy=("diagonal",), face=False)
def diagonal(x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """The diagonal of the plane (``axis1``, ``axis2``), as the last axis of the result."""
    moved = moveaxis(x, (axis1, axis2), (-2, -1))
    n, m = _shape(moved)[-2:]
    count = max(0, min(n, m - offset) if offset >= 0 else min(n + offset, m))
    rows = np.arange(count) + (0 if offset >= 0 else -offset)
    cols = rows + offset
    xp = namespace(data_of(x))
    return getitem(moved, index=(Ellipsis, xp.asarray(rows), xp.asarray(cols)))


@public(scatter_add, numpy=("diag",), face=False)
def diag(v: Any, k: int = 0) -> Any:
    """A square matrix with ``v`` (1-D) on its k-th diagonal, or the k-th diagonal of a matrix."""
    if _ndim(v) == 2:
        return diagonal(v, offset=k)
    if _ndim(v) != 1:
        raise ValueError(f"diag: expected a 1-D or 2-D array, got shape {_shape(v)}")
    n = _shape(v)[0]
    size = n + abs(k)
    rows = np.arange(n) + (0 if k >= 0 else -k)
    xp = namespace(data_of(v))
    index = (xp.asarray(rows), xp.asarray(rows + k))
    return scatter_add(v, index=index, shape=(size, size))


@public(scatter_add, numpy=("diagflat",), face=False)
def diagflat(v: Any, k: int = 0) -> Any:
    """A square matrix with ``v``, flattened, on its k-th diagonal."""
    return diag(ravel(v), k)


@public(getitem, numpy=("trace",), face=False)
def trace(x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """The sum along a diagonal."""
    return sum(diagonal(x, offset, axis1, axis2), axis=-1)


@public(getitem, numpy=("repeat",), face=False)
def repeat(x: Any, repeats: Any, axis: Any = None) -> Any:
    """Each entry repeated ``repeats`` times along ``axis`` (of the flattened array when None)."""
    if axis is None:
        x, axis = ravel(x), 0
    n = _shape(x)[axis]
    index = np.repeat(np.arange(n), repeats)
    return _along(x, namespace(data_of(x)).asarray(index), axis)


@public(broadcast_to, numpy=("tile",), face=False)
def tile(x: Any, reps: Any) -> Any:
    """``x`` repeated ``reps`` times along each axis, as NumPy's ``tile``."""
    reps = (int(reps),) if isinstance(reps, (int, np.integer)) else tuple(int(r) for r in reps)
    shape = _shape(x)
    d = max(len(reps), len(shape))
    reps = (1,) * (d - len(reps)) + reps
    shape = (1,) * (d - len(shape)) + shape
    spread = reshape(x, shape=tuple(v for n in shape for v in (1, n)))
    big = broadcast_to(spread, shape=tuple(v for r, n in zip(reps, shape) for v in (r, n)))
    return reshape(big, shape=tuple(r * n for r, n in zip(reps, shape)))


@public(getitem, numpy=("roll",), face=False)
def roll(x: Any, shift: Any, axis: Any = None) -> Any:
    """Entries shifted cyclically by ``shift`` along ``axis`` (the flattened array when None)."""
    if axis is None:
        return reshape(roll(ravel(x), shift, 0), shape=_shape(x))
    shifts = (shift,) if isinstance(shift, int) else tuple(shift)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    if len(axes) == 1 and len(shifts) > 1:
        axes = axes * len(shifts)
    if len(shifts) == 1 and len(axes) > 1:
        shifts = shifts * len(axes)
    out = x
    for s, a in zip(shifts, axes):
        n = _shape(out)[a]
        if n:
            index = (np.arange(n) - s) % n
            out = _along(out, namespace(data_of(x)).asarray(index), a)
    return out


@public(getitem, numpy=("take",), face=False)
def take(x: Any, indices: Any, axis: Any = None) -> Any:
    """Entries at ``indices`` along ``axis`` (of the flattened array when None)."""
    if axis is None:
        x, axis = ravel(x), 0
    return _along(x, data_of(indices), axis)


def _split_points(n: int, sections: Any, even: bool, name: str) -> list[int]:
    if isinstance(sections, (int, np.integer)):
        k = int(sections)
        if k <= 0:
            raise ValueError(f"{name}: the number of sections must be positive, got {k}")
        if even and n % k:
            raise ValueError(f"{name}: {n} entries do not divide into {k} equal sections")
        size, extra = divmod(n, k)
        points, at = [], 0
        for i in range(k - 1):
            at += size + (1 if i < extra else 0)
            points.append(at)
        return points
    return [int(p) for p in sections]


def _split(x: Any, sections: Any, axis: int, even: bool, name: str) -> list[Any]:
    n = _shape(x)[axis]
    bounds = [0, *_split_points(n, sections, even, name), n]
    lead = (slice(None),) * (axis % _ndim(x))
    return [getitem(x, index=(*lead, slice(a, b))) for a, b in zip(bounds[:-1], bounds[1:])]


@public(getitem, numpy=("split",), face=False)
def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
    """``x`` cut into equal sections, or at the given indices, along ``axis``."""
    return _split(x, indices_or_sections, axis, True, "split")


@public(getitem, numpy=("array_split",), face=False)
def array_split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
    """As :func:`split`, the sections allowed to differ in size by one."""
    return _split(x, indices_or_sections, axis, False, "array_split")


@public(getitem, numpy=("hsplit",), face=False)
def hsplit(x: Any, indices_or_sections: Any) -> list[Any]:
    """Split along the second axis (the first for 1-D arrays)."""
    return _split(x, indices_or_sections, 1 if _ndim(x) > 1 else 0, True, "hsplit")


@public(getitem, numpy=("vsplit",), face=False)
def vsplit(x: Any, indices_or_sections: Any) -> list[Any]:
    """Split along the first axis."""
    return _split(x, indices_or_sections, 0, True, "vsplit")


@public(getitem, numpy=("diff",), face=False)
def diff(x: Any, n: int = 1, axis: int = -1, prepend: Any = None, append: Any = None) -> Any:
    """The n-th differences along ``axis``: ``x[1:] - x[:-1]``, n times."""
    axis %= max(_ndim(x), 1)
    parts = [v for v in (prepend, x, append) if v is not None]
    if len(parts) > 1:
        shape = list(_shape(x))
        shape[axis] = 1
        parts = [v if _ndim(v) == _ndim(x) else broadcast_to(v, shape=tuple(shape)) for v in parts]
        x = _concatenate(*parts, axis=axis)
    lead = (slice(None),) * axis
    for _ in range(n):
        x = getitem(x, index=(*lead, slice(1, None))) - getitem(x, index=(*lead, slice(None, -1)))
    return x


# -- products ------------------------------------------------------------------------------------
@public(_einsum, numpy=("tensordot",), face=False)
def tensordot(a: Any, b: Any, axes: Any = 2) -> Any:
    """The sum of products over the last ``axes`` axes of ``a`` and the first of ``b``, or
    over the axes paired in ``axes = (axes_of_a, axes_of_b)``."""
    na, nb = _ndim(a), _ndim(b)
    if isinstance(axes, (int, np.integer)):
        pa, pb = list(range(na - int(axes), na)), list(range(int(axes)))
    else:
        pa, pb = (
            [axes[0]] if isinstance(axes[0], int) else list(axes[0]),
            ([axes[1]] if isinstance(axes[1], int) else list(axes[1])),
        )
        pa, pb = [p % na for p in pa], [p % nb for p in pb]
    if len(pa) != len(pb) or na + nb > len(_LETTERS):
        raise ValueError(f"tensordot: axes {axes!r} do not pair shapes {_shape(a)}, {_shape(b)}")
    sa = list(_LETTERS[:na])
    sb = list(_LETTERS[na : na + nb])
    for i, j in zip(pa, pb):
        sb[j] = sa[i]
    out = [c for k, c in enumerate(sa) if k not in pa] + [
        c for k, c in enumerate(sb) if k not in pb
    ]
    return einsum(f"{''.join(sa)},{''.join(sb)}->{''.join(out)}", a, b)


@public(matmul, numpy=("kron",), face=False)
def kron(a: Any, b: Any) -> Any:
    """The Kronecker product: blocks ``a[i, j] * b``."""
    d = max(_ndim(a), _ndim(b))
    sa = (1,) * (d - _ndim(a)) + _shape(a)
    sb = (1,) * (d - _ndim(b)) + _shape(b)
    ea = reshape(a, shape=tuple(v for n in sa for v in (n, 1)))
    eb = reshape(b, shape=tuple(v for n in sb for v in (1, n)))
    return reshape(ea * eb, shape=tuple(x * y for x, y in zip(sa, sb)))


@public(matmul, numpy=("cross",), face=False)
def cross(a: Any, b: Any, axis: int = -1) -> Any:
    """The cross product of 3-vectors along ``axis`` (2-vectors give the z component)."""
    a, b = moveaxis(a, axis, -1), moveaxis(b, axis, -1)
    na, nb = _shape(a)[-1], _shape(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError(f"cross: vectors must have 2 or 3 components, got {na} and {nb}")
    x = [a[..., i] for i in range(na)] + ([0.0] if na == 2 else [])
    y = [b[..., i] for i in range(nb)] + ([0.0] if nb == 2 else [])
    if na == nb == 2:
        return x[0] * y[1] - x[1] * y[0]
    parts = [x[1] * y[2] - x[2] * y[1], x[2] * y[0] - x[0] * y[2], x[0] * y[1] - x[1] * y[0]]
    shape = np.broadcast_shapes(*(_shape(p) for p in parts if _shape(p)))
    return moveaxis(stack([broadcast_to(p, shape=shape) for p in parts], axis=-1), -1, axis)


def _windows(a: Any, m: int) -> Any:
    """The length-m windows of 1-D ``a`` zero-padded by m - 1 on both sides: one per row."""
    from .shape import pad

    n = _shape(a)[0]
    padded = pad(a, (m - 1, m - 1))
    index = np.arange(n + m - 1)[:, None] + np.arange(m)[None, :]
    return getitem(padded, index=namespace(data_of(a)).asarray(index))


def _cut(full: Any, n: int, m: int, mode: str, name: str) -> Any:
    """The part of a full-length result that ``mode`` keeps, as NumPy cuts it."""
    if mode == "full":
        return full
    if mode == "same":
        keep, start = max(n, m), (min(n, m) - 1) // 2
    elif mode == "valid":
        keep, start = max(n, m) - min(n, m) + 1, min(n, m) - 1
    else:
        raise ValueError(f"{name}: mode must be 'full', 'same' or 'valid', got {mode!r}")
    return full[start : start + keep]


def _check_vectors(a: Any, v: Any, name: str) -> None:
    if _ndim(a) != 1 or _ndim(v) != 1 or not _shape(a)[0] or not _shape(v)[0]:
        raise ValueError(f"{name}: expected two non-empty 1-D arrays, got {_shape(a)}, {_shape(v)}")


@public(matmul, numpy=("convolve",), face=False)
def convolve(a: Any, v: Any, mode: str = "full") -> Any:
    """The discrete linear convolution of two 1-D arrays: ``sum_i a[i] v[k - i]``."""
    _check_vectors(a, v, "convolve")
    n, m = _shape(a)[0], _shape(v)[0]
    full = matmul(_windows(a, m), flip(v, axis=0))
    return _cut(full, n, m, mode, "convolve")


@public(matmul, numpy=("correlate",), face=False)
def correlate(a: Any, v: Any, mode: str = "valid") -> Any:
    """The cross-correlation of two 1-D arrays: ``sum_n a[n + k] v[n]`` (NumPy's, for reals)."""
    _check_vectors(a, v, "correlate")
    n, m = _shape(a)[0], _shape(v)[0]
    full = matmul(_windows(a, m), v)
    if mode == "same" and m > n:  # NumPy centres the longer operand's way there
        return flip(_cut(correlate(v, a, "full"), m, n, mode, "correlate"), axis=0)
    return _cut(full, n, m, mode, "correlate")


# -- where things are ------------------------------------------------------------------------------
@public(argmax, numpy=("nonzero",), face=False)
def nonzero(x: Any) -> tuple[Any, ...]:
    """The indices of the entries that are not 0, one integer array per axis (no gradient)."""
    raw = data_of(x)
    return tuple(Tensor(i) for i in namespace(raw).nonzero(raw))


@public(argmax, numpy=("argwhere",), face=False)
def argwhere(x: Any) -> Any:
    """The indices of the entries that are not 0, one row per entry (no gradient)."""
    raw = data_of(x)
    xp = namespace(raw)
    found = xp.nonzero(raw)
    if not found:  # a 0-d array: one empty row if it is not 0
        return Tensor(xp.zeros((int(bool(raw)), 0), dtype=xp.int64))
    return Tensor(xp.stack(found, axis=-1))


@public(argmax, numpy=("flatnonzero",), face=False)
def flatnonzero(x: Any) -> Any:
    """The indices of the entries of the flattened array that are not 0 (no gradient)."""
    return nonzero(ravel(x))[0]


@public(where, numpy=("where",), face=False)
def where_nonzero(condition: Any, x: Any = None, y: Any = None) -> Any:
    """``np.where`` on Tensors: ``where(condition, x, y)`` (recorded, as :func:`where`), or,
    with the condition alone, its nonzero indices."""
    if x is None and y is None:
        return nonzero(condition)
    if x is None or y is None:
        raise ValueError("where: give both x and y, or neither")
    return where(condition, x, y)


@public(where, numpy=("select",), face=False)
def select(condlist: Any, choicelist: Any, default: Any = 0) -> Any:
    """Entry by entry, the choice of the first condition that holds, else ``default``
    (recorded through where: gradients go to the choice taken)."""
    conditions, choices = list(condlist), list(choicelist)
    if len(conditions) != len(choices):
        raise ValueError("select: condlist and choicelist must have the same length")
    out = default
    for c, v in zip(reversed(conditions), reversed(choices)):
        out = where(c, v, out)
    return out


@public(argmax, numpy=("isclose",), face=False)
def isclose(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> Any:
    """Whether ``|a - b| <= atol + rtol |b|``, entry by entry (booleans: no gradient)."""
    a_, b_ = data_of(a), data_of(b)
    return Tensor(np.isclose(to_host(a_), to_host(b_), rtol, atol, equal_nan))


@public(_sum, numpy=("allclose",), face=False)
def allclose(
    a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False
) -> bool:
    """Whether every entry is close (see :func:`isclose`)."""
    return bool(np.all(isclose(a, b, rtol, atol, equal_nan)._data))


@public(_sum, numpy=("trapezoid",), face=False)
def trapezoid(y: Any, x: Any = None, dx: float = 1.0, axis: int = -1) -> Any:
    """The integral of ``y`` by the trapezoidal rule along ``axis`` (at the points ``x``, or
    spaced ``dx``)."""
    axis %= _ndim(y)
    lead = (slice(None),) * axis
    ends = getitem(y, index=(*lead, slice(1, None))) + getitem(y, index=(*lead, slice(None, -1)))
    if x is None:
        return sum(ends, axis=axis) * (dx / 2)
    widths = diff(x, axis=-1 if _ndim(x) == 1 else axis)
    if _ndim(x) == 1 and _ndim(y) > 1:
        shape = [1] * _ndim(y)
        shape[axis] = _shape(widths)[0]
        widths = reshape(widths, shape=tuple(shape))
    return sum(ends * widths, axis=axis) / 2


# -- sorting and order statistics -----------------------------------------------------------------
def _order(x: Any, axis: int) -> Any:
    """The permutation that sorts ``x`` along ``axis``, from its values (a constant)."""
    raw = data_of(x)
    return namespace(raw).argsort(raw, axis=axis, stable=True)


@public(take_along_axis, numpy=("sort",), face=False)
def sort(x: Any, axis: Any = -1, kind: Any = None, order: Any = None) -> Any:
    """The entries sorted along ``axis`` (flattened when None); NaN last, as NumPy puts it.
    The gradient goes back to where each entry came from."""
    if axis is None:
        x, axis = ravel(x), 0
    if _ndim(x) == 0:
        return x
    return take_along_axis(x, _order(x, axis), axis=axis)


@public(argmax, numpy=("argsort",), face=False)
def argsort(x: Any, axis: Any = -1, kind: Any = None, order: Any = None) -> Any:
    """The indices that sort ``x`` along ``axis`` (integers: no gradient)."""
    if axis is None:
        x, axis = ravel(x), 0
    return Tensor(_order(x, axis))


def _flat_axes(x: Any, axis: Any) -> tuple[Any, tuple[int, ...]]:
    """``x`` with the axes in ``axis`` merged into one last axis; the kept shape."""
    axes = axes_of(axis, _ndim(x))
    n = _ndim(x)
    moved = moveaxis(x, axes, tuple(range(n - len(axes), n))) if axes else x
    kept = _shape(moved)[: n - len(axes)]
    return reshape(moved, shape=(*kept, -1)), kept


def _restore(v: Any, x: Any, axis: Any, keepdims: bool, lead: tuple[int, ...] = ()) -> Any:
    """A reduced result back in NumPy's shape: the reduced axes kept as size 1 if asked."""
    if not keepdims:
        return v
    axes = axes_of(axis, _ndim(x))
    shape = tuple(1 if i in axes else s for i, s in enumerate(_shape(x)))
    return reshape(v, shape=(*lead, *shape))


def _quantile(x: Any, q: Any, axis: Any, keepdims: bool, method: str, skip_nan: bool) -> Any:
    name = "nanquantile" if skip_nan else "quantile"
    if method != "linear":
        raise ValueError(f"{name}: only method='linear' is supported, got {method!r}")
    qs = to_host(data_of(q)).astype(np.float64)
    if np.any((qs < 0) | (qs > 1)) or np.any(np.isnan(qs)):
        raise ValueError(f"{name}: q must be in [0, 1]")
    flat, _ = _flat_axes(x, axis)
    s = sort(flat, axis=-1)  # NaN last
    n = _shape(s)[-1]
    if n == 0:
        raise ValueError(f"{name}: the slice is empty")
    raw = to_host(data_of(flat))
    # how many entries each slice ranks: all of them, or those that are not NaN
    counts = n - np.isnan(raw).sum(axis=-1) if skip_nan else np.full(raw.shape[:-1], n)
    where_ = np.maximum(counts[..., None] - 1, 0) * qs.reshape(-1)  # (..., number of q)
    lo = np.floor(where_).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(counts[..., None] - 1, 0))
    xp = namespace(data_of(x))
    low = take_along_axis(s, from_host(xp, lo), axis=-1)
    high = take_along_axis(s, from_host(xp, hi), axis=-1)
    out = low + (high - low) * from_host(xp, (where_ - lo).astype(data_of(s).dtype))
    out = moveaxis(out, -1, 0)  # the q axis first, as NumPy puts it
    out = reshape(out, shape=(*qs.shape, *_shape(out)[1:]))
    return _restore(out, x, axis, keepdims, qs.shape)


@public(take_along_axis, numpy=("quantile",), face=False)
def quantile(
    x: Any, q: Any, axis: Any = None, keepdims: bool = False, method: str = "linear"
) -> Any:
    """The q-th quantiles (q in [0, 1]) along ``axis``, interpolating linearly between the
    sorted entries (NumPy's default method). An array of q gives its axes first."""
    return _quantile(x, q, axis, keepdims, method, skip_nan=False)


@public(take_along_axis, numpy=("nanquantile",), face=False)
def nanquantile(
    x: Any, q: Any, axis: Any = None, keepdims: bool = False, method: str = "linear"
) -> Any:
    """:func:`quantile` of the entries that are not NaN (they get no gradient)."""
    return _quantile(x, q, axis, keepdims, method, skip_nan=True)


@public(take_along_axis, numpy=("nanpercentile",), face=False)
def nanpercentile(
    x: Any, q: Any, axis: Any = None, keepdims: bool = False, method: str = "linear"
) -> Any:
    """:func:`percentile` of the entries that are not NaN."""
    return nanquantile(x, to_host(data_of(q)).astype(np.float64) / 100, axis, keepdims, method)


@public(take_along_axis, numpy=("nanmedian",), face=False)
def nanmedian(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """The median of the entries that are not NaN."""
    return nanquantile(x, 0.5, axis, keepdims)


@public(take_along_axis, numpy=("percentile",), face=False)
def percentile(
    x: Any, q: Any, axis: Any = None, keepdims: bool = False, method: str = "linear"
) -> Any:
    """The q-th percentiles (q in [0, 100]): :func:`quantile` of q / 100."""
    return quantile(x, to_host(data_of(q)).astype(np.float64) / 100, axis, keepdims, method)


@public(take_along_axis, numpy=("median",), face=False)
def median(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """The median along ``axis``: the middle entry, or the mean of the two middle ones. Ties
    and the two middles each get their share of the gradient."""
    return quantile(x, 0.5, axis, keepdims)


@public(take_along_axis, numpy=("partition",), face=False)
def partition(x: Any, kth: Any, axis: int = -1, kind: Any = None, order: Any = None) -> Any:
    """The entries rearranged so that the kth is where sorting would put it, those before it no
    larger and those after no smaller (NumPy's own arrangement); gradients go back to where
    each entry came from."""
    if axis is None:
        x, axis = ravel(x), 0
    raw = data_of(x)
    order_ = np.argpartition(to_host(raw), kth, axis=axis)
    return take_along_axis(x, from_host(namespace(raw), order_), axis=axis)


@public(take_along_axis, numpy=("interp",), face=False)
def interp(x: Any, xp: Any, fp: Any, left: Any = None, right: Any = None) -> Any:
    """The piecewise linear interpolant through (xp, fp), increasing xp, at x; constant
    ``fp[0]`` (or ``left``) below and ``fp[-1]`` (or ``right``) above. Differentiable in x, xp
    and fp; at a breakpoint, the slope of the segment to its right."""
    xs, knots = to_host(data_of(x)), to_host(data_of(xp))
    n = knots.shape[0]
    if n < 2:
        raise ValueError("interp: needs at least two points (xp, fp)")
    at = np.clip(np.searchsorted(knots, xs, side="right") - 1, 0, n - 2)
    ns = namespace(data_of(fp))
    i0, i1 = from_host(ns, at), from_host(ns, at + 1)
    x0, x1 = getitem(xp, index=i0), getitem(xp, index=i1)
    f0, f1 = getitem(fp, index=i0), getitem(fp, index=i1)
    inside = f0 + (x - x0) / (x1 - x0) * (f1 - f0)
    below = fp[0] if left is None else left
    above = fp[-1] if right is None else right
    out = where(from_host(ns, xs < knots[0]), below, inside)
    return where(from_host(ns, xs > knots[-1]), above, out)


@public(broadcast_to, numpy=("meshgrid",), face=False)
def meshgrid(*xi: Any, indexing: str = "xy", sparse: bool = False, copy: bool = True) -> list[Any]:
    """Coordinate arrays from coordinate vectors, as ``np.meshgrid`` (``indexing="xy"``:
    the first two axes swapped, as for plotting)."""
    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    vectors = [ravel(v) for v in xi]
    shape = [_shape(v)[0] for v in vectors]
    swap = indexing == "xy" and len(vectors) >= 2  # x along the columns, y along the rows
    if swap:
        shape[0], shape[1] = shape[1], shape[0]
    grids = []
    for k, v in enumerate(vectors):
        axis = {0: 1, 1: 0}.get(k, k) if swap else k
        place = [1] * len(vectors)
        place[axis] = _shape(v)[0]
        g = reshape(v, shape=tuple(place))
        grids.append(g if sparse else broadcast_to(g, shape=tuple(shape)))
    return grids


# -- spreads, weighted means and the NaN-skipping reductions ---------------------------------------
@public(_max, numpy=("ptp",), face=False)
def ptp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """The range, max - min, along ``axis``."""
    return _amax(x, axis=axis, keepdims=keepdims) - _amin(x, axis=axis, keepdims=keepdims)


@public(_sum, numpy=("average",), face=False)
def average(
    x: Any, axis: Any = None, weights: Any = None, returned: bool = False, keepdims: bool = False
) -> Any:
    """The mean of ``x``, or its weighted mean ``sum(w x) / sum(w)``; weights may be 1-D along
    a single ``axis``, as in NumPy. Gradients flow to the weights too."""
    if weights is None:
        avg = mean(x, axis=axis, keepdims=keepdims)
        count = math.prod(_shape(x)[a] for a in axes_of(axis, _ndim(x)))
        return (avg, avg * 0 + count) if returned else avg
    w = gather(weights)
    if _shape(w) != _shape(x):
        if axis is None or not isinstance(axis, int) or _ndim(w) != 1:
            raise ValueError(
                f"average: weights of shape {_shape(w)} need the shape of x {_shape(x)}, or "
                "1-D along a single axis"
            )
        shape = [1] * _ndim(x)
        shape[axis] = _shape(w)[0]
        w = reshape(w, shape=tuple(shape))
    total = sum(w * x, axis=axis, keepdims=keepdims)
    scale = sum(broadcast_to(w, shape=_shape(x)), axis=axis, keepdims=keepdims)
    return (total / scale, scale) if returned else total / scale


def _without_nan(x: Any, fill: float) -> Any:
    return where(isnan(x), fill, x)


@public(_sum, numpy=("nansum",), face=False)
def nansum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """The sum, NaN entries counted as 0 (and given gradient 0)."""
    return sum(_without_nan(x, 0.0), axis=axis, keepdims=keepdims)


@public(_sum, numpy=("nanmean",), face=False)
def nanmean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """The mean of the entries that are not NaN."""
    present = astype(not_equal(isnan(x), True), dtype=data_of(x).dtype)
    return nansum(x, axis, keepdims) / sum(present, axis=axis, keepdims=keepdims)


@public(_max, numpy=("nanmax",), face=False)
def nanmax(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """The largest entry that is not NaN."""
    return _amax(_without_nan(x, -math.inf), axis=axis, keepdims=keepdims)


@public(_min, numpy=("nanmin",), face=False)
def nanmin(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """The smallest entry that is not NaN."""
    return _amin(_without_nan(x, math.inf), axis=axis, keepdims=keepdims)


@public(argmax, numpy=("count_nonzero",), face=False)
def count_nonzero(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """How many entries are not 0 (an integer: no gradient)."""
    nonzero = astype(not_equal(x, 0), dtype="int64")
    return sum(nonzero, axis=axis, keepdims=keepdims)
