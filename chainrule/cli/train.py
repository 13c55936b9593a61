"""Training an MLP classifier with backprop: the loop behind ``chainrule train``.

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
from ..engine.modes import no_grad
from ..nn import functional as F

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
]

DATASETS = ("digits", "moons", "spirals")
# the nonlinearities an MLP can use, from nn's table of activation layers
ACTIVATIONS = tuple(name for name in nn.ACTIVATION_LAYERS if name != "identity")
OPTIMIZERS = ("adam", "adamw", "sgd")
CHECKPOINT_FORMAT = "chainrule-mlp-classifier/1"


class ConfigError(ValueError):
    """A training configuration that cannot be run; the message says which value and why."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (and is stored in its checkpoint)."""

    data: str = "digits"
    hidden: tuple[int, ...] = (128, 64)
    activation: str = "relu"
    optimizer: str = "adam"
    lr: float = 3e-3
    epochs: int = 30
    batch_size: int = 32
    seed: int = 0
    test_fraction: float = 0.2
    weight_decay: float = 0.0
    schedule: str = "cosine"

    def validate(self) -> TrainConfig:
        if self.data not in DATASETS:
            raise ConfigError(
                f"unknown data set {self.data!r}; choose one of {', '.join(DATASETS)}"
            )
        if not self.hidden or not all(_is_int(h) and h >= 1 for h in self.hidden):
            raise ConfigError(f"hidden sizes must be positive integers, got {self.hidden}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ConfigError(f"the seed must be an integer >= 0, got {self.seed!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
            )
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"the learning rate must be a positive number, got {self.lr}")
        if not _is_int(self.epochs) or self.epochs < 1:
            raise ConfigError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ConfigError(f"the batch size must be an integer >= 1, got {self.batch_size!r}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight decay must be >= 0, got {self.weight_decay}")
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        return self

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        raw = json.loads(text)
        raw["hidden"] = tuple(raw["hidden"])
        return cls(**raw)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


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
    """The seeded train/test split of the configured data set (standardized by the train
    statistics for the generated sets)."""
    ds = (
        datasets.load(config.data, seed=config.seed)
        if config.data != "digits"
        else (datasets.load("digits"))
    )
    train_set, test_set = datasets.split(ds, test_fraction=config.test_fraction, seed=config.seed)
    if config.data != "digits":
        train_set, test_set = datasets.standardize(train_set, test_set)
    return train_set, test_set


def build_model(config: TrainConfig, n_in: int, n_out: int) -> nn.MLP:
    return nn.MLP([n_in, *config.hidden, n_out], activation=config.activation, rng=config.seed)


def _optimizer(config: TrainConfig, params: Any) -> optim.Optimizer:
    if config.optimizer == "adam":
        return optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay or 1e-2)
    return optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)


def _evaluate(model: nn.Module, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of the model on a whole set, in eval mode."""
    model.eval()
    with no_grad():
        logits = model(X)
        loss = float(F.cross_entropy(logits, y))
    model.train()
    accuracy = float(np.mean(np.argmax(logits.numpy(), axis=1) == y))
    return loss, accuracy


def train(
    config: TrainConfig,
    on_step: Callable[[int, float], None] | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    checkpoint: str | Path | None = None,
) -> TrainResult:
    """Train an MLP classifier; seeded and reproducible run to run.

    ``on_step(step, loss)`` and ``on_epoch(metrics)`` report progress. With ``checkpoint``
    the parameters at the end of each epoch are saved there (atomically). A KeyboardInterrupt
    stops the run cleanly: the last completed epoch's parameters are what remains saved, and
    the result says ``interrupted``.
    """
    config.validate()
    train_set, test_set = prepare_data(config)
    n_classes = int(train_set.n_classes or 0)
    model = build_model(config, train_set.X.shape[1], n_classes)
    opt = _optimizer(config, model.parameters())
    schedule = optim.CosineAnnealingLR(opt, config.epochs) if config.schedule == "cosine" else None
    result = TrainResult(config, model)
    start = time.perf_counter()
    step = 0
    saving = None  # the metrics of an epoch whose checkpoint is being written
    try:
        for epoch in range(1, config.epochs + 1):
            epoch_start = time.perf_counter()
            seen, loss_sum, correct = 0, 0.0, 0
            batches = datasets.batches(
                train_set.X, train_set.y, config.batch_size, seed=config.seed * 100003 + epoch
            )
            for xb, yb in batches:
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                value = float(loss)
                loss_sum += value * len(yb)
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
                train_accuracy=correct / max(seen, 1),
                test_loss=test_loss,
                test_accuracy=test_acc,
                lr=lr,
                seconds=elapsed,
                steps_per_second=len(range(0, len(train_set), config.batch_size)) / elapsed,
            )
            if checkpoint is not None:  # saved first: the history never claims more
                saving = metrics
                save_checkpoint(model, config, checkpoint, metrics)
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
    return io.save(model.state_dict(), path, metadata=meta)


def load_model(path: str | Path) -> tuple[nn.MLP, TrainConfig]:
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
    if test_set.X.shape[1] != model[0].in_features:  # type: ignore[attr-defined]
        raise io.CheckpointError(
            f"{path}: the model takes {model[0].in_features} inputs but {config.data} has "  # type: ignore[attr-defined]
            f"{test_set.X.shape[1]} features"
        )
    _, accuracy = _evaluate(model, test_set.X, test_set.y)
    return accuracy, config
