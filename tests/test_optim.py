"""cr.optim: SGD (momentum, dampening, Nesterov, weight decay), Adam, AdamW and the schedules,
each against a NumPy reference of PyTorch's update rules written here."""

from __future__ import annotations

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
    ],
    ids=["SGD", "Adam", "AdamW"],
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
    ],
    ids=["SGD", "Adam", "AdamW"],
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
    snapshot = {k: np.array(v, copy=True) for k, v in sd["state"][0].items()}
    saved = _np(w).copy()
    steps(opt, w, 4)
    for k, v in snapshot.items():  # later steps did not reach into the saved state
        np.testing.assert_array_equal(np.asarray(sd["state"][0][k]), v, err_msg=k)
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
        assert sched.get_last_lr() == pytest.approx(expected, rel=1e-15)
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
]


@pytest.mark.parametrize("make", OPTIMIZERS, ids=["SGD", "Adam", "AdamW"])
def test_no_parameters(make):
    with pytest.raises(ValueError, match="no parameters"):
        make([])
    with pytest.raises(ValueError, match="no parameters"):
        make(cr.nn.ReLU().parameters())  # a module without parameters


@pytest.mark.parametrize("make", OPTIMIZERS, ids=["SGD", "Adam", "AdamW"])
def test_non_leaf_tensor_is_named(make):
    a = cr.tensor([1.0, 2.0], requires_grad=True)
    b = a * 2
    with pytest.raises(ValueError, match="leaf") as info:
        make([a, b])
    msg = str(info.value)
    assert "parameter 1" in msg and "(2,)" in msg and "multiply" in msg


@pytest.mark.parametrize("make", OPTIMIZERS, ids=["SGD", "Adam", "AdamW"])
def test_tensor_without_requires_grad(make):
    with pytest.raises(ValueError, match="requires_grad"):
        make([cr.tensor([1.0, 2.0])])


def test_other_bad_parameter_lists():
    a = cr.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="more than once"):
        cr.optim.SGD([a, a], lr=0.1)
    with pytest.raises(ValueError, match="ndarray"):
        cr.optim.SGD([np.zeros(3)], lr=0.1)


@pytest.mark.parametrize("lr", [-0.1, float("nan"), float("inf"), -1])
@pytest.mark.parametrize("make", OPTIMIZERS, ids=["SGD", "Adam", "AdamW"])
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
    kept = saved["state"][0]["momentum_buffer"].copy()
    opt.zero_grad()
    _loss(w).backward()
    opt.step()
    assert np.array_equal(saved["state"][0]["momentum_buffer"], kept)
    other = cr.optim.SGD([cr.tensor(P0.copy(), requires_grad=True)], lr=0.1, momentum=0.9)
    other.load_state_dict(saved)
    other.params[0].grad = cr.tensor(np.ones_like(P0))
    other.step()
    assert np.array_equal(saved["state"][0]["momentum_buffer"], kept)


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
