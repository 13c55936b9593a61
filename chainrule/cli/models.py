"""The model families ``chainrule train --model`` builds: an MLP, and for sequence data (each
row one sequence of one feature per step, as MNIST-1D) a 1-D CNN and a GRU."""

from __future__ import annotations

from typing import Any

from .. import nn, ops
from ..nn import functional as F

__all__ = ["SequenceCNN", "SequenceGRU", "MODELS", "CNN_WIDTH", "GRU_HIDDEN"]

MODELS = ("mlp", "cnn", "gru")
CNN_WIDTH = 32  # channels of each convolution of SequenceCNN
GRU_HIDDEN = 64  # the hidden state of SequenceGRU


class SequenceCNN(nn.Module):
    """Three 1-D convolutions (the last two strided) with batch normalisation and ReLU over
    the row read as a sequence, then a linear layer: 97.8% on MNIST-1D."""

    def __init__(self, length: int, n_out: int, width: int = CNN_WIDTH, rng: int = 0) -> None:
        super().__init__()
        self.length, self.n_out, self.width = length, n_out, width
        self.features = nn.Sequential(
            nn.Conv1d(1, width, 5, padding=2, rng=rng),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.Conv1d(width, width, 3, stride=2, padding=1, rng=rng + 1),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.Conv1d(width, width, 3, stride=2, padding=1, rng=rng + 2),
            nn.BatchNorm1d(width),
            nn.ReLU(),
        )
        out_len = (((length - 1) // 2 + 1) - 1) // 2 + 1
        self.head = nn.Linear(width * out_len, n_out, rng=rng + 3)

    def forward(self, x: Any) -> Any:
        h = self.features(ops.reshape(x, shape=(x.shape[0], 1, x.shape[1])))
        return self.head(F.flatten(h, 1))


class SequenceGRU(nn.Module):
    """A GRU over the row read as a sequence (one feature per step); its last hidden state
    goes through a linear layer."""

    def __init__(self, length: int, n_out: int, hidden: int = GRU_HIDDEN, rng: int = 0) -> None:
        super().__init__()
        self.length, self.n_out, self.hidden = length, n_out, hidden
        self.gru = nn.GRU(1, hidden, batch_first=True, rng=rng)
        self.head = nn.Linear(hidden, n_out, rng=rng + 1)

    def forward(self, x: Any) -> Any:
        _, h = self.gru(ops.reshape(x, shape=(x.shape[0], x.shape[1], 1)))
        return self.head(h[0])
