"""Recurrent layers with PyTorch's names, layouts and gate order: RNNCell, GRUCell, LSTMCell
and the multi-layer, optionally bidirectional RNN, GRU and LSTM.

Parameters are named as in PyTorch (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...) with the
gates stacked in its order (GRU: r, z, n; LSTM: i, f, g, o), so a ``state_dict`` moves
between the two libraries by name. Every step is written with chainrule's ops: gradients,
``create_graph`` and forward mode come from the op table.

>>> import chainrule as cr
>>> gru = cr.nn.recurrent.GRU(3, 5, num_layers=2, batch_first=True, rng=0)
>>> output, h_n = gru(cr.zeros((4, 7, 3)))  # (batch, length, features)
>>> output.shape, h_n.shape
((4, 7, 5), (2, 4, 5))
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from .. import ops
from ..engine.modes import state as _modes
from ..engine.tensor import Tensor
from . import functional as F
from . import init
from .module import Module, Parameter

__all__ = ["RNNCell", "GRUCell", "LSTMCell", "RNN", "GRU", "LSTM"]

State = tuple[Any, ...]  # (h,), or (h, c) for an LSTM


# -- the math of each cell kind. The weights are cut once per call into one block per gate,
# each split into the input side (``inputs``: every step's x at once, or one step's) and the
# recurrent side (``step``). Where x's and h's parts of a gate are summed anyway, the recurrent
# product takes the input side as its bias, ``linear(h, W_hg, x W_ig^T + b_ig + b_hg)``: one
# node, not a product and an add. NOTE: one (N, H) block per gate, not the (N, G H) product
# cut into gates: on (64, 64) blocks this is 1.3-1.5x faster per step in float64 (the
# temporaries of the gates' sigmoid stay in cache) and no gradient is scattered into slices.
# Written on the last axis, so unbatched vectors work too. --------------------------------
def _plus(a: Any, b: Any) -> Any:
    return a if b is None else (b if a is None else a + b)


def _part(bias: Any, part: slice) -> Any:
    return None if bias is None else bias[part]


class _Gate(NamedTuple):
    """One gate's block of the weights: x's side (w_i, b_i) and h's side (w_h, b_h)."""

    w_i: Any
    w_h: Any
    b_i: Any
    b_h: Any


def _gates(w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, fold: Sequence[bool]) -> list[_Gate]:
    """The gates' blocks, in the stacking order. ``fold[k]``: gate k sees its two biases only
    through their sum, so b_hk is moved to x's side."""
    n = w_hh.shape[1]
    gates = []
    for k, folded in enumerate(fold):
        part = slice(k * n, (k + 1) * n)
        b_i, b_h = _part(b_ih, part), _part(b_hh, part)
        if folded:
            b_i, b_h = _plus(b_i, b_h), None
        gates.append(_Gate(w_ih[part], w_hh[part], b_i, b_h))
    return gates


class _Elman:
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)."""

    def __init__(self, act: Callable[[Any], Any], w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any):
        self.act, self.w_ih, self.w_hh, self.b = act, w_ih, w_hh, _plus(b_ih, b_hh)

    def inputs(self, x: Any) -> tuple[Any, ...]:
        return (ops.linear(x, self.w_ih, self.b),)

    def step(self, gi: tuple[Any, ...], state: State) -> State:
        return (self.act(ops.linear(state[0], self.w_hh, gi[0])),)


class _GRU:
    """Gates r, z, n (PyTorch's order and its n = tanh(W_in x + b_in + r (W_hn h + b_hn)))."""

    def __init__(self, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any) -> None:
        self.r, self.z, self.n = _gates(w_ih, w_hh, b_ih, b_hh, (True, True, False))

    def inputs(self, x: Any) -> tuple[Any, ...]:
        return tuple(ops.linear(x, g.w_i, g.b_i) for g in (self.r, self.z, self.n))

    def step(self, gi: tuple[Any, ...], state: State) -> State:
        (h,) = state
        r = ops.sigmoid(ops.linear(h, self.r.w_h, gi[0]))
        z = ops.sigmoid(ops.linear(h, self.z.w_h, gi[1]))
        n = ops.tanh(gi[2] + r * ops.linear(h, self.n.w_h, self.n.b_h))
        return (n + z * (h - n),)  # (1 - z) n + z h, in PyTorch's arrangement


class _LSTM:
    """Gates i, f, g, o (PyTorch's order): c' = f c + i g, h' = o tanh(c')."""

    def __init__(self, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any) -> None:
        self.gates = _gates(w_ih, w_hh, b_ih, b_hh, (True,) * 4)

    def inputs(self, x: Any) -> tuple[Any, ...]:
        return tuple(ops.linear(x, g.w_i, g.b_i) for g in self.gates)

    def step(self, gi: tuple[Any, ...], state: State) -> State:
        h, c = state
        i, f, g, o = (ops.linear(h, gate.w_h, x_side) for gate, x_side in zip(self.gates, gi))
        c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
        return (ops.sigmoid(o) * ops.tanh(c), c)


def _math(mode: str, weights: Sequence[Any]) -> Any:
    """The cell math of ``mode`` on ``weights`` (w_ih, w_hh, b_ih, b_hh)."""
    if mode == "GRU":
        return _GRU(*weights)
    if mode == "LSTM":
        return _LSTM(*weights)
    return _Elman(ops.relu if mode == "RNN_RELU" else ops.tanh, *weights)


_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}


def _mode_of(nonlinearity: str, owner: str) -> str:
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"{owner}: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return "RNN_" + nonlinearity.upper()


def _check_sizes(owner: str, input_size: int, hidden_size: int, num_layers: int = 1) -> None:
    if input_size < 1 or hidden_size < 1 or num_layers < 1:
        raise ValueError(
            f"{owner}: input_size, hidden_size and num_layers must be >= 1, got "
            f"input_size={input_size}, hidden_size={hidden_size}, num_layers={num_layers}"
        )


def _uniform(shape: tuple[int, ...], bound: float, gen: Any, dtype: Any) -> Parameter:
    return Parameter(init.uniform(shape, bound, gen, dtype))


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(getattr(x, "shape", ()))


def _as_input(x: Any) -> Any:
    return x if isinstance(x, Tensor) else ops.asarray(x)


def _states(owner: str, hx: Any, n_states: int, names: str) -> State:
    """``hx`` as a tuple of states: (hx,), or the pair an LSTM takes."""
    if n_states == 1:
        return (hx,)
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        raise TypeError(
            f"{owner}: hx must be a tuple {names} of two tensors, got {type(hx).__name__}"
        )
    return tuple(hx)


def _needs_grad(x: Any) -> bool:
    return isinstance(x, Tensor) and x.requires_grad and _modes.grad_enabled


def _unstack(x: Any, axis: int) -> list[Any]:
    """The slices of ``x`` along ``axis``, in order.

    NOTE: the gradient of one slice ``x[t]`` is an array of x's full shape, zero but for that
    slice, so taking L slices one by one costs L full-size arrays in the backward pass
    (O(L^2)). Where x needs a gradient it is halved recursively instead: log2(L) levels, each
    costing about two full-size arrays."""
    lead = (slice(None),) * axis
    if not _needs_grad(x):
        return [x[(*lead, t)] for t in range(x.shape[axis])]
    n = x.shape[axis]
    if n == 1:
        return [x[(*lead, 0)]]
    mid = n // 2
    return _unstack(x[(*lead, slice(0, mid))], axis) + _unstack(x[(*lead, slice(mid, n))], axis)


def _project(xs: list[Any], math_: Any, weights: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The input side of every step, ``x_t W_ih^T + b`` for each step ``x_t``.

    NOTE: one matmul over all steps would have to be sliced back into steps, and those slices'
    gradients cost O(L^2) (see :func:`_unstack`): 23 ms for a (40, 64, 192) projection, more
    than a whole GRU training step. So with gradients the projection is made step by step (the
    same flops); without them, in one matmul whose steps are views."""
    if any(_needs_grad(v) for v in (xs[0], *weights)):
        return [math_.inputs(x) for x in xs]
    whole = math_.inputs(ops.stack(xs))
    return [tuple(part[t] for part in whole) for t in range(len(xs))]


# -- cells: one step ------------------------------------------------------------------------
class _Cell(Module):
    def __init__(
        self, mode: str, input_size: int, hidden_size: int, bias: bool, rng: Any, dtype: Any
    ) -> None:
        super().__init__()
        self.mode = mode
        owner = type(self).__name__
        _check_sizes(owner, input_size, hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        gen, gates = init.generator(rng), _GATES[self.mode] * hidden_size
        bound = 1.0 / math.sqrt(hidden_size)  # PyTorch's: U(-1/sqrt(H), 1/sqrt(H)) for all
        self.weight_ih = _uniform((gates, input_size), bound, gen, dtype)
        self.weight_hh = _uniform((gates, hidden_size), bound, gen, dtype)
        self.bias_ih = _uniform((gates,), bound, gen, dtype) if bias else None
        self.bias_hh = _uniform((gates,), bound, gen, dtype) if bias else None

    def _run(self, input: Any, hx: Any, n_states: int) -> State:
        owner = type(self).__name__
        x = _as_input(input)
        shape = _shape(x)
        if len(shape) not in (1, 2) or shape[-1] != self.input_size:
            raise ValueError(
                f"{owner}: expected input of shape (batch, {self.input_size}) or "
                f"({self.input_size},) unbatched (input_size={self.input_size}), got {shape}"
            )
        want = (*shape[:-1], self.hidden_size)
        if hx is None:
            states: State = (ops.zeros_like(self.weight_hh, shape=want),) * n_states
        else:
            states = _states(owner, hx, n_states, "(h, c)")
            for name, s in zip(("h", "c"), states):
                if _shape(s) != want:
                    raise ValueError(
                        f"{owner}: expected the state {name} of shape {want} for an input of "
                        f"shape {shape}, got {_shape(s)}"
                    )
        math_ = _math(self.mode, (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh))
        return math_.step(math_.inputs(x), states)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        text += "" if self.bias else ", bias=False"
        return text + (", nonlinearity='relu'" if self.mode == "RNN_RELU" else "")


class RNNCell(_Cell):
    """One step of an Elman RNN: ``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (or relu).

    ``forward(input, hx=None)``: input (N, input_size) or (input_size,); hx (N, hidden_size)
    or (hidden_size,), zeros when None. Returns h'.

    >>> import chainrule as cr
    >>> cell = cr.nn.recurrent.RNNCell(3, 4, rng=0)
    >>> cell(cr.zeros((2, 3))).shape
    (2, 4)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        rng: Any = None,
        dtype: Any = "float64",
    ) -> None:
        mode = _mode_of(nonlinearity, "RNNCell")
        super().__init__(mode, input_size, hidden_size, bias, rng, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Any = None) -> Any:
        return self._run(input, hx, 1)[0]


class GRUCell(_Cell):
    """One GRU step, gates r, z, n as in PyTorch: ``n = tanh(W_in x + b_in + r (W_hn h + b_hn))``,
    ``h' = (1 - z) n + z h``.

    >>> import chainrule as cr
    >>> cell = cr.nn.recurrent.GRUCell(3, 4, rng=0)
    >>> cell.weight_ih.shape, cell(cr.zeros(3)).shape
    ((12, 3), (4,))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        rng: Any = None,
        dtype: Any = "float64",
    ) -> None:
        super().__init__("GRU", input_size, hidden_size, bias, rng, dtype)

    def forward(self, input: Any, hx: Any = None) -> Any:
        return self._run(input, hx, 1)[0]


class LSTMCell(_Cell):
    """One LSTM step, gates i, f, g, o as in PyTorch: ``c' = f c + i g``, ``h' = o tanh(c')``.

    ``forward(input, hx=None)`` with hx = (h, c) (zeros when None); returns (h', c').

    >>> import chainrule as cr
    >>> cell = cr.nn.recurrent.LSTMCell(3, 4, rng=0)
    >>> h, c = cell(cr.zeros((2, 3)))
    >>> cell.weight_hh.shape, h.shape, c.shape
    ((16, 4), (2, 4), (2, 4))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        rng: Any = None,
        dtype: Any = "float64",
    ) -> None:
        super().__init__("LSTM", input_size, hidden_size, bias, rng, dtype)

    def forward(self, input: Any, hx: Any = None) -> tuple[Any, Any]:
        h, c = self._run(input, hx, 2)
        return h, c


# -- whole sequences: layers x directions x time --------------------------------------------
class _RNNBase(Module):
    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bias: bool,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        rng: Any,
        dtype: Any,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        _check_sizes(owner, input_size, hidden_size, num_layers)
        if isinstance(dropout, bool) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"{owner}: dropout must be a number in [0, 1), got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"{owner}: dropout={dropout} acts between layers, after all but the last, so "
                "with num_layers=1 it does nothing; use num_layers > 1 or dropout=0",
                stacklevel=3,
            )
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        self.rng = init.generator(rng) if rng is not None else None  # also drives the dropout
        gen = init.generator(rng)
        gates, bound = _GATES[mode] * hidden_size, 1.0 / math.sqrt(hidden_size)
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):  # PyTorch's order: layer, direction, then ih, hh
            n_in = input_size if layer == 0 else hidden_size * directions
            for suffix in ["", "_reverse"][:directions]:
                shapes: dict[str, tuple[int, ...]] = {
                    "weight_ih": (gates, n_in),
                    "weight_hh": (gates, hidden_size),
                }
                if bias:
                    shapes.update(bias_ih=(gates,), bias_hh=(gates,))
                for name, shape in shapes.items():
                    setattr(self, f"{name}_l{layer}{suffix}", _uniform(shape, bound, gen, dtype))

    def _weights(self, layer: int, reverse: bool) -> list[Any]:
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        return [getattr(self, name + suffix, None) for name in names]

    def _check(self, input: Any, hx: Any) -> tuple[Any, list[State]]:
        """The input, and the initial state of each (layer, direction) in h_0's order."""
        owner = type(self).__name__
        x = _as_input(input)
        shape = _shape(x)
        layout = "(batch, length, features)" if self.batch_first else "(length, batch, features)"
        if len(shape) not in (2, 3) or shape[-1] != self.input_size:
            raise ValueError(
                f"{owner}: expected input of shape {layout} or (length, features) unbatched, "
                f"with features = input_size = {self.input_size}; got {shape}"
            )
        length = shape[1 if self.batch_first and len(shape) == 3 else 0]
        if length == 0:
            raise ValueError(f"{owner}: the input sequence is empty (shape {shape})")
        batch = () if len(shape) == 2 else (shape[0 if self.batch_first else 1],)
        count = self.num_layers * (2 if self.bidirectional else 1)
        want = (count, *batch, self.hidden_size)
        n_states = 2 if self.mode == "LSTM" else 1
        if hx is None:
            zero = ops.zeros_like(self._weights(0, False)[1], shape=want[1:])
            return x, [(zero,) * n_states] * count
        given = _states(owner, hx, n_states, "(h_0, c_0)")
        for name, s in zip(("h_0", "c_0"), given):
            if _shape(s) != want:
                raise ValueError(
                    f"{owner}: expected {name} of shape {want} (num_layers * num_directions, "
                    f"{'batch, ' if batch else ''}hidden_size) for an input of shape {shape}, "
                    f"got {_shape(s)}"
                )
        return x, [tuple(s[k] for s in given) for k in range(count)]

    def _sequence(self, input: Any, hx: Any) -> tuple[Any, list[State]]:
        """(output, the final state of each layer and direction, in h_n's order)."""
        x, initial = self._check(input, hx)
        time_axis = 1 if self.batch_first and x.ndim == 3 else 0
        xs = _unstack(x, time_axis)
        finals: list[State] = []
        runs: list[list[Any]] = []
        for layer in range(self.num_layers):
            if layer:  # the last layer's output per step, both directions side by side
                xs = [ops.concatenate(h, axis=-1) for h in zip(*runs)] if len(runs) > 1 else runs[0]
                if self.training and self.dropout > 0:
                    xs = [F.dropout(v, self.dropout, True, self.rng) for v in xs]
            runs = []
            for reverse in [False, True][: 2 if self.bidirectional else 1]:
                hs, final = self._direction(xs, layer, reverse, initial[len(finals)])
                runs.append(hs)
                finals.append(final)
        outs = [ops.stack(hs, axis=time_axis) for hs in runs]
        return (ops.concatenate(outs, axis=-1) if len(outs) > 1 else outs[0]), finals

    def _direction(
        self, xs: list[Any], layer: int, reverse: bool, state: State
    ) -> tuple[list[Any], State]:
        """One layer in one direction over the steps ``xs``: (h of every step, final state)."""
        weights = self._weights(layer, reverse)
        math_ = _math(self.mode, weights)
        gis = _project(xs, math_, weights)
        hs: list[Any] = [None] * len(xs)
        for t in reversed(range(len(xs))) if reverse else range(len(xs)):
            state = math_.step(gis[t], state)
            hs[t] = state[0]
        return hs, state

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.mode == "RNN_RELU":
            text += ", nonlinearity='relu'"
        defaults = {"num_layers": 1, "bias": True, "batch_first": False, "dropout": 0.0}
        for name, default in {**defaults, "bidirectional": False}.items():
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)}"
        return text


class RNN(_RNNBase):
    """A multi-layer Elman RNN, ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` (or
    relu), with PyTorch's arguments and parameter names.

    ``forward(input, hx=None)``: input (L, N, input_size), (N, L, input_size) when
    ``batch_first``, or (L, input_size) unbatched; hx (num_layers * D, N, hidden_size) (D = 2
    if bidirectional), zeros when None. Returns ``(output, h_n)``: output (L, N, D *
    hidden_size) (batch_first: (N, L, ...)) and h_n like hx. ``dropout`` acts on the output of
    every layer but the last, in training mode only.

    >>> import chainrule as cr
    >>> rnn = cr.nn.recurrent.RNN(2, 3, bidirectional=True, rng=0)
    >>> output, h_n = rnn(cr.zeros((5, 2)))  # unbatched: (length, features)
    >>> output.shape, h_n.shape
    ((5, 6), (2, 3))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        rng: Any = None,
        dtype: Any = "float64",
    ) -> None:
        mode = _mode_of(nonlinearity, "RNN")
        super().__init__(
            mode, input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, rng, dtype,
        )  # fmt: skip
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Any = None) -> tuple[Any, Any]:
        output, finals = self._sequence(input, hx)
        return output, ops.stack([s[0] for s in finals])


class GRU(_RNNBase):
    """A multi-layer GRU with PyTorch's gates r, z, n and arguments (see :class:`RNN` for the
    shapes); returns ``(output, h_n)``.

    >>> import chainrule as cr
    >>> gru = cr.nn.recurrent.GRU(2, 3, rng=0)
    >>> [name for name, _ in gru.named_parameters()]
    ['weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0']
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        rng: Any = None,
        dtype: Any = "float64",
    ) -> None:
        super().__init__(
            "GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, rng, dtype,
        )  # fmt: skip

    def forward(self, input: Any, hx: Any = None) -> tuple[Any, Any]:
        output, finals = self._sequence(input, hx)
        return output, ops.stack([s[0] for s in finals])


class LSTM(_RNNBase):
    """A multi-layer LSTM with PyTorch's gates i, f, g, o and arguments (see :class:`RNN` for
    the shapes); hx is ``(h_0, c_0)`` and it returns ``(output, (h_n, c_n))``.

    >>> import chainrule as cr
    >>> lstm = cr.nn.recurrent.LSTM(2, 3, num_layers=2, rng=0)
    >>> output, (h_n, c_n) = lstm(cr.zeros((5, 4, 2)))
    >>> output.shape, h_n.shape, c_n.shape
    ((5, 4, 3), (2, 4, 3), (2, 4, 3))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        rng: Any = None,
        dtype: Any = "float64",
    ) -> None:
        super().__init__(
            "LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, rng, dtype,
        )  # fmt: skip

    def forward(self, input: Any, hx: Sequence[Any] | None = None) -> tuple[Any, Any]:
        output, finals = self._sequence(input, hx)
        return output, (ops.stack([s[0] for s in finals]), ops.stack([s[1] for s in finals]))
