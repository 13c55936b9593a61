"""``chainrule cost [--sizes 10,20,50,100,200] [--plot PATH]``: central differences against
backprop for the handout's two-layer loss, counted and timed; the table and the fitted slopes,
and optionally a log-log picture of time against d."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from . import memory
from .commands import CommandError
from .outputs import check_output_file

__all__ = ["register", "run"]

# Arrays of d x d numbers alive at once while one size is measured: W1 and W2, the draw they
# are scaled from, the numerical gradient with its perturbed copy of W1, and backprop's copy
# of W1 with its gradient.
_SQUARES_PER_SIZE = 8


def register(subparsers: Any) -> None:
    from ..teach.costs import DEFAULT_SIZES

    default = ",".join(str(d) for d in DEFAULT_SIZES)
    parser = subparsers.add_parser(
        "cost",
        help="measure numerical against analytic gradients (evaluations, time, slopes)",
        description=(
            "For l = 1/2 ||W2 tanh(W1 x + b) - y||^2 with respect to W1 (d x d): the "
            "evaluations central differences make (2 d^2, counted) against one forward and one "
            "backward pass, the wall time of each, their ratio, backward/forward, and the "
            "slopes of log time against log d. The numerical gradient costs O(d^4): the "
            "default sizes take about 10 s."
        ),
    )
    parser.add_argument(
        "--sizes", default=default, help=f"comma-separated sizes d (default {default})"
    )
    parser.add_argument("--repeats", default="5", help="timed runs per size, best kept (5)")
    parser.add_argument("--plot", default=None, help="also save time against d: .png or .svg")
    parser.set_defaults(run=run)


def _positive_ints(text: str, option: str, example: str) -> list[int]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise CommandError(
            f"{option} must be comma-separated positive integers like {example}, got {text!r}"
        )
    return values


def run(args: argparse.Namespace) -> int:
    sizes = _positive_ints(args.sizes, "--sizes", "10,20,50")
    try:
        repeats = int(args.repeats)
    except ValueError:
        repeats = 0
    if repeats < 1:
        raise CommandError(f"--repeats must be a positive integer like 5, got {args.repeats!r}")
    largest = max(sizes)
    needed = _SQUARES_PER_SIZE * largest * largest * memory.BYTES_PER_NUMBER
    reason = memory.refusal(needed, f"{_SQUARES_PER_SIZE} arrays of d x d numbers")
    if reason is not None:
        raise CommandError(
            f"--sizes {largest}: measuring d = {largest} {reason}; give smaller sizes"
        )
    plot = None if args.plot is None else Path(args.plot)
    if plot is not None:
        if plot.suffix.lower() not in (".png", ".svg"):
            raise CommandError(f"--plot {plot}: end the file name with .png or .svg")
        check_output_file(plot, "--plot")  # before the measurements, which take a while
    from ..teach.costs import cost_report

    start = time.perf_counter()

    def progress(d: int) -> None:
        print(f"measuring d = {d}: {2 * d * d:,} evaluations ...", file=sys.stderr, flush=True)

    report = cost_report(sizes=sizes, repeats=repeats, progress=progress)
    print(report)
    if plot is not None:
        try:
            out = report.plot(plot)
        except ImportError as err:
            raise CommandError(str(err)) from None
        except OSError as err:
            raise CommandError(f"cannot write {plot}: {err.strerror or err}") from None
        print(f"plot: {out}")
    print(f"measured in {time.perf_counter() - start:.1f} s")
    return 0
