"""Checkpoints: safetensors files, written atomically and checksummed; a whole training run
(model, optimizer, scheduler, epoch, random state) in one of them."""

from __future__ import annotations

from .checkpoint import *  # noqa: F403
from .checkpoint import __all__ as _checkpoint_all
from .training import load_training, save_training

__all__ = [*_checkpoint_all, "save_training", "load_training"]
