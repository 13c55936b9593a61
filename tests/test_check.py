"""numerical_grad and gradcheck, and custom cr.Function checked by them."""

from __future__ import annotations

import re

import numpy as np
import pytest

import chainrule as cr

RNG = np.random.default_rng(99)
X = RNG.normal(size=3)
Y = RNG.normal(size=3)
_FLOAT = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


# -- numerical_grad ----------------------------------------------------------------------
def test_numerical_grad_closed_forms():
    g = cr.numerical_grad(lambda x: cr.sum(cr.sin(x)), X)
    assert isinstance(g, np.ndarray) and g.dtype == np.float64 and g.shape == X.shape
    np.testing.assert_allclose(g, np.cos(X), atol=1e-8)
    A = RNG.normal(size=(3, 3))
    g = cr.numerical_grad(lambda x: x @ (A @ x), X)
    np.testing.assert_allclose(g, (A + A.T) @ X, atol=1e-7)
    assert float(cr.numerical_grad(lambda x: x**3, 2.0)) == pytest.approx(12.0, abs=1e-6)


def test_numerical_grad_several_arguments_and_plain_numpy_functions():
    gx, gy = cr.numerical_grad(lambda x, y: np.sum(x * y**2), X, Y, argnums=(0, 1))
    np.testing.assert_allclose(gx, Y**2, atol=1e-8)
    np.testing.assert_allclose(gy, 2 * X * Y, atol=1e-8)
    gy = cr.numerical_grad(lambda x, y: np.sum(x * y**2), X, Y, argnums=1)
    np.testing.assert_allclose(gy, 2 * X * Y, atol=1e-8)
    M = RNG.normal(size=(2, 3))
    g = cr.numerical_grad(lambda m: cr.sum(cr.tanh(m)), M)
    assert g.shape == (2, 3)
    np.testing.assert_allclose(g, 1 - np.tanh(M) ** 2, atol=1e-8)


def test_numerical_grad_of_non_scalar_raises():
    with pytest.raises(TypeError):
        cr.numerical_grad(lambda x: x * 2.0, X)


def test_numerical_jacobian_closed_form():
    A = RNG.normal(size=(4, 3))
    J = cr.numerical_jacobian(lambda x: cr.tanh(A @ x), X)
    assert J.shape == (4, 3)
    np.testing.assert_allclose(J, (1 - np.tanh(A @ X) ** 2)[:, None] * A, atol=1e-8)


def test_numerical_grad_agrees_with_backprop_on_float32_input():
    x32 = X.astype(np.float32)
    g = cr.numerical_grad(lambda x: cr.sum(cr.exp(x)), x32)
    assert g.dtype == np.float64  # differences are taken in float64
    np.testing.assert_allclose(g, np.exp(x32.astype(np.float64)), atol=1e-7)


# -- gradcheck on correct functions ------------------------------------------------------
_CORRECT = {
    "tanh-matmul": (
        lambda x, w: cr.sum(cr.tanh(x @ w)),
        (RNG.normal(size=(2, 3)), RNG.normal(size=(3, 4))),
    ),
    "softmax": (lambda x: cr.softmax(x), (RNG.normal(size=(2, 5)),)),
    "broadcast": (lambda a, b: a * b + cr.exp(b), (RNG.normal(size=(3, 1)), RNG.normal(size=(4,)))),
    "reductions": (
        lambda x: cr.var(x, axis=0) + cr.mean(x, axis=1).sum(),
        (RNG.normal(size=(3, 4)),),
    ),
    "indexing": (lambda x: x[[0, 0, 2]] * x[1:].sum(), (RNG.normal(size=(4,)),)),
    "power": (lambda x, y: x**y, (RNG.uniform(0.5, 2.0, size=3), RNG.normal(size=3))),
}


@pytest.mark.parametrize("name", list(_CORRECT))
def test_gradcheck_passes_correct_functions(name):
    f, args = _CORRECT[name]
    assert cr.gradcheck(f, *args) is True
    assert cr.gradcheck(f, *args, check_forward=True) is True


def test_gradcheck_skips_non_float_arguments():
    idx = np.array([2, 0])
    assert cr.gradcheck(lambda x, i: x[i] * 2.0, X, idx) is True


# -- custom Functions --------------------------------------------------------------------
class WrongSin(cr.Function):
    """sin with a backward that is twice the right gradient."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return cr.sin(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2.0 * grad * cr.cos(x)


class SinTimes(cr.Function):
    """sin(x) * y, its backward written with chainrule ops (so it works for create_graph)."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return cr.sin(x) * y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        return grad * cr.cos(x) * y, grad * cr.sin(x)


class ScaleByConstant(cr.Function):
    """x * c with c not differentiated (backward returns None for it)."""

    @staticmethod
    def forward(ctx, x, c):
        ctx.c = c
        return x * c

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.c, None


def test_gradcheck_error_names_argument_entry_and_both_values():
    f = lambda x, y: cr.sum(x * WrongSin.apply(y))  # noqa: E731  argument 1 is wrong
    with pytest.raises(cr.GradcheckError) as info:
        cr.gradcheck(f, X, Y)
    message = str(info.value)
    assert "argument 1" in message
    m = re.search(r"entry \((\d+),?\)", message)
    assert m is not None, message
    k = int(m.group(1))
    right = X[k] * np.cos(Y[k])
    wrong = 2.0 * right
    numbers = [float(s) for s in _FLOAT.findall(message)]
    assert any(np.isclose(v, wrong, rtol=1e-9) for v in numbers), message
    assert any(np.isclose(v, right, rtol=1e-6) for v in numbers), message
    assert isinstance(info.value, AssertionError)


def test_gradcheck_error_on_first_argument_of_vector_output():
    with pytest.raises(cr.GradcheckError, match="argument 0") as info:
        cr.gradcheck(lambda x: WrongSin.apply(x), X)
    message = str(info.value)
    m = re.search(r"entry \((\d+), (\d+)\)", message)
    assert m is not None, message
    i, j = int(m.group(1)), int(m.group(2))
    assert i == j  # the Jacobian is diagonal: only diagonal entries can disagree
    numbers = [float(s) for s in _FLOAT.findall(message)]
    assert any(np.isclose(v, 2 * np.cos(X[i]), rtol=1e-9) for v in numbers), message
    assert any(np.isclose(v, np.cos(X[i]), rtol=1e-6) for v in numbers), message


def test_custom_function_with_saved_tensors_passes_gradcheck():
    assert cr.gradcheck(lambda x, y: SinTimes.apply(x, y), X, Y) is True
    x = cr.tensor(X, requires_grad=True)
    y = cr.tensor(Y, requires_grad=True)
    out = SinTimes.apply(x, y)
    assert out.requires_grad and not out.is_leaf
    np.testing.assert_allclose(out.numpy(), np.sin(X) * Y)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.cos(X) * Y)
    np.testing.assert_allclose(y.grad.numpy(), np.sin(X))


def test_custom_function_second_order_with_create_graph():
    x = cr.tensor(X, requires_grad=True)
    y = cr.tensor(Y, requires_grad=True)
    SinTimes.apply(x, y).sum().backward(create_graph=True)
    gx = x.grad
    assert gx.requires_grad
    np.testing.assert_allclose(gx.numpy(), np.cos(X) * Y)
    x.grad = None
    y.grad = None
    gx.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), -np.sin(X) * Y)
    np.testing.assert_allclose(y.grad.numpy(), np.cos(X))


def test_custom_function_second_order_gradcheck():
    # gradcheck of the gradient: the Function's backward must itself be differentiable.
    def grad_x(x, y):
        return cr.grad(lambda a, b: cr.sum(SinTimes.apply(a, b)), argnums=0)(x, y)

    # (argument 0 only: differentiating it in y needs the inner cr.grad to notice that y is
    # being traced, which test_transforms covers separately.)
    assert cr.gradcheck(grad_x, X, Y, argnums=0) is True
    hess = cr.hessian(lambda a: cr.sum(SinTimes.apply(a, Y)))(X)
    np.testing.assert_allclose(hess, np.diag(-np.sin(X) * Y), atol=1e-14)


def test_custom_function_returning_none_gradient():
    x = cr.tensor(X, requires_grad=True)
    c = cr.tensor(Y, requires_grad=True)
    ScaleByConstant.apply(x, c).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), Y)
    np.testing.assert_array_equal(c.grad.numpy(), np.zeros(3))


def test_custom_function_wrong_number_of_gradients_raises():
    class TwoForOne(cr.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2.0

        @staticmethod
        def backward(ctx, grad):
            return grad, grad

    x = cr.tensor(X, requires_grad=True)
    with pytest.raises(ValueError, match="TwoForOne"):
        TwoForOne.apply(x).sum().backward()


def test_custom_function_without_grad_records_nothing():
    x = cr.tensor(X, requires_grad=True)
    with cr.no_grad():
        out = SinTimes.apply(x, cr.tensor(Y))
    assert not out.requires_grad and out.is_leaf
    out2 = SinTimes.apply(cr.tensor(X), cr.tensor(Y))
    assert not out2.requires_grad


def test_gradcheck_of_a_function_closing_over_parameters_that_require_grad():
    layer = cr.nn.Linear(3, 2, rng=0)  # its weight and bias require grad
    x = np.random.default_rng(0).normal(size=(4, 3))
    assert cr.gradcheck(lambda x: cr.sum(cr.tanh(layer(x)) ** 2), x, check_forward=True)
    with pytest.raises(cr.GradcheckError):  # and it still catches a wrong rule
        cr.gradcheck(lambda x: cr.sum(layer(x) * cr.stop_gradient(x @ np.ones((3, 2)))), x)
