"""A stand-in for the ``cython`` module where Cython is not installed (a plain-Python
install of chainrule): the engine's source names two of its class decorators, which the
compiled build obeys (see chainrule/engine/tensor.py) and which here change nothing."""

from __future__ import annotations

from typing import Any


def trashcan(flag: bool) -> Any:
    return lambda cls: cls


def cclass(cls: Any) -> Any:
    return cls
