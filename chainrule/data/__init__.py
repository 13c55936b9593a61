"""Data sets and batching: the bundled digits, generated problems, MNIST-1D, the user's own
files (CSV, .npz, .npy), splits."""

from __future__ import annotations

from .datasets import *  # noqa: F403
from .datasets import __all__ as _datasets_all
from .files import FileDataError, load_file

__all__ = [*_datasets_all, "load_file", "FileDataError"]
