"""The op registry: each primitive is declared once, here is what a declaration means.

The contract for a rule (the names a rule may use)
--------------------------------------------------
An op is declared with ``defop(name, forward, vjp=..., jvp=..., formula=...)``.

``forward(xp, *inputs, **params)``
    Computes the result on raw arrays of namespace ``xp``. ``inputs`` are arrays or Python
    scalars; ``params`` are the op's keyword parameters (``axis``, ``keepdims``, ...), never
    differentiated.

``vjp`` — one rule per positional input, ``rule(grad, out, *inputs, **params)``
    Returns the contribution of ``grad`` (the cotangent of ``out``) to that input's
    cotangent. ``out`` is the forward result. A rule is written with chainrule's own ops and
    operators, so the same rule runs on raw arrays (a plain backward pass, nothing recorded)
    and on Tensors (``create_graph=True``: the gradient is itself differentiable).
    The engine, not the rule, sums a contribution back over broadcast dimensions, casts it to
    the input's dtype and accumulates contributions over fan-out.
    ``None`` in place of a rule marks an input that is not differentiable (an index, a
    condition); :data:`NOT_IMPLEMENTED` marks a derivative that exists but is not provided.

``vjp_into`` — optional, for a one-input op whose rule is ``grad`` times a local derivative
    The same rule, allowed to write its product into ``grad`` and return it. The C
    accelerator's backward loop (and a ``cr.compile``'d backward program, through the
    accelerator's ``take``) calls it instead of the ``vjp`` rule when it holds the only
    reference to ``grad``, a NumPy array owning writeable memory, and nothing else can see it:
    a gradient as large as the activations is then not allocated again (relu in an MLP). Both
    forms share their local derivative (one helper), and the tests hold them bit for bit equal.

``save`` — optional, ``save(xp, *inputs, **params) -> (out, saved)``
    The forward, also returning an intermediate its rules can reuse (cross-entropy's
    softmax, which the loss computes on the way). When a result records a node in a plain
    pass, the recorder calls ``save`` instead of ``forward`` and keeps ``saved`` with the node,
    in its parameters under the key ``"saved"``; the rules then receive it as the keyword
    argument ``saved=``. Everywhere else (a call on plain arrays, rules run on Tensors for
    ``create_graph=True``, forward mode, a trace) they receive ``saved=None`` or nothing, and
    compute the value again from the inputs: written once, in a helper that both ``save`` and
    the rules call, so the two ways give the same bits (the tests hold them to it). The
    backward pass lets ``saved`` go with the rest of the node; ``cr.compile`` passes it from
    the forward program to the backward one. A rule must never write into ``saved``: a
    graph kept with ``retain_graph=True`` reads it again.

``forward_into`` — optional, for an elementwise op of one input whose rules never read ``x``
    The forward, writing its result into ``x`` and returning it (relu, tanh: their rules read
    ``out`` alone). The op keeps it as ``op.into``, the same op with this forward.
    ``cr.nn.Sequential`` (and so ``MLP``) applies ``op.into`` to the result of the layer
    before when that result can be overwritten (see :func:`chainrule._record.overwritable`):
    nothing but the loop holds it or its array, a NumPy array of at least
    ``OVERWRITE_MIN`` elements that owns its memory, made by an op whose rules never read its
    value (a Linear layer's pre-activation). The graph then keeps one array per layer instead
    of two, and the activation writes to memory the layer has just written: PyTorch's
    ``ReLU(inplace=True)``, decided by the library where it is safe; a ``cr.compile``'d
    forward program does the same. The overwritten node is marked, and ``cr.graph`` says so
    rather than show the activation's values as its own.
    Whether a rule reads an input is read off its code (:func:`reads`), so a rule edited to
    read ``x`` makes the declaration fail at import rather than give wrong gradients.

``jvp`` — one rule per positional input, ``rule(tangent, out, *inputs, **params)``
    Returns that input's contribution to the tangent of ``out`` (forward mode). The engine
    sums the contributions and broadcasts the total to ``out``'s shape. For elementwise ops
    the Jacobian is diagonal, so the VJP rule serves as the JVP rule: ``jvp="vjp"``.

``formula``, ``kink``
    The derivative as text (``d tanh(x)/dx = 1 - tanh(x)^2``) and the convention chosen where
    the function has a kink (``relu'(0) = 0``). ``cr.ops.table()`` shows them, and the docs
    and tests read them from here.

``numpy``
    Names of NumPy functions that this op stands for when called on Tensors
    (``np.tanh(t)``), used by the NumPy dispatch in :mod:`chainrule.tensor`.
"""

from __future__ import annotations

import dis
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from ..backend import _NAMESPACES, is_array, namespace

__all__ = ["Op", "Traced", "defop", "public", "REGISTRY", "NOT_IMPLEMENTED", "SAVED", "table"]


class Traced:
    """Base of the values the ops record (``Tensor``). Ops only know it carries ``.data``."""

    __slots__ = ()
    data: Any


class _NotImplementedRule:
    def __repr__(self) -> str:
        return "NOT_IMPLEMENTED"

    def __reduce__(self) -> str:
        return "NOT_IMPLEMENTED"  # copied and pickled as itself: tested with `is`


NOT_IMPLEMENTED: Any = _NotImplementedRule()

_PLAIN = (bool, int, float, complex, list, tuple)

# Set by chainrule.tensor at import: how an op is applied when a Tensor is among its inputs.
_apply: Callable[..., Any] | None = None

REGISTRY: dict[str, Op] = {}

SAVED = "saved"  # the parameter under which a node keeps what its op's save() returned


class Op:
    """One primitive: its forward computation and its derivative rules.

    Calling an op on Tensors records it in the graph and returns a Tensor; calling it on plain
    arrays or numbers computes the NumPy-style result and records nothing. That is what lets
    one derivative rule serve both the fast backward pass and ``create_graph=True``.
    """

    __slots__ = (
        "name",
        "forward",
        "vjps",
        "jvps",
        "formula",
        "kink",
        "numpy",
        "differentiable",
        "second_order",
        "family",
        "description",
        "variadic",
        "vjp_into",
        "save",
        "into",
        "reads_out",
        "nin",
        "param_names",
        "public",
        "doc",
    )

    def __init__(
        self,
        name: str,
        forward: Callable[..., Any],
        vjps: tuple[Any, ...],
        jvps: tuple[Any, ...],
        formula: str,
        kink: str | None,
        numpy: tuple[str, ...],
        second_order: bool,
        family: str,
        description: str,
        variadic: bool,
    ) -> None:
        self.name = name
        self.forward = forward
        self.vjps = vjps
        self.jvps = jvps
        self.formula = formula
        self.kink = kink
        self.numpy = numpy
        self.differentiable = any(callable(r) for r in vjps)
        self.second_order = second_order and self.differentiable
        self.family = family
        self.description = description
        self.variadic = variadic
        self.vjp_into: tuple[Any, ...] | None = None  # see the module docstring
        self.save: Callable[..., Any] | None = None  # likewise
        self.into: Op | None = None  # likewise (forward_into)
        # whether a rule may read ``out`` (a node whose rules never do can be overwritten)
        self.reads_out = variadic or any(reads(r, 1) for r in (*vjps, *jvps))
        self.nin, self.param_names = _signature(forward, variadic, len(vjps))
        self.public: Callable[..., Any] = self
        self.doc = _docstring(self)

    def __call__(self, *args: Any, **params: Any) -> Any:
        if len(args) > self.nin:
            args, params = self._bind(args, params)
        for a in args:
            if isinstance(a, Traced):
                return _apply(self, args, params)  # type: ignore[misc]
        if args:  # the fast path: the first input is an array of a known namespace
            xp = _NAMESPACES.get(type(args[0]))
            if xp is not None:
                return self.forward(xp, *args, **params) if params else self.forward(xp, *args)
        return self._plain(args, params)

    def _plain(self, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        xp = namespace(*args)
        if not any(is_array(a) for a in args):
            # Only Python numbers or lists: compute with arrays, as NumPy would, not with
            # Python arithmetic (which overflows with an error, or grows big integers).
            args = tuple(xp.asarray(a) if isinstance(a, _PLAIN) else a for a in args)
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


def _signature(
    forward: Callable[..., Any], variadic: bool, nin: int
) -> tuple[int, tuple[str, ...]]:
    """(number of array inputs, parameter names) of ``forward(xp, *inputs, **params)``."""
    rest = list(inspect.signature(forward).parameters.values())[1:]
    if variadic:
        return 1 << 30, tuple(p.name for p in rest if p.kind is p.KEYWORD_ONLY)
    return nin, tuple(p.name for p in rest[nin:])


def _docstring(op: Op) -> str:
    lines = [op.description or op.name, ""]
    if op.differentiable:
        lines.append(f"Derivative: {op.formula}")
    else:
        lines.append("Not differentiable (its result never requires a gradient).")
    if op.kink:
        lines.append(f"At the kink: {op.kink}")
    return "\n".join(lines)


def defop(
    name: str,
    forward: Callable[..., Any],
    *,
    vjp: Sequence[Any] | Callable[..., Any] | None = None,
    jvp: Sequence[Any] | Callable[..., Any] | str | None = None,
    formula: str = "",
    kink: str | None = None,
    numpy: Sequence[str] = (),
    second_order: bool = True,
    family: str = "",
    description: str = "",
    vjp_into: Sequence[Any] | None = None,
    save: Callable[..., Any] | None = None,
    forward_into: Callable[..., Any] | None = None,
) -> Op:
    """Declare a primitive and add it to the table. See the module docstring for the contract."""
    if name in REGISTRY:
        raise ValueError(f"op {name!r} is declared twice")
    # A single callable (not a list) is a rule for every input of a variadic op:
    # rule(i, grad, out, *inputs, **params).
    variadic = callable(vjp)
    vjps: tuple[Any, ...] = (vjp,) if callable(vjp) else tuple(vjp) if vjp is not None else ()
    if jvp == "vjp":
        jvps = vjps
    elif jvp is None:
        jvps = tuple(NOT_IMPLEMENTED if callable(r) else r for r in vjps)
    elif callable(jvp):
        jvps = (jvp,)
    else:
        jvps = tuple(jvp)  # type: ignore[arg-type]
    op = Op(
        name,
        forward,
        vjps,
        jvps,
        formula,
        kink,
        tuple(numpy),
        second_order,
        family,
        description,
        variadic,
    )
    if vjp_into is not None:
        if variadic or len(vjps) != 1 or len(vjp_into) != 1 or not callable(vjp_into[0]):
            raise ValueError(f"op {name!r}: vjp_into is one rule, for an op of one input")
        op.vjp_into = tuple(vjp_into)
    if save is not None:
        if not callable(save) or SAVED in op.param_names:
            raise ValueError(
                f"op {name!r}: save must be a function save(xp, *inputs, **params) returning "
                f"(out, saved), and no parameter may be called {SAVED!r}"
            )
        op.save = save
    if forward_into is not None:
        rules = (*op.vjps, *op.jvps, *(op.vjp_into or ()))
        if variadic or op.nin != 1 or save is not None or any(reads(r, 2) for r in rules):
            raise ValueError(
                f"op {name!r}: forward_into overwrites the input, so it is for an op of one "
                "input, without save, whose rules never read that input"
            )
        fields = (formula, kink, (), second_order, family, "", False)
        into = Op(name, forward_into, vjps, jvps, *fields)
        into.vjp_into, into.doc, into.public = op.vjp_into, op.doc, op.public
        op.into = into
    REGISTRY[name] = op
    return op


def reads(rule: Any, position: int) -> bool:
    """Whether ``rule`` may read its positional argument ``position``: False only for a plain
    Python function whose code never loads that name (nor hands it to an inner function)."""
    if rule is None or rule is NOT_IMPLEMENTED:
        return False
    code = getattr(rule, "__code__", None)
    if code is None or code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS):
        return True  # a callable object, a builtin, or *args: assume it reads everything
    if position >= code.co_argcount:
        return False
    name = code.co_varnames[position]
    if name in code.co_cellvars:
        return True
    for ins in dis.get_instructions(code):
        names = ins.argval if isinstance(ins.argval, tuple) else (ins.argval,)  # 3.13 pairs
        if name in names and ins.opname not in ("STORE_FAST", "DELETE_FAST"):
            return True
    return False


def public(
    op: Op, numpy: Sequence[str] = (), face: bool = True
) -> Callable[[Callable[..., Any]], Any]:
    """Decorate the user-facing function of an op whose call signature differs from the
    primitive's (a list of arrays, NumPy-style arguments). ``numpy`` names the NumPy
    functions that dispatch to it on Tensors. ``face=False`` marks a function built on the op
    (``dot`` on ``matmul``) that is not the op's own public face."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if face:
            op.public = fn
            op.numpy = op.numpy + tuple(numpy)
        _PUBLIC_NUMPY.update({n: fn for n in numpy})
        return fn

    return register


# NumPy function name -> chainrule callable, for the dispatch on Tensors.
_PUBLIC_NUMPY: dict[str, Callable[..., Any]] = {}


def numpy_functions() -> dict[str, Callable[..., Any]]:
    """NumPy function name -> the chainrule callable that handles it on Tensors."""
    out: dict[str, Callable[..., Any]] = {}
    for op in REGISTRY.values():
        for n in op.numpy:
            out.setdefault(n, op.public)
    out.update(_PUBLIC_NUMPY)
    return out


class Table(list):  # type: ignore[type-arg]
    """The rows of :func:`table`; prints as an aligned text table."""

    def __str__(self) -> str:
        head = ("op", "family", "vjp", "jvp", "2nd", "derivative", "kink convention")
        rows = [head] + [
            (
                r["name"],
                r["family"],
                _yes(r["vjp"]),
                _yes(r["jvp"]),
                _yes(r["second_order"]),
                r["formula"] or "-",
                r["kink"] or "",
            )
            for r in self
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(head) - 1)]
        out = []
        for row in rows:
            cells = [c.ljust(w) for c, w in zip(row[:-1], widths)] + [row[-1]]
            out.append("  ".join(cells).rstrip())
        return "\n".join(out)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def table() -> Table:
    """Every registered op with its derivative formula and what it supports.

    Each row is a dict: ``name``, ``family``, ``formula``, ``kink``, ``vjp``, ``jvp``,
    ``second_order``, ``numpy`` (the NumPy functions that dispatch to it).

    >>> import chainrule as cr
    >>> row = next(r for r in cr.ops.table() if r["name"] == "tanh")
    >>> row["formula"], row["vjp"], row["jvp"], row["second_order"]
    ('d tanh(x)/dx = 1 - tanh(x)^2', True, True, True)
    """
    rows = Table()
    for op in REGISTRY.values():
        rows.append(
            {
                "name": op.name,
                "family": op.family,
                "formula": op.formula,
                "kink": op.kink,
                "vjp": op.differentiable and all(r is not NOT_IMPLEMENTED for r in op.vjps),
                "jvp": op.differentiable
                and all(r is not NOT_IMPLEMENTED for r in op.jvps)
                and len(op.jvps) == len(op.vjps),
                "second_order": op.second_order,
                "numpy": op.numpy,
            }
        )
    return rows
