"""Operators and methods of Tensor, each a thin call into the op table."""

from __future__ import annotations

from typing import Any

from . import ops as F

__all__ = ["install"]


def _reshape(self: Any, *shape: Any) -> Any:
    if len(shape) == 1 and not isinstance(shape[0], int):
        shape = tuple(shape[0])
    return F.reshape(self, shape=tuple(int(s) for s in shape))


def _transpose(self: Any, *axes: Any) -> Any:
    if not axes:
        return F.transpose(self)
    if len(axes) == 1 and not isinstance(axes[0], int):
        axes = tuple(axes[0])
    if len(axes) == 2 and self.ndim != 2:  # PyTorch's transpose(dim0, dim1): swap two axes
        order = list(range(self.ndim))
        a, b = axes[0] % self.ndim, axes[1] % self.ndim
        order[a], order[b] = order[b], order[a]
        axes = tuple(order)
    return F.transpose(self, axes)


def _getitem(self: Any, index: Any) -> Any:
    from .tensor import Tensor, _raw_index

    raw = _raw_index(index)
    parts = raw if isinstance(raw, tuple) else (raw,)
    for p in parts:
        if isinstance(p, Tensor):
            raise TypeError("getitem: an index tensor must not require grad")
    return F.getitem(self, index=raw)


def _astype(self: Any, dtype: Any) -> Any:
    return F.astype(self, dtype=dtype)


def install(cls: type) -> None:
    """Give ``cls`` (Tensor) its operators and methods."""
    binary = {
        "add": F.add,
        "sub": F.subtract,
        "mul": F.multiply,
        "truediv": F.divide,
        "pow": F.power,
        "matmul": F.matmul,
    }
    for name, op in binary.items():
        setattr(cls, f"__{name}__", _forward(op))
        setattr(cls, f"__r{name}__", _reflected(op))
    compare = {
        "eq": F.equal,
        "ne": F.not_equal,
        "lt": F.less,
        "le": F.less_equal,
        "gt": F.greater,
        "ge": F.greater_equal,
    }
    for name, op in compare.items():
        setattr(cls, f"__{name}__", _forward(op))
    cls.__neg__ = lambda self: F.negative(self)  # type: ignore[attr-defined]
    cls.__pos__ = lambda self: self  # type: ignore[attr-defined]
    cls.__abs__ = lambda self: F.abs(self)  # type: ignore[attr-defined]
    cls.__invert__ = lambda self: F.logical_not(self)  # type: ignore[attr-defined]
    cls.__and__ = lambda self, o: F.logical_and(self, o)  # type: ignore[attr-defined]
    cls.__or__ = lambda self, o: F.logical_or(self, o)  # type: ignore[attr-defined]
    cls.__getitem__ = _getitem  # type: ignore[attr-defined]
    cls.T = property(lambda self: F.transpose(self))  # type: ignore[attr-defined]
    cls.mT = property(lambda self: F.matrix_transpose(self))  # type: ignore[attr-defined]
    cls.reshape = _reshape  # type: ignore[attr-defined]
    cls.view = _reshape  # type: ignore[attr-defined]
    cls.transpose = _transpose  # type: ignore[attr-defined]
    cls.permute = lambda self, *axes: F.permute(self, *axes)  # type: ignore[attr-defined]
    cls.astype = _astype  # type: ignore[attr-defined]
    cls.flatten = lambda self: _reshape(self, (-1,))  # type: ignore[attr-defined]
    cls.squeeze = lambda self, axis=None: F.squeeze(self, axis=axis)  # type: ignore[attr-defined]
    cls.unsqueeze = lambda self, axis: F.expand_dims(self, axis=axis)  # type: ignore[attr-defined]
    cls.expand_dims = cls.unsqueeze  # type: ignore[attr-defined]
    cls.broadcast_to = lambda self, shape: F.broadcast_to(self, shape=tuple(shape))  # type: ignore[attr-defined]
    for name in ("sum", "mean", "max", "min", "var", "std"):
        setattr(cls, name, _reduction(getattr(F, name)))
    for name in ("argmax", "argmin", "all", "any"):
        op = getattr(F, name)
        setattr(cls, name, lambda self, axis=None, keepdims=False, _op=op: _op(
            self, axis=axis, keepdims=keepdims))
    for name in ("exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tan", "tanh", "abs",
                 "sign", "sigmoid", "relu", "softplus", "gelu"):
        setattr(cls, name, _unary(getattr(F, name)))
    cls.leaky_relu = lambda self, negative_slope=0.01: F.leaky_relu(  # type: ignore[attr-defined]
        self, negative_slope=negative_slope)
    cls.clip = lambda self, min=None, max=None: F.clip(self, min=min, max=max)  # type: ignore[attr-defined]
    cls.clamp = cls.clip  # type: ignore[attr-defined]
    cls.softmax = lambda self, axis=-1: F.softmax(self, axis=axis)  # type: ignore[attr-defined]
    cls.log_softmax = lambda self, axis=-1: F.log_softmax(self, axis=axis)  # type: ignore[attr-defined]
    cls.logsumexp = lambda self, axis=None, keepdims=False: F.logsumexp(  # type: ignore[attr-defined]
        self, axis=axis, keepdims=keepdims)
    cls.dot = lambda self, other: F.dot(self, other)  # type: ignore[attr-defined]
    cls.pow = lambda self, other: F.power(self, other)  # type: ignore[attr-defined]


def _forward(op: Any) -> Any:
    def method(self: Any, other: Any) -> Any:
        return op(self, other)

    method.__name__ = op.name
    return method


def _reflected(op: Any) -> Any:
    def method(self: Any, other: Any) -> Any:
        return op(other, self)

    method.__name__ = f"r{op.name}"
    return method


def _reduction(fn: Any) -> Any:
    def method(self: Any, axis: Any = None, keepdims: bool = False, **kwargs: Any) -> Any:
        return fn(self, axis=axis, keepdims=keepdims, **kwargs)

    method.__name__ = getattr(fn, "__name__", "reduction")
    return method


def _unary(op: Any) -> Any:
    def method(self: Any) -> Any:
        return op(self)

    method.__name__ = op.name
    return method
