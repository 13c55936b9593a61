"""Data sets and batching: the bundled digits, generated problems, CSV files, splits."""

from __future__ import annotations

from .datasets import *  # noqa: F403
from .datasets import __all__ as __all__
