"""Sliding windows: ``unfold`` (im2col) and its transpose ``fold`` (col2im).

``unfold(x)`` lays out every window a kernel sees, for inputs ``(N, C, *spatial)`` (1, 2 or 3
spatial axes), as ``(C, *kernel, N, *out)``: entry ``[c, i, j, n, p, q]`` is
``x_padded[n, c, p * stride + i * dilation, q * stride + j * dilation]``. Convolution is then
one matrix product of the weights ``(C_out, C * kernel)`` with the windows ``(C * kernel, N *
out)`` (one large BLAS call: 3-5x faster than one per sample), max pooling a max over the
kernel axes and average pooling a mean: their derivatives come from ``matmul``, ``max`` and
``mean`` by the chain rule, and the only new rules are these two. Both are linear and each is
the other's transpose, so each one's VJP is the other and its JVP is itself: gradients of any
order.

The windows are a strided view of the padded input (``sliding_window_view``), copied once into
the layout above; ``fold`` adds the windows back, one strided slice per kernel offset (9 for a
3 x 3 kernel), so neither loops over positions in Python.
"""

from __future__ import annotations

import itertools
from functools import partial
from typing import Any

import numpy as np

from ..backends import from_host, gaps, to_host
from ..engine.declare import family
from ..engine.op import Op

__all__ = ["unfold", "fold", "window_geometry"]

defop = family("conv")


def window_geometry(
    spatial: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[tuple[int, int], ...],
    dilation: tuple[int, ...],
    name: str = "unfold",
) -> tuple[int, ...]:
    """The number of window positions along each spatial axis; a clear error where the
    kernel (dilated) does not fit in the padded input."""
    out = []
    for axis, (n, k, s, (lo, hi), d) in enumerate(zip(spatial, kernel, stride, padding, dilation)):
        extent = d * (k - 1) + 1
        size = n + lo + hi
        if size < extent:
            raise ValueError(
                f"{name}: the kernel ({k}, dilation {d}: {extent} wide) is larger than the "
                f"padded input along spatial axis {axis} ({n} + padding {lo}+{hi} = {size}); "
                "use a smaller kernel or more padding"
            )
        out.append((size - extent) // s + 1)
    return tuple(out)


def _unfold_forward(
    xp: Any,
    x: Any,
    *,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[tuple[int, int], ...],
    dilation: tuple[int, ...],
) -> Any:
    d = len(kernel)
    if gaps.is_dask(x):  # each block of samples in NumPy (lazy)
        c = x.shape[1]
        positions = window_geometry(tuple(x.shape[2:]), kernel, stride, padding, dilation)
        block = partial(_unfold_forward, np, kernel=kernel, stride=stride, padding=padding,
                        dilation=dilation)  # fmt: skip
        return gaps.over_blocks(block, x, 0, 1 + d, lambda n: (c, *kernel, n, *positions))
    host = to_host(x)  # NumPy's strided views (other namespaces go through the host and back)
    window_geometry(tuple(host.shape[2:]), kernel, stride, padding, dilation)
    padded = np.pad(host, ((0, 0), (0, 0), *padding)) if any(map(any, padding)) else host
    extents = tuple(di * (k - 1) + 1 for k, di in zip(kernel, dilation))
    axes = tuple(range(2, 2 + d))
    windows = np.lib.stride_tricks.sliding_window_view(padded, extents, axis=axes)
    # windows: (N, C, *positions, *extents) -> strided positions, dilated kernel taps
    index = (slice(None), slice(None), *(slice(None, None, s) for s in stride))
    index += tuple(slice(None, None, di) for di in dilation)
    windows = windows[index]
    order = (1, *range(2 + d, 2 + 2 * d), 0, *range(2, 2 + d))  # (C, *kernel, N, *out)
    return from_host(xp, np.transpose(windows, order).copy())  # (C order: the one copy)


def _fold_forward(
    xp: Any,
    cols: Any,
    *,
    size: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[tuple[int, int], ...],
    dilation: tuple[int, ...],
) -> Any:
    d = len(kernel)
    if gaps.is_dask(cols):  # each block of samples in NumPy (lazy)
        c = cols.shape[0]
        block = partial(_fold_forward, np, size=size, kernel=kernel, stride=stride,
                        padding=padding, dilation=dilation)  # fmt: skip
        return gaps.over_blocks(block, cols, 1 + d, 0, lambda n: (n, c, *size))
    host = to_host(cols)
    c, n = host.shape[0], host.shape[1 + d]
    out_shape = host.shape[2 + d :]
    shape = (c, n, *(m + lo + hi for m, (lo, hi) in zip(size, padding)))
    padded = np.zeros_like(host, shape=shape)  # (C, N, ...): (a batch of them inside cr.vmap)
    for taps in itertools.product(*(range(k) for k in kernel)):
        place = tuple(
            slice(t * di, t * di + s * (o - 1) + 1, s)
            for t, di, s, o in zip(taps, dilation, stride, out_shape)
        )
        padded[(slice(None), slice(None), *place)] += host[(slice(None), *taps)]
    crop = tuple(slice(lo, lo + m) for m, (lo, _) in zip(size, padding))
    return from_host(xp, np.swapaxes(padded[(slice(None), slice(None), *crop)], 0, 1))


# Each is linear and the other's transpose: the VJP of one is the other, the JVP itself.
# fmt: off
unfold: Op = defop("unfold", _unfold_forward,
    "The windows a kernel sees, (N, C, *spatial) -> (C, *kernel, N, *positions) (im2col).",
    numpy=(),
    dx=(lambda g, out, x, kernel, stride, padding, dilation: fold(
            g, size=tuple(x.shape[2:]), kernel=kernel, stride=stride, padding=padding,
            dilation=dilation),
        "d unfold(x)/dx: each window's gradient added back where it was read (fold)"),
    tx=lambda t, out, x, kernel, stride, padding, dilation: unfold(
        t, kernel=kernel, stride=stride, padding=padding, dilation=dilation))

fold: Op = defop("fold", _fold_forward,
    "Windows added back into an array of the given spatial size (col2im): unfold's transpose.",
    numpy=(),
    dcols=(lambda g, out, cols, size, kernel, stride, padding, dilation: unfold(
            g, kernel=kernel, stride=stride, padding=padding, dilation=dilation),
        "d fold(c)/dc: the gradient's windows (unfold)"),
    tcols=lambda t, out, cols, size, kernel, stride, padding, dilation: fold(
        t, size=size, kernel=kernel, stride=stride, padding=padding, dilation=dilation))
# fmt: on
