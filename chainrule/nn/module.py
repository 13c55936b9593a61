"""Module and Parameter: the containers that make a network's parameters findable by name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..backends import namespace, to_numpy
from ..engine.modes import next_seq, state
from ..engine.tensor import Tensor

__all__ = ["Parameter", "Module", "Sequential", "StateDictError"]


class Parameter(Tensor):
    """A Tensor that a :class:`Module` registers as one of its parameters (requires grad).

    >>> import chainrule as cr
    >>> p = cr.nn.Parameter([1.0, 2.0])
    >>> p.requires_grad, p.is_leaf
    (True, True)
    """

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        if isinstance(data, Tensor):
            data = data.data
        xp = namespace(data)
        arr = xp.asarray(data)
        if getattr(arr.dtype, "kind", "f") in "iub":
            arr = xp.astype(arr, xp.float64)
        super().__init__(arr, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter(" + super().__repr__()[len("tensor(") :]


class StateDictError(ValueError):
    """A state dict does not fit the model; the message lists every mismatch."""


class Module:
    """Base class of layers and models: set Parameters and Modules as attributes, write
    ``forward``, call the module.

    >>> import chainrule as cr
    >>> class Affine(cr.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.w = cr.nn.Parameter([2.0])
    ...         self.b = cr.nn.Parameter([0.5])
    ...     def forward(self, x):
    ...         return x * self.w + self.b
    >>> m = Affine()
    >>> [name for name, _ in m.named_parameters()]
    ['w', 'b']
    >>> float(m(cr.tensor([1.0])).sum())
    2.5
    """

    _parameters: dict[str, Parameter]
    _modules: dict[str, Module]
    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        if params is None:
            raise AttributeError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        modules = self.__dict__["_modules"]
        # a replacement keeps its place in the registration order (as in PyTorch)
        if isinstance(value, Parameter):
            modules.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            modules[name] = value
        else:
            params.pop(name, None)
            modules.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    # -- calling ----------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        outer = state.scope
        state.scope = (*outer, self)  # nodes made inside are tagged with this module
        try:
            return self.forward(*args, **kwargs)
        finally:
            state.scope = outer

    # -- parameters -------------------------------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) for every parameter, each once, in registration order."""
        seen: set[int] = set()
        for name, p in self._named_parameters(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _named_parameters(self, prefix: str) -> Iterator[tuple[str, Parameter]]:
        for name, p in self._parameters.items():
            yield prefix + name, p
        for name, m in self._modules.items():
            yield from m._named_parameters(prefix + name + ".")

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix.rstrip("."), self
        for name, m in self._modules.items():
            yield from m.named_modules(prefix + name + ".")

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def zero_grad(self) -> None:
        """Drop the accumulated gradients of every parameter."""
        for p in self.parameters():
            p.grad = None

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # -- modes ------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active); returns the module."""
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode (dropout off); returns the module."""
        return self.train(False)

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameter name -> a NumPy copy of its value (a snapshot, not a view)."""
        return {name: np.array(to_numpy(p.data), copy=True) for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy values into the parameters. Every key and shape is checked first: on any
        mismatch nothing changes and :class:`StateDictError` lists all of them (key,
        checkpoint shape, model shape)."""
        own = dict(self.named_parameters())
        problems = []
        for name, p in own.items():
            if name not in state:
                if strict:
                    problems.append(f"missing key {name!r} (model shape {p.shape})")
                continue
            shape = tuple(np.shape(state[name]))
            if shape != p.shape:
                problems.append(f"{name!r}: checkpoint shape {shape}, model shape {p.shape}")
        if strict:
            for name in state:
                if name not in own:
                    problems.append(
                        f"unexpected key {name!r} (checkpoint shape {tuple(np.shape(state[name]))})"
                    )
        if problems:
            raise StateDictError(
                f"load_state_dict: the state does not fit {type(self).__name__} "
                f"({len(problems)} mismatch{'es' if len(problems) > 1 else ''}); nothing was "
                "changed:\n  " + "\n  ".join(problems)
            )
        for name, p in own.items():
            if name in state:
                value = state[name]
                value = value.data if isinstance(value, Tensor) else value
                xp = namespace(p.data)
                p.data = xp.asarray(np.array(to_numpy(value), copy=True), dtype=p.data.dtype)
                p._version = next_seq()

    # -- display ------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            return head + ")"
        lines = [head]
        for name, m in self._modules.items():
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"


class Sequential(Module):
    """Modules applied in order; indexable and iterable.

    >>> import chainrule as cr
    >>> net = cr.nn.Sequential(cr.nn.Linear(2, 3, rng=0), cr.nn.Tanh(), cr.nn.Linear(3, 1, rng=1))
    >>> net(cr.zeros((4, 2))).shape
    (4, 1)
    """

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: item {i} is a {type(layer).__name__}, not a Module")
            setattr(self, str(i), layer)

    def forward(self, x: Any) -> Any:
        for layer in self._modules.values():
            x = layer(x)
        return x

    def __getitem__(self, i: int | slice) -> Any:
        layers = list(self._modules.values())
        if isinstance(i, slice):
            return Sequential(*layers[i])
        return layers[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())
