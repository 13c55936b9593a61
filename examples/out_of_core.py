"""Out of core: gradient descent over more data than the workers have memory, on Dask.

A logistic regression, p(y = 1 | x) = sigmoid(w . x + b), fitted by full-batch gradient
descent to n rows of d features. The features are standard normal and the labels come from a
fixed weight vector plus logistic noise,

    y = 1[x . w_true + noise > 0],

which is exactly the model being fitted, so what it learns can be checked: w turns towards
w_true. (At w = 0 the gradient is -X^T (y - 1/2) / n, whose expectation is a positive multiple
of -w_true: Stein's lemma for Gaussian x. The first step already points at w_true.)

What is computed where:

- **This process (the client)** builds the model's forward pass and ``loss.backward()`` on
  Dask arrays: that records task graphs and computes nothing. The parameters (w, b: 33
  numbers) are ordinary NumPy arrays here; so are the gradients once computed, and the
  optimizer's step runs here on them.
- **The workers** (separate processes of a ``distributed.LocalCluster``, each with a
  ``memory_limit``) run the graph: for each block of rows they generate the block (in real
  use they would read it from files, e.g. ``da.from_zarr``), compute its logits, its share
  of the loss and its share of the gradients, X_i^T (sigmoid(z_i) - y_i) / n, and add the
  shares up in a tree. A block is freed once its shares are taken, so a worker holds a few
  blocks at a time, never the data set.
- **One computation per step:** ``cr.compute(loss, model)`` runs the loss and every
  parameter's gradient in one ``dask.compute``, so each step makes one pass over the data;
  what comes back is the loss and 33 gradient entries.

The data is never stored: each step generates it again, block by block, from the seed (Dask's
generators give each block its own seed drawn from the one given, so the same seed and the
same chunking give the same numbers every time).

    python examples/out_of_core.py     # 2^23 rows x 32 features: 2 GiB, 2 workers of 768 MiB
    python examples/out_of_core.py --rows 40000 --chunk-rows 5000 --steps 2   # seconds

Before the large run the script checks, on a small data set of the same kind, that the
gradient the cluster computes equals the one NumPy computes from the same arrays in memory.
It prints each worker's resident memory at its peak during the run (sampled every 5 ms with
psutil on the worker): a few blocks' worth above what an idle worker holds, whatever n is.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

import chainrule as cr

MiB = 2**20


def make_data(rows: int, features: int, chunk_rows: int, seed: int = 0) -> tuple[Any, Any, Any]:
    """Lazy features X (rows, features), labels y (rows, 1) as float64 0/1, and w_true.

    Nothing is computed: X is a graph of one task per block of ``chunk_rows`` rows, y a
    graph over the same blocks of X. The same arguments give the same numbers."""
    import dask.array as da

    rng = da.random.default_rng(seed)
    X = rng.standard_normal((rows, features), chunks=(chunk_rows, features))
    noise = rng.logistic(size=rows, chunks=chunk_rows)
    w_true = np.linspace(-1.0, 1.0, features)
    y = ((X @ w_true + noise) > 0).astype(np.float64).reshape(rows, 1)
    return X, y, w_true


def logistic_regression(features: int) -> Any:
    """A Linear(features, 1) layer with its weights at zero (the loss is convex)."""
    model = cr.nn.Linear(features, 1)
    with cr.no_grad():
        for p in model.parameters():
            p *= 0.0
    return model


def loss_of(model: Any, X: Any, y: Any) -> Any:
    """The mean binary cross-entropy of the model's logits on X against y (lazy on Dask)."""
    return cr.nn.functional.binary_cross_entropy_with_logits(model(cr.tensor(X)), cr.tensor(y))


def numpy_gradient(X: np.ndarray, y: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple:
    """The loss and its gradient with respect to (w, b), written out in NumPy."""
    z = X @ w.T + b  # (n, 1)
    loss = np.mean(np.logaddexp(0.0, z) - z * y)  # softplus(z) - z y
    r = (1.0 / (1.0 + np.exp(-z)) - y) / len(X)  # dloss/dz = (sigmoid(z) - y) / n
    return loss, r.T @ X, r.sum(axis=0)


class PeakMemory:
    """Each worker's resident memory (RSS) at its peak while the ``with`` block runs.

    A thread on each worker samples its own process's RSS every ``interval`` seconds (psutil);
    the samplers start on entering and report on leaving. ``idle`` holds each worker's RSS
    before, ``peak`` the largest sample, both in bytes, keyed by worker address."""

    def __init__(self, client: Any, interval: float = 0.005) -> None:
        self.client, self.interval = client, interval
        self.idle: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def __enter__(self) -> PeakMemory:
        interval = self.interval

        # (defined here, not at module level, so that cloudpickle ships the functions
        # themselves to the workers, which need not be able to import this file)
        def start(dask_worker: Any) -> int:
            import threading

            import psutil

            process, stop = psutil.Process(), threading.Event()
            state = {"peak": process.memory_info().rss}

            def sample() -> None:
                while not stop.is_set():
                    state["peak"] = max(state["peak"], process.memory_info().rss)
                    stop.wait(interval)

            thread = threading.Thread(target=sample, daemon=True)
            thread.start()
            dask_worker._chainrule_peak = (stop, thread, state)
            return state["peak"]

        self.idle = self.client.run(start)
        return self

    def __exit__(self, *exc: Any) -> None:
        def finish(dask_worker: Any) -> int:
            stop, thread, state = dask_worker._chainrule_peak
            stop.set()
            thread.join()
            del dask_worker._chainrule_peak
            return state["peak"]

        self.peak = self.client.run(finish)

    def report(self, chunk_bytes: int) -> str:
        lines = []
        for address in sorted(self.peak):
            idle, peak = self.idle[address], self.peak[address]
            lines.append(
                f"  worker {address}: idle {idle / MiB:.0f} MiB, peak {peak / MiB:.0f} MiB, "
                f"{(peak - idle) / MiB:.0f} MiB above idle = {(peak - idle) / chunk_bytes:.1f} "
                "blocks"
            )
        return "\n".join(lines)


def check_gradient(client: Any, features: int, seed: int) -> None:
    """On a small data set, the cluster's loss and gradients equal NumPy's from the same
    arrays brought into memory (to 1e-12, relative: only the order of the sums differs)."""
    import dask.array as da

    X, y, _ = make_data(20_000, features, chunk_rows=4_000, seed=seed)
    model = cr.nn.Linear(features, 1, rng=seed)  # (not at zero: a gradient of every kind)
    loss = loss_of(model, X, y)
    loss.backward()
    assert isinstance(model.weight.grad.data, da.Array)  # a task graph: nothing computed yet
    cr.compute(loss, model)
    Xn, yn = client.compute([X, y], sync=True)  # the same numbers, brought here
    want_loss, want_w, want_b = numpy_gradient(Xn, yn, model.weight.numpy(), model.bias.numpy())
    np.testing.assert_allclose(loss.item(), want_loss, rtol=1e-12)
    np.testing.assert_allclose(model.weight.grad.numpy(), want_w, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(model.bias.grad.numpy(), want_b, rtol=1e-12, atol=1e-15)
    print(f"gradient check on 20,000 rows: the cluster's equals NumPy's (loss {loss.item():.6f})")


def train(model: Any, X: Any, y: Any, steps: int, lr: float, log: Any = print) -> list[float]:
    """``steps`` of full-batch gradient descent; each step is one pass over the data. Returns
    the loss before each step."""
    opt = cr.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        start = time.perf_counter()
        loss = loss_of(model, X, y)  # a task graph, on the client
        loss.backward()  # more task graph: the gradients, still nothing computed
        cr.compute(loss, model)  # one pass on the workers; the loss and gradients come back
        opt.step()  # on the client, on NumPy arrays
        opt.zero_grad()
        losses.append(loss.item())
        log(f"step {step}: loss {losses[-1]:.6f}  ({time.perf_counter() - start:.1f} s)")
    return losses


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a.ravel(), b.ravel()) / (np.linalg.norm(a) * np.linalg.norm(b)))


def start_cluster(
    workers: int, memory_limit: str, env: dict[str, str] | None = None, default: bool = True
) -> tuple[Any, Any]:
    """A cluster of ``workers`` processes on this machine (one thread each, loopback only,
    no dashboard, ``env`` set in each) and a client of it, which ``dask.compute`` then uses
    (unless not the ``default``: then only inside ``client.as_current()``)."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        memory_limit=memory_limit,
        env=env or {},
    )
    return cluster, Client(cluster, set_as_default=default)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2**23, help="rows of data (default 2^23)")
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--chunk-rows", type=int, default=2**17, help="rows per block")
    parser.add_argument("--steps", type=int, default=4, help="gradient-descent steps")
    parser.add_argument("--lr", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="768MiB", help="per worker (Dask's syntax)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from dask.utils import parse_bytes

    data_bytes = args.rows * args.features * 8
    chunk_bytes = args.chunk_rows * args.features * 8
    limit = parse_bytes(args.memory_limit)
    print(
        f"data: {args.rows:,} rows x {args.features} float64 = {data_bytes / MiB:,.0f} MiB in "
        f"blocks of {args.chunk_rows:,} rows ({chunk_bytes / MiB:.1f} MiB); "
        f"{args.workers} workers with {limit / MiB:,.0f} MiB each "
        f"({args.workers * limit / MiB:,.0f} MiB in all)"
    )
    cluster, client = start_cluster(args.workers, args.memory_limit)
    try:
        check_gradient(client, args.features, args.seed)
        X, y, w_true = make_data(args.rows, args.features, args.chunk_rows, args.seed)
        model = logistic_regression(args.features)
        with PeakMemory(client) as memory:
            losses = train(model, X, y, args.steps, args.lr)
        print("worker memory during training:\n" + memory.report(chunk_bytes))
        similarity = cosine(model.weight.numpy(), w_true)
        print(f"cosine(w, w_true) = {similarity:.4f}; loss {losses[0]:.4f} -> {losses[-1]:.4f}")
        assert similarity > 0.95, "the weights should point along w_true"
        assert all(b < a for a, b in zip(losses, losses[1:])), "the loss went up at some step"
        # a worker's working memory is a few blocks (the block, its logits, its share of
        # the gradient, the next block being made), far under the data's size
        for address, peak in memory.peak.items():
            assert peak - memory.idle[address] < max(16 * chunk_bytes, 64 * MiB), address
            assert peak < limit, f"{address} went over its memory limit"
    finally:
        client.close()
        cluster.close()
    print("The loss goes down at every step, and no worker held more than a few blocks.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
