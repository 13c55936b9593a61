"""Seeded random tensors, Generator-style (NumPy's PCG64 underneath).

>>> import chainrule as cr
>>> rng = cr.random.default_rng(0)
>>> w = rng.normal(size=(3, 2), requires_grad=True)
>>> w.shape, w.requires_grad
((3, 2), True)
>>> bool((cr.random.default_rng(0).normal(size=(3, 2)) == w.detach()).all())
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine.modes import check_not_tracing
from ..engine.tensor import Tensor

__all__ = [
    "Generator",
    "default_rng",
    "seed",
    "normal",
    "uniform",
    "standard_normal",
    "integers",
    "permutation",
    "random",
]


class Generator:
    """A seeded source of random tensors; the same seed gives the same tensors."""

    def __init__(self, seed: Any = None) -> None:
        self.bit_generator = np.random.default_rng(seed)

    def _out(self, data: Any, dtype: Any, requires_grad: bool) -> Tensor:
        arr = np.asarray(data, dtype=dtype) if dtype is not None else np.asarray(data)
        return Tensor(arr, requires_grad=requires_grad)

    def normal(
        self,
        loc: float = 0.0,
        scale: float = 1.0,
        size: Any = None,
        dtype: Any = "float64",
        requires_grad: bool = False,
    ) -> Tensor:
        """Samples of N(loc, scale^2)."""
        check_not_tracing("random draws")  # before drawing: a trace must not consume one
        return self._out(self.bit_generator.normal(loc, scale, size), dtype, requires_grad)

    def standard_normal(
        self, size: Any = None, dtype: Any = "float64", requires_grad: bool = False
    ) -> Tensor:
        """Samples of N(0, 1)."""
        return self.normal(0.0, 1.0, size, dtype, requires_grad)

    def uniform(
        self,
        low: float = 0.0,
        high: float = 1.0,
        size: Any = None,
        dtype: Any = "float64",
        requires_grad: bool = False,
    ) -> Tensor:
        """Samples uniform on [low, high)."""
        check_not_tracing("random draws")
        return self._out(self.bit_generator.uniform(low, high, size), dtype, requires_grad)

    def random(
        self, size: Any = None, dtype: Any = "float64", requires_grad: bool = False
    ) -> Tensor:
        """Samples uniform on [0, 1)."""
        return self.uniform(0.0, 1.0, size, dtype, requires_grad)

    def integers(self, low: int, high: int | None = None, size: Any = None) -> Tensor:
        """Random integers in [low, high)."""
        check_not_tracing("random draws")
        return Tensor(np.asarray(self.bit_generator.integers(low, high, size)))

    def permutation(self, n: int) -> Tensor:
        """A random permutation of range(n)."""
        check_not_tracing("random draws")
        return Tensor(self.bit_generator.permutation(n))

    def spawn(self, n: int) -> list[Generator]:
        """Independent child generators (for data loaders, workers)."""
        children = []
        for child in self.bit_generator.spawn(n):
            g = Generator.__new__(Generator)
            g.bit_generator = child
            children.append(g)
        return children


def default_rng(seed: Any = None) -> Generator:
    """A new :class:`Generator` (``seed`` an int for reproducible runs)."""
    return Generator(seed)


_GLOBAL = [Generator(0)]


def seed(value: Any) -> None:
    """Reseed the module-level generator used by the functions below."""
    _GLOBAL[0] = Generator(value)


def normal(loc: float = 0.0, scale: float = 1.0, size: Any = None, **kw: Any) -> Tensor:
    return _GLOBAL[0].normal(loc, scale, size, **kw)


def standard_normal(size: Any = None, **kw: Any) -> Tensor:
    return _GLOBAL[0].standard_normal(size, **kw)


def uniform(low: float = 0.0, high: float = 1.0, size: Any = None, **kw: Any) -> Tensor:
    return _GLOBAL[0].uniform(low, high, size, **kw)


def random(size: Any = None, **kw: Any) -> Tensor:
    return _GLOBAL[0].random(size, **kw)


def integers(low: int, high: int | None = None, size: Any = None) -> Tensor:
    return _GLOBAL[0].integers(low, high, size)


def permutation(n: int) -> Tensor:
    return _GLOBAL[0].permutation(n)
