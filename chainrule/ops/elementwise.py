"""Elementwise ops. Their Jacobians are diagonal, so each VJP rule also serves as its JVP rule.

Broadcasting is the engine's business: a rule returns a gradient of the result's shape and
the engine sums it back to each input's shape.
"""

from __future__ import annotations

import math
from typing import Any

from ..backends import erf as _erf
from ..backends import namespace
from ..engine.declare import family
from ..engine.op import Op
from ..engine.tensor import data_of

__all__ = [
    "add",
    "subtract",
    "multiply",
    "divide",
    "power",
    "square",
    "negative",
    "exp",
    "log",
    "log1p",
    "expm1",
    "sqrt",
    "sin",
    "cos",
    "tan",
    "tanh",
    "abs",
    "sign",
    "erf",
    "maximum",
    "minimum",
    "where",
    "clip",
    "equal",
    "not_equal",
    "less",
    "less_equal",
    "greater",
    "greater_equal",
    "logical_and",
    "logical_or",
    "logical_not",
    "isfinite",
    "isnan",
    "arcsin",
    "arccos",
    "arctan",
    "arctan2",
    "sinh",
    "cosh",
    "arcsinh",
    "arccosh",
    "arctanh",
    "asin",
    "acos",
    "atan",
    "atan2",
    "asinh",
    "acosh",
    "atanh",
    "log2",
    "log10",
    "exp2",
    "reciprocal",
    "cbrt",
    "deg2rad",
    "rad2deg",
    "sinc",
    "hypot",
    "logaddexp",
    "logaddexp2",
    "copysign",
    "fmod",
    "remainder",
    "mod",
    "floor",
    "ceil",
    "trunc",
    "round",
    "floor_divide",
]

# Elementwise Jacobians are diagonal, hence symmetric: each VJP rule is also the JVP rule.
defop = family("elementwise", symmetric=True)


def _like(xp: Any, value: Any, other: Any) -> Any:
    """A Python scalar as an array of ``other``'s dtype (the array API wants arrays)."""
    if isinstance(value, (int, float, bool)):
        dtype = getattr(other, "dtype", None)
        return xp.asarray(value, dtype=dtype) if dtype is not None else xp.asarray(value)
    return value


def _flat(g: Any, out: Any, *inputs: Any, **params: Any) -> Any:
    """The derivative of a piecewise constant function: zeros of g's shape (never inf * 0)."""
    raw = data_of(g)
    return namespace(raw).zeros_like(raw)


# fmt: off
# -- arithmetic ------------------------------------------------------------------------------
add: Op = defop("add", lambda xp, x, y: x + y, "x + y, broadcasting.",
    dx=(lambda g, out, x, y: g,                  "d(x + y)/dx = 1"),
    dy=(lambda g, out, x, y: g,                  "d(x + y)/dy = 1"))

subtract: Op = defop("subtract", lambda xp, x, y: x - y, "x - y, broadcasting.",
    dx=(lambda g, out, x, y: g,                  "d(x - y)/dx = 1"),
    dy=(lambda g, out, x, y: -g,                 "d(x - y)/dy = -1"))

multiply: Op = defop("multiply", lambda xp, x, y: x * y, "x * y, broadcasting.",
    dx=(lambda g, out, x, y: g * y,              "d(x * y)/dx = y"),
    dy=(lambda g, out, x, y: g * x,              "d(x * y)/dy = x"))

divide: Op = defop("divide", lambda xp, x, y: x / y, "x / y (true division), broadcasting.",
    numpy=("divide", "true_divide"),
    dx=(lambda g, out, x, y: g / y,              "d(x / y)/dx = 1/y"),
    dy=(lambda g, out, x, y: -g * out / y,       "d(x / y)/dy = -x/y^2"))  # = -out/y


def _power_dy(g: Any, out: Any, x: Any, y: Any) -> Any:
    # NOTE: d(x^y)/dy = x^y log x; at x = 0 the product is taken as 0 (the limit for y > 0),
    # and log is evaluated at 1 there so no spurious divide-by-zero warning is raised.
    if isinstance(x, (int, float)):  # a constant base, 2.0 ** t: stay in g's namespace
        return g * out * math.log(x) if x != 0 else g * 0.0
    safe = where(equal(x, 0), 1.0, x)
    return where(equal(x, 0), 0.0, g * out * log(safe))


def _power_dx(g: Any, out: Any, x: Any, y: Any) -> Any:
    # NOTE: d(x^0)/dx = 0 everywhere, x = 0 included (where y x^(y-1) would be 0 * inf)
    if isinstance(y, (int, float)):
        return g * y * x ** (y - 1) if y != 0 else g * 0.0
    # only 0^0 is guarded (x taken as 1 there: y x^(y-1) = 0), so that elsewhere the rule
    # keeps its dependence on y: d/dy (y x^(y-1)) at y = 0 is 1/x, not 0
    both = logical_and(equal(y, 0), equal(x, 0))
    return g * y * where(both, 1.0, x) ** (y - 1)


power: Op = defop("power", lambda xp, x, y: x**y, "x ** y, broadcasting.",
    kink="d(x^y)/dy at x = 0 is 0; d(x^0)/dx = 0, at x = 0 too",
    dx=(_power_dx,                                 "d(x^y)/dx = y * x^(y-1)"),
    dy=(_power_dy,                                 "d(x^y)/dy = x^y * log(x)"))

square: Op = defop("square", lambda xp, x: x * x,
    "x * x (one node; x ** 2 and x * x give the same values).",
    dx=(lambda g, out, x: g * (2 * x),           "d(x^2)/dx = 2x"))

negative: Op = defop("negative", lambda xp, x: -x, "-x.",
    dx=(lambda g, out, x: -g,                    "d(-x)/dx = -1"))

# -- transcendental --------------------------------------------------------------------------
exp: Op = defop("exp", lambda xp, x: xp.exp(x), "e ** x.",
    dx=(lambda g, out, x: g * out,               "d exp(x)/dx = exp(x)"))

log: Op = defop("log", lambda xp, x: xp.log(x), "Natural logarithm.",
    dx=(lambda g, out, x: g / x,                 "d log(x)/dx = 1/x"))

log1p: Op = defop("log1p", lambda xp, x: xp.log1p(x), "log(1 + x), accurate for small x.",
    dx=(lambda g, out, x: g / (1 + x),           "d log(1 + x)/dx = 1/(1 + x)"))

expm1: Op = defop("expm1", lambda xp, x: xp.expm1(x), "exp(x) - 1, accurate for small x.",
    dx=(lambda g, out, x: g * (out + 1),         "d (exp(x) - 1)/dx = exp(x)"))

sqrt: Op = defop("sqrt", lambda xp, x: xp.sqrt(x), "Square root.",
    kink="sqrt'(0) = inf (no finite subgradient exists)",
    dx=(lambda g, out, x: g / (2 * out),         "d sqrt(x)/dx = 1/(2 sqrt(x))"))

sin: Op = defop("sin", lambda xp, x: xp.sin(x), "Sine.",
    dx=(lambda g, out, x: g * cos(x),            "d sin(x)/dx = cos(x)"))

cos: Op = defop("cos", lambda xp, x: xp.cos(x), "Cosine.",
    dx=(lambda g, out, x: -g * sin(x),           "d cos(x)/dx = -sin(x)"))

tan: Op = defop("tan", lambda xp, x: xp.tan(x), "Tangent.",
    dx=(lambda g, out, x: g * (1 + out * out),   "d tan(x)/dx = 1 + tan(x)^2"))

tanh: Op = defop("tanh", lambda xp, x: xp.tanh(x), "Hyperbolic tangent.",
    dx=(lambda g, out, x: g * (1 - out * out),   "d tanh(x)/dx = 1 - tanh(x)^2"))

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

erf: Op = defop("erf", lambda xp, x: _erf(xp, x), "The error function.", numpy=("erf",),
    dx=(lambda g, out, x: g * _TWO_OVER_SQRT_PI * exp(-(x * x)),
                                                 "d erf(x)/dx = 2/sqrt(pi) * exp(-x^2)"))

# -- inverse trigonometric and hyperbolic -----------------------------------------------------
arcsin: Op = defop("arcsin", lambda xp, x: xp.asin(x), "Inverse sine.", numpy=("arcsin", "asin"),
    dx=(lambda g, out, x: g / sqrt(1 - x * x),   "d arcsin(x)/dx = 1/sqrt(1 - x^2)"))

arccos: Op = defop("arccos", lambda xp, x: xp.acos(x), "Inverse cosine.", numpy=("arccos", "acos"),
    dx=(lambda g, out, x: -g / sqrt(1 - x * x),  "d arccos(x)/dx = -1/sqrt(1 - x^2)"))

arctan: Op = defop("arctan", lambda xp, x: xp.atan(x), "Inverse tangent.", numpy=("arctan", "atan"),
    dx=(lambda g, out, x: g / (1 + x * x),       "d arctan(x)/dx = 1/(1 + x^2)"))

sinh: Op = defop("sinh", lambda xp, x: xp.sinh(x), "Hyperbolic sine.",
    dx=(lambda g, out, x: g * cosh(x),           "d sinh(x)/dx = cosh(x)"))

cosh: Op = defop("cosh", lambda xp, x: xp.cosh(x), "Hyperbolic cosine.",
    dx=(lambda g, out, x: g * sinh(x),           "d cosh(x)/dx = sinh(x)"))

arcsinh: Op = defop("arcsinh", lambda xp, x: xp.asinh(x), "Inverse hyperbolic sine.",
    numpy=("arcsinh", "asinh"),
    dx=(lambda g, out, x: g / sqrt(x * x + 1),   "d arcsinh(x)/dx = 1/sqrt(x^2 + 1)"))

arccosh: Op = defop("arccosh", lambda xp, x: xp.acosh(x), "Inverse hyperbolic cosine (x >= 1).",
    numpy=("arccosh", "acosh"),
    dx=(lambda g, out, x: g / sqrt(x * x - 1),   "d arccosh(x)/dx = 1/sqrt(x^2 - 1)"))

arctanh: Op = defop("arctanh", lambda xp, x: xp.atanh(x), "Inverse hyperbolic tangent.",
    numpy=("arctanh", "atanh"),
    dx=(lambda g, out, x: g / (1 - x * x),       "d arctanh(x)/dx = 1/(1 - x^2)"))

# -- logarithms and powers of other bases --------------------------------------------------------
_LN2, _LN10 = math.log(2.0), math.log(10.0)

log2: Op = defop("log2", lambda xp, x: xp.log2(x), "Base-2 logarithm.",
    dx=(lambda g, out, x: g / (x * _LN2),        "d log2(x)/dx = 1/(x ln 2)"))

log10: Op = defop("log10", lambda xp, x: xp.log10(x), "Base-10 logarithm.",
    dx=(lambda g, out, x: g / (x * _LN10),       "d log10(x)/dx = 1/(x ln 10)"))

exp2: Op = defop("exp2", lambda xp, x: _numpy_or(xp, "exp2", lambda v: 2.0**v)(x), "2 ** x.",
    dx=(lambda g, out, x: g * out * _LN2,        "d 2^x/dx = 2^x ln 2"))

reciprocal: Op = defop("reciprocal", lambda xp, x: 1.0 / x, "1 / x.",
    dx=(lambda g, out, x: -g * out * out,        "d(1/x)/dx = -1/x^2"))

cbrt: Op = defop("cbrt", lambda xp, x: _numpy_or(xp, "cbrt", _cbrt(xp))(x),
    "Cube root (real, of either sign).", kink="cbrt'(0) = inf, as for sqrt",
    dx=(lambda g, out, x: g / (3 * out * out),   "d cbrt(x)/dx = 1/(3 cbrt(x)^2)"))

deg2rad: Op = defop("deg2rad", lambda xp, x: x * (math.pi / 180), "Degrees to radians.",
    numpy=("deg2rad", "radians"),
    dx=(lambda g, out, x: g * (math.pi / 180),   "d deg2rad(x)/dx = pi/180"))

rad2deg: Op = defop("rad2deg", lambda xp, x: x * (180 / math.pi), "Radians to degrees.",
    numpy=("rad2deg", "degrees"),
    dx=(lambda g, out, x: g * (180 / math.pi),   "d rad2deg(x)/dx = 180/pi"))


def _sinc(xp: Any, x: Any) -> Any:
    # sin(pi x) / (pi x), 1 at x = 0 (NumPy's normalised sinc)
    px = math.pi * xp.where(x == 0, xp.ones_like(x), x)
    return xp.where(x == 0, xp.ones_like(x), xp.sin(px) / px)


def _sinc_dx(g: Any, out: Any, x: Any) -> Any:
    # NOTE: (cos(pi x) - sinc(x)) / x, which cancels near 0: there (|x| < 0.01) its Taylor
    # series, accurate to 1e-15 and differentiable again (sinc''(0) = -pi^2 / 3)
    small = less(abs(x), 0.01)
    safe = where(small, 1.0, x)
    p, x2 = math.pi**2, x * x
    series = x * (-p / 3 + x2 * (p * p / 30 - x2 * (p**3 / 840)))
    return g * where(small, series, (cos(math.pi * safe) - out) / safe)


sinc: Op = defop("sinc", _sinc, "sin(pi x) / (pi x), 1 at x = 0.",
    dx=(_sinc_dx,                                "d sinc(x)/dx = (cos(pi x) - sinc(x)) / x"))

# -- two arguments ----------------------------------------------------------------------------
arctan2: Op = defop("arctan2", lambda xp, y, x: xp.atan2(_like(xp, y, x), _like(xp, x, y)),
    "The angle of the point (x, y): arctan(y / x) in the right quadrant.",
    numpy=("arctan2", "atan2"), kink="at the origin both derivatives are 0",
    dy=(lambda g, out, y, x: g * x / _norm2(x, y), "d arctan2(y, x)/dy = x/(x^2 + y^2)"),
    dx=(lambda g, out, y, x: -g * y / _norm2(x, y), "d arctan2(y, x)/dx = -y/(x^2 + y^2)"))

hypot: Op = defop("hypot", lambda xp, x, y: xp.hypot(_like(xp, x, y), _like(xp, y, x)),
    "sqrt(x^2 + y^2) without overflow.", kink="at the origin both derivatives are 0",
    dx=(lambda g, out, x, y: g * x / _nonzero(out), "d hypot(x, y)/dx = x/hypot(x, y)"),
    dy=(lambda g, out, x, y: g * y / _nonzero(out), "d hypot(x, y)/dy = y/hypot(x, y)"))

logaddexp: Op = defop("logaddexp",
    lambda xp, x, y: xp.logaddexp(_like(xp, x, y), _like(xp, y, x)),
    "log(exp(x) + exp(y)) without overflow.",
    dx=(lambda g, out, x, y: g * exp(x - out),   "d logaddexp(x, y)/dx = exp(x - out)"),
    dy=(lambda g, out, x, y: g * exp(y - out),   "d logaddexp(x, y)/dy = exp(y - out)"))

logaddexp2: Op = defop("logaddexp2",
    lambda xp, x, y: _numpy_or(xp, "logaddexp2", _logaddexp2(xp))(x, y),
    "log2(2^x + 2^y) without overflow.",
    dx=(lambda g, out, x, y: g * exp2(x - out),  "d logaddexp2(x, y)/dx = 2^(x - out)"),
    dy=(lambda g, out, x, y: g * exp2(y - out),  "d logaddexp2(x, y)/dy = 2^(y - out)"))

copysign: Op = defop("copysign", lambda xp, x, y: xp.copysign(_like(xp, x, y), _like(xp, y, x)),
    "|x| with the sign of y.", kink="at x = 0 the derivative is 0",
    dx=(lambda g, out, x, y: g * sign(x) * sign(out), "d copysign(x, y)/dx = sign(x) sign(y)"),
    dy=(_flat,                                    "d copysign(x, y)/dy = 0"))

fmod: Op = defop("fmod", lambda xp, x, y: _numpy_or(xp, "fmod", _fmod(xp))(x, y),
    "The remainder of x / y with the sign of x (C's fmod).",
    kink="at the jumps (x a multiple of y) the one-sided derivatives of x's side",
    dx=(lambda g, out, x, y: g,                   "d fmod(x, y)/dx = 1"),
    dy=(lambda g, out, x, y: -g * trunc(x / y),  "d fmod(x, y)/dy = -trunc(x/y)"))

remainder: Op = defop("remainder",
    lambda xp, x, y: xp.remainder(_like(xp, x, y), _like(xp, y, x)),
    "The remainder of x / y with the sign of y (Python's %).", numpy=("remainder", "mod"),
    kink="at the jumps (x a multiple of y) the one-sided derivatives of x's side",
    dx=(lambda g, out, x, y: g,                   "d (x mod y)/dx = 1"),
    dy=(lambda g, out, x, y: -g * floor(x / y),  "d (x mod y)/dy = -floor(x/y)"))


def _norm2(x: Any, y: Any) -> Any:
    """x^2 + y^2, as 1 at the origin (where both derivatives of arctan2 are taken as 0)."""
    r = x * x + y * y
    return where(equal(r, 0), math.inf, r)


def _nonzero(v: Any) -> Any:
    """``v``, as inf where it is 0 (a derivative of hypot at the origin is taken as 0)."""
    return where(equal(v, 0), math.inf, v)


def _numpy_or(xp: Any, name: str, fallback: Any) -> Any:
    """``xp.<name>`` where the namespace has it (NumPy does), else ``fallback``, the same
    function written with array-API functions."""
    fn = getattr(xp, name, None)
    return fn if fn is not None else fallback


def _cbrt(xp: Any) -> Any:
    return lambda x: xp.sign(x) * xp.abs(x) ** (1.0 / 3.0)


def _logaddexp2(xp: Any) -> Any:
    return lambda x, y: xp.logaddexp(x * _LN2, y * _LN2) / _LN2


def _fmod(xp: Any) -> Any:
    return lambda x, y: x - y * xp.trunc(x / y)


floor_divide: Op = defop("floor_divide",
    lambda xp, x, y: xp.floor_divide(_like(xp, x, y), _like(xp, y, x)),
    "floor(x / y) (Python's //).", kink="0 everywhere, at the jumps too",
    dx=(_flat, "d (x // y)/dx = 0"), dy=(_flat, "d (x // y)/dy = 0"))

# -- piecewise constant: derivative 0 (at the jumps too, as JAX and PyTorch take it) --------
def _round(xp: Any, x: Any, decimals: int = 0) -> Any:
    return xp.round(x) if decimals == 0 else xp.round(x, decimals=decimals)


floor: Op = defop("floor", lambda xp, x: xp.floor(x), "The largest integer <= x.",
    kink="0 everywhere, at the jumps too", dx=(_flat, "d floor(x)/dx = 0"))
ceil: Op = defop("ceil", lambda xp, x: xp.ceil(x), "The smallest integer >= x.",
    kink="0 everywhere, at the jumps too", dx=(_flat, "d ceil(x)/dx = 0"))
trunc: Op = defop("trunc", lambda xp, x: xp.trunc(x), "x rounded toward 0.",
    numpy=("trunc", "fix"), kink="0 everywhere, at the jumps too",
    dx=(_flat, "d trunc(x)/dx = 0"))
round: Op = defop("round", _round, "x rounded to the nearest even (to `decimals` places).",
    numpy=("round", "around", "rint"), kink="0 everywhere, at the jumps too",
    dx=(_flat, "d round(x)/dx = 0"))

# -- piecewise -------------------------------------------------------------------------------
abs: Op = defop("abs", lambda xp, x: xp.abs(x), "Absolute value.",
    numpy=("abs", "absolute"), kink="abs'(0) = 0",
    dx=(lambda g, out, x: g * sign(x),           "d|x|/dx = sign(x)"))

sign: Op = defop("sign", lambda xp, x: xp.sign(x),
    "-1, 0 or 1 by the sign of x (piecewise constant: no gradient).")


def _maximum_dx(g: Any, out: Any, x: Any, y: Any) -> Any:
    # NOTE: at a tie the gradient is split evenly, 0.5 to each side.
    return where(greater(x, y), g, where(equal(x, y), 0.5 * g, 0.0))


def _minimum_dx(g: Any, out: Any, x: Any, y: Any) -> Any:
    return where(less(x, y), g, where(equal(x, y), 0.5 * g, 0.0))


maximum: Op = defop("maximum", lambda xp, x, y: xp.maximum(_like(xp, x, y), _like(xp, y, x)),
    "Elementwise larger of x and y.", kink="at x == y each input gets 0.5",
    dx=(_maximum_dx,                             "d maximum(x, y)/dx = 1 if x > y, 0 if x < y"),
    dy=(lambda g, out, x, y: _maximum_dx(g, out, y, x),
                                                 "d maximum(x, y)/dy = 1 if y > x, 0 if y < x"))

minimum: Op = defop("minimum", lambda xp, x, y: xp.minimum(_like(xp, x, y), _like(xp, y, x)),
    "Elementwise smaller of x and y.", kink="at x == y each input gets 0.5",
    dx=(_minimum_dx,                             "d minimum(x, y)/dx = 1 if x < y, 0 if x > y"),
    dy=(lambda g, out, x, y: _minimum_dx(g, out, y, x),
                                                 "d minimum(x, y)/dy = 1 if y < x, 0 if y > x"))

where: Op = defop("where",
    lambda xp, condition, x, y: xp.where(condition, _like(xp, x, y), _like(xp, y, x)),
    "x where condition is true, else y (condition is not differentiated).",
    dx=(lambda g, out, c, x, y: where(c, g, 0.0), "d where(c, x, y)/dx = c"),
    dy=(lambda g, out, c, x, y: where(c, 0.0, g), "d where(c, x, y)/dy = 1 - c"))


def _clip(xp: Any, x: Any, min: Any = None, max: Any = None) -> Any:
    out = x
    if min is not None:
        out = xp.maximum(out, _like(xp, min, x))
    if max is not None:
        out = xp.minimum(out, _like(xp, max, x))
    return out


clip: Op = defop("clip", _clip, "Limit x to [min, max] (either may be None).",
    # NOTE: the gradient passes on the closed interval [min, max], boundaries included
    kink="at x == lo or x == hi the gradient is 1 (it passes)",
    dx=(lambda g, out, x, min=None, max=None: where(equal(out, x), g, 0.0),
        "d clip(x, lo, hi)/dx = 1 if lo <= x <= hi else 0"))

# the array API's spellings
asin, acos, atan, atan2 = arcsin, arccos, arctan, arctan2
asinh, acosh, atanh = arcsinh, arccosh, arctanh
mod = remainder

# -- comparisons and predicates: a boolean result, no gradient -------------------------------
compare = family("comparison")
equal: Op = compare("equal", lambda xp, x, y: x == y, "x == y (boolean result, no gradient).")
not_equal: Op = compare("not_equal", lambda xp, x, y: x != y, "x != y (boolean, no gradient).")
less: Op = compare("less", lambda xp, x, y: x < y, "x < y (boolean result, no gradient).")
less_equal: Op = compare("less_equal", lambda xp, x, y: x <= y, "x <= y (boolean, no gradient).")
greater: Op = compare("greater", lambda xp, x, y: x > y, "x > y (boolean result, no gradient).")
greater_equal: Op = compare("greater_equal", lambda xp, x, y: x >= y,
                            "x >= y (boolean result, no gradient).")
logical_and: Op = compare("logical_and", lambda xp, x, y: xp.logical_and(x, y),
                          "x and y (boolean result, no gradient).")
logical_or: Op = compare("logical_or", lambda xp, x, y: xp.logical_or(x, y),
                         "x or y (boolean result, no gradient).")
logical_not: Op = compare("logical_not", lambda xp, x: xp.logical_not(x),
                          "not x (boolean result, no gradient).")
isfinite: Op = compare("isfinite", lambda xp, x: xp.isfinite(x),
                       "Whether x is finite (boolean result, no gradient).")
isnan: Op = compare("isnan", lambda xp, x: xp.isnan(x),
                    "Whether x is NaN (boolean result, no gradient).")
# fmt: on
