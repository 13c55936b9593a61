"""Elementwise ops. Their Jacobians are diagonal, so each VJP rule also serves as its JVP rule.

Broadcasting is the engine's business: a rule returns a gradient of the result's shape and
the engine sums it back to each input's shape.
"""

from __future__ import annotations

import math
from typing import Any

from ..backends import erf as _erf
from ..engine.declare import family
from ..engine.op import Op

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
]

# Elementwise Jacobians are diagonal, hence symmetric: each VJP rule is also the JVP rule.
defop = family("elementwise", symmetric=True)


def _like(xp: Any, value: Any, other: Any) -> Any:
    """A Python scalar as an array of ``other``'s dtype (the array API wants arrays)."""
    if isinstance(value, (int, float, bool)):
        dtype = getattr(other, "dtype", None)
        return xp.asarray(value, dtype=dtype) if dtype is not None else xp.asarray(value)
    return value


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
    zero = equal(y, 0)
    return where(zero, 0.0, g * y * x ** where(zero, 1.0, y - 1))


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

erf: Op = defop("erf", lambda xp, x: _erf(xp, x), "The error function.",
    dx=(lambda g, out, x: g * _TWO_OVER_SQRT_PI * exp(-(x * x)),
                                                 "d erf(x)/dx = 2/sqrt(pi) * exp(-x^2)"))

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
