"""Functional transforms, JAX-style and nestable: grad, value_and_grad, vjp, jvp, jacobian,
hessian.

Given NumPy arrays or Python numbers they return NumPy arrays. Given Tensors (as happens inside
an outer transform) they record what they do and return Tensors, so ``cr.grad(cr.grad(f))``
is the second derivative.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from .. import ops as F
from ..backends import namespace
from ..backends.batched import Batched
from ..engine.backward import gradients
from ..engine.modes import enable_grad, forward_level, next_seq, state, transforming
from ..engine.tensor import Tensor
from . import tree
from .tree import Structure

__all__ = [
    "grad",
    "value_and_grad",
    "vjp",
    "jvp",
    "jacobian",
    "hessian",
    "jacfwd",
    "jacrev",
    "elementwise_grad",
    "hvp",
    "stop_gradient",
]


def _argnums(argnums: int | Sequence[int], n: int, name: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for i in nums:
        if not -n <= i < n:
            raise ValueError(f"{name}: argnums={argnums!r} but the function got {n} argument(s)")
    return tuple(i % n for i in nums)


def _as_float_array(value: Any, name: str) -> Any:
    if isinstance(value, bool):
        raise TypeError(f"{name}: cannot differentiate with respect to a bool")
    if isinstance(value, int):
        value = float(value)
    xp = namespace(value)
    arr = value if isinstance(value, Batched) else xp.asarray(value)
    kind = getattr(arr.dtype, "kind", None)
    if kind is not None and kind != "f":
        raise TypeError(
            f"{name}: can only differentiate with respect to floating-point inputs, got "
            f"{arr.dtype}; convert it first (e.g. x.astype('float64'))"
        )
    return arr


def _differentiable(value: Any, name: str) -> tuple[Tensor, bool]:
    """A Tensor that requires grad standing for ``value``; and whether value was a Tensor.
    A new one is dated (``_seq``), so that a transform started before it can tell it from its
    own inputs (see :func:`_reaches_outer`)."""
    if isinstance(value, Tensor):
        if value.requires_grad:
            # a new node standing for the outer transform's tensor: this transform
            # differentiates with respect to it alone, while the outer one still sees
            # through it (x * grad(lambda y: x * y)(x) is x * x, not x * 2x)
            with enable_grad():
                return F.reshape(value, shape=value.shape), True
        t = Tensor(_as_float_array(value._data, name), requires_grad=True)
        for level in state.levels:  # keep forward-mode tangents attached
            entry = level.get(id(value))
            if entry is not None:
                level[id(t)] = (t, entry[1])
        t._seq = next_seq()
        return t, True
    t = Tensor(_as_float_array(value, name), requires_grad=True)
    t._seq = next_seq()
    return t, False


def _check_scalar(out: Any, name: str) -> Tensor:
    if not isinstance(out, Tensor):
        out = Tensor(namespace(out).asarray(out))
    if out.size != 1:
        raise TypeError(
            f"{name}: the function must return a scalar, it returned shape {out.shape}; "
            "use cr.jacobian or cr.vjp for non-scalar outputs"
        )
    return out


def _wrap_args(
    args: Sequence[Any], nums: tuple[int, ...], name: str
) -> tuple[list[Any], list[tuple[Structure, int]], list[Tensor], bool]:
    """``args`` with each argument in ``nums`` a tree of Tensors that require grad; the
    structure and leaf count of each; all those Tensors in order; whether any was a Tensor
    already (an outer transform's)."""
    new_args = list(args)
    specs: list[tuple[Structure, int]] = []
    targets: list[Tensor] = []
    nested = False
    for i in nums:
        values, spec = tree.flatten(args[i])
        for v in values:
            t, was_tensor = _differentiable(v, name)
            targets.append(t)
            nested = nested or was_tensor
        new_args[i] = tree.unflatten(spec, targets[len(targets) - len(values) :])
        specs.append((spec, len(values)))
    return new_args, specs, targets, nested


def _regroup(grads: Sequence[Any], specs: list[tuple[Structure, int]]) -> list[Any]:
    """One tree of gradients per differentiated argument, shaped as that argument."""
    out, k = [], 0
    for spec, n in specs:
        out.append(tree.unflatten(spec, grads[k : k + n]))
        k += n
    return out


def _keep_tangents(t: Any) -> Any:
    """``t`` as a Tensor outside the reverse-mode graph that keeps its forward-mode tangents:
    what a transform hands back to an outer ``jvp`` when only tangents must flow through it."""
    if not isinstance(t, Tensor):
        return t
    d = Tensor(t._data)
    for level in state.levels:
        entry = level.get(id(t))
        if entry is not None:
            level[id(d)] = (d, entry[1])
    return d


def value_and_grad(
    f: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """``f``'s value and its gradient with respect to the arguments in ``argnums``. An
    argument may be a container (dict, list, tuple, namedtuple, dataclass) of arrays: its
    gradient is a container of the same shape.

    >>> import chainrule as cr
    >>> value, slope = cr.value_and_grad(lambda x: x ** 3)(2.0)
    >>> float(value), float(slope)
    (8.0, 12.0)
    >>> g = cr.grad(lambda p: p["w"] * p["b"])({"w": 2.0, "b": 5.0})
    >>> {k: float(v) for k, v in g.items()}
    {'b': 2.0, 'w': 5.0}
    """

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nums = _argnums(argnums, len(args), "grad")
        start = next_seq()
        new_args, specs, targets, nested = _wrap_args(args, nums, "grad")
        with enable_grad(), transforming():
            result = f(*new_args, **kwargs)
        aux = None
        if has_aux:
            if not (isinstance(result, (tuple, list)) and len(result) == 2):
                raise TypeError("grad: with has_aux=True the function must return (value, aux)")
            result, aux = result
        out = _check_scalar(result, "grad")
        nested = nested or _reaches_outer([out], start)
        tangents = bool(state.levels)  # an outer jvp: its tangents flow through the gradient
        grads: list[Any] = gradients(out, targets, create_graph=nested or tangents)
        value: Any = out
        if tangents and not nested:
            grads = [_keep_tangents(g) for g in grads]
            value = _keep_tangents(out)
        elif not nested:
            value = out._data
            aux = _unwrap(aux)
        trees = _regroup(grads, specs)
        g: Any = trees[0] if isinstance(argnums, int) else tuple(trees)
        return ((value, aux), g) if has_aux else (value, g)

    return wrapper


def grad(
    f: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """The gradient of a scalar function, as a function (see :func:`value_and_grad`).

    >>> import chainrule as cr
    >>> d2 = cr.grad(cr.grad(lambda x: x ** 4 + x ** 2))  # 12 x^2 + 2
    >>> float(d2(1.0))
    14.0
    """
    vg = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = vg(*args, **kwargs)
        if has_aux:
            (_, aux), g = result
            return g, aux
        return result[1]

    return wrapper


def _as_tensor(value: Any) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor(namespace(value).asarray(value))


def vjp(f: Callable[..., Any], *primals: Any) -> tuple[Any, Callable[..., Any]]:
    """Evaluate ``f`` and return ``(out, vjp_fn)``: ``vjp_fn(cotangent)`` gives one gradient
    per primal, ``cotangent`` having ``out``'s shape. ``vjp_fn`` may be called many times.
    Primals and ``out`` may be containers of arrays; the cotangent is then a container of
    ``out``'s structure, and each gradient has its primal's.

    >>> import chainrule as cr, numpy as np
    >>> out, pullback = cr.vjp(lambda x: x * x, np.array([1.0, 2.0]))
    >>> pullback(np.array([1.0, 10.0]))[0]
    array([ 2., 40.])
    """
    start = next_seq()
    args, specs, targets, nested = _wrap_args(primals, tuple(range(len(primals))), "vjp")
    with enable_grad(), transforming():
        result = f(*args)
    values, out_spec = tree.flatten(result)
    outs = [_as_tensor(v) for v in values]
    nested = nested or _reaches_outer(outs, start)

    def vjp_fn(cotangent: Any) -> tuple[Any, ...]:
        cts, ct_spec = tree.flatten(cotangent)
        if ct_spec != out_spec:
            raise ValueError(
                f"vjp: the cotangent has structure {ct_spec!r}, the output {out_spec!r}"
            )
        tangents = bool(state.levels)  # an outer jvp: its tangents flow through the gradient
        total: list[Any] | None = None
        for o, ct in zip(outs, cts):
            if not isinstance(ct, Tensor) and not hasattr(ct, "dtype"):
                ct = namespace(o._data).asarray(ct, dtype=o.dtype)
            grads = gradients(
                o, targets, grad=ct, retain_graph=True, create_graph=nested or tangents
            )
            total = grads if total is None else [a + b for a, b in zip(total, grads)]
        if total is None:  # f returned an empty container
            total = [_zeros_of(t, nested) for t in targets]
        if tangents and not nested:
            total = [_keep_tangents(g) for g in total]
        return tuple(_regroup(total, specs))

    if nested:
        kept = outs
    elif state.levels:
        kept = [_keep_tangents(o) for o in outs]
    else:
        kept = [o._data for o in outs]
    return tree.unflatten(out_spec, kept), vjp_fn


def _zeros_of(t: Tensor, nested: bool) -> Any:
    zero = namespace(t._data).zeros_like(t._data)
    return Tensor(zero) if nested else zero


def jvp(f: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """Forward mode: ``(f(*primals), J_f(primals) @ tangents)``, tangents pushed through each
    op's JVP rule as ``f`` runs (no backward pass). Each primal may be a container of arrays,
    its tangent a container of the same structure; the output's tangent has the output's.

    >>> import chainrule as cr
    >>> out, slope = cr.jvp(lambda x: x ** 3, (2.0,), (1.0,))
    >>> float(out), float(slope)
    (8.0, 12.0)
    """
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    level: dict[int, tuple[Any, Any]] = {}
    nested = False
    start = next_seq()
    args = []
    for i, (p, t) in enumerate(zip(primals, tangents)):
        p_values, p_spec = tree.flatten(p)
        t_values, t_spec = tree.flatten(t)
        if p_spec != t_spec:
            raise ValueError(f"jvp: tangent {i} has structure {t_spec!r}, primal {i} {p_spec!r}")
        xs = []
        for pv, tv in zip(p_values, t_values):
            nested = nested or isinstance(pv, Tensor) or isinstance(tv, Tensor)
            # a Tensor primal (an outer transform's) gets a new node of its own, so that
            # this level's tangent is never confused with an outer one (see _differentiable)
            x = F.reshape(pv, shape=pv.shape) if isinstance(pv, Tensor) else None
            x = x if x is not None else Tensor(_as_float_array(pv, "jvp"))
            tangent = (
                tv if isinstance(tv, Tensor) else namespace(x._data).asarray(tv, dtype=x.dtype)
            )
            if tuple(tangent.shape) != x.shape:
                raise ValueError(
                    f"jvp: a tangent of argument {i} has shape {tuple(tangent.shape)} where its "
                    f"primal has shape {x.shape}"
                )
            level[id(x)] = (x, tangent)
            xs.append(x)
        args.append(tree.unflatten(p_spec, xs))
    with forward_level(level), transforming():
        result = f(*args)
    values, out_spec = tree.flatten(result)
    outs, slopes = [], []
    for v in values:
        o = _as_tensor(v)
        entry = level.get(id(o))
        slopes.append(entry[1] if entry is not None else namespace(o._data).zeros_like(o._data))
        outs.append(o)
    # Recorded results (f closes over tensors that require grad) stay Tensors, so that an
    # outer transform can differentiate through this one.
    nested = nested or _reaches_outer([*outs, *(s for s in slopes if isinstance(s, Tensor))], start)
    if nested:
        slopes = [s if isinstance(s, Tensor) else Tensor(s) for s in slopes]
    elif state.levels:  # an outer jvp: what it pushes through this one stays attached
        outs = [_keep_tangents(o) for o in outs]
        slopes = [_keep_tangents(s) for s in slopes]
    else:
        outs = [o._data for o in outs]
        slopes = [s._data if isinstance(s, Tensor) else s for s in slopes]
    return tree.unflatten(out_spec, outs), tree.unflatten(out_spec, slopes)


def jacobian(f: Callable[..., Any], argnums: int = 0, mode: str = "auto") -> Callable[..., Any]:
    """The Jacobian of ``f`` with respect to argument ``argnums``: shape
    ``out.shape + in.shape``. ``mode`` is "reverse" (one VJP per output entry), "forward"
    (one JVP per input entry) or "auto" (whichever needs fewer passes). Where the argument or
    the result is a container, the Jacobian is a container of the result's structure holding,
    for each output, a container of the argument's structure of blocks (as JAX returns it).

    >>> import chainrule as cr, numpy as np
    >>> cr.jacobian(lambda x: x ** 2)(np.array([1.0, 3.0]))
    array([[2., 0.],
           [0., 6.]])
    >>> j = cr.jacobian(lambda p: (p["a"] * p["b"], p["a"]))({"a": 2.0, "b": 5.0})
    >>> float(j[0]["a"]), float(j[0]["b"]), float(j[1]["a"]), float(j[1]["b"])
    (5.0, 2.0, 1.0, 0.0)
    """
    if mode not in ("auto", "forward", "reverse"):
        raise ValueError(f"jacobian: mode must be 'auto', 'forward' or 'reverse', got {mode!r}")

    def wrapper(*args: Any) -> Any:
        i = _argnums(argnums, len(args), "jacobian")[0]
        nested = any(isinstance(v, Tensor) for v in tree.leaves(list(args)))
        xs, in_spec = tree.flatten(args[i])

        def fi(*leaves: Any) -> Any:
            return f(*args[:i], tree.unflatten(in_spec, leaves), *args[i + 1 :])

        out, pullback = vjp(fi, *xs)
        outs, out_spec = tree.flatten(out)
        in_shapes = [tuple(_shape(x)) for x in xs]
        out_shapes = [tuple(o.shape) for o in outs]
        n_in = sum(_prod(sh) for sh in in_shapes)
        n_out = sum(_prod(sh) for sh in out_shapes)
        use_forward = mode == "forward" or (mode == "auto" and n_in < n_out)
        xp = namespace(*[o._data if isinstance(o, Tensor) else o for o in outs] or [0.0])
        wrap = Tensor if nested else (lambda v: v)
        # blocks[o][k]: d out_o / d x_k, as out_o.shape + x_k.shape
        blocks: list[list[Any]] = []
        if use_forward:
            per_input: list[list[list[Any]]] = []  # per input, per output: the columns
            for k, (x, shape) in enumerate(zip(xs, in_shapes)):
                dtype = _dtype_of(x)
                cols: list[list[Any]] = [[] for _ in outs]
                for e in range(_prod(shape)):
                    tangents = [
                        wrap(xp.zeros(sh, dtype=_dtype_of(v))) for v, sh in zip(xs, in_shapes)
                    ]
                    tangents[k] = wrap(xp.reshape(_one_hot(xp, _prod(shape), e, dtype), shape))
                    _, slope = jvp(fi, xs, tangents)
                    for o, s in enumerate(tree.leaves(slope)):
                        cols[o].append(s)
                per_input.append(cols)
            for o, osh in enumerate(out_shapes):
                row = []
                for k, ish in enumerate(in_shapes):
                    cols_ok = per_input[k][o]
                    block = F.stack(cols_ok, axis=-1) if cols_ok else None
                    row.append(_block(xp, block, osh, ish))
                blocks.append(row)
        else:
            for o, (oo, osh) in enumerate(zip(outs, out_shapes)):
                rows: list[list[Any]] = [[] for _ in xs]
                for e in range(_prod(osh)):
                    cts = [wrap(xp.zeros(sh, dtype=v.dtype)) for v, sh in zip(outs, out_shapes)]
                    cts[o] = wrap(xp.reshape(_one_hot(xp, _prod(osh), e, oo.dtype), osh))
                    grads = pullback(tree.unflatten(out_spec, cts))
                    for k, g in enumerate(grads):
                        rows[k].append(g)
                blocks.append(
                    [
                        _block(xp, F.stack(r, axis=0) if r else None, osh, ish)
                        for r, ish in zip(rows, in_shapes)
                    ]
                )
        trees = [tree.unflatten(in_spec, row) for row in blocks]
        return tree.unflatten(out_spec, trees)

    return wrapper


def _block(xp: Any, stacked: Any, out_shape: tuple[int, ...], in_shape: tuple[int, ...]) -> Any:
    """A Jacobian block of shape out_shape + in_shape from its stacked rows or columns."""
    if stacked is None:
        return xp.zeros(out_shape + in_shape, dtype=xp.float64)
    return F.reshape(stacked, out_shape + in_shape)


def hessian(f: Callable[..., Any], argnums: int = 0) -> Callable[..., Any]:
    """The Hessian of a scalar function: the Jacobian of its gradient (reverse over reverse).

    >>> import chainrule as cr, numpy as np
    >>> cr.hessian(lambda x: (x[0] ** 2) * x[1])(np.array([1.0, 2.0]))
    array([[4., 2.],
           [2., 0.]])
    """
    return jacobian(grad(f, argnums), argnums, mode="reverse")


def _reaches_outer(outs: Sequence[Tensor], start: int) -> bool:
    """Whether the graph of any of ``outs`` reaches a leaf that requires grad and is older
    than this transform (dated before ``start``): an outer transform's input, or a closure
    over one. Then the results must stay Tensors that an outer transform can differentiate;
    the inputs that this transform, or one nested inside it, made do not count."""
    seen: set[int] = set()
    stack = [o for o in outs if o._rg]
    while stack:
        t = stack.pop()
        node = t._node
        if node is None:
            if getattr(t, "_seq", 0) < start:
                return True
            continue
        for a in node[1] or ():
            if isinstance(a, Tensor) and a._rg and id(a) not in seen:
                seen.add(id(a))
                stack.append(a)
    return False


def _unwrap(value: Any) -> Any:
    """``value``'s Tensors as their arrays, containers kept."""
    return tree.map(lambda v: v._data if isinstance(v, Tensor) else v, value)


def _shape(x: Any) -> tuple[int, ...]:
    if isinstance(x, Tensor):
        return x.shape
    return tuple(getattr(x, "shape", ()))


def _dtype_of(x: Any) -> Any:
    data = x._data if isinstance(x, Tensor) else _as_float_array(x, "jacobian")
    return data.dtype


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _one_hot(xp: Any, n: int, k: int, dtype: Any) -> Any:
    e = xp.zeros((n,), dtype=dtype)
    e[k] = 1
    return e


# -- more spellings, as users of JAX and HIPS autograd know them ---------------------------------
def jacfwd(f: Callable[..., Any], argnums: int = 0) -> Callable[..., Any]:
    """The Jacobian by forward mode, one JVP per input entry (``jacobian(mode="forward")``).

    >>> import chainrule as cr, numpy as np
    >>> cr.jacfwd(lambda x: x ** 2)(np.array([1.0, 3.0]))
    array([[2., 0.],
           [0., 6.]])
    """
    return jacobian(f, argnums, mode="forward")


def jacrev(f: Callable[..., Any], argnums: int = 0) -> Callable[..., Any]:
    """The Jacobian by reverse mode, one VJP per output entry (``jacobian(mode="reverse")``)."""
    return jacobian(f, argnums, mode="reverse")


def elementwise_grad(f: Callable[..., Any], argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """The gradient of ``sum(f(x))``: for a function applied entry by entry, each entry's own
    derivative (HIPS autograd's ``elementwise_grad``).

    >>> import chainrule as cr, numpy as np
    >>> cr.elementwise_grad(lambda x: x ** 3)(np.array([1.0, 2.0]))
    array([ 3., 12.])
    """
    return grad(lambda *args, **kwargs: F.sum(f(*args, **kwargs)), argnums)


def hvp(f: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """``(grad f(primals), H(primals) @ tangents)``: a Hessian-vector product by forward mode
    over reverse mode, without forming the Hessian.

    >>> import chainrule as cr, numpy as np
    >>> g, hv = cr.hvp(lambda x: cr.sum(x ** 3), (np.array([1.0, 2.0]),), (np.array([1.0, 0.0]),))
    >>> hv  # H = diag(6x)
    array([6., 0.])
    """
    argnums = tuple(range(len(tuple(primals))))
    out, slope = jvp(grad(f, argnums), primals, tangents)
    return (out[0], slope[0]) if len(argnums) == 1 else (out, slope)


def stop_gradient(x: Any) -> Any:
    """``x``'s value as a constant: no gradient (reverse or forward mode) flows through it.
    Containers are handled leaf by leaf.

    >>> import chainrule as cr
    >>> float(cr.grad(lambda x: x * cr.stop_gradient(x))(3.0))  # d(x c)/dx with c = 3
    3.0
    """
    return tree.map(lambda v: v.detach() if isinstance(v, Tensor) else v, x)
