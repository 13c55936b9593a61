"""The fast kernels (chainrule/ops/kernels.py) and the one rule that lets the engine use them:
the engine writes over a gradient array only where it alone holds it.

Each kernel gives its rule's bits; a gradient that anyone else can see (the seed, a retained
or captured gradient, a value the rule was given, a result shared by two inputs, a value a
watcher keeps) is never written over; and training with the kernels gives the same bits as
training with the plain rules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

import chainrule as cr
from chainrule.engine.backward import REUSE_MIN
from chainrule.engine.registry import OPS
from chainrule.ops import kernels

KERNELS = sorted(name for name, op in OPS.items() if op.vjp_into is not None)
BIG = (128, REUSE_MIN // 128 + 1)  # large enough for the engine to write over


def test_every_kernel_is_one_of_the_module():
    assert KERNELS == ["relu", "sigmoid", "tanh"]
    for name in KERNELS:
        assert OPS[name].vjp_into is getattr(kernels, f"{name}_vjp_into")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", KERNELS)
def test_a_kernel_gives_its_rule_s_bits_and_writes_into_g(name: str, dtype: str) -> None:
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(7, 9)) * 3).astype(dtype)
    x.reshape(-1)[:4] = [0.0, -0.0, np.inf, np.nan]
    out = OPS[name](x)
    g = rng.normal(size=x.shape).astype(dtype)
    g.reshape(-1)[4:6] = [np.inf, -np.inf]
    with np.errstate(all="ignore"):
        plain = OPS[name].vjps[0](g, out, x)
        into = OPS[name].vjp_into(g, out, x)
    assert into is g
    assert into.dtype == plain.dtype and into.tobytes() == plain.tobytes()


@pytest.mark.parametrize("name", KERNELS)
def test_a_kernel_on_tensors_is_the_rule(name: str) -> None:
    # create_graph: the rule runs on Tensors, so the kernel hands it on (and writes nothing)
    x = cr.tensor(np.linspace(-2, 2, 12), requires_grad=True)
    out = OPS[name](x)
    g = cr.tensor(np.arange(12.0))
    before = g.numpy().copy()
    result = OPS[name].vjp_into(g, out, x)
    expected = OPS[name].vjps[0](g, out, x)
    assert isinstance(result, cr.Tensor) and np.array_equal(result.numpy(), expected.numpy())
    assert np.array_equal(g.numpy(), before)


@contextmanager
def calls_of(name: str) -> Iterator[list[bool]]:
    """Each call of ``name``'s kernel, recording whether it was handed the array it wrote."""
    op = OPS[name]
    kernel = op.vjp_into
    seen: list[bool] = []

    def spy(g: Any, out: Any, x: Any) -> Any:
        result = kernel(g, out, x)
        seen.append(result is g)
        return result

    op.vjp_into = spy
    try:
        yield seen
    finally:
        op.vjp_into = kernel


def _big(seed: int = 0) -> cr.Tensor:
    return cr.tensor(np.random.default_rng(seed).normal(size=BIG), requires_grad=True)


def test_the_engine_writes_into_a_gradient_it_alone_holds() -> None:
    x, w = _big(0), _big(1)
    with calls_of("relu") as seen:
        (cr.relu(x) * w).sum().backward()  # relu's gradient: multiply's fresh g * w
    assert seen == [True]
    expected = np.asarray(w.numpy()) * (x.numpy() > 0)
    assert np.array_equal(x.grad.numpy(), expected)


def test_no_kernel_for_small_arrays_the_seed_or_a_shared_gradient() -> None:
    small = cr.tensor(np.linspace(-1, 1, 8), requires_grad=True)
    with calls_of("relu") as seen:
        cr.relu(small).sum().backward()
    assert seen == []  # below REUSE_MIN elements
    x = _big()
    seed = np.ones(BIG)
    with calls_of("relu") as seen:
        cr.relu(x).backward(seed)  # the seed is the caller's array
    assert seen == [] and np.array_equal(seed, np.ones(BIG))
    with calls_of("relu") as seen:
        y = cr.relu(x)
        (y + y).sum().backward()  # add hands the same g to both: the engine sums them anew
    assert seen == [True]


def test_a_gradient_someone_else_can_see_is_never_written_into() -> None:
    x = _big()
    y = x * 2.0
    z = cr.relu(y)
    z.retain_grad()  # z's gradient goes to z.grad: relu must not write into it
    (z * 3.0).sum().backward()
    assert np.all(z.grad.numpy() == 3.0)
    # gradients() captures the gradient at a node it is asked for
    x = _big()
    z = cr.relu(x * 2.0)
    (gz,) = cr.gradients((z * 3.0).sum(), [z])
    assert np.all(gz == 3.0)


def test_a_watched_pass_writes_nothing_over() -> None:
    x, w = _big(0), _big(1)
    loss = (cr.relu(x) * w).sum()
    g = cr.graph(loss)
    with calls_of("relu") as seen:
        steps = g.backward_steps()
    assert seen == []
    relu_step = next(s for s in steps if s.op == "relu")
    assert np.array_equal(relu_step.grad, w.numpy())  # what it was shown is intact


def test_fan_in_sums_in_place_with_the_same_bits() -> None:
    rng = np.random.default_rng(3)
    x = cr.tensor(rng.normal(size=BIG), requires_grad=True)
    a, b, c = (cr.tensor(rng.normal(size=BIG)) for _ in range(3))
    (x * a + x * b + x * c).sum().backward()
    # the engine's order: the latest recorded node first (x * c), then x * b, then x * a
    expected = (c.numpy() + b.numpy()) + a.numpy()
    assert x.grad.numpy().tobytes() == expected.tobytes()


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_training_with_and_without_the_kernels_gives_the_same_bits(activation: str) -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(256, 80)).astype("float32")
    y = rng.integers(0, 5, size=256)

    def train(with_kernels: bool) -> list[bytes]:
        saved = {name: OPS[name].vjp_into for name in KERNELS}
        if not with_kernels:
            for name in KERNELS:
                OPS[name].vjp_into = None
        try:
            net = cr.nn.MLP([80, 128, 128, 5], activation=activation, dtype="float32", rng=0)
            opt = cr.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
            for _ in range(3):
                opt.zero_grad()
                cr.nn.functional.cross_entropy(net(cr.tensor(X)), y).backward()
                opt.step()
            return [p.data.tobytes() for p in net.parameters()]
        finally:
            for name, kernel in saved.items():
                OPS[name].vjp_into = kernel

    with calls_of(activation) as seen:
        fast = train(True)
    assert seen and all(seen)  # the kernel ran, into the arrays it was given
    assert fast == train(False)
