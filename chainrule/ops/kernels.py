"""Fast kernels: the op sheet's derivatives computed with fewer calls or less memory traffic.

The sheet's rules define every derivative, written once for arrays and Tensors alike. A kernel
here is a faster way to the same bits for NumPy arrays, attached with
:func:`~chainrule.engine.declare.kernel`; given anything else it hands over to the rule.
``tests/test_kernels.py`` holds every kernel to its rule's bits, but one: the normalize op's
loops are compiled C (``_normalize.c``) whose sums, taken in another order, agree with the
rules to rounding (``ROUNDING``). Kept apart so that the sheet reads as mathematics.

- ``d<input>=``: the rule a plain backward pass runs (raw arrays, nothing recorded; ``cr.compile``'d
  programs too). ``create_graph=True`` runs the sheet's rules.
- ``vjp_into=``: the rule of a one-input op written into the incoming gradient ``g``. The
  backward pass calls it where the engine alone holds ``g`` (a fresh array a rule made for this
  node, or the engine's own sum of several), so that a gradient as large as the activations
  is not allocated again: in an MLP, each hidden layer's activation gradient.
- ``save=``: a forward that also keeps a value its kernels would compute again.
"""

from __future__ import annotations

import math
import os
from typing import Any, NamedTuple

import numpy as np

from ..backends import namespace
from ..engine.declare import kernel
from .elementwise import tanh
from .nn import (
    _ce_forward,
    _ce_scale,
    _linear_op,
    _lse_parts,
    _normalize,
    _normalize_forward,
    cross_entropy,
    relu,
    sigmoid,
)
from .reductions import _count, _mean, _sum, kept

__all__ = [
    "relu_vjp",
    "relu_vjp_into",
    "tanh_vjp_into",
    "sigmoid_vjp_into",
    "sum_vjp",
    "mean_vjp",
    "linear_dx",
    "linear_dweight",
    "cross_entropy_save",
    "cross_entropy_dlogits",
    "normalize_save",
    "normalize_dx",
    "normalize_dweight",
    "normalize_dbias",
    "moments",
]


def _arrays(a: Any, b: Any) -> bool:
    """Whether both are NumPy arrays (spelled out: this runs at every node a kernel serves)."""
    return type(a) is np.ndarray and type(b) is np.ndarray


# -- activations ---------------------------------------------------------------------------
def relu_vjp(g: Any, out: Any, x: Any) -> Any:
    """relu's rule, ``g * (out > 0)``: NumPy multiplies by the boolean mask in one pass, where
    the rule casts it first. (The mask is read off the output, which the backward pass has
    just read for the next layer's weight gradient: still in cache.)"""
    if _arrays(g, out):
        return g * (out > 0)
    return relu.vjps[0](g, out, x)


def relu_vjp_into(g: Any, out: Any, x: Any) -> Any:
    """relu's rule into ``g``."""
    if _arrays(g, out):
        return np.multiply(g, out > 0, g)  # (out positionally: 0.1-0.2 us less than out=g)
    return relu.vjps[0](g, out, x)


def tanh_vjp_into(g: Any, out: Any, x: Any) -> Any:
    """tanh's rule, ``g * (1 - out * out)``, into ``g`` (one temporary instead of three)."""
    if _arrays(g, out):
        d = out * out
        np.subtract(1, d, d)
        return np.multiply(g, d, g)
    return tanh.vjps[0](g, out, x)


def sigmoid_vjp_into(g: Any, out: Any, x: Any) -> Any:
    """sigmoid's rule, ``g * out * (1 - out)``, into ``g``: the same products in the same
    order (g * out first)."""
    if _arrays(g, out):
        np.multiply(g, out, g)
        return np.multiply(g, 1 - out, g)
    return sigmoid.vjps[0](g, out, x)


# -- reductions ----------------------------------------------------------------------------
def _filled(g: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    """The reduced gradient ``g`` broadcast back to ``x``'s shape, in a new array. NOTE: the
    fill costs 0.3 us where np.broadcast_to costs 2.4 (a Python-level nditer), and the engine
    can keep the new array as a .grad without copying it."""
    out = np.empty(x.shape, dtype=g.dtype)
    out[...] = kept(g, x, axis, keepdims)
    return out


def sum_vjp(g: Any, out: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """sum's rule: ``g`` broadcast back over the summed axes."""
    if _arrays(g, x):
        return _filled(g, x, axis, keepdims)
    return _sum.vjps[0](g, out, x, axis, keepdims)


def mean_vjp(g: Any, out: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """mean's rule, ``g / n`` broadcast back. NOTE: a 0-d ``g`` (a loss) is divided as a NumPy
    scalar, skipping the ufunc machinery (0.07 us, not 0.6): the same bits."""
    if _arrays(g, x):
        return _filled((g[()] if not g.shape else g) / _count(x, axis), x, axis, keepdims)
    return _mean.vjps[0](g, out, x, axis, keepdims)


# -- the fully connected layer -------------------------------------------------------------
def linear_dx(g: Any, out: Any, x: Any, weight: Any, bias: Any) -> Any:
    """``g @ W``, without the matmul op's checks (the forward made them: they cost as much as a
    small product)."""
    if _arrays(g, weight):
        return g @ weight
    return _linear_op.vjps[0](g, out, x, weight, bias)


def linear_dweight(g: Any, out: Any, x: Any, weight: Any, bias: Any) -> Any:
    """``g^T x`` for a batch of rows, the common case, without the reshapes and checks."""
    if _arrays(g, x) and g.ndim == 2 and x.ndim == 2:
        return g.T @ x
    return _linear_op.vjps[1](g, out, x, weight, bias)


# -- cross-entropy -------------------------------------------------------------------------
def cross_entropy_save(
    xp: Any, logits: Any, targets: Any, label_smoothing: float = 0.0, reduction: str = "none"
) -> tuple[Any, Any]:
    """The loss, and the softmax that the forward computes on the way, for the rule below: on
    a 784-256-256-10 step, 105,000 fewer instructions in the backward pass and about 2% of
    the step's time."""
    return _ce_forward(xp, logits, targets, label_smoothing, reduction, keep=True)


def cross_entropy_dlogits(
    g: Any,
    out: Any,
    z: Any,
    targets: Any,
    label_smoothing: float = 0.0,
    reduction: str = "none",
    saved: Any = None,
) -> Any:
    """``scale * (softmax(z) - onehot(y))``, with the forward's softmax where it was kept.
    NOTE: 1 is taken off at the targets in place, in a new array (never in the saved one,
    which a retained graph reads again): N entries touched instead of an N x K one-hot built
    and subtracted."""
    if not _arrays(g, z) or label_smoothing or z.ndim != 2:
        return cross_entropy.vjps[0](g, out, z, targets, label_smoothing, reduction)
    if saved is None:
        _, e, s = _lse_parts(np, z, -1)
        p = e / s
    else:
        p = saved.copy()
    p[np.arange(p.shape[0]), targets] -= 1
    if reduction == "mean" and not g.shape:
        g = g[()]  # (a NumPy scalar: see mean_vjp)
    return _ce_scale(g, z, reduction) * p


# -- normalisation ------------------------------------------------------------------------
try:
    from . import _normalize as _loops  # type: ignore[attr-defined]  # (compiled by setup.py)
except ImportError:  # pragma: no cover - the plain-Python install
    _loops = None

#: The ops whose kernels agree with their rules to rounding rather than bit for bit.
ROUNDING = frozenset({"normalize"}) if _loops is not None else frozenset()
_PER_CHANNEL, _PER_POSITION = 1, 2  # how weight and bias are laid out (see _normalize.c)


def _thread_count() -> int:
    """The threads the loops share the channels out over: OMP_NUM_THREADS where it is set (as
    NumPy's BLAS and PyTorch read it), else the processors this process may run on."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)  # fmt: skip


THREADS = _thread_count()


class _Plan(NamedTuple):
    """How the compiled loops read x: its axes in the order of its memory (``perm``, None
    where that is their order already, C-contiguous), the normalised axes in that order, and
    the (A, C, B) sizes: the normalised axes are a leading and a trailing block, the kept
    ones (the channels) one block between them."""

    perm: tuple[int, ...] | None
    axes: tuple[int, ...]
    sizes: tuple[int, int, int]


def _plan(x: Any, axes: tuple[int, ...]) -> _Plan | None:
    """The loops' plan for x (a NumPy float array whose memory is one block in some order of
    its axes: a convolution's output, transposed, is), or None where they cannot run."""
    if type(x) is not np.ndarray or x.dtype not in (np.float32, np.float64) or not axes:
        return None
    perm = None
    if not x.flags.c_contiguous:
        order = tuple(sorted(range(x.ndim), key=lambda i: -x.strides[i]))
        if not x.transpose(order).flags.c_contiguous:
            return None
        perm = order
        axes = tuple(sorted(order.index(a) for a in axes))
    shape = x.shape if perm is None else tuple(x.shape[i] for i in perm)
    kept = [i for i in range(len(shape)) if i not in axes]
    if kept and kept != list(range(kept[0], kept[-1] + 1)):
        return None
    first, last = (kept[0], kept[-1] + 1) if kept else (0, 0)
    sizes = math.prod(shape[:first]), math.prod(shape[first:last]), math.prod(shape[last:])
    return _Plan(perm, axes, sizes)


def _in_order(v: Any, plan: _Plan, ndim: int) -> Any:
    """An array of the op (x, g, or a weight or bias, first given x's rank) with its axes in
    the plan's order: a view."""
    if v is None or plan.perm is None:
        return v
    return v.reshape((1,) * (ndim - v.ndim) + v.shape).transpose(plan.perm)


def _in_place(v: Any, plan: _Plan) -> Any:
    """A result of the loops, in the plan's order, back in the op's order of axes (a view)."""
    return v if plan.perm is None else v.transpose(np.argsort(plan.perm))


def _affine_mode(v: Any, x: Any, axes: tuple[int, ...]) -> tuple[Any, int] | None:
    """A weight or bias as the loops take it: (None, 0), (its C values, per channel) or (its B
    values, per position); None where it is laid out otherwise (or of another dtype)."""
    if v is None:
        return None, 0
    if type(v) is not np.ndarray or v.dtype != x.dtype or v.ndim > x.ndim:
        return None
    shape = (1,) * (x.ndim - v.ndim) + v.shape
    kept = [i for i in range(x.ndim) if i not in axes]
    trailing = range(kept[-1] + 1 if kept else 0, x.ndim)
    flat = np.ascontiguousarray(v).reshape(-1)
    if shape == tuple(n if i in kept else 1 for i, n in enumerate(x.shape)):
        return flat, _PER_CHANNEL
    if shape == tuple(n if i in trailing else 1 for i, n in enumerate(x.shape)):
        return flat, _PER_POSITION
    return None


def normalize_save(
    xp: Any, x: Any, weight: Any, bias: Any, *, axes: tuple[int, ...], eps: float
) -> tuple[Any, Any]:
    """The op's value in one pass of the compiled loops (two over each channel for its
    statistics), keeping each channel's mean and 1 / sqrt(var + eps) for the kernels below;
    the sheet's forward (saving nothing) where the case is not theirs. The value is laid out
    in memory as x is."""
    plan = _plan(x, axes) if _loops is not None else None
    if plan is not None:
        xo = _in_order(x, plan, x.ndim)
        w = _affine_mode(_in_order(weight, plan, x.ndim), xo, plan.axes)
        b = _affine_mode(_in_order(bias, plan, x.ndim), xo, plan.axes) if w else None
        if w is not None and b is not None:
            channels = plan.sizes[1]
            out = np.empty(xo.shape, xo.dtype)
            mean, rstd = np.empty(channels), np.empty(channels)
            if _loops.forward(xo, *plan.sizes, float(eps), *w, *b, out, mean, rstd, THREADS):
                return _in_place(out, plan), (mean, rstd)
    return _normalize_forward(xp, x, weight, bias, axes=axes, eps=eps), None


def moments(x: Any, axes: tuple[int, ...]) -> tuple[Any, Any]:
    """The mean and the biased variance of the raw array ``x`` over ``axes`` (shaped as the
    other axes), in x's dtype: by the compiled loops in one pass (two over each channel) where
    the case is theirs, by NumPy otherwise. For batch norm's running statistics; nothing is
    recorded."""
    plan = _plan(x, axes) if _loops is not None else None
    if plan is not None:
        channels = plan.sizes[1]
        mean, var = np.empty(channels), np.empty(channels)
        if _loops.moments(_in_order(x, plan, x.ndim), *plan.sizes, mean, var, THREADS):
            order = plan.perm or tuple(range(x.ndim))
            kept = [order[i] for i in range(x.ndim) if i not in plan.axes]  # in memory order
            shape = [x.shape[a] for a in kept]
            back = np.argsort(kept)  # (the kept axes in their own order)
            return tuple(  # type: ignore[return-value]
                v.astype(x.dtype).reshape(shape).transpose(back) for v in (mean, var)
            )
    xp = namespace(x)
    return xp.mean(x, axis=axes), xp.var(x, axis=axes)


def _fast_backward(
    g: Any, x: Any, axes: tuple[int, ...], saved: Any
) -> tuple[Any, Any, _Plan] | None:
    """(g and x in the loops' order, C-contiguous, and the plan) where the kernels below can
    run; else None."""
    if saved is None or type(g) is not np.ndarray or g.dtype != x.dtype or g.shape != x.shape:
        return None
    plan = _plan(x, axes)
    if plan is None:
        return None
    gx = np.ascontiguousarray(_in_order(g, plan, x.ndim))
    return gx, _in_order(x, plan, x.ndim), plan


def normalize_dx(
    g: Any, out: Any, x: Any, weight: Any, bias: Any, axes: tuple[int, ...], eps: float,
    saved: Any = None,
) -> Any:  # fmt: skip
    """x's gradient in two passes over each channel (the sums, then the gradient)."""
    fast = _fast_backward(g, x, axes, saved)
    if fast is not None:
        go, xo, plan = fast
        w = _affine_mode(_in_order(weight, plan, x.ndim), xo, plan.axes)
        if w is not None:
            dx = np.empty(xo.shape, xo.dtype)
            if _loops.backward_x(go, xo, *saved, *plan.sizes, *w, dx, THREADS):
                return _in_place(dx, plan)
    return _normalize.vjps[0](g, out, x, weight, bias, axes, eps)


def _reduced(g: Any, x: Any, v: Any, axes: tuple[int, ...], saved: Any, with_x: bool) -> Any:
    """The weight's (with_x) or the bias's (v) gradient summed by the loops to v's shape."""
    fast = _fast_backward(g, x, axes, saved)
    if fast is None or v is None:
        return None
    go, xo, plan = fast
    vo = _in_order(v, plan, x.ndim)
    mode = _affine_mode(vo, xo, plan.axes)
    if mode is None:
        return None
    acc = np.zeros(mode[0].size)
    stats = (xo, *saved) if with_x else (None, None, None)
    if not _loops.reduce(go, *stats, *plan.sizes, mode[1], acc, THREADS):
        return None
    summed = acc.astype(v.dtype).reshape(vo.shape)
    return _in_place(summed, plan).reshape(v.shape)


def normalize_dweight(
    g: Any, out: Any, x: Any, weight: Any, bias: Any, axes: tuple[int, ...], eps: float,
    saved: Any = None,
) -> Any:  # fmt: skip
    """The weight's gradient, the sum of g * (x - mean) / std, reduced in one pass."""
    fast = _reduced(g, x, weight, axes, saved, with_x=True)
    return fast if fast is not None else _normalize.vjps[1](g, out, x, weight, bias, axes, eps)


def normalize_dbias(
    g: Any, out: Any, x: Any, weight: Any, bias: Any, axes: tuple[int, ...], eps: float,
    saved: Any = None,
) -> Any:  # fmt: skip
    """The bias's gradient, the sum of g, reduced in one pass."""
    fast = _reduced(g, x, bias, axes, saved, with_x=False)
    return fast if fast is not None else _normalize.vjps[2](g, out, x, weight, bias, axes, eps)


kernel(relu, dx=relu_vjp, vjp_into=relu_vjp_into)
kernel(tanh, vjp_into=tanh_vjp_into)
kernel(sigmoid, vjp_into=sigmoid_vjp_into)
kernel(_sum, dx=sum_vjp)
kernel(_mean, dx=mean_vjp)
kernel(_linear_op, dx=linear_dx, dweight=linear_dweight)
kernel(cross_entropy, save=cross_entropy_save, dlogits=cross_entropy_dlogits)
if _loops is not None:
    kernel(
        _normalize,
        save=normalize_save,
        dx=normalize_dx,
        dweight=normalize_dweight,
        dbias=normalize_dbias,
    )
