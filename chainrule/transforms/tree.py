"""Containers of arrays ("pytrees"): the one place that walks them.

A tree is a leaf (an array, a Tensor, a number, anything else) or a container of trees: a
tuple, a list, a dict, a namedtuple, a dataclass instance, or None (a container of nothing).
The transforms take and return trees: ``cr.grad(loss)(params)`` with ``params`` a dict of
arrays returns a dict of the same keys.

>>> import chainrule as cr
>>> leaves, spec = cr.tree.flatten({"w": [1.0, 2.0], "b": 3.0})
>>> leaves
[3.0, 1.0, 2.0]
>>> cr.tree.unflatten(spec, [x * 10 for x in leaves])
{'b': 30.0, 'w': [10.0, 20.0]}
>>> cr.tree.map(lambda a, b: a + b, (1, [2]), (10, [20]))
(11, [22])

Dict keys are taken in sorted order where they sort (as JAX does), so two dicts with the same
keys have the same structure whatever order they were built in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["flatten", "unflatten", "map", "leaves", "structure", "Structure"]


class Structure:
    """The shape of a tree without its leaves: what :func:`unflatten` rebuilds from."""

    __slots__ = ("kind", "meta", "children", "num_leaves")

    def __init__(self, kind: Any, meta: Any, children: tuple[Structure, ...]) -> None:
        self.kind = kind  # None for a leaf, else the container's type
        self.meta = meta  # dict keys, dataclass field names
        self.children = children
        self.num_leaves: int = 1 if kind is None else sum(c.num_leaves for c in children)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Structure)
            and self.kind is other.kind
            and self.meta == other.meta
            and self.children == other.children
        )

    def __hash__(self) -> int:
        return hash((self.kind, str(self.meta), self.children))

    def __repr__(self) -> str:
        if self.kind is None:
            return "*"
        inner = ", ".join(repr(c) for c in self.children)
        if self.kind is dict:
            inner = ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.meta, self.children))
            return "{" + inner + "}"
        if self.kind is list:
            return f"[{inner}]"
        if self.kind is tuple:
            return f"({inner}{',' if len(self.children) == 1 else ''})"
        if self.kind is type(None):
            return "None"
        return f"{self.kind.__name__}({inner})"


_LEAF = Structure(None, None, ())


def _keys(d: dict[Any, Any]) -> list[Any]:
    try:
        return sorted(d)
    except TypeError:  # keys of mixed types: the order they were inserted in
        return list(d)


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _children(x: Any) -> tuple[Any, Any, list[Any]] | None:
    """(kind, meta, children) of a container; None for a leaf."""
    t = type(x)
    if t is tuple or t is list:
        return t, None, list(x)
    if isinstance(x, dict):
        keys = _keys(x)
        return t, tuple(keys), [x[k] for k in keys]
    if x is None:
        return type(None), None, []
    if _is_namedtuple(x):
        return t, None, list(x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        names = tuple(f.name for f in dataclasses.fields(x) if f.init)
        return t, names, [getattr(x, n) for n in names]
    return None


def flatten(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list[Any], Structure]:
    """The leaves of ``tree``, left to right, and its structure. ``is_leaf(x)`` may stop the
    walk at a container (it is then one leaf)."""
    out: list[Any] = []
    return out, _flatten(tree, out, is_leaf)


def _flatten(x: Any, out: list[Any], is_leaf: Callable[[Any], bool] | None) -> Structure:
    found = None if is_leaf is not None and is_leaf(x) else _children(x)
    if found is None:
        out.append(x)
        return _LEAF
    kind, meta, kids = found
    return Structure(kind, meta, tuple(_flatten(k, out, is_leaf) for k in kids))


def unflatten(spec: Structure, leaves: Iterable[Any]) -> Any:
    """The tree of structure ``spec`` holding ``leaves`` (as many as it has places)."""
    it = iter(leaves)
    tree = _build(spec, it)
    if next(it, _END) is not _END:
        raise ValueError(f"unflatten: more leaves than the structure {spec!r} holds")
    return tree


_END = object()


def _build(spec: Structure, it: Any) -> Any:
    if spec.kind is None:
        leaf = next(it, _END)
        if leaf is _END:
            raise ValueError("unflatten: fewer leaves than the structure holds")
        return leaf
    kids = [_build(c, it) for c in spec.children]
    kind = spec.kind
    if kind is type(None):
        return None
    if kind is tuple or kind is list:
        return kind(kids)
    if issubclass(kind, dict):
        return kind(zip(spec.meta, kids))
    if issubclass(kind, tuple):  # a namedtuple
        return kind(*kids)
    return kind(**dict(zip(spec.meta, kids)))  # a dataclass


def leaves(tree: Any) -> list[Any]:
    """The leaves of ``tree``, left to right."""
    return flatten(tree)[0]


def structure(tree: Any) -> Structure:
    """The structure of ``tree`` (its containers, without the leaves)."""
    return flatten(tree)[1]


def map(f: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """``f`` applied leaf by leaf: to the leaves of ``tree`` and the leaves in the same places
    of each of ``rest`` (which must have ``tree``'s structure)."""
    values, spec = flatten(tree)
    others = []
    for r in rest:
        r_values, r_spec = flatten(r)
        if r_spec != spec:
            raise ValueError(f"tree.map: structures differ: {spec!r} and {r_spec!r}")
        others.append(r_values)
    return unflatten(spec, [f(*args) for args in zip(values, *others)])
