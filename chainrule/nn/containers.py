"""Containers of submodules: ``ModuleList`` and ``ModuleDict``, registered so that their
layers' parameters are the model's (a plain Python list would hide them)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .module import Module

__all__ = ["ModuleList", "ModuleDict"]


def _checked(owner: str, key: Any, value: Any) -> Module:
    if not isinstance(value, Module):
        raise TypeError(f"{owner}: item {key!r} is a {type(value).__name__}, not a Module")
    return value


class ModuleList(Module):
    """A list of modules whose parameters belong to the model; index, iterate, append.

    >>> import chainrule as cr
    >>> layers = cr.nn.ModuleList([cr.nn.Linear(3, 3, rng=i) for i in range(2)])
    >>> len(layers), len(list(layers.parameters()))
    (2, 4)
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        for m in modules or ():
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        setattr(self, str(len(self._modules)), _checked("ModuleList", len(self), module))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, i: int | slice) -> Any:
        items = list(self._modules.values())
        return ModuleList(items[i]) if isinstance(i, slice) else items[i]

    def __setitem__(self, i: int, module: Module) -> None:
        key = list(self._modules)[i]
        setattr(self, key, _checked("ModuleList", i, module))

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleList has no forward: iterate over its modules")


class ModuleDict(Module):
    """A dict of modules whose parameters belong to the model (names as keys).

    >>> import chainrule as cr
    >>> heads = cr.nn.ModuleDict({"a": cr.nn.Linear(2, 1, rng=0), "b": cr.nn.Linear(2, 3, rng=1)})
    >>> sorted(name for name, _ in heads.named_parameters())
    ['a.bias', 'a.weight', 'b.bias', 'b.weight']
    """

    def __init__(self, modules: Mapping[str, Module] | None = None) -> None:
        super().__init__()
        for key, m in (modules or {}).items():
            self[key] = m

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ModuleDict: {key!r} is not a valid name (a string, no dots)")
        setattr(self, key, _checked("ModuleDict", key, module))

    def __delitem__(self, key: str) -> None:
        delattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def keys(self) -> Any:
        return self._modules.keys()

    def values(self) -> Any:
        return self._modules.values()

    def items(self) -> Any:
        return self._modules.items()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleDict has no forward: call the module you want")
