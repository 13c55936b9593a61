"""Training a classifier or a regressor with backprop: the loop behind ``chainrule train``.

Gradient descent on the network's parameters, with backprop as the subroutine that supplies
the gradients (the handout's problem (g), at the size of a real data set).

>>> import chainrule as cr
>>> from chainrule.cli.train import TrainConfig, train
>>> result = train(TrainConfig(data="moons", hidden=(16,), epochs=2, seed=0))
>>> len(result.history), 0.0 <= result.test_accuracy <= 1.0
(2, True)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import data as datasets
from .. import io, nn, optim
from ..data import FileDataError, load_file
from ..engine.modes import no_grad
from ..nn import functional as F
from .config import ACTIVATIONS, DATASETS, FILE_TYPES, OPTIMIZERS, ConfigError, TrainConfig
from .models import SequenceCNN, SequenceGRU

__all__ = [
    "TrainConfig",
    "TrainResult",
    "EpochMetrics",
    "train",
    "evaluate_checkpoint",
    "load_model",
    "prepare_data",
    "build_model",
    "ConfigError",
    "resumed_config",
    "ACTIVATIONS",
    "DATASETS",
    "FILE_TYPES",
    "OPTIMIZERS",
]

CHECKPOINT_FORMAT = "chainrule-mlp-classifier/1"  # (the name kept: older files stay readable)


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    lr: float
    seconds: float
    steps_per_second: float


@dataclass
class TrainResult:
    config: TrainConfig
    model: nn.Module
    history: list[EpochMetrics] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def train_accuracy(self) -> float:
        return self.history[-1].train_accuracy if self.history else float("nan")

    @property
    def test_accuracy(self) -> float:
        return self.history[-1].test_accuracy if self.history else float("nan")


def prepare_data(config: TrainConfig) -> tuple[datasets.Dataset, datasets.Dataset]:
    """The seeded train/test split of the configured data set, features standardized by the
    train statistics (except the digits' pixels and MNIST-1D, which come scaled). MNIST-1D
    keeps its published split."""
    if config.data == "mnist1d":
        try:
            return datasets.load_mnist1d()
        except ImportError as err:
            raise ConfigError(str(err)) from None
    if config.from_file:
        try:
            ds = load_file(config.data, config.target)
        except FileDataError as err:
            raise ConfigError(str(err)) from None
    elif config.data == "digits":
        ds = datasets.load("digits")
    else:
        ds = datasets.load(config.data, seed=config.seed)
    train_set, test_set = datasets.split(ds, test_fraction=config.test_fraction, seed=config.seed)
    if config.data != "digits":
        train_set, test_set = datasets.standardize(train_set, test_set)
    return train_set, test_set


def feature_statistics(config: TrainConfig) -> dict[str, list[float]] | None:
    """The mean and standard deviation the features were standardized by (saved in the
    checkpoint, to scale new data the same way); None where they were not."""
    if config.data in ("digits", "mnist1d"):
        return None
    ds = load_file(config.data, config.target) if config.from_file else (
        datasets.load(config.data, seed=config.seed))  # fmt: skip
    train_set, _ = datasets.split(ds, test_fraction=config.test_fraction, seed=config.seed)
    std = train_set.X.std(axis=0, dtype=np.float64)
    return {
        "mean": train_set.X.mean(axis=0, dtype=np.float64).tolist(),
        "std": np.where(std > 0, std, 1.0).tolist(),
    }


def build_model(config: TrainConfig, n_in: int, n_out: int) -> nn.Module:
    if config.model == "cnn":
        return SequenceCNN(n_in, n_out, rng=config.seed)
    if config.model == "gru":
        return SequenceGRU(n_in, n_out, rng=config.seed)
    return nn.MLP([n_in, *config.hidden, n_out], activation=config.activation, rng=config.seed)


def _loss(logits: Any, y: Any, regression: bool) -> Any:
    return F.mse_loss(logits, y) if regression else F.cross_entropy(logits, y)


def _optimizer(config: TrainConfig, params: Any) -> optim.Optimizer:
    if config.optimizer == "adam":
        return optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay or 1e-2)
    return optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)


def _evaluate(model: nn.Module, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(loss, score) of the model on a whole set, in eval mode: mean cross-entropy and
    accuracy for a classifier, mean squared error and R^2 for a regressor."""
    regression = y.dtype.kind == "f"
    model.eval()
    with no_grad():
        out = model(X)
        loss = float(_loss(out, y, regression))
    model.train()
    return loss, _score(out.numpy(), y)


def _score(out: np.ndarray, y: np.ndarray) -> float:
    """Accuracy (integer targets) or R^2, 1 - SSE / SST (float targets)."""
    if y.dtype.kind != "f":
        return float(np.mean(np.argmax(out, axis=1) == y))
    total = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((out - y) ** 2)) / total if total > 0 else float("nan")


def train(
    config: TrainConfig,
    on_step: Callable[[int, float], None] | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    checkpoint: str | Path | None = None,
    state: str | Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train the configured model; seeded and reproducible run to run.

    ``on_step(step, loss)`` and ``on_epoch(metrics)`` report progress. With ``checkpoint``
    the parameters at the end of each epoch are saved there (atomically); with ``state`` the
    whole training state too (model, optimizer, schedule, epoch, history: ``cr.save_training``),
    from which ``resume=True`` continues, giving the same numbers as a run that never stopped
    (each epoch's batch order depends on the seed and the epoch alone). A KeyboardInterrupt
    stops the run cleanly: the last completed epoch is what remains saved, and the result
    says ``interrupted``.
    """
    config.validate()
    train_set, test_set = prepare_data(config)
    regression = train_set.n_classes is None
    n_in, n_out = train_set.X.shape[1], 1 if regression else int(train_set.n_classes or 0)
    model = build_model(config, n_in, n_out)
    model.io_shape = (n_in, n_out)  # what the checkpoint needs to rebuild it
    model.feature_statistics = feature_statistics(config)
    opt = _optimizer(config, model.parameters())
    schedule = optim.CosineAnnealingLR(opt, config.epochs) if config.schedule == "cosine" else None
    result = TrainResult(config, model)
    first = 1
    if resume:
        if state is None or not Path(state).is_file():
            raise ConfigError(f"--resume: no training state to continue from at {state}")
        done = io.load_training(state, model, opt, schedule)
        result.history = [EpochMetrics(**m) for m in done["extra"]["history"]]
        first = int(done["epoch"]) + 1
    start = time.perf_counter()
    step = 0
    saving = None  # the metrics of an epoch whose checkpoint is being written
    try:
        for epoch in range(first, config.epochs + 1):
            epoch_start = time.perf_counter()
            seen, loss_sum, correct = 0, 0.0, 0
            batches = datasets.batches(
                train_set.X, train_set.y, config.batch_size, seed=config.seed * 100003 + epoch
            )
            for xb, yb in batches:
                logits = model(xb)
                loss = _loss(logits, yb, regression)
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                value = float(loss)
                loss_sum += value * len(yb)
                if not regression:
                    correct += int(np.sum(np.argmax(logits.numpy(), axis=1) == yb))
                seen += len(yb)
                if on_step is not None:
                    on_step(step, value)
            lr = opt.lr
            if schedule is not None:
                schedule.step()
            test_loss, test_acc = _evaluate(model, test_set.X, test_set.y)
            elapsed = time.perf_counter() - epoch_start
            metrics = EpochMetrics(
                epoch=epoch,
                train_loss=loss_sum / max(seen, 1),
                train_accuracy=(
                    correct / max(seen, 1)
                    if not regression
                    else _evaluate(model, train_set.X, train_set.y)[1]
                ),
                test_loss=test_loss,
                test_accuracy=test_acc,
                lr=lr,
                seconds=elapsed,
                steps_per_second=len(range(0, len(train_set), config.batch_size)) / elapsed,
            )
            if checkpoint is not None:  # saved first: the history never claims more
                saving = metrics
                save_checkpoint(model, config, checkpoint, metrics)
            if state is not None:
                history = [asdict(m) for m in [*result.history, metrics]]
                extra = {"config": json.loads(config.to_json()), "history": history}
                io.save_training(state, model, opt, schedule, epoch=epoch, extra=extra)
            result.history.append(metrics)
            saving = None
            if on_epoch is not None:
                on_epoch(metrics)
    except KeyboardInterrupt:
        result.interrupted = True
        # a signal between the save and the line after it: the file on disk says which
        if saving is not None and saving not in result.history:
            if _saved_epoch(checkpoint) == saving.epoch:
                result.history.append(saving)
    result.seconds = time.perf_counter() - start
    return result


def resumed_config(state: str | Path) -> TrainConfig:
    """The configuration of the run whose training state is at ``state``."""
    try:
        meta = io.load_metadata(state)
        raw = json.loads(meta["extra"])["config"]
        raw["hidden"] = tuple(raw["hidden"])
        return TrainConfig(**raw).validate()
    except (OSError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"--resume: {state} is not a chainrule training state ({err})") from None


def _saved_epoch(path: Any) -> int | None:
    """The epoch of the checkpoint at ``path``, or None when there is none to read."""
    try:
        return int(json.loads(io.load_metadata(path)["metrics"])["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_checkpoint(
    model: nn.Module, config: TrainConfig, path: str | Path, metrics: EpochMetrics | None = None
) -> Path:
    """The model's parameters in safetensors, with the config (and last metrics) as metadata."""
    meta = {"format": CHECKPOINT_FORMAT, "config": config.to_json()}
    if metrics is not None:
        meta["metrics"] = json.dumps(asdict(metrics))
    shape = getattr(model, "io_shape", None)
    if shape is not None:
        meta["io_shape"] = json.dumps(shape)
    stats = getattr(model, "feature_statistics", None)
    if stats is not None:
        meta["feature_statistics"] = json.dumps(stats)
    return io.save(model.state_dict(), path, metadata=meta)


def load_model(path: str | Path) -> tuple[nn.Module, TrainConfig]:
    """Rebuild the model a checkpoint was saved from, with its parameters."""
    meta = io.load_metadata(path)
    if meta.get("format") != CHECKPOINT_FORMAT or "config" not in meta:
        raise io.CheckpointError(
            f"{path}: a safetensors file, but not a chainrule training checkpoint (no "
            "training configuration in its metadata)"
        )
    try:
        config = TrainConfig.from_json(meta["config"]).validate()
    except (TypeError, ValueError, KeyError) as err:
        raise io.CheckpointError(
            f"{path}: its training configuration is unreadable ({err})"
        ) from err
    state = io.load(path)
    if "io_shape" in meta:  # (n_in, n_out), saved since models other than the MLP exist
        n_in, n_out = (int(v) for v in json.loads(meta["io_shape"]))
    else:
        n_in = _shape_of(state, "0.weight", 1, path)
        layers = [int(k.split(".")[0]) for k in state if k.split(".")[0].isdigit()]
        n_out = _shape_of(state, f"{max(layers)}.weight", 0, path)
    model = build_model(config, n_in, n_out)
    try:
        model.load_state_dict(state)
    except nn.StateDictError as err:
        raise io.CheckpointError(
            f"{path}: the weights do not fit the architecture its configuration describes "
            f"(hidden {list(config.hidden)}): {str(err).splitlines()[1].strip()}"
        ) from err
    return model, config


def _shape_of(state: dict[str, Any], key: str, axis: int, path: Any) -> int:
    if key not in state or np.ndim(state[key]) != 2:
        raise io.CheckpointError(f"{path}: no 2-D weight {key!r}; not an MLP checkpoint")
    return int(np.shape(state[key])[axis])


def evaluate_checkpoint(path: str | Path) -> tuple[float, TrainConfig]:
    """Test accuracy of a saved model on its own data set's test split."""
    model, config = load_model(path)
    _, test_set = prepare_data(config)
    n_in = json.loads(io.load_metadata(path).get("io_shape", "[null]"))[0]
    if n_in is None:
        n_in = model[0].in_features  # type: ignore[index]
    if test_set.X.shape[1] != n_in:
        raise io.CheckpointError(
            f"{path}: the model takes {n_in} inputs but {config.data} has "
            f"{test_set.X.shape[1]} features"
        )
    _, accuracy = _evaluate(model, test_set.X, test_set.y)
    return accuracy, config
