"""Subcommands of ``chainrule`` beyond train/evaluate/ops, one module each.

A module here defines ``register(subparsers)``, which adds its parser and sets
``run=function(args) -> int`` as a default. ``chainrule.cli`` finds the modules by listing this
package. A command reports bad input by raising :class:`CommandError` (one line for the user,
exit status 1); it never lets a traceback through.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

__all__ = ["CommandError", "modules"]


class CommandError(ValueError):
    """Bad input to a command: the message is the one line the user sees."""


def modules() -> list[ModuleType]:
    """The command modules of this package, in name order."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            found.append(importlib.import_module(f"{__name__}.{info.name}"))
    return found
