"""Linear algebra: matmul (1-D, 2-D, batched with broadcasting), einsum, and dot/outer."""

from __future__ import annotations

import math
from typing import Any

from ..backends.gaps import mT
from ..engine.declare import family, public
from ..engine.op import Op
from .shape import broadcast_to, expand_dims, reshape, squeeze

__all__ = ["matmul", "dot", "outer", "einsum", "inner", "vdot"]

defop = family("linalg")


def _matmul_dx(g: Any, out: Any, x: Any, y: Any) -> Any:
    # d(x @ y)/dx: g @ y^T, with 1-D operands promoted to matrices and back
    if len(y.shape) == 1:
        if len(x.shape) == 1:
            return g * y
        return expand_dims(g, axis=-1) * y
    if len(x.shape) == 1:
        return squeeze(matmul(expand_dims(g, axis=-2), mT(y)), axis=-2)
    return matmul(g, mT(y))


def _matmul_dy(g: Any, out: Any, x: Any, y: Any) -> Any:
    # d(x @ y)/dy: x^T @ g, with 1-D operands promoted to matrices and back
    if len(x.shape) == 1:
        if len(y.shape) == 1:
            return g * x
        return expand_dims(x, axis=-1) * expand_dims(g, axis=-2)
    if len(y.shape) == 1:
        return squeeze(matmul(mT(x), expand_dims(g, axis=-1)), axis=-1)
    return matmul(mT(x), g)


def _matmul(xp: Any, x: Any, y: Any) -> Any:
    if not x.shape or not y.shape:
        raise ValueError("matmul: operands must have at least one dimension; use * for scalars")
    kx = x.shape[-1]
    ky = y.shape[0] if len(y.shape) == 1 else y.shape[-2]
    if kx != ky:
        raise ValueError(
            f"matmul: shapes {tuple(x.shape)} and {tuple(y.shape)} are not aligned: "
            f"{tuple(x.shape)} has {kx} columns but {tuple(y.shape)} has {ky} rows"
        )
    return xp.matmul(x, y)


# fmt: off
matmul: Op = defop("matmul", _matmul,
    "Matrix product; 1-D operands are vectors, leading dimensions broadcast.",
    dx=(_matmul_dx, "d(x @ y)/dx = g @ y^T"), tx=lambda t, out, x, y: matmul(t, y),
    dy=(_matmul_dy, "d(x @ y)/dy = x^T @ g"), ty=lambda t, out, x, y: matmul(x, t))
# fmt: on


@public(matmul, numpy=("dot",), face=False)
def dot(x: Any, y: Any) -> Any:
    """NumPy's ``dot`` for 0-D, 1-D and 2-D operands (a matrix product; scalars multiply)."""
    if not x.shape or not y.shape:
        return x * y
    if len(x.shape) > 2 or len(y.shape) > 2:
        raise ValueError(
            f"dot: operands of shapes {tuple(x.shape)} and {tuple(y.shape)}; for more than 2 "
            "dimensions use matmul (batched) or einsum"
        )
    return matmul(x, y)


@public(matmul, numpy=("inner",), face=False)
def inner(x: Any, y: Any) -> Any:
    """NumPy's ``inner``: the sum over the last axis of each, ``out[i..., j...] = sum_k
    x[i..., k] y[j..., k]`` (a product where one is 0-d)."""
    if not x.shape or not y.shape:
        return x * y
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"inner: the last dimensions differ: shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    nx, ny = len(x.shape), len(y.shape)
    if nx + ny - 1 > len(_LETTERS):
        raise ValueError(f"inner: {nx} + {ny} dimensions are more than einsum can name")
    a, b = _LETTERS[: nx - 1], _LETTERS[nx - 1 : nx + ny - 2]
    k = _LETTERS[nx + ny - 2]
    return einsum(f"{a}{k},{b}{k}->{a}{b}", x, y)


@public(matmul, numpy=("vdot",), face=False)
def vdot(x: Any, y: Any) -> Any:
    """NumPy's ``vdot`` for real arrays: both flattened, then their dot product."""
    if _size(x) != _size(y):
        raise ValueError(f"vdot: sizes differ: shapes {tuple(x.shape)} and {tuple(y.shape)}")
    return _sum_all(reshape(x, shape=(-1,)) * reshape(y, shape=(-1,)))


def _size(v: Any) -> int:
    return math.prod(v.shape)


def _sum_all(v: Any) -> Any:
    from .reductions import sum

    return sum(v)


@public(matmul, numpy=("outer",), face=False)
def outer(x: Any, y: Any) -> Any:
    """Outer product of two vectors (inputs are flattened, as in NumPy)."""
    return reshape(x, shape=(-1, 1)) * reshape(y, shape=(1, -1))


# -- einsum --------------------------------------------------------------------------------
def _parse(subscripts: str, n: int) -> tuple[list[str], str]:
    spec = subscripts.replace(" ", "")
    if "." in spec:
        raise NotImplementedError("einsum: '...' (ellipsis) is not supported; name every axis")
    if "->" in spec:
        lhs, rhs = spec.split("->")
    else:
        lhs = spec
        letters = lhs.replace(",", "")
        rhs = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    ins = lhs.split(",")
    if len(ins) != n:
        raise ValueError(f"einsum: {subscripts!r} names {len(ins)} operands, got {n}")
    return ins, rhs


def _einsum_forward(xp: Any, *operands: Any, subscripts: str) -> Any:
    ins, rhs = _parse(subscripts, len(operands))
    for sub, op in zip(ins, operands):
        if len(sub) != len(op.shape):
            raise ValueError(
                f"einsum: operand subscripts {sub!r} do not match shape {tuple(op.shape)}"
            )
    native = getattr(xp, "einsum", None)
    if native is not None:
        return native(f"{','.join(ins)}->{rhs}", *operands)
    return _generic_einsum(xp, ins, rhs, operands)


def _generic_einsum(xp: Any, ins: list[str], rhs: str, operands: Any) -> Any:
    """einsum from broadcasting and sum, for namespaces that have no einsum."""
    letters = sorted(set("".join(ins)))
    total = None
    for sub, op in zip(ins, operands):
        if len(set(sub)) != len(sub):
            raise NotImplementedError("einsum: repeated subscripts in one operand (a diagonal)")
        perm = sorted(range(len(sub)), key=lambda i: letters.index(sub[i]))
        v = xp.permute_dims(op, tuple(perm))
        shape = [1] * len(letters)
        for i in perm:
            shape[letters.index(sub[i])] = op.shape[i]
        v = xp.reshape(v, tuple(shape))
        total = v if total is None else total * v
    summed = tuple(i for i, c in enumerate(letters) if c not in rhs)
    if summed:
        total = xp.sum(total, axis=summed)
    kept = [c for c in letters if c in rhs]
    return xp.permute_dims(total, tuple(kept.index(c) for c in rhs))


def _einsum_vjp(i: int, g: Any, out: Any, *operands: Any, subscripts: str) -> Any:
    # d/d operand_i: contract the gradient with every other operand onto operand i's axes
    ins, rhs = _parse(subscripts, len(operands))
    target = ins[i]
    if len(set(target)) != len(target):
        raise NotImplementedError(
            f"einsum: the gradient for operand {i} ({target!r}) takes a diagonal; not supported"
        )
    others = [s for j, s in enumerate(ins) if j != i]
    available = set(rhs).union(*others) if others else set(rhs)
    reachable = "".join(c for c in target if c in available)
    spec = ",".join([rhs, *others]) + "->" + reachable
    rest = [op for j, op in enumerate(operands) if j != i]
    part = einsum(spec, g, *rest)
    if reachable != target:  # axes summed away in operand i alone: broadcast back
        shape = tuple(operands[i].shape[k] if c in reachable else 1 for k, c in enumerate(target))
        part = broadcast_to(reshape(part, shape=shape), tuple(operands[i].shape))
    return part


def _einsum_jvp(i: int, t: Any, out: Any, *operands: Any, subscripts: str) -> Any:
    args = list(operands)
    args[i] = t  # einsum is linear in each operand
    return einsum(subscripts, *args)


# fmt: off
_einsum: Op = defop("einsum", _einsum_forward, "Einstein summation over named axes (no ellipsis).",
    numpy=(),  # (the public einsum below stands for NumPy's)
    doperands=(_einsum_vjp,
               "d einsum(..., x_i, ...)/dx_i: einsum of the gradient with the other operands"),
    toperands=_einsum_jvp)
# fmt: on


@public(_einsum, numpy=("einsum",))
def einsum(subscripts: str, *operands: Any) -> Any:
    """Einstein summation: ``einsum("ij,jk->ik", a, b)`` is ``a @ b``; ``...`` stands for the
    leading axes (broadcast as NumPy does), ``einsum("...ij,...jk->...ik", a, b)``."""
    if "." in subscripts:
        subscripts = _expand_ellipsis(subscripts, [len(getattr(v, "shape", ())) for v in operands])
    return _einsum(*operands, subscripts=subscripts)


def _expand_ellipsis(subscripts: str, ndims: list[int]) -> str:
    """``subscripts`` with each ``...`` spelled out in letters no operand uses: the axes it
    covers, aligned from the right across operands, as NumPy broadcasts them."""
    spec = subscripts.replace(" ", "")
    lhs, arrow, rhs = spec.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(ndims):
        raise ValueError(f"einsum: {subscripts!r} names {len(ins)} operands, got {len(ndims)}")
    free = [c for c in _LETTERS if c not in spec]
    counts = []
    for sub, nd in zip(ins, ndims):
        if (
            sub.count("...") > 1
            or sub.replace("...", "").count(".")
            or ("..." not in sub and "." in sub)
        ):
            raise ValueError(f"einsum: {sub!r} is not a valid operand subscript")
        counts.append(nd - len(sub.replace("...", "")) if "..." in sub else 0)
    width = max(counts, default=0)
    if width > len(free):
        raise ValueError(f"einsum: {subscripts!r} has too many axes under '...' to name")
    batch = "".join(free[:width])  # the broadcast axes, rightmost letters last
    ins = [sub.replace("...", batch[width - k :] if k else "") for sub, k in zip(ins, counts)]
    if arrow:
        out = rhs.replace("...", batch)
    else:
        letters = "".join(ins).replace(batch, "") if batch else "".join(ins)
        singles = sorted(c for c in set(letters) if "".join(ins).count(c) == 1)
        out = batch + "".join(c for c in singles if c not in batch)
    return ",".join(ins) + "->" + out


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
