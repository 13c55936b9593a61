"""Losses and activations as functions (``cr.nn.functional``, often imported as ``F``).

>>> import chainrule as cr, numpy as np
>>> logits = cr.tensor([[2.0, 0.0, -1.0]], requires_grad=True)
>>> loss = cr.nn.functional.cross_entropy(logits, np.array([0]))
>>> bool(abs(float(loss) - (np.log(np.exp([2.0, 0.0, -1.0]).sum()) - 2.0)) < 1e-12)
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..backends import gaps, namespace, to_numpy
from ..backends.batched import Batched
from ..engine.modes import check_not_tracing
from ..engine.tensor import Tensor
from ..ops import gelu, leaky_relu, linear, log_softmax, relu, sigmoid, softmax, softplus, tanh
from .attention import scaled_dot_product_attention
from .init import generator
from .norms import batch_norm, embedding, group_norm, layer_norm
from .windows import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    avg_pool1d,
    avg_pool2d,
    conv1d,
    conv2d,
    conv_transpose1d,
    conv_transpose2d,
    flatten,
    max_pool1d,
    max_pool2d,
    unflatten,
)

__all__ = [
    "conv1d",
    "conv2d",
    "conv_transpose1d",
    "conv_transpose2d",
    "max_pool1d",
    "max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "flatten",
    "unflatten",
    "batch_norm",
    "layer_norm",
    "group_norm",
    "embedding",
    "scaled_dot_product_attention",
    "mse_loss",
    "cross_entropy",
    "binary_cross_entropy_with_logits",
    "nll_loss",
    "dropout",
    "linear",
    "relu",
    "leaky_relu",
    "tanh",
    "sigmoid",
    "gelu",
    "softplus",
    "softmax",
    "log_softmax",
]

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(losses: Any, reduction: str, name: str) -> Any:
    if reduction == "mean":
        return ops.mean(losses)
    if reduction == "sum":
        return ops.sum(losses)
    if reduction == "none":
        return losses
    raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _data(x: Any) -> Any:
    return x._data if isinstance(x, Tensor) else x


def mse_loss(prediction: Any, target: Any, reduction: str = "mean") -> Any:
    """Mean squared error: mean((prediction - target)^2)."""
    p, t = _data(prediction), _data(target)
    if tuple(np.shape(p)) != tuple(np.shape(t)):
        raise ValueError(
            f"mse_loss: prediction shape {tuple(np.shape(p))} and target shape "
            f"{tuple(np.shape(t))} differ; reshape one (e.g. target.reshape(-1, 1))"
        )
    return _reduce(ops.square(prediction - target), reduction, "mse_loss")


def _class_targets(logits: Any, targets: Any, name: str) -> Any:
    """``targets``, checked against ``logits``. A Tensor stays a Tensor: the loss's node
    then has it as an input, so a ``cr.compile``'d program reads the targets of each call
    (unwrapped, they would be a constant of the program, frozen at the first call)."""
    z = _data(logits)
    t = _data(targets)
    xp = namespace(z)
    t = xp.asarray(t) if not hasattr(t, "dtype") else t
    if len(z.shape) not in (1, 2):
        raise ValueError(
            f"{name}: logits must have shape (N, classes), or (classes,) for one sample, got "
            f"{tuple(z.shape)}"
        )
    if getattr(t.dtype, "kind", "i") not in "iu":
        raise TypeError(f"{name}: targets must be integer class indices, got dtype {t.dtype}")
    if tuple(t.shape) != tuple(z.shape[:-1]):
        raise ValueError(
            f"{name}: targets shape {tuple(t.shape)} does not match logits {tuple(z.shape)}; "
            f"expected {tuple(z.shape[:-1])}"
        )
    if isinstance(t, Batched):  # inside cr.vmap: an index out of range raises when used
        return targets
    classes = z.shape[-1]

    def check(host: Any) -> None:
        if host.size:
            low, high = np.minimum.reduce(host, axis=None), np.maximum.reduce(host, axis=None)
            if low < 0 or high >= classes:  # (the reductions themselves: 1 us each, not 3)
                raise ValueError(
                    f"{name}: targets must lie in [0, {classes}) for {classes} classes, got "
                    f"values from {low} to {high}"
                )

    if gaps.is_dask(t):  # checked when computed, each block (the graph stays lazy)
        return gaps.checked(t, check)
    check(to_numpy(t))
    return targets if isinstance(targets, Tensor) else t


def cross_entropy(
    logits: Any, targets: Any, reduction: str = "mean", label_smoothing: float = 0.0
) -> Any:
    """Softmax cross-entropy of logits (N, K) against integer targets (N,) (or of one sample,
    logits (K,) and a target ()), fused and stable:
    ``logsumexp(z) - z[target]``; its gradient is ``softmax(z) - onehot(target)``.
    ``label_smoothing`` mixes the one-hot target with the uniform distribution."""
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    t = _class_targets(logits, targets, "cross_entropy")
    # the mean or sum taken (and the reduction checked) by the op itself: one node
    return ops.cross_entropy(logits, t, label_smoothing=float(label_smoothing), reduction=reduction)


def nll_loss(log_probs: Any, targets: Any, reduction: str = "mean") -> Any:
    """Negative log-likelihood of log-probabilities (N, K) at integer targets (N,)."""
    t = _class_targets(log_probs, targets, "nll_loss")
    # an op with the targets as an input (not an index, which cr.compile could not replay)
    picked = ops.take_along_axis(log_probs, t[:, None], axis=1)
    return _reduce(-picked[:, 0], reduction, "nll_loss")


def binary_cross_entropy_with_logits(logits: Any, targets: Any, reduction: str = "mean") -> Any:
    """Stable binary cross-entropy of logits against targets in [0, 1]:
    ``softplus(z) - z * y``, whose gradient is ``sigmoid(z) - y`` (and ``-z`` with respect
    to targets that require grad).

    Targets outside [0, 1] are not refused, as in PyTorch (``BCEWithLogitsLoss`` computes
    the same formula for any target): the loss is ``softplus(z) - z * y`` for that ``y``,
    which can be negative, and a NaN target gives a NaN loss. Clip or check the targets
    first if they should be probabilities.

    >>> import chainrule as cr
    >>> loss = binary_cross_entropy_with_logits(cr.tensor([0.0, 0.0]), cr.tensor([2.0, -1.0]),
    ...                                         reduction="none")
    >>> [round(v, 4) for v in loss.tolist()]  # log 2 - 0 * y: the logit is 0
    [0.6931, 0.6931]
    """
    z, t = _data(logits), _data(targets)
    if tuple(np.shape(z)) != tuple(np.shape(t)):
        raise ValueError(
            f"binary_cross_entropy_with_logits: logits shape {tuple(np.shape(z))} and targets "
            f"shape {tuple(np.shape(t))} differ"
        )
    losses = softplus(logits) - logits * targets
    return _reduce(losses, reduction, "binary_cross_entropy_with_logits")


def dropout(x: Any, p: float = 0.5, training: bool = True, rng: Any = None) -> Any:
    """Zero each entry with probability ``p`` and scale the rest by 1/(1-p) (identity when
    not training)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    check_not_tracing("dropout draws a new random mask on every call")
    data = _data(x)
    keep = generator(rng).random(tuple(data.shape)) >= p
    mask = namespace(data).asarray(keep.astype(np.dtype(str(data.dtype))) / (1.0 - p))
    return x * mask
