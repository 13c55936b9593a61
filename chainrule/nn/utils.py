"""Gradient clipping, as PyTorch's ``torch.nn.utils``: rescale or clamp the gradients that
``backward()`` left in ``p.grad``, between ``backward()`` and ``optimizer.step()``.

>>> import chainrule as cr
>>> w = cr.tensor([0.0, 0.0], requires_grad=True)
>>> w.grad = cr.tensor([3.0, 4.0])
>>> float(clip_grad_norm_([w], max_norm=1.0))       # the norm before clipping
5.0
>>> [round(x, 6) for x in w.grad.tolist()]
[0.6, 0.8]
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..backends import namespace, to_numpy
from ..engine.tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters: Tensor | Iterable[Tensor], who: str) -> list[tuple[Tensor, Any]]:
    """(parameter, its gradient's array) for each parameter that has a gradient."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    elif not isinstance(parameters, Iterable):
        raise TypeError(
            f"{who}: parameters must be a Tensor or an iterable of Tensors (model.parameters()), "
            f"got a {type(parameters).__name__}"
        )
    out = []
    for i, p in enumerate(parameters):
        if not isinstance(p, Tensor):
            raise TypeError(f"{who}: parameter {i} is a {type(p).__name__}, not a Tensor")
        if p.grad is not None:
            out.append((p, p.grad._data))
    return out


def _number(who: str, name: str, value: Any, allow_inf: bool) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok and (math.isnan(value) or value < 0 or (not allow_inf and math.isinf(value))):
        ok = False
    if not ok:
        kind = "a number >= 0 (inf allowed)" if allow_inf else "a finite number >= 0"
        raise ValueError(f"{who}: {name} must be {kind}, got {value!r}")
    return float(value)


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    """Scale all gradients together so that their total norm is at most ``max_norm``.

    The total norm is the ``norm_type``-norm of all gradients as one vector (``inf``: the
    largest absolute entry). Where it exceeds ``max_norm``, every gradient is multiplied by
    ``max_norm / (total + 1e-6)`` (PyTorch's rule, 1e-6 included); otherwise they are left as
    they are. Parameters without a gradient are skipped.

    Parameters
    ----------
    parameters : a Tensor or an iterable of Tensors (``model.parameters()``).
    max_norm : the largest total norm allowed, >= 0 (``inf``: measure, never clip).
    norm_type : the p of the p-norm, > 0, or ``float("inf")``.
    error_if_nonfinite : raise (and change nothing) if the total norm is NaN or infinite;
        otherwise, as in PyTorch, the gradients are scaled by the non-finite factor.

    Returns
    -------
    Tensor: the total norm before clipping (a 0-d float64 tensor; 0 if no gradient).

    >>> import chainrule as cr
    >>> a, b = cr.tensor([1.0], requires_grad=True), cr.tensor([-3.0], requires_grad=True)
    >>> a.grad, b.grad = cr.tensor([1.0]), cr.tensor([-3.0])
    >>> float(clip_grad_norm_([a, b], max_norm=10.0, norm_type=float("inf")))
    3.0
    >>> a.grad.tolist(), b.grad.tolist()      # within the bound: unchanged
    ([1.0], [-3.0])
    """
    who = "clip_grad_norm_"
    max_norm = _number(who, "max_norm", max_norm, allow_inf=True)
    if not (
        isinstance(norm_type, numbers.Real)
        and not isinstance(norm_type, bool)
        and (norm_type > 0 or norm_type == math.inf)
    ):
        raise ValueError(
            f"{who}: norm_type must be a number > 0 or float('inf'), got {norm_type!r}"
        )
    p_norm = float(norm_type)
    params = _grads(parameters, who)
    if not params:
        return Tensor(np.array(0.0))
    grads = [np.abs(to_numpy(g)).astype(np.float64, copy=False) for _, g in params]
    # NOTE: computed in float64, scaled by the largest entry so that |g|^p neither overflows
    # (large p, large gradients) nor underflows: total = m * (sum (|g| / m)^p)^(1/p).
    largest = max((float(g.max()) if g.size else 0.0) for g in grads)
    if any(np.isnan(g).any() for g in grads):
        total = math.nan
    elif p_norm == math.inf or largest == 0.0 or math.isinf(largest):
        total = largest
    else:
        sums = sum(float(np.sum((g / largest) ** p_norm)) for g in grads)
        total = largest * sums ** (1.0 / p_norm)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"{who}: the total norm of order {p_norm} of the gradients is {total}, so they "
            "cannot be clipped; nothing was changed. Look for the NaN/inf in the loss or the "
            "gradients, or pass error_if_nonfinite=False to scale by it anyway (as PyTorch)"
        )
    coef = max_norm / (total + 1e-6)
    if coef < 1.0 or math.isnan(coef):  # (PyTorch clamps at 1 and multiplies: a no-op)
        with np.errstate(invalid="ignore"):  # inf * 0: the NaN PyTorch gives, documented
            for p, g in params:
                p.grad = Tensor(g * coef)  # (a new array: a gradient may be shared)
    return Tensor(np.array(total))


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient entry into ``[-clip_value, clip_value]`` (NaN stays NaN).
    Parameters without a gradient are skipped.

    >>> import chainrule as cr
    >>> w = cr.tensor([0.0, 0.0, 0.0], requires_grad=True)
    >>> w.grad = cr.tensor([-5.0, 0.5, 2.0])
    >>> clip_grad_value_([w], 1.0)
    >>> w.grad.tolist()
    [-1.0, 0.5, 1.0]
    """
    who = "clip_grad_value_"
    c = _number(who, "clip_value", clip_value, allow_inf=True)
    for p, g in _grads(parameters, who):
        p.grad = Tensor(namespace(g).clip(g, -c, c))
