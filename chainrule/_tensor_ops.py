"""Tensor's operators and methods: each one a call into the op table.

Kept apart from :mod:`chainrule.tensor` so that the Tensor class itself reads as what it is —
an array and its place in the graph — while this file is the long, flat list of spellings
(``+``, ``@``, ``.sum()``, ``.T``, ...) that users expect from NumPy and PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _state
from . import ops as F
from .backend import namespace
from .ops import _registry as _R
from .ops._registry import Traced

if TYPE_CHECKING:
    from .tensor import Tensor

__all__ = ["TensorOps"]

# NOTE: the operators go straight to the recording function (self is a Tensor, so the op's
# own check for one is not needed): the most used path in the library. Never mutated.
_NO_PARAMS: dict[str, Any] = {}


class TensorOps:
    """Mixin of operators and methods for :class:`chainrule.Tensor`."""

    __slots__ = ()
    data: Any

    # -- operators: each a call into the op table -----------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return _R._apply(F.add, (self, other), _NO_PARAMS)  # type: ignore[misc]

    def __radd__(self, other: Any) -> Tensor:
        return _R._apply(F.add, (other, self), _NO_PARAMS)  # type: ignore[misc]

    def __sub__(self, other: Any) -> Tensor:
        return _R._apply(F.subtract, (self, other), _NO_PARAMS)  # type: ignore[misc]

    def __rsub__(self, other: Any) -> Tensor:
        return _R._apply(F.subtract, (other, self), _NO_PARAMS)  # type: ignore[misc]

    def __mul__(self, other: Any) -> Tensor:
        return _R._apply(F.multiply, (self, other), _NO_PARAMS)  # type: ignore[misc]

    def __rmul__(self, other: Any) -> Tensor:
        return _R._apply(F.multiply, (other, self), _NO_PARAMS)  # type: ignore[misc]

    def __truediv__(self, other: Any) -> Tensor:
        return _R._apply(F.divide, (self, other), _NO_PARAMS)  # type: ignore[misc]

    def __rtruediv__(self, other: Any) -> Tensor:
        return _R._apply(F.divide, (other, self), _NO_PARAMS)  # type: ignore[misc]

    def __pow__(self, other: Any) -> Tensor:
        return _R._apply(F.power, (self, other), _NO_PARAMS)  # type: ignore[misc]

    def __rpow__(self, other: Any) -> Tensor:
        return _R._apply(F.power, (other, self), _NO_PARAMS)  # type: ignore[misc]

    def __matmul__(self, other: Any) -> Tensor:
        return _R._apply(F.matmul, (self, other), _NO_PARAMS)  # type: ignore[misc]

    def __rmatmul__(self, other: Any) -> Tensor:
        return _R._apply(F.matmul, (other, self), _NO_PARAMS)  # type: ignore[misc]

    def __neg__(self) -> Tensor:
        return _R._apply(F.negative, (self,), _NO_PARAMS)  # type: ignore[misc]

    def __pos__(self) -> Tensor:
        return self  # type: ignore[return-value]

    def __abs__(self) -> Tensor:
        return F.abs(self)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return F.equal(self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return F.not_equal(self, other)

    def __lt__(self, other: Any) -> Tensor:
        return F.less(self, other)

    def __le__(self, other: Any) -> Tensor:
        return F.less_equal(self, other)

    def __gt__(self, other: Any) -> Tensor:
        return F.greater(self, other)

    def __ge__(self, other: Any) -> Tensor:
        return F.greater_equal(self, other)

    def __invert__(self) -> Tensor:
        return F.logical_not(self)

    def __and__(self, other: Any) -> Tensor:
        return F.logical_and(self, other)

    def __or__(self, other: Any) -> Tensor:
        return F.logical_or(self, other)

    def __getitem__(self, index: Any) -> Tensor:
        raw = _raw_index(index)
        return F.getitem(self, index=raw)

    # -- methods: the functions of the op table, PyTorch and NumPy spellings ----------------
    @property
    def T(self) -> Tensor:
        """All axes reversed (the transpose of a matrix)."""
        return F.transpose(self)

    @property
    def mT(self) -> Tensor:
        """The last two axes swapped."""
        return F.matrix_transpose(self)

    def reshape(self, *shape: Any) -> Tensor:
        """``t.reshape(2, 3)`` or ``t.reshape((2, 3))``; one dimension may be -1."""
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = tuple(shape[0])
        return F.reshape(self, shape=tuple(int(s) for s in shape))

    view = reshape

    def flatten(self) -> Tensor:
        return self.reshape(-1)

    def transpose(self, *axes: Any) -> Tensor:
        """No axes: reverse them. A permutation: permute. Two axes of a tensor that is not
        2-D: swap those two (PyTorch's ``transpose(dim0, dim1)``)."""
        if not axes:
            return F.transpose(self)
        if len(axes) == 1 and not isinstance(axes[0], int):
            axes = tuple(axes[0])
        if len(axes) == 2 and len(self.data.shape) != 2:
            order = list(range(len(self.data.shape)))
            a, b = axes[0] % len(self.data.shape), axes[1] % len(self.data.shape)
            order[a], order[b] = order[b], order[a]
            axes = tuple(order)
        return F.transpose(self, axes)

    def permute(self, *axes: Any) -> Tensor:
        return F.permute(self, *axes)

    def astype(self, dtype: Any) -> Tensor:
        return F.astype(self, dtype=dtype)

    def squeeze(self, axis: Any = None) -> Tensor:
        return F.squeeze(self, axis=axis)

    def expand_dims(self, axis: int) -> Tensor:
        return F.expand_dims(self, axis=axis)

    unsqueeze = expand_dims

    def broadcast_to(self, shape: Any) -> Tensor:
        return F.broadcast_to(self, shape=tuple(shape))

    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return F.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return F.mean(self, axis=axis, keepdims=keepdims)

    def var(self, axis: Any = None, keepdims: bool = False, ddof: Any = 0) -> Tensor:
        return F.var(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def std(self, axis: Any = None, keepdims: bool = False, ddof: Any = 0) -> Tensor:
        return F.std(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return F.max(self, axis=axis, keepdims=keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return F.min(self, axis=axis, keepdims=keepdims)

    def argmax(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return F.argmax(self, axis=axis, keepdims=keepdims)

    def argmin(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return F.argmin(self, axis=axis, keepdims=keepdims)

    def all(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return F.all(self, axis=axis, keepdims=keepdims)

    def any(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return F.any(self, axis=axis, keepdims=keepdims)

    def logsumexp(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return F.logsumexp(self, axis=axis, keepdims=keepdims)

    def softmax(self, axis: int = -1) -> Tensor:
        return F.softmax(self, axis=axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        return F.log_softmax(self, axis=axis)

    def exp(self) -> Tensor:
        return F.exp(self)

    def log(self) -> Tensor:
        return F.log(self)

    def sqrt(self) -> Tensor:
        return F.sqrt(self)

    def tanh(self) -> Tensor:
        return F.tanh(self)

    def sigmoid(self) -> Tensor:
        return F.sigmoid(self)

    def relu(self) -> Tensor:
        return F.relu(self)

    def abs(self) -> Tensor:
        return F.abs(self)

    def clip(self, min: Any = None, max: Any = None) -> Tensor:
        return F.clip(self, min=min, max=max)

    clamp = clip

    def dot(self, other: Any) -> Tensor:
        return F.dot(self, other)


# an index is a parameter of getitem, not an input: traced, a Tensor's values would be frozen
# into the program (an argument's, or one computed from the inputs, like an argmax)
_TENSOR_INDEX = "an index that is a Tensor (the program would keep the values it was traced with)"


def _raw_index(index: Any) -> Any:
    if isinstance(index, Traced):
        _state.check_not_tracing(_TENSOR_INDEX)
        return index.data
    if isinstance(index, tuple):
        if any(isinstance(i, Traced) for i in index):
            _state.check_not_tracing(_TENSOR_INDEX)
        return tuple(i.data if isinstance(i, Traced) else i for i in index)
    if isinstance(index, list):
        return namespace().asarray(index)
    return index
