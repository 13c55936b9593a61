"""Training an MLP with backprop (chainrule.cli.train): accuracy, reproducibility, checkpoints."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, fields, replace

import numpy as np
import pytest

import chainrule as cr
from chainrule import io
from chainrule.cli.train import (
    ConfigError,
    EpochMetrics,
    TrainConfig,
    evaluate_checkpoint,
    load_model,
    prepare_data,
    train,
)
from chainrule.io import CheckpointError

# Per-epoch wall-clock measurements: they differ run to run and are not part of the result.
TIMING = {"seconds", "steps_per_second"}


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _numbers(history: list[EpochMetrics]) -> list[dict[str, float]]:
    """A history without its timings, for exact comparison."""
    return [{k: v for k, v in asdict(m).items() if k not in TIMING} for m in history]


def _checkpoint_epoch(path) -> int:
    return json.loads(io.load_metadata(path)["metrics"])["epoch"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """The default configuration (the main job), trained once, with its checkpoint."""
    path = tmp_path_factory.mktemp("digits") / "model.safetensors"
    start = time.perf_counter()
    result = train(TrainConfig(), checkpoint=path)
    print(f"default digits run: {time.perf_counter() - start:.2f} s")
    return result, path


# -- the accuracy targets ----------------------------------------------------------------
def test_default_config_reaches_97_percent_on_digits(digits_run):
    result, _ = digits_run
    config = TrainConfig()
    assert config.data == "digits"
    assert result.config == config and not result.interrupted
    assert [m.epoch for m in result.history] == list(range(1, config.epochs + 1))
    assert result.test_accuracy == result.history[-1].test_accuracy
    assert result.test_accuracy >= 0.97, result.test_accuracy
    assert result.train_accuracy >= result.test_accuracy - 0.02
    # it learned: the loss fell by far more than noise
    assert result.history[-1].train_loss < 0.2 * result.history[0].train_loss
    _, test_set = prepare_data(config)
    assert len(test_set) == 359  # a real held-out split, not a handful of samples


def test_moons_reaches_99_percent():
    result = train(TrainConfig(data="moons"))
    assert result.test_accuracy >= 0.99, result.test_accuracy


def test_history_records_every_epoch(digits_run):
    result, _ = digits_run
    for m in result.history:
        assert 0.0 <= m.train_accuracy <= 1.0 and 0.0 <= m.test_accuracy <= 1.0
        assert m.train_loss > 0 and m.test_loss > 0
        assert m.seconds > 0 and m.steps_per_second > 0
    # the cosine schedule: starts at the configured rate and decays
    lrs = [m.lr for m in result.history]
    assert lrs[0] == TrainConfig().lr
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


# -- reproducibility -----------------------------------------------------------------------
@pytest.mark.parametrize("data, epochs", [("digits", 3), ("moons", 5), ("spirals", 3)])
def test_same_seed_gives_bit_identical_runs(data, epochs):
    config = TrainConfig(data=data, epochs=epochs, seed=7)
    a, b = train(config), train(config)
    assert _numbers(a.history) == _numbers(b.history)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert _same_bits(sa[key], sb[key]), key


def test_different_seeds_give_different_runs():
    a = train(TrainConfig(data="digits", epochs=2, seed=0))
    b = train(TrainConfig(data="digits", epochs=2, seed=1))
    assert _numbers(a.history) != _numbers(b.history)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(not np.array_equal(sa[k], sb[k]) for k in sa)


# -- checkpoints ---------------------------------------------------------------------------
def test_evaluate_checkpoint_reports_the_final_test_accuracy(digits_run):
    result, path = digits_run
    accuracy, config = evaluate_checkpoint(path)
    assert accuracy == result.test_accuracy  # exactly: same split, same weights
    assert config == result.config


def test_load_model_rebuilds_the_same_parameters(digits_run):
    result, path = digits_run
    model, config = load_model(path)
    assert config == result.config
    saved, rebuilt = result.model.state_dict(), model.state_dict()
    assert list(rebuilt) == list(saved)
    for key in saved:
        assert _same_bits(rebuilt[key], saved[key]), key
    _, test_set = prepare_data(config)
    model.eval()
    result.model.eval()
    with cr.no_grad():
        assert np.array_equal(model(test_set.X).numpy(), result.model(test_set.X).numpy())


def test_checkpoint_metadata_holds_config_and_last_metrics(digits_run):
    result, path = digits_run
    meta = io.load_metadata(path)
    assert TrainConfig.from_json(meta["config"]) == result.config
    metrics = json.loads(meta["metrics"])
    assert metrics["epoch"] == len(result.history)
    assert metrics["test_accuracy"] == result.test_accuracy


def test_checkpoint_is_saved_after_every_epoch(tmp_path):
    path = tmp_path / "model.safetensors"
    seen = []

    def on_epoch(m: EpochMetrics) -> None:
        seen.append(_checkpoint_epoch(path))

    train(TrainConfig(data="moons", hidden=(8,), epochs=3), on_epoch=on_epoch, checkpoint=path)
    assert seen == [1, 2, 3]


def test_load_model_with_another_activation(tmp_path):
    path = tmp_path / "model.safetensors"
    result = train(
        TrainConfig(data="spirals", hidden=(16, 8), activation="tanh", epochs=2),
        checkpoint=path,
    )
    model, config = load_model(path)
    assert config.activation == "tanh" and config.hidden == (16, 8)
    assert evaluate_checkpoint(path)[0] == result.test_accuracy


# -- Ctrl-C ----------------------------------------------------------------------------------
def test_keyboard_interrupt_keeps_the_last_completed_epoch(tmp_path, monkeypatch):
    import chainrule.cli.train as training

    path = tmp_path / "model.safetensors"
    models = []  # the live model, only reachable from inside train: caught as it is built
    build = training.build_model

    def build_and_keep(*args, **kwargs):
        models.append(build(*args, **kwargs))
        return models[-1]

    monkeypatch.setattr(training, "build_model", build_and_keep)
    snapshots = {}

    def on_epoch(m: EpochMetrics) -> None:
        snapshots[m.epoch] = models[0].state_dict()

    def on_step(step: int, loss: float) -> None:
        if step == 2 * 25 + 3:  # moons: 800 training rows, 25 steps an epoch; stop in epoch 3
            raise KeyboardInterrupt

    config = TrainConfig(data="moons", hidden=(8,), epochs=10)
    result = train(config, on_step=on_step, on_epoch=on_epoch, checkpoint=path)
    assert result.interrupted
    assert [m.epoch for m in result.history] == [1, 2]
    assert _checkpoint_epoch(path) == 2
    saved = cr.load(path)
    assert set(saved) == set(snapshots[2])
    for key, value in snapshots[2].items():
        assert _same_bits(saved[key], value), key
    assert not any(
        models[0].state_dict()[k].tobytes() == v.tobytes()
        for k, v in saved.items()
        if k.endswith("weight")
    ), "epoch 3's steps should have moved the live model"


def test_interrupt_during_a_checkpoint_save_keeps_history_and_checkpoint_in_step(
    tmp_path, monkeypatch
):
    """Ctrl-C while epoch 2's checkpoint is being written: the atomic write leaves epoch 1's
    file, so the run must report epoch 1 as its last good epoch, not 2."""
    path = tmp_path / "model.safetensors"
    real_save = io.save
    calls = []

    def interrupted_save(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_save(*args, **kwargs)

    monkeypatch.setattr(io, "save", interrupted_save)
    result = train(TrainConfig(data="moons", hidden=(8,), epochs=5), checkpoint=path)
    assert result.interrupted
    assert _checkpoint_epoch(path) == 1
    assert len(result.history) == _checkpoint_epoch(path), (
        f"the result says {len(result.history)} epochs completed, the checkpoint holds epoch "
        f"{_checkpoint_epoch(path)}"
    )


# -- config validation -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "change, words",
    [
        ({"data": "mnist"}, ["data set", "'mnist'", "digits, moons, spirals"]),
        ({"data": "Digits"}, ["data set", "'Digits'"]),
        ({"hidden": ()}, ["hidden", "()"]),
        ({"hidden": (0,)}, ["hidden", "(0,)"]),
        ({"hidden": (64, -3)}, ["hidden", "(64, -3)"]),
        ({"activation": "swish"}, ["activation", "'swish'", "relu"]),
        ({"optimizer": "rmsprop"}, ["optimizer", "'rmsprop'", "adam"]),
        ({"lr": -0.1}, ["learning rate", "-0.1"]),
        ({"lr": 0.0}, ["learning rate", "got 0.0"]),
        ({"lr": math.nan}, ["learning rate", "nan"]),
        ({"lr": math.inf}, ["learning rate", "inf"]),
        ({"epochs": 0}, ["epochs", "got 0"]),
        ({"epochs": -5}, ["epochs", "-5"]),
        ({"batch_size": 0}, ["batch size", "got 0"]),
        ({"batch_size": -32}, ["batch size", "-32"]),
        ({"test_fraction": 1.0}, ["test_fraction", "1.0"]),
        ({"weight_decay": -1e-3}, ["weight decay", "-0.001"]),
        ({"schedule": "linear"}, ["schedule", "'linear'"]),
    ],
)
def test_validate_names_the_bad_value(change, words):
    config = replace(TrainConfig(), **change)
    with pytest.raises(ConfigError) as info:
        config.validate()
    message = str(info.value)
    for word in words:
        assert word in message, message
    assert "\n" not in message
    # train validates first: a bad config never starts a run
    with pytest.raises(ConfigError):
        train(config)


@pytest.mark.parametrize(
    "change, named",
    [
        pytest.param({"hidden": (1.5,)}, "1.5", id="fractional-hidden"),
        pytest.param({"epochs": 2.5}, "2.5", id="fractional-epochs"),
        pytest.param({"batch_size": 2.5}, "2.5", id="fractional-batch-size"),
        pytest.param({"seed": -1}, "-1", id="negative-seed"),
    ],
)
def test_validate_refuses_values_train_cannot_run(change, named):
    """What validate lets through must train: non-integer sizes and negative seeds are bad
    configs (ConfigError naming the value), not a crash deep inside NumPy."""
    config = replace(TrainConfig(data="moons", hidden=(8,), epochs=1), **change)
    with pytest.raises(ConfigError) as info:
        config.validate()
    assert named in str(info.value), str(info.value)


def test_valid_config_passes_and_round_trips_through_json():
    config = TrainConfig(data="spirals", hidden=(32, 16, 8), activation="gelu", lr=0.01)
    assert config.validate() is config
    assert TrainConfig.from_json(config.to_json()) == config
    assert issubclass(ConfigError, ValueError)
    assert [f.name for f in fields(EpochMetrics)][:5] == [
        "epoch",
        "train_loss",
        "train_accuracy",
        "test_loss",
        "test_accuracy",
    ]


# -- checkpoints that are not what they claim ----------------------------------------------
@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "model.safetensors"
    train(TrainConfig(data="moons", hidden=(8,), epochs=1), checkpoint=path)
    return path


def _rewrite(src, dst, state=None, **meta_changes):
    """A copy of a real checkpoint with its weights or metadata edited."""
    meta = io.load_metadata(src)
    config = json.loads(meta["config"])
    for key, value in meta_changes.items():
        config[key] = value
    meta["config"] = json.dumps(config)
    return io.save(cr.load(src) if state is None else state, dst, metadata=meta)


def test_safetensors_without_chainrule_metadata_is_refused(small_checkpoint, tmp_path):
    plain = io.save(cr.load(small_checkpoint), tmp_path / "plain.safetensors")
    foreign = io.save(
        cr.load(small_checkpoint), tmp_path / "foreign.safetensors", metadata={"format": "pt"}
    )
    for path in (plain, foreign):
        for fn in (load_model, evaluate_checkpoint):
            with pytest.raises(CheckpointError) as info:
                fn(path)
            message = str(info.value)
            assert str(path) in message
            assert "not a chainrule training checkpoint" in message


def test_weights_for_another_architecture_are_refused(small_checkpoint, tmp_path):
    path = _rewrite(small_checkpoint, tmp_path / "other.safetensors", hidden=[32])
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message and "hidden [32]" in message
    assert "0.weight" in message and "(8, 2)" in message and "(32, 2)" in message

    deeper = _rewrite(small_checkpoint, tmp_path / "deeper.safetensors", hidden=[8, 8])
    with pytest.raises(CheckpointError, match=r"hidden \[8, 8\]"):
        evaluate_checkpoint(deeper)


def test_weights_missing_a_tensor_are_refused(small_checkpoint, tmp_path):
    state = cr.load(small_checkpoint)
    del state["2.bias"]
    path = _rewrite(small_checkpoint, tmp_path / "missing.safetensors", state=state)
    with pytest.raises(CheckpointError, match=r"missing key '2\.bias'"):
        load_model(path)


def _no_weights(state):
    return {}


def _flat_first_weight(state):
    return dict(state, **{"0.weight": state["0.weight"].ravel()})


def _foreign_layer(state):
    return dict(state, **{"head.weight": np.zeros((2, 2))})


def _unexpected_key(state):
    return dict(state, extra=np.ones(1))


def _transposed_last(state):
    return dict(state, **{"2.weight": state["2.weight"].T.copy()})


@pytest.mark.parametrize(
    "edit", [_no_weights, _flat_first_weight, _foreign_layer, _unexpected_key, _transposed_last]
)
def test_weights_that_do_not_fit_their_config_are_refused(small_checkpoint, tmp_path, edit):
    state = edit(cr.load(small_checkpoint))
    path = _rewrite(small_checkpoint, tmp_path / "edited.safetensors", state=state)
    for fn in (load_model, evaluate_checkpoint):
        with pytest.raises(CheckpointError) as info:
            fn(path)
        assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"data": "mnist"}, id="unknown-data"),
        pytest.param({"hidden": "eight"}, id="hidden-not-a-list"),
        pytest.param({"lr": -1.0}, id="negative-lr"),
        pytest.param({"seed": -1}, id="negative-seed"),
        pytest.param({"momentum": 0.9}, id="unknown-field"),
    ],
)
def test_unusable_config_in_metadata_is_refused(small_checkpoint, tmp_path, change):
    path = _rewrite(small_checkpoint, tmp_path / "bad-config.safetensors", **change)
    with pytest.raises(CheckpointError) as info:
        evaluate_checkpoint(path)
    assert str(path) in str(info.value) and "configuration" in str(info.value)


def test_config_for_another_data_set_is_refused(small_checkpoint, tmp_path):
    path = _rewrite(small_checkpoint, tmp_path / "digits.safetensors", data="digits")
    model, _ = load_model(path)  # the weights fit the (moons-sized) network...
    with pytest.raises(CheckpointError) as info:  # ...but not the data its config names
        evaluate_checkpoint(path)
    assert "2 inputs" in str(info.value) and "64 features" in str(info.value)


def test_truncated_checkpoint_is_refused(small_checkpoint, tmp_path):
    data = small_checkpoint.read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(path)
