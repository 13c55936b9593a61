"""The schedules that watch more than the epoch: ``OneCycleLR`` (warm up to a peak and anneal,
cycling the momentum the other way) and ``ReduceLROnPlateau`` (cut the rate when a metric
stops improving), as PyTorch's; the base class and the fixed schedules are in
:mod:`chainrule.optim.schedulers`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _checks
from .schedulers import Check, LRScheduler, _nonnegative, _per_group

__all__ = ["OneCycleLR", "ReduceLROnPlateau"]


def _momentum(where: str, value: Any) -> float:
    return _checks.unit_interval(where, value)


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith and Topin), PyTorch's: stepped once per batch, the rate rises
    from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of
    ``total_steps`` (or ``epochs * steps_per_epoch``), then anneals (``"cos"`` or
    ``"linear"``) to ``max_lr / div_factor / final_div_factor``; with ``three_phase`` it
    comes back down to the start before the final anneal. With ``cycle_momentum`` the
    momentum (SGD's and RMSprop's ``momentum``, Adam's ``beta1``) moves the opposite way,
    between ``max_momentum`` and ``base_momentum``. ``max_lr`` and the momenta may list one
    value per param group. Stepping past ``total_steps`` raises, as in PyTorch.

    >>> import chainrule as cr
    >>> opt = cr.optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=0.1, momentum=0.9)
    >>> sched = cr.optim.OneCycleLR(opt, max_lr=1.0, total_steps=10, anneal_strategy="linear")
    >>> [round(sched.lr_at(t)[0], 4) for t in (0, 2, 5, 9)]
    [0.04, 1.0, 0.5714, 0.0]
    >>> opt.param_groups[0]["momentum"]      # at the start of the cycle: max_momentum
    0.95
    """

    ARGS: dict[str, Check] = {
        "max_lrs": _checks.positive,
        "total_steps": lambda where, v: _checks.integer(where, v, low=1),
        "pct_start": lambda where, v: _checks.unit_interval(where, v, high_open=False),
        "anneal_strategy": lambda where, v: _checks.choice(where, v, ("cos", "linear")),
        "div_factor": _checks.positive,
        "final_div_factor": _checks.positive,
        "three_phase": _checks.flag,
        "cycle_momentum": _checks.flag,
        "base_momentums": _momentum,
        "max_momentums": _momentum,
    }
    PER_GROUP = ("max_lrs", "base_momentums", "max_momentums")

    def __init__(
        self,
        optimizer: Any,
        max_lr: float | Sequence[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | Sequence[float] = 0.85,
        max_momentum: float | Sequence[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
    ) -> None:
        n = len(getattr(optimizer, "param_groups", None) or [None])

        def check(key: str, value: Any) -> Any:
            return self.ARGS[key](f"OneCycleLR: {key}", value)

        self.max_lrs = _per_group(self.ARGS["max_lrs"], "OneCycleLR: max_lr", max_lr, n, True)
        self.total_steps = _total_steps(total_steps, epochs, steps_per_epoch)
        self.pct_start = check("pct_start", pct_start)
        self.anneal_strategy = check("anneal_strategy", anneal_strategy)
        self.div_factor = check("div_factor", div_factor)
        self.final_div_factor = check("final_div_factor", final_div_factor)
        self.three_phase = check("three_phase", three_phase)
        self.cycle_momentum = check("cycle_momentum", cycle_momentum)
        self.base_momentums = _per_group(
            _momentum, "OneCycleLR: base_momentum", base_momentum, n, True
        )
        self.max_momentums = _per_group(
            _momentum, "OneCycleLR: max_momentum", max_momentum, n, True
        )
        defaults = getattr(optimizer, "defaults", {})
        if self.cycle_momentum and "momentum" not in defaults and "betas" not in defaults:
            raise ValueError(
                f"OneCycleLR: cycle_momentum=True, but {type(optimizer).__name__} has neither "
                "momentum nor betas; pass cycle_momentum=False"
            )
        self.use_beta1 = "betas" in defaults  # (the optimizer's kind, not a saved setting)
        super().__init__(optimizer)

    def _at(self, epoch: int, k: int) -> tuple[float, float]:
        """(learning rate, momentum) of group ``k`` at ``epoch``, PyTorch's phases."""
        if epoch > self.total_steps:
            raise ValueError(
                f"OneCycleLR: step {epoch} is past total_steps={self.total_steps}; make the "
                "schedule with total_steps (or epochs * steps_per_epoch) covering every step"
            )
        top = self.max_lrs[k]
        low = top / self.div_factor
        values = {
            "low": low,
            "top": top,
            "end": low / self.final_div_factor,
            "m_max": self.max_momentums[k],
            "m_base": self.base_momentums[k],
        }
        n, pct = self.total_steps, self.pct_start
        phases = (  # (last step of the phase, lr from, lr to, momentum from, momentum to)
            [
                (pct * n - 1, "low", "top", "m_max", "m_base"),
                (2 * pct * n - 2, "top", "low", "m_base", "m_max"),
                (n - 1, "low", "end", "m_max", "m_max"),
            ]
            if self.three_phase
            else [
                (pct * n - 1, "low", "top", "m_max", "m_base"),
                (n - 1, "top", "end", "m_base", "m_max"),
            ]
        )
        anneal = _cos if self.anneal_strategy == "cos" else _linear
        start = 0.0
        for i, (end, lr0, lr1, m0, m1) in enumerate(phases):
            if epoch <= end or i == len(phases) - 1:
                # NOTE: a phase of no length (pct_start * total_steps == 1) is at its end;
                # PyTorch divides 0 by 0 there
                frac = (epoch - start) / (end - start) if end != start else 1.0
                return anneal(values[lr0], values[lr1], frac), anneal(values[m0], values[m1], frac)
            start = end
        raise AssertionError("unreachable: the last phase takes every step")

    def lr_at(self, epoch: int) -> list[float]:
        return [self._at(epoch, k)[0] for k in range(len(self.max_lrs))]

    def momentum_at(self, epoch: int) -> list[float]:
        """The momentum (or beta1) of each param group at ``epoch``."""
        return [self._at(epoch, k)[1] for k in range(len(self.max_lrs))]

    def _apply(self, epoch: int) -> None:
        super()._apply(epoch)
        if self.cycle_momentum:
            for group, m in zip(self._groups(), self.momentum_at(epoch)):
                if self.use_beta1:
                    group["betas"] = (m, group["betas"][1])
                else:
                    group["momentum"] = m


def _cos(start: float, end: float, frac: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * frac) + 1)


def _linear(start: float, end: float, frac: float) -> float:
    return (end - start) * frac + start


def _total_steps(total_steps: Any, epochs: Any, steps_per_epoch: Any) -> int:
    if epochs is not None or steps_per_epoch is not None:
        if epochs is None or steps_per_epoch is None:
            raise ValueError(
                "OneCycleLR: give epochs and steps_per_epoch together (or total_steps), got "
                f"epochs={epochs!r}, steps_per_epoch={steps_per_epoch!r}"
            )
        n = _checks.integer("OneCycleLR: epochs", epochs, low=1) * _checks.integer(
            "OneCycleLR: steps_per_epoch", steps_per_epoch, low=1
        )
        if total_steps is not None and total_steps != n:
            raise ValueError(
                f"OneCycleLR: total_steps={total_steps!r} but epochs * steps_per_epoch = {n}; "
                "give one or the other"
            )
        return n
    if total_steps is None:
        raise ValueError("OneCycleLR: give total_steps, or epochs and steps_per_epoch")
    return _checks.integer("OneCycleLR: total_steps", total_steps, low=1)


class ReduceLROnPlateau(LRScheduler):
    """Divide the rates when a metric stops improving, PyTorch's rule: ``step(metric)`` once
    per epoch (the validation loss, say); after more than ``patience`` epochs without an
    improvement (in ``mode`` "min" or "max", by more than ``threshold``, relative or
    absolute), each group's rate becomes ``max(lr * factor, min_lr)`` (unless that changes
    it by ``eps`` or less), then ``cooldown`` epochs pass before counting again. A NaN
    metric counts as no improvement.

    >>> import chainrule as cr
    >>> opt = cr.optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=1.0)
    >>> sched = cr.optim.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    >>> for loss in [3.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0]:
    ...     sched.step(loss)
    >>> sched.get_last_lr()
    [0.25]
    """

    ARGS: dict[str, Check] = {
        "mode": lambda where, v: _checks.choice(where, v, ("min", "max")),
        "factor": lambda where, v: _checks.real(where, v, low=0.0, high=1.0, high_open=True),
        "patience": _checks.integer,
        "threshold": _nonnegative,
        "threshold_mode": lambda where, v: _checks.choice(where, v, ("rel", "abs")),
        "cooldown": _checks.integer,
        "min_lrs": _nonnegative,
        "eps": _nonnegative,
        "best": lambda where, v: _checks.real(where, v, finite=False),
        "num_bad_epochs": _checks.integer,
        "cooldown_counter": _checks.integer,
    }
    PER_GROUP = ("min_lrs",)

    def __init__(
        self,
        optimizer: Any,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | Sequence[float] = 0.0,
        eps: float = 1e-8,
    ) -> None:
        def check(key: str, value: Any) -> Any:
            return self.ARGS[key](f"ReduceLROnPlateau: {key}", value)

        n = len(getattr(optimizer, "param_groups", None) or [None])
        self.mode = check("mode", mode)
        self.factor = check("factor", factor)
        self.patience = check("patience", patience)
        self.threshold = check("threshold", threshold)
        self.threshold_mode = check("threshold_mode", threshold_mode)
        self.cooldown = check("cooldown", cooldown)
        self.min_lrs = _per_group(_nonnegative, "ReduceLROnPlateau: min_lr", min_lr, n, True)
        self.eps = check("eps", eps)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> list[float]:
        """The rates now (they follow the metric, not the epoch)."""
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def step(self, metrics: Any) -> None:  # type: ignore[override]
        """Count epoch ``last_epoch + 1`` with this value of the metric; lower the rates if
        it has not improved for more than ``patience`` epochs."""
        current = _metric(metrics)
        groups = self._groups()
        self.last_epoch += 1
        if self._better(current):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:  # in cooldown: bad epochs are not counted
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, floor in zip(groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, floor)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [float(g["lr"]) for g in groups]

    def _better(self, a: float) -> bool:
        best, t = self.best, self.threshold
        if self.mode == "min":
            return a < (best * (1 - t) if self.threshold_mode == "rel" else best - t)
        return a > (best * (1 + t) if self.threshold_mode == "rel" else best + t)


def _metric(value: Any) -> float:
    """A metric as a float: a number, or a one-element Tensor or array."""
    number = value
    if isinstance(number, np.ndarray) and number.size == 1:
        number = number.reshape(()).item()  # (NumPy 2.4 no longer floats a shape (1,))
    try:
        if isinstance(number, (str, bytes, bool, np.bool_)) or number is None:
            raise TypeError
        return float(number)
    except (TypeError, ValueError):
        raise TypeError(
            "ReduceLROnPlateau.step: metrics must be a number (the value to watch, such as "
            f"the validation loss), got {value!r:.100}"
        ) from None
