"""Where ``chainrule train`` computes: ``--backend numpy`` (this process, the default),
``cupy`` (one NVIDIA GPU) or ``dask`` (chunks of the training rows, on Dask's threads here or
on the workers of a cluster: ``--workers N`` starts one on this machine, ``--scheduler
ADDRESS`` joins a running one).

With Dask the parameters stay NumPy arrays in this process and the training rows become a
Dask array chunked by rows, so that each step's forward pass, backward pass and every
gradient are one data-parallel Dask computation (``cr.compute(loss, model)``), after which
the optimizer steps on NumPy arrays. Without ``--batch-size`` the whole training set is one
batch (gradient descent); with it, each batch is a slice of consecutive rows.

>>> backend = Backend("numpy")
>>> X, y = np.arange(8.0).reshape(4, 2), np.arange(4)
>>> [len(yb) for _, yb in backend.batches(X, y, 3, seed=0)]
[3, 1]
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import data as datasets
from ..backends.devices import BACKENDS, convert
from ..nn import Module
from .commands import CommandError

__all__ = ["BACKENDS", "CONNECT_TIMEOUT_S", "Backend", "open_backend", "require"]

CONNECT_TIMEOUT_S = 10  # how long --scheduler ADDRESS may take to answer

_DASK_MISSING = "--backend dask needs Dask, which is not installed: pip install 'chainrule[dask]'"


@dataclass
class Backend:
    """How a training run places its model and data, and cuts its batches.

    ``chunk_rows`` is the Dask chunking of the training rows; ``full_batch`` makes one batch
    of all of them (Dask without ``--batch-size``).
    """

    name: str = "numpy"
    chunk_rows: int | None = None
    full_batch: bool = False
    workers: int = 1  # (what the Dask computation runs on, for the run's first line)

    def describe(self, rows: int, batch_size: int) -> str:
        """Where the steps run, for a run's first line ('' for NumPy, the default).

        >>> Backend("dask", chunk_rows=400, workers=2).describe(800, 800)
        ', on Dask (2 workers, 2 chunks of up to 400 rows, full batch)'
        """
        if self.name == "cupy":
            return ", on the GPU (CuPy)"
        if self.name != "dask":
            return ""
        chunks = -(-rows // (self.chunk_rows or rows))
        batch = "full batch" if batch_size >= rows else f"batches of {batch_size} rows"
        return (
            f", on Dask ({self.workers} worker{'s' if self.workers != 1 else ''}, {chunks} "
            f"chunk{'s' if chunks != 1 else ''} of up to {self.chunk_rows or rows} rows, {batch})"
        )

    def place_model(self, model: Module) -> Module:
        """The model on the device its steps run on (the GPU for CuPy; NumPy otherwise)."""
        return model.to("cupy") if self.name == "cupy" else model

    def device(self, array: Any) -> Any:
        """An array where the model can read it: the GPU for CuPy, as it is otherwise."""
        return convert(array, "cupy") if self.name == "cupy" else array

    def training_rows(self, X: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        """The training set as the steps read it: on the GPU for CuPy; for Dask, chunked by
        rows and persisted (on the cluster's workers where there is one), so that steps do
        not send the data again."""
        if self.name == "cupy":
            return self.device(X), self.device(y)
        if self.name != "dask":
            return X, y
        import dask

        rows = self.chunk_rows or len(y)
        X = convert(X, "dask", chunks=(rows, *X.shape[1:]))
        y = convert(y, "dask", chunks=(rows,))
        return dask.persist(X, y)

    def batches(self, X: Any, y: Any, batch_size: int, seed: int) -> Iterator[tuple[Any, Any]]:
        """One epoch's batches. NumPy and CuPy: shuffled rows (the same order on both). Dask:
        the whole set, or slices of ``batch_size`` consecutive rows in a shuffled order."""
        if self.name == "numpy":
            yield from datasets.batches(X, y, batch_size, seed=seed)
        elif self.name == "cupy":
            order = np.arange(len(y))
            for idx, _ in datasets.batches(order, order, batch_size, seed=seed):
                idx = self.device(idx)
                yield X[idx], y[idx]
        elif self.full_batch:
            yield X, y
        else:
            starts = np.arange(0, len(y), batch_size)
            for start in np.random.default_rng(seed).permutation(starts):
                yield X[start : start + batch_size], y[start : start + batch_size]


@contextmanager
def open_backend(
    name: str, workers: int | None = None, scheduler: str | None = None
) -> Iterator[Backend]:
    """The backend ``name``, its libraries checked; for Dask with ``workers`` a local cluster
    of that many worker processes (loopback only, no dashboard), or with ``scheduler`` a
    client of a running cluster. Both are closed on the way out, whatever happens inside;
    a cluster's failure inside becomes a one-line :class:`CommandError`."""
    cluster_wanted = workers is not None or scheduler is not None
    require(name, cluster_wanted)
    if name != "dask":
        yield Backend(name)
        return
    if not cluster_wanted:  # Dask's threads, in this process
        yield Backend("dask", workers=os.cpu_count() or 1)
        return
    import distributed

    log = logging.getLogger("distributed")
    level = log.level
    log.setLevel(logging.CRITICAL)  # (its own lines on stderr; failures come as exceptions)
    cluster, client = None, None
    try:
        if scheduler is not None:
            client = _connect(distributed, scheduler)
        else:
            cluster = distributed.LocalCluster(
                n_workers=workers,
                processes=True,
                threads_per_worker=1,
                host="127.0.0.1",
                dashboard_address=None,
                # (the scheduler's health page: on loopback, any free port)
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.CRITICAL,
            )
            client = distributed.Client(cluster)
        count = len(client.scheduler_info().get("workers", {})) or 1
        yield Backend("dask", workers=count)
    except Exception as err:
        if type(err).__module__.split(".")[0] not in ("distributed", "tornado"):
            raise
        raise CommandError(f"the Dask cluster failed: {_one_line(err)}") from None
    finally:
        for part in (client, cluster):
            if part is not None:
                part.close()
        log.setLevel(level)


def require(name: str, cluster: bool = False) -> None:
    """CommandError, in one line saying what to install, where the libraries of backend
    ``name`` are missing (with ``cluster``, Dask's distributed too) or CuPy sees no GPU."""
    if name == "cupy":
        _check_cupy()
    if name != "dask":
        return
    try:
        import dask.array  # noqa: F401

        if cluster:
            import distributed  # noqa: F401
    except ImportError as err:
        what = "dask.distributed" if err.name and "distributed" in err.name else "Dask"
        raise CommandError(_DASK_MISSING.replace("Dask,", f"{what},")) from None


def _connect(distributed: Any, address: str) -> Any:
    try:
        return distributed.Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, ValueError, TypeError) as err:
        raise CommandError(
            f"--scheduler {address}: cannot connect ({_one_line(err)}); give the address a "
            "running Dask scheduler prints (tcp://HOST:PORT), or --workers N for a local one"
        ) from None


def _check_cupy() -> None:
    """CommandError, in one line, unless CuPy imports and sees a GPU."""
    install = "pip install 'chainrule[cupy]' (CuPy for CUDA 12) on a machine with an NVIDIA GPU"
    try:
        import cupy
    except ImportError:
        raise CommandError(f"--backend cupy needs CuPy, not installed: {install}") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # (no CUDA driver, a driver error)
        raise CommandError(
            f"--backend cupy needs an NVIDIA GPU that CuPy can use; CuPy says: {_one_line(err)}"
        ) from None
    if count < 1:
        raise CommandError("--backend cupy needs an NVIDIA GPU; CuPy sees none")


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__
