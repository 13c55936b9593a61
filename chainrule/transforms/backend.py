"""Moving tensors and models between backends (``cr.to``), and computing lazy values
(``cr.compute``).

>>> import chainrule as cr
>>> x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> y = cr.to(x, "numpy")          # already there: the same tensor
>>> y is x
True

On Dask, building a loss and running ``backward()`` compute nothing: the values and the
gradients are task graphs. ``cr.compute(loss, model)`` runs them in one ``dask.compute``,
so the forward pass and every gradient of a step share one pass over the data (see
``docs/scaling.md``).
"""

from __future__ import annotations

from typing import Any

from ..backends.devices import backend_of, check_backend, convert
from ..backends.devices import compute as compute_arrays
from ..engine.tensor import Tensor
from .function import Function

__all__ = ["to", "compute"]


class _Move(Function):
    """The identity, across backends: the gradient goes back to the input's backend (and,
    from Dask, to its chunks)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, backend: str, chunks: Any = None) -> Tensor:
        data = x._data
        ctx.source = backend_of(data)
        ctx.backend = backend
        ctx.chunks = getattr(data, "chunks", None) if ctx.source == "dask" else None
        return Tensor(convert(data, backend, chunks))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        if grad.requires_grad:  # (create_graph: the move recorded too)
            return _Move.apply(grad, backend=ctx.source, chunks=ctx.chunks)
        return Tensor(convert(grad._data, ctx.source, ctx.chunks))

    @staticmethod
    def jvp(ctx: Any, tangent: Tensor) -> Tensor:
        return Tensor(convert(tangent._data, ctx.backend))


def to(value: Any, backend: str, chunks: Any = None) -> Any:
    """``value`` with its arrays on ``backend``: ``"numpy"``, ``"cupy"`` or ``"dask"``.

    - a Tensor: a new Tensor on ``backend`` (the same one where it is already there and no
      ``chunks`` are given). The move is differentiable: the gradient flows back to the
      original tensor, moved back to its backend, as PyTorch's ``tensor.to(device)``;
    - a Module: moved in place (``module.to(backend)``) and returned;
    - a list, tuple or dict: each entry moved.

    ``chunks`` is Dask's chunking for ``"dask"`` (``"auto"`` where not given; ``(10_000,
    -1)`` splits the rows of a matrix in blocks of 10,000). Moving off Dask computes.
    """
    check_backend(backend, "cr.to")
    if isinstance(value, Tensor):
        if backend_of(value._data) == backend and chunks is None:
            return value
        return _Move.apply(value, backend=backend, chunks=chunks)
    if hasattr(value, "named_parameters") and hasattr(value, "to"):  # a Module
        return value.to(backend, chunks=chunks)
    if isinstance(value, (list, tuple)):
        return type(value)(to(v, backend, chunks) for v in value)
    if isinstance(value, dict):
        return {k: to(v, backend, chunks) for k, v in value.items()}
    raise TypeError(
        f"cr.to: expected a Tensor, a Module, or a list, tuple or dict of them, got "
        f"{type(value).__name__}; for an array use cr.tensor(array) first"
    )


def compute(*values: Any) -> Any:
    """Compute the lazy (Dask) values of tensors, all in one ``dask.compute``, in place.

    Each value is a Tensor (its value, and its ``.grad`` where that is lazy too) or a Module
    (each parameter's gradient: the step's results; parameters that live on Dask stay there,
    and an optimizer step persists them). After the call those arrays are NumPy's (CuPy's for
    a Dask array of CuPy blocks), so ``.item()``, ``.numpy()`` and an optimizer step cost no
    further pass. Tensors that are not lazy are left as they are. Returns what it was given
    (one value, or a tuple of them).

    >>> import chainrule as cr
    >>> w = cr.tensor([1.0, 2.0], requires_grad=True)
    >>> (w * w).sum().backward()
    >>> cr.compute(w) is w             # nothing lazy: nothing to do
    True
    """
    wanted: list[Any] = []
    for value in values:
        if isinstance(value, Tensor):
            wanted += [value, value._grad]
        elif hasattr(value, "named_parameters"):  # a Module
            wanted += [p._grad for _, p in value.named_parameters()]
        else:
            raise TypeError(f"cr.compute: expected Tensors or Modules, got {type(value).__name__}")
    holders = list({id(t): t for t in wanted if isinstance(t, Tensor)}.values())
    lazy = [t for t in holders if backend_of(t._data) == "dask"]
    for t, value in zip(lazy, compute_arrays([t._data for t in lazy])):
        t._data = value  # (the same values, computed: no version bump)
    return values[0] if len(values) == 1 else values
