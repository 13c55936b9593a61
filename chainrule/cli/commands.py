"""Subcommands of ``chainrule`` beyond train/evaluate/ops, one module each.

Each (``cost``, ``explain``, ``plot``) defines ``register(subparsers)``, which adds its parser
and sets ``run=function(args) -> int`` as a default; :func:`modules` names them. A command
reports bad input by raising :class:`CommandError` (one line for the user, exit status 1); it
never lets a traceback through.
"""

from __future__ import annotations

from types import ModuleType

__all__ = ["CommandError", "modules"]


class CommandError(ValueError):
    """Bad input to a command: the message is the one line the user sees."""


def modules() -> list[ModuleType]:
    """The subcommand modules, in name order (imported when the parser is built: a command
    pays only for what it runs)."""
    from . import cost, explain, plot

    return [cost, explain, plot]
