"""Neural networks: Module, Parameter, layers, initialisers, and ``functional`` losses.

>>> import chainrule as cr
>>> net = cr.nn.MLP([2, 8, 1], activation="tanh", rng=0)
>>> net(cr.zeros((5, 2))).shape
(5, 1)
"""

from __future__ import annotations

from . import functional, init
from .layers import (
    ACTIVATION_LAYERS,
    GELU,
    MLP,
    Dropout,
    Identity,
    LeakyReLU,
    Linear,
    ReLU,
    Sigmoid,
    Softplus,
    Tanh,
    activation,
)
from .module import Module, Parameter, Sequential, StateDictError

__all__ = [
    "Module",
    "Parameter",
    "Sequential",
    "StateDictError",
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
    "functional",
    "init",
]
