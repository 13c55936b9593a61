"""cr.nn.attention: scaled_dot_product_attention and MultiheadAttention.

Closed forms, an independent NumPy reference written here, float64 gradchecks, fully masked
rows (value 0, no NaN anywhere in the gradients), and the errors for inputs that do not fit.
(The comparison with PyTorch itself is in tests/peers/test_torch_recurrent_attention.py.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule as cr
from chainrule.nn.attention import MultiheadAttention, scaled_dot_product_attention

RNG = np.random.default_rng(11)


def _np(t):
    return np.asarray(t.numpy() if isinstance(t, cr.Tensor) else t)


def _reference(q, k, v, allowed=None, additive=None, scale=None):
    """softmax(q k^T scale + mask) v in NumPy, the masked-out keys dropped from the sum."""
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if additive is not None:
        s = s + additive
    if allowed is not None:
        s = np.where(allowed, s, -np.inf)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    w = e / e.sum(axis=-1, keepdims=True)
    return w @ v, w


def _qkv(*lead, n_q=4, n_k=5, e=3, ev=2):
    return (
        RNG.normal(size=(*lead, n_q, e)),
        RNG.normal(size=(*lead, n_k, e)),
        RNG.normal(size=(*lead, n_k, ev)),
    )


# -- scaled_dot_product_attention -------------------------------------------------------------
@pytest.mark.parametrize("lead", [(), (2,), (2, 3)])
def test_sdpa_shapes_and_values_against_numpy(lead):
    q, k, v = _qkv(*lead)
    out = scaled_dot_product_attention(q, k, v)
    assert out.shape == (*lead, 4, 2)
    np.testing.assert_allclose(_np(out), _reference(q, k, v)[0], rtol=1e-13, atol=1e-15)


def test_sdpa_batch_dimensions_broadcast():
    q, _, _ = _qkv(2, 3)
    _, k, v = _qkv(3)  # one key/value set for both batch entries
    out = scaled_dot_product_attention(q, k[None], v[None])
    assert out.shape == (2, 3, 4, 2)
    np.testing.assert_allclose(_np(out)[1], _reference(q[1], k, v)[0], rtol=1e-13, atol=1e-15)


def test_one_key_returns_its_value_for_any_query():
    q, k = RNG.normal(size=(6, 3)), RNG.normal(size=(1, 3))
    v = np.array([[2.5, -1.0, 0.25]])
    out = scaled_dot_product_attention(q, k, v)
    np.testing.assert_array_equal(_np(out), np.repeat(v, 6, axis=0))


def test_equal_scores_average_the_values():
    q = np.zeros((2, 3))  # every score 0: uniform weights
    k, v = RNG.normal(size=(5, 3)), RNG.normal(size=(5, 4))
    out = scaled_dot_product_attention(q, k, v)
    np.testing.assert_allclose(_np(out), np.tile(v.mean(axis=0), (2, 1)), rtol=1e-14, atol=1e-15)


def test_causal_attention_sees_only_the_past():
    q, k, v = _qkv(2, n_q=5, n_k=5)
    out = _np(scaled_dot_product_attention(q, k, v, is_causal=True))
    np.testing.assert_allclose(out[:, 0], v[:, 0], rtol=1e-14, atol=0)  # the first: itself only
    for i in range(5):  # query i is attention over keys 0..i alone
        ref, _ = _reference(q[:, i : i + 1], k[:, : i + 1], v[:, : i + 1])
        np.testing.assert_allclose(out[:, i], ref[:, 0], rtol=1e-13, atol=1e-15)
    # changing a later key does not change an earlier output
    k2 = k.copy()
    k2[:, 3] += 10.0
    out2 = _np(scaled_dot_product_attention(q, k2, v, is_causal=True))
    np.testing.assert_array_equal(out2[:, :3], out[:, :3])


def test_causal_with_more_keys_than_queries_is_the_top_left_triangle():
    q, k, v = _qkv(n_q=2, n_k=4)
    out = scaled_dot_product_attention(q, k, v, is_causal=True)
    allowed = np.tril(np.ones((2, 4), bool))
    np.testing.assert_allclose(_np(out), _reference(q, k, v, allowed)[0], rtol=1e-13, atol=1e-15)


def test_boolean_mask_takes_part_where_true_and_float_mask_is_added():
    q, k, v = _qkv(2)
    allowed = RNG.random((4, 5)) < 0.6
    allowed[:, 0] = True
    out = scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    np.testing.assert_allclose(_np(out), _reference(q, k, v, allowed)[0], rtol=1e-13, atol=1e-15)
    bias = RNG.normal(size=(2, 1, 5))
    out = scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=0.7)
    ref = _reference(q, k, v, additive=bias, scale=0.7)[0]
    np.testing.assert_allclose(_np(out), ref, rtol=1e-13, atol=1e-15)
    # a float mask of -inf is the same as a boolean False
    as_float = np.where(allowed, 0.0, -np.inf)
    a = scaled_dot_product_attention(q, k, v, attn_mask=as_float)
    b = scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    np.testing.assert_allclose(_np(a), _np(b), rtol=1e-15, atol=0)


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_a_fully_masked_row_gives_zero_and_no_nan_gradients(kind):
    q, k, v = _qkv(2)
    allowed = np.ones((4, 5), bool)
    allowed[1] = False  # query 1 may attend to nothing
    allowed[2, 3] = False
    mask = allowed if kind == "bool" else np.where(allowed, 0.0, -np.inf)
    tq, tk, tv = (cr.tensor(a, requires_grad=True) for a in (q, k, v))
    out = scaled_dot_product_attention(tq, tk, tv, attn_mask=mask)
    w = RNG.normal(size=out.shape)
    cr.sum(out * w).backward()
    assert np.all(_np(out)[:, 1] == 0)
    for t in (tq, tk, tv):
        assert np.all(np.isfinite(_np(t.grad)))
    assert np.all(_np(tq.grad)[:, 1] == 0)
    # the other rows' gradients are those of the problem without the dead row
    keep = [0, 2, 3]
    sq, sk, sv = (cr.tensor(a, requires_grad=True) for a in (q[:, keep], k, v))
    out2 = scaled_dot_product_attention(sq, sk, sv, attn_mask=allowed[keep])
    cr.sum(out2 * w[:, keep]).backward()
    np.testing.assert_allclose(_np(out)[:, keep], _np(out2), rtol=1e-14, atol=0)
    np.testing.assert_allclose(_np(tq.grad)[:, keep], _np(sq.grad), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(_np(tk.grad), _np(sk.grad), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(_np(tv.grad), _np(sv.grad), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"is_causal": True}, {"attn_mask": "bool"}, {"attn_mask": "float"}, {"scale": 0.3}],
)
def test_sdpa_gradcheck(kwargs):
    q, k, v = _qkv(2, n_q=3, n_k=3, e=2, ev=2)
    if kwargs.get("attn_mask") == "bool":
        kwargs = {"attn_mask": np.array([[True, False, True], [True, True, False], [False] * 3])}
    elif kwargs.get("attn_mask") == "float":
        kwargs = {"attn_mask": RNG.normal(size=(3, 3))}
    f = lambda q, k, v: scaled_dot_product_attention(q, k, v, **kwargs)
    assert cr.gradcheck(f, q, k, v, check_forward=True)


def test_sdpa_dropout_is_seeded_and_scales_the_kept_weights():
    q, k, v = _qkv(2)
    a = scaled_dot_product_attention(q, k, v, dropout_p=0.5, rng=3)
    b = scaled_dot_product_attention(q, k, v, dropout_p=0.5, rng=3)
    np.testing.assert_array_equal(_np(a), _np(b))
    assert not np.allclose(_np(a), _np(scaled_dot_product_attention(q, k, v)))
    # with one key, each output row is either 0 (dropped) or value / (1 - p)
    out = _np(scaled_dot_product_attention(q[0], k[0, :1], v[0, :1], dropout_p=0.5, rng=0))
    for row in out:
        assert np.allclose(row, 0) or np.allclose(row, v[0, 0] / 0.5)


# -- MultiheadAttention -----------------------------------------------------------------------
def _numpy_mha(mha, q, k, v, attn_allowed=None):
    """MultiheadAttention in NumPy for batch-first inputs, from its definition."""
    e, h = mha.embed_dim, mha.num_heads
    if mha.in_proj_weight is not None:
        w = _np(mha.in_proj_weight)
        wq, wk, wv = w[:e], w[e : 2 * e], w[2 * e :]
    else:
        wq, wk, wv = (_np(p) for p in (mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight))
    b = _np(mha.in_proj_bias) if mha.in_proj_bias is not None else np.zeros(3 * e)
    qp, kp, vp = q @ wq.T + b[:e], k @ wk.T + b[e : 2 * e], v @ wv.T + b[2 * e :]

    def heads(x):
        return x.reshape(x.shape[0], x.shape[1], h, e // h).transpose(0, 2, 1, 3)

    out, w = _reference(heads(qp), heads(kp), heads(vp), allowed=attn_allowed)
    out = out.transpose(0, 2, 1, 3).reshape(q.shape[0], q.shape[1], e)
    out = out @ _np(mha.out_proj.weight).T
    if mha.out_proj.bias is not None:
        out = out + _np(mha.out_proj.bias)
    return out, w


def _randomize(module):
    for p in module.parameters():
        p.data = RNG.uniform(-0.5, 0.5, p.shape)
    return module


def test_mha_parameter_names_shapes_and_initialisation():
    mha = MultiheadAttention(8, 2, rng=0)
    got = [(n, p.shape) for n, p in mha.named_parameters()]
    assert got == [
        ("in_proj_weight", (24, 8)),
        ("in_proj_bias", (24,)),
        ("out_proj.weight", (8, 8)),
        ("out_proj.bias", (8,)),
    ]
    assert np.abs(_np(mha.in_proj_weight)).max() <= math.sqrt(6 / (8 + 24))  # Xavier on (3E, E)
    assert np.all(_np(mha.in_proj_bias) == 0) and np.all(_np(mha.out_proj.bias) == 0)
    assert np.abs(_np(mha.out_proj.weight)).max() <= 1 / math.sqrt(8)
    other = MultiheadAttention(8, 2, kdim=3, vdim=5, bias=False, add_bias_kv=True, rng=0)
    assert [(n, p.shape) for n, p in other.named_parameters()] == [
        ("q_proj_weight", (8, 8)),
        ("k_proj_weight", (8, 3)),
        ("v_proj_weight", (8, 5)),
        ("bias_k", (1, 1, 8)),
        ("bias_v", (1, 1, 8)),
        ("out_proj.weight", (8, 8)),
    ]
    assert other.in_proj_weight is None and other.in_proj_bias is None


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("batched", [True, False])
def test_mha_shapes_for_every_layout(batch_first, batched):
    mha = MultiheadAttention(6, 3, kdim=4, vdim=5, batch_first=batch_first, rng=0)
    L, S, N = 3, 7, 2

    def shaped(length, features):
        if not batched:
            return RNG.normal(size=(length, features))
        return RNG.normal(size=(N, length, features) if batch_first else (length, N, features))

    out, w = mha(shaped(L, 6), shaped(S, 4), shaped(S, 5))
    want = (N, L, 6) if batch_first else (L, N, 6)
    assert out.shape == (want if batched else (L, 6))
    assert w.shape == ((N, L, S) if batched else (L, S))
    _, per_head = mha(shaped(L, 6), shaped(S, 4), shaped(S, 5), average_attn_weights=False)
    assert per_head.shape == ((N, 3, L, S) if batched else (3, L, S))
    out, none = mha(shaped(L, 6), shaped(S, 4), shaped(S, 5), need_weights=False)
    assert none is None


def test_mha_equals_its_definition_in_numpy_and_weights_sum_to_one():
    mha = _randomize(MultiheadAttention(6, 2, batch_first=True, rng=0))
    q, k = RNG.normal(size=(2, 3, 6)), RNG.normal(size=(2, 4, 6))
    out, w = mha(q, k, k, average_attn_weights=False)
    ref_out, ref_w = _numpy_mha(mha, q, k, k)
    np.testing.assert_allclose(_np(out), ref_out, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(_np(w), ref_w, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(_np(w).sum(axis=-1), 1.0, rtol=1e-14)


def test_mha_masks_are_true_to_ignore_and_combine():
    mha = _randomize(MultiheadAttention(4, 2, batch_first=True, rng=0))
    q, k = RNG.normal(size=(2, 3, 4)), RNG.normal(size=(2, 5, 4))
    ignore = RNG.random((3, 5)) < 0.4
    ignore[:, 0] = False
    padding = np.zeros((2, 5), bool)
    padding[1, 3:] = True  # the second sequence has 3 keys
    out, w = mha(q, k, k, attn_mask=ignore, key_padding_mask=padding, average_attn_weights=False)
    allowed = ~ignore[None, None] & ~padding[:, None, None, :]
    ref_out, ref_w = _numpy_mha(mha, q, k, k, allowed)
    np.testing.assert_allclose(_np(out), ref_out, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(_np(w), ref_w, rtol=1e-13, atol=1e-15)
    assert np.all(_np(w)[1, :, :, 3:] == 0)
    # a float key_padding_mask of -inf does the same; a 3-D attn_mask gives one mask per head
    out_f, _ = mha(q, k, k, attn_mask=ignore, key_padding_mask=np.where(padding, -np.inf, 0.0))
    np.testing.assert_allclose(_np(out_f), ref_out, rtol=1e-13, atol=1e-14)
    per_head = np.broadcast_to(ignore, (4, 3, 5)).copy()
    per_head[1] = False  # batch 0, head 1: sees every key
    _, w3 = mha(q, k, k, attn_mask=per_head, average_attn_weights=False)
    assert np.all(_np(w3)[0, 1] > 0) and np.all(_np(w3)[0, 0][ignore] == 0)


def test_mha_fully_masked_query_gives_out_proj_bias_and_finite_gradients():
    mha = _randomize(MultiheadAttention(4, 2, batch_first=True, rng=0))
    ignore = np.zeros((3, 5), bool)
    ignore[2] = True  # query 2 sees no key
    x = cr.tensor(RNG.normal(size=(2, 3, 4)), requires_grad=True)
    kv = cr.tensor(RNG.normal(size=(2, 5, 4)), requires_grad=True)
    out, w = mha(x, kv, kv, attn_mask=ignore)
    np.testing.assert_allclose(_np(out)[:, 2], np.tile(_np(mha.out_proj.bias), (2, 1)), atol=0)
    assert np.all(_np(w)[:, 2] == 0)
    cr.sum(out * RNG.normal(size=out.shape)).backward()
    for t in (x, kv, *mha.parameters()):
        assert np.all(np.isfinite(_np(t.grad)))


def test_mha_gradcheck_inputs_and_every_parameter():
    mha = _randomize(MultiheadAttention(4, 2, kdim=3, vdim=2, add_bias_kv=True, rng=0))
    names = [n for n, _ in mha.named_parameters()]
    values = [_np(p).copy() for p in mha.parameters()]
    q, k, v = RNG.normal(size=(2, 2, 4)), RNG.normal(size=(3, 2, 3)), RNG.normal(size=(3, 2, 2))
    ignore = np.array([[False, True, False], [False, False, True]])
    w_out = RNG.normal(size=(2, 2, 4))

    def loss(q, k, v, *ps):
        saved = {}
        for name, p in zip(names, ps):  # out_proj.weight lives on the submodule
            owner, _, attr = name.rpartition(".")
            module = mha.out_proj if owner else mha
            saved[name] = (module, attr, getattr(module, attr))
            object.__setattr__(module, attr, p)
        try:
            out, w = mha(q, k, v, attn_mask=ignore)
        finally:
            for module, attr, old in saved.values():
                object.__setattr__(module, attr, old)
        return cr.sum(out * w_out) + cr.sum(w * w)

    assert cr.gradcheck(loss, q, k, v, *values)


def test_mha_dropout_only_in_training():
    mha = _randomize(MultiheadAttention(4, 2, dropout=0.5, rng=0))
    x = RNG.normal(size=(3, 2, 4))
    mha.eval()
    a, b = mha(x, x, x)[0], mha(x, x, x)[0]
    np.testing.assert_array_equal(_np(a), _np(b))
    mha.train()
    c = mha(x, x, x)[0]
    assert not np.allclose(_np(a), _np(c))


def test_float32_layers_stay_float32_with_float64_masks():
    mha = MultiheadAttention(4, 2, batch_first=True, dtype="float32", rng=0)
    x = RNG.normal(size=(2, 3, 4)).astype(np.float32)
    ignore = np.zeros((3, 3), bool)
    ignore[0, 2] = True
    for masks in [
        {"attn_mask": RNG.normal(size=(3, 3))},
        {"attn_mask": ignore, "key_padding_mask": np.zeros((2, 3))},
    ]:
        out, w = mha(x, x, x, **masks)
        assert out.dtype == np.float32 and w.dtype == np.float32
    out = scaled_dot_product_attention(x, x, x, attn_mask=RNG.normal(size=(3, 3)))
    assert out.dtype == np.float32


# -- inputs that do not fit -------------------------------------------------------------------
def test_num_heads_must_divide_embed_dim():
    with pytest.raises(ValueError, match=r"embed_dim \(10\) must be a positive multiple of num_"):
        MultiheadAttention(10, 3)


def test_mha_wrong_feature_size_names_the_shapes():
    mha = MultiheadAttention(4, 2, kdim=3)
    with pytest.raises(
        ValueError, match=r"MultiheadAttention: expected key .* 3 features.*\(5, 2, 4\)"
    ):
        mha(np.zeros((2, 2, 4)), np.zeros((5, 2, 4)), np.zeros((5, 2, 4)))
    with pytest.raises(ValueError, match="all batched or all not"):
        mha(np.zeros((2, 2, 4)), np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="same length and batch"):
        mha(np.zeros((2, 2, 4)), np.zeros((5, 2, 3)), np.zeros((4, 2, 4)))


def test_mha_masks_of_the_wrong_shape():
    mha = MultiheadAttention(4, 2, batch_first=True)
    q, k = np.zeros((2, 3, 4)), np.zeros((2, 5, 4))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(5, 3\).*\(3, 5\).*\(4, 3, 5\)"):
        mha(q, k, k, attn_mask=np.zeros((5, 3), bool))
    with pytest.raises(
        ValueError, match=r"key_padding_mask of shape \(2, 4\).*\(N, S\) = \(2, 5\)"
    ):
        mha(q, k, k, key_padding_mask=np.zeros((2, 4), bool))
    with pytest.raises(ValueError, match="is_causal=True is a hint"):
        mha(q, q, q, is_causal=True)


def test_sdpa_inputs_and_masks_that_do_not_fit():
    q, k, v = _qkv(2)
    with pytest.raises(
        ValueError, match=r"scaled_dot_product_attention: .*\(2, 4, 3\), \(2, 5, 2\)"
    ):
        scaled_dot_product_attention(q, k[..., :2], v)
    with pytest.raises(
        ValueError, match=r"attn_mask of shape \(4, 4\) does not broadcast.*\(2, 4, 5\)"
    ):
        scaled_dot_product_attention(q, k, v, attn_mask=np.ones((4, 4), bool))
    with pytest.raises(TypeError, match="boolean or floating, got dtype int64"):
        scaled_dot_product_attention(q, k, v, attn_mask=np.ones((4, 5), np.int64))
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        scaled_dot_product_attention(q, k, v, attn_mask=np.ones((4, 5), bool), is_causal=True)
    with pytest.raises(ValueError, match="do not broadcast together"):
        scaled_dot_product_attention(q, k[:1].repeat(3, 0), v)
