"""chainrule's recurrent and attention layers against PyTorch's, weights moved by name.

For each layer: build the torch layer, copy its ``state_dict`` into the chainrule layer with
``load_state_dict``, run both on the same inputs, and compare the outputs and the gradients of
the inputs, the initial states and every parameter (the backward pass of one random weighting
of all outputs, so every entry of the Jacobian counts): to 1e-10 in float64, 1e-5 in float32.
Run with the benchmark environment (``.venv-bench/bin/python -m pytest tests/peers/...``),
which has torch 2.13.0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import chainrule as cr  # noqa: E402
from chainrule.nn import attention, recurrent  # noqa: E402

TOL = {"float64": 1e-10, "float32": 1e-5}
DTYPES = list(TOL)
RNG = np.random.default_rng(2026)


def _ours_from(theirs: Any, ours: Any) -> Any:
    """``ours`` with ``theirs``'s weights, copied by name (the check that names and shapes
    agree: load_state_dict is strict)."""
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours


def _check(
    theirs_out: list[Any],
    ours_out: list[Any],
    pairs: list[tuple[Any, Any]],
    dtype: str,
) -> None:
    """Outputs equal; then the gradients of one random weighting of the outputs, for each
    (torch tensor, chainrule tensor) pair of inputs and parameters."""
    tol = TOL[dtype]
    assert len(theirs_out) == len(ours_out)
    loss_t, loss_c = 0.0, 0.0
    for t, c in zip(theirs_out, ours_out):
        assert tuple(t.shape) == c.shape
        assert c.dtype == np.dtype(dtype)
        np.testing.assert_allclose(c.numpy(), t.detach().numpy(), rtol=tol, atol=tol)
        w = RNG.normal(size=tuple(t.shape)).astype(dtype)
        loss_t = loss_t + (t * torch.from_numpy(w)).sum()
        loss_c = loss_c + cr.sum(c * w)
    loss_t.backward()
    loss_c.backward()
    for i, (t, c) in enumerate(pairs):
        assert c.grad is not None, f"pair {i}: no gradient in chainrule"
        np.testing.assert_allclose(
            c.grad.numpy(), t.grad.numpy(), rtol=tol, atol=tol, err_msg=f"gradient of pair {i}"
        )


def _inputs(shape: tuple[int, ...], dtype: str) -> tuple[Any, Any]:
    a = RNG.normal(size=shape).astype(dtype)
    return torch.tensor(a, requires_grad=True), cr.tensor(a, requires_grad=True)


def _randomized(theirs: Any) -> Any:
    """``theirs`` with every parameter drawn anew (torch starts the attention biases at 0,
    which would leave them out of the comparison of values)."""
    with torch.no_grad():
        for p in theirs.parameters():
            p.uniform_(-0.5, 0.5)
    return theirs


def _param_pairs(theirs: Any, ours: Any) -> list[tuple[Any, Any]]:
    own = dict(ours.named_parameters())
    assert list(own) == [n for n, _ in theirs.named_parameters()]  # same order too
    return [(p, own[n]) for n, p in theirs.named_parameters()]


# -- recurrent layers -------------------------------------------------------------------------
LAYERS = {
    "RNN_TANH": (lambda **k: torch.nn.RNN(**k), lambda **k: recurrent.RNN(**k)),
    "RNN_RELU": (
        lambda **k: torch.nn.RNN(nonlinearity="relu", **k),
        lambda **k: recurrent.RNN(nonlinearity="relu", **k),
    ),
    "GRU": (lambda **k: torch.nn.GRU(**k), lambda **k: recurrent.GRU(**k)),
    "LSTM": (lambda **k: torch.nn.LSTM(**k), lambda **k: recurrent.LSTM(**k)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("layers_bidirectional", [(1, False), (2, False), (1, True), (2, True)])
@pytest.mark.parametrize("initial", [False, True])
def test_recurrent_layers_agree_with_torch(dtype, kind, batch_first, layers_bidirectional, initial):
    num_layers, bidirectional = layers_bidirectional
    L, N, H_in, H = 5, 3, 4, 6
    kwargs = dict(
        input_size=H_in,
        hidden_size=H,
        num_layers=num_layers,
        batch_first=batch_first,
        bidirectional=bidirectional,
    )
    make_theirs, make_ours = LAYERS[kind]
    torch.manual_seed(0)
    theirs = make_theirs(**kwargs).to(getattr(torch, dtype))
    ours = _ours_from(theirs, make_ours(**kwargs, dtype=dtype))
    xt, xc = _inputs((N, L, H_in) if batch_first else (L, N, H_in), dtype)
    pairs = [(xt, xc)]
    state = (num_layers * (2 if bidirectional else 1), N, H)
    args_t: list[Any] = [xt]
    args_c: list[Any] = [xc]
    if initial:
        h0 = _inputs(state, dtype)
        pairs.append(h0)
        if kind == "LSTM":
            c0 = _inputs(state, dtype)
            pairs.append(c0)
            args_t.append((h0[0], c0[0]))
            args_c.append((h0[1], c0[1]))
        else:
            args_t.append(h0[0])
            args_c.append(h0[1])
    out_t, state_t = theirs(*args_t)
    out_c, state_c = ours(*args_c)
    outs_t = [out_t, *state_t] if kind == "LSTM" else [out_t, state_t]
    outs_c = [out_c, *state_c] if kind == "LSTM" else [out_c, state_c]
    _check(outs_t, outs_c, pairs + _param_pairs(theirs, ours), dtype)


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_unbatched_and_bias_free_layers_agree_with_torch(kind):
    make_theirs, make_ours = LAYERS[kind]
    kwargs = dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True, bias=False)
    theirs = make_theirs(**kwargs).double()
    ours = _ours_from(theirs, make_ours(**kwargs))
    xt, xc = _inputs((6, 3), "float64")  # (L, H_in): one sequence
    out_t, state_t = theirs(xt)
    out_c, state_c = ours(xc)
    outs_t = [out_t, *state_t] if kind == "LSTM" else [out_t, state_t]
    outs_c = [out_c, *state_c] if kind == "LSTM" else [out_c, state_c]
    _check(outs_t, outs_c, [(xt, xc), *_param_pairs(theirs, ours)], "float64")


CELLS = {
    "RNNCell": (torch.nn.RNNCell, recurrent.RNNCell, {}),
    "RNNCell_relu": (torch.nn.RNNCell, recurrent.RNNCell, {"nonlinearity": "relu"}),
    "GRUCell": (torch.nn.GRUCell, recurrent.GRUCell, {}),
    "LSTMCell": (torch.nn.LSTMCell, recurrent.LSTMCell, {}),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(CELLS))
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("initial", [False, True])
def test_cells_agree_with_torch(dtype, kind, batched, initial):
    their_type, our_type, extra = CELLS[kind]
    torch.manual_seed(1)
    theirs = their_type(4, 5, **extra).to(getattr(torch, dtype))
    ours = _ours_from(theirs, our_type(4, 5, dtype=dtype, **extra))
    xt, xc = _inputs((3, 4) if batched else (4,), dtype)
    pairs = [(xt, xc)]
    args_t: list[Any] = [xt]
    args_c: list[Any] = [xc]
    if initial:
        shape = (3, 5) if batched else (5,)
        h = _inputs(shape, dtype)
        pairs.append(h)
        if kind == "LSTMCell":
            c = _inputs(shape, dtype)
            pairs.append(c)
            args_t.append((h[0], c[0]))
            args_c.append((h[1], c[1]))
        else:
            args_t.append(h[0])
            args_c.append(h[1])
    out_t, out_c = theirs(*args_t), ours(*args_c)
    outs_t = list(out_t) if kind == "LSTMCell" else [out_t]
    outs_c = list(out_c) if kind == "LSTMCell" else [out_c]
    _check(outs_t, outs_c, pairs + _param_pairs(theirs, ours), dtype)


def test_a_chainrule_state_dict_loads_into_torch():
    ours = recurrent.LSTM(3, 4, num_layers=2, bidirectional=True, rng=0)
    theirs = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True).double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    x = RNG.normal(size=(5, 2, 3))
    np.testing.assert_allclose(
        ours(x)[0].numpy(), theirs(torch.from_numpy(x))[0].detach().numpy(), rtol=1e-12, atol=1e-12
    )


# -- attention --------------------------------------------------------------------------------
def _mask(kind: str, n_q: int, n_k: int, dtype: str) -> Any:
    """A mask in SDPA's convention (True = take part), every query keeping key 0 unless
    ``kind`` asks for a fully masked row."""
    if kind == "none":
        return None
    allowed = RNG.random((n_q, n_k)) < 0.6
    allowed[:, 0] = True
    if kind == "bool":
        return allowed
    if kind == "dead_row":
        allowed[1] = False
        return allowed
    return RNG.normal(size=(2, 1, n_q, n_k)).astype(dtype)  # "float": added, per batch entry


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask", ["none", "bool", "float", "causal", "dead_row"])
@pytest.mark.parametrize("scale", [None, 0.4])
def test_scaled_dot_product_attention_agrees_with_torch(dtype, mask, scale):
    n_q, n_k = 4, 4 if mask == "causal" else 6
    q = _inputs((2, 3, n_q, 5), dtype)
    k = _inputs((2, 3, n_k, 5), dtype)
    v = _inputs((2, 3, n_k, 7), dtype)
    m = _mask("none" if mask == "causal" else mask, n_q, n_k, dtype)
    kwargs: dict[str, Any] = {"scale": scale, "is_causal": mask == "causal"}
    out_t = torch.nn.functional.scaled_dot_product_attention(
        q[0], k[0], v[0], attn_mask=None if m is None else torch.from_numpy(m), **kwargs
    )
    out_c = attention.scaled_dot_product_attention(q[1], k[1], v[1], attn_mask=m, **kwargs)
    _check([out_t], [out_c], [q, k, v], dtype)
    if mask == "dead_row":  # torch's SDPA gives 0 there too, and no NaN
        assert np.all(out_c.numpy()[..., 1, :] == 0)


MHA_CONFIGS = {
    "default": {},
    "kdim_vdim": {"kdim": 3, "vdim": 5},
    "bias_kv_zero_attn": {"add_bias_kv": True, "add_zero_attn": True},
    "no_bias": {"bias": False},
}
MHA_MASKS = ["none", "attn_bool", "padding_bool", "both_bool", "attn_3d_float", "padding_float"]


def _mha_masks(kind: str, n: int, heads: int, n_q: int, n_k: int, dtype: str) -> dict[str, Any]:
    """MultiheadAttention's masks (True = ignore), leaving key 0 open to every query (torch's
    need_weights path gives NaN on a fully masked row)."""
    ignore = RNG.random((n_q, n_k)) < 0.4
    ignore[:, 0] = False
    padding = RNG.random((n, n_k)) < 0.4
    padding[:, 0] = False
    return {
        "none": {},
        "attn_bool": {"attn_mask": ignore},
        "padding_bool": {"key_padding_mask": padding},
        "both_bool": {"attn_mask": ignore, "key_padding_mask": padding},
        "attn_3d_float": {"attn_mask": RNG.normal(size=(n * heads, n_q, n_k)).astype(dtype)},
        "padding_float": {
            "attn_mask": ignore,
            "key_padding_mask": np.where(padding, -np.inf, RNG.normal(size=(n, n_k))).astype(dtype),
        },
    }[kind]


# (torch deprecates a boolean attn_mask with a float key_padding_mask; both still work)
@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask:UserWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", list(MHA_CONFIGS))
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("masks", MHA_MASKS)
@pytest.mark.parametrize("average", [True, False])
def test_multihead_attention_agrees_with_torch(dtype, config, batch_first, masks, average):
    E, heads, n, n_q, n_k = 8, 2, 3, 4, 6
    kw = MHA_CONFIGS[config]
    torch.manual_seed(2)
    theirs = torch.nn.MultiheadAttention(E, heads, batch_first=batch_first, **kw)
    theirs = _randomized(theirs.to(getattr(torch, dtype)))
    ours = attention.MultiheadAttention(E, heads, batch_first=batch_first, dtype=dtype, **kw)
    ours = _ours_from(theirs, ours)

    def shaped(length: int, features: int) -> tuple[Any, Any]:
        return _inputs((n, length, features) if batch_first else (length, n, features), dtype)

    q, k, v = shaped(n_q, E), shaped(n_k, kw.get("kdim", E)), shaped(n_k, kw.get("vdim", E))
    m = _mha_masks(masks, n, heads, n_q, n_k, dtype)
    common = {"average_attn_weights": average}
    out_t, w_t = theirs(
        q[0], k[0], v[0], **{a: torch.from_numpy(b) for a, b in m.items()}, **common
    )
    out_c, w_c = ours(q[1], k[1], v[1], **m, **common)
    _check([out_t, w_t], [out_c, w_c], [q, k, v, *_param_pairs(theirs, ours)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_multihead_attention_causal_hint_and_unbatched_agree_with_torch(dtype):
    torch.manual_seed(3)
    theirs = _randomized(torch.nn.MultiheadAttention(6, 3).to(getattr(torch, dtype)))
    ours = _ours_from(theirs, attention.MultiheadAttention(6, 3, dtype=dtype))
    causal = ~np.tril(np.ones((5, 5), bool))  # True = ignore: the keys after each query
    x = _inputs((5, 6), dtype)  # unbatched self-attention
    out_t, w_t = theirs(x[0], x[0], x[0], attn_mask=torch.from_numpy(causal), is_causal=True)
    out_c, w_c = ours(x[1], x[1], x[1], attn_mask=causal, is_causal=True)
    _check([out_t, w_t], [out_c, w_c], [x, *_param_pairs(theirs, ours)], dtype)


def test_multihead_attention_fully_masked_row_agrees_with_torch_sdpa_path():
    # need_weights=False: torch takes its SDPA path, where a query with no key gets 0 (its
    # need_weights path gives NaN there); chainrule gives 0 on both paths
    torch.manual_seed(4)
    theirs = _randomized(torch.nn.MultiheadAttention(4, 2, batch_first=True).double())
    ours = _ours_from(theirs, attention.MultiheadAttention(4, 2, batch_first=True))
    ignore = np.zeros((3, 5), bool)
    ignore[1] = True
    q, kv = _inputs((2, 3, 4), "float64"), _inputs((2, 5, 4), "float64")
    out_t, _ = theirs(q[0], kv[0], kv[0], attn_mask=torch.from_numpy(ignore), need_weights=False)
    out_c, _ = ours(q[1], kv[1], kv[1], attn_mask=ignore, need_weights=False)
    _check([out_t], [out_c], [q, kv, *_param_pairs(theirs, ours)], "float64")
