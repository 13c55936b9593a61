"""NumPy's array functions on Tensors (chainrule/ops/arrays.py and the public functions of the
other families): each gives NumPy's values when NumPy dispatches it on Tensors, is reachable as
``cr.<name>``, and its gradient and tangent agree with float64 finite differences."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import chainrule as cr

RNG = np.random.default_rng(7)


def _distinct(*shape: int) -> np.ndarray:
    """Values spread apart (no ties: sorts and extremes have a derivative)."""
    n = int(np.prod(shape))
    return (RNG.permutation(n) * 0.37 - n * 0.15 + RNG.uniform(0, 0.05, n)).reshape(shape)


A23 = _distinct(2, 3)
A34 = _distinct(3, 4)
A234 = _distinct(2, 3, 4)
V3, W3, V5 = _distinct(3), _distinct(3) + 0.5, _distinct(5)

# name, the call (on np, so NumPy dispatches to chainrule for Tensors), the float inputs
CASES: list[tuple[str, Callable[..., Any], tuple[np.ndarray, ...]]] = [
    ("ravel", lambda x: np.ravel(x), (A23,)),
    ("moveaxis", lambda x: np.moveaxis(x, 0, -1), (A234,)),
    ("moveaxis (two)", lambda x: np.moveaxis(x, (0, 1), (2, 0)), (A234,)),
    ("swapaxes", lambda x: np.swapaxes(x, 0, 2), (A234,)),
    ("fliplr", lambda x: np.fliplr(x), (A23,)),
    ("flipud", lambda x: np.flipud(x), (A23,)),
    ("rot90", lambda x: np.rot90(x), (A23,)),
    ("rot90 k=2", lambda x: np.rot90(x, 2), (A23,)),
    ("rot90 k=3 axes", lambda x: np.rot90(x, 3, axes=(1, 2)), (A234,)),
    ("tril", lambda x: np.tril(x), (A34,)),
    ("triu k=1", lambda x: np.triu(x, 1), (A34,)),
    ("tril stack", lambda x: np.tril(x, -1), (A234,)),
    ("diagonal", lambda x: np.diagonal(x), (A34,)),
    ("diagonal offset", lambda x: np.diagonal(x, 1), (A34,)),
    ("diagonal axes", lambda x: np.diagonal(x, -1, 1, 2), (A234,)),
    ("diag of vector", lambda x: np.diag(x), (V3,)),
    ("diag k", lambda x: np.diag(x, -2), (V3,)),
    ("diag of matrix", lambda x: np.diag(x, 1), (A34,)),
    ("diagflat", lambda x: np.diagflat(x), (A23,)),
    ("trace", lambda x: np.trace(x), (A34,)),
    ("trace offset", lambda x: np.trace(x, 1), (A34,)),
    ("repeat", lambda x: np.repeat(x, 2), (A23,)),
    ("repeat axis", lambda x: np.repeat(x, [1, 0, 3], axis=1), (A23,)),
    ("tile", lambda x: np.tile(x, 2), (A23,)),
    ("tile 2-D", lambda x: np.tile(x, (2, 1, 3)), (A23,)),
    ("roll", lambda x: np.roll(x, 2), (A23,)),
    ("roll axis", lambda x: np.roll(x, -1, axis=1), (A23,)),
    ("roll axes", lambda x: np.roll(x, (1, 2), axis=(0, 1)), (A23,)),
    ("take", lambda x: np.take(x, [4, 0, 4]), (A23,)),
    ("take axis", lambda x: np.take(x, [2, 0], axis=1), (A23,)),
    ("split", lambda x: np.split(x, 2, axis=1)[1], (A34,)),
    ("array_split", lambda x: np.array_split(x, 3)[0], (V5,)),
    ("hsplit", lambda x: np.hsplit(x, [1, 3])[1], (A34,)),
    ("vsplit", lambda x: np.vsplit(x, 3)[2], (A34,)),
    ("diff", lambda x: np.diff(x), (A34,)),
    ("diff n=2 axis", lambda x: np.diff(x, n=2, axis=0), (A34,)),
    ("diff prepend", lambda x: np.diff(x, prepend=0.0), (V5,)),
    ("tensordot", lambda a, b: np.tensordot(a, b, axes=1), (A23, A34)),
    (
        "tensordot pairs",
        lambda a, b: np.tensordot(a, b, axes=([0, 1], [1, 0])),
        (A23, A23.T.copy()),
    ),
    ("kron", lambda a, b: np.kron(a, b), (A23, V3)),
    ("cross", lambda a, b: np.cross(a, b), (V3, W3)),
    ("cross rows", lambda a, b: np.cross(a, b), (A23, A23[::-1].copy())),
    ("inner", lambda a, b: np.inner(a, b), (A23, A34[:, :3].copy())),
    (
        "einsum ...",
        lambda a, b: np.einsum("...ij,...jk->...ik", a, b),
        (A234, A234[..., :3, :].swapaxes(-1, -2).copy()),
    ),
    ("einsum implicit ...", lambda a, b: np.einsum("...i,...i", a, b), (A34, A34[0].copy())),
    (
        "einsum broadcast ...",
        lambda a, b: np.einsum("i...,i...->...", a, b),
        (A23, A23[:, :1].copy()),
    ),
    ("trapezoid", lambda y: np.trapezoid(y, dx=0.5), (A34,)),
    ("trapezoid x", lambda y, x: np.trapezoid(y, x), (V5, np.sort(V5))),
    ("trapezoid x axis", lambda y: np.trapezoid(y, np.array([0.0, 1.0, 3.0]), axis=0), (A34,)),
    ("where", lambda x, y: np.where(x > y, x, y), (A23, A23[::-1].copy())),
    ("partition", lambda x: np.partition(x, 2), (A34,)),
    ("partition axis", lambda x: np.partition(x, (0, 2), axis=0), (A34,)),
    ("interp", lambda x, k, f: np.interp(x, k, f), (V5, np.sort(V3), W3)),
    (
        "interp left right",
        lambda x, f: np.interp(x, np.array([-1.0, 0.0, 2.0]), f, -3.0, 3.0),
        (V5, W3),
    ),
    ("meshgrid", lambda u, v: np.meshgrid(u, v)[0] * np.meshgrid(u, v)[1], (V3, V5)),
    (
        "meshgrid ij",
        lambda u, v: np.meshgrid(u, v, indexing="ij")[1] - 2 * np.meshgrid(u, v, indexing="ij")[0],
        (V3, V5),
    ),
    ("select", lambda x: np.select([x < -1, x < 1], [2 * x, x**2], default=10 * x), (A34,)),
    ("convolve", lambda a, v: np.convolve(a, v), (V5, V3)),
    ("convolve same", lambda a, v: np.convolve(a, v, "same"), (V3, V5)),
    ("convolve valid", lambda a, v: np.convolve(a, v, "valid"), (V5, W3)),
    ("correlate", lambda a, v: np.correlate(a, v), (V5, V3)),
    ("correlate full", lambda a, v: np.correlate(a, v, "full"), (V3, V5)),
    ("correlate same", lambda a, v: np.correlate(a, v, "same"), (V3, V5)),
    ("pad edge", lambda x: np.pad(x, ((1, 2), (0, 3)), mode="edge"), (A23,)),
    ("pad reflect", lambda x: np.pad(x, 2, mode="reflect"), (A34,)),
    ("pad symmetric", lambda x: np.pad(x, (1, 3), mode="symmetric"), (A23,)),
    ("pad wrap", lambda x: np.pad(x, ((2, 0), (1, 5)), mode="wrap"), (A23,)),
    ("sort", lambda x: np.sort(x), (A34,)),
    ("sort axis 0", lambda x: np.sort(x, axis=0), (A34,)),
    ("sort flat", lambda x: np.sort(x, axis=None), (A34,)),
    ("median", lambda x: np.median(x), (A34,)),
    ("median even axis", lambda x: np.median(x, axis=1), (A34,)),
    ("median keepdims", lambda x: np.median(x, axis=0, keepdims=True), (A34,)),
    ("quantile", lambda x: np.quantile(x, 0.3), (A34,)),
    ("quantile array", lambda x: np.quantile(x, [0.1, 0.9], axis=1), (A34,)),
    ("percentile", lambda x: np.percentile(x, 75, axis=0), (A34,)),
    ("nanmedian", lambda x: np.nanmedian(x, axis=1), (A34,)),
    ("nanquantile", lambda x: np.nanquantile(x, [0.25, 0.5], axis=0), (A34,)),
    ("nanpercentile", lambda x: np.nanpercentile(x, 60), (A34,)),
    ("ptp", lambda x: np.ptp(x, axis=1), (A34,)),
    ("average", lambda x: np.average(x), (A34,)),
    ("average weights", lambda x, w: np.average(x, axis=1, weights=w), (A23, W3 + 2)),
    ("average full weights", lambda x, w: np.average(x, weights=w), (A23, A23 + 3)),
    ("nansum", lambda x: np.nansum(x, axis=0), (A34,)),
    ("nanmean", lambda x: np.nanmean(x, axis=1), (A34,)),
    ("nanmax", lambda x: np.nanmax(x), (A34,)),
    ("nanmin", lambda x: np.nanmin(x, axis=0), (A34,)),
    ("prod", lambda x: np.prod(x, axis=1), (A23,)),
    ("cumsum", lambda x: np.cumsum(x, axis=0), (A23,)),
    ("cumprod", lambda x: np.cumprod(x), (A23,)),
    ("hstack", lambda a, b: np.hstack([a, b]), (A23, A23)),
    ("vstack", lambda a, b: np.vstack([a, b]), (V3, W3)),
    ("column_stack", lambda a, b: np.column_stack([a, b]), (V3, W3)),
    ("atleast_3d", lambda x: np.atleast_3d(x), (A23,)),
]


def _plain(value: Any) -> Any:
    if isinstance(value, cr.Tensor):
        return value.detach().numpy()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize("name, call, inputs", CASES, ids=[c[0] for c in CASES])
def test_numpy_s_function_on_tensors_gives_numpy_s_values(name, call, inputs):
    got = call(*[cr.tensor(a) for a in inputs])
    want = call(*inputs)
    np.testing.assert_allclose(_plain(got), want, rtol=1e-12, atol=1e-12)
    assert np.shape(_plain(got)) == np.shape(want)


@pytest.mark.parametrize("name, call, inputs", CASES, ids=[c[0] for c in CASES])
def test_numpy_s_function_on_tensors_has_the_derivative(name, call, inputs):
    assert cr.gradcheck(lambda *xs: cr.sum(call(*xs) ** 2), *inputs, check_forward=True)


def test_each_is_reachable_as_cr_name():
    for name in {c[0].split(" ")[0] for c in CASES}:
        assert callable(getattr(cr, name)), name


def test_nan_skipping_reductions_skip_nan_and_give_it_no_gradient():
    x = np.array([[1.0, np.nan, 3.0], [np.nan, 2.0, -1.0]])
    for fn in (np.nansum, np.nanmean, np.nanmax, np.nanmin):
        t = cr.tensor(x, requires_grad=True)
        out = fn(t, axis=1)
        np.testing.assert_allclose(out.detach().numpy(), fn(x, axis=1))
        cr.sum(out).backward()
        assert np.all(t.grad.numpy()[np.isnan(x)] == 0) and np.all(np.isfinite(t.grad.numpy()))


def test_nan_skipping_order_statistics_rank_only_the_numbers():
    x = A34.copy()
    x[0, 1] = x[1, [0, 2]] = np.nan
    for fn in (
        lambda a: np.nanmedian(a, axis=1),
        lambda a: np.nanquantile(a, [0.2, 0.9], axis=1),
        lambda a: np.nanpercentile(a, 30),
    ):
        t = cr.tensor(x, requires_grad=True)
        out = fn(t)
        np.testing.assert_allclose(out.detach().numpy(), fn(x), rtol=1e-12)
        cr.sum(out).backward()
        assert np.all(t.grad.numpy()[np.isnan(x)] == 0)


def test_sort_sends_each_gradient_back_to_where_the_entry_came_from():
    x = cr.tensor([3.0, 1.0, 2.0], requires_grad=True)
    cr.sum(np.sort(x) * np.array([1.0, 10.0, 100.0])).backward()
    assert x.grad.numpy().tolist() == [100.0, 1.0, 10.0]


def test_median_of_an_even_count_splits_the_gradient_between_the_middles():
    x = cr.tensor([4.0, 1.0, 3.0, 2.0], requires_grad=True)
    np.median(x).backward()
    assert x.grad.numpy().tolist() == [0.0, 0.0, 0.5, 0.5]


def test_cross_of_2_vectors_is_the_z_component():
    a, b = A23[:, :2].copy(), A23[:, 1:].copy()
    got = cr.cross(cr.tensor(a), cr.tensor(b)).numpy()
    np.testing.assert_allclose(got, a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])
    assert cr.gradcheck(lambda u, v: cr.sum(cr.cross(u, v) ** 2), a, b)


def test_the_places_of_nonzero_entries_are_integers_without_gradient():
    x = np.array([[0.0, 1.5], [2.0, 0.0]])
    t = cr.tensor(x, requires_grad=True)
    for got, want in zip(np.where(t), np.where(x)):
        assert got.numpy().tolist() == want.tolist() and not got.requires_grad
    assert np.argwhere(t).numpy().tolist() == np.argwhere(x).tolist()
    assert np.flatnonzero(t).numpy().tolist() == np.flatnonzero(x).tolist()
    assert np.isclose(t, t + 1e-9).numpy().all() and np.allclose(t, x)
    with pytest.raises(ValueError, match="both x and y"):
        np.where(t, t)


def test_count_nonzero_and_argsort_are_integers_without_gradient():
    x = cr.tensor([[0.0, 2.0], [3.0, 0.0]], requires_grad=True)
    c = np.count_nonzero(x)
    assert int(c) == 2 and not c.requires_grad
    assert np.argsort(x, axis=1).numpy().tolist() == [[0, 1], [1, 0]]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda x: np.split(x, 5, axis=1), "do not divide"),
        (lambda x: np.quantile(x, 1.5), "q must be in"),
        (lambda x: np.cross(x, x), "2 or 3 components"),
        (lambda x: np.fliplr(x[0]), "at least 2 dimensions"),
        (lambda x: np.diag(x[None]), "1-D or 2-D"),
        (lambda x: np.average(x, weights=np.ones(7)), "weights of shape"),
        (lambda x: np.convolve(x, x), "two non-empty 1-D arrays"),
        (lambda x: np.convolve(x[0], x[1], "middle"), "mode must be"),
        (lambda x: np.pad(x, 1, mode="maximum"), "mode 'maximum' is not supported"),
    ],
)
def test_bad_arguments_say_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call(cr.tensor(A34))


def test_numpy_like_constructors_on_tensors_give_constants():
    t = cr.tensor(A23, requires_grad=True)
    for fn, value in [(np.zeros_like, 0.0), (np.ones_like, 1.0), (np.empty_like, 0.0)]:
        out = fn(t)
        assert isinstance(out, cr.Tensor) and not out.requires_grad
        assert out.shape == (2, 3) and out.dtype == t.dtype
        np.testing.assert_array_equal(out.numpy(), np.full((2, 3), value))
    assert np.full_like(t, 2.5, dtype="float32").dtype == np.float32
    assert np.ones_like(t, shape=(4,)).shape == (4,)
    # inside a transform, as HIPS autograd code writes them
    g = cr.grad(lambda x: np.sum(x * x + np.ones_like(x) * 3.0 - np.zeros_like(x)))(A23)
    np.testing.assert_allclose(g, 2 * A23)
    with pytest.raises(TypeError, match="unexpected keyword"):
        np.zeros_like(t, like=t)
