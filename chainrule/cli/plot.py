"""``chainrule plot activations --out PATH [--slope 0.1]``: the nonlinearities and their
derivatives by backprop, on one figure (PNG or SVG by the extension)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from .commands import CommandError
from .outputs import check_output_file

__all__ = ["register", "run"]

KINDS = ("activations",)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="draw sigmoid, tanh, ReLU and leaky ReLU with their derivatives by backprop",
        description=(
            "Draw a figure. 'activations': sigmoid, tanh, ReLU and leaky ReLU (solid) with "
            "their derivatives computed by chainrule's backward pass (dashed), the convention "
            "at each kink marked (relu'(0) = 0, leaky'(0) = slope)."
        ),
    )
    parser.add_argument("kind", metavar="KIND", help=f"what to draw: {', '.join(KINDS)}")
    parser.add_argument("--out", required=True, help="the picture to write: .png or .svg")
    parser.add_argument(
        "--slope", default="0.1", help="leaky ReLU's slope for x <= 0, in [0, 1] (default 0.1)"
    )
    parser.set_defaults(run=run)


def _slope(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise CommandError(
            f"--slope must be a number between 0 and 1 (leaky ReLU is max(x, a x)), got {text!r}"
        )
    return value


def run(args: argparse.Namespace) -> int:
    if args.kind not in KINDS:
        raise CommandError(f"unknown plot {args.kind!r}; choose one of: {', '.join(KINDS)}")
    slope = _slope(args.slope)
    if Path(args.out).suffix.lower() in (".png", ".svg"):  # (other names: the error below)
        check_output_file(Path(args.out), "--out")
    from ..viz.plots import plot_activations

    try:
        out = plot_activations(args.out, negative_slope=slope)
    except ImportError as err:
        raise CommandError(str(err)) from None
    except ValueError as err:  # the file name's extension
        raise CommandError(str(err)) from None
    except OSError as err:
        raise CommandError(f"cannot write {args.out}: {err.strerror or err}") from None
    print(f"activations (leaky ReLU slope {slope:g})  {out}")
    return 0
