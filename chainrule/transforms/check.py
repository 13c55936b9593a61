"""Checking gradients: central differences, and gradcheck comparing them with backprop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..backends import to_numpy
from ..engine.tensor import Tensor
from .derivatives import jacobian

__all__ = ["numerical_grad", "numerical_jacobian", "gradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """Backprop and finite differences disagree; the message names where and by how much."""


def _as_float64(value: Any) -> np.ndarray:
    data = value._data if isinstance(value, Tensor) else value
    return np.array(
        to_numpy(data) if not isinstance(data, (int, float, list)) else data, dtype=np.float64
    )


def _scalar(value: Any) -> float:
    data = value._data if isinstance(value, Tensor) else value
    arr = to_numpy(data) if not isinstance(data, (int, float)) else np.asarray(data)
    if arr.size != 1:
        raise TypeError(
            f"numerical_grad: the function must return a scalar, got shape {arr.shape}; "
            "use numerical_jacobian"
        )
    return float(arr.reshape(()))


def numerical_jacobian(
    f: Callable[..., Any], *args: Any, argnums: int = 0, eps: float | None = None
) -> np.ndarray:
    """Central-difference Jacobian in float64, shape ``out.shape + args[argnums].shape``:
    two evaluations of ``f`` per input entry."""
    eps = 1e-6 if eps is None else eps
    base = [_as_float64(a) if i == argnums else a for i, a in enumerate(args)]
    x = base[argnums]
    cols = []
    # NOTE: one entry is perturbed in place and restored (x is our own float64 copy), rather
    # than copying the whole input twice per entry: for a 200 x 200 weight that copying would
    # cost more than the 80,000 evaluations themselves.
    for k in range(x.size):
        orig = x.flat[k]
        x.flat[k] = orig + eps
        f_hi = _as_float64(f(*base))
        x.flat[k] = orig - eps
        f_lo = _as_float64(f(*base))
        x.flat[k] = orig
        cols.append((f_hi - f_lo) / (2 * eps))
    out_shape = cols[0].shape if cols else _as_float64(f(*base)).shape
    if not cols:
        return np.zeros(out_shape + x.shape)
    return np.stack(cols, axis=-1).reshape(out_shape + x.shape)


def numerical_grad(
    f: Callable[..., Any], *args: Any, argnums: int | Sequence[int] = 0, eps: float | None = None
) -> Any:
    """The gradient of a scalar function by central differences, in float64:
    ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` for every entry i (2 evaluations each).

    >>> import chainrule as cr
    >>> round(float(cr.numerical_grad(lambda x: x ** 3, 2.0)), 6)
    12.0
    """
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    results = []
    for i in nums:
        jac = numerical_jacobian(lambda *a: _scalar(f(*a)), *args, argnums=i, eps=eps)
        results.append(jac)
    return results[0] if isinstance(argnums, int) else tuple(results)


def gradcheck(
    f: Callable[..., Any],
    *args: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    argnums: int | Sequence[int] | None = None,
    check_forward: bool = False,
) -> bool:
    """Compare backprop's Jacobian of ``f`` with central differences, in float64.

    Every floating-point argument is checked (or those in ``argnums``). Returns True, or raises
    :class:`GradcheckError` naming the argument, the entry, and both values.
    ``check_forward=True`` checks the forward-mode (JVP) Jacobian too.

    >>> import chainrule as cr, numpy as np
    >>> cr.gradcheck(lambda x, w: cr.tanh(x @ w).sum(), np.ones((2, 3)), np.full((3,), 0.1))
    True
    """
    values = [_as_float64(a) if _is_float(a) else a for a in args]
    if argnums is None:
        nums = tuple(i for i, a in enumerate(args) if _is_float(a))
    else:
        nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    modes = ["reverse", "forward"] if check_forward else ["reverse"]
    for i in nums:
        numeric = numerical_jacobian(f, *values, argnums=i, eps=eps)
        for mode in modes:
            # (its value only: where f closes over parameters that require grad, the Jacobian
            # is a Tensor of their graph, which to_numpy would refuse to cut)
            analytic = _as_float64(jacobian(f, argnums=i, mode=mode)(*values))
            if analytic.shape != numeric.shape:
                raise GradcheckError(
                    f"gradcheck: argument {i}: {mode}-mode Jacobian has shape "
                    f"{analytic.shape}, finite differences {numeric.shape}"
                )
            bad = ~np.isclose(analytic, numeric, rtol=rtol, atol=atol, equal_nan=True)
            if bad.any():
                k = np.unravel_index(int(np.argmax(bad)), bad.shape)
                raise GradcheckError(
                    f"gradcheck: argument {i}, entry {tuple(int(j) for j in k)} "
                    f"(output index, input index): {mode} mode gives {analytic[k]!r}, "
                    f"finite differences give {numeric[k]!r} (atol={atol}, rtol={rtol}); "
                    f"{int(bad.sum())} of {bad.size} entries disagree"
                )
    return True


def _is_float(value: Any) -> bool:
    data = value._data if isinstance(value, Tensor) else value
    if isinstance(data, bool):
        return False
    if isinstance(data, float):
        return True
    if isinstance(data, (int, str)) or data is None:
        return False
    kind = getattr(getattr(data, "dtype", None), "kind", None)
    if kind is None:
        try:
            kind = np.asarray(data).dtype.kind
        except (TypeError, ValueError):
            return False
    return kind == "f"
