"""Normalisation and embedding as functions (``cr.nn.functional.batch_norm``, ``layer_norm``,
``group_norm``, ``embedding``), with PyTorch's arguments and statistics: the variance that
normalises is the biased one (divided by n), the running variance is updated with the unbiased
one (n - 1). The normalisation, with its scale and shift, is one op of the sheet
(``normalize``, with closed-form rules): every derivative comes from the table.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import ops
from ..backends import namespace
from ..engine.tensor import Tensor
from ..ops.kernels import moments
from ..ops.nn import normalize

__all__ = ["batch_norm", "layer_norm", "group_norm", "embedding"]


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(x.shape)


def _check_eps(eps: float, name: str) -> None:
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"{name}: eps must be a finite number >= 0, got {eps!r}")


def _normalized(
    x: Any, axes: tuple[int, ...], eps: float, weight: Any = None, bias: Any = None
) -> Any:
    """(x - mean) / sqrt(var + eps) * weight + bias over ``axes``: one node of the op sheet
    (``normalize``), whose rule is the closed form rather than the chain through seven
    elementwise ops."""
    axes = tuple(a % len(_shape(x)) for a in axes)
    return normalize(x, weight, bias, axes=axes, eps=float(eps))


def _per_channel_or_none(v: Any, ndim: int) -> Any:
    return None if v is None else _per_channel(v, ndim)


def _per_channel(v: Any, ndim: int) -> Any:
    """A (C,) vector shaped to broadcast along axis 1 of an ndim array."""
    return ops.reshape(v, shape=(-1,) + (1,) * (ndim - 2))


def batch_norm(
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Any:
    """Normalise each channel (axis 1 of (N, C), (N, C, L), (N, C, H, W)) by the batch's
    statistics in training (and update the running ones in place, with ``momentum``), by
    the running statistics otherwise; then scale by ``weight`` and shift by ``bias``.

    >>> import chainrule as cr, numpy as np
    >>> x = cr.tensor(np.array([[1.0, 10.0], [3.0, 30.0]]))
    >>> mean, var = np.zeros(2), np.ones(2)
    >>> cr.nn.functional.batch_norm(x, mean, var, training=True, eps=0.0).tolist()
    [[-1.0, -1.0], [1.0, 1.0]]
    >>> mean.tolist()  # moved 10% of the way to the batch mean
    [0.2, 2.0]
    """
    shape = _shape(input)
    if len(shape) < 2:
        raise ValueError(f"batch_norm: expected input (N, C, ...), got shape {shape}")
    _check_eps(eps, "batch_norm")
    channels = shape[1]
    axes = (0, *range(2, len(shape)))
    count = math.prod(shape[a] for a in axes)
    for what, v in (("running_mean", running_mean), ("running_var", running_var)):
        if v is not None and _shape(v) != (channels,):
            raise ValueError(f"batch_norm: {what} has shape {_shape(v)}, expected ({channels},)")
    if training or running_mean is None:
        if training and count <= 1:
            raise ValueError(
                f"batch_norm: training needs more than one value per channel, got input {shape}"
            )
        if training and running_mean is not None:
            _update_running(running_mean, running_var, _raw(input), axes, count, momentum)
        ndim = len(shape)
        scale, shift = _per_channel_or_none(weight, ndim), _per_channel_or_none(bias, ndim)
        return _normalized(input, axes, eps, scale, shift)
    mean = _per_channel(running_mean, len(shape))
    var = _per_channel(running_var, len(shape))
    out = (input - mean) / ops.sqrt(var + eps)
    if weight is not None:
        out = out * _per_channel(weight, len(shape))
    if bias is not None:
        out = out + _per_channel(bias, len(shape))
    return out


def _update_running(
    running_mean: Any, running_var: Any, x: Any, axes: tuple[int, ...], count: int,
    momentum: float,
) -> None:  # fmt: skip
    """running = (1 - momentum) running + momentum * batch statistic, in place (the unbiased
    variance, as PyTorch); computed from the raw values: nothing is recorded."""
    batch_mean, batch_var = moments(x, axes)
    batch_var = batch_var * (count / (count - 1))
    for running, stat in ((running_mean, batch_mean), (running_var, batch_var)):
        if running is None:
            continue
        target = running._data if isinstance(running, Tensor) else running
        target *= 1 - momentum
        target += momentum * stat.astype(target.dtype, copy=False)
        if isinstance(running, Tensor):
            running._version += 1


def _raw(x: Any) -> Any:
    return x._data if isinstance(x, Tensor) else x


def layer_norm(
    input: Any, normalized_shape: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5
) -> Any:
    """Normalise over the last ``len(normalized_shape)`` axes (each sample on its own), then
    scale and shift elementwise by ``weight`` and ``bias`` of that shape."""
    shape = _shape(input)
    norm = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    _check_eps(eps, "layer_norm")
    if shape[len(shape) - len(norm) :] != norm or len(norm) > len(shape):
        raise ValueError(
            f"layer_norm: normalized_shape {norm} does not match the input's last axes {shape}"
        )
    axes = tuple(range(len(shape) - len(norm), len(shape)))
    return _normalized(input, axes, eps, weight, bias)


def group_norm(
    input: Any, num_groups: int, weight: Any = None, bias: Any = None, eps: float = 1e-5
) -> Any:
    """Normalise each group of ``C / num_groups`` channels of each sample (over the group's
    channels and all spatial positions), then scale and shift per channel."""
    shape = _shape(input)
    if len(shape) < 2 or num_groups < 1 or shape[1] % num_groups:
        raise ValueError(
            f"group_norm: num_groups={num_groups} must divide the channels of input {shape}"
        )
    _check_eps(eps, "group_norm")
    grouped = ops.reshape(input, shape=(shape[0], num_groups, -1))
    out = _normalized(grouped, (2,), eps)
    out = ops.reshape(out, shape=shape)
    if weight is not None:
        out = out * _per_channel(weight, len(shape))
    if bias is not None:
        out = out + _per_channel(bias, len(shape))
    return out


def embedding(input: Any, weight: Any, padding_idx: int | None = None) -> Any:
    """The rows of ``weight`` (num_embeddings, dim) at the integer indices ``input``; the row
    at ``padding_idx`` gets no gradient (as PyTorch)."""
    idx = _raw(input)
    idx = namespace(idx).asarray(idx) if not hasattr(idx, "dtype") else idx
    if getattr(idx.dtype, "kind", "i") not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {idx.dtype}")
    n = _shape(weight)[0]
    if isinstance(idx, np.ndarray) and idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(
            f"embedding: indices must lie in [0, {n}) for {n} embeddings, got values from "
            f"{idx.min()} to {idx.max()}"
        )
    rows = weight[idx]
    if padding_idx is None:
        return rows
    keep = Tensor(idx != (padding_idx % n))
    detached = rows.detach() if isinstance(rows, Tensor) else rows
    return ops.where(ops.expand_dims(keep, axis=-1), rows, detached)
