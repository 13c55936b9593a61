"""Checkpoints: safetensors files, written atomically and checksummed."""

from __future__ import annotations

from .checkpoint import *  # noqa: F403
from .checkpoint import __all__ as __all__
