"""Checks of the numbers an optimizer or a schedule is given, each with the message a user
needs: which optimizer, which argument, what was given, and what is allowed.

Every check takes ``where`` (``"SGD: momentum"``, ``"StepLR: gamma"``) and the value, and
returns the value normalised (a Python float, int or bool) or raises ``ValueError``:

>>> real("SGD: momentum", 0.9, low=0.0)
0.9
>>> real("SGD: momentum", -1, low=0.0)
Traceback (most recent call last):
...
ValueError: SGD: momentum must be a finite number >= 0, got -1
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["real", "integer", "flag", "lr", "unit_interval", "choice", "positive"]


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def real(
    where: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
) -> float:
    """``value`` as a Python float, checked to lie in the given bounds (closed unless
    ``*_open``); NaN is always refused, infinities unless ``finite=False``."""
    ok = _is_real(value) and not math.isnan(value) and (not finite or math.isfinite(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            bounds.append(f"{'<' if high_open else '<='} {high:g}")
        kind = "a finite number" if finite else "a number"
        raise ValueError(
            f"{where} must be {kind}{' ' if bounds else ''}{' and '.join(bounds)}, got {value!r}"
        )
    return float(value)


def positive(where: str, value: Any) -> float:
    """A finite number > 0 (eps, a division factor)."""
    return real(where, value, low=0.0, low_open=True)


def lr(where: str, value: Any) -> float:
    """A learning rate: a finite number >= 0."""
    if not (_is_real(value) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{where} (the learning rate) must be a finite number >= 0, got {value!r}")
    return float(value)


def unit_interval(where: str, value: Any, high_open: bool = True) -> float:
    """A number in [0, 1) (a beta, a smoothing constant), or [0, 1] with ``high_open=False``."""
    return real(where, value, low=0.0, high=1.0, high_open=high_open)


def integer(where: str, value: Any, low: int = 0) -> int:
    """An int >= ``low`` (NumPy integers too; not bool, not a float such as 3.0)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{where} must be an integer >= {low}, got {value!r}")
    return int(value)


def flag(where: str, value: Any) -> bool:
    """A bool (Python's or NumPy's); 0 and 1 are refused, to catch arguments out of place."""
    if type(value).__name__ not in ("bool", "bool_"):
        raise ValueError(f"{where} must be True or False, got {value!r}")
    return bool(value)


def choice(where: str, value: Any, options: tuple[str, ...]) -> str:
    """One of the given strings."""
    if not isinstance(value, str) or value not in options:
        allowed = " or ".join(repr(o) for o in options)
        raise ValueError(f"{where} must be {allowed}, got {value!r}")
    return value
