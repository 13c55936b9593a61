"""How a primitive is declared, and what a declaration promises (the contract for rules).

An entry of the op sheet
------------------------
::

    exp = defop("exp", lambda xp, x: xp.exp(x), "e ** x.",
                dx=(lambda g, out, x: g * out,         "d exp(x)/dx = exp(x)"))

``defop(name, forward, doc, **rules)``; each family file binds its family once
(``defop = family("elementwise", ...)``), so an entry says only what is particular to its op.

``forward(xp, *inputs, **params)``
    Computes the result on raw arrays of namespace ``xp``. Its leading parameters without a
    default are the op's array **inputs** (a ``*xs`` parameter: any number of them); those
    with a default, and keyword-only ones, are its **parameters** (``axis``, ``keepdims``,
    ...), never differentiated.

``d<input>=(rule, formula)`` - one per differentiable input, named after it (``dx``, ``dy``,
``dweight``)
    ``rule(g, out, *inputs, **params)`` returns the contribution of ``g`` (the gradient of
    ``out``, the forward's result) to that input's gradient; ``formula`` is the derivative it
    applies, as text (``"d exp(x)/dx = exp(x)"``), shown by ``cr.ops.table()``, the docs and
    the step-through page. A rule is written with chainrule's own ops and operators, so the
    same rule runs on raw arrays (a plain backward pass, nothing recorded) and on Tensors
    (``create_graph=True``: the gradient is itself differentiable). The engine, not the rule,
    sums a contribution back over broadcast dimensions, casts it to the input's dtype and
    accumulates contributions over fan-out. An input without a ``d<input>`` is not
    differentiable (an index, a condition); ``(NOT_IMPLEMENTED, formula)`` marks a derivative
    that exists but is not provided. For ``*xs``, the one rule ``dxs`` is
    ``rule(i, g, out, *xs, **params)``, for the ``i``-th of them.

``t<input>=rule`` - forward mode
    ``rule(t, out, *inputs, **params)`` returns that input's contribution to the tangent of
    ``out``. The engine sums the contributions and broadcasts the total to ``out``'s shape.
    Where the Jacobian is symmetric (diagonal, for every elementwise op) the VJP rule is the
    JVP rule: ``symmetric=True``. An input with a ``d<input>`` but neither is NOT_IMPLEMENTED
    in forward mode.

``kink``, ``numpy``, ``second_order``
    The convention chosen where the function has a kink (``"relu'(0) = 0"``); the NumPy
    functions this op stands for when called on Tensors (``np.tanh(t)``; by default the one
    of the op's own name, where NumPy has it); ``second_order=False`` where the rules cannot
    be differentiated again.

Fast kernels (:func:`kernel`, used by :mod:`chainrule.ops.kernels`) are faster ways to the
same bits - a rule for NumPy arrays, a rule written into the incoming gradient, a forward that
also keeps a value the rule would compute again. They live apart from the sheet, and
``tests/test_kernels.py`` holds each to its rule.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from .op import Op, Rule, torch_keywords
from .registry import _PUBLIC_NUMPY, COMPOSED, FUNCTIONS, NOT_IMPLEMENTED, OPS, SAVED

__all__ = ["defop", "family", "public", "kernel"]

_NUMPY: Any = None  # the numpy module, for the default ``numpy=`` (imported on first use)


def defop(
    name: str,
    forward: Rule,
    doc: str,
    *,
    family: str,
    symmetric: bool = False,
    kink: str | None = None,
    numpy: Sequence[str] | None = None,
    second_order: bool = True,
    **rules: Any,
) -> Op:
    """Declare a primitive and add it to the table. See the module docstring for the contract."""
    if name in OPS:
        raise ValueError(f"op {name!r} is declared twice")
    inputs, star, param_names = _signature(name, forward)
    vjps, jvps, formulas = [], [], []
    for n in (star,) if star else inputs:
        rule, formula = _rule_and_formula(name, n, rules.pop("d" + n, (None, "")))
        tangent = rules.pop("t" + n, None)
        if tangent is None and rule is not None:
            tangent = rule if symmetric else NOT_IMPLEMENTED
        vjps.append(rule)
        jvps.append(tangent)
        formulas.append(formula)
    if rules:
        raise TypeError(
            f"op {name!r}: {', '.join(sorted(rules))} name no input of its forward; its inputs "
            f"are {', '.join((star,) if star else inputs) or 'none'} (d<input>=(rule, formula) "
            "for a gradient, t<input>=rule for a tangent)"
        )
    op = Op(
        name,
        forward,
        tuple(vjps),
        tuple(jvps),
        inputs=inputs,
        formulas=tuple(formulas),
        kink=kink,
        numpy=_numpy_names(name, numpy),
        second_order=second_order,
        family=family,
        description=doc,
        variadic=star is not None,
        nin=1 << 30 if star else len(inputs),
        param_names=param_names,
    )
    op.doc = _docstring(op)
    OPS[name] = op
    FUNCTIONS.setdefault(name, op)
    return op


def family(name: str, *, symmetric: bool = False) -> Callable[..., Op]:
    """:func:`defop` for the ops of one family, declared once at the top of its file:
    ``defop = family("elementwise", symmetric=True)``."""
    return functools.partial(defop, family=name, symmetric=symmetric)


def _signature(name: str, forward: Rule) -> tuple[tuple[str, ...], str | None, tuple[str, ...]]:
    """(input names, the name of a ``*xs`` input or None, parameter names) of
    ``forward(xp, *inputs, **params)``: inputs are the parameters without a default."""
    inputs: list[str] = []
    star = None
    params: list[str] = []
    for p in list(inspect.signature(forward).parameters.values())[1:]:
        if p.kind is p.VAR_POSITIONAL:
            star = p.name
        elif p.kind is p.VAR_KEYWORD:
            raise TypeError(f"op {name!r}: the forward's parameters must be named, not **{p.name}")
        elif p.kind is p.KEYWORD_ONLY or p.default is not p.empty:
            params.append(p.name)
        else:
            inputs.append(p.name)
    if SAVED in params:
        raise ValueError(f"op {name!r}: no parameter may be called {SAVED!r} (see kernel(save=))")
    return tuple(inputs), star, tuple(params)


def _rule_and_formula(name: str, input_name: str, entry: Any) -> tuple[Any, str]:
    if (
        not isinstance(entry, tuple)
        or len(entry) != 2
        or not isinstance(entry[1], str)
        or not (entry[0] is None or entry[0] is NOT_IMPLEMENTED or callable(entry[0]))
    ):
        raise TypeError(
            f"op {name!r}: d{input_name} must be a pair (rule, formula), the rule a function "
            f"rule(g, out, *inputs, **params) and the formula its derivative as text"
        )
    return entry[0], entry[1]


def _numpy_names(name: str, numpy: Sequence[str] | None) -> tuple[str, ...]:
    """The NumPy functions an op stands for: as given, or else the one of its own name."""
    if numpy is not None:
        return tuple(numpy)
    global _NUMPY
    if _NUMPY is None:
        import numpy as _NUMPY
    return (name,) if callable(getattr(_NUMPY, name, None)) else ()


def _docstring(op: Op) -> str:
    lines = [op.description or op.name, ""]
    if op.differentiable:
        lines.append(f"Derivative: {op.formula}")
    else:
        lines.append("Not differentiable (its result never requires a gradient).")
    if op.kink:
        lines.append(f"At the kink: {op.kink}")
    return "\n".join(lines)


def public(
    op: Op, numpy: Sequence[str] = (), face: bool = True
) -> Callable[[Callable[..., Any]], Any]:
    """Decorate the user-facing function of an op whose call signature differs from the
    primitive's (a list of arrays, NumPy-style arguments). ``numpy`` names the NumPy
    functions that dispatch to it on Tensors. ``face=False`` marks a function built on the op
    (``dot`` on ``matmul``) that is not the op's own public face."""

    if not isinstance(op, Op):
        raise TypeError(f"public: expected the Op the function is built on, got {op!r}")

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = _accepting_torch_keywords(fn)
        FUNCTIONS[fn.__name__] = fn
        if face:
            op.public = fn
            op.numpy = op.numpy + tuple(numpy)
        else:
            COMPOSED[fn.__name__] = (fn, op)
        _PUBLIC_NUMPY.update({n: fn for n in numpy})
        return fn

    return register


def _accepting_torch_keywords(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, which takes NumPy's ``axis``/``keepdims``, also taking PyTorch's ``dim``/
    ``keepdim`` (``cr.sum(x, dim=1)``); a function without an ``axis`` is returned as it is."""
    names = inspect.signature(fn).parameters
    if "axis" not in names or "dim" in names:
        return fn

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "dim" in kwargs or "keepdim" in kwargs:
            kwargs = torch_keywords(fn.__name__, kwargs)
        return fn(*args, **kwargs)

    return wrapper


def kernel(op: Op, *, vjp_into: Rule | None = None, save: Rule | None = None, **vjps: Rule) -> None:
    """Attach fast kernels to ``op`` (see :mod:`chainrule.ops.kernels`); each must give the
    bits of the sheet's rule it stands for, whatever arrays it is given.

    ``d<input>=rule``
        Used instead of that input's rule in a plain backward pass (raw arrays, nothing
        recorded); ``create_graph=True`` runs the sheet's rules.
    ``vjp_into=rule``
        For an op of one input: its rule written into the incoming gradient ``g``, returning
        it. The backward pass calls it when the engine alone holds ``g``.
    ``save=forward``
        ``save(xp, *inputs, **params) -> (out, saved)``: the forward, also returning a value
        the rules would compute again (cross-entropy's softmax). A node recorded in a plain
        pass keeps ``saved`` among its parameters, and the ``d<input>`` kernels given with it
        receive it as ``saved=`` (``None`` where the node was recorded without it).
    """
    names = op.inputs if not op.variadic else ()
    fast = list(op.fast_vjps)
    for key, rule in vjps.items():
        n = key[1:]
        if not key.startswith("d") or n not in names or not callable(op.vjps[names.index(n)]):
            raise ValueError(f"op {op.name!r}: {key} names no differentiable input")
        fast[names.index(n)] = rule
    if vjp_into is not None and (op.variadic or op.nin != 1 or not callable(op.vjps[0])):
        raise ValueError(f"op {op.name!r}: vjp_into is for an op of one differentiable input")
    if save is not None:
        readers = {"d" + n for n, r in zip(names, op.vjps) if callable(r)}
        if not callable(save) or readers - set(vjps):
            raise ValueError(
                f"op {op.name!r}: save= needs a function save(xp, *inputs, **params) and, in "
                f"the same call, the kernels that read what it keeps: {', '.join(sorted(readers))}"
            )
    op.fast_vjps = tuple(fast)
    if vjp_into is not None:
        op.vjp_into = vjp_into
    if save is not None:
        op.save = save
