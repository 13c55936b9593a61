"""Workload 6, instructions: the work each case does, counted by valgrind instead of timed.

On a shared 2-core machine the timed ratios move by several percent from one run to the next
(the same code gave the 784 float64 step 1.01x and 1.08x the NumPy floor twenty minutes
apart), which is as large as the margins the issue sets against hand-written NumPy: 1.05x for
the 784-256-256-10 step, 1.5x for the compiled 2-16-16-1 step, 2x per op. Counted, the same
code gives nearly the same numbers in every run (instructions within 0.1% between runs;
cache misses within 0.1% on the large MLP, a few percent on the small cases, where they are
few). For the cases behind those targets this workload reports, per op or per step:

- ``Ir``: instructions executed (valgrind's callgrind);
- ``I1 misses``: instruction fetches that miss its simulated first-level instruction cache
  (``--cache-sim=yes``): how much code a step runs through, and how often it comes back to
  code the BLAS kernels have pushed out in between;
- ``D1 misses``: reads and writes that miss the simulated first-level data cache: a measure of
  the memory traffic around the same array calls.

These are not time: a BLAS kernel's vector instruction, an interpreter's branchy one and a
cache miss to memory all count one. What they isolate is what chainrule adds to the same
array calls (its Python and C around them, and any array calls of its own), which timing on
this machine cannot resolve below a few percent.

How: one child process runs under valgrind. It imports chainrule and NumPy, makes every case
from the same code as workloads 1 and 2 (``overhead.cases``; ``mlp.make``, one training step a
run), runs each ``WARMUP`` times (``cr.compile`` traces at the first; CPython specialises a
function's code after 8 calls), and then, for each case, calls
``os.getppid()`` before and after running it ``K`` times: callgrind is told to dump its
counters before every call of ``getppid`` (``--dump-before=getppid``), so every second dump
holds exactly one case's counts, which are divided by ``K`` and by the ops or steps a run
makes. The collector is emptied before each case, outside the counted span. BLAS runs on one
thread (valgrind runs threads one at a time in any case). Needs ``valgrind`` on the PATH;
without it the workload says so and is skipped.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the child, under valgrind
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import mlp, overhead, peers  # noqa: E402
from benchmarks.harness import fmt_num, fmt_table, log  # noqa: E402

__all__ = ["run", "parse_totals"]

# Runs of each case before counting: a compiled function is traced at its first call, and
# CPython 3.11 rewrites a function's code into its specialised form only after it has run 8
# times (counted after 3 runs rather than 40, a 784-256-256-10 step of chainrule ran 31,000
# more instructions, 0.13%: functions called once a step, still running unspecialised).
WARMUP = 10
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
LIBS = ["chainrule", "chainrule compiled", "numpy"]
LABELS = {"numpy": "numpy (by hand, floor)"}
EVENTS = ("Ir", "I1mr", "D1mr", "D1mw")  # callgrind's names
TABLES = {  # table title -> the events summed in it
    "instructions": ("Ir",),
    "I1 misses (instruction fetches)": ("I1mr",),
    "D1 misses (reads + writes)": ("D1mr", "D1mw"),
}


def _plan(quick: bool) -> list[dict[str, Any]]:
    """The workloads counted: each a name, what one run counts (ops or steps), and how many
    runs are counted (counts need no repeats: under valgrind a 784-256-256-10 step takes
    seconds, so the large MLP counts one)."""
    rows = [{"workload": "per-op, 1 element", "kind": "overhead", "unit": "op", "runs": 3}]
    for spec in mlp.SPECS:
        runs = 1 if spec.sizes[0] == 784 else 20
        rows.append({"workload": spec.name, "kind": "mlp", "unit": "step", "runs": runs})
    if quick:
        rows = [dict(r, runs=1) for r in rows]
    return rows


def _cases(row: dict[str, Any]) -> dict[str, tuple[Callable[[], Any], int]]:
    """Library -> (a run of the case, the ops or steps it makes)."""
    out: dict[str, tuple[Callable[[], Any], int]] = {}
    if row["kind"] == "overhead":
        for lib, case in overhead.cases(1).items():
            if lib in LIBS and case is not None:
                out[lib] = (case, overhead.N_OPS)
        return out
    spec = next(s for s in mlp.SPECS if s.name == row["workload"])
    init = mlp.Init.of(spec)
    for lib in ("chainrule", "chainrule compiled", "numpy"):
        if peers.get(lib.split()[0]) is not None:
            out[lib] = (mlp.make(lib, spec, init).step, 1)  # one step a run
    return out


def _child(plan: list[dict[str, Any]]) -> None:
    """Under valgrind: run every case between two markers; print what was counted, in order."""
    peers.setup(["chainrule", "numpy"])
    work = [(row, lib, case, per) for row in plan for lib, (case, per) in _cases(row).items()]
    for _, _, case, _ in work:
        for _ in range(WARMUP):
            case()
    order = []
    for row, lib, case, per in work:
        gc.collect()
        os.getppid()  # dump: everything since the last case (not counted)
        for _ in range(row["runs"]):
            case()
        os.getppid()  # dump: this case alone
        order.append({"workload": row["workload"], "lib": lib, "per": per * row["runs"]})
    print(json.dumps(order))


def parse_totals(path: Path) -> dict[str, int]:
    """Event name -> total, from one callgrind dump (its ``events:`` and ``totals:`` lines)."""
    names: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("events:"):
            names = line.split()[1:]
        elif line.startswith("totals:"):
            return dict(zip(names, (int(v) for v in line.split()[1:])))
    raise ValueError(f"{path}: no totals line: not a callgrind dump")


def _count(plan: list[dict[str, Any]], valgrind: str) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            valgrind,
            "--tool=callgrind",
            "--cache-sim=yes",
            "--dump-before=getppid",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            json.dumps(plan),
        ]
        env = {**os.environ, **ONE_THREAD}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            raise RuntimeError(f"valgrind child failed ({done.returncode}):\n{done.stderr[-3000:]}")
        order = json.loads(done.stdout.strip().splitlines()[-1])
        dumps = sorted(Path(tmp).glob("callgrind.out.*"), key=lambda p: int(p.suffix[1:]))
        if len(dumps) != 2 * len(order):
            raise RuntimeError(
                f"expected {2 * len(order)} counter dumps, got {len(dumps)}: something else "
                "called getppid() inside a counted span"
            )
        for k, entry in enumerate(order):
            totals = parse_totals(dumps[2 * k + 1])  # every second dump is a case
            entry["counts"] = {e: totals.get(e, 0) / entry["per"] for e in EVENTS}
        return order


def run(quick: bool, repeats: int = 1) -> tuple[str, dict[str, Any]]:
    """Count every case once (counts do not need repeats); the tables and the JSON data."""
    title = "6. Instructions and simulated L1 cache misses per op or step (valgrind)"
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return f"{title}: skipped, valgrind is not installed", {"skipped": "no valgrind"}
    plan = _plan(quick)
    log("workload 6: counting instructions under valgrind (a few minutes)")
    try:
        order = _count(plan, valgrind)
    except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired) as err:
        log(f"workload 6 failed: {err}")
        return f"{title}: failed: {err}", {"error": str(err)}
    data: dict[str, Any] = {"threads": 1, "workloads": {}}
    for entry in order:
        per_lib = data["workloads"].setdefault(entry["workload"], {})
        per_lib[entry["lib"]] = entry["counts"]
    libs = [lib for lib in LIBS if any(lib in v for v in data["workloads"].values())]
    tables = [title]
    for label, events in TABLES.items():
        rows = []
        for row in plan:
            counts = data["workloads"].get(row["workload"], {})

            def value(lib: str, counts: dict[str, Any] = counts) -> float | None:
                c = counts.get(lib)
                return None if c is None else sum(c[e] for e in events)

            floor = value("numpy")
            cells = [f"{row['workload']} (per {row['unit']})"]
            for lib in libs:
                v = value(lib)
                cells.append(fmt_num(v) if v is not None else "-")
            for lib in ("chainrule", "chainrule compiled"):
                v = value(lib)
                cells.append(f"{v / floor:.3f}" if v is not None and floor else "-")
            rows.append(cells)
        headers = [label, *(LABELS.get(lib, lib) for lib in libs)]
        headers += ["chainrule/numpy", "compiled/numpy"]
        tables.append(fmt_table(headers, rows))
    tables.append(
        "Counts, not times: instructions repeat within 0.1% from run to run; BLAS on one "
        "thread. What chainrule adds to the NumPy floor's array calls is the ratio minus 1."
    )
    return "\n\n".join(tables), data


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    _child(json.loads(sys.argv[2]))
