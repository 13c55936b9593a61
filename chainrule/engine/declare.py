"""Op and defop: how a primitive is declared, and what a declaration promises (the contract).

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
    (``np.tanh(t)``), used by the NumPy dispatch of :class:`chainrule.Tensor`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from .op import Op, Rule
from .registry import _PUBLIC_NUMPY, FUNCTIONS, NOT_IMPLEMENTED, OPS, SAVED

__all__ = ["defop", "public", "kernel"]


def _signature(forward: Rule, variadic: bool, nin: int) -> tuple[int, tuple[str, ...]]:
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
    forward: Rule,
    *,
    vjp: Sequence[Any] | Rule | None = None,
    jvp: Sequence[Any] | Rule | str | None = None,
    formula: str = "",
    kink: str | None = None,
    numpy: Sequence[str] = (),
    second_order: bool = True,
    family: str = "",
    description: str = "",
    save: Rule | None = None,
) -> Op:
    """Declare a primitive and add it to the table. See the module docstring for the contract."""
    if name in OPS:
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
        jvps = tuple(jvp)
    if save is not None and not callable(save):
        raise ValueError(f"op {name!r}: save must be a function save(xp, *inputs, **params)")
    fields = (formula, kink, tuple(numpy), second_order, family, description, variadic, save)
    nin, param_names = _signature(forward, variadic, len(vjps))
    op = Op(name, forward, vjps, jvps, *fields, nin=nin, param_names=param_names)
    op.doc = _docstring(op)
    if save is not None and SAVED in op.param_names:
        raise ValueError(
            f"op {name!r}: save() hands its value to the rules as the parameter {SAVED!r}, so "
            f"no parameter may be called {SAVED!r}"
        )
    OPS[name] = op
    FUNCTIONS.setdefault(name, op)
    return op


def public(
    op: Op, numpy: Sequence[str] = (), face: bool = True
) -> Callable[[Callable[..., Any]], Any]:
    """Decorate the user-facing function of an op whose call signature differs from the
    primitive's (a list of arrays, NumPy-style arguments). ``numpy`` names the NumPy
    functions that dispatch to it on Tensors. ``face=False`` marks a function built on the op
    (``dot`` on ``matmul``) that is not the op's own public face."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        FUNCTIONS[fn.__name__] = fn
        if face:
            op.public = fn
            op.numpy = op.numpy + tuple(numpy)
        _PUBLIC_NUMPY.update({n: fn for n in numpy})
        return fn

    return register


def kernel(op: Op, *, vjp_into: Rule) -> Rule:
    """Attach a fast kernel to ``op``: ``vjp_into(g, out, x, **params)``, its one VJP rule
    written into the incoming gradient ``g`` and returning it. The backward pass calls it
    instead of the rule when the engine alone holds ``g`` (see
    :mod:`chainrule.engine.backward`); it must give the rule's bits, which
    ``tests/test_kernels.py`` checks for every kernel. The kernels live in
    :mod:`chainrule.ops.kernels`, apart from the op sheet's rules."""
    if op.variadic or op.nin != 1 or len(op.vjps) != 1 or not callable(op.vjps[0]):
        raise ValueError(f"op {op.name!r}: vjp_into is for an op of one differentiable input")
    op.vjp_into = vjp_into
    return vjp_into
