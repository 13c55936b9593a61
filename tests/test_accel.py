"""The C accelerator (chainrule/_native.c) against the pure-Python engine it stands in for.

Every case runs twice, once with the accelerator on and once with it off, and must give the
same values and gradients bit for bit (same array type, dtype and shape), the same exceptions
with the same messages, and the same graph state afterwards. Also: the op table through both
engines, a seeded training step, switching engines between recording and backward, and no
leaked references or memory in the C paths, error paths included.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import array_api_strict as xps
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_samples import KINDS, SAMPLES, Sample, np_const

import chainrule as cr
from chainrule import _accel, _record
from chainrule import ops as F
from chainrule.ops import REGISTRY, _registry
from chainrule.ops._registry import NOT_IMPLEMENTED, Op

RNG = np.random.default_rng(7)
STRICT_ARRAY = type(xps.asarray(0.0))
graph = importlib.import_module("chainrule.graph")  # (cr.graph is a function)
compiled_module = importlib.import_module("chainrule.compile")  # (cr.compile too)
PURE_ENV = os.environ.get("CHAINRULE_PURE_PYTHON", "") not in ("", "0")

# The accelerator is optional: an install on a machine with no C compiler has none, and then
# there is nothing here to compare. Where there is a compiler, it must have been built.
if not _accel.available() and not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")):
    pytest.skip(
        "chainrule._native was not built: there is no C compiler on this machine",
        allow_module_level=True,
    )


# -- running one function under both engines ---------------------------------------------------
@contextmanager
def engine(on: bool) -> Iterator[None]:
    """The accelerator switched ``on`` (or off) inside, the previous state restored after."""
    before = cr.use_accelerator(on)
    try:
        yield
    finally:
        cr.use_accelerator(before)


def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "returned", fn()
    except Exception as err:  # the same exception, message and cause under both engines
        cause = err.__cause__
        return "raised", (
            type(err),
            str(err),
            None if cause is None else (type(cause), str(cause)),
        )


def _same_array(a: Any, b: Any, where: str) -> None:
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} vs {b.dtype}"
    assert tuple(a.shape) == tuple(b.shape), f"{where}: shape {a.shape} vs {b.shape}"
    if isinstance(a, STRICT_ARRAY):
        a, b = np.from_dlpack(a), np.from_dlpack(b)
    a, b = np.asarray(a), np.asarray(b)
    nan = a.dtype.kind in "fc"
    full = lambda v: np.array_repr(v, precision=17)
    assert np.array_equal(a, b, equal_nan=nan), f"{where}: differ\n{full(a)}\n{full(b)}"
    # bit for bit (np.array_equal calls 0.0 and -0.0 equal)
    assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), where


def assert_same(a: Any, b: Any, where: str = "result") -> None:
    """``a`` (accelerated) and ``b`` (pure Python) are the same, arrays bit for bit."""
    if isinstance(a, cr.Tensor):
        assert isinstance(b, cr.Tensor), f"{where}: Tensor vs {type(b).__name__}"
        _same_array(a.data, b.data, f"{where}.data")
        assert a.requires_grad == b.requires_grad, f"{where}: requires_grad differs"
        assert a.is_leaf == b.is_leaf and a.op == b.op, f"{where}: {a.op} vs {b.op}"
        assert_same(a.grad, b.grad, f"{where}.grad")
    elif isinstance(a, (np.ndarray, np.generic, STRICT_ARRAY)):
        _same_array(a, b, where)
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), f"{where}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{where}: keys differ"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} vs {b!r}"


def both(fn: Callable[[], Any]) -> tuple[tuple[str, Any], tuple[str, Any]]:
    """``fn()``'s outcome with the accelerator on, then off."""
    with engine(True):
        assert cr.accelerated()
        fast = _outcome(fn)
    with engine(False):
        assert not cr.accelerated()
        slow = _outcome(fn)
    return fast, slow


def same(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` under both engines; both must return the same. Returns the accelerated one."""
    (kind_a, a), (kind_b, b) = both(fn)
    assert kind_a == kind_b == "returned", f"accelerated {kind_a} {a!r}; pure {kind_b} {b!r}"
    assert_same(a, b)
    return a


def same_error(fn: Callable[[], Any], kind: type[BaseException], match: str) -> str:
    """Both engines raise ``kind`` with the same message (which contains ``match``)."""
    (kind_a, a), (kind_b, b) = both(fn)
    assert kind_a == kind_b == "raised", f"accelerated {kind_a} {a!r}; pure {kind_b} {b!r}"
    assert a == b, f"accelerated raised {a!r}\npure raised {b!r}"
    assert a[0] is kind, a
    assert match in a[1], a
    return a[1]


def leaf(a: Any, rg: bool = True) -> cr.Tensor:
    return cr.tensor(a, requires_grad=rg)


# -- the switch --------------------------------------------------------------------------------
def test_accelerator_is_built_and_on_by_default() -> None:
    assert _accel.available()
    assert _accel._native is not None
    # on unless CHAINRULE_PURE_PYTHON=1 kept it off at import
    assert cr.accelerated() is (not PURE_ENV)


def test_use_accelerator_switches_both_paths_and_returns_previous_state() -> None:
    start = cr.accelerated()
    try:
        assert cr.use_accelerator(True) is start
        assert cr.accelerated()
        assert _registry._apply is _accel._native.apply
        assert graph._native_run is _accel._native.run
        assert compiled_module.take is _accel._native.take
        assert cr.use_accelerator(False) is True
        assert not cr.accelerated()
        assert _registry._apply is _record.apply
        assert graph._native_run is None
        assert compiled_module.take is compiled_module._take
        assert cr.use_accelerator(False) is False
    finally:
        cr.use_accelerator(start)
    assert cr.accelerated() is start


def test_the_c_paths_are_the_ones_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"apply": 0, "run": 0}
    native = _accel._native

    def apply(*args: Any) -> Any:
        calls["apply"] += 1
        return native.apply(*args)

    def run(*args: Any) -> Any:
        calls["run"] += 1
        return native.run(*args)

    before = cr.accelerated()
    with engine(True), monkeypatch.context() as m:  # (undone before the engine is restored)
        m.setattr(_registry, "_apply", apply)
        m.setattr(graph, "_native_run", run)
        x = leaf(np.array([1.0, 2.0]))
        (cr.sin(x) * 2.0).sum().backward()
    assert calls == {"apply": 3, "run": 1}
    assert cr.accelerated() is before
    np.testing.assert_array_equal(x.grad.numpy(), 2.0 * np.cos([1.0, 2.0]))
    with engine(False):
        (cr.sin(x) * 2.0).sum().backward()
    assert calls == {"apply": 3, "run": 1}  # the pure engine calls neither


# -- the op table ------------------------------------------------------------------------------
def _to_numpy(a: Any) -> np.ndarray:
    if isinstance(a, cr.Tensor):
        a = a.data
    return np.from_dlpack(a) if isinstance(a, STRICT_ARRAY) else np.asarray(a)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_op_table_same_values_and_gradients(name: str) -> None:
    differentiable = REGISTRY[name].differentiable

    def check(drawn: tuple[Sample, int]) -> None:
        s, seed = drawn
        w = np.random.default_rng(seed).standard_normal(
            np.shape(_to_numpy(s.call(np_const, *s.args)))
        )

        def run() -> Any:
            xs = [leaf(a, a.dtype.kind == "f") for a in s.args]
            out = s.call(np_const, *xs)
            if not differentiable:
                return out, xs
            loss = (out * w).sum()
            first = cr.gradients(loss, xs[:1], retain_graph=True)  # only the first input
            loss.backward()
            return out, xs, first

        with engine(False):
            run()  # a first call apart: cr.compile traces it, then runs its program
        result = same(run)
        out, xs = result[0], result[1]
        assert isinstance(out, cr.Tensor)
        if differentiable:
            assert out.requires_grad, out
            reached = [x for x in xs if x.grad is not None]
            assert reached, f"{s}: no gradient reached any input"
        else:
            assert not out.requires_grad and out.is_leaf

    @settings(
        max_examples=6,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.tuples(st.one_of(*(SAMPLES[name](kind) for kind in KINDS)), st.integers(0, 2**16)))
    def inner(drawn: tuple[Sample, int]) -> None:
        check(drawn)

    inner()


def test_op_table_samples_cover_every_op() -> None:
    assert set(SAMPLES) == set(REGISTRY)


# -- broadcasting, dtypes, scalars -------------------------------------------------------------
A31, B14, C4, S0 = RNG.normal(size=(3, 1)), RNG.normal(size=(1, 4)), RNG.normal(size=4), 1.3
W234 = RNG.normal(size=(2, 3, 4))


def test_broadcasting_sums_gradients_back_over_broadcast_axes() -> None:
    def run() -> Any:
        A, B, C, S = leaf(A31), leaf(B14), leaf(C4), leaf(np.array(S0))
        out = (A * B + C) * S + cr.zeros((2, 3, 4))
        (out * W234).sum().backward()
        return out, [A, B, C, S]

    out, (A, B, C, S) = same(run)
    assert out.shape == (2, 3, 4)
    assert A.grad.shape == (3, 1) and B.grad.shape == (1, 4)
    assert C.grad.shape == (4,) and S.grad.shape == ()
    wsum = W234.sum(axis=0)
    np.testing.assert_allclose(A.grad.numpy(), (wsum * B14 * S0).sum(axis=1, keepdims=True))


def test_dtype_casting_float32_with_float64() -> None:
    a32 = RNG.normal(size=(2, 3)).astype(np.float32)
    b64 = RNG.normal(size=3)

    def run() -> Any:
        x, y = leaf(a32), leaf(b64)
        z = x * y  # float64
        u = x * 2.5 + 1  # stays float32
        v = cr.astype(y, "float32") * x  # float32, cast back in the gradient of y
        loss = (z * z).sum() + cr.sum(u * u) + cr.sum(v)
        loss.backward()
        return [z, u, v, loss], [x, y]

    (z, u, v, loss), (x, y) = same(run)
    assert z.dtype == np.float64 and u.dtype == np.float32 and v.dtype == np.float32
    assert x.grad.dtype == np.float32 and y.grad.dtype == np.float64


def test_non_native_byte_order_input() -> None:
    big = np.arange(1.0, 4.0).astype(">f8")

    def run() -> Any:
        x = leaf(big)
        (cr.exp(x) * x).sum().backward()
        return x

    x = same(run)
    assert x.grad is not None and x.grad.shape == (3,)


def test_python_and_numpy_scalars_on_either_side() -> None:
    a = RNG.normal(size=4)

    def run() -> Any:
        t = leaf(a)
        outs = [
            2.0 * t,
            t * 2.0,
            t - 1,
            1 - t,
            t / 4.0,
            1.0 / (t * t + 1.0),
            t**2,
            t**3.0,
            2.0**t,
            -t,
            3 + t,
            t + np.float64(0.5),
            np.float32(1.5) * t,
            np.ones(4) * t,  # an ndarray on the left: Tensor.__rmul__
            t @ a,
            a @ t,
        ]
        total = outs[0].sum()
        for o in outs[1:]:
            total = total + o.sum()
        total.backward()
        return outs, t

    outs, t = same(run)
    assert all(o.requires_grad for o in outs)


def test_integer_tensors() -> None:
    ints = np.array([1, -2, 2])
    a = RNG.normal(size=3)

    def run() -> Any:
        i = cr.tensor(ints)  # int64, no gradient
        i32 = cr.tensor(ints.astype(np.int32))
        x = leaf(a)
        x32 = leaf(a.astype(np.float32))
        mixed = [x * i, i * x, x32 * i32, x32 + i, x**i, i - x, x[i]]
        plain = [i + i, i * 3, cr.sum(i), i32 * i, cr.negative(i)]  # record nothing
        total = cr.sum(mixed[0])
        for m in mixed[1:]:
            total = total + cr.sum(m)
        total.backward()
        return mixed, plain, [x, x32, i]

    mixed, plain, (x, x32, i) = same(run)
    assert all(not p.requires_grad and p.is_leaf for p in plain)
    assert x32.grad.dtype == np.float32 and i.grad is None


# -- keyword parameters ------------------------------------------------------------------------
KWARG_CASES: dict[str, Callable[[Any], Any]] = {
    "sum axis keepdims": lambda x: cr.sum(x, axis=1, keepdims=True),
    "sum axes": lambda x: x.sum(axis=(0, 2)),
    "mean": lambda x: cr.mean(x, axis=-1),
    "var ddof": lambda x: cr.var(x, axis=0, ddof=1),
    "max axis": lambda x: cr.max(x, axis=2),
    "reshape": lambda x: cr.reshape(x, (6, 4)),
    "reshape method": lambda x: x.reshape(4, -1),
    "transpose axes": lambda x: cr.transpose(x, axes=(2, 0, 1)),
    "T": lambda x: x.T,
    "expand_dims": lambda x: cr.expand_dims(x, axis=1),
    "squeeze": lambda x: cr.squeeze(cr.expand_dims(x, axis=0), axis=0),
    "flip": lambda x: cr.flip(x, axis=1),
    "pad": lambda x: cr.pad(x, ((1, 0), (0, 2), (1, 1))),
    "clip": lambda x: cr.clip(x, -0.5, 0.5),
    "clip min": lambda x: cr.clip(x, min=-0.2),
    "softmax": lambda x: cr.softmax(x, axis=0),
    "log_softmax": lambda x: cr.log_softmax(x, axis=1),
    "logsumexp": lambda x: cr.logsumexp(x, axis=-1, keepdims=True),
    "leaky_relu": lambda x: cr.leaky_relu(x, negative_slope=0.2),
    "gelu tanh": lambda x: cr.gelu(x, approximate="tanh"),
    "getitem": lambda x: x[1:, ::2, np.array([0, 0, 3])],
    "broadcast_to": lambda x: cr.broadcast_to(x[:, :1], (2, 3, 4)),
    "astype": lambda x: cr.astype(x, "float32"),
    "einsum": lambda x: cr.einsum("ijk,ijk->jk", x, x),
}


@pytest.mark.parametrize("case", sorted(KWARG_CASES))
def test_ops_with_keyword_parameters(case: str) -> None:
    a = RNG.normal(size=(2, 3, 4))
    fn = KWARG_CASES[case]

    def run() -> Any:
        x = leaf(a)
        out = fn(x)
        w = np.linspace(-1.0, 1.0, out.size).reshape(out.shape)
        (out * w.astype(out.dtype)).sum().backward()
        return out, x

    out, x = same(run)
    assert out.requires_grad and x.grad is not None and x.grad.shape == x.shape


# -- variadic ops ------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3, 8, 9, 20])
@pytest.mark.parametrize("how", ["concatenate", "stack", "concat"])
def test_variadic_ops_with_many_inputs(how: str, n: int) -> None:
    # more than 8 inputs: the rule's argument array is on the heap in C; 1 and 2 inputs go
    # through the one- and two-input recording paths
    arrays = [RNG.normal(size=(2, 3)) for _ in range(n)]

    def run() -> Any:
        parts: list[Any] = []
        for k, a in enumerate(arrays):
            if k % 5 == 4:
                parts.append(a)  # a plain array among the inputs
            else:
                parts.append(leaf(a, rg=k % 3 != 1))  # some do not require grad
        out = getattr(cr, how)(parts, axis=1)
        w = np.arange(out.size, dtype=float).reshape(out.shape)
        (out * w).sum().backward()
        return out, [p for p in parts if isinstance(p, cr.Tensor)]

    out, tensors = same(run)
    assert out.requires_grad
    assert [t.grad is not None for t in tensors] == [t.requires_grad for t in tensors]


def test_ops_of_three_inputs() -> None:
    cond = RNG.normal(size=(2, 3)) > 0
    a, b = RNG.normal(size=(2, 3)), RNG.normal(size=3)
    W, bias = RNG.normal(size=(4, 3)), RNG.normal(size=4)

    def run() -> Any:
        x, y, w, c = leaf(a), leaf(b), leaf(W), leaf(bias)
        outs = [cr.where(cond, x, y), cr.where(cr.tensor(cond), 1.0, x), F.linear(x, w, c)]
        outs.append(cr.einsum("ij,kj,k->ik", x, w, c))
        total = outs[0].sum()
        for o in outs[1:]:
            total = total + (o * o).sum()
        total.backward()
        return outs, [x, y, w, c]

    same(run)


# -- graph shapes: fan-out, diamonds, depth ----------------------------------------------------
def test_fan_out_of_fifty_and_diamonds() -> None:
    a = RNG.normal(size=5)

    def run() -> Any:
        x = leaf(a)
        h = cr.tanh(x)  # an intermediate used fifty times
        terms = [cr.sin(h * float(k)) + x * float(k) for k in range(50)]
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        f, g = x * x, cr.exp(x)  # a diamond: x -> (f, g) -> loss
        loss = total.sum() + (f * g).sum() + (x * x * x).sum()
        loss.backward()
        return loss, x

    loss, x = same(run)
    assert x.grad is not None


def test_deep_chain_of_ten_thousand_ops() -> None:
    def run() -> Any:
        x = leaf(np.array([0.3, -0.7]))
        y = x
        for k in range(2500):  # four ops per step, x feeding every step
            y = cr.tanh(y) * 0.9 + x * (1e-3 * (k % 7))
        y.sum().backward()
        return y, x

    y, x = same(run)
    assert x.grad is not None and np.all(np.isfinite(x.grad.numpy()))


def test_wide_interleaved_graph_heap_order() -> None:
    # thirty branches recorded round-robin and crossing over: many nodes wait in the heap at
    # once, and the order in which contributions add up decides the last bits
    starts = RNG.normal(size=(30, 3))

    def run() -> Any:
        xs = [leaf(s) for s in starts]
        cur = list(xs)
        for step in range(40):
            for i in range(30):
                other = cur[(i * 7 + step) % 30]
                cur[i] = cr.sin(cur[i]) * 1.01 + other * 0.013 + xs[(i + step) % 30] * 0.1
        total = cur[0]
        for c in cur[1:]:
            total = total * 0.5 + c
        total.sum().backward()
        return total, xs

    same(run)


def test_a_thousand_leaves_and_nodes_pending_at_once() -> None:
    # a thousand leaves wait in the C table of pending gradients until the end (it grows and
    # rehashes), and a thousand nodes wait in the heap and leave the table one by one
    starts = RNG.normal(size=(1000, 2))

    def run() -> Any:
        xs = [leaf(s) for s in starts]
        hs = [cr.sin(x) for x in xs]
        stacked = cr.stack(hs + hs[::3] + xs[::7])
        (stacked * stacked).sum().backward()
        return xs

    assert all(x.grad is not None for x in same(run))


def test_backward_from_a_leaf() -> None:
    def run() -> Any:
        x, v = leaf(np.array(2.0)), leaf(np.array([1.0, 3.0]))
        x.backward()
        x.backward()
        found = cr.gradients(v, [v, x], grad=np.array([0.5, 2.0]))
        return x, v, found

    x, v, found = same(run)
    assert float(x.grad) == 2.0 and v.grad is None


def test_leaf_gradients_are_owned_and_never_shared() -> None:
    # the leaves' gradients go into .grad in C: a new array straight in, anything handed out
    # before (the seed, the same array for two inputs), a read-only view or a NumPy scalar
    # through the Python code, which copies it
    a, b = RNG.normal(size=3), RNG.normal(size=3)

    def run() -> Any:
        x, y, z, s = leaf(a), leaf(b), leaf(a), leaf(np.float64(1.5))
        seed = np.full(3, 2.0)
        (x + y).backward(seed)  # add hands the seed itself to both inputs
        ((x + y) * 1.0).backward(seed)  # and here one new array to both
        cr.sum(z).backward()  # a read-only broadcast view
        (s * s).backward()  # a NumPy scalar
        grads = [x.grad.data, y.grad.data, z.grad.data, s.grad.data]
        facts = [
            np.array_equal(seed, np.full(3, 2.0)),
            not any(np.shares_memory(g, seed) for g in grads[:2]),
            not np.shares_memory(grads[0], grads[1]),
            all(isinstance(g, np.ndarray) and g.base is None for g in grads),
            all(g.flags.writeable for g in grads),
        ]
        return facts, [x, y, z, s]

    facts, tensors = same(run)
    assert facts == [True] * 5, facts
    x = tensors[0]
    x.grad.data[0] = 100.0  # an in-place edit of one gradient changes no other
    assert tensors[1].grad.numpy()[0] == 4.0


# -- retain_graph, freed graphs, in-place updates ----------------------------------------------
def test_retain_graph_then_second_backward_accumulates() -> None:
    a = RNG.normal(size=3)

    def run() -> Any:
        x = leaf(a)
        h = cr.sin(x) * x
        loss = (h * h).sum()
        loss.backward(retain_graph=True)
        first = x.grad.numpy().copy()
        loss.backward()
        return first, x

    first, x = same(run)
    np.testing.assert_array_equal(x.grad.numpy(), first + first)


def test_second_backward_without_retain_graph_raises_the_same() -> None:
    def run() -> Any:
        x = leaf(np.array([1.0, 2.0]))
        loss = (cr.exp(x) * x).sum()
        loss.backward()
        loss.backward()

    same_error(run, RuntimeError, "was already used by a backward pass")

    def through_a_freed_intermediate() -> Any:  # a new sink on top of a freed node
        x = leaf(np.array([1.0, 2.0]))
        h = cr.exp(x) * x
        h.sum().backward()
        (h * 2.0).sum().backward()

    same_error(through_a_freed_intermediate, RuntimeError, "graph through multiply")


def test_input_modified_in_place_raises_the_same() -> None:
    def leaf_input() -> Any:
        x = leaf(np.array([1.0, 2.0]))
        y = (x * x).sum()
        with cr.no_grad():
            x += 1.0
        y.backward()

    same_error(leaf_input, RuntimeError, "input 0 of multiply (shape (2,)) was modified")

    def constant_input() -> Any:
        x, c = leaf(np.array([1.0, 2.0])), cr.tensor(np.array([3.0, 4.0]))
        y = cr.sum(cr.exp(x) * c)
        c *= 2.0  # no gradient on either side: a plain in-place update
        y.backward()

    same_error(constant_input, RuntimeError, "input 1 of multiply")

    def item_assignment() -> Any:
        x = leaf(np.array([1.0, 2.0]))
        y = cr.sum(cr.tanh(x))
        with cr.no_grad():
            x[0] = 5.0
        y.backward()

    same_error(item_assignment, RuntimeError, "input 0 of tanh")

    def intermediate() -> Any:
        x = leaf(np.array([1.0, 2.0]))
        h = x * 2.0
        y = cr.sum(cr.sin(h))
        with cr.no_grad():
            h += 1.0
        y.backward()

    same_error(intermediate, RuntimeError, "input 0 of sin")

    def the_root_itself() -> Any:
        x = leaf(np.array([1.0, 2.0]))
        y = x * 3.0
        with cr.no_grad():
            y -= 1.0
        y.backward(np.ones(2))

    same_error(the_root_itself, RuntimeError, "the output of multiply")


# -- missing derivatives and forward errors ----------------------------------------------------
class _NoBackward(cr.Function):
    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        return x * 2.0


def _half_op() -> Op:
    """An op outside the table (not registered) with a derivative for its first input only."""
    return Op(
        "half_rule",
        lambda xp, x, y: x * y,
        (lambda g, out, x, y: g * y, NOT_IMPLEMENTED),
        (NOT_IMPLEMENTED, NOT_IMPLEMENTED),
        "d(xy)/dx = y",
        None,
        (),
        False,
        "test",
        "",
        False,
    )


def test_no_derivative_raises_the_same() -> None:
    def where_condition() -> Any:
        c, x = leaf(np.array([1.0, 0.0, 2.0])), leaf(np.ones(3))
        cr.where(c, x, 2.0 * x).sum().backward()

    same_error(where_condition, NotImplementedError, "where: no derivative with respect to input 0")

    op = _half_op()

    def not_implemented_rule() -> Any:
        x, y = leaf(np.ones(2)), leaf(np.full(2, 3.0))
        cr.sum(op(x, y)).backward()

    same_error(
        not_implemented_rule,
        NotImplementedError,
        "half_rule: no derivative with respect to input 1",
    )

    def rule_for_the_other_input_is_fine() -> Any:
        x, y = leaf(np.ones(2)), cr.tensor(np.full(2, 3.0))
        cr.sum(op(x, y)).backward()
        return x

    assert float(same(rule_for_the_other_input_is_fine).grad.sum()) == 6.0

    def function_without_backward() -> Any:
        x = leaf(np.ones(2))
        cr.sum(_NoBackward.apply(x)).backward()

    same_error(function_without_backward, NotImplementedError, "must define backward")


FORWARD_ERRORS: dict[str, tuple[Callable[[], Any], type[BaseException], str]] = {
    "broadcast": (
        lambda: leaf(np.ones(3)) * leaf(np.ones(4)),
        ValueError,
        "multiply: inputs (3,) float64, (4,) float64: the shapes cannot be broadcast",
    ),
    "broadcast with a constant": (
        lambda: np.ones((2, 5)) + leaf(np.ones(3)),
        ValueError,
        "cannot be broadcast",
    ),
    "matmul": (
        lambda: leaf(np.ones((2, 3))) @ leaf(np.ones((4, 2))),
        ValueError,
        "matmul: inputs (2, 3) float64, (4, 2) float64: the inner dimensions must agree",
    ),
    "reshape": (lambda: cr.reshape(leaf(np.ones(6)), (4,)), ValueError, "reshape: inputs (6,)"),
    "getitem": (lambda: leaf(np.ones(3))[5], IndexError, "getitem: inputs (3,) float64 with"),
    "no grad": (
        lambda: cr.tensor(np.ones((2, 3))) @ cr.tensor(np.ones((2, 3))),
        ValueError,
        "inner dimensions",
    ),
    "axis out of range": (
        lambda: cr.sum(leaf(np.ones(3)), axis=5),
        np.exceptions.AxisError,
        "sum: inputs (3,) float64 with {'axis': 5, 'keepdims': False}",
    ),
    "three inputs": (
        lambda: cr.where(np.ones(2, bool), leaf(np.ones(3)), leaf(np.ones(4))),
        ValueError,
        "where: inputs",
    ),
}


@pytest.mark.parametrize("case", sorted(FORWARD_ERRORS))
def test_forward_error_is_the_same(case: str) -> None:
    fn, kind, match = FORWARD_ERRORS[case]
    same_error(fn, kind, match)


def test_forward_error_of_another_type_passes_through() -> None:
    def forward(xp: Any, x: Any) -> Any:
        raise KeyError("no such thing")

    op = Op("bad", forward, (None,), (None,), "", None, (), False, "test", "", False)
    same_error(lambda: op(leaf(np.ones(2))), KeyError, "no such thing")


# -- custom Functions --------------------------------------------------------------------------
class _ScaleNoneForW(cr.Function):
    @staticmethod
    def forward(ctx: Any, x: Any, w: Any) -> Any:
        ctx.save_for_backward(x, w)
        return x * w

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        x, w = ctx.saved_tensors
        return grad * w, None  # no gradient for w: it gets zeros


class _Boom(cr.Function):
    @staticmethod
    def forward(ctx: Any, x: Any, y: Any) -> Any:
        return x * y

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        raise ValueError("boom in backward")


class _Three(cr.Function):
    @staticmethod
    def forward(ctx: Any, x: Any, k: Any, y: Any) -> Any:
        ctx.save_for_backward(x, y)
        ctx.k = k
        return x * y * k

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        x, y = ctx.saved_tensors
        return grad * y * ctx.k, None, grad * x * ctx.k


class _Cube(cr.Function):
    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        (x,) = ctx.saved_tensors
        return grad * 3.0 * x * x


def test_function_backward_returning_none_gives_zeros() -> None:
    a, b = RNG.normal(size=3), RNG.normal(size=(2, 3))

    def run() -> Any:
        x, w = leaf(a), leaf(b)
        (_ScaleNoneForW.apply(x, w) * 2.0).sum().backward()
        return x, w

    x, w = same(run)
    np.testing.assert_array_equal(w.grad.numpy(), np.zeros((2, 3)))
    assert w.grad.dtype == np.float64


def test_functions_of_one_and_three_inputs() -> None:
    a, b = RNG.normal(size=3), RNG.normal(size=3)

    def run() -> Any:
        x, y = leaf(a), leaf(b)
        out = _Cube.apply(x) + _Three.apply(x, 2.5, y)
        out.sum().backward()
        return out, x, y

    same(run)


def test_function_backward_raising_midway_propagates() -> None:
    def run() -> Any:
        x, y = leaf(np.ones(2)), leaf(np.full(2, 2.0))
        loss = cr.sum(_Boom.apply(cr.sin(x), y) * x)
        loss.backward()

    same_error(run, ValueError, "boom in backward")

    def grads_untouched() -> Any:  # the leaves' gradients land only at the end
        x, y = leaf(np.ones(2)), leaf(np.full(2, 2.0))
        try:
            cr.sum(_Boom.apply(cr.sin(x), y) * x).backward()
        except ValueError:
            pass
        return x.grad, y.grad

    assert same(grads_untouched) == (None, None)


class _FloatGrad(cr.Function):
    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        return x * 2.0

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        return 2.0  # not an array


class _WrongShape(cr.Function):
    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        return x * 2.0

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        return cr.ones((5, 7))


class _Float32Grad(cr.Function):
    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        return x * 2.0

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        return cr.astype(grad * 2.0, "float32")


class _NestedGrad(cr.Function):
    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        (x,) = ctx.saved_tensors  # a whole backward pass inside this one
        return grad * cr.grad(lambda v: cr.sum(v * v * v))(x.numpy())


def test_function_backward_results_of_every_kind() -> None:
    def float_grad() -> Any:
        cr.sum(_FloatGrad.apply(leaf(np.ones(3)))).backward()

    same_error(float_grad, AttributeError, "'float' object has no attribute 'shape'")

    def wrong_shape() -> Any:
        cr.sum(_WrongShape.apply(leaf(np.ones(3)))).backward()

    same_error(wrong_shape, RuntimeError, "gradient of shape (5, 7) cannot be reduced")

    def cast_and_nested() -> Any:
        x = leaf(np.array([0.5, -1.0, 2.0]))
        (cr.sum(_Float32Grad.apply(x)) + cr.sum(_NestedGrad.apply(x) * x)).backward()
        return x

    assert same(cast_and_nested).grad.dtype == np.float64


# -- retain_grad, inputs=, transforms ----------------------------------------------------------
def test_retain_grad_on_intermediates_and_root() -> None:
    a = RNG.normal(size=4)

    def run() -> Any:
        x = leaf(a)
        h = (x * 2.0).retain_grad()
        k = cr.tanh(h).retain_grad()
        loss = (k * h).sum().retain_grad()
        loss.backward()
        return [x, h, k, loss]

    x, h, k, loss = same(run)
    assert h.grad is not None and k.grad is not None and float(loss.grad) == 1.0


def test_backward_inputs_fills_only_those() -> None:
    a, b, c = RNG.normal(size=3), RNG.normal(size=3), RNG.normal(size=3)

    def run() -> Any:
        x, y, z = leaf(a), leaf(b), leaf(c)
        h = x * y
        (h * z).sum().backward(inputs=[x, h])
        return [x, y, z, h]

    x, y, z, h = same(run)
    assert x.grad is not None and h.grad is not None
    assert y.grad is None and z.grad is None


def test_grad_gradients_and_value_and_grad_wrt_intermediates_and_leaves() -> None:
    a, b = RNG.normal(size=3), RNG.normal(size=(3, 2))

    def f(x: Any, w: Any) -> Any:
        return cr.sum(cr.tanh(x @ w) ** 2)

    def run() -> Any:
        x, w, unused = leaf(a), leaf(b), leaf(np.ones(5))
        h = x @ w
        loss = cr.sum(cr.sin(h) * h)
        found = cr.gradients(loss, [h, x, unused, loss], retain_graph=True)
        found_again = cr.gradients(loss, [w])
        grads = cr.grad(f, argnums=(0, 1))(a, b)
        value, slope = cr.value_and_grad(f)(a, b)
        return found, found_again, grads, value, slope, [x.grad, w.grad]

    found, found_again, grads, value, slope, untouched = same(run)
    np.testing.assert_array_equal(found[2], np.zeros(5))  # not reached: zeros
    assert float(found[3]) == 1.0
    assert untouched == [None, None]


def test_explicit_seeds() -> None:
    a = RNG.normal(size=(2, 2))

    def run() -> Any:
        x = leaf(a)
        y = x * x
        y.backward(np.array([[1.0, 2.0], [3.0, 4.0]]), retain_graph=True)
        y.backward(cr.tensor(np.ones((2, 2))), retain_graph=True)
        y.backward([[0.5, 0.5], [0.5, 0.5]])
        return x

    same(run)
    same_error(
        lambda: (leaf(np.ones(2)) * 2.0).backward(), RuntimeError, "the output has shape (2,)"
    )


# -- grad mode ---------------------------------------------------------------------------------
def test_no_grad_records_nothing() -> None:
    a = RNG.normal(size=3)

    def run() -> Any:
        x = leaf(a)
        with cr.no_grad():
            y = x * 2.0 + cr.sin(x)
            with cr.enable_grad():
                z = x * 3.0
        with cr.set_grad_enabled(False):
            u = cr.stack([x, x, x, x])
            v = -x
        for t in (y, u, v):
            assert t._op is None and not t.requires_grad and t.is_leaf
        z.sum().backward()
        return [y, z, u, v, x]

    y, z, u, v, x = same(run)
    assert z.requires_grad and not y.requires_grad


def test_grad_mode_is_per_thread_with_backward_in_a_thread() -> None:
    a = RNG.normal(size=4)

    def run() -> Any:
        x = leaf(a)
        seen: dict[str, Any] = {}

        def worker() -> None:
            try:
                seen["enabled"] = cr.is_grad_enabled()
                y = cr.sum(cr.exp(x) * x)
                seen["recorded"] = y.requires_grad
                y.backward()
            except Exception as err:  # pragma: no cover - reported below
                seen["error"] = err

        with cr.no_grad():
            th = threading.Thread(target=worker)
            th.start()
            th.join(30)
            here = x * 2.0
        assert not th.is_alive()
        assert "error" not in seen, seen
        return seen, here, x

    seen, here, x = same(run)
    assert seen == {"enabled": True, "recorded": True}
    assert not here.requires_grad and x.grad is not None


# -- array-api-strict --------------------------------------------------------------------------
def test_array_api_strict_tensors_same_gradients() -> None:
    a, b = RNG.normal(size=(2, 3)), RNG.normal(size=3)
    m = RNG.normal(size=(3, 2))

    def run() -> Any:
        x, y = leaf(xps.asarray(a)), leaf(xps.asarray(b))
        w = leaf(xps.asarray(m.astype(np.float32)))
        h = cr.tanh(x * y + 1.0) @ cr.astype(w, "float64")  # broadcast, cast, matmul
        z = cr.sum(h, axis=0) + cr.reshape(cr.stack([y, y]), (6,))[:2]
        many = cr.concatenate([x, cr.tensor(xps.asarray(a))] * 6, axis=0)  # 12 inputs
        loss = cr.sum(z * z) + cr.sum(many * many) * 0.5
        loss.backward()
        return loss, [x, y, w]

    loss, (x, y, w) = same(run)
    for t in (x, y, w):
        assert isinstance(t.grad.data, STRICT_ARRAY)
    assert w.grad.dtype == xps.float32


# -- switching engines between recording and backward ------------------------------------------
def _toggle_graph(first: bool, second: bool) -> tuple[cr.Tensor, list[cr.Tensor]]:
    """A graph whose first half is recorded with the accelerator ``first``, the rest ``second``."""
    with engine(first):
        x, y = leaf(np.linspace(-1.0, 1.0, 5)), leaf(np.linspace(0.5, 2.0, 5))
        h = cr.sin(x * y) + x
        parts = cr.concatenate([h, y, x * 2.0, h * h])
    with engine(second):
        return cr.sum(parts * parts) + cr.sum(_Cube.apply(h)) + cr.sum(h / y), [x, y]


@pytest.mark.parametrize("backprop", [True, False], ids=["backward on", "backward off"])
@pytest.mark.parametrize("second", [True, False], ids=["then on", "then off"])
@pytest.mark.parametrize("first", [True, False], ids=["recorded on", "recorded off"])
def test_switching_engines_between_recording_and_backward(
    first: bool, second: bool, backprop: bool
) -> None:
    ref_loss, ref = _toggle_graph(True, True)
    with engine(True):
        ref_loss.backward()
    loss, xs = _toggle_graph(first, second)
    with engine(backprop):
        loss.backward()
    assert_same(loss, ref_loss)
    assert_same(xs, ref)
    assert xs[0].grad is not None and xs[1].grad is not None


# -- a training step ---------------------------------------------------------------------------
def test_nn_training_steps_give_bit_identical_parameters() -> None:
    data = np.random.default_rng(3).normal(size=(32, 4))
    labels = np.random.default_rng(4).integers(0, 3, size=32)

    def run() -> Any:
        net = cr.nn.MLP([4, 16, 16, 3], activation="tanh", rng=0)
        opt = cr.optim.Adam(net.parameters(), lr=1e-2)
        losses = []
        for step in range(4):
            opt.zero_grad()
            batch = slice(8 * step, 8 * step + 8)
            loss = cr.nn.functional.cross_entropy(net(cr.tensor(data[batch])), labels[batch])
            loss.backward()
            opt.step()
            losses.append(loss.numpy())
        return losses, {name: p.numpy() for name, p in net.named_parameters()}

    losses, params = same(run)
    assert len(params) == 6 and losses[-1] < losses[0] + 1.0


# -- paths that fall back to Python give the same there too ------------------------------------
def test_fallback_paths_agree() -> None:
    a = np.array([0.5, 1.5])

    def run() -> Any:
        x = leaf(a)
        (cr.sin(x) * x).sum().backward(create_graph=True)
        g = x.grad
        with cr.detect_anomaly():
            y = cr.exp(x).sum()
        y.backward()
        steps = cr.graph(cr.tanh(x * x).sum()).backward_steps()
        f = lambda u: cr.sum(cr.tanh(u) ** 3)
        nested = [
            cr.hessian(f)(a),
            cr.jacobian(lambda u: cr.tanh(u) * u)(a),
            cr.jvp(cr.grad(f), (a,), (np.ones(2),)),
            cr.compile(cr.grad(f))(x),
        ]
        return g, x, [s.op for s in steps], nested

    same(run)


# -- no leaks ----------------------------------------------------------------------------------
def _counts(*objs: Any) -> list[int]:
    gc.collect()
    return [sys.getrefcount(o) for o in objs]


def test_no_reference_leaks_in_recording_and_backward() -> None:
    with engine(True):
        x = leaf(RNG.normal(size=(3, 2)))
        c = cr.tensor(RNG.normal(size=(3, 2)))
        data = x.data

        def step() -> None:
            y = cr.sum(cr.tanh(x * c) * 2.0 + x)
            y.backward()
            z = cr.stack([x, c * 1.0, x])  # a variadic op, recorded in Python, run in C
            z.sum().backward()

        step()
        ops = [REGISTRY[name] for name in ("multiply", "tanh", "add", "sum", "stack")]
        watched = (*ops, x, data, c, c.data)
        before = _counts(*watched)
        for _ in range(2000):
            step()
        assert _counts(*watched) == before  # (x.grad is replaced: not watched)


def test_no_memory_growth_over_many_backward_passes() -> None:
    with engine(True):
        x = leaf(RNG.normal(size=8))

        def step() -> None:
            y = cr.sum(cr.sin(x * x) * 3.0 - x)
            y.backward()

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
        with engine(True):
            x = leaf(RNG.normal(size=4))
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
            if how == "backward":  # the pass let go of the inputs of every node it went through
                assert all(r() is None for r in inner)
            else:  # held by the sink's graph
                assert all(r() is not None for r in inner)
            del sink
            assert outer() is None and all(r() is None for r in inner)
    finally:
        if was_enabled:
            gc.enable()


def test_error_paths_do_not_leak() -> None:
    with engine(True):
        x = leaf(RNG.normal(size=3))
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
            ops = [REGISTRY[name] for name in ("multiply", "exp", "sin", "sum", "function")]
            watched = (x, data, *ops, _Boom)
            before = _counts(*watched)
            for _ in range(500):
                case()
            assert _counts(*watched) == before, case.__name__


# -- rules that run user code: what they may do to the node being differentiated ---------------
# A rule is Python code (a cr.Function's backward, an op declared with defop), and while it runs
# the node it belongs to may change: its value rebound by an in-place update, its saved inputs
# and parameters freed by a nested backward pass through it. The Python engine holds the node's
# value and parameters in local variables for the whole node, so the next rule still gets them.
# These run in a child process (an engine that reads freed memory may crash), once per engine.
_CHILD = textwrap.dedent(
    """
    import json, sys, weakref
    import numpy as np
    import chainrule as cr
    from chainrule.ops._registry import defop

    def rebound_value(tag):
        # rule 0 rebinds the node's value (its data is a read-only view, so `+=` rebinds);
        # rule 1 must still get the value the node had when the pass reached it, as `out`
        seen = {}
        def rule_x(g, out, x, y):
            seen["old"] = weakref.ref(out)
            with cr.no_grad():
                seen["node"] += 1.0
            return g * y
        def rule_y(g, out, x, y):
            seen["out_alive"] = seen["old"]() is not None
            seen["out_is_the_value"] = seen["old"]() is out
            seen["out_shape"] = list(np.shape(out))
            return g * x
        op = defop("rebinding_product_" + tag, lambda xp, x, y: xp.broadcast_to(x * y, (2, 3)),
                   vjp=[rule_x, rule_y])
        x = cr.tensor(np.ones(3), requires_grad=True)
        y = cr.tensor(np.full(3, 2.0), requires_grad=True)
        seen["node"] = node = op(x, y)
        node.backward(np.ones((2, 3)))
        del seen["node"], seen["old"]
        return {**seen, "x.grad": x.grad.tolist(), "y.grad": y.grad.tolist()}

    def freed_parameters(tag):
        # rule 0 runs a nested backward pass through its own node, which frees the node's
        # parameters (retain_graph=False); rule 1 of the outer pass must still get them
        seen = {"depth": 0, "scales": []}
        def rule_x(g, out, x, y, scale):
            if seen["depth"] == 0:
                seen["depth"] = 1
                ref = weakref.ref(scale)
                del scale
                seen["node"].backward(np.ones(3))
                seen["scale_alive_after_nested_pass"] = ref() is not None
                seen["junk"] = [{"scale": np.array(99.0)} for _ in range(50)]
                scale = ref() if ref() is not None else np.array(np.nan)
            return g * y * scale
        def rule_y(g, out, x, y, scale):
            seen["scales"].append(float(scale))
            return g * x * scale
        op = defop("nested_product_" + tag, lambda xp, x, y, scale: x * y * scale,
                   vjp=[rule_x, rule_y])
        x = cr.tensor(np.ones(3), requires_grad=True)
        y = cr.tensor(np.full(3, 2.0), requires_grad=True)
        seen["node"] = node = op(x, y, scale=np.array(1.5))
        node.backward(np.ones(3))
        del seen["node"], seen["junk"], seen["depth"]
        return {**seen, "x.grad": x.grad.tolist(), "y.grad": y.grad.tolist()}

    case = {"rebound_value": rebound_value, "freed_parameters": freed_parameters}[sys.argv[1]]
    for on in (False, True):  # the pure-Python reference first
        cr.use_accelerator(on)
        print(json.dumps(case("on" if on else "off")), flush=True)
    """
)


def _child(case: str) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    """(pure result, accelerated result or None if that run died, stderr) of a child run."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, case], capture_output=True, text=True, timeout=120, cwd=root
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"the pure-Python run failed:\n{done.stderr[-2000:]}"
    fast = lines[1] if done.returncode == 0 and len(lines) == 2 else None
    return lines[0], fast, done.stderr[-2000:]


# (With a node_backward() in chainrule/_native.c that borrowed the node's value and parameters
# from its slots across the rule calls, the accelerated run gave the second rule a freed and
# reused array as `out` (shape (3,), not (2, 3)) and a freed dict's values as parameters
# (scale 99.0 instead of 1.5, y.grad 100.5 instead of 3.0).)
def test_next_rule_gets_the_node_value_even_if_a_rule_rebinds_it() -> None:
    pure, fast, stderr = _child("rebound_value")
    assert pure["out_alive"] and pure["out_is_the_value"] and pure["out_shape"] == [2, 3], pure
    assert pure["y.grad"] == [2.0, 2.0, 2.0], pure
    assert fast is not None, f"the accelerated run died:\n{stderr}"
    assert fast == pure


def test_next_rule_gets_the_node_parameters_even_if_a_nested_pass_frees_them() -> None:
    pure, fast, stderr = _child("freed_parameters")
    assert pure["scale_alive_after_nested_pass"] and pure["scales"] == [1.5, 1.5], pure
    assert pure["y.grad"] == [3.0, 3.0, 3.0], pure
    assert fast is not None, f"the accelerated run died:\n{stderr}"
    assert fast == pure


# -- vjp_into: a rule that writes into the gradient the engine owns -----------------------------
@contextmanager
def _watch_into(op_name: str) -> Iterator[list[bool]]:
    """Record, for each call of ``op_name``'s vjp_into rule, whether it wrote into ``g``."""
    op = REGISTRY[op_name]
    assert op.vjp_into is not None
    rule = op.vjp_into[0]
    calls: list[bool] = []

    def spy(g: Any, out: Any, *inputs: Any, **params: Any) -> Any:
        result = rule(g, out, *inputs, **params)
        calls.append(result is g)
        return result

    op.vjp_into = (spy,)
    try:
        yield calls
    finally:
        op.vjp_into = (rule,)


def _mlp_grads() -> Any:
    rng = np.random.default_rng(7)
    x = cr.tensor(rng.normal(size=(6, 5)))
    w1 = cr.tensor(rng.normal(size=(4, 5)), requires_grad=True)
    w2 = cr.tensor(rng.normal(size=(3, 4)), requires_grad=True)
    F.linear(F.relu(F.linear(x, w1, None)), w2, None).sum().backward()
    return w1.grad, w2.grad


def test_relu_writes_into_the_gradient_it_owns_with_the_same_bits() -> None:
    with _watch_into("relu") as calls:
        same(_mlp_grads)
    assert calls == [True]  # accelerated: into g; the pure-Python engine uses the vjp rule


def test_a_gradient_someone_else_holds_is_never_written_into() -> None:
    rng = np.random.default_rng(8)
    data = rng.normal(size=(3, 4))

    def seeded() -> Any:  # the user's seed: must come back untouched
        x = cr.tensor(data, requires_grad=True)
        seed = np.ones((3, 4))
        F.relu(x).backward(seed)
        assert np.array_equal(seed, np.ones((3, 4)))
        return x.grad

    def retained() -> Any:  # the gradient of y is also y.grad
        x = cr.tensor(data, requires_grad=True)
        y = x * 2.0
        z = F.relu(y)
        z.retain_grad()
        (z * 3.0).sum().backward()
        return x.grad, z.grad

    with _watch_into("relu") as calls:
        same(seeded)
        same(retained)
    assert calls == [], calls


def test_a_shared_gradient_is_written_into_only_by_its_last_user() -> None:
    # add hands one array to both of its inputs: the first relu to run (b, recorded later)
    # must leave it alone for a; a, the last to hold it, may then write into it
    data = np.random.default_rng(9).normal(size=(3, 4))

    def fan_out() -> Any:
        x = cr.tensor(data, requires_grad=True)
        a, b = F.relu(x * 1.5), F.relu(x * -0.5)
        (a + b).sum().backward()
        return x.grad

    with _watch_into("relu") as calls:
        same(fan_out)
    assert calls == [True]


def test_vjp_into_is_for_one_input_ops_only() -> None:
    with pytest.raises(ValueError, match="vjp_into is one rule"):
        _registry.defop(
            "_test_two_inputs_into",
            lambda xp, x, y: x * y,
            vjp=[lambda g, out, x, y: g * y, lambda g, out, x, y: g * x],
            vjp_into=[lambda g, out, x, y: g],
        )
    assert "_test_two_inputs_into" not in REGISTRY


@pytest.mark.parametrize(
    "small,big",
    [((3, 1, 4), (2, 3, 5, 4)), ((1,), (3,)), ((), (2, 3)), ((1, 1), (4, 5)), ((5,), (2, 5))],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradients_summed_back_over_broadcast_axes(small: Any, big: Any, dtype: str) -> None:
    # the accelerator sums a broadcast gradient back itself (leading axes, size-1 axes, down to
    # a scalar) with the Python engine's reduction; a float64 partner makes it cast as well
    rng = np.random.default_rng(10)
    va, vb, vc = rng.normal(size=small), rng.normal(size=big), rng.normal(size=big)

    def grads() -> Any:
        a = cr.tensor(va.astype(dtype), requires_grad=True)
        b = cr.tensor(vb, requires_grad=True)
        c = cr.tensor(vc.astype(dtype), requires_grad=True)
        ((a * b).sum() + (a + c).sum() + (c * a * a).sum()).backward()
        return a.grad, b.grad, c.grad

    got = same(grads)
    assert got[0].shape == small and got[0].dtype == np.dtype(dtype)


# -- take: a cr.compile'd backward program's in-place step ----------------------------------------
def _into(g: Any, *rest: Any, **params: Any) -> Any:
    return ("into", g, rest, params)


def _rule(g: Any, *rest: Any, **params: Any) -> Any:
    return ("rule", g, rest, params)


@pytest.mark.parametrize("take", ["native", "python"])
def test_take_empties_the_slot_and_passes_the_arguments_on(take: str) -> None:
    fn = _accel._native.take if take == "native" else compiled_module._take
    G = [np.ones(3), "other"]
    kind, g, rest, params = fn(G, 0, _into, _rule, 1, "two", axis=-1, keepdims=True)
    assert G == [None, "other"]
    assert kind == ("into" if take == "native" else "rule")  # a fresh array, held by G alone
    assert np.array_equal(g, np.ones(3))
    assert rest == (1, "two") and params == {"axis": -1, "keepdims": True}
    many = tuple(range(12))  # more arguments than the C call keeps on its stack
    G = [np.zeros(2)]
    assert fn(G, 0, _into, _rule, *many, k=5)[2:] == (many, {"k": 5})


def test_take_writes_only_into_an_array_it_alone_holds() -> None:
    take = _accel._native.take
    base = np.arange(6.0)
    readonly = np.ones(3)
    readonly.flags.writeable = False
    held = np.ones(3)
    cases = {
        "held elsewhere": held,
        "a view": base[1:4],
        "read-only": readonly,
        "not an ndarray": xps.asarray([1.0, 2.0]),
        "a list": [1.0, 2.0],
        "a subclass": np.ones(3).view(np.ma.MaskedArray),
    }
    for why, value in cases.items():
        G = [value]
        del value
        kind = take(G, 0, _into, _rule)[0]
        assert kind == "rule", why
    G = [np.ones(3)]
    assert take(G, 0, _into, _rule)[0] == "into"


def test_take_errors_and_references() -> None:
    take = _accel._native.take
    with pytest.raises(TypeError, match=r"take\(G: list, j: int"):
        take((np.ones(1),), 0, _into, _rule)
    with pytest.raises(TypeError, match=r"take\(G: list, j: int"):
        take([np.ones(1)], 0, _into)
    with pytest.raises(IndexError, match="no gradient slot"):
        take([np.ones(1)], 1, _into, _rule)
    with pytest.raises(IndexError, match="no gradient slot"):
        take([np.ones(1)], -1, _into, _rule)

    def failing(g: Any) -> Any:
        raise ValueError("a rule failed")

    g = np.ones(4)
    before = sys.getrefcount(g)
    G = [g]
    with pytest.raises(ValueError, match="a rule failed"):
        take(G, 0, failing, failing)
    assert G == [None]
    assert sys.getrefcount(g) == before  # taken, then let go, on the error path too
    kept = take([g], 0, lambda g: g, lambda g: g)
    assert kept is g and sys.getrefcount(g) == before + 1


def _compiled_relu_mlp(shared: bool = False) -> Callable[[], Any]:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(8, 5))
    w1 = leaf(rng.normal(size=(6, 5)))
    w2 = leaf(rng.normal(size=(6, 6)))
    w3 = leaf(rng.normal(size=(2, 6)))

    def net(x: Any) -> Any:
        h = F.relu(F.linear(x, w1, None))
        h = F.relu(F.linear(h, w2, None))
        if shared:  # add hands one gradient array to both branches
            h = F.relu(h * 1.5) + F.relu(h * -0.5)
        return (F.linear(h, w3, None) ** 2).sum()

    loss = cr.compile(net)

    def step() -> Any:
        step.program = next(iter(loss.programs.values()), None)  # type: ignore[attr-defined]
        for w in (w1, w2, w3):
            w.grad = None
        loss(x).backward()
        return w1.grad, w2.grad, w3.grad, net(x).data

    return step


def test_compiled_backward_writes_into_gradients_it_alone_holds() -> None:
    step = _compiled_relu_mlp()
    eager = step()  # the trace, then the eager function: the reference
    with _watch_into("relu") as calls:
        step = _compiled_relu_mlp()  # traced with the watched rule in its program
        with engine(False):
            step()
        replays = same(step)
    grads, value = replays[:3], replays[3]
    assert_same(grads, eager[:3])
    assert_same(value, eager[3])
    # the trace's eager backward runs in Python (no into); each accelerated replay writes
    # into both relus' gradients, each pure-Python replay into none
    assert calls == [True, True], calls
    assert step.program.backward.source.count(".take(G, ") == 2  # type: ignore[attr-defined]


def test_compiled_backward_leaves_a_shared_gradient_to_its_last_user() -> None:
    step = _compiled_relu_mlp(shared=True)
    with _watch_into("relu") as calls:
        step = _compiled_relu_mlp(shared=True)
        with engine(False):
            step()
        same(step)
    # four relus: the two branch relus share add's gradient, so the first to run leaves it
    # alone (the vjp rule, unwatched) and the second may write into it; the two layer relus
    # own theirs
    assert calls == [True, True, True], calls


def test_compiled_relu_at_the_output_never_writes_into_the_seed() -> None:
    data = np.random.default_rng(12).normal(size=(3, 4))
    f = cr.compile(lambda x: F.relu(x * 2.0))
    with _watch_into("relu") as calls:
        f = cr.compile(lambda x: F.relu(x * 2.0))

        def run() -> Any:
            x = leaf(data)
            seed = np.ones((3, 4))
            f(x).backward(seed)
            assert np.array_equal(seed, np.ones((3, 4)))
            return x.grad

        with engine(False):
            run()
        same(run)
    assert calls == [], calls
    program = next(iter(f.programs.values()))
    assert "take" not in program.backward.source


# -- values an op saves for its rules (the op contract's save) ---------------------------------
TARGETS = np.array([0, 1, 2, 3, 0, 1])


def _softmax_rows(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("on", [True, False])
def test_a_saved_value_lives_with_its_node_until_the_backward_pass(on: bool) -> None:
    with engine(on):
        z = leaf(RNG.normal(size=(6, 4)))
        loss = cr.nn.functional.cross_entropy(z, TARGETS)
        saved = loss._params["saved"]
        np.testing.assert_allclose(saved, _softmax_rows(z.data), rtol=1e-14)
        kept = saved.copy()
        loss.backward(retain_graph=True)  # the graph, and so the saved value, stay
        first = z.grad.numpy().copy()
        assert loss._params["saved"] is saved and np.array_equal(saved, kept)
        z.grad = None
        loss.backward()  # reads it again, then lets it go with the node's inputs
        assert np.array_equal(z.grad.numpy(), first)
        assert "saved" not in loss._params
        gone = weakref.ref(saved)
        del saved
        assert gone() is None
        expected = (_softmax_rows(z.data) - np.eye(4)[TARGETS]) / len(TARGETS)
        np.testing.assert_allclose(first, expected, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("on", [True, False])
def test_save_runs_only_where_a_node_is_recorded(on: bool, monkeypatch: Any) -> None:
    op = REGISTRY["cross_entropy"]
    calls: list[str] = []
    save = op.save

    def spy(*args: Any, **params: Any) -> Any:
        calls.append("save")
        return save(*args, **params)

    monkeypatch.setattr(op, "save", spy)
    with engine(on):
        z = leaf(RNG.normal(size=(6, 4)))
        with cr.no_grad():
            quiet = cr.nn.functional.cross_entropy(z, TARGETS)
        constant = cr.nn.functional.cross_entropy(cr.tensor(z.data), TARGETS)
        assert calls == [] and quiet._op is None and constant._op is None
        recorded = cr.nn.functional.cross_entropy(z, TARGETS)
        assert calls == ["save"] and recorded._op is op
        assert np.array_equal(recorded.data, quiet.data)  # the same value either way


def test_a_save_that_does_not_return_a_pair_raises_the_same(monkeypatch: Any) -> None:
    op = REGISTRY["logsumexp"]
    monkeypatch.setattr(op, "save", lambda xp, x, axis=None, keepdims=False: x)
    z = RNG.normal(size=(3, 2))
    same_error(
        lambda: cr.logsumexp(leaf(z), axis=1),
        TypeError,
        "<chainrule op logsumexp>: save() must return a pair (out, saved)",
    )


def test_no_reference_leaks_through_saved_values() -> None:
    with engine(True):
        z = leaf(RNG.normal(size=(6, 4)))

        def step() -> None:
            cr.nn.functional.cross_entropy(z, TARGETS).backward()
            cr.sum(cr.logsumexp(z * 1.0, axis=1)).backward(retain_graph=True)

        step()
        watched = (REGISTRY["cross_entropy"], REGISTRY["logsumexp"], z, z.data, TARGETS)
        before = _counts(*watched)
        for _ in range(1000):
            step()
        assert _counts(*watched) == before


class _ReadOp(Op):
    """An Op whose table attributes are read through properties that count the reads: the C
    accelerator reads an exact Op's slots directly, any other class's attributes by name."""

    __slots__ = ()
    reads: dict[str, int] = {}

    def _read(name: str) -> Any:  # type: ignore[misc]
        slot = Op.__dict__[name]

        def get(self: Any) -> Any:
            _ReadOp.reads[name] = _ReadOp.reads.get(name, 0) + 1
            return slot.__get__(self, Op)

        return property(get)

    forward = _read("forward")
    save = _read("save")
    vjps = _read("vjps")
    differentiable = _read("differentiable")


@pytest.mark.parametrize("name", ["tanh", "cross_entropy"])
def test_an_op_of_another_class_is_read_by_name_with_the_same_results(name: str) -> None:
    op = REGISTRY[name]
    z = RNG.normal(size=(6, 4))

    def step() -> Any:
        x = leaf(z)
        y = cr.tanh(x) if name == "tanh" else cr.nn.functional.cross_entropy(x, TARGETS)
        cr.sum(y).backward()
        return y, x.grad

    plain = same(step)
    _ReadOp.reads.clear()
    op.__class__ = _ReadOp
    try:
        with engine(True):
            read = step()
    finally:
        op.__class__ = Op
    assert_same(read, plain)
    looked_up = "save" if name == "cross_entropy" else "forward"
    assert _ReadOp.reads.get(looked_up) and _ReadOp.reads.get("vjps"), _ReadOp.reads


# -- SGD's update in one pass (sgd_update) --------------------------------------------------------
def _special_values(dtype: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Normal draws with infinities, NaN, signed zeros, subnormals and the largest floats
    sprinkled in, so that every rounding and special case of the update is met."""
    rng = np.random.default_rng(seed)
    info = np.finfo(dtype)
    a = rng.normal(size=shape).astype(dtype)
    special = np.array(
        [np.inf, -np.inf, np.nan, 0.0, -0.0, info.tiny / 4, -info.smallest_normal, info.max],
        dtype=dtype,
    )
    flat = a.reshape(-1)
    if flat.size:
        picks = rng.integers(0, flat.size, size=min(flat.size, 3 * special.size))
        flat[picks] = np.resize(special, picks.size)
    return a


def _sgd_reference(
    p: np.ndarray,
    g: np.ndarray,
    lr: float,
    buf: Any,
    mom: float,
    damp: float,
    wd: float,
    nesterov: bool,
) -> tuple[np.ndarray, Any]:
    """SGD's update as chainrule/optim.py's NumPy lines compute it, out of place."""
    with np.errstate(all="ignore"):  # inf - inf, overflows: the special cases
        if wd:
            g = g + wd * p
        if buf is not None:
            buf = buf * mom + g * (1 - damp)
            g = g + mom * buf if nesterov else buf
        return p - g * lr, buf


_SGD_CASES = {  # name -> (momentum buffer?, momentum, dampening, weight_decay, nesterov)
    "plain": (False, 0.0, 0.0, 0.0, False),
    "weight decay": (False, 0.0, 0.0, 0.01, False),
    "momentum": (True, 0.9, 0.0, 0.0, False),
    "momentum, dampening, decay": (True, 0.9, 0.1, 0.01, False),
    "nesterov": (True, 0.9, 0.0, 0.0, True),
    "nesterov, decay": (True, 0.5, 0.0, 1e-4, True),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(256, 784), (10,), (), (3, 5, 7), (0, 4), (1031,)])
@pytest.mark.parametrize("lr", [0.01, 1e-7, 3.0])
@pytest.mark.parametrize("case", list(_SGD_CASES))
def test_sgd_update_has_numpy_s_bits(
    dtype: str, shape: tuple[int, ...], lr: float, case: str
) -> None:
    # the same roundings as optim.py's NumPy lines (each product and sum in the dtype, never
    # a fused multiply-add): identical bytes, special values included, buffer too
    has_buf, mom, damp, wd, nesterov = _SGD_CASES[case]
    p = _special_values(dtype, shape, 1)
    g = _special_values(dtype, shape, 2)
    buf = _special_values(dtype, shape, 3) if has_buf else None
    expected, expected_buf = _sgd_reference(p, g, lr, buf, mom, damp, wd, nesterov)
    args = (p, g, lr) if case == "plain" else (p, g, lr, buf, mom, 1 - damp, wd, nesterov)
    assert _accel._native.sgd_update(*args) is True
    assert p.dtype == expected.dtype and p.tobytes() == expected.tobytes()
    if has_buf:
        assert buf.tobytes() == expected_buf.tobytes()


def test_sgd_update_would_differ_from_a_fused_multiply_add() -> None:
    # a case where one rounding (fma) and two (NumPy) give different float32 bits, so the
    # test above can tell them apart: p - g * lr with g * lr inexact
    p = np.array([1.0], dtype=np.float32)
    g = np.array([1 + 2**-23], dtype=np.float32)
    lr = 1 - 2**-24
    two = p - g * lr
    one = np.float32(np.float64(p[0]) - np.float64(g[0]) * np.float64(np.float32(lr)))
    assert two[0] != one  # the roundings differ here
    assert _accel._native.sgd_update(p, g, lr) and p[0] == two[0]


def test_sgd_update_writes_in_either_memory_order_and_refuses_the_rest() -> None:
    fortran = np.asfortranarray(RNG.normal(size=(6, 4)))
    g = np.asfortranarray(RNG.normal(size=(6, 4)))
    b = np.asfortranarray(RNG.normal(size=(6, 4)))
    expected, expected_b = _sgd_reference(fortran, g, 0.25, b, 0.9, 0.0, 0.0, True)
    assert _accel._native.sgd_update(fortran, g, 0.25, b, 0.9, 1.0, 0.0, True)
    assert fortran.tobytes(order="A") == expected.tobytes(order="A")
    assert b.tobytes(order="A") == expected_b.tobytes(order="A")

    def p64(shape: tuple[int, ...] = (6, 4)) -> np.ndarray:
        return RNG.normal(size=shape)

    readonly = p64()
    readonly.flags.writeable = False
    swapped = p64().astype(">f8")
    base = p64((10,))
    refused = {
        "a strided parameter": (p64((6, 8))[:, ::2], p64()),
        "a strided gradient": (p64(), p64((6, 8))[:, ::2]),
        "C order against F order": (p64(), np.asfortranarray(p64())),
        "other dtypes": (p64(), p64().astype(np.float32)),
        "float16": (p64().astype(np.float16), p64().astype(np.float16)),
        "integers": (np.ones((6, 4), dtype=np.int64), np.ones((6, 4), dtype=np.int64)),
        "other shapes": (p64(), p64((4, 6))),
        "a read-only parameter": (readonly, p64()),
        "byte-swapped": (swapped, swapped.copy()),
        "the same array": (base, base),
        "overlapping views": (base[1:], base[:-1]),
        "a subclass": (p64().view(np.ma.MaskedArray), p64()),
        "not an ndarray": (xps.asarray([1.0, 2.0]), xps.asarray([1.0, 2.0])),
    }
    for why, (p, g) in refused.items():
        before = np.array(p, copy=True)
        assert _accel._native.sgd_update(p, g, 0.5) is False, why
        assert np.array_equal(np.asarray(p), before, equal_nan=True), why  # nothing written
    locked = p64()
    locked.flags.writeable = False
    shared = p64((10,))
    buffers = {  # a momentum buffer that cannot be written in one pass beside p and g
        "read-only": (p64(), p64(), locked),
        "strided": (p64(), p64(), p64((6, 8))[:, ::2]),
        "another dtype": (p64(), p64(), p64().astype(np.float32)),
        "overlapping the parameter": (shared[:6], p64((6,)), shared[4:]),
        "overlapping the gradient": (p64((6,)), shared[:6], shared[3:9]),
        "a list": (p64(), p64(), [0.0] * 24),
    }
    for why, (p, g, b) in buffers.items():
        before_p, before_b = p.copy(), np.array(b, copy=True)
        assert _accel._native.sgd_update(p, g, 0.5, b, 0.9, 1.0, 0.0, False) is False, why
        assert np.array_equal(p, before_p) and np.array_equal(np.asarray(b), before_b), why
    for lr in (np.float64(0.5), 1, np.float32(0.5)):  # NumPy types round by other rules
        assert _accel._native.sgd_update(p64(), p64(), lr) is False
    assert _accel._native.sgd_update(p64(), p64(), 0.5, p64(), 1, 1.0, 0.0, False) is False
    with pytest.raises(TypeError, match=r"takes 3 or 8 arguments"):
        _accel._native.sgd_update(p64(), p64())
    with pytest.raises(TypeError, match=r"takes 3 or 8 arguments"):
        _accel._native.sgd_update(p64(), p64(), 0.5, p64())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "kw",
    [
        dict(lr=0.1),
        dict(lr=0.1, weight_decay=0.01),
        dict(lr=0.1, momentum=0.9),
        dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
        dict(lr=0.1, momentum=0.9, nesterov=True),
    ],
)
def test_sgd_steps_have_the_same_bits_with_and_without_the_accelerator(
    dtype: str, kw: dict[str, Any]
) -> None:
    # an MLP trained for a few steps: the one-pass update (accelerator on) against optim.py's
    # NumPy lines with the scratch buffer (off): the same parameters and momentum buffers bit
    # for bit. With momentum, the first step makes the buffer in NumPy, and so the scratch
    # array; without it, the accelerator never needs one
    rng = np.random.default_rng(3)
    X = rng.normal(size=(64, 20)).astype(dtype)
    y = rng.integers(0, 5, size=64)

    def train(on: bool) -> tuple[list[bytes], Any]:
        with engine(on):
            cr.random.seed(5)
            net = cr.nn.MLP([20, 32, 5], dtype=dtype)
            opt = cr.optim.SGD(net.parameters(), **kw)
            for _ in range(4):
                opt.zero_grad()
                cr.nn.functional.cross_entropy(net(cr.tensor(X)), y).backward()
                opt.step()
            kept = [p.data.tobytes() for p in net.parameters()]
            kept += [s["momentum_buffer"].tobytes() for s in opt.state if s]
            return kept, opt

    fast, opt_fast = train(True)
    slow, opt_slow = train(False)
    assert fast == slow and len(fast) == (8 if kw.get("momentum") else 4)  # 2 layers
    assert set(opt_slow._flat) == {np.dtype(dtype)}
    assert set(opt_fast._flat) == (set(opt_slow._flat) if kw.get("momentum") else set())


def _adam_reference(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    t: int,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    wd: float,
    decoupled: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adam's update (after the first step) as chainrule/optim.py's NumPy lines compute it."""
    b1, b2 = betas
    with np.errstate(all="ignore"):
        if wd and decoupled:
            p = p * (1 - lr * wd)
        elif wd:
            g = g + wd * p
        m = m * b1 + g * (1 - b1)
        v = v * b2 + (g * g) * (1 - b2)
        denom = np.sqrt(v / (1 - b2**t)) + eps
        return p - (m / denom) * (lr / (1 - b1**t)), m, v


def _adam_args(
    p: Any,
    g: Any,
    m: Any,
    v: Any,
    t: int,
    lr: float,
    betas: Any,
    eps: float,
    wd: float,
    decoupled: bool,
) -> tuple[Any, ...]:
    b1, b2 = betas
    return (
        p,
        g,
        m,
        v,
        b1,
        1 - b1,
        b2,
        1 - b2,
        1 - b2**t,
        lr / (1 - b1**t),
        eps,
        wd if wd and not decoupled else 0.0,
        1 - lr * wd if wd and decoupled else None,
    )


_ADAM_CASES = {  # name -> (weight decay, decoupled)
    "Adam": (0.0, False),
    "Adam, L2 weight decay": (0.1, False),
    "AdamW": (0.01, True),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(256, 784), (10,), (), (0, 4), (1031,)])
@pytest.mark.parametrize("t", [2, 1000])
@pytest.mark.parametrize("case", list(_ADAM_CASES))
def test_adam_update_has_numpy_s_bits(
    dtype: str, shape: tuple[int, ...], t: int, case: str
) -> None:
    # every product, quotient, sum and square root rounded in the dtype as NumPy's lines do:
    # identical bytes for the parameter and both buffers, special values included (v keeps
    # its sign: a negative v gives NaN through the square root, in both)
    wd, decoupled = _ADAM_CASES[case]
    p, g, m = (_special_values(dtype, shape, seed) for seed in (1, 2, 3))
    v = _special_values(dtype, shape, 4)
    np.abs(v, out=v)  # (an array still where the shape is ())
    if v.size:
        v.reshape(-1)[0] = -1.0
    expected = _adam_reference(p, g, m, v, t, 1e-3, (0.9, 0.999), 1e-8, wd, decoupled)
    args = _adam_args(p, g, m, v, t, 1e-3, (0.9, 0.999), 1e-8, wd, decoupled)
    assert _accel._native.adam_update(*args) is True
    for got, want in zip((p, m, v), expected):
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


def test_adam_update_refuses_what_it_cannot_write_in_one_pass() -> None:
    def a64(shape: tuple[int, ...] = (6, 4)) -> np.ndarray:
        return RNG.normal(size=shape)

    locked = a64()
    locked.flags.writeable = False
    shared = a64((10,))
    cases = {  # name -> (p, g, m, v)
        "a read-only parameter": (locked, a64(), a64(), a64()),
        "a read-only buffer": (a64(), a64(), a64(), locked),
        "a strided buffer": (a64(), a64(), a64((6, 8))[:, ::2], a64()),
        "buffers of another dtype": (a64(), a64(), a64().astype(np.float32), a64()),
        "the two buffers overlapping": (a64((6,)), a64((6,)), shared[:6], shared[4:]),
        "a buffer overlapping the gradient": (a64((6,)), shared[:6], shared[2:8], a64((6,))),
        "F order against C order": (a64(), a64(), np.asfortranarray(a64()), a64()),
    }
    for why, (p, g, m, v) in cases.items():
        before = [np.array(x, copy=True) for x in (p, m, v)]
        args = _adam_args(p, g, m, v, 3, 1e-3, (0.9, 0.999), 1e-8, 0.0, False)
        assert _accel._native.adam_update(*args) is False, why
        assert all(np.array_equal(x, b) for x, b in zip((p, m, v), before)), why
    args = list(_adam_args(a64(), a64(), a64(), a64(), 3, 1e-3, (0.9, 0.999), 1e-8, 0.1, True))
    args[10] = np.float32(1e-8)  # eps as a NumPy scalar: NumPy rounds it by other rules
    assert _accel._native.adam_update(*args) is False
    args[10], args[12] = 1e-8, 1  # an int shrink factor likewise
    assert _accel._native.adam_update(*args) is False
    with pytest.raises(TypeError, match="takes 13 arguments"):
        _accel._native.adam_update(*args[:12])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "opt_cls,kw",
    [
        (cr.optim.Adam, dict(lr=0.01)),
        (cr.optim.Adam, dict(lr=0.01, weight_decay=0.1)),
        (cr.optim.AdamW, dict(lr=0.01)),
    ],
)
def test_adam_steps_have_the_same_bits_with_and_without_the_accelerator(
    dtype: str, opt_cls: Any, kw: dict[str, Any]
) -> None:
    # the one-pass update from the second step on (accelerator on) against optim.py's NumPy
    # lines (off): the same parameters, buffers and step counts bit for bit
    rng = np.random.default_rng(4)
    X = rng.normal(size=(64, 20)).astype(dtype)
    y = rng.integers(0, 5, size=64)

    def train(on: bool) -> list[Any]:
        with engine(on):
            cr.random.seed(6)
            net = cr.nn.MLP([20, 32, 5], dtype=dtype)
            opt = opt_cls(net.parameters(), **kw)
            for _ in range(5):
                opt.zero_grad()
                cr.nn.functional.cross_entropy(net(cr.tensor(X)), y).backward()
                opt.step()
            kept: list[Any] = [p.data.tobytes() for p in net.parameters()]
            for s in opt.state:
                kept += [s["step"], s["exp_avg"].tobytes(), s["exp_avg_sq"].tobytes()]
            return kept

    fast, slow = train(True), train(False)
    assert fast == slow and fast.count(5) == 4  # every parameter took five steps
