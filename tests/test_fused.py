"""The optimizers' one-pass kernels (chainrule/optim/_fused.c) against the NumPy lines of
chainrule/optim/optimizers.py, the reference: the same bits, special values included; every
case they cannot write in one pass refused with nothing written; and training steps with the
kernels on and off giving the same parameters and buffers.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import array_api_strict as xps
import numpy as np
import pytest

import chainrule as cr
from chainrule.optim import optimizers

RNG = np.random.default_rng(7)

# The kernels are optional: an install on a machine with no C compiler has none, and then the
# NumPy lines do every update. Where there is a compiler, they must have been built.
try:
    from chainrule.optim import _fused
except ImportError:
    if any(shutil.which(cc) for cc in ("cc", "gcc", "clang")):
        raise
    pytest.skip("chainrule.optim._fused was not built: no C compiler", allow_module_level=True)


@contextmanager
def kernels(on: bool) -> Iterator[None]:
    """The optimizers with the one-pass kernels (on) or with their NumPy lines alone (off)."""
    saved = optimizers._sgd_update, optimizers._adam_update
    if on:
        optimizers._sgd_update, optimizers._adam_update = _fused.sgd_update, _fused.adam_update
    else:
        optimizers._sgd_update = optimizers._adam_update = None
    try:
        yield
    finally:
        optimizers._sgd_update, optimizers._adam_update = saved


def test_the_kernels_are_in_use_unless_switched_off() -> None:
    off = os.environ.get("CHAINRULE_PURE_PYTHON", "") not in ("", "0")
    assert optimizers._sgd_update is (None if off else _fused.sgd_update)
    assert optimizers._adam_update is (None if off else _fused.adam_update)


# -- SGD's update in one pass (sgd_update) --------------------------------------------------------
def _special_values(dtype: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Normal draws with infinities, NaN, signed zeros, subnormals and the largest floats
    sprinkled in, so that every rounding and special case of the update is met."""
    rng = np.random.default_rng(seed)
    info = np.finfo(dtype)
    a = rng.normal(size=shape).astype(dtype)
    special = np.array(
        [np.inf, -np.inf, np.nan, 0.0, -0.0, info.tiny / 4, -info.smallest_normal, info.max],
        dtype=dtype,
    )
    flat = a.reshape(-1)
    if flat.size:
        picks = rng.integers(0, flat.size, size=min(flat.size, 3 * special.size))
        flat[picks] = np.resize(special, picks.size)
    return a


def _sgd_reference(
    p: np.ndarray,
    g: np.ndarray,
    lr: float,
    buf: Any,
    mom: float,
    damp: float,
    wd: float,
    nesterov: bool,
) -> tuple[np.ndarray, Any]:
    """SGD's update as optimizers.py's NumPy lines compute it, out of place."""
    with np.errstate(all="ignore"):  # inf - inf, overflows: the special cases
        if wd:
            g = g + wd * p
        if buf is not None:
            buf = buf * mom + g * (1 - damp)
            g = g + mom * buf if nesterov else buf
        return p - g * lr, buf


_SGD_CASES = {  # name -> (momentum buffer?, momentum, dampening, weight_decay, nesterov)
    "plain": (False, 0.0, 0.0, 0.0, False),
    "weight decay": (False, 0.0, 0.0, 0.01, False),
    "momentum": (True, 0.9, 0.0, 0.0, False),
    "momentum, dampening, decay": (True, 0.9, 0.1, 0.01, False),
    "nesterov": (True, 0.9, 0.0, 0.0, True),
    "nesterov, decay": (True, 0.5, 0.0, 1e-4, True),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(256, 784), (10,), (), (3, 5, 7), (0, 4), (1031,)])
@pytest.mark.parametrize("lr", [0.01, 1e-7, 3.0])
@pytest.mark.parametrize("case", list(_SGD_CASES))
def test_sgd_update_has_numpy_s_bits(
    dtype: str, shape: tuple[int, ...], lr: float, case: str
) -> None:
    # the same roundings as optimizers.py's NumPy lines (each product and sum in the dtype, never
    # a fused multiply-add): identical bytes, special values included, buffer too
    has_buf, mom, damp, wd, nesterov = _SGD_CASES[case]
    p = _special_values(dtype, shape, 1)
    g = _special_values(dtype, shape, 2)
    buf = _special_values(dtype, shape, 3) if has_buf else None
    expected, expected_buf = _sgd_reference(p, g, lr, buf, mom, damp, wd, nesterov)
    args = (p, g, lr) if case == "plain" else (p, g, lr, buf, mom, 1 - damp, wd, nesterov)
    assert _fused.sgd_update(*args) is True
    assert p.dtype == expected.dtype and p.tobytes() == expected.tobytes()
    if has_buf:
        assert buf.tobytes() == expected_buf.tobytes()


def test_sgd_update_would_differ_from_a_fused_multiply_add() -> None:
    # a case where one rounding (fma) and two (NumPy) give different float32 bits, so the
    # test above can tell them apart: p - g * lr with g * lr inexact
    p = np.array([1.0], dtype=np.float32)
    g = np.array([1 + 2**-23], dtype=np.float32)
    lr = 1 - 2**-24
    two = p - g * lr
    one = np.float32(np.float64(p[0]) - np.float64(g[0]) * np.float64(np.float32(lr)))
    assert two[0] != one  # the roundings differ here
    assert _fused.sgd_update(p, g, lr) and p[0] == two[0]


def test_sgd_update_writes_in_either_memory_order_and_refuses_the_rest() -> None:
    fortran = np.asfortranarray(RNG.normal(size=(6, 4)))
    g = np.asfortranarray(RNG.normal(size=(6, 4)))
    b = np.asfortranarray(RNG.normal(size=(6, 4)))
    expected, expected_b = _sgd_reference(fortran, g, 0.25, b, 0.9, 0.0, 0.0, True)
    assert _fused.sgd_update(fortran, g, 0.25, b, 0.9, 1.0, 0.0, True)
    assert fortran.tobytes(order="A") == expected.tobytes(order="A")
    assert b.tobytes(order="A") == expected_b.tobytes(order="A")

    def p64(shape: tuple[int, ...] = (6, 4)) -> np.ndarray:
        return RNG.normal(size=shape)

    readonly = p64()
    readonly.flags.writeable = False
    swapped = p64().astype(">f8")
    base = p64((10,))
    refused = {
        "a strided parameter": (p64((6, 8))[:, ::2], p64()),
        "a strided gradient": (p64(), p64((6, 8))[:, ::2]),
        "C order against F order": (p64(), np.asfortranarray(p64())),
        "other dtypes": (p64(), p64().astype(np.float32)),
        "float16": (p64().astype(np.float16), p64().astype(np.float16)),
        "integers": (np.ones((6, 4), dtype=np.int64), np.ones((6, 4), dtype=np.int64)),
        "other shapes": (p64(), p64((4, 6))),
        "a read-only parameter": (readonly, p64()),
        "byte-swapped": (swapped, swapped.copy()),
        "the same array": (base, base),
        "overlapping views": (base[1:], base[:-1]),
        "a subclass": (p64().view(np.ma.MaskedArray), p64()),
        "not an ndarray": (xps.asarray([1.0, 2.0]), xps.asarray([1.0, 2.0])),
    }
    for why, (p, g) in refused.items():
        before = np.array(p, copy=True)
        assert _fused.sgd_update(p, g, 0.5) is False, why
        assert np.array_equal(np.asarray(p), before, equal_nan=True), why  # nothing written
    locked = p64()
    locked.flags.writeable = False
    shared = p64((10,))
    buffers = {  # a momentum buffer that cannot be written in one pass beside p and g
        "read-only": (p64(), p64(), locked),
        "strided": (p64(), p64(), p64((6, 8))[:, ::2]),
        "another dtype": (p64(), p64(), p64().astype(np.float32)),
        "overlapping the parameter": (shared[:6], p64((6,)), shared[4:]),
        "overlapping the gradient": (p64((6,)), shared[:6], shared[3:9]),
        "a list": (p64(), p64(), [0.0] * 24),
    }
    for why, (p, g, b) in buffers.items():
        before_p, before_b = p.copy(), np.array(b, copy=True)
        assert _fused.sgd_update(p, g, 0.5, b, 0.9, 1.0, 0.0, False) is False, why
        assert np.array_equal(p, before_p) and np.array_equal(np.asarray(b), before_b), why
    for lr in (np.float64(0.5), 1, np.float32(0.5)):  # NumPy types round by other rules
        assert _fused.sgd_update(p64(), p64(), lr) is False
    assert _fused.sgd_update(p64(), p64(), 0.5, p64(), 1, 1.0, 0.0, False) is False
    with pytest.raises(TypeError, match=r"takes 3 or 8 arguments"):
        _fused.sgd_update(p64(), p64())
    with pytest.raises(TypeError, match=r"takes 3 or 8 arguments"):
        _fused.sgd_update(p64(), p64(), 0.5, p64())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "kw",
    [
        dict(lr=0.1),
        dict(lr=0.1, weight_decay=0.01),
        dict(lr=0.1, momentum=0.9),
        dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
        dict(lr=0.1, momentum=0.9, nesterov=True),
    ],
)
def test_sgd_steps_have_the_same_bits_with_and_without_the_kernels(
    dtype: str, kw: dict[str, Any]
) -> None:
    # an MLP trained for a few steps: the one-pass update (kernels on) against optimizers.py's
    # NumPy lines with the scratch buffer (off): the same parameters and momentum buffers bit
    # for bit. With momentum, the first step makes the buffer in NumPy, and so the scratch
    # array; without it, the kernel never needs one
    rng = np.random.default_rng(3)
    X = rng.normal(size=(64, 20)).astype(dtype)
    y = rng.integers(0, 5, size=64)

    def train(on: bool) -> tuple[list[bytes], Any]:
        with kernels(on):
            cr.random.seed(5)
            net = cr.nn.MLP([20, 32, 5], dtype=dtype)
            opt = cr.optim.SGD(net.parameters(), **kw)
            for _ in range(4):
                opt.zero_grad()
                cr.nn.functional.cross_entropy(net(cr.tensor(X)), y).backward()
                opt.step()
            kept = [p.data.tobytes() for p in net.parameters()]
            kept += [s["momentum_buffer"].tobytes() for s in opt.state if s]
            return kept, opt

    fast, opt_fast = train(True)
    slow, opt_slow = train(False)
    assert fast == slow and len(fast) == (8 if kw.get("momentum") else 4)  # 2 layers
    assert set(opt_slow._flat) == {np.dtype(dtype)}
    assert set(opt_fast._flat) == (set(opt_slow._flat) if kw.get("momentum") else set())


def _adam_reference(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    t: int,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    wd: float,
    decoupled: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adam's update (after the first step) as optimizers.py's NumPy lines compute it."""
    b1, b2 = betas
    with np.errstate(all="ignore"):
        if wd and decoupled:
            p = p * (1 - lr * wd)
        elif wd:
            g = g + wd * p
        m = m * b1 + g * (1 - b1)
        v = v * b2 + (g * g) * (1 - b2)
        denom = np.sqrt(v / (1 - b2**t)) + eps
        return p - (m / denom) * (lr / (1 - b1**t)), m, v


def _adam_args(
    p: Any,
    g: Any,
    m: Any,
    v: Any,
    t: int,
    lr: float,
    betas: Any,
    eps: float,
    wd: float,
    decoupled: bool,
) -> tuple[Any, ...]:
    b1, b2 = betas
    return (
        p,
        g,
        m,
        v,
        b1,
        1 - b1,
        b2,
        1 - b2,
        1 - b2**t,
        lr / (1 - b1**t),
        eps,
        wd if wd and not decoupled else 0.0,
        1 - lr * wd if wd and decoupled else None,
    )


_ADAM_CASES = {  # name -> (weight decay, decoupled)
    "Adam": (0.0, False),
    "Adam, L2 weight decay": (0.1, False),
    "AdamW": (0.01, True),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(256, 784), (10,), (), (0, 4), (1031,)])
@pytest.mark.parametrize("t", [2, 1000])
@pytest.mark.parametrize("case", list(_ADAM_CASES))
def test_adam_update_has_numpy_s_bits(
    dtype: str, shape: tuple[int, ...], t: int, case: str
) -> None:
    # every product, quotient, sum and square root rounded in the dtype as NumPy's lines do:
    # identical bytes for the parameter and both buffers, special values included (v keeps
    # its sign: a negative v gives NaN through the square root, in both)
    wd, decoupled = _ADAM_CASES[case]
    p, g, m = (_special_values(dtype, shape, seed) for seed in (1, 2, 3))
    v = _special_values(dtype, shape, 4)
    np.abs(v, out=v)  # (an array still where the shape is ())
    if v.size:
        v.reshape(-1)[0] = -1.0
    expected = _adam_reference(p, g, m, v, t, 1e-3, (0.9, 0.999), 1e-8, wd, decoupled)
    args = _adam_args(p, g, m, v, t, 1e-3, (0.9, 0.999), 1e-8, wd, decoupled)
    assert _fused.adam_update(*args) is True
    for got, want in zip((p, m, v), expected):
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


def test_adam_update_refuses_what_it_cannot_write_in_one_pass() -> None:
    def a64(shape: tuple[int, ...] = (6, 4)) -> np.ndarray:
        return RNG.normal(size=shape)

    locked = a64()
    locked.flags.writeable = False
    shared = a64((10,))
    cases = {  # name -> (p, g, m, v)
        "a read-only parameter": (locked, a64(), a64(), a64()),
        "a read-only buffer": (a64(), a64(), a64(), locked),
        "a strided buffer": (a64(), a64(), a64((6, 8))[:, ::2], a64()),
        "buffers of another dtype": (a64(), a64(), a64().astype(np.float32), a64()),
        "the two buffers overlapping": (a64((6,)), a64((6,)), shared[:6], shared[4:]),
        "a buffer overlapping the gradient": (a64((6,)), shared[:6], shared[2:8], a64((6,))),
        "F order against C order": (a64(), a64(), np.asfortranarray(a64()), a64()),
    }
    for why, (p, g, m, v) in cases.items():
        before = [np.array(x, copy=True) for x in (p, m, v)]
        args = _adam_args(p, g, m, v, 3, 1e-3, (0.9, 0.999), 1e-8, 0.0, False)
        assert _fused.adam_update(*args) is False, why
        assert all(np.array_equal(x, b) for x, b in zip((p, m, v), before)), why
    args = list(_adam_args(a64(), a64(), a64(), a64(), 3, 1e-3, (0.9, 0.999), 1e-8, 0.1, True))
    args[10] = np.float32(1e-8)  # eps as a NumPy scalar: NumPy rounds it by other rules
    assert _fused.adam_update(*args) is False
    args[10], args[12] = 1e-8, 1  # an int shrink factor likewise
    assert _fused.adam_update(*args) is False
    with pytest.raises(TypeError, match="takes 13 arguments"):
        _fused.adam_update(*args[:12])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "opt_cls,kw",
    [
        (cr.optim.Adam, dict(lr=0.01)),
        (cr.optim.Adam, dict(lr=0.01, weight_decay=0.1)),
        (cr.optim.AdamW, dict(lr=0.01)),
    ],
)
def test_adam_steps_have_the_same_bits_with_and_without_the_kernels(
    dtype: str, opt_cls: Any, kw: dict[str, Any]
) -> None:
    # the one-pass update from the second step on (kernels on) against optimizers.py's NumPy
    # lines (off): the same parameters, buffers and step counts bit for bit
    rng = np.random.default_rng(4)
    X = rng.normal(size=(64, 20)).astype(dtype)
    y = rng.integers(0, 5, size=64)

    def train(on: bool) -> list[Any]:
        with kernels(on):
            cr.random.seed(6)
            net = cr.nn.MLP([20, 32, 5], dtype=dtype)
            opt = opt_cls(net.parameters(), **kw)
            for _ in range(5):
                opt.zero_grad()
                cr.nn.functional.cross_entropy(net(cr.tensor(X)), y).backward()
                opt.step()
            kept: list[Any] = [p.data.tobytes() for p in net.parameters()]
            for s in opt.state:
                kept += [s["step"], s["exp_avg"].tobytes(), s["exp_avg_sq"].tobytes()]
            return kept

    fast, slow = train(True), train(False)
    assert fast == slow and fast.count(5) == 4  # every parameter took five steps
