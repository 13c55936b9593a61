"""The three array backends a Tensor's data can live on, and moving arrays between them.

- ``"numpy"``: NumPy arrays in this process's memory (the default);
- ``"cupy"``: CuPy arrays on one NVIDIA GPU (``pip install 'chainrule[cupy]'``);
- ``"dask"``: Dask arrays: chunked and lazy, computed by Dask's scheduler (threads in this
  process, or the workers of a ``dask.distributed`` cluster), ``pip install 'chainrule[dask]'``.

Ops compute in the namespace of their inputs; nothing here is called on the way. Moving is
explicit (:func:`convert`, which ``cr.to`` and ``Module.to`` call): a NumPy array meeting a
CuPy array in an op is an error that names both (never a silent copy between host and GPU),
while a NumPy array meeting a Dask array is fine (Dask takes NumPy arrays in; the result is
Dask). Neither CuPy nor Dask is imported until an array of theirs is asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from . import to_numpy

__all__ = ["BACKENDS", "backend_of", "check_backend", "convert", "mixed_devices", "compute"]

BACKENDS = ("numpy", "cupy", "dask")


def backend_of(value: Any) -> str:
    """``"numpy"``, ``"cupy"`` or ``"dask"`` for an array (a Dask array of CuPy blocks is
    ``"dask"``); the module name's root for any other array type (``"array_api_strict"``)."""
    root = type(value).__module__.split(".")[0]
    if root in ("cupy", "dask") or not isinstance(value, (np.ndarray, np.generic)):
        return "numpy" if root == "builtins" else root
    return "numpy"


def _import(backend: str) -> Any:
    extra = {"cupy": "cupy", "dask": "dask"}[backend]
    try:
        module = importlib.import_module("dask.array" if backend == "dask" else "cupy")
    except ImportError as err:
        raise ImportError(
            f"the {backend!r} backend needs {extra.capitalize()}, which is not installed: "
            f"pip install 'chainrule[{extra}]' ({err})"
        ) from None
    if backend == "cupy":
        try:
            count = module.cuda.runtime.getDeviceCount()
        except Exception as err:  # (CUDA missing, a driver error)
            raise RuntimeError(
                f"the 'cupy' backend needs an NVIDIA GPU that CuPy can use; CuPy says: {err}"
            ) from None
        if count < 1:
            raise RuntimeError("the 'cupy' backend needs an NVIDIA GPU; CuPy sees none")
    return module


def check_backend(backend: str, who: str = "convert") -> None:
    """Raise ValueError, naming ``who`` asked, where ``backend`` is not one of BACKENDS."""
    if backend not in BACKENDS:
        raise ValueError(f"{who}: backend must be one of {BACKENDS}, got {backend!r}")


def convert(value: Any, backend: str, chunks: Any = None) -> Any:
    """``value`` (an array of any backend) as an array of ``backend``, with its dtype.

    To Dask, ``chunks`` is Dask's (``"auto"`` where not given, one block per array of under
    128 MiB); a Dask array given new ``chunks`` is rechunked. From Dask the values are
    computed (one ``compute``). NumPy to NumPy is the array itself: no copy.
    """
    check_backend(backend)
    source = backend_of(value)
    if backend == "numpy":
        return value if source == "numpy" else to_numpy(value)
    module = _import(backend)
    if backend == "cupy":
        if source == "dask":
            return value.map_blocks(module.asarray, dtype=value.dtype)
        return module.asarray(value)
    if source == "dask":
        return value if chunks is None else value.rechunk(chunks)
    return module.from_array(value, chunks="auto" if chunks is None else chunks)


def mixed_devices(arrays: Any) -> str | None:
    """Where ``arrays`` hold both GPU (CuPy) and host (NumPy) arrays: a sentence naming both
    and what to do; else None. Dask arrays mix with either (Dask converts its inputs)."""
    kinds = {backend_of(a) for a in arrays if hasattr(a, "dtype")}
    if "cupy" in kinds and "numpy" in kinds:
        return (
            "the inputs are on different devices, a CuPy array (GPU) and a NumPy array (host "
            "memory); chainrule makes no silent copies between them: move one with "
            "cr.to(tensor, 'cupy') or cr.to(tensor, 'numpy') (a Module with model.to(...))"
        )
    return None


def compute(arrays: list[Any]) -> list[Any]:
    """The arrays with every Dask array among them computed, all in one ``dask.compute``
    (one pass over the task graph, shared work done once); others as they are."""
    lazy = [i for i, a in enumerate(arrays) if backend_of(a) == "dask"]
    if not lazy:
        return list(arrays)
    import dask

    done = dask.compute(*(arrays[i] for i in lazy))
    out = list(arrays)
    for i, value in zip(lazy, done):
        out[i] = value
    return out
