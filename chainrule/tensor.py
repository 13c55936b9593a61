"""Tensor: an array plus its place in the computation graph.

A Tensor made by an op is a node of the graph: ``_node`` holds ``(op, inputs, params, epoch,
where)`` — the primitive that made it, the values it was applied to (Tensors, arrays or
numbers), the op's keyword parameters, the in-place counter at recording time and, while
anomaly detection is on, the file and line of user code that made it. A leaf (a source: data,
parameters) has ``_node = None``. Nodes point only at their inputs, so a graph has no
reference cycles and is freed by reference counting the moment the sink is dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from . import _state
from . import ops as F
from .backend import namespace, to_numpy
from .ops._registry import Op, Traced

__all__ = ["Tensor", "tensor"]

_local = _state.local


class Tensor(Traced):
    """An array that records the operations applied to it, so that gradients can flow back.

    Make one with :func:`chainrule.tensor`. ``.data`` is the underlying array (NumPy by
    default, or any array-API array such as CuPy's).

    >>> import chainrule as cr
    >>> x = cr.tensor([1.0, 2.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    tensor([2., 4.])
    """

    __slots__ = ("data", "_rg", "_node", "_grad", "_version", "_name", "__weakref__")
    __hash__ = object.__hash__  # == is elementwise, identity is the hash
    # Tensors win over ndarrays in mixed operators: ndarray + tensor -> Tensor.__radd__.
    __array_priority__ = 1000

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        self.data = data
        self._rg = False
        self._node: tuple[Any, ...] | None = None
        self._grad: Any = None
        self._version = 0
        if requires_grad:
            self.requires_grad = True

    # -- attributes ---------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        """Whether gradients flow to this tensor. Only floating-point tensors may ask."""
        return self._rg

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if flag:
            _check_float(self.data, "requires_grad=True")
        elif self._node is not None:
            raise RuntimeError(
                "requires_grad: cannot switch off gradients of a tensor made by an op "
                f"({self._node[0].name}); use .detach() to get a tensor outside the graph"
            )
        self._rg = bool(flag)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        """Set ``requires_grad`` in place and return the tensor."""
        self.requires_grad = flag
        return self

    @property
    def grad(self) -> Tensor | None:
        """The gradient accumulated by ``backward()`` (leaves, and nodes that called
        ``retain_grad()``); ``None`` before any."""
        g = self._grad
        return g if isinstance(g, Tensor) else None

    @grad.setter
    def grad(self, value: Any) -> None:
        if value is not None:
            value = value if isinstance(value, Tensor) else Tensor(value)
            if tuple(value.shape) != tuple(self.shape):
                raise ValueError(
                    f"grad: shape {tuple(value.shape)} does not match the tensor's "
                    f"shape {tuple(self.shape)}"
                )
        self._grad = value

    @property
    def is_leaf(self) -> bool:
        """True for a source of the graph (not made by a recorded op)."""
        return self._node is None

    @property
    def op(self) -> str | None:
        """Name of the op that made this tensor, or ``None`` for a leaf."""
        return None if self._node is None else self._node[0].name

    @property
    def name(self) -> str | None:
        """An optional label, shown in graph pictures and explanations."""
        return getattr(self, "_name", None)

    @name.setter
    def name(self, value: str | None) -> None:
        self._name = value

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return len(self.data.shape)

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def size(self) -> int:
        n = 1
        for d in self.data.shape:
            n *= d
        return n

    @property
    def xp(self) -> Any:
        """The array namespace of ``.data`` (``numpy`` by default)."""
        return namespace(self.data)

    # -- conversion ---------------------------------------------------------------------
    def numpy(self) -> Any:
        """The value as a NumPy array (no copy for NumPy data)."""
        return to_numpy(self.data)

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        if self.size != 1:
            raise ValueError(f"item: the tensor has shape {self.shape}; only one-element tensors")
        return to_numpy(self.data).item()

    def tolist(self) -> Any:
        return to_numpy(self.data).tolist()

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        out = to_numpy(self.data)
        return out if dtype is None else out.astype(dtype, copy=False)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        return bool(self.data)

    def __len__(self) -> int:
        if not self.data.shape:
            raise TypeError("len() of a 0-d tensor")
        return int(self.data.shape[0])

    def __iter__(self) -> Iterator[Tensor]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        import numpy as np

        body = np.array2string(to_numpy(self.data), separator=", ", prefix="tensor(")
        extra = ""
        if self._node is not None:
            extra = f", op={self._node[0].name}"
        elif self._rg:
            extra = ", requires_grad=True"
        if getattr(self, "_name", None):
            extra += f", name={self._name!r}"
        dt = self.data.dtype
        if str(dt) not in ("float64", "int64", "bool"):
            extra += f", dtype={dt}"
        return f"tensor({body}{extra})"

    # -- graph --------------------------------------------------------------------------
    def backward(
        self,
        grad: Any = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        inputs: Any = None,
    ) -> None:
        """Backpropagate from this tensor: fill ``.grad`` of every leaf it depends on.

        ``grad`` is the gradient of the final result with respect to this tensor (needed
        unless it has one element). Gradients accumulate into ``.grad`` as in PyTorch.
        ``retain_graph=True`` keeps the graph for another backward pass; ``create_graph=True``
        records the backward pass itself so that the gradients can be differentiated again.
        """
        from .graph import backward

        backward(self, grad, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    def retain_grad(self) -> Tensor:
        """Ask ``backward()`` to keep this (non-leaf) tensor's gradient in ``.grad``."""
        if self._node is not None and self._grad is None:
            self._grad = _RETAIN
        return self

    def detach(self) -> Tensor:
        """The same data as a new leaf outside the graph (shares memory)."""
        return Tensor(self.data)

    def zero_grad(self) -> None:
        self._grad = None

    # -- operators: each a call into the op table -----------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return F.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return F.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return F.subtract(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return F.subtract(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return F.multiply(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return F.multiply(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return F.divide(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return F.divide(other, self)

    def __pow__(self, other: Any) -> Tensor:
        return F.power(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return F.power(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return F.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return F.matmul(other, self)

    def __neg__(self) -> Tensor:
        return F.negative(self)

    def __pos__(self) -> Tensor:
        return self

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
        if len(axes) == 2 and self.ndim != 2:
            order = list(range(self.ndim))
            a, b = axes[0] % self.ndim, axes[1] % self.ndim
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

    # -- in-place updates ---------------------------------------------------------------
    def _inplace(self, op: Op, other: Any) -> Tensor:
        other_rg = isinstance(other, Tensor) and other._rg
        if _local.grad_enabled and (self._rg or other_rg):
            if self._node is None and self._rg:
                raise RuntimeError(
                    f"in-place {op.name} on a leaf tensor that requires grad would lose its "
                    "gradient; update parameters inside `with cr.no_grad():`, or write "
                    f"`x = x {_SYMBOL.get(op.name, op.name)} y` to record a new node"
                )
            # Functional update: the name is rebound to a new recorded tensor, earlier uses of
            # the old value in the graph stay correct.
            return op(self, other)
        raw = other.data if isinstance(other, Tensor) else other
        result = op.forward(namespace(self.data, raw), self.data, raw)
        if tuple(result.shape) != tuple(self.data.shape):
            raise ValueError(
                f"in-place {op.name}: the result has shape {tuple(result.shape)}, the tensor "
                f"{tuple(self.data.shape)}; an in-place update cannot change the shape"
            )
        if result.dtype != self.data.dtype:
            kind_new = getattr(result.dtype, "kind", "f")
            if getattr(self.data.dtype, "kind", "f") in "iub" and kind_new in "fc":
                raise TypeError(
                    f"in-place {op.name}: the result is {result.dtype} but the tensor is "
                    f"{self.data.dtype}; it cannot hold it without truncating. Write "
                    f"`x = x {_SYMBOL.get(op.name, op.name)} y` or convert x to float first"
                )
            result = namespace(result).astype(result, self.data.dtype)
        try:
            self.data[...] = result
        except (TypeError, ValueError):  # NumPy scalars and read-only arrays: rebind
            self.data = result
        self._version = _state.bump_epoch()
        return self

    def __iadd__(self, other: Any) -> Tensor:
        return self._inplace(F.add, other)

    def __isub__(self, other: Any) -> Tensor:
        return self._inplace(F.subtract, other)

    def __imul__(self, other: Any) -> Tensor:
        return self._inplace(F.multiply, other)

    def __itruediv__(self, other: Any) -> Tensor:
        return self._inplace(F.divide, other)

    def __setitem__(self, index: Any, value: Any) -> None:
        if _local.grad_enabled and (self._rg or (isinstance(value, Tensor) and value._rg)):
            raise RuntimeError(
                "item assignment on a tensor in the graph is not recorded; use cr.where(mask, "
                "new, x) or build the tensor with cr.concatenate/cr.stack, or assign inside "
                "`with cr.no_grad():`"
            )
        raw = value.data if isinstance(value, Tensor) else value
        self.data[_raw_index(index)] = raw
        self._version = _state.bump_epoch()


_RETAIN = object()  # marks a non-leaf tensor whose gradient backward() should keep
_SYMBOL = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/"}


def _check_float(data: Any, what: str) -> None:
    kind = getattr(data.dtype, "kind", None)
    if kind is None:  # array-API dtypes have no .kind
        xp = namespace(data)
        ok = xp.isdtype(data.dtype, "real floating")
    else:
        ok = kind == "f"
    if not ok:
        raise TypeError(
            f"{what}: only floating-point tensors can require gradients, this one is "
            f"{data.dtype}; make it with dtype=float64 (or float32), e.g. "
            "cr.tensor([1, 2], dtype='float64', requires_grad=True)"
        )


def _raw_index(index: Any) -> Any:
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return namespace().asarray(index)
    return index


def tensor(
    data: Any,
    dtype: Any = None,
    requires_grad: bool = False,
    name: str | None = None,
) -> Tensor:
    """Make a leaf tensor from an array, nested lists or a number (the data is copied).

    Python floats give float64 and Python ints int64, as in NumPy; an array keeps its dtype
    (float32 stays float32) unless ``dtype`` is given. Arrays of other array-API namespaces
    (CuPy, ...) stay in their namespace.

    >>> import chainrule as cr
    >>> cr.tensor([1.0, 2.0]).dtype
    dtype('float64')
    >>> cr.tensor(3.0, requires_grad=True, name="x")
    tensor(3., requires_grad=True, name='x')
    """
    if isinstance(data, Tensor):
        data = data.data
    xp = namespace(data)
    if isinstance(dtype, str):
        dtype = getattr(xp, dtype)
    arr = xp.asarray(data, dtype=dtype, copy=True) if dtype is not None else _copy(xp, data)
    t = Tensor(arr, requires_grad=requires_grad)
    if name is not None:
        t._name = name
    return t


def _copy(xp: Any, data: Any) -> Any:
    try:
        return xp.asarray(data, copy=True)
    except TypeError:  # NumPy < 2 has no copy= on asarray
        return xp.array(data, copy=True)
