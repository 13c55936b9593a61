"""Constructors: zeros, ones, full, arange, linspace, eye and the *_like family."""

from __future__ import annotations

from typing import Any

from ..backends import namespace
from ..engine.declare import public
from ..engine.tensor import Tensor
from .reductions import argmax

__all__ = [
    "zeros",
    "ones",
    "full",
    "empty",
    "arange",
    "linspace",
    "eye",
    "zeros_like",
    "ones_like",
    "full_like",
    "empty_like",
]


def _dtype(xp: Any, dtype: Any, default: Any = None) -> Any:
    if dtype is None:
        return default
    return getattr(xp, dtype) if isinstance(dtype, str) else dtype


def _shape(shape: Any) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)


def _leaf(data: Any, requires_grad: bool) -> Tensor:
    return Tensor(data, requires_grad=requires_grad)


def zeros(shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros (float64 unless ``dtype`` says otherwise).

    >>> import chainrule as cr
    >>> cr.zeros((2, 3)).shape
    (2, 3)
    """
    xp = namespace()
    return _leaf(xp.zeros(_shape(shape), dtype=_dtype(xp, dtype, xp.float64)), requires_grad)


def ones(shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones (float64 unless ``dtype`` says otherwise)."""
    xp = namespace()
    return _leaf(xp.ones(_shape(shape), dtype=_dtype(xp, dtype, xp.float64)), requires_grad)


def empty(shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """An uninitialized tensor (zeros here: reading garbage helps nobody)."""
    return zeros(shape, dtype, requires_grad)


def full(shape: Any, fill_value: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor filled with ``fill_value`` (its dtype follows NumPy's rules unless given)."""
    xp = namespace()
    return _leaf(xp.full(_shape(shape), fill_value, dtype=_dtype(xp, dtype)), requires_grad)


def arange(
    start: Any, stop: Any = None, step: Any = 1, dtype: Any = None, requires_grad: bool = False
) -> Tensor:
    """Evenly spaced values in [start, stop), as NumPy's ``arange``.

    >>> import chainrule as cr
    >>> cr.arange(3).tolist()
    [0, 1, 2]
    """
    xp = namespace()
    return _leaf(xp.arange(start, stop, step, dtype=_dtype(xp, dtype)), requires_grad)


def linspace(
    start: Any,
    stop: Any,
    num: int = 50,
    dtype: Any = None,
    endpoint: bool = True,
    requires_grad: bool = False,
) -> Tensor:
    """``num`` evenly spaced values from start to stop."""
    xp = namespace()
    data = xp.linspace(start, stop, num, dtype=_dtype(xp, dtype, xp.float64), endpoint=endpoint)
    return _leaf(data, requires_grad)


def eye(
    n: int, m: int | None = None, k: int = 0, dtype: Any = None, requires_grad: bool = False
) -> Tensor:
    """The identity matrix (ones on the k-th diagonal)."""
    xp = namespace()
    return _leaf(xp.eye(n, m, k=k, dtype=_dtype(xp, dtype, xp.float64)), requires_grad)


def _like(x: Any, numpy: dict[str, Any]) -> tuple[Any, Any]:
    unknown = set(numpy) - {"order", "subok", "device"}  # NumPy's, with no meaning here
    if unknown:
        raise TypeError(f"unexpected keyword arguments {sorted(unknown)}")
    data = x._data if isinstance(x, Tensor) else x
    if not hasattr(data, "shape"):
        data = namespace(data).asarray(data)
    return namespace(data), data


# The *_like family answers NumPy's calls on Tensors too (np.zeros_like(t)): a constant of
# t's shape and dtype, which records nothing. (Declared on argmax, an op of no gradient, for
# the table: they are "composed" functions without a derivative.)
@public(argmax, numpy=("zeros_like",), face=False)
def zeros_like(
    x: Any, dtype: Any = None, requires_grad: bool = False, *, shape: Any = None, **numpy: Any
) -> Tensor:
    """Zeros with the shape (or ``shape``), dtype and array namespace of ``x``."""
    xp, data = _like(x, numpy)
    if shape is not None:
        return _leaf(xp.zeros(_shape(shape), dtype=_dtype(xp, dtype, data.dtype)), requires_grad)
    return _leaf(xp.zeros_like(data, dtype=_dtype(xp, dtype)), requires_grad)


@public(argmax, numpy=("ones_like",), face=False)
def ones_like(
    x: Any, dtype: Any = None, requires_grad: bool = False, *, shape: Any = None, **numpy: Any
) -> Tensor:
    """Ones with the shape (or ``shape``), dtype and array namespace of ``x``."""
    xp, data = _like(x, numpy)
    if shape is not None:
        return _leaf(xp.ones(_shape(shape), dtype=_dtype(xp, dtype, data.dtype)), requires_grad)
    return _leaf(xp.ones_like(data, dtype=_dtype(xp, dtype)), requires_grad)


@public(argmax, numpy=("full_like",), face=False)
def full_like(
    x: Any,
    fill_value: Any,
    dtype: Any = None,
    requires_grad: bool = False,
    *,
    shape: Any = None,
    **numpy: Any,
) -> Tensor:
    """``fill_value`` with the shape (or ``shape``), dtype and array namespace of ``x``."""
    xp, data = _like(x, numpy)
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.detach()._data
    target = _shape(shape) if shape is not None else tuple(data.shape)
    return _leaf(xp.full(target, fill_value, dtype=_dtype(xp, dtype, data.dtype)), requires_grad)


@public(argmax, numpy=("empty_like",), face=False)
def empty_like(
    x: Any, dtype: Any = None, requires_grad: bool = False, *, shape: Any = None, **numpy: Any
) -> Tensor:
    """Zeros like ``x`` (reading uninitialised memory helps nobody)."""
    out: Tensor = zeros_like(x, dtype, requires_grad, shape=shape, **numpy)
    return out
