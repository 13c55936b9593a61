"""chainrule against PyTorch and JAX: values and gradients of every op both have, on drawn
shapes and values, in float64 to 1e-10; then the transforms (hessian, jacfwd, hvp, vmap of
grad) on the same functions. Run by ``make test-peers`` (it needs torch 2.13.0 and jax, the
benchmark peers, which ``make test`` does not install).

Each case is a function written three times, once per library, on the same drawn arrays; the
gradient is the VJP of one random cotangent, so every entry of the Jacobian counts.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import jax.scipy.special as jsp  # noqa: E402

import chainrule as cr  # noqa: E402

TOL = 1e-10
_SCALE = float(os.environ.get("OP_TESTS_SCALE", "1"))
T = torch  # (short, in the tables)


@dataclass
class Case:
    """``ours``, ``jx`` and ``th`` compute the same function; ``draw`` gives its arguments
    (arrays to differentiate first, then fixed parameters as a dict)."""

    name: str
    ours: Callable[..., Any]
    jx: Callable[..., Any] | None
    th: Callable[..., Any] | None
    draw: Callable[[Any], tuple[list[np.ndarray], dict[str, Any]]]
    grad: bool = True
    tol: float = TOL
    # a function of the lower triangle of a symmetric matrix: jax and torch give the gradient
    # with respect to the symmetric matrix (symmetrised), chainrule the one of the triangle
    # the function reads (what finite differences give); compared after symmetrising both
    symmetric: bool = False
    notes: list[str] = field(default_factory=list)


# -- drawing arguments ----------------------------------------------------------------------
def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    # (no subnormals: there torch's cumprod gradient divides an underflowed product by its
    # input and gives 0; chainrule's exact one, x1 for d(x0 x1)/dx0, is tested in test_ops)
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False, width=64)


def _shape(draw: Any, min_dims: int = 0, max_dims: int = 3) -> tuple[int, ...]:
    return draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=3))


def _array(draw: Any, shape: tuple[int, ...], lo: float = -2, hi: float = 2) -> np.ndarray:
    return np.asarray(draw(hnp.arrays(np.float64, shape, elements=_floats(lo, hi))))


def _apart(draw: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Distinct values at least 0.1 apart (no ties for max, sort, maximum)."""
    n = int(np.prod(shape))
    perm = np.asarray(draw(st.permutations(list(range(n)))), dtype=np.float64)
    noise = _array(draw, (n,), 0, 0.05)
    return ((perm - n / 2) * 0.3 + noise).reshape(shape)


def unary(lo: float, hi: float) -> Callable[[Any], tuple[list[np.ndarray], dict[str, Any]]]:
    return lambda draw: ([_array(draw, _shape(draw), lo, hi)], {})


def binary(lo: float, hi: float, lo2: float | None = None, hi2: float | None = None) -> Any:
    def draw_(draw: Any) -> tuple[list[np.ndarray], dict[str, Any]]:
        shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
        a = _array(draw, shapes.input_shapes[0], lo, hi)
        b = _array(draw, shapes.input_shapes[1], lo if lo2 is None else lo2,
                   hi if hi2 is None else hi2)  # fmt: skip
        return [a, b], {}

    return draw_


def distinct_pair(draw: Any) -> tuple[list[np.ndarray], dict[str, Any]]:
    shape = _shape(draw)
    both = _apart(draw, (2, *shape))
    return [both[0], both[1]], {}


def reduction(distinct: bool = False, keepdims: bool = True) -> Any:
    def draw_(draw: Any) -> tuple[list[np.ndarray], dict[str, Any]]:
        shape = _shape(draw, min_dims=1)
        x = _apart(draw, shape) if distinct else _array(draw, shape)
        axis = draw(st.integers(-len(shape), len(shape) - 1))
        return [x], {"axis": axis, "keepdims": keepdims and draw(st.booleans())}

    return draw_


def matrix(kind: str = "any", n: int | None = None) -> Any:
    def draw_(draw: Any) -> tuple[list[np.ndarray], dict[str, Any]]:
        size = n or draw(st.integers(1, 4))
        lead = draw(st.sampled_from([(), (2,)]))
        a = _array(draw, (*lead, size, size))
        if kind == "spd":  # well conditioned: eigenvalues 1 to 1 + size
            q = np.linalg.qr(_array(draw, (size, size)) + 3 * np.eye(size))[0]
            a = q @ np.diag(1.0 + np.arange(size)) @ q.T + 0 * a
        elif kind == "invertible":
            a = a + 4 * np.eye(size)
        return [a], {}

    return draw_


def solve_args(draw: Any) -> tuple[list[np.ndarray], dict[str, Any]]:
    n = draw(st.integers(1, 4))
    a = _array(draw, (n, n)) + 4 * np.eye(n)
    b = _array(draw, draw(st.sampled_from([(n,), (n, 2)])))
    return [a, b], {}


def matmul_args(draw: Any) -> tuple[list[np.ndarray], dict[str, Any]]:
    n, k, m = (draw(st.integers(1, 3)) for _ in range(3))
    sa = draw(st.sampled_from([(k,), (n, k), (2, n, k)]))
    sb = draw(st.sampled_from([(k,), (k, m), (2, k, m)]))
    return [_array(draw, sa), _array(draw, sb)], {}


def logits_targets(draw: Any) -> tuple[list[np.ndarray], dict[str, Any]]:
    n, k = draw(st.integers(1, 4)), draw(st.integers(2, 5))
    targets = np.asarray(draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1))))
    return [_array(draw, (n, k), -3, 3)], {"targets": targets}


# -- the cases -------------------------------------------------------------------------------
def _unary_cases() -> list[Case]:
    # name: (domain, our NumPy face, jax, torch)
    table: dict[str, tuple[tuple[float, float], Any, Any, Any]] = {
        "sin": ((-3, 3), np.sin, jnp.sin, T.sin),
        "cos": ((-3, 3), np.cos, jnp.cos, T.cos),
        "tan": ((-1.2, 1.2), np.tan, jnp.tan, T.tan),
        "arcsin": ((-0.9, 0.9), np.arcsin, jnp.arcsin, T.arcsin),
        "arccos": ((-0.9, 0.9), np.arccos, jnp.arccos, T.arccos),
        "arctan": ((-3, 3), np.arctan, jnp.arctan, T.arctan),
        "sinh": ((-2, 2), np.sinh, jnp.sinh, T.sinh),
        "cosh": ((-2, 2), np.cosh, jnp.cosh, T.cosh),
        "tanh": ((-3, 3), np.tanh, jnp.tanh, T.tanh),
        "arcsinh": ((-3, 3), np.arcsinh, jnp.arcsinh, T.arcsinh),
        "arccosh": ((1.1, 3), np.arccosh, jnp.arccosh, T.arccosh),
        "arctanh": ((-0.9, 0.9), np.arctanh, jnp.arctanh, T.arctanh),
        "exp": ((-3, 3), np.exp, jnp.exp, T.exp),
        "exp2": ((-3, 3), np.exp2, jnp.exp2, T.exp2),
        "expm1": ((-3, 3), np.expm1, jnp.expm1, T.expm1),
        "log": ((0.1, 3), np.log, jnp.log, T.log),
        "log2": ((0.1, 3), np.log2, jnp.log2, T.log2),
        "log10": ((0.1, 3), np.log10, jnp.log10, T.log10),
        "log1p": ((-0.9, 3), np.log1p, jnp.log1p, T.log1p),
        "sqrt": ((0.1, 3), np.sqrt, jnp.sqrt, T.sqrt),
        "cbrt": ((0.1, 3), np.cbrt, jnp.cbrt, None),
        "square": ((-3, 3), np.square, jnp.square, T.square),
        "reciprocal": ((0.2, 3), np.reciprocal, jnp.reciprocal, T.reciprocal),
        "negative": ((-3, 3), np.negative, jnp.negative, T.negative),
        "abs": ((0.1, 3), np.abs, jnp.abs, T.abs),
        # (away from 0: near it jax's and torch's sinc' lose digits, 0.6% at x = 6e-8, where
        # chainrule's series is exact; tests/test_ops.py holds ours to the closed form there)
        "sinc": ((0.05, 2.5), np.sinc, jnp.sinc, T.sinc),
        "deg2rad": ((-90, 90), np.deg2rad, jnp.deg2rad, T.deg2rad),
        "rad2deg": ((-3, 3), np.rad2deg, jnp.rad2deg, T.rad2deg),
        "floor": ((-3, 3), np.floor, jnp.floor, T.floor),
        "ceil": ((-3, 3), np.ceil, jnp.ceil, T.ceil),
        "trunc": ((-3, 3), np.trunc, jnp.trunc, T.trunc),
        "sign": ((0.1, 3), np.sign, jnp.sign, T.sign),
        "sigmoid": ((-4, 4), cr.sigmoid, jax.nn.sigmoid, T.sigmoid),
        "relu": ((0.1, 3), cr.relu, jax.nn.relu, T.relu),
        "softplus": ((-4, 4), cr.softplus, jax.nn.softplus, T.nn.functional.softplus),
        "gelu": (
            (-3, 3),
            cr.gelu,
            lambda x: jax.nn.gelu(x, approximate=False),
            T.nn.functional.gelu,
        ),
        "erf": ((-2, 2), cr.special.erf, jsp.erf, T.special.erf),
        "erfc": ((-2, 2), cr.special.erfc, jsp.erfc, T.special.erfc),
        "erfinv": ((-0.9, 0.9), cr.special.erfinv, jsp.erfinv, T.special.erfinv),
        "gammaln": ((0.2, 4), cr.special.gammaln, jsp.gammaln, T.special.gammaln),
        "digamma": ((0.2, 4), cr.special.digamma, jsp.digamma, T.special.digamma),
        "logit": ((0.05, 0.95), cr.special.logit, jsp.logit, T.special.logit),
        "expit": ((-4, 4), cr.special.expit, jsp.expit, T.special.expit),
        "ndtr": ((-3, 3), cr.special.ndtr, jsp.ndtr, T.special.ndtr),
        "log_ndtr": ((-3, 3), cr.special.log_ndtr, jsp.log_ndtr, T.special.log_ndtr),
        "ndtri": ((0.05, 0.95), cr.special.ndtri, jsp.ndtri, T.special.ndtri),
        # (away from 0, where jax's i0' is 1 instead of i1(0) = 0; torch's is right)
        "i0": ((0.05, 3), cr.special.i0, jsp.i0, T.special.i0),
        "i1": ((-3, 3), cr.special.i1, jsp.i1, T.special.i1),
    }
    return [
        Case(name, ours, jx, th, unary(*domain), tol=1e-9 if name in _SPECIAL_TOL else TOL)
        for name, (domain, ours, jx, th) in table.items()
    ]


# Special functions computed by different series in each library: they agree to ~1e-12
# relative, which on values near 1e2 is a little more than 1e-10 absolute
_SPECIAL_TOL = {"erfinv", "ndtri", "i0", "i1", "digamma", "gammaln", "log_ndtr"}


def _binary_cases() -> list[Case]:
    table: dict[str, tuple[Any, Any, Any, Any]] = {
        "add": (binary(-3, 3), np.add, jnp.add, T.add),
        "subtract": (binary(-3, 3), np.subtract, jnp.subtract, T.subtract),
        "multiply": (binary(-3, 3), np.multiply, jnp.multiply, T.multiply),
        "divide": (binary(-3, 3, 0.5, 3), np.divide, jnp.divide, T.divide),
        "power": (binary(0.2, 2, -2, 2), np.power, jnp.power, T.pow),
        "arctan2": (binary(0.2, 2, 0.2, 2), np.arctan2, jnp.arctan2, T.arctan2),
        "hypot": (binary(0.2, 2), np.hypot, jnp.hypot, T.hypot),
        "logaddexp": (binary(-3, 3), np.logaddexp, jnp.logaddexp, T.logaddexp),
        "logaddexp2": (binary(-3, 3), np.logaddexp2, jnp.logaddexp2, T.logaddexp2),
        "maximum": (distinct_pair, np.maximum, jnp.maximum, T.maximum),
        "minimum": (distinct_pair, np.minimum, jnp.minimum, T.minimum),
        "fmod": (binary(0.3, 3, 0.7, 1.3), np.fmod, jnp.fmod, T.fmod),
        "remainder": (binary(0.3, 3, 0.7, 1.3), np.remainder, jnp.remainder, T.remainder),
        "xlogy": (binary(0.2, 2, 0.2, 2), cr.special.xlogy, jsp.xlogy, T.special.xlogy),
        "xlog1py": (binary(0.2, 2), cr.special.xlog1py, jsp.xlog1py, T.special.xlog1py),
        "betaln": (binary(0.3, 3), cr.special.betaln, jsp.betaln, None),
    }
    return [Case(n, ours, jx, th, d) for n, (d, ours, jx, th) in table.items()]


def _axis_cases() -> list[Case]:
    def th_kw(fn: Any, **fixed: Any) -> Any:
        return lambda x, axis, keepdims: fn(x, dim=axis, keepdim=keepdims, **fixed)

    return [
        Case("sum", np.sum, jnp.sum, th_kw(T.sum), reduction()),
        Case("mean", np.mean, jnp.mean, th_kw(T.mean), reduction()),
        Case("prod", np.prod, jnp.prod, th_kw(T.prod), reduction()),
        Case("max", np.max, jnp.max, th_kw(T.amax), reduction(distinct=True)),
        Case("min", np.min, jnp.min, th_kw(T.amin), reduction(distinct=True)),
        # (distinct values: at zero spread chainrule's std has gradient 0, theirs NaN)
        Case("var", np.var, jnp.var, th_kw(T.var, correction=0), reduction(distinct=True)),
        Case(
            "std",
            lambda x, axis, keepdims: np.std(x, axis=axis, keepdims=keepdims, ddof=1),
            lambda x, axis, keepdims: jnp.std(x, axis=axis, keepdims=keepdims, ddof=1),
            th_kw(T.std, correction=1),
            reduction(distinct=True),
        ),
        Case("logsumexp", cr.special.logsumexp, jsp.logsumexp, th_kw(T.logsumexp), reduction()),
        Case(
            "cumsum",
            lambda x, axis, keepdims: np.cumsum(x, axis=axis),
            lambda x, axis, keepdims: jnp.cumsum(x, axis=axis),
            lambda x, axis, keepdims: T.cumsum(x, dim=axis),
            reduction(),
        ),
        Case(
            "cumprod",
            lambda x, axis, keepdims: np.cumprod(x, axis=axis),
            lambda x, axis, keepdims: jnp.cumprod(x, axis=axis),
            lambda x, axis, keepdims: T.cumprod(x, dim=axis),
            reduction(),
        ),
        Case(
            "softmax",
            lambda x, axis, keepdims: cr.softmax(x, axis=axis),
            lambda x, axis, keepdims: jax.nn.softmax(x, axis=axis),
            lambda x, axis, keepdims: T.softmax(x, dim=axis),
            reduction(),
        ),
        Case(
            "log_softmax",
            lambda x, axis, keepdims: cr.log_softmax(x, axis=axis),
            lambda x, axis, keepdims: jax.nn.log_softmax(x, axis=axis),
            lambda x, axis, keepdims: T.log_softmax(x, dim=axis),
            reduction(),
        ),
        Case(
            "sort",
            lambda x, axis, keepdims: np.sort(x, axis=axis),
            lambda x, axis, keepdims: jnp.sort(x, axis=axis),
            lambda x, axis, keepdims: T.sort(x, dim=axis).values,
            reduction(distinct=True),
        ),
        Case(
            "flip",
            lambda x, axis, keepdims: np.flip(x, axis=axis),
            lambda x, axis, keepdims: jnp.flip(x, axis=axis),
            lambda x, axis, keepdims: T.flip(x, dims=(axis,)),
            reduction(),
        ),
        Case(
            "roll",
            lambda x, axis, keepdims: np.roll(x, 2, axis=axis),
            lambda x, axis, keepdims: jnp.roll(x, 2, axis=axis),
            lambda x, axis, keepdims: T.roll(x, 2, dims=axis),
            reduction(),
        ),
        Case(
            "diff",
            lambda x, axis, keepdims: np.diff(x, axis=axis),
            lambda x, axis, keepdims: jnp.diff(x, axis=axis),
            lambda x, axis, keepdims: T.diff(x, dim=axis),
            reduction(),
        ),
    ]


def _array_cases() -> list[Case]:
    def mat(draw: Any) -> tuple[list[np.ndarray], dict[str, Any]]:
        return [_array(draw, (draw(st.integers(1, 4)), draw(st.integers(1, 4))))], {}

    def vec2(draw: Any) -> tuple[list[np.ndarray], dict[str, Any]]:
        n = draw(st.integers(1, 4))
        return [_array(draw, (n,)), _array(draw, (draw(st.integers(1, 4)),))], {}

    def vec3(draw: Any) -> tuple[list[np.ndarray], dict[str, Any]]:
        return [_array(draw, (2, 3)), _array(draw, (2, 3))], {}

    def stack_args(draw: Any) -> tuple[list[np.ndarray], dict[str, Any]]:
        shape = _shape(draw, min_dims=1)
        return [_array(draw, shape), _array(draw, shape)], {
            "axis": draw(st.integers(-len(shape), len(shape) - 1))
        }

    return [
        Case(
            "transpose",
            np.transpose,
            jnp.transpose,
            lambda x: x.permute(tuple(range(x.ndim))[::-1]),
            unary(-2, 2),
        ),
        Case(
            "reshape",
            lambda x: np.reshape(x, (-1,)),
            lambda x: jnp.reshape(x, (-1,)),
            lambda x: T.reshape(x, (-1,)),
            unary(-2, 2),
        ),
        Case("tril", np.tril, jnp.tril, T.tril, mat),
        Case(
            "triu", lambda x: np.triu(x, 1), lambda x: jnp.triu(x, 1), lambda x: T.triu(x, 1), mat
        ),
        Case("diagonal", np.diagonal, jnp.diagonal, lambda x: T.diagonal(x), mat),
        Case("trace", np.trace, jnp.trace, T.trace, mat),
        Case(
            "repeat",
            lambda x: np.repeat(x, 2, axis=0),
            lambda x: jnp.repeat(x, 2, axis=0),
            lambda x: T.repeat_interleave(x, 2, dim=0),
            mat,
        ),
        Case(
            "tile",
            lambda x: np.tile(x, (2, 1)),
            lambda x: jnp.tile(x, (2, 1)),
            lambda x: T.tile(x, (2, 1)),
            mat,
        ),
        Case(
            "pad",
            lambda x: np.pad(x, ((1, 0), (0, 2))),
            lambda x: jnp.pad(x, ((1, 0), (0, 2))),
            lambda x: T.nn.functional.pad(x, (0, 2, 1, 0)),
            mat,
        ),
        Case("outer", np.outer, jnp.outer, T.outer, vec2),
        Case("kron", np.kron, jnp.kron, T.kron, vec2),
        Case("cross", np.cross, jnp.cross, lambda a, b: T.linalg.cross(a, b), vec3),
        Case(
            "concatenate",
            lambda a, b, axis: np.concatenate([a, b], axis=axis),
            lambda a, b, axis: jnp.concatenate([a, b], axis=axis),
            lambda a, b, axis: T.cat([a, b], dim=axis),
            stack_args,
        ),
        Case(
            "stack",
            lambda a, b, axis: np.stack([a, b], axis=axis),
            lambda a, b, axis: jnp.stack([a, b], axis=axis),
            lambda a, b, axis: T.stack([a, b], dim=axis),
            stack_args,
        ),
        Case("matmul", np.matmul, jnp.matmul, T.matmul, matmul_args),
        Case(
            "einsum",
            lambda a, b: np.einsum("ij,jk->ik", a, b),
            lambda a, b: jnp.einsum("ij,jk->ik", a, b),
            lambda a, b: T.einsum("ij,jk->ik", a, b),
            lambda draw: ([_array(draw, (2, 3)), _array(draw, (3, 2))], {}),
        ),
        Case(
            "cross_entropy",
            lambda z, targets: cr.nn.functional.cross_entropy(z, targets),
            lambda z, targets: jnp.mean(
                jsp.logsumexp(z, axis=1) - jnp.take_along_axis(z, targets[:, None], 1)[:, 0]
            ),
            lambda z, targets: T.nn.functional.cross_entropy(z, T.as_tensor(targets)),
            logits_targets,
        ),
    ]


def _linalg_cases() -> list[Case]:
    def eigvals_weighted(lib: Any) -> Any:
        return lambda a: lib.linalg.eigvalsh(a) * lib.linspace(1.0, 2.0, a.shape[-1])

    return [
        Case("inv", np.linalg.inv, jnp.linalg.inv, T.linalg.inv, matrix("invertible")),
        Case("det", np.linalg.det, jnp.linalg.det, T.linalg.det, matrix("invertible")),
        Case(
            "slogdet",
            lambda a: np.linalg.slogdet(a)[1],
            lambda a: jnp.linalg.slogdet(a)[1],
            lambda a: T.linalg.slogdet(a)[1],
            matrix("invertible"),
        ),
        Case("solve", np.linalg.solve, jnp.linalg.solve, T.linalg.solve, solve_args),
        Case(
            "cholesky",
            np.linalg.cholesky,
            jnp.linalg.cholesky,
            T.linalg.cholesky,
            matrix("spd"),
            symmetric=True,
        ),
        Case(
            "eigvalsh",
            np.linalg.eigvalsh,
            jnp.linalg.eigvalsh,
            T.linalg.eigvalsh,
            matrix("spd"),
            symmetric=True,
        ),
        Case(
            "eigvalsh weighted",
            eigvals_weighted(np),
            eigvals_weighted(jnp),
            lambda a: T.linalg.eigvalsh(a) * T.linspace(1.0, 2.0, a.shape[-1], dtype=T.float64),
            matrix("spd"),
            symmetric=True,
        ),
        Case(
            "svdvals",
            lambda a: np.linalg.svd(a, compute_uv=False),
            lambda a: jnp.linalg.svd(a, compute_uv=False),
            T.linalg.svdvals,
            matrix("spd"),
        ),
        Case("norm fro", np.linalg.norm, jnp.linalg.norm, T.linalg.norm, matrix("invertible")),
        Case(
            "norm 2",
            lambda a: np.linalg.norm(a, 2, axis=(-2, -1)),
            lambda a: jnp.linalg.norm(a, 2, axis=(-2, -1)),
            lambda a: T.linalg.matrix_norm(a, 2),
            matrix("spd"),
        ),
        Case(
            "norm nuc",
            lambda a: np.linalg.norm(a, "nuc", axis=(-2, -1)),
            lambda a: jnp.linalg.norm(a, "nuc", axis=(-2, -1)),
            lambda a: T.linalg.matrix_norm(a, "nuc"),
            matrix("spd"),
        ),
        Case(
            "matrix_power",
            lambda a: np.linalg.matrix_power(a, 3),
            lambda a: jnp.linalg.matrix_power(a, 3),
            lambda a: T.linalg.matrix_power(a, 3),
            matrix(),
        ),
        Case(
            "pinv", np.linalg.pinv, jnp.linalg.pinv, T.linalg.pinv, matrix("invertible"), tol=1e-9
        ),
    ]


CASES = _unary_cases() + _binary_cases() + _axis_cases() + _array_cases() + _linalg_cases()


# -- running one case in each library ----------------------------------------------------------
def _ours(case: Case, arrays: list[np.ndarray], params: dict[str, Any], w: Any) -> Any:
    xs = [cr.tensor(a, requires_grad=True) for a in arrays]
    out = case.ours(*xs, **params)
    value = out.numpy()
    if not case.grad:
        return value, None
    if not out.requires_grad:  # floor, sign: a constant, its gradient 0 (as in jax and torch)
        return value, [np.zeros_like(a) for a in arrays]
    (out * w).sum().backward()
    return value, [x.grad.numpy() for x in xs]


def _jax(case: Case, arrays: list[np.ndarray], params: dict[str, Any], w: Any) -> Any:
    fn = lambda *xs: case.jx(*xs, **params)  # noqa: E731
    value, pullback = jax.vjp(fn, *[jnp.asarray(a) for a in arrays])
    grads = pullback(jnp.asarray(w)) if case.grad else None
    return np.asarray(value), [np.asarray(g) for g in grads] if grads else None


def _torch(case: Case, arrays: list[np.ndarray], params: dict[str, Any], w: Any) -> Any:
    xs = [T.tensor(a, dtype=T.float64, requires_grad=True) for a in arrays]
    out = case.th(*xs, **params)
    value = out.detach().numpy()
    if not case.grad:
        return value, None
    grads = T.autograd.grad(out, xs, T.as_tensor(w).reshape(out.shape), allow_unused=True)
    return value, [np.zeros_like(a) if g is None else g.numpy() for g, a in zip(grads, arrays)]


def _agree(got: Any, want: Any, tol: float, what: str) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}"
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=what)


PAIRS = [
    pytest.param(peer, c, id=f"{peer}-{c.name}")
    for peer in ("jax", "torch")
    for c in CASES
    if (c.jx if peer == "jax" else c.th) is not None  # (torch has no cbrt, no betaln)
]


@pytest.mark.parametrize("peer, case", PAIRS)
def test_values_and_gradients_agree_with(peer: str, case: Case) -> None:
    run = _jax if peer == "jax" else _torch

    @settings(
        max_examples=max(1, round(15 * _SCALE)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.data())
    def check(data: Any) -> None:
        arrays, params = case.draw(data.draw)
        shape = np.shape(case.ours(*[cr.tensor(a) for a in arrays], **params).numpy())
        w = np.random.default_rng(data.draw(st.integers(0, 2**31))).standard_normal(shape)
        ours_value, ours_grads = _ours(case, arrays, params, w)
        value, grads = run(case, arrays, params, w)
        what = f"{case.name} vs {peer} on {[a.shape for a in arrays]} {params}"
        _agree(ours_value, value, case.tol, f"{what}: value")
        for i, (g, h) in enumerate(zip(ours_grads or [], grads or [])):
            if case.symmetric:
                g, h = (g + np.swapaxes(g, -1, -2)) / 2, (h + np.swapaxes(h, -1, -2)) / 2
            _agree(g, h, case.tol, f"{what}: gradient {i}")

    check()


# -- transforms ----------------------------------------------------------------------------------
def _f_ours(x: Any) -> Any:
    return cr.sum(cr.tanh(x) ** 2 * cr.exp(-x) + cr.sin(x[::-1] * x))


def _f_jax(x: Any) -> Any:
    return jnp.sum(jnp.tanh(x) ** 2 * jnp.exp(-x) + jnp.sin(x[::-1] * x))


def _f_torch(x: Any) -> Any:
    return T.sum(T.tanh(x) ** 2 * T.exp(-x) + T.sin(T.flip(x, (0,)) * x))


X = np.array([0.3, -1.2, 0.8, 2.0])


def test_hessian_hvp_and_jacfwd_agree_with_jax_and_torch() -> None:
    h = cr.hessian(_f_ours)(X)
    _agree(h, jax.hessian(_f_jax)(jnp.asarray(X)), TOL, "hessian vs jax")
    _agree(h, T.autograd.functional.hessian(_f_torch, T.tensor(X)), TOL, "hessian vs torch")
    v = np.array([1.0, -0.5, 0.25, 2.0])
    _, hv = cr.hvp(_f_ours, (X,), (v,))
    _agree(hv, h @ v, TOL, "hvp against H v")
    j = cr.jacfwd(lambda x: cr.tanh(x) * cr.sum(x))(X)
    _agree(j, jax.jacfwd(lambda x: jnp.tanh(x) * jnp.sum(x))(jnp.asarray(X)), TOL, "jacfwd")


def test_per_example_gradients_agree_with_torch_func_and_jax_vmap() -> None:
    rng = np.random.default_rng(0)
    w, xs = rng.standard_normal(4), rng.standard_normal((5, 4))
    ours = cr.vmap(cr.grad(lambda w, x: cr.sum(cr.tanh(x * w) ** 2)), in_axes=(None, 0))(w, xs)
    theirs = jax.vmap(jax.grad(lambda w, x: jnp.sum(jnp.tanh(x * w) ** 2)), in_axes=(None, 0))(
        jnp.asarray(w), jnp.asarray(xs)
    )
    _agree(ours, theirs, TOL, "vmap(grad) vs jax")
    from torch.func import grad, vmap

    th = vmap(grad(lambda w, x: T.sum(T.tanh(x * w) ** 2)), in_dims=(None, 0))(
        T.tensor(w), T.tensor(xs)
    )
    _agree(ours, th, TOL, "vmap(grad) vs torch.func")
