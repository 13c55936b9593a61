"""Optimizers and learning-rate schedules."""

from __future__ import annotations

from .optimizers import *  # noqa: F403
from .optimizers import __all__ as __all__
