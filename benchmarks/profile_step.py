"""Where the time of a step goes: the profiles the speed work starts from (``make profile``).

    .venv-bench/bin/python benchmarks/profile_step.py [WORKLOAD] [--lib LIB] [--steps N]
                                                      [--tool pyinstrument|py-spy|both] [--out DIR]

WORKLOAD is one of ``mlp`` (the 784-256-256-10 relu float32 step of workload 2, the default),
``mlp64`` (the same in float64), ``small`` (the 2-16-16-1 tanh step) or ``chain`` (workload 1's
chain of 1,000 ops on one element); LIB is any library of those workloads (``chainrule``, the
default, ``"chainrule compiled"``, ``numpy``, ``torch``, ...). Each profile runs the case
``--steps`` times after warming it up, with the suite's 2 threads (``environment.py``).

Two profilers, for two questions:

- **pyinstrument** samples the Python stack: under which Python functions the time is spent.
  It prints the call tree and writes an HTML page to ``--out``.
- **py-spy** (``--native``) samples from outside the process, C frames included: where the
  time finally goes (BLAS kernels, NumPy's loops, the interpreter, chainrule's C
  update kernels, libc). The script runs itself as a child under py-spy, keeps only the samples
  taken inside the profiled loop (not imports or set-up), and prints their shares by where
  the innermost frame is and by phase of the step (forward, backward, update). The collapsed
  stacks go to ``--out``: speedscope (https://www.speedscope.app) and flamegraph.pl read them.

py-spy counts the main thread only: BLAS worker threads are not Python threads. A sample in a
BLAS frame of the main thread is the main thread's own share of a matrix product, or its wait
for the workers. Profilers cost time themselves; compare shares, not absolute times, with
``make bench``.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.environment import prepare  # noqa: E402

prepare(__file__)  # before NumPy or any BLAS is loaded

from benchmarks import mlp, overhead, peers  # noqa: E402
from benchmarks.harness import fmt_table, log  # noqa: E402

__all__ = ["WORKLOADS", "make_case", "where", "phase_of", "summarize", "main"]

WORKLOADS = {  # name -> (what it is, the mlp.Spec or None for the per-op chain, default runs)
    "mlp": ("784-256-256-10 relu float32, batch 128", mlp.SPECS[0], 3000),
    "mlp64": ("784-256-256-10 relu float64, batch 128", mlp.SPECS[1], 1500),
    "small": ("2-16-16-1 tanh float64, batch 32", mlp.SPECS[2], 50_000),
    "chain": ("1,000 ops (mul, add, tanh) on 1 element, float64", None, 1000),
}
WARMUP = 20
# py-spy's samples per second. With --native it stops the process for each sample (about
# 1 ms here): at 1,000 a second the profiled loop ran 60 times slower, at 200 a fifth slower
RATE = 200
LOOP = "_profiled"  # the function whose samples are kept
# where the innermost frame is: (label, substrings of the frame's library, lowercase)
PLACES = [
    ("BLAS (matrix products)", ("openblas", "blas", "mkl", "libgomp", "dnnl")),
    ("chainrule C kernels (optimizer updates)", ("chainrule/optim/_fused", "_fused.cpython")),
    ("NumPy C (loops, ufunc machinery)", ("_multiarray_umath", "numpy")),
    ("Python (interpreter, runtime)", ("libpython", "python3")),
    ("libc, libm (memset, malloc, math)", ("libc.so", "libm.so", "libc-", "libm-")),
    ("PyTorch, JAX (C++)", ("libtorch", "libc10", "xla", "jaxlib")),
]
PHASES = ("forward", "backward", "update")


def make_case(workload: str, lib: str) -> Callable[[], Any]:
    """One step (or chain) of ``lib`` on ``workload``, ready to call."""
    peers.setup([lib.split()[0]])
    spec = WORKLOADS[workload][1]
    if spec is None:
        case = overhead.cases(1).get(lib)
        if case is None:
            raise SystemExit(f"profile: {lib!r} has no per-op chain (or is not installed)")
        return case
    if peers.get(lib.split()[0]) is None:
        raise SystemExit(f"profile: {lib!r} is not installed: {peers.missing().get(lib, '')}")
    return mlp.make(lib, spec, mlp.Init.of(spec)).step


def _warm(case: Callable[[], Any]) -> None:
    for _ in range(WARMUP):  # (not in _profiled: its samples are the ones kept)
        case()


def _profiled(case: Callable[[], Any], steps: int) -> None:
    for _ in range(steps):
        case()


def _frames(stack: str) -> list[str]:
    return stack.split(";")


def where(frame: str) -> str:
    """The PLACES label of a py-spy frame (``name (file.py:line)`` for Python code,
    ``symbol (library.so)`` for native code)."""
    inside = frame[frame.rfind("(") + 1 :].rstrip(")").lower() if "(" in frame else ""
    if ".py:" in inside or inside.startswith("<frozen"):
        return "Python (interpreter, runtime)"  # py-spy shows the interpreter as Python frames
    for label, marks in PLACES:
        if any(mark in inside for mark in marks):
            return label
    return "other (kernel, unresolved)"


def phase_of(frames: Iterable[str]) -> str:
    """The phase of the step a stack is in: the first benchmark method below the loop
    (``forward``, ``backward``, ``update`` of workload 2's classes), else ``step``."""
    for frame in frames:
        name, _, inside = frame.partition(" (")
        name = name.rpartition(".")[2]  # py-spy names a method Class.method
        if inside.startswith(("benchmarks/mlp.py", str(HERE / "mlp.py"))) and name in PHASES:
            return name
    return "step"


def summarize(lines: Iterable[str]) -> tuple[int, dict[str, int], dict[str, int]]:
    """(samples in the loop, samples by place, samples by phase) from py-spy's raw output:
    one ``frame;frame;...;frame count`` line per distinct stack, the root first."""
    total = 0
    places: collections.Counter[str] = collections.Counter()
    phases: collections.Counter[str] = collections.Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = _frames(stack)
        inside = [i for i, f in enumerate(frames) if f.startswith(LOOP + " (")]
        if not inside:
            continue  # imports, set-up, warm-up
        below = frames[inside[0] + 1 :]
        n = int(count)
        total += n
        places[where(frames[-1])] += n
        phases[phase_of(below)] += n
    return total, dict(places), dict(phases)


def _share_table(title: str, counts: dict[str, int], total: int) -> str:
    rows = [
        [name, f"{n:,}", f"{100 * n / total:.1f}%"]
        for name, n in sorted(counts.items(), key=lambda kv: -kv[1])
    ]
    return fmt_table([title, "samples", "share"], rows)


def run_pyinstrument(case: Callable[[], Any], steps: int, out: Path, tag: str) -> None:
    from pyinstrument import Profiler

    _warm(case)
    profiler = Profiler(interval=0.0002)
    profiler.start()
    _profiled(case, steps)
    profiler.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    page = out / f"{tag}-pyinstrument.html"
    page.write_text(profiler.output_html())
    log(f"pyinstrument: the call tree as a page: {page}")


def run_py_spy(args: argparse.Namespace, out: Path, tag: str) -> None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("profile: py-spy is not installed (make bench installs it)")
    raw = out / f"{tag}-py-spy.txt"
    child = [sys.executable, str(Path(__file__).resolve()), args.workload, "--lib", args.lib]
    child += ["--steps", str(args.steps), "--child"]
    command = [spy, "record", "--native", "--rate", str(RATE), "--format", "raw", "-o", str(raw)]
    with tempfile.TemporaryFile("w+") as messages:
        done = subprocess.run([*command, "--", *child], stdout=messages, stderr=messages)
        if done.returncode != 0 or not raw.exists():
            messages.seek(0)
            raise SystemExit(f"profile: py-spy failed ({done.returncode}):\n{messages.read()}")
    with raw.open() as f:
        total, places, phases = summarize(f)
    if not total:
        raise SystemExit(f"profile: no samples inside the loop in {raw}")
    print(f"py-spy --native: {total:,} samples of the main thread in the loop, {RATE} a second")
    print(_share_table("where the innermost frame is", places, total))
    if set(phases) != {"step"}:  # workload 2's classes: forward, backward, update apart
        print()
        print(_share_table("phase of the step", phases, total))
    log(f"py-spy: collapsed stacks (speedscope, flamegraph.pl): {raw}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", nargs="?", default="mlp", choices=list(WORKLOADS))
    parser.add_argument("--lib", default="chainrule", help="the library profiled")
    parser.add_argument(
        "--steps", type=int, help="steps (or chains) profiled (default: a few seconds' worth)"
    )
    parser.add_argument("--tool", default="both", choices=["pyinstrument", "py-spy", "both"])
    parser.add_argument("--out", default=str(HERE / "profiles"), help="where files go")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = WORKLOADS[args.workload][2]
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    case = make_case(args.workload, args.lib)
    if args.child:  # under py-spy
        _warm(case)
        _profiled(case, args.steps)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = f"{args.workload}-{args.lib.replace(' ', '-')}"
    print(f"{args.lib}, {WORKLOADS[args.workload][0]}: {args.steps} runs after {WARMUP}")
    if args.tool in ("pyinstrument", "both"):
        run_pyinstrument(case, args.steps, out, tag)
    if args.tool in ("py-spy", "both"):
        run_py_spy(args, out, tag)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
