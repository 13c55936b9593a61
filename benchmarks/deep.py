"""Workload 3, deep graphs: a chain of N sequential scalar ops (mul, add, tanh in turn, as in
workload 1, on 0-d tensors / Python scalars), N = 10^4, 10^5, 10^6, forward then backward.

Three measurements, each in its own runs (at N = 10^6 the slowest peers take up to a minute a
run, so by default every library runs once there and chainrule and torch, whom the targets
concern, run the full count; ``--full`` runs everyone the full count, some ten minutes more):

- **time per op**, forward + backward (and each apart), in the interleaved timed rounds, the
  garbage collector enabled as for a user;
- **a probe run** per library and N, with the garbage collector *disabled* throughout:
  the process's resident memory (RSS, psutil) grown by the forward pass, per node, measured
  after ``gc.collect()`` and glibc's ``malloc_trim(0)`` for the baseline; the time of one
  ``gc.collect()`` with the whole graph alive (it walks every container object the process
  holds); and, after the backward pass and dropping every reference, the objects that only the
  cycle collector could free (``gc.collect()``'s count), per node: 0 means the graph is freed by
  reference counting alone, more means the library builds reference cycles;
- **tracemalloc**: the peak of Python-level allocations (NumPy registers its buffers with
  tracemalloc) over forward + backward, per node, for the NumPy-based libraries. It does not see
  PyTorch's C++ allocations, so torch's memory is the RSS column. tracemalloc slows a run
  several times; by default it runs at N = 10^4 only (``--full``: every N). Bytes per node
  hardly change with N (at 10^5 they were within 15% of 10^4 for every library).

micrograd's backward pass sorts the graph recursively: a RecursionError at the default
recursion limit, which is left as it is and reported; its forward pass, memory and collector
time are still measured.
"""

from __future__ import annotations

import ctypes
import gc
import json
import math
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import peers
from .harness import Outcome, fmt_num, fmt_table, interleave, log, paired_ratio, ratios, timer
from .overhead import A, B, micrograd_tanh

__all__ = ["LIBS", "forward_fn", "timed_case", "probe", "traced_peak", "rss_bytes", "run"]

LIBS = ["chainrule", "torch", "autograd", "mygrad", "micrograd"]
NUMPY_BASED = ["chainrule", "autograd", "mygrad", "micrograd"]


def _counts(n: int) -> tuple[int, int]:
    """Rounds of (mul, add, tanh) and trailing muls making exactly n ops."""
    rounds = n // 3
    return rounds, n - 3 * rounds


def _chain(x: Any, tanh: Callable[[Any], Any], n: int) -> Any:
    """The chain every library runs, with its own tanh: n ops from x (see _counts)."""
    rounds, extra = _counts(n)
    y = x
    for _ in range(rounds):
        y = tanh(y * A + B)
    for _ in range(extra):
        y = y * A
    return y


# Each library: forward(n) -> (leaf, graph handle), backward(graph handle).
def _chainrule() -> tuple[Callable[[int], Any], Callable[[Any], None]]:
    cr = peers.get("chainrule")

    def forward(n: int) -> Any:
        x = cr.tensor(0.5, requires_grad=True)
        return x, _chain(x, cr.tanh, n)

    def backward(y: Any) -> None:
        y.backward()

    return forward, backward


def _torch() -> tuple[Callable[[int], Any], Callable[[Any], None]]:
    torch = peers.get("torch")

    def forward(n: int) -> Any:
        x = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
        return x, _chain(x, torch.tanh, n)

    def backward(y: Any) -> None:
        y.backward()

    return forward, backward


def _autograd() -> tuple[Callable[[int], Any], Callable[[Any], None]]:
    import autograd
    import autograd.numpy as anp

    def chain(x: Any, n: int) -> Any:
        return _chain(x, anp.tanh, n)

    def forward(n: int) -> Any:
        x = 0.5
        # make_vjp runs the forward pass and keeps the graph in the pullback
        return x, autograd.make_vjp(chain)(x, n)

    def backward(state: Any) -> None:
        vjp, _value = state
        vjp(1.0)

    return forward, backward


def _mygrad() -> tuple[Callable[[int], Any], Callable[[Any], None]]:
    mg = peers.get("mygrad")

    def forward(n: int) -> Any:
        x = mg.tensor(0.5)
        return x, _chain(x, mg.tanh, n)

    def backward(y: Any) -> None:
        y.backward()

    return forward, backward


def _micrograd() -> tuple[Callable[[int], Any], Callable[[Any], None]]:
    Value = peers.get("micrograd").Value

    def forward(n: int) -> Any:
        x = Value(0.5)
        return x, _chain(x, micrograd_tanh, n)

    def backward(y: Any) -> None:
        y.backward()

    return forward, backward


_MAKERS = {
    "chainrule": _chainrule,
    "torch": _torch,
    "autograd": _autograd,
    "mygrad": _mygrad,
    "micrograd": _micrograd,
}


def forward_fn(lib: str) -> tuple[Callable[[int], Any], Callable[[Any], None]] | None:
    return _MAKERS[lib]() if peers.get(lib) is not None else None


def timed_case(lib: str, n: int) -> Callable[[], dict[str, float]] | None:
    """A case: seconds per op for forward + backward, and each apart; and the RSS the forward
    pass added, per node (read between the two clocks)."""
    fns = forward_fn(lib)
    if fns is None:
        return None
    forward, backward = fns

    def run() -> dict[str, float]:
        _malloc_trim()
        rss0 = rss_bytes()
        t0 = timer()
        leaf, graph = forward(n)
        t1 = timer()
        rss1 = rss_bytes()  # between the two clocks: the whole graph is alive here
        t2 = timer()
        backward(graph)
        t3 = timer()
        del leaf, graph
        return {
            "time": (t1 - t0 + t3 - t2) / n,
            "forward": (t1 - t0) / n,
            "backward": (t3 - t2) / n,
            "rss_bytes_per_node": (rss1 - rss0) / n,
        }

    return run


def rss_bytes() -> int:
    import psutil

    return int(psutil.Process(os.getpid()).memory_info().rss)


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: RSS then counts freed but kept pages
        pass


def probe(lib: str, n: int) -> dict[str, Any]:
    """One untimed run with the collector disabled: RSS per node, one gc pass with the graph
    alive, and the objects only the cycle collector frees, per node."""
    fns = forward_fn(lib)
    if fns is None:
        return {"status": "missing"}
    forward, backward = fns
    out: dict[str, Any] = {"status": "ok"}
    gc.collect()
    _malloc_trim()
    rss0 = rss_bytes()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = timer()
        leaf, graph = forward(n)
        t_forward = timer() - t0
        out["rss_bytes_per_node"] = (rss_bytes() - rss0) / n
        out["gc_objects_tracked"] = len(gc.get_objects())
        t0 = timer()
        found_alive = gc.collect()
        out["gc_pass_s"] = timer() - t0
        try:
            t0 = timer()
            backward(graph)
            out["gc_off_s_per_op"] = (t_forward + timer() - t0) / n
        except (Exception, RecursionError) as err:
            out["status"] = type(err).__name__
            out["error"] = f"{type(err).__name__}: {err}"[:300]
        del leaf, graph
        found_after = gc.collect()
        out["cyclic_garbage_objects"] = found_alive + found_after
        out["cyclic_objects_per_node"] = (found_alive + found_after) / n
    finally:
        if was_enabled:
            gc.enable()
    return out


def traced_peak(lib: str, n: int) -> dict[str, Any]:
    """Peak of tracemalloc-traced memory over forward + backward, per node."""
    fns = forward_fn(lib)
    if fns is None:
        return {"status": "missing"}
    forward, backward = fns
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        leaf, graph = forward(n)
        after_forward, _ = tracemalloc.get_traced_memory()
        status = "ok"
        try:
            backward(graph)
        except (Exception, RecursionError) as err:
            status = type(err).__name__
        _, peak = tracemalloc.get_traced_memory()
        del leaf, graph
    finally:
        tracemalloc.stop()
    return {
        "status": status,
        "peak_bytes_per_node": (peak - base) / n,
        "forward_bytes_per_node": (after_forward - base) / n,
    }


_ISOLATED = """
import gc, json, sys
sys.path.insert(0, {root!r})
from benchmarks import deep, peers
from benchmarks.harness import interleave
peers.setup(only=["chainrule"])
objects = len(gc.get_objects())
out = interleave({{"chainrule": deep.timed_case("chainrule", {n})}}, repeats={repeats}, warmup=0)
print(json.dumps({{"gc_objects_at_start": objects, **out["chainrule"].to_json(
    scale=1e6, unscaled=("rss_bytes_per_node",))}}))
"""


def isolated(n: int, repeats: int) -> dict[str, Any]:
    """chainrule alone in a fresh process (NumPy and chainrule imported, no peer): how much of
    its time in this process is the collector walking the peers' objects."""
    root = str(Path(__file__).resolve().parent.parent)
    code = _ISOLATED.format(root=root, n=n, repeats=repeats)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"status": "error", "error": proc.stderr[-300:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool, full: bool, repeats: int) -> tuple[str, dict[str, Any]]:
    """Each N: timed rounds, then the probe runs, then tracemalloc; one table, and the data."""
    sizes = (10**4, 10**5) if quick else (10**4, 10**5, 10**6)
    data: dict[str, Any] = {}
    rows = []
    for n in sizes:
        reps, extra = repeats, None
        if n >= 10**6 and not full and repeats > 1:
            # the slowest peers take up to a minute a run here (their runs differ by about 1%):
            # one round of everyone, then the libraries the targets are about (chainrule,
            # torch) to the full count; --full runs every library the full count
            reps, extra = 1, {"chainrule": repeats - 1, "torch": repeats - 1}
        log(f"workload 3: deep chain, N = {n:,}: {reps} rounds" + (" + extra" if extra else ""))
        cases = {lib: timed_case(lib, n) for lib in LIBS}
        outcomes: dict[str, Outcome] = interleave(
            cases,
            repeats=reps,
            warmup=1 if n <= 10**4 else 0,
            missing=peers.missing(),
            extra_repeats=extra,
            label=f"N = {n:,}",
        )
        alone_runs = max(reps, 3)
        log(f"  N = {n:,}: chainrule alone in a fresh process, {alone_runs} runs")
        alone = isolated(n, alone_runs)
        probes, traced = {}, {}
        for lib in LIBS:
            if peers.get(lib) is None:
                continue
            log(f"  N = {n:,}: probe run (collector off), {lib}")
            probes[lib] = probe(lib, n)
            if lib in NUMPY_BASED and (n <= 10**4 or full):
                log(f"  N = {n:,}: tracemalloc run, {lib}")
                traced[lib] = traced_peak(lib, n)
        data[str(n)] = {
            lib: {
                "timed": outcomes[lib].to_json(scale=1e6, unscaled=("rss_bytes_per_node",)),
                "probe": probes.get(lib),
                "tracemalloc": traced.get(lib),
            }
            for lib in LIBS
        }
        data[str(n)]["chainrule alone"] = alone
        data[str(n)]["ratio_chainrule_over"] = ratios(outcomes)
        ours = outcomes["chainrule"]
        for lib in LIBS:
            o, p, t = outcomes[lib], probes.get(lib) or {}, traced.get(lib) or {}
            ratio = fmt_num(paired_ratio(ours, o), 3) if o.ok and ours.ok else ""
            rows.append(
                [
                    f"{n:,}",
                    lib,
                    fmt_num(o.median() * 1e6) if o.ok else o.status,
                    str(len(o.samples.get("time", []))) if o.ok else "",
                    fmt_num(o.median("forward") * 1e6) if o.ok else "",
                    fmt_num(o.median("backward") * 1e6) if o.ok else "",
                    ratio,
                    fmt_num(p["gc_off_s_per_op"] * 1e6) if "gc_off_s_per_op" in p else "",
                    fmt_num(o.median("rss_bytes_per_node"))
                    if o.ok
                    else fmt_num(p.get("rss_bytes_per_node", math.nan)),
                    fmt_num(t["peak_bytes_per_node"]) if "peak_bytes_per_node" in t else "",
                    fmt_num(p["gc_pass_s"] * 1e3) if "gc_pass_s" in p else "",
                    str(p["cyclic_garbage_objects"]) if "cyclic_garbage_objects" in p else "",
                ]
            )
            if lib == "chainrule" and "time" in alone:
                t = alone["time"]
                rows.append(
                    [
                        f"{n:,}",
                        "  (alone)",
                        fmt_num(t["median"]),
                        str(t["repeats"]),
                        fmt_num(alone["forward"]["median"]),
                        fmt_num(alone["backward"]["median"]),
                        "",
                        "",
                        fmt_num(alone["rss_bytes_per_node"]["median"]),
                        "",
                        "",
                        "",
                    ]
                )
    headers = [
        "N",
        "library",
        "µs/op",
        "runs",
        "fwd",
        "bwd",
        "chainrule/lib",
        "µs/op gc off",
        "RSS B/node",
        "tracemalloc peak B/node",
        "gc.collect ms",
        "cyclic garbage",
    ]
    title = (
        "3. Deep graph: a chain of N scalar ops (mul, add, tanh), forward + backward; "
        "medians of the runs shown, interleaved, collector on.\n"
        "   (alone): chainrule in a fresh process that imports no peer (fewer objects for the "
        "collector to walk). µs/op gc off, gc.collect (one full pass, graph alive) and cyclic "
        "garbage (objects, in all, that only the cycle collector freed after the graph was "
        "dropped; a constant handful comes from the measuring itself) come from one run with "
        "the collector disabled; RSS "
        "is the resident memory the forward pass added (median of the timed runs; for a failed "
        "run, the probe's); tracemalloc peak over forward + backward for the NumPy-based "
        "libraries" + ("" if full else ", N = 10^4 (--full: every N)")
    )
    return "\n".join([title, fmt_table(headers, rows)]), data
