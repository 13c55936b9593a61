"""Timing side by side: every library's case runs in the same process, interleaved.

One *round* runs each case once; the order rotates by one place every round, so no library is
always first (cold caches, a fresh heap) or always last. Warm-up rounds come first and are
thrown away. Before every run the garbage collector is emptied (``gc.collect()``, untimed), so
each run starts from the same heap; during the run it stays enabled, as it is for a user:
a library that makes many container objects pays for the collections they trigger.

A case is a function that runs the workload once and returns the seconds it measured (it
times itself, so set-up such as making the input leaf stays outside the clock), or a dict of
named measurements. A case that raises is reported with its error (a RecursionError is a
result, not a crash) and is not run again.
"""

from __future__ import annotations

import gc
import math
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Outcome",
    "interleave",
    "paired_ratio",
    "ratios",
    "side_by_side",
    "fmt_table",
    "fmt_num",
    "log",
    "timer",
]


def log(message: str) -> None:
    """A progress line on stderr (the tables go to stdout)."""
    print(message, file=sys.stderr, flush=True)


@dataclass
class Outcome:
    """What one case gave: samples per measurement name, or the error that stopped it."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    error: str | None = None
    missing: str | None = None  # the library could not be imported

    def median(self, key: str = "time") -> float:
        values = self.samples.get(key, [])
        return statistics.median(values) if values else math.nan

    @property
    def ok(self) -> bool:
        return self.error is None and self.missing is None and bool(self.samples)

    @property
    def status(self) -> str:
        if self.missing is not None:
            return "missing"
        if self.error is not None:
            return self.error.split(":", 1)[0]
        return "ok"

    def to_json(self, scale: float = 1.0, unscaled: Sequence[str] = ("ratio",)) -> dict[str, Any]:
        """Medians (and samples) multiplied by ``scale`` (the unit the table shows), except
        the unitless measurements named in ``unscaled``."""
        out: dict[str, Any] = {"status": self.status}
        if self.error:
            out["error"] = self.error
        if self.missing:
            out["missing"] = self.missing
        for key, values in self.samples.items():
            scaled = [v * (1.0 if key in unscaled else scale) for v in values]
            out[key] = {
                "median": statistics.median(scaled),
                "min": min(scaled),
                "max": max(scaled),
                "repeats": len(scaled),
                "samples": scaled,
            }
        return out


def _run_once(fn: Callable[[], Any], outcome: Outcome, keep: bool, settle: float) -> None:
    gc.collect()
    if settle:
        time.sleep(settle)
    try:
        value = fn()
    except (Exception, RecursionError) as err:  # a peer's failure is a result
        outcome.error = f"{type(err).__name__}: {err}"[:300]
        return
    if keep:
        values = value if isinstance(value, dict) else {"time": value}
        for key, v in values.items():
            outcome.samples.setdefault(key, []).append(float(v))


def interleave(
    cases: Mapping[str, Callable[[], Any] | None],
    repeats: int,
    warmup: int = 1,
    missing: dict[str, str] | None = None,
    extra_repeats: dict[str, int] | None = None,
    label: str = "",
    settle: float = 0.0,
) -> dict[str, Outcome]:
    """Run every case ``warmup`` times (discarded), then ``repeats`` rounds, rotating the order.

    ``cases`` maps a library to its case; ``None`` (or a name in ``missing``) marks a library
    that is not there. ``extra_repeats`` gives some libraries more rounds after the common
    ones (still interleaved among themselves): for the workloads where the slowest peers would
    take minutes per round, the libraries a target is about get the full count.

    ``settle`` seconds of sleep before each run let the previous library's idle worker threads
    stop spinning. OpenBLAS's workers spin about 0.1 s after a call before they sleep (libgomp's,
    PyTorch's, for less); a library started inside that window shares the two cores with them.
    Measured here without it: torch.mm at the MLP's shapes ran at half speed whenever it came
    right after NumPy's matmul. Needed only where a workload runs multithreaded BLAS.
    """
    missing = dict(missing or {})
    out: dict[str, Outcome] = {}
    live: list[str] = []
    for name, fn in cases.items():
        if fn is None or name in missing:
            out[name] = Outcome(missing=missing.get(name, "not importable"))
        else:
            out[name] = Outcome()
            live.append(name)

    def rounds(names: Sequence[str], count: int, keep: bool, offset: int = 0) -> None:
        for r in range(count):
            k = (r + offset) % max(len(names), 1)
            order = list(names[k:]) + list(names[:k])
            for name in order:
                if out[name].error is None:
                    fn = cases[name]
                    assert fn is not None
                    _run_once(fn, out[name], keep, settle)
            if label and keep:
                log(f"  {label}: round {r + 1 + offset}/{offset + count}")

    rounds(live, warmup, keep=False)
    rounds(live, repeats, keep=True)
    if extra_repeats:
        more = max(extra_repeats.values())
        names = [n for n in live if n in extra_repeats]
        rounds(names, more, keep=True, offset=repeats)
    return out


def paired_ratio(a: Outcome, b: Outcome, key: str = "time") -> float:
    """The median over rounds of a's sample / b's sample in the same round.

    Every library's k-th sample comes from the same round, a second or so apart, so a slow
    phase of the machine (seen here: BLAS throughput down a third for every library for a
    minute, no other process busy) moves both sides of a ratio together; the ratio of the two
    medians would mix rounds from different phases.
    """
    xs, ys = a.samples.get(key, []), b.samples.get(key, [])
    ratios = [x / y for x, y in zip(xs, ys) if y > 0]
    return statistics.median(ratios) if ratios else math.nan


def ratios(outcomes: Mapping[str, Outcome], ours: str = "chainrule") -> dict[str, float]:
    """ours / each library that ran, by ``paired_ratio``."""
    base = outcomes.get(ours)
    if base is None or not base.ok:
        return {}
    return {lib: paired_ratio(base, o) for lib, o in outcomes.items() if o.ok}


def fmt_num(value: float, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, thousands separated; '-' for NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:,.{decimals}f}"


def fmt_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], first_left: bool = True
) -> str:
    """A plain fixed-width table: the first column left-aligned, the rest right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = []
        for i, cell in enumerate(cells):
            parts.append(cell.ljust(widths[i]) if i == 0 and first_left else cell.rjust(widths[i]))
        return "  ".join(parts).rstrip()

    rule = "-" * len(line(headers))
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def timer() -> float:
    return time.perf_counter()


def side_by_side(
    columns: dict[str, dict[str, Outcome]],
    scale: float,
    labels: dict[str, str] | None = None,
    key: str = "time",
    ours: str = "chainrule",
) -> str:
    """One row per library, two columns per case: its median (times ``scale``) and the ratio
    ours / it, the median of the per-round ratios (``paired_ratio``; below 1: ours is faster).
    A missing or failed library shows its status."""
    labels = labels or {}
    libs: list[str] = []
    for outcomes in columns.values():
        for lib in outcomes:
            if lib not in libs:
                libs.append(lib)
    headers = ["library"]
    for name in columns:
        headers += [name, f"{ours}/lib"]
    rows = []
    for lib in libs:
        row = [labels.get(lib, lib)]
        for outcomes in columns.values():
            o = outcomes.get(lib)
            base = outcomes.get(ours)
            if o is None:
                row += ["", ""]
            elif not o.ok:
                row += [o.status, ""]
            else:
                ratio = paired_ratio(base, o, key) if base is not None and base.ok else math.nan
                row += [fmt_num(o.median(key) * scale), fmt_num(ratio, 3)]
        rows.append(row)
    return fmt_table(headers, rows)
