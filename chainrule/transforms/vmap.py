"""``cr.vmap(f)``: ``f`` written for one example, run on a whole batch at once.

Each mapped argument enters ``f`` as a :class:`~chainrule.backends.batched.Batched` array
(inside a Tensor, for a Tensor argument): it answers as one example (its shape, its axes, its
indexing), and every NumPy call on it runs once over the batch by that function's batching
rule. Since the batching happens below the Tensors, the op sheet's forwards, VJP and
JVP rules all batch, so vmap composes with every transform:

- ``cr.vmap(cr.grad(loss), in_axes=(None, 0, 0))(w, x, y)``: per-example gradients, one
  backward pass for the batch (a backward pass inside vmap keeps the examples apart);
- ``cr.grad(lambda w: cr.vmap(f, in_axes=(None, 0))(w, xs).sum())``: the batch is summed
  where it meets the shared ``w``, as broadcasting is;
- ``cr.vmap(cr.vmap(f))``, ``cr.vmap(cr.jacobian(f))``, ``cr.jvp`` of a vmapped function.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..backends.batched import Batched, at_level, promote
from ..engine.modes import state
from ..engine.tensor import Tensor
from ..ops.batching import batch, unbatch
from . import tree

__all__ = ["vmap"]

# Levels are numbered in the order they open, process-wide, so that a batch never mistakes
# another for itself and the innermost is unwrapped first.
_next_level: Callable[[], int] = itertools.count().__next__


def vmap(f: Callable[..., Any], in_axes: Any = 0, out_axes: Any = 0) -> Callable[..., Any]:
    """Vectorise ``f`` over a batch axis: ``vmap(f)(xs)[i] == f(xs[i])``, computed in one go.

    Parameters
    ----------
    f : function of arrays or Tensors (containers of them too), written for one example.
    in_axes : int, None, or one entry per positional argument (an int, None, or a container
        of them shaped like that argument): the axis of each argument that holds the batch;
        None passes the argument to every example as it is. Keyword arguments are passed as
        they are.
    out_axes : int, None or a container shaped like the result: where the batch axis goes in
        each output. An output that does not depend on the batch is repeated along it
        (None: returned once; it must not depend on the batch).

    Every NumPy function with a batching rule runs once for the whole batch (elementwise
    operations, reductions, matmul, indexing, shapes, linear algebra); the rest run once per
    example and are stacked. Python control flow on a batched value (``if x > 0``) raises:
    use ``cr.where``.

    >>> import chainrule as cr, numpy as np
    >>> w, xs = np.array([1.0, 2.0]), np.array([[1.0, 1.0], [3.0, -1.0], [0.5, 0.0]])
    >>> cr.vmap(lambda x: np.dot(x, w))(xs)  # one dot product per row
    array([3. , 1. , 0.5])
    >>> loss = lambda w, x: np.tanh(x @ w) ** 2
    >>> per_example = cr.vmap(cr.grad(loss), in_axes=(None, 0))(w, xs)
    >>> per_example.shape, np.allclose(per_example[1], cr.grad(loss)(w, xs[1]))
    ((3, 2), True)
    """

    @functools.wraps(f)
    def batched(*args: Any, **kwargs: Any) -> Any:
        leaves, structure = tree.flatten(list(args))
        axes = _leaf_axes(in_axes, args, "in_axes")
        size = _batch_size(leaves, axes)
        level = _next_level()
        plain = not any(isinstance(v, Tensor) for v in leaves)
        inputs = [_enter(v, a, level, size) for v, a in zip(leaves, axes)]
        with _running(level):
            out = f(*tree.unflatten(structure, inputs), **kwargs)
        results, out_structure = tree.flatten(out)
        out_leaf_axes = _leaf_axes(out_axes, out, "out_axes", single=True)
        done = [_leave(v, a, level, size, plain) for v, a in zip(results, out_leaf_axes)]
        return tree.unflatten(out_structure, done)

    return batched


@contextmanager
def _running(level: int) -> Any:
    state.vmap_levels.append(level)
    try:
        yield
    finally:
        state.vmap_levels.remove(level)


def _leaf_axes(spec: Any, values: Any, name: str, single: bool = False) -> list[Any]:
    """One axis (int or None) per leaf of ``values``, from a spec that is one axis for all,
    or a container matching ``values`` down to where it gives one axis for a whole subtree."""
    if spec is None or isinstance(spec, int):
        return [spec] * len(tree.leaves(values))
    if single and not isinstance(values, (list, tuple, dict)):
        raise ValueError(f"vmap: {name}={spec!r} is a container but the result is one value")
    if isinstance(values, dict):
        if not isinstance(spec, dict) or set(spec) != set(values):
            raise ValueError(f"vmap: {name}={spec!r} does not match the keys {sorted(values)}")
        return [a for k in values for a in _leaf_axes(spec[k], values[k], name)]
    if isinstance(values, (list, tuple)):
        if not isinstance(spec, (list, tuple)) or len(spec) != len(values):
            count = len(values)
            raise ValueError(
                f"vmap: {name}={spec!r} must be one int or None, or have one entry per "
                f"{'argument' if name == 'in_axes' else 'output'} ({count})"
            )
        return [a for s, v in zip(spec, values) for a in _leaf_axes(s, v, name)]
    raise ValueError(f"vmap: {name}={spec!r} gives a container for a single value {values!r}")


def _batch_size(leaves: list[Any], axes: list[Any]) -> int:
    sizes = {}
    for i, (v, a) in enumerate(zip(leaves, axes)):
        if a is None:
            continue
        shape = tuple(np.shape(v._data if isinstance(v, Tensor) else v))
        if not -len(shape) <= a < max(len(shape), 1) or not shape:
            raise ValueError(
                f"vmap: in_axes gives axis {a} for argument leaf {i} of shape {shape}, which "
                "has no such axis; use None for an argument that is not batched"
            )
        sizes[i] = shape[a]
    if not sizes:
        raise ValueError("vmap: no argument is mapped (every in_axes is None); map at least one")
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"leaf {i}: {n}" for i, n in sizes.items())
        raise ValueError(f"vmap: the mapped axes have different sizes ({listed}); they must match")
    return next(iter(sizes.values()))


def _enter(value: Any, axis: Any, level: int, size: int) -> Any:
    if axis is None:
        return value
    data = value._data if isinstance(value, Tensor) else value
    if not isinstance(data, (np.ndarray, np.generic, Batched, int, float, list, tuple)):
        kind = type(data).__module__.split(".")[0]
        raise TypeError(
            f"vmap: a batch is made of NumPy arrays, and this argument is a {kind} array "
            f"({type(data).__name__}); convert it with np.asarray, or map over it yourself"
        )
    if isinstance(value, Tensor):
        return batch(value, axis=axis, level=level, size=size)  # recorded: gradients flow back
    # an array stays an array (a batch of them): NumPy functions, chainrule's functions and
    # transforms inside f take it as they take one example
    return batch(_array(value), axis=axis, level=level, size=size)


def _leave(value: Any, axis: Any, level: int, size: int, plain: bool) -> Any:
    data = value._data if isinstance(value, Tensor) else value
    batched = _has_level(data, level)
    if axis is None:
        if batched:
            raise ValueError(
                "vmap: out_axes=None for an output that differs between examples; give it "
                "an axis (out_axes=0)"
            )
        return value
    if isinstance(value, Tensor):
        out = unbatch(value, axis=axis, level=level, size=size)
        return out._data if plain and not out.requires_grad else out
    if not batched:
        value = promote(_array(value), level, size)
    return unbatch(value, axis=axis, level=level, size=size)


def _array(value: Any) -> Any:
    return value if isinstance(value, Batched) else np.asarray(value)


def _has_level(data: Any, level: int) -> bool:
    while isinstance(data, Batched):
        if at_level(data, level):
            return True
        data = data.value
    return False
