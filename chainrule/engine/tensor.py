"""Tensor: an array plus its place in the computation graph.

A Tensor made by an op is a node of the graph. Its slots hold the primitive that made it
(``_op``), the values it was applied to (Tensors, arrays or numbers: ``_a`` and ``_b``, see
below), the op's keyword parameters (``_params``), its sequence number (``_seq``: when it was
recorded, which orders the backward pass and dates it against in-place updates), the Modules
whose forward was running (``_scope``, for grouping layers in pictures) and, while anomaly
detection is on, the file and line of user code that made it (``_where``). A leaf (a source:
data, parameters) has ``_op = None``. Nodes point only at their inputs, so a graph has no
reference cycles and is freed by reference counting the moment the sink is dropped.

NOTE: the node lives in the Tensor's own slots, not in a tuple beside it: one object per node
for Python's cycle collector to walk instead of three (the Tensor, a node tuple, an inputs
tuple), which on a million-node graph is most of the collector's cost. The inputs: a
two-input node keeps them in ``_a`` and ``_b``; a one-input node has ``_b is ONE``; any
other has the tuple of its inputs in ``_a`` and ``_b is MANY``. backward() frees what a node
kept for its rule: every input that was itself a node (with a value of more than a few
bytes) is replaced by its :class:`Husk`, the node without its value, and its parameters
become :class:`Freed` (what describes the op stays, not a value it saved). ``inputs_of``
gives the inputs a rule may read (None once freed), ``structure_of`` the inputs a picture
draws; ``_node`` gives the whole record as a tuple ``(op, inputs, params, seq, where,
scope)`` for code off the hot paths, with the structure.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

try:
    import cython
except ImportError:  # (Cython absent: the plain-Python install)
    from . import _cython as cython

from ..backends import namespace, to_numpy
from ..backends.batched import Batched
from .inputs import check_numeric, checked_namespace
from .modes import check_not_tracing, next_seq, state
from .registry import OPS
from .tensor_methods import TensorMethods, raw_index

__all__ = [
    "Tensor",
    "tensor",
    "ONE",
    "MANY",
    "Freed",
    "FREED_NO_PARAMS",
    "is_freed",
    "Husk",
    "husk",
    "inputs_of",
    "structure_of",
    "wrap",
    "data_of",
]


class _Mark:
    """A marker in a node's ``_b`` slot (see the module docstring)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name

    def __reduce__(self) -> str:
        return self.name  # copied and pickled as itself: the engine tests it with `is`


ONE = _Mark("ONE")
MANY = _Mark("MANY")


class Freed(dict):  # type: ignore[type-arg]
    """The parameters of a node whose values backward() has freed: its type marks the node
    as freed (a second pass through it raises), its entries are what describes the op."""


FREED_NO_PARAMS = Freed()  # (shared by every freed node of an op without parameters)


def is_freed(t: Tensor) -> bool:
    """Whether backward() has freed what node ``t`` kept for its rule."""
    return type(t._params) is Freed


def structure_of(t: Tensor) -> tuple[Any, ...]:
    """The inputs of node ``t`` as a tuple, as a picture draws them: once backward() has
    freed the node, each input that was a node is its :class:`Husk`."""
    b = t._b
    if b is ONE:
        return (t._a,)
    if b is MANY:
        return t._a  # type: ignore[no-any-return]
    return (t._a, b)


def inputs_of(t: Tensor) -> tuple[Any, ...] | None:
    """The inputs of node ``t`` as a tuple, for its rule (None once backward() has freed
    them)."""
    if type(t._params) is Freed:
        return None
    return structure_of(t)


# trashcan: dropping a deep graph (a chain of a million nodes, or its structure kept after
# backward()) frees it without recursing in C as deep as the graph, which would overflow the
# stack; Python's own classes do this by themselves, the compiled class is told to
@cython.trashcan(True)
@cython.cclass
class Tensor(TensorMethods):
    """An array that records the operations applied to it, so that gradients can flow back.

    Make one with :func:`chainrule.tensor`. ``.data`` is the underlying array (NumPy by
    default, or any array-API array such as CuPy's), handed out to read and write: each time
    it is taken (or assigned) the tensor counts as updated in place, so that a graph that
    used the old value refuses to backpropagate rather than give a wrong gradient. To read
    the value, ``.numpy()`` or ``.item()`` count nothing.

    >>> import chainrule as cr
    >>> x = cr.tensor([1.0, 2.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    tensor([2., 4.])
    """

    __slots__ = (
        "_data",
        "_rg",
        "_grad",
        "_version",
        "_name",
        "__weakref__",
        "_op",
        "_a",
        "_b",
        "_params",
        "_seq",
        "_where",
        "_scope",
    )
    __hash__ = object.__hash__  # == is elementwise, identity is the hash
    # Tensors win over ndarrays in mixed operators: ndarray + tensor -> Tensor.__radd__.
    __array_priority__ = 1000

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        self._data = data
        self._rg = False
        self._op: Any = None
        self._grad: Any = None
        self._version = 0
        if requires_grad:
            self.requires_grad = True

    @property
    def data(self) -> Any:
        """The underlying array, to read or write in place. Taking it counts as an update
        of the tensor (its version moves on): a graph recorded before, that kept this value
        for its rule, then raises in backward() instead of using what may have been written
        (``y = x * x; x.data[0] = 10; y.backward()``). Read with ``.numpy()`` (a read-only
        view) or ``.item()``; write under ``cr.no_grad()`` with ``x.data[...] = new`` or
        ``x[...] = new``."""
        self._version = next_seq()
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        self._data = value
        self._version = next_seq()

    @property
    def _node(self) -> tuple[Any, ...] | None:
        """``(op, inputs, params, seq, where, scope)``, or None for a leaf."""
        op = self._op
        if op is None:
            return None
        return (op, structure_of(self), self._params, self._seq, self._where_made(), self._scope)

    @_node.setter
    def _node(self, node: tuple[Any, ...] | None) -> None:
        if node is None:
            self._op = None
            return
        op, inputs, params, seq, where, scope = node
        self._op = op
        if len(inputs) == 2:
            self._a, self._b = inputs
        elif len(inputs) == 1:
            self._a, self._b = inputs[0], ONE
        else:
            self._a, self._b = tuple(inputs), MANY
        self._params = params
        self._seq = seq
        self._where = where
        self._scope = scope

    def _where_made(self) -> Any:
        return getattr(self, "_where", None)  # set only while anomaly detection is on

    # -- attributes ---------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        """Whether gradients flow to this tensor. Only floating-point tensors may ask."""
        return self._rg

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if flag:
            _check_float(self._data, "requires_grad=True")
        elif self._op is not None:
            raise RuntimeError(
                "requires_grad: cannot switch off gradients of a tensor made by an op "
                f"({self._op.name}); use .detach() to get a tensor outside the graph"
            )
        self._rg = bool(flag)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        """Set ``requires_grad`` in place and return the tensor."""
        self.requires_grad = flag
        return self

    @property
    def grad(self) -> Tensor | None:
        """The gradient accumulated by ``backward()`` (leaves, and nodes that called
        ``retain_grad()``); ``None`` before any."""
        g = self._grad
        return g if isinstance(g, Tensor) else None

    @grad.setter
    def grad(self, value: Any) -> None:
        self._grad = None if value is None else _checked_grad(self, value)

    @property
    def is_leaf(self) -> bool:
        """True for a source of the graph (not made by a recorded op)."""
        return self._op is None

    @property
    def op(self) -> str | None:
        """Name of the op that made this tensor, or ``None`` for a leaf."""
        return None if self._op is None else self._op.name

    @property
    def name(self) -> str | None:
        """An optional label, shown in graph pictures and explanations."""
        return getattr(self, "_name", None)

    @name.setter
    def name(self, value: str | None) -> None:
        self._name = value

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._data.shape)

    @property
    def ndim(self) -> int:
        return len(self._data.shape)

    @property
    def dtype(self) -> Any:
        return self._data.dtype

    @property
    def size(self) -> int:
        n = 1
        for d in self._data.shape:
            n *= d
        return n

    @property
    def xp(self) -> Any:
        """The array namespace of ``.data`` (``numpy`` by default)."""
        return namespace(self._data)

    # -- conversion ---------------------------------------------------------------------
    def numpy(self) -> Any:
        """The value as a NumPy array, to read: a read-only view (no copy for NumPy data).
        A write through it would change a value that a recorded op may have kept, and the
        gradient would be silently wrong (``y = w * x; x.numpy()[0] = 10``). Update a tensor
        with ``x[...] = new`` or through ``x.data`` (under ``cr.no_grad()`` where it requires
        grad), which the backward pass checks, or copy the array."""
        _leaving_the_graph(self, "numpy")
        out = to_numpy(self._data)
        if isinstance(out, np.ndarray) and out.flags.writeable:
            out = out.view()
            out.flags.writeable = False
        return out

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        _leaving_the_graph(self, "item")
        return self._item("item")

    def _item(self, what: str) -> Any:
        if self.size != 1:
            raise ValueError(f"{what}: the tensor has shape {self.shape}; only one-element tensors")
        return to_numpy(self._data).item()

    def tolist(self) -> Any:
        _leaving_the_graph(self, "tolist")
        return to_numpy(self._data).tolist()

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        _leaving_the_graph(self, "__array__")
        out = to_numpy(self._data)
        return out if dtype is None else out.astype(dtype, copy=False)

    def __float__(self) -> float:
        _leaving_the_graph(self, "float")
        return float(self._item("float"))

    def __int__(self) -> int:
        _leaving_the_graph(self, "int")
        return int(self._item("int"))

    def __bool__(self) -> bool:
        check_not_tracing("__bool__")
        return bool(self._data)

    def __len__(self) -> int:
        if not self._data.shape:
            raise TypeError("len() of a 0-d tensor")
        return int(self._data.shape[0])

    def __iter__(self) -> Iterator[Tensor]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        import numpy as np

        if isinstance(self._data, Batched):  # inside cr.vmap: no one value to print
            return f"tensor({self._data!r})"
        body = np.array2string(to_numpy(self._data), separator=", ", prefix="tensor(")
        extra = ""
        if self._op is not None:
            extra = f", op={self._op.name}"
        elif self._rg:
            extra = ", requires_grad=True"
        if getattr(self, "_name", None):
            extra += f", name={self._name!r}"
        dt = self._data.dtype
        if str(dt) not in ("float64", "int64", "bool"):
            extra += f", dtype={dt}"
        return f"tensor({body}{extra})"

    # -- graph --------------------------------------------------------------------------
    def backward(
        self,
        grad: Any = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        inputs: Any = None,
    ) -> None:
        """Backpropagate from this tensor: fill ``.grad`` of every leaf it depends on.

        ``grad`` is the gradient of the final result with respect to this tensor (needed
        unless it has one element). Gradients accumulate into ``.grad`` as in PyTorch.
        ``retain_graph=True`` keeps the graph for another backward pass; ``create_graph=True``
        records the backward pass itself so that the gradients can be differentiated again.
        """
        # NOTE: imported here, not at the top: the engine's backward pass makes Tensors, so
        # its module imports this one (the import is a dictionary look-up after the first)
        from .backward import backward

        backward(self, grad, retain_graph, create_graph, inputs)

    def retain_grad(self) -> Tensor:
        """Ask ``backward()`` to keep this (non-leaf) tensor's gradient in ``.grad``."""
        if self._op is not None and self._grad is None:
            self._grad = _RETAIN
        return self

    def detach(self) -> Tensor:
        """The same data as a new leaf outside the graph (shares memory)."""
        return Tensor(self._data)

    def zero_grad(self) -> None:
        self._grad = None

    # -- in-place updates ---------------------------------------------------------------
    def _inplace(self, name: str, other: Any) -> Tensor:
        op = OPS[name]
        other_rg = isinstance(other, Tensor) and other._rg
        if state.grad_enabled and (self._rg or other_rg):
            if self._op is None and self._rg:
                raise RuntimeError(
                    f"in-place {op.name} on a leaf tensor that requires grad would lose its "
                    "gradient; update parameters inside `with cr.no_grad():`, or write "
                    f"`x = x {_SYMBOL.get(op.name, op.name)} y` to record a new node"
                )
            # Functional update: the name is rebound to a new recorded tensor, earlier uses of
            # the old value in the graph stay correct.
            updated: Tensor = op(self, other)
            return updated
        if state.levels and any(id(v) in lv for v in (self, other) for lv in state.levels):
            rebound: Tensor = op(self, other)  # (inside cr.jvp: the new one gets its tangent)
            return rebound
        raw = other._data if isinstance(other, Tensor) else other
        result = op.forward(namespace(self._data, raw), self._data, raw)
        if tuple(result.shape) != tuple(self._data.shape):
            raise ValueError(
                f"in-place {op.name}: the result has shape {tuple(result.shape)}, the tensor "
                f"{tuple(self._data.shape)}; an in-place update cannot change the shape"
            )
        if result.dtype != self._data.dtype:
            kind_new = getattr(result.dtype, "kind", "f")
            if getattr(self._data.dtype, "kind", "f") in "iub" and kind_new in "fc":
                raise TypeError(
                    f"in-place {op.name}: the result is {result.dtype} but the tensor is "
                    f"{self._data.dtype}; it cannot hold it without truncating. Write "
                    f"`x = x {_SYMBOL.get(op.name, op.name)} y` or convert x to float first"
                )
            result = namespace(result).astype(result, self._data.dtype)
        try:
            self._data[...] = result
        except (TypeError, ValueError):  # NumPy scalars and read-only arrays: rebind
            self._data = result
        self._version = next_seq()
        return self

    def __iadd__(self, other: Any) -> Tensor:
        return self._inplace("add", other)

    def __isub__(self, other: Any) -> Tensor:
        return self._inplace("subtract", other)

    def __imul__(self, other: Any) -> Tensor:
        return self._inplace("multiply", other)

    def __itruediv__(self, other: Any) -> Tensor:
        return self._inplace("divide", other)

    def __setitem__(self, index: Any, value: Any) -> None:
        if state.grad_enabled and (self._rg or (isinstance(value, Tensor) and value._rg)):
            raise RuntimeError(
                "item assignment on a tensor in the graph is not recorded; use cr.where(mask, "
                "new, x) or build the tensor with cr.concatenate/cr.stack, or assign inside "
                "`with cr.no_grad():`"
            )
        if state.levels and any(id(v) in lv for v in (self, value) for lv in state.levels):
            raise RuntimeError(
                "item assignment on a tensor that carries a forward-mode tangent (inside "
                "cr.jvp) is not recorded, so its tangent would go stale; use cr.where(mask, new, "
                "x) or build the tensor with cr.concatenate/cr.stack"
            )
        raw = value._data if isinstance(value, Tensor) else value
        self._data[raw_index(index)] = raw
        self._version = next_seq()

    def _repr_html_(self) -> str:
        """A notebook shows a tensor as a small table (see :mod:`chainrule.engine.display`)."""
        from .display import tensor_html  # (a dictionary look-up after the first)

        return tensor_html(self)


def _leaving_the_graph(t: Tensor, what: str) -> None:
    """Refuse to hand out the value of ``t`` as a plain array or number where that would cut
    it out of a gradient without a word: NumPy converting it implicitly (``np.array([x, y])``,
    a NumPy function given a list of Tensors) while it requires grad, and any conversion inside
    a transform (``float(x)`` in the function given to ``cr.grad``) of a Tensor being
    differentiated. ``t.detach()`` converts freely: the value as a constant, said out loud."""
    check_not_tracing(what)
    if not (state.levels or (t._rg and state.grad_enabled)):
        return
    implicit = what == "__array__"
    if not (implicit or state.transforms):
        return
    if not (t._rg and state.grad_enabled) and not any(id(t) in lv for lv in state.levels):
        return
    if implicit:
        caller = _numpy_caller()
        raise TypeError(
            f"{caller or 'NumPy'} turned a Tensor that is being differentiated into a plain "
            "array, which would cut it out of the graph (its gradient would be silently wrong). "
            "For an array of Tensors use cr.stack([...]) or cr.asarray(...) (they are recorded), "
            "and call NumPy functions on Tensors, not on lists of them; to use the value as a "
            "constant, pass t.detach()"
        )
    raise TypeError(
        f"{what}() of a Tensor being differentiated gives a plain value, cut out of the graph "
        "(the gradient through it would be silently wrong); keep computing with the Tensor, "
        f"or, to use its value as a constant, call {what}() on t.detach()"
    )


def _numpy_caller() -> str | None:
    """The NumPy function (``np.mean``) whose Python code is converting a Tensor, if any: the
    outermost of the NumPy frames just above the conversion."""
    import sys

    frame: Any = sys._getframe(0)
    while frame is not None and frame.f_globals.get("__name__") == __name__:  # (this file)
        frame = frame.f_back
    found = None
    while frame is not None and frame.f_globals.get("__name__", "").startswith("numpy"):
        name = frame.f_code.co_name
        package = frame.f_globals["__name__"].split(".")[1:2]  # numpy.linalg._linalg: linalg
        if package and not package[0].startswith("_") and package[0] != "lib":
            found = f"np.{package[0]}.{name}"
        else:  # numpy._core.fromnumeric's mean is np.mean
            found = f"np.{name}"
        frame = frame.f_back
    return found if found and not found.split(".")[-1].startswith("_") else None


_RETAIN = object()  # marks a non-leaf tensor whose gradient backward() should keep
_SYMBOL = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/"}


def _check_float(data: Any, what: str) -> None:
    kind = getattr(data.dtype, "kind", None)
    if kind is None:  # array-API dtypes have no .kind
        xp = namespace(data)
        ok = xp.isdtype(data.dtype, "real floating")
    else:
        ok = kind == "f"
    if not ok:
        raise TypeError(
            f"{what}: only floating-point tensors can require gradients, this one is "
            f"{data.dtype}; make it with dtype=float64 (or float32), e.g. "
            "cr.tensor([1, 2], dtype='float64', requires_grad=True)"
        )


def _checked_grad(t: Tensor, value: Any) -> Tensor:
    """``value`` (a Tensor or an array) as the gradient of ``t``: t's shape, floating point
    (or complex); anything else is refused with what was given and what ``t`` is."""
    of = f"the gradient of a tensor of shape {t.shape} and dtype {t.dtype}"
    if isinstance(value, Tensor):
        g = value
    elif hasattr(value, "shape") and hasattr(value, "dtype"):  # an array of any namespace
        g = Tensor(value)
    else:
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise TypeError(
            f"grad: expected a Tensor or an array for {of}, got {type(value).__name__} "
            f"{shown}; make one with cr.tensor(...), or assign None to clear it"
        )
    if tuple(g.shape) != tuple(t.shape):
        raise ValueError(
            f"grad: got shape {tuple(g.shape)} (dtype {g.dtype}) for {of}; a gradient has "
            "the shape of its tensor"
        )
    if getattr(g.dtype, "kind", "f") not in "fc":
        raise TypeError(
            f"grad: got dtype {g.dtype} for {of}; a gradient holds floating-point numbers "
            f"(convert it, e.g. cr.tensor(g, dtype='{t.dtype}'))"
        )
    return g


def data_of(value: Any) -> Any:
    """The array inside a Tensor; anything else as it is (the value, outside the graph)."""
    return value._data if isinstance(value, Tensor) else value


def wrap(data: Any) -> Tensor:
    """``Tensor(data)`` for an array already checked and owned: a leaf that needs no
    gradient, made without the constructor's call (the engine makes one per ``.grad``)."""
    t = _new(Tensor)
    t._data = data
    t._rg = False
    t._op = None
    t._grad = None
    t._version = 0
    return t


_new = Tensor.__new__


class Husk(Tensor):
    """What backward() keeps of a node whose value it no longer needs, so that the graph of a
    sink can still be drawn and explained: the op, the inputs (husks in their turn), the
    parameters, the shape and dtype, the gradient ``retain_grad()`` kept; not the value
    (``data`` is a stand-in of the same shape and dtype that holds one number, and
    ``freed`` is True). About 300 bytes a node, as long as the sink lives."""

    __slots__ = ()

    @property
    def freed(self) -> bool:
        return True


#: One read-only stand-in array per (shape, dtype) for the husks of every backward pass (one
#: number each; cleared when it holds STAND_INS_MAX of them).
_STAND_INS: dict[Any, Any] = {}
STAND_INS_MAX = 1024


def _stand_in(shape: tuple[int, ...], dtype: Any) -> Any:
    """An array of ``shape`` and ``dtype`` that holds one number (all strides 0), read-only."""
    key = (shape, dtype.num)  # (a dtype's own hash costs more than the rest of a husk)
    stand_in = _STAND_INS.get(key)
    if stand_in is None or stand_in.dtype != dtype:
        if len(_STAND_INS) >= STAND_INS_MAX:
            _STAND_INS.clear()
        stand_in = np.ndarray(shape, dtype, np.zeros(1, dtype), 0, (0,) * len(shape))
        stand_in.flags.writeable = False
        _STAND_INS[key] = stand_in
    return stand_in


def husk(t: Tensor) -> Husk:
    """A new husk of node ``t``: its value left behind, a stand-in of its shape and dtype in
    its place."""
    h = _new(Husk)
    data = t._data
    if type(data) is np.ndarray:
        h._data = _stand_in(data.shape, data.dtype)
    else:  # another namespace: its own broadcast zero, where it has one
        try:
            xp = namespace(data)
            h._data = xp.broadcast_to(xp.zeros((), dtype=data.dtype), tuple(data.shape))
        except Exception:  # (a namespace without broadcast_to: the value stays)
            h._data = data
    h._rg = t._rg
    h._grad = t._grad
    h._version = t._version
    h._name = getattr(t, "_name", None)
    h._op = t._op
    h._a = t._a
    h._b = t._b
    h._params = t._params
    h._seq = t._seq
    h._where = None  # (where it was made: for anomaly mode's messages, which a husk never gives)
    h._scope = t._scope
    return h


def tensor(
    data: Any,
    dtype: Any = None,
    requires_grad: bool = False,
    name: str | None = None,
) -> Tensor:
    """Make a leaf tensor from an array, nested lists or a number (the data is copied).

    Python floats give float64 and Python ints int64, as in NumPy; an array keeps its dtype
    (float32 stays float32) unless ``dtype`` is given. Arrays of other array-API namespaces
    (CuPy, ...) stay in their namespace. Text, None, dates and other Python objects are
    refused with a TypeError that names the first such entry: there is nothing to
    differentiate in them, and every op would fail on them later.

    >>> import chainrule as cr
    >>> cr.tensor([1.0, 2.0]).dtype
    dtype('float64')
    >>> cr.tensor(3.0, requires_grad=True, name="x")
    tensor(3., requires_grad=True, name='x')
    """
    if isinstance(data, Tensor):
        data = data._data
    elif isinstance(data, (list, tuple)) and any(isinstance(d, Tensor) and d._rg for d in data):
        raise TypeError(
            "tensor: the list holds tensors that require grad, and copying them into a new "
            "leaf would cut them out of the graph; use cr.stack(list) to keep the gradients"
        )
    xp = checked_namespace(data, "tensor")
    if isinstance(dtype, str):
        dtype = getattr(xp, dtype)
    arr = xp.asarray(data, dtype=dtype, copy=True) if dtype is not None else _copy(xp, data)
    check_numeric(arr, data, "tensor")
    t = Tensor(arr, requires_grad=requires_grad)
    if name is not None:
        t._name = name
    return t


def _copy(xp: Any, data: Any) -> Any:
    if isinstance(data, Batched):  # inside cr.vmap: a batch copies itself
        return data.copy()
    try:
        return xp.asarray(data, copy=True)
    except TypeError:  # NumPy < 2 has no copy= on asarray
        return xp.array(data, copy=True)
