"""What some array namespaces lack, filled in one place (the ops call these, not ``xp``):

- ``mT(v)``: the last two axes swapped. NumPy arrays and Tensors have the array API's ``.mT``
  attribute; Dask arrays do not, and get their namespace's ``matrix_transpose``.
- ``take_along_axis``: Dask has none. Dask arrays get NumPy's, block by block, with the axis
  it takes along in one block (still lazy); other namespaces without it go through NumPy.
- ``index(x, index)``: ``x[index]``. Dask indexes lazily with slices and one 1-D integer
  array; given several integer arrays, one of more than one dimension, or a boolean mask,
  a Dask array is indexed by NumPy in one task (still lazy; the result is one block). A
  lazy mask is computed first: the result's size depends on it. The gradient of such
  indexing (a scatter-add) is one NumPy task too.
- ``broadcast_like(g, x)``: a reduction's gradient ``g`` broadcast back to ``x``'s shape.
  Dask's ``broadcast_to`` makes each new or widened axis one block: the gradient of the mean
  of a loss over n rows would be one (n, 1) block, materialised by the next op and cut up
  to meet x's blocks (O(n) memory on one worker, whatever the chunk size). A Dask ``x``
  lends its chunks instead: one task per block of ``x``, each reading only ``g``.
- ``linalg(xp, name, *arrays)``: ``dask.array.linalg`` lacks det, slogdet, eigh, inv and
  cholesky, and its svd and qr take only tall-and-skinny chunkings. Dask arrays get NumPy's
  function as a generalised ufunc over their stacks of matrices (``dask.array.apply_gufunc``:
  each matrix in one block, still lazy).

Nothing here imports Dask unless a Dask array is given.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .batched import index as batched_index

__all__ = [
    "is_dask",
    "checked",
    "on_host",
    "over_blocks",
    "elementwise",
    "mT",
    "index",
    "scatter_add",
    "take_along_axis",
    "broadcast_like",
    "linalg",
]


def is_dask(value: Any) -> bool:
    """Whether ``value`` is a Dask array (without importing Dask)."""
    return type(value).__module__.startswith("dask.")


def checked(value: Any, check: Any) -> Any:
    """``value``, with ``check(numpy_block)`` (which raises on bad entries) run on each block
    when the value is computed: a lazy array stays lazy and its error comes at compute time,
    naming the op as an eager check would."""

    def block(b: Any) -> Any:
        check(b)
        return b

    return value.map_blocks(block, dtype=value.dtype)


def mT(v: Any) -> Any:
    """``v`` with its last two axes swapped: the ``.mT`` attribute where it has one (NumPy,
    Tensors: ten times cheaper than a call), else its namespace's ``matrix_transpose``."""
    try:
        return v.mT
    except AttributeError:
        from . import namespace

        return namespace(v).matrix_transpose(v)


def on_host(fn: Any, shape: tuple[int, ...], dtype: Any, *args: Any) -> Any:
    """``fn(*args)`` computed by NumPy, as a lazy Dask array of ``shape`` and ``dtype``: one
    task, which sees each Dask array among ``args`` (also inside tuples) as a NumPy array.
    For what Dask cannot do block by block; the result is one block."""
    import dask
    import dask.array as da

    return da.from_delayed(dask.delayed(fn)(*args), shape=shape, dtype=dtype)


def over_blocks(fn: Any, x: Any, axis: int, out_axis: int, out_shape: Any) -> Any:
    """``fn`` (NumPy, independent along ``axis`` of ``x``, which becomes ``out_axis`` of its
    result) on each block of the Dask array ``x`` chunked along ``axis`` only, the results
    joined along ``out_axis``: lazy, block by block. ``out_shape(n)`` is the result's shape
    for a block of ``n`` entries along ``axis``."""
    import dask
    import dask.array as da

    x = x.rechunk({d: (x.chunks[d] if d == axis else -1) for d in range(x.ndim)})
    blocks = x.to_delayed().reshape(-1)
    dtype = np.result_type(x.dtype)
    parts = [
        da.from_delayed(dask.delayed(fn)(b), shape=out_shape(n), dtype=dtype)
        for b, n in zip(blocks, x.chunks[axis])
    ]
    return da.concatenate(parts, axis=out_axis)


def elementwise(fn: Any, *args: Any, dtype: Any = None) -> Any:
    """The NumPy elementwise function ``fn`` on Dask arrays (and scalars, NumPy arrays)
    broadcast together, block by block (lazy)."""
    from dask.array.core import elemwise

    return elemwise(fn, *args, dtype=dtype)


def index(x: Any, key: Any) -> Any:
    """``x[key]`` for every namespace, a batch inside ``cr.vmap`` included (see the module)."""
    if is_dask(x) and _beyond_dask(key):
        parts = key if isinstance(key, tuple) else (key,)
        if any(is_dask(p) and p.dtype == np.bool_ for p in parts):
            # a lazy mask: the size of the result is not known until it is computed
            host = tuple(np.asarray(p) if is_dask(p) else p for p in parts)
            return index(x, host if isinstance(key, tuple) else host[0])
        shape = _indexed_shape(x, key)
        return on_host(lambda a, k: a[k], shape, x.dtype, x, key)
    return batched_index(x, key)


def _indexed_shape(x: Any, key: Any) -> tuple[int, ...]:
    """The shape of ``x[key]``, from a stand-in that holds no data (Dask arrays in ``key``
    stand in by zeros of their shape: integer arrays, whose values do not change it)."""
    parts = key if isinstance(key, tuple) else (key,)
    host = tuple(np.zeros(p.shape, p.dtype) if is_dask(p) else p for p in parts)
    stand_in = np.broadcast_to(np.zeros((), x.dtype), tuple(x.shape))
    return tuple(stand_in[host if isinstance(key, tuple) else host[0]].shape)


def _beyond_dask(key: Any) -> bool:
    """Whether Dask cannot take ``key`` lazily: several integer arrays, one of more than one
    dimension, or a boolean mask."""
    parts = key if isinstance(key, tuple) else (key,)
    arrays = [
        p if is_dask(p) else np.asarray(p)
        for p in parts
        if isinstance(p, list) or hasattr(p, "dtype")
    ]
    arrays = [a for a in arrays if a.ndim > 0]
    return len(arrays) > 1 or any(a.ndim > 1 or a.dtype == np.bool_ for a in arrays)


def scatter_add(values: Any, index: Any, shape: tuple[int, ...], numpy_scatter: Any) -> Any:
    """Zeros of ``shape`` with the Dask array ``values`` added at ``index`` (lazy): Dask's
    item assignment for a basic index (slices, integers: no place is written twice), else
    ``numpy_scatter(values, index, shape)`` as one task."""
    import dask.array as da

    parts = index if isinstance(index, tuple) else (index,)
    if all(p is Ellipsis or isinstance(p, (int, slice)) for p in parts):
        out = da.zeros(shape, dtype=values.dtype)
        out[index] = values
        return out
    return on_host(numpy_scatter, shape, values.dtype, values, index, shape)


def take_along_axis(xp: Any, x: Any, indices: Any, axis: int) -> Any:
    """``xp.take_along_axis(x, indices, axis=axis)`` for every namespace (see the module)."""
    if hasattr(xp, "take_along_axis"):
        return xp.take_along_axis(x, indices, axis=axis)
    if is_dask(x) or is_dask(indices):
        import dask.array as da

        axis %= len(x.shape)
        x, indices = da.asarray(x), da.asarray(indices)
        x = x.rechunk({axis: -1})
        # the other axes blocked alike (a broadcast axis of length 1 stays one block)
        same = {
            d: x.chunks[d] for d in range(x.ndim) if d != axis and indices.shape[d] == x.shape[d]
        }
        indices = indices.rechunk({**same, axis: -1})
        return da.map_blocks(
            lambda a, i: np.take_along_axis(a, i, axis=axis),
            x, indices, dtype=x.dtype, chunks=indices.chunks,
        )  # fmt: skip
    from . import from_host, to_numpy

    return from_host(xp, np.take_along_axis(to_numpy(x), to_numpy(indices), axis=axis))


def broadcast_like(g: Any, x: Any) -> Any:
    """``g`` broadcast to the shape of the Dask array ``x``, blocked like it (see the module);
    ``g`` (a Dask or NumPy array, or a scalar) broadcasts against ``x`` as NumPy would."""
    import dask.array as da

    # (an axis that g shares with x must be blocked as x's already: Dask broadcasts only
    # new axes and axes of length 1 into new blocks)
    g = da.asarray(g)
    lead = x.ndim - g.ndim
    shared = {d: x.chunks[lead + d] for d in range(g.ndim) if g.shape[d] == x.shape[lead + d]}
    return da.broadcast_to(g.rechunk(shared), tuple(x.shape), chunks=x.chunks)


#: NumPy's linear algebra as generalised ufuncs: the signature over the core (matrix) axes.
_SIGNATURES = {
    "det": "(n,n)->()",
    "slogdet": "(n,n)->(),()",
    "inv": "(n,n)->(n,n)",
    "cholesky": "(n,n)->(n,n)",
    "eigh": "(n,n)->(n),(n,n)",
    "solve": "(n,n),(n,k)->(n,k)",
    "svd": "(m,n)->(m,k),(k),(k,n)",
    "qr": "(m,n)->(m,k),(k,n)",
}


def linalg(xp: Any, name: str, *arrays: Any, **kwargs: Any) -> Any:
    """``xp.linalg.<name>(*arrays, **kwargs)``; for Dask arrays NumPy's function over each
    matrix of the stack (see the module)."""
    if not any(is_dask(a) for a in arrays):
        return getattr(xp.linalg, name)(*arrays, **kwargs)
    import dask.array as da

    # each matrix (or vector) in one block, so that NumPy's function sees it whole; with two
    # inputs (solve), their stacks in one block too: Dask wants their loop axes blocked alike
    arrays = tuple(da.asarray(a) for a in arrays)
    if len(arrays) > 1:
        arrays = tuple(a.rechunk(-1) for a in arrays)
    arrays = tuple(a.rechunk({d: -1 for d in range(max(0, a.ndim - 2), a.ndim)}) for a in arrays)
    numpy_fn = getattr(np.linalg, name)
    signature = _SIGNATURES[name]
    if name == "solve" and arrays[1].ndim == 1:  # (NumPy 2: b is a vector only when 1-D)
        signature = "(n,n),(n)->(n)"
    outputs = signature.split("->")[1].count("(")
    dtype = np.result_type(*(a.dtype for a in arrays))
    sizes = {}
    if "k" in signature and name in ("svd", "qr"):
        m, n = arrays[0].shape[-2:]
        sizes["k"] = min(m, n)

    def fn(*blocks: Any) -> Any:
        result = numpy_fn(*blocks, **kwargs)
        return tuple(result) if outputs > 1 else result

    return da.apply_gufunc(
        fn, signature, *arrays,
        output_dtypes=[dtype] * outputs if outputs > 1 else dtype,
        output_sizes=sizes or None,
    )  # fmt: skip
