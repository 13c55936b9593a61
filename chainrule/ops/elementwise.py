"""Elementwise ops. Their Jacobians are diagonal, so each VJP rule also serves as its JVP rule.

Broadcasting is the engine's business: a rule returns a gradient of the result's shape and
the engine sums it back to each input's shape.
"""

from __future__ import annotations

import math
from typing import Any

from ..backends import erf as _erf
from ..engine.declare import defop
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

F = "elementwise"


def _like(xp: Any, value: Any, other: Any) -> Any:
    """A Python scalar as an array of ``other``'s dtype (the array API wants arrays)."""
    if isinstance(value, (int, float, bool)):
        dtype = getattr(other, "dtype", None)
        return xp.asarray(value, dtype=dtype) if dtype is not None else xp.asarray(value)
    return value


# -- arithmetic ------------------------------------------------------------------------
add: Op = defop(
    "add",
    lambda xp, x, y: x + y,
    vjp=[lambda g, out, x, y: g, lambda g, out, x, y: g],  # d(x+y)/dx = 1, d(x+y)/dy = 1
    jvp="vjp",
    formula="d(x + y)/dx = 1, d(x + y)/dy = 1",
    numpy=("add",),
    family=F,
    description="x + y, broadcasting.",
)

subtract: Op = defop(
    "subtract",
    lambda xp, x, y: x - y,
    vjp=[lambda g, out, x, y: g, lambda g, out, x, y: -g],  # d(x-y)/dy = -1
    jvp="vjp",
    formula="d(x - y)/dx = 1, d(x - y)/dy = -1",
    numpy=("subtract",),
    family=F,
    description="x - y, broadcasting.",
)

multiply: Op = defop(
    "multiply",
    lambda xp, x, y: x * y,
    vjp=[lambda g, out, x, y: g * y, lambda g, out, x, y: g * x],  # d(xy)/dx = y
    jvp="vjp",
    formula="d(x * y)/dx = y, d(x * y)/dy = x",
    numpy=("multiply",),
    family=F,
    description="x * y, broadcasting.",
)

divide: Op = defop(
    "divide",
    lambda xp, x, y: x / y,
    vjp=[
        lambda g, out, x, y: g / y,  # d(x/y)/dx = 1/y
        lambda g, out, x, y: -g * out / y,  # d(x/y)/dy = -x/y^2 = -out/y
    ],
    jvp="vjp",
    formula="d(x / y)/dx = 1/y, d(x / y)/dy = -x/y^2",
    numpy=("divide", "true_divide"),
    family=F,
    description="x / y (true division), broadcasting.",
)


def _power_dy(g: Any, out: Any, x: Any, y: Any) -> Any:
    # NOTE: d(x^y)/dy = x^y log x; at x = 0 the product is taken as 0 (the limit for y > 0),
    # and log is evaluated at 1 there so no spurious divide-by-zero warning is raised.
    if isinstance(x, (int, float)):  # a constant base, 2.0 ** t: stay in g's namespace
        return g * out * math.log(x) if x != 0 else g * 0.0
    safe = where(equal(x, 0), 1.0, x)
    return where(equal(x, 0), 0.0, g * out * log(safe))


power: Op = defop(
    "power",
    lambda xp, x, y: x**y,
    vjp=[lambda g, out, x, y: g * y * x ** (y - 1), _power_dy],  # d(x^y)/dx = y x^(y-1)
    jvp="vjp",
    formula="d(x^y)/dx = y * x^(y-1), d(x^y)/dy = x^y * log(x)",
    kink="d(x^y)/dy at x = 0 is 0",
    numpy=("power",),
    family=F,
    description="x ** y, broadcasting.",
)

square: Op = defop(
    "square",
    lambda xp, x: x * x,
    vjp=[lambda g, out, x: g * (2 * x)],  # d(x^2)/dx = 2x
    jvp="vjp",
    formula="d(x^2)/dx = 2x",
    numpy=("square",),
    family=F,
    description="x * x (one node; x ** 2 and x * x give the same values).",
)

negative: Op = defop(
    "negative",
    lambda xp, x: -x,
    vjp=[lambda g, out, x: -g],
    jvp="vjp",
    formula="d(-x)/dx = -1",
    numpy=("negative",),
    family=F,
    description="-x.",
)

# -- transcendental ----------------------------------------------------------------------
exp: Op = defop(
    "exp",
    lambda xp, x: xp.exp(x),
    vjp=[lambda g, out, x: g * out],
    jvp="vjp",
    formula="d exp(x)/dx = exp(x)",
    numpy=("exp",),
    family=F,
    description="e ** x.",
)

log: Op = defop(
    "log",
    lambda xp, x: xp.log(x),
    vjp=[lambda g, out, x: g / x],
    jvp="vjp",
    formula="d log(x)/dx = 1/x",
    numpy=("log",),
    family=F,
    description="Natural logarithm.",
)

log1p: Op = defop(
    "log1p",
    lambda xp, x: xp.log1p(x),
    vjp=[lambda g, out, x: g / (1 + x)],
    jvp="vjp",
    formula="d log(1 + x)/dx = 1/(1 + x)",
    numpy=("log1p",),
    family=F,
    description="log(1 + x), accurate for small x.",
)

expm1: Op = defop(
    "expm1",
    lambda xp, x: xp.expm1(x),
    vjp=[lambda g, out, x: g * (out + 1)],
    jvp="vjp",
    formula="d (exp(x) - 1)/dx = exp(x)",
    numpy=("expm1",),
    family=F,
    description="exp(x) - 1, accurate for small x.",
)

sqrt: Op = defop(
    "sqrt",
    lambda xp, x: xp.sqrt(x),
    vjp=[lambda g, out, x: g / (2 * out)],
    jvp="vjp",
    formula="d sqrt(x)/dx = 1/(2 sqrt(x))",
    kink="sqrt'(0) = inf (no finite subgradient exists)",
    numpy=("sqrt",),
    family=F,
    description="Square root.",
)

sin: Op = defop(
    "sin",
    lambda xp, x: xp.sin(x),
    vjp=[lambda g, out, x: g * cos(x)],
    jvp="vjp",
    formula="d sin(x)/dx = cos(x)",
    numpy=("sin",),
    family=F,
    description="Sine.",
)

cos: Op = defop(
    "cos",
    lambda xp, x: xp.cos(x),
    vjp=[lambda g, out, x: -g * sin(x)],
    jvp="vjp",
    formula="d cos(x)/dx = -sin(x)",
    numpy=("cos",),
    family=F,
    description="Cosine.",
)

tan: Op = defop(
    "tan",
    lambda xp, x: xp.tan(x),
    vjp=[lambda g, out, x: g * (1 + out * out)],
    jvp="vjp",
    formula="d tan(x)/dx = 1 + tan(x)^2",
    numpy=("tan",),
    family=F,
    description="Tangent.",
)

tanh: Op = defop(
    "tanh",
    lambda xp, x: xp.tanh(x),
    vjp=[lambda g, out, x: g * (1 - out * out)],
    jvp="vjp",
    formula="d tanh(x)/dx = 1 - tanh(x)^2",
    numpy=("tanh",),
    family=F,
    description="Hyperbolic tangent.",
)

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

erf: Op = defop(
    "erf",
    lambda xp, x: _erf(xp, x),
    vjp=[lambda g, out, x: g * _TWO_OVER_SQRT_PI * exp(-(x * x))],
    jvp="vjp",
    formula="d erf(x)/dx = 2/sqrt(pi) * exp(-x^2)",
    family=F,
    description="The error function.",
)

# -- piecewise -------------------------------------------------------------------------
abs: Op = defop(
    "abs",
    lambda xp, x: xp.abs(x),
    vjp=[lambda g, out, x: g * sign(x)],
    jvp="vjp",
    formula="d|x|/dx = sign(x)",
    kink="abs'(0) = 0",
    numpy=("abs", "absolute"),
    family=F,
    description="Absolute value.",
)

sign: Op = defop(
    "sign",
    lambda xp, x: xp.sign(x),
    vjp=[None],
    formula="",
    numpy=("sign",),
    family=F,
    description="-1, 0 or 1 by the sign of x (piecewise constant: no gradient).",
)


def _maximum_dx(g: Any, out: Any, x: Any, y: Any) -> Any:
    # NOTE: at a tie the gradient is split evenly, 0.5 to each side.
    return where(greater(x, y), g, where(equal(x, y), 0.5 * g, 0.0))


maximum: Op = defop(
    "maximum",
    lambda xp, x, y: xp.maximum(_like(xp, x, y), _like(xp, y, x)),
    vjp=[_maximum_dx, lambda g, out, x, y: _maximum_dx(g, out, y, x)],
    jvp="vjp",
    formula=(
        "d maximum(x, y)/dx = 1 if x > y, 0 if x < y, d maximum(x, y)/dy = 1 if y > x, 0 if y < x"
    ),
    kink="at x == y each input gets 0.5",
    numpy=("maximum",),
    family=F,
    description="Elementwise larger of x and y.",
)


def _minimum_dx(g: Any, out: Any, x: Any, y: Any) -> Any:
    return where(less(x, y), g, where(equal(x, y), 0.5 * g, 0.0))


minimum: Op = defop(
    "minimum",
    lambda xp, x, y: xp.minimum(_like(xp, x, y), _like(xp, y, x)),
    vjp=[_minimum_dx, lambda g, out, x, y: _minimum_dx(g, out, y, x)],
    jvp="vjp",
    formula=(
        "d minimum(x, y)/dx = 1 if x < y, 0 if x > y, d minimum(x, y)/dy = 1 if y < x, 0 if y > x"
    ),
    kink="at x == y each input gets 0.5",
    numpy=("minimum",),
    family=F,
    description="Elementwise smaller of x and y.",
)


def _where(xp: Any, condition: Any, x: Any, y: Any) -> Any:
    return xp.where(condition, _like(xp, x, y), _like(xp, y, x))


where: Op = defop(
    "where",
    _where,
    vjp=[
        None,
        lambda g, out, c, x, y: where(c, g, 0.0),  # x where the condition holds
        lambda g, out, c, x, y: where(c, 0.0, g),  # y elsewhere
    ],
    jvp="vjp",
    formula="d where(c, x, y)/dx = c, d where(c, x, y)/dy = 1 - c",
    numpy=("where",),
    family=F,
    description="x where condition is true, else y (condition is not differentiated).",
)


def _clip(xp: Any, x: Any, min: Any = None, max: Any = None) -> Any:
    out = x
    if min is not None:
        out = xp.maximum(out, _like(xp, min, x))
    if max is not None:
        out = xp.minimum(out, _like(xp, max, x))
    return out


def _clip_dx(g: Any, out: Any, x: Any, min: Any = None, max: Any = None) -> Any:
    # NOTE: the gradient passes on the closed interval [min, max], boundaries included.
    inside = equal(out, x)
    return where(inside, g, 0.0)


clip: Op = defop(
    "clip",
    _clip,
    vjp=[_clip_dx],
    jvp="vjp",
    formula="d clip(x, lo, hi)/dx = 1 if lo <= x <= hi else 0",
    kink="at x == lo or x == hi the gradient is 1 (it passes)",
    numpy=("clip",),
    family=F,
    description="Limit x to [min, max] (either may be None).",
)

# -- comparisons and predicates: no gradient ----------------------------------------------
_NONDIFF: list[tuple[str, Any, tuple[str, ...], int]] = [
    ("equal", lambda xp, x, y: x == y, ("equal",), 2),
    ("not_equal", lambda xp, x, y: x != y, ("not_equal",), 2),
    ("less", lambda xp, x, y: x < y, ("less",), 2),
    ("less_equal", lambda xp, x, y: x <= y, ("less_equal",), 2),
    ("greater", lambda xp, x, y: x > y, ("greater",), 2),
    ("greater_equal", lambda xp, x, y: x >= y, ("greater_equal",), 2),
    ("logical_and", lambda xp, x, y: xp.logical_and(x, y), ("logical_and",), 2),
    ("logical_or", lambda xp, x, y: xp.logical_or(x, y), ("logical_or",), 2),
    ("logical_not", lambda xp, x: xp.logical_not(x), ("logical_not",), 1),
    ("isfinite", lambda xp, x: xp.isfinite(x), ("isfinite",), 1),
    ("isnan", lambda xp, x: xp.isnan(x), ("isnan",), 1),
]
_made = {
    name: defop(
        name,
        fn,
        vjp=[None] * nin,
        numpy=np_names,
        family="comparison",
        description=f"{name} (boolean result, no gradient).",
    )
    for name, fn, np_names, nin in _NONDIFF
}
equal = _made["equal"]
not_equal = _made["not_equal"]
less = _made["less"]
less_equal = _made["less_equal"]
greater = _made["greater"]
greater_equal = _made["greater_equal"]
logical_and = _made["logical_and"]
logical_or = _made["logical_or"]
logical_not = _made["logical_not"]
isfinite = _made["isfinite"]
isnan = _made["isnan"]
