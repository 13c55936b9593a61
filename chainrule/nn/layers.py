"""Layers: Linear, MLP, Dropout, and the activations as modules."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from .. import ops
from . import functional as F
from . import init
from .module import Module, Parameter, Sequential

__all__ = [
    "Linear",
    "MLP",
    "Dropout",
    "Identity",
    "ReLU",
    "LeakyReLU",
    "Tanh",
    "Sigmoid",
    "GELU",
    "Softplus",
    "activation",
    "ACTIVATION_LAYERS",
]


class Linear(Module):
    """``y = x @ W.T + b`` with W of shape (out_features, in_features), as in PyTorch.

    The default initialisation is PyTorch's: W and b uniform on ±1/sqrt(in_features).
    ``init="xavier"`` or ``"kaiming"`` (with ``nonlinearity``) choose the others.

    >>> import chainrule as cr
    >>> layer = cr.nn.Linear(3, 2, rng=0)
    >>> layer.weight.shape, layer.bias.shape
    ((2, 3), (2,))
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        rng: Any = None,
        dtype: Any = "float64",
        init: str | None = None,
        nonlinearity: str | None = None,
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"Linear: in_features and out_features must be >= 1, got "
                f"{in_features} and {out_features}"
            )
        self.in_features = in_features
        self.out_features = out_features
        gen = _init.generator(rng)
        shape = (out_features, in_features)
        bound = 1.0 / math.sqrt(in_features)
        if init is None:
            w = _init.uniform(shape, bound, gen, dtype)
        elif init == "xavier":  # Glorot's gain is 1 unless a nonlinearity is named
            gain = _init.gain(nonlinearity) if nonlinearity else 1.0
            w = _init.xavier_uniform(shape, gain, gen, dtype)
        elif init == "kaiming":
            w = _init.kaiming_normal(shape, nonlinearity or "relu", gen, dtype)
        else:
            raise ValueError(f"Linear: init must be None, 'xavier' or 'kaiming', got {init!r}")
        self.weight = Parameter(w)
        if bias:
            b = _init.uniform((out_features,), bound, gen, dtype) if init is None else None
            self.bias = Parameter(b if b is not None else w[:, 0] * 0)
        else:
            self.bias = None  # type: ignore[assignment]

    def forward(self, x: Any) -> Any:
        return ops.linear(x, self.weight, self.bias)  # one node: x @ W.T + b

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


_init = init


class _Activation(Module):
    fn: Callable[..., Any] = staticmethod(lambda x: x)

    def forward(self, x: Any) -> Any:
        return type(self).fn(x)


class Identity(_Activation):
    """Passes its input through."""


class ReLU(_Activation):
    """max(x, 0); relu'(0) = 0."""

    fn = staticmethod(ops.relu)


class Tanh(_Activation):
    """tanh(x)."""

    fn = staticmethod(ops.tanh)


class Sigmoid(_Activation):
    """1 / (1 + exp(-x)), in a stable form."""

    fn = staticmethod(ops.sigmoid)


class Softplus(_Activation):
    """log(1 + exp(x)), in a stable form."""

    fn = staticmethod(ops.softplus)


class LeakyReLU(Module):
    """x for x > 0, negative_slope * x otherwise."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Any) -> Any:
        return ops.leaky_relu(x, negative_slope=self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class GELU(Module):
    """x Phi(x) (``approximate="tanh"`` for the tanh form)."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, x: Any) -> Any:
        return ops.gelu(x, approximate=self.approximate)


class Dropout(Module):
    """Zero each entry with probability p while training, scaling the rest by 1/(1-p)."""

    def __init__(self, p: float = 0.5, rng: Any = None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p
        self.rng = init.generator(rng) if rng is not None else None

    def forward(self, x: Any) -> Any:
        return F.dropout(x, self.p, self.training, self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# The activation layers by name: what MLP(activation=...), `chainrule train --activation` and
# nn.activation() accept (the one list of them).
ACTIVATION_LAYERS: dict[str, type[Module]] = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
    "gelu": GELU,
    "softplus": Softplus,
    "identity": Identity,
}


def activation(name: str | type[Module] | Module) -> Module:
    """An activation module from its name ("relu", "tanh", ...), class, or instance."""
    if isinstance(name, Module):
        return name
    if isinstance(name, type) and issubclass(name, Module):
        return name()
    if isinstance(name, str) and name.lower() in ACTIVATION_LAYERS:
        return ACTIVATION_LAYERS[name.lower()]()
    raise ValueError(f"activation: unknown {name!r}; choose one of {', '.join(ACTIVATION_LAYERS)}")


class MLP(Sequential):
    """A multilayer perceptron: Linear layers of the given sizes with an activation between
    them (none after the last unless ``output_activation``). Weights use He initialisation for
    relu-like activations and Xavier for tanh/sigmoid. Parameter names follow PyTorch's
    ``nn.Sequential`` ("0.weight", "0.bias", "2.weight", ...).

    >>> import chainrule as cr
    >>> net = cr.nn.MLP([64, 32, 10], activation="relu", rng=0)
    >>> [name for name, _ in net.named_parameters()]
    ['0.weight', '0.bias', '2.weight', '2.bias']
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str | type[Module] = "relu",
        output_activation: str | type[Module] | None = None,
        dropout: float = 0.0,
        rng: Any = None,
        dtype: Any = "float64",
    ) -> None:
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ValueError(
                f"MLP: sizes must list at least an input and an output size, all >= 1; got {sizes}"
            )
        act_name = _name_of(activation)
        he_like = act_name.lower() in ("relu", "leaky_relu", "gelu", "softplus")
        gen = init.generator(rng)
        layers: list[Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = i == len(sizes) - 2
            layer = Linear(n_in, n_out, rng=gen, dtype=dtype)
            shape = (n_out, n_in)
            if he_like and not last:
                layer.weight._data = init.kaiming_normal(shape, act_name.lower(), gen, dtype)
            else:
                nl = "linear" if last else act_name.lower()
                gain = init.gain(nl) if nl in ("tanh", "sigmoid", "linear") else 1.0
                layer.weight._data = init.xavier_uniform(shape, gain, gen, dtype)
            layer.bias._data = layer.bias._data * 0
            layers.append(layer)
            if not last:
                layers.append(_activation_of(activation))
                if dropout:
                    layers.append(Dropout(dropout, rng=gen))
            elif output_activation is not None:
                layers.append(_activation_of(output_activation))
        super().__init__(*layers)
        self.sizes = sizes


def _activation_of(spec: Any) -> Module:
    return activation(spec)


def _name_of(spec: Any) -> str:
    """The table name of an activation given by name, class or instance ("relu", ...)."""
    if isinstance(spec, str):
        return spec.lower()
    cls = type(spec) if isinstance(spec, Module) else spec
    for name, known in ACTIVATION_LAYERS.items():
        if cls is known:
            return name
    return "relu"  # a custom activation: He initialisation, the common default
