"""``cr.compile``: a traced and replayed function gives eager mode's values and gradients.

The op table is replayed bit for bit (forward value and every input's gradient, on the tracing
call and on a replay with new values); a new signature retraces and an old one replays without
running the Python body; value-dependent Python, randomness and non-Tensor results fall back to
eager with one warning; and compiled functions work with ``cr.grad``, ``cr.value_and_grad``,
``backward()`` into closed-over parameters, optimizers, ``cr.no_grad`` and ``cr.jvp``.
"""

from __future__ import annotations

import re
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_samples import KINDS, SAMPLES, Sample, np_const

import chainrule as cr
from chainrule.ops import OPS

DIFF = sorted(n for n, op in OPS.items() if op.differentiable)
# Ops whose samples may fall back to eager instead of being traced, and why. A fallback must
# still warn exactly once and give eager's results; every other op must be traced.
MAY_FALL_BACK = {
    "function": "a cr.Function runs the user's Python forward/backward, not table rules",
}


# -- helpers ---------------------------------------------------------------------------------
def _raw(a: Any) -> np.ndarray:
    return np.asarray(a.numpy() if isinstance(a, cr.Tensor) else a)


def _assert_same(got: Any, want: Any, what: str) -> None:
    """Bit-for-bit: same type of result, shape, dtype and every bit of every value."""
    assert isinstance(got, cr.Tensor) == isinstance(want, cr.Tensor), (
        f"{what}: compiled gives {type(got).__name__}, eager {type(want).__name__}"
    )
    g, w = _raw(got), _raw(want)
    assert g.dtype == w.dtype, f"{what}: compiled dtype {g.dtype}, eager {w.dtype}"
    assert g.shape == w.shape, f"{what}: compiled shape {g.shape}, eager {w.shape}"
    assert np.array_equal(g, w, equal_nan=g.dtype.kind in "fc"), (
        f"{what}: compiled {g!r} != eager {w!r} (max |diff| "
        f"{np.max(np.abs(g.astype(float) - w.astype(float)), initial=0.0)!r})"
    )


def _assert_same_grads(got: Sequence[cr.Tensor], want: Sequence[cr.Tensor], what: str) -> None:
    for i, (a, b) in enumerate(zip(got, want)):
        if b.grad is None:
            assert a.grad is None, f"{what}: input {i} has .grad {a.grad!r}; eager leaves None"
        else:
            assert a.grad is not None, f"{what}: input {i} has no .grad; eager gives {b.grad!r}"
            _assert_same(a.grad, b.grad, f"{what}: gradient of input {i}")


def _tensors(arrays: Sequence[Any], requires_grad: bool = True) -> list[cr.Tensor]:
    return [
        cr.tensor(np.array(a, copy=True), requires_grad=requires_grad and a.dtype.kind == "f")
        for a in arrays
    ]


def _compare(compiled: Callable[..., Any], f: Callable[..., Any], arrays: Sequence[Any]) -> None:
    """Call both on fresh Tensors made from ``arrays``; compare values, then gradients."""
    xs, ys = _tensors(arrays), _tensors(arrays)
    got, want = compiled(*xs), f(*ys)
    _assert_same(got, want, "value")
    assert got.requires_grad == want.requires_grad
    if want.requires_grad:
        got.backward()
        want.backward()
        _assert_same_grads(xs, ys, "backward")


@contextmanager
def _compile_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Collect the RuntimeWarnings cr.compile gives (not NumPy's own RuntimeWarnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found: list[warnings.WarningMessage] = []
        yield found
    found += [
        w
        for w in caught
        if issubclass(w.category, RuntimeWarning) and "cr.compile" in str(w.message)
    ]


def _counted(fn: Callable[..., Any]) -> tuple[Callable[..., Any], list[int]]:
    """``fn`` as a plain function that counts how many times its Python body runs."""
    runs = [0]

    def body(*args: Any) -> Any:
        runs[0] += 1
        return fn(*args)

    return body, runs


# -- the op table, bit for bit ---------------------------------------------------------------
def test_every_differentiable_op_is_swept() -> None:
    missing = sorted(set(DIFF) - set(SAMPLES))
    assert not missing, f"differentiable ops without samples, so not swept here: {missing}"
    assert set(MAY_FALL_BACK) <= set(DIFF)


def _new_values(arrays: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Same shapes and dtypes, each float entry scaled by a factor in [0.9, 1.1]: the same
    signs and domains, new bits."""
    out = []
    for a in arrays:
        if a.dtype.kind == "f":
            a = (a * rng.uniform(0.9, 1.1, a.shape)).astype(a.dtype)
        out.append(a)
    return out


@pytest.mark.parametrize("name", DIFF)
def test_op_table_is_replayed_bit_for_bit(name: str) -> None:
    weight_rng = np.random.default_rng(zlib.crc32(name.encode()))

    def check(drawn: tuple[Sample, int]) -> None:
        s, seed = drawn
        shape = s.call(np_const, *_tensors(s.args, requires_grad=False)).shape
        weight = weight_rng.standard_normal(shape)

        def f(*xs: Any) -> Any:
            return cr.sum(s.call(np_const, *xs) * weight)

        body, runs = _counted(f)
        compiled = cr.compile(body)
        second = _new_values(s.args, np.random.default_rng(seed))
        with _compile_warnings() as warned:
            _compare(compiled, f, s.args)  # the tracing call
            after_trace = runs[0]
            _compare(compiled, f, second)  # a replay: same signature, new values
        if name in MAY_FALL_BACK and not compiled.programs:
            assert len(warned) == 1, f"{s}: fell back with {len(warned)} warnings, not one"
            return
        assert not warned, f"{s}: fell back to eager: {warned[0].message}"
        assert len(compiled.programs) == 1, f"{s}: {len(compiled.programs)} programs, not 1"
        assert (after_trace, runs[0]) == (1, 1), f"{s}: the body ran {runs[0]} times, not once"

    strategy = st.tuples(st.one_of(*(SAMPLES[name](k) for k in KINDS)), st.integers(0, 2**32 - 1))
    settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )(given(strategy)(check))()


def test_compiled_calling_compiled() -> None:
    # Inside a trace an inner compiled function is inlined (bit for bit); in an eager graph it
    # is one 'compiled' node that the engine differentiates through like any other (the op
    # sweep covers the 'compiled' op too; this adds a closed-over parameter and fan-out).
    rng = np.random.default_rng(1)
    w = cr.tensor(rng.standard_normal((3, 4)), requires_grad=True)

    def inner_fn(x: Any) -> Any:
        return cr.tanh(x @ w) * x[:, :1]

    def outer_fn(x: Any) -> Any:
        return cr.sum(inner_fn(x) ** 2) + cr.sum(x * x)

    inner = cr.compile(inner_fn)
    outer = cr.compile(lambda x: cr.sum(inner(x) ** 2) + cr.sum(x * x))
    for _ in range(2):
        x = rng.standard_normal((5, 3))
        _compare(outer, outer_fn, [x])
        # an eager graph with a 'compiled' node in it, against the same graph all eager
        xc, xe = cr.tensor(x, requires_grad=True), cr.tensor(x, requires_grad=True)
        w.grad = None
        mixed = cr.sum(inner(xc) ** 2) + cr.sum(xc * xc)
        assert "compiled" in {n.op for n in cr.graph(mixed).nodes}
        mixed.backward()
        grad_w = w.grad.numpy().copy()
        w.grad = None
        eager = outer_fn(xe)
        eager.backward()
        _assert_same(mixed, eager, "value with a compiled node")
        # NOTE: the compiled node hands back x's gradient as one sum, so the fan-out into x is
        # accumulated in another order than eager's: equal up to rounding, not bit for bit.
        np.testing.assert_allclose(xc.grad.numpy(), xe.grad.numpy(), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(grad_w, w.grad.numpy(), rtol=1e-13, atol=1e-15)
    assert len(outer.programs) == 1 and len(inner.programs) == 1


def test_array_level_value_dependence_is_traced_not_baked_in() -> None:
    # where(x > 0, ...) and relu depend on values through arrays, not Python: they compile, and
    # a replay with the signs flipped recomputes the mask.
    def f(x: Any) -> Any:
        return cr.sum(cr.where(x > 0, x * x, 0.1 * x) + cr.relu(-x) * cr.max(x))

    compiled = cr.compile(f)
    x = np.array([[1.5, -0.5, 2.0], [-1.0, 0.25, -3.0]])
    with _compile_warnings() as warned:
        for values in (x, -x, x[::-1] * 2.0):
            _compare(compiled, f, [values])
    assert not warned and len(compiled.programs) == 1


# -- signatures: retrace on new ones, replay old ones without running the body ---------------
def test_retrace_on_new_signature_and_replay_on_old() -> None:
    def f(x: Any, scale: float) -> Any:
        return cr.sum(cr.tanh(x) * scale + x * x)

    body, runs = _counted(f)
    compiled = cr.compile(body)
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3,))

    def call(x: Any, scale: float, requires_grad: bool = True, as_tensor: bool = True) -> None:
        xc = cr.tensor(x.copy(), requires_grad=requires_grad) if as_tensor else x.copy()
        xe = cr.tensor(x.copy(), requires_grad=requires_grad) if as_tensor else x.copy()
        got, want = compiled(xc, scale), f(xe, scale)
        what = f"value at {x.shape} {x.dtype} rg={requires_grad} {scale}"
        if as_tensor:
            _assert_same(got, want, what)
        else:  # eager gives a plain NumPy value here (nothing recorded), compiled a Tensor
            _assert_same(_raw(got), _raw(want), what)
        needs_grad = as_tensor and requires_grad
        assert getattr(got, "requires_grad", False) == needs_grad, what
        assert getattr(want, "requires_grad", False) == needs_grad, what
        if needs_grad:
            got.backward()
            want.backward()
            _assert_same_grads([xc], [xe], "backward")

    steps: list[tuple[str, Callable[[], None], int, int]] = [
        ("first call traces", lambda: call(a, 2.0), 1, 1),
        ("same signature, new values: replay", lambda: call(a + 1.0, 2.0), 1, 1),
        ("new shape", lambda: call(rng.standard_normal((2, 3)), 2.0), 2, 2),
        ("new dtype", lambda: call(a.astype(np.float32), 2.0), 3, 3),
        ("new requires_grad", lambda: call(a, 2.0, requires_grad=False), 4, 4),
        ("new scalar argument value", lambda: call(a, 3.0), 5, 5),
        ("NumPy array instead of Tensor", lambda: call(a, 2.0, as_tensor=False), 6, 6),
        ("back to the first signature", lambda: call(a * 0.5, 2.0), 6, 6),
        ("back to the float32 one", lambda: call(a.astype(np.float32) - 1, 2.0), 6, 6),
        ("back to the scalar 3.0", lambda: call(-a, 3.0), 6, 6),
    ]
    with _compile_warnings() as warned:
        for what, step, programs, expected_runs in steps:
            step()
            assert len(compiled.programs) == programs, f"{what}: {len(compiled.programs)}"
            assert runs[0] == expected_runs, f"{what}: the body ran {runs[0]} times"

    assert not warned


def test_unhashable_argument_is_not_replayed_stale() -> None:
    # A list argument cannot be a dict key by value; whatever cr.compile does with it (retrace,
    # fall back), a new list or a list changed in place must give eager's result.
    def f(x: Any, coeffs: list[float]) -> Any:
        return cr.sum(x * coeffs[0] + coeffs[1])

    compiled = cr.compile(f)
    x = np.array([1.0, 2.0, 3.0])
    for k in (1.0, 2.0, -1.0):  # a new list each time, which may reuse the last one's id
        got = compiled(cr.tensor(x), [k, k + 1])
        _assert_same(got, f(cr.tensor(x), [k, k + 1]), f"a new list [{k}, {k + 1}]")
    kept = [1.0, 0.0]
    compiled(cr.tensor(x), kept)
    kept[0] = 4.0
    _assert_same(compiled(cr.tensor(x), kept), f(cr.tensor(x), kept), "list changed in place")


# -- fallback to eager -----------------------------------------------------------------------
def _branch_on_float(x: Any) -> Any:
    if float(cr.sum(x)) > 0:
        return cr.sum(x * x)
    return cr.sum(cr.tanh(x))


def _branch_on_bool(x: Any) -> Any:
    if cr.sum(x) > 0:  # Tensor.__bool__
        return cr.sum(x**3)
    return cr.sum(-x)


def _item(x: Any) -> Any:
    return cr.sum(x / cr.max(cr.abs(x)).item())


def _numpy(x: Any) -> Any:
    return cr.sum(x * float(x.numpy().max()))


def _tolist(x: Any) -> Any:
    positives = sum(1 for v in np.ravel(x.tolist()) if v > 0)
    return cr.sum(x) * (positives + 1)


def _as_array(x: Any) -> Any:
    return cr.sum(x * np.asarray(x.detach()).mean())  # (the value as a constant, said so)


def _returns_tuple_with_a_number(x: Any) -> Any:
    return cr.sum(x), 2.5  # (a tuple of Tensors is compiled: see the test at the end)


def _returns_mixed_dtypes(x: Any) -> Any:
    return cr.sum(x), cr.argmax(x)


def _returns_float(x: Any) -> Any:
    return 1.5


FALLBACKS: dict[str, Callable[[], Callable[..., Any]]] = {
    # each makes a fresh function, its random state seeded the same way every time
    "float(t) in if": lambda: _branch_on_float,
    "Tensor.__bool__": lambda: _branch_on_bool,
    "item()": lambda: _item,
    "numpy()": lambda: _numpy,
    "tolist()": lambda: _tolist,
    "np.asarray(t)": lambda: _as_array,
    "returns a tuple with a number": lambda: _returns_tuple_with_a_number,
    "returns Tensors of two dtypes": lambda: _returns_mixed_dtypes,
    "returns a float": lambda: _returns_float,
    "functional dropout": lambda: _dropout_functional(),
    "Dropout module in training mode": lambda: _dropout_module(),
    "cr.random draws": lambda: _random_draws(),
    "a Tensor as an index": lambda: _tensor_index,
}


def _tensor_index(x: Any) -> Any:
    return cr.sum(x.reshape(-1)[cr.argmax(x)] * x)  # the index depends on the values


def _dropout_functional() -> Callable[..., Any]:
    gen = np.random.default_rng(3)
    return lambda x: cr.sum(cr.nn.functional.dropout(x, 0.5, training=True, rng=gen) ** 2)


def _dropout_module() -> Callable[..., Any]:
    net = cr.nn.Sequential(cr.nn.Tanh(), cr.nn.Dropout(0.5, rng=4))
    net.train()
    return lambda x: cr.sum(net(x) * x)


def _random_draws() -> Callable[..., Any]:
    gen = cr.random.default_rng(5)  # (a Generator of its own: the global one is left alone)
    return lambda x: cr.sum(x * gen.standard_normal(x.shape))


def _fallback_inputs() -> list[np.ndarray]:
    return [
        np.array([0.5, -1.5, 2.0]),
        np.array([0.25, -2.5, 1.0]),  # same signature, the other branch
        np.array([1.0, 3.0, -0.5]),  # same signature, the first branch again
        np.array([[0.5, -0.75], [1.25, 2.0]]),  # a new signature
    ]


def _run_all(fn: Callable[..., Any]) -> list[tuple[Any, Any]]:
    """Call ``fn`` on each input; the result and the input gradients (after backward)."""
    results = []
    for values in _fallback_inputs():
        x = cr.tensor(values, requires_grad=True)
        out = fn(x)
        parts = out if isinstance(out, tuple) else (out,)
        if isinstance(parts[0], cr.Tensor) and parts[0].requires_grad:
            parts[0].backward()
        results.append((out, x.grad))
    return results


@pytest.mark.parametrize("case", sorted(FALLBACKS))
def test_value_dependent_function_falls_back_with_one_warning(case: str) -> None:
    compiled = cr.compile(FALLBACKS[case]())
    with _compile_warnings() as warned:
        got = _run_all(compiled)
    want = _run_all(FALLBACKS[case]())
    assert len(warned) == 1, f"{case}: {len(warned)} cr.compile warnings, not exactly one"
    assert not compiled.programs, f"{case}: traced {len(compiled.programs)} program(s)"
    for i, ((out_c, grad_c), (out_e, grad_e)) in enumerate(zip(got, want)):
        if isinstance(out_e, tuple):
            assert isinstance(out_c, tuple) and len(out_c) == len(out_e)
            for j, (c, e) in enumerate(zip(out_c, out_e)):
                _assert_same(c, e, f"{case}, call {i}, output {j}")
        else:
            _assert_same(out_c, out_e, f"{case}, call {i}")
        assert (grad_c is None) == (grad_e is None), f"{case}, call {i}: .grad"
        if grad_e is not None:
            _assert_same(grad_c, grad_e, f"{case}, call {i}: gradient")


def test_warning_is_once_per_compiled_function() -> None:
    first, second = cr.compile(_branch_on_bool), cr.compile(_branch_on_bool)
    with _compile_warnings() as warned:
        for fn in (first, second, first, second):
            fn(cr.tensor([1.0, -2.0]))
    assert len(warned) == 2
    assert all("_branch_on_bool" in str(w.message) for w in warned), warned[0].message


class _Scaled:
    """A callable object whose attributes are named like CompiledFunction's own."""

    def __init__(self, fn: Callable[..., Any], scale: float) -> None:
        self.fn, self.scale, self.programs = fn, scale, "mine"

    def __call__(self, x: Any) -> Any:
        return self.fn(x) * self.scale


_NET = cr.nn.MLP([3, 4, 1], activation="tanh", rng=0)
CALLABLES: dict[str, Callable[[], Callable[..., Any]]] = {
    "object with attributes fn, programs": lambda: _Scaled(lambda x: cr.sum(cr.tanh(x)), 3.0),
    "nn.Module": lambda: _NET,
    "function closing over a Module": lambda: lambda x: cr.sum(_NET(x)),
}


@pytest.mark.parametrize("case", sorted(CALLABLES))
def test_compile_a_callable_object(case: str) -> None:
    fn = CALLABLES[case]()
    compiled = cr.compile(fn)
    x = np.random.default_rng(10).standard_normal((2, 3))
    with _compile_warnings() as warned:
        for values in (x, x + 1.0):
            _assert_same(compiled(cr.tensor(values)), fn(cr.tensor(values)), case)
    assert not warned and len(compiled.programs) == 1


def test_dropout_in_eval_mode_compiles() -> None:
    net = cr.nn.Sequential(cr.nn.Linear(3, 4, rng=0), cr.nn.Tanh(), cr.nn.Dropout(0.5, rng=0))
    net.eval()

    def f(x: Any) -> Any:
        return cr.sum(net(x) ** 2)

    compiled = cr.compile(f)
    rng = np.random.default_rng(6)
    with _compile_warnings() as warned:
        for _ in range(2):
            _compare(compiled, f, [rng.standard_normal((2, 3))])
    assert not warned and len(compiled.programs) == 1


# -- transforms, parameters, optimizers ------------------------------------------------------
def test_grad_and_value_and_grad_match_eager() -> None:
    def f(x: Any, y: Any) -> Any:
        return cr.sum(cr.tanh(x @ y) ** 2) + cr.mean(cr.exp(-x))

    compiled = cr.compile(f)
    rng = np.random.default_rng(7)
    with _compile_warnings() as warned:
        for _ in range(2):
            x, y = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
            for argnums in (0, 1, (0, 1)):
                got, want = cr.grad(compiled, argnums)(x, y), cr.grad(f, argnums)(x, y)
                if isinstance(argnums, tuple):
                    for i, (g, w) in enumerate(zip(got, want)):
                        _assert_same(g, w, f"cr.grad argnums={argnums}, {i}")
                else:
                    _assert_same(got, want, f"cr.grad argnums={argnums}")
            (vc, gc), (ve, ge) = (
                cr.value_and_grad(compiled, (0, 1))(x, y),
                cr.value_and_grad(f, (0, 1))(x, y),
            )
            _assert_same(vc, ve, "value_and_grad value")
            for i, (g, w) in enumerate(zip(gc, ge)):
                _assert_same(g, w, f"value_and_grad gradient {i}")
    assert not warned and compiled.programs


def test_backward_fills_closed_over_parameters() -> None:
    net_c = cr.nn.MLP([3, 8, 2], activation="tanh", rng=0)
    net_e = cr.nn.MLP([3, 8, 2], activation="tanh", rng=0)
    rng = np.random.default_rng(8)
    target = rng.standard_normal((5, 2))
    compiled = cr.compile(lambda x: cr.mean((net_c(x) - target) ** 2))
    for _ in range(2):  # the second backward accumulates onto the first's .grad
        x = rng.standard_normal((5, 3))
        got, want = compiled(cr.tensor(x)), cr.mean((net_e(cr.tensor(x)) - target) ** 2)
        _assert_same(got, want, "loss")
        got.backward()
        want.backward()
        names = [n for n, _ in net_e.named_parameters()]
        _assert_same_grads(list(net_c.parameters()), list(net_e.parameters()), str(names))
    assert all(p.grad is not None for p in net_c.parameters())
    assert len(compiled.programs) == 1


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda params: cr.optim.SGD(params, lr=0.05, momentum=0.9),
        lambda params: cr.optim.Adam(params, lr=0.01),
    ],
    ids=["SGD momentum", "Adam"],
)
def test_training_with_a_compiled_loss_is_bit_identical(make_optimizer: Any) -> None:
    rng = np.random.default_rng(9)
    x = rng.uniform(-2, 2, (32, 2))
    y = (np.sin(x[:, :1]) * np.cos(x[:, 1:])).copy()
    nets = [cr.nn.MLP([2, 16, 16, 1], activation="tanh", rng=1) for _ in range(2)]
    init = [p.numpy().copy() for p in nets[0].parameters()]

    def train(net: Any, compiled: bool) -> tuple[list[float], list[int]]:
        body, runs = _counted(lambda xb, yb: cr.mean((net(xb) - yb) ** 2))
        loss = cr.compile(body) if compiled else body
        opt = make_optimizer(net.parameters())
        losses = []
        for _ in range(25):
            opt.zero_grad()
            value = loss(cr.tensor(x), cr.tensor(y))
            value.backward()
            opt.step()
            losses.append(value.numpy().item())
        if compiled:
            assert len(loss.programs) == 1
        return losses, runs

    (losses_c, runs_c), (losses_e, _) = train(nets[0], True), train(nets[1], False)
    assert runs_c == [1], f"the compiled loss's body ran {runs_c[0]} times, not once"
    assert losses_c == losses_e
    assert losses_c[-1] < losses_c[0]
    for (name, pc), pe, p0 in zip(nets[0].named_parameters(), nets[1].parameters(), init):
        _assert_same(pc, pe, f"trained {name}")
        assert not np.array_equal(pc.numpy(), p0), f"{name} never changed"


def _nll(z: Any, y: Any) -> Any:
    return cr.nn.functional.nll_loss(cr.log_softmax(z, axis=-1), y)


@pytest.mark.parametrize("loss_fn", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("targets_as", ["array", "Tensor"])
def test_a_compiled_classifier_reads_the_targets_of_each_batch(
    targets_as: str, loss_fn: str
) -> None:
    # the targets are an argument: each batch's must be read, none frozen from the trace
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 24, 6))
    y = rng.integers(0, 4, size=(5, 24))
    nets = [cr.nn.MLP([6, 12, 4], rng=2) for _ in range(2)]
    wrap = cr.tensor if targets_as == "Tensor" else np.asarray
    criterion = cr.nn.functional.cross_entropy if loss_fn == "cross_entropy" else _nll

    def train(net: Any, compiled: bool) -> list[float]:
        body = lambda xb, yb: criterion(net(xb), yb)  # noqa: E731
        loss = cr.compile(body) if compiled else body
        opt = cr.optim.SGD(net.parameters(), lr=0.5)
        losses = []
        for xb, yb in zip(x, y):
            opt.zero_grad()
            value = loss(cr.tensor(xb), wrap(yb))
            value.backward()
            opt.step()
            losses.append(value.numpy().item())
        if compiled:
            assert len(loss.programs) == 1  # traced once, never fallen back to eager
            program = next(iter(loss.programs.values()))
            if loss_fn == "cross_entropy":  # its softmax goes from its forward to its rule
                assert re.search(r"^    (v\d+), \1s = ", program.forward.source, re.M)
                assert "saved=v" in program.backward.source
        return losses

    assert train(nets[0], True) == train(nets[1], False)
    for pc, pe in zip(nets[0].parameters(), nets[1].parameters()):
        _assert_same(pc, pe, "trained parameter")


def test_freezing_a_parameter_after_tracing() -> None:
    # requires_grad of a closed-over parameter is switched off after the trace: the other
    # parameter must still get its own gradient, and the frozen one none.
    w1 = cr.tensor([1.0, 2.0], requires_grad=True)
    w2 = cr.tensor([3.0, 5.0], requires_grad=True)

    def f(x: Any) -> Any:
        return cr.sum(x * w1 + x * x * w2)

    compiled = cr.compile(f)
    x = np.array([1.0, 2.0])
    compiled(x).backward()
    w1.grad = w2.grad = None
    w1.requires_grad = False
    compiled(x).backward()
    got = w2.grad.numpy().copy() if w2.grad is not None else None
    assert w1.grad is None
    w2.grad = None
    f(x).backward()
    assert got is not None
    _assert_same(got, w2.grad.numpy(), "gradient of the parameter still trained")


def test_unused_argument_gets_no_gradient_like_eager() -> None:
    def f(x: Any, y: Any) -> Any:
        return cr.sum(x * 2.0)

    _compare(cr.compile(f), f, [np.array([1.0, 2.0]), np.array([3.0, 4.0])])


# -- grad modes, forward mode, higher order --------------------------------------------------
def test_no_grad_returns_a_value_without_a_graph() -> None:
    w = cr.tensor([0.5, -1.0, 2.0], requires_grad=True)

    def f(x: Any) -> Any:
        return cr.sum(cr.tanh(x * w) ** 2)

    compiled = cr.compile(f)
    x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    compiled(x)  # traced with gradients first
    with cr.no_grad():
        got, want = compiled(x), f(x)
    _assert_same(got, want, "value under no_grad")
    assert not got.requires_grad and got.is_leaf and got.op is None
    assert all(n.op is None for n in cr.graph(got).nodes)
    again = compiled(x)  # grad mode back on: a graph again
    assert again.requires_grad and again.op == "compiled"
    again.backward()
    assert x.grad is not None and w.grad is not None


def test_forward_mode_runs_eagerly() -> None:
    def f(x: Any) -> Any:
        return cr.sum(cr.sin(x) * x**2)

    body, runs = _counted(f)
    compiled = cr.compile(body)
    x, t = np.array([0.5, -1.0, 2.0]), np.array([1.0, 0.5, -2.0])
    compiled(cr.tensor(x, requires_grad=True))  # a traced program exists
    before = runs[0]
    (vc, tc), (ve, te) = cr.jvp(compiled, (x,), (t,)), cr.jvp(f, (x,), (t,))
    _assert_same(vc, ve, "jvp value")
    _assert_same(tc, te, "jvp tangent")
    assert float(np.abs(te)) > 0
    assert runs[0] == before + 1, "forward mode must run the Python body, not the program"


def test_higher_order_says_to_call_the_function_itself() -> None:
    # The module docstring: gradients of gradients (create_graph=True) are not available
    # through a compiled function; the error must say so and name the way out.
    def f(x: Any) -> Any:
        return cr.sum(x**4 + cr.tanh(x) * x)

    compiled = cr.compile(f)
    x = np.array([0.5, -1.5])
    compiled(cr.tensor(x, requires_grad=True)).backward()  # first order works
    d2 = lambda g: cr.grad(lambda y: cr.sum(cr.grad(g)(y)))
    assert np.all(np.isfinite(d2(f)(x)))  # the eager function has second derivatives
    with pytest.raises(NotImplementedError, match=r"(?s)compile.*create_graph"):
        d2(compiled)(x)
    y = cr.tensor(x, requires_grad=True)
    with pytest.raises(NotImplementedError, match=r"(?s)compile.*create_graph"):
        compiled(y).backward(create_graph=True)


def test_programs_are_generated_straight_line_code() -> None:
    # one call per op forward, one per VJP rule backward, a broadcast sum only where the trace
    # needed one; no loops, no per-step checks
    w = cr.tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    b = cr.tensor(np.array([0.1]), requires_grad=True)
    f = cr.compile(lambda x: cr.sum(cr.tanh(x * w + b)))
    x = np.random.default_rng(3).standard_normal((4, 3))
    f(x).backward()
    (program,) = f.programs.values()
    forward, backward = program.forward.source, program.backward.source
    assert "for " not in forward and "for " not in backward and "if " not in backward
    body = [line for line in forward.splitlines()[1:] if not line.strip().startswith("return")]
    assert len(body) == 4  # multiply, add, tanh, sum
    rules = re.findall(r"c = k\d+\(gv", backward)  # a rule takes a node's gradient first
    assert len(rules) == 5  # sum, tanh, add (to x * w and to b), multiply (to w)
    sums = re.findall(r"c = k\d+\(k\d+, c, ", backward)  # the engine's sum over axes
    assert len(sums) == 2  # b (1,) and w (3,) from (4, 3)
    assert backward.count(".reshape(") == 1  # only b's sum, over both axes, needs reshaping
    assert backward.count("del g") == 4  # each node's gradient dropped once its rules ran
    # the replay agrees with eager, and a second call reuses the program
    grads = (w.grad.numpy().copy(), b.grad.numpy().copy())
    w.grad = b.grad = None
    f(x).backward()
    assert np.array_equal(w.grad.numpy(), grads[0]) and np.array_equal(b.grad.numpy(), grads[1])
    assert len(f.programs) == 1


def test_container_arguments_are_traced_once_per_structure() -> None:
    def loss(p: Any, x: Any) -> Any:
        return cr.sum(cr.tanh(p["w"] * x + p["b"][0]) ** 2)

    compiled = cr.compile(loss)
    x = np.array([0.3, -1.2])
    for w0 in ([1.0, 0.5], [-2.0, 0.25], [0.1, 3.0]):
        p = {"w": cr.tensor(w0, requires_grad=True), "b": [cr.tensor(0.2, requires_grad=True)]}
        q = {"w": cr.tensor(w0, requires_grad=True), "b": [cr.tensor(0.2, requires_grad=True)]}
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # traced, not run eagerly
            got = compiled(p, x)
        want = loss(q, x)
        got.backward()
        want.backward()
        assert float(got) == float(want)
        np.testing.assert_array_equal(p["w"].grad.numpy(), q["w"].grad.numpy())
        assert float(p["b"][0].grad) == float(q["b"][0].grad)
    assert len(compiled.by_structure) == 1
    (inner,) = compiled.by_structure.values()
    assert len(inner.programs) == 1
    compiled({"w": cr.tensor([1.0, 1.0]), "b": (0.5,)}, x)  # another structure: its own trace
    assert len(compiled.by_structure) == 2


def test_a_container_of_results_is_compiled_and_differentiates_like_eager():
    def fn(x, w):
        h = cr.tanh(x @ w)
        return {"loss": cr.mean(h * h), "parts": (cr.sum(h, axis=0), h)}

    compiled = cr.compile(fn)
    rng = np.random.default_rng(3)
    xs, ws = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))
    for _ in range(3):  # traced once, replayed after
        results = []
        for f in (fn, compiled):
            x, w = cr.tensor(xs, requires_grad=True), cr.tensor(ws, requires_grad=True)
            out = f(x, w)
            assert set(out) == {"loss", "parts"} and out["parts"][1].shape == (4, 2)
            total = out["loss"] + cr.sum(out["parts"][0] * 2.0) + cr.sum(out["parts"][1] ** 2)
            total.backward()
            results.append((total.numpy(), x.grad.numpy(), w.grad.numpy()))
        for eager, replayed in zip(*results):
            np.testing.assert_allclose(replayed, eager, rtol=1e-12, atol=1e-14)
    assert len(compiled.by_structure) + len(compiled.programs) >= 1 and not compiled.warned
