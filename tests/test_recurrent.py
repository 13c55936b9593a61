"""cr.nn.recurrent: RNNCell, GRUCell, LSTMCell, RNN, GRU, LSTM.

Shapes for every input layout, PyTorch's parameter names, float64 gradchecks of the cells and
of two-layer bidirectional stacks, closed forms written here in NumPy, and the errors for
inputs that do not fit. (The comparison with PyTorch itself is in
tests/peers/test_torch_recurrent_attention.py.)
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import chainrule as cr
from chainrule.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

RNG = np.random.default_rng(7)
LAYERS = {"RNN": RNN, "GRU": GRU, "LSTM": LSTM}
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _np(t):
    return np.asarray(t.numpy() if isinstance(t, cr.Tensor) else t)


def _h(result, name):
    """h_n of a layer's second result ((h_n, c_n) for an LSTM)."""
    return result[0] if name == "LSTM" else result


def _randomize(module, scale=0.5):
    """Non-trivial parameters (biases included), so every gradient is exercised."""
    for p in module.parameters():
        p.data = RNG.uniform(-scale, scale, p.shape)
    return module


def _call_with(module, names, values, *args):
    """module(*args) with the named parameters replaced by ``values`` (arrays or traced
    tensors), bypassing registration so the module is left as it was."""
    saved = [(name, getattr(module, name)) for name in names]
    try:
        for name, value in zip(names, values):
            object.__setattr__(module, name, value)
        return module(*args)
    finally:
        for name, old in saved:
            object.__setattr__(module, name, old)


# -- shapes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("initial", [False, True])
def test_output_and_state_shapes_for_every_layout(
    name, batch_first, bidirectional, batched, initial
):
    L, N, H_in, H, layers = 5, 3, 4, 6, 2
    d = 2 if bidirectional else 1
    layer = LAYERS[name](
        H_in, H, num_layers=layers, batch_first=batch_first, bidirectional=bidirectional, rng=0
    )
    if batched:
        x = RNG.normal(size=(N, L, H_in) if batch_first else (L, N, H_in))
        state_shape = (layers * d, N, H)
        out_shape = (N, L, d * H) if batch_first else (L, N, d * H)
    else:
        x = RNG.normal(size=(L, H_in))  # batch_first does not apply to one sequence
        state_shape = (layers * d, H)
        out_shape = (L, d * H)
    hx = None
    if initial:
        h0 = RNG.normal(size=state_shape)
        hx = (h0, RNG.normal(size=state_shape)) if name == "LSTM" else h0
    out, state = layer(cr.tensor(x), hx)
    assert out.shape == out_shape
    if name == "LSTM":
        assert state[0].shape == state_shape and state[1].shape == state_shape
    else:
        assert state.shape == state_shape


@pytest.mark.parametrize("cell", [RNNCell, GRUCell, LSTMCell])
@pytest.mark.parametrize("batched", [True, False])
def test_cell_shapes(cell, batched):
    c = cell(3, 5, rng=0)
    x = RNG.normal(size=(4, 3) if batched else (3,))
    out = c(x)
    want = (4, 5) if batched else (5,)
    if cell is LSTMCell:
        assert out[0].shape == want and out[1].shape == want
    else:
        assert out.shape == want


def test_unbatched_equals_a_batch_of_one_and_batch_first_equals_transposed():
    gru = _randomize(GRU(3, 4, num_layers=2, bidirectional=True, rng=0))
    x = RNG.normal(size=(6, 3))
    out1, h1 = gru(x)
    out2, h2 = gru(x[:, None, :])
    np.testing.assert_allclose(_np(out1), _np(out2)[:, 0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(_np(h1), _np(h2)[:, 0], rtol=0, atol=1e-15)
    xb = RNG.normal(size=(6, 2, 3))  # (L, N, H_in)
    out_seq, h_seq = gru(xb)
    gru.batch_first = True
    out_bf, h_bf = gru(xb.transpose(1, 0, 2))
    np.testing.assert_allclose(_np(out_bf), _np(out_seq).transpose(1, 0, 2), rtol=0, atol=1e-15)
    np.testing.assert_allclose(_np(h_bf), _np(h_seq), rtol=0, atol=1e-15)


# -- parameters: PyTorch's names, shapes and initialisation -----------------------------------
@pytest.mark.parametrize("name", list(LAYERS))
def test_parameter_names_and_shapes_follow_pytorch(name):
    layer = LAYERS[name](3, 4, num_layers=2, bidirectional=True, rng=0)
    g = GATES[name] * 4
    expected = {}
    for k, n_in in [(0, 3), (1, 8)]:
        for suffix in ["", "_reverse"]:
            expected[f"weight_ih_l{k}{suffix}"] = (g, n_in)
            expected[f"weight_hh_l{k}{suffix}"] = (g, 4)
            expected[f"bias_ih_l{k}{suffix}"] = (g,)
            expected[f"bias_hh_l{k}{suffix}"] = (g,)
    got = [(n, p.shape) for n, p in layer.named_parameters()]
    assert got == list(expected.items())  # same names, same order as torch.nn.{name}
    no_bias = LAYERS[name](3, 4, bias=False, rng=0)
    assert [n for n, _ in no_bias.named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]


@pytest.mark.parametrize("make", [lambda: GRU(3, 16, num_layers=2, rng=1), lambda: LSTMCell(3, 16)])
def test_initialisation_is_uniform_within_one_over_sqrt_hidden(make):
    layer = make()
    values = np.concatenate([_np(p).ravel() for p in layer.parameters()])
    bound = 1 / math.sqrt(16)
    assert np.abs(values).max() <= bound
    assert np.abs(values).max() > 0.9 * bound  # spread over the interval, not squeezed
    assert abs(values.mean()) < 0.1 * bound


def test_same_seed_same_parameters_and_state_dict_round_trip():
    a, b = LSTM(2, 3, num_layers=2, rng=5), LSTM(2, 3, num_layers=2, rng=5)
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb and np.array_equal(_np(pa), _np(pb))
    c = LSTM(2, 3, num_layers=2, rng=6)
    c.load_state_dict(a.state_dict())
    x = RNG.normal(size=(4, 2))
    np.testing.assert_array_equal(_np(a(x)[0]), _np(c(x)[0]))


def test_float32_layers_compute_in_float32():
    lstm = LSTM(3, 4, dtype="float32", rng=0)
    out, (h, c) = lstm(RNG.normal(size=(5, 2, 3)).astype(np.float32))
    assert out.dtype == np.float32 and h.dtype == np.float32 and c.dtype == np.float32


def test_repr_names_the_non_default_arguments():
    assert repr(GRU(3, 4)) == "GRU(3, 4)"
    text = repr(RNN(3, 4, num_layers=2, nonlinearity="relu", batch_first=True, bidirectional=True))
    assert (
        text == "RNN(3, 4, nonlinearity='relu', num_layers=2, batch_first=True, bidirectional=True)"
    )
    assert repr(LSTMCell(2, 3, bias=False)) == "LSTMCell(2, 3, bias=False)"


# -- closed forms -----------------------------------------------------------------------------
def test_rnn_with_zero_recurrent_weights_is_tanh_of_linear_at_every_step():
    rnn = _randomize(RNN(3, 4, rng=0))
    rnn.weight_hh_l0.data = np.zeros((4, 4))
    x = RNG.normal(size=(6, 2, 3))
    out, h_n = rnn(x)
    w, b = _np(rnn.weight_ih_l0), _np(rnn.bias_ih_l0) + _np(rnn.bias_hh_l0)
    expected = np.tanh(x @ w.T + b)
    np.testing.assert_allclose(_np(out), expected, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(_np(h_n)[0], expected[-1], rtol=1e-14, atol=1e-15)


def _numpy_gru(x, h, w_ih, w_hh, b_ih, b_hh):
    """An independent GRU in NumPy, written from the equations of PyTorch's documentation."""
    outs = []
    for x_t in x:
        gi, gh = x_t @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        H = h.shape[-1]
        r = _sigmoid(gi[:, :H] + gh[:, :H])
        z = _sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
        n = np.tanh(gi[:, 2 * H :] + r * gh[:, 2 * H :])
        h = (1 - z) * n + z * h
        outs.append(h)
    return np.stack(outs), h


def _numpy_lstm(x, h, c, w_ih, w_hh, b_ih, b_hh):
    outs = []
    for x_t in x:
        gates = x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        i, f, g, o = np.split(gates, 4, axis=-1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        outs.append(h)
    return np.stack(outs), h, c


def _weights(layer, suffix="_l0"):
    return [
        _np(getattr(layer, n + suffix)) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    ]


def test_gru_and_lstm_equal_their_equations_written_in_numpy():
    x = RNG.normal(size=(7, 3, 2))
    gru = _randomize(GRU(2, 5, rng=0))
    h0 = RNG.normal(size=(1, 3, 5))
    out, h_n = gru(x, h0)
    ref, ref_h = _numpy_gru(x, h0[0], *_weights(gru))
    np.testing.assert_allclose(_np(out), ref, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(_np(h_n)[0], ref_h, rtol=1e-13, atol=1e-14)
    lstm = _randomize(LSTM(2, 5, rng=0))
    c0 = RNG.normal(size=(1, 3, 5))
    out, (h_n, c_n) = lstm(x, (h0, c0))
    ref, ref_h, ref_c = _numpy_lstm(x, h0[0], c0[0], *_weights(lstm))
    np.testing.assert_allclose(_np(out), ref, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(_np(c_n)[0], ref_c, rtol=1e-13, atol=1e-14)


def test_the_reverse_direction_reads_the_sequence_backwards():
    bi = _randomize(GRU(2, 3, bidirectional=True, rng=0))
    x = RNG.normal(size=(6, 2, 2))
    out, h_n = bi(x)
    fwd, fwd_h = _numpy_gru(x, np.zeros((2, 3)), *_weights(bi))
    bwd, bwd_h = _numpy_gru(x[::-1], np.zeros((2, 3)), *_weights(bi, "_l0_reverse"))
    np.testing.assert_allclose(_np(out)[..., :3], fwd, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(_np(out)[..., 3:], bwd[::-1], rtol=1e-13, atol=1e-14)
    # h_n: the forward direction's last step, the reverse direction's first
    np.testing.assert_allclose(_np(h_n), np.stack([fwd_h, bwd_h]), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(_np(h_n)[1], _np(out)[0, :, 3:], rtol=0, atol=0)


def test_a_second_layer_reads_the_first_layers_output():
    two = _randomize(LSTM(2, 3, num_layers=2, rng=0))
    x = RNG.normal(size=(5, 2, 2))
    out, (h_n, c_n) = two(x)
    zeros = np.zeros((2, 3))
    first, h1, c1 = _numpy_lstm(x, zeros, zeros, *_weights(two, "_l0"))
    second, h2, c2 = _numpy_lstm(first, zeros, zeros, *_weights(two, "_l1"))
    np.testing.assert_allclose(_np(out), second, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(_np(h_n), np.stack([h1, h2]), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(_np(c_n), np.stack([c1, c2]), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
def test_a_cell_is_one_step_of_its_layer(name):
    cell_type = {"RNN": RNNCell, "GRU": GRUCell, "LSTM": LSTMCell}[name]
    cell, layer = _randomize(cell_type(3, 4, rng=0)), LAYERS[name](3, 4, rng=1)
    layer.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    x = RNG.normal(size=(2, 3))
    h = RNG.normal(size=(2, 4))
    hx = (h, RNG.normal(size=(2, 4))) if name == "LSTM" else h
    layer_hx = tuple(s[None] for s in hx) if name == "LSTM" else h[None]
    by_cell = cell(x, hx)
    out, state = layer(x[None], layer_hx)
    np.testing.assert_array_equal(_np(_h(by_cell, name)), _np(out)[0])
    if name == "LSTM":
        np.testing.assert_array_equal(_np(by_cell[1]), _np(state[1])[0])


def test_relu_rnn_applies_relu():
    rnn = _randomize(RNNCell(2, 6, nonlinearity="relu", rng=0))
    x = RNG.normal(size=(4, 2))
    w, b = _np(rnn.weight_ih), _np(rnn.bias_ih) + _np(rnn.bias_hh)
    np.testing.assert_allclose(_np(rnn(x)), np.maximum(x @ w.T + b, 0), rtol=1e-14, atol=0)


def test_without_gradients_the_one_matmul_path_gives_the_same_values():
    gru = _randomize(GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True, rng=0))
    x = RNG.normal(size=(2, 5, 3))
    with_grad, h_with = gru(cr.tensor(x))
    with cr.no_grad():
        without, h_without = gru(cr.tensor(x))
    np.testing.assert_allclose(_np(without), _np(with_grad), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(_np(h_without), _np(h_with), rtol=1e-14, atol=1e-15)


# -- dropout between layers -------------------------------------------------------------------
def test_dropout_acts_between_layers_in_training_only():
    lstm = _randomize(LSTM(3, 4, num_layers=2, dropout=0.5, rng=0))
    plain = LSTM(3, 4, num_layers=2, rng=1)
    plain.load_state_dict(lstm.state_dict())
    x = RNG.normal(size=(5, 2, 3))
    lstm.eval()
    np.testing.assert_array_equal(_np(lstm(x)[0]), _np(plain(x)[0]))
    lstm.train()
    a, b = _np(lstm(x)[0]), _np(lstm(x)[0])
    assert not np.allclose(a, _np(plain(x)[0])) and not np.allclose(a, b)  # new masks each call


def test_dropout_with_one_layer_warns():
    with pytest.warns(UserWarning, match="num_layers=1"):
        GRU(2, 3, dropout=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GRU(2, 3, num_layers=2, dropout=0.2)


# -- gradients --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make", [lambda: RNNCell(2, 3), lambda: RNNCell(2, 3, nonlinearity="relu"), GRUCell, LSTMCell]
)
def test_cells_gradcheck_input_state_and_every_parameter(make):
    cell = make(2, 3) if make in (GRUCell, LSTMCell) else make()
    _randomize(cell)
    names = [n for n, _ in cell.named_parameters()]
    values = [_np(p).copy() for p in cell.parameters()]
    x, h, c = RNG.normal(size=(2, 2)), RNG.normal(size=(2, 3)), RNG.normal(size=(2, 3))
    if isinstance(cell, RNNCell) and cell.nonlinearity == "relu":
        values = [v + 0.05 * np.sign(v) for v in values]  # away from relu's kink
    if isinstance(cell, LSTMCell):
        f = lambda x, h, c, *ps: sum(_call_with(cell, names, ps, x, (h, c)))
        assert cr.gradcheck(f, x, h, c, *values, check_forward=True)
    else:
        f = lambda x, h, *ps: _call_with(cell, names, ps, x, h)
        assert cr.gradcheck(f, x, h, *values, check_forward=True)


@pytest.mark.parametrize("name", ["GRU", "LSTM"])
def test_two_layer_bidirectional_gradcheck_input_state_and_every_parameter(name):
    layer = _randomize(LAYERS[name](2, 2, num_layers=2, bidirectional=True, batch_first=True))
    names = [n for n, _ in layer.named_parameters()]
    values = [_np(p).copy() for p in layer.parameters()]
    x = RNG.normal(size=(2, 3, 2))
    h0, c0 = RNG.normal(size=(4, 2, 2)), RNG.normal(size=(4, 2, 2))
    w_out, w_h = RNG.normal(size=(2, 3, 4)), RNG.normal(size=(4, 2, 2))

    def loss(x, h0, c0, *ps):  # a random weighting: every entry of the Jacobian counts
        out, state = _call_with(layer, names, ps, x, (h0, c0) if name == "LSTM" else h0)
        return cr.sum(out * w_out) + cr.sum(_h(state, name) * w_h)

    assert cr.gradcheck(loss, x, h0, c0, *values)


def test_module_gradients_match_finite_differences():
    gru = _randomize(GRU(2, 3, num_layers=2, rng=0))
    x = RNG.normal(size=(4, 2, 2))
    names = [n for n, _ in gru.named_parameters()]
    values = [_np(p).copy() for p in gru.parameters()]
    cr.sum(gru(x)[0] ** 2).backward()
    f = lambda *ps: cr.sum(_call_with(gru, names, ps, x)[0] ** 2)
    numeric = cr.numerical_grad(f, *values, argnums=tuple(range(len(values))))
    for n, p, num in zip(names, gru.parameters(), numeric):
        np.testing.assert_allclose(_np(p.grad), num, rtol=1e-6, atol=1e-9, err_msg=n)


def test_input_that_needs_a_gradient_gets_it_for_every_step():
    # the input is cut into steps by halving (not one slice per step): each step still gets its
    # own gradient, in its place
    rnn = _randomize(RNN(1, 2, rng=0))
    rnn.weight_hh_l0.data = np.zeros((2, 2))
    x = cr.tensor(RNG.normal(size=(7, 1, 1)), requires_grad=True)
    w_out = RNG.normal(size=(7, 1, 2))
    out, _ = rnn(x)
    cr.sum(out * w_out).backward()
    w, b = _np(rnn.weight_ih_l0), _np(rnn.bias_ih_l0) + _np(rnn.bias_hh_l0)
    pre = _np(x) @ w.T + b
    np.testing.assert_allclose(_np(out), np.tanh(pre), rtol=1e-14, atol=0)
    expected = (w_out * (1 - np.tanh(pre) ** 2)) @ w
    np.testing.assert_allclose(_np(x.grad), expected, rtol=1e-13, atol=0)


# -- inputs that do not fit -------------------------------------------------------------------
def test_wrong_feature_size_names_the_layer_and_the_shapes():
    with pytest.raises(ValueError, match=r"GRU: .*input_size = 4; got \(5, 2, 3\)"):
        GRU(4, 3)(np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match=r"LSTMCell: .*\(batch, 4\).*got \(2, 3\)"):
        LSTMCell(4, 3)(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"RNN: .*got \(2, 3, 4, 4\)"):
        RNN(4, 3)(np.zeros((2, 3, 4, 4)))


def test_wrong_hidden_state_shape_names_both_shapes():
    with pytest.raises(
        ValueError, match=r"GRU: expected h_0 of shape \(4, 2, 3\).*got \(2, 2, 3\)"
    ):
        GRU(4, 3, num_layers=2, bidirectional=True)(np.zeros((5, 2, 4)), np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match=r"LSTM: expected c_0 of shape \(1, 2, 3\).*got \(1, 3\)"):
        LSTM(4, 3)(np.zeros((5, 2, 4)), (np.zeros((1, 2, 3)), np.zeros((1, 3))))
    with pytest.raises(TypeError, match=r"LSTM: hx must be a tuple \(h_0, c_0\)"):
        LSTM(4, 3)(np.zeros((5, 2, 4)), np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match=r"GRUCell: expected the state h of shape \(2, 3\)"):
        GRUCell(4, 3)(np.zeros((2, 4)), np.zeros((3, 3)))


def test_bad_constructor_arguments_and_empty_sequences():
    with pytest.raises(ValueError, match="RNN: nonlinearity must be 'tanh' or 'relu'"):
        RNN(2, 3, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="GRU: input_size, hidden_size and num_layers"):
        GRU(2, 0)
    with pytest.raises(ValueError, match=r"LSTM: dropout must be a number in \[0, 1\)"):
        LSTM(2, 3, num_layers=2, dropout=1.5)
    with pytest.raises(ValueError, match="GRU: the input sequence is empty"):
        GRU(2, 3)(np.zeros((0, 1, 2)))
