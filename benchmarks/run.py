"""chainrule against its peers, side by side, in one process: ``make bench``.

    .venv-bench/bin/python benchmarks/run.py [--quick] [--only NAME ...] [--full] [--json PATH]

Workloads (``--only`` takes these names; the issue numbers the first five 1-5):

    overhead      1. per-op overhead: a chain of 1,000 elementwise ops, 1 and 1,000 elements
    mlp           2. an MLP training step: 784-256-256-10 (float32, float64), 2-16-16-1
    cost          4. cr.cost_report(sizes=(10, 50, 100)); backward/forward time of the big MLP
    blas          5. NumPy's matmul GFLOP/s at the MLP's shapes; each step's share of it
    deep          3. a chain of 10^4, 10^5, 10^6 scalar ops: time, memory per node, the collector
    layers        8. Conv2d, BatchNorm2d, LayerNorm, attention forward + backward, and one
                  MNIST-1D CNN training epoch, against PyTorch
    per_example   7. per-example gradients of the 784-256-256-10 MLP: cr.vmap(cr.grad(...))
                  against a loop, torch.func, jax and NumPy by hand
    instructions  6. the cases behind the targets against NumPy, counted under valgrind (CPU
                  instructions and simulated L1 data-cache misses per op or step): the same
                  in every run, where timed ratios move by several percent (needs valgrind)
    scaling       9. Dask: full-batch MLP training throughput on 1, 2 and 4 local worker
                  processes against the NumPy backend; workers' peak memory out of core as
                  the data grows 4x twice (needs dask and distributed; see scaling.py)

Every library runs in this one process, interleaved (the order rotates every round), after
warm-up, medians of at least 7 rounds (``--quick``: 3, and smaller sizes, for a smoke run),
with 2 threads for all: the thread variables are set before anything is imported and the script
re-executes itself when it has to change them. It also removes OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE, which this environment may set for old OpenBLAS builds and which slow a
current NumPy; the threadpoolctl line shows the kernel OpenBLAS then chose. A peer that fails
to import is reported missing. The tables go to stdout, progress to stderr; the numbers also go
to ``benchmarks/results-latest.json`` (and the printed report to ``results-latest.txt``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.environment import MARK, THREAD_ENV, THREADS, prepare  # noqa: E402

prepare(__file__)  # before NumPy or any BLAS is loaded

import argparse  # noqa: E402  (after the environment is settled)
import datetime  # noqa: E402
import gc  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from benchmarks import (  # noqa: E402
    blas,
    cost,
    deep,
    instructions,
    layers,
    mlp,
    overhead,
    peers,
    per_example,
    scaling,
)
from benchmarks.harness import fmt_table, log  # noqa: E402

WORKLOADS = [
    "overhead",
    "mlp",
    "cost",
    "blas",
    "deep",
    "per_example",
    "layers",
    "instructions",
    "scaling",
]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "chainrule"],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return None
    if dirty:
        stat = subprocess.run(
            ["git", "diff", "--shortstat", "HEAD", "--", "chainrule"],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return f"{head} + uncommitted changes to chainrule/ ({stat or 'new files'})"
    return head or None


def machine_info() -> dict[str, Any]:
    import numpy as np
    import psutil

    info: dict[str, Any] = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "cpu": _cpu_model(),
        "machine": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "chainrule_git": _git(),
        "versions": peers.versions(),
        "missing": peers.missing(),
        "environment": {
            **json.loads(os.environ.get(MARK, "{}")),
            "set": {k: os.environ.get(k) for k in THREAD_ENV},
        },
        "numpy_config_simd": _numpy_simd(np),
        "gc_objects_at_start": len(gc.get_objects()),
    }
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [
            {
                k: p.get(k)
                for k in (
                    "internal_api",
                    "version",
                    "architecture",
                    "num_threads",
                    "threading_layer",
                    "filepath",
                )
            }
            for p in threadpool_info()
        ]
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    torch = peers.get("torch")
    if torch is not None:
        config = torch.__config__.show().replace(",", " ").split()
        blas_info = [part for part in config if part.startswith("BLAS_INFO=")]
        info["torch"] = {
            "num_threads": torch.get_num_threads(),
            "num_interop_threads": torch.get_num_interop_threads(),
            "blas": blas_info[0].strip() if blas_info else None,
            "mkldnn": bool(torch.backends.mkldnn.is_available()),
        }
    jax = peers.get("jax")
    if jax is not None:
        info["jax"] = {
            "devices": [str(d) for d in jax.devices()],
            "x64": bool(jax.config.jax_enable_x64),
        }
    return info


def _numpy_simd(np: Any) -> Any:
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features

        return [k for k in ("AVX2", "AVX512F", "AVX512_SKX", "FMA3") if features.get(k)]
    except ImportError:
        return None


def format_info(info: dict[str, Any]) -> str:
    v = info["versions"]
    lines = [
        f"chainrule peer benchmarks, {info['date_utc']} UTC",
        f"machine: {info['cpu']} ({info['machine']}), {info['logical_cpus']} logical CPUs, "
        f"{info['physical_cores']} cores, {info['memory_gib']} GiB; {info['os']}",
        f"python {info['python']}; chainrule {v['chainrule']} (git {info['chainrule_git']}); "
        f"numpy {v['numpy']}",
        "peers: "
        + ", ".join(
            f"{name} {v.get(name) or 'MISSING'}"
            for name in ("torch", "jax", "jaxlib", "autograd", "mygrad", "micrograd")
        ),
    ]
    if info["missing"]:
        lines.append("missing: " + "; ".join(f"{k}: {e}" for k, e in info["missing"].items()))
    env = info["environment"]
    lines.append(
        f"threads: {THREADS} for all ({', '.join(f'{k}={val}' for k, val in env['set'].items())})"
    )
    if env.get("removed"):
        lines.append(
            "removed for this run (re-executed): "
            + ", ".join(f"{k}={val}" for k, val in env["removed"].items())
        )
    pools = info["threadpools"]
    if isinstance(pools, list):
        for p in pools:
            arch = f", kernel {p['architecture']}" if p.get("architecture") else ""
            lines.append(
                f"threadpool: {p['internal_api']}{' ' + p['version'] if p['version'] else ''}"
                f"{arch}, "
                f"{p['num_threads']} threads ({Path(p['filepath']).name})"
            )
    if "torch" in info:
        t = info["torch"]
        lines.append(
            f"torch: {t['num_threads']} threads ({t['num_interop_threads']} inter-op), "
            f"{t['blas']}, oneDNN {t['mkldnn']}"
        )
    if "jax" in info:
        lines.append(f"jax: {', '.join(info['jax']['devices'])}, x64 {info['jax']['x64']}")
    lines.append(
        f"numpy SIMD: {info['numpy_config_simd']}; "
        f"gc-tracked objects after importing everything: {info['gc_objects_at_start']:,}"
    )
    return "\n".join(lines)


class _Contention:
    """The share of the machine's CPU time that other processes used while a workload ran: on
    a shared machine, the number that says whether a table can be trusted."""

    def __init__(self) -> None:
        import psutil

        self.psutil = psutil
        self.me = psutil.Process()
        self.start = self._now()

    def _now(self) -> tuple[float, float, float]:
        total = self.psutil.cpu_times()
        busy = total.user + total.system + getattr(total, "nice", 0.0) + getattr(total, "irq", 0.0)
        busy += getattr(total, "softirq", 0.0) + getattr(total, "steal", 0.0)
        own = self.me.cpu_times()
        mine = own.user + own.system + own.children_user + own.children_system
        return time.perf_counter(), busy, mine

    def share(self) -> float:
        """Other processes' CPU seconds over (wall seconds x CPUs), since the last call."""
        end = self._now()
        wall = end[0] - self.start[0]
        others = (end[1] - self.start[1]) - (end[2] - self.start[2])
        self.start = end
        return max(others, 0.0) / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0


def _get(d: Any, *keys: Any) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def targets(results: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The issue's targets, each with what this run measured."""
    w = results["workloads"]
    rows: list[dict[str, Any]] = []

    def add(name: str, value: float | None, limit: float, fmt: str, strict: bool = False) -> None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            rows.append({"target": name, "measured": None, "limit": limit, "met": None})
            return
        met = value < limit if strict else value <= limit
        rows.append({"target": name, "measured": value, "limit": limit, "met": met, "fmt": fmt})

    def med(*keys: Any) -> float | None:
        return _get(w, *keys, "median")

    def ratio(a: tuple[Any, ...], b: tuple[Any, ...]) -> float | None:
        """chainrule / peer: the median of the per-round ratios (harness.paired_ratio)."""
        xs, ys = _get(w, *a, "samples"), _get(w, *b, "samples")
        if not xs or not ys:
            return None
        return statistics.median(x / y for x, y in zip(xs, ys))

    ov = ("overhead", "sizes", "1")
    cr1 = (*ov, "chainrule", "time")
    add(
        "per-op, 1 element: chainrule / torch <= 0.5",
        ratio(cr1, (*ov, "torch", "time")),
        0.5,
        "{:.2f}x",
    )
    add(
        "per-op, 1 element: chainrule / raw NumPy <= 2",
        ratio(cr1, (*ov, "numpy", "time")),
        2.0,
        "{:.2f}x",
    )
    for spec in mlp.SPECS:
        base = ("mlp", spec.name, "libs")
        ours = (*base, "chainrule", "time")
        if spec.sizes[0] == 784:
            add(
                f"{spec.name}: chainrule / torch < 1",
                ratio(ours, (*base, "torch", "time")),
                1.0,
                "{:.2f}x",
                strict=True,
            )
            add(
                f"{spec.name}: chainrule / hand NumPy <= 1.05",
                ratio(ours, (*base, "numpy", "time")),
                1.05,
                "{:.2f}x",
            )
        else:
            add(
                f"{spec.name}: chainrule (eager) / torch <= 0.5",
                ratio(ours, (*base, "torch", "time")),
                0.5,
                "{:.2f}x",
            )
    deep_m = ("deep", str(10**6))
    add(
        "10^6 chain: chainrule µs per op <= 3",
        med(*deep_m, "chainrule", "timed", "time"),
        3.0,
        "{:.2f} µs",
    )
    add(
        "10^6 chain: chainrule / torch RSS per node <= 0.5",
        ratio(
            (*deep_m, "chainrule", "timed", "rss_bytes_per_node"),
            (*deep_m, "torch", "timed", "rss_bytes_per_node"),
        ),
        0.5,
        "{:.2f}x",
    )
    counts = {
        n: _get(w, "deep", str(n), "chainrule", "probe", "cyclic_garbage_objects")
        for n in (10**4, 10**5, 10**6)
    }
    counts = {n: c for n, c in counts.items() if c is not None}
    if counts:
        # cycles in the graph would make the count grow with N; a constant handful is the
        # measuring itself (the same for every library)
        small, large = min(counts), max(counts)
        growth = (counts[large] - counts[small]) / max(large - small, 1)
        rows.append(
            {
                "target": "no reference cycles: cyclic garbage does not grow with N",
                "measured": ", ".join(f"{c} at N={n:,}" for n, c in counts.items()),
                "limit": 0,
                "met": growth <= 1e-4 and counts[large] <= 100,
                "fmt": "{}",
            }
        )
    for spec in mlp.SPECS:
        if spec.sizes[0] == 784:
            add(
                f"{spec.name}: backward / forward <= 2",
                med("cost", "mlp_split_ms", spec.name, "chainrule", "ratio"),
                2.0,
                "{:.2f}",
            )
    for spec in mlp.SPECS:
        if spec.sizes[0] != 784:
            base = ("mlp", spec.name, "libs")
            add(
                f"{spec.name}: chainrule with cr.compile / hand NumPy <= 1.5",
                ratio((*base, "chainrule compiled", "time"), (*base, "numpy", "time")),
                1.5,
                "{:.2f}x",
            )
    # the same limits against the NumPy floor, on counted instructions (workload 6): what
    # chainrule adds around the same array calls, free of the machine's noise
    counted = _get(w, "instructions", "workloads") or {}
    floors = {"per-op, 1 element": 2.0}
    floors.update({s.name: 1.05 if s.sizes[0] == 784 else 1.5 for s in mlp.SPECS})
    for workload, limit in floors.items():
        lib = "chainrule compiled" if limit == 1.5 else "chainrule"
        ours, floor = _get(counted, workload, lib, "Ir"), _get(counted, workload, "numpy", "Ir")
        add(
            f"{workload}: {lib} / NumPy instructions <= {limit:g}",
            ours / floor if ours and floor else None,
            limit,
            "{:.3f}x",
        )
    table = fmt_table(
        ["target (issue 5)", "measured", "met"],
        [
            [
                r["target"],
                r["fmt"].format(r["measured"]) if r.get("measured") is not None else "-",
                {True: "yes", False: "NO", None: "not measured"}.get(r["met"], str(r["met"]))
                if not isinstance(r["met"], str)
                else r["met"],
            ]
            for r in rows
        ],
    )
    for r in rows:
        r.pop("fmt", None)
    return "Targets from the issue, against this run\n" + table, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, smaller sizes: a smoke run")
    parser.add_argument(
        "--full",
        action="store_true",
        help="every library the full count of rounds at N = 10^6, and tracemalloc at every N "
        "(about ten minutes more)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=WORKLOADS,
        metavar="NAME",
        help=f"run only this workload (repeatable): {', '.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed rounds (default 7; the cheap workloads use more)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=HERE / "results-latest.json",
        help="where to write the results (default benchmarks/results-latest.json)",
    )
    args = parser.parse_args()
    chosen = [w for w in WORKLOADS if not args.only or w in args.only]
    base = args.repeats or (3 if args.quick else 7)
    cheap = args.repeats or (3 if args.quick else 11)  # workloads of milliseconds a round

    peers.setup()
    if peers.get("chainrule") is None:
        sys.exit(f"chainrule does not import: {peers.missing().get('chainrule')}")
    info = machine_info()
    header = format_info(info)
    print(header, flush=True)
    report = [header]
    results: dict[str, Any] = {
        "meta": {
            **info,
            "command": " ".join(sys.argv),
            "quick": args.quick,
            "full": args.full,
            "repeats": base,
            "workloads": chosen,
        },
        "workloads": {},
    }
    text_path = args.json.with_suffix(".txt")

    contention = _Contention()

    def emit(name: str, text: str, data: Any, seconds: float) -> None:
        results["workloads"][name] = data
        results["meta"].setdefault("seconds", {})[name] = round(seconds, 1)
        others = contention.share()
        results["meta"].setdefault("other_processes_cpu_share", {})[name] = round(others, 3)
        warn = (
            "  WARNING: other processes were busy; rerun on a quiet machine"
            if others > 0.05
            else ""
        )
        busy = f"other processes used {others:.0%} of the CPUs"
        block = f"\n{text}\n[{name}: {seconds:.0f} s; {busy}]{warn}"
        print(block, flush=True)
        report.append(block)
        args.json.write_text(json.dumps(results, indent=1, default=str))  # partial results too

    started = time.perf_counter()
    for name in chosen:
        t0 = time.perf_counter()
        contention.share()  # start the count here
        if name == "overhead":
            text, data = overhead.run(args.quick, cheap)
        elif name == "mlp":
            text, data = mlp.run(args.quick, max(base, 11) if not args.quick else base)
        elif name == "cost":
            text, data = cost.run(args.quick, max(base, 11) if not args.quick else base)
        elif name == "blas":
            text, data = blas.run(args.quick, max(base, 11) if not args.quick else base)
            if "mlp" in results["workloads"]:
                more, extra = blas.achieved(data, results["workloads"]["mlp"])
                text += "\n\n" + more
                data["mlp_achieved"] = extra
        elif name == "deep":
            text, data = deep.run(args.quick, args.full, base)
        elif name == "per_example":
            text, data = per_example.run(args.quick, base)
        elif name == "layers":
            text, data = layers.run(args.quick, base)
        elif name == "scaling":
            text, data = scaling.run(args.quick, base)
        else:
            text, data = instructions.run(args.quick)
        emit(name, text, data, time.perf_counter() - t0)

    summary, rows = targets(results)
    results["targets"] = rows
    total = time.perf_counter() - started
    results["meta"]["seconds_total"] = round(total, 1)
    tail = f"\n{summary}\n\nTotal {total / 60:.1f} min. Results: {args.json}"
    print(tail)
    report.append(tail)
    args.json.write_text(json.dumps(results, indent=1, default=str))
    text_path.write_text("\n".join(report) + "\n")
    log(f"wrote {args.json} and {text_path}")


if __name__ == "__main__":
    main()
