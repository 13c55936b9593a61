"""Tensor's operators and methods: each one a call of an op or function of the op sheet.

Kept apart from :mod:`chainrule.engine.tensor` so that the Tensor class itself reads as what
it is (an array and its place in the graph) while this file is the long, flat list of
spellings (``+``, ``@``, ``.sum()``, ``.T``, ``np.tanh(t)``, ...) that users expect from NumPy
and PyTorch. The engine sits below the op sheet, so it finds the ops by name in the registry:
``t + u`` is ``OPS["add"](t, u)``, the same call path as ``cr.add(t, u)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backends import namespace
from .modes import check_not_tracing
from .registry import FUNCTIONS, OPS, numpy_functions

if TYPE_CHECKING:
    from .tensor import Tensor

__all__ = ["TensorMethods", "raw_index"]

# The registry's ops and functions, typed as what they return here: with a Tensor among their
# inputs (self), a Tensor.
_OPS: Mapping[str, Callable[..., Tensor]] = OPS
_FUNCTIONS: Mapping[str, Callable[..., Tensor]] = FUNCTIONS


def _numpy_axis(axis: Any, keepdims: bool, dim: Any, keepdim: Any) -> tuple[Any, bool]:
    """A reduction's axis and keepdims, given NumPy's names or PyTorch's (``dim``,
    ``keepdim``), not both."""
    if dim is not None:
        if axis is not None:
            raise TypeError("give axis= or dim=, not both")
        axis = dim
    if keepdim is not None:
        keepdims = bool(keepdim)
    return axis, keepdims


class TensorMethods:
    """Mixin of operators and methods for :class:`chainrule.Tensor`."""

    __slots__ = ()
    _data: Any  # (a slot of Tensor's)

    # -- operators: each a call into the op table -----------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return _OPS["add"](self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _OPS["add"](other, self)

    def __sub__(self, other: Any) -> Tensor:
        return _OPS["subtract"](self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _OPS["subtract"](other, self)

    def __mul__(self, other: Any) -> Tensor:
        return _OPS["multiply"](self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _OPS["multiply"](other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return _OPS["divide"](self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _OPS["divide"](other, self)

    def __pow__(self, other: Any) -> Tensor:
        return _OPS["power"](self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return _OPS["power"](other, self)

    def __mod__(self, other: Any) -> Tensor:
        return _OPS["remainder"](self, other)

    def __rmod__(self, other: Any) -> Tensor:
        return _OPS["remainder"](other, self)

    def __floordiv__(self, other: Any) -> Tensor:
        return _OPS["floor_divide"](self, other)

    def __rfloordiv__(self, other: Any) -> Tensor:
        return _OPS["floor_divide"](other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return _OPS["matmul"](self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _OPS["matmul"](other, self)

    def __neg__(self) -> Tensor:
        return _OPS["negative"](self)

    def __pos__(self) -> Tensor:
        return self  # type: ignore[return-value]

    def __abs__(self) -> Tensor:
        return _FUNCTIONS["abs"](self)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _FUNCTIONS["equal"](self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _FUNCTIONS["not_equal"](self, other)

    def __lt__(self, other: Any) -> Tensor:
        return _FUNCTIONS["less"](self, other)

    def __le__(self, other: Any) -> Tensor:
        return _FUNCTIONS["less_equal"](self, other)

    def __gt__(self, other: Any) -> Tensor:
        return _FUNCTIONS["greater"](self, other)

    def __ge__(self, other: Any) -> Tensor:
        return _FUNCTIONS["greater_equal"](self, other)

    def __invert__(self) -> Tensor:
        return _FUNCTIONS["logical_not"](self)

    def __and__(self, other: Any) -> Tensor:
        return _FUNCTIONS["logical_and"](self, other)

    def __or__(self, other: Any) -> Tensor:
        return _FUNCTIONS["logical_or"](self, other)

    def __getitem__(self, index: Any) -> Tensor:
        raw = raw_index(index)
        return _FUNCTIONS["getitem"](self, index=raw)

    # -- methods: the functions of the op table, PyTorch and NumPy spellings ----------------
    @property
    def T(self) -> Tensor:
        """All axes reversed (the transpose of a matrix)."""
        return _FUNCTIONS["transpose"](self)

    @property
    def mT(self) -> Tensor:
        """The last two axes swapped."""
        return _FUNCTIONS["matrix_transpose"](self)

    def reshape(self, *shape: Any) -> Tensor:
        """``t.reshape(2, 3)`` or ``t.reshape((2, 3))``; one dimension may be -1."""
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = tuple(shape[0])
        return _FUNCTIONS["reshape"](self, shape=tuple(int(s) for s in shape))

    view = reshape

    def flatten(self) -> Tensor:
        return self.reshape(-1)

    def transpose(self, *axes: Any) -> Tensor:
        """No axes: reverse them. A permutation: permute. Two axes of a tensor that is not
        2-D: swap those two (PyTorch's ``transpose(dim0, dim1)``)."""
        if not axes:
            return _FUNCTIONS["transpose"](self)
        if len(axes) == 1 and not isinstance(axes[0], int):
            axes = tuple(axes[0])
        if len(axes) == 2 and len(self._data.shape) != 2:
            order = list(range(len(self._data.shape)))
            a, b = axes[0] % len(self._data.shape), axes[1] % len(self._data.shape)
            order[a], order[b] = order[b], order[a]
            axes = tuple(order)
        return _FUNCTIONS["transpose"](self, axes)

    def permute(self, *axes: Any) -> Tensor:
        """PyTorch's name for transpose with every axis given: ``x.permute(0, 2, 1)``."""
        order = tuple(axes[0]) if len(axes) == 1 and not isinstance(axes[0], int) else axes
        return _FUNCTIONS["transpose"](self, order)

    def numel(self) -> int:
        """The number of entries (PyTorch's name for ``size``)."""
        return int(self._data.size)

    def t(self) -> Tensor:
        """The transpose of a matrix (PyTorch's ``t()``; 0-d and 1-d as they are)."""
        if len(self._data.shape) < 2:
            return self  # type: ignore[return-value]
        return _FUNCTIONS["transpose"](self, None)

    def matmul(self, other: Any) -> Tensor:
        return _FUNCTIONS["matmul"](self, other)

    def float(self) -> Tensor:
        """A float32 copy (PyTorch's ``float()``), recorded like ``astype``."""
        return _FUNCTIONS["astype"](self, dtype="float32")

    def double(self) -> Tensor:
        """A float64 copy (PyTorch's ``double()``), recorded like ``astype``."""
        return _FUNCTIONS["astype"](self, dtype="float64")

    def astype(self, dtype: Any) -> Tensor:
        return _FUNCTIONS["astype"](self, dtype=dtype)

    def squeeze(self, axis: Any = None) -> Tensor:
        return _FUNCTIONS["squeeze"](self, axis=axis)

    def expand_dims(self, axis: int) -> Tensor:
        return _FUNCTIONS["expand_dims"](self, axis=axis)

    unsqueeze = expand_dims

    def broadcast_to(self, shape: Any) -> Tensor:
        return _FUNCTIONS["broadcast_to"](self, shape=tuple(shape))

    def sum(
        self, axis: Any = None, keepdims: bool = False, *, dim: Any = None, keepdim: Any = None
    ) -> Tensor:
        axis, keepdims = _numpy_axis(axis, keepdims, dim, keepdim)
        return _FUNCTIONS["sum"](self, axis=axis, keepdims=keepdims)

    def mean(
        self, axis: Any = None, keepdims: bool = False, *, dim: Any = None, keepdim: Any = None
    ) -> Tensor:
        axis, keepdims = _numpy_axis(axis, keepdims, dim, keepdim)
        return _FUNCTIONS["mean"](self, axis=axis, keepdims=keepdims)

    def var(
        self, axis: Any = None, keepdims: bool = False, ddof: Any = 0, *, dim: Any = None,
        keepdim: Any = None,
    ) -> Tensor:  # fmt: skip
        axis, keepdims = _numpy_axis(axis, keepdims, dim, keepdim)
        return _FUNCTIONS["var"](self, axis=axis, keepdims=keepdims, ddof=ddof)

    def std(
        self, axis: Any = None, keepdims: bool = False, ddof: Any = 0, *, dim: Any = None,
        keepdim: Any = None,
    ) -> Tensor:  # fmt: skip
        axis, keepdims = _numpy_axis(axis, keepdims, dim, keepdim)
        return _FUNCTIONS["std"](self, axis=axis, keepdims=keepdims, ddof=ddof)

    def max(
        self, axis: Any = None, keepdims: bool = False, *, dim: Any = None, keepdim: Any = None
    ) -> Tensor:
        axis, keepdims = _numpy_axis(axis, keepdims, dim, keepdim)
        return _FUNCTIONS["max"](self, axis=axis, keepdims=keepdims)

    def min(
        self, axis: Any = None, keepdims: bool = False, *, dim: Any = None, keepdim: Any = None
    ) -> Tensor:
        axis, keepdims = _numpy_axis(axis, keepdims, dim, keepdim)
        return _FUNCTIONS["min"](self, axis=axis, keepdims=keepdims)

    def argmax(
        self, axis: Any = None, keepdims: bool = False, *, dim: Any = None, keepdim: Any = None
    ) -> Tensor:
        axis, keepdims = _numpy_axis(axis, keepdims, dim, keepdim)
        return _FUNCTIONS["argmax"](self, axis=axis, keepdims=keepdims)

    def argmin(
        self, axis: Any = None, keepdims: bool = False, *, dim: Any = None, keepdim: Any = None
    ) -> Tensor:
        axis, keepdims = _numpy_axis(axis, keepdims, dim, keepdim)
        return _FUNCTIONS["argmin"](self, axis=axis, keepdims=keepdims)

    def all(
        self, axis: Any = None, keepdims: bool = False, *, dim: Any = None, keepdim: Any = None
    ) -> Tensor:
        axis, keepdims = _numpy_axis(axis, keepdims, dim, keepdim)
        return _FUNCTIONS["all"](self, axis=axis, keepdims=keepdims)

    def any(
        self, axis: Any = None, keepdims: bool = False, *, dim: Any = None, keepdim: Any = None
    ) -> Tensor:
        axis, keepdims = _numpy_axis(axis, keepdims, dim, keepdim)
        return _FUNCTIONS["any"](self, axis=axis, keepdims=keepdims)

    def logsumexp(
        self, axis: Any = None, keepdims: bool = False, *, dim: Any = None, keepdim: Any = None
    ) -> Tensor:
        axis, keepdims = _numpy_axis(axis, keepdims, dim, keepdim)
        return _FUNCTIONS["logsumexp"](self, axis=axis, keepdims=keepdims)

    def softmax(self, axis: int = -1, *, dim: Any = None) -> Tensor:
        return _FUNCTIONS["softmax"](self, axis=axis if dim is None else dim)

    def log_softmax(self, axis: int = -1, *, dim: Any = None) -> Tensor:
        return _FUNCTIONS["log_softmax"](self, axis=axis if dim is None else dim)

    def exp(self) -> Tensor:
        return _FUNCTIONS["exp"](self)

    def log(self) -> Tensor:
        return _FUNCTIONS["log"](self)

    def sqrt(self) -> Tensor:
        return _FUNCTIONS["sqrt"](self)

    def tanh(self) -> Tensor:
        return _FUNCTIONS["tanh"](self)

    def sigmoid(self) -> Tensor:
        return _FUNCTIONS["sigmoid"](self)

    def relu(self) -> Tensor:
        return _FUNCTIONS["relu"](self)

    def abs(self) -> Tensor:
        return _FUNCTIONS["abs"](self)

    def clip(self, min: Any = None, max: Any = None) -> Tensor:
        return _FUNCTIONS["clip"](self, min=min, max=max)

    clamp = clip

    def dot(self, other: Any) -> Tensor:
        return _FUNCTIONS["dot"](self, other)

    # -- NumPy's protocols: np.tanh(t), np.sum(t), ndarray @ t are recorded ----------------
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return _array_ufunc(self, ufunc, method, *inputs, **kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        return _array_function(self, func, types, args, kwargs)


# The NumPy functions the op sheet stands for (each op names them), looked up on first use:
# nothing here lists ops.
_BY_NAME: dict[str, Any] = {}
_BY_FUNCTION: dict[Any, Any] = {}


def _load() -> None:
    if _BY_NAME:
        return
    _BY_NAME.update(numpy_functions())
    for name, fn in _BY_NAME.items():
        np_fn: Any = np
        for part in name.split("."):  # "linalg.norm" is np.linalg.norm
            np_fn = getattr(np_fn, part, None)
        if np_fn is not None:
            _BY_FUNCTION[np_fn] = fn


def _array_ufunc(self: Any, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
    _load()
    fn = _BY_NAME.get(ufunc.__name__)
    if method != "__call__" or fn is None:
        what = f"numpy.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
        raise TypeError(_unsupported(what, ufunc.__name__))
    if kwargs:
        raise TypeError(
            f"numpy.{ufunc.__name__}: keyword arguments {sorted(kwargs)} are not supported on "
            "chainrule Tensors"
        )
    return fn(*inputs)


# Functions that only read metadata: answered from the tensor, nothing to record.
def _size(t: Any, axis: int | None = None) -> int:
    return int(t.size if axis is None else t.shape[axis])


_METADATA: dict[Any, Any] = {
    np.shape: lambda t: t.shape,
    np.ndim: lambda t: t.ndim,
    np.size: _size,
    np.iscomplexobj: lambda t: getattr(t.dtype, "kind", "") == "c",
    np.isrealobj: lambda t: getattr(t.dtype, "kind", "") != "c",
}


def _array_function(self: Any, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
    _load()
    if func in _METADATA:
        return _METADATA[func](*args, **kwargs)
    fn = _BY_FUNCTION.get(func)
    if fn is None:
        raise TypeError(_unsupported(f"numpy.{func.__name__}", func.__name__))
    return fn(*args, **kwargs)


def _unsupported(what: str, name: str) -> str:
    """The error for a NumPy function chainrule cannot record: what it is, the nearest ones
    it can, and how to use the value as a constant instead."""
    import difflib

    near = difflib.get_close_matches(name, list(_BY_NAME), n=3, cutoff=0.6)
    hint = f" (nearest supported: {', '.join('np.' + n for n in near)})" if near else ""
    return (
        f"{what} is not supported on chainrule Tensors: it would not be recorded, so no "
        f"gradient could flow through it{hint}. Use chainrule's functions (cr.ops.table() "
        "lists them), or, to use the value as a constant, call it on t.detach().numpy()"
    )


# an index is a parameter of getitem, not an input: traced, a Tensor's values would be frozen
# into the program (an argument's, or one computed from the inputs, like an argmax)
_TENSOR_INDEX = "an index that is a Tensor (the program would keep the values it was traced with)"


def raw_index(index: Any) -> Any:
    if isinstance(index, TensorMethods):
        check_not_tracing(_TENSOR_INDEX)
        return index._data
    if isinstance(index, tuple):
        if any(isinstance(i, TensorMethods) for i in index):
            check_not_tracing(_TENSOR_INDEX)
        return tuple(i._data if isinstance(i, TensorMethods) else i for i in index)
    if isinstance(index, list):
        return namespace().asarray(index)
    return index
