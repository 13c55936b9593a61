"""The libraries compared, imported once; a peer that fails to import is reported missing.

Import this module only after ``run.py`` has set the thread environment: NumPy's OpenBLAS,
PyTorch's OpenMP/MKL and XLA read it when they load.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from types import ModuleType
from typing import Any

__all__ = ["PEERS", "LIBS", "get", "missing", "versions", "setup"]

# Display order in every table: ours, the peers, then the floor.
LIBS = ["chainrule", "torch", "jax", "autograd", "mygrad", "micrograd", "numpy"]
PEERS = ["torch", "jax", "autograd", "mygrad", "micrograd"]

_modules: dict[str, Any] = {}
_errors: dict[str, str] = {}


def _try(name: str, loader: Any) -> None:
    try:
        _modules[name] = loader()
    except Exception as err:  # any failure to import makes the peer "missing", never fatal
        _errors[name] = f"{type(err).__name__}: {err}"[:300]


def _load_torch() -> ModuleType:
    import torch

    torch.set_num_threads(2)
    return torch


def _load_jax() -> ModuleType:
    import jax

    jax.config.update("jax_enable_x64", True)  # float64 workloads; float32 inputs stay float32
    jax.config.update("jax_platforms", "cpu")
    return jax


def _load_micrograd() -> ModuleType:
    from micrograd import engine

    return engine


def setup(only: list[str] | None = None) -> None:
    """Import every library (or those in ``only``; chainrule and NumPy always)."""
    wanted = set(only or LIBS) | {"chainrule", "numpy"}
    _try("numpy", lambda: importlib.import_module("numpy"))
    _try("chainrule", lambda: importlib.import_module("chainrule"))
    loaders = {
        "torch": _load_torch,
        "jax": _load_jax,
        "autograd": lambda: importlib.import_module("autograd"),
        "mygrad": lambda: importlib.import_module("mygrad"),
        "micrograd": _load_micrograd,
    }
    for name, loader in loaders.items():
        if name in wanted:
            _try(name, loader)
        else:
            _errors[name] = "left out (--libs)"


def get(name: str) -> Any:
    """The imported module of a library, or None when it is missing."""
    return _modules.get(name)


def missing() -> dict[str, str]:
    """Library -> why it is missing."""
    return dict(_errors)


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """Installed versions of everything that bears on the numbers."""
    names = {
        "chainrule": "chainrule",
        "numpy": "numpy",
        "torch": "torch",
        "jax": "jax",
        "jaxlib": "jaxlib",
        "autograd": "autograd",
        "mygrad": "mygrad",
        "micrograd": "micrograd",
        "scipy": "scipy",
        "array-api-compat": "array-api-compat",
        "threadpoolctl": "threadpoolctl",
        "psutil": "psutil",
    }
    return {label: _dist_version(dist) for label, dist in names.items()}
