"""The engine leaks nothing, in either build (the compiled one is C, where a missed reference
count would leak): no reference is kept on the ops, the inputs or their arrays after recording
and backward, error paths included; traced memory does not grow over thousands of passes; and a
graph is freed by reference counting alone, the moment its sink is dropped."""

from __future__ import annotations

import gc
import sys
import tracemalloc
import weakref
from typing import Any

import numpy as np
import pytest

import chainrule as cr
from chainrule.engine.backward import HUSK_MIN
from chainrule.engine.registry import OPS

RNG = np.random.default_rng(11)


class _Cube(cr.Function):
    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        (x,) = ctx.saved_tensors
        return grad * 3 * x * x


class _Boom(cr.Function):
    @staticmethod
    def forward(ctx: Any, x: Any, y: Any) -> Any:
        return x * y

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        raise ValueError("boom")


def _counts(*objs: Any) -> list[int]:
    gc.collect()
    return [sys.getrefcount(o) for o in objs]


def _leaf(shape: tuple[int, ...]) -> cr.Tensor:
    return cr.tensor(RNG.normal(size=shape), requires_grad=True)


def test_no_reference_leaks_in_recording_and_backward() -> None:
    x = _leaf((3, 2))
    c = cr.tensor(RNG.normal(size=(3, 2)))
    big = _leaf((128, 160))  # large enough for the engine to write over its gradients
    data = x.data

    def step() -> None:
        cr.sum(cr.tanh(x * c) * 2.0 + x).backward()
        cr.stack([x, c * 1.0, x]).sum().backward()  # a variadic op
        (cr.relu(big) * big + big * 2.0).sum().backward()  # fan-in, a fast kernel
        cr.sum(x * c).backward(create_graph=True)  # a recorded backward pass

    step()
    ops = [OPS[name] for name in ("multiply", "tanh", "add", "sum", "stack", "relu")]
    watched = (*ops, x, data, c, c.data, big, big.data)
    before = _counts(*watched)
    for _ in range(1000):
        step()
    assert _counts(*watched) == before  # (the .grad tensors are replaced: not watched)


def test_no_memory_growth_over_many_backward_passes() -> None:
    x = _leaf((8,))

    def step() -> None:
        y = cr.sum(cr.sin(x * x) * 3.0 - x)
        y.backward()
        x.grad = None

    tracemalloc.start()
    try:
        for _ in range(100):
            step()
        gc.collect()
        settled = tracemalloc.get_traced_memory()[0]
        for _ in range(2000):
            step()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - settled
    finally:
        tracemalloc.stop()
    assert grown < 100_000, f"traced memory grew by {grown} bytes over 2000 backward passes"


@pytest.mark.parametrize("how", ["no backward", "backward retain_graph", "backward"])
def test_graph_freed_by_reference_counting_alone(how: str) -> None:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        x = _leaf((HUSK_MIN // 8 + 1,))  # values just over the size a freed graph keeps
        a = x * 2.0
        b = cr.tanh(a)
        c = cr.concatenate([b, a, b])
        sink = cr.sum(c * c) + cr.sum(_Cube.apply(a))
        inner = [weakref.ref(t) for t in (a, b, c)]
        outer = weakref.ref(sink)
        if how != "no backward":
            sink.backward(retain_graph=how == "backward retain_graph")
            assert x.grad is not None
        del a, b, c
        if how == "backward":  # the pass let go of the values of every node it went through
            assert all(r() is None for r in inner)
            assert len(cr.graph(sink).nodes) == 9  # (their structure stays, in husks)
        else:  # held by the sink's graph
            assert all(r() is not None for r in inner)
        del sink
        assert outer() is None and all(r() is None for r in inner)
    finally:
        if was_enabled:
            gc.enable()


def test_error_paths_do_not_leak() -> None:
    x = _leaf((3,))
    data = x.data

    def freed() -> None:
        y = cr.sum(cr.exp(x) * x)
        y.backward()
        with pytest.raises(RuntimeError):
            y.backward()

    def modified() -> None:
        c = cr.tensor(np.ones(3))
        y = cr.sum(x * c)
        c += 1.0
        with pytest.raises(RuntimeError):
            y.backward()

    def raising_backward() -> None:
        y = cr.sum(_Boom.apply(cr.sin(x), x) * x)
        with pytest.raises(ValueError):
            y.backward()

    def forward_error() -> None:
        with pytest.raises(ValueError):
            x * cr.tensor(np.ones(4))

    for case in (freed, modified, raising_backward, forward_error):
        case()
        ops = [OPS[name] for name in ("multiply", "exp", "sin", "sum", "function")]
        watched = (x, data, *ops, _Boom)
        before = _counts(*watched)
        for _ in range(300):
            case()
        assert _counts(*watched) == before, case.__name__
