"""Parameter groups: reading an optimizer's ``params`` argument (Tensors, or PyTorch's list
of dicts), checking each group, and ``opt.lr``-style attributes that stand for every group.

>>> import chainrule as cr
>>> a, b = cr.tensor([1.0], requires_grad=True), cr.tensor([2.0], requires_grad=True)
>>> opt = cr.optim.SGD([{"params": [a]}, {"params": b, "momentum": 0.9}], lr=0.1)
>>> opt.lr, [g["momentum"] for g in opt.param_groups]
(0.1, [0.0, 0.9])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..engine.tensor import Tensor

if TYPE_CHECKING:
    from .optimizer import Optimizer

__all__ = ["Hyperparameter", "split_params", "parse_group"]


class Hyperparameter:
    """``optimizer.<name>``: the value every param group shares. Reading it where the groups
    differ raises (read ``optimizer.param_groups[i][name]``); setting it checks the value and
    sets it in every group."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, opt: Any, owner: type | None = None) -> Any:
        if opt is None:
            return self
        values = [g[self.name] for g in opt.param_groups]
        if any(v != values[0] for v in values[1:]):
            raise ValueError(
                f"{opt.name}.{self.name}: the {len(values)} param groups have different "
                f"values {values}; read optimizer.param_groups[i][{self.name!r}] (a schedule's "
                "get_last_lr() lists the learning rates)"
            )
        return values[0]

    def __set__(self, opt: Any, value: Any) -> None:
        value = opt.SPEC[self.name](f"{opt.name}: {self.name}", value)
        for k, group in enumerate(opt.param_groups):  # every group checked before any changes
            opt._check_group(
                {**group, self.name: value}, _where(opt.name, k, len(opt.param_groups))
            )
        for group in opt.param_groups:
            group[self.name] = value


def _where(name: str, k: int, n_groups: int) -> str:
    return f"{name}: param group {k}: " if n_groups > 1 else f"{name}: "


def split_params(params: Any, name: str) -> tuple[list[Any], bool]:
    """The groups in an optimizer's ``params`` argument, and whether it was plain Tensors
    (one group) rather than dicts."""
    if isinstance(params, Tensor):
        raise TypeError(
            f"{name}: params must be an iterable of Tensors or of dicts (param groups), got "
            f"one Tensor of shape {params.shape}; pass [tensor]"
        )
    if isinstance(params, (set, frozenset, Mapping)) or not isinstance(params, Iterable):
        why = "; a set has no order, so a saved state could not find its parameters"
        raise TypeError(
            f"{name}: params must be a list (or other ordered iterable) of Tensors or of dicts "
            f"(param groups), got a {type(params).__name__}"
            + (why if isinstance(params, (set, frozenset)) else "")
        )
    items = list(params)
    dicts = [isinstance(x, Mapping) for x in items]
    if any(dicts) and not all(dicts):
        raise TypeError(
            f"{name}: params mixes Tensors and dicts (param groups); pass either Tensors, or "
            "dicts each with its 'params'"
        )
    if items and all(dicts):
        return items, False
    return [{"params": items}], True


def parse_group(
    opt: Optimizer, group: Any, k: int, plain: bool, seen: dict[int, int]
) -> dict[str, Any]:
    """Group ``k`` checked, its missing hyperparameters filled in from ``opt.defaults``.
    ``seen`` maps the ids of the parameters already in ``opt`` to their groups."""
    name = opt.name
    prefix = f"{name}: " if plain else f"{name}: param group {k}: "
    this = f"{name}: param group {k}"
    if not isinstance(group, Mapping):
        raise TypeError(f"{this} must be a dict with 'params', got a {type(group).__name__}")
    if "params" not in group:
        raise ValueError(f"{this} has no 'params' (the list of Tensors it holds)")
    unknown = [key for key in group if key != "params" and key not in opt.SPEC]
    if unknown:
        raise ValueError(
            f"{this} has unknown key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(u) for u in unknown)}; {name}'s keys are 'params', "
            + ", ".join(repr(s) for s in opt.SPEC)
        )
    out = {
        key: check(prefix + key, group[key]) if key in group else opt.defaults[key]
        for key, check in opt.SPEC.items()
    }
    opt._check_group(out, prefix)
    params = group["params"]
    if isinstance(params, Tensor):
        params = [params]
    elif isinstance(params, (set, frozenset, Mapping)) or not isinstance(params, Iterable):
        raise TypeError(
            f"{prefix}'params' must be a Tensor or a list of Tensors, got a {type(params).__name__}"
        )
    params = list(params)
    mine: set[int] = set()
    for j, p in enumerate(params):
        what = f"{prefix}parameter {j}"
        if not isinstance(p, Tensor):
            raise ValueError(
                f"{what} is a {type(p).__name__}, not a Tensor; pass model.parameters() or "
                "tensors made with requires_grad=True"
            )
        if not p.is_leaf:
            raise ValueError(
                f"{what} (shape {p.shape}) is not a leaf tensor: it was made by {p.op}; "
                "optimize the tensor it was computed from, or detach() it and set "
                "requires_grad=True"
            )
        if id(p) in mine or id(p) in seen:
            other = "this group" if id(p) in mine else f"param group {seen[id(p)]}"
            raise ValueError(
                f"{what} (shape {p.shape}) appears more than once (already in {other}); "
                "each parameter may be in one group, once"
            )
        mine.add(id(p))
    return {"params": params, **out}
