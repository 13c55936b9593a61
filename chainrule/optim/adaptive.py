"""RMSprop and Adagrad: each coordinate's step scaled by a running measure of its squared
gradients, with PyTorch's update rules and defaults.

They run on the NumPy lines of :mod:`chainrule.optim.optimizer` (updated in place with one
scratch array where the parameter is a writeable NumPy array, out of place otherwise); there
is no compiled one-pass kernel for them.

>>> import chainrule as cr
>>> w = cr.tensor([1.0, -1.0], requires_grad=True)
>>> opt = cr.optim.Adagrad([w], lr=0.5)
>>> w.grad = cr.tensor([4.0, -0.1]); opt.step()     # the first step: lr * g / |g| = lr * sign(g)
>>> [round(x, 6) for x in w.tolist()]
[0.5, -0.5]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import _checks
from ._groups import Hyperparameter
from .optimizer import Check, Optimizer, _add, _div, _inplace, _mul, _sqrt, _sub
from .optimizers import _nonnegative

__all__ = ["RMSprop", "Adagrad"]


def _alpha(where: str, value: Any) -> float:
    return _checks.unit_interval(where, value, high_open=False)


class RMSprop(Optimizer):
    """RMSprop (Hinton), PyTorch's rule and defaults. With ``g += weight_decay * p``:
    ``v = alpha v + (1 - alpha) g^2``; ``centered``: ``a = alpha a + (1 - alpha) g`` and
    ``v - a^2`` in place of ``v``; ``d = sqrt(v) + eps``; with ``momentum``:
    ``b = momentum b + g / d``, ``p -= lr b``, else ``p -= lr g / d``. Every buffer starts
    at zero (so the first ``v`` is ``(1 - alpha) g^2``: no bias correction, as in PyTorch).

    >>> import chainrule as cr
    >>> w = cr.tensor([0.0], requires_grad=True)
    >>> opt = cr.optim.RMSprop([w], lr=0.01, alpha=0.75)
    >>> w.grad = cr.tensor([2.0]); opt.step()        # v = 0.25 * 4 = 1: a step of lr * g / 1
    >>> round(float(w), 9)
    -0.02
    """

    SPEC: dict[str, Check] = {
        "lr": _checks.lr,
        "alpha": _alpha,
        "eps": _checks.positive,
        "weight_decay": _nonnegative,
        "momentum": _nonnegative,
        "centered": _checks.flag,
    }
    STATE = {
        "step": "count",
        "square_avg": "buffer",
        "momentum_buffer": "buffer",
        "grad_avg": "buffer",
    }
    REQUIRED_STATE = ("step", "square_avg")

    alpha = Hyperparameter()
    eps = Hyperparameter()
    weight_decay = Hyperparameter()
    momentum = Hyperparameter()
    centered = Hyperparameter()

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        super().__init__(
            params,
            dict(
                lr=lr,
                alpha=alpha,
                eps=eps,
                weight_decay=weight_decay,
                momentum=momentum,
                centered=centered,
            ),
        )

    def _update(self, p: Any, g: Any, state: dict[str, Any], tmp: Any) -> Any:
        group = self._group
        alpha, momentum, lr = group["alpha"], group["momentum"], group["lr"]
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        # A buffer that is not there yet is zero: its first value is its update's last term.
        # (So momentum or centered switched on later starts from zero too.)
        v = state.get("square_avg")
        if v is None:
            v = (g * g) * (1 - alpha)
        else:  # v = alpha v + (1 - alpha) g^2
            g2 = _mul(_mul(g, g, tmp), 1 - alpha, tmp)
            v = _add(_mul(v, alpha, _inplace(tmp, v)), g2, _inplace(tmp, v))
        state.update(step=state.get("step", 0) + 1, square_avg=v)
        if group["centered"]:
            a = state.get("grad_avg")
            if a is None:
                a = g * (1 - alpha)
            else:  # a = alpha a + (1 - alpha) g
                a = _add(
                    _mul(a, alpha, _inplace(tmp, a)), _mul(g, 1 - alpha, tmp), _inplace(tmp, a)
                )
            state["grad_avg"] = a
            d = _sqrt(_sub(v, _mul(a, a, tmp), tmp), tmp)  # sqrt(v - a^2): a variance's root
        else:
            d = _sqrt(v, tmp)
        d = _add(d, group["eps"], tmp)
        if not momentum:
            return _sub(p, _mul(_div(g, d, tmp), lr, tmp), _inplace(tmp, p))
        step = _div(g, d, tmp)
        b = state.get("momentum_buffer")
        if b is None:
            b = step * 1  # its own array (step may be the scratch buffer)
        else:  # b = momentum b + g / d
            b = _add(_mul(b, momentum, _inplace(tmp, b)), step, _inplace(tmp, b))
        state["momentum_buffer"] = b
        return _sub(p, _mul(b, lr, tmp), _inplace(tmp, p))


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.), PyTorch's rule and defaults. With ``g += weight_decay * p``
    and ``t`` the parameter's step count: ``s += g^2`` (``s`` starts at
    ``initial_accumulator_value``), ``p -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)``.

    >>> import chainrule as cr
    >>> w = cr.tensor([0.0], requires_grad=True)
    >>> opt = cr.optim.Adagrad([w], lr=1.0, initial_accumulator_value=5.0)
    >>> w.grad = cr.tensor([2.0]); opt.step()        # s = 5 + 4 = 9: a step of 2 / 3
    >>> round(float(w), 9)
    -0.666666667
    """

    SPEC: dict[str, Check] = {
        "lr": _checks.lr,
        "lr_decay": _nonnegative,
        "weight_decay": _nonnegative,
        "initial_accumulator_value": _nonnegative,
        "eps": _checks.positive,
    }
    STATE = {"step": "count", "sum": "buffer"}
    REQUIRED_STATE = ("step", "sum")

    lr_decay = Hyperparameter()
    weight_decay = Hyperparameter()
    initial_accumulator_value = Hyperparameter()
    eps = Hyperparameter()

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        super().__init__(
            params,
            dict(
                lr=lr,
                lr_decay=lr_decay,
                weight_decay=weight_decay,
                initial_accumulator_value=initial_accumulator_value,
                eps=eps,
            ),
        )

    def _update(self, p: Any, g: Any, state: dict[str, Any], tmp: Any) -> Any:
        group = self._group
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        t = state.get("step", 0) + 1
        s = state.get("sum")
        if s is None:  # the accumulator starts at initial_accumulator_value
            s = g * g + group["initial_accumulator_value"]
        else:
            s = _add(s, _mul(g, g, tmp), _inplace(tmp, s))
        state.update(step=t, sum=s)
        clr = group["lr"] / (1 + (t - 1) * group["lr_decay"])
        d = _add(_sqrt(s, tmp), group["eps"], tmp)
        return _sub(p, _mul(_div(g, d, tmp), clr, tmp), _inplace(tmp, p))
