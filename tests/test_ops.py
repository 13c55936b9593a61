"""The op table, driven from its samples (tests/op_samples.py).

Every registered op has samples; every differentiable op is gradchecked in float64 (reverse
and forward mode) on 0-d, size-1, broadcast and non-contiguous inputs; JVP is checked against
VJP (<u, J t> = <J^T u, t>); second derivatives are gradchecked; float32 stays float32 and
agrees with float64; the kink conventions of the table hold exactly at the kink; the stable
forms stay finite for |x| up to 1e4; non-differentiable ops record nothing; and the whole
table runs under array-api-strict with the same results as under NumPy.
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import array_api_strict as xps
import numpy as np
import pytest
import scipy.special as sp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from op_samples import KINDS, SAMPLES, Sample, np_const

import chainrule as cr
from chainrule.backends import to_numpy
from chainrule.engine.registry import FUNCTIONS, SAVED
from chainrule.ops import NOT_IMPLEMENTED, OPS
from chainrule.ops.kernels import ROUNDING

ROWS = {row["name"]: row for row in cr.ops.table()}
ALL = sorted(OPS)
DIFF = sorted(n for n, op in OPS.items() if op.differentiable)
VMAP_EDGES = ("batch", "unbatch")  # cr.vmap's ops: NumPy arrays (and NEP 18 ones) only
NONDIFF = sorted(n for n, op in OPS.items() if not op.differentiable)
SECOND = sorted(n for n in DIFF if ROWS[n]["second_order"])
STRICT_ARRAY = type(xps.asarray(0.0))
SEEDS = st.integers(0, 2**32 - 1)


# OP_TESTS_SCALE=10 multiplies every example count (a longer hunt for rare failures).
_SCALE = float(os.environ.get("OP_TESTS_SCALE", "1"))


def _run(
    strategy: st.SearchStrategy[Any],
    check: Callable[[Any], None],
    n: int,
    examples: Sequence[Any] = (),
) -> None:
    """Run ``check`` on ``examples`` and ``n`` draws of ``strategy`` (settings per call)."""

    @settings(
        max_examples=max(1, round(n * _SCALE)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(strategy)
    def inner(value: Any) -> None:
        check(value)

    for value in reversed(examples):
        inner = example(value)(inner)
    inner()


def _any_kind(name: str) -> st.SearchStrategy[Sample]:
    return st.one_of(*(SAMPLES[name](kind) for kind in KINDS))


def _forward_mode(name: str, s: Sample) -> bool:
    return ROWS[name]["jvp"] if s.forward_mode is None else s.forward_mode


def _is_float(a: np.ndarray) -> bool:
    return a.dtype.kind == "f"


def _scale(*arrays: Any) -> float:
    return max([1.0] + [float(np.max(np.abs(a), initial=0.0)) for a in arrays])


def _strict(a: Any) -> Any:
    """The constant converter for array-api-strict."""
    return xps.asarray(a) if isinstance(a, np.ndarray) else a


def _to_numpy(a: Any) -> np.ndarray:
    if isinstance(a, cr.Tensor):
        a = a._data
    if isinstance(a, STRICT_ARRAY):
        return np.from_dlpack(a)
    return to_numpy(a)  # (Dask's computed, CuPy's copied from the GPU)


# -- the table and its samples ---------------------------------------------------------------
def test_every_registered_op_has_samples() -> None:
    missing = sorted(set(OPS) - set(SAMPLES))
    assert not missing, f"ops in chainrule.ops.OPS without samples in op_samples.py: {missing}"


def test_samples_are_only_for_registered_ops() -> None:
    stale = sorted(set(SAMPLES) - set(OPS))
    assert not stale, f"op_samples.py has samples for ops that are not registered: {stale}"


@pytest.mark.parametrize("name", ALL)
def test_table_row_describes_the_op(name: str) -> None:
    op, row = OPS[name], ROWS[name]
    assert op.name == name and op.family and row["family"] == op.family
    if op.differentiable:
        # "vjp": every input has its rule (zeta's x has none: NOT_IMPLEMENTED, said so)
        complete = all(r is not NOT_IMPLEMENTED for r in op.vjps)
        assert row["vjp"] == complete, f"{name}: the table row's vjp says {row['vjp']}"
        assert op.formula and row["formula"] == op.formula, f"{name}: no derivative formula"
        assert len(op.vjps) >= 1 and any(callable(r) for r in op.vjps)
    else:
        assert not (row["vjp"] or row["jvp"] or row["second_order"]), row
        assert all(r is None for r in op.vjps), f"{name}: not differentiable yet has rules"
    assert callable(op.public)
    assert op.variadic or op.nin == len(op.vjps)


@pytest.mark.parametrize("name", [n for n in ALL if callable(getattr(cr, n, None))])
def test_public_face_is_the_cr_function(name: str) -> None:
    # OPS[name].public is documented as the op's public face; cr.<name> is what users call
    assert OPS[name].public is getattr(cr, name), (
        f"OPS[{name!r}].public is {OPS[name].public!r}, cr.{name} is {getattr(cr, name)!r}"
    )


def test_numpy_matmul_dispatch_is_batched() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 2, 3)), rng.standard_normal((3, 4))
    x = cr.tensor(a, requires_grad=True)
    y = np.matmul(x, cr.tensor(b))  # NumPy dispatch of np.matmul on Tensors
    assert isinstance(y, cr.Tensor) and y.op == "matmul"
    np.testing.assert_allclose(y.numpy(), np.matmul(a, b), rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.broadcast_to(b.sum(axis=1), a.shape))


# -- forward values --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_forward_matches_numpy(name: str) -> None:
    def check(s: Sample) -> None:
        ref = np.asarray(s.ref(*s.values))
        raw = _to_numpy(s.call(np_const, *s.args))  # plain arrays: nothing recorded
        xs = [cr.tensor(a, requires_grad=_is_float(a)) for a in s.args]
        out = s.call(np_const, *xs)
        assert isinstance(out, cr.Tensor), f"{s}: returned {type(out).__name__}"
        for got in (raw, out.numpy()):
            assert got.shape == ref.shape, f"{s}: shape {got.shape}, NumPy gives {ref.shape}"
            assert got.dtype.kind == ref.dtype.kind, f"{s}: dtype {got.dtype} vs {ref.dtype}"
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12, err_msg=repr(s))

    _run(_any_kind(name), check, 15)


# -- float64 gradcheck -----------------------------------------------------------------------
_GRADCHECK_EXAMPLES = {"0d": 3, "size1": 5, "any": 25}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", DIFF)
def test_gradcheck_float64(name: str, kind: str) -> None:
    def check(s: Sample) -> None:
        forward = _forward_mode(name, s)
        assert cr.gradcheck(lambda *a: s.call(np_const, *a), *s.args, check_forward=forward)
        # the sample really goes through this op
        xs = [cr.tensor(a, requires_grad=True) for a in s.args]
        ops = {node.op for node in cr.graph(s.call(np_const, *xs)).nodes}
        assert name in ops, f"{s} records {sorted(o for o in ops if o)}, not {name}"

    _run(SAMPLES[name](kind), check, _GRADCHECK_EXAMPLES[kind])


# -- forward mode against reverse mode -------------------------------------------------------
@pytest.mark.parametrize("name", DIFF)
def test_jvp_agrees_with_vjp(name: str) -> None:
    def check(drawn: tuple[Sample, int]) -> None:
        s, seed = drawn
        rng = np.random.default_rng(seed)
        f = lambda *a: s.call(np_const, *a)
        out, pullback = cr.vjp(f, *s.args)
        u = rng.standard_normal(np.shape(out))
        tangents = [rng.standard_normal(a.shape) for a in s.args]
        if not _forward_mode(name, s):  # forward mode is not provided: it must say so
            with pytest.raises(NotImplementedError, match="forward mode"):
                cr.jvp(f, s.args, tangents)
            return
        out_fwd, t_out = cr.jvp(f, s.args, tangents)
        np.testing.assert_allclose(out_fwd, out, rtol=1e-13, atol=1e-13)
        assert np.shape(t_out) == np.shape(out), f"{s}: tangent shape {np.shape(t_out)}"
        cotangents = pullback(u)
        for g, a in zip(cotangents, s.args):
            assert np.shape(g) == a.shape, f"{s}: cotangent shape {np.shape(g)} for {a.shape}"
        lhs = float(np.sum(u * t_out))  # <u, J t>
        rhs = sum(float(np.sum(g * t)) for g, t in zip(cotangents, tangents))  # <J^T u, t>
        tol = 1e-9 * (1 + np.sum(np.abs(u)) * _scale(t_out, *cotangents))
        assert abs(lhs - rhs) <= tol, f"{s}: <u, J t> = {lhs!r} but <J^T u, t> = {rhs!r}"

    _run(st.tuples(_any_kind(name), SEEDS), check, 20)


# -- second derivatives ----------------------------------------------------------------------
@pytest.mark.parametrize("name", SECOND)
def test_second_derivative_gradcheck(name: str) -> None:
    def check(drawn: tuple[Sample, int]) -> None:
        s, seed = drawn
        forward = _forward_mode(name, s)
        rng = np.random.default_rng(seed)
        w = rng.standard_normal(np.shape(_to_numpy(s.call(np_const, *s.args))))
        v = [rng.standard_normal(a.shape) for a in s.args]
        nums = tuple(range(len(s.args)))
        grad_f = cr.grad(lambda *b: cr.sum(s.call(np_const, *b) * w), argnums=nums)

        def directional(*a: Any) -> Any:  # <grad f(a), v>, differentiated once more
            total: Any = 0.0
            for g, vi in zip(grad_f(*a), v):
                total = total + cr.sum(g * vi)
            return total

        assert cr.gradcheck(directional, *s.args, check_forward=forward)

    _run(st.tuples(_any_kind(name), SEEDS), check, 10)


# -- float32 ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", DIFF)
def test_float32_stays_float32_and_agrees_with_float64(name: str) -> None:
    def run(s: Sample, dtype: type, contiguous: bool, w: np.ndarray) -> tuple[Any, list[Any]]:
        viewed = s.viewed([a.astype(dtype) for a in s.args])  # NumPy views, maybe strided
        if contiguous:
            viewed = [np.array(v, order="C") for v in viewed]
        xs = [cr.Tensor(v, requires_grad=True) for v in viewed]
        out = s.fn(np_const, *xs)
        (out * w.astype(dtype)).sum().backward()
        return out, xs

    def check(drawn: tuple[Sample, int]) -> None:
        s, seed = drawn
        w = np.random.default_rng(seed).standard_normal(
            np.shape(_to_numpy(s.call(np_const, *s.args)))
        )
        out32, xs32 = run(s, np.float32, False, w)
        out64, xs64 = run(s, np.float64, True, w)
        assert out32.dtype == np.float32, f"{s}: float32 inputs gave a {out32.dtype} result"
        scale = _scale(out64.numpy())
        np.testing.assert_allclose(
            out32.numpy(), out64.numpy(), rtol=1e-4, atol=1e-5 * scale, err_msg=repr(s)
        )
        for x32, x64 in zip(xs32, xs64):
            assert x32.grad is not None, f"{s}: no gradient reached a float32 input"
            g32, g64 = x32.grad.numpy(), x64.grad.numpy()
            assert g32.dtype == np.float32, f"{s}: float32 input got a {g32.dtype} gradient"
            assert g32.shape == x32.shape, f"{s}: gradient {g32.shape} for input {x32.shape}"
            np.testing.assert_allclose(
                g32, g64, rtol=1e-3, atol=1e-4 * _scale(g64), err_msg=repr(s)
            )

    _run(st.tuples(_any_kind(name), SEEDS), check, 15)


# -- fast kernels (chainrule/ops/kernels.py): each gives its sheet rule's bits ------------------
FAST = sorted(
    (name, i)
    for name, op in OPS.items()
    for i, (rule, fast) in enumerate(zip(op.vjps, op.fast_vjps))
    if fast is not rule
)
FAST_OPS = sorted({name for name, _ in FAST})


def _bits_equal(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_the_ops_with_fast_kernels() -> None:
    compiled = [("normalize", 0), ("normalize", 1), ("normalize", 2)] if ROUNDING else []
    assert FAST == sorted(
        [("cross_entropy", 0), ("linear", 0), ("linear", 1), ("mean", 0), ("relu", 0)]
        + [("sum", 0)] + compiled
    )  # fmt: skip
    saving = [name for name, op in OPS.items() if op.save is not None]
    assert sorted(saving) == ["cross_entropy"] + (["normalize"] if ROUNDING else [])
    assert ROUNDING <= {"normalize"}


def _close(got: Any, expected: Any) -> bool:
    """A compiled kernel's result against its rule's, to rounding."""
    got, expected = np.asarray(got), np.asarray(expected)
    tol = 2e-4 if expected.dtype == np.float32 else 1e-9
    return (
        got.shape == expected.shape
        and got.dtype == expected.dtype
        and np.allclose(got, expected, rtol=tol, atol=tol, equal_nan=True)
    )


@pytest.mark.parametrize("name", FAST_OPS)
def test_a_fast_kernel_gives_the_bits_of_its_rule(name: str) -> None:
    op = OPS[name]

    def check(drawn: tuple[Sample, int]) -> None:
        s, seed = drawn
        xs = [cr.tensor(a, requires_grad=_is_float(a)) for a in s.args]
        out = s.call(np_const, *xs)
        node = next(n.tensor for n in cr.graph(out).nodes if n.op == name)
        _, inputs, params, *_ = node._node
        given = {k: v for k, v in params.items() if k != SAVED}  # what the sheet's rules take
        raw = [a.data if isinstance(a, cr.Tensor) else a for a in inputs]
        if op.save is not None:
            saved = params[SAVED]  # the node keeps what save() returned
            kept = np.array(saved, copy=True)
            value, again = op.save(np, *raw, **given)
            plain = op.forward(np, *raw, **given)
            if name in ROUNDING:
                assert _close(value, plain), f"{s}: save's value"
            else:
                assert _bits_equal(value, plain), f"{s}: save's value"
            assert _bits_equal(value, node.data) and _bits_equal(again, saved), repr(s)
        g = np.random.default_rng(seed).standard_normal(np.shape(node.data))
        g = g.astype(node.data.dtype)
        for i, (rule, fast) in enumerate(zip(op.vjps, op.fast_vjps)):
            if fast is rule or raw[i] is None:  # (no kernel, or an absent input)
                continue
            with np.errstate(all="ignore"):
                expected = rule(g, node.data, *raw, **given)
                got = [fast(g, node.data, *raw, **params)]  # with the saved value, if any
                if op.save is not None:
                    got.append(fast(g, node.data, *raw, **given))  # and computing it again
            for result in got:
                if name in ROUNDING:
                    assert _close(result, expected), f"{s}: the kernel of input {i}"
                else:
                    assert _bits_equal(result, expected), f"{s}: the kernel of input {i}"
        if op.save is not None:
            assert _bits_equal(np.array(saved, copy=True), kept), f"{s}: a kernel wrote into it"

    _run(st.tuples(_any_kind(name), SEEDS), check, 25)


def test_cross_entropy_s_kernel_gives_its_rule_s_bits_on_nonfinite_rows() -> None:
    op = OPS["cross_entropy"]
    inf = np.inf
    z = np.array([[0.5, -1.0, 2.0], [-inf, -inf, -inf], [inf, 1.0, 0.0], [np.nan, 0.0, 1.0]])
    y = np.array([2, 0, 1, 1])
    for reduction in ("none", "mean", "sum"):
        with np.errstate(all="ignore"):
            value, saved = op.save(np, z, y, reduction=reduction)
            assert _bits_equal(value, op.forward(np, z, y, reduction=reduction))
            g = np.ones_like(value)
            fast = op.fast_vjps[0](g, value, z, y, reduction=reduction, saved=saved)
            slow = op.vjps[0](g, value, z, y, reduction=reduction)
        assert _bits_equal(fast, slow), reduction
        # the finite row's gradient is finite: softmax minus the one-hot target (over N = 4
        # for the mean)
        p = np.exp(z[0] - z[0].max()) / np.exp(z[0] - z[0].max()).sum()
        scale = 0.25 if reduction == "mean" else 1.0
        np.testing.assert_allclose(fast[0], scale * (p - (np.arange(3) == 2)))


def test_kernels_are_attached_well() -> None:
    relu, ce = OPS["relu"], OPS["cross_entropy"]
    before = (relu.fast_vjps, relu.vjp_into, relu.save, ce.fast_vjps, ce.save)
    with pytest.raises(ValueError, match="needs a function save"):
        cr.ops.kernel(relu, save=3, dx=relu.vjps[0])
    with pytest.raises(ValueError, match="the kernels that read what it keeps: dlogits"):
        cr.ops.kernel(ce, save=ce.save)  # a save whose value no kernel reads
    with pytest.raises(ValueError, match="dtargets names no differentiable input"):
        cr.ops.kernel(ce, dtargets=ce.vjps[0])
    with pytest.raises(ValueError, match="dy names no differentiable input"):
        cr.ops.kernel(relu, dy=relu.vjps[0])
    with pytest.raises(ValueError, match="vjp_into is for an op of one differentiable input"):
        cr.ops.kernel(OPS["add"], vjp_into=relu.vjps[0])
    assert (relu.fast_vjps, relu.vjp_into, relu.save, ce.fast_vjps, ce.save) == before


def test_ops_are_declared_well() -> None:
    defop = cr.ops.defop
    with pytest.raises(ValueError, match="no parameter may be called 'saved'"):
        defop("bad_saved", lambda xp, x, saved=None: x, "", family="t", dx=(lambda g, o, x: g, ""))
    with pytest.raises(TypeError, match="dy name no input of its forward; its inputs are x"):
        defop("bad_input", lambda xp, x: x, "", family="t", dy=(lambda g, o, x: g, "d/dy"))
    with pytest.raises(TypeError, match="dx must be a pair"):
        defop("bad_pair", lambda xp, x: x, "", family="t", dx=lambda g, o, x: g)
    with pytest.raises(TypeError, match="must be named, not \\*\\*kw"):
        defop("bad_kw", lambda xp, x, **kw: x, "", family="t")
    with pytest.raises(ValueError, match="declared twice"):
        defop("add", lambda xp, x, y: x + y, "", family="t")
    assert not {"bad_saved", "bad_input", "bad_pair", "bad_kw"} & set(OPS)


def test_the_table_lists_every_numpy_and_scipy_function_that_dispatches() -> None:
    rows = cr.ops.table()
    listed = {n for r in rows for n in r["numpy"]}
    assert set(cr.ops.numpy_functions()) <= listed
    composed = {r["name"]: r for r in rows if r["family"] == "composed"}
    assert {"trace", "sort", "norm", "median", "tensordot", "convolve"} <= set(composed)
    assert composed["trace"]["numpy"] == ("trace",) and composed["trace"]["vjp"]
    assert not composed["argsort"]["vjp"]  # integers: no gradient
    assert not set(composed) & set(OPS)  # a name is an op or composed, never both


def test_every_rule_of_the_sheet_states_the_derivative_it_applies() -> None:
    for op in OPS.values():
        assert len(op.formulas) == len(op.vjps) == len(op.jvps), op.name
        for rule, formula in zip(op.vjps, op.formulas):
            assert bool(formula) == (rule is not None), (op.name, formula)
            assert not formula or formula.startswith("d"), (op.name, formula)
        assert op.formula == ", ".join(f for f in op.formulas if f)


def test_an_entry_of_the_sheet_gives_its_op_everything_it_says() -> None:
    op = cr.ops.defop(
        "_cube_for_test",
        lambda xp, x, y, *, scale=1.0: scale * x * x * x + y,
        "scale x^3 + y.",
        family="test",
        kink="none",
        dx=(lambda g, out, x, y, scale=1.0: g * 3 * scale * x * x, "d f/dx = 3 scale x^2"),
        ty=lambda t, out, x, y, scale=1.0: t,
    )
    try:
        assert op.inputs == ("x", "y") and op.param_names == ("scale",) and op.nin == 2
        assert op.vjps[1] is None and op.jvps[1] is not None  # y: no gradient, but a tangent
        assert op.jvps[0] is NOT_IMPLEMENTED  # not symmetric, no tx: forward mode refuses x
        assert op.formula == "d f/dx = 3 scale x^2" and op.numpy == () and op.family == "test"
        assert op.doc.splitlines() == ["scale x^3 + y.", "", "Derivative: d f/dx = 3 scale x^2",
                                       "At the kink: none"]  # fmt: skip
        x = cr.tensor(np.array([1.0, 2.0]), requires_grad=True)
        op(x, 1.0, scale=2.0).sum().backward()
        assert np.array_equal(x.grad.numpy(), [6.0, 24.0])
    finally:
        del OPS["_cube_for_test"], FUNCTIONS["_cube_for_test"]


# -- closed forms ----------------------------------------------------------------------------
UNARY_CLOSED_FORM = [
    "negative",
    "exp",
    "log",
    "log1p",
    "expm1",
    "sqrt",
    "sin",
    "cos",
    "tan",
    "tanh",
    "erf",
    "abs",
    "sigmoid",
    "relu",
    "leaky_relu",
    "softplus",
    "gelu",
]


@pytest.mark.parametrize("name", UNARY_CLOSED_FORM)
def test_unary_derivative_matches_closed_form(name: str) -> None:
    formula = OPS[name].formula

    def check(s: Sample) -> None:
        assert s.dref is not None
        (x,) = s.values
        expected = s.dref(x)
        g = cr.grad(lambda v: cr.sum(s.fn(np_const, v)))(x)
        np.testing.assert_allclose(
            g, expected, rtol=1e-10, atol=1e-12, err_msg=f"{s}; table: {formula}"
        )
        _, slope = cr.jvp(lambda v: s.fn(np_const, v), (x,), (np.ones_like(x),))
        np.testing.assert_allclose(
            slope, expected, rtol=1e-10, atol=1e-12, err_msg=f"{s} (forward mode); table: {formula}"
        )

    _run(_any_kind(name), check, 15)


BINARY_CLOSED_FORM: dict[str, tuple[Callable[..., Any], Callable[..., Any], float]] = {
    # name: (op, (x, y) -> (d/dx, d/dy), lower bound of x)
    "add": (cr.add, lambda x, y: (np.ones_like(x), np.ones_like(y)), -2.0),
    "subtract": (cr.subtract, lambda x, y: (np.ones_like(x), -np.ones_like(y)), -2.0),
    "multiply": (cr.multiply, lambda x, y: (y, x), -2.0),
    "divide": (cr.divide, lambda x, y: (1 / y, -x / y**2), -2.0),
    "power": (cr.power, lambda x, y: (y * x ** (y - 1), x**y * np.log(x)), 0.3),
    "maximum": (cr.maximum, lambda x, y: ((x > y) * 1.0, (x < y) * 1.0), -2.0),
    "minimum": (cr.minimum, lambda x, y: ((x < y) * 1.0, (x > y) * 1.0), -2.0),
}


@st.composite
def _same_shape_pair(draw: Any, lo: float) -> tuple[np.ndarray, np.ndarray]:
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3))
    elems = st.floats(lo, 2.0, allow_nan=False, allow_subnormal=False)
    x = draw(hnp.arrays(np.float64, shape, elements=elems))
    y = draw(hnp.arrays(np.float64, shape, elements=st.floats(0.3, 2.0)))
    sign = draw(hnp.arrays(np.bool_, shape))
    return np.asarray(x), np.where(sign, y, -y) + 0.0  # |y| >= 0.3: divide is safe


@pytest.mark.parametrize("name", sorted(BINARY_CLOSED_FORM))
def test_binary_derivatives_match_closed_form(name: str) -> None:
    op, partials, lo = BINARY_CLOSED_FORM[name]

    def check(pair: tuple[np.ndarray, np.ndarray]) -> None:
        x, y = pair
        if name in ("maximum", "minimum"):
            y = np.where(np.abs(x - y) < 0.1, x + 0.5, y)  # away from the tie (tested exactly)
        gx, gy = cr.grad(lambda a, b: cr.sum(op(a, b)), argnums=(0, 1))(x, y)
        ex, ey = partials(x, y)
        msg = f"{name} at x={x!r}, y={y!r}; table: {OPS[name].formula}"
        np.testing.assert_allclose(gx, ex, rtol=1e-10, atol=1e-12, err_msg=msg)
        np.testing.assert_allclose(gy, ey, rtol=1e-10, atol=1e-12, err_msg=msg)

    _run(_same_shape_pair(lo), check, 15)


# -- kinks: the table's conventions, exactly at the kink -------------------------------------
# (op, function of the inputs, inputs, the expected gradient of sum(function) per input)
KINK_CASES: list[tuple[str, Callable[..., Any], list[list[Any]], list[list[float]]]] = [
    ("relu", cr.relu, [[0.0, -0.0, 1.0, -1.0]], [[0.0, 0.0, 1.0, 0.0]]),
    ("abs", cr.abs, [[0.0, -0.0, 2.0, -2.0]], [[0.0, 0.0, 1.0, -1.0]]),
    ("leaky_relu", cr.leaky_relu, [[0.0, 1.0, -1.0]], [[0.01, 1.0, 0.01]]),
    (
        "leaky_relu",
        lambda x: cr.leaky_relu(x, negative_slope=0.1),
        [[0.0, 2.0, -2.0]],
        [[0.1, 1.0, 0.1]],
    ),
    ("softplus", cr.softplus, [[0.0]], [[0.5]]),
    ("maximum", cr.maximum, [[1.0, 2.0, 3.0], [1.0, 1.0, 4.0]], [[0.5, 1.0, 0.0], [0.5, 0.0, 1.0]]),
    ("maximum", lambda x: cr.maximum(x, 1.0), [[1.0, 0.0, 2.0]], [[0.5, 0.0, 1.0]]),
    ("maximum", lambda x: cr.maximum(x, x), [[0.0, -1.0]], [[1.0, 1.0]]),
    ("minimum", cr.minimum, [[1.0, 2.0, 3.0], [1.0, 1.0, 4.0]], [[0.5, 0.0, 1.0], [0.5, 1.0, 0.0]]),
    ("minimum", lambda x: cr.minimum(x, 1.0), [[1.0, 0.0, 2.0]], [[0.5, 1.0, 0.0]]),
    ("max", cr.max, [[1.0, 3.0, 3.0, 3.0, 0.0]], [[0.0, 1 / 3, 1 / 3, 1 / 3, 0.0]]),
    ("max", lambda x: cr.max(x, axis=1), [[[2.0, 2.0], [1.0, 5.0]]], [[[0.5, 0.5], [0.0, 1.0]]]),
    (
        "max",
        lambda x: cr.max(x, axis=0, keepdims=True),
        [[[2.0, 1.0], [2.0, 5.0]]],
        [[[0.5, 0.0], [0.5, 1.0]]],
    ),
    ("min", cr.min, [[1.0, 0.0, 0.0, 2.0]], [[0.0, 0.5, 0.5, 0.0]]),
    (
        "min",
        lambda x: cr.min(x, axis=-1),
        [[[4.0, 4.0, 4.0], [1.0, 0.0, 3.0]]],
        [[[1 / 3, 1 / 3, 1 / 3], [0.0, 1.0, 0.0]]],
    ),
    (
        "clip",
        lambda x: cr.clip(x, -1.0, 1.0),
        [[-1.0, 1.0, 0.0, -2.0, 2.0]],
        [[1.0, 1.0, 1.0, 0.0, 0.0]],
    ),
    ("clip", lambda x: cr.clip(x, min=-1.0), [[-1.0, -2.0, 5.0]], [[1.0, 0.0, 1.0]]),
    ("clip", lambda x: cr.clip(x, max=1.0), [[1.0, 2.0, -5.0]], [[1.0, 0.0, 1.0]]),
    # d(x^y)/dy at x = 0 is 0 (and d(x^y)/dx = y x^(y-1) = 0 there for y = 2)
    ("power", cr.power, [[0.0, 2.0], [2.0, 3.0]], [[0.0, 12.0], [0.0, 8.0 * math.log(2.0)]]),
    ("sqrt", cr.sqrt, [[0.0, 4.0]], [[math.inf, 0.25]]),
    # d(x^0)/dx = 0, at x = 0 too, with the exponent a number or an array
    ("power", lambda x: x**0, [[0.0, 2.0, -1.0]], [[0.0, 0.0, 0.0]]),
    ("power", cr.power, [[0.0, 3.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, math.log(3.0)]]),
    # std of a constant slice: gradient 0 (the other slice: (x - mean) / (n std))
    (
        "std",
        lambda x: cr.std(x, axis=1),
        [[[2.0, 2.0], [1.0, 3.0]]],
        [[[0.0, 0.0], [-0.5, 0.5]]],
    ),
    ("std", cr.std, [[5.0]], [[0.0]]),
    ("cbrt", cr.cbrt, [[0.0, 8.0]], [[math.inf, 1 / 12]]),
    ("arctan2", cr.arctan2, [[0.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, -1.0]]),
    ("hypot", cr.hypot, [[0.0, 3.0], [0.0, 4.0]], [[0.0, 0.6], [0.0, 0.8]]),
    (
        "copysign",
        cr.copysign,
        [[0.0, 2.0, -2.0], [-1.0, -1.0, 1.0]],
        [[0.0, -1.0, -1.0], [0.0, 0.0, 0.0]],
    ),  # fmt: skip
    ("fmod", cr.fmod, [[4.0, -3.0], [2.0, 2.0]], [[1.0, 1.0], [-2.0, 1.0]]),
    ("remainder", cr.remainder, [[4.0, -3.0], [2.0, 2.0]], [[1.0, 1.0], [-2.0, 2.0]]),
    ("floor", cr.floor, [[1.0, -1.0, 0.5]], [[0.0, 0.0, 0.0]]),
    ("ceil", cr.ceil, [[1.0, -1.0, 0.5]], [[0.0, 0.0, 0.0]]),
    ("trunc", cr.trunc, [[1.0, -1.0, 0.5]], [[0.0, 0.0, 0.0]]),
    ("round", cr.round, [[0.5, 1.5, -2.5]], [[0.0, 0.0, 0.0]]),
    # the product of the other factors, also where some are 0
    ("prod", cr.prod, [[2.0, 0.0, 3.0]], [[0.0, 6.0, 0.0]]),
    ("prod", cr.prod, [[0.0, 0.0, 3.0]], [[0.0, 0.0, 0.0]]),
    # x log y and its kin are 0 where x = 0, whatever y is: no slope with respect to y there
    (
        "xlogy",
        cr.special.xlogy,
        [[0.0, 2.0], [0.0, 3.0]],
        [[-math.inf, math.log(3.0)], [0.0, 2 / 3]],
    ),
    (
        "xlog1py",
        cr.special.xlog1py,
        [[0.0, 2.0], [-1.0, 1.0]],
        [[-math.inf, math.log(2.0)], [0.0, 1.0]],
    ),  # fmt: skip
    ("i1", cr.special.i1, [[0.0]], [[0.5]]),
    ("floor_divide", cr.floor_divide, [[4.0, -3.0], [2.0, 2.0]], [[0.0, 0.0], [0.0, 0.0]]),
]


def test_every_declared_kink_has_an_exact_test() -> None:
    declared = {n for n, op in OPS.items() if op.kink}
    tested = {case[0] for case in KINK_CASES} | {"logsumexp"}  # logsumexp: test below
    assert declared <= tested, f"kink conventions without an exact test: {declared - tested}"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", KINK_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(KINK_CASES)])
def test_kink_convention_is_exact(case: Any, dtype: str) -> None:
    name, fn, inputs, expected = case
    arrays = [np.array(v, dtype=dtype) for v in inputs]
    xs = [cr.tensor(a, requires_grad=True) for a in arrays]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # sqrt'(0) = 1/0 = inf, as declared
        cr.sum(fn(*xs)).backward()
        for x, e in zip(xs, expected):
            assert x.grad.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(
                x.grad.numpy(),
                np.array(e, dtype=dtype),
                err_msg=f"{name}: table says {OPS[name].kink!r}",
            )
        # forward mode uses the same convention: <grad, t> for a tangent t on every input
        tangents = [np.arange(1, a.size + 1, dtype=dtype).reshape(a.shape) for a in arrays]
        _, slope = cr.jvp(lambda *a: cr.sum(fn(*a)), arrays, tangents)
        want = sum(np.sum(np.array(e, dtype=np.float64) * t) for e, t in zip(expected, tangents))
    np.testing.assert_allclose(
        float(slope), want, rtol=1e-6, err_msg=f"{name} (forward mode): {OPS[name].kink!r}"
    )


# -- numerically stable forms ----------------------------------------------------------------
def _softmax_vjp(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    s = sp.softmax(x, axis=-1)
    return s * (w - np.sum(w * s, axis=-1, keepdims=True))


STABLE: dict[str, tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]] = {
    # name: (chainrule function, reference value, reference gradient of sum(f(x) * w))
    "sigmoid": (cr.sigmoid, sp.expit, lambda x, w: w * sp.expit(x) * sp.expit(-x)),
    "softplus": (cr.softplus, lambda x: np.logaddexp(0.0, x), lambda x, w: w * sp.expit(x)),
    "logsumexp": (
        lambda x: cr.logsumexp(x, axis=-1),
        lambda x: sp.logsumexp(x, axis=-1),
        lambda x, w: w[..., None] * sp.softmax(x, axis=-1),
    ),
    "softmax": (cr.softmax, lambda x: sp.softmax(x, axis=-1), _softmax_vjp),
    "log_softmax": (
        cr.log_softmax,
        lambda x: sp.log_softmax(x, axis=-1),
        lambda x, w: w - sp.softmax(x, axis=-1) * np.sum(w, axis=-1, keepdims=True),
    ),
}
_BIG = st.one_of(
    st.sampled_from([-1e4, -1e3, -100.0, -30.0, -1.0, 0.0, 1.0, 30.0, 100.0, 1e3, 1e4]),
    st.floats(-1e4, 1e4, allow_nan=False, allow_subnormal=False),
)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(STABLE))
def test_stable_forms_finite_for_large_inputs(name: str, dtype: str) -> None:
    fn, ref, ref_grad = STABLE[name]
    tol = {"float64": 1e-10, "float32": 2e-5}[dtype]

    def check(drawn: tuple[np.ndarray, int]) -> None:
        x_np, seed = drawn
        x_np = x_np.astype(dtype)
        x = cr.tensor(x_np, requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # no overflow on the way
            y = fn(x)
            w = np.random.default_rng(seed).standard_normal(y.shape).astype(dtype)
            (y * w).sum().backward()
        value, grad = y.numpy(), x.grad.numpy()
        assert value.dtype == np.dtype(dtype) and grad.dtype == np.dtype(dtype)
        assert np.all(np.isfinite(value)), f"{name}({x_np!r}) = {value!r}"
        assert np.all(np.isfinite(grad)), f"gradient of {name} at {x_np!r} is {grad!r}"
        x64 = x_np.astype(np.float64)
        np.testing.assert_allclose(value, ref(x64), rtol=tol, atol=tol * _scale(ref(x64)))
        want = ref_grad(x64, w.astype(np.float64))
        np.testing.assert_allclose(grad, want, rtol=10 * tol, atol=10 * tol * _scale(want))

    shapes = hnp.array_shapes(min_dims=1, max_dims=2, max_side=4)
    extremes = [
        (np.array([-1e4, -1e4]), 0),
        (np.array([1e4, 1e4, -1e4]), 1),
        (np.array([[1e4, 0.0], [-1e4, 1e4], [-1e4, -1e4 + 1.0]]), 2),
    ]
    _run(st.tuples(hnp.arrays(np.float64, shapes, elements=_BIG), SEEDS), check, 20, extremes)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_logsumexp_of_all_minus_inf(dtype: str) -> None:
    x = cr.tensor(np.full(3, -np.inf, dtype=dtype), requires_grad=True)
    y = cr.logsumexp(x)
    y.backward()
    assert y.item() == -np.inf
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros(3, dtype=dtype))
    # one slice all -inf, one finite: -inf and 0 there, the softmax elsewhere
    rows = np.array([[-np.inf, -np.inf, -np.inf], [0.0, 1.0, 2.0]], dtype=dtype)
    x = cr.tensor(rows, requires_grad=True)
    y = cr.logsumexp(x, axis=1, keepdims=True)
    y.sum().backward()
    assert y.shape == (2, 1) and y.numpy()[0, 0] == -np.inf
    np.testing.assert_allclose(y.numpy()[1, 0], sp.logsumexp(rows[1].astype(np.float64)), rtol=1e-6)
    np.testing.assert_array_equal(x.grad.numpy()[0], np.zeros(3, dtype=dtype))
    np.testing.assert_allclose(x.grad.numpy()[1], sp.softmax(rows[1].astype(np.float64)), rtol=1e-6)
    assert x.grad.dtype == np.dtype(dtype)
    # forward mode: a tangent on an all -inf slice moves nothing
    _, t = cr.jvp(lambda v: cr.logsumexp(v, axis=1), (rows,), (np.ones_like(rows),))
    np.testing.assert_allclose(t, [0.0, 1.0], rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_softmax_with_masked_entries_is_finite(dtype: str) -> None:
    x = cr.tensor(
        np.array([[0.0, -np.inf, 1.0], [2.0, 2.0, -np.inf]], dtype=dtype), requires_grad=True
    )
    y = cr.softmax(x, axis=-1)
    (y * np.array([[1.0, 2.0, 3.0], [1.0, -1.0, 5.0]], dtype=dtype)).sum().backward()
    assert y.numpy()[0, 1] == 0.0 and y.numpy()[1, 2] == 0.0
    np.testing.assert_allclose(y.numpy().sum(axis=-1), 1.0, rtol=1e-6)
    assert np.all(np.isfinite(x.grad.numpy())), x.grad


# -- indexing: repeated indices add -----------------------------------------------------------
def test_getitem_with_repeated_indices_scatter_adds() -> None:
    x = cr.tensor(np.arange(4.0), requires_grad=True)
    (x[[0, 0, 2]].sum() + x[np.array([3, 3, 3])].sum()).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 0.0, 1.0, 3.0])
    m = cr.tensor(np.zeros((3, 2)), requires_grad=True)
    (m[np.array([1, 1, 0]), np.array([0, 0, 1])] * np.array([1.0, 2.0, 4.0])).sum().backward()
    np.testing.assert_array_equal(m.grad.numpy(), [[0.0, 4.0], [3.0, 0.0], [0.0, 0.0]])


def test_scatter_add_accumulates_repeats_and_reads_back() -> None:
    v = cr.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    out = cr.ops.scatter_add(v, index=(np.array([0, 0, 2]),), shape=(4,))
    np.testing.assert_array_equal(out.numpy(), [3.0, 0.0, 3.0, 0.0])
    (out * np.array([10.0, 20.0, 30.0, 40.0])).sum().backward()
    np.testing.assert_array_equal(v.grad.numpy(), [10.0, 10.0, 30.0])


# -- dtypes ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("src", "dst"), [("float32", "float64"), ("float64", "float32")])
def test_astype_gradient_comes_back_in_the_input_dtype(src: str, dst: str) -> None:
    x = cr.tensor(np.array([1.0, -2.0], dtype=src), requires_grad=True)
    y = cr.astype(x, dst)
    assert y.dtype == np.dtype(dst)
    (y * y).sum().backward()
    assert x.grad.dtype == np.dtype(src)
    np.testing.assert_allclose(x.grad.numpy(), [2.0, -4.0])


# -- non-differentiable ops ------------------------------------------------------------------
@pytest.mark.parametrize("name", NONDIFF)
def test_nondifferentiable_ops_record_nothing(name: str) -> None:
    def check(s: Sample) -> None:
        xs = [cr.tensor(a, requires_grad=_is_float(a)) for a in s.args]
        out = s.call(np_const, *xs)
        assert isinstance(out, cr.Tensor)
        assert out.requires_grad is False and out.is_leaf, f"{s}: the result was recorded"
        ref = np.asarray(s.ref(*s.values))
        assert out.dtype.kind == ref.dtype.kind, f"{s}: dtype {out.dtype}"
        np.testing.assert_array_equal(out.numpy(), ref, err_msg=repr(s))

    _run(_any_kind(name), check, 15)


@pytest.mark.parametrize(
    ("name", "fn", "ref"),
    [
        ("logical_and", lambda x, y: cr.logical_and(x, y), np.logical_and),
        ("logical_or", lambda x, y: cr.logical_or(x, y), np.logical_or),
        ("logical_not", lambda x, y: cr.logical_not(x), lambda x, y: np.logical_not(x)),
        ("all", lambda x, y: cr.all(x, axis=0), lambda x, y: np.all(x, axis=0)),
        ("any", lambda x, y: cr.any(y), lambda x, y: np.any(y)),
        ("sign", lambda x, y: cr.sign(x), lambda x, y: np.sign(x)),
        ("argmax", lambda x, y: cr.argmax(y, axis=1), lambda x, y: np.argmax(y, axis=1)),
    ],
)
def test_predicates_of_float_tensors_that_require_grad_record_nothing(
    name: str, fn: Any, ref: Any
) -> None:
    a = np.array([[0.0, 1.5, -2.0], [0.0, 0.0, 3.0]])
    b = np.array([[1.0, 0.0, 0.0], [2.0, 0.0, -1.0]])
    x, y = cr.tensor(a, requires_grad=True), cr.tensor(b, requires_grad=True)
    out = fn(x, y)
    assert out.requires_grad is False and out.is_leaf
    np.testing.assert_array_equal(out.numpy(), ref(a, b))


# -- array-api-strict ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_op_runs_under_array_api_strict(name: str) -> None:
    differentiable = OPS[name].differentiable

    def run(s: Sample, convert: Callable[[Any], Any], c: Callable[[Any], Any], w: Any):
        xs = [cr.tensor(convert(a), requires_grad=_is_float(a)) for a in s.args]
        out = s.call(c, *xs)
        if differentiable:
            (out * convert(w)).sum().backward()
        return out, xs

    def check(drawn: tuple[Sample, int]) -> None:
        s, seed = drawn
        out_shape = np.shape(_to_numpy(s.call(np_const, *s.args)))
        w = np.random.default_rng(seed).standard_normal(out_shape)
        out_np, xs_np = run(s, np_const, np_const, w)
        if name in VMAP_EDGES:  # batches are NumPy's (its dispatch protocols): a clear refusal
            with pytest.raises(TypeError, match="vmap.*array_api_strict"):
                run(s, _strict, _strict, w)
            return
        out_st, xs_st = run(s, _strict, _strict, w)
        assert isinstance(out_st.data, STRICT_ARRAY), (
            f"{s}: result is {type(out_st.data).__name__}, not an array_api_strict array"
        )
        got, want = _to_numpy(out_st), out_np.numpy()
        assert got.shape == want.shape and got.dtype == want.dtype, (s, got.dtype, want.dtype)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=repr(s))
        if not differentiable:
            return
        for x_st, x_np in zip(xs_st, xs_np):
            assert isinstance(x_st.grad.data, STRICT_ARRAY), (
                f"{s}: gradient is {type(x_st.grad.data).__name__}, not array_api_strict"
            )
            np.testing.assert_allclose(
                _to_numpy(x_st.grad), x_np.grad.numpy(), rtol=1e-12, atol=1e-12, err_msg=repr(s)
            )

    _run(st.tuples(_any_kind(name), SEEDS), check, 10)


# -- Dask and CuPy -----------------------------------------------------------------------------
def _dask(a: Any) -> Any:
    """A NumPy array as a Dask array of several chunks (about half of each axis a chunk)."""
    import dask.array as da

    if isinstance(a, np.ndarray) and a.ndim:
        return da.from_array(a, chunks=tuple(max(1, n // 2) for n in a.shape))
    return a


def _cupy_or_skip() -> Any:
    """CuPy, where it imports and sees a GPU; else the test is skipped."""
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("CuPy sees no GPU")
    except Exception as err:  # (no driver, no CUDA)
        pytest.skip(f"CuPy cannot use a GPU here: {err}")
    return cupy


class _Computed(AssertionError):
    pass


def _refuse_compute(*args: Any, **kwargs: Any) -> Any:
    raise _Computed("a Dask array was computed while the graph was built or differentiated")


@pytest.mark.parametrize("backend", ["dask", "cupy"])
@pytest.mark.parametrize("name", ALL)
def test_op_runs_on_other_backends(name: str, backend: str) -> None:
    # every op on multi-chunk Dask arrays (or CuPy's, on a GPU): a result of that backend,
    # the value and every gradient equal to NumPy's (1e-12 on Dask, which runs NumPy's code
    # on each block; 1e-10 on a GPU, whose libm rounds its own way); on Dask, nothing is
    # computed while the graph is built and differentiated (what Dask lacks is filled in
    # chainrule/backends/gaps.py)
    if backend == "dask":
        pytest.importorskip("dask.array")
        import dask

        array_type, convert, tol = dask.array.Array, _dask, 1e-12

        def lazy() -> Any:  # (dask.config.set takes effect when made, not when entered)
            return dask.config.set(scheduler=_refuse_compute)

    else:
        cupy = _cupy_or_skip()
        array_type, tol = cupy.ndarray, 1e-10

        def convert(a: Any) -> Any:
            return cupy.asarray(a) if isinstance(a, np.ndarray) else a

        lazy = contextlib.nullcontext
    differentiable = OPS[name].differentiable

    def run(s: Sample, convert: Callable[[Any], Any], w: Any) -> tuple[Any, list[Any]]:
        xs = [cr.tensor(convert(a), requires_grad=_is_float(a)) for a in s.args]
        out = s.call(np_const, *xs)
        if differentiable:
            (out * convert(w)).sum().backward()
        return out, xs

    def check(drawn: tuple[Sample, int]) -> None:
        s, seed = drawn
        w = np.random.default_rng(seed).standard_normal(
            np.shape(_to_numpy(s.call(np_const, *s.args)))
        )
        out_np, xs_np = run(s, np_const, w)
        if name in VMAP_EDGES:  # batches are NumPy's: a clear refusal
            with pytest.raises(TypeError, match=f"vmap.*{backend}"):
                run(s, convert, w)
            return
        with lazy():  # (on Dask: forward and backward stay lazy)
            out_b, xs_b = run(s, convert, w)
        if any(isinstance(a, np.ndarray) and a.ndim for a in s.args):
            assert isinstance(out_b._data, array_type), f"{s}: {type(out_b._data).__name__}"
        got = _to_numpy(out_b)
        assert got.shape == out_np.shape and got.dtype == out_np.dtype, (s, got.dtype)
        np.testing.assert_allclose(got, out_np.numpy(), rtol=tol, atol=tol, err_msg=repr(s))
        for x_b, x_np in zip(xs_b, xs_np):
            if x_np.grad is not None:
                np.testing.assert_allclose(
                    _to_numpy(x_b.grad), x_np.grad.numpy(), rtol=tol, atol=tol, err_msg=repr(s)
                )

    _run(st.tuples(_any_kind(name), SEEDS), check, 4)


@pytest.mark.parametrize("reduce", ["sum", "mean", "var", "max"])
def test_reduction_gradient_on_dask_is_blocked_like_its_input(reduce: str) -> None:
    # the gradient of a reduction over many rows comes back in the input's blocks, each its
    # own task: not one (n, 1) block cut up afterwards (O(n) memory on one worker)
    da = pytest.importorskip("dask.array")
    import dask

    a = np.random.default_rng(0).standard_normal((4000, 3))
    x = cr.tensor(da.from_array(a, chunks=(500, 3)), requires_grad=True)
    with dask.config.set(scheduler=_refuse_compute):
        getattr(cr, reduce)(x).backward()
    grad = x.grad._data
    assert grad.chunks == ((500,) * 8, (3,))
    layers = grad.__dask_graph__().layers
    assert not [name for name in layers if name.startswith("rechunk")], list(layers)
    want = cr.tensor(a, requires_grad=True)
    getattr(cr, reduce)(want).backward()
    np.testing.assert_allclose(np.asarray(grad), want.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduce", ["sum", "mean", "var", "max"])
def test_reduction_gradient_on_dask_meets_a_gradient_blocked_otherwise(reduce: str) -> None:
    # the gradient arriving at a reduction along axis 0 is blocked along the kept axis unlike
    # the input: broadcast back, it is reblocked as the input is
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(1)
    a, w = rng.standard_normal((3, 3)), rng.standard_normal(3)
    x = cr.tensor(da.from_array(a, chunks=((1, 1, 1), (2, 1))), requires_grad=True)
    (getattr(cr, reduce)(x, axis=0) * da.from_array(w, chunks=1)).sum().backward()
    assert x.grad._data.chunks == ((1, 1, 1), (2, 1))
    want = cr.tensor(a, requires_grad=True)
    (getattr(cr, reduce)(want, axis=0) * w).sum().backward()
    np.testing.assert_allclose(np.asarray(x.grad._data), want.grad.numpy(), rtol=1e-12)


def test_importing_chainrule_imports_neither_dask_nor_cupy() -> None:
    code = "import sys, chainrule; print(sorted({'dask', 'cupy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


@pytest.mark.parametrize("name", DIFF)
def test_jvp_runs_under_array_api_strict(name: str) -> None:
    def check(drawn: tuple[Sample, int]) -> None:
        s, seed = drawn
        if not _forward_mode(name, s):  # no forward mode here (tested in test_jvp_agrees_...)
            return
        rng = np.random.default_rng(seed)
        tangents = [rng.standard_normal(a.shape) for a in s.args]
        out_np, t_np = cr.jvp(lambda *a: s.call(np_const, *a), s.args, tangents)
        if name in VMAP_EDGES:  # see test_op_runs_under_array_api_strict
            with pytest.raises(TypeError, match="vmap.*array_api_strict"):
                cr.jvp(
                    lambda *a: s.call(_strict, *a),
                    [xps.asarray(a) for a in s.args],
                    [xps.asarray(t) for t in tangents],
                )
            return
        out_st, t_st = cr.jvp(
            lambda *a: s.call(_strict, *a),
            [xps.asarray(a) for a in s.args],
            [xps.asarray(t) for t in tangents],
        )
        for got, want in ((out_st, out_np), (t_st, t_np)):
            assert isinstance(got, STRICT_ARRAY), f"{s}: {type(got).__name__} from cr.jvp"
            np.testing.assert_allclose(
                _to_numpy(got), want, rtol=1e-12, atol=1e-12, err_msg=repr(s)
            )

    _run(st.tuples(_any_kind(name), SEEDS), check, 8)


# -- custom Function: forward mode -----------------------------------------------------------
def test_function_jvp_gets_zero_tangents_for_inputs_without_one() -> None:
    # Function.jvp's docstring: "one tangent per input (zeros for inputs without one)"
    seen: list[tuple[Any, ...]] = []

    class Scale(cr.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, w: Any) -> Any:
            ctx.save_for_backward(x, w)
            return x * w

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            x, w = ctx.saved_tensors
            return grad * w, grad * x

        @staticmethod
        def jvp(ctx: Any, x_dot: Any, w_dot: Any) -> Any:
            seen.append((x_dot, w_dot))
            x, w = ctx.saved_tensors
            return x_dot * w if w_dot is None else x_dot * w + x * w_dot

    w = np.array([2.0, 3.0])
    _, slope = cr.jvp(lambda x: Scale.apply(x, w), (np.array([1.0, 1.0]),), (np.ones(2),))
    ((x_dot, w_dot),) = seen
    np.testing.assert_array_equal(_to_numpy(x_dot), [1.0, 1.0])
    assert w_dot is not None, "the tangent of an input without one should be zeros, not None"
    np.testing.assert_array_equal(_to_numpy(w_dot), [0.0, 0.0])
    np.testing.assert_array_equal(slope, w)


@settings(max_examples=200, deadline=None)
@given(
    x=hnp.arrays(
        st.sampled_from([np.float32, np.float64]),
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
        elements=st.floats(width=32),  # NaN, inf and overflowing sums included
    ),
    keepdims=st.booleans(),
    data=st.data(),
)
def test_mean_is_numpy_mean_bit_for_bit(x: np.ndarray, keepdims: bool, data: Any) -> None:
    # cr.mean computes float32/float64 means as a sum and a division, without np.mean's
    # Python dispatch: the same bits, type and dtype as np.mean, for every axis choice
    axes = [None] + list(range(-x.ndim, x.ndim)) + ([(0, x.ndim - 1)] if x.ndim > 1 else [])
    axis = data.draw(st.sampled_from(axes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of an empty slice
        got = cr.mean(x, axis=axis, keepdims=keepdims)
        want = np.mean(x, axis=axis, keepdims=keepdims)
    assert type(got) is type(want)
    assert got.dtype == want.dtype and np.shape(got) == np.shape(want)
    assert np.array_equal(got, want, equal_nan=True)


@settings(max_examples=200, deadline=None, database=None)
@given(
    dtype=st.sampled_from(["float16", "float32", "float64", "complex64", "complex128"]),
    value=st.floats(allow_nan=True, allow_infinity=True, width=16),
    count=st.one_of(st.integers(1, 5000), st.integers(2**24 - 3, 2**24 + 3), st.just(3**25)),
)
def test_a_0d_gradient_divided_as_a_scalar_gives_the_bits_of_the_array_division(
    dtype, value, count
):
    # mean's and cross-entropy's kernels divide the 0-d gradient of a loss as a NumPy scalar
    # (g[()]), where their rules divide the array; NumPy must give the same bits, counts beyond
    # float32's exact integers included
    g = np.asarray(value, dtype=dtype)
    with np.errstate(all="ignore"):
        fast, slow = g[()] / count, g / count
    assert type(g[()]) is np.dtype(dtype).type
    assert np.asarray(fast).dtype == np.asarray(slow).dtype
    assert np.asarray(fast).tobytes() == np.asarray(slow).tobytes()
