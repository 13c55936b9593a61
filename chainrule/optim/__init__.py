"""Optimizers (SGD, Adam, AdamW, RMSprop, Adagrad) with PyTorch's param groups and update
rules, and learning-rate schedules, each with a flat ``state_dict()`` for checkpoints."""

from __future__ import annotations

from .adaptive import Adagrad, RMSprop
from .cyclic import OneCycleLR, ReduceLROnPlateau
from .optimizer import Optimizer
from .optimizers import SGD, Adam, AdamW
from .schedulers import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    StepLR,
)

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "LRScheduler",
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "LinearLR",
    "OneCycleLR",
    "ReduceLROnPlateau",
]
