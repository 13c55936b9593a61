"""Optimizers (SGD with momentum/Nesterov/weight decay, Adam, AdamW) and learning-rate
schedules, with PyTorch's update rules and defaults.

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

import math
import numbers
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..engine.modes import next_seq
from ..engine.tensor import Tensor


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

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "StepLR", "CosineAnnealingLR", "LRScheduler"]


class Optimizer:
    """Base class: holds the parameters, their per-parameter state, and the learning rate."""

    def __init__(self, params: Iterable[Any], lr: float, name: str) -> None:
        params = list(params)
        if not params:
            raise ValueError(f"{name}: got no parameters to optimize (an empty list)")
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise ValueError(
                    f"{name}: parameter {i} is a {type(p).__name__}, not a Tensor; pass "
                    "model.parameters() or tensors made with requires_grad=True"
                )
            if not p.is_leaf:
                raise ValueError(
                    f"{name}: parameter {i} (shape {p.shape}) is not a leaf tensor: it was "
                    f"made by {p.op}; optimize the tensor it was computed from, or detach() it "
                    "and set requires_grad=True"
                )
            if not p.requires_grad:
                raise ValueError(
                    f"{name}: parameter {i} (shape {p.shape}) does not require grad; make it "
                    "with requires_grad=True"
                )
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name}: a parameter appears more than once")
        _check_lr(lr, name)
        self.params: list[Tensor] = params
        self.lr = float(lr)  # a Python float, whatever real number type was given
        self.state: list[dict[str, Any]] = [{} for _ in params]
        self._tmp: dict[int, Any] = {}  # parameter index -> its view of the scratch buffer
        self._flat: dict[Any, Any] = {}  # dtype -> the scratch buffer (see _scratch)
        self.steps = 0
        self.name = name

    def zero_grad(self) -> None:
        """Drop the gradients (set to None) before the next backward pass."""
        for p in self.params:
            p._grad = None  # (what the .grad setter does with None, without its call)

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        self.steps += 1
        states = self.state
        for i, p in enumerate(self.params):
            grad = p._grad  # (the .grad property, without its call)
            if not isinstance(grad, Tensor):  # None, or a retain_grad() mark
                continue
            g, data = grad.data, p.data
            if self._fused(data, g, states[i]):
                p._version = _bump()
                continue
            if g.shape != data.shape:
                raise ValueError(f"{self.name}: gradient shape {g.shape} != parameter {p.shape}")
            tmp = self._scratch(i, data) if _writable(data, g) else None
            new = self._update(data, g, states[i], tmp)
            if new is not data:
                p.data = new
            p._version = _bump()  # a graph that used the old value is now stale

    def _fused(self, p: Any, g: Any, state: dict[str, Any]) -> bool:
        """Whether the whole update of ``p`` (and its state) was done in place in one pass by
        the compiled kernels (_fused.c), with the bits of :meth:`_update`; False sends it to
        :meth:`_update`. Never here; SGD's and Adam's, unless a subclass brings its own
        ``_update``, which then runs every step."""
        return False

    def _update(self, p: Any, g: Any, state: dict[str, Any], tmp: Any) -> Any:
        """The updated value of ``p``. Where ``tmp`` is given (a scratch array like ``p``),
        ``p`` and the state's buffers are updated in place and every temporary is ``tmp``;
        where it is None, everything is computed out of place (any array namespace)."""
        raise NotImplementedError

    def _scratch(self, i: int, like: Any) -> Any:
        # NOTE: scratch space kept between steps: a step that allocates and frees arrays as
        # large as the weights makes the C allocator hand memory back to the system and fault
        # it in again (about 1,000 page faults per step on a 784-256 MLP in float64), which
        # costs more than the arithmetic. One buffer per dtype, as large as the largest
        # parameter, serves every parameter in turn (each update is done with it before the
        # next starts): the memory of one parameter, not of all, and still in cache.
        buf = self._tmp.get(i)
        if buf is None or buf.shape != like.shape or buf.dtype is not like.dtype:
            flat = self._flat.get(like.dtype)
            if flat is None or flat.size < like.size:
                sizes = [
                    p.data.size
                    for p in self.params
                    if type(p.data) is np.ndarray and p.data.dtype == like.dtype
                ]
                flat = self._flat[like.dtype] = np.empty(max(sizes + [like.size]), like.dtype)
                self._tmp.clear()  # views of the old buffer
            buf = self._tmp[i] = flat[: like.size].reshape(like.shape)
        return buf

    HYPERPARAMETERS: tuple[str, ...] = ("lr",)

    def hyperparameters(self) -> dict[str, Any]:
        """The settings a state_dict carries (the learning rate, momentum, betas, ...)."""
        return {name: getattr(self, name) for name in self.HYPERPARAMETERS}

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters, the step count and each parameter's state (NumPy arrays)."""
        return {
            "type": type(self).__name__,
            "hyperparameters": self.hyperparameters(),
            "steps": self.steps,
            "state": [_snapshot(s) for s in self.state],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("type") != type(self).__name__:
            raise ValueError(
                f"{self.name}.load_state_dict: the state is for {state.get('type')}, not "
                f"{type(self).__name__}"
            )
        if len(state["state"]) != len(self.params):
            raise ValueError(
                f"{self.name}.load_state_dict: the state has {len(state['state'])} parameters, "
                f"the optimizer {len(self.params)}"
            )
        for key, value in state["hyperparameters"].items():
            setattr(self, key, value)
        self.steps = int(state["steps"])
        self.state = [_snapshot(s) for s in state["state"]]


def _snapshot(state: dict[str, Any]) -> dict[str, Any]:
    """A copy of one parameter's state whose arrays are its own (buffers change in place)."""
    return {k: v.copy() if hasattr(v, "copy") else v for k, v in state.items()}


def _writable(p: Any, g: Any) -> bool:
    """Whether an update of p by g can be written into p: both NumPy, same dtype, p writeable."""
    return (
        type(p) is np.ndarray
        and type(g) is np.ndarray
        and (g.dtype is p.dtype or g.dtype == p.dtype)
        and g.shape == p.shape
        and p.flags.writeable
    )


_bump = next_seq  # dates an in-place update: a graph that used the old value is now stale
_multiply, _subtract = np.multiply, np.subtract


# The arithmetic of the updates, each written once: into ``out`` where it is an array (the
# in-place path), as a plain expression where it is None. Same operations, same bits. (The
# ufuncs take ``out`` as their third positional argument: as a keyword it costs 0.1-0.2 us more.)
def _mul(a: Any, b: Any, out: Any) -> Any:
    return a * b if out is None else np.multiply(a, b, out)


def _div(a: Any, b: Any, out: Any) -> Any:
    return a / b if out is None else np.divide(a, b, out)


def _add(a: Any, b: Any, out: Any) -> Any:
    return a + b if out is None else np.add(a, b, out)


def _sub(a: Any, b: Any, out: Any) -> Any:
    return a - b if out is None else np.subtract(a, b, out)


def _sqrt(a: Any, out: Any) -> Any:
    # (NumPy's a ** 0.5 is its sqrt: the correctly rounded square root, as the compiled kernel's)
    return a**0.5 if out is None else np.sqrt(a, out)


def _inplace(tmp: Any, a: Any) -> Any:
    """Where to write a new value of the buffer ``a``: ``a`` itself on the in-place path."""
    return None if tmp is None else a


def _check_lr(lr: float, name: str) -> None:
    if not (isinstance(lr, numbers.Real) and not isinstance(lr, bool)) or not (
        math.isfinite(lr) and lr >= 0
    ):
        raise ValueError(f"{name}: the learning rate must be a finite number >= 0, got {lr!r}")


class SGD(Optimizer):
    """Stochastic gradient descent, PyTorch's rule:
    ``g += weight_decay * p``; ``b = momentum * b + (1 - dampening) * g`` (``b = g`` at the
    first step); ``g = g + momentum * b`` if nesterov else ``b``; ``p -= lr * g``."""

    HYPERPARAMETERS = ("lr", "momentum", "dampening", "nesterov", "weight_decay")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr, "SGD")
        if momentum < 0 or weight_decay < 0:
            raise ValueError("SGD: momentum and weight_decay must be >= 0")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        # Python floats, as lr is: what the one-pass update takes (NumPy rounds them the same)
        self.momentum = float(momentum)
        self.dampening = float(dampening)
        self.nesterov = nesterov
        self.weight_decay = float(weight_decay)

    def step(self) -> None:
        if self.weight_decay or self.momentum or type(self)._update is not SGD._update:
            return super().step()  # (a subclass with its own rule: that rule, every step)
        # NOTE: plain SGD, the most common step, is Optimizer.step and _update's last line in
        # one loop: the same operations and bits, a microsecond less per parameter.
        self.steps += 1
        lr = self.lr
        scratch = self._tmp
        fused = _sgd_update
        for i, p in enumerate(self.params):
            grad = p._grad
            if type(grad) is not Tensor and not isinstance(grad, Tensor):
                continue  # None, or a retain_grad() mark
            g, data = grad.data, p.data
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
                p.data = data - g * lr
            p._version = _bump()  # a graph that used the old value is now stale
        return None

    def _fused(self, p: Any, g: Any, state: dict[str, Any]) -> bool:
        fused = _sgd_update
        if fused is None or type(self)._update is not SGD._update:  # a subclass's own rule
            return False
        buf = None
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:  # the first step makes the buffer (a copy of g): _update does
                return False
        return bool(
            fused(
                p,
                g,
                self.lr,
                buf,
                self.momentum,
                1 - self.dampening,
                self.weight_decay,
                self.nesterov,
            )
        )

    def _update(self, p: Any, g: Any, state: dict[str, Any], tmp: Any) -> Any:
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = g * 1  # a copy: the buffer must not alias the gradient
            else:  # b = momentum * b + (1 - dampening) * g
                scaled = _mul(g, 1 - self.dampening, tmp)
                buf = _add(_mul(buf, self.momentum, _inplace(tmp, buf)), scaled, _inplace(tmp, buf))
            state["momentum_buffer"] = buf
            g = g + self.momentum * buf if self.nesterov else buf
        return _sub(p, _mul(g, self.lr, tmp), _inplace(tmp, p))


class Adam(Optimizer):
    """Adam (Kingma and Ba), PyTorch's rule and defaults: ``m = b1 m + (1-b1) g``,
    ``v = b2 v + (1-b2) g^2``, ``p -= lr * m_hat / (sqrt(v_hat) + eps)`` with the bias
    corrections ``m_hat = m / (1 - b1^t)``, ``v_hat = v / (1 - b2^t)``. ``weight_decay`` adds
    ``weight_decay * p`` to the gradient (L2); AdamW decouples it."""

    decoupled = False
    HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr, type(self).__name__)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"{self.name}: betas must lie in [0, 1), got {betas}")
        if eps < 0 or weight_decay < 0:
            raise ValueError(f"{self.name}: eps and weight_decay must be >= 0")
        self.betas = (float(b1), float(b2))
        self.eps = float(eps)  # Python floats, as lr: what the one-pass update takes
        self.weight_decay = float(weight_decay)

    def _fused(self, p: Any, g: Any, state: dict[str, Any]) -> bool:
        fused = _adam_update
        m, v = state.get("exp_avg"), state.get("exp_avg_sq")
        if fused is None or m is None or v is None:  # the first step makes the buffers
            return False
        if type(self)._update is not Adam._update:  # a subclass's own rule
            return False
        b1, b2 = self.betas
        t = state["step"] + 1
        wd = self.weight_decay
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
            self.lr / (1 - b1**t),
            self.eps,
            wd if wd and not self.decoupled else 0.0,
            1 - self.lr * wd if wd and self.decoupled else None,
        )
        if done:
            state["step"] = t
        return bool(done)

    def _update(self, p: Any, g: Any, state: dict[str, Any], tmp: Any) -> Any:
        b1, b2 = self.betas
        if self.weight_decay:
            if self.decoupled:  # AdamW: shrink the weights directly
                p = _mul(p, 1 - self.lr * self.weight_decay, _inplace(tmp, p))
            else:
                g = g + self.weight_decay * p  # Adam: L2 folded into the gradient
        t = state.get("step", 0) + 1
        m = state.get("exp_avg")
        v = state.get("exp_avg_sq")
        if m is None:  # the first step makes the buffers
            m = (1 - b1) * g
            v = (1 - b2) * (g * g)
        else:  # m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
            m = _add(_mul(m, b1, _inplace(tmp, m)), _mul(g, 1 - b1, tmp), _inplace(tmp, m))
            g2 = _mul(_mul(g, g, tmp), 1 - b2, tmp)
            v = _add(_mul(v, b2, _inplace(tmp, v)), g2, _inplace(tmp, v))
        state.update(step=t, exp_avg=m, exp_avg_sq=v)
        step_size = self.lr / (1 - b1**t)
        denom = _add(_sqrt(_div(v, 1 - b2**t, tmp), tmp), self.eps, tmp)
        return _sub(p, _mul(_div(m, denom, tmp), step_size, tmp), _inplace(tmp, p))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter): ``p *= 1 - lr * wd`` before
    the Adam step; PyTorch's default ``weight_decay=0.01``."""

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


class LRScheduler:
    """Base of learning-rate schedules: call ``step()`` once per epoch (or per step)."""

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.epoch = 0

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError

    def step(self) -> None:
        self.epoch += 1
        self.optimizer.lr = self.lr_at(self.epoch)

    def get_last_lr(self) -> float:
        return self.optimizer.lr


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        super().__init__(optimizer)
        self.step_size = step_size
        self.gamma = gamma

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Cosine from the base rate down to ``eta_min`` over ``T_max`` epochs:
    ``eta_min + (base - eta_min) (1 + cos(pi t / T_max)) / 2``."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        super().__init__(optimizer)
        self.T_max = T_max
        self.eta_min = eta_min

    def lr_at(self, epoch: int) -> float:
        t = min(epoch, self.T_max)
        cos = (1 + math.cos(math.pi * t / self.T_max)) / 2
        return self.eta_min + (self.base_lr - self.eta_min) * cos
