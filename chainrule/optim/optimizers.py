"""SGD with momentum/Nesterov/weight decay, Adam and AdamW, with PyTorch's update rules and
defaults (the Optimizer base, with parameter groups and the state_dict, is in
:mod:`chainrule.optim.optimizer`).

Backprop fills ``p.grad``; ``step()`` updates each parameter in place (the same Tensor, so a
model keeps its parameters), outside the graph. Where the parameter's array is a writeable
NumPy array, the update writes into that array and the optimizer's buffers are updated in
place too, as PyTorch does: a step allocates only its temporaries. The values are the same as
an out-of-place update, bit for bit.

>>> import chainrule as cr
>>> w = cr.tensor([1.0, -2.0], requires_grad=True)
>>> opt = cr.optim.SGD([w], lr=0.1)
>>> cr.sum(w * w).backward()      # grad = 2w
>>> opt.step()
>>> w.tolist()
[0.8, -1.6]
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..backends.gaps import is_dask
from ..engine.tensor import Tensor
from . import _checks
from ._groups import Hyperparameter
from .optimizer import (
    Check,
    Optimizer,
    _add,
    _bump,
    _div,
    _inplace,
    _mul,
    _multiply,
    _sqrt,
    _sub,
    _subtract,
    _writable,
)


# The updates in one pass over each parameter, without NumPy's temporaries (chainrule/optim/
# _fused.c): the same bits as the NumPy lines below, which run wherever a case is not plain,
# and everywhere when the kernels were not built (no C compiler at install) or
# CHAINRULE_PURE_PYTHON=1 is set. Each returns whether it did the update.
# sgd_update(p, g, lr[, buf, momentum, 1 - dampening, weight_decay, nesterov]);
# adam_update(p, g, m, v, b1, 1 - b1, b2, 1 - b2, 1 - b2^t, lr / (1 - b1^t), eps,
#             L2 weight decay or 0, AdamW's 1 - lr * weight_decay or None).
def _kernels() -> tuple[Any, Any]:
    if os.environ.get("CHAINRULE_PURE_PYTHON", "") not in ("", "0"):
        return None, None
    try:
        from ._fused import adam_update, sgd_update
    except ImportError:  # not built: the NumPy lines do every update
        return None, None
    return sgd_update, adam_update


_sgd_update, _adam_update = _kernels()

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]  # (Optimizer: where it was first defined)


def _nonnegative(where: str, value: Any) -> float:
    return _checks.real(where, value, low=0.0)


def _betas(where: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{where} must be a pair (beta1, beta2), each in [0, 1), got {value!r}")
    b1 = _checks.unit_interval(f"{where}[0]", value[0])
    b2 = _checks.unit_interval(f"{where}[1]", value[1])
    return (b1, b2)


class SGD(Optimizer):
    """Stochastic gradient descent, PyTorch's rule:
    ``g += weight_decay * p``; ``b = momentum * b + (1 - dampening) * g`` (``b = g`` at the
    first step); ``g = g + momentum * b`` if nesterov else ``b``; ``p -= lr * g``.

    >>> import chainrule as cr
    >>> w = cr.tensor([1.0], requires_grad=True)
    >>> opt = cr.optim.SGD([w], lr=0.1, momentum=0.9)
    >>> for _ in range(2):
    ...     w.grad = cr.tensor([1.0]); opt.step()    # moves 0.1, then 0.1 * (0.9 + 1)
    >>> round(float(w), 12)
    0.71
    """

    SPEC: dict[str, Check] = {
        "lr": _checks.lr,
        "momentum": _nonnegative,
        "dampening": _checks.real,
        "nesterov": _checks.flag,
        "weight_decay": _nonnegative,
    }
    STATE = {"momentum_buffer": "buffer"}

    momentum = Hyperparameter()
    dampening = Hyperparameter()
    nesterov = Hyperparameter()
    weight_decay = Hyperparameter()

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        # (the numbers become Python floats: what the one-pass update takes, NumPy rounds
        # them the same)
        super().__init__(
            params,
            dict(
                lr=lr,
                momentum=momentum,
                dampening=dampening,
                nesterov=nesterov,
                weight_decay=weight_decay,
            ),
        )

    def _check_group(self, group: Mapping[str, Any], where: str) -> None:
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"{where}Nesterov momentum needs momentum > 0 and dampening = 0, got "
                f"momentum={group['momentum']!r}, dampening={group['dampening']!r}"
            )

    def step(self) -> None:
        groups = self.param_groups
        group = groups[0]
        if (
            len(groups) > 1
            or group["weight_decay"]
            or group["momentum"]
            or type(self)._update is not SGD._update
        ):
            return super().step()  # (a subclass with its own rule: that rule, every step)
        # NOTE: plain SGD with one group, the most common step, is Optimizer.step and
        # _update's last line in one loop: the same operations and bits, a microsecond less
        # per parameter.
        self.steps += 1
        self._group = group
        lr = group["lr"]
        scratch = self._tmp
        fused = _sgd_update
        lazy = False
        for i, p in enumerate(self.params):
            grad = p._grad
            if type(grad) is not Tensor and not isinstance(grad, Tensor):
                continue  # None, or a retain_grad() mark
            if not p._rg:  # frozen (requires_grad=False): left alone
                continue
            g, data = grad._data, p._data
            if fused is not None and fused(data, g, lr):  # in C, one pass: the same bits
                p._version = _bump()
                continue
            tmp = scratch.get(i)
            if (  # the scratch view of every step after the first: write into it
                tmp is None
                or type(g) is not np.ndarray
                or type(data) is not np.ndarray
                or g.dtype is not tmp.dtype
                or data.dtype is not tmp.dtype
                or g.shape != tmp.shape
                or data.shape != tmp.shape
            ):
                if g.shape != data.shape:  # the first step, or a parameter that changed
                    raise ValueError(f"SGD: gradient shape {g.shape} != parameter {p.shape}")
                tmp = self._scratch(i, data) if _writable(data, g) else None
            if tmp is not None:
                try:
                    _subtract(data, _multiply(g, lr, tmp), data)
                except ValueError:  # NumPy refuses to write into a read-only parameter
                    tmp = None  # (checked here, not in advance: flags cost 0.1 us)
            if tmp is None:  # not NumPy, or read-only: out of place
                if is_dask(g):  # lazy gradients: all computed in one pass, then stepped
                    self._compute_gradients()
                    g = grad._data
                lazy = lazy or is_dask(data)  # (a Dask parameter: persisted after the step)
                p._data = data - g * lr
            p._version = _bump()  # a graph that used the old value is now stale
        if lazy:
            self._persist_parameters()
        return None

    def _fused(self, p: Any, g: Any, state: dict[str, Any]) -> bool:
        fused = _sgd_update
        if fused is None or type(self)._update is not SGD._update:  # a subclass's own rule
            return False
        group = self._group
        momentum = group["momentum"]
        buf = None
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:  # the first step makes the buffer (a copy of g): _update does
                return False
        return bool(
            fused(
                p,
                g,
                group["lr"],
                buf,
                momentum,
                1 - group["dampening"],
                group["weight_decay"],
                group["nesterov"],
            )
        )

    def _update(self, p: Any, g: Any, state: dict[str, Any], tmp: Any) -> Any:
        group = self._group
        momentum = group["momentum"]
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = g * 1  # a copy: the buffer must not alias the gradient
            else:  # b = momentum * b + (1 - dampening) * g
                scaled = _mul(g, 1 - group["dampening"], tmp)
                buf = _add(_mul(buf, momentum, _inplace(tmp, buf)), scaled, _inplace(tmp, buf))
            state["momentum_buffer"] = buf
            g = g + momentum * buf if group["nesterov"] else buf
        return _sub(p, _mul(g, group["lr"], tmp), _inplace(tmp, p))


class Adam(Optimizer):
    """Adam (Kingma and Ba), PyTorch's rule and defaults: ``m = b1 m + (1-b1) g``,
    ``v = b2 v + (1-b2) g^2``, ``p -= lr * m_hat / (sqrt(v_hat) + eps)`` with the bias
    corrections ``m_hat = m / (1 - b1^t)``, ``v_hat = v / (1 - b2^t)`` (``t`` counted per
    parameter). ``weight_decay`` adds ``weight_decay * p`` to the gradient (L2); AdamW
    decouples it.

    >>> import chainrule as cr
    >>> w = cr.tensor([0.0, 0.0], requires_grad=True)
    >>> opt = cr.optim.Adam([w], lr=0.1)
    >>> w.grad = cr.tensor([3.0, -0.5]); opt.step()   # the first step is lr * sign(g)
    >>> [round(x, 6) for x in w.tolist()]
    [-0.1, 0.1]
    """

    decoupled = False
    SPEC: dict[str, Check] = {
        "lr": _checks.lr,
        "betas": _betas,
        "eps": _checks.positive,
        "weight_decay": _nonnegative,
    }
    STATE = {"step": "count", "exp_avg": "buffer", "exp_avg_sq": "buffer"}
    REQUIRED_STATE = ("step", "exp_avg", "exp_avg_sq")

    betas = Hyperparameter()
    eps = Hyperparameter()
    weight_decay = Hyperparameter()

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _fused(self, p: Any, g: Any, state: dict[str, Any]) -> bool:
        fused = _adam_update
        m, v = state.get("exp_avg"), state.get("exp_avg_sq")
        if fused is None or m is None or v is None:  # the first step makes the buffers
            return False
        if type(self)._update is not Adam._update:  # a subclass's own rule
            return False
        group = self._group
        b1, b2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        t = state["step"] + 1
        done = fused(
            p,
            g,
            m,
            v,
            b1,
            1 - b1,
            b2,
            1 - b2,
            1 - b2**t,
            lr / (1 - b1**t),
            group["eps"],
            wd if wd and not self.decoupled else 0.0,
            1 - lr * wd if wd and self.decoupled else None,
        )
        if done:
            state["step"] = t
        return bool(done)

    def _update(self, p: Any, g: Any, state: dict[str, Any], tmp: Any) -> Any:
        group = self._group
        b1, b2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        if wd:
            if self.decoupled:  # AdamW: shrink the weights directly
                p = _mul(p, 1 - lr * wd, _inplace(tmp, p))
            else:
                g = g + wd * p  # Adam: L2 folded into the gradient
        t = state.get("step", 0) + 1
        m = state.get("exp_avg")
        v = state.get("exp_avg_sq")
        if m is None or v is None:  # the first step makes the buffers
            m = (1 - b1) * g
            v = (1 - b2) * (g * g)
        else:  # m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
            m = _add(_mul(m, b1, _inplace(tmp, m)), _mul(g, 1 - b1, tmp), _inplace(tmp, m))
            g2 = _mul(_mul(g, g, tmp), 1 - b2, tmp)
            v = _add(_mul(v, b2, _inplace(tmp, v)), g2, _inplace(tmp, v))
        state.update(step=t, exp_avg=m, exp_avg_sq=v)
        step_size = lr / (1 - b1**t)
        denom = _add(_sqrt(_div(v, 1 - b2**t, tmp), tmp), group["eps"], tmp)
        return _sub(p, _mul(_div(m, denom, tmp), step_size, tmp), _inplace(tmp, p))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter): ``p *= 1 - lr * wd`` before
    the Adam step; PyTorch's default ``weight_decay=0.01``.

    >>> import chainrule as cr
    >>> w = cr.tensor([2.0], requires_grad=True)
    >>> opt = cr.optim.AdamW([w], lr=0.1, weight_decay=0.5)
    >>> w.grad = cr.tensor([0.0]); opt.step()         # no gradient: only the decay moves it
    >>> float(w)
    1.9
    """

    decoupled = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
