"""The ``chainrule`` command (also ``python -m chainrule``).

``chainrule ops`` lists every op in the table with its derivative formula, what it supports
(VJP, JVP, second order) and its convention at kinks.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import __version__
from .ops import table

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chainrule",
        description="Backpropagation over computation graphs, NumPy-native.",
    )
    parser.add_argument("--version", action="version", version=f"chainrule {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    ops = sub.add_parser("ops", help="list the op table: formulas, support, kink conventions")
    ops.add_argument("--family", help="only ops of this family (elementwise, nn, linalg, ...)")
    ops.add_argument("--json", action="store_true", help="print the table as JSON")
    return parser


def _ops(family: str | None, as_json: bool) -> int:
    rows = table()
    if family is not None:
        families = sorted({r["family"] for r in rows})
        if family not in families:
            print(
                f"chainrule ops: unknown family {family!r}; choose one of {', '.join(families)}",
                file=sys.stderr,
            )
            return 2
        rows = type(rows)(r for r in rows if r["family"] == family)
    if as_json:
        print(json.dumps([dict(r, numpy=list(r["numpy"])) for r in rows], indent=2))
    else:
        print(rows)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed one line of usage error
        return int(exc.code or 0)
    try:
        if args.command == "ops":
            return _ops(args.family, args.json)
        parser.print_help()
        return 0
    except BrokenPipeError:  # the reader (e.g. `| head`) went away: not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("chainrule: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
