"""``chainrule explain EXPR --at x=3[,y=...]``: the chain rule, step by step, for a small
expression: forward values, each backward step with its local derivatives, and the final
derivatives next to central differences. ``--svg``/``--html`` also draw the graph."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .commands import CommandError
from .outputs import check_output_file

__all__ = ["register", "run"]

_EPILOG = """\
EXPR may use numbers, the variables given in --at, unary + -, binary + - * / ** @ and
chainrule's functions by bare name (tanh, sigmoid, relu, exp, log, sum, ...); anything else is
refused before it runs. Examples:
  chainrule explain 'x**4 + x**2' --at x=3
  chainrule explain 'sigmoid(w*x + b)' --at w=0.5,x=2,b=-0.5
  chainrule explain 'sum(tanh(W @ v))' --at 'W=[[1, 2], [3, 4]],v=[0.1, 0.2]'
  chainrule explain --at x=3 -- '-(x - 1)**2 / 2'     (an EXPR starting with - goes after --)
EXPR may be several statements, separated by ; or new lines: each NAME = ... names an
intermediate, and the last is the sink; every derivative then uses the names. --name NAME=EXPR
names a sub-expression as well, also where EXPR writes it out in full:
  chainrule explain 'z = w*x + b; sigmoid(z)' --at w=0.5,x=2,b=-0.5
  chainrule explain 'sigmoid(w*x + b)' --name z='w*x + b' --at w=0.5,x=2,b=-0.5
"""


def register(subparsers: Any) -> None:
    """Add ``explain`` to the ``chainrule`` command."""
    parser = subparsers.add_parser(
        "explain",
        help="the chain rule step by step for a small expression",
        description=__doc__.split("\n\n")[0].replace("\n", " ") if __doc__ else None,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("expr", metavar="EXPR", help="an expression such as 'x**4 + x**2'")
    parser.add_argument(
        "--at",
        action="append",
        default=[],
        metavar="x=3[,y=...]",
        help="the point: a value for each variable (a list like [1, 2] for an array); repeatable",
    )
    parser.add_argument(
        "--name",
        action="append",
        default=[],
        metavar="NAME=EXPR",
        help="call the sub-expression EXPR by NAME in every derivative; repeatable",
    )
    parser.add_argument("--svg", metavar="PATH", help="also draw the graph to PATH (.svg)")
    parser.add_argument(
        "--html", metavar="PATH", help="also write the interactive page to PATH (.html)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the report; write the picture and the page when asked."""
    from ..teach.explain import explain, parse_at

    point: dict[str, Any] = {}
    for text in args.at:
        for name, value in parse_at(text).items():
            if name in point:
                raise CommandError(f"--at: {name} is given twice")
            point[name] = value
    targets = [(args.svg, (".svg",), "--svg"), (args.html, (".html", ".htm"), "--html")]
    for path, suffixes, flag in targets:
        if path is not None and Path(path).suffix.lower() not in suffixes:
            raise CommandError(f"{flag} {path}: give a path ending in {suffixes[0]}")
    names: dict[str, str] = {}
    for text in args.name:
        name, eq, value = (part.strip() for part in text.partition("="))
        if not eq or not name or not value:
            raise CommandError(f"--name {text!r}: write NAME=EXPR, as in --name h='tanh(x)'")
        if name in names:
            raise CommandError(f"--name: {name} is given twice")
        names[name] = value
    explanation = explain(args.expr, point, names)
    for path, _, flag in targets:
        if path is not None:
            check_output_file(Path(path), flag)  # before the report: nothing half done
    print(explanation.text())
    for path, _, flag in targets:
        if path is not None:
            _save(explanation.graph, Path(path), flag)
    return 0


def _save(graph: Any, path: Path, flag: str) -> None:
    save = getattr(graph, "save", None)
    if save is None:
        raise CommandError(f"{flag}: this chainrule cannot draw graphs yet (no Graph.save)")
    try:
        save(path)
    except OSError as err:
        raise CommandError(f"{flag}: cannot write {path}: {err.strerror or err}") from None
    print(f"wrote {path}")
