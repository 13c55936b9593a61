"""cr.optim: SGD (momentum, dampening, Nesterov, weight decay), Adam, AdamW and the schedules,
each against a NumPy reference of PyTorch's update rules written here."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import chainrule as cr
from chainrule.nn import functional as F

RNG = np.random.default_rng(7)
P0 = RNG.normal(size=(3, 4))
C = RNG.normal(size=(3, 4))
D = RNG.uniform(0.5, 3.0, size=(3, 4))
STEPS = 6
NAMES = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]


def _np(t):
    return np.asarray(t.numpy())


def _grad_ref(p: np.ndarray) -> np.ndarray:
    """Gradient of the quadratic loss below: d/dp sum(d/2 (p - c)^2) = d (p - c)."""
    return D * (p - C)


def _loss(w):
    return cr.sum(0.5 * cr.tensor(D) * (w - cr.tensor(C)) ** 2)


def _run(opt_cls, steps=STEPS, **kw):
    """Minimise the quadratic with the library's backward + optimizer; the final values."""
    w = cr.tensor(P0.copy(), requires_grad=True)
    opt = opt_cls([w], **kw)
    for _ in range(steps):
        opt.zero_grad()
        _loss(w).backward()
        opt.step()
    return _np(w)


# -- NumPy references (PyTorch's rules) --------------------------------------------------
def _sgd_ref(lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0, steps=STEPS):
    p = P0.copy()
    buf = None
    for _ in range(steps):
        g = _grad_ref(p)
        if weight_decay != 0:
            g = g + weight_decay * p
        if momentum != 0:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


def _adam_ref(
    lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False, steps=STEPS
):
    b1, b2 = betas
    p = P0.copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t in range(1, steps + 1):
        g = _grad_ref(p)
        if decoupled:
            p = p * (1 - lr * weight_decay)
        elif weight_decay != 0:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


# -- SGD ---------------------------------------------------------------------------------
def test_sgd_plain_one_step_by_hand():
    w = cr.tensor([1.0, -2.0, 0.5], requires_grad=True)
    opt = cr.optim.SGD([w], lr=0.1)
    cr.sum(w * w).backward()  # grad 2w
    opt.step()
    np.testing.assert_allclose(_np(w), [0.8, -1.6, 0.4], rtol=1e-15)


@pytest.mark.parametrize(
    "kw",
    [
        dict(lr=0.1),
        dict(lr=0.05, momentum=0.9),
        dict(lr=0.05, momentum=0.9, dampening=0.5),
        dict(lr=0.05, momentum=0.8, nesterov=True),
        dict(lr=0.1, weight_decay=0.3),
        dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.05),
        dict(lr=0.05, momentum=0.7, nesterov=True, weight_decay=0.2),
    ],
    ids=["plain", "momentum", "dampening", "nesterov", "wd", "mom+damp+wd", "nesterov+wd"],
)
def test_sgd_against_pytorch_rule(kw):
    _close(_run(cr.optim.SGD, **kw), _sgd_ref(**kw))


def test_sgd_momentum_by_hand():
    # constant gradient g: buffer g, then 0.9 g + g = 1.9 g; moves lr*g then lr*1.9g
    w = cr.tensor([0.0], requires_grad=True)
    opt = cr.optim.SGD([w], lr=0.1, momentum=0.9)
    for _ in range(2):
        w.grad = np.array([1.0])
        opt.step()
    assert float(w) == pytest.approx(-(0.1 + 0.19), rel=1e-14)
    # dampening only applies after the first step: buf = g, then 0.9 g + 0.5 g
    w = cr.tensor([0.0], requires_grad=True)
    opt = cr.optim.SGD([w], lr=0.1, momentum=0.9, dampening=0.5)
    for _ in range(2):
        w.grad = np.array([1.0])
        opt.step()
    assert float(w) == pytest.approx(-(0.1 + 0.14), rel=1e-14)


def test_sgd_momentum_buffer_does_not_alias_the_gradient():
    w = cr.tensor([0.0, 0.0], requires_grad=True)
    opt = cr.optim.SGD([w], lr=1.0, momentum=0.5)
    g = np.array([1.0, 2.0])
    w.grad = g
    opt.step()
    w.grad.data[...] = 100.0  # scribbling on the old gradient must not reach the buffer
    w.grad = np.array([0.0, 0.0])
    opt.step()  # buf = 0.5 * [1, 2]
    np.testing.assert_allclose(_np(w), [-1.5, -3.0], rtol=1e-15)


# -- Adam / AdamW ------------------------------------------------------------------------
def test_adam_defaults_match_pytorch():
    w = cr.tensor([1.0], requires_grad=True)
    adam = cr.optim.Adam([w])
    assert adam.lr == 1e-3 and tuple(adam.betas) == (0.9, 0.999)
    assert adam.eps == 1e-8 and adam.weight_decay == 0
    adamw = cr.optim.AdamW([w])
    assert adamw.lr == 1e-3 and tuple(adamw.betas) == (0.9, 0.999)
    assert adamw.eps == 1e-8 and adamw.weight_decay == 0.01


def test_adam_first_step_moves_every_parameter_by_lr_times_sign():
    """Bias correction: m_hat = g and v_hat = g^2 at t=1, so the step is lr g/(|g| + eps)."""
    g = np.array([1e-3, -5.0, 300.0, -2e-2, 7.0])
    w = cr.tensor(np.zeros(5), requires_grad=True)
    opt = cr.optim.Adam([w], lr=0.01)
    w.grad = g
    opt.step()
    moved = _np(w)
    np.testing.assert_allclose(moved, -0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)
    np.testing.assert_allclose(moved, -0.01 * np.sign(g), rtol=1e-5)
    # without bias correction the first step would be ~ (1-b1)/sqrt(1-b2) = 3.2 times larger
    assert np.all(np.abs(moved) < 0.0101)


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(lr=0.05),
        dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6),
        dict(lr=0.03, weight_decay=0.1),
    ],
    ids=["defaults", "lr", "betas+eps", "l2"],
)
def test_adam_against_pytorch_rule(kw):
    _close(_run(cr.optim.Adam, **kw), _adam_ref(**kw))


@pytest.mark.parametrize(
    "kw",
    [dict(), dict(lr=0.05, weight_decay=0.2), dict(lr=0.02, betas=(0.5, 0.9), weight_decay=0.0)],
    ids=["defaults", "wd", "no-wd"],
)
def test_adamw_against_pytorch_rule(kw):
    ref_kw = dict(kw)
    ref_kw.setdefault("weight_decay", 0.01)
    _close(_run(cr.optim.AdamW, **kw), _adam_ref(decoupled=True, **ref_kw))


def test_adamw_decay_is_decoupled_from_the_gradient():
    # zero gradient: Adam's step is 0/(0 + eps) = 0, so only the decay moves the weights
    p = np.array([2.0, -3.0, 0.5])
    w = cr.tensor(p.copy(), requires_grad=True)
    opt = cr.optim.AdamW([w], lr=0.1, weight_decay=0.5)
    for _ in range(3):
        w.grad = np.zeros(3)
        opt.step()
    np.testing.assert_allclose(_np(w), p * (1 - 0.1 * 0.5) ** 3, rtol=1e-14)
    # Adam's L2 folds the decay into the gradient: the first step is lr * sign(p) instead
    w = cr.tensor(p.copy(), requires_grad=True)
    opt = cr.optim.Adam([w], lr=0.1, weight_decay=0.5)
    w.grad = np.zeros(3)
    opt.step()
    np.testing.assert_allclose(_np(w), p - 0.1 * np.sign(p), rtol=1e-7)


def test_adamw_differs_from_adam_with_l2():
    a = _run(cr.optim.AdamW, lr=0.05, weight_decay=0.3)
    b = _run(cr.optim.Adam, lr=0.05, weight_decay=0.3)
    assert np.abs(a - b).max() > 1e-3
    _close(b, _adam_ref(lr=0.05, weight_decay=0.3))
    _close(a, _adam_ref(lr=0.05, weight_decay=0.3, decoupled=True))


def test_adam_step_count_is_per_parameter():
    """A parameter that first gets a gradient late still gets the t=1 bias correction."""
    a = cr.tensor([0.0], requires_grad=True)
    b = cr.tensor([0.0], requires_grad=True)
    opt = cr.optim.Adam([a, b], lr=0.1)
    for _ in range(3):
        a.grad = np.array([1.0])
        opt.step()
    assert float(b) == 0.0 and b.grad is None
    b.grad = np.array([-4.0])
    opt.step()
    assert float(b) == pytest.approx(0.1, rel=1e-8)


# -- shared behaviour --------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda ps: cr.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
        lambda ps: cr.optim.Adam(ps, lr=0.1, weight_decay=0.1),
        lambda ps: cr.optim.AdamW(ps, lr=0.1),
        lambda ps: cr.optim.RMSprop(ps, lr=0.1, momentum=0.5, weight_decay=0.1),
        lambda ps: cr.optim.Adagrad(ps, lr=0.1, weight_decay=0.1),
    ],
    ids=NAMES,
)
def test_parameters_without_gradient_are_skipped(make):
    a = cr.tensor([1.0, 2.0], requires_grad=True)
    b = cr.tensor([3.0, 4.0], requires_grad=True)
    opt = make([a, b])
    cr.sum(a * a).backward()
    opt.step()
    assert b.tolist() == [3.0, 4.0]  # no gradient: not even weight decay touches it
    assert a.tolist() != [1.0, 2.0]


def test_step_updates_the_same_tensor_objects_in_place():
    net = cr.nn.MLP([3, 4, 2], rng=0)
    params = list(net.parameters())
    before = [_np(p).copy() for p in params]
    opt = cr.optim.Adam(net.parameters(), lr=0.1)
    x = cr.tensor(RNG.normal(size=(5, 3)))
    F.cross_entropy(net(x), np.array([0, 1, 0, 1, 1])).backward()
    opt.step()
    assert all(p is q for p, q in zip(net.parameters(), params))
    assert all(p is q for p, q in zip(opt.params, params))
    assert all(p.is_leaf and p.requires_grad for p in params)
    assert isinstance(net[0].weight, cr.nn.Parameter)
    for p, old in zip(params, before):
        if np.any(_np(p.grad) != 0):
            assert not np.array_equal(_np(p), old)


def test_zero_grad_clears_gradients():
    a = cr.tensor([1.0], requires_grad=True)
    b = cr.tensor([2.0], requires_grad=True)
    opt = cr.optim.SGD([a, b], lr=0.1)
    cr.sum(a * b).backward()
    assert a.grad is not None and b.grad is not None
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    opt.step()  # nothing to do
    assert a.tolist() == [1.0] and b.tolist() == [2.0]


def test_gradients_accumulate_without_zero_grad():
    w = cr.tensor([1.0], requires_grad=True)
    opt = cr.optim.SGD([w], lr=0.1)
    cr.sum(3 * w).backward()
    cr.sum(3 * w).backward()
    opt.step()
    assert float(w) == pytest.approx(1.0 - 0.1 * 6, rel=1e-15)


def test_step_invalidates_graphs_that_used_the_old_values():
    layer = cr.nn.Linear(3, 2, rng=0)
    opt = cr.optim.SGD(layer.parameters(), lr=0.1)
    loss = layer(cr.tensor(np.ones((4, 3)))).sum()
    loss.backward(retain_graph=True)
    loss.backward(retain_graph=True)  # fine: nothing has changed yet
    opt.step()
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: cr.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
        lambda ps: cr.optim.Adam(ps, lr=0.05),
        lambda ps: cr.optim.AdamW(ps, lr=0.05, weight_decay=0.1),
        lambda ps: cr.optim.RMSprop(ps, lr=0.01, momentum=0.9, centered=True),
        lambda ps: cr.optim.Adagrad(ps, lr=0.1, lr_decay=0.05),
    ],
    ids=NAMES,
)
def test_state_dict_round_trip_continues_identically(make):
    w = cr.tensor(P0.copy(), requires_grad=True)
    opt = make([w])

    def steps(opt, w, n):
        for _ in range(n):
            opt.zero_grad()
            _loss(w).backward()
            opt.step()

    steps(opt, w, 3)
    sd = opt.state_dict()
    snapshot = {k: np.array(v, copy=True) for k, v in sd["state"].items()}
    assert snapshot and all(k.startswith("0.") for k in snapshot)
    saved = _np(w).copy()
    steps(opt, w, 4)
    for k, v in snapshot.items():  # later steps did not reach into the saved state
        np.testing.assert_array_equal(sd["state"][k], v, err_msg=k)
    w2 = cr.tensor(saved.copy(), requires_grad=True)
    opt2 = make([w2])
    opt2.lr = 123.0  # overwritten by the loaded hyperparameters
    opt2.load_state_dict(sd)
    assert opt2.lr == opt.lr
    steps(opt2, w2, 4)
    np.testing.assert_array_equal(_np(w2), _np(w))
    # a fresh optimizer (no state) would not have continued identically
    w3 = cr.tensor(saved.copy(), requires_grad=True)
    steps(make([w3]), w3, 4)
    assert not np.array_equal(_np(w3), _np(w))


def test_load_state_dict_rejects_other_optimizers_and_sizes():
    a = cr.tensor([1.0], requires_grad=True)
    b = cr.tensor([1.0], requires_grad=True)
    sd = cr.optim.SGD([a], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="SGD"):
        cr.optim.Adam([a]).load_state_dict(sd)
    with pytest.raises(ValueError):
        cr.optim.SGD([a, b], lr=0.1).load_state_dict(sd)


# -- schedules ---------------------------------------------------------------------------
def test_step_lr_closed_form():
    w = cr.tensor([0.0], requires_grad=True)
    opt = cr.optim.SGD([w], lr=0.8)
    sched = cr.optim.StepLR(opt, step_size=3, gamma=0.5)
    assert opt.lr == 0.8
    for epoch in range(1, 11):
        sched.step()
        expected = 0.8 * 0.5 ** (epoch // 3)
        assert opt.lr == pytest.approx(expected, rel=1e-15), epoch
        assert sched.get_last_lr() == [pytest.approx(expected, rel=1e-15)]
    # the optimizer uses the scheduled rate: epoch 10 -> 0.8 * 0.5**3 = 0.1
    w.grad = np.array([1.0])
    opt.step()
    assert float(w) == pytest.approx(-0.1, rel=1e-14)


def test_cosine_annealing_closed_form():
    w = cr.tensor([0.0], requires_grad=True)
    opt = cr.optim.Adam([w], lr=0.1)
    base, eta_min, t_max = 0.1, 0.001, 10
    sched = cr.optim.CosineAnnealingLR(opt, T_max=t_max, eta_min=eta_min)
    seen = [opt.lr]
    for _ in range(t_max):
        sched.step()
        seen.append(opt.lr)
    expected = [
        eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2
        for t in range(t_max + 1)
    ]
    np.testing.assert_allclose(seen, expected, rtol=1e-13)
    assert seen[0] == base and seen[-1] == pytest.approx(eta_min, rel=1e-13)
    assert seen[5] == pytest.approx((base + eta_min) / 2, rel=1e-13)


def test_schedule_validation():
    opt = cr.optim.SGD([cr.tensor([0.0], requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="step_size"):
        cr.optim.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="T_max"):
        cr.optim.CosineAnnealingLR(opt, T_max=0)


# -- errors ------------------------------------------------------------------------------
OPTIMIZERS = [
    lambda ps, **kw: cr.optim.SGD(ps, lr=kw.get("lr", 0.1)),
    lambda ps, **kw: cr.optim.Adam(ps, **kw),
    lambda ps, **kw: cr.optim.AdamW(ps, **kw),
    lambda ps, **kw: cr.optim.RMSprop(ps, **kw),
    lambda ps, **kw: cr.optim.Adagrad(ps, **kw),
]


@pytest.mark.parametrize("make", OPTIMIZERS, ids=NAMES)
def test_no_parameters(make):
    with pytest.raises(ValueError, match="no parameters"):
        make([])
    with pytest.raises(ValueError, match="no parameters"):
        make(cr.nn.ReLU().parameters())  # a module without parameters


@pytest.mark.parametrize("make", OPTIMIZERS, ids=NAMES)
def test_non_leaf_tensor_is_named(make):
    a = cr.tensor([1.0, 2.0], requires_grad=True)
    b = a * 2
    with pytest.raises(ValueError, match="leaf") as info:
        make([a, b])
    msg = str(info.value)
    assert "parameter 1" in msg and "(2,)" in msg and "multiply" in msg


@pytest.mark.parametrize("make", OPTIMIZERS, ids=NAMES)
def test_tensor_without_requires_grad_is_accepted_as_frozen(make):
    frozen = cr.tensor([1.0, 2.0])
    opt = make([frozen])
    frozen._grad = cr.tensor([1.0, 1.0])  # even a stray gradient does not move it
    opt.step()
    assert frozen.tolist() == [1.0, 2.0] and opt.state == [{}]


def test_other_bad_parameter_lists():
    a = cr.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="more than once"):
        cr.optim.SGD([a, a], lr=0.1)
    with pytest.raises(ValueError, match="ndarray"):
        cr.optim.SGD([np.zeros(3)], lr=0.1)


@pytest.mark.parametrize("lr", [-0.1, float("nan"), float("inf"), -1])
@pytest.mark.parametrize("make", OPTIMIZERS, ids=NAMES)
def test_bad_learning_rate(make, lr):
    with pytest.raises(ValueError, match="learning rate"):
        make([cr.tensor([1.0], requires_grad=True)], lr=lr)


def test_learning_rate_as_numpy_scalar_or_int_is_accepted():
    w = cr.tensor([1.0], requires_grad=True)
    assert cr.optim.SGD([w], lr=1).lr == 1.0
    assert cr.optim.SGD([w], lr=np.float64(0.5)).lr == 0.5
    assert cr.optim.Adam([w], lr=np.float32(0.25)).lr == 0.25


@pytest.mark.parametrize(
    "betas", [(1.0, 0.999), (0.9, 1.0), (-0.1, 0.999), (0.9, -0.5), (float("nan"), 0.9)]
)
@pytest.mark.parametrize("cls", [cr.optim.Adam, cr.optim.AdamW])
def test_bad_betas(cls, betas):
    with pytest.raises(ValueError, match="betas"):
        cls([cr.tensor([1.0], requires_grad=True)], betas=betas)


def test_bad_sgd_and_adam_hyperparameters():
    w = cr.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="[Nn]esterov"):
        cr.optim.SGD([w], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="[Nn]esterov"):
        cr.optim.SGD([w], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(ValueError, match="momentum"):
        cr.optim.SGD([w], lr=0.1, momentum=-0.5)
    with pytest.raises(ValueError, match="weight_decay"):
        cr.optim.SGD([w], lr=0.1, weight_decay=-1.0)
    with pytest.raises(ValueError, match="eps"):
        cr.optim.Adam([w], eps=-1e-8)
    with pytest.raises(ValueError, match="weight_decay"):
        cr.optim.AdamW([w], weight_decay=-0.01)


# -- training end to end -----------------------------------------------------------------
def test_sgd_momentum_trains_a_small_regression_to_the_least_squares_solution():
    x = RNG.normal(size=(64, 3))
    true_w = np.array([[1.5, -2.0, 0.5]])
    y = x @ true_w.T + 0.25
    layer = cr.nn.Linear(3, 1, rng=0)
    opt = cr.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    xt, yt = cr.tensor(x), cr.tensor(y)
    for _ in range(500):
        opt.zero_grad()
        F.mse_loss(layer(xt), yt).backward()
        opt.step()
    np.testing.assert_allclose(_np(layer.weight), true_w, atol=1e-6)
    np.testing.assert_allclose(_np(layer.bias), [0.25], atol=1e-6)


_CONFIGS = [
    (cr.optim.SGD, dict(lr=0.05)),
    (cr.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    (cr.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    (cr.optim.Adam, dict(lr=0.01)),
    (cr.optim.Adam, dict(lr=0.01, weight_decay=0.1)),
    (cr.optim.AdamW, dict(lr=0.01)),
    (cr.optim.RMSprop, dict(lr=0.01, momentum=0.9, centered=True)),
    (cr.optim.RMSprop, dict(lr=0.01, weight_decay=0.1)),
    (cr.optim.Adagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=0.1)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt_cls,kw", _CONFIGS)
def test_in_place_update_is_bit_identical_to_out_of_place(opt_cls, kw, dtype):
    # a read-only parameter array forces the out-of-place path; a writeable one the in-place
    # path with its scratch buffer: the same arithmetic, so the same bits, every step
    def run(writeable):
        w = cr.tensor(P0.astype(dtype), requires_grad=True)
        start = w.data
        start.flags.writeable = writeable
        opt = opt_cls([w], **kw)
        seen = []
        for _ in range(STEPS):
            opt.zero_grad()
            cr.sum(
                0.5 * cr.tensor(D.astype(dtype)) * (w - cr.tensor(C.astype(dtype))) ** 2
            ).backward()
            opt.step()
            seen.append(_np(w).copy())
        return seen, w, start

    fast, w_fast, start_fast = run(True)
    slow, w_slow, start_slow = run(False)
    for a, b in zip(fast, slow):
        assert a.dtype == np.dtype(dtype) and a.tobytes() == b.tobytes()
    assert w_fast.data is start_fast  # written into the parameter's own array
    assert w_slow.data is not start_slow and np.array_equal(start_slow, P0.astype(dtype))


@pytest.mark.parametrize("opt_cls,kw", _CONFIGS)
def test_a_parameter_made_read_only_between_steps_is_updated_out_of_place(opt_cls, kw):
    # the in-place path (and its scratch buffer) exists after the first steps; once the
    # parameter's array turns read-only, NumPy refuses the write and the step goes out of
    # place, with the same bits as a run that was out of place throughout
    def run(lock_after):
        w = cr.tensor(P0.copy(), requires_grad=True)
        if lock_after == 0:
            w.data.flags.writeable = False
        opt = opt_cls([w], **kw)
        for step in range(STEPS):
            if step == lock_after:
                locked = w.data
                locked.flags.writeable = False
            opt.zero_grad()
            cr.sum(0.5 * cr.tensor(D) * (w - cr.tensor(C)) ** 2).backward()
            opt.step()
        return w, locked

    w, locked = run(2)
    reference, _ = run(0)
    assert w.data is not locked  # replaced, not written into
    assert _np(w).tobytes() == _np(reference).tobytes()


@pytest.mark.parametrize("opt_cls,kw", _CONFIGS)
def test_parameters_of_many_shapes_and_dtypes_share_one_scratch_buffer_per_dtype(opt_cls, kw):
    # every parameter's update uses the same scratch buffer (of its dtype) in turn: each must
    # come out exactly as when it is optimized alone on the out-of-place path
    shapes = [(7, 3), (3,), (40, 7), (1,), (2, 2, 5)]
    dtypes = ["float64", "float32", "float32", "float64", "float32"]
    init = [RNG.normal(size=s).astype(d) for s, d in zip(shapes, dtypes)]
    grads = [[RNG.normal(size=s).astype(d) for s, d in zip(shapes, dtypes)] for _ in range(4)]

    def run(which, writeable):
        params = [cr.tensor(init[i].copy(), requires_grad=True) for i in which]
        for p in params:
            p.data.flags.writeable = writeable
        opt = opt_cls(params, **kw)
        for step in grads:
            for p, i in zip(params, which):
                p.grad = cr.tensor(step[i])
            opt.step()
        return [_np(p).copy() for p in params], opt

    together, opt = run(range(len(init)), True)
    for i, v in enumerate(init):
        (alone,), _ = run([i], False)
        assert together[i].dtype == v.dtype and together[i].tobytes() == alone.tobytes()
    # one buffer per dtype, as large as the largest parameter of that dtype; none for plain
    # SGD with the one-pass kernel (chainrule/optim/_fused.c), which needs no temporary
    plain = opt_cls is cr.optim.SGD and not opt.momentum and not opt.weight_decay
    if plain and cr.optim.optimizers._sgd_update is not None:
        assert opt._flat == {}
    else:
        assert {str(d): b.size for d, b in opt._flat.items()} == {"float64": 21, "float32": 280}


def test_a_step_allocates_no_parameter_sized_array():
    import tracemalloc

    w = cr.tensor(RNG.normal(size=(500, 500)), requires_grad=True)  # 2 MB
    opt = cr.optim.Adam([w], lr=0.01)
    for _ in range(2):  # the first steps make the buffers and the scratch array
        w.grad = cr.tensor(RNG.normal(size=(500, 500)))
        opt.step()
    tracemalloc.start()
    opt.step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 100_000, peak


def test_state_dict_is_a_snapshot_the_next_step_does_not_change():
    w = cr.tensor(P0.copy(), requires_grad=True)
    opt = cr.optim.SGD([w], lr=0.1, momentum=0.9)
    for _ in range(2):
        opt.zero_grad()
        _loss(w).backward()
        opt.step()
    saved = opt.state_dict()
    kept = saved["state"]["0.momentum_buffer"].copy()
    opt.zero_grad()
    _loss(w).backward()
    opt.step()
    assert np.array_equal(saved["state"]["0.momentum_buffer"], kept)
    other = cr.optim.SGD([cr.tensor(P0.copy(), requires_grad=True)], lr=0.1, momentum=0.9)
    other.load_state_dict(saved)
    other.params[0].grad = cr.tensor(np.ones_like(P0))
    other.step()
    assert np.array_equal(saved["state"]["0.momentum_buffer"], kept)


@pytest.mark.parametrize(
    "base,kw",
    [
        (cr.optim.SGD, dict(lr=0.1)),
        (cr.optim.SGD, dict(lr=0.1, momentum=0.9)),
        (cr.optim.Adam, dict(lr=0.1)),
        (cr.optim.AdamW, dict(lr=0.1)),
    ],
)
def test_a_subclass_with_its_own_update_rule_gets_it_every_step(base, kw):
    # the built-in rules may run in one pass in C (optim/_fused.c); a subclass that brings
    # its own _update must have it applied at every step, not the base's. Here: the base
    # rule on the sign of the gradient (its buffers kept as the base keeps them), against the
    # base optimizer given that sign as the gradient
    class OnTheSign(base):
        def _update(self, p, g, state, tmp):
            return super()._update(p, np.sign(g), state, tmp)

    w = cr.tensor(P0.copy(), requires_grad=True)
    ref = cr.tensor(P0.copy(), requires_grad=True)
    opt, ref_opt = OnTheSign([w], **kw), base([ref], **kw)
    for _ in range(4):
        opt.zero_grad()
        _loss(w).backward()
        opt.step()
        ref.grad = cr.tensor(np.sign(_grad_ref(_np(ref))))
        ref_opt.step()
        assert _np(w).tobytes() == _np(ref).tobytes()
    assert not np.array_equal(_np(w), P0)


# -- RMSprop / Adagrad -------------------------------------------------------------------
def _rmsprop_ref(
    lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, steps=STEPS
):
    p = P0.copy()
    v, a, b = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for _ in range(steps):
        g = _grad_ref(p)
        if weight_decay != 0:
            g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        if centered:
            a = alpha * a + (1 - alpha) * g
            avg = np.sqrt(v - a * a) + eps
        else:
            avg = np.sqrt(v) + eps
        if momentum > 0:
            b = momentum * b + g / avg
            p = p - lr * b
        else:
            p = p - lr * g / avg
    return p


def _adagrad_ref(
    lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, steps=STEPS
):
    p = P0.copy()
    s = np.full_like(p, initial_accumulator_value)
    for t in range(1, steps + 1):
        g = _grad_ref(p)
        if weight_decay != 0:
            g = g + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (np.sqrt(s) + eps)
    return p


def _close12(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(lr=0.01, alpha=0.9),
        dict(lr=0.01, momentum=0.9),
        dict(lr=0.01, alpha=0.8, centered=True),
        dict(lr=0.005, momentum=0.7, centered=True, weight_decay=0.1),
        dict(lr=0.02, eps=1e-3, weight_decay=0.3),
    ],
    ids=["defaults", "alpha", "momentum", "centered", "all", "eps+wd"],
)
def test_rmsprop_against_pytorch_rule(kw):
    _close12(_run(cr.optim.RMSprop, **kw), _rmsprop_ref(**kw))


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(lr=0.5, lr_decay=0.1),
        dict(lr=0.1, weight_decay=0.2),
        dict(lr=0.3, initial_accumulator_value=0.5),
        dict(lr=0.1, eps=1e-2, lr_decay=0.01, weight_decay=0.05, initial_accumulator_value=0.1),
    ],
    ids=["defaults", "lr_decay", "wd", "initial", "all"],
)
def test_adagrad_against_pytorch_rule(kw):
    _close12(_run(cr.optim.Adagrad, **kw), _adagrad_ref(**kw))


def test_rmsprop_and_adagrad_defaults_match_pytorch():
    w = cr.tensor([1.0], requires_grad=True)
    r = cr.optim.RMSprop([w])
    assert (r.lr, r.alpha, r.eps, r.weight_decay, r.momentum, r.centered) == (
        0.01,
        0.99,
        1e-8,
        0.0,
        0.0,
        False,
    )
    a = cr.optim.Adagrad([w])
    assert (a.lr, a.lr_decay, a.weight_decay, a.initial_accumulator_value, a.eps) == (
        0.01,
        0.0,
        0.0,
        0.0,
        1e-10,
    )


def test_rmsprop_first_step_by_hand():
    # v = (1 - alpha) g^2 = 0.04 g^2: the step is lr g / (0.2 |g| + eps) = 5 lr sign(g)
    w = cr.tensor([0.0, 0.0], requires_grad=True)
    opt = cr.optim.RMSprop([w], lr=0.01, alpha=0.96, eps=1e-300)
    w.grad = cr.tensor([3.0, -0.25])
    opt.step()
    np.testing.assert_allclose(_np(w), [-0.05, 0.05], rtol=1e-12)
    assert sorted(opt.state[0]) == ["square_avg", "step"]  # no buffers it does not use


def test_adagrad_lr_decay_by_hand():
    # constant gradient 1: s = t, the step at t is lr / (1 + (t-1) decay) / sqrt(t)
    w = cr.tensor([0.0], requires_grad=True)
    opt = cr.optim.Adagrad([w], lr=1.0, lr_decay=0.5, eps=0.0 + 1e-300)
    for _ in range(3):
        w.grad = cr.tensor([1.0])
        opt.step()
    expected = -(1 / 1 / 1 + 1 / 1.5 / math.sqrt(2) + 1 / 2 / math.sqrt(3))
    assert float(w) == pytest.approx(expected, rel=1e-14)
    assert opt.state[0]["step"] == 3


def test_rmsprop_momentum_switched_on_later_starts_from_zero():
    # a buffer the state does not have yet is zero, so switching momentum (or centered) on
    # mid-run gives PyTorch's first-step values, not an error
    w = cr.tensor(P0.copy(), requires_grad=True)
    opt = cr.optim.RMSprop([w], lr=0.01)
    for _ in range(2):
        opt.zero_grad()
        _loss(w).backward()
        opt.step()
    opt.momentum, opt.centered = 0.9, True
    opt.zero_grad()
    _loss(w).backward()
    v = opt.state[0]["square_avg"].copy()
    g = _grad_ref(_np(w))
    before = _np(w).copy()
    opt.step()
    v = 0.99 * v + 0.01 * g * g
    a = 0.01 * g
    _close12(_np(w), before - 0.01 * g / (np.sqrt(v - a * a) + 1e-8))
    assert sorted(opt.state[0]) == ["grad_avg", "momentum_buffer", "square_avg", "step"]


# -- parameter groups --------------------------------------------------------------------
_GROUP_CASES = [
    (cr.optim.SGD, _sgd_ref, dict(lr=0.05, momentum=0.9), dict(momentum=0.5, nesterov=True)),
    (cr.optim.SGD, _sgd_ref, dict(lr=0.05), dict(lr=0.1, weight_decay=0.2)),
    (cr.optim.Adam, _adam_ref, dict(lr=0.01), dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6)),
    (cr.optim.RMSprop, _rmsprop_ref, dict(lr=0.01), dict(lr=0.003, momentum=0.9, centered=True)),
    (cr.optim.Adagrad, _adagrad_ref, dict(lr=0.1), dict(lr=0.5, lr_decay=0.1)),
]


@pytest.mark.parametrize(
    "cls,ref,kw,group_kw", _GROUP_CASES, ids=["SGD", "SGD-plain", "Adam", "RMSprop", "Adagrad"]
)
def test_each_param_group_follows_its_own_hyperparameters(cls, ref, kw, group_kw):
    # two groups in one optimizer: each moves as the PyTorch rule with its own settings, and
    # bit for bit as an optimizer holding that group alone
    a = cr.tensor(P0.copy(), requires_grad=True)
    b = cr.tensor(P0.copy(), requires_grad=True)
    opt = cls([{"params": [a]}, {"params": b, **group_kw}], **kw)
    alone_a = cr.tensor(P0.copy(), requires_grad=True)
    alone_b = cr.tensor(P0.copy(), requires_grad=True)
    opt_a, opt_b = cls([alone_a], **kw), cls([alone_b], **{**kw, **group_kw})
    for _ in range(STEPS):
        for o in (opt, opt_a, opt_b):
            o.zero_grad()
        (_loss(a) + _loss(b) + _loss(alone_a) + _loss(alone_b)).backward()
        for o in (opt, opt_a, opt_b):
            o.step()
    assert _np(a).tobytes() == _np(alone_a).tobytes()
    assert _np(b).tobytes() == _np(alone_b).tobytes()
    _close12(_np(a), ref(**kw))
    _close12(_np(b), ref(**{**kw, **group_kw}))
    assert not np.array_equal(_np(a), _np(b))


def test_param_groups_hold_every_hyperparameter_with_defaults_filled_in():
    a, b = cr.tensor([1.0], requires_grad=True), cr.tensor([2.0], requires_grad=True)
    opt = cr.optim.Adam([{"params": [a], "lr": 0.5}, {"params": [b], "betas": [0.5, 0.6]}])
    assert opt.param_groups == [
        {"params": [a], "lr": 0.5, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
        {"params": [b], "lr": 1e-3, "betas": (0.5, 0.6), "eps": 1e-8, "weight_decay": 0.0},
    ]
    assert opt.params == [a, b] and opt.state == [{}, {}]
    assert opt.defaults == {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}


def test_lr_attribute_reads_and_writes_the_groups():
    a, b = cr.tensor([0.0], requires_grad=True), cr.tensor([0.0], requires_grad=True)
    opt = cr.optim.SGD([a], lr=0.1)
    opt.lr = 0.25
    assert opt.param_groups[0]["lr"] == 0.25 and opt.lr == 0.25
    a.grad = cr.tensor([1.0])
    opt.step()
    assert float(a) == -0.25  # the step used the rate set through the attribute
    two = cr.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    with pytest.raises(ValueError, match=r"different values \[0.1, 0.5\].*param_groups\[i\]"):
        _ = two.lr
    two.lr = 0.3  # setting sets every group
    assert [g["lr"] for g in two.param_groups] == [0.3, 0.3] and two.lr == 0.3
    with pytest.raises(ValueError, match="learning rate"):
        two.lr = -1.0
    assert [g["lr"] for g in two.param_groups] == [0.3, 0.3]  # a refused value changes nothing
    two.momentum = 0.9
    assert [g["momentum"] for g in two.param_groups] == [0.9, 0.9]
    two.param_groups[0]["nesterov"] = True  # groups are plain dicts, as in PyTorch
    with pytest.raises(ValueError, match="param group 0: Nesterov momentum needs momentum > 0"):
        two.momentum = 0.0  # every group is checked before any is changed
    assert [g["momentum"] for g in two.param_groups] == [0.9, 0.9]


def test_add_param_group():
    a, b = cr.tensor([1.0], requires_grad=True), cr.tensor([1.0, 1.0], requires_grad=True)
    opt = cr.optim.SGD([a], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": [b], "lr": 0.5})
    assert opt.param_groups[1] == {
        "params": [b],
        "lr": 0.5,
        "momentum": 0.9,
        "dampening": 0.0,
        "nesterov": False,
        "weight_decay": 0.0,
    }
    assert opt.params == [a, b] and len(opt.state) == 2
    a.grad, b.grad = cr.tensor([1.0]), cr.tensor([1.0, 2.0])
    opt.step()
    assert a.tolist() == [0.9] and b.tolist() == [0.5, 0.0]
    # refused groups change nothing
    bad = [
        ({"params": [a]}, "appears more than once.*param group 0"),
        ({"params": [cr.tensor([1.0], requires_grad=True)], "lr": float("nan")}, "param group 2"),
        ({"params": [cr.tensor([1.0], requires_grad=True)], "betas": (0.9, 0.99)}, "'betas'"),
        ({"lr": 0.1}, "no 'params'"),
        ([cr.tensor([1.0], requires_grad=True)], "must be a dict"),
    ]
    for group, match in bad:
        with pytest.raises((ValueError, TypeError), match=match):
            opt.add_param_group(group)
    assert len(opt.param_groups) == 2 and opt.params == [a, b] and len(opt.state) == 2


@pytest.mark.parametrize(
    "params,error,match",
    [
        ("mixed", TypeError, "mixes Tensors and dicts"),
        ("dict", TypeError, "list .* of Tensors or of dicts .*got a dict"),
        ("number", TypeError, "got a float"),
        ("tensor", TypeError, r"one Tensor.*pass \[tensor\]"),
        ("twice", ValueError, r"param group 1: parameter 0 .*already in param group 0"),
        ("unknown", ValueError, r"param group 0 has unknown key 'betas'.*'momentum'"),
        ("non-leaf", ValueError, r"param group 1: parameter 0 .*not a leaf"),
        ("empty groups", ValueError, "no parameters"),
        ("params not a list", TypeError, "'params' must be a Tensor or a list"),
    ],
)
def test_bad_param_groups(params, error, match):
    a = cr.tensor([1.0], requires_grad=True)
    made = {
        "mixed": lambda: [a, {"params": [cr.tensor([2.0], requires_grad=True)]}],
        "dict": lambda: {"w": a},
        "number": lambda: 0.5,
        "tensor": lambda: a,
        "twice": lambda: [{"params": [a]}, {"params": [a]}],
        "unknown": lambda: [{"params": [a], "betas": (0.9, 0.99)}],
        "non-leaf": lambda: [{"params": [a]}, {"params": [a * 2]}],
        "empty groups": lambda: [{"params": []}, {"params": []}],
        "params not a list": lambda: [{"params": 3.0}],
    }[params]()
    with pytest.raises(error, match=match):
        cr.optim.SGD(made, lr=0.1)


def test_an_empty_group_beside_others_is_allowed():
    a = cr.tensor([1.0], requires_grad=True)
    opt = cr.optim.Adam([{"params": []}, {"params": [a], "lr": 0.1}])
    a.grad = cr.tensor([1.0])
    opt.step()
    assert float(a) == pytest.approx(0.9, rel=1e-7)


def test_plain_sgd_with_one_group_keeps_the_one_pass_kernel():
    # the fast path of plain SGD (optim/_fused.c, no scratch array) is still taken with one
    # group; with two, the general loop gives the same bits (without the compiled kernels,
    # as on a machine with no C compiler, the NumPy lines give them too)
    compiled = cr.optim.optimizers._sgd_update is not None
    ws = [cr.tensor(P0.copy(), requires_grad=True) for _ in range(3)]
    one = cr.optim.SGD([ws[0]], lr=0.1)
    two = cr.optim.SGD([{"params": [ws[1]]}, {"params": [ws[2]]}], lr=0.1)
    for _ in range(3):
        for w in ws:
            w.grad = cr.tensor(_grad_ref(_np(w)))
        one.step()
        two.step()
    if compiled:
        assert one._flat == {} and two._flat == {}  # neither needed NumPy's scratch array
    assert _np(ws[0]).tobytes() == _np(ws[1]).tobytes() == _np(ws[2]).tobytes()
    _close(_np(ws[0]), _sgd_ref(lr=0.1, steps=3))


# -- frozen parameters -------------------------------------------------------------------
@pytest.mark.parametrize("make", OPTIMIZERS, ids=NAMES)
def test_frozen_parameters_are_skipped_until_unfrozen(make):
    net = cr.nn.MLP([3, 4, 2], rng=0)
    net[0].weight.requires_grad = False  # freeze the first layer's weight
    frozen = _np(net[0].weight).copy()
    opt = make(net.parameters(), lr=0.1)
    x = cr.tensor(RNG.normal(size=(5, 3)))
    y = np.array([0, 1, 0, 1, 1])
    F.cross_entropy(net(x), y).backward()
    assert net[0].weight.grad is None  # backward does not reach it
    net[0].weight._grad = cr.tensor(np.ones((4, 3)))  # nor does step, even with a gradient
    moved = _np(net[0].bias).copy()
    opt.step()
    assert np.array_equal(_np(net[0].weight), frozen) and opt.state[0] == {}
    assert not np.array_equal(_np(net[0].bias), moved)
    net[0].weight.requires_grad = True  # unfrozen: the next step moves it
    opt.zero_grad()
    F.cross_entropy(net(x), y).backward()
    opt.step()
    assert not np.array_equal(_np(net[0].weight), frozen)


# -- flat state_dict ---------------------------------------------------------------------
def _two_group_run(cls, kw, group_kw, steps=3):
    a = cr.tensor(P0.copy(), requires_grad=True)
    b = cr.tensor(P0[:2].astype("float32"), requires_grad=True)
    c = cr.tensor(P0[0].copy(), requires_grad=True)
    opt = cls([{"params": [a, b]}, {"params": [c], **group_kw}], **kw)
    for _ in range(steps):
        opt.zero_grad()
        (_loss(a) + cr.sum(b * b) + cr.sum(c * c * c)).backward()
        opt.step()
    return opt, (a, b, c)


_STATE_CASES = [
    (cr.optim.SGD, dict(lr=0.05, momentum=0.9), dict(lr=0.01), ["momentum_buffer"]),
    (cr.optim.Adam, dict(lr=0.01), dict(betas=(0.5, 0.9)), ["exp_avg", "exp_avg_sq", "step"]),
    (cr.optim.AdamW, dict(lr=0.01), dict(weight_decay=0.5), ["exp_avg", "exp_avg_sq", "step"]),
    (
        cr.optim.RMSprop,
        dict(lr=0.01, momentum=0.5, centered=True),
        dict(alpha=0.5),
        ["grad_avg", "momentum_buffer", "square_avg", "step"],
    ),
    (cr.optim.Adagrad, dict(lr=0.1), dict(lr_decay=0.1), ["step", "sum"]),
]


@pytest.mark.parametrize("cls,kw,group_kw,names", _STATE_CASES, ids=NAMES)
def test_state_dict_is_flat_arrays_beside_json(cls, kw, group_kw, names, tmp_path):
    opt, params = _two_group_run(cls, kw, group_kw)
    sd = opt.state_dict()
    assert sorted(sd) == ["param_groups", "state", "steps", "type"]
    assert sorted(sd["state"]) == sorted(f"{i}.{n}" for i in range(3) for n in names)
    for key, value in sd["state"].items():
        assert type(value) is np.ndarray, key
        if key.endswith(".step"):
            assert value.shape == () and value.dtype == np.int64 and int(value) == 3
        else:
            p = params[int(key.split(".")[0])]
            assert value.shape == p.shape and value.dtype == p.dtype, key
    meta = {k: v for k, v in sd.items() if k != "state"}
    assert json.loads(json.dumps(meta)) == meta  # plain JSON, nothing lost
    assert meta["type"] == cls.__name__ and meta["steps"] == 3
    assert [g["params"] for g in meta["param_groups"]] == [[0, 1], [2]]
    # written by cr.save (safetensors) and read back into fresh objects: the same next steps
    path = cr.save(sd["state"], tmp_path / "opt.safetensors", {"opt": json.dumps(meta)})
    loaded = {**json.loads(cr.io.load_metadata(path)["opt"]), "state": cr.load(path)}
    fresh = [cr.tensor(_np(p).copy(), requires_grad=True) for p in params]
    opt2 = cls([{"params": fresh[:2]}, {"params": fresh[2:]}], lr=123.0)
    opt2.load_state_dict(loaded)
    assert opt2.param_groups[1]["lr"] == opt.param_groups[1]["lr"] and opt2.steps == 3
    for o, ps in ((opt, params), (opt2, fresh)):
        for _ in range(3):
            o.zero_grad()
            (_loss(ps[0]) + cr.sum(ps[1] * ps[1]) + cr.sum(ps[2] * ps[2] * ps[2])).backward()
            o.step()
    for p, q in zip(params, fresh):
        assert _np(p).tobytes() == _np(q).tobytes()


def _adam_three():
    opt, params = _two_group_run(cr.optim.Adam, dict(lr=0.01), dict(lr=0.5))
    return opt, params


def _frozen(opt):
    """Everything an optimizer holds, as bytes, to show that nothing changed."""
    sd = opt.state_dict()
    return (
        json.dumps({k: v for k, v in sd.items() if k != "state"}),
        {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in sd["state"].items()},
    )


def test_load_state_dict_lists_every_problem_and_changes_nothing():
    opt, _ = _adam_three()
    good = opt.state_dict()
    before = _frozen(opt)
    bad = {
        **good,
        "state": dict(good["state"]),
        "param_groups": [dict(g) for g in good["param_groups"]],
    }
    st = bad["state"]
    st["0.exp_avg"] = np.zeros((2, 2))  # wrong shape
    st["1.exp_avg_sq"] = st["1.exp_avg_sq"].astype("float64")  # wrong dtype
    st["2.momentum_buffer"] = np.zeros(4)  # Adam keeps none
    st["7.step"] = np.array(1)  # no parameter 7
    st["weights"] = np.zeros(1)  # not "<i>.<name>"
    st["2.step"] = np.array(-1)  # a negative count
    st["1.step"] = np.array(2.5)  # not an integer
    st["0.exp_avg_sq"] = [1.0, 2.0]  # not an array
    bad["param_groups"][0]["lr"] = -0.5
    bad["param_groups"][1]["amsgrad"] = True
    bad["param_groups"][1]["betas"] = [0.9, 1.5]
    with pytest.raises(ValueError) as info:
        opt.load_state_dict(bad)
    msg = str(info.value)
    assert msg.startswith("Adam.load_state_dict") and "nothing was changed" in msg
    for needle in [
        "'0.exp_avg': shape (2, 2), but parameter 0 has shape (3, 4)",
        "'1.exp_avg_sq': dtype float64, but parameter 1 has dtype float32",
        "'2.momentum_buffer': Adam keeps no 'momentum_buffer'",
        "'7.step': there is no parameter 7 (Adam has 3)",
        "'weights' is not '<parameter index>.<name>'",
        "'2.step' must be a step count",
        "'1.step' must be a step count",
        "'0.exp_avg_sq' is a list",
        "param_groups[0]['lr'] (the learning rate) must be a finite number >= 0, got -0.5",
        "param_groups[1] has unknown key 'amsgrad'",
        "param_groups[1]['betas'][1] must be a finite number >= 0 and < 1, got 1.5",
    ]:
        assert needle in msg, (needle, msg)
    assert "(11 problems)" in msg
    assert _frozen(opt) == before


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda sd: sd.update(type="SGD"), "the state is for 'SGD', not 'Adam'"),
        (lambda sd: sd.pop("steps"), "missing key 'steps'"),
        (lambda sd: sd.update(extra=1), "unexpected key 'extra'"),
        (lambda sd: sd.update(steps=-2), "'steps' must be an integer >= 0, got -2"),
        (lambda sd: sd.update(param_groups=sd["param_groups"][:1]), "has 1 group, Adam has 2"),
        (
            lambda sd: sd["param_groups"][0].update(params=[0]),
            r"param_groups\[0\] has 1 parameters, Adam's group 0 has 2",
        ),
        (
            lambda sd: sd["param_groups"][0].update(params=[1, 0]),
            r"must be the parameter indices \[0, 1\], got \[1, 0\]",
        ),
        (lambda sd: sd["param_groups"][1].pop("eps"), r"param_groups\[1\] has no 'eps'"),
        (
            lambda sd: sd["state"].pop("1.exp_avg_sq"),
            r"parameter 1 has \['exp_avg', 'step'\] but not \['exp_avg_sq'\]",
        ),
        (lambda sd: sd.update(state=[1, 2]), "'state' must be a dict"),
        (lambda sd: sd.update(param_groups="all"), "'param_groups' must be a list of dicts"),
    ],
)
def test_load_state_dict_refusals(change, match):
    opt, _ = _adam_three()
    sd = opt.state_dict()
    sd["param_groups"] = [dict(g) for g in sd["param_groups"]]
    before = _frozen(opt)
    change(sd)
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(sd)
    assert _frozen(opt) == before
    with pytest.raises(ValueError, match="not the dict state_dict"):
        opt.load_state_dict([1, 2, 3])


def test_load_state_dict_takes_tensors_and_keeps_its_own_copies():
    opt, params = _two_group_run(cr.optim.SGD, dict(lr=0.1, momentum=0.9), {})
    sd = opt.state_dict()
    sd["state"] = {k: cr.tensor(v) for k, v in sd["state"].items()}
    other = cr.optim.SGD([{"params": list(params[:2])}, {"params": [params[2]]}], momentum=0.9)
    other.load_state_dict(sd)
    buf = other.state[0]["momentum_buffer"]
    assert buf.flags.c_contiguous and buf.flags.writeable and buf.flags.owndata
    assert not np.shares_memory(buf, sd["state"]["0.momentum_buffer"].data)


# -- argument checks ---------------------------------------------------------------------
_BAD_ARGS = [
    (cr.optim.SGD, dict(lr=-0.1), "lr", "-0.1"),
    (cr.optim.SGD, dict(lr=float("nan")), "lr", "nan"),
    (cr.optim.SGD, dict(lr="0.1"), "lr", "'0.1'"),
    (cr.optim.SGD, dict(lr=True), "lr", "True"),
    (cr.optim.SGD, dict(momentum=-1), "momentum", "-1"),
    (cr.optim.SGD, dict(weight_decay=float("inf")), "weight_decay", "inf"),
    (cr.optim.SGD, dict(dampening=float("nan")), "dampening", "nan"),
    (cr.optim.SGD, dict(momentum=0.9, nesterov=1), "nesterov", "1"),
    (cr.optim.Adam, dict(betas=(0.9, 1.0)), "betas", "1.0"),
    (cr.optim.Adam, dict(betas=(-0.1, 0.9)), "betas", "-0.1"),
    (cr.optim.Adam, dict(betas=0.9), "betas", "0.9"),
    (cr.optim.Adam, dict(eps=0.0), "eps", "0.0"),
    (cr.optim.AdamW, dict(eps=-1e-8), "eps", "-1e-08"),
    (cr.optim.AdamW, dict(weight_decay=-0.01), "weight_decay", "-0.01"),
    (cr.optim.RMSprop, dict(alpha=1.5), "alpha", "1.5"),
    (cr.optim.RMSprop, dict(eps=0), "eps", "0"),
    (cr.optim.RMSprop, dict(momentum=-0.1), "momentum", "-0.1"),
    (cr.optim.RMSprop, dict(centered="yes"), "centered", "'yes'"),
    (cr.optim.Adagrad, dict(lr_decay=-1), "lr_decay", "-1"),
    (cr.optim.Adagrad, dict(initial_accumulator_value=-0.5), "initial_accumulator_value", "-0.5"),
    (cr.optim.Adagrad, dict(eps=0.0), "eps", "0.0"),
    (cr.optim.Adagrad, dict(weight_decay=float("nan")), "weight_decay", "nan"),
]


@pytest.mark.parametrize("in_group", [False, True], ids=["argument", "group"])
@pytest.mark.parametrize(
    "cls,kw,arg,shown", _BAD_ARGS, ids=[f"{c.__name__}-{a}-{v}" for c, _, a, v in _BAD_ARGS]
)
def test_bad_hyperparameters_are_named(cls, kw, arg, shown, in_group):
    # the error names the optimizer, the argument (and the group) and the value given
    w = cr.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError) as info:
        if in_group:
            cls([{"params": [w], **kw}])
        else:
            cls([w], **kw)
    msg = str(info.value)
    assert msg.startswith(cls.__name__ + ":"), msg
    assert arg in msg and f"got {shown}" in msg, msg
    assert ("param group 0" in msg) == in_group, msg


# -- gradient clipping -------------------------------------------------------------------
def _with_grads(*grads):
    ps = []
    for g in grads:
        p = cr.tensor(np.zeros(np.shape(g)), requires_grad=True)
        p.grad = cr.tensor(np.array(g, dtype=float))
        ps.append(p)
    return ps


@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.0, 0.5, float("inf")])
def test_clip_grad_norm_scales_all_gradients_together(norm_type):
    from chainrule.nn.utils import clip_grad_norm_

    grads = [RNG.normal(size=(3, 4)) * 5, RNG.normal(size=(7,)) * 5]
    ps = _with_grads(*grads)
    every = np.concatenate([g.ravel() for g in grads])
    if norm_type == float("inf"):
        expected = np.abs(every).max()
    else:
        expected = np.sum(np.abs(every) ** norm_type) ** (1 / norm_type)
    total = clip_grad_norm_(ps, max_norm=1.0, norm_type=norm_type)
    assert isinstance(total, cr.Tensor) and float(total) == pytest.approx(expected, rel=1e-13)
    coef = 1.0 / (expected + 1e-6)
    for p, g in zip(ps, grads):
        np.testing.assert_allclose(_np(p.grad), g * coef, rtol=1e-13)
    again = clip_grad_norm_(ps, max_norm=1.0, norm_type=norm_type)
    assert float(again) == pytest.approx(1.0, rel=1e-5)  # now within the bound


def test_clip_grad_norm_leaves_small_gradients_and_skips_missing_ones():
    from chainrule.nn.utils import clip_grad_norm_

    a, b = _with_grads([3.0, 4.0], [0.0])
    none = cr.tensor([1.0], requires_grad=True)  # no gradient: skipped
    ga = a.grad
    total = clip_grad_norm_(iter([a, b, none]), max_norm=5.5)
    assert float(total) == 5.0 and a.grad is ga and none.grad is None
    assert float(clip_grad_norm_([none], 1.0)) == 0.0
    assert float(clip_grad_norm_(a, max_norm=float("inf"))) == 5.0  # measure only
    assert a.grad.tolist() == [3.0, 4.0]


def test_clip_grad_norm_hostile_values():
    from chainrule.nn.utils import clip_grad_norm_

    # huge gradients: |g|^2 would overflow float64, the norm does not
    (big,) = _with_grads([3e200, 4e200])
    assert float(clip_grad_norm_([big], 1.0)) == pytest.approx(5e200, rel=1e-14)
    np.testing.assert_allclose(_np(big.grad), [0.6, 0.8], rtol=1e-12)
    # a gradient shared by two parameters is scaled once, not twice
    shared = cr.tensor([3.0, 4.0])
    a, b = cr.tensor([0.0, 0.0], requires_grad=True), cr.tensor([0.0, 0.0], requires_grad=True)
    a.grad = b.grad = shared
    clip_grad_norm_([a, b], 1.0)
    assert shared.tolist() == [3.0, 4.0]
    np.testing.assert_allclose(_np(a.grad), np.array([3, 4]) / (50**0.5 + 1e-6), rtol=1e-13)
    # float32 gradients stay float32
    f32 = cr.tensor(np.zeros(2, "float32"), requires_grad=True)
    f32.grad = cr.tensor(np.array([30.0, 40.0], "float32"))
    clip_grad_norm_([f32], 5.0)
    assert f32.grad.dtype == np.float32
    # non-finite: refused with nothing changed, or (PyTorch's default) scaled into NaN
    p, q = _with_grads([1.0, np.nan], [2.0])
    with pytest.raises(RuntimeError, match="non-finite|nan"):
        clip_grad_norm_([p, q], 1.0, error_if_nonfinite=True)
    assert q.grad.tolist() == [2.0]
    assert math.isnan(float(clip_grad_norm_([p, q], 1.0)))
    assert np.isnan(_np(q.grad)).all()
    (inf,) = _with_grads([np.inf, 1.0])
    assert float(clip_grad_norm_([inf], 1.0)) == np.inf


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(max_norm=-1.0), "max_norm must be a number >= 0"),
        (dict(max_norm=float("nan")), "max_norm"),
        (dict(max_norm=1.0, norm_type=0), "norm_type must be a number > 0"),
        (dict(max_norm=1.0, norm_type=-2.0), "norm_type"),
        (dict(max_norm=1.0, norm_type="2"), "norm_type"),
    ],
)
def test_clip_grad_norm_bad_arguments(kw, match):
    from chainrule.nn.utils import clip_grad_norm_

    (p,) = _with_grads([3.0, 4.0])
    with pytest.raises(ValueError, match=match):
        clip_grad_norm_([p], **kw)
    assert p.grad.tolist() == [3.0, 4.0]
    with pytest.raises(TypeError, match="parameter 0 is a ndarray"):
        clip_grad_norm_([np.zeros(2)], 1.0)


def test_clip_grad_value():
    from chainrule.nn.utils import clip_grad_value_

    a, b = _with_grads([-5.0, 0.5, np.nan], [[2.0, -0.25]])
    assert clip_grad_value_([a, b], 1.0) is None
    np.testing.assert_array_equal(_np(a.grad), [-1.0, 0.5, np.nan])
    assert b.grad.tolist() == [[1.0, -0.25]]
    clip_grad_value_(a, float("inf"))  # a single Tensor; no bound
    np.testing.assert_array_equal(_np(a.grad), [-1.0, 0.5, np.nan])
    for bad in (-1.0, float("nan"), "1"):
        with pytest.raises(ValueError, match="clip_value"):
            clip_grad_value_([a], bad)


def test_clipping_inside_a_training_step():
    from chainrule.nn.utils import clip_grad_norm_

    w = cr.tensor(P0.copy(), requires_grad=True)
    opt = cr.optim.SGD([w], lr=0.1)
    _loss(w).backward()
    g = _grad_ref(P0)
    total = clip_grad_norm_([w], max_norm=0.5)
    opt.step()
    assert float(total) == pytest.approx(np.linalg.norm(g), rel=1e-13)
    _close(_np(w), P0 - 0.1 * g * 0.5 / (np.linalg.norm(g) + 1e-6))
