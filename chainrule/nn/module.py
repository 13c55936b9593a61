"""Module and Parameter: the containers that make a network's parameters findable by name."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..backends import namespace, to_numpy
from ..backends.devices import check_backend, convert
from ..backends.devices import compute as compute_arrays
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
            data = data._data
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
    _buffers: dict[str, Tensor | None]
    _persistent: set[str]
    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_persistent", set())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        if params is None:
            raise AttributeError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        modules, buffers = self.__dict__["_modules"], self.__dict__["_buffers"]
        # a replacement keeps its place in the registration order (as in PyTorch)
        if isinstance(value, Parameter):
            modules.pop(name, None)
            buffers.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            buffers.pop(name, None)
            modules[name] = value
        elif name in buffers:  # a new value for a buffer (a running mean) stays a buffer
            value = _buffer(name, value)
            buffers[name] = value
        else:
            params.pop(name, None)
            modules.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        self._buffers.pop(name, None)
        self._persistent.discard(name)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor: Any, persistent: bool = True) -> None:
        """Keep ``tensor`` as state that is not a parameter (a running mean): no gradient, not
        in ``parameters()``, but in ``state_dict()`` (unless ``persistent=False``) and moved
        with the module. ``None`` reserves the name."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"register_buffer: {name!r} is not a valid name (no dots, not empty)")
        if name in self._parameters or name in self._modules:
            raise KeyError(f"register_buffer: {name!r} is already a parameter or a submodule")
        self._buffers[name] = None
        if persistent:
            self._persistent.add(name)
        else:
            self._persistent.discard(name)
        setattr(self, name, tensor)

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
        for path, m in _walk(self, prefix):
            for name, p in m._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield path + name, p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) for every buffer that is not None."""
        for path, m in _walk(self, prefix):
            for name, b in m._buffers.items():
                if b is not None:
                    yield path + name, b

    def buffers(self) -> Iterator[Tensor]:
        for _, b in self.named_buffers():
            yield b

    def _state_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        for path, m in _walk(self, prefix):
            for name, b in m._buffers.items():
                if b is not None and name in m._persistent:
                    yield path + name, b

    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def apply(self, fn: Any) -> Module:
        """Call ``fn(module)`` on every submodule, then on this one (PyTorch's order: an
        initialiser sees the leaves first), once per module; returns the module."""
        for _, m in _walk(self, "", children_first=True):
            fn(m)
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze every parameter; returns the module."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module and every one below it, each once (a module
        that contains itself, or is shared, is listed under the first name that reaches
        it)."""
        for path, m in _walk(self, prefix):
            yield path.rstrip("."), m

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the accumulated gradients of every parameter (or, with ``set_to_none=False``,
        set them to zeros)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = Tensor(namespace(p._data).zeros_like(p._data))

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # -- backends ---------------------------------------------------------------------------
    def to(self, backend: str, chunks: Any = None) -> Module:
        """Move every parameter and buffer (and gradient) to ``backend`` (``"numpy"``,
        ``"cupy"`` or ``"dask"``, see ``cr.to``), in place: the same Parameter objects, so
        an optimizer made before still holds them (but make it after a move to the GPU, so
        that its state is made there too). Returns the module.

        >>> import chainrule as cr
        >>> layer = cr.nn.Linear(3, 2).to("numpy")
        >>> type(layer.weight.numpy()).__name__
        'ndarray'
        """
        check_backend(backend, "Module.to")
        tensors = [*self.parameters(), *self.buffers()]
        tensors += [t._grad for t in tensors if isinstance(t._grad, Tensor)]
        # (everything converted before anything is changed: a failure leaves the module)
        arrays = [t._data for t in tensors]
        if backend == "numpy":
            arrays = compute_arrays(arrays)  # (from Dask: one pass for all)
        moved = [convert(a, backend, chunks) for a in arrays]
        for t, data in zip(tensors, moved):
            if data is not t._data:
                t._data = data
                t._version = next_seq()
        return self

    # -- modes ------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active, batch statistics in BatchNorm); returns the
        module."""
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode (dropout off, running statistics in BatchNorm); returns the
        module."""
        return self.train(False)

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameter and persistent buffer name -> a NumPy copy of its value (a snapshot, not
        a view), parameters first, in registration order."""
        named = [*self.named_parameters(), *self._state_buffers()]
        values = compute_arrays([t._data for _, t in named])  # (lazy ones: one pass for all)
        return {name: np.array(to_numpy(v), copy=True) for (name, _), v in zip(named, values)}

    def load_state_dict(
        self, state: dict[str, Any], strict: bool = True, allow_nonfinite: bool = False
    ) -> None:
        """Copy values into the parameters and buffers, all or nothing. Every entry is
        checked first (its key, its shape, that it is a real number array: not None, text or
        complex; finite unless ``allow_nonfinite``); on any problem nothing changes and
        :class:`StateDictError` lists all of them (key, checkpoint shape and dtype, model
        shape). Values are cast to each parameter's dtype, as PyTorch's ``copy_`` does."""
        own: dict[str, Tensor] = dict(self.named_parameters())
        own.update(self._state_buffers())
        problems, values = [], {}
        for name, p in own.items():
            if name not in state:
                if strict:
                    problems.append(f"missing key {name!r} (model shape {p.shape})")
                continue
            value, why = _checked_value(state[name], p, allow_nonfinite)
            if why:
                problems.append(f"{name!r}: {why}")
            else:
                values[name] = value
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
        for name, value in values.items():
            p = own[name]
            p._data = namespace(p._data).asarray(value, dtype=p._data.dtype)
            p._version = next_seq()

    # -- display ------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            return head + ")"
        key = (id(self), threading.get_ident())
        _IN_REPR.add(key)  # a child that contains this module shows the cycle, not recursion
        try:
            lines = [head]
            for name, m in self._modules.items():
                if (id(m), key[1]) in _IN_REPR:
                    body = f"<cycle: {type(m).__name__}>"
                else:
                    body = repr(m).replace("\n", "\n  ")
                lines.append(f"  ({name}): {body}")
        finally:
            _IN_REPR.discard(key)
        return "\n".join(lines) + "\n)"

    def _repr_html_(self) -> str:
        """A notebook shows a model as a table of its layers (see :mod:`chainrule.nn.display`)."""
        from .display import module_html

        return module_html(self)


# (id(module), thread) of the modules whose repr is being built: their ancestors' lines
_IN_REPR: set[tuple[int, int]] = set()


def _walk(root: Module, prefix: str, children_first: bool = False) -> Iterator[tuple[str, Module]]:
    """(dotted prefix, module) for ``root`` and every module below it, depth first in
    registration order, each module once, under the first path that reaches it (PyTorch's
    memo): a module that contains itself, directly or through a ModuleList or Sequential, is
    not entered again. Parents come before their children, or after them with
    ``children_first``. (A loop, not recursion: no depth limit.)"""
    seen = {id(root)}
    if not children_first:
        yield prefix, root
    stack = [(prefix, root, iter(root._modules.items()))]
    while stack:
        path, module, children = stack[-1]
        for name, child in children:
            if id(child) not in seen:
                seen.add(id(child))
                child_path = f"{path}{name}."
                if not children_first:
                    yield child_path, child
                stack.append((child_path, child, iter(child._modules.items())))
                break
        else:  # every child done
            stack.pop()
            if children_first:
                yield path, module


def _checked_value(value: Any, p: Tensor, allow_nonfinite: bool) -> tuple[Any, str]:
    """(a NumPy copy of ``value`` ready to cast into ``p``, "") or (None, what is wrong)."""
    raw = value._data if isinstance(value, Tensor) else value
    if raw is None:
        return None, "the value is None"
    try:
        arr = np.array(to_numpy(raw) if hasattr(raw, "shape") else raw, copy=True)
    except (TypeError, ValueError) as err:
        return None, f"not an array ({err})"
    if arr.dtype.kind not in "biufc":
        return None, f"dtype {arr.dtype} is not numeric"
    if arr.dtype.kind == "c" and np.dtype(str(p._data.dtype)).kind != "c":
        return None, f"complex values ({arr.dtype}) for a real parameter ({p._data.dtype})"
    if tuple(arr.shape) != tuple(p.shape):
        return None, f"checkpoint shape {tuple(arr.shape)}, model shape {p.shape}"
    if not allow_nonfinite and arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        return None, f"{bad} value(s) are NaN or infinite (allow_nonfinite=True to load them)"
    return arr, ""


def _buffer(name: str, value: Any) -> Tensor | None:
    """A buffer's value as a Tensor that needs no gradient (None stays None)."""
    if value is None:
        return None
    if isinstance(value, Tensor):
        if value.requires_grad:
            raise ValueError(
                f"buffer {name!r}: a buffer needs no gradient; register a Parameter instead, or "
                "pass value.detach()"
            )
        return value
    return Tensor(namespace(value).asarray(value) if not hasattr(value, "shape") else value)


class Sequential(Module):
    """Modules applied in order; indexable and iterable.

    >>> import chainrule as cr
    >>> net = cr.nn.Sequential(cr.nn.Linear(2, 3, rng=0), cr.nn.Tanh(), cr.nn.Linear(3, 1, rng=1))
    >>> net(cr.zeros((4, 2))).shape
    (4, 1)
    """

    def __init__(self, *layers: Any) -> None:
        super().__init__()
        named = (
            list(layers[0].items())
            if len(layers) == 1 and isinstance(layers[0], dict)  # Sequential(OrderedDict(...))
            else [(str(i), layer) for i, layer in enumerate(layers)]
        )
        for name, layer in named:
            if not isinstance(layer, Module):
                raise TypeError(
                    f"Sequential: item {name} is a {type(layer).__name__}, not a Module"
                )
            setattr(self, name, layer)

    def append(self, layer: Module) -> Sequential:
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential.append: a {type(layer).__name__} is not a Module")
        setattr(self, str(len(self._modules)), layer)
        return self

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
