"""Fast kernels: derivatives of the op sheet computed with less memory traffic.

The sheet's rules define every derivative; a kernel here is an alternative to one of them that
the engine may use where it is safe, and ``tests/test_kernels.py`` holds each to its rule's
bits. Kept apart so that the sheet reads as mathematics.

``vjp_into(g, out, x)`` (attached with :func:`~chainrule.engine.op.kernel`): the VJP of a
one-input op written into the incoming gradient ``g``. The backward pass calls it when the
engine alone holds ``g`` (a fresh array a rule made for this node, or the engine's own sum of
several), so that a gradient as large as the activations is not allocated again: in an MLP,
each hidden layer's activation gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine.declare import kernel
from .elementwise import tanh
from .nn import relu, sigmoid

__all__ = ["relu_vjp_into", "tanh_vjp_into", "sigmoid_vjp_into"]


def _arrays(*values: Any) -> bool:
    return all(type(v) is np.ndarray for v in values)


def relu_vjp_into(g: Any, out: Any, x: Any) -> Any:
    """relu's rule, ``g * (out > 0)``, into ``g``."""
    if _arrays(g, out):
        return np.multiply(g, out > 0, g)  # (out positionally: 0.1-0.2 us less than out=g)
    return relu.vjps[0](g, out, x)


def tanh_vjp_into(g: Any, out: Any, x: Any) -> Any:
    """tanh's rule, ``g * (1 - out * out)``, into ``g`` (one temporary instead of three)."""
    if _arrays(g, out):
        d = out * out
        np.subtract(1, d, d)
        return np.multiply(g, d, g)
    return tanh.vjps[0](g, out, x)


def sigmoid_vjp_into(g: Any, out: Any, x: Any) -> Any:
    """sigmoid's rule, ``g * out * (1 - out)``, into ``g``: the same products in the same
    order (g * out first)."""
    if _arrays(g, out):
        np.multiply(g, out, g)
        return np.multiply(g, 1 - out, g)
    return sigmoid.vjps[0](g, out, x)


kernel(relu, vjp_into=relu_vjp_into)
kernel(tanh, vjp_into=tanh_vjp_into)
kernel(sigmoid, vjp_into=sigmoid_vjp_into)
