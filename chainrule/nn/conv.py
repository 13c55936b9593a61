"""Convolution and pooling layers (``Conv1d``, ``Conv2d``, ``MaxPool1d/2d``, ``AvgPool1d/2d``,
``AdaptiveAvgPool1d/2d``) and ``Flatten``/``Unflatten``, with PyTorch's names, arguments,
weight layouts and initialisation, so that a ``state_dict`` moves between the two by name."""

from __future__ import annotations

import math
from typing import Any

from . import init as _init
from . import windows as W
from .module import Module, Parameter

__all__ = [
    "Conv1d",
    "Conv2d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "MaxPool1d",
    "MaxPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "Flatten",
    "Unflatten",
]


def _check_channels(name: str, in_channels: int, out_channels: int, groups: int) -> None:
    if in_channels < 1 or out_channels < 1:
        raise ValueError(
            f"{name}: in_channels and out_channels must be >= 1, got {in_channels} and "
            f"{out_channels}"
        )
    if groups < 1 or in_channels % groups or out_channels % groups:
        raise ValueError(
            f"{name}: groups={groups} must divide in_channels ({in_channels}) and "
            f"out_channels ({out_channels})"
        )


def _parameters(
    shape: tuple[int, ...], out_channels: int, bias: bool, rng: Any, dtype: Any
) -> tuple[Parameter, Parameter | None]:
    """A convolution's weight of ``shape`` and its bias, initialised as PyTorch does:
    kaiming_uniform(a=sqrt(5)), which is U(+-1/sqrt(fan_in)), fan_in read off the weight's
    axis 1 and the kernel (for a transposed convolution, the output channels per group), and
    the bias uniform on the same bound."""
    bound = 1.0 / math.sqrt(shape[1] * math.prod(shape[2:]))
    gen = _init.generator(rng)
    weight = Parameter(_init.uniform(shape, bound, gen, dtype))
    return weight, Parameter(_init.uniform((out_channels,), bound, gen, dtype)) if bias else None


class _ConvNd(Module):
    _d = 0
    _fn: Any = None

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        rng: Any = None,
        dtype: Any = "float64",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        _check_channels(name, in_channels, out_channels, groups)
        if padding_mode != "zeros":
            raise ValueError(
                f"{name}: only padding_mode='zeros' is supported, got {padding_mode!r}"
            )
        self.kernel_size = W._tuple(kernel_size, self._d, f"{name}: kernel_size")
        self.stride = W._tuple(stride, self._d, f"{name}: stride")
        self.dilation = W._tuple(dilation, self._d, f"{name}: dilation")
        W._padding(padding, self._d, self.kernel_size, self.dilation, self.stride, name)  # check
        self.padding = padding
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight, self.bias = _parameters(shape, out_channels, bias, rng, dtype)

    def forward(self, x: Any) -> Any:
        return type(self)._fn(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
            + (f", dilation={self.dilation}" if any(d != 1 for d in self.dilation) else "")
            + (f", groups={self.groups}" if self.groups != 1 else "")
            + (", bias=False" if self.bias is None else "")
        )


class Conv1d(_ConvNd):
    """1-D convolution over (N, C_in, L): weight (C_out, C_in / groups, k).

    >>> import chainrule as cr
    >>> conv = cr.nn.Conv1d(1, 4, kernel_size=5, padding="same", rng=0)
    >>> conv(cr.zeros((8, 1, 40))).shape
    (8, 4, 40)
    """

    _d = 1
    _fn = staticmethod(W.conv1d)


class Conv2d(_ConvNd):
    """2-D convolution over (N, C_in, H, W): weight (C_out, C_in / groups, kh, kw).

    >>> import chainrule as cr
    >>> conv = cr.nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1, rng=0)
    >>> conv(cr.zeros((2, 3, 28, 28))).shape
    (2, 8, 14, 14)
    """

    _d = 2
    _fn = staticmethod(W.conv2d)


class _Pool(Module):
    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, **kw: Any) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.options = kernel_size, stride, padding, kw

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool1d(_Pool):
    """The max of each window of (N, C, L) (stride defaults to kernel_size)."""

    def __init__(
        self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
        ceil_mode: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(kernel_size, stride, padding, dilation=dilation, ceil_mode=ceil_mode)

    def forward(self, x: Any) -> Any:
        return W.max_pool1d(x, self.kernel_size, self.stride, self.padding, **self.options)


class MaxPool2d(MaxPool1d):
    """The max of each window of (N, C, H, W)."""

    def forward(self, x: Any) -> Any:
        return W.max_pool2d(x, self.kernel_size, self.stride, self.padding, **self.options)


class AvgPool1d(_Pool):
    """The mean of each window of (N, C, L)."""

    def __init__(
        self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:  # fmt: skip
        super().__init__(
            kernel_size, stride, padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad
        )

    def forward(self, x: Any) -> Any:
        return W.avg_pool1d(x, self.kernel_size, self.stride, self.padding, **self.options)


class AvgPool2d(_Pool):
    """The mean of each window of (N, C, H, W)."""

    def __init__(
        self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
        count_include_pad: bool = True, divisor_override: Any = None,
    ) -> None:  # fmt: skip
        super().__init__(
            kernel_size, stride, padding, ceil_mode=ceil_mode,
            count_include_pad=count_include_pad, divisor_override=divisor_override,
        )  # fmt: skip

    def forward(self, x: Any) -> Any:
        return W.avg_pool2d(x, self.kernel_size, self.stride, self.padding, **self.options)


class AdaptiveAvgPool1d(Module):
    """Average pooling to a fixed length, whatever the input's."""

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Any) -> Any:
        return W.adaptive_avg_pool1d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool2d(AdaptiveAvgPool1d):
    """Average pooling to a fixed (H, W) (None keeps that size)."""

    def forward(self, x: Any) -> Any:
        return W.adaptive_avg_pool2d(x, self.output_size)


class Flatten(Module):
    """Merge axes ``start_dim`` to ``end_dim`` (by default all but the batch axis)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Any) -> Any:
        return W.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split axis ``dim`` into ``unflattened_size``."""

    def __init__(self, dim: int, unflattened_size: Any) -> None:
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x: Any) -> Any:
        return W.unflatten(x, self.dim, self.unflattened_size)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class _ConvTransposeNd(Module):
    _d = 0
    _fn: Any = None

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: Any = 1,
        rng: Any = None,
        dtype: Any = "float64",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        _check_channels(name, in_channels, out_channels, groups)
        self.kernel_size = W._tuple(kernel_size, self._d, f"{name}: kernel_size")
        self.stride, self.padding = stride, padding
        self.output_padding, self.dilation, self.groups = output_padding, dilation, groups
        self.in_channels, self.out_channels = in_channels, out_channels
        shape = (in_channels, out_channels // groups, *self.kernel_size)
        self.weight, self.bias = _parameters(shape, out_channels, bias, rng, dtype)

    def forward(self, x: Any) -> Any:
        return type(self)._fn(
            x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
            self.groups, self.dilation,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
        )


class ConvTranspose1d(_ConvTransposeNd):
    """The transpose of Conv1d (an upsampling layer): weight (C_in, C_out / groups, k).

    >>> import chainrule as cr
    >>> up = cr.nn.ConvTranspose1d(4, 2, kernel_size=4, stride=2, padding=1, rng=0)
    >>> up(cr.zeros((3, 4, 10))).shape
    (3, 2, 20)
    """

    _d = 1
    _fn = staticmethod(W.conv_transpose1d)


class ConvTranspose2d(_ConvTransposeNd):
    """The transpose of Conv2d: weight (C_in, C_out / groups, kh, kw)."""

    _d = 2
    _fn = staticmethod(W.conv_transpose2d)
