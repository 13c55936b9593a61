"""Matrix functions, as ``np.linalg`` has them: inverse, solve, determinants, Cholesky, the
symmetric eigendecomposition, norms and powers. ``cr.linalg`` is this module. All work on
stacks of matrices (the last two axes).

The rules avoid forming inverses where a solve does (``solve``'s gradient solves with the
transpose). ``cholesky`` and ``eigh`` read only the lower triangle of their input, as NumPy's
do, so their gradients are lower triangular: the derivative with respect to the entries that
were read. ``eigh``'s eigenvector gradient divides by the gaps between eigenvalues: for
repeated eigenvalues it is infinite (the eigenvectors are not unique), stated rather than
hidden. An op with two results (``eigh``, ``slogdet``) computes them as one array, from which
the public function cuts the two.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backends import namespace
from ..backends.gaps import linalg
from ..engine.declare import family, public
from ..engine.op import Op
from ..engine.tensor import Tensor, data_of
from .elementwise import abs, equal, sqrt, where
from .linalg import matmul
from .reductions import _sum, sum
from .reductions import max as _amax
from .reductions import min as _amin
from .shape import astype, concatenate, expand_dims, matrix_transpose, stack

__all__ = [
    "inv",
    "solve",
    "det",
    "slogdet",
    "cholesky",
    "eigh",
    "eigvalsh",
    "norm",
    "matrix_power",
    "svd",
    "pinv",
    "lstsq",
    "qr",
    "vector_norm",
    "matrix_norm",
    "multi_dot",
]

defop = family("linalg")


def _mT(a: Any) -> Any:
    return matrix_transpose(a)


def _eye_like(a: Any) -> Any:
    raw = data_of(a)
    return namespace(raw).eye(raw.shape[-1], dtype=raw.dtype)


def _phi(x: Any) -> Any:
    """The lower triangle of ``x`` with its diagonal halved."""
    n = x.shape[-1]
    i = np.arange(n)
    weight = np.where(i[:, None] > i[None, :], 1.0, np.where(i[:, None] == i[None, :], 0.5, 0.0))
    return x * namespace(data_of(x)).asarray(weight, dtype=data_of(x).dtype)


def _lower(g_full: Any) -> Any:
    """A gradient with respect to the symmetric matrix that a function built from the lower
    triangle of its input, as a gradient with respect to that input: entry (i, j) below the
    diagonal stands for both (i, j) and (j, i)."""
    return _phi(g_full + _mT(g_full))


def _symmetric(t: Any) -> Any:
    """The symmetric matrix read from the lower triangle of ``t`` (a tangent of the input)."""
    half = _phi(t)  # the strict lower triangle, and half the diagonal
    return half + _mT(half)


def _solve(a: Any, b: Any) -> Any:
    return _solve_op(a, b)


# -- inverse and solve ---------------------------------------------------------------------
def _solve_forward(xp: Any, a: Any, b: Any) -> Any:
    return linalg(xp, "solve", a, b)


def _vector(b: Any) -> bool:
    return len(b.shape) == 1  # NumPy 2: b is a vector only when it is 1-D


def _solve_da(g: Any, out: Any, a: Any, b: Any) -> Any:
    gb = _solve(_mT(a), g)
    if _vector(b):
        return -(expand_dims(gb, axis=-1) * expand_dims(out, axis=-2))
    return -matmul(gb, _mT(out))


# fmt: off
_inv: Op = defop("inv", lambda xp, a: linalg(xp, "inv", a), "The inverse of a square matrix.",
    numpy=(),
    da=(lambda g, out, a: -matmul(_mT(out), matmul(g, _mT(out))),
        "d inv(A) = -inv(A) dA inv(A): the gradient -inv(A)^T g inv(A)^T"),
    ta=lambda t, out, a: -matmul(out, matmul(t, out)))

_solve_op: Op = defop("solve", _solve_forward, "x with a @ x = b.", numpy=(),
    da=(_solve_da, "d solve(A, b)/dA: -solve(A^T, g) x^T"),
    db=(lambda g, out, a, b: _solve(_mT(a), g), "d solve(A, b)/db: solve(A^T, g)"),
    ta=lambda t, out, a, b: -_solve(a, matmul(t, out) if not _vector(b) else
                                    matmul(t, expand_dims(out, axis=-1))[..., 0]),
    tb=lambda t, out, a, b: _solve(a, t))
# fmt: on


# -- determinants --------------------------------------------------------------------------
def _trace_solve(a: Any, t: Any) -> Any:
    """trace(inv(a) @ t), through a solve."""
    return sum(_solve(a, t) * _eye_like(a), axis=(-2, -1))


def _slogdet_forward(xp: Any, a: Any) -> Any:
    sign, logabs = linalg(xp, "slogdet", a)
    return xp.stack([sign, logabs], axis=-1)


# fmt: off
_det: Op = defop("det", lambda xp, a: linalg(xp, "det", a),
    "The determinant of a square matrix (its gradient needs the inverse: NumPy refuses a "
    "singular matrix there).", numpy=(),
    da=(lambda g, out, a: expand_dims(expand_dims(g * out, axis=-1), axis=-1) * _mT(_inv(a)),
        "d det(A)/dA = det(A) inv(A)^T"),
    ta=lambda t, out, a: out * _trace_solve(a, t))

_slogdet: Op = defop("slogdet", _slogdet_forward,
    "(sign, log|det|) of a square matrix, as one array of pairs.", numpy=(),
    da=(lambda g, out, a: expand_dims(expand_dims(g[..., 1], axis=-1), axis=-1) * _mT(_inv(a)),
        "d log|det(A)|/dA = inv(A)^T (the sign has no gradient)"),
    ta=lambda t, out, a: stack([_trace_solve(a, t) * 0.0, _trace_solve(a, t)], axis=-1))
# fmt: on


# -- Cholesky and the symmetric eigendecomposition -----------------------------------------
def _cholesky_da(g: Any, out: Any, a: Any) -> Any:
    # P = phi(L^T gL); the symmetric gradient is L^{-T} P L^{-1}, read back onto the lower
    # triangle that cholesky read
    p = _phi(matmul(_mT(out), g))
    x = _solve(_mT(out), p)  # L^{-T} P
    s = _mT(_solve(_mT(out), _mT(x)))  # L^{-T} P L^{-1}
    return _lower(0.5 * (s + _mT(s)))


def _cholesky_ta(t: Any, out: Any, a: Any) -> Any:
    # dL = L phi(L^{-1} dS L^{-T}), dS the symmetric matrix the tangent's lower triangle gives
    x = _solve(out, _symmetric(t))  # L^{-1} dS
    return matmul(out, _phi(_mT(_solve(out, _mT(x)))))


def _eigh_forward(xp: Any, a: Any) -> Any:
    w, v = linalg(xp, "eigh", a)
    return xp.concat([xp.expand_dims(w, axis=-2), v], axis=-2)


def _over_gaps(w: Any, m: Any) -> Any:
    """m_ij / (w_j - w_i) off the diagonal, 0 on it: the eigenvector (singular vector) part of
    a rule. Exactly 0 wherever m_ij is 0, so that a gradient reaching only the eigenvalues
    needs no gap and repeated eigenvalues give no 0/0; where m_ij is not 0 and the values
    repeat, it is infinite, as the derivative is."""
    d = expand_dims(w, axis=-2) - expand_dims(w, axis=-1)
    m = m * (1.0 - _eye_like(d))
    return m / where(equal(m, 0.0), 1.0, d)


def _eigh_da(g: Any, out: Any, a: Any) -> Any:
    w, v = out[..., 0, :], out[..., 1:, :]
    gw, gv = g[..., 0, :], g[..., 1:, :]
    inner = expand_dims(gw, axis=-1) * _eye_like(v) + _over_gaps(w, matmul(_mT(v), gv))
    return _lower(matmul(v, matmul(inner, _mT(v))))


def _eigh_ta(t: Any, out: Any, a: Any) -> Any:
    w, v = out[..., 0, :], out[..., 1:, :]
    m = matmul(_mT(v), matmul(_symmetric(t), v))
    dw = sum(m * _eye_like(m), axis=-1)
    dv = matmul(v, _over_gaps(w, m))
    return _concat_rows(expand_dims(dw, axis=-2), dv)


def _concat_rows(top: Any, rest: Any) -> Any:
    from .shape import _concatenate

    return _concatenate(top, rest, axis=-2)


# fmt: off
_cholesky: Op = defop("cholesky", lambda xp, a: linalg(xp, "cholesky", a),
    "The lower-triangular L with L L^T = A (A symmetric positive definite; its lower triangle "
    "is read).", numpy=(),
    da=(_cholesky_da, "d cholesky(A): L^{-T} phi(L^T gL) L^{-1}, phi the lower half"),
    ta=_cholesky_ta)

_eigh: Op = defop("eigh", _eigh_forward,
    "Eigenvalues (ascending) and eigenvectors of a symmetric matrix (its lower triangle is "
    "read), as one array: the eigenvalues in row 0, the eigenvectors below. Where eigenvalues "
    "repeat, the eigenvectors are not unique and their gradient is infinite.", numpy=(),
    da=(_eigh_da, "d eigh(A): V (diag(gw) + F o V^T gV) V^T, F_ij = 1/(w_j - w_i)"),
    ta=_eigh_ta)
# fmt: on


# -- the singular value decomposition (thin) -------------------------------------------------
def _svd_forward(xp: Any, a: Any) -> Any:
    u, s, vh = linalg(xp, "svd", a, full_matrices=False)
    lead = tuple(a.shape[:-2])
    return xp.concat([xp.reshape(u, (*lead, -1)), s, xp.reshape(vh, (*lead, -1))], axis=-1)


def _svd_parts(packed: Any, a: Any) -> tuple[Any, Any, Any]:
    """(U, s, Vh) from the one array the svd op computes them as."""
    from .shape import reshape

    m, n = a.shape[-2:]
    k = min(m, n)
    lead = tuple(a.shape[:-2])
    u = reshape(packed[..., : m * k], shape=(*lead, m, k))
    s = packed[..., m * k : m * k + k]
    vh = reshape(packed[..., m * k + k :], shape=(*lead, k, n))
    return u, s, vh


def _svd_pack(u: Any, s: Any, vh: Any) -> Any:
    from .shape import _concatenate, reshape

    lead = tuple(s.shape[:-1])
    return _concatenate(reshape(u, shape=(*lead, -1)), s, reshape(vh, shape=(*lead, -1)), axis=-1)


def _svd_da(g: Any, out: Any, a: Any) -> Any:
    # U [(F o (U^T gU - gU^T U)) S + diag(gs) + S (F o (V^T gV - gV^T V))] V^T, plus the parts
    # of gU and gV outside the spans of U and V; F_ij = 1/(s_j^2 - s_i^2) (see _over_gaps)
    u, s, vh = _svd_parts(out, a)
    gu, gs, gvh = _svd_parts(g, a)
    v, gv = _mT(vh), _mT(gvh)
    s2 = s * s
    ut_gu, vt_gv = matmul(_mT(u), gu), matmul(_mT(v), gv)
    col, row = expand_dims(s, axis=-2), expand_dims(s, axis=-1)  # (.., 1, k), (.., k, 1)
    core = (
        _over_gaps(s2, ut_gu - _mT(ut_gu)) * col
        + _eye_like(ut_gu) * expand_dims(gs, axis=-2)
        + row * _over_gaps(s2, vt_gv - _mT(vt_gv))
    )
    out_u = (gu - matmul(u, ut_gu)) / col  # (I - U U^T) gU S^-1
    out_v = (_mT(gv) - matmul(_mT(vt_gv), vh)) / row  # S^-1 gV^T (I - V V^T)
    return matmul(u, matmul(core, vh)) + matmul(out_u, vh) + matmul(u, out_v)


def _svd_ta(t: Any, out: Any, a: Any) -> Any:
    u, s, vh = _svd_parts(out, a)
    v = _mT(vh)
    s2 = s * s
    dp = matmul(_mT(u), matmul(t, v))  # U^T dA V
    col, row = expand_dims(s, axis=-2), expand_dims(s, axis=-1)
    ds = sum(dp * _eye_like(dp), axis=-1)
    du = matmul(u, _over_gaps(s2, dp * col + row * _mT(dp)))
    du = du + (matmul(t, v) - matmul(u, dp)) / col  # (I - U U^T) dA V S^-1
    dv = matmul(v, _over_gaps(s2, row * dp + _mT(dp) * col))
    dv = dv + (matmul(_mT(t), u) - matmul(v, _mT(dp))) / col  # (I - V V^T) dA^T U S^-1
    return _svd_pack(du, ds, _mT(dv))


# fmt: off
_svd: Op = defop("svd", _svd_forward,
    "The thin singular value decomposition U, s, Vh of a matrix, as one array. Where singular "
    "values repeat, or are 0 in a non-square matrix, U and Vh are not unique and their "
    "gradient is infinite.", numpy=(),
    da=(_svd_da, "d svd(A): U [F o (U^T gU - gU^T U) S + diag(gs) + S F o (V^T gV - gV^T V)] V^T "
                 "+ (I - U U^T) gU S^-1 V^T + U S^-1 gV^T (I - V V^T)"),
    ta=_svd_ta)
# fmt: on


# -- QR (reduced, m >= n) ------------------------------------------------------------------------
def _triangle_mask(x: Any, strict: bool) -> Any:
    n = x.shape[-1]
    i = np.arange(n)
    keep = i[:, None] > i[None, :] if strict else i[:, None] >= i[None, :]
    return namespace(data_of(x)).asarray(keep.astype(np.float64), dtype=data_of(x).dtype)


def _qr_forward(xp: Any, a: Any) -> Any:
    q, r = linalg(xp, "qr", a)
    lead = tuple(a.shape[:-2])
    return xp.concat([xp.reshape(q, (*lead, -1)), xp.reshape(r, (*lead, -1))], axis=-1)


def _qr_parts(packed: Any, a: Any) -> tuple[Any, Any]:
    from .shape import reshape

    m, n = a.shape[-2:]
    lead = tuple(a.shape[:-2])
    q = reshape(packed[..., : m * n], shape=(*lead, m, n))
    r = reshape(packed[..., m * n :], shape=(*lead, n, n))
    return q, r


def _right_solve(x: Any, r: Any) -> Any:
    """x R^-1 for an invertible R: a solve with R^T, no inverse."""
    return _mT(_solve(_mT(r), _mT(x)))


def _qr_da(g: Any, out: Any, a: Any) -> Any:
    # (gQ + Q copyltu(M)) R^-T with M = R gR^T - gQ^T Q, copyltu: the lower triangle copied up
    q, r = _qr_parts(out, a)
    gq, gr = _qr_parts(g, a)
    m = matmul(r, _mT(gr)) - matmul(_mT(gq), q)
    low = m * _triangle_mask(m, strict=False)
    copied = low + _mT(m * _triangle_mask(m, strict=True))
    return _mT(_solve(r, _mT(gq + matmul(q, copied))))


def _qr_ta(t: Any, out: Any, a: Any) -> Any:
    q, r = _qr_parts(out, a)
    x = _right_solve(t, r)  # dA R^-1
    qt = matmul(_mT(q), x)
    lower = qt * _triangle_mask(qt, strict=True)
    omega = lower - _mT(lower)  # skew-symmetric
    dq = matmul(q, omega - qt) + x
    dr = matmul(qt - omega, r)
    from .shape import _concatenate, reshape

    lead = tuple(a.shape[:-2])
    return _concatenate(reshape(dq, shape=(*lead, -1)), reshape(dr, shape=(*lead, -1)), axis=-1)


# fmt: off
_qr: Op = defop("qr", _qr_forward,
    "The reduced QR decomposition Q, R of a matrix with m >= n (R invertible), as one array.",
    numpy=(),
    da=(_qr_da, "d qr(A): (gQ + Q copyltu(R gR^T - gQ^T Q)) R^-T"),
    ta=_qr_ta)
# fmt: on


# -- the public functions, as np.linalg has them -------------------------------------------
def _square(a: Any, name: str) -> None:
    shape = tuple(a.shape)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"{name}: expected square matrices (..., n, n), got shape {shape}")


@public(_inv, numpy=("linalg.inv",))
def inv(a: Any) -> Any:
    """The inverse of a square matrix (or a stack of them)."""
    _square(a, "inv")
    return _inv(a)


@public(_solve_op, numpy=("linalg.solve",))
def solve(a: Any, b: Any) -> Any:
    """The solution x of ``a @ x = b``; ``b`` is one vector when 1-D, else matrices."""
    _square(a, "solve")
    return _solve_op(a, b)


@public(_det, numpy=("linalg.det",))
def det(a: Any) -> Any:
    """The determinant."""
    _square(a, "det")
    return _det(a)


@public(_slogdet, numpy=("linalg.slogdet",))
def slogdet(a: Any) -> tuple[Any, Any]:
    """(sign, log|det|): the determinant without overflow. Only log|det| has a gradient."""
    _square(a, "slogdet")
    both = _slogdet(a)
    sign = both[..., 0]
    return (sign.detach() if isinstance(sign, Tensor) else sign), both[..., 1]


@public(_cholesky, numpy=("linalg.cholesky",))
def cholesky(a: Any, upper: bool = False) -> Any:
    """The Cholesky factor L (lower) with L L^T = a; ``upper=True`` gives L^T."""
    _square(a, "cholesky")
    low = _cholesky(a)
    return _mT(low) if upper else low


@public(_eigh, numpy=("linalg.eigh",))
def eigh(a: Any, UPLO: str = "L") -> tuple[Any, Any]:
    """(eigenvalues ascending, eigenvectors as columns) of a symmetric matrix; its lower
    triangle is read (``UPLO="L"``, NumPy's default)."""
    _square(a, "eigh")
    if UPLO != "L":
        raise ValueError("eigh: only UPLO='L' (the lower triangle) is supported")
    both = _eigh(a)
    return both[..., 0, :], both[..., 1:, :]


@public(_eigh, numpy=("linalg.eigvalsh",), face=False)
def eigvalsh(a: Any, UPLO: str = "L") -> Any:
    """The eigenvalues of a symmetric matrix, ascending."""
    return eigh(a, UPLO)[0]


@public(_svd, numpy=("linalg.svd",))
def svd(
    a: Any, full_matrices: bool = True, compute_uv: bool = True, hermitian: bool = False
) -> Any:
    """(U, s, Vh) with ``a = U @ diag(s) @ Vh``, singular values descending; only ``s`` when
    ``compute_uv=False``. The thin form: square matrices, or ``full_matrices=False``."""
    if len(a.shape) < 2:
        raise ValueError(f"svd: expected matrices (..., m, n), got shape {tuple(a.shape)}")
    m, n = a.shape[-2:]
    if full_matrices and compute_uv and m != n:
        raise ValueError(
            f"svd: the full U and Vh of a {m} x {n} matrix have no unique gradient; pass "
            "full_matrices=False for the thin ones"
        )
    u, s, vh = _svd_parts(_svd(a), a)
    return (u, s, vh) if compute_uv else s


def _cutoff(s: Any, rcond: Any, m: int, n: int) -> Any:
    raw = data_of(s)
    if rcond is None:
        rcond = max(m, n) * float(namespace(raw).finfo(raw.dtype).eps)
    top = namespace(raw).max(raw, axis=-1, keepdims=True) if raw.shape[-1] else raw
    return top * rcond


def _pinv_forward(xp: Any, a: Any, *, rcond: Any = None) -> Any:
    u, s, vh = linalg(xp, "svd", a, full_matrices=False)
    cutoff = _cutoff(s, rcond, *a.shape[-2:])
    keep = s > cutoff
    inverse = xp.where(keep, 1 / xp.where(keep, s, 1), 0)
    return xp.matmul(xp.matrix_transpose(vh) * inverse[..., None, :], xp.matrix_transpose(u))


def _identity(x: Any, n: int) -> Any:
    raw = data_of(x)
    return namespace(raw).eye(n, dtype=raw.dtype)


def _pinv_da(g: Any, out: Any, a: Any, rcond: Any = None) -> Any:
    # NOTE: the derivative of the pseudo-inverse at constant rank (Golub and Pereyra), not the
    # chain rule through the SVD, whose singular vectors have no derivative where singular
    # values repeat (pinv of 4 I is smooth; its SVD is not)
    p, pt = out, _mT(out)
    m, n = a.shape[-2:]
    left = _identity(a, m) - matmul(a, p)  # I - A P, the projector off A's range
    right = _identity(a, n) - matmul(p, a)  # I - P A, off its row space
    return (
        -matmul(pt, matmul(g, pt))
        + matmul(left, matmul(_mT(g), matmul(p, pt)))
        + matmul(matmul(pt, p), matmul(_mT(g), right))
    )


def _pinv_ta(t: Any, out: Any, a: Any, rcond: Any = None) -> Any:
    p, pt, tt = out, _mT(out), _mT(t)
    m, n = a.shape[-2:]
    left = _identity(a, m) - matmul(a, p)
    right = _identity(a, n) - matmul(p, a)
    return (
        -matmul(p, matmul(t, p))
        + matmul(matmul(p, pt), matmul(tt, left))
        + matmul(right, matmul(tt, matmul(pt, p)))
    )


# fmt: off
_pinv: Op = defop("pinv", _pinv_forward,
    "The Moore-Penrose pseudo-inverse, from the SVD, singular values below rcond times the "
    "largest taken as 0.", numpy=(),
    da=(_pinv_da, "dP = -P dA P + P P^T dA^T (I - A P) + (I - P A) dA^T P^T P, at constant rank"),
    ta=_pinv_ta)
# fmt: on


@public(_pinv, numpy=("linalg.pinv",))
def pinv(a: Any, rcond: Any = None, hermitian: bool = False) -> Any:
    """The Moore-Penrose pseudo-inverse, from the SVD: singular values below ``rcond`` times
    the largest are taken as 0 (NumPy's cut-off by default). Its derivative is that of the
    pseudo-inverse at constant rank: smooth where singular values repeat (pinv of 4 I), not
    defined where one crosses the cut-off (the rank changes)."""
    if len(a.shape) < 2:
        raise ValueError(
            f"pinv: expected a matrix (or a stack of them), got shape {tuple(a.shape)}"
        )
    return _pinv(a, rcond=rcond)


@public(_svd, numpy=("linalg.lstsq",), face=False)
def lstsq(a: Any, b: Any, rcond: Any = None) -> tuple[Any, Any, Any, Any]:
    """(x, residuals, rank, s): the x that minimises ``||a x - b||``, as ``np.linalg.lstsq``
    (through the pseudo-inverse; residuals only for a full-rank, tall ``a``)."""
    if len(a.shape) != 2:
        raise ValueError(f"lstsq: expected a matrix a, got shape {tuple(a.shape)}")
    m, n = a.shape
    s = svd(a, compute_uv=False, full_matrices=False)
    rank = int(np.sum(np.asarray(data_of(s)) > np.asarray(data_of(_cutoff(s, rcond, m, n)))))
    x = matmul(pinv(a, rcond), b)
    xp = namespace(data_of(s))
    if rank == n and m > n:
        r = matmul(a, x) - b
        residuals = sum(r * r, axis=0) if len(b.shape) == 2 else expand_dims(sum(r * r), axis=0)
    else:
        residuals = xp.zeros((0,), dtype=data_of(s).dtype)
    return x, residuals, rank, s


@public(_qr, numpy=("linalg.qr",))
def qr(a: Any, mode: str = "reduced") -> tuple[Any, Any]:
    """(Q, R) with ``a = Q @ R``, Q's columns orthonormal and R upper triangular: the reduced
    form (Q m x k, R k x n, k = min(m, n)). A wide matrix ``[X | Y]`` (m < n) is
    ``Q [R_X | Q^T Y]`` with ``Q R_X`` the QR of its square part X, so its derivative is that
    of the square QR (X of full rank). NumPy's (Householder) QR flips the signs of a column of
    Q and a row of R as a column crosses "already triangular": there the derivative is that of
    the decomposition on the side it was computed."""
    if mode != "reduced":
        raise ValueError(f"qr: only mode='reduced' is supported, got {mode!r}")
    if len(a.shape) < 2:
        raise ValueError(f"qr: expected a matrix (or a stack of them), got shape {tuple(a.shape)}")
    m, n = a.shape[-2:]
    if m < n:
        q, r_square = _qr_parts(_qr(a[..., :m]), a[..., :m])
        return q, concatenate([r_square, matmul(_mT(q), a[..., m:])], axis=-1)
    return _qr_parts(_qr(a), a)


@public(matmul, numpy=("linalg.matrix_power",), face=False)
def matrix_power(a: Any, n: int) -> Any:
    """``a`` multiplied by itself ``n`` times (the identity for 0, powers of the inverse for
    n < 0), by repeated squaring."""
    _square(a, "matrix_power")
    if n < 0:
        a, n = inv(a), -n
    if n == 0:
        return _eye_like(a) + a * 0.0
    result = None
    while n:
        if n & 1:
            result = a if result is None else matmul(result, a)
        n >>= 1
        if n:
            a = matmul(a, a)
    return result


def _safe_sqrt(s: Any) -> Any:
    """sqrt(s) with gradient 0 where s = 0 (the norm of a zero vector: its subgradient 0)."""
    zero = equal(s, 0.0)
    return where(zero, 0.0, sqrt(where(zero, 1.0, s)))


def _vector_norm(x: Any, ord: Any, axis: Any, keepdims: bool) -> Any:
    if ord is None or ord == 2:
        return _safe_sqrt(sum(x * x, axis=axis, keepdims=keepdims))
    if ord == math.inf:
        return _amax(abs(x), axis=axis, keepdims=keepdims)
    if ord == -math.inf:
        return _amin(abs(x), axis=axis, keepdims=keepdims)
    if ord == 0:
        nonzero = astype(equal(x, 0.0), dtype=data_of(x).dtype) * -1.0 + 1.0
        count = sum(nonzero, axis=axis, keepdims=keepdims)
        return count.detach() if isinstance(count, Tensor) else count
    if ord == 1:
        return sum(abs(x), axis=axis, keepdims=keepdims)
    total = sum(abs(x) ** ord, axis=axis, keepdims=keepdims)
    zero = equal(total, 0.0)
    return where(zero, 0.0, where(zero, 1.0, total) ** (1.0 / ord))


def _matrix_norm(x: Any, ord: Any, axes: tuple[int, int], keepdims: bool) -> Any:
    r, c = axes
    if ord in (None, "fro"):
        return _safe_sqrt(sum(x * x, axis=axes, keepdims=keepdims))
    if ord in (1, -1):
        pick = _amax if ord == 1 else _amin
        out = pick(sum(abs(x), axis=r, keepdims=True), axis=c, keepdims=True)
    elif ord in (math.inf, -math.inf):
        pick = _amax if ord == math.inf else _amin
        out = pick(sum(abs(x), axis=c, keepdims=True), axis=r, keepdims=True)
    elif ord in (2, -2, "nuc"):
        # the singular values are the square roots of the eigenvalues of x^T x
        moved = _move_last_two(x, axes)
        m, n = moved.shape[-2:]  # the smaller Gram matrix: min(m, n) singular values
        gram = matmul(moved, _mT(moved)) if m <= n else matmul(_mT(moved), moved)
        sv = sqrt(abs(eigvalsh(gram)))
        pick_sv = sv[..., -1] if ord == 2 else sv[..., 0] if ord == -2 else sum(sv, axis=-1)
        out = _keep(pick_sv, x, axes) if keepdims else pick_sv
        return out
    else:
        raise ValueError(f"norm: ord={ord!r} is not a matrix norm NumPy knows")
    return out if keepdims else _squeeze(out, axes)


def _move_last_two(x: Any, axes: tuple[int, int]) -> Any:
    from .arrays import moveaxis

    return moveaxis(x, axes, (-2, -1))


def _keep(v: Any, x: Any, axes: tuple[int, int]) -> Any:
    from .shape import reshape

    shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
    return reshape(v, shape=shape)


def _squeeze(v: Any, axes: tuple[int, int]) -> Any:
    from .shape import squeeze

    return squeeze(v, axis=tuple(sorted(axes)))


@public(_sum, numpy=("linalg.vector_norm",), face=False)
def vector_norm(x: Any, axis: Any = None, keepdims: bool = False, ord: Any = 2) -> Any:
    """The vector norm over ``axis`` (all axes, flattened, when None), as NumPy 2's."""
    if axis is None:
        from .shape import reshape

        flat = _vector_norm(reshape(x, shape=(-1,)), ord, 0, False)
        return reshape(flat, shape=(1,) * len(x.shape)) if keepdims else flat
    if isinstance(axis, int):
        return _vector_norm(x, ord, axis % len(x.shape), keepdims)
    return _vector_norm(x, ord, tuple(a % len(x.shape) for a in axis), keepdims)


@public(_sum, numpy=("linalg.matrix_norm",), face=False)
def matrix_norm(x: Any, keepdims: bool = False, ord: Any = "fro") -> Any:
    """The matrix norm of the last two axes, as NumPy 2's."""
    n = len(x.shape)
    return _matrix_norm(x, ord, (n - 2, n - 1), keepdims)


@public(matmul, numpy=("linalg.multi_dot",), face=False)
def multi_dot(arrays: Any) -> Any:
    """The product of a chain of matrices (1-D ends as vectors), left to right."""
    arrays = list(arrays)
    if len(arrays) < 2:
        raise ValueError("multi_dot: expected at least two arrays")
    out = arrays[0]
    for a in arrays[1:]:
        out = matmul(out, a)
    return out


@public(_sum, numpy=("linalg.norm",), face=False)
def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    """The vector or matrix norm, as ``np.linalg.norm``: every ``ord`` NumPy accepts. At a
    zero vector the 2-norm's gradient is 0 (its subgradient), not 0/0."""
    ndim = len(x.shape)
    if axis is None:
        if ord is None:
            axes = tuple(range(ndim))
            return _safe_sqrt(sum(x * x, axis=axes if axes else None, keepdims=keepdims))
        if ndim == 1:
            return _vector_norm(x, ord, 0, keepdims)
        if ndim == 2:
            return _matrix_norm(x, ord, (0, 1), keepdims)
        raise ValueError(f"norm: ord={ord!r} of a {ndim}-D array needs axis")
    if isinstance(axis, int):
        return _vector_norm(x, ord, axis % ndim, keepdims)
    if len(axis) == 2:
        return _matrix_norm(x, ord, (axis[0] % ndim, axis[1] % ndim), keepdims)
    raise ValueError(f"norm: axis must be an int or a pair, got {axis!r}")
