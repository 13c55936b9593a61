"""Convolution and pooling as functions (``cr.nn.functional.conv2d``, ``max_pool1d``, ...), with
PyTorch's arguments and layouts: inputs ``(N, C, *spatial)`` (or one sample ``(C,
*spatial)``), weights ``(out_channels, in_channels / groups, *kernel)``.

Each is built on the op sheet's ``unfold`` (the windows, :mod:`chainrule.ops.conv`):
convolution is one matrix product of the windows with the weights, max pooling a max over the
kernel axes, average pooling a mean; adaptive average pooling multiplies by averaging matrices.
So every derivative, of any order, comes from the table's rules.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import ops
from ..backends import namespace
from ..engine.tensor import Tensor
from ..ops.conv import fold, unfold, window_geometry

__all__ = [
    "conv1d",
    "conv2d",
    "conv_transpose1d",
    "conv_transpose2d",
    "max_pool1d",
    "max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "flatten",
    "unflatten",
]


def _tuple(value: Any, d: int, what: str, minimum: int = 1) -> tuple[int, ...]:
    """An int or d ints (PyTorch's kernel_size, stride, dilation) as d ints >= minimum."""
    values = (value,) * d if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) != d or not all(isinstance(v, (int, np.integer)) for v in values):
        raise ValueError(f"{what} must be an int or {d} ints, got {value!r}")
    if any(v < minimum for v in values):
        raise ValueError(f"{what} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in values)


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(x.shape)


def _batched(x: Any, d: int, name: str) -> tuple[Any, bool]:
    """``x`` as (N, C, *spatial), and whether it was one sample (C, *spatial)."""
    ndim = len(_shape(x))
    if ndim == d + 1:
        return ops.expand_dims(x, axis=0), True
    if ndim != d + 2:
        raise ValueError(
            f"{name}: expected input of shape (N, C{', L' if d == 1 else ', H, W'}) or "
            f"(C{', L' if d == 1 else ', H, W'}), got {_shape(x)}"
        )
    return x, False


def _padding(
    padding: Any, d: int, kernel: tuple[int, ...], dilation: tuple[int, ...], stride: Any, name: str
) -> tuple[tuple[int, int], ...]:
    """PyTorch's padding (an int, d ints, "valid" or "same") as (before, after) per axis."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * d
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{name}: padding='same' needs stride 1, got stride {stride}")
            total = [di * (k - 1) for k, di in zip(kernel, dilation)]
            return tuple((t // 2, t - t // 2) for t in total)  # the extra one after, as PyTorch
        raise ValueError(
            f"{name}: padding must be an int, ints, 'valid' or 'same', got {padding!r}"
        )
    pads = _tuple(padding, d, f"{name}: padding", minimum=0)
    return tuple((p, p) for p in pads)


def _conv(
    x: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: int,
    d: int,
    name: str,
) -> Any:
    x, single = _batched(x, d, name)
    w_shape = _shape(weight)
    if len(w_shape) != d + 2:
        raise ValueError(f"{name}: weight must be (out, in / groups, *kernel), got {w_shape}")
    n, c = _shape(x)[:2]
    out_channels, per_group = w_shape[:2]
    kernel = w_shape[2:]
    if groups < 1 or c % groups or out_channels % groups:
        raise ValueError(
            f"{name}: groups={groups} must divide in_channels ({c}) and out_channels "
            f"({out_channels})"
        )
    if per_group * groups != c:
        raise ValueError(
            f"{name}: the input has {c} channels but the weight {w_shape} expects "
            f"{per_group * groups} ({per_group} per group x {groups} groups)"
        )
    stride_ = _tuple(stride, d, f"{name}: stride")
    dilation_ = _tuple(dilation, d, f"{name}: dilation")
    pads = _padding(padding, d, kernel, dilation_, stride_, name)
    out_size = window_geometry(_shape(x)[2:], kernel, stride_, pads, dilation_, name)
    cols = unfold(x, kernel=kernel, stride=stride_, padding=pads, dilation=dilation_)
    taps = per_group * math.prod(kernel)
    # one matrix product per group: (C_out / g, C / g * kernel) @ (C / g * kernel, N * out)
    cols = ops.reshape(cols, shape=(groups, taps, n * math.prod(out_size)))
    w = ops.reshape(weight, shape=(groups, out_channels // groups, taps))
    out = ops.reshape(ops.matmul(w, cols), shape=(out_channels, n, *out_size))
    out = ops.transpose(out, (1, 0, *range(2, 2 + d)))  # (N, C_out, *out)
    if bias is not None:
        out = out + ops.reshape(bias, shape=(out_channels,) + (1,) * d)
    return out[0] if single else out


def conv1d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Any:
    """1-D convolution (cross-correlation, as PyTorch): input (N, C_in, L), weight
    (C_out, C_in / groups, k); padding an int, "valid" or "same".

    >>> import chainrule as cr, numpy as np
    >>> x = cr.tensor(np.arange(5.0).reshape(1, 1, 5))
    >>> cr.nn.functional.conv1d(x, cr.tensor([[[1.0, -1.0]]])).tolist()  # x[i] - x[i+1]
    [[[-1.0, -1.0, -1.0, -1.0]]]
    """
    return _conv(input, weight, bias, stride, padding, dilation, groups, 1, "conv1d")


def conv2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Any:
    """2-D convolution (cross-correlation, as PyTorch): input (N, C_in, H, W), weight
    (C_out, C_in / groups, kh, kw)."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 2, "conv2d")


def _pool_windows(
    x: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any, d: int, name: str,
    fill: float,
) -> tuple[Any, bool, tuple[int, ...]]:  # fmt: skip
    x, single = _batched(x, d, name)
    kernel = _tuple(kernel_size, d, f"{name}: kernel_size")
    stride_ = kernel if stride is None else _tuple(stride, d, f"{name}: stride")
    dilation_ = _tuple(dilation, d, f"{name}: dilation")
    pads = _tuple(padding, d, f"{name}: padding", minimum=0)
    if any(2 * p > k for p, k in zip(pads, kernel)):
        raise ValueError(
            f"{name}: padding {pads} must be at most half the kernel size {kernel} (as PyTorch)"
        )
    if fill and any(pads):  # max pooling pads with -inf: a padded place is never the max
        widths = ((0, 0), (0, 0), *((p, p) for p in pads))
        x = ops.pad(x, widths, constant_values=fill)
        pads = (0,) * d
    cols = unfold(
        x, kernel=kernel, stride=stride_, padding=tuple((p, p) for p in pads), dilation=dilation_
    )
    return cols, single, kernel


def _channels_second(x: Any) -> Any:
    """(C, N, *out), what a reduction over the kernel axes leaves, as (N, C, *out)."""
    return ops.transpose(x, (1, 0, *range(2, len(_shape(x)))))


def _check_ceil(ceil_mode: bool, name: str) -> None:
    if ceil_mode:
        raise ValueError(f"{name}: ceil_mode=True is not supported; pad the input instead")


def max_pool1d(
    input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
    ceil_mode: bool = False,
) -> Any:  # fmt: skip
    """The max of each window (stride defaults to the kernel size; padding counts as -inf).
    Where several entries tie for a window's max, the gradient is shared among them."""
    _check_ceil(ceil_mode, "max_pool1d")
    cols, single, _ = _pool_windows(
        input, kernel_size, stride, padding, dilation, 1, "max_pool1d", -math.inf
    )
    out = _channels_second(ops.max(cols, axis=1))
    return out[0] if single else out


def max_pool2d(
    input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
    ceil_mode: bool = False,
) -> Any:  # fmt: skip
    """The max of each window of (N, C, H, W) (stride defaults to the kernel size)."""
    _check_ceil(ceil_mode, "max_pool2d")
    cols, single, _ = _pool_windows(
        input, kernel_size, stride, padding, dilation, 2, "max_pool2d", -math.inf
    )
    out = _channels_second(ops.max(cols, axis=(1, 2)))
    return out[0] if single else out


def _avg_pool(
    input: Any, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool,
    count_include_pad: bool, divisor_override: Any, d: int, name: str,
) -> Any:  # fmt: skip
    _check_ceil(ceil_mode, name)
    cols, single, kernel = _pool_windows(input, kernel_size, stride, padding, 1, d, name, 0.0)
    axes = tuple(range(1, 1 + d))  # the kernel's axes of (C, *kernel, N, *out)
    total = _channels_second(ops.sum(cols, axis=axes))
    if divisor_override is not None:
        if divisor_override <= 0:
            raise ValueError(f"{name}: divisor_override must be > 0, got {divisor_override}")
        out = total / float(divisor_override)
    elif count_include_pad or not any(_tuple(padding, d, f"{name}: padding", minimum=0)):
        out = total / float(math.prod(kernel))
    else:  # the mean of the entries inside the input: count them with a window of ones
        spatial = _shape(cols)[2 + d :]
        x_shape = _shape(input)[-d:]
        ones = namespace(getattr(input, "_data", input)).ones((1, 1, *x_shape))
        counted, _, _ = _pool_windows(ones, kernel_size, stride, padding, 1, d, name, 0.0)
        counts = ops.sum(counted, axis=axes)
        out = total / ops.reshape(counts, shape=(1, 1, *spatial))
    return out[0] if single else out


def avg_pool1d(
    input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Any:  # fmt: skip
    """The mean of each window (zero padding counted, unless ``count_include_pad=False``)."""
    return _avg_pool(
        input, kernel_size, stride, padding, ceil_mode, count_include_pad, None, 1, "avg_pool1d"
    )


def avg_pool2d(
    input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
    count_include_pad: bool = True, divisor_override: Any = None,
) -> Any:  # fmt: skip
    """The mean of each window of (N, C, H, W)."""
    return _avg_pool(
        input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, 2,
        "avg_pool2d",
    )  # fmt: skip


def _averaging(n_in: int, n_out: int, dtype: Any) -> np.ndarray:
    """The (n_out, n_in) matrix of adaptive average pooling: row i averages entries
    floor(i n_in / n_out) to ceil((i + 1) n_in / n_out), as PyTorch splits them."""
    m = np.zeros((n_out, n_in), dtype=dtype)
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def _adaptive(input: Any, output_size: Any, d: int, name: str) -> Any:
    x, single = _batched(input, d, name)
    sizes = (output_size,) * d if isinstance(output_size, (int, type(None))) else output_size
    if len(sizes) != d:
        raise ValueError(f"{name}: output_size must be an int or {d} ints, got {output_size!r}")
    spatial = _shape(x)[2:]
    dtype = getattr(x, "dtype", np.float64)
    for axis, (n_in, n_out) in enumerate(zip(spatial, sizes)):
        n_out = n_in if n_out is None else int(n_out)
        if n_out < 1:
            raise ValueError(f"{name}: output_size must be >= 1, got {output_size!r}")
        m = Tensor(_averaging(n_in, n_out, dtype))
        if axis == d - 1:  # the last axis: x @ M^T
            x = ops.matmul(x, ops.matrix_transpose(m))
        else:  # the one before (2-D): M @ x over the last two axes
            x = ops.matmul(m, x)
    return x[0] if single else x


def adaptive_avg_pool1d(input: Any, output_size: Any) -> Any:
    """Average pooling to a given length, windows as PyTorch chooses them."""
    return _adaptive(input, output_size, 1, "adaptive_avg_pool1d")


def adaptive_avg_pool2d(input: Any, output_size: Any) -> Any:
    """Average pooling to a given (H, W) (None keeps that size)."""
    return _adaptive(input, output_size, 2, "adaptive_avg_pool2d")


def flatten(input: Any, start_dim: int = 0, end_dim: int = -1) -> Any:
    """Merge the axes from ``start_dim`` to ``end_dim`` into one."""
    shape = _shape(input)
    n = len(shape)
    start, end = start_dim % max(n, 1), end_dim % max(n, 1)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    merged = math.prod(shape[start : end + 1])
    return ops.reshape(input, shape=(*shape[:start], merged, *shape[end + 1 :]))


def unflatten(input: Any, dim: int, sizes: Any) -> Any:
    """Split axis ``dim`` into ``sizes`` (one of them may be -1)."""
    shape = _shape(input)
    dim %= len(shape)
    return ops.reshape(input, shape=(*shape[:dim], *sizes, *shape[dim + 1 :]))


def _conv_transpose(
    x: Any, weight: Any, bias: Any, stride: Any, padding: Any, output_padding: Any,
    groups: int, dilation: Any, d: int, name: str,
) -> Any:  # fmt: skip
    """The transpose of a convolution (its gradient with respect to the input): each input
    entry scatters the kernel, times itself, into the output, through the op sheet's fold."""
    x, single = _batched(x, d, name)
    n, c = _shape(x)[:2]
    w_shape = _shape(weight)
    if len(w_shape) != d + 2:
        raise ValueError(f"{name}: weight must be (in, out / groups, *kernel), got {w_shape}")
    kernel = w_shape[2:]
    if groups < 1 or c % groups or w_shape[0] != c:
        raise ValueError(
            f"{name}: the input has {c} channels but the weight {w_shape} expects {w_shape[0]}, "
            f"in {groups} group(s)"
        )
    out_channels = w_shape[1] * groups
    stride_ = _tuple(stride, d, f"{name}: stride")
    dilation_ = _tuple(dilation, d, f"{name}: dilation")
    pads = _tuple(padding, d, f"{name}: padding", minimum=0)
    extra = _tuple(output_padding, d, f"{name}: output_padding", minimum=0)
    if any(e >= max(s, di) for e, s, di in zip(extra, stride_, dilation_)):
        raise ValueError(
            f"{name}: output_padding {extra} must be smaller than the stride or the dilation"
        )
    spatial = _shape(x)[2:]
    size = tuple(
        (m - 1) * s - 2 * p + di * (k - 1) + 1 + e
        for m, s, p, di, k, e in zip(spatial, stride_, pads, dilation_, kernel, extra)
    )
    if any(m < 1 for m in size):
        raise ValueError(f"{name}: the padding {pads} leaves no output for input {spatial}")
    per_group, taps = c // groups, w_shape[1] * math.prod(kernel)
    positions = n * math.prod(spatial)
    xs = ops.reshape(
        ops.transpose(x, (1, 0, *range(2, 2 + d))), shape=(groups, per_group, positions)
    )
    w = ops.reshape(weight, shape=(groups, per_group, taps))
    cols = ops.matmul(ops.matrix_transpose(w), xs)  # (groups, C_out / g * kernel, N * in)
    cols = ops.reshape(cols, shape=(out_channels, *kernel, n, *spatial))
    out = fold(
        cols, size=size, kernel=kernel, stride=stride_,
        padding=tuple((p, p) for p in pads), dilation=dilation_,
    )  # fmt: skip
    if bias is not None:
        out = out + ops.reshape(bias, shape=(out_channels,) + (1,) * d)
    return out[0] if single else out


def conv_transpose1d(
    input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
    output_padding: Any = 0, groups: int = 1, dilation: Any = 1,
) -> Any:  # fmt: skip
    """The transpose of conv1d (PyTorch's argument order): weight (C_in, C_out / groups, k);
    the output length is (L - 1) stride - 2 padding + dilation (k - 1) + 1 + output_padding."""
    return _conv_transpose(
        input, weight, bias, stride, padding, output_padding, groups, dilation, 1,
        "conv_transpose1d",
    )  # fmt: skip


def conv_transpose2d(
    input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
    output_padding: Any = 0, groups: int = 1, dilation: Any = 1,
) -> Any:  # fmt: skip
    """The transpose of conv2d: weight (C_in, C_out / groups, kh, kw) (an upsampling layer)."""
    return _conv_transpose(
        input, weight, bias, stride, padding, output_padding, groups, dilation, 2,
        "conv_transpose2d",
    )  # fmt: skip
