"""Graphs to draw, from a single neuron to a small convnet and a GRU: the pictures of the gallery
(``docs/gallery.md``) and of the page's browser tests are made of these.

Each function builds its graph with fixed seeds, runs the backward pass, and returns the
:class:`~chainrule.viz.graph_data.Graph` (taken before ``backward()``, so that it holds every
value and gradient).

>>> from chainrule.viz import samples
>>> g = samples.neuron()
>>> [s.name for s in g.sources], g.sink.name
(['w', 'x', 'b'], 'y')
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import nn
from ..engine.tensor import Tensor, tensor
from ..ops import relu, sigmoid
from ..ops import sum as total
from .graph_data import Graph, graph

__all__ = ["neuron", "two_layer", "convnet", "gru", "SAMPLES"]


def _named(value: Any, name: str, requires_grad: bool = False) -> Tensor:
    return tensor(np.asarray(value, dtype=np.float64), requires_grad=requires_grad, name=name)


def _traced(sink: Tensor, module: Any = None) -> Graph:
    g = graph(sink, module=module)
    sink.backward()
    return g


def neuron() -> Graph:
    """The handout's single neuron: y = sigmoid(w * x + b), all scalars."""
    w, x, b = _named(0.5, "w", True), _named(2.0, "x"), _named(0.1, "b", True)
    y = sigmoid(w * x + b)
    y.name = "y"
    return _traced(y)


def two_layer() -> Graph:
    """A two-layer network on one sample: loss = sum((W2 relu(W1 x + b1) + b2 - y)^2), with
    x (4,), W1 (8, 4), W2 (3, 8)."""
    rng = np.random.default_rng(0)
    x = _named(rng.normal(size=4), "x")
    W1 = _named(rng.normal(size=(8, 4)), "W1", True)
    b1 = _named(np.zeros(8), "b1", True)
    W2 = _named(rng.normal(size=(3, 8)), "W2", True)
    b2 = _named(np.zeros(3), "b2", True)
    y = _named(rng.normal(size=3), "y")
    h = relu(W1 @ x + b1)
    h.name = "h"
    loss = total((W2 @ h + b2 - y) ** 2)
    loss.name = "loss"
    return _traced(loss)


def convnet() -> Graph:
    """A small convnet on two 8x8 images: three blocks of Conv2d, BatchNorm2d, ReLU and
    MaxPool2d, then Linear, ReLU, Linear and the cross-entropy of 10 classes."""
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=0),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1, rng=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1, rng=2),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8, 16, rng=3),
        nn.ReLU(),
        nn.Linear(16, 10, rng=4),
    )
    images = np.random.default_rng(0).normal(size=(2, 1, 8, 8))
    loss = nn.functional.cross_entropy(model(images), np.array([1, 3]))
    loss.name = "loss"
    return _traced(loss, model)


class _GRURegressor(nn.Module):
    """A GRU over a sequence, and a linear read-out of its last hidden state."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(3, 5, rng=0)
        self.head = nn.Linear(5, 2, rng=1)

    def forward(self, sequence: Any) -> Any:
        _, last = self.gru(sequence)
        return self.head(last[0])


def gru() -> Graph:
    """A GRU (input 3, hidden 5) over 6 steps of a batch of 2 sequences, a Linear read-out of
    the last hidden state and the mean squared error against 2 targets each."""
    model = _GRURegressor()
    rng = np.random.default_rng(0)
    sequence, target = rng.normal(size=(6, 2, 3)), rng.normal(size=(2, 2))
    loss = nn.functional.mse_loss(model(sequence), target)
    loss.name = "loss"
    return _traced(loss, model)


SAMPLES = {"neuron": neuron, "two_layer": two_layer, "convnet": convnet, "gru": gru}
