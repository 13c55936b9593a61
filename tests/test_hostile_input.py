"""Hostile input: values, types and structures that a careless or adversarial caller hands the
library. Each either gets PyTorch's documented answer or an error that names the op (or the
object), the shapes and dtypes, and what to do; never a crash from inside the library
(ZeroDivisionError, RecursionError, an error that fails to build its own message)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import chainrule as cr


# -- var and std with no degrees of freedom (ddof >= n, an empty axis) ----------------------
def _value_and_grad(fn, x0, **kwargs):
    """fn's value on x0 and the gradient of its sum, with NumPy's warnings silenced."""
    x = cr.tensor(x0, requires_grad=True)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        out = fn(x, **kwargs)
        cr.sum(out).backward()
    return out.numpy(), x.grad.numpy()


@pytest.mark.parametrize("fn", [cr.var, cr.std], ids=["var", "std"])
def test_var_std_over_an_empty_axis_are_nan_with_an_empty_gradient(fn):
    value, grad = _value_and_grad(fn, np.zeros((3, 0)), axis=1)
    assert value.shape == (3,) and np.all(np.isnan(value))
    assert grad.shape == (3, 0)


@pytest.mark.parametrize("ddof", [2, 3, 5])
def test_var_with_ddof_at_least_n_follows_pytorch(ddof):
    x0 = np.array([[1.0, 3.0], [2.0, 2.0]])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        want = np.var(x0, axis=1, ddof=ddof)
    value, grad = _value_and_grad(cr.var, x0, axis=1, ddof=ddof)
    np.testing.assert_array_equal(value, want)  # NumPy's (and PyTorch's) inf and NaN
    # 2 (x_i - mean) / 0: +-inf where x_i differs from the mean, NaN where it equals it
    assert grad[0].tolist() == [-np.inf, np.inf]
    assert np.all(np.isnan(grad[1]))


@pytest.mark.parametrize("ddof", [1, 2])
def test_std_with_ddof_at_least_n_has_a_nan_gradient(ddof):
    value, grad = _value_and_grad(cr.std, np.array([4.0]), ddof=ddof)
    assert np.isnan(value)
    assert np.all(np.isnan(grad))


def test_var_with_no_degrees_of_freedom_in_forward_mode_and_second_order():
    x0 = np.array([1.0, 3.0])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        _, tangent = cr.jvp(lambda x: cr.var(x, ddof=2), (x0,), (np.array([1.0, 0.0]),))
        assert np.isinf(tangent)
        hess = cr.hessian(lambda x: cr.var(x, ddof=2))(x0)
    assert not np.all(np.isfinite(np.asarray(hess)))
