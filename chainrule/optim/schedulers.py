"""Learning-rate schedules, as PyTorch's ``torch.optim.lr_scheduler``: each sets
``group["lr"]`` of every param group of its optimizer.

Make the schedule after the optimizer (it reads each group's learning rate then: its
``base_lrs``) and call ``step()`` once per epoch (or per batch: OneCycleLR) after
``optimizer.step()``. Making it sets the rates of epoch 0; ``get_last_lr()`` lists the rates
it set last, one per group. The rates follow PyTorch's closed forms of ``epoch``
(``last_epoch``), so a schedule resumed from its ``state_dict()`` continues exactly; a rate
written into a group by hand lasts until the next ``step()``.

>>> import chainrule as cr
>>> opt = cr.optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=1.0)
>>> sched = cr.optim.StepLR(opt, step_size=2, gamma=0.5)
>>> lrs = []
>>> for epoch in range(5):
...     lrs.append(sched.get_last_lr()[0])   # (train an epoch with this rate here)
...     sched.step()
>>> lrs
[1.0, 1.0, 0.5, 0.5, 0.25]
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import _checks

__all__ = [
    "LRScheduler",
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "LinearLR",
]

Check = Callable[[str, Any], Any]


def _gamma(where: str, value: Any) -> float:
    return _checks.real(where, value, low=0.0)


def _nonnegative(where: str, value: Any) -> float:
    return _checks.real(where, value, low=0.0)


class LRScheduler:
    """Base of the schedules: subclasses give ``lr_at(epoch)`` (the rate of each group) and
    ``ARGS``, their settings and the checks a loaded state passes through (``PER_GROUP``
    names those that hold one value per group)."""

    ARGS: dict[str, Check] = {}
    PER_GROUP: tuple[str, ...] = ()

    def __init__(self, optimizer: Any) -> None:
        groups = getattr(optimizer, "param_groups", None)
        if not isinstance(groups, list) or not groups:
            raise TypeError(
                f"{type(self).__name__}: optimizer must be a chainrule.optim optimizer (with "
                f"param_groups), got a {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.base_lrs: list[float] = [float(g["lr"]) for g in groups]
        self.last_epoch = 0
        self._last_lr: list[float] = []
        self._apply(0)

    @property
    def name(self) -> str:
        return type(self).__name__

    def lr_at(self, epoch: int) -> list[float]:
        """The learning rate of each param group at ``epoch``."""
        raise NotImplementedError

    def step(self) -> None:
        """Move to the next epoch and set its learning rates."""
        self._apply(self.last_epoch + 1)  # (first: a step that raises changes nothing)
        self.last_epoch += 1

    def get_last_lr(self) -> list[float]:
        """The learning rates the schedule set last, one per param group.

        >>> import chainrule as cr
        >>> a, b = cr.tensor([1.0], requires_grad=True), cr.tensor([1.0], requires_grad=True)
        >>> opt = cr.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
        >>> sched = cr.optim.ExponentialLR(opt, gamma=0.5)
        >>> sched.step()
        >>> sched.get_last_lr()
        [0.05, 0.25]
        """
        return list(self._last_lr)

    def _groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.optimizer.param_groups
        if len(groups) != len(self.base_lrs):
            raise ValueError(
                f"{self.name}: the optimizer has {len(groups)} param groups, the schedule was "
                f"made for {len(self.base_lrs)}; make the schedule after add_param_group()"
            )
        return groups

    def _apply(self, epoch: int) -> None:
        groups = self._groups()
        lrs = self.lr_at(epoch)
        for group, lr in zip(groups, lrs):
            group["lr"] = lr
        self._last_lr = list(lrs)

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The schedule's state, JSON-able (numbers, strings, lists): its type, epoch, base
        rates, last rates and settings. It does not hold the optimizer, whose own state
        carries the rates in its groups.

        >>> import chainrule as cr
        >>> opt = cr.optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=0.1)
        >>> cr.optim.StepLR(opt, step_size=3).state_dict()
        {'type': 'StepLR', 'last_epoch': 0, 'base_lrs': [0.1], 'last_lr': [0.1],
         'step_size': 3, 'gamma': 0.1}
        """
        out: dict[str, Any] = {
            "type": self.name,
            "last_epoch": self.last_epoch,
            "base_lrs": list(self.base_lrs),
            "last_lr": list(self._last_lr),
        }
        for key in self.ARGS:
            value = getattr(self, key)
            out[key] = list(value) if isinstance(value, (list, tuple)) else value
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Continue from a :meth:`state_dict`, as PyTorch: the schedule's epoch, rates and
        settings; the optimizer's rates come back with the optimizer's own state. Checked
        first: on any problem nothing changes and the ValueError lists every one."""
        problems, values = self._read(state_dict)
        if problems:
            raise ValueError(
                f"{self.name}.load_state_dict: the state does not fit this schedule "
                f"({len(problems)} problem{'s' if len(problems) > 1 else ''}); nothing was "
                "changed:\n  " + "\n  ".join(problems)
            )
        for key, value in values.items():
            setattr(self, key, value)

    def _read(self, sd: Any) -> tuple[list[str], dict[str, Any]]:
        if not isinstance(sd, Mapping):
            return [f"the state is a {type(sd).__name__}, not the dict state_dict() gives"], {}
        n = len(self.optimizer.param_groups)
        checks: dict[str, tuple[Check, bool]] = {
            "type": (lambda where, v: _checks.choice(where, v, (self.name,)), False),
            "last_epoch": (_checks.integer, False),
            "base_lrs": (_checks.lr, True),
            "last_lr": (_checks.lr, True),
        }
        checks.update((k, (c, k in self.PER_GROUP)) for k, c in self.ARGS.items())
        problems = [f"missing key {key!r}" for key in checks if key not in sd]
        problems += [f"unexpected key {key!r}" for key in sd if key not in checks]
        values: dict[str, Any] = {}
        for key, (check, per_group) in checks.items():
            if key not in sd:
                continue
            try:
                values[key] = (
                    _per_group(check, f"{key!r}", sd[key], n)
                    if per_group
                    else check(f"{key!r}", sd[key])
                )
            except ValueError as exc:
                problems.append(str(exc))
        values.pop("type", None)
        if "last_lr" in values:
            values["_last_lr"] = values.pop("last_lr")
        return problems, values


def _per_group(check: Check, where: str, value: Any, n: int, one: bool = False) -> list[Any]:
    """One value per param group: a list of ``n`` (or, with ``one``, one value for all)."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{where} must list one value per param group ({n}), got {value!r}")
        return [check(f"{where}[{k}]", v) for k, v in enumerate(value)]
    if not one:
        raise ValueError(f"{where} must be a list of one value per param group, got {value!r}")
    return [check(where, value)] * n


class StepLR(LRScheduler):
    """``base_lr * gamma ** (epoch // step_size)``: the rate times ``gamma`` every
    ``step_size`` epochs."""

    ARGS: dict[str, Check] = {
        "step_size": lambda where, v: _checks.integer(where, v, low=1),
        "gamma": _gamma,
    }

    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = self.ARGS["step_size"]("StepLR: step_size", step_size)
        self.gamma = _gamma("StepLR: gamma", gamma)
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> list[float]:
        return [base * self.gamma ** (epoch // self.step_size) for base in self.base_lrs]


def _milestones(where: str, value: Any) -> list[int]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise ValueError(
            f"{where} must be a non-empty list of epochs (integers >= 1), got {value!r}"
        )
    return sorted(_checks.integer(f"{where}[{k}]", m, low=1) for k, m in enumerate(value))


class MultiStepLR(LRScheduler):
    """``base_lr * gamma ** (number of milestones <= epoch)``: the rate times ``gamma`` at
    each milestone epoch (a milestone listed twice counts twice, as in PyTorch).

    >>> import chainrule as cr
    >>> opt = cr.optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=1.0)
    >>> sched = cr.optim.MultiStepLR(opt, milestones=[2, 3], gamma=0.5)
    >>> [sched.lr_at(e)[0] for e in range(5)]
    [1.0, 1.0, 0.5, 0.25, 0.25]
    """

    ARGS: dict[str, Check] = {"milestones": _milestones, "gamma": _gamma}

    def __init__(self, optimizer: Any, milestones: Sequence[int], gamma: float = 0.1) -> None:
        self.milestones = _milestones("MultiStepLR: milestones", milestones)
        self.gamma = _gamma("MultiStepLR: gamma", gamma)
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> list[float]:
        passed = bisect.bisect_right(self.milestones, epoch)
        return [base * self.gamma**passed for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """``base_lr * gamma ** epoch``: the rate times ``gamma`` every epoch."""

    ARGS: dict[str, Check] = {"gamma": _gamma}

    def __init__(self, optimizer: Any, gamma: float) -> None:
        self.gamma = _gamma("ExponentialLR: gamma", gamma)
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> list[float]:
        return [base * self.gamma**epoch for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine from the base rate down to ``eta_min`` over ``T_max`` epochs:
    ``eta_min + (base - eta_min) (1 + cos(pi t / T_max)) / 2``, then ``eta_min``.

    NOTE: PyTorch's rate rises again after ``T_max`` (the cosine goes on, a period of
    ``2 T_max``); here it stays at ``eta_min``, so training longer than planned does not
    warm the rate back up.

    >>> import chainrule as cr
    >>> opt = cr.optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=1.0)
    >>> sched = cr.optim.CosineAnnealingLR(opt, T_max=2)
    >>> [round(sched.lr_at(e)[0], 12) for e in range(4)]
    [1.0, 0.5, 0.0, 0.0]
    """

    ARGS: dict[str, Check] = {
        "T_max": lambda where, v: _checks.integer(where, v, low=1),
        "eta_min": _nonnegative,
    }

    def __init__(self, optimizer: Any, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max = self.ARGS["T_max"]("CosineAnnealingLR: T_max", T_max)
        self.eta_min = _nonnegative("CosineAnnealingLR: eta_min", eta_min)
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> list[float]:
        t = min(epoch, self.T_max)
        cos = (1 + math.cos(math.pi * t / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * cos for base in self.base_lrs]


def _start_factor(where: str, value: Any) -> float:
    return _checks.real(where, value, low=0.0, high=1.0, low_open=True)


def _end_factor(where: str, value: Any) -> float:
    return _checks.real(where, value, low=0.0, high=1.0)


class LinearLR(LRScheduler):
    """A linear ramp of the rate (a warmup): ``base_lr * (start_factor + (end_factor -
    start_factor) * min(epoch, total_iters) / total_iters)``, PyTorch's defaults.

    >>> import chainrule as cr
    >>> opt = cr.optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=1.0)
    >>> sched = cr.optim.LinearLR(opt, start_factor=0.25, total_iters=3)
    >>> [sched.lr_at(e)[0] for e in range(5)]
    [0.25, 0.5, 0.75, 1.0, 1.0]
    """

    ARGS: dict[str, Check] = {
        "start_factor": _start_factor,
        "end_factor": _end_factor,
        "total_iters": lambda where, v: _checks.integer(where, v, low=1),
    }

    def __init__(
        self,
        optimizer: Any,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
    ) -> None:
        self.start_factor = _start_factor("LinearLR: start_factor", start_factor)
        self.end_factor = _end_factor("LinearLR: end_factor", end_factor)
        self.total_iters = self.ARGS["total_iters"]("LinearLR: total_iters", total_iters)
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> list[float]:
        done = min(epoch, self.total_iters) / self.total_iters
        factor = self.start_factor + (self.end_factor - self.start_factor) * done
        return [base * factor for base in self.base_lrs]
