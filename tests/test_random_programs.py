"""Random NumPy programs, built from the whole table, against float64 finite differences.

Hypothesis writes a program of 2 to 8 steps over 3 x 3 arrays: each step applies a NumPy
function (or one of chainrule's, where NumPy has none) to earlier values, chosen from the
elementwise, reduction, scan, shape, product and linear-algebra families. Functions with a
restricted domain are composed with a map into it (log(1 + x^2)); functions with kinks or
ties (abs, max, sort) are left out, since finite differences cannot judge them. The whole
program is then checked in reverse and forward mode by ``cr.gradcheck`` and, once, through
``cr.vmap`` against a loop.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chainrule as cr

_SCALE = float(os.environ.get("OP_TESTS_SCALE", "1"))
EYE = np.eye(3)


def _pos(x: Any) -> Any:
    """A map into (1, inf): 1 + x^2."""
    return 1.0 + x * x


def _unit(x: Any) -> Any:
    """A map into (-0.9, 0.9)."""
    return 0.9 * np.tanh(x)


def _spd(x: Any) -> Any:
    """A symmetric positive definite matrix from any square one."""
    return x @ np.swapaxes(x, -1, -2) + 3.0 * EYE


UNARY: dict[str, Callable[[Any], Any]] = {
    "sin": np.sin,
    "cos": np.cos,
    "tanh": np.tanh,
    "arctan": np.arctan,
    "arcsinh": np.arcsinh,
    "sinh(tanh)": lambda x: np.sinh(np.tanh(x)),
    "exp(tanh)": lambda x: np.exp(np.tanh(x)),
    "exp2(tanh)": lambda x: np.exp2(np.tanh(x)),
    "expm1(tanh)": lambda x: np.expm1(np.tanh(x)),
    "log(pos)": lambda x: np.log(_pos(x)),
    "log2(pos)": lambda x: np.log2(_pos(x)),
    "log10(pos)": lambda x: np.log10(_pos(x)),
    "log1p(x^2)": lambda x: np.log1p(x * x),
    "sqrt(pos)": lambda x: np.sqrt(_pos(x)),
    "cbrt(pos)": lambda x: np.cbrt(_pos(x)),
    "reciprocal(pos)": lambda x: np.reciprocal(_pos(x)),
    "arcsin(unit)": lambda x: np.arcsin(_unit(x)),
    "arccos(unit)": lambda x: np.arccos(_unit(x)),
    "arctanh(unit)": lambda x: np.arctanh(_unit(x)),
    "arccosh(1 + pos)": lambda x: np.arccosh(1.0 + _pos(x)),
    "square": np.square,
    "negative": np.negative,
    "sinc": np.sinc,
    "deg2rad": np.deg2rad,
    "sigmoid": cr.sigmoid,
    "softplus": cr.softplus,
    "gelu": cr.gelu,
    "erf": cr.special.erf,
    "erfc": cr.special.erfc,
    "gammaln(pos)": lambda x: cr.special.gammaln(_pos(x)),
    "digamma(pos)": lambda x: cr.special.digamma(_pos(x)),
    "logit(sigmoid)": lambda x: cr.special.logit(0.05 + 0.9 * cr.sigmoid(x)),
    "ndtr": cr.special.ndtr,
    "log_ndtr": cr.special.log_ndtr,
    "i0": cr.special.i0,
    "i1": cr.special.i1,
    # along an axis, shape kept
    "cumsum": lambda x: np.cumsum(x, axis=1),
    "cumprod": lambda x: np.cumprod(x, axis=0),
    "softmax": lambda x: cr.softmax(x, axis=0),
    "log_softmax": lambda x: cr.log_softmax(x, axis=1),
    "flip": lambda x: np.flip(x, axis=0),
    "roll": lambda x: np.roll(x, 1, axis=1),
    "transpose": np.transpose,
    "rot90": np.rot90,
    "tril+triu": lambda x: np.tril(x) + 0.5 * np.triu(x, 1),
    "reshape": lambda x: np.reshape(np.reshape(x, (9,))[::-1], (3, 3)),
    "diff(pad)": lambda x: np.diff(np.pad(x, ((0, 0), (1, 0)), mode="edge"), axis=1),
    "tile slice": lambda x: np.tile(x, (1, 2))[:, 1:4],
    "repeat slice": lambda x: np.repeat(x, 2, axis=0)[::2],
    # reductions, broadcast back
    "sum": lambda x: np.sum(x, axis=0, keepdims=True) + 0 * x,
    "mean": lambda x: np.mean(x, axis=1, keepdims=True) + x,
    "prod": lambda x: np.prod(x, axis=1, keepdims=True) * x,
    "var": lambda x: np.var(x, axis=0, keepdims=True) + x,
    "std(pos)": lambda x: np.std(_pos(x), axis=1, keepdims=True) * x,
    "logsumexp": lambda x: cr.special.logsumexp(x, axis=0, keepdims=True) - x,
    "norm": lambda x: np.linalg.norm(_pos(x), axis=1, keepdims=True) * x,
    "trace": lambda x: np.trace(x) * x,
    # linear algebra
    "matmul self": lambda x: x @ x / 3.0,
    "inv(spd)": lambda x: np.linalg.inv(_spd(x)),
    "det(spd)": lambda x: np.log(np.linalg.det(_spd(x))) * x,
    "slogdet(spd)": lambda x: cr.linalg.slogdet(_spd(x))[1] + x,
    "cholesky(spd)": lambda x: np.linalg.cholesky(_spd(x)),
    "eigvalsh(spd)": lambda x: np.linalg.eigvalsh(_spd(x))[:, None] * x,
    "pinv": lambda x: np.linalg.pinv(x + 3.0 * EYE),
    "matrix_power": lambda x: np.linalg.matrix_power(x / 3.0, 3),
    "diagonal": lambda x: np.diagonal(x)[None, :] * x,
}

BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "add": np.add,
    "subtract": np.subtract,
    "multiply": np.multiply,
    "divide(pos)": lambda x, y: np.divide(x, _pos(y)),
    "power(pos)": lambda x, y: np.power(_pos(x), np.sin(y)),
    "arctan2(pos)": lambda x, y: np.arctan2(x, _pos(y)),
    "hypot(pos)": lambda x, y: np.hypot(x, _pos(y)),
    "logaddexp": np.logaddexp,
    "logaddexp2": np.logaddexp2,
    "xlogy(pos)": lambda x, y: cr.special.xlogy(x, _pos(y)),
    "where": lambda x, y: np.where(EYE > 0, x, y),
    "matmul": lambda x, y: x @ y / 3.0,
    "solve(spd)": lambda x, y: np.linalg.solve(_spd(x), y),
    "einsum": lambda x, y: np.einsum("ij,kj->ik", x, y) / 3.0,
    "kron slice": lambda x, y: np.kron(x[:1, :], y[:, :1])[:, :3],
    "outer": lambda x, y: np.outer(x[0], y[:, 1]),
    "stack sum": lambda x, y: np.sum(np.stack([x, y], axis=-1), axis=-1),
    "concatenate slice": lambda x, y: np.concatenate([x, y], axis=1)[:, 2:5],
    "cross": lambda x, y: np.cross(x, y),
    "tensordot": lambda x, y: np.tensordot(x, y, axes=([1], [1])) / 3.0,
}


@st.composite
def programs(draw: Any) -> tuple[list[tuple[str, tuple[int, ...]]], int]:
    inputs = draw(st.integers(1, 3))
    steps = []
    for k in range(draw(st.integers(2, 8))):
        have = inputs + k
        if draw(st.booleans()):
            name = draw(st.sampled_from(sorted(UNARY)))
            steps.append((name, (draw(st.integers(0, have - 1)),)))
        else:
            name = draw(st.sampled_from(sorted(BINARY)))
            steps.append((name, (draw(st.integers(0, have - 1)), draw(st.integers(0, have - 1)))))
    return steps, inputs


def _run(steps: list[tuple[str, tuple[int, ...]]], *xs: Any) -> Any:
    values = list(xs)
    for name, args in steps:
        fn = UNARY.get(name) or BINARY[name]
        values.append(fn(*(values[i] for i in args)))
    return values[-1]


def _describe(steps: list[tuple[str, tuple[int, ...]]], inputs: int) -> str:
    names = [f"x{i}" for i in range(inputs)]
    for name, args in steps:
        names.append(f"{name}({', '.join(names[i] for i in args)})")
    return names[-1]


@settings(
    max_examples=max(1, round(150 * _SCALE)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(programs(), st.integers(0, 2**31))
def test_random_programs_agree_with_finite_differences(program: Any, seed: int) -> None:
    steps, inputs = program
    rng = np.random.default_rng(seed)
    xs = [rng.uniform(-1.5, 1.5, (3, 3)) for _ in range(inputs)]
    w = rng.standard_normal((3, 3))

    def f(*args: Any) -> Any:
        return cr.sum(_run(steps, *args) * w)

    value = f(*xs)
    if not np.isfinite(value):  # a program whose value overflows has nothing to check
        return
    assert cr.gradcheck(f, *xs, check_forward=True), _describe(steps, inputs)


@settings(
    max_examples=max(1, round(25 * _SCALE)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(programs(), st.integers(0, 2**31))
def test_random_programs_under_vmap_equal_a_loop(program: Any, seed: int) -> None:
    steps, inputs = program
    rng = np.random.default_rng(seed)
    batches = [rng.uniform(-1.5, 1.5, (4, 3, 3)) for _ in range(inputs)]

    def f(*args: Any) -> Any:
        return cr.sum(_run(steps, *args))

    got = cr.vmap(cr.grad(f, argnums=tuple(range(inputs))))(*batches)
    for k in range(4):
        want = cr.grad(f, argnums=tuple(range(inputs)))(*[b[k] for b in batches])
        for g, h in zip(got, want):
            np.testing.assert_allclose(
                g[k], h, rtol=1e-9, atol=1e-9, err_msg=_describe(steps, inputs)
            )
