"""The ``chainrule`` command: one module per subcommand (train, explain, plot, cost)."""

from __future__ import annotations

from .app import main

__all__ = ["main"]
