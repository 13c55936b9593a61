"""What defines a training run of ``chainrule train``: :class:`TrainConfig`, the settings
it accepts, and :class:`ConfigError` for one it cannot run.

>>> TrainConfig(data="moons", hidden=(16,)).validate().hidden
(16,)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import nn
from .models import MODELS

__all__ = [
    "ACTIVATIONS",
    "DATASETS",
    "FILE_TYPES",
    "OPTIMIZERS",
    "ConfigError",
    "TrainConfig",
]

DATASETS = ("digits", "moons", "spirals", "mnist1d")
FILE_TYPES = (".csv", ".npz", ".npy")  # a user's own data, --data PATH with --target COLUMN
# the nonlinearities an MLP can use, from nn's table of activation layers
ACTIVATIONS = tuple(name for name in nn.ACTIVATION_LAYERS if name != "identity")
OPTIMIZERS = ("adam", "adamw", "sgd")


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
    model: str = "mlp"
    target: str | None = None

    @property
    def from_file(self) -> bool:
        return self.data not in DATASETS

    def validate(self) -> TrainConfig:
        if self.from_file:
            path = Path(self.data)
            if path.suffix.lower() not in FILE_TYPES:
                raise ConfigError(
                    f"unknown data set {self.data!r}; choose one of {', '.join(DATASETS)}, or "
                    f"give a file ({', '.join(FILE_TYPES)})"
                )
            if not path.is_file():
                raise ConfigError(f"--data {self.data}: no such file")
        elif self.target is not None:
            raise ConfigError(f"--target names a column of a data file; {self.data} has its own")
        if self.model not in MODELS:
            raise ConfigError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
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
