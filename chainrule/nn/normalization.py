"""Normalisation layers (``BatchNorm1d/2d``, ``LayerNorm``, ``GroupNorm``) and ``Embedding``,
with PyTorch's names, arguments, parameters and buffers (``running_mean``, ``running_var``,
``num_batches_tracked``), so that a ``state_dict`` moves between the two by name."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..engine.tensor import Tensor
from . import init as _init
from . import norms as N
from .module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "Embedding"]


def _dtype(dtype: Any) -> Any:
    return np.dtype(dtype)


class _BatchNorm(Module):
    _dims: tuple[int, ...] = ()
    num_batches_tracked: Tensor

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: Any = "float64",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if num_features < 1:
            raise ValueError(f"{name}: num_features must be >= 1, got {num_features}")
        if momentum is not None and not (math.isfinite(momentum) and 0 <= momentum <= 1):
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum}")
        N._check_eps(eps, name)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dt = _dtype(dtype)
        if affine:
            self.weight = Parameter(np.ones(num_features, dt))
            self.bias = Parameter(np.zeros(num_features, dt))
        else:
            self.weight = None  # type: ignore[assignment]
            self.bias = None  # type: ignore[assignment]
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dt))
            self.register_buffer("running_var", np.ones(num_features, dt))
            self.register_buffer("num_batches_tracked", np.zeros((), np.int64))
        else:
            self.running_mean = None
            self.running_var = None

    def forward(self, x: Any) -> Any:
        ndim = len(tuple(x.shape))
        if ndim not in self._dims:
            raise ValueError(
                f"{type(self).__name__}: expected input with {' or '.join(map(str, self._dims))} "
                f"dimensions (N, C{', ...' if max(self._dims) > 2 else ''}), got {tuple(x.shape)}"
            )
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}: the input has {x.shape[1]} channels (axis 1), the "
                f"layer {self.num_features}"
            )
        if not self.training and self.running_mean is not None:  # eval: the running ones
            return N.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, eps=self.eps
            )
        momentum, running = self.momentum, (None, None)
        if self.training and self.track_running_stats:
            count = self.num_batches_tracked
            count._data = count._data + 1
            if momentum is None:  # a cumulative average, as PyTorch
                momentum = 1.0 / float(count._data)
            running = (self.running_mean, self.running_var)
        return N.batch_norm(
            x, *running, self.weight, self.bias, training=True, momentum=momentum or 0.0,
            eps=self.eps,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L): per channel, by the batch's statistics in
    training (updating the running ones) and by the running ones in ``eval()``.

    >>> import chainrule as cr, numpy as np
    >>> bn = cr.nn.BatchNorm1d(3)
    >>> y = bn(cr.tensor(np.random.default_rng(0).normal(5, 2, (64, 3))))
    >>> bool(abs(float(y.mean())) < 1e-12), sorted(dict(bn.named_buffers()))
    (True, ['num_batches_tracked', 'running_mean', 'running_var'])
    """

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W), per channel."""

    _dims = (4,)


class LayerNorm(Module):
    """Normalise over the last axes (``normalized_shape``) of each sample, then scale and
    shift elementwise (``elementwise_affine``)."""

    def __init__(
        self,
        normalized_shape: Any,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        dtype: Any = "float64",
    ) -> None:
        super().__init__()
        shape = (
            (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        )
        if not shape or any(n < 1 for n in shape):
            raise ValueError(
                f"LayerNorm: normalized_shape must be positive, got {normalized_shape}"
            )
        N._check_eps(eps, "LayerNorm")
        self.normalized_shape, self.eps = shape, eps
        dt = _dtype(dtype)
        self.weight = Parameter(np.ones(shape, dt)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(shape, dt)) if elementwise_affine and bias else None

    def forward(self, x: Any) -> Any:
        return N.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


class GroupNorm(Module):
    """Normalise groups of channels of each sample (``num_groups`` must divide them)."""

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        dtype: Any = "float64",
    ) -> None:
        super().__init__()
        if num_groups < 1 or num_channels % num_groups:
            raise ValueError(
                f"GroupNorm: num_groups ({num_groups}) must divide num_channels ({num_channels})"
            )
        N._check_eps(eps, "GroupNorm")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        dt = _dtype(dtype)
        self.weight = Parameter(np.ones(num_channels, dt)) if affine else None
        self.bias = Parameter(np.zeros(num_channels, dt)) if affine else None

    def forward(self, x: Any) -> Any:
        if len(tuple(x.shape)) < 2 or x.shape[1] != self.num_channels:
            raise ValueError(
                f"GroupNorm: expected input (N, {self.num_channels}, ...), got {tuple(x.shape)}"
            )
        return N.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}"


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of size ``embedding_dim``, looked up by integer
    index; initialised N(0, 1) as PyTorch, the ``padding_idx`` row zero and never updated.

    >>> import chainrule as cr, numpy as np
    >>> emb = cr.nn.Embedding(10, 3, padding_idx=0, rng=0)
    >>> emb(np.array([[1, 0, 4]])).shape
    (1, 3, 3)
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        rng: Any = None,
        dtype: Any = "float64",
    ) -> None:
        super().__init__()
        if num_embeddings < 1 or embedding_dim < 1:
            raise ValueError(
                f"Embedding: num_embeddings and embedding_dim must be >= 1, got "
                f"{num_embeddings} and {embedding_dim}"
            )
        if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
            raise ValueError(
                f"Embedding: padding_idx {padding_idx} is outside [-{num_embeddings}, "
                f"{num_embeddings})"
            )
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = None if padding_idx is None else padding_idx % num_embeddings
        table = _init.generator(rng).standard_normal((num_embeddings, embedding_dim))
        table = table.astype(_dtype(dtype))
        if self.padding_idx is not None:
            table[self.padding_idx] = 0.0
        self.weight = Parameter(table)

    def forward(self, indices: Any) -> Any:
        data = indices._data if isinstance(indices, Tensor) else indices
        return N.embedding(np.asarray(data) if isinstance(data, list) else data, self.weight,
                           self.padding_idx)  # fmt: skip

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}" + (
            f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        )
