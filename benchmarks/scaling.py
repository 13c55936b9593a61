"""Workload 9, scaling out on Dask: data-parallel training throughput, and memory out of core.

9a. **Throughput.** Full-batch gradient descent on an MLP 32-64-64-1 (tanh, binary
    cross-entropy with logits, float64) over 10^6 rows of 32 features (``--quick``: 2.5 x
    10^5), the data and labels of ``examples/out_of_core.py``: rows per second of training
    steps (forward, backward, one ``cr.compute`` of the loss and the gradients, an SGD step on
    the client), by

    - ``numpy``: chainrule's NumPy backend in this process, the data in memory (2 BLAS
      threads, as every case of the suite);
    - ``numpy, blocks``: the same in this process, over the blocks of the Dask runs one
      after the other, the gradients accumulated (what blocking does without parallelism:
      activations of 62,500 rows, not 10^6);
    - ``dask N``: a ``distributed.LocalCluster`` of N worker processes (N = 1, 2, 4), one
      thread and one BLAS thread each, the data persisted on the workers in blocks of 62,500
      rows: each step's gradient is the sum of the blocks' gradients, computed where the
      blocks are.

    All clusters run at once and every round (at most 5) steps each configuration once, the order
    rotating (``harness.interleave``); each configuration trains its own copy of the same
    model, so after the same number of steps all must hold the same weights (checked to
    1e-9, relative: the sums are taken in different orders). The ratio column is throughput
    over the NumPy backend's, per round.

9b. **Memory out of core.** ``examples/out_of_core.py``'s gradient (one pass: the data
    generated block by block on the workers, never stored) over 2^20, 2^22 and 2^24 rows of 32
    float64 (256 MiB, 1 GiB, 4 GiB; ``--quick``: 2^18 to 2^22) in blocks of 2^17 rows (32 MiB)
    on 2 workers with a 768 MiB limit each, a fresh cluster per size. Each worker's resident
    memory (RSS) is sampled every 5 ms by a thread on the worker (psutil, started with
    ``client.run``): its idle value after a warm-up and its peak during the pass.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from .harness import fmt_num, fmt_table, interleave, log

__all__ = ["run"]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "out_of_core.py"
WORKERS = (1, 2, 4)
FEATURES = 32
HIDDEN = 64
CHUNK_ROWS = 62_500
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
MiB = 2**20


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("out_of_core", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cluster(ooc: Any, workers: int, memory_limit: str) -> tuple[Any, Any]:
    """The example's cluster, with one BLAS thread a worker, and a client of it that is not
    the default (several clusters live at once: each case picks its own with
    ``Client.as_current``)."""
    return ooc.start_cluster(workers, memory_limit, env=ONE_THREAD, default=False)


def _mlp(cr: Any) -> Any:
    return cr.nn.Sequential(
        cr.nn.Linear(FEATURES, HIDDEN, rng=1),
        cr.nn.Tanh(),
        cr.nn.Linear(HIDDEN, HIDDEN, rng=2),
        cr.nn.Tanh(),
        cr.nn.Linear(HIDDEN, 1, rng=3),
    )


def _step_case(cr: Any, model: Any, X: Any, y: Any, client: Any, steps: int) -> Any:
    """A case of ``steps`` training steps on ``X``, ``y``; returns seconds per step. With a
    client, its cluster computes (``Client.as_current``: several clusters live at once)."""
    opt = cr.optim.SGD(model.parameters(), lr=0.5)
    bce = cr.nn.functional.binary_cross_entropy_with_logits

    def case() -> float:
        scope = client.as_current() if client is not None else contextlib.nullcontext()
        start = time.perf_counter()
        with scope:
            for _ in range(steps):
                loss = bce(model(cr.tensor(X)), cr.tensor(y))
                loss.backward()
                cr.compute(loss, model)  # (NumPy: nothing to do)
                opt.step()
                opt.zero_grad()
        return (time.perf_counter() - start) / steps

    return case


def _blocked_case(cr: Any, model: Any, X: np.ndarray, y: np.ndarray, rows: int) -> Any:
    """The NumPy backend in this process, over the same blocks as Dask's, one after the
    other: each block's loss (summed, over n) is differentiated and its gradients add up in
    ``.grad``, then one SGD step. The same step as the others (the same sums over blocks):
    what blocking alone does, without a second process."""
    opt = cr.optim.SGD(model.parameters(), lr=0.5)
    bce = cr.nn.functional.binary_cross_entropy_with_logits
    n = len(X)

    def case() -> float:
        start = time.perf_counter()
        for i in range(0, n, rows):
            block = bce(model(cr.tensor(X[i : i + rows])), cr.tensor(y[i : i + rows]), "sum")
            (block / n).backward()
        opt.step()
        opt.zero_grad()
        return time.perf_counter() - start

    return case


def _throughput(cr: Any, ooc: Any, quick: bool, repeats: int) -> tuple[str, dict[str, Any]]:
    rows = 250_000 if quick else 1_000_000
    X, y, _ = ooc.make_data(rows, FEATURES, CHUNK_ROWS, seed=0)
    from distributed import wait

    Xn, yn = (a.compute(scheduler="threads") for a in (X, y))
    clusters = {}
    try:
        for n in WORKERS:
            log(f"workload 9a: starting a LocalCluster of {n} worker processes")
            clusters[n] = _cluster(ooc, n, "2GiB")
        models = {"numpy": _mlp(cr)}
        cases = {"numpy": _step_case(cr, models["numpy"], Xn, yn, None, 1)}
        blocked = f"numpy, blocks of {CHUNK_ROWS:,}"
        models[blocked] = _mlp(cr)
        cases[blocked] = _blocked_case(cr, models[blocked], Xn, yn, CHUNK_ROWS)
        for n, (_, client) in clusters.items():
            Xd, yd = client.persist([X, y])  # the blocks spread over the workers, kept there
            with client.as_current():
                wait([Xd, yd])
            name = f"dask {n}"
            models[name] = _mlp(cr)
            cases[name] = _step_case(cr, models[name], Xd, yd, client, 1)
        outcomes = interleave(cases, repeats=repeats, warmup=1, label="9a", settle=0.15)
        reference = [p.numpy() for p in models["numpy"].parameters()]
        agree = {}
        for name, model in models.items():
            got = [p.numpy() for p in model.parameters()]
            agree[name] = max(
                float(np.max(np.abs(g - r) / (np.abs(r) + 1e-12))) for g, r in zip(got, reference)
            )
        workers_of = {
            f"dask {n}": client.run(lambda: __import__("os").environ.get("OPENBLAS_NUM_THREADS"))
            for n, (_, client) in clusters.items()
        }
    finally:
        for cluster, client in clusters.values():
            client.close()
            cluster.close()
    base = outcomes["numpy"]
    data: dict[str, Any] = {
        "rows": rows,
        "features": FEATURES,
        "chunk_rows": CHUNK_ROWS,
        "model": f"{FEATURES}-{HIDDEN}-{HIDDEN}-1 tanh, BCE with logits, float64",
        "configs": {},
    }
    table = []
    for name, o in outcomes.items():
        if not o.ok:
            table.append([name, o.status, "", "", ""])
            continue
        per_round = [
            (s_base / s) for s_base, s in zip(base.samples["time"], o.samples["time"]) if s > 0
        ]
        ratio = statistics.median(per_round) if per_round else math.nan
        seconds = o.median()
        data["configs"][name] = {
            **o.to_json(scale=1.0),
            "rows_per_s": rows / seconds,
            "throughput_over_numpy": ratio,
            "max_relative_weight_difference": agree.get(name),
            "worker_blas_threads": workers_of.get(name),
        }
        check = "ok" if agree.get(name, math.inf) < 1e-9 else f"differs {agree.get(name):.1e}"
        table.append(
            [name, fmt_num(seconds * 1e3), fmt_num(rows / seconds / 1e6), fmt_num(ratio), check]
        )
    text = (
        f"9a. Data-parallel training: MLP {data['model']}, {rows:,} rows x {FEATURES}, "
        f"full batch; Dask in blocks of {CHUNK_ROWS:,} rows on N worker processes of 1 thread "
        f"(medians of {repeats}, interleaved)\n"
        + fmt_table(["backend", "ms per step", "M rows/s", "throughput / numpy", "weights"], table)
    )
    return text, data


def _memory(ooc: Any, quick: bool) -> tuple[str, dict[str, Any]]:
    chunk_rows = 2**17
    sizes = (2**18, 2**20, 2**22) if quick else (2**20, 2**22, 2**24)
    limit = "768MiB"
    chunk_bytes = chunk_rows * FEATURES * 8
    rows_out, data = [], []
    for rows in sizes:
        log(f"workload 9b: {rows:,} rows, a fresh cluster of 2 workers")
        cluster, client = _cluster(ooc, 2, limit)
        try:
            with client.as_current():
                with contextlib.redirect_stdout(io.StringIO()):
                    ooc.check_gradient(client, FEATURES, 0)  # warm-up: imports, first tasks
                X, y, _ = ooc.make_data(rows, FEATURES, chunk_rows, seed=0)
                model = ooc.logistic_regression(FEATURES)
                start = time.perf_counter()
                with ooc.PeakMemory(client) as memory:
                    loss = ooc.loss_of(model, X, y)
                    loss.backward()
                    ooc.cr.compute(loss, model)
                seconds = time.perf_counter() - start
        finally:
            client.close()
            cluster.close()
        peaks = [memory.peak[a] for a in sorted(memory.peak)]
        idles = [memory.idle[a] for a in sorted(memory.peak)]
        above = [p - i for p, i in zip(peaks, idles)]
        data.append(
            {
                "rows": rows,
                "data_bytes": rows * FEATURES * 8,
                "chunk_bytes": chunk_bytes,
                "blocks": math.ceil(rows / chunk_rows),
                "seconds": seconds,
                "idle_rss_bytes": idles,
                "peak_rss_bytes": peaks,
                "loss": loss.item(),
            }
        )
        rows_out.append(
            [
                f"{rows:,}",
                f"{rows * FEATURES * 8 / MiB:,.0f}",
                f"{math.ceil(rows / chunk_rows)}",
                " / ".join(f"{p / MiB:.0f}" for p in peaks),
                " / ".join(f"{a / MiB:.0f}" for a in above),
                f"{max(above) / chunk_bytes:.1f}",
                f"{seconds:.1f}",
            ]
        )
    text = (
        f"9b. Worker memory out of core: the logistic regression's loss and gradient, one pass, "
        f"data generated on the workers in blocks of {chunk_rows:,} rows x {FEATURES} float64 "
        f"({chunk_bytes / MiB:.0f} MiB); 2 workers, memory_limit {limit} each, RSS sampled "
        "every 5 ms\n"
        + fmt_table(
            [
                "rows",
                "data MiB",
                "blocks",
                "peak RSS MiB (per worker)",
                "above idle MiB",
                "blocks' worth",
                "s",
            ],
            rows_out,
        )
    )
    return text, {"chunk_rows": chunk_rows, "memory_limit": limit, "sizes": data}


def run(quick: bool, repeats: int) -> tuple[str, dict[str, Any]]:
    ooc = _example()
    cr = ooc.cr
    import dask
    import distributed

    versions = f"dask {dask.__version__}, distributed {distributed.__version__}"
    # (at most 5 rounds: a round steps four configurations over 10^6 rows)
    text_a, data_a = _throughput(cr, ooc, quick, min(repeats, 5))
    text_b, data_b = _memory(ooc, quick)
    text = f"9. Scaling out on Dask ({versions})\n{text_a}\n\n{text_b}"
    return text, {"versions": versions, "throughput": data_a, "memory": data_b}
