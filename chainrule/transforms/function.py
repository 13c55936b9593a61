"""Custom ops for people writing their own layers: ``cr.Function``, PyTorch's shape.

>>> import chainrule as cr
>>> class Cube(cr.Function):
...     @staticmethod
...     def forward(ctx, x):
...         ctx.save_for_backward(x)
...         return x * x * x
...     @staticmethod
...     def backward(ctx, grad):
...         (x,) = ctx.saved_tensors
...         return grad * 3 * x * x
>>> x = cr.tensor(2.0, requires_grad=True)
>>> Cube.apply(x).backward()
>>> float(x.grad)
12.0
"""

from __future__ import annotations

from typing import Any

from ..backends import as_array, namespace
from ..engine.declare import defop
from ..engine.errors import user_frame
from ..engine.modes import check_not_tracing, next_seq, no_grad, set_grad_enabled, state
from ..engine.op import Op
from ..engine.tensor import Tensor

__all__ = ["Function", "Context"]


class Context:
    """What ``forward`` leaves for ``backward``: saved tensors and any attributes."""

    def __init__(self, needs_input_grad: tuple[bool, ...]) -> None:
        self.needs_input_grad = needs_input_grad
        self.saved_tensors: tuple[Any, ...] = ()
        self._cache: tuple[Any, Any] | None = None

    def save_for_backward(self, *tensors: Any) -> None:
        self.saved_tensors = tensors


def _function_vjp(i: int, g: Any, out: Any, *inputs: Any, ctx: Context, fn: Any) -> Any:
    # backward() returns the gradients of all inputs at once; the engine asks one input at a
    # time, so the answer for this incoming gradient is kept until the next one.
    if ctx._cache is None or ctx._cache[0] is not g:
        create_graph = isinstance(g, Tensor)
        grad = g if create_graph else Tensor(g)
        with set_grad_enabled(create_graph):
            result = fn.backward(ctx, grad)
        if not isinstance(result, tuple):
            result = (result,)
        if len(result) != len(inputs):
            raise ValueError(
                f"{fn.__name__}.backward returned {len(result)} gradient(s) for "
                f"{len(inputs)} input(s); return one per input of forward (None for none)"
            )
        unwrapped = tuple(
            r if create_graph or r is None else (r._data if isinstance(r, Tensor) else r)
            for r in result
        )
        ctx._cache = (g, unwrapped)
    return ctx._cache[1][i]


_FUNCTION_OP: Op = defop(
    "function",
    lambda xp, *inputs, ctx, fn: None,
    "A user-defined cr.Function (forward and backward written by hand).",
    family="custom",
    dinputs=(_function_vjp, "d f(x)/dx: whatever the Function's backward() returns"),
)


class Function:
    """Subclass with ``forward(ctx, *inputs)`` and ``backward(ctx, grad)`` static methods,
    then call ``MyFunction.apply(*inputs)``.

    ``forward`` receives Tensors and runs with recording off; ``backward`` receives the
    gradient of the output as a Tensor and returns one gradient per input (``None`` where an
    input needs none). Written with chainrule's ops, ``backward`` also works with
    ``create_graph=True``. Check it with ``cr.gradcheck(MyFunction.apply, x)``.
    """

    @staticmethod
    def forward(ctx: Context, *inputs: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("Function subclasses must define forward(ctx, *inputs)")

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        raise NotImplementedError("Function subclasses must define backward(ctx, grad)")

    @staticmethod
    def jvp(ctx: Context, *tangents: Any) -> Any:
        """Optional forward mode: the output's tangent given one tangent per input, each a
        Tensor (zeros for inputs without one)."""
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Any, **kwargs: Any) -> Tensor:
        check_not_tracing(f"a cr.Function ({cls.__name__}) runs Python code of its own")
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in inputs)
        ctx = Context(needs)
        with no_grad():
            result = cls.forward(ctx, *inputs, **kwargs)
        data = result._data if isinstance(result, Tensor) else as_array(result)
        out = Tensor(data)
        if any(needs) and state.grad_enabled:
            out._rg = True
            where = user_frame() if state.anomaly else None
            params = {"ctx": ctx, "fn": cls}
            out._node = (
                _FUNCTION_OP,
                inputs,
                params,
                next_seq(),
                where,
                state.scope,
            )
        if state.levels:
            _push_function_tangents(cls, ctx, inputs, out)
        return out


def _push_function_tangents(cls: Any, ctx: Context, inputs: Any, out: Tensor) -> None:
    for level in state.levels:
        entries = [level.get(id(a)) if isinstance(a, Tensor) else None for a in inputs]
        if all(e is None for e in entries):
            continue
        if cls.jvp is Function.jvp:
            raise NotImplementedError(
                f"{cls.__name__}: forward mode (cr.jvp, forward cr.jacobian) needs a "
                "jvp(ctx, *tangents) static method on the Function; or use reverse mode"
            )
        tangents = [
            _as_tensor(e[1]) if e is not None else _zeros_like(a) for a, e in zip(inputs, entries)
        ]
        level[id(out)] = (out, cls.jvp(ctx, *tangents))


def _as_tensor(value: Any) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor(value)


def _zeros_like(value: Any) -> Tensor:
    data = value._data if isinstance(value, Tensor) else value
    xp = namespace(data)
    return Tensor(xp.zeros_like(data) if hasattr(data, "shape") else xp.asarray(0.0))
