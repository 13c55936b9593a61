"""``cr.checkpoint(f)``: run ``f`` without keeping its intermediate values, and run it again in
the backward pass to get its gradient: memory for time, as ``torch.utils.checkpoint`` and
``jax.checkpoint`` trade them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..engine.backward import gradients
from ..engine.modes import enable_grad, state
from ..engine.tensor import Tensor
from .function import Context, Function

__all__ = ["checkpoint"]


class _Recompute(Function):
    """One node standing for a whole call of ``fn``; its backward calls ``fn`` again."""

    @staticmethod
    def forward(ctx: Context, *inputs: Any, fn: Any = None) -> Any:
        ctx.fn = fn  # type: ignore[attr-defined]
        ctx.save_for_backward(*inputs)
        out = fn(*inputs)
        if not isinstance(out, Tensor):
            raise TypeError("checkpoint: the function must return one Tensor")
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        inputs = ctx.saved_tensors
        if state.grad_enabled:
            # create_graph: recompute from the inputs themselves, so that the gradient is a
            # function of them and can be differentiated again
            again = list(inputs)
        else:  # the usual pass: a recomputation of its own, dropped when done
            again = [Tensor(v._data, requires_grad=True) if _wants(v) else v for v in inputs]
        with enable_grad():
            out = ctx.fn(*again)  # type: ignore[attr-defined]
        targets = [v for v in again if _wants(v)]
        found = iter(gradients(out, targets, grad=grad, create_graph=state.grad_enabled))
        return tuple(next(found) if _wants(v) else None for v in again)


def _wants(v: Any) -> bool:
    return isinstance(v, Tensor) and v.requires_grad


def checkpoint(f: Callable[..., Any]) -> Callable[..., Any]:
    """``f`` as one node of the graph: its intermediate values are not kept in the forward pass
    but computed again when the backward pass reaches it. Use it on a block of a deep network
    whose activations do not fit in memory. ``f`` takes Tensors (and constants) and returns one
    Tensor; it must compute the same thing when called again (no randomness of its own).

    >>> import chainrule as cr, numpy as np
    >>> f = lambda x: cr.tanh(cr.tanh(x) * 2.0)
    >>> x = cr.tensor(np.array([0.1, -0.3]), requires_grad=True)
    >>> cr.checkpoint(f)(x).sum().backward()  # one node; f runs again in backward
    >>> np.allclose(x.grad.numpy(), cr.elementwise_grad(f)(np.array([0.1, -0.3])))
    True
    """

    @functools.wraps(f)
    def wrapper(*args: Any) -> Any:
        if state.levels or state.tracing or not any(_wants(a) for a in args):
            return f(*args)  # nothing kept for a backward pass: nothing to save
        return _Recompute.apply(*args, fn=f)

    return wrapper
