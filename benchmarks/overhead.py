"""Workload 1, per-op overhead: a chain of 1,000 elementwise ops (mul, add, tanh in turn) on a
float64 tensor of 1 element and of 1,000 elements, forward then backward to a scalar (a sum).
Reported in microseconds per op, the sum op and its backward included in the total.

Every library runs the same chain, ``y = tanh(y * 1.0001 + 0.001)`` 333 times and a last
``y * 1.0001``, from a fresh leaf each run (made before the clock starts), and ends with the
gradient of the input in hand:

- chainrule, torch, mygrad: tensors with ``requires_grad`` (mygrad: every tensor), ``backward()``.
- autograd (HIPS): ``autograd.grad`` of the chain written with ``autograd.numpy``.
- jax: ``jax.grad`` of the chain, **eager: no jit** (each primitive dispatched on its own).
- micrograd: its scalar ``Value`` (1 element only). micrograd has no tanh, so one is added in
  micrograd's own pattern (a new ``Value`` with a ``_backward`` closure), as its author does in
  his lecture. Its backward pass sorts the graph recursively, so a 1,000-op chain raises
  RecursionError at the default recursion limit (not raised here); the row ``micrograd 2x500``
  therefore also times about the same ops (999) as two chains of 499 from one input, summed.
- numpy: the floor, no graph: the forward ops, their outputs kept, then one NumPy call per op
  for its derivative (tanh: ``g * (1 - out**2)``, mul: ``g * 1.0001``, add: ``g * 1.0``, as in
  the first version of this benchmark, so every op costs one call each way).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from . import peers
from .harness import Outcome, interleave, log, ratios, side_by_side, timer

__all__ = ["N_OPS", "chain", "cases", "micrograd_tanh", "run"]

N_OPS = 1000
ROUNDS = 333  # 333 x (mul, add, tanh) + one last mul = 1,000 ops
A, B = 1.0001, 0.001


def micrograd_tanh(v: Any) -> Any:
    """tanh for micrograd's Value, written the way micrograd writes its own ops."""
    Value = peers.get("micrograd").Value
    t = math.tanh(v.data)
    out = Value(t, (v,), "tanh")

    def _backward() -> None:
        v.grad += (1 - t * t) * out.grad

    out._backward = _backward
    return out


def chain(x: Any, tanh: Callable[[Any], Any], rounds: int = ROUNDS) -> Any:
    """The chain every library runs, with its own tanh: ``rounds`` x (mul, add, tanh), then
    one last mul."""
    y = x
    for _ in range(rounds):
        y = tanh(y * A + B)
    return y * A


def _chainrule(size: int) -> Callable[[], float]:
    cr = peers.get("chainrule")

    def run() -> float:
        x = cr.tensor(np.full(size, 0.5), requires_grad=True)
        start = timer()
        chain(x, cr.tanh).sum().backward()
        grad = x.grad
        elapsed = timer() - start
        assert grad is not None
        return elapsed / N_OPS

    return run


def _torch(size: int) -> Callable[[], float]:
    torch = peers.get("torch")

    def run() -> float:
        x = torch.full((size,), 0.5, dtype=torch.float64, requires_grad=True)
        start = timer()
        chain(x, torch.tanh).sum().backward()
        grad = x.grad
        elapsed = timer() - start
        assert grad is not None
        return elapsed / N_OPS

    return run


def _autograd(size: int) -> Callable[[], float]:
    import autograd
    import autograd.numpy as anp

    def f(x: Any) -> Any:
        return anp.sum(chain(x, anp.tanh))

    grad_f = autograd.grad(f)

    def run() -> float:
        x = np.full(size, 0.5)
        start = timer()
        grad = grad_f(x)
        elapsed = timer() - start
        assert grad.shape == (size,)
        return elapsed / N_OPS

    return run


def _jax(size: int) -> Callable[[], float]:
    jax = peers.get("jax")
    jnp = jax.numpy

    def f(x: Any) -> Any:
        return jnp.sum(chain(x, jnp.tanh))

    grad_f = jax.grad(f)  # no jit: eager, op by op

    def run() -> float:
        x = jnp.full((size,), 0.5, dtype=jnp.float64)
        x.block_until_ready()
        start = timer()
        grad = grad_f(x)
        grad.block_until_ready()
        return (timer() - start) / N_OPS

    return run


def _mygrad(size: int) -> Callable[[], float]:
    mg = peers.get("mygrad")

    def run() -> float:
        x = mg.tensor(np.full(size, 0.5))
        start = timer()
        mg.sum(chain(x, mg.tanh)).backward()
        grad = x.grad
        elapsed = timer() - start
        assert grad is not None
        return elapsed / N_OPS

    return run


def _micrograd(chains: int) -> Callable[[], float]:
    Value = peers.get("micrograd").Value
    rounds = ROUNDS // chains
    n_ops = chains * (3 * rounds + 1) + (chains - 1)  # the chains and the adds joining them

    def run() -> float:
        x = Value(0.5)
        start = timer()
        ends = []
        for _ in range(chains):
            ends.append(chain(x, micrograd_tanh, rounds))
        total = ends[0]
        for end in ends[1:]:
            total = total + end
        total.backward()
        grad = x.grad
        elapsed = timer() - start
        assert grad != 0
        return elapsed / n_ops

    return run


def _numpy(size: int) -> Callable[[], float]:
    def run() -> float:
        x = np.full(size, 0.5)
        start = timer()
        outs = []
        y = x
        for _ in range(ROUNDS):
            y = np.tanh(y * A + B)
            outs.append(y)
        y = y * A
        total = np.sum(y)
        g = np.ones_like(x)  # d sum / d y
        g = g * A  # the last mul
        for out in reversed(outs):
            g = g * (1 - out * out)  # tanh
            g = g * 1.0  # add: the local derivative is 1
            g = g * A  # mul
        elapsed = timer() - start
        assert math.isfinite(float(total)) and g.shape == (size,)
        return elapsed / N_OPS

    return run


def cases(size: int) -> dict[str, Callable[[], float] | None]:
    """Library -> case for a tensor of ``size`` elements (None: missing or not applicable).
    Each case returns seconds per op."""
    makers: dict[str, Callable[[int], Callable[[], float]]] = {
        "chainrule": _chainrule,
        "torch": _torch,
        "jax": _jax,
        "autograd": _autograd,
        "mygrad": _mygrad,
        "numpy": _numpy,
    }
    out: dict[str, Callable[[], float] | None] = {}
    for name, make in makers.items():
        out[name] = make(size) if peers.get(name) is not None else None
    if size == 1 and peers.get("micrograd") is not None:
        out["micrograd"] = _micrograd(1)
        out["micrograd 2x500"] = _micrograd(2)
    return out


LABELS = {"jax": "jax (eager, no jit)", "numpy": "numpy (by hand, floor)"}


def run(quick: bool, repeats: int) -> tuple[str, dict[str, Any]]:
    """Both sizes, interleaved; the table in microseconds per op, and the JSON data."""
    columns: dict[str, dict[str, Outcome]] = {}
    data: dict[str, Any] = {"unit": "us per op", "n_ops": N_OPS, "dtype": "float64", "sizes": {}}
    for size in (1, 1000):
        log(f"workload 1: per-op overhead, {size} element(s)")
        outcomes = interleave(
            cases(size),
            repeats=repeats,
            warmup=1 if quick else 3,
            missing=peers.missing(),
            label=f"{size} element(s)",
        )
        columns[f"{size:,} element{'s' if size > 1 else ''} µs/op"] = outcomes
        data["sizes"][str(size)] = {lib: o.to_json(scale=1e6) for lib, o in outcomes.items()}
        data.setdefault("ratio_chainrule_over", {})[str(size)] = ratios(outcomes)
    title = (
        f"1. Per-op overhead: µs per op, forward + backward, a chain of {N_OPS:,} ops (mul, add, "
        f"tanh in turn), float64; medians of {repeats}, interleaved"
    )
    return "\n".join([title, side_by_side(columns, 1e6, LABELS)]), data
