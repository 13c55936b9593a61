"""cr.linalg (chainrule/ops/matrices.py): NumPy's values through np.linalg on Tensors, and
gradients and tangents against float64 finite differences, for every ord of norm."""

from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule as cr

RNG = np.random.default_rng(3)
A = RNG.normal(size=(3, 3)) + 3 * np.eye(3)
B = RNG.normal(size=(3, 4))
SPD = A @ A.T + np.diag([1.0, 2.0, 3.0])
STACK = RNG.normal(size=(2, 3, 3)) + 3 * np.eye(3)

NORMS = [
    ("vector 2", B[0], {}),
    ("vector 1", B[0], {"ord": 1}),
    ("vector inf", B[0], {"ord": math.inf}),
    ("vector -inf", B[0], {"ord": -math.inf}),
    ("vector 3", B[0], {"ord": 3}),
    ("vector -1", B[0], {"ord": -1}),
    ("rows", B, {"axis": 1}),
    ("columns keepdims", B, {"axis": 0, "keepdims": True}),
    ("frobenius", B, {}),
    ("fro", B, {"ord": "fro"}),
    ("matrix 1", B, {"ord": 1}),
    ("matrix -1", B, {"ord": -1}),
    ("matrix inf", B, {"ord": math.inf}),
    ("matrix -inf", B, {"ord": -math.inf}),
    ("spectral", B, {"ord": 2}),
    ("smallest singular value", B, {"ord": -2}),
    ("nuclear", B, {"ord": "nuc"}),
    ("stack of matrices", STACK, {"axis": (1, 2), "ord": 2}),
    ("matrix keepdims", B, {"ord": 1, "axis": (0, 1), "keepdims": True}),
    ("3-D flattened", STACK, {}),
]


@pytest.mark.parametrize("name, x, kw", NORMS, ids=[n[0] for n in NORMS])
def test_norm_gives_numpy_s_value_and_its_derivative(name, x, kw):
    got = np.linalg.norm(cr.tensor(x), **kw)
    np.testing.assert_allclose(got.numpy(), np.linalg.norm(x, **kw), rtol=1e-10)
    assert cr.gradcheck(lambda t: cr.sum(cr.linalg.norm(t, **kw)), x, check_forward=True)


def test_the_norm_of_zero_has_gradient_zero():
    for ord_ in (None, 3):
        g = cr.grad(lambda t: cr.linalg.norm(t, ord_))(np.zeros(3))
        assert g.tolist() == [0.0, 0.0, 0.0]


def test_vector_0_norm_counts_and_has_no_gradient():
    x = cr.tensor([0.0, 2.0, -1.0], requires_grad=True)
    n = cr.linalg.norm(x, 0)
    assert float(n) == 2.0 and not n.requires_grad


@pytest.mark.parametrize(
    "name, call",
    [
        ("inv", lambda m: np.linalg.inv(m)),
        ("solve", lambda m: np.linalg.solve(m, np.arange(6.0).reshape(3, 2))),
        ("det", lambda m: np.linalg.det(m)),
        ("slogdet", lambda m: np.linalg.slogdet(m)[1]),
        ("cholesky", lambda m: np.linalg.cholesky(m @ np.swapaxes(m, -1, -2))),
        ("eigvalsh", lambda m: np.linalg.eigvalsh(m + np.swapaxes(m, -1, -2))),
        ("matrix_power", lambda m: np.linalg.matrix_power(m, 3)),
        ("matrix_power -1", lambda m: np.linalg.matrix_power(m, -1)),
        ("matrix_power 0", lambda m: np.linalg.matrix_power(m, 0)),
    ],
)
@pytest.mark.parametrize("x", [A, STACK], ids=["matrix", "stack"])
def test_numpy_s_linalg_on_tensors(name, call, x):
    got = call(cr.tensor(x))
    np.testing.assert_allclose(got.numpy(), call(x), rtol=1e-10, atol=1e-12)
    assert cr.gradcheck(lambda t: cr.sum(call(t) ** 2), x, check_forward=True)


def test_cholesky_upper_and_eigh_pairs():
    u = cr.linalg.cholesky(cr.tensor(SPD), upper=True).numpy()
    np.testing.assert_allclose(u.T @ u, SPD, rtol=1e-12)
    w, v = cr.linalg.eigh(cr.tensor(SPD))
    np.testing.assert_allclose(v.numpy() @ np.diag(w.numpy()) @ v.numpy().T, SPD, rtol=1e-10)


def test_the_gradient_of_log_det_is_the_inverse_transpose():
    g = cr.grad(lambda m: cr.linalg.slogdet(m)[1])(A)
    np.testing.assert_allclose(g, np.linalg.inv(A).T, rtol=1e-12)
    sign, _ = cr.linalg.slogdet(cr.tensor(A, requires_grad=True))
    assert not sign.requires_grad


def test_solve_uses_no_inverse_of_its_own_and_matches_closed_forms():
    b = np.arange(3.0)
    ga, gb = cr.grad(lambda a, v: cr.sum(cr.linalg.solve(a, v)), argnums=(0, 1))(A, b)
    x = np.linalg.solve(A, b)
    lam = np.linalg.solve(A.T, np.ones(3))
    np.testing.assert_allclose(gb, lam, rtol=1e-12)
    np.testing.assert_allclose(ga, -np.outer(lam, x), rtol=1e-12)


def test_non_square_matrices_are_refused_with_the_shape():
    for fn in (cr.linalg.inv, cr.linalg.det, cr.linalg.cholesky, cr.linalg.eigvalsh):
        with pytest.raises(ValueError, match=r"square matrices .*\(3, 4\)"):
            fn(cr.tensor(B))


TALL = RNG.normal(size=(5, 3))


@pytest.mark.parametrize(
    "x", [A, TALL, TALL.T.copy(), STACK], ids=["square", "tall", "wide", "stack"]
)
def test_svd_reconstructs_and_matches_numpy_s_singular_values(x):
    u, s, vh = np.linalg.svd(cr.tensor(x), full_matrices=False)
    np.testing.assert_allclose(s.numpy(), np.linalg.svd(x, compute_uv=False), rtol=1e-12)
    rebuilt = (u.numpy() * s.numpy()[..., None, :]) @ vh.numpy()
    np.testing.assert_allclose(rebuilt, x, atol=1e-12)
    # functions that do not depend on the singular vectors' signs
    assert cr.gradcheck(lambda t: cr.sum(cr.linalg.svd(t, compute_uv=False) ** 3), x,
                        check_forward=True)  # fmt: skip
    assert cr.gradcheck(lambda t: cr.sum(_first_pair(t) * np.arange(x.shape[-1])), x,
                        check_forward=True)  # fmt: skip


def _first_pair(t):
    u, _, vh = cr.linalg.svd(t, full_matrices=False)
    return u[..., :, :1] * vh[..., :1, :]


def test_the_gradient_of_the_nuclear_norm_is_u_vh():
    u, _, vh = np.linalg.svd(A)
    g = cr.grad(lambda t: cr.sum(cr.linalg.svd(t, compute_uv=False)))(A)
    np.testing.assert_allclose(g, u @ vh, rtol=1e-10)


@pytest.mark.parametrize("x", [A, TALL, TALL.T.copy()], ids=["square", "tall", "wide"])
def test_pinv_and_lstsq_match_numpy(x):
    np.testing.assert_allclose(np.linalg.pinv(cr.tensor(x)).numpy(), np.linalg.pinv(x), atol=1e-12)
    assert cr.gradcheck(lambda t: cr.sum(cr.linalg.pinv(t) ** 2), x, check_forward=True)
    b = RNG.normal(size=(x.shape[0], 2))
    got = np.linalg.lstsq(cr.tensor(x), cr.tensor(b))
    want = np.linalg.lstsq(x, b)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy() if isinstance(g, cr.Tensor) else g, w, atol=1e-10)
    assert cr.gradcheck(lambda t, c: cr.sum(cr.linalg.lstsq(t, c)[0] ** 2), x, b)


def test_full_svd_of_a_rectangle_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="full_matrices=False"):
        cr.linalg.svd(cr.tensor(TALL))


@pytest.mark.parametrize("x", [A, TALL, STACK], ids=["square", "tall", "stack"])
def test_qr_matches_numpy_and_has_the_derivative(x):
    q, r = np.linalg.qr(cr.tensor(x))
    want_q, want_r = np.linalg.qr(x)
    np.testing.assert_allclose(q.numpy(), want_q, atol=1e-12)
    np.testing.assert_allclose(r.numpy(), want_r, atol=1e-12)
    weights = RNG.normal(size=want_q.shape)
    assert cr.gradcheck(lambda t: cr.sum(cr.linalg.qr(t)[0] * weights), x, check_forward=True)
    assert cr.gradcheck(lambda t: cr.sum(cr.linalg.qr(t)[1] ** 2), x, check_forward=True)


def test_qr_of_a_wide_matrix_matches_numpy_and_differentiates():
    wide = TALL.T.copy()
    q, r = np.linalg.qr(cr.tensor(wide))
    want_q, want_r = np.linalg.qr(wide)
    np.testing.assert_allclose(q.numpy(), want_q, atol=1e-12)
    np.testing.assert_allclose(r.numpy(), want_r, atol=1e-12)
    np.testing.assert_allclose((q @ r).numpy(), wide, atol=1e-12)
    weights = RNG.normal(size=want_r.shape)
    assert cr.gradcheck(lambda t: cr.sum(cr.linalg.qr(t)[1] * weights), wide, check_forward=True)
    with pytest.raises(ValueError, match="mode='reduced'"):
        cr.linalg.qr(cr.tensor(wide), mode="complete")


@pytest.mark.parametrize(
    "call",
    [
        lambda a: np.linalg.vector_norm(a),
        lambda a: np.linalg.vector_norm(a, axis=1, ord=1),
        lambda a: np.linalg.vector_norm(a, axis=(1, 2), keepdims=True),
        lambda a: np.linalg.matrix_norm(a),
        lambda a: np.linalg.matrix_norm(a, ord=2),
        lambda a: np.linalg.multi_dot([a[0], a[1].T, a[0]]),
    ],
)
def test_numpy_2_s_norms_and_multi_dot(call):
    x = RNG.normal(size=(2, 3, 4))
    np.testing.assert_allclose(call(cr.tensor(x)).numpy(), call(x), rtol=1e-12)
    assert cr.gradcheck(lambda t: cr.sum(call(t) ** 2), x, check_forward=True)


@pytest.mark.parametrize("m", [np.eye(3) * 2.0, np.diag([3.0, 3.0, 4.0])], ids=["I", "repeated"])
def test_values_alone_have_their_gradient_where_values_repeat(m):
    # d sum(lambda_i^2)/dA = 2A for symmetric A, whether or not eigenvalues repeat; the
    # eigenvectors' gaps must not turn it into 0 * inf
    for values in (cr.linalg.eigvalsh, lambda a: cr.linalg.svd(a, compute_uv=False)):
        g = cr.grad(lambda a: cr.sum(values(a) ** 2))(m)
        np.testing.assert_allclose(g, 2 * m, rtol=1e-12)
