"""chainrule.io.training: one safetensors file holding a whole training run (model, optimizer,
schedule, epoch, random generator). Resuming from it gives the bits of a run that never
stopped; a checkpoint that does not fit is refused with every problem listed and nothing
changed."""

from __future__ import annotations

import json

import numpy as np
import pytest

import chainrule as cr
from chainrule.io.training import load_training, save_training
from chainrule.nn import functional as F

DATA = np.random.default_rng(0)
X = DATA.normal(size=(40, 5))
Y = DATA.integers(0, 3, size=40)

CASES = {
    "SGD": (
        lambda ps: cr.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda o: cr.optim.StepLR(o, step_size=2, gamma=0.5),
    ),
    "Adam": (
        lambda ps: cr.optim.Adam(ps, lr=0.01),
        lambda o: cr.optim.OneCycleLR(o, max_lr=0.05, total_steps=6),  # cycles beta1 too
    ),
    "RMSprop": (
        lambda ps: cr.optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
        lambda o: cr.optim.CosineAnnealingLR(o, T_max=6, eta_min=1e-3),
    ),
}


def _fresh(name, seed):
    make_opt, make_sched = CASES[name]
    model = cr.nn.MLP([5, 8, 3], rng=seed)
    opt = make_opt(model.parameters())
    return model, opt, make_sched(opt)


def _train(model, opt, sched, gen, steps):
    for _ in range(steps):
        batch = gen.permutation(len(X))[:8]  # the data order comes from the generator
        opt.zero_grad()
        F.cross_entropy(model(cr.tensor(X[batch])), Y[batch]).backward()
        opt.step()
        sched.step()


def _bits(model):
    return [v.tobytes() for v in model.state_dict().values()]


def _everything(model, opt, sched, gen):
    """All the state of a run, comparable with ==."""
    sd = opt.state_dict()
    return (
        _bits(model),
        json.dumps({k: v for k, v in sd.items() if k != "state"}),
        {k: v.tobytes() for k, v in sd["state"].items()},
        json.dumps(sched.state_dict()),
        str(gen.bit_generator.state),
    )


@pytest.mark.parametrize("name", list(CASES))
def test_resume_gives_the_bits_of_an_uninterrupted_run(name, tmp_path):
    straight = _fresh(name, seed=0)
    gen = np.random.default_rng(123)
    _train(*straight, gen, 6)

    first = _fresh(name, seed=0)
    gen1 = np.random.default_rng(123)
    _train(*first, gen1, 3)
    halfway = _bits(first[0])
    path = save_training(
        tmp_path / "run.safetensors", *first, epoch=3, rng=gen1, extra={"loss": [1.5, 1.2]}
    )
    # fresh objects, made differently (other weights, another seed): the file sets them all
    model, opt, sched = _fresh(name, seed=99)
    gen2 = np.random.default_rng(999)
    info = load_training(path, model, opt, sched, rng=gen2)
    assert info == {"epoch": 3, "extra": {"loss": [1.5, 1.2]}}
    assert _everything(model, opt, sched, gen2) == _everything(*first, gen1)
    _train(model, opt, sched, gen2, 3)
    assert _bits(model) == _bits(straight[0]) != halfway
    assert _everything(model, opt, sched, gen2) == _everything(*straight, gen)

    # the test can fail: the weights alone, without the optimizer's state, do not continue
    model3, opt3, sched3 = _fresh(name, seed=99)
    model3.load_state_dict({k[6:]: v for k, v in cr.load(path).items() if k[:6] == "model."})
    _train(model3, opt3, sched3, np.random.default_rng(123), 3)
    assert _bits(model3) != _bits(straight[0])


def test_the_file_is_one_plain_safetensors_checkpoint(tmp_path):
    model, opt, sched = _fresh("Adam", seed=0)
    _train(model, opt, sched, np.random.default_rng(1), 2)
    path = save_training(tmp_path / "a" / "run.safetensors", model, opt, sched, epoch=2)
    arrays, meta = cr.load(path), cr.io.load_metadata(path)
    names = ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert sorted(arrays) == sorted(
        [f"model.{n}" for n in names]
        + [f"optimizer.{i}.{s}" for i in range(4) for s in ("exp_avg", "exp_avg_sq", "step")]
    )
    assert sorted(meta) == ["epoch", "format", "optimizer", "scheduler"]
    assert meta["format"] == "chainrule.training/1" and meta["epoch"] == "2"
    assert json.loads(meta["scheduler"])["type"] == "OneCycleLR"
    assert json.loads(meta["optimizer"])["param_groups"][0]["params"] == [0, 1, 2, 3]


@pytest.mark.parametrize("kind", [np.random.MT19937, np.random.Philox, np.random.SFC64])
def test_every_numpy_bit_generator_round_trips(kind, tmp_path):
    model, opt, _ = _fresh("SGD", seed=0)
    gen = np.random.Generator(kind(5))
    gen.normal(size=3)
    path = save_training(tmp_path / "r.safetensors", model, opt, epoch=0, rng=gen)
    expected = gen.normal(size=4)
    other = np.random.Generator(kind(77))
    load_training(path, model, opt, rng=other)
    assert np.array_equal(other.normal(size=4), expected)


# -- refusals ------------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    model, opt, sched = _fresh("SGD", seed=0)
    gen = np.random.default_rng(4)
    _train(model, opt, sched, gen, 2)
    return save_training(tmp_path / "run.safetensors", model, opt, sched, epoch=2, rng=gen)


def _target(name="SGD", sizes=(5, 8, 3), gen=None):
    make_opt, make_sched = CASES[name]
    model = cr.nn.MLP(list(sizes), rng=7)
    opt = make_opt(model.parameters())
    sched = make_sched(opt)
    _train(model, opt, sched, np.random.default_rng(8), 1)  # some state of its own
    return model, opt, sched, gen if gen is not None else np.random.default_rng(9)


@pytest.mark.parametrize(
    "target,needles",
    [
        (lambda: _target(sizes=(5, 4, 3)), ["model:", "'0.weight': checkpoint shape (8, 5)"]),
        (
            lambda: _target("Adam"),
            [
                "optimizer:",
                "the state is for 'SGD', not 'Adam'",
                "scheduler:",
                "'type' must be 'OneCycleLR'",
            ],
        ),
        (
            lambda: _target(gen=np.random.Generator(np.random.MT19937(1))),
            ["rng:", "the checkpoint's generator is a PCG64, the rng given a MT19937"],
        ),
    ],
    ids=["model", "optimizer+scheduler", "rng"],
)
def test_a_checkpoint_that_does_not_fit_changes_nothing(saved, target, needles):
    model, opt, sched, gen = target()
    before = _everything(model, opt, sched, gen)
    with pytest.raises(ValueError) as info:
        load_training(saved, model, opt, sched, rng=gen)
    msg = str(info.value)
    assert msg.startswith("load_training:") and "nothing was changed" in msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    # the parts that did fit were loaded, then put back: everything is as it was
    assert _everything(model, opt, sched, gen) == before


def test_asking_for_what_the_file_does_not_hold(tmp_path):
    model, opt, sched = _fresh("SGD", seed=0)
    path = save_training(tmp_path / "bare.safetensors", model, opt, epoch=0)
    with pytest.raises(ValueError, match="no scheduler state[^$]*\n.*no generator state"):
        load_training(path, model, opt, sched, rng=np.random.default_rng(0))
    assert load_training(path, model, opt) == {"epoch": 0, "extra": None}


def test_not_a_training_checkpoint(tmp_path):
    model, opt, _ = _fresh("SGD", seed=0)
    plain = cr.save(model.state_dict(), tmp_path / "weights.safetensors")
    with pytest.raises(cr.io.CheckpointError, match="not a training checkpoint.*cr.load"):
        load_training(plain, model, opt)
    with pytest.raises(FileNotFoundError):
        load_training(tmp_path / "missing.safetensors", model, opt)
    (tmp_path / "junk.safetensors").write_bytes(b"\x80\x04junk")
    with pytest.raises(cr.io.CheckpointError, match="pickle"):
        load_training(tmp_path / "junk.safetensors", model, opt)


def test_metadata_nested_too_deeply_is_a_problem_listed(tmp_path):
    model, opt, _ = _fresh("SGD", seed=0)
    path = save_training(tmp_path / "run.safetensors", model, opt, epoch=1)
    meta = {**cr.io.load_metadata(path), "optimizer": "[" * 100_000}
    cr.save(cr.load(path), path, metadata=meta)
    with pytest.raises(ValueError, match="'optimizer' is JSON nested too deeply"):
        load_training(path, model, opt)


def test_save_refusals(tmp_path):
    model, opt, _ = _fresh("SGD", seed=0)
    path = tmp_path / "x.safetensors"
    for epoch in (-1, 2.5, True, "3"):
        with pytest.raises(ValueError, match=f"epoch must be an integer >= 0, got {epoch!r}"):
            save_training(path, model, opt, epoch=epoch)
    with pytest.raises(TypeError, match="extra must be JSON-able"):
        save_training(path, model, opt, epoch=1, extra={"w": np.zeros(2)})
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator.*RandomState"):
        save_training(path, model, opt, epoch=1, rng=np.random.RandomState(0))
    assert not path.exists()  # nothing half written
