"""Functional transforms: grad, value_and_grad, vjp, jvp, jacobian, hessian."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import chainrule as cr

RNG = np.random.default_rng(7)
W = RNG.normal(size=(4, 3))
X = RNG.normal(size=3)
V = RNG.normal(size=3)


def _is_numpy(value) -> bool:
    return isinstance(value, (np.ndarray, np.generic)) and not isinstance(value, cr.Tensor)


def _softmax(a, axis=-1):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# -- grad --------------------------------------------------------------------------------
def test_grad_closed_form():
    f = lambda x: cr.sum(cr.sin(x) * x)  # noqa: E731
    g = cr.grad(f)(X)
    assert _is_numpy(g) and isinstance(g, np.ndarray)
    np.testing.assert_allclose(g, np.cos(X) * X + np.sin(X), rtol=1e-13)


def test_grad_argnums_int_and_tuple():
    f = lambda x, y: cr.sum(x * x * y)  # noqa: E731
    x, y = np.array([1.0, 2.0]), np.array([3.0, -4.0])
    np.testing.assert_allclose(cr.grad(f)(x, y), 2 * x * y)
    np.testing.assert_allclose(cr.grad(f, argnums=1)(x, y), x * x)
    np.testing.assert_allclose(cr.grad(f, argnums=-1)(x, y), x * x)
    both = cr.grad(f, argnums=(0, 1))(x, y)
    assert isinstance(both, tuple) and len(both) == 2
    np.testing.assert_allclose(both[0], 2 * x * y)
    np.testing.assert_allclose(both[1], x * x)
    single = cr.grad(f, argnums=(1,))(x, y)
    assert isinstance(single, tuple) and len(single) == 1
    np.testing.assert_allclose(single[0], x * x)
    with pytest.raises(ValueError):
        cr.grad(f, argnums=2)(x, y)


def test_grad_has_aux():
    def f(x):
        y = x * 3.0
        return cr.sum(y * y), {"label": "aux", "n": 2}

    g, aux = cr.grad(f, has_aux=True)(X)
    np.testing.assert_allclose(g, 18.0 * X)
    assert aux == {"label": "aux", "n": 2}
    (value, aux2), g2 = cr.value_and_grad(f, has_aux=True)(X)
    assert float(value) == pytest.approx(9.0 * np.sum(X**2))
    assert aux2 == aux
    np.testing.assert_allclose(g2, 18.0 * X)


def test_value_and_grad():
    f = lambda x, y: cr.sum(cr.exp(x) * y)  # noqa: E731
    y = RNG.normal(size=3)
    value, g = cr.value_and_grad(f)(X, y)
    assert float(value) == pytest.approx(np.sum(np.exp(X) * y), rel=1e-14)
    np.testing.assert_allclose(g, np.exp(X) * y, rtol=1e-14)
    value, (gx, gy) = cr.value_and_grad(f, argnums=(0, 1))(X, y)
    np.testing.assert_allclose(gy, np.exp(X), rtol=1e-14)
    np.testing.assert_allclose(gx, np.exp(X) * y, rtol=1e-14)


def test_grad_accepts_python_floats_and_returns_numpy():
    g = cr.grad(lambda x: x**3)(2.0)
    assert _is_numpy(g)
    assert float(g) == 12.0
    g = cr.grad(lambda x: x**3)(2)  # an int is taken as a float
    assert float(g) == 12.0
    value, slope = cr.value_and_grad(lambda x: cr.sin(x))(0.3)
    assert _is_numpy(value) and _is_numpy(slope)
    assert float(value) == pytest.approx(np.sin(0.3)) and float(slope) == pytest.approx(np.cos(0.3))


def test_grad_given_tensors_returns_tensors():
    x = cr.tensor(X)
    g = cr.grad(lambda x: cr.sum(x**3))(x)
    assert isinstance(g, cr.Tensor)
    np.testing.assert_allclose(g.numpy(), 3 * X**2)
    xr = cr.tensor(X, requires_grad=True)
    g = cr.grad(lambda x: cr.sum(x**3))(xr)
    assert isinstance(g, cr.Tensor)
    assert xr.grad is None  # cr.grad does not accumulate into .grad
    # the returned gradient is itself differentiable
    cr.sum(g).backward()
    np.testing.assert_allclose(xr.grad.numpy(), 6 * X)


def test_grad_with_respect_to_unused_input_is_zero():
    f = lambda x, y: cr.sum(x * x)  # noqa: E731
    y = RNG.normal(size=(2, 2))
    g = cr.grad(f, argnums=1)(X, y)
    assert g.shape == y.shape
    np.testing.assert_array_equal(g, np.zeros_like(y))
    # a function that ignores its input entirely
    g = cr.grad(lambda x: 3.0)(2.0)
    assert float(g) == 0.0
    g = cr.grad(lambda x: cr.sum(x) * 0.0 + 1.0)(np.ones(2))
    np.testing.assert_array_equal(g, np.zeros(2))


def test_grad_of_non_scalar_raises_type_error():
    with pytest.raises(TypeError, match="scalar"):
        cr.grad(lambda x: x * 2.0)(X)


def test_grad_of_integer_array_raises():
    with pytest.raises(TypeError):
        cr.grad(lambda x: cr.sum(x))(np.array([1, 2, 3]))


def test_grad_of_grad_of_grad():
    f = lambda x: x**4 + cr.sin(x)  # noqa: E731
    d1, d2, d3 = cr.grad(f), cr.grad(cr.grad(f)), cr.grad(cr.grad(cr.grad(f)))
    for x in (-1.3, 0.4, 2.0):
        assert float(d1(x)) == pytest.approx(4 * x**3 + np.cos(x), rel=1e-13)
        assert float(d2(x)) == pytest.approx(12 * x**2 - np.sin(x), rel=1e-13)
        assert float(d3(x)) == pytest.approx(24 * x - np.cos(x), rel=1e-13)
        assert _is_numpy(d3(x))


def _mixed(x, y):
    return x**2 * y**3  # d/dy (d/dx) = 6 x y^2


_INNER = {
    # the outer transform differentiates y; the inner one x, with y passed in or closed over
    "grad, y as an argument": lambda y: cr.grad(_mixed, argnums=0)(1.5, y),
    "grad, y closed over": lambda y: cr.grad(lambda x: _mixed(x, y))(1.5),
    "jvp, y closed over": lambda y: cr.jvp(lambda x: _mixed(x, y), (1.5,), (1.0,))[1],
    "vjp, y closed over": lambda y: cr.vjp(lambda x: _mixed(x, y), 1.5)[1](1.0)[0],
}


@pytest.mark.parametrize("name", list(_INNER))
def test_mixed_partial_through_inner_transform(name):
    mixed = cr.grad(_INNER[name])
    assert float(mixed(-0.5)) == pytest.approx(6 * 1.5 * 0.25, rel=1e-13)


# -- vjp ---------------------------------------------------------------------------------
def test_vjp_callable_many_times():
    f = lambda x: cr.tanh(W @ x)  # noqa: E731
    out, pullback = cr.vjp(f, X)
    assert _is_numpy(out)
    np.testing.assert_allclose(out, np.tanh(W @ X))
    J = (1 - np.tanh(W @ X) ** 2)[:, None] * W
    for _ in range(3):
        u = RNG.normal(size=4)
        (g,) = pullback(u)
        assert _is_numpy(g)
        np.testing.assert_allclose(g, u @ J, rtol=1e-12)
    # linearity across calls
    u1, u2 = RNG.normal(size=4), RNG.normal(size=4)
    np.testing.assert_allclose(
        pullback(u1 + 2 * u2)[0], pullback(u1)[0] + 2 * pullback(u2)[0], rtol=1e-12
    )


def test_vjp_two_primals():
    out, pullback = cr.vjp(lambda a, b: a @ b, W, X)
    u = RNG.normal(size=4)
    ga, gb = pullback(u)
    np.testing.assert_allclose(ga, np.outer(u, X))
    np.testing.assert_allclose(gb, W.T @ u)


# -- jvp ---------------------------------------------------------------------------------
_FUNCTIONS = {
    "tanh-matmul": lambda x: cr.tanh(W @ x),
    "matmul-left": lambda x: cr.reshape(x, (1, 3)) @ W.T,
    "softmax": lambda x: cr.softmax(x),
    "log_softmax": lambda x: cr.log_softmax(x),
    "logsumexp": lambda x: cr.logsumexp(x),
    "exp-div": lambda x: cr.exp(x) / (1.0 + x * x),
    "sum-axis": lambda x: cr.sum(cr.outer(x, x) ** 2, axis=0),
    "mean-var": lambda x: cr.mean(x) * cr.var(x),
    "getitem": lambda x: x[[0, 2, 2]] * x[1],
    "concat-stack": lambda x: cr.stack(
        [cr.concatenate([x, cr.sin(x)]), cr.cos(x).sum() + 0 * cr.concatenate([x, x])]
    ),
    "where-maximum": lambda x: cr.where(x > 0, cr.maximum(x, 0.1), x * x),
    "broadcast": lambda x: cr.reshape(x, (3, 1)) * x + x,
}


@pytest.mark.parametrize("name", list(_FUNCTIONS))
def test_jvp_matches_reverse_mode(name):
    f = _FUNCTIONS[name]
    out, tangent = cr.jvp(f, (X,), (V,))
    assert _is_numpy(out) and _is_numpy(tangent)
    out_ref, pullback = cr.vjp(f, X)
    np.testing.assert_allclose(out, out_ref)
    assert np.shape(tangent) == np.shape(out)
    # <u, J v> == <J^T u, v> for random u
    for _ in range(2):
        u = RNG.normal(size=np.shape(out))
        lhs = np.sum(u * tangent)
        rhs = np.sum(pullback(u)[0] * V)
        assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-12)


def test_jvp_matmul_in_both_arguments():
    A = RNG.normal(size=(3, 3))
    dA = RNG.normal(size=(3, 3))
    out, tangent = cr.jvp(lambda a, x: a @ x, (A, X), (dA, V))
    np.testing.assert_allclose(out, A @ X)
    np.testing.assert_allclose(tangent, dA @ X + A @ V, rtol=1e-13)


def test_jvp_softmax_closed_form():
    s = _softmax(X)
    expected = s * V - s * np.dot(s, V)  # (diag(s) - s s^T) v
    _, tangent = cr.jvp(cr.softmax, (X,), (V,))
    np.testing.assert_allclose(tangent, expected, rtol=1e-12, atol=1e-15)


def test_jvp_is_forward_mode_no_backward_pass(monkeypatch):
    # Tangents ride along the forward pass: the reverse-mode engine must never run.
    engine = sys.modules["chainrule.engine.backward"]
    transforms = sys.modules["chainrule.transforms.derivatives"]

    def forbidden(*args, **kwargs):
        raise AssertionError("jvp ran a backward pass")

    monkeypatch.setattr(engine, "_run", forbidden)
    monkeypatch.setattr(transforms, "gradients", forbidden)
    out, tangent = cr.jvp(lambda x: cr.sin(x) * x, (X,), (V,))
    np.testing.assert_allclose(tangent, (np.cos(X) * X + np.sin(X)) * V, rtol=1e-13)
    J = cr.jacobian(lambda x: cr.tanh(W @ x), mode="forward")(X)
    np.testing.assert_allclose(J, (1 - np.tanh(W @ X) ** 2)[:, None] * W, rtol=1e-12)
    with cr.no_grad():  # and it needs no recording
        _, tangent = cr.jvp(lambda x: cr.exp(x), (X,), (V,))
    np.testing.assert_allclose(tangent, np.exp(X) * V, rtol=1e-14)


def test_nested_jvp_third_derivative():
    def d(f):
        return lambda x: cr.jvp(f, (x,), (1.0,))[1]

    f = lambda x: cr.sin(x) * x**2  # noqa: E731
    for x in (0.3, -1.1):
        third = d(d(d(f)))(x)
        # (x^2 sin x)''' = -x^2 cos x - 6 x sin x + 6 cos x
        expected = -(x**2) * np.cos(x) - 6 * x * np.sin(x) + 6 * np.cos(x)
        assert float(third) == pytest.approx(expected, rel=1e-12)
    assert float(d(d(d(cr.exp)))(0.7)) == pytest.approx(np.exp(0.7), rel=1e-13)


def test_jvp_of_grad_and_grad_of_jvp_agree():
    f = lambda x: cr.sum(cr.tanh(x) ** 2)  # noqa: E731
    # forward over reverse: H v
    _, hv1 = cr.jvp(cr.grad(f), (X,), (V,))
    # reverse over forward: grad of <grad f, v> via jvp
    hv2 = cr.grad(lambda x: cr.jvp(f, (x,), (V,))[1])(X)
    H = cr.hessian(f)(X)
    np.testing.assert_allclose(hv1, H @ V, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(hv2, H @ V, rtol=1e-11, atol=1e-14)


def test_jvp_given_tensors_returns_tensors():
    out, tangent = cr.jvp(lambda x: x**2, (cr.tensor(X),), (cr.tensor(V),))
    assert isinstance(out, cr.Tensor) and isinstance(tangent, cr.Tensor)
    np.testing.assert_allclose(tangent.numpy(), 2 * X * V)


def test_jvp_tangent_shape_mismatch_raises():
    with pytest.raises(ValueError):
        cr.jvp(lambda x: x * 2.0, (X,), (np.ones(4),))


# -- jacobian ----------------------------------------------------------------------------
def test_jacobian_shape_and_modes_agree():
    M = RNG.normal(size=(4, 6))
    f = lambda x: cr.tanh(M @ cr.reshape(x, (6,)))  # noqa: E731  (2, 3) -> (4,)
    x = RNG.normal(size=(2, 3))
    Jf = cr.jacobian(f, mode="forward")(x)
    Jr = cr.jacobian(f, mode="reverse")(x)
    Ja = cr.jacobian(f)(x)
    assert Jf.shape == Jr.shape == Ja.shape == (4, 2, 3)
    expected = ((1 - np.tanh(M @ x.reshape(6)) ** 2)[:, None] * M).reshape(4, 2, 3)
    for J in (Jf, Jr, Ja):
        assert _is_numpy(J)
        np.testing.assert_allclose(J, expected, rtol=1e-12)


def test_jacobian_matrix_output():
    A = RNG.normal(size=(2, 3))
    f = lambda x: cr.outer(x, x)  # noqa: E731  (3,) -> (3, 3)
    J_fwd = cr.jacobian(f, mode="forward")(X)
    J_rev = cr.jacobian(f, mode="reverse")(X)
    eye = np.eye(3)
    expected = np.einsum("ik,j->ijk", eye, X) + np.einsum("i,jk->ijk", X, eye)
    assert J_fwd.shape == J_rev.shape == (3, 3, 3)
    np.testing.assert_allclose(J_fwd, expected)
    np.testing.assert_allclose(J_rev, expected)
    J = cr.jacobian(lambda a, x: a @ x, argnums=1)(A, X)
    np.testing.assert_allclose(J, A)
    J = cr.jacobian(lambda a, x: a @ x, argnums=0)(A, X)
    assert J.shape == (2, 2, 3)
    np.testing.assert_allclose(J, np.einsum("ij,k->ijk", np.eye(2), X))


def test_jacobian_of_softmax():
    s = _softmax(X)
    expected = np.diag(s) - np.outer(s, s)
    for mode in ("forward", "reverse"):
        np.testing.assert_allclose(cr.jacobian(cr.softmax, mode=mode)(X), expected, atol=1e-15)


def test_jacobian_scalar_input_and_tensor_input():
    J = cr.jacobian(lambda x: x**2)(3.0)
    assert float(J) == 6.0
    Jt = cr.jacobian(lambda x: x**2)(cr.tensor(X))
    assert isinstance(Jt, cr.Tensor)
    np.testing.assert_allclose(Jt.numpy(), np.diag(2 * X))


def test_jacobian_bad_mode_raises():
    with pytest.raises(ValueError):
        cr.jacobian(lambda x: x, mode="sideways")


# -- hessian -----------------------------------------------------------------------------
def test_hessian_of_quadratic_form():
    A = RNG.normal(size=(3, 3))  # not symmetric
    H = cr.hessian(lambda x: x @ (A @ x))(X)
    assert _is_numpy(H) and H.shape == (3, 3)
    np.testing.assert_allclose(H, A + A.T, rtol=1e-13, atol=1e-14)


def test_hessian_closed_forms():
    H = cr.hessian(lambda x: cr.sum(cr.exp(x)))(X)
    np.testing.assert_allclose(H, np.diag(np.exp(X)), rtol=1e-14)
    a = RNG.normal(size=3)
    H = cr.hessian(lambda x: cr.sum(a * x) ** 2)(X)
    np.testing.assert_allclose(H, 2 * np.outer(a, a), rtol=1e-13)
    # log-sum-exp: diag(s) - s s^T
    s = _softmax(X)
    H = cr.hessian(cr.logsumexp)(X)
    np.testing.assert_allclose(H, np.diag(s) - np.outer(s, s), atol=1e-14)


def test_hessian_matrix_input_and_argnums():
    Y = RNG.normal(size=(2, 2))
    H = cr.hessian(lambda y: cr.sum(y**3))(Y)
    assert H.shape == (2, 2, 2, 2)
    expected = np.zeros((2, 2, 2, 2))
    for i in range(2):
        for j in range(2):
            expected[i, j, i, j] = 6 * Y[i, j]
    np.testing.assert_allclose(H, expected)
    # second argument: f(c, x) = c * sum(x^2) -> 2c I
    H = cr.hessian(lambda c, x: c * cr.sum(x * x), argnums=1)(2.5, X)
    np.testing.assert_allclose(H, 5.0 * np.eye(3))


def test_hessian_given_tensor_returns_tensor():
    H = cr.hessian(lambda x: cr.sum(x**3))(cr.tensor(X))
    assert isinstance(H, cr.Tensor)
    np.testing.assert_allclose(H.numpy(), np.diag(6 * X))
