"""Attention with PyTorch's semantics: ``scaled_dot_product_attention`` and
``MultiheadAttention`` (its arguments, parameter names and mask conventions).

Two mask conventions meet here, as in PyTorch: for ``scaled_dot_product_attention`` a boolean
mask says which keys *take part* (True = attend); for ``MultiheadAttention`` a boolean
``attn_mask`` or ``key_padding_mask`` says which keys are *masked out* (True = ignore). A
floating mask is added to the scores in both. A query whose keys are all masked out gets
weights 0 and output 0 (PyTorch's SDPA does the same), and its gradients are 0, not NaN.

>>> import chainrule as cr, numpy as np
>>> q = cr.tensor(np.ones((2, 3, 4)))
>>> out = cr.nn.attention.scaled_dot_product_attention(q, q, q, is_causal=True)
>>> out.shape
(2, 3, 4)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import ops
from ..backends.gaps import mT
from ..engine.tensor import Tensor
from . import functional as F
from . import init
from .layers import Linear
from .module import Module, Parameter

__all__ = ["scaled_dot_product_attention", "MultiheadAttention"]


def _as_input(x: Any) -> Any:
    return x if isinstance(x, Tensor) else ops.asarray(x)


def _raw(x: Any) -> Any:
    return x._data if isinstance(x, Tensor) else np.asarray(x)


def _is_bool(mask: Any) -> bool:
    return _raw(mask).dtype == np.bool_


def scaled_dot_product_attention(
    query: Any,
    key: Any,
    value: Any,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    rng: Any = None,
) -> Any:
    """``softmax(query @ key^T * scale + mask) @ value``, PyTorch's
    ``F.scaled_dot_product_attention``.

    Parameters
    ----------
    query, key, value : arrays or Tensors
        Shapes (..., L, E), (..., S, E) and (..., S, Ev); the leading dimensions broadcast.
    attn_mask : array or Tensor, optional
        Broadcastable to (..., L, S). Boolean: True where a query may attend to a key.
        Floating: added to the scores (``-inf`` masks out).
    dropout_p : float
        Dropout on the attention weights (applied whenever > 0, as in PyTorch).
    is_causal : bool
        Query i attends to keys 0..i (the lower triangle of an (L, S) matrix); not together
        with ``attn_mask``.
    scale : float, optional
        The factor of the scores; 1/sqrt(E) by default.
    rng : int or Generator, optional
        The source of the dropout mask.

    Returns
    -------
    Tensor of shape (..., L, Ev). A query with every key masked out gets 0.

    Examples
    --------
    >>> import chainrule as cr, numpy as np
    >>> q, k = np.zeros((1, 2)), np.zeros((1, 2))
    >>> v = np.array([[3.0, -1.0]])
    >>> out = cr.nn.attention.scaled_dot_product_attention(q, k, v)
    >>> out.tolist()  # one key: its value, whatever the query
    [[3.0, -1.0]]
    """
    out, _ = _attention(
        "scaled_dot_product_attention", query, key, value, attn_mask, dropout_p, is_causal,
        scale, rng,
    )  # fmt: skip
    return out


def _attention(
    owner: str,
    query: Any,
    key: Any,
    value: Any,
    attn_mask: Any,
    dropout_p: float,
    is_causal: bool,
    scale: float | None,
    rng: Any,
) -> tuple[Any, Any]:
    """(output, attention weights) with SDPA's mask convention; ``owner`` names the caller
    in errors."""
    q, k, v = _as_input(query), _as_input(key), _as_input(value)
    if min(q.ndim, k.ndim, v.ndim) < 2 or q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"{owner}: expected query (..., L, E), key (..., S, E) and value (..., S, Ev), got "
            f"{q.shape}, {k.shape} and {v.shape}: query and key must share E, key and value S"
        )
    try:
        batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except ValueError:
        raise ValueError(
            f"{owner}: the leading (batch) dimensions of query {q.shape}, key {k.shape} and "
            f"value {v.shape} do not broadcast together"
        ) from None
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"{owner}: dropout_p must be in [0, 1), got {dropout_p}")
    n_q, n_k = q.shape[-2], k.shape[-2]
    if is_causal:
        if attn_mask is not None:
            raise ValueError(
                f"{owner}: pass either attn_mask or is_causal=True, not both (for a causal "
                "mask combined with another, give their logical and as attn_mask)"
            )
        attn_mask = np.tril(np.ones((n_q, n_k), dtype=bool))  # query i sees keys 0..i
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    # (the queries scaled rather than the scores: (L, E) products, not (L, S))
    scores = ops.matmul(q * scale, mT(k))
    if attn_mask is None:
        weights = ops.softmax(scores, axis=-1)
    else:
        weights = _masked_softmax(owner, scores, attn_mask, (*batch, n_q, n_k))
    if dropout_p > 0:
        weights = F.dropout(weights, dropout_p, True, rng)
    return ops.matmul(weights, v), weights


def _masked_softmax(owner: str, scores: Any, mask: Any, shape: tuple[int, ...]) -> Any:
    """softmax(scores + mask) over the keys, 0 on rows whose keys are all masked out."""
    raw = _raw(mask)
    if raw.dtype != np.bool_ and raw.dtype.kind != "f":
        raise TypeError(
            f"{owner}: attn_mask must be boolean or floating, got dtype {raw.dtype}; convert "
            "it with mask.astype(bool)"
        )
    try:
        np.broadcast_shapes(raw.shape, shape)
    except ValueError:
        raise ValueError(
            f"{owner}: attn_mask of shape {raw.shape} does not broadcast to the scores' shape "
            f"{shape} (batch..., L queries, S keys)"
        ) from None
    if raw.dtype == np.bool_:
        # a row whose keys are all masked out is read off the mask (small: it broadcasts)
        # rather than the scores; a causal mask has none, and the softmax then runs alone
        scores = ops.where(mask, scores, -np.inf)
        dead_rows = ~np.any(raw, axis=-1, keepdims=True)
        if not dead_rows.any():
            return ops.softmax(scores, axis=-1)
        weights = ops.softmax(ops.where(dead_rows, 0.0, scores), axis=-1)
        return ops.where(dead_rows, 0.0, weights)
    if raw.dtype != scores.dtype:  # a float64 mask does not turn float32 scores to float64
        scores = scores + (
            ops.astype(mask, dtype=scores.dtype)
            if isinstance(mask, Tensor)
            else raw.astype(scores.dtype)
        )
    else:
        scores = scores + mask
    # NOTE: a row of only -inf would give softmax 0/0 = NaN, and NaN gradients that reach every
    # row through the key's matmul. Such rows are set to 0 before the softmax (a finite,
    # uniform row) and their weights to 0 after: value 0, gradient 0.
    dead = ops.all(ops.equal(scores, -np.inf), axis=-1, keepdims=True)
    weights = ops.softmax(ops.where(dead, 0.0, scores), axis=-1)
    return ops.where(dead, 0.0, weights)


# -- the layer --------------------------------------------------------------------------------
class MultiheadAttention(Module):
    """Multi-head attention as in PyTorch's ``nn.MultiheadAttention``: the same arguments,
    parameters (``in_proj_weight`` (3E, E) and ``in_proj_bias``, or ``q_proj_weight``,
    ``k_proj_weight``, ``v_proj_weight`` when kdim or vdim differ from embed_dim;
    ``out_proj.weight``, ``out_proj.bias``; ``bias_k``, ``bias_v`` with ``add_bias_kv``) and
    initialisation (Xavier-uniform projections, zero biases).

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)``: query (L, N, E), key (S, N, kdim), value
    (S, N, vdim), or (N, L, E) ... when ``batch_first``, or (L, E) ... unbatched.
    ``key_padding_mask`` (N, S) and ``attn_mask`` (L, S) or (N * num_heads, L, S): boolean True
    = ignore that key, or floating = added to the scores. ``is_causal`` is a hint that
    ``attn_mask`` is the causal mask (which must be given). Returns ``(output, weights)``:
    output like query with E features; weights (N, L, S) averaged over heads, (N, num_heads, L,
    S) if not ``average_attn_weights``, or None if not ``need_weights``. A query whose keys are
    all masked out gets output ``out_proj.bias`` and weights 0 (PyTorch's SDPA path; its
    need_weights path gives NaN there).

    >>> import chainrule as cr
    >>> mha = cr.nn.attention.MultiheadAttention(8, 2, batch_first=True, rng=0)
    >>> [name for name, _ in mha.named_parameters()]
    ['in_proj_weight', 'in_proj_bias', 'out_proj.weight', 'out_proj.bias']
    >>> x = cr.zeros((3, 5, 8))
    >>> out, weights = mha(x, x, x)
    >>> out.shape, weights.shape
    ((3, 5, 8), (3, 5, 5))
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        rng: Any = None,
        dtype: Any = "float64",
    ) -> None:
        super().__init__()
        if embed_dim < 1 or num_heads < 1 or embed_dim % num_heads:
            raise ValueError(
                f"MultiheadAttention: embed_dim ({embed_dim}) must be a positive multiple of "
                f"num_heads ({num_heads}): each head gets embed_dim // num_heads features"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1), got {dropout}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout, self.batch_first = float(dropout), batch_first
        self.add_zero_attn = add_zero_attn
        self.rng = init.generator(rng) if rng is not None else None  # the dropout's
        gen = init.generator(rng)
        e = embed_dim
        self.in_proj_weight: Parameter | None
        self.q_proj_weight: Parameter | None
        self.k_proj_weight: Parameter | None
        self.v_proj_weight: Parameter | None
        self.bias_k: Parameter | None
        self.bias_v: Parameter | None
        if self._qkv_same_embed_dim:  # registered in PyTorch's order: the state_dict's order
            self.in_proj_weight = Parameter(init.xavier_uniform((3 * e, e), 1.0, gen, dtype))
            self.q_proj_weight = self.k_proj_weight = self.v_proj_weight = None
        else:
            self.in_proj_weight = None
            self.q_proj_weight = Parameter(init.xavier_uniform((e, e), 1.0, gen, dtype))
            self.k_proj_weight = Parameter(init.xavier_uniform((e, self.kdim), 1.0, gen, dtype))
            self.v_proj_weight = Parameter(init.xavier_uniform((e, self.vdim), 1.0, gen, dtype))
        self.in_proj_bias = Parameter(np.zeros(3 * e, dtype=dtype)) if bias else None
        self.out_proj = Linear(e, e, bias=bias, rng=gen, dtype=dtype)
        if bias:
            self.out_proj.bias._data = self.out_proj.bias._data * 0
        if add_bias_kv:  # Xavier-normal of a (1, 1, E) tensor: std sqrt(2 / (E + E))
            std = 1.0 / math.sqrt(e)
            self.bias_k = Parameter(gen.normal(0.0, std, (1, 1, e)).astype(dtype))
            self.bias_v = Parameter(gen.normal(0.0, std, (1, 1, e)).astype(dtype))
        else:
            self.bias_k = self.bias_v = None

    def _projections(self) -> list[tuple[Any, Any]]:
        """(weight, bias) of the query, key and value projections."""
        e, b = self.embed_dim, self.in_proj_bias
        biases = [None] * 3 if b is None else [b[:e], b[e : 2 * e], b[2 * e :]]
        w = self.in_proj_weight
        if w is not None:
            return list(zip([w[:e], w[e : 2 * e], w[2 * e :]], biases))
        return list(zip([self.q_proj_weight, self.k_proj_weight, self.v_proj_weight], biases))

    def forward(
        self,
        query: Any,
        key: Any,
        value: Any,
        key_padding_mask: Any = None,
        need_weights: bool = True,
        attn_mask: Any = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Any, Any]:
        q, k, v = (_as_input(t) for t in (query, key, value))
        batched = self._check(q, k, v)
        if is_causal and attn_mask is None:
            raise ValueError(
                "MultiheadAttention: is_causal=True is a hint that attn_mask is the causal mask, "
                "and needs that mask: pass attn_mask=~np.tril(np.ones((L, L), bool)) (True = "
                "ignore) with it, or call scaled_dot_product_attention(..., is_causal=True)"
            )
        if not batched:  # one sequence: a batch of one, removed again at the end
            q, k, v = (ops.expand_dims(t, 0) for t in (q, k, v))
        elif not self.batch_first:  # (L, N, E) -> (N, L, E): the batch leads inside
            q, k, v = (ops.swapaxes(t, 0, 1) for t in (q, k, v))
        n, n_q, n_k = q.shape[0], q.shape[1], k.shape[1]
        mask = self._mask(attn_mask, key_padding_mask, n, n_q, n_k, batched)
        (wq, bq), (wk, bk), (wv, bv) = self._projections()
        q, k, v = ops.linear(q, wq, bq), ops.linear(k, wk, bk), ops.linear(v, wv, bv)
        if self.bias_k is not None:  # one more key and value, learned, open to every query
            k = ops.concatenate([k, ops.broadcast_to(self.bias_k, (n, 1, self.embed_dim))], 1)
            v = ops.concatenate([v, ops.broadcast_to(self.bias_v, (n, 1, self.embed_dim))], 1)
            mask = _one_more_key(mask)
        q, k, v = (self._heads(t) for t in (q, k, v))  # (N, heads, length, head_dim)
        if self.add_zero_attn:  # one more key and value, zero, open to every query
            zero = ops.zeros_like(k, shape=(*k.shape[:2], 1, self.head_dim))
            k, v = ops.concatenate([k, zero], axis=2), ops.concatenate([v, zero], axis=2)
            mask = _one_more_key(mask)
        p = self.dropout if self.training else 0.0
        out, weights = _attention("MultiheadAttention", q, k, v, mask, p, False, None, self.rng)
        out = ops.reshape(ops.swapaxes(out, 1, 2), (n, n_q, self.embed_dim))
        out = self.out_proj(out)
        if not batched:
            out = out[0]
        elif not self.batch_first:
            out = ops.swapaxes(out, 0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = ops.mean(weights, axis=1)
        return out, (weights if batched else weights[0])

    def _check(self, q: Any, k: Any, v: Any) -> bool:
        """Whether the inputs are batched; raises on shapes that do not fit."""
        dims = {"query": self.embed_dim, "key": self.kdim, "value": self.vdim}
        layout = "(N, L, features)" if self.batch_first else "(L, N, features)"
        for (name, want), t in zip(dims.items(), (q, k, v)):
            if t.ndim not in (2, 3) or t.ndim != q.ndim or t.shape[-1] != want:
                raise ValueError(
                    f"MultiheadAttention: expected {name} of shape {layout} or (L, features) "
                    f"unbatched, with {want} features, and query, key and value all batched "
                    f"or all not; got query {q.shape}, key {k.shape}, value {v.shape}"
                )
        batch_axis = 0 if self.batch_first else 1
        if k.shape[:-1] != v.shape[:-1] or (
            q.ndim == 3 and q.shape[batch_axis] != k.shape[batch_axis]
        ):
            raise ValueError(
                f"MultiheadAttention: key {k.shape} and value {v.shape} must have the same "
                f"length and batch, and query {q.shape} the same batch"
            )
        return q.ndim == 3

    def _heads(self, t: Any) -> Any:
        """(N, length, E) -> (N, heads, length, head_dim)."""
        split = ops.reshape(t, (t.shape[0], t.shape[1], self.num_heads, self.head_dim))
        return ops.swapaxes(split, 1, 2)

    def _mask(
        self, attn_mask: Any, key_padding_mask: Any, n: int, n_q: int, n_k: int, batched: bool
    ) -> Any:
        """attn_mask and key_padding_mask (True = ignore) as one mask for :func:`_attention`
        (True = take part), broadcastable to (N, heads, L, S)."""
        masks = []
        if attn_mask is not None:
            shape = _raw(attn_mask).shape
            ok = {2: (n_q, n_k), 3: (n * self.num_heads, n_q, n_k)}
            if ok.get(len(shape)) != shape:
                raise ValueError(
                    f"MultiheadAttention: attn_mask of shape {shape} does not fit: expected "
                    f"(L, S) = {ok[2]} or (N * num_heads, L, S) = {ok[3]}"
                )
            new = (n, self.num_heads, n_q, n_k) if len(shape) == 3 else shape
            masks.append(_take_part(attn_mask, new))
        if key_padding_mask is not None:
            shape = _raw(key_padding_mask).shape
            want = (n, n_k) if batched else (n_k,)
            if shape != want:
                layout = "(N, S)" if batched else "(S,) unbatched"
                raise ValueError(
                    f"MultiheadAttention: key_padding_mask of shape {shape} does not fit: "
                    f"expected {layout} = {want}"
                )
            masks.append(_take_part(key_padding_mask, (n, 1, 1, n_k)))
        if len(masks) < 2:
            return masks[0] if masks else None
        if all(_is_bool(m) for m in masks):
            return np.logical_and(*masks)
        dtype = next(_raw(m).dtype for m in masks if not _is_bool(m))
        return _additive(masks[0], dtype) + _additive(masks[1], dtype)

    def extra_repr(self) -> str:
        text = f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"
        if self.dropout:
            text += f", dropout={self.dropout}"
        return text + (", batch_first=True" if self.batch_first else "")


def _take_part(mask: Any, shape: tuple[int, ...]) -> Any:
    """A mask of MultiheadAttention's convention (boolean True = ignore) in SDPA's (boolean
    True = take part), reshaped; a floating mask is added either way."""
    if _is_bool(mask):
        return np.reshape(~_raw(mask), shape)
    if isinstance(mask, Tensor):
        return ops.reshape(mask, shape)
    return np.reshape(np.asarray(mask), shape)


def _additive(mask: Any, dtype: Any) -> Any:
    """A mask as the scores' addend: 0 where a key takes part, -inf where it does not."""
    return np.where(mask, 0.0, -np.inf).astype(dtype) if _is_bool(mask) else mask


def _one_more_key(mask: Any) -> Any:
    """``mask`` with one more key at the end, open to every query."""
    if mask is None:
        return None
    width = [(0, 0)] * (_raw(mask).ndim - 1) + [(0, 1)]
    if _is_bool(mask):
        return np.pad(_raw(mask), width, constant_values=True)
    return ops.pad(mask, width) if isinstance(mask, Tensor) else np.pad(mask, width)
