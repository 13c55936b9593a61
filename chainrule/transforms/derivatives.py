"""Functional transforms, JAX-style and nestable: grad, value_and_grad, vjp, jvp, jacobian,
hessian.

Given NumPy arrays or Python numbers they return NumPy arrays. Given Tensors (as happens inside
an outer transform) they record what they do and return Tensors, so ``cr.grad(cr.grad(f))``
is the second derivative.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from .. import ops as F
from ..backends import namespace
from ..engine.backward import gradients
from ..engine.modes import enable_grad, forward_level, state
from ..engine.tensor import Tensor

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "jacobian", "hessian"]


def _argnums(argnums: int | Sequence[int], n: int, name: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for i in nums:
        if not -n <= i < n:
            raise ValueError(f"{name}: argnums={argnums!r} but the function got {n} argument(s)")
    return tuple(i % n for i in nums)


def _as_float_array(value: Any, name: str) -> Any:
    if isinstance(value, bool):
        raise TypeError(f"{name}: cannot differentiate with respect to a bool")
    if isinstance(value, int):
        value = float(value)
    xp = namespace(value)
    arr = xp.asarray(value)
    kind = getattr(arr.dtype, "kind", None)
    if kind is not None and kind != "f":
        raise TypeError(
            f"{name}: can only differentiate with respect to floating-point inputs, got "
            f"{arr.dtype}; convert it first (e.g. x.astype('float64'))"
        )
    return arr


def _differentiable(value: Any, name: str) -> tuple[Tensor, bool]:
    """A Tensor that requires grad standing for ``value``; and whether value was a Tensor."""
    if isinstance(value, Tensor):
        if value.requires_grad:
            return value, True
        t = Tensor(_as_float_array(value.data, name), requires_grad=True)
        for level in state.levels:  # keep forward-mode tangents attached
            entry = level.get(id(value))
            if entry is not None:
                level[id(t)] = (t, entry[1])
        return t, True
    return Tensor(_as_float_array(value, name), requires_grad=True), False


def _check_scalar(out: Any, name: str) -> Tensor:
    if not isinstance(out, Tensor):
        out = Tensor(namespace(out).asarray(out))
    if out.size != 1:
        raise TypeError(
            f"{name}: the function must return a scalar, it returned shape {out.shape}; "
            "use cr.jacobian or cr.vjp for non-scalar outputs"
        )
    return out


def value_and_grad(
    f: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """``f``'s value and its gradient with respect to the arguments in ``argnums``.

    >>> import chainrule as cr
    >>> value, slope = cr.value_and_grad(lambda x: x ** 3)(2.0)
    >>> float(value), float(slope)
    (8.0, 12.0)
    """

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nums = _argnums(argnums, len(args), "grad")
        args = list(args)  # type: ignore[assignment]
        targets, nested = [], False
        for i in nums:
            t, was_tensor = _differentiable(args[i], "grad")
            args[i] = t  # type: ignore[index]
            targets.append(t)
            nested = nested or was_tensor
        with enable_grad():
            result = f(*args, **kwargs)
        aux = None
        if has_aux:
            result, aux = result
        out = _check_scalar(result, "grad")
        nested = nested or _depends_on_others(out, targets)
        grads = gradients(out, targets, create_graph=nested)
        value: Any = out if nested else out.data
        if has_aux and not nested:
            aux = _unwrap(aux)
        g: Any = grads[0] if isinstance(argnums, int) else tuple(grads)
        return ((value, aux), g) if has_aux else (value, g)

    return wrapper


def grad(
    f: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """The gradient of a scalar function, as a function.

    >>> import chainrule as cr
    >>> d2 = cr.grad(cr.grad(lambda x: x ** 4 + x ** 2))  # 12 x^2 + 2
    >>> float(d2(1.0))
    14.0
    """
    vg = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = vg(*args, **kwargs)
        if has_aux:
            (_, aux), g = result
            return g, aux
        return result[1]

    return wrapper


def vjp(f: Callable[..., Any], *primals: Any) -> tuple[Any, Callable[..., Any]]:
    """Evaluate ``f`` and return ``(out, vjp_fn)``: ``vjp_fn(cotangent)`` gives one gradient
    per primal, ``cotangent`` having ``out``'s shape. ``vjp_fn`` may be called many times.

    >>> import chainrule as cr, numpy as np
    >>> out, pullback = cr.vjp(lambda x: x * x, np.array([1.0, 2.0]))
    >>> pullback(np.array([1.0, 10.0]))[0]
    array([ 2., 40.])
    """
    targets, nested = [], False
    args = []
    for p in primals:
        t, was_tensor = _differentiable(p, "vjp")
        args.append(t)
        targets.append(t)
        nested = nested or was_tensor
    with enable_grad():
        out = f(*args)
    if not isinstance(out, Tensor):
        out = Tensor(namespace(out).asarray(out))
    nested = nested or _depends_on_others(out, targets)

    def vjp_fn(cotangent: Any) -> tuple[Any, ...]:
        if not isinstance(cotangent, Tensor) and not hasattr(cotangent, "dtype"):
            cotangent = namespace(out.data).asarray(cotangent, dtype=out.dtype)
        return tuple(
            gradients(out, targets, grad=cotangent, retain_graph=True, create_graph=nested)
        )

    return (out if nested else out.data), vjp_fn


def jvp(f: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """Forward mode: ``(f(*primals), J_f(primals) @ tangents)``, tangents pushed through each
    op's JVP rule as ``f`` runs (no backward pass).

    >>> import chainrule as cr
    >>> out, slope = cr.jvp(lambda x: x ** 3, (2.0,), (1.0,))
    >>> float(out), float(slope)
    (8.0, 12.0)
    """
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    level: dict[int, tuple[Any, Any]] = {}
    nested = any(isinstance(v, Tensor) for v in (*primals, *tangents))
    args = []
    for i, (p, t) in enumerate(zip(primals, tangents)):
        x = p if isinstance(p, Tensor) else Tensor(_as_float_array(p, "jvp"))
        tangent = t if isinstance(t, Tensor) else namespace(x.data).asarray(t, dtype=x.dtype)
        if tuple(tangent.shape) != x.shape:
            raise ValueError(
                f"jvp: tangent {i} has shape {tuple(tangent.shape)} but primal {i} has shape "
                f"{x.shape}"
            )
        level[id(x)] = (x, tangent)
        args.append(x)
    with forward_level(level):
        out = f(*args)
    if not isinstance(out, Tensor):
        out = Tensor(namespace(out).asarray(out))
    entry = level.get(id(out))
    tangent_out = entry[1] if entry is not None else namespace(out.data).zeros_like(out.data)
    # Recorded results (f closes over tensors that require grad) stay Tensors, so that an
    # outer transform can differentiate through this one.
    nested = nested or out._rg or (isinstance(tangent_out, Tensor) and tangent_out._rg)
    if nested:
        return out, tangent_out if isinstance(tangent_out, Tensor) else Tensor(tangent_out)
    return out.data, tangent_out.data if isinstance(tangent_out, Tensor) else tangent_out


def jacobian(f: Callable[..., Any], argnums: int = 0, mode: str = "auto") -> Callable[..., Any]:
    """The Jacobian of ``f`` with respect to argument ``argnums``: shape
    ``out.shape + in.shape``. ``mode`` is "reverse" (one VJP per output entry), "forward"
    (one JVP per input entry) or "auto" (whichever needs fewer passes).

    >>> import chainrule as cr, numpy as np
    >>> cr.jacobian(lambda x: x ** 2)(np.array([1.0, 3.0]))
    array([[2., 0.],
           [0., 6.]])
    """
    if mode not in ("auto", "forward", "reverse"):
        raise ValueError(f"jacobian: mode must be 'auto', 'forward' or 'reverse', got {mode!r}")

    def wrapper(*args: Any) -> Any:
        i = _argnums(argnums, len(args), "jacobian")[0]
        nested = any(isinstance(a, Tensor) for a in args)
        x = args[i]

        def fi(v: Any) -> Any:
            return f(*args[:i], v, *args[i + 1 :])

        out, pullback = vjp(fi, x)
        in_shape = tuple(_shape(x))
        out_shape = tuple(out.shape)
        n_in, n_out = _prod(in_shape), _prod(out_shape)
        use_forward = mode == "forward" or (mode == "auto" and n_in < n_out)
        xp = namespace(out.data if isinstance(out, Tensor) else out)
        rows = []
        if use_forward:
            dtype = _dtype_of(x)
            for k in range(n_in):
                basis = xp.reshape(_one_hot(xp, n_in, k, dtype), in_shape)
                _, col = jvp(fi, (x,), (basis if not nested else Tensor(basis),))
                rows.append(col)
            cols = F.stack(rows, axis=-1) if rows else None
            result = F.reshape(cols, out_shape + in_shape) if cols is not None else None
        else:
            dtype = out.dtype
            for k in range(n_out):
                basis = xp.reshape(_one_hot(xp, n_out, k, dtype), out_shape)
                rows.append(pullback(Tensor(basis) if nested else basis)[0])
            stacked = F.stack(rows, axis=0) if rows else None
            result = F.reshape(stacked, out_shape + in_shape) if stacked is not None else None
        if result is None:
            result = xp.zeros(out_shape + in_shape, dtype=xp.float64)
        return result

    return wrapper


def hessian(f: Callable[..., Any], argnums: int = 0) -> Callable[..., Any]:
    """The Hessian of a scalar function: the Jacobian of its gradient (reverse over reverse).

    >>> import chainrule as cr, numpy as np
    >>> cr.hessian(lambda x: (x[0] ** 2) * x[1])(np.array([1.0, 2.0]))
    array([[4., 2.],
           [2., 0.]])
    """
    return jacobian(grad(f, argnums), argnums, mode="reverse")


def _depends_on_others(out: Tensor, targets: list[Tensor]) -> bool:
    """Whether ``out``'s graph reaches a tensor that requires grad besides ``targets`` (a
    closure over an outer transform's input): then results must stay differentiable."""
    if not out._rg:
        return False
    skip = {id(t) for t in targets}
    seen: set[int] = set()
    stack = [out]
    while stack:
        t = stack.pop()
        node = t._node
        if node is None:
            if id(t) not in skip and t._rg:
                return True
            continue
        for a in node[1] or ():
            if isinstance(a, Tensor) and a._rg and id(a) not in seen and id(a) not in skip:
                seen.add(id(a))
                stack.append(a)
    return False


def _unwrap(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, (tuple, list)):
        return type(value)(_unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _shape(x: Any) -> tuple[int, ...]:
    if isinstance(x, Tensor):
        return x.shape
    return tuple(getattr(x, "shape", ()))


def _dtype_of(x: Any) -> Any:
    data = x.data if isinstance(x, Tensor) else _as_float_array(x, "jacobian")
    return data.dtype


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _one_hot(xp: Any, n: int, k: int, dtype: Any) -> Any:
    e = xp.zeros((n,), dtype=dtype)
    e[k] = 1
    return e
