"""Tensor: dtype rules, attributes, operators, indexing, in-place updates, constructors."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr

RNG = np.random.default_rng(1234)


def _leaf(values, dtype=np.float64):
    return cr.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


# -- dtype rules -------------------------------------------------------------------------
def test_python_floats_give_float64_and_ints_give_int64():
    assert cr.tensor(1.5).dtype == np.float64
    assert cr.tensor([1.0, 2.0]).dtype == np.float64
    assert cr.tensor(3).dtype == np.int64
    assert cr.tensor([1, 2, 3]).dtype == np.int64
    assert cr.tensor([True, False]).dtype == np.bool_


def test_explicit_dtype_is_honoured():
    t = cr.tensor([1, 2], dtype="float32")
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t.numpy(), np.array([1, 2], dtype=np.float32))
    assert cr.tensor([1, 2], dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize(
    "name,fn",
    [
        ("scalar multiply", lambda x: x * 2.0),
        ("reflected multiply", lambda x: 2.0 * x),
        ("add", lambda x: x + 1.5),
        ("rsub", lambda x: 1.5 - x),
        ("power", lambda x: x**2.0),
        ("rpow", lambda x: 2.0**x),
        ("rdiv", lambda x: 3.0 / x),
        ("exp / scalar", lambda x: cr.exp(x) / 3.0),
        ("tanh * float32", lambda x: cr.tanh(x) * np.float32(2.0)),
        ("mean", lambda x: cr.mean(x * x)),
        ("matmul float32", lambda x: x @ np.ones((3, 2), dtype=np.float32)),
    ],
)
def test_float32_stays_float32_with_float32_gradients(name, fn):
    x = cr.tensor(np.array([0.5, 1.5, 2.0], dtype=np.float32), requires_grad=True)
    y = fn(x)
    assert y.dtype == np.float32, name
    cr.sum(y).backward()
    assert x.grad is not None
    assert x.grad.dtype == np.float32, name


def test_float32_times_python_float_follows_numpy2_weak_scalar_promotion():
    a = np.array([1.0, 2.0], dtype=np.float32)
    t = cr.tensor(a)
    assert (t * 2.0).dtype == (a * 2.0).dtype == np.float32
    assert (2.0 * t).dtype == np.float32
    assert (t + 1).dtype == np.float32
    # A float64 *array* promotes, as in NumPy; the gradient keeps the input's dtype.
    x = cr.tensor(a, requires_grad=True)
    y = x * np.ones(2, dtype=np.float64)
    assert y.dtype == (a * np.ones(2)).dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), np.ones(2, dtype=np.float32))


def test_int_tensor_requires_grad_raises_type_error_naming_dtype():
    with pytest.raises(TypeError, match="int64"):
        cr.tensor([1, 2], requires_grad=True)
    t = cr.tensor([1, 2])
    with pytest.raises(TypeError, match="int64"):
        t.requires_grad = True
    with pytest.raises(TypeError, match="int64"):
        cr.arange(3, requires_grad=True)
    with pytest.raises(TypeError, match="int32"):
        cr.tensor(np.array([1, 2], dtype=np.int32), requires_grad=True)


def test_data_is_copied():
    a = np.array([1.0, 2.0, 3.0])
    t = cr.tensor(a)
    a[0] = 99.0
    assert t.numpy()[0] == 1.0
    assert not np.shares_memory(t.data, a)
    u = cr.tensor(t)
    t.data[1] = -5.0
    assert u.numpy()[1] == 2.0


# -- attributes --------------------------------------------------------------------------
def test_basic_attributes():
    a = RNG.normal(size=(2, 3, 4))
    t = cr.tensor(a, requires_grad=True)
    assert t.shape == (2, 3, 4)
    assert t.ndim == 3
    assert t.dtype == np.float64
    assert t.size == 24
    assert t.grad is None
    assert t.requires_grad is True
    assert t.is_leaf is True
    assert cr.tensor(1.0).requires_grad is False
    y = t * 2
    assert y.is_leaf is False
    assert y.requires_grad is True
    np.testing.assert_array_equal(t.numpy(), a)
    assert isinstance(t.numpy(), np.ndarray)


def test_transpose_attribute_and_its_gradient():
    a = RNG.normal(size=(2, 3))
    w = RNG.normal(size=(3, 2))
    m = cr.tensor(a, requires_grad=True)
    assert m.T.shape == (3, 2)
    np.testing.assert_array_equal(m.T.numpy(), a.T)
    cr.sum(m.T * w).backward()
    np.testing.assert_allclose(m.grad.numpy(), w.T)


def test_item_float_array_len_iter():
    assert cr.tensor(3.25).item() == 3.25
    assert isinstance(cr.tensor(3.25).item(), float)
    assert float(cr.tensor([2.5])) == 2.5
    with pytest.raises(ValueError):
        cr.tensor([1.0, 2.0]).item()
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    t = cr.tensor(a)
    np.testing.assert_array_equal(np.asarray(t), a)
    np.testing.assert_array_equal(np.asarray(t, dtype=np.float32), a.astype(np.float32))
    assert np.asarray(t, dtype=np.float32).dtype == np.float32
    assert len(t) == 2
    rows = list(t)
    assert len(rows) == 2
    for row, expected in zip(rows, a):
        assert isinstance(row, cr.Tensor)
        np.testing.assert_array_equal(row.numpy(), expected)
    with pytest.raises(TypeError):
        len(cr.tensor(1.0))


def test_iteration_is_recorded():
    v = _leaf([1.0, 2.0, 3.0])
    total = v[0] * 0.0
    for i, e in enumerate(iter(v)):
        total = total + e * (i + 1)
    total.backward()
    np.testing.assert_array_equal(v.grad.numpy(), [1.0, 2.0, 3.0])


def test_detach_leaves_the_graph_and_shares_memory():
    x = _leaf([1.0, 2.0])
    y = x * 3
    d = y.detach()
    assert d.is_leaf and not d.requires_grad
    assert np.shares_memory(d.data, y.data)
    np.testing.assert_array_equal(d.numpy(), y.numpy())
    z = (d * x).sum()  # d is a constant: dz/dx = d
    z.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 6.0])


def test_retain_grad_on_a_non_leaf():
    w = _leaf([1.0, 2.0])
    h = w * 3
    h.retain_grad()
    other = w * 5  # a non-leaf that did not ask
    (h * h + other).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.numpy())
    np.testing.assert_allclose(w.grad.numpy(), 18 * w.numpy() + 5)
    assert other.grad is None


# -- operators ---------------------------------------------------------------------------
_A = RNG.normal(size=(3,)) + 3.0  # positive: safe for division and powers
_B = RNG.normal(size=(3,)) + 3.0

_BINARY = {
    "+": (lambda x, y: x + y, lambda a, b: (np.ones_like(a), np.ones_like(b))),
    "-": (lambda x, y: x - y, lambda a, b: (np.ones_like(a), -np.ones_like(b))),
    "*": (lambda x, y: x * y, lambda a, b: (b, a)),
    "/": (lambda x, y: x / y, lambda a, b: (1 / b, -a / b**2)),
    "**": (lambda x, y: x**y, lambda a, b: (b * a ** (b - 1), a**b * np.log(a))),
}


@pytest.mark.parametrize("symbol", list(_BINARY))
@pytest.mark.parametrize("kind", ["tensor-tensor", "tensor-ndarray", "ndarray-tensor"])
def test_binary_operators_values_and_gradients(symbol, kind):
    fn, derivs = _BINARY[symbol]
    da, db = derivs(_A, _B)
    x, y = _leaf(_A), _leaf(_B)
    if kind == "tensor-tensor":
        out = fn(x, y)
    elif kind == "tensor-ndarray":
        out = fn(x, _B)
    else:
        out = fn(_A, y)
    assert isinstance(out, cr.Tensor)
    assert out.requires_grad and not out.is_leaf
    np.testing.assert_allclose(out.numpy(), fn(_A, _B))
    out.sum().backward()
    if kind != "ndarray-tensor":
        np.testing.assert_allclose(x.grad.numpy(), da, rtol=1e-12)
    else:
        assert x.grad is None
    if kind != "tensor-ndarray":
        np.testing.assert_allclose(y.grad.numpy(), db, rtol=1e-12)
    else:
        assert y.grad is None


@pytest.mark.parametrize("symbol", list(_BINARY))
def test_binary_operators_with_python_numbers_on_both_sides(symbol):
    fn, derivs = _BINARY[symbol]
    c = 1.75
    x = _leaf(_A)
    out = fn(x, c)
    np.testing.assert_allclose(out.numpy(), fn(_A, c))
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), derivs(_A, np.full(3, c))[0], rtol=1e-12)
    y = _leaf(_A)
    out = fn(c, y)
    assert isinstance(out, cr.Tensor) and out.requires_grad
    np.testing.assert_allclose(out.numpy(), fn(c, _A))
    out.sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), derivs(np.full(3, c), _A)[1], rtol=1e-12)


def test_ndarray_minus_tensor_and_scalar_times_tensor_are_recorded():
    t = _leaf([1.0, 2.0, 3.0])
    a = np.array([[10.0, 20.0, 30.0], [1.0, 1.0, 1.0]])
    r = a - t
    assert isinstance(r, cr.Tensor) and r.op == "subtract"
    np.testing.assert_array_equal(r.numpy(), a - t.numpy())
    r.sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [-2.0, -2.0, -2.0])
    t.grad = None
    s = 2.0 * t
    assert isinstance(s, cr.Tensor) and s.op == "multiply"
    s.sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [2.0, 2.0, 2.0])


def test_matmul_both_sides():
    a = RNG.normal(size=(4, 3))
    b = RNG.normal(size=(3, 2))
    g = RNG.normal(size=(4, 2))
    x, w = cr.tensor(a, requires_grad=True), cr.tensor(b, requires_grad=True)
    out = x @ w
    np.testing.assert_allclose(out.numpy(), a @ b)
    (out * g).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), g @ b.T)
    np.testing.assert_allclose(w.grad.numpy(), a.T @ g)

    w2 = cr.tensor(b, requires_grad=True)
    out = a @ w2  # ndarray @ tensor -> Tensor.__rmatmul__
    assert isinstance(out, cr.Tensor) and out.op == "matmul"
    (out * g).sum().backward()
    np.testing.assert_allclose(w2.grad.numpy(), a.T @ g)

    x2 = cr.tensor(a, requires_grad=True)
    out = x2 @ b
    assert isinstance(out, cr.Tensor)
    (out * g).sum().backward()
    np.testing.assert_allclose(x2.grad.numpy(), g @ b.T)


def test_unary_negative():
    x = _leaf([1.0, -2.0])
    y = -x
    assert y.op == "negative"
    np.testing.assert_array_equal(y.numpy(), [-1.0, 2.0])
    (y * np.array([3.0, 5.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [-3.0, -5.0])


def test_comparisons_have_no_gradient():
    a = np.array([1.0, 2.0, 3.0])
    x = cr.tensor(a, requires_grad=True)
    checks = {
        "==": (x == 2.0, a == 2.0),
        "!=": (x != 2.0, a != 2.0),
        "<": (x < 2.0, a < 2.0),
        "<=": (x <= 2.0, a <= 2.0),
        ">": (x > 2.0, a > 2.0),
        ">=": (x >= 2.0, a >= 2.0),
        "tensor == tensor": (x == x, a == a),
    }
    for name, (got, expected) in checks.items():
        assert isinstance(got, cr.Tensor), name
        assert got.dtype == np.bool_, name
        assert not got.requires_grad, name
        np.testing.assert_array_equal(got.numpy(), expected, err_msg=name)


# -- indexing ----------------------------------------------------------------------------
def test_getitem_basic_slices_gradient():
    a = np.arange(12.0).reshape(3, 4)
    A = cr.tensor(a, requires_grad=True)
    r = A[1:, ::2]
    np.testing.assert_array_equal(r.numpy(), a[1:, ::2])
    weight = RNG.normal(size=r.shape)
    (r * weight).sum().backward()
    expected = np.zeros_like(a)
    expected[1:, ::2] = weight
    np.testing.assert_array_equal(A.grad.numpy(), expected)


def test_getitem_int_and_none_and_ellipsis():
    a = np.arange(24.0).reshape(2, 3, 4)
    A = cr.tensor(a, requires_grad=True)
    r = A[1, ..., None, 2]
    np.testing.assert_array_equal(r.numpy(), a[1, ..., None, 2])
    r.sum().backward()
    expected = np.zeros_like(a)
    expected[1, :, 2] = 1.0
    np.testing.assert_array_equal(A.grad.numpy(), expected)


def test_getitem_repeated_indices_scatter_add():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    t = cr.tensor(a, requires_grad=True)
    idx = [0, 0, 3, 0]
    w = np.array([1.0, 10.0, 100.0, 1000.0])
    (t[idx] * w).sum().backward()
    expected = np.zeros(4)
    np.add.at(expected, idx, w)
    np.testing.assert_array_equal(t.grad.numpy(), expected)

    t.grad = None
    (t[np.array(idx)] * w).sum().backward()  # ndarray index
    np.testing.assert_array_equal(t.grad.numpy(), expected)

    t.grad = None
    (t[cr.tensor(np.array(idx))] * w).sum().backward()  # integer Tensor index
    np.testing.assert_array_equal(t.grad.numpy(), expected)


def test_getitem_two_dimensional_advanced_repeated():
    a = np.arange(12.0).reshape(3, 4)
    A = cr.tensor(a, requires_grad=True)
    rows, cols = [0, 0, 2], [1, 1, 3]
    r = A[rows, cols]
    np.testing.assert_array_equal(r.numpy(), a[rows, cols])
    r.sum().backward()
    expected = np.zeros_like(a)
    np.add.at(expected, (rows, cols), 1.0)
    np.testing.assert_array_equal(A.grad.numpy(), expected)


def test_getitem_boolean_mask():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    mask = a > 2.5
    t = cr.tensor(a, requires_grad=True)
    r = t[mask]
    np.testing.assert_array_equal(r.numpy(), a[mask])
    (r * r).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.where(mask, 2 * a, 0.0))

    t.grad = None
    r = t[cr.tensor(mask)]  # a boolean Tensor as the mask
    r.sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), mask.astype(np.float64))

    m2 = RNG.normal(size=(3, 4))
    M = cr.tensor(m2, requires_grad=True)
    M[m2 > 0].sum().backward()
    np.testing.assert_array_equal(M.grad.numpy(), (m2 > 0).astype(np.float64))


# -- in-place updates --------------------------------------------------------------------
@pytest.mark.parametrize(
    "symbol,apply",
    [
        ("+=", lambda t, v: t.__iadd__(v)),
        ("-=", lambda t, v: t.__isub__(v)),
        ("*=", lambda t, v: t.__imul__(v)),
        ("/=", lambda t, v: t.__itruediv__(v)),
    ],
)
def test_inplace_under_no_grad_updates_the_same_object(symbol, apply):
    ref = {"+=": np.add, "-=": np.subtract, "*=": np.multiply, "/=": np.divide}[symbol]
    a = np.array([1.0, 2.0, 4.0])
    p = cr.tensor(a, requires_grad=True)
    data_before = p.data
    with cr.no_grad():
        result = apply(p, 0.5)
    assert result is p
    assert p.data is data_before  # the buffer itself was written
    np.testing.assert_array_equal(p.numpy(), ref(a, 0.5))
    assert p.is_leaf and p.requires_grad


def test_inplace_statement_on_parameter_keeps_identity_and_dtype():
    p = cr.tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    alias = p
    grad = np.array([0.5, 0.25], dtype=np.float32)
    with cr.no_grad():
        p -= 0.1 * cr.tensor(grad)
    assert alias is p
    assert p.dtype == np.float32
    np.testing.assert_allclose(p.numpy(), np.array([1.0, 2.0], np.float32) - 0.1 * grad)


@pytest.mark.parametrize(
    "apply",
    [
        lambda t: t.__iadd__(1.0),
        lambda t: t.__isub__(1.0),
        lambda t: t.__imul__(2.0),
        lambda t: t.__itruediv__(2.0),
    ],
)
def test_inplace_on_leaf_requiring_grad_raises(apply):
    p = _leaf([1.0, 2.0])
    before = p.numpy().copy()
    with pytest.raises(RuntimeError):
        apply(p)
    np.testing.assert_array_equal(p.numpy(), before)


def test_inplace_on_non_leaf_rebinds_to_a_new_recorded_tensor():
    a = np.array([1.0, 2.0, 3.0])
    w = cr.tensor(a, requires_grad=True)
    h = w * 2.0
    old = h
    h += w  # h = 2w + w
    assert h is not old
    assert h.op == "add"
    np.testing.assert_array_equal(old.numpy(), 2 * a)  # the earlier value is untouched
    h *= w  # 3w^2
    h -= 1.0  # 3w^2 - 1
    h /= 2.0  # (3w^2 - 1)/2
    np.testing.assert_allclose(h.numpy(), (3 * a**2 - 1) / 2)
    (h.sum() + old.sum()).backward()
    np.testing.assert_allclose(w.grad.numpy(), 3 * a + 2.0)


def test_inplace_modification_after_use_is_detected():
    w = _leaf([1.0, 2.0])
    u = _leaf([3.0, 4.0])
    s = (w * u).sum()
    with cr.no_grad():
        u += 1.0
    with pytest.raises(RuntimeError, match="modified in place"):
        s.backward(retain_graph=True)


def test_inplace_modification_after_first_backward_is_detected():
    w = _leaf([1.0, 2.0])
    u = _leaf([3.0, 4.0])
    s = (cr.tanh(w) * u).sum()
    s.backward(retain_graph=True)
    with cr.no_grad():
        w *= 2.0
    with pytest.raises(RuntimeError, match="modified in place"):
        s.backward(retain_graph=True)


def test_inplace_modification_of_a_constant_input_is_detected():
    # x does not require grad, but multiply saved it for w's gradient (g * x): changing it
    # afterwards would silently give the wrong gradient.
    w = _leaf([1.0, 2.0])
    x = cr.tensor([3.0, 4.0])
    s = (w * x).sum()
    x += 10.0
    with pytest.raises(RuntimeError, match="modified in place"):
        s.backward(retain_graph=True)


def test_inplace_modification_of_a_saved_output_is_detected():
    # tanh's VJP uses its own output; scaling the output in place corrupts the gradient.
    w = _leaf([0.5, 1.0])
    h = cr.tanh(w)
    with cr.no_grad():
        h *= 0.0
    with pytest.raises(RuntimeError, match="modified in place"):
        h.backward(np.ones(2), retain_graph=True)


# -- constructors ------------------------------------------------------------------------
def test_zeros_ones_full_empty():
    z = cr.zeros((2, 3))
    assert z.shape == (2, 3) and z.dtype == np.float64
    np.testing.assert_array_equal(z.numpy(), np.zeros((2, 3)))
    o = cr.ones(4, dtype="float32")
    assert o.shape == (4,) and o.dtype == np.float32
    np.testing.assert_array_equal(o.numpy(), np.ones(4))
    f = cr.full((2, 2), 7.5)
    np.testing.assert_array_equal(f.numpy(), np.full((2, 2), 7.5))
    assert cr.full((2,), 3).dtype == np.full((2,), 3).dtype
    assert cr.empty((3,)).shape == (3,)
    for t in (z, o, f):
        assert t.is_leaf and not t.requires_grad
    p = cr.zeros((2,), requires_grad=True)
    assert p.requires_grad and p.is_leaf
    (p * 3).sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), [3.0, 3.0])


def test_arange_linspace_eye():
    np.testing.assert_array_equal(cr.arange(5).numpy(), np.arange(5))
    assert cr.arange(5).dtype == np.int64
    np.testing.assert_array_equal(cr.arange(0.0, 1.0, 0.25).numpy(), np.arange(0.0, 1.0, 0.25))
    a = cr.arange(0.0, 2.0, 0.5, requires_grad=True)
    assert a.requires_grad
    lin = cr.linspace(-1, 1, 7)
    np.testing.assert_allclose(lin.numpy(), np.linspace(-1, 1, 7))
    assert lin.dtype == np.float64
    np.testing.assert_allclose(
        cr.linspace(0, 1, 4, endpoint=False).numpy(), np.linspace(0, 1, 4, endpoint=False)
    )
    np.testing.assert_array_equal(cr.eye(3).numpy(), np.eye(3))
    np.testing.assert_array_equal(cr.eye(2, 4, k=1).numpy(), np.eye(2, 4, k=1))
    assert cr.eye(3, dtype="float32").dtype == np.float32


def test_like_constructors_follow_shape_and_dtype():
    src32 = cr.tensor(np.ones((2, 3), dtype=np.float32))
    arr = np.arange(6).reshape(3, 2)
    for like in (src32, arr):
        shape = tuple(like.shape)
        dtype = like.dtype
        z = cr.zeros_like(like)
        o = cr.ones_like(like)
        f = cr.full_like(like, 2)
        for t, expected in ((z, 0), (o, 1), (f, 2)):
            assert t.shape == shape and t.dtype == dtype
            np.testing.assert_array_equal(t.numpy(), np.full(shape, expected, dtype=dtype))
    assert cr.zeros_like(arr, dtype="float64").dtype == np.float64
    g = cr.ones_like(src32, requires_grad=True)
    assert g.requires_grad and g.dtype == np.float32


# -- random ------------------------------------------------------------------------------
def test_random_generator_is_reproducible():
    a = cr.random.default_rng(7).normal(size=(3, 2))
    b = cr.random.default_rng(7).normal(size=(3, 2))
    c = cr.random.default_rng(8).normal(size=(3, 2))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), c.numpy())
    np.testing.assert_array_equal(a.numpy(), np.random.default_rng(7).normal(size=(3, 2)))
    u1 = cr.random.default_rng(3).uniform(-2.0, 5.0, size=(1000,))
    u2 = cr.random.default_rng(3).uniform(-2.0, 5.0, size=(1000,))
    np.testing.assert_array_equal(u1.numpy(), u2.numpy())
    assert u1.numpy().min() >= -2.0 and u1.numpy().max() < 5.0


def test_random_module_level_seed():
    cr.random.seed(11)
    a = cr.random.normal(size=4)
    cr.random.seed(11)
    b = cr.random.normal(size=4)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    cr.random.seed(11)
    r1 = cr.random.uniform(size=3)
    cr.random.seed(11)
    r2 = cr.random.uniform(size=3)
    np.testing.assert_array_equal(r1.numpy(), r2.numpy())


def test_random_dtype_and_requires_grad():
    rng = cr.random.default_rng(0)
    w = rng.normal(size=(3,), dtype="float32", requires_grad=True)
    assert w.dtype == np.float32 and w.requires_grad and w.is_leaf
    (w * w).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), 2 * w.numpy())
    assert w.grad.dtype == np.float32
    assert rng.standard_normal(size=(2,)).dtype == np.float64
    assert rng.random(size=(2,)).dtype == np.float64
    ints = rng.integers(0, 10, size=50)
    assert ints.dtype.kind == "i"
    assert ints.numpy().min() >= 0 and ints.numpy().max() < 10
    perm = rng.permutation(6)
    np.testing.assert_array_equal(np.sort(perm.numpy()), np.arange(6))
    assert not rng.normal(size=(2,)).requires_grad


def test_a_deep_copied_graph_is_independent_and_differentiates_the_same():
    import copy

    x = cr.tensor([1.0, -2.0, 0.5], requires_grad=True)
    y = cr.sum(cr.tanh(x * 2.0) * cr.tensor([1.0, 2.0, 3.0]))
    z = copy.deepcopy(y)  # the node, its inputs and its leaves, all copied
    z.backward()
    assert x.grad is None  # the copy's leaves got the gradient, not the original's
    y.backward()
    want = (1 - np.tanh(2 * x.numpy()) ** 2) * 2 * np.array([1.0, 2.0, 3.0])
    assert np.allclose(x.grad.numpy(), want, rtol=1e-14)


def test_integer_and_boolean_results_never_require_grad():
    # PyTorch's rule: x.astype(int) is a constant, not a path for gradients
    x = cr.tensor([1.5, 2.5, -0.5], requires_grad=True)
    for y in (x.astype("int64"), x.astype(bool), cr.astype(x, dtype="int32")):
        assert not y.requires_grad and y.is_leaf
    assert x.astype("float32").requires_grad
    g = cr.grad(lambda v: cr.sum(v * v.astype("int64")))(np.array([1.5, 2.5, -0.5]))
    np.testing.assert_array_equal(g, [1.0, 2.0, 0.0])  # the integer factor as a constant


def test_numpy_of_a_tensor_that_requires_grad_cannot_be_written_behind_the_graph():
    x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * x
    view = x.numpy()
    with pytest.raises(ValueError, match="read-only"):
        view[0] = 10.0  # would have made the gradient [20, 4, 6], silently
    y.sum().backward()
    assert x.grad.tolist() == [2.0, 4.0, 6.0]
    np.testing.assert_array_equal(view, [1.0, 2.0, 3.0])  # still the value, no copy needed
    constant = cr.tensor([1.0, 2.0])  # no gradient, but a graph may keep it all the same
    with pytest.raises(ValueError, match="read-only"):
        constant.numpy()[0] = 5.0
    constant.data[0] = 5.0  # .data is the array to write
    assert constant.tolist() == [5.0, 2.0]


def test_writes_through_data_after_a_recorded_op_are_refused_at_backward():
    # the gradient would silently be [20, 4, 6]: backward names the op, shape and versions
    x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * x
    x.data[0] = 10.0
    with pytest.raises(RuntimeError, match=r"multiply \(shape \(3,\), float64\).*version"):
        y.sum().backward()
    # a constant the rule reads (d(w * d)/dw = d), written through .data or reassigned
    for write in ("item", "assign"):
        w, d = cr.tensor([1.0, 1.0], requires_grad=True), cr.tensor([2.0, 3.0])
        y = (w * d).sum()
        if write == "item":
            d.data[0] = 5.0
        else:
            d.data = np.array([5.0, 3.0])
        with pytest.raises(RuntimeError, match="modified in place"):
            y.backward()
        assert w.grad is None


def test_reading_with_numpy_counts_nothing_and_data_is_for_writing():
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    assert w.numpy().tolist() == [1.0, 2.0] and w.item if w.size == 1 else True
    loss.backward()  # reading through numpy() left the graph usable
    assert w.grad.tolist() == [2.0, 4.0]
    # the training idiom: write through .data once the pass is done
    for _ in range(3):
        loss = (w * w).sum()
        w.grad = None
        loss.backward()
        with cr.no_grad():
            w.data -= 0.25 * w.grad.numpy()
    np.testing.assert_allclose(w.numpy(), np.array([1.0, 2.0]) * 0.5**3)
