"""Neural networks: Module, Parameter, layers, initialisers, and ``functional`` losses.

>>> import chainrule as cr
>>> net = cr.nn.MLP([2, 8, 1], activation="tanh", rng=0)
>>> net(cr.zeros((5, 2))).shape
(5, 1)
"""

from __future__ import annotations

from . import functional, init, utils
from .attention import MultiheadAttention
from .containers import ModuleDict, ModuleList
from .conv import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    Conv1d,
    Conv2d,
    ConvTranspose1d,
    ConvTranspose2d,
    Flatten,
    MaxPool1d,
    MaxPool2d,
    Unflatten,
)
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
from .normalization import BatchNorm1d, BatchNorm2d, Embedding, GroupNorm, LayerNorm
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

__all__ = [
    "Module",
    "Parameter",
    "Sequential",
    "ModuleList",
    "ModuleDict",
    "StateDictError",
    "Linear",
    "MLP",
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
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm",
    "GroupNorm",
    "Embedding",
    "RNN",
    "GRU",
    "LSTM",
    "RNNCell",
    "GRUCell",
    "LSTMCell",
    "MultiheadAttention",
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
    "utils",
]
