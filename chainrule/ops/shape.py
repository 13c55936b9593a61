"""Shape ops: reshape, transpose, broadcast_to, concatenate, stack, squeeze, expand_dims, flip,
pad. All are linear, so each JVP rule is the op itself applied to the tangent."""

from __future__ import annotations

from typing import Any

from ..backends import full_for, namespace
from ..engine.declare import family, public
from ..engine.inputs import check_numeric, checked_namespace
from ..engine.op import Op, gather
from ..engine.tensor import Tensor, data_of

__all__ = [
    "reshape",
    "transpose",
    "permute",
    "matrix_transpose",
    "broadcast_to",
    "concatenate",
    "stack",
    "asarray",
    "atleast_1d",
    "atleast_2d",
    "atleast_3d",
    "hstack",
    "vstack",
    "dstack",
    "column_stack",
    "squeeze",
    "expand_dims",
    "flip",
    "pad",
    "astype",
]

defop = family("shape")


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(x.shape)


def _normalize_shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, int):
        return (shape,)
    return tuple(int(s) for s in shape)


# Shape ops are linear: each tangent rule is the op itself, applied to the tangent.
# fmt: off
reshape: Op = defop("reshape", lambda xp, x, *, shape: xp.reshape(x, shape),
    "Same data, new shape (one dimension may be -1).",
    dx=(lambda g, out, x, shape: reshape(g, shape=_shape(x)),
        "d reshape(x)/dx: the gradient is reshaped back to x's shape"),
    tx=lambda t, out, x, shape: reshape(t, shape=shape))
# fmt: on


def _inverse(axes: tuple[int, ...]) -> tuple[int, ...]:
    inv = [0] * len(axes)
    for i, a in enumerate(axes):
        inv[a] = i
    return tuple(inv)


def _transpose(xp: Any, x: Any, *, axes: tuple[int, ...]) -> Any:
    return xp.permute_dims(x, axes)


# fmt: off
_permute: Op = defop("transpose", _transpose, "Permute the axes (reverse them when axes is None).",
    numpy=(),  # (the public transpose below stands for NumPy's)
    dx=(lambda g, out, x, axes: _permute(g, axes=_inverse(axes)),
        "d transpose(x)/dx: the gradient is transposed back (inverse permutation)"),
    tx=lambda t, out, x, axes: _permute(t, axes=axes))
# fmt: on


@public(_permute, numpy=("transpose", "permute_dims"))
def transpose(x: Any, axes: Any = None) -> Any:
    """Permute the axes of ``x``; reverse them when ``axes`` is None (as ``.T``)."""
    ndim = len(x.shape)
    axes = tuple(reversed(range(ndim))) if axes is None else tuple(a % ndim for a in axes)
    return _permute(x, axes=axes)


def permute(x: Any, *axes: Any) -> Any:
    """``permute(x, 1, 0)`` or ``permute(x, (1, 0))``: PyTorch's spelling of transpose."""
    if len(axes) == 1 and not isinstance(axes[0], int):
        axes = tuple(axes[0])
    return transpose(x, axes)


@public(_permute, numpy=("matrix_transpose",), face=False)
def matrix_transpose(x: Any) -> Any:
    """Swap the last two axes."""
    ndim = len(x.shape)
    if ndim < 2:
        raise ValueError(f"matrix_transpose: needs at least 2 dimensions, got shape {_shape(x)}")
    return _permute(x, axes=(*range(ndim - 2), ndim - 1, ndim - 2))


# The engine sums a gradient back over broadcast dimensions, so the rule passes it through.
# fmt: off
broadcast_to: Op = defop("broadcast_to", lambda xp, x, *, shape: xp.broadcast_to(x, shape),
    "Repeat x along new or size-1 dimensions without copying.",
    dx=(lambda g, out, x, shape: g,
        "d broadcast_to(x)/dx: the gradient is summed over the broadcast dimensions"),
    tx=lambda t, out, x, shape: broadcast_to(t, shape=shape))
# fmt: on


def _axis_slice(ndim: int, axis: int, start: int, stop: int) -> tuple[slice, ...]:
    index = [slice(None)] * ndim
    index[axis] = slice(start, stop)
    return tuple(index)


def _concat_vjp(i: int, g: Any, out: Any, *xs: Any, axis: int) -> Any:
    ax = axis % len(out.shape)
    start = sum(x.shape[ax] for x in xs[:i])
    return g[_axis_slice(len(out.shape), ax, start, start + xs[i].shape[ax])]


def _concat_jvp(i: int, t: Any, out: Any, *xs: Any, axis: int) -> Any:
    ax = axis % len(out.shape)
    start = sum(x.shape[ax] for x in xs[:i])
    after = out.shape[ax] - start - xs[i].shape[ax]
    widths = [(0, 0)] * len(out.shape)
    widths[ax] = (start, after)
    return _pad(t, widths=tuple(widths), value=0)


# fmt: off
_concatenate: Op = defop("concatenate", lambda xp, *xs, axis: xp.concat(list(xs), axis=axis),
    "Join arrays along an existing axis.", numpy=(),
    dxs=(_concat_vjp,
         "d concatenate(x1, x2, ...)/dxi: the slice of the gradient where xi was placed"),
    txs=_concat_jvp)
# fmt: on


@public(_concatenate, numpy=("concatenate", "concat"))
def concatenate(arrays: Any, axis: int = 0) -> Any:
    """Join a sequence of arrays along an existing axis."""
    return _concatenate(*arrays, axis=axis)


def _stack_vjp(i: int, g: Any, out: Any, *xs: Any, axis: int) -> Any:
    index = [slice(None)] * len(out.shape)
    index[axis % len(out.shape)] = i  # type: ignore[call-overload]
    return g[tuple(index)]


def _stack_jvp(i: int, t: Any, out: Any, *xs: Any, axis: int) -> Any:
    ax = axis % len(out.shape)
    widths = [(0, 0)] * len(out.shape)
    widths[ax] = (i, len(xs) - i - 1)
    return _pad(expand_dims(t, axis=ax), widths=tuple(widths), value=0)


# fmt: off
_stack: Op = defop("stack", lambda xp, *xs, axis: xp.stack(list(xs), axis=axis),
    "Join arrays along a new axis.", numpy=(),
    dxs=(_stack_vjp, "d stack(x1, x2, ...)/dxi: the i-th slice of the gradient along the new axis"),
    txs=_stack_jvp)
# fmt: on


@public(_stack, numpy=("stack",))
def stack(arrays: Any, axis: int = 0) -> Any:
    """Join a sequence of arrays of equal shape along a new axis."""
    return _stack(*arrays, axis=axis)


def _ndim(x: Any) -> int:
    return len(getattr(x, "shape", ()))


@public(reshape, numpy=("atleast_1d",), face=False)
def atleast_1d(x: Any) -> Any:
    """``x`` with at least one dimension (a 0-d value becomes shape (1,))."""
    return reshape(x, shape=(1,)) if _ndim(x) == 0 else x


@public(reshape, numpy=("atleast_2d",), face=False)
def atleast_2d(x: Any) -> Any:
    """``x`` with at least two dimensions: shape (n,) becomes (1, n), as NumPy does."""
    n = _ndim(x)
    return reshape(x, shape=(1, 1) if n == 0 else (1, *x.shape)) if n < 2 else x


@public(reshape, numpy=("atleast_3d",), face=False)
def atleast_3d(x: Any) -> Any:
    """``x`` with at least three dimensions: (n,) becomes (1, n, 1), (m, n) becomes (m, n, 1)."""
    n = _ndim(x)
    if n >= 3:
        return x
    shape = {0: (1, 1, 1), 1: (1, *x.shape, 1), 2: (*x.shape, 1)}[n]
    return reshape(x, shape=shape)


@public(_concatenate, numpy=("hstack",), face=False)
def hstack(arrays: Any) -> Any:
    """Join along the second axis (the first for 1-D arrays), as ``np.hstack``."""
    xs = [atleast_1d(gather(a)) for a in arrays]
    return _concatenate(*xs, axis=0 if xs and _ndim(xs[0]) == 1 else 1)


@public(_concatenate, numpy=("vstack", "row_stack"), face=False)
def vstack(arrays: Any) -> Any:
    """Join along the first axis, 1-D arrays as rows, as ``np.vstack``."""
    return _concatenate(*[atleast_2d(gather(a)) for a in arrays], axis=0)


@public(_concatenate, numpy=("dstack",), face=False)
def dstack(arrays: Any) -> Any:
    """Join along the third axis, as ``np.dstack``."""
    return _concatenate(*[atleast_3d(gather(a)) for a in arrays], axis=2)


@public(_concatenate, numpy=("column_stack",), face=False)
def column_stack(arrays: Any) -> Any:
    """1-D arrays as columns, then joined along the second axis, as ``np.column_stack``."""
    xs = [gather(a) for a in arrays]
    return _concatenate(*[reshape(a, shape=(-1, 1)) if _ndim(a) < 2 else a for a in xs], axis=1)


@public(_stack, face=False)
def asarray(obj: Any, dtype: Any = None) -> Any:
    """``np.array(obj)`` where ``obj`` may hold Tensors: nested lists and tuples of Tensors and
    numbers become one Tensor, stacked by recorded ops, so that the gradient reaches each entry.

    >>> import chainrule as cr
    >>> x = cr.tensor(1.5, requires_grad=True)
    >>> v = cr.asarray([x, x * x, 2.0])
    >>> v.sum().backward()
    >>> float(x.grad)  # d(x + x^2 + 2)/dx = 1 + 2x
    4.0
    """
    out = gather(obj)
    if not isinstance(out, Tensor):
        data = checked_namespace(out, "asarray").asarray(out)
        check_numeric(data, obj, "asarray")
        out = Tensor(data)
    return out if dtype is None else astype(out, dtype=dtype)


def _squeeze(xp: Any, x: Any, axis: Any = None) -> Any:
    if axis is None:
        axis = tuple(i for i, n in enumerate(x.shape) if n == 1)
    return xp.squeeze(x, axis=axis)


# fmt: off
squeeze: Op = defop("squeeze", _squeeze, "Remove size-1 axes (all of them when axis is None).",
    dx=(lambda g, out, x, axis=None: reshape(g, shape=_shape(x)),
        "d squeeze(x)/dx: the gradient is reshaped back to x's shape"),
    tx=lambda t, out, x, axis=None: reshape(t, shape=_shape(out)))

expand_dims: Op = defop("expand_dims", lambda xp, x, *, axis: xp.expand_dims(x, axis=axis),
    "Insert a size-1 axis.",
    dx=(lambda g, out, x, axis: reshape(g, shape=_shape(x)),
        "d expand_dims(x)/dx: the gradient is reshaped back to x's shape"),
    tx=lambda t, out, x, axis: reshape(t, shape=_shape(out)))

flip: Op = defop("flip", lambda xp, x, axis=None: xp.flip(x, axis=axis),
    "Reverse the order of elements along the given axes (all when None).", symmetric=True,
    dx=(lambda g, out, x, axis=None: flip(g, axis=axis),
        "d flip(x)/dx: the gradient is flipped back"))
# fmt: on


def _pad_forward(xp: Any, x: Any, *, widths: tuple[tuple[int, int], ...], value: Any) -> Any:
    shape = tuple(n + a + b for n, (a, b) in zip(x.shape, widths))
    out = full_for(xp, x, shape, value)
    out[tuple(slice(a, a + n) for n, (a, _) in zip(x.shape, widths))] = x
    return out


def _unpad(g: Any, widths: tuple[tuple[int, int], ...], x: Any) -> Any:
    return g[tuple(slice(a, a + n) for n, (a, _) in zip(x.shape, widths))]


# fmt: off
_pad: Op = defop("pad", _pad_forward, "Pad with a constant value.", numpy=(),
    dx=(lambda g, out, x, widths, value: _unpad(g, widths, x),
        "d pad(x)/dx: the gradient with the padding cut away"),
    tx=lambda t, out, x, widths, value: _pad(t, widths=widths, value=0))
# fmt: on


@public(_pad, numpy=("pad",))
def pad(
    x: Any, pad_width: Any, mode: str = "constant", constant_values: Any = 0, value: Any = None
) -> Any:
    """Pad ``x`` (NumPy's ``pad_width`` forms: int, (before, after), or one pair per axis)
    with a constant, or by NumPy's modes that repeat entries of ``x``: "edge", "reflect",
    "symmetric", "wrap" (each padded entry is a copy of one entry, so its gradient goes there).
    """
    if mode not in ("constant", *_INDEX_MODES):
        raise ValueError(
            f"pad: mode {mode!r} is not supported; one of 'constant', {', '.join(_INDEX_MODES)}"
        )
    ndim = len(x.shape)
    if isinstance(pad_width, int):
        widths = ((pad_width, pad_width),) * ndim
    else:
        pw = tuple(pad_width)
        if len(pw) == 2 and all(isinstance(p, int) for p in pw):
            widths = (tuple(pw),) * ndim
        elif len(pw) == 1:
            widths = (tuple(pw[0]),) * ndim
        else:
            widths = tuple((int(a), int(b)) for a, b in pw)
    if len(widths) != ndim or any(a < 0 or b < 0 for a, b in widths):
        raise ValueError(f"pad: pad_width {pad_width!r} does not fit shape {_shape(x)}")
    if mode != "constant":
        return _pad_by_index(x, widths, mode)
    fill = constant_values if value is None else value
    return _pad(x, widths=widths, value=fill)


_INDEX_MODES = ("edge", "reflect", "symmetric", "wrap")


def _pad_by_index(x: Any, widths: tuple[tuple[int, int], ...], mode: str) -> Any:
    """Padding that copies entries of ``x``: along each axis, the entry each place copies is
    what NumPy's own pad makes of the positions 0..n-1 (read, then indexed: recorded)."""
    import numpy as np

    from .indexing import getitem

    out = x
    for axis, (before, after) in enumerate(widths):
        if before or after:
            n = _shape(out)[axis]
            if n == 0:
                raise ValueError(f"pad: mode {mode!r} cannot pad an empty axis {axis}")
            source = np.pad(np.arange(n), (before, after), mode=mode)  # type: ignore[call-overload]
            index = (slice(None),) * axis + (namespace(data_of(out)).asarray(source),)
            out = getitem(out, index=index)
    return out


def _astype(xp: Any, x: Any, *, dtype: Any) -> Any:
    if isinstance(dtype, str):
        dtype = getattr(xp, dtype)
    return xp.astype(x, dtype)


# The engine casts every gradient to its input's dtype, so the rule passes it through.
# fmt: off
astype: Op = defop("astype", _astype, "Convert to another dtype.", numpy=(),
    dx=(lambda g, out, x, dtype: g, "d astype(x)/dx = 1 (the gradient is cast back to x's dtype)"),
    tx=lambda t, out, x, dtype: astype(t, dtype=dtype))
# fmt: on
