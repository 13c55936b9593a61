"""cr.optim's learning-rate schedules: each rate sequence against PyTorch's documented closed
form (written here from the formulas; PyTorch is not needed), over two param groups; the
momentum cycle of OneCycleLR; ReduceLROnPlateau traced by hand; state_dict round trips; and
every argument and loaded state checked."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import chainrule as cr

BASES = [0.1, 0.03]


def _opt(cls=cr.optim.SGD, lrs=BASES, **kw):
    groups = [{"params": [cr.tensor([1.0], requires_grad=True)], "lr": lr} for lr in lrs]
    return cls(groups, **kw)


def _sequence(sched, n):
    """The rates of each epoch 0..n-1, per group, as the optimizer sees them."""
    seen = []
    for _ in range(n):
        lrs = [g["lr"] for g in sched.optimizer.param_groups]
        assert sched.get_last_lr() == lrs
        seen.append(lrs)
        sched.step()
    return seen


def _assert_sequence(got, expected):
    assert len(got) == len(expected)
    for e, (g, x) in enumerate(zip(got, expected)):
        assert g == pytest.approx(x, rel=1e-13, abs=1e-16), f"epoch {e}: {g} != {x}"


# -- closed forms --------------------------------------------------------------------------
def test_step_lr():
    sched = cr.optim.StepLR(_opt(), step_size=3, gamma=0.5)
    expected = [[b * 0.5 ** (e // 3) for b in BASES] for e in range(12)]
    _assert_sequence(_sequence(sched, 12), expected)


def test_multi_step_lr_counts_repeated_milestones_and_sorts_them():
    sched = cr.optim.MultiStepLR(_opt(), milestones=[5, 2, 5], gamma=0.1)
    passed = [sum(m <= e for m in (2, 5, 5)) for e in range(8)]  # bisect_right on sorted
    assert passed == [0, 0, 1, 1, 1, 3, 3, 3]
    expected = [[b * 0.1**k for b in BASES] for k in passed]
    _assert_sequence(_sequence(sched, 8), expected)
    assert sched.milestones == [2, 5, 5]


def test_exponential_lr():
    sched = cr.optim.ExponentialLR(_opt(), gamma=0.9)
    _assert_sequence(_sequence(sched, 10), [[b * 0.9**e for b in BASES] for e in range(10)])


def test_cosine_annealing_over_groups_then_stays_at_eta_min():
    t_max, eta_min = 6, 0.001
    sched = cr.optim.CosineAnnealingLR(_opt(), T_max=t_max, eta_min=eta_min)
    expected = [
        [
            eta_min + (b - eta_min) * (1 + math.cos(math.pi * min(e, t_max) / t_max)) / 2
            for b in BASES
        ]
        for e in range(10)
    ]
    got = _sequence(sched, 10)
    _assert_sequence(got, expected)
    assert got[6:] == [[pytest.approx(eta_min, rel=1e-13)] * 2] * 4  # PyTorch rises again here


def test_linear_lr_warmup():
    sched = cr.optim.LinearLR(_opt(), start_factor=0.2, end_factor=0.8, total_iters=4)
    factors = [0.2 + (0.8 - 0.2) * min(e, 4) / 4 for e in range(7)]
    _assert_sequence(_sequence(sched, 7), [[b * f for b in BASES] for f in factors])
    defaults = cr.optim.LinearLR(_opt(lrs=[0.3]))  # PyTorch's: 1/3 -> 1 over 5 epochs
    assert defaults.get_last_lr() == [pytest.approx(0.1, rel=1e-15)]
    assert [defaults.lr_at(e)[0] for e in (5, 9)] == [pytest.approx(0.3, rel=1e-15)] * 2


def test_the_optimizer_steps_with_the_scheduled_rates():
    a, b = cr.tensor([0.0], requires_grad=True), cr.tensor([0.0], requires_grad=True)
    opt = cr.optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.5)
    sched = cr.optim.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        a.grad, b.grad = cr.tensor([1.0]), cr.tensor([1.0])
        opt.step()
        sched.step()
    assert float(a) == -(0.5 + 0.25 + 0.125) and float(b) == -(1 + 0.5 + 0.25)


# -- OneCycleLR ----------------------------------------------------------------------------
def _one_cycle_ref(
    t,
    max_lr,
    total,
    pct=0.3,
    strategy="cos",
    div=25.0,
    final=1e4,
    three=False,
    base_m=0.85,
    max_m=0.95,
):
    """PyTorch's OneCycleLR.get_lr(), written out: (lr, momentum) at step t."""
    low = max_lr / div
    end = low / final
    if three:
        phases = [
            (pct * total - 1, low, max_lr, max_m, base_m),
            (2 * pct * total - 2, max_lr, low, base_m, max_m),
            (total - 1, low, end, max_m, max_m),
        ]
    else:
        phases = [
            (pct * total - 1, low, max_lr, max_m, base_m),
            (total - 1, max_lr, end, base_m, max_m),
        ]

    def anneal(a, b, x):
        if strategy == "cos":
            return b + (a - b) / 2 * (math.cos(math.pi * x) + 1)
        return (b - a) * x + a

    start = 0
    for i, (stop, lr0, lr1, m0, m1) in enumerate(phases):
        if t <= stop or i == len(phases) - 1:
            x = (t - start) / (stop - start)
            return anneal(lr0, lr1, x), anneal(m0, m1, x)
        start = stop


@pytest.mark.parametrize(
    "kw",
    [
        dict(total_steps=20),
        dict(total_steps=17, anneal_strategy="linear", pct_start=0.25),
        dict(total_steps=30, three_phase=True, div_factor=10.0, final_div_factor=100.0),
        dict(
            epochs=4, steps_per_epoch=5, pct_start=0.5, three_phase=True, anneal_strategy="linear"
        ),
    ],
    ids=["cos", "linear", "three-phase", "epochs"],
)
def test_one_cycle_follows_pytorch_phases_for_lr_and_momentum(kw):
    max_lrs = [1.0, 0.2]
    opt = _opt(lrs=[0.5, 0.5], momentum=0.9)
    sched = cr.optim.OneCycleLR(opt, max_lr=max_lrs, **kw)
    total = kw.get("total_steps") or kw["epochs"] * kw["steps_per_epoch"]
    ref_kw = dict(
        pct=kw.get("pct_start", 0.3),
        strategy=kw.get("anneal_strategy", "cos"),
        div=kw.get("div_factor", 25.0),
        final=kw.get("final_div_factor", 1e4),
        three=kw.get("three_phase", False),
    )
    for t in range(total):
        for g, top in zip(opt.param_groups, max_lrs):
            lr, m = _one_cycle_ref(t, top, total, **ref_kw)
            assert g["lr"] == pytest.approx(lr, rel=1e-13), t
            assert g["momentum"] == pytest.approx(m, rel=1e-13), t
        sched.step()


def test_one_cycle_by_hand():
    # linear, 10 steps, pct 0.3: up from 1/25 to 1 over steps 0..2, down to 1/25/1e4 at step 9
    opt = _opt(lrs=[0.1], momentum=0.9)
    sched = cr.optim.OneCycleLR(opt, max_lr=1.0, total_steps=10, anneal_strategy="linear")
    lrs = _sequence(sched, 10)
    low, end = 0.04, 0.04 / 1e4
    expected = [low, (low + 1) / 2, 1.0] + [1 + (end - 1) * k / 7 for k in range(1, 8)]
    _assert_sequence(lrs, [[x] for x in expected])
    # momentum the other way: max_momentum at both ends, base_momentum at the peak
    assert sched.momentum_at(0) == sched.momentum_at(9) == [pytest.approx(0.95, rel=1e-15)]
    assert sched.momentum_at(2) == [pytest.approx(0.85, rel=1e-15)]


def test_one_cycle_cycles_adam_beta1_and_keeps_beta2():
    opt = _opt(cls=cr.optim.Adam, lrs=[0.1], betas=(0.9, 0.99))
    sched = cr.optim.OneCycleLR(
        opt, max_lr=0.5, total_steps=10, base_momentum=0.8, max_momentum=0.9
    )
    assert opt.param_groups[0]["betas"] == (0.9, 0.99)
    sched.step()
    sched.step()  # the peak: beta1 at base_momentum
    assert opt.param_groups[0]["betas"] == (pytest.approx(0.8), 0.99)
    assert sched.momentum_at(9) == [pytest.approx(0.9)]


def test_one_cycle_refusals():
    opt = _opt(lrs=[0.1], momentum=0.9)
    sched = cr.optim.OneCycleLR(opt, max_lr=1.0, total_steps=4)
    for _ in range(4):  # PyTorch allows total_steps steps after the first rate
        sched.step()
    kept = (sched.last_epoch, sched.get_last_lr(), dict(opt.param_groups[0]))
    with pytest.raises(ValueError, match="step 5 is past total_steps=4"):
        sched.step()
    assert (sched.last_epoch, sched.get_last_lr(), dict(opt.param_groups[0])) == kept
    with pytest.raises(ValueError, match="Adagrad has neither momentum nor betas"):
        cr.optim.OneCycleLR(_opt(cls=cr.optim.Adagrad), max_lr=1.0, total_steps=5)
    cr.optim.OneCycleLR(_opt(cls=cr.optim.Adagrad), max_lr=1.0, total_steps=5, cycle_momentum=False)
    bad = [
        (dict(), "give total_steps"),
        (dict(total_steps=0), "total_steps must be an integer >= 1, got 0"),
        (dict(epochs=2), "give epochs and steps_per_epoch together"),
        (dict(epochs=2, steps_per_epoch=3, total_steps=7), "total_steps=7 but epochs"),
        (dict(total_steps=5, pct_start=1.5), "pct_start must be .*got 1.5"),
        (dict(total_steps=5, anneal_strategy="cosine"), "'cos' or 'linear', got 'cosine'"),
        (dict(total_steps=5, div_factor=0), "div_factor must be a finite number > 0, got 0"),
        (dict(total_steps=5, max_momentum=1.0), "max_momentum must be .*got 1.0"),
    ]
    for kw, match in bad:
        with pytest.raises(ValueError, match=match):
            cr.optim.OneCycleLR(opt, max_lr=1.0, **kw)
    with pytest.raises(ValueError, match=r"max_lr must list one value per param group \(2\)"):
        cr.optim.OneCycleLR(_opt(momentum=0.9), max_lr=[1.0], total_steps=5)
    with pytest.raises(ValueError, match="max_lr.*> 0, got -1"):
        cr.optim.OneCycleLR(opt, max_lr=-1, total_steps=5)


def test_one_cycle_with_a_one_step_warmup_does_not_divide_by_zero():
    # pct_start * total_steps == 1: the warmup is the single step 0 (PyTorch divides 0 by 0)
    sched = cr.optim.OneCycleLR(
        _opt(lrs=[0.1], momentum=0.9), max_lr=2.0, total_steps=10, pct_start=0.1
    )
    assert sched.get_last_lr() == [2.0]
    sched.step()
    assert sched.get_last_lr()[0] < 2.0


# -- ReduceLROnPlateau ---------------------------------------------------------------------
def _plateau(metrics, **kw):
    opt = _opt(lrs=kw.pop("lrs", [1.0]))
    sched = cr.optim.ReduceLROnPlateau(opt, **kw)
    seen = []
    for m in metrics:
        sched.step(m)
        seen.append(sched.get_last_lr())
        assert seen[-1] == [g["lr"] for g in opt.param_groups]
    return seen, sched


def test_plateau_min_relative_by_hand():
    # improvement means below best * (1 - 0.1); after more than 2 bad epochs the rate halves
    seen, sched = _plateau(
        [10, 9.5, 9.2, 9.1, 8.0, 8.0, 8.0, 8.0], factor=0.5, patience=2, threshold=0.1
    )
    assert [s[0] for s in seen] == [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25]
    assert sched.best == 8.0 and sched.last_epoch == 8


def test_plateau_max_absolute_with_cooldown_min_lr_and_eps():
    seen, _ = _plateau(
        [1, 1.4, 1, 1, 1, 1, 1, 1, 2.0],
        mode="max",
        threshold_mode="abs",
        threshold=0.5,
        patience=0,
        cooldown=2,
        factor=0.1,
        min_lr=0.05,
    )
    assert [s[0] for s in seen] == pytest.approx([1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05])
    # per-group floors; a cut smaller than eps is not made
    seen, _ = _plateau([1, 2], patience=0, factor=0.5, min_lr=[0.3, 0.0], lrs=[0.5, 1e-9])
    assert seen[-1] == [0.3, 1e-9]


def test_plateau_nan_is_no_improvement_and_a_non_number_is_refused():
    seen, sched = _plateau([1.0, float("nan")], patience=0, factor=0.5)
    assert [s[0] for s in seen] == [1.0, 0.5] and sched.best == 1.0
    seen, sched = _plateau([cr.tensor(3.0), np.float32(2.0), np.array([1.0])], patience=5)
    assert sched.best == 1.0
    for bad in ("0.5", None, [1.0, 2.0], cr.tensor([1.0, 2.0]), True):
        with pytest.raises(TypeError, match="metrics must be a number"):
            sched.step(bad)
    assert sched.last_epoch == 3


# -- state_dict ----------------------------------------------------------------------------
_MAKERS = {
    "StepLR": lambda o: cr.optim.StepLR(o, step_size=2, gamma=0.5),
    "MultiStepLR": lambda o: cr.optim.MultiStepLR(o, milestones=[3, 6], gamma=0.3),
    "ExponentialLR": lambda o: cr.optim.ExponentialLR(o, gamma=0.8),
    "CosineAnnealingLR": lambda o: cr.optim.CosineAnnealingLR(o, T_max=7, eta_min=1e-4),
    "LinearLR": lambda o: cr.optim.LinearLR(o, start_factor=0.1, total_iters=6),
    "OneCycleLR": lambda o: cr.optim.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=12),
    "ReduceLROnPlateau": lambda o: cr.optim.ReduceLROnPlateau(o, patience=1, factor=0.5),
}
METRICS = [5.0, 4.0, 4.0, 4.0, 3.9, 3.9, 3.9, 1.0, 1.0, 1.0, 1.0]


def _advance(sched, start, n):
    out = []
    for k in range(start, start + n):
        if isinstance(sched, cr.optim.ReduceLROnPlateau):
            sched.step(METRICS[k])
        else:
            sched.step()
        out.append(sched.get_last_lr())
    return out


@pytest.mark.parametrize("name", list(_MAKERS))
def test_state_dict_round_trip_through_json_continues_identically(name):
    opt = _opt(momentum=0.9)
    sched = _MAKERS[name](opt)
    _advance(sched, 0, 4)
    saved = json.loads(json.dumps(sched.state_dict()))
    opt_saved = opt.state_dict()
    assert saved["type"] == name and saved["last_epoch"] == 4
    rest = _advance(sched, 4, 6)
    # fresh objects, made with other rates: loading puts them where the first ones were
    opt2 = _opt(lrs=[7.0, 7.0], momentum=0.9)
    sched2 = _MAKERS[name](opt2)
    opt2.load_state_dict(opt_saved)
    sched2.load_state_dict(saved)
    assert sched2.last_epoch == 4 and sched2.base_lrs == BASES
    assert _advance(sched2, 4, 6) == rest
    assert opt2.param_groups[1]["momentum"] == opt.param_groups[1]["momentum"]


def test_load_state_dict_lists_every_problem_and_changes_nothing():
    sched = cr.optim.StepLR(_opt(), step_size=2)
    sched.step()
    before = json.dumps(sched.state_dict())
    bad = {
        **sched.state_dict(),
        "type": "ExponentialLR",
        "gamma": -1,
        "last_epoch": -3,
        "base_lrs": [0.1],
        "extra": 1,
    }
    del bad["step_size"]
    with pytest.raises(ValueError) as info:
        sched.load_state_dict(bad)
    msg = str(info.value)
    for needle in [
        "StepLR.load_state_dict",
        "nothing was changed",
        "(6 problems)",
        "missing key 'step_size'",
        "unexpected key 'extra'",
        "'type' must be 'StepLR', got 'ExponentialLR'",
        "'gamma' must be a finite number >= 0, got -1",
        "'last_epoch' must be an integer >= 0, got -3",
        "'base_lrs' must list one value per param group (2)",
    ]:
        assert needle in msg, (needle, msg)
    assert json.dumps(sched.state_dict()) == before
    with pytest.raises(ValueError, match="not the dict state_dict"):
        sched.load_state_dict("StepLR")
    plateau = cr.optim.ReduceLROnPlateau(_opt())
    with pytest.raises(ValueError, match=r"'min_lrs' must be a list of one value per param group"):
        plateau.load_state_dict({**plateau.state_dict(), "min_lrs": 0.0})
    with pytest.raises(ValueError, match=r"'best' must be a number, got 'low'"):
        plateau.load_state_dict({**plateau.state_dict(), "best": "low"})


# -- arguments -----------------------------------------------------------------------------
_BAD = [
    (cr.optim.StepLR, dict(step_size=0), "step_size", "0"),
    (cr.optim.StepLR, dict(step_size=2.0), "step_size", "2.0"),
    (cr.optim.StepLR, dict(step_size=2, gamma=-0.5), "gamma", "-0.5"),
    (cr.optim.MultiStepLR, dict(milestones=[]), "milestones", "[]"),
    (cr.optim.MultiStepLR, dict(milestones=[3, 0]), "milestones[1]", "0"),
    (cr.optim.MultiStepLR, dict(milestones=[2], gamma=float("nan")), "gamma", "nan"),
    (cr.optim.ExponentialLR, dict(gamma=float("inf")), "gamma", "inf"),
    (cr.optim.CosineAnnealingLR, dict(T_max=0), "T_max", "0"),
    (cr.optim.CosineAnnealingLR, dict(T_max=5, eta_min=-1.0), "eta_min", "-1.0"),
    (cr.optim.LinearLR, dict(start_factor=0.0), "start_factor", "0.0"),
    (cr.optim.LinearLR, dict(end_factor=1.5), "end_factor", "1.5"),
    (cr.optim.LinearLR, dict(total_iters=0), "total_iters", "0"),
    (cr.optim.ReduceLROnPlateau, dict(mode="minimum"), "mode", "'minimum'"),
    (cr.optim.ReduceLROnPlateau, dict(factor=1.0), "factor", "1.0"),
    (cr.optim.ReduceLROnPlateau, dict(patience=-1), "patience", "-1"),
    (cr.optim.ReduceLROnPlateau, dict(threshold_mode="relative"), "threshold_mode", "'relative'"),
    (cr.optim.ReduceLROnPlateau, dict(cooldown=1.5), "cooldown", "1.5"),
    (cr.optim.ReduceLROnPlateau, dict(min_lr=-0.1), "min_lr", "-0.1"),
    (cr.optim.ReduceLROnPlateau, dict(min_lr=[0.0]), "min_lr", "[0.0]"),
]


@pytest.mark.parametrize("cls,kw,arg,shown", _BAD, ids=[f"{c.__name__}-{a}" for c, _, a, _ in _BAD])
def test_bad_arguments_are_named(cls, kw, arg, shown):
    opt = _opt()
    before = [g["lr"] for g in opt.param_groups]
    with pytest.raises(ValueError) as info:
        cls(opt, **kw)
    msg = str(info.value)
    assert msg.startswith(f"{cls.__name__}: {arg}") and f"got {shown}" in msg, msg
    assert [g["lr"] for g in opt.param_groups] == before


def test_a_schedule_needs_an_optimizer_and_its_groups():
    with pytest.raises(TypeError, match="StepLR: optimizer must be a chainrule.optim optimizer"):
        cr.optim.StepLR([cr.tensor([1.0], requires_grad=True)], step_size=1)
    opt = _opt(lrs=[0.1])
    sched = cr.optim.ExponentialLR(opt, gamma=0.5)
    opt.add_param_group({"params": [cr.tensor([1.0], requires_grad=True)]})
    with pytest.raises(ValueError, match="2 param groups, the schedule was made for 1"):
        sched.step()
    assert sched.last_epoch == 0
