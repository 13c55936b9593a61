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
from ..transforms.backend import compute
from . import memory
from .backend import Backend
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
    "memory_refusal",
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
    try:
        train_set, test_set = datasets.split(
            ds, test_fraction=config.test_fraction, seed=config.seed
        )
    except ValueError as err:  # too few samples for a training and a test set
        reason = str(err).removeprefix("split: ")
        raise ConfigError(
            f"cannot split {config.data} for training and testing: {reason}"
        ) from None
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


def memory_refusal(
    config: TrainConfig, train_set: datasets.Dataset, test_set: datasets.Dataset
) -> str | None:
    """Why training the configured model on this split would not fit in this machine's
    memory ("would need about 23.8 GiB (...); this machine has ..."), or None if it fits.
    Made from the sizes alone, before anything is built."""
    n_in, n_out = _io_sizes(train_set)
    regression = train_set.n_classes is None
    # evaluation runs a whole set at once: the test set, and for a regressor the training set
    evaluated = max(len(test_set), len(train_set) if regression else 0)
    batch = min(config.batch_size, len(train_set))
    needed = memory.training_bytes(config, n_in, n_out, batch, evaluated)
    return memory.refusal(needed, "parameters, gradients, optimizer state and activations")


def _io_sizes(train_set: datasets.Dataset) -> tuple[int, int]:
    """(inputs, outputs) of a model for this data: one output for a regressor."""
    n_out = 1 if train_set.n_classes is None else int(train_set.n_classes)
    return int(train_set.X.shape[1]), n_out


def _sizes(config: TrainConfig) -> str:
    """The settings that size the model, in words."""
    if config.model == "mlp":
        return f"hidden {list(config.hidden)}"
    return f"model {config.model}"


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


def _evaluate(
    model: nn.Module, X: np.ndarray, y: np.ndarray, backend: Backend | None = None
) -> tuple[float, float]:
    """(loss, score) of the model on a whole set, in eval mode: mean cross-entropy and
    accuracy for a classifier, mean squared error and R^2 for a regressor. The set is moved
    where the model is (the GPU for CuPy)."""
    regression = y.dtype.kind == "f"
    place = backend.device if backend is not None else (lambda a: a)
    model.eval()
    with no_grad():
        out = model(place(X))
        loss = float(_loss(out, place(y), regression))
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
    backend: Backend | None = None,
) -> TrainResult:
    """Train the configured model; seeded and reproducible run to run.

    ``on_step(step, loss)`` and ``on_epoch(metrics)`` report progress. With ``checkpoint``
    the parameters at the end of each epoch are saved there (atomically); with ``state`` the
    whole training state too (model, optimizer, schedule, epoch, history: ``cr.save_training``),
    from which ``resume=True`` continues, giving the same numbers as a run that never stopped
    (each epoch's batch order depends on the seed and the epoch alone). A KeyboardInterrupt
    stops the run cleanly: the last completed epoch is what remains saved, and the result
    says ``interrupted``. ``backend`` (``chainrule.cli.backend``) places the model and the
    training rows, NumPy in this process where not given; each step's lazy (Dask) loss and
    gradients are computed in one pass before the optimizer steps.
    """
    config.validate()
    train_set, test_set = prepare_data(config)
    regression = train_set.n_classes is None
    reason = memory_refusal(config, train_set, test_set)
    if reason is not None:
        raise ConfigError(f"{_sizes(config)} on {config.data}: the run {reason}")
    n_in, n_out = _io_sizes(train_set)
    backend = backend if backend is not None else Backend()
    model = backend.place_model(build_model(config, n_in, n_out))
    model.io_shape = (n_in, n_out)  # what the checkpoint needs to rebuild it
    model.feature_statistics = feature_statistics(config)
    X, y = backend.training_rows(train_set.X, train_set.y)
    opt = _optimizer(config, model.parameters())
    schedule = optim.CosineAnnealingLR(opt, config.epochs) if config.schedule == "cosine" else None
    result = TrainResult(config, model)
    first = 1
    if resume:
        if state is None or not Path(state).is_file():
            raise ConfigError(f"--resume: no training state to continue from at {state}")
        result.history, first = _resume(state, model, opt, schedule, config)
    start = time.perf_counter()
    step = 0
    saving = None  # the metrics of an epoch whose checkpoint is being written
    try:
        for epoch in range(first, config.epochs + 1):
            epoch_start = time.perf_counter()
            seen, loss_sum, correct = 0, 0.0, 0
            batches = backend.batches(X, y, config.batch_size, seed=config.seed * 100003 + epoch)
            for xb, yb in batches:
                logits = model(xb)
                loss = _loss(logits, yb, regression)
                opt.zero_grad()
                loss.backward()
                with no_grad():
                    hits = None if regression else (logits.argmax(axis=1) == yb).sum()
                compute(loss, *([] if hits is None else [hits]), model)  # (Dask: one pass)
                opt.step()
                step += 1
                value = float(loss)
                loss_sum += value * len(yb)
                if hits is not None:
                    correct += int(hits.item())
                seen += len(yb)
                if on_step is not None:
                    on_step(step, value)
            lr = opt.lr
            if schedule is not None:
                schedule.step()
            test_loss, test_acc = _evaluate(model, test_set.X, test_set.y, backend)
            elapsed = time.perf_counter() - epoch_start
            metrics = EpochMetrics(
                epoch=epoch,
                train_loss=loss_sum / max(seen, 1),
                train_accuracy=(
                    correct / max(seen, 1)
                    if not regression
                    else _evaluate(model, train_set.X, train_set.y, backend)[1]
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


def _resume(
    state: str | Path, model: nn.Module, opt: optim.Optimizer, schedule: Any, config: TrainConfig
) -> tuple[list[EpochMetrics], int]:
    """Load the training state into the model, optimizer and schedule; (the history so far,
    the first epoch still to run). ConfigError, in one line, for a state that does not fit."""
    try:
        done = io.load_training(state, model, opt, schedule)
        history = [EpochMetrics(**m) for m in done["extra"]["history"]]
        return history, int(done["epoch"]) + 1
    except (ValueError, KeyError, TypeError) as err:
        # load_training lists every problem under headings that end in ':'; the first
        # problem itself (a shape that does not fit, say) is the line to show
        lines = [line.strip() for line in str(err).splitlines()] or [type(err).__name__]
        problem = next((line for line in lines if not line.endswith(":")), lines[-1])
        raise ConfigError(
            f"--resume: {state} does not fit the run its configuration describes "
            f"({_sizes(config)}): {problem}"
        ) from None


def resumed_config(state: str | Path) -> TrainConfig:
    """The configuration of the run whose training state is at ``state``."""
    try:
        meta = io.load_metadata(state)
        return TrainConfig.from_dict(json.loads(meta["extra"])["config"]).validate()
    except (OSError, KeyError, TypeError, ValueError, RecursionError) as err:
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
    """Rebuild the model a checkpoint was saved from, with its parameters. Its metadata (the
    configuration, the input and output sizes) is checked, and the model's size against this
    machine's memory, before anything is built."""
    meta = io.load_metadata(path)
    config = _checkpoint_config(path, meta)
    n_in, n_out = _checkpoint_io_shape(path, meta)
    needed = memory.evaluation_bytes(config, n_in, n_out, evaluated_rows=0)
    reason = memory.refusal(needed, "parameters and the copies reading them makes")
    if reason is not None:
        raise io.CheckpointError(
            f"{path}: the model of its {_sizes(config)} {reason}; load it on a machine with "
            "more memory"
        )
    state = io.load(path)
    model = build_model(config, n_in, n_out)
    try:
        model.load_state_dict(state)
    except nn.StateDictError as err:
        raise io.CheckpointError(
            f"{path}: the weights do not fit the architecture its configuration describes "
            f"(hidden {list(config.hidden)}): {str(err).splitlines()[1].strip()}"
        ) from err
    return model, config


def _checkpoint_config(path: str | Path, meta: dict[str, str]) -> TrainConfig:
    """The validated training configuration in a checkpoint's metadata."""
    if meta.get("format") != CHECKPOINT_FORMAT or "config" not in meta:
        raise io.CheckpointError(
            f"{path}: a safetensors file, but not a chainrule training checkpoint (no "
            "training configuration in its metadata)"
        )
    try:
        return TrainConfig.from_json(meta["config"]).validate()
    except (TypeError, ValueError, KeyError) as err:
        raise io.CheckpointError(
            f"{path}: its training configuration is unreadable ({err})"
        ) from err


def _checkpoint_io_shape(path: str | Path, meta: dict[str, str]) -> tuple[int, int]:
    """(inputs, outputs) of a checkpoint's model: its metadata's io_shape, checked, or, in
    checkpoints older than io_shape (MLPs only), the shapes of its first and last weights."""
    if "io_shape" not in meta:
        state = io.load(path)
        n_in = _shape_of(state, "0.weight", 1, path)
        layers = [int(k.split(".")[0]) for k in state if k.split(".")[0].isdigit()]
        return n_in, _shape_of(state, f"{max(layers)}.weight", 0, path)
    try:
        shape = json.loads(meta["io_shape"])
    except (ValueError, RecursionError):
        shape = None
    if not (
        isinstance(shape, list)
        and len(shape) == 2
        and all(type(v) is int and v >= 1 for v in shape)
    ):
        raise io.CheckpointError(
            f"{path}: its io_shape {meta['io_shape']!r} is not two positive integers "
            "(the model's inputs and outputs)"
        )
    return int(shape[0]), int(shape[1])


def _shape_of(state: dict[str, Any], key: str, axis: int, path: Any) -> int:
    if key not in state or np.ndim(state[key]) != 2:
        raise io.CheckpointError(f"{path}: no 2-D weight {key!r}; not an MLP checkpoint")
    return int(np.shape(state[key])[axis])


def evaluate_checkpoint(path: str | Path) -> tuple[float, TrainConfig]:
    """Test accuracy of a saved model on its own data set's test split. The checkpoint's
    sizes are checked against the data and this machine's memory before the model is built."""
    meta = io.load_metadata(path)
    config = _checkpoint_config(path, meta)
    try:
        train_set, test_set = prepare_data(config)
    except ConfigError as err:
        raise io.CheckpointError(f"{path}: its data set cannot be used: {err}") from None
    n_in, n_out = _checkpoint_io_shape(path, meta)
    data_in, data_out = _io_sizes(train_set)
    if n_in != data_in:
        raise io.CheckpointError(
            f"{path}: the model takes {n_in} inputs but {config.data} has {data_in} features"
        )
    if n_out != data_out:
        raise io.CheckpointError(
            f"{path}: the model gives {n_out} outputs but {config.data} needs {data_out} "
            f"({'a regression target' if train_set.n_classes is None else 'one per class'})"
        )
    needed = memory.evaluation_bytes(config, n_in, n_out, len(test_set))
    reason = memory.refusal(needed, f"parameters and the activations of {len(test_set)} rows")
    if reason is not None:
        raise io.CheckpointError(
            f"{path}: evaluating the model of its {_sizes(config)} {reason}; evaluate it on a "
            "machine with more memory"
        )
    model, _ = load_model(path)
    _, accuracy = _evaluate(model, test_set.X, test_set.y)
    return accuracy, config
