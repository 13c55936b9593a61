"""Special functions, as ``scipy.special`` has them (``cr.special`` is this module): on Tensors,
SciPy's own functions dispatch here (``scipy.special.gammaln(t)`` is recorded), for those SciPy
writes as ufuncs. The values come from SciPy (the ``special`` extra); the derivatives are the
op sheet's, below.
"""

from __future__ import annotations

import math
from typing import Any

from ..backends import scipy_special
from ..engine.declare import family
from ..engine.op import Op
from ..engine.registry import NOT_IMPLEMENTED
from .elementwise import abs, equal, erf, exp, less, log, log1p, logical_and, where
from .nn import log_softmax as _log_softmax_op
from .nn import logsumexp as _logsumexp_op
from .nn import sigmoid
from .nn import softmax as _softmax_op
from .shape import reshape

__all__ = [
    "expit",
    "logit",
    "erf",
    "erfc",
    "erfinv",
    "gammaln",
    "digamma",
    "polygamma",
    "beta",
    "betaln",
    "xlogy",
    "xlog1py",
    "i0",
    "i1",
    "ndtr",
    "log_ndtr",
    "ndtri",
    "zeta",
    "logsumexp",
    "softmax",
    "log_softmax",
]

defop = family("special", symmetric=True)  # (elementwise: diagonal Jacobians)

_SQRT_PI = math.sqrt(math.pi)
_SQRT_2PI = math.sqrt(2 * math.pi)


# the forward of an op that is scipy.special's function of that name, its inputs named
def _of_x(name: str) -> Any:
    return lambda xp, x: scipy_special(xp, name, x)


def _of_xy(name: str) -> Any:
    return lambda xp, x, y: scipy_special(xp, name, x, y)


def _of_ab(name: str) -> Any:
    return lambda xp, a, b: scipy_special(xp, name, a, b)


def _of_xq(name: str) -> Any:
    return lambda xp, x, q: scipy_special(xp, name, x, q)


def _of_nx(name: str) -> Any:
    # (an integer order n would make SciPy compute in float64: the result keeps x's dtype)
    return lambda xp, n, x: xp.astype(scipy_special(xp, name, n, x), x.dtype)


def _x_over(x: Any, den: Any) -> Any:
    """x / den, as 0 where both are 0 (where x log(den) and its kin are 0 whatever den is);
    elsewhere the plain quotient, so that its own derivatives stay right."""
    both = logical_and(equal(x, 0), equal(den, 0))
    return where(both, 0.0, x / where(both, 1.0, den))


def _i1_dx(g: Any, out: Any, x: Any) -> Any:
    # NOTE: i0(x) - i1(x)/x, which cancels near 0: there (|x| < 0.01) its Taylor series
    # 1/2 + 3x^2/16 + 5x^4/384 + 7x^6/18432, accurate to 1e-16 and differentiable again
    small = less(abs(x), 0.01)
    x2 = x * x
    series = 0.5 + x2 * (3 / 16 + x2 * (5 / 384 + x2 * (7 / 18432)))
    return g * where(small, series, i0(x) - i1(x) / where(small, 1.0, x))


# fmt: off
logit: Op = defop("logit", _of_x("logit"), "log(x / (1 - x)), the inverse of expit.",
    numpy=("logit",),
    dx=(lambda g, out, x: g / (x * (1 - x)),       "d logit(x)/dx = 1/(x (1 - x))"))

erfc: Op = defop("erfc", _of_x("erfc"), "1 - erf(x), accurate where erf(x) is near 1.",
    numpy=("erfc",),
    dx=(lambda g, out, x: -g * (2 / _SQRT_PI) * exp(-(x * x)),
        "d erfc(x)/dx = -2/sqrt(pi) exp(-x^2)"))

erfinv: Op = defop("erfinv", _of_x("erfinv"), "The inverse of erf, on (-1, 1).",
    numpy=("erfinv",),
    dx=(lambda g, out, x: g * (_SQRT_PI / 2) * exp(out * out),
        "d erfinv(x)/dx = sqrt(pi)/2 exp(erfinv(x)^2)"))

gammaln: Op = defop("gammaln", _of_x("gammaln"), "log |Gamma(x)|.", numpy=("gammaln",),
    dx=(lambda g, out, x: g * digamma(x),          "d gammaln(x)/dx = digamma(x)"))

digamma: Op = defop("digamma", _of_x("digamma"), "The derivative of gammaln.",
    numpy=("digamma", "psi"),
    dx=(lambda g, out, x: g * polygamma(1, x),     "d digamma(x)/dx = polygamma(1, x)"))

polygamma: Op = defop("polygamma", _of_nx("polygamma"),
    "The n-th derivative of digamma (n an integer, not differentiated).", numpy=("polygamma",),
    dx=(lambda g, out, n, x: g * polygamma(n + 1, x), "d polygamma(n, x)/dx = polygamma(n+1, x)"))

beta: Op = defop("beta", _of_ab("beta"), "Gamma(a) Gamma(b) / Gamma(a + b).", numpy=("beta",),
    da=(lambda g, out, a, b: g * out * (digamma(a) - digamma(a + b)),
        "d beta(a, b)/da = beta(a, b) (digamma(a) - digamma(a + b))"),
    db=(lambda g, out, a, b: g * out * (digamma(b) - digamma(a + b)),
        "d beta(a, b)/db = beta(a, b) (digamma(b) - digamma(a + b))"))

betaln: Op = defop("betaln", _of_ab("betaln"), "log |beta(a, b)|.", numpy=("betaln",),
    da=(lambda g, out, a, b: g * (digamma(a) - digamma(a + b)),
        "d betaln(a, b)/da = digamma(a) - digamma(a + b)"),
    db=(lambda g, out, a, b: g * (digamma(b) - digamma(a + b)),
        "d betaln(a, b)/db = digamma(b) - digamma(a + b)"))

xlogy: Op = defop("xlogy", _of_xy("xlogy"), "x log(y), 0 where x = 0.", numpy=("xlogy",),
    kink="where x = 0 the derivative with respect to y is 0",
    dx=(lambda g, out, x, y: g * log(y),           "d xlogy(x, y)/dx = log(y)"),
    dy=(lambda g, out, x, y: g * _x_over(x, y),  "d xlogy(x, y)/dy = x/y"))

xlog1py: Op = defop("xlog1py", _of_xy("xlog1py"), "x log(1 + y), 0 where x = 0.",
    numpy=("xlog1py",), kink="where x = 0 the derivative with respect to y is 0",
    dx=(lambda g, out, x, y: g * log1p(y),         "d xlog1py(x, y)/dx = log(1 + y)"),
    dy=(lambda g, out, x, y: g * _x_over(x, 1 + y),
        "d xlog1py(x, y)/dy = x/(1 + y)"))

i0: Op = defop("i0", _of_x("i0"), "The modified Bessel function of order 0.",
    dx=(lambda g, out, x: g * i1(x),               "d i0(x)/dx = i1(x)"))

i1: Op = defop("i1", _of_x("i1"), "The modified Bessel function of order 1.", numpy=("i1",),
    kink="i1'(0) = 1/2, the limit of i0(x) - i1(x)/x",
    dx=(_i1_dx,                                    "d i1(x)/dx = i0(x) - i1(x)/x"))
# fmt: on

# fmt: off
zeta: Op = defop("zeta", _of_xq("zeta"), "The Hurwitz zeta function sum_k (k + q)^-x.",
    numpy=("zeta", "_zeta"),  # (SciPy's zeta calls its ufunc _zeta)
    dx=(NOT_IMPLEMENTED, "d zeta(x, q)/dx: no closed form, not provided"),
    dq=(lambda g, out, x, q: -g * x * zeta(x + 1, q), "d zeta(x, q)/dq = -x zeta(x + 1, q)"))

ndtr: Op = defop("ndtr", _of_x("ndtr"), "The standard normal distribution function Phi(x).",
    numpy=("ndtr",),
    dx=(lambda g, out, x: g * exp(-0.5 * x * x) / _SQRT_2PI,
        "d ndtr(x)/dx = exp(-x^2/2) / sqrt(2 pi)"))

log_ndtr: Op = defop("log_ndtr", _of_x("log_ndtr"), "log Phi(x), accurate far into the left tail.",
    numpy=("log_ndtr",),
    # NOTE: phi(x) / Phi(x) as exp(-x^2/2 - log Phi(x)) / sqrt(2 pi): finite where Phi(x) is
    # below the smallest float
    dx=(lambda g, out, x: g * exp(-0.5 * x * x - out) / _SQRT_2PI,
        "d log_ndtr(x)/dx = phi(x) / Phi(x)"))

ndtri: Op = defop("ndtri", _of_x("ndtri"), "The inverse of ndtr, on (0, 1).", numpy=("ndtri",),
    dx=(lambda g, out, x: g * _SQRT_2PI * exp(0.5 * out * out),
        "d ndtri(p)/dp = sqrt(2 pi) exp(ndtri(p)^2 / 2)"))
# fmt: on

expit = sigmoid  # scipy.special.expit(t) dispatches to it


def logsumexp(a: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """``log(sum(exp(a)))`` over ``axis`` (all when None), without overflow: SciPy's
    spelling of :func:`chainrule.logsumexp`."""
    return _logsumexp_op(a, axis=axis, keepdims=keepdims)


def softmax(x: Any, axis: Any = None) -> Any:
    """SciPy's softmax: over the whole array when ``axis`` is None (chainrule's and PyTorch's
    default is the last axis)."""
    if axis is None:
        return reshape(_softmax_op(reshape(x, shape=(-1,)), axis=-1), shape=tuple(x.shape))
    return _softmax_op(x, axis=axis)


def log_softmax(x: Any, axis: Any = None) -> Any:
    """SciPy's log_softmax: over the whole array when ``axis`` is None."""
    if axis is None:
        return reshape(_log_softmax_op(reshape(x, shape=(-1,)), axis=-1), shape=tuple(x.shape))
    return _log_softmax_op(x, axis=axis)
