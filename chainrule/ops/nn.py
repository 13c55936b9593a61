"""Neural-network primitives: the nonlinearities and the numerically stable normalizers.

Each is written so that value and gradient stay finite for |x| up to 1e4 in float32 and
float64: no exp of a large positive number is ever formed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backends import namespace
from ..backends.gaps import mT, take_along_axis
from ..engine.declare import family, public
from ..engine.op import Op
from ..engine.tensor import data_of
from .elementwise import erf, exp, greater, sqrt, tanh, where
from .linalg import matmul
from .reductions import _mean, _sum, _var, _xp_mean, _xp_sum, kept
from .shape import astype, reshape

__all__ = [
    "sigmoid",
    "relu",
    "leaky_relu",
    "softplus",
    "gelu",
    "logsumexp",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "linear",
]

# The activations are elementwise: diagonal Jacobians, so each VJP rule is also the JVP rule.
activation = family("nn", symmetric=True)
defop = family("nn")


def _sigmoid(xp: Any, x: Any) -> Any:
    # NOTE: stable form: exp(-|x|) never overflows; 1/(1+e) for x >= 0, e/(1+e) below.
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _step(out: Any, g: Any) -> Any:
    """1 where ``out`` > 0, else 0, in ``g``'s dtype: relu's derivative, read off its output
    (max(x, 0) > 0 exactly where x > 0, NaN included)."""
    return astype(greater(out, 0), dtype=g.dtype)


def _leaky(xp: Any, x: Any, negative_slope: float = 0.01) -> Any:
    return xp.where(x > 0, x, x * negative_slope)


# fmt: off
sigmoid: Op = activation("sigmoid", _sigmoid, "The logistic function 1 / (1 + exp(-x)).",
    numpy=("expit",),  # scipy.special.expit
    dx=(lambda g, out, x: g * out * (1 - out),   "d sigmoid(x)/dx = sigmoid(x) (1 - sigmoid(x))"))

relu: Op = activation("relu", lambda xp, x: xp.maximum(x, 0), "max(x, 0).",  # NaN stays NaN
    kink="relu'(0) = 0",
    # NOTE: g times the 0/1 step, not where(x > 0, g, 0): a multiply is 2-4x faster than
    # NumPy's where. The one difference: an infinite g at an inactive unit gives NaN (inf * 0)
    # where where() would give 0, so an overflow upstream is not hidden.
    dx=(lambda g, out, x: g * _step(out, g),     "d relu(x)/dx = 1 if x > 0 else 0"))

leaky_relu: Op = activation("leaky_relu", _leaky,
    "x for x > 0, negative_slope * x otherwise (default slope 0.01).",
    kink="leaky_relu'(0) = negative_slope",
    dx=(lambda g, out, x, negative_slope=0.01: where(greater(x, 0), g, g * negative_slope),
        "d leaky_relu(x)/dx = 1 if x > 0 else negative_slope"))
# fmt: on


def _softplus(xp: Any, x: Any) -> Any:
    # NOTE: log(1 + e^x) = log1p(e^-|x|) + max(x, 0), finite for every finite x.
    return xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(x, xp.zeros_like(x))


# fmt: off
softplus: Op = activation("softplus", _softplus, "log(1 + exp(x)), a smooth relu.",
    kink="smooth everywhere; softplus'(0) = 0.5",
    dx=(lambda g, out, x: g * sigmoid(x),        "d softplus(x)/dx = sigmoid(x)"))
# fmt: on

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TANH_C = math.sqrt(2.0 / math.pi)


def _gelu(xp: Any, x: Any, approximate: str = "none") -> Any:
    if approximate == "tanh":
        return 0.5 * x * (1 + xp.tanh(_TANH_C * (x + 0.044715 * x * x * x)))
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return 0.5 * x * (1 + erf(x * _SQRT_HALF))


def _gelu_vjp(g: Any, out: Any, x: Any, approximate: str = "none") -> Any:
    if approximate == "tanh":
        t = tanh(_TANH_C * (x + 0.044715 * x * x * x))
        du = _TANH_C * (1 + 3 * 0.044715 * x * x)
        return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)
    # d/dx x Phi(x) = Phi(x) + x phi(x)
    cdf = 0.5 * (1 + erf(x * _SQRT_HALF))
    pdf = _INV_SQRT_2PI * exp(-0.5 * x * x)
    return g * (cdf + x * pdf)


# fmt: off
gelu: Op = activation("gelu", _gelu,
    "x Phi(x), the Gaussian error linear unit (approximate='tanh' for the tanh form).",
    dx=(_gelu_vjp, "d gelu(x)/dx = Phi(x) + x phi(x)  (Phi, phi: standard normal cdf and pdf)"))
# fmt: on


def _short_rows(x: Any, axis: Any) -> bool:
    """Whether a reduction of ``x`` along ``axis`` is over many short rows of a NumPy matrix.
    NOTE: NumPy reduces a short last axis one row at a time (a max: 7 us at (128, 10), 180 us
    at (4096, 10)); over a transposed copy it takes whole rows at once, 3-9x faster."""
    return (
        type(x) is np.ndarray and x.ndim == 2 and axis in (-1, 1) and x.shape[1] <= 32 <= x.shape[0]
    )


def _max(xp: Any, x: Any, axis: Any) -> Any:
    """The max along ``axis``, kept as a size-1 axis."""
    if _short_rows(x, axis):  # a max does not depend on the order: the same result
        return np.maximum.reduce(x.T.copy(), axis=0)[:, None]
    if type(x) is np.ndarray:
        return np.maximum.reduce(x, axis=axis, keepdims=True)  # np.max without its layers
    return xp.max(x, axis=axis, keepdims=True)


def _sum_kept(xp: Any, e: Any, axis: Any) -> Any:
    """The sum along ``axis``, kept as a size-1 axis: the normalizer of the softmax family."""
    if _short_rows(e, axis):
        # the terms are added in order where NumPy's row sum pairs them: the same sum to
        # within an ulp (at (4096, 10): 21 us against 81)
        return np.add.reduce(e.T.copy(), axis=0)[:, None]
    return _xp_sum(xp, e, axis, keepdims=True)


_LIMITS: dict[Any, Any] = {}


def _limits(xp: Any, dtype: Any) -> Any:
    """(lowest, highest, 1) as 0-d arrays of a real floating ``dtype``, else None. Cached:
    finfo costs more than the clip it serves, and 0-d arrays are the fastest operands."""
    limits = _LIMITS.get((xp, dtype), False)
    if limits is False:
        limits = None
        if xp.isdtype(dtype, "real floating"):
            info = xp.finfo(dtype)
            limits = tuple(xp.asarray(v, dtype=dtype) for v in (info.min, info.max, 1.0))
        _LIMITS[xp, dtype] = limits
    return limits


def _shift(xp: Any, m: Any, lowest: bool = True) -> Any:
    """``m``, the max along an axis, clipped to the finite floats: the shift to subtract
    before exp so that exp never overflows. NOTE: an all -inf slice shifts by the lowest
    float, so x - shift stays -inf (exp gives 0) rather than NaN; a +inf max by the highest,
    so the +inf entries stay +inf. ``lowest=False`` keeps -inf where the result is NaN anyway
    (softmax's 0/0)."""
    limits = _limits(xp, m.dtype)
    if limits is None:  # integers are finite; complex keeps the general test
        return xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    m = xp.minimum(m, limits[1])
    return xp.maximum(m, limits[0]) if lowest else m


def _at_least_1(xp: Any, s: Any) -> Any:
    """A sum of exp(x - shift) is at least 1 (the max gives exp(0)), but 0 on an all -inf
    slice: as 1 there, log(s) needs no silenced warning and e / s gives 0."""
    limits = _limits(xp, s.dtype)
    return s if limits is None else xp.maximum(s, limits[2])


def _lse_parts(xp: Any, x: Any, axis: Any) -> tuple[Any, Any, Any]:
    """The pieces of logsumexp along ``axis``, as size-1 axes where reduced: the max ``m``,
    ``e = exp(x - shift)`` and its sum. The softmax family's forwards and the rules that
    compute their weights again all start here, so the two ways give the same bits."""
    m = _max(xp, x, axis)
    e = xp.exp(x - _shift(xp, m))
    return m, e, _sum_kept(xp, e, axis)


def _lse_value(xp: Any, x: Any, m: Any, s: Any, axis: Any, keepdims: bool) -> Any:
    out = xp.log(s) + m  # s at least 1: an all -inf slice gives log(1) + -inf = -inf
    if keepdims:
        return out
    return out[..., 0] if axis == -1 else xp.squeeze(out, axis=_axes(axis, len(x.shape)))


def _logsumexp(xp: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    m, _, s = _lse_parts(xp, x, axis)
    return _lse_value(xp, x, m, _at_least_1(xp, s), axis, keepdims)


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    return tuple(a % ndim for a in ((axis,) if isinstance(axis, int) else axis))


def _constant(v: Any) -> Any:
    """The value of ``v`` as a constant of a rule: no gradient flows through it."""
    return data_of(v)


def _lse_weights(x: Any, axis: Any) -> Any:
    # softmax weights exp(x - m) / sum(exp(x - m)) with m the max, taken as a constant (the
    # weights do not depend on the shift). Computing them as exp(x - logsumexp(x)) instead
    # would lose ~50 ulp for large x. An all -inf slice has sum 0: its weights are 0, so the
    # gradient there is 0, not NaN.
    m = _constant(x)
    xp = namespace(m)
    e = exp(x - _shift(xp, _max(xp, m, axis)))
    s = _sum(e, axis=axis, keepdims=True)
    return e / where(greater(s, 0), s, 1.0)  # not maximum(s, 1): its slope at s = 1 is 1/2


# fmt: off
logsumexp: Op = defop("logsumexp", _logsumexp,
    "log(sum(exp(x))) over the given axes, without overflow.",
    kink="a slice of all -inf has value -inf and gradient 0",
    dx=(lambda g, out, x, axis=None, keepdims=False: kept(g, x, axis, keepdims)
                                                     * _lse_weights(x, axis),
        "d logsumexp(x)/dx_i = softmax(x)_i"),
    tx=lambda t, out, x, axis=None, keepdims=False: _sum(
        t * _lse_weights(x, axis), axis=axis, keepdims=keepdims))
# fmt: on


def _softmax(xp: Any, x: Any, axis: int = -1) -> Any:
    e = xp.exp(x - _shift(xp, _max(xp, x, axis), lowest=False))
    return e / _sum_kept(xp, e, axis)


# fmt: off
softmax: Op = defop("softmax", _softmax,
    "exp(x) / sum(exp(x)) along axis, shifted by the max for stability.",
    symmetric=True,  # the Jacobian diag(s) - s s^T
    dx=(lambda g, out, x, axis=-1: out * (g - _sum(g * out, axis=axis, keepdims=True)),
        "d softmax(x)_i/dx_j = s_i (delta_ij - s_j)"))
# fmt: on


def _log_softmax(xp: Any, x: Any, axis: int = -1) -> Any:
    # NOTE: shift first, then subtract the log of the sum: (x - m) is exact for the largest
    # entries, so log_softmax keeps full precision even where x itself is ~1e4.
    shifted = x - _shift(xp, _max(xp, x, axis), lowest=False)
    return shifted - xp.log(_sum_kept(xp, xp.exp(shifted), axis))


# fmt: off
log_softmax: Op = defop("log_softmax", _log_softmax, "x - logsumexp(x) along axis.",
    dx=(lambda g, out, x, axis=-1: g - exp(out) * _sum(g, axis=axis, keepdims=True),
        "d log_softmax(x)_i/dx_j = delta_ij - softmax(x)_j"),
    tx=lambda t, out, x, axis=-1: t - _sum(exp(out) * t, axis=axis, keepdims=True))
# fmt: on


def _target(xp: Any, targets: Any, k: int, dtype: Any, label_smoothing: float) -> Any:
    """q, the one-hot target mixed with the uniform distribution: (1 - eps) onehot + eps/K."""
    q = xp.astype(xp.expand_dims(targets, -1) == xp.arange(k), dtype)
    return q * (1 - label_smoothing) + label_smoothing / k if label_smoothing else q


_CE_REDUCTIONS = ("none", "mean", "sum")


def _cross_entropy(
    xp: Any, logits: Any, targets: Any, label_smoothing: float = 0.0, reduction: str = "none"
) -> Any:
    return _ce_forward(xp, logits, targets, label_smoothing, reduction)[0]


def _ce_forward(
    xp: Any,
    logits: Any,
    targets: Any,
    label_smoothing: float = 0.0,
    reduction: str = "none",
    keep: bool = False,
) -> tuple[Any, Any]:
    """(the loss, softmax(logits) where ``keep``, else None): the forward, and the saving
    forward of cross-entropy's fast kernel (see chainrule.ops.kernels)."""
    # per-sample loss: logsumexp(z) - [(1 - eps) z_y + eps mean(z)]
    if reduction not in _CE_REDUCTIONS:
        raise ValueError(f"reduction must be one of {_CE_REDUCTIONS}, got {reduction!r}")
    m, e, s = _lse_parts(xp, logits, -1)
    lse = _lse_value(xp, logits, m, _at_least_1(xp, s), -1, False)
    # (not sum(z * onehot): inf * 0 = NaN)
    picked = take_along_axis(xp, logits, xp.expand_dims(targets, -1), -1)[..., 0]
    if label_smoothing:
        picked = (1 - label_smoothing) * picked + label_smoothing * xp.mean(logits, axis=-1)
    losses = lse - picked
    # NOTE: the sum as it is, not at least 1: an all -inf row's probabilities are NaN (0/0),
    # like its loss, not 0
    probs = e / s if keep else None
    if reduction == "none":
        return losses, probs
    # NOTE: reduced in the op, not by a mean node after it: the step of a classifier is one
    # node and two array calls shorter, and the rule scales by g / N once (same bits)
    return (_xp_mean(xp, losses) if reduction == "mean" else _xp_sum(xp, losses)), probs


def _ce_scale(g: Any, z: Any, reduction: str) -> Any:
    """The gradient of the loss as the factor of each sample's row: g[i] per sample, g / N
    for the mean, g for the sum."""
    if reduction == "none":
        return g[..., None]
    return g / math.prod(z.shape[:-1]) if reduction == "mean" else g


def _ce_reduce(per_sample: Any, reduction: str) -> Any:
    if reduction == "none":
        return per_sample
    return _mean(per_sample) if reduction == "mean" else _sum(per_sample)


def _ce_residual(z: Any, targets: Any, label_smoothing: float) -> Any:
    """softmax(z) - q, with q the (smoothed) one-hot target: the derivative of each loss."""
    raw = _constant(z)
    q = _target(namespace(raw), _constant(targets), raw.shape[-1], raw.dtype, label_smoothing)
    return softmax(z, axis=-1) - q


# fmt: off
cross_entropy: Op = defop("cross_entropy", _cross_entropy,
    "Softmax cross-entropy of logits (N, K) against class indices (N,) (or (K,) against ()): "
    "per sample, or its mean or sum over the batch (reduction).",
    dlogits=(lambda g, out, z, targets, label_smoothing=0.0, reduction="none":
                 _ce_scale(g, z, reduction) * _ce_residual(z, targets, label_smoothing),
             "d CE(z, y)/dz = softmax(z) - onehot(y)  (smoothed: q = (1-e) onehot + e/K)"),
    tlogits=lambda t, out, z, targets, label_smoothing=0.0, reduction="none": _ce_reduce(
        _sum(t * _ce_residual(z, targets, label_smoothing), axis=-1), reduction))
# fmt: on


def _linear(xp: Any, x: Any, weight: Any, bias: Any) -> Any:
    if weight.ndim != 2 or not x.ndim or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: the input has shape {tuple(x.shape)} but the weight has shape "
            f"{tuple(weight.shape)}; the input's last dimension must equal weight.shape[1]"
        )
    y = xp.matmul(x, mT(weight))
    if bias is None:
        return y
    if type(y) is np.ndarray and bias.dtype == y.dtype and bias.shape == y.shape[-1:]:
        y += bias  # y is new: adding in place saves an array as large as the output
        return y
    return y + bias


def _rows(v: Any) -> Any:
    """v as a matrix: all leading dimensions flattened into rows."""
    return v if len(v.shape) == 2 else reshape(v, shape=(-1, v.shape[-1]))


# fmt: off
_linear_op: Op = defop("linear", _linear,
    "x @ weight.T + bias in one node: the fully connected layer (bias may be None).",
    dx=(lambda g, out, x, weight, bias: matmul(g, weight),      "d(x W^T + b)/dx = g W"),
    dweight=(lambda g, out, x, weight, bias: matmul(mT(_rows(g)), _rows(x)),
                                                                "d(x W^T + b)/dW = g^T x"),
    dbias=(lambda g, out, x, weight, bias: g,                   "d(x W^T + b)/db = sum of g"),
    tx=lambda t, out, x, weight, bias: matmul(t, mT(weight)),
    tweight=lambda t, out, x, weight, bias: matmul(x, mT(t)),
    tbias=lambda t, out, x, weight, bias: t)
# fmt: on


@public(_linear_op)
def linear(x: Any, weight: Any, bias: Any = None) -> Any:
    """``x @ weight.T + bias`` in one node: the fully connected layer (``bias`` may be None)."""
    return _linear_op(x, weight, bias)


# -- normalisation ---------------------------------------------------------------------------
def _normalize_forward(
    xp: Any, x: Any, weight: Any, bias: Any, *, axes: tuple[int, ...], eps: float
) -> Any:
    mean = xp.mean(x, axis=axes, keepdims=True)
    centred = x - mean
    var = xp.mean(centred * centred, axis=axes, keepdims=True)
    out = centred / xp.sqrt(var + eps)
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias


def _standardized(x: Any, axes: tuple[int, ...], eps: float) -> tuple[Any, Any]:
    """(x - mean) / std and std = sqrt(var + eps) over ``axes``, for the rules (computed again
    from x: the op's value has the weight and bias in it)."""
    std = sqrt(_var(x, axis=axes, keepdims=True) + eps)
    return (x - _mean(x, axis=axes, keepdims=True)) / std, std


def _project(v: Any, y: Any, axes: tuple[int, ...]) -> Any:
    """``v - mean(v) - y mean(v y)`` over ``axes``: v with the directions normalize cannot
    move its result in (a shift, a scaling) taken out."""
    return v - _mean(v, axis=axes, keepdims=True) - y * _mean(v * y, axis=axes, keepdims=True)


def _normalize_dx(
    g: Any, out: Any, x: Any, weight: Any, bias: Any, axes: tuple[int, ...], eps: float
) -> Any:
    # NOTE: the Jacobian of y = (x - mean) / std is (I - 1/n - y y^T / n) / std, symmetric:
    # the same projection, applied to the tangent, is the JVP (tx below).
    y, std = _standardized(x, axes, eps)
    return _project(g if weight is None else g * weight, y, axes) / std


def _normalize_tx(
    t: Any, out: Any, x: Any, weight: Any, bias: Any, axes: tuple[int, ...], eps: float
) -> Any:
    y, std = _standardized(x, axes, eps)
    dy = _project(t, y, axes) / std
    return dy if weight is None else dy * weight


def _summed_to(c: Any, like: Any) -> Any:
    """``c`` summed over the axes along which ``like`` broadcasts to c's shape: the gradient of
    a weight or bias summed here (as the compiled loops sum it), not by the engine."""
    shape = tuple(like.shape)
    if tuple(c.shape) == shape:
        return c
    lead = len(c.shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and c.shape[lead + i] != 1
    )
    return reshape(_sum(c, axis=axes, keepdims=True), shape=shape)


def _normalize_dweight(
    g: Any, out: Any, x: Any, weight: Any, bias: Any, axes: tuple[int, ...], eps: float
) -> Any:
    return _summed_to(g * _standardized(x, axes, eps)[0], weight)


# fmt: off
_normalize: Op = family("normalization")("normalize", _normalize_forward,
    "(x - mean) / sqrt(var + eps) * weight + bias, the statistics over axes (the biased "
    "variance); weight and bias broadcast against x and may be None: batch, layer and group "
    "normalisation in one node.", numpy=(),
    dx=(_normalize_dx,
        "d normalize/dx = (gw - mean(gw) - y mean(gw y)) / sqrt(var + eps), gw = g weight, "
        "y = (x - mean) / sqrt(var + eps)"),
    dweight=(_normalize_dweight, "d normalize/dweight = sum of g y"),
    dbias=(lambda g, out, x, weight, bias, axes, eps: _summed_to(g, bias),
                                                                "d normalize/dbias = sum of g"),
    tx=_normalize_tx,
    tweight=lambda t, out, x, weight, bias, axes, eps: t * _standardized(x, axes, eps)[0],
    tbias=lambda t, out, x, weight, bias, axes, eps: t)
# fmt: on


@public(_normalize)
def normalize(
    x: Any, weight: Any = None, bias: Any = None, *, axes: tuple[int, ...], eps: float
) -> Any:
    """``(x - mean) / sqrt(var + eps) * weight + bias`` with the mean and the (biased)
    variance over ``axes``: batch, layer and group normalisation in one node (``weight`` and
    ``bias`` may be None)."""
    return _normalize(x, weight, bias, axes=axes, eps=eps)
