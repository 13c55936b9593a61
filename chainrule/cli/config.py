"""What defines a training run of ``chainrule train``: :class:`TrainConfig`, the settings
it accepts, and :class:`ConfigError` for one it cannot run.

The same checks serve the command line and a checkpoint's metadata, which can be edited by
hand: every setting's type and range is checked before anything is loaded or built.

>>> TrainConfig(data="moons", hidden=(16,)).validate().hidden
(16,)
>>> try:
...     TrainConfig.from_json('{"hidden": [8], "lr": "fast"}').validate()
... except ConfigError as err:
...     print(err)
the learning rate must be a positive number, got 'fast'
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
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
        """Check every setting's type and range (a checkpoint's metadata comes here too);
        returns the config itself, or raises ConfigError naming the setting."""
        for name in ("data", "model", "activation", "optimizer", "schedule"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a name, got {getattr(self, name)!r}")
        if self.target is not None and not isinstance(self.target, str):
            raise ConfigError(f"target must be a column name or index, got {self.target!r}")
        if self.from_file:
            path = Path(self.data)
            if path.suffix.lower() not in FILE_TYPES:
                raise ConfigError(
                    f"unknown data set {self.data!r}; choose one of {', '.join(DATASETS)}, or "
                    f"give a file ({', '.join(FILE_TYPES)})"
                )
            if path.is_dir():
                raise ConfigError(f"--data {self.data}: a folder, not a data file")
            if not path.exists():
                raise ConfigError(f"--data {self.data}: no such file")
            if not path.is_file():
                raise ConfigError(f"--data {self.data}: not a regular file (a device or a pipe?)")
        elif self.target is not None:
            raise ConfigError(f"--target names a column of a data file; {self.data} has its own")
        if self.model not in MODELS:
            raise ConfigError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        hidden = self.hidden
        if not (
            isinstance(hidden, tuple) and hidden and all(_is_int(h) and h >= 1 for h in hidden)
        ):
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
        if not (_is_real(self.lr) and np.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"the learning rate must be a positive number, got {self.lr!r}")
        if not _is_int(self.epochs) or self.epochs < 1:
            raise ConfigError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ConfigError(f"the batch size must be an integer >= 1, got {self.batch_size!r}")
        if not (_is_real(self.test_fraction) and 0.0 < self.test_fraction < 1.0):
            raise ConfigError(f"test_fraction must be in (0, 1), got {self.test_fraction!r}")
        wd = self.weight_decay
        if not (_is_real(wd) and np.isfinite(wd) and wd >= 0):
            raise ConfigError(f"weight decay must be a finite number >= 0, got {wd!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        return self

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        """The configuration :meth:`to_json` wrote (not validated yet: call ``validate()``);
        ConfigError for text that is not such an object."""
        try:
            raw = json.loads(text)
        except RecursionError:  # (json.loads recurses: "[[[[...]]]]" deep enough ends here)
            raise ConfigError("the JSON is nested too deeply") from None
        except ValueError as err:
            raise ConfigError(f"not JSON ({err})") from None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: Any) -> TrainConfig:
        """The configuration from a mapping of its settings (as ``to_json`` writes them,
        ``hidden`` a list); not validated yet. ConfigError for anything else."""
        if not isinstance(raw, dict):
            raise ConfigError(f"expected a JSON object of settings, got a {type(raw).__name__}")
        unknown = sorted(set(raw) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown settings {', '.join(map(repr, unknown))}")
        hidden = raw.get("hidden", list(cls.hidden))
        if not isinstance(hidden, list):
            raise ConfigError(f"hidden must be a list of sizes, got {hidden!r}")
        return cls(**{**raw, "hidden": tuple(hidden)})


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
