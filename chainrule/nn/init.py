"""Seeded initialisers: Xavier/Glorot and He/Kaiming, uniform and normal.

Each returns a NumPy array for a weight of shape ``(fan_out, fan_in)`` (PyTorch's layout).
``rng`` is an int seed, a ``cr.random.Generator``, a NumPy Generator, or None for the
module-level generator that ``cr.random.seed`` sets.

>>> import chainrule as cr
>>> w = cr.nn.init.kaiming_normal((256, 784), rng=0)
>>> round(float(w.std()), 3) == round((2 / 784) ** 0.5, 3)
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..ops import random as _random

__all__ = [
    "gain",
    "generator",
    "uniform",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
]


def generator(rng: Any = None) -> np.random.Generator:
    """The NumPy Generator behind ``rng`` (see the module docstring)."""
    if rng is None:
        return _random._GLOBAL[0].bit_generator
    if isinstance(rng, _random.Generator):
        return rng.bit_generator
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng: expected an int seed or a Generator, got {type(rng).__name__}")


def gain(nonlinearity: str, negative_slope: float = 0.01) -> float:
    """The recommended scale for a nonlinearity (relu: sqrt 2, tanh: 5/3, ...)."""
    table = {
        "linear": 1.0,
        "identity": 1.0,
        "sigmoid": 1.0,
        "tanh": 5.0 / 3.0,
        "relu": math.sqrt(2.0),
        "gelu": math.sqrt(2.0),
        "softplus": math.sqrt(2.0),
        "leaky_relu": math.sqrt(2.0 / (1.0 + negative_slope**2)),
    }
    if nonlinearity not in table:
        raise ValueError(f"gain: unknown nonlinearity {nonlinearity!r}; one of {sorted(table)}")
    return table[nonlinearity]


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(f"init: a weight needs 2 dimensions (fan_out, fan_in), got {shape}")
    return int(shape[1]), int(shape[0])


def _cast(a: np.ndarray, dtype: Any) -> np.ndarray:
    return a.astype(dtype, copy=False)


def uniform(shape: Any, bound: float, rng: Any = None, dtype: Any = "float64") -> np.ndarray:
    """Samples uniform on [-bound, bound]."""
    return _cast(generator(rng).uniform(-bound, bound, size=tuple(shape)), dtype)


def xavier_uniform(
    shape: Any, gain: float = 1.0, rng: Any = None, dtype: Any = "float64"
) -> np.ndarray:
    """Glorot: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tuple(shape))
    return uniform(shape, gain * math.sqrt(6.0 / (fan_in + fan_out)), rng, dtype)


def xavier_normal(
    shape: Any, gain: float = 1.0, rng: Any = None, dtype: Any = "float64"
) -> np.ndarray:
    """Glorot: N(0, s^2) with s = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tuple(shape))
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return _cast(generator(rng).normal(0.0, std, size=tuple(shape)), dtype)


def kaiming_uniform(
    shape: Any, nonlinearity: str = "relu", rng: Any = None, dtype: Any = "float64"
) -> np.ndarray:
    """He: U(-a, a) with a = gain * sqrt(3 / fan_in)."""
    fan_in, _ = _fans(tuple(shape))
    return uniform(shape, gain(nonlinearity) * math.sqrt(3.0 / fan_in), rng, dtype)


def kaiming_normal(
    shape: Any, nonlinearity: str = "relu", rng: Any = None, dtype: Any = "float64"
) -> np.ndarray:
    """He: N(0, s^2) with s = gain / sqrt(fan_in)."""
    fan_in, _ = _fans(tuple(shape))
    std = gain(nonlinearity) / math.sqrt(fan_in)
    return _cast(generator(rng).normal(0.0, std, size=tuple(shape)), dtype)
