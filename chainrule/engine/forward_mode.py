"""Forward mode: tangents pushed through each op as it is applied, one level per active ``jvp``
(levels nest, each tagged, so a tangent of a tangent is never confused with its own)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import complex_error, is_complex
from .modes import state
from .registry import NOT_IMPLEMENTED, OPS
from .tensor import Tensor

if TYPE_CHECKING:
    from .op import Op

__all__ = ["push_tangents"]


def push_tangents(op: Op, args: tuple[Any, ...], params: dict[str, Any], out: Tensor) -> None:
    """Push each active level's tangents through the op's JVP rules."""
    levels = state.levels
    saved = list(levels)
    for k, level in enumerate(saved):
        tangents = [level.get(id(a)) if isinstance(a, Tensor) else None for a in args]
        if all(t is None for t in tangents):
            continue
        # Rules for level k run with only the outer levels active, so that a tangent of a
        # tangent (jvp of jvp) is tracked by the outer level and never confused with this one.
        levels[:] = saved[:k]
        try:
            total = _tangent(op, args, params, out, tangents, outer=bool(levels) or out._rg)
        finally:
            levels[:] = saved
        if total is not None:
            level[id(out)] = (out, total)


def _tangent(
    op: Op,
    args: tuple[Any, ...],
    params: dict[str, Any],
    out: Tensor,
    tangents: list[Any],
    outer: bool,
) -> Any:
    """The tangent of ``out``: the sum of each input's contribution through its JVP rule.
    The rules see Tensors when an outer level or a gradient must see through them."""
    rule_out = out if outer else out._data
    rule_args = args if outer else tuple(a._data if isinstance(a, Tensor) else a for a in args)
    total = None
    for i, entry in enumerate(tangents):
        if entry is None:
            continue
        rule = op.jvps[0] if op.variadic else op.jvps[i] if i < len(op.jvps) else None
        if rule is None:
            continue
        if rule is NOT_IMPLEMENTED:
            raise NotImplementedError(
                f"{op.name}: forward mode (jvp) is not implemented for input {i}; "
                "use reverse mode (cr.grad, cr.vjp) instead"
            )
        lead = (i,) if op.variadic else ()
        contribution = rule(*lead, entry[1], rule_out, *rule_args, **params)
        total = contribution if total is None else total + contribution
    if total is None:
        return None
    like = out._data
    if tuple(total.shape) != tuple(like.shape):
        total = OPS["broadcast_to"](total, shape=tuple(like.shape))
    if total.dtype != like.dtype:
        if is_complex(total.dtype) and not is_complex(like.dtype):
            raise TypeError(complex_error(op, "tangent", like.dtype))
        total = OPS["astype"](total, dtype=like.dtype)
    return total
