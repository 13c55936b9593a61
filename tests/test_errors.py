"""Errors that speak the user's language, and NumPy functions called on Tensors."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr

RNG = np.random.default_rng(5)


# -- shape errors ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "op_name,fn",
    [
        ("add", lambda a, b: a + b),
        ("subtract", lambda a, b: a - b),
        ("multiply", lambda a, b: a * b),
        ("divide", lambda a, b: a / b),
        ("maximum", lambda a, b: cr.maximum(a, b)),
    ],
)
def test_broadcast_mismatch_names_op_and_both_shapes(op_name, fn):
    a = cr.tensor(np.ones((2, 3)), requires_grad=True)
    b = cr.tensor(np.ones((4,)), requires_grad=True)
    with pytest.raises(ValueError) as info:
        fn(a, b)
    message = str(info.value)
    assert op_name in message
    assert "(2, 3)" in message
    assert "(4,)" in message


def test_broadcast_mismatch_with_ndarray_operand():
    a = cr.tensor(np.ones((2, 3)))
    with pytest.raises(ValueError) as info:
        a * np.ones(5)
    message = str(info.value)
    assert "multiply" in message and "(2, 3)" in message and "(5,)" in message


@pytest.mark.parametrize(
    "shape_b",
    [(4,), (2, 2), (5, 3)],
)
def test_matmul_mismatch_names_matmul_and_both_shapes(shape_b):
    a = cr.tensor(np.ones((2, 3)), requires_grad=True)
    b = cr.tensor(np.ones(shape_b))
    for call in (lambda: a @ b, lambda: cr.matmul(a, b), lambda: a @ np.ones(shape_b)):
        with pytest.raises(ValueError) as info:
            call()
        message = str(info.value)
        assert "matmul" in message
        assert "(2, 3)" in message
        assert str(tuple(shape_b)) in message


def test_inplace_shape_change_raises():
    t = cr.tensor(np.ones(3))
    with pytest.raises(ValueError, match="shape"):
        t += np.ones((2, 3))


def test_item_assignment_in_graph_raises():
    t = cr.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError):
        t[0] = 5.0
    with cr.no_grad():
        t[0] = 5.0
    np.testing.assert_array_equal(t.numpy(), [5.0, 1.0, 1.0])


# -- unsupported NumPy functions -----------------------------------------------------------
@pytest.mark.parametrize(
    "name,call",
    [
        ("fft", lambda t: np.fft.fft(t)),
        ("unique", lambda t: np.unique(t)),
        ("histogram", lambda t: np.histogram(t)),
        ("add.reduce", lambda t: np.add.reduce(t)),
        ("multiply.accumulate", lambda t: np.multiply.accumulate(t)),
    ],
)
def test_unsupported_numpy_functions_raise_type_error_naming_function(name, call):
    t = cr.tensor(RNG.normal(size=(2, 3)), requires_grad=True)
    with pytest.raises(TypeError) as info:
        call(t)
    assert name in str(info.value) and "t.detach().numpy()" in str(info.value)


def test_an_unsupported_numpy_function_names_the_nearest_supported_ones():
    t = cr.tensor(RNG.normal(size=3), requires_grad=True)
    with pytest.raises(TypeError, match="nearest supported: .*np.cumsum"):
        np.nancumsum(t)


def test_numpy_out_keyword_is_refused():
    t = cr.tensor(RNG.normal(size=3), requires_grad=True)
    with pytest.raises(TypeError, match="out"):
        np.exp(t, out=np.empty(3))


# -- supported NumPy functions: recorded, with correct gradients ---------------------------
A = RNG.normal(size=(3, 4))
A[np.abs(A) < 0.05] = 0.3  # keep away from the kinks of clip / maximum
A[np.abs(A - 1) < 0.05] = 0.7
WMAT = RNG.normal(size=(4, 2))
G_UP = RNG.normal(size=(3, 4))  # an upstream weight, to make the gradient non-trivial


def _expected_where(a):
    return (a > 0).astype(np.float64)


_NUMPY_CASES = {
    "tanh": (lambda t: np.tanh(t), lambda a: np.tanh(a), lambda a, g: g * (1 - np.tanh(a) ** 2)),
    "sum": (lambda t: np.sum(t), lambda a: np.sum(a), lambda a, g: np.full_like(a, g)),
    "matmul": (
        lambda t: np.matmul(t, WMAT),
        lambda a: a @ WMAT,
        lambda a, g: g @ WMAT.T,
    ),
    "mean axis 0": (
        lambda t: np.mean(t, axis=0),
        lambda a: np.mean(a, axis=0),
        lambda a, g: np.broadcast_to(g / a.shape[0], a.shape),
    ),
    "concatenate": (
        lambda t: np.concatenate([t, t]),
        lambda a: np.concatenate([a, a]),
        lambda a, g: g[: a.shape[0]] + g[a.shape[0] :],
    ),
    "where": (
        lambda t: np.where(A > 0, t, 0),
        lambda a: np.where(A > 0, a, 0),
        lambda a, g: g * _expected_where(A),
    ),
    "clip": (
        lambda t: np.clip(t, 0, 1),
        lambda a: np.clip(a, 0, 1),
        lambda a, g: g * ((a >= 0) & (a <= 1)),
    ),
    "maximum": (
        lambda t: np.maximum(t, 0),
        lambda a: np.maximum(a, 0),
        lambda a, g: g * (a > 0),
    ),
    "exp": (lambda t: np.exp(t), lambda a: np.exp(a), lambda a, g: g * np.exp(a)),
    "sum keepdims": (
        lambda t: np.sum(t, axis=1, keepdims=True),
        lambda a: np.sum(a, axis=1, keepdims=True),
        lambda a, g: np.broadcast_to(g, a.shape),
    ),
    "transpose": (lambda t: np.transpose(t), lambda a: a.T, lambda a, g: g.T),
    "ndarray @ tensor": (
        lambda t: WMAT.T @ t.T,
        lambda a: WMAT.T @ a.T,
        lambda a, g: (WMAT @ g).T,
    ),
}


@pytest.mark.parametrize("name", list(_NUMPY_CASES))
def test_numpy_functions_on_tensors_are_recorded(name):
    call, reference, vjp = _NUMPY_CASES[name]
    t = cr.tensor(A, requires_grad=True)
    out = call(t)
    assert isinstance(out, cr.Tensor), name
    assert out.requires_grad and not out.is_leaf, name
    expected = reference(A)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-13)
    g = RNG.normal(size=np.shape(expected))
    (out * g).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), vjp(A, g), rtol=1e-12, atol=1e-15)


def test_numpy_where_with_tensor_condition_and_two_tensors():
    x = cr.tensor(A, requires_grad=True)
    y = cr.tensor(G_UP, requires_grad=True)
    out = np.where(x > 0, x, y * 2.0)
    assert isinstance(out, cr.Tensor)
    out.sum().backward()
    mask = A > 0
    np.testing.assert_array_equal(x.grad.numpy(), mask.astype(float))
    np.testing.assert_array_equal(y.grad.numpy(), 2.0 * (~mask))


def test_numpy_on_tensors_without_grad_still_returns_tensors():
    t = cr.tensor(A)
    out = np.tanh(t)
    assert isinstance(out, cr.Tensor) and not out.requires_grad
    np.testing.assert_allclose(out.numpy(), np.tanh(A))


def test_tensor_of_a_list_of_tracked_tensors_points_to_stack():
    a = cr.tensor(1.0, requires_grad=True)
    with pytest.raises(TypeError, match="cr.stack"):
        cr.tensor([a, a * 2])
    stacked = cr.stack([a, a * 2])
    stacked.sum().backward()
    assert float(a.grad) == 3.0


@pytest.mark.parametrize(
    ("x", "indices", "kind", "message"),
    [
        (np.ones((2, 3)), np.array([0, 1]), ValueError, "indices[:, None]"),
        (np.ones((2, 3)), np.array([[0.5], [1.0]]), IndexError, "integer"),
        (np.ones((2, 3)), np.array([[3], [0]]), IndexError, "out of bounds"),
        (np.ones((2, 3)), np.array([[0], [1], [2]]), IndexError, "broadcast"),
        (np.array(2.0), np.array(0), ValueError, "0-d"),
    ],
)
def test_take_along_axis_errors_name_the_op_and_the_shapes(x, indices, kind, message):
    t = cr.tensor(x, requires_grad=True)
    with pytest.raises(kind) as err:
        cr.take_along_axis(t, indices, axis=-1)
    text = str(err.value)
    assert text.startswith("take_along_axis: inputs ") and message in text
    assert f"{tuple(x.shape)} float64" in text and t.grad is None
