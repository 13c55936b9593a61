"""The normalize op's compiled loops (chainrule/ops/_normalize.c) against the sheet's NumPy
rules: the same values to rounding, on every layout the loops take (batch norm's channels,
layer norm's rows, a whole array), with and without weight and bias, in one thread and in
several; and nothing written where a case is not theirs (the rules then run)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import chainrule as cr
from chainrule.ops import kernels
from chainrule.ops.nn import _normalize, normalize

pytestmark = pytest.mark.skipif(
    kernels._loops is None, reason="the normalize loops are compiled only with a C compiler"
)

#: (x's shape, the normalised axes, the weight's and bias's shape or None)
CASES = [
    ((64, 16, 9, 9), (0, 2, 3), (16, 1, 1)),  # batch norm 2d, one value per channel
    ((32, 8, 40), (0, 2), (8, 1)),  # batch norm 1d over sequences
    ((50, 12), (0,), (12,)),  # batch norm over features
    ((16, 24, 32), (2,), (32,)),  # layer norm, one value per position
    ((6, 5, 12, 10), (2, 3), (12, 10)),  # layer norm over two axes
    ((8, 4, 150), (2,), None),  # group norm's grouped view, no affine
    ((7, 9, 11), (0, 1, 2), (7, 9, 11)),  # everything (weight per position)
    ((300, 700), (1,), (700,)),  # large enough to share among threads
    ((130, 2, 600), (0, 2), (2, 1)),  # large, per channel, fewer channels than threads
]


def _tol(dtype: Any) -> dict[str, float]:
    return {"rtol": 3e-5, "atol": 3e-5} if dtype == np.float32 else {"rtol": 1e-11, "atol": 1e-11}


def _arrays(shape: tuple[int, ...], wshape: Any, dtype: str, seed: int = 0) -> tuple[Any, ...]:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    if wshape is None:
        return x, g, None, None
    w = rng.standard_normal(wshape).astype(dtype)
    b = rng.standard_normal(wshape).astype(dtype)
    return x, g, w, b


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("shape", "axes", "wshape"), CASES)
def test_the_loops_give_the_rules_values(
    shape: tuple[int, ...], axes: tuple[int, ...], wshape: Any, dtype: str, threads: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(kernels, "THREADS", threads)
    x, g, w, b = _arrays(shape, wshape, dtype)
    eps = 1e-5
    out, saved = kernels.normalize_save(np, x, w, b, axes=axes, eps=eps)
    assert saved is not None, "the loops should take this case"
    plain = _normalize.forward(np, x, w, b, axes=axes, eps=eps)
    assert out.dtype == plain.dtype and np.allclose(out, plain, **_tol(x.dtype))
    fast = [kernels.normalize_dx, kernels.normalize_dweight, kernels.normalize_dbias]
    for i, (rule, kernel) in enumerate(zip(_normalize.vjps, fast)):
        if i and w is None:
            continue
        value = (x, w, b)[i]
        expected = rule(g, out, x, w, b, axes, eps)
        got = kernel(g, out, x, w, b, axes, eps, saved=saved)
        assert got.shape == value.shape and got.dtype == value.dtype
        assert np.allclose(got, expected, **_tol(x.dtype)), f"input {i}"


def test_a_channel_s_statistics_do_not_depend_on_the_thread_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, g, w, b = _arrays((200, 8, 300), (8, 1), "float32", seed=3)
    results = []
    for threads in (1, 2, 5):
        monkeypatch.setattr(kernels, "THREADS", threads)
        out, saved = kernels.normalize_save(np, x, w, b, axes=(0, 2), eps=1e-5)
        dx = kernels.normalize_dx(g, out, x, w, b, (0, 2), 1e-5, saved=saved)
        dw = kernels.normalize_dweight(g, out, x, w, b, (0, 2), 1e-5, saved=saved)
        results.append([out.tobytes(), dx.tobytes(), dw.tobytes()])
    assert results[0] == results[1] == results[2]


def test_layers_train_the_same_on_the_loops_and_on_the_rules() -> None:
    # the whole path through the engine: one node, its kernels in a plain pass, the sheet's
    # rules under anomaly mode (which records no saved value), on batch and layer norm
    rng = np.random.default_rng(5)
    x = rng.standard_normal((16, 6, 5, 5))
    for layer, shape in ((cr.nn.BatchNorm2d(6), x.shape), (cr.nn.LayerNorm([5, 5]), x.shape)):
        layer.weight.data[...] = rng.standard_normal(layer.weight.shape)
        g = rng.standard_normal(shape)
        grads = []
        for anomaly in (False, True):
            layer.zero_grad()
            xt = cr.tensor(x, requires_grad=True)
            if anomaly:
                with cr.detect_anomaly():
                    layer(xt).backward(g)
            else:
                layer(xt).backward(g)
            grads.append([xt.grad, layer.weight.grad, layer.bias.grad])
        for fast, plain in zip(*grads):
            assert np.allclose(fast, plain, rtol=1e-12, atol=1e-12)


def test_moments_are_numpy_s_mean_and_variance() -> None:
    x = np.random.default_rng(2).standard_normal((40, 3, 7, 7)) * 5 + 2
    mean, var = kernels.moments(x, (0, 2, 3))
    assert np.allclose(mean, x.mean(axis=(0, 2, 3)), rtol=1e-12)
    assert np.allclose(var, x.var(axis=(0, 2, 3)), rtol=1e-12)
    # a layout the loops do not take goes to NumPy
    mean, var = kernels.moments(x, (1, 3))
    assert np.allclose(var, x.var(axis=(1, 3)), rtol=1e-12) and mean.shape == (40, 7)


def test_a_case_that_is_not_plain_runs_the_rules() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 8))
    loops = kernels._loops
    out, mean, rstd = np.zeros_like(x), np.zeros(8), np.zeros(8)
    untouched = (out.copy(), mean.copy())
    refusals = [
        (x.T.copy().T, 6, 8, 1),  # not C-contiguous
        (x.astype(np.float16), 6, 8, 1),  # another dtype
        (x, 6, 8, 2),  # sizes that do not multiply to x's
    ]
    for array, a, c, b in refusals:
        assert not loops.forward(array, a, c, b, 1e-5, None, 0, None, 0, out, mean, rstd, 1)
    assert not loops.forward(x, 6, 8, 1, 1e-5, None, 0, None, 0, x, mean, rstd, 1)  # out is x
    assert not loops.forward(x, 6, 8, 1, 1e-5, np.ones(5), 1, None, 0, out, mean, rstd, 1)
    assert not loops.forward(x, 6, 8, 1, 1e-5, None, 0, None, 0, out, mean[:4], rstd, 1)
    assert (out == untouched[0]).all() and (mean == untouched[1]).all()
    with pytest.raises(TypeError, match="takes 13 arguments"):
        loops.forward(x)
    # the kernels then run the sheet's rules: an x with gaps between its entries, a float16
    # one, a weight laid out otherwise (one per entry of x)
    wide = rng.standard_normal((6, 16))[:, ::2]
    for xs, w in ((wide, None), (x.astype(np.float16), None), (x, rng.standard_normal((6, 8)))):
        out, saved = kernels.normalize_save(np, xs, w, None, axes=(1,), eps=1e-5)
        assert saved is None
        assert np.allclose(out, _normalize.forward(np, xs, w, None, axes=(1,), eps=1e-5))


def test_non_finite_values_stay_in_their_channel() -> None:
    x = np.random.default_rng(6).standard_normal((10, 3, 4))
    x[2, 1, 3] = np.nan
    x[4, 2, 0] = np.inf
    out, saved = kernels.normalize_save(np, x, None, None, axes=(0, 2), eps=1e-5)
    with np.errstate(invalid="ignore"):
        plain = _normalize.forward(np, x, None, None, axes=(0, 2), eps=1e-5)
    assert np.isnan(out[:, 1]).all() and np.isnan(out[:, 2]).all()
    assert np.allclose(out[:, 0], plain[:, 0], rtol=1e-12)


def test_normalize_with_weight_and_bias_is_documented_in_its_formula() -> None:
    text = cr.ops.table()
    assert "gw = g weight" in str(text)
    x = cr.tensor(np.array([[1.0, 3.0], [2.0, 6.0]]), requires_grad=True)
    y = normalize(x, np.array([2.0, 2.0]), np.array([1.0, 1.0]), axes=(1,), eps=0.0)
    assert y.tolist() == [[-1.0, 3.0], [-1.0, 3.0]]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_loops_read_an_array_laid_out_in_another_order(dtype: str) -> None:
    # a convolution's output is (N, C, L) laid out as (C, N, L): the loops read it in that
    # order, the value comes back laid out as x, and every gradient matches the rules
    rng = np.random.default_rng(7)
    x = np.ascontiguousarray(rng.standard_normal((6, 20, 9)).astype(dtype)).transpose(1, 0, 2)
    assert not x.flags.c_contiguous
    g = rng.standard_normal(x.shape).astype(dtype)
    w, b = (rng.standard_normal((6, 1)).astype(dtype) for _ in range(2))
    axes = (0, 2)
    out, saved = kernels.normalize_save(np, x, w, b, axes=axes, eps=1e-5)
    assert saved is not None and out.strides == np.empty_like(x).strides
    plain = _normalize.forward(np, x, w, b, axes=axes, eps=1e-5)
    assert np.allclose(out, plain, **_tol(x.dtype))
    fast = [kernels.normalize_dx, kernels.normalize_dweight, kernels.normalize_dbias]
    for i, (rule, kernel) in enumerate(zip(_normalize.vjps, fast)):
        got = kernel(g, out, x, w, b, axes, 1e-5, saved=saved)
        expected = rule(g, out, x, w, b, axes, 1e-5)
        assert got.shape == expected.shape and np.allclose(got, expected, **_tol(x.dtype)), i
    mean, var = kernels.moments(x, axes)
    assert np.allclose(mean, x.mean(axis=axes), **_tol(x.dtype))
    assert np.allclose(var, x.var(axis=axes), **_tol(x.dtype))
