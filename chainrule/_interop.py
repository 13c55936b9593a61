"""NumPy interoperability: ``np.tanh(t)``, ``np.sum(t)``, ``ndarray @ t`` are recorded.

The mapping from NumPy functions to chainrule's comes from the op table (each op names the
NumPy functions it stands for); nothing here lists ops.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .ops._registry import numpy_functions

__all__ = ["install"]

_BY_NAME: dict[str, Any] = {}
_BY_FUNCTION: dict[Any, Any] = {}


def _load() -> None:
    if _BY_NAME:
        return
    _BY_NAME.update(numpy_functions())
    for name, fn in _BY_NAME.items():
        np_fn = getattr(np, name, None)
        if np_fn is not None:
            _BY_FUNCTION[np_fn] = fn


def _array_ufunc(self: Any, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
    _load()
    fn = _BY_NAME.get(ufunc.__name__)
    if method != "__call__" or fn is None:
        what = f"numpy.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
        raise TypeError(
            f"{what} is not supported on chainrule Tensors (it would not be recorded); use "
            "chainrule's functions (see cr.ops.table()) or convert with t.numpy() first"
        )
    if kwargs:
        raise TypeError(
            f"numpy.{ufunc.__name__}: keyword arguments {sorted(kwargs)} are not supported on "
            "chainrule Tensors"
        )
    return fn(*inputs)


# Functions that only read metadata: answered from the tensor, nothing to record.
def _size(t: Any, axis: int | None = None) -> int:
    return t.size if axis is None else t.shape[axis]


_METADATA: dict[Any, Any] = {
    np.shape: lambda t: t.shape,
    np.ndim: lambda t: t.ndim,
    np.size: _size,
}


def _array_function(self: Any, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
    _load()
    if func in _METADATA:
        return _METADATA[func](*args, **kwargs)
    fn = _BY_FUNCTION.get(func)
    if fn is None:
        raise TypeError(
            f"numpy.{func.__name__} is not supported on chainrule Tensors (it would not be "
            "recorded); use chainrule's functions (see cr.ops.table()) or convert with "
            "t.numpy() first"
        )
    return fn(*args, **kwargs)


def install(cls: type) -> None:
    cls.__array_ufunc__ = _array_ufunc  # type: ignore[attr-defined]
    cls.__array_function__ = _array_function  # type: ignore[attr-defined]
