"""The Optimizer base class: parameters in groups (PyTorch's ``param_groups``), frozen
parameters, per-parameter state with a flat ``state_dict()``, the step loop with its scratch
buffer, and the arithmetic the update rules share (in place or out of place, same bits).

A subclass gives its hyperparameters' checks (``SPEC``), its state (``STATE``) and its rule
(``_update``); the rules are in :mod:`chainrule.optim.optimizers` (SGD, Adam, AdamW) and
:mod:`chainrule.optim.adaptive` (RMSprop, Adagrad).

>>> import chainrule as cr
>>> w = cr.tensor([1.0, 2.0], requires_grad=True)
>>> opt = cr.optim.SGD([w], lr=0.5)
>>> isinstance(opt, Optimizer), opt.param_groups[0]["params"] == [w]
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ..backends.gaps import is_dask
from ..engine.modes import next_seq
from ..engine.tensor import Tensor
from ..transforms.backend import compute
from . import _checks, _state
from ._groups import Hyperparameter, parse_group, split_params

__all__ = ["Optimizer"]

Check = Callable[[str, Any], Any]


class Optimizer:
    """Base class: the parameters in groups, each group with its hyperparameters, and each
    parameter's state.

    ``params`` is an iterable of Tensors (one group), or of dicts, PyTorch's param groups:
    ``{"params": [...], "lr": 0.01, ...}``, where a key left out takes the optimizer's
    argument. ``param_groups`` holds the groups (a schedule sets ``group["lr"]``); ``params``
    and ``state`` list every parameter and its state (a dict of buffers) in group order.
    Tensors with ``requires_grad=False`` (frozen) are accepted and left alone by ``step()``.

    A hyperparameter read as an attribute (``opt.lr``, ``opt.momentum``) is the value all
    groups share: reading one the groups disagree on raises, telling to read
    ``opt.param_groups[i][name]``; setting it sets it in every group.

    Subclasses give ``SPEC`` (each hyperparameter's check, in order), ``STATE`` (each state
    entry: ``"buffer"``, an array like the parameter, or ``"count"``, an int) and ``_update``.

    >>> import chainrule as cr
    >>> w, b = cr.tensor([1.0], requires_grad=True), cr.tensor([0.0], requires_grad=True)
    >>> opt = cr.optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=0.1)
    >>> [g["lr"] for g in opt.param_groups]
    [0.1, 0.5]
    """

    SPEC: dict[str, Check] = {"lr": _checks.lr}
    STATE: dict[str, str] = {}
    REQUIRED_STATE: tuple[str, ...] = ()  # a parameter's state has all of these or none

    lr = Hyperparameter()

    def __init__(self, params: Iterable[Any], defaults: Mapping[str, Any]) -> None:
        self.name = type(self).__name__
        self.defaults = {k: self.SPEC[k](f"{self.name}: {k}", v) for k, v in defaults.items()}
        self._check_group(self.defaults, f"{self.name}: ")
        self.param_groups: list[dict[str, Any]] = []
        self.params: list[Tensor] = []
        self.state: list[dict[str, Any]] = []
        self._tmp: dict[int, Any] = {}  # parameter index -> its view of the scratch buffer
        self._flat: dict[Any, Any] = {}  # dtype -> the scratch buffer (see _scratch)
        self.steps = 0
        groups, plain = split_params(params, self.name)
        for k, group in enumerate(groups):
            self._add(group, k, plain)
        if not self.params:
            raise ValueError(f"{self.name}: got no parameters to optimize (an empty list)")
        self._group = self.param_groups[0]  # the group being stepped, which _update reads

    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group of parameters, with its own hyperparameters (a key left out takes the
        optimizer's argument), as PyTorch's ``add_param_group``. Checked first: on an error
        nothing is added. A schedule made before does not know the new group: make it after.

        >>> import chainrule as cr
        >>> opt = cr.optim.Adam([cr.tensor([1.0], requires_grad=True)])
        >>> opt.add_param_group({"params": [cr.tensor([2.0], requires_grad=True)], "lr": 0.1})
        >>> [g["lr"] for g in opt.param_groups]
        [0.001, 0.1]
        """
        self._add(param_group, len(self.param_groups), plain=False)

    def _add(self, group: Any, k: int, plain: bool) -> None:
        seen = {id(p): j for j, g in enumerate(self.param_groups) for p in g["params"]}
        new = parse_group(self, group, k, plain, seen)
        self.param_groups.append(new)
        self.params.extend(new["params"])
        self.state.extend({} for _ in new["params"])

    def _check_group(self, group: Mapping[str, Any], where: str) -> None:
        """Checks between a group's hyperparameters (raise ValueError); none here."""

    def zero_grad(self) -> None:
        """Drop the gradients (set to None) before the next backward pass."""
        for p in self.params:
            p._grad = None  # (what the .grad setter does with None, without its call)

    def step(self) -> None:
        """Update every parameter that has a gradient and does not have requires_grad=False.

        Lazy (Dask) gradients are computed first, all in one pass (``cr.compute`` with the
        loss before the step shares that pass with the forward's values); parameters that
        are themselves Dask arrays are persisted after the update, so that each step's
        task graph does not grow on the last one's."""
        self.steps += 1
        states = self.state
        lazy = False
        i = -1
        for group in self.param_groups:
            self._group = group
            for p in group["params"]:
                i += 1
                grad = p._grad  # (the .grad property, without its call)
                if not isinstance(grad, Tensor) or not p._rg:  # no gradient, or frozen
                    continue
                g, data = grad._data, p._data
                if type(data) is not np.ndarray and is_dask(data):
                    lazy = True  # (persisted after the step)
                if type(g) is not np.ndarray and is_dask(g):
                    self._compute_gradients()  # all of them, in one pass
                    g = grad._data
                if self._fused(data, g, states[i]):
                    p._version = _bump()
                    continue
                if g.shape != data.shape:
                    raise ValueError(
                        f"{self.name}: gradient shape {g.shape} != parameter {p.shape}"
                    )
                tmp = self._scratch(i, data) if _writable(data, g) else None
                new = self._update(data, g, states[i], tmp)
                if new is not data:
                    p._data = new
                p._version = _bump()  # a graph that used the old value is now stale
        if lazy:
            self._persist_parameters()

    def _compute_gradients(self) -> None:
        """Compute every lazy (Dask) gradient of the parameters in one ``dask.compute``, in
        place (``cr.compute``)."""
        compute(*(p._grad for p in self.params if isinstance(p._grad, Tensor)))

    def _persist_parameters(self) -> None:
        """Parameters that are Dask arrays, computed and kept (in this process, or on the
        cluster's workers): the next step's graph starts from their values."""
        lazy = [p for p in self.params if is_dask(p._data)]
        if lazy:
            import dask

            for p, value in zip(lazy, dask.persist(*(p._data for p in lazy))):
                p._data = value

    def _fused(self, p: Any, g: Any, state: dict[str, Any]) -> bool:
        """Whether the whole update of ``p`` (and its state) was done in place in one pass by
        the compiled kernels (_fused.c), with the bits of :meth:`_update`; False sends it to
        :meth:`_update`. Never here; SGD's and Adam's, unless a subclass brings its own
        ``_update``, which then runs every step."""
        return False

    def _update(self, p: Any, g: Any, state: dict[str, Any], tmp: Any) -> Any:
        """The updated value of ``p``, with the hyperparameters of ``self._group`` (the group
        being stepped). Where ``tmp`` is given (a scratch array like ``p``), ``p`` and the
        state's buffers are updated in place and every temporary is ``tmp``; where it is
        None, everything is computed out of place (any array namespace)."""
        raise NotImplementedError

    def _scratch(self, i: int, like: Any) -> Any:
        # NOTE: scratch space kept between steps: a step that allocates and frees arrays as
        # large as the weights makes the C allocator hand memory back to the system and fault
        # it in again (about 1,000 page faults per step on a 784-256 MLP in float64), which
        # costs more than the arithmetic. One buffer per dtype, as large as the largest
        # parameter, serves every parameter in turn (each update is done with it before the
        # next starts): the memory of one parameter, not of all, and still in cache.
        buf = self._tmp.get(i)
        if buf is None or buf.shape != like.shape or buf.dtype is not like.dtype:
            flat = self._flat.get(like.dtype)
            if flat is None or flat.size < like.size:
                sizes = [
                    p._data.size
                    for p in self.params
                    if type(p._data) is np.ndarray and p._data.dtype == like.dtype
                ]
                flat = self._flat[like.dtype] = np.empty(max(sizes + [like.size]), like.dtype)
                self._tmp.clear()  # views of the old buffer
            buf = self._tmp[i] = flat[: like.size].reshape(like.shape)
        return buf

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state, flat: ``"state"`` maps ``"<i>.<name>"`` (parameter ``i`` in
        :attr:`params` order, ``name`` one of its buffers, e.g. ``"3.exp_avg"``) to a NumPy
        array (a copy; step counts are 0-d int64 arrays); every other entry is JSON-able:
        ``"type"``, ``"steps"`` and ``"param_groups"`` (each group's hyperparameters and its
        parameters' indices, as PyTorch's). So ``cr.save(path, sd["state"],
        metadata={"optimizer": json.dumps({k: v for k, v in sd.items() if k != "state"})})``
        writes it.

        >>> import chainrule as cr
        >>> w = cr.tensor([1.0, 2.0], requires_grad=True)
        >>> opt = cr.optim.SGD([w], lr=0.1, momentum=0.9)
        >>> w.grad = cr.tensor([1.0, 1.0]); opt.step()
        >>> sd = opt.state_dict()
        >>> sd["state"], sd["param_groups"][0]["params"], sd["steps"]
        ({'0.momentum_buffer': array([1., 1.])}, [0], 1)
        """
        return _state.flatten(self)

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load what :meth:`state_dict` gave (the arrays may come back from ``cr.load``).
        Everything is checked first (the type, the groups and their sizes, each
        hyperparameter, each array's name, shape and dtype): on any problem nothing changes
        and the ValueError lists every one."""
        problems, loaded = _state.read(self, state_dict)
        if problems:
            raise ValueError(
                f"{self.name}.load_state_dict: the state does not fit this optimizer "
                f"({len(problems)} problem{'s' if len(problems) > 1 else ''}); nothing was "
                "changed:\n  " + "\n  ".join(problems)
            )
        _state.apply(self, loaded)


def _writable(p: Any, g: Any) -> bool:
    """Whether an update of p by g can be written into p: both NumPy, same dtype, p writeable."""
    return (
        type(p) is np.ndarray
        and type(g) is np.ndarray
        and (g.dtype is p.dtype or g.dtype == p.dtype)
        and g.shape == p.shape
        and p.flags.writeable
    )


_bump = next_seq  # dates an in-place update: a graph that used the old value is now stale
_multiply, _subtract = np.multiply, np.subtract


# The arithmetic of the updates, each written once: into ``out`` where it is an array (the
# in-place path), as a plain expression where it is None. Same operations, same bits. (The
# ufuncs take ``out`` as their third positional argument: as a keyword it costs 0.1-0.2 us more.)
def _mul(a: Any, b: Any, out: Any) -> Any:
    return a * b if out is None else np.multiply(a, b, out)


def _div(a: Any, b: Any, out: Any) -> Any:
    return a / b if out is None else np.divide(a, b, out)


def _add(a: Any, b: Any, out: Any) -> Any:
    return a + b if out is None else np.add(a, b, out)


def _sub(a: Any, b: Any, out: Any) -> Any:
    return a - b if out is None else np.subtract(a, b, out)


def _sqrt(a: Any, out: Any) -> Any:
    # (NumPy's a ** 0.5 is its sqrt: the correctly rounded square root, as the compiled kernel's)
    return a**0.5 if out is None else np.sqrt(a, out)


def _inplace(tmp: Any, a: Any) -> Any:
    """Where to write a new value of the buffer ``a``: ``a`` itself on the in-place path."""
    return None if tmp is None else a
