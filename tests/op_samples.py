"""Test samples for every op of chainrule's table, one hypothesis strategy factory per op.

``SAMPLES[name](kind)`` is a strategy of :class:`Sample`: a call of op ``name`` through one of
its public faces (``cr.tanh``, ``np.tanh`` on Tensors, ``x ** y``, ``x[index]``, ...) on drawn
arrays. ``kind`` picks the shapes:

``"0d"``     0-d arrays where the op takes them (the smallest shapes it allows otherwise),
``"size1"``  every dimension 1 (mixed ranks, so binary ops broadcast),
``"any"``    up to 3 dimensions of up to 3 entries, mutually broadcastable pairs, and inputs
             that reach the op through a non-contiguous view (flipped, strided, transposed).

Values come from the op's domain (log and sqrt positive, ...) and keep away from kinks: |x|
away from 0 for relu/abs/leaky_relu, no ties for max/min/maximum/minimum, no clip boundary.
The kinks themselves are tested exactly in test_ops.py.

Constants that are arrays (a ``where`` condition, an index) go through ``c``, the converter of
the namespace under test (identity for NumPy, ``xps.asarray`` under array-api-strict).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.special as sp
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import chainrule as cr
from chainrule.ops import OPS

__all__ = ["Sample", "SAMPLES", "KINDS", "np_const", "standard_index"]

KINDS = ("0d", "size1", "any")
MAX_SIDE = 3
MAX_DIMS = 3


def np_const(a: Any) -> Any:
    """The constant converter for NumPy: constants are used as they are."""
    return a


def _ident(x: Any) -> Any:
    return x


def _flip0(x: Any) -> Any:
    return cr.flip(x, axis=0)


def _every_other(x: Any) -> Any:
    return x[..., ::2]


def _transposed(x: Any) -> Any:
    return cr.transpose(x)


@dataclass
class Sample:
    """One call of an op: ``fn(c, *inputs)`` on ``views[i](args[i])``.

    ``args`` are C-contiguous NumPy leaves; ``views`` turn a leaf into the (possibly
    non-contiguous) array the op sees, using chainrule ops so that they work on NumPy arrays,
    on Tensors and under array-api-strict alike. ``ref`` is a NumPy reference of ``fn`` on the
    viewed values; ``dref`` (unary elementwise ops) the closed-form derivative.
    """

    op: str
    fn: Callable[..., Any]
    args: tuple[np.ndarray, ...]
    views: tuple[Callable[[Any], Any], ...]
    layouts: tuple[str, ...]
    ref: Callable[..., Any] | None = None
    dref: Callable[[np.ndarray], np.ndarray] | None = None
    note: str = ""
    values: tuple[np.ndarray, ...] = field(default=(), repr=False)
    forward_mode: bool | None = None  # whether cr.jvp works here; None: as the table says

    def call(self, c: Callable[[Any], Any], *leaves: Any) -> Any:
        """Apply the op to ``leaves`` (arrays or Tensors shaped like ``args``)."""
        return self.fn(c, *(v(a) for v, a in zip(self.views, leaves)))

    def viewed(self, leaves: Sequence[Any]) -> list[Any]:
        return [v(a) for v, a in zip(self.views, leaves)]

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{lay}:{a.dtype}{list(v.shape)}={np.array2string(v, precision=4)}"
            for lay, a, v in zip(self.layouts, self.args, self.values)
        )
        return f"Sample({self.op}: {self.note} on {parts})"


# -- shapes and values -------------------------------------------------------------------------
def _shape(draw: Any, kind: str, min_dims: int = 0, max_dims: int = MAX_DIMS) -> tuple[int, ...]:
    if kind == "0d":
        return (1,) * min_dims
    if kind == "size1":
        return (1,) * draw(st.integers(max(min_dims, 1), max_dims))
    return draw(
        hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=MAX_SIDE)
    )


def _shapes(draw: Any, kind: str, n: int = 2) -> tuple[tuple[int, ...], ...]:
    """``n`` mutually broadcastable shapes."""
    if kind == "0d":
        return ((),) * n
    if kind == "size1":
        return tuple((1,) * draw(st.integers(0, MAX_DIMS)) for _ in range(n))
    return draw(
        hnp.mutually_broadcastable_shapes(num_shapes=n, max_dims=MAX_DIMS, max_side=MAX_SIDE)
    ).input_shapes


def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def _values(draw: Any, shape: tuple[int, ...], lo: float, hi: float) -> np.ndarray:
    return np.asarray(draw(hnp.arrays(np.float64, shape, elements=_floats(lo, hi))))


def _nonzero(draw: Any, shape: tuple[int, ...], lo: float = 0.2, hi: float = 2.0) -> np.ndarray:
    """|x| in [lo, hi], either sign: away from the kink at 0."""
    mag = _values(draw, shape, lo, hi)
    sign = np.asarray(draw(hnp.arrays(np.bool_, shape)))
    return np.where(sign, mag, -mag)


def _distinct(draw: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Entries pairwise at least 0.2 apart: no ties for max/min/argmax."""
    n = int(np.prod(shape, dtype=np.int64))
    perm = np.array(draw(st.permutations(range(n))), dtype=np.float64)
    jitter = _values(draw, (n,), 0.0, 0.1)
    return ((perm - n / 2) * 0.3 + jitter).reshape(shape)


def _grid(draw: Any, shape: tuple[int, ...], offset: float) -> np.ndarray:
    """Multiples of 0.5 plus ``offset`` plus a jitter in [0, 0.05]: two such arrays with
    offsets 0 and 0.25 differ by at least 0.2 everywhere they meet."""
    k = np.asarray(draw(hnp.arrays(np.int64, shape, elements=st.integers(-4, 4))))
    return k * 0.5 + offset + _values(draw, shape, 0.0, 0.05)


def _contiguous(a: np.ndarray) -> np.ndarray:
    return np.array(a, order="C", copy=True)  # (np.ascontiguousarray makes 0-d arrays 1-d)


def _layout(draw: Any, kind: str, arr: np.ndarray) -> tuple[np.ndarray, Any, str]:
    """A C-contiguous leaf and the view that gives ``arr`` back, non-contiguous if drawn."""
    if kind != "any" or arr.ndim == 0:
        return _contiguous(arr), _ident, "C"
    choices = ["C", "flip", "strided"] + (["T"] if arr.ndim >= 2 else [])
    name = draw(st.sampled_from(choices))
    if name == "flip":
        return _contiguous(np.flip(arr, 0)), _flip0, name
    if name == "strided":
        return _contiguous(np.repeat(arr, 2, axis=-1)), _every_other, name
    if name == "T":
        return _contiguous(arr.T), _transposed, name
    return _contiguous(arr), _ident, name


def _sample(
    draw: Any,
    kind: str,
    op: str,
    fn: Callable[..., Any],
    arrays: Sequence[np.ndarray],
    ref: Callable[..., Any] | None = None,
    dref: Callable[[np.ndarray], np.ndarray] | None = None,
    note: str = "",
) -> Sample:
    leaves, views, layouts = [], [], []
    for a in arrays:
        leaf, view, name = _layout(draw, kind, np.asarray(a))
        leaves.append(leaf)
        views.append(view)
        layouts.append(name)
    return Sample(
        op,
        fn,
        tuple(leaves),
        tuple(views),
        tuple(layouts),
        ref,
        dref,
        note,
        tuple(np.asarray(a) for a in arrays),
    )


def _variant(draw: Any, options: dict[str, Any]) -> tuple[str, Any]:
    label = draw(st.sampled_from(sorted(options)))
    return label, options[label]


def _numpy_faces(name: str) -> dict[str, Any]:
    """The NumPy functions that dispatch to op ``name`` on Tensors, per the table."""
    return {f"np.{n}": getattr(np, n) for n in OPS[name].numpy if hasattr(np, n)}


# -- elementwise: unary --------------------------------------------------------------------------
def _unary(
    name: str,
    lo: float,
    hi: float,
    ref: Callable[[np.ndarray], np.ndarray],
    dref: Callable[[np.ndarray], np.ndarray] | None,
    nonzero: bool = False,
    extra: dict[str, Any] | None = None,
) -> Callable[[str], st.SearchStrategy[Sample]]:
    @st.composite
    def factory(draw: Any, kind: str) -> Sample:
        shape = _shape(draw, kind)
        x = _nonzero(draw, shape, lo, hi) if nonzero else _values(draw, shape, lo, hi)
        faces = {f"cr.{name}": getattr(cr, name), **_numpy_faces(name), **(extra or {})}
        label, f = _variant(draw, faces)
        return _sample(draw, kind, name, lambda c, x: f(x), [x], ref, dref, label)

    return factory


def _stepwise(name: str, ref: Callable[[np.ndarray], np.ndarray]) -> Any:
    """Samples of a piecewise constant function (floor, round, ...), away from its jumps at the
    integers and half-integers: finite differences see the slope 0 there."""

    @st.composite
    def factory(draw: Any, kind: str) -> Sample:
        shape = _shape(draw, kind)
        whole = np.asarray(draw(hnp.arrays(np.int64, shape, elements=st.integers(-3, 3))))
        part = np.asarray(draw(hnp.arrays(np.float64, shape, elements=st.sampled_from(
            [0.2, 0.3, 0.7, 0.8]))))  # fmt: skip
        x = whole + part
        faces = {f"cr.{name}": getattr(cr, name), **_numpy_faces(name)}
        label, f = _variant(draw, faces)
        return _sample(draw, kind, name, lambda c, x: f(x), [x], ref, np.zeros_like, label)

    return factory


def _special(name: str, ranges: Sequence[tuple[float, float]], first: Any = None) -> Any:
    """Samples of a cr.special function of len(ranges) arrays (and a leading constant
    ``first``, polygamma's order), called as chainrule's or SciPy's."""

    @st.composite
    def factory(draw: Any, kind: str) -> Sample:
        shapes = _shapes(draw, kind, len(ranges))
        arrays = [_values(draw, sh, lo, hi) for sh, (lo, hi) in zip(shapes, ranges)]
        lead = () if first is None else (first,)
        ours, theirs = getattr(cr.special, name), getattr(sp, name)
        faces = {f"cr.special.{name}": ours}
        if first is None:  # (SciPy's polygamma converts its inputs: not dispatched)
            faces[f"scipy.special.{name}"] = theirs
        label, f = _variant(draw, faces)
        return _sample(
            draw, kind, name, lambda c, *xs: f(*lead, *xs), arrays,
            ref=lambda *xs: theirs(*lead, *xs), note=label,
        )  # fmt: skip

    return factory


def _special_q(name: str) -> Any:
    """Samples of zeta(x, q): x a constant above 1 (no derivative in x), q the input."""

    @st.composite
    def factory(draw: Any, kind: str) -> Sample:
        x = draw(st.sampled_from([2.0, 3.5]))
        q = _values(draw, _shape(draw, kind), 0.5, 3)
        ours, theirs = getattr(cr.special, name), getattr(sp, name)
        label, f = _variant(draw, {f"cr.special.{name}": ours, f"scipy.special.{name}": theirs})
        s = _sample(
            draw, kind, name, lambda c, q: f(x, q), [q], ref=lambda q: theirs(x, q), note=label
        )
        s.forward_mode = True  # (x, whose rule is not provided, is a constant here)
        return s

    return factory


_SQRT_2PI = math.sqrt(2 * math.pi)


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _gelu_tanh_d(x: np.ndarray) -> np.ndarray:
    c = math.sqrt(2 / math.pi)
    t = np.tanh(c * (x + 0.044715 * x**3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)


@st.composite
def _leaky_relu(draw: Any, kind: str) -> Sample:
    x = _nonzero(draw, _shape(draw, kind))
    slope = draw(st.sampled_from([None, 0.1, 0.2, 0.5]))
    a = 0.01 if slope is None else slope
    if slope is None:
        fn = lambda c, x: cr.leaky_relu(x)
    else:
        fn = lambda c, x: cr.leaky_relu(x, negative_slope=slope)
    return _sample(
        draw,
        kind,
        "leaky_relu",
        fn,
        [x],
        ref=lambda x: np.where(x > 0, x, a * x),
        dref=lambda x: np.where(x > 0, 1.0, a),
        note=f"cr.leaky_relu(negative_slope={slope})",
    )


@st.composite
def _gelu(draw: Any, kind: str) -> Sample:
    x = _values(draw, _shape(draw, kind), -3.0, 3.0)
    approx = draw(st.sampled_from(["none", "tanh", None]))
    if approx is None:
        fn = lambda c, x: cr.gelu(x)
    else:
        fn = lambda c, x: cr.gelu(x, approximate=approx)
    if approx == "tanh":
        ref, dref = _gelu_tanh, _gelu_tanh_d
    else:
        ref = lambda x: x * sp.ndtr(x)
        dref = lambda x: sp.ndtr(x) + x * np.exp(-0.5 * x * x) / _SQRT_2PI
    return _sample(draw, kind, "gelu", fn, [x], ref, dref, f"cr.gelu(approximate={approx})")


# -- elementwise: binary -------------------------------------------------------------------------
def _binary(
    name: str,
    ref: Callable[[Any, Any], Any],
    operator: Callable[[Any, Any], Any] | None = None,
    x_range: tuple[float, float] = (-2.0, 2.0),
    y_range: tuple[float, float] = (-2.0, 2.0),
    y_nonzero: bool = False,
    scalars: Sequence[tuple[str, Any, Any]] = (),
) -> Callable[[str], st.SearchStrategy[Sample]]:
    """``scalars``: (label, fn of one array, reference) forms with a Python number operand."""

    @st.composite
    def factory(draw: Any, kind: str) -> Sample:
        sx, sy = _shapes(draw, kind)
        x = _values(draw, sx, *x_range)
        y = _nonzero(draw, sy, *y_range) if y_nonzero else _values(draw, sy, *y_range)
        faces: dict[str, Any] = {f"cr.{name}": getattr(cr, name), **_numpy_faces(name)}
        if operator is not None:
            faces["operator"] = operator
        for label, f1, r1 in scalars:
            faces[label] = (f1, r1)
        label, f = _variant(draw, faces)
        if isinstance(f, tuple):
            f1, r1 = f
            return _sample(draw, kind, name, lambda c, x: f1(x), [x], r1, note=label)
        return _sample(draw, kind, name, lambda c, x, y: f(x, y), [x, y], ref, note=label)

    return factory


@st.composite
def _extremum2(draw: Any, kind: str, name: str) -> Sample:
    sx, sy = _shapes(draw, kind)
    x, y = _grid(draw, sx, 0.0), _grid(draw, sy, 0.25)
    if draw(st.booleans()):
        x, y = y, x
    label, f = _variant(draw, {f"cr.{name}": getattr(cr, name), **_numpy_faces(name)})
    ref = np.maximum if name == "maximum" else np.minimum
    return _sample(draw, kind, name, lambda c, x, y: f(x, y), [x, y], ref, note=label)


@st.composite
def _where(draw: Any, kind: str) -> Sample:
    sc, sx, sy = _shapes(draw, kind, 3)
    cond = np.asarray(draw(hnp.arrays(np.bool_, sc)))
    x, y = _values(draw, sx, -2, 2), _values(draw, sy, -2, 2)
    label, f = _variant(draw, {"cr.where": cr.where, **_numpy_faces("where")})
    return _sample(
        draw,
        kind,
        "where",
        lambda c, x, y: f(c(cond), x, y),
        [x, y],
        ref=lambda x, y: np.where(cond, x, y),
        note=f"{label} cond={cond.tolist()}",
    )


@st.composite
def _clip(draw: Any, kind: str) -> Sample:
    shape = _shape(draw, kind)
    lo = draw(st.sampled_from([None, -1.0, -0.5, 0.0]))
    hi = draw(st.sampled_from([None, 0.5, 1.0] if lo is not None else [0.5, 1.0]))
    region = np.asarray(draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 2))))
    u = _values(draw, shape, 0.0, 1.0)
    low, high = -1.5 if lo is None else lo, 1.5 if hi is None else hi
    # below lo, strictly inside, above hi: at least 0.1 from either boundary
    x = np.select(
        [region == 0, region == 1],
        [low - 0.1 - u, low + 0.1 + u * (high - low - 0.2)],
        high + 0.1 + u,
    )
    faces = {
        "cr.clip": lambda x: cr.clip(x, lo, hi),
        "cr.clamp(min=, max=)": lambda x: cr.clamp(x, min=lo, max=hi),
        "np.clip": lambda x: np.clip(x, lo, hi),
    }
    label, f = _variant(draw, faces)
    return _sample(
        draw,
        kind,
        "clip",
        lambda c, x: f(x),
        [x],
        ref=lambda x: np.clip(x, lo, hi),
        note=f"{label} [{lo}, {hi}]",
    )


# -- comparisons and predicates (no gradient) ---------------------------------------------------
def _compare(name: str, operator: Callable[[Any, Any], Any] | None) -> Any:
    @st.composite
    def factory(draw: Any, kind: str) -> Sample:
        sx, sy = _shapes(draw, kind)
        grid = st.sampled_from([-1.0, 0.0, 0.5, 1.0])  # small grid: ties are common
        x = np.asarray(draw(hnp.arrays(np.float64, sx, elements=grid)))
        y = np.asarray(draw(hnp.arrays(np.float64, sy, elements=grid)))
        faces = {f"cr.{name}": getattr(cr, name), **_numpy_faces(name)}
        if operator is not None:
            faces["operator"] = operator
        label, f = _variant(draw, faces)
        return _sample(
            draw, kind, name, lambda c, x, y: f(x, y), [x, y], getattr(np, name), note=label
        )

    return factory


def _logical(name: str, operator: Callable[..., Any]) -> Any:
    nin = OPS[name].nin

    @st.composite
    def factory(draw: Any, kind: str) -> Sample:
        shapes = _shapes(draw, kind, nin)
        arrays = [np.asarray(draw(hnp.arrays(np.bool_, s))) for s in shapes]
        faces = {f"cr.{name}": getattr(cr, name), **_numpy_faces(name), "operator": operator}
        label, f = _variant(draw, faces)
        return _sample(draw, kind, name, lambda c, *a: f(*a), arrays, getattr(np, name), note=label)

    return factory


_SPECIALS = st.sampled_from([np.inf, -np.inf, np.nan, 0.0, -1.5, 2.0])


def _float_predicate(name: str) -> Any:
    @st.composite
    def factory(draw: Any, kind: str) -> Sample:
        x = np.asarray(draw(hnp.arrays(np.float64, _shape(draw, kind), elements=_SPECIALS)))
        label, f = _variant(draw, {f"cr.{name}": getattr(cr, name), **_numpy_faces(name)})
        return _sample(draw, kind, name, lambda c, x: f(x), [x], getattr(np, name), note=label)

    return factory


@st.composite
def _sign(draw: Any, kind: str) -> Sample:
    elems = st.one_of(st.sampled_from([0.0, -0.0, 1.0, -2.0]), _floats(-3, 3))
    x = np.asarray(draw(hnp.arrays(np.float64, _shape(draw, kind), elements=elems)))
    label, f = _variant(draw, {"cr.sign": cr.sign, **_numpy_faces("sign")})
    return _sample(draw, kind, "sign", lambda c, x: f(x), [x], np.sign, note=label)


# -- reductions ----------------------------------------------------------------------------------
def _axis(draw: Any, ndim: int) -> Any:
    """None, an int (maybe negative) or a tuple of distinct axes (maybe empty)."""
    if ndim == 0:
        return draw(st.sampled_from([None, ()]))
    choice = draw(st.sampled_from(["none", "int", "tuple"]))
    if choice == "none":
        return None
    if choice == "int":
        return draw(st.integers(-ndim, ndim - 1))
    axes = draw(st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim))
    return tuple(a - ndim if draw(st.booleans()) else a for a in axes)


def _count(shape: tuple[int, ...], axis: Any) -> int:
    if axis is None:
        return int(np.prod(shape, dtype=np.int64))
    axes = (axis,) if isinstance(axis, int) else axis
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


def _reduction(name: str, distinct: bool = False) -> Any:
    @st.composite
    def factory(draw: Any, kind: str) -> Sample:
        shape = _shape(draw, kind)
        x = _distinct(draw, shape) if distinct else _values(draw, shape, -2, 2)
        axis = _axis(draw, len(shape))
        keepdims = draw(st.booleans())
        fn_cr, fn_np = getattr(cr, name), getattr(np, name)
        faces = {
            f"cr.{name}": lambda x: fn_cr(x, axis=axis, keepdims=keepdims),
            "method": lambda x: getattr(x, name)(axis=axis, keepdims=keepdims),
            f"np.{name}": lambda x: fn_np(x, axis=axis, keepdims=keepdims),
        }
        label, f = _variant(draw, faces)
        return _sample(
            draw,
            kind,
            name,
            lambda c, x: f(x),
            [x],
            ref=lambda x: fn_np(x, axis=axis, keepdims=keepdims),
            note=f"{label}(axis={axis}, keepdims={keepdims})",
        )

    return factory


def _spread(name: str) -> Any:
    """Samples of var or std: NumPy's and the array API's spellings of ddof."""

    @st.composite
    def factory(draw: Any, kind: str) -> Sample:
        shape = _shape(draw, kind)
        x = _distinct(draw, shape)
        axis = _axis(draw, len(shape))
        keepdims = draw(st.booleans())
        n = _count(shape, axis)
        ddof = draw(st.sampled_from([0, 1] if n > 1 else [0]))
        fn, ref = getattr(cr, name), getattr(np, name)
        faces = {
            f"cr.{name}": (lambda x: fn(x, axis, keepdims, ddof=ddof), ref),
            f"cr.{name}(correction=)": (
                lambda x: fn(x, axis=axis, keepdims=keepdims, correction=ddof),
                ref,
            ),
            f"np.{name}": (lambda x: ref(x, axis=axis, keepdims=keepdims, ddof=ddof), ref),
        }
        label, (f, r) = _variant(draw, faces)
        return _sample(
            draw,
            kind,
            name,
            lambda c, x: f(x),
            [x],
            ref=lambda x: r(x, axis=axis, keepdims=keepdims, ddof=ddof),
            note=f"{label}(axis={axis}, keepdims={keepdims}, ddof={ddof})",
        )

    return factory


def _with_zeros(draw: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Factors in [0.5, 1.5] of either sign, some of them exactly 0 (where a product's
    derivative cannot be the product divided by the factor)."""
    x = _nonzero(draw, shape, 0.5, 1.5)
    zeros = np.asarray(draw(hnp.arrays(np.bool_, shape)))
    if draw(st.booleans()):
        x = np.where(zeros, 0.0, x)
    return x


@st.composite
def _prod(draw: Any, kind: str) -> Sample:
    shape = _shape(draw, kind)
    x = _with_zeros(draw, shape)
    axis = _axis(draw, len(shape))
    keepdims = draw(st.booleans())
    faces = {
        "cr.prod": lambda x: cr.prod(x, axis=axis, keepdims=keepdims),
        "np.prod": lambda x: np.prod(x, axis=axis, keepdims=keepdims),
    }
    label, f = _variant(draw, faces)
    ref = lambda x: np.prod(x, axis=axis, keepdims=keepdims)  # noqa: E731
    return _sample(draw, kind, "prod", lambda c, x: f(x), [x], ref, note=f"{label}({axis})")


def _scan(name: str) -> Any:
    """cumsum or cumprod along an axis, or over the flattened array (axis None)."""

    @st.composite
    def factory(draw: Any, kind: str) -> Sample:
        shape = _shape(draw, kind)
        x = _values(draw, shape, -2, 2) if name == "cumsum" else _with_zeros(draw, shape)
        axis = (
            None
            if not shape
            else draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
        )
        fn, ref = getattr(cr, name), getattr(np, name)
        label, f = _variant(draw, {f"cr.{name}": fn, f"np.{name}": ref})
        return _sample(
            draw,
            kind,
            name,
            lambda c, x: f(x, axis=axis),
            [x],
            ref=lambda x: ref(x, axis=axis),
            note=f"{label}(axis={axis})",
        )

    return factory


def _arg_reduction(name: str) -> Any:
    @st.composite
    def factory(draw: Any, kind: str) -> Sample:
        shape = _shape(draw, kind)
        x = _distinct(draw, shape)
        axis = (
            None
            if not shape
            else draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
        )
        keepdims = draw(st.booleans())
        fn = getattr(cr, name)
        return _sample(
            draw,
            kind,
            name,
            lambda c, x: fn(x, axis=axis, keepdims=keepdims),
            [x],
            ref=lambda x: getattr(np, name)(x, axis=axis, keepdims=keepdims),
            note=f"cr.{name}(axis={axis}, keepdims={keepdims})",
        )

    return factory


def _bool_reduction(name: str) -> Any:
    @st.composite
    def factory(draw: Any, kind: str) -> Sample:
        shape = _shape(draw, kind)
        x = np.asarray(draw(hnp.arrays(np.bool_, shape)))
        axis = _axis(draw, len(shape))
        keepdims = draw(st.booleans())
        fn = getattr(cr, name)
        return _sample(
            draw,
            kind,
            name,
            lambda c, x: fn(x, axis=axis, keepdims=keepdims),
            [x],
            ref=lambda x: getattr(np, name)(x, axis=axis, keepdims=keepdims),
            note=f"cr.{name}(axis={axis}, keepdims={keepdims})",
        )

    return factory


# -- nn normalizers ------------------------------------------------------------------------------
@st.composite
def _logsumexp(draw: Any, kind: str) -> Sample:
    shape = _shape(draw, kind)
    x = _values(draw, shape, -3, 3)
    axis = _axis(draw, len(shape))
    keepdims = draw(st.booleans())
    if axis == () or not shape:  # a reduction over no axes is the identity
        ref = np.asarray
    else:
        ref = lambda x: sp.logsumexp(x, axis=axis, keepdims=keepdims)
    return _sample(
        draw,
        kind,
        "logsumexp",
        lambda c, x: cr.logsumexp(x, axis=axis, keepdims=keepdims),
        [x],
        ref,
        note=f"cr.logsumexp(axis={axis}, keepdims={keepdims})",
    )


def _normalizer(name: str, ref_fn: Callable[..., Any]) -> Any:
    @st.composite
    def factory(draw: Any, kind: str) -> Sample:
        shape = _shape(draw, kind, min_dims=1)
        x = _values(draw, shape, -3, 3)
        axis = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
        fn = getattr(cr, name)
        if axis is None:
            f, ref = (lambda c, x: fn(x)), (lambda x: ref_fn(x, axis=-1))
        else:
            f, ref = (lambda c, x: fn(x, axis=axis)), (lambda x: ref_fn(x, axis=axis))
        return _sample(draw, kind, name, f, [x], ref, note=f"cr.{name}(axis={axis})")

    return factory


@st.composite
def _cross_entropy(draw: Any, kind: str) -> Sample:
    shape = _shape(draw, kind, min_dims=2, max_dims=2)
    z = _values(draw, shape, -3, 3)
    t = np.asarray(
        draw(st.lists(st.integers(0, shape[1] - 1), min_size=shape[0], max_size=shape[0]))
    )
    eps = draw(st.sampled_from([0.0, 0.1]))
    reduction = draw(st.sampled_from(["none", "mean", "sum"]))  # taken inside the op
    reduce = {"none": lambda v: v, "mean": np.mean, "sum": np.sum}[reduction]

    def ref(z: np.ndarray) -> np.ndarray:
        log_p = sp.log_softmax(z, axis=-1)
        return reduce(-(1 - eps) * log_p[np.arange(len(t)), t] - eps * log_p.mean(axis=-1))

    faces = {
        "cr.ops.cross_entropy": lambda z, t: cr.ops.cross_entropy(
            z, t, label_smoothing=eps, reduction=reduction
        ),
        "F.cross_entropy": lambda z, t: cr.nn.functional.cross_entropy(
            z, t, reduction=reduction, label_smoothing=eps
        ),
    }
    label, f = _variant(draw, faces)
    return _sample(
        draw,
        kind,
        "cross_entropy",
        lambda c, z: f(z, c(t)),
        [z],
        ref,
        note=f"{label} eps={eps} reduction={reduction}",
    )


@st.composite
def _linear(draw: Any, kind: str) -> Sample:
    lead = _shape(draw, kind, max_dims=2)
    n_in = 1 if kind != "any" else draw(st.integers(1, MAX_SIDE))
    n_out = 1 if kind != "any" else draw(st.integers(1, MAX_SIDE))
    x = _values(draw, (*lead, n_in), -2, 2)
    w = _values(draw, (n_out, n_in), -2, 2)
    b = _values(draw, (n_out,), -2, 2)
    with_bias = draw(st.booleans())
    faces = {
        "cr.ops.linear": cr.ops.linear,
        "F.linear": cr.nn.functional.linear,
    }
    label, f = _variant(draw, faces)
    if with_bias:
        return _sample(
            draw,
            kind,
            "linear",
            lambda c, x, w, b: f(x, w, b),
            [x, w, b],
            lambda x, w, b: x @ w.T + b,
            note=f"{label} x{x.shape} W{w.shape} + b",
        )
    return _sample(
        draw,
        kind,
        "linear",
        lambda c, x, w: f(x, w, None),
        [x, w],
        lambda x, w: x @ w.T,
        note=f"{label} x{x.shape} W{w.shape}, no bias",
    )


# -- shape ops -----------------------------------------------------------------------------------
@st.composite
def _reshape(draw: Any, kind: str) -> Sample:
    shape = _shape(draw, kind)
    x = _values(draw, shape, -2, 2)
    n = x.size
    targets = [(n,), (-1,), (1, n), (n, 1), tuple(reversed(shape)), (*shape, 1)]
    if n == 1:
        targets.append(())
    new = draw(st.sampled_from(targets))
    faces = {
        "cr.reshape": lambda x: cr.reshape(x, new),
        "method": lambda x: x.reshape(new),
        "np.reshape": lambda x: np.reshape(x, new),
    }
    label, f = _variant(draw, faces)
    return _sample(
        draw,
        kind,
        "reshape",
        lambda c, x: f(x),
        [x],
        lambda x: np.reshape(x, new),
        note=f"{label} {shape}->{new}",
    )


@st.composite
def _transpose(draw: Any, kind: str) -> Sample:
    shape = _shape(draw, kind)
    x = _values(draw, shape, -2, 2)
    ndim = len(shape)
    axes = tuple(draw(st.permutations(range(ndim))))
    neg = tuple(a - ndim if draw(st.booleans()) else a for a in axes)
    faces: dict[str, Any] = {
        "cr.transpose(axes)": (lambda x: cr.transpose(x, neg), lambda x: np.transpose(x, axes)),
        "cr.transpose": (lambda x: cr.transpose(x), np.transpose),
        ".T": (lambda x: x.T, np.transpose),
        "np.transpose": (lambda x: np.transpose(x, axes), lambda x: np.transpose(x, axes)),
        "cr.permute": (lambda x: cr.permute(x, axes), lambda x: np.transpose(x, axes)),
    }
    if ndim >= 2:
        faces["cr.matrix_transpose"] = (cr.matrix_transpose, lambda x: np.swapaxes(x, -1, -2))
    label, (f, r) = _variant(draw, faces)
    return _sample(draw, kind, "transpose", lambda c, x: f(x), [x], r, note=f"{label} axes={neg}")


@st.composite
def _broadcast_to(draw: Any, kind: str) -> Sample:
    shape = _shape(draw, kind)
    x = _values(draw, shape, -2, 2)
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=4 - len(shape) if shape else 2)))
    target = lead + tuple(draw(st.integers(1, 3)) if d == 1 else d for d in shape)
    label, f = _variant(draw, {"cr.broadcast_to": cr.broadcast_to, **_numpy_faces("broadcast_to")})
    return _sample(
        draw,
        kind,
        "broadcast_to",
        lambda c, x: f(x, target),
        [x],
        lambda x: np.broadcast_to(x, target),
        note=f"{label} {shape}->{target}",
    )


@st.composite
def _concatenate(draw: Any, kind: str) -> Sample:
    base = list(_shape(draw, kind, min_dims=1))
    ndim = len(base)
    axis = draw(st.integers(-ndim, ndim - 1))
    k = draw(st.integers(1, 3))
    arrays = []
    for _ in range(k):
        s = list(base)
        s[axis] = draw(st.integers(1, MAX_SIDE)) if kind == "any" else 1
        arrays.append(_values(draw, tuple(s), -2, 2))
    faces = {
        "cr.concatenate": cr.concatenate,
        "cr.concat": cr.concat,
        **_numpy_faces("concatenate"),
    }
    label, f = _variant(draw, faces)
    return _sample(
        draw,
        kind,
        "concatenate",
        lambda c, *xs: f(list(xs), axis=axis),
        arrays,
        lambda *xs: np.concatenate(xs, axis=axis),
        note=f"{label}(axis={axis}) of {k}",
    )


@st.composite
def _stack(draw: Any, kind: str) -> Sample:
    shape = _shape(draw, kind)
    ndim = len(shape)
    axis = draw(st.integers(-ndim - 1, ndim))
    k = draw(st.integers(1, 3))
    arrays = [_values(draw, shape, -2, 2) for _ in range(k)]
    label, f = _variant(draw, {"cr.stack": cr.stack, **_numpy_faces("stack")})
    return _sample(
        draw,
        kind,
        "stack",
        lambda c, *xs: f(list(xs), axis=axis),
        arrays,
        lambda *xs: np.stack(xs, axis=axis),
        note=f"{label}(axis={axis}) of {k}",
    )


@st.composite
def _squeeze(draw: Any, kind: str) -> Sample:
    shape = list(_shape(draw, kind))
    for _ in range(draw(st.integers(0 if kind != "any" else 1, 2))):
        shape.insert(draw(st.integers(0, len(shape))), 1)
    shape_t = tuple(shape)
    ones = [i for i, n in enumerate(shape_t) if n == 1]
    choice = draw(st.sampled_from(["none", "int", "tuple"] if ones else ["none"]))
    if choice == "none":
        axis: Any = None
    elif choice == "int":
        axis = draw(st.sampled_from(ones))
    else:
        axis = tuple(draw(st.lists(st.sampled_from(ones), unique=True, min_size=1)))
    x = _values(draw, shape_t, -2, 2)
    faces = {
        "cr.squeeze": lambda x: cr.squeeze(x, axis=axis),
        "np.squeeze": lambda x: np.squeeze(x, axis=axis),
    }
    label, f = _variant(draw, faces)
    return _sample(
        draw,
        kind,
        "squeeze",
        lambda c, x: f(x),
        [x],
        lambda x: np.squeeze(x, axis=axis),
        note=f"{label}(axis={axis})",
    )


@st.composite
def _expand_dims(draw: Any, kind: str) -> Sample:
    shape = _shape(draw, kind)
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    x = _values(draw, shape, -2, 2)
    label, f = _variant(draw, {"cr.expand_dims": cr.expand_dims, **_numpy_faces("expand_dims")})
    return _sample(
        draw,
        kind,
        "expand_dims",
        lambda c, x: f(x, axis),
        [x],
        lambda x: np.expand_dims(x, axis),
        note=f"{label}(axis={axis})",
    )


@st.composite
def _flip(draw: Any, kind: str) -> Sample:
    shape = _shape(draw, kind)
    axis = None if not shape else _axis(draw, len(shape))
    x = _values(draw, shape, -2, 2)
    label, f = _variant(draw, {"cr.flip": cr.flip, **_numpy_faces("flip")})
    return _sample(
        draw,
        kind,
        "flip",
        lambda c, x: f(x, axis=axis),
        [x],
        lambda x: np.flip(x, axis=axis),
        note=f"{label}(axis={axis})",
    )


@st.composite
def _pad(draw: Any, kind: str) -> Sample:
    shape = _shape(draw, kind)
    ndim = len(shape)
    form = draw(st.sampled_from(["int", "pair", "per-axis"]))
    w = st.integers(0, 2)
    if form == "int":
        width: Any = draw(w)
    elif form == "pair":
        width = (draw(w), draw(w))
    else:
        width = tuple((draw(w), draw(w)) for _ in range(ndim))
    value = draw(st.sampled_from([0, 0.0, -1.5, 2.0]))
    x = _values(draw, shape, -2, 2)
    faces = {
        "cr.pad": lambda x: cr.pad(x, width, constant_values=value),
        "cr.pad(value=)": lambda x: cr.pad(x, width, value=value),
    }
    if ndim:  # NumPy's own pad wants an integral pad_width even for a 0-d array
        faces["np.pad"] = lambda x: np.pad(x, width, constant_values=value)
    label, f = _variant(draw, faces)
    np_width = width if ndim else ()
    return _sample(
        draw,
        kind,
        "pad",
        lambda c, x: f(x),
        [x],
        lambda x: np.pad(x, np_width, constant_values=value) if ndim else np.asarray(x),
        note=f"{label}({width}, value={value})",
    )


@st.composite
def _astype(draw: Any, kind: str) -> Sample:
    # Up to float64 and back to the input's dtype: a float32 input gives a float32 result
    # whose gradient went through a float64 node.
    x = _values(draw, _shape(draw, kind), -2, 2)
    spell = draw(st.sampled_from(["str", "cr.float64", "method"]))
    if spell == "method":
        up = lambda x: x.astype("float64")
    else:
        to = "float64" if spell == "str" else cr.float64
        up = lambda x: cr.astype(x, to)
    return _sample(
        draw,
        kind,
        "astype",
        lambda c, x: cr.astype(up(x) * 3.0, x.dtype),
        [x],
        lambda x: x * 3.0,
        note=f"astype(float64 via {spell}) * 3 -> astype(input dtype)",
    )


# -- linalg ---------------------------------------------------------------------------------------
def _square_matrices(draw: Any, kind: str, spd: bool) -> np.ndarray:
    """Square matrices, maybe a stack of them, well away from singular: a random matrix plus
    n times the identity, or (``spd``) a symmetric positive definite B B^T + n I."""
    n = draw(st.integers(1, MAX_SIDE)) if kind == "any" else (1 if kind == "size1" else 2)
    batch = draw(st.sampled_from([(), (2,)])) if kind == "any" else ()
    b = _values(draw, (*batch, n, n), -1, 1)
    eye = np.eye(n)
    if spd:
        # Q diag(values) Q^T, the eigenvalues 1 apart: eigenvectors have a derivative that
        # finite differences resolve (it grows as 1/gap)
        q, _ = np.linalg.qr(b + 2 * eye)
        values = n + 1.0 + np.arange(n)
        return (q * values[..., None, :]) @ np.swapaxes(q, -1, -2)
    return b + (n + 1) * eye


def _matrix_function(name: str) -> Any:
    """Samples of a cr.linalg function on square matrices (and a right-hand side for solve)."""

    @st.composite
    def factory(draw: Any, kind: str) -> Sample:
        spd = name in ("cholesky", "eigh")
        a = _square_matrices(draw, kind, spd)
        if name == "qr":
            if kind == "any" and draw(st.booleans()):
                tall = draw(st.booleans())  # a tall one, or a wide one (QR of its square part)
                shape = (3, 2) if tall else (2, 3)
                a = _values(draw, shape, -1, 1) + np.eye(*shape) * 3
            # NOTE: away from exactly triangular columns, where LAPACK's Householder QR flips
            # the signs of a column of Q and a row of R (the decomposition is not continuous)
            a = a + np.tril(np.full(a.shape[-2:], 0.4), -1)
        if name == "svd":
            # square, tall or wide, its singular values spread apart (where two are equal the
            # singular vectors are not unique: no derivative to check)
            shapes = [(3, 2), (2, 3), (3, 1), (2, 2), (3, 3)] if kind == "any" else [(2, 2)]
            m, n = draw(st.sampled_from(shapes)) if kind != "size1" else (1, 1)
            q1, _ = np.linalg.qr(_values(draw, (m, m), -1, 1) + 2 * np.eye(m))
            q2, _ = np.linalg.qr(_values(draw, (n, n), -1, 1) + 2 * np.eye(n))
            k = min(m, n)
            a = q1[:, :k] @ np.diag(np.arange(k, 0, -1) + 0.5) @ q2[:, :k].T
        if name == "pinv":
            # square, tall or wide, of full rank; singular values spread apart or all equal
            # (pinv of c Q is smooth where an SVD-based rule divides by zero)
            shapes = [(3, 2), (2, 3), (2, 2), (3, 3), (1, 3)] if kind == "any" else [(2, 2)]
            m, n = draw(st.sampled_from(shapes)) if kind != "size1" else (1, 1)
            q1, _ = np.linalg.qr(_values(draw, (m, m), -1, 1) + 2 * np.eye(m))
            q2, _ = np.linalg.qr(_values(draw, (n, n), -1, 1) + 2 * np.eye(n))
            k = min(m, n)
            spread = np.arange(k, 0, -1) + 0.5 if draw(st.booleans()) else np.full(k, 2.0)
            a = q1[:, :k] @ np.diag(spread) @ q2[:, :k].T
        L, N = cr.linalg, np.linalg
        if name == "solve":
            n = a.shape[-1]
            vector = draw(st.booleans()) and a.ndim == 2
            b = _values(draw, (n,) if vector else (*a.shape[:-2], n, 2), -2, 2)
            label, f = _variant(draw, {"cr.linalg.solve": L.solve, "np.linalg.solve": N.solve})
            return _sample(draw, kind, name, lambda c, a, b: f(a, b), [a, b], N.solve, note=label)
        faces = {
            "inv": {"cr.linalg.inv": (L.inv, N.inv), "np.linalg.inv": (N.inv, N.inv)},
            "pinv": {"cr.linalg.pinv": (L.pinv, N.pinv), "np.linalg.pinv": (N.pinv, N.pinv)},
            "det": {"cr.linalg.det": (L.det, N.det), "np.linalg.det": (N.det, N.det)},
            "slogdet": {
                "cr.linalg.slogdet": (lambda a: L.slogdet(a)[1], lambda a: N.slogdet(a)[1])
            },  # fmt: skip
            "cholesky": {"cr.linalg.cholesky": (L.cholesky, N.cholesky)},
            "qr": {
                "Q": (lambda a: L.qr(a)[0], lambda a: N.qr(a)[0]),
                "R": (lambda a: L.qr(a)[1], lambda a: N.qr(a)[1]),
            },
            "svd": {
                "singular values": (
                    lambda a: L.svd(a, compute_uv=False),
                    lambda a: N.svd(a, compute_uv=False),
                ),
                # each singular pair's signs are arbitrary: u_k v_k^T is not
                "singular pair products": (
                    lambda a: _pair_products(L.svd(a, full_matrices=False)),
                    lambda a: _pair_products(N.svd(a, full_matrices=False)),
                ),
            },
            "eigh": {
                "eigenvalues": (L.eigvalsh, N.eigvalsh),
                # each eigenvector's sign is arbitrary: its outer product is not
                "eigenvector products": (
                    lambda a: _outer_columns(L.eigh(a)[1]),
                    lambda a: _outer_columns(N.eigh(a)[1]),
                ),
            },
        }[name]
        label, (f, ref) = _variant(draw, faces)
        return _sample(draw, kind, name, lambda c, a: f(a), [a], ref, note=label)

    return factory


def _pair_products(usv: Any) -> Any:
    """u_k v_k^T for each singular pair k, stacked: independent of the pairs' signs."""
    u, _, vh = usv
    return u[..., :, None, :] * vh.mT[..., None, :, :]


def _outer_columns(v: Any) -> Any:
    """v_k v_k^T for each column k, stacked: independent of each eigenvector's sign."""
    return v[..., :, None, :] * v[..., None, :, :]


@st.composite
def _matmul(draw: Any, kind: str) -> Sample:
    side = st.integers(1, MAX_SIDE) if kind == "any" else st.just(1)
    m, k, n = draw(side), draw(side), draw(side)
    if kind == "0d":
        form = "vv"
    else:
        form = draw(st.sampled_from(["vv", "mv", "vm", "mm", "batched", "bv", "vb"]))
    if form == "vv":
        sx, sy = (k,), (k,)
    elif form == "mv":
        sx, sy = (m, k), (k,)
    elif form == "vm":
        sx, sy = (k,), (k, n)
    elif form == "mm":
        sx, sy = (m, k), (k, n)
    else:
        bx, by = _shapes(draw, kind)
        bx, by = bx[-2:], by[-2:]  # trailing dims stay broadcastable
        if form == "batched":
            sx, sy = (*bx, m, k), (*by, k, n)
        elif form == "bv":
            sx, sy = (*bx, m, k), (k,)
        else:
            sx, sy = (k,), (*by, k, n)
    x, y = _values(draw, sx, -2, 2), _values(draw, sy, -2, 2)
    faces: dict[str, Any] = {
        "cr.matmul": cr.matmul,
        "@": lambda a, b: a @ b,
        **_numpy_faces("matmul"),
    }
    if len(sx) <= 2 and len(sy) <= 2:  # NumPy's dot: no batches
        faces["cr.dot"] = cr.dot
    label, f = _variant(draw, faces)
    return _sample(
        draw,
        kind,
        "matmul",
        lambda c, x, y: f(x, y),
        [x, y],
        np.matmul,
        note=f"{label} {form} {sx}@{sy}",
    )


_EINSUM_SPECS = [
    "ij,jk->ik",
    "i,i->",
    "i,j->ij",
    "ij->ji",
    "ij->",
    "ij->i",
    "ijk,ik->ij",
    "ij,jk,kl->il",
    "ij,jk",
    "ij,j->i",
    "bij,bjk->bik",
    "i->",
    "ij,k->i",
]


@st.composite
def _einsum(draw: Any, kind: str) -> Sample:
    if kind == "0d":
        spec = ",->"
    else:
        spec = draw(st.sampled_from(_EINSUM_SPECS))
    side = st.integers(1, MAX_SIDE) if kind == "any" else st.just(1)
    sizes = {ch: draw(side) for ch in sorted(set(spec) - set(",->"))}
    lhs = spec.split("->")[0]
    arrays = [_values(draw, tuple(sizes[ch] for ch in sub), -2, 2) for sub in lhs.split(",")]
    return _sample(
        draw,
        kind,
        "einsum",
        lambda c, *ops: cr.einsum(spec, *ops),
        arrays,
        lambda *ops: np.einsum(spec, *ops),
        note=f"cr.einsum({spec!r})",
    )


# -- indexing -------------------------------------------------------------------------------------
def _basic_index(draw: Any, shape: tuple[int, ...]) -> tuple[Any, ...]:
    k = draw(st.integers(0, len(shape)))
    ellipsis = draw(st.sampled_from(["none", "before", "after"]))
    parts: list[Any] = []
    for n in shape[len(shape) - k :] if ellipsis == "before" else shape[:k]:
        choice = draw(st.sampled_from(["int", "slice", "rev", "full"]))
        if choice == "int":
            parts.append(draw(st.integers(-n, n - 1)))
        elif choice == "slice":
            start = draw(st.integers(0, n - 1))
            stop = draw(st.integers(start + 1, n))
            parts.append(slice(start, stop, draw(st.sampled_from([1, 2]))))
        elif choice == "rev":
            parts.append(slice(draw(st.sampled_from([None, n - 1])), None, -1))
        else:
            parts.append(slice(None))
    if ellipsis == "before":
        parts.insert(0, Ellipsis)
    elif ellipsis == "after":
        parts.append(Ellipsis)
    if draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), None)
    return tuple(parts)


def _int_array(draw: Any, n: int, shape: tuple[int, ...]) -> np.ndarray:
    # indices in a small range so that repeats (which must add up) are common
    return np.asarray(draw(hnp.arrays(np.int64, shape, elements=st.integers(-n, n - 1))))


def _index(draw: Any, shape: tuple[int, ...]) -> tuple[str, tuple[Any, ...]]:
    """(description, index): a tuple whose array parts are NumPy arrays."""
    if not shape:
        return "basic", draw(st.sampled_from([(), (Ellipsis,), (None,)]))
    forms = ["basic", "int array", "int array 2-d", "mask", "mask axis 0"]
    if len(shape) >= 2:
        forms += ["two int arrays", "slice + int array"]
    form = draw(st.sampled_from(forms))
    n0 = shape[0]
    if form == "basic":
        return form, _basic_index(draw, shape)
    if form == "int array":
        return form, (_int_array(draw, n0, (draw(st.integers(1, 4)),)),)
    if form == "int array 2-d":
        return form, (_int_array(draw, n0, (2, draw(st.integers(1, 2)))),)
    if form == "two int arrays":
        k = draw(st.integers(1, 4))
        return form, (_int_array(draw, n0, (k,)), _int_array(draw, shape[1], (k,)))
    if form == "slice + int array":
        return form, (slice(None), _int_array(draw, shape[1], (draw(st.integers(1, 3)),)))
    mshape = shape if form == "mask" else (n0,)
    mask = np.asarray(draw(hnp.arrays(np.bool_, mshape)))
    mask.flat[draw(st.integers(0, mask.size - 1))] = True  # never empty
    return form, (mask,)


def standard_index(index: tuple[Any, ...], shape: tuple[int, ...]) -> tuple[Any, ...]:
    """The same selection written as the array API standard wants it: a basic index covers
    every axis (a trailing ``...``), integer arrays index every axis (open-mesh ``arange``
    arrays stand for the full slices). NumPy gives the same result for both forms."""
    parts = list(index)
    ints = [k for k, p in enumerate(parts) if isinstance(p, np.ndarray) and p.dtype.kind in "iu"]
    masks = any(isinstance(p, np.ndarray) and p.dtype.kind == "b" for p in parts)
    if not ints:
        if not masks and Ellipsis not in parts and sum(p is not None for p in parts) < len(shape):
            parts.append(Ellipsis)
        return tuple(parts)
    # the forms drawn here: full slices, then adjacent integer arrays, then implicit full axes
    first, last = ints[0], ints[-1]
    assert all(p == slice(None) for p in parts[:first]) and ints == list(range(first, last + 1))
    b = np.broadcast_shapes(*(parts[k].shape for k in ints))
    after = len(shape) - last - 1
    out_ndim = first + len(b) + after
    mesh: list[Any] = []
    for axis, n in enumerate(shape):
        if axis < first:
            pos = axis
        elif axis <= last:
            arr = np.broadcast_to(parts[axis], b)
            mesh.append(arr.reshape((1,) * first + b + (1,) * after))
            continue
        else:
            pos = first + len(b) + axis - last - 1
        mesh.append(np.arange(n).reshape((1,) * pos + (n,) + (1,) * (out_ndim - pos - 1)))
    return tuple(mesh)


def _convert_index(
    c: Callable[[Any], Any], index: tuple[Any, ...], shape: tuple[int, ...]
) -> tuple[Any, ...]:
    if c is not np_const:  # another namespace: the standard's spelling of the same index
        index = standard_index(index, shape)
    return tuple(c(p) if isinstance(p, np.ndarray) else p for p in index)


@st.composite
def _getitem(draw: Any, kind: str) -> Sample:
    shape = _shape(draw, kind)
    x = _values(draw, shape, -2, 2)
    form, index = _index(draw, shape)
    single = draw(st.booleans()) and len(index) == 1

    def fn(c: Any, x: Any) -> Any:
        idx = _convert_index(c, index, shape)
        return x[idx[0]] if single and len(idx) == 1 else x[idx]  # x[i] rather than x[(i,)]

    return _sample(draw, kind, "getitem", fn, [x], lambda x: x[index], note=f"x[{form}: {index!r}]")


@st.composite
def _scatter_add(draw: Any, kind: str) -> Sample:
    shape = _shape(draw, kind)
    if not shape:
        index: tuple[Any, ...] = ()
        form = "()"
    else:
        form = draw(st.sampled_from(["int array", "basic", "two int arrays"]))
        if form == "basic":
            index = (slice(0, draw(st.integers(1, shape[0]))),)
        elif form == "two int arrays" and len(shape) >= 2:
            k = draw(st.integers(1, 4))
            index = (_int_array(draw, shape[0], (k,)), _int_array(draw, shape[1], (k,)))
        else:
            form = "int array"
            index = (_int_array(draw, shape[0], (draw(st.integers(1, 4)),)),)
    vshape = np.zeros(shape)[index].shape
    v = _values(draw, vshape, -2, 2)

    def ref(v: np.ndarray) -> np.ndarray:
        out = np.zeros(shape)
        np.add.at(out, index, v)
        return out

    return _sample(
        draw,
        kind,
        "scatter_add",
        lambda c, v: cr.ops.scatter_add(v, index=_convert_index(c, index, shape), shape=shape),
        [v],
        ref,
        note=f"scatter_add(index={form}: {index!r}, shape={shape})",
    )


@st.composite
def _take_along_axis(draw: Any, kind: str) -> Sample:
    shape = _shape(draw, kind, min_dims=1)
    ndim = len(shape)
    axis = draw(st.integers(-ndim, ndim - 1))
    ishape = list(shape)
    ishape[axis] = draw(st.integers(1, 4))  # repeats, which must add up, are common
    for d in range(ndim):
        if d != axis % ndim and shape[d] == 1:
            ishape[d] = draw(st.integers(1, 2))  # the array broadcast against the indices
    indices = _int_array(draw, shape[axis], tuple(ishape))
    x = _values(draw, shape, -2, 2)
    faces = {
        "cr": lambda c, x: cr.take_along_axis(x, c(indices), axis=axis),
        "np": lambda c, x: np.take_along_axis(x, c(indices), axis=axis),
    }
    face, fn = _variant(draw, faces)
    return _sample(
        draw,
        kind,
        "take_along_axis",
        fn,
        [x],
        lambda x: np.take_along_axis(x, indices, axis=axis),
        note=f"{face} take_along_axis(indices={indices.tolist()}, axis={axis})",
    )


# -- normalisation ----------------------------------------------------------------------------
@st.composite
def _normalize(draw: Any, kind: str) -> Sample:
    """``normalize`` over some axes (at least two entries normalised together: one alone has
    no spread), eps small or not; with no weight and bias, or with weight and/or bias laid
    out as batch norm's (one per kept entry), layer norm's (one per position of the trailing
    normalised axes), or any other shape that broadcasts."""
    from chainrule.ops.nn import normalize

    shape = (2,) if kind == "0d" else (1, 2) if kind == "size1" else _shape(draw, kind, 1)
    if math.prod(shape) < 2:
        shape = (*shape, 2)
    candidates = [a for a in range(len(shape))]
    axes = tuple(sorted(draw(st.sets(st.sampled_from(candidates), min_size=1))))
    if math.prod(shape[a] for a in axes) < 2:
        axes = tuple(range(len(shape)))
    eps = draw(st.sampled_from([1e-5, 0.1]))
    x = _values(draw, shape, -2, 2) + np.arange(math.prod(shape)).reshape(shape) * 0.3
    kept = [a for a in range(len(shape)) if a not in axes]
    trailing = range(kept[-1] + 1 if kept else 0, len(shape))
    layouts = {
        "per channel": tuple(n if a in kept else 1 for a, n in enumerate(shape)),
        "per position": tuple(n if a in trailing else 1 for a, n in enumerate(shape)),
        "full": shape,
        "scalar": (),
    }
    label, affine_shape = _variant(draw, layouts)
    which = draw(st.sampled_from(["none", "weight", "bias", "both"]))
    w = _values(draw, affine_shape, -2, 2) if which in ("weight", "both") else None
    b = _values(draw, affine_shape, -2, 2) if which in ("bias", "both") else None
    given = [v for v in (w, b) if v is not None]

    def split(vs: Sequence[Any]) -> tuple[Any, Any]:
        rest = list(vs)
        return (rest.pop(0) if w is not None else None), (rest.pop(0) if b is not None else None)

    def ref(x: np.ndarray, *vs: np.ndarray) -> np.ndarray:
        weight, bias = split(vs)
        mean = x.mean(axis=axes, keepdims=True)
        out = (x - mean) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
        out = out if weight is None else out * weight
        return out if bias is None else out + bias

    def call(c: Any, x: Any, *vs: Any) -> Any:
        weight, bias = split(vs)
        return normalize(x, weight, bias, axes=axes, eps=eps)

    note = f"axes={axes}, eps={eps}, {which}" + (f" ({label})" if given else "")
    return _sample(draw, kind, "normalize", call, [x, *given], ref, note=note)


# -- sliding windows (convolution and pooling) ---------------------------------------------------
@st.composite
def _windows(draw: Any, kind: str, op: str) -> Sample:
    """``unfold`` (the windows of x) and ``fold`` (windows added back), 1 or 2 spatial axes,
    with strides, padding and dilation that fit."""
    from chainrule.ops.conv import fold, unfold, window_geometry

    d = 1 if kind == "0d" else draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 2 if kind != "any" else 3)) for _ in range(d))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(d)) if kind == "any" else (1,) * d
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(d)) if kind == "any" else (1,) * d
    padding = tuple(
        (draw(st.integers(0, 1)), draw(st.integers(0, 1))) if kind == "any" else (0, 0)
        for _ in range(d)
    )
    spatial = tuple(
        draw(st.integers(max(1, di * (k - 1) + 1 - lo - hi), 5))
        for k, di, (lo, hi) in zip(kernel, dilation, padding)
    )
    n, c = (1, 1) if kind != "any" else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    params = dict(kernel=kernel, stride=stride, padding=padding, dilation=dilation)
    note = ", ".join(f"{k}={v}" for k, v in params.items())
    out = window_geometry(spatial, kernel, stride, padding, dilation)

    def places() -> Any:  # (kernel taps, window position, the padded input's index) by loops
        for taps in itertools.product(*(range(k) for k in kernel)):
            for pos in itertools.product(*(range(o) for o in out)):
                at = tuple(p * s + t * di for p, s, t, di in zip(pos, stride, taps, dilation))
                yield taps, pos, at

    def unfold_ref(x: np.ndarray) -> np.ndarray:
        padded = np.pad(x, ((0, 0), (0, 0), *padding))
        cols = np.zeros((x.shape[1], *kernel, x.shape[0], *out))  # (C, *kernel, N, *out)
        for taps, pos, at in places():
            cols[(slice(None), *taps, slice(None), *pos)] = padded[
                (slice(None), slice(None), *at)
            ].T
        return cols

    def fold_ref(cols: np.ndarray) -> np.ndarray:
        size = tuple(m + lo + hi for m, (lo, hi) in zip(spatial, padding))
        padded = np.zeros((cols.shape[1 + len(kernel)], cols.shape[0], *size))
        for taps, pos, at in places():
            padded[(slice(None), slice(None), *at)] += cols[
                (slice(None), *taps, slice(None), *pos)
            ].T
        crop = tuple(slice(lo, lo + m) for m, (lo, _) in zip(spatial, padding))
        return padded[(slice(None), slice(None), *crop)]

    if op == "unfold":
        x = _values(draw, (n, c, *spatial), -2, 2)
        return _sample(
            draw, kind, op, lambda c_, x: unfold(x, **params), [x], unfold_ref, note=note
        )
    cols = _values(draw, (c, *kernel, n, *out), -2, 2)
    return _sample(
        draw, kind, op, lambda c_, v: fold(v, size=spatial, **params), [cols], fold_ref, note=note
    )


# -- the edges of cr.vmap -----------------------------------------------------------------------
@st.composite
def _vmapped(draw: Any, kind: str) -> Sample:
    """``batch`` and ``unbatch`` as cr.vmap uses them: a mapped argument in at ``axis``, a
    shared one (in_axes None, its gradient summed over the batch), the result out at
    ``out_axis``."""
    shape = _shape(draw, kind, min_dims=1)
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    out_axis = draw(st.integers(-len(shape), len(shape) - 1))
    example = shape[: axis % len(shape)] + shape[axis % len(shape) + 1 :]
    x, w = _values(draw, shape, -2, 2), _values(draw, example, -2, 2)

    def fn(c: Any, x: Any, w: Any) -> Any:
        per_example = cr.vmap(lambda v, u: cr.tanh(v) * u, in_axes=(axis, None), out_axes=out_axis)
        return per_example(x, w)

    def ref(x: Any, w: Any) -> Any:
        return np.moveaxis(np.tanh(np.moveaxis(x, axis, 0)) * w, 0, out_axis)

    return _sample(
        draw,
        kind,
        "batch",
        fn,
        [x, w],
        ref,
        note=f"cr.vmap(in_axes=({axis}, None), out_axes={out_axis})",
    )


# -- custom Function -----------------------------------------------------------------------------
class ScaledSquare(cr.Function):
    """f(x, y) = x^2 y, with a hand-written backward (2 x y g, x^2 g)."""

    @staticmethod
    def forward(ctx: Any, x: Any, y: Any) -> Any:
        ctx.save_for_backward(x, y)
        return x * x * y

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        x, y = ctx.saved_tensors
        return grad * 2.0 * x * y, grad * x * x


class ScaledSquareWithJvp(ScaledSquare):
    """The same, with forward mode: d(x^2 y) = 2 x y dx + x^2 dy."""

    @staticmethod
    def jvp(ctx: Any, x_dot: Any, y_dot: Any) -> Any:
        x, y = ctx.saved_tensors
        # (a tangent is None for an input that is a plain array rather than a Tensor; the
        # zeros that Function.jvp's docstring promises are tested in test_ops.py)
        dx = 0.0 if x_dot is None else x_dot * 2.0 * x * y
        dy = 0.0 if y_dot is None else y_dot * x * x
        return dx + dy


@st.composite
def _function(draw: Any, kind: str) -> Sample:
    sx, sy = _shapes(draw, kind)
    x, y = _values(draw, sx, -2, 2), _values(draw, sy, -2, 2)
    cls = draw(st.sampled_from([ScaledSquare, ScaledSquareWithJvp]))
    s = _sample(
        draw,
        kind,
        "function",
        lambda c, x, y: cls.apply(x, y),
        [x, y],
        lambda x, y: x * x * y,
        note=f"{cls.__name__}.apply (a cr.Function)",
    )
    s.forward_mode = cls is ScaledSquareWithJvp
    return s


@st.composite
def _compiled(draw: Any, kind: str) -> Sample:
    sx, sy = _shapes(draw, kind)
    x, y = _values(draw, sx, -2, 2), _values(draw, sy, -2, 2)

    def body(x: Any, y: Any) -> Any:
        return cr.sin(x) * y + x * x

    compiled = cr.compile(body)
    s = _sample(
        draw,
        kind,
        "compiled",
        lambda c, x, y: compiled(x, y),
        [x, y],
        lambda x, y: np.sin(x) * y + x * x,
        note="cr.compile(sin(x) * y + x * x)",
    )
    s.forward_mode = True  # under cr.jvp a compiled function runs eagerly, so jvp works
    return s


# -- the table of samples --------------------------------------------------------------------------
def _sigmoid_np(x: np.ndarray) -> np.ndarray:
    return sp.expit(x)


SAMPLES: dict[str, Callable[[str], st.SearchStrategy[Sample]]] = {
    # elementwise arithmetic
    "add": _binary(
        "add",
        np.add,
        lambda x, y: x + y,
        scalars=[
            ("x + 1.5", lambda x: x + 1.5, lambda x: x + 1.5),
            ("2.5 + x", lambda x: 2.5 + x, lambda x: 2.5 + x),
        ],
    ),
    "subtract": _binary(
        "subtract",
        np.subtract,
        lambda x, y: x - y,
        scalars=[
            ("1.5 - x", lambda x: 1.5 - x, lambda x: 1.5 - x),
        ],
    ),
    "multiply": _binary(
        "multiply",
        np.multiply,
        lambda x, y: x * y,
        scalars=[
            ("x * -3.0", lambda x: x * -3.0, lambda x: x * -3.0),
        ],
    ),
    "divide": _binary(
        "divide",
        np.divide,
        lambda x, y: x / y,
        y_range=(0.3, 2.0),
        y_nonzero=True,
        scalars=[
            ("x / 4.0", lambda x: x / 4.0, lambda x: x / 4.0),
            ("1.0 / x", lambda x: 1.0 / (x * x + 0.5), lambda x: 1 / (x * x + 0.5)),
        ],
    ),
    "power": _binary(
        "power",
        np.power,
        lambda x, y: x**y,
        x_range=(0.3, 2.0),
        scalars=[
            ("x ** 3.0", lambda x: x**3.0, lambda x: x**3.0),
            ("2.0 ** x", lambda x: 2.0**x, lambda x: 2.0**x),
            ("x ** 2 (int)", lambda x: x**2, lambda x: x**2),
        ],
    ),
    "negative": _unary(
        "negative", -2, 2, np.negative, lambda x: -np.ones_like(x), extra={"operator": lambda x: -x}
    ),
    "exp": _unary("exp", -2, 2, np.exp, np.exp),
    "square": _unary("square", -2, 2, np.square, lambda x: 2 * x),
    "log": _unary("log", 0.2, 3, np.log, lambda x: 1 / x),
    "log1p": _unary("log1p", -0.5, 3, np.log1p, lambda x: 1 / (1 + x)),
    "expm1": _unary("expm1", -2, 2, np.expm1, np.exp),
    "sqrt": _unary("sqrt", 0.2, 3, np.sqrt, lambda x: 0.5 / np.sqrt(x)),
    "sin": _unary("sin", -3, 3, np.sin, np.cos),
    "cos": _unary("cos", -3, 3, np.cos, lambda x: -np.sin(x)),
    "tan": _unary("tan", -1.2, 1.2, np.tan, lambda x: 1 / np.cos(x) ** 2),
    "tanh": _unary("tanh", -3, 3, np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "arcsin": _unary("arcsin", -0.9, 0.9, np.arcsin, lambda x: 1 / np.sqrt(1 - x * x)),
    "arccos": _unary("arccos", -0.9, 0.9, np.arccos, lambda x: -1 / np.sqrt(1 - x * x)),
    "arctan": _unary("arctan", -3, 3, np.arctan, lambda x: 1 / (1 + x * x)),
    "sinh": _unary("sinh", -3, 3, np.sinh, np.cosh),
    "cosh": _unary("cosh", -3, 3, np.cosh, np.sinh),
    "arcsinh": _unary("arcsinh", -3, 3, np.arcsinh, lambda x: 1 / np.sqrt(x * x + 1)),
    "arccosh": _unary("arccosh", 1.2, 3, np.arccosh, lambda x: 1 / np.sqrt(x * x - 1)),
    "arctanh": _unary("arctanh", -0.9, 0.9, np.arctanh, lambda x: 1 / (1 - x * x)),
    "log2": _unary("log2", 0.2, 3, np.log2, lambda x: 1 / (x * math.log(2))),
    "log10": _unary("log10", 0.2, 3, np.log10, lambda x: 1 / (x * math.log(10))),
    "exp2": _unary("exp2", -3, 3, np.exp2, lambda x: np.exp2(x) * math.log(2)),
    "reciprocal": _unary("reciprocal", 0.2, 2, np.reciprocal, lambda x: -1 / (x * x), nonzero=True),
    "cbrt": _unary("cbrt", 0.2, 2, np.cbrt, lambda x: 1 / (3 * np.cbrt(x) ** 2), nonzero=True),
    "deg2rad": _unary("deg2rad", -3, 3, np.deg2rad, lambda x: np.full_like(x, np.pi / 180)),
    "rad2deg": _unary("rad2deg", -3, 3, np.rad2deg, lambda x: np.full_like(x, 180 / np.pi)),
    "sinc": _unary("sinc", -2, 2, np.sinc, None),
    "floor": _stepwise("floor", np.floor),
    "ceil": _stepwise("ceil", np.ceil),
    "trunc": _stepwise("trunc", np.trunc),
    "round": _stepwise("round", np.round),
    "arctan2": _binary("arctan2", np.arctan2, x_range=(0.2, 2.0)),  # (y > 0: no branch cut)
    "hypot": _binary("hypot", np.hypot, x_range=(0.2, 2.0)),  # (away from the origin)
    "logaddexp": _binary("logaddexp", np.logaddexp),
    "logaddexp2": _binary("logaddexp2", np.logaddexp2),
    "copysign": _binary(
        "copysign", np.copysign, x_range=(0.2, 2.0), y_range=(0.2, 2.0), y_nonzero=True
    ),
    "fmod": _binary("fmod", np.fmod, x_range=(0.1, 1.4), y_range=(1.5, 2.5), y_nonzero=True),
    "remainder": _binary(
        "remainder",
        np.remainder,
        lambda x, y: x % y,
        x_range=(0.1, 1.4),
        y_range=(1.5, 2.5),
        y_nonzero=True,
    ),
    "floor_divide": _binary(
        "floor_divide",
        np.floor_divide,
        lambda x, y: x // y,
        x_range=(0.1, 1.4),
        y_range=(1.5, 2.5),
        y_nonzero=True,
    ),
    "erf": _unary("erf", -2, 2, sp.erf, lambda x: 2 / math.sqrt(math.pi) * np.exp(-x * x)),
    "abs": _unary(
        "abs", 0.2, 2, np.abs, np.sign, nonzero=True, extra={"builtin abs": lambda x: abs(x)}
    ),
    "sign": _sign,
    "maximum": lambda kind: _extremum2(kind, "maximum"),
    "minimum": lambda kind: _extremum2(kind, "minimum"),
    "where": _where,
    "clip": _clip,
    # comparisons and predicates
    "equal": _compare("equal", lambda x, y: x == y),
    "not_equal": _compare("not_equal", lambda x, y: x != y),
    "less": _compare("less", lambda x, y: x < y),
    "less_equal": _compare("less_equal", lambda x, y: x <= y),
    "greater": _compare("greater", lambda x, y: x > y),
    "greater_equal": _compare("greater_equal", lambda x, y: x >= y),
    "logical_and": _logical("logical_and", lambda x, y: x & y),
    "logical_or": _logical("logical_or", lambda x, y: x | y),
    "logical_not": _logical("logical_not", lambda x: ~x),
    "isfinite": _float_predicate("isfinite"),
    "isnan": _float_predicate("isnan"),
    # indexing
    "getitem": _getitem,
    "scatter_add": _scatter_add,
    "take_along_axis": _take_along_axis,
    # shape
    "reshape": _reshape,
    "transpose": _transpose,
    "broadcast_to": _broadcast_to,
    "concatenate": _concatenate,
    "stack": _stack,
    "squeeze": _squeeze,
    "expand_dims": _expand_dims,
    "flip": _flip,
    "pad": _pad,
    "astype": _astype,
    # linalg
    "matmul": _matmul,
    "einsum": _einsum,
    # reductions
    "sum": _reduction("sum"),
    "mean": _reduction("mean"),
    "var": _spread("var"),
    "prod": _prod,
    "logit": _special("logit", [(0.1, 0.9)]),
    "erfc": _special("erfc", [(-2, 2)]),
    "erfinv": _special("erfinv", [(-0.9, 0.9)]),
    "gammaln": _special("gammaln", [(0.2, 4)]),
    "digamma": _special("digamma", [(0.3, 4)]),
    "polygamma": _special("polygamma", [(0.5, 4)], first=2),
    "beta": _special("beta", [(0.5, 3), (0.5, 3)]),
    "betaln": _special("betaln", [(0.5, 3), (0.5, 3)]),
    "xlogy": _special("xlogy", [(-2, 2), (0.2, 3)]),
    "xlog1py": _special("xlog1py", [(-2, 2), (-0.8, 3)]),
    "i0": _special("i0", [(-3, 3)]),
    "i1": _special("i1", [(-3, 3)]),
    "ndtr": _special("ndtr", [(-3, 3)]),
    "log_ndtr": _special("log_ndtr", [(-6, 3)]),
    "ndtri": _special("ndtri", [(0.05, 0.95)]),
    "zeta": _special_q("zeta"),
    "inv": _matrix_function("inv"),
    "pinv": _matrix_function("pinv"),
    "solve": _matrix_function("solve"),
    "det": _matrix_function("det"),
    "slogdet": _matrix_function("slogdet"),
    "cholesky": _matrix_function("cholesky"),
    "eigh": _matrix_function("eigh"),
    "svd": _matrix_function("svd"),
    "qr": _matrix_function("qr"),
    "cumsum": _scan("cumsum"),
    "cumprod": _scan("cumprod"),
    "std": _spread("std"),
    "max": _reduction("max", distinct=True),
    "min": _reduction("min", distinct=True),
    "argmax": _arg_reduction("argmax"),
    "argmin": _arg_reduction("argmin"),
    "all": _bool_reduction("all"),
    "any": _bool_reduction("any"),
    # nn
    "sigmoid": _unary(
        "sigmoid", -4, 4, _sigmoid_np, lambda x: _sigmoid_np(x) * (1 - _sigmoid_np(x))
    ),
    "relu": _unary(
        "relu", 0.2, 2, lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0, nonzero=True
    ),
    "leaky_relu": _leaky_relu,
    "softplus": _unary("softplus", -4, 4, lambda x: np.logaddexp(0, x), _sigmoid_np),
    "gelu": _gelu,
    "logsumexp": _logsumexp,
    "softmax": _normalizer("softmax", sp.softmax),
    "log_softmax": _normalizer("log_softmax", sp.log_softmax),
    "cross_entropy": _cross_entropy,
    "linear": _linear,
    "normalize": _normalize,
    # sliding windows
    "unfold": lambda kind: _windows(kind, "unfold"),
    "fold": lambda kind: _windows(kind, "fold"),
    # cr.vmap's edges (one sample exercises both)
    "batch": _vmapped,
    "unbatch": _vmapped,
    # custom
    "function": _function,
    "compiled": _compiled,
}
