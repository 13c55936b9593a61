"""The environment every timed run of the suite shares: 2 threads for every library.

Set before NumPy (or anything else that loads a BLAS) is imported: ``prepare`` re-executes the
script with it when the environment differs. It also removes OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE, which this environment may set for old OpenBLAS builds and which slow a
current NumPy. Used by ``run.py`` (``make bench``) and ``profile_step.py``; imports nothing
heavy.
"""

from __future__ import annotations

import json
import os
import sys

__all__ = ["THREADS", "THREAD_ENV", "REMOVED_ENV", "MARK", "prepare"]

THREADS = 2
THREAD_ENV = {
    "OMP_NUM_THREADS": str(THREADS),
    "MKL_NUM_THREADS": str(THREADS),
    "OPENBLAS_NUM_THREADS": str(THREADS),
    # XLA has no documented thread cap; these are the flags its maintainers point to. The
    # machine's core count bounds it in any case (recorded by run.py).
    "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={THREADS}",
    "JAX_PLATFORMS": "cpu",
}
REMOVED_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
MARK = "CHAINRULE_BENCH_ENV"  # set once prepared: what was removed, whether it re-executed


def prepare(script: str) -> None:
    """Re-execute ``script`` (with the same arguments) in the benchmark's environment unless
    this process already has it. Call it before NumPy is imported."""
    if MARK in os.environ:
        return
    removed = {k: os.environ[k] for k in REMOVED_ENV if k in os.environ}
    differs = {k: v for k, v in THREAD_ENV.items() if os.environ.get(k) != v}
    record = {"removed": removed, "reexecuted": bool(removed or differs)}
    if not record["reexecuted"]:
        os.environ[MARK] = json.dumps(record)
        return
    env = {k: v for k, v in os.environ.items() if k not in REMOVED_ENV}
    env.update(THREAD_ENV)
    env[MARK] = json.dumps(record)
    os.execve(sys.executable, [sys.executable, os.path.abspath(script), *sys.argv[1:]], env)
