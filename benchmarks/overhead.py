"""Per-op overhead: a chain of 1,000 elementwise ops (mul, add, tanh in turn), forward then
backward to a scalar, chainrule against the same chain written in raw NumPy (each op and its
derivative, no graph). Interleaved runs after warm-up; medians of 7.

Run: .venv/bin/python benchmarks/overhead.py
"""

from __future__ import annotations

import platform
import statistics
import time

import numpy as np

import chainrule as cr

N_OPS = 999  # 333 rounds of mul, add, tanh


def chainrule_chain(size: int) -> float:
    x = cr.tensor(np.full(size, 0.5), requires_grad=True)
    start = time.perf_counter()
    y = x
    for _ in range(N_OPS // 3):
        y = cr.tanh(y * 1.0001 + 0.001)
    y.sum().backward()
    return time.perf_counter() - start


def numpy_chain(size: int) -> float:
    x = np.full(size, 0.5)
    start = time.perf_counter()
    outs = []
    y = x
    for _ in range(N_OPS // 3):
        y = np.tanh(y * 1.0001 + 0.001)
        outs.append(y)
    g = np.ones_like(x)
    for out in reversed(outs):
        g = g * (1 - out * out)  # tanh
        g = g * 1.0  # add passes the gradient through
        g = g * 1.0001  # mul
    return time.perf_counter() - start


def main() -> None:
    print(f"chainrule {cr.__version__}, NumPy {np.__version__}, Python {platform.python_version()}")
    print(f"{platform.machine()} {platform.processor() or ''}".strip())
    print(f"{'elements':>9} {'chainrule us/op':>16} {'NumPy us/op':>12} {'ratio':>6}")
    for size in (1, 1000):
        for _ in range(3):  # warm-up
            chainrule_chain(size)
            numpy_chain(size)
        ours, raw = [], []
        for _ in range(7):
            ours.append(chainrule_chain(size))
            raw.append(numpy_chain(size))
        a = statistics.median(ours) / N_OPS * 1e6
        b = statistics.median(raw) / N_OPS * 1e6
        print(f"{size:>9} {a:>16.2f} {b:>12.2f} {a / b:>6.2f}")


if __name__ == "__main__":
    main()
