"""An op, and what calling it does: ``Op.__call__`` -> :func:`apply`.

An :class:`Op` is one primitive: its forward on raw arrays and its derivative rules (declared
with :func:`chainrule.engine.declare.defop`, whose docstring is the contract for rules).
Called with a Tensor among its inputs, it goes to :func:`apply`: the forward runs on the raw
arrays and, when grad mode is on and some input requires a gradient, the result records its
node (see :mod:`chainrule.engine.tensor`). Forward-mode tangents, anomaly checks and the
recording of a ``cr.compile`` trace take the longer path, :func:`_apply_special`, behind one
test of ``state.special``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..backends import NAMESPACES, is_array, namespace
from .errors import check_devices, check_finite, forward_error, user_frame
from .forward_mode import push_tangents
from .modes import next_seq, state
from .registry import OPS, SAVED
from .tensor import MANY, ONE, Tensor

__all__ = ["Op", "apply", "gather", "NO_PARAMS", "Rule"]

Rule = Callable[..., Any]
NO_PARAMS: dict[str, Any] = {}  # shared by every node without parameters; never mutated
_PLAIN = (bool, int, float, complex, list, tuple)
_HOST = NAMESPACES[np.ndarray]  # NumPy's namespace: any other has its inputs' devices checked
_new = Tensor.__new__


class Op:
    """One primitive: its forward computation and its derivative rules.

    Calling an op on Tensors records it in the graph and returns a Tensor (through the
    engine's :func:`apply`, below); calling it on plain arrays or numbers
    computes the NumPy-style result and records nothing. That is what lets one derivative
    rule serve both the fast backward pass and ``create_graph=True``.
    """

    __slots__ = (
        "name",
        "forward",
        "inputs",
        "vjps",
        "jvps",
        "formulas",
        "formula",
        "kink",
        "numpy",
        "differentiable",
        "second_order",
        "family",
        "description",
        "variadic",
        "nin",
        "param_names",
        "public",
        "doc",
        "fast_vjps",
        "vjp_into",
        "save",
    )

    def __init__(
        self,
        name: str,
        forward: Rule,
        vjps: tuple[Any, ...],
        jvps: tuple[Any, ...],
        *,
        inputs: tuple[str, ...] = (),
        formulas: tuple[str, ...] = (),
        kink: str | None = None,
        numpy: tuple[str, ...] = (),
        second_order: bool = True,
        family: str = "",
        description: str = "",
        variadic: bool = False,
        nin: int = 1,
        param_names: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.forward = forward
        self.inputs = inputs  # the names of the array inputs (defop reads them off forward)
        self.vjps = vjps  # one rule per input (None: not differentiable)
        self.jvps = jvps
        self.formulas = formulas  # the derivative each rule applies, as text ("" for none)
        self.formula = ", ".join(f for f in formulas if f)
        self.kink = kink
        self.numpy = numpy
        self.differentiable = any(callable(r) for r in vjps)
        self.second_order = second_order and self.differentiable
        self.family = family
        self.description = description
        self.variadic = variadic
        self.nin = nin  # how many positional array inputs
        self.param_names = param_names  # the keyword parameters, in order
        self.public: Callable[..., Any] = self
        self.doc = ""
        # fast kernels (see declare.kernel and chainrule.ops.kernels): the rules a plain
        # backward pass runs, a rule that writes into g, a forward that keeps a value
        self.fast_vjps = vjps
        self.vjp_into: Rule | None = None
        self.save: Rule | None = None

    def __call__(self, *args: Any, **params: Any) -> Any:
        if params and ("dim" in params or "keepdim" in params):
            params = torch_keywords(self.name, params)  # PyTorch's spelling: softmax(x, dim=1)
        if len(args) > self.nin:
            args, params = self._bind(args, params)
        for a in args:
            if isinstance(a, Tensor):
                return apply(self, args, params)
        if args:  # the fast path: the first input is an array of a known namespace
            xp = NAMESPACES.get(type(args[0]))
            if xp is not None:
                if xp is not _HOST:
                    check_devices(self, args)
                return self.forward(xp, *args, **params) if params else self.forward(xp, *args)
        return self._plain(args, params)

    def _plain(self, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        if any(type(a) in (list, tuple) and _holds_tensor(a) for a in args):
            # a list of Tensors, as NumPy code writes it (cr.mean([x, y])): stacked, recorded
            args = tuple(gather(a) for a in args)
            if any(isinstance(a, Tensor) for a in args):
                return apply(self, args, params)
        xp = namespace(*args)
        if not any(is_array(a) for a in args):
            # Only Python numbers or lists: compute with arrays, as NumPy would, not with
            # Python arithmetic (which overflows with an error, or grows big integers).
            args = tuple(xp.asarray(a) if isinstance(a, _PLAIN) else a for a in args)
        elif xp is not _HOST:
            check_devices(self, args)
        return self.forward(xp, *args, **params)

    def _bind(self, args: tuple[Any, ...], params: dict[str, Any]) -> tuple[Any, Any]:
        """Positional arguments past the array inputs are the op's parameters, in order."""
        extra = args[self.nin :]
        if len(extra) > len(self.param_names):
            raise TypeError(
                f"{self.name}: takes {self.nin} array input(s) and parameters "
                f"{self.param_names}, got {len(args)} positional arguments"
            )
        bound = dict(zip(self.param_names, extra))
        for key in params:
            if key in bound:
                raise TypeError(f"{self.name}: got multiple values for {key!r}")
        bound.update(params)
        return args[: self.nin], bound

    def __repr__(self) -> str:
        return f"<chainrule op {self.name}>"

    def __copy__(self) -> Op:
        return self  # one object per op: a copied graph shares the table

    def __deepcopy__(self, memo: dict[int, Any]) -> Op:
        return self


def _inexact(data: Any) -> bool:
    """Whether a result can carry a gradient: floating (or complex) values; integer and boolean
    results never require grad, as in PyTorch (``x.astype(int)``). (Array-API dtypes without
    NumPy's ``kind`` are taken as they come.)"""
    return getattr(data.dtype, "kind", "f") in "fc"


def torch_keywords(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """PyTorch's ``dim=`` and ``keepdim=`` as NumPy's ``axis=`` and ``keepdims=``."""
    params = dict(params)
    for torch_name, numpy_name in (("dim", "axis"), ("keepdim", "keepdims")):
        if torch_name in params:
            if numpy_name in params:
                raise TypeError(f"{name}: give {numpy_name}= or {torch_name}=, not both")
            params[numpy_name] = params.pop(torch_name)
    return params


def _holds_tensor(value: Any) -> bool:
    if isinstance(value, Tensor):
        return True
    return type(value) in (list, tuple) and any(_holds_tensor(v) for v in value)


def gather(value: Any) -> Any:
    """Nested lists and tuples holding Tensors as one Tensor, stacked by the ``stack`` op (so
    that the gradient reaches every entry); anything else as it is."""
    if type(value) not in (list, tuple) or not _holds_tensor(value):
        return value
    return OPS["stack"](*[gather(v) for v in value], axis=0)


def apply(op: Op, args: tuple[Any, ...], params: dict[str, Any]) -> Tensor:
    """Run ``op`` on the arrays inside ``args``; record the node when a gradient may flow."""
    if state.special or op.save is not None:
        return _apply_special(op, args, params)
    # NOTE: this runs once per op on Tensors. The one- and two-input cases are spelled out so
    # that the inputs are unwrapped in one pass and the forward is called without building
    # an argument tuple. The node goes into the result's slots: ``_a``, ``_b`` hold the
    # inputs (see chainrule.engine.tensor).
    n = len(args)
    if n == 2:
        a, b = args
        rg = False
        if isinstance(a, Tensor):
            rg = a._rg
            x = a._data
        else:
            x = a
        if isinstance(b, Tensor):
            rg = rg or b._rg
            y = b._data
        else:
            y = b
        xp = NAMESPACES.get(type(x)) or namespace(x, y)
        if xp is not _HOST:
            check_devices(op, (x, y))
        try:
            data = op.forward(xp, x, y, **params) if params else op.forward(xp, x, y)
        except (ValueError, TypeError, IndexError) as err:
            raise forward_error(op, (x, y), params, err) from err
    elif n == 1:
        (a,) = args
        b = ONE
        rg = a._rg
        x = a._data
        xp = NAMESPACES.get(type(x)) or namespace(x)
        try:
            data = op.forward(xp, x, **params) if params else op.forward(xp, x)
        except (ValueError, TypeError, IndexError) as err:
            raise forward_error(op, (x,), params, err) from err
    else:
        a, b = args, MANY
        raw = []
        rg = False
        for v in args:
            if isinstance(v, Tensor):
                rg = rg or v._rg
                raw.append(v._data)
            else:
                raw.append(v)
        xp = NAMESPACES.get(type(raw[0])) or namespace(*raw)
        if xp is not _HOST:
            check_devices(op, raw)
        try:
            data = op.forward(xp, *raw, **params)
        except (ValueError, TypeError, IndexError) as err:
            raise forward_error(op, raw, params, err) from err
    out = _new(Tensor)
    out._data = data
    out._grad = None
    out._version = 0
    # (integer and boolean results never require grad, as in PyTorch: x.astype(int))
    if rg and op.differentiable and state.grad_enabled and _inexact(data):
        out._rg = True
        out._op = op
        out._a = a
        out._b = b
        out._params = params or NO_PARAMS
        out._seq = next_seq()
        out._scope = state.scope
    else:
        out._rg = False
        out._op = None
    return out


def _apply_special(op: Op, args: tuple[Any, ...], params: dict[str, Any]) -> Tensor:
    """:func:`apply` for an op with a ``save()``, or while anomaly mode, forward mode or a
    ``cr.compile`` trace is on."""
    raw = [v._data if isinstance(v, Tensor) else v for v in args]
    rg = any(v._rg for v in args if isinstance(v, Tensor))
    record = rg and op.differentiable and state.grad_enabled
    # a plain pass keeps what save() hands its rules (see the op contract)
    saving = record and op.save is not None and not state.special
    xp = NAMESPACES.get(type(raw[0])) or namespace(*raw)
    if xp is not _HOST:
        check_devices(op, raw)
    try:
        data = op.save(xp, *raw, **params) if saving else op.forward(xp, *raw, **params)  # type: ignore[misc]
    except (ValueError, TypeError, IndexError) as err:
        raise forward_error(op, raw, params, err) from err
    if saving:
        if not (isinstance(data, tuple) and len(data) == 2):
            raise TypeError(f"{op!r}: save() must return a pair (out, saved)")
        data, saved = data
        params = {**params, SAVED: saved}
    out = Tensor(data)
    if record and _inexact(data):
        out._rg = True
        where = user_frame() if state.anomaly else None
        out._node = (op, args, params or NO_PARAMS, next_seq(), where, state.scope)
    elif state.tracing:
        # while cr.compile traces, ops without gradients are recorded too (the program must
        # recompute them); otherwise a result that needs no gradient carries no node
        out._node = (op, args, params or NO_PARAMS, next_seq(), None, ())
    if state.levels and op.differentiable:
        push_tangents(op, args, params, out)
    if state.anomaly:
        where = out._where_made() if out._op is not None else user_frame()
        check_finite(out, op, args, "forward", where)
    return out
