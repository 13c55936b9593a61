"""Convolution, pooling, normalisation and embedding layers, and the Module machinery they need
(buffers, containers, apply, freezing): closed forms, float64 gradchecks, PyTorch's
conventions, and bad input. (Against PyTorch itself: tests/peers/test_torch_layers.py.)"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import pytest

import chainrule as cr

F = cr.nn.functional
RNG = np.random.default_rng(11)


def _t(shape: tuple[int, ...], grad: bool = True) -> Any:
    return cr.tensor(RNG.standard_normal(shape), requires_grad=grad)


# -- convolution ---------------------------------------------------------------------------------
def _conv_loops(x: np.ndarray, w: np.ndarray, stride: int, pad: int, dilation: int) -> np.ndarray:
    """2-D cross-correlation by loops over every output entry (the definition)."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - dilation * (kh - 1) - 1) // stride + 1
    ow = (wd + 2 * pad - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride : i * stride + dilation * (kh - 1) + 1 : dilation,
                       j * stride : j * stride + dilation * (kw - 1) + 1 : dilation]  # fmt: skip
            out[:, :, i, j] = np.einsum("nckl,ockl->no", patch, w)
    return out


@pytest.mark.parametrize("stride, pad, dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2), (3, 1, 2)])
def test_conv2d_is_the_cross_correlation_of_its_definition(stride, pad, dilation):
    x, w = RNG.standard_normal((2, 3, 9, 8)), RNG.standard_normal((4, 3, 3, 2))
    got = F.conv2d(cr.tensor(x), cr.tensor(w), stride=stride, padding=pad, dilation=dilation)
    np.testing.assert_allclose(got.numpy(), _conv_loops(x, w, stride, pad, dilation), atol=1e-12)


def test_conv_gradients_of_every_argument_by_finite_differences():
    x, w, b = (
        RNG.standard_normal((2, 4, 6, 5)),
        RNG.standard_normal((6, 2, 3, 3)),
        RNG.standard_normal(6),
    )

    def f(x, w, b):
        y = F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
        return cr.sum(cr.tanh(y))

    assert cr.gradcheck(f, x, w, b, check_forward=True)
    x1, w1 = RNG.standard_normal((3, 2, 11)), RNG.standard_normal((3, 2, 4))
    assert cr.gradcheck(lambda x, w: cr.sum(F.conv1d(x, w, padding="same") ** 2), x1, w1)


def test_conv_second_derivatives():
    x, w = RNG.standard_normal((1, 2, 5, 5)), RNG.standard_normal((2, 2, 3, 3))
    hessian_vector = cr.grad(
        lambda w: cr.sum(cr.grad(lambda x: cr.sum(F.conv2d(x, w) ** 2))(x) ** 2)
    )
    assert cr.gradcheck(hessian_vector, w)


def test_conv_same_padding_and_a_single_sample():
    conv = cr.nn.Conv1d(1, 3, kernel_size=4, padding="same", rng=0)  # even kernel: pad 1 + 2
    assert conv(cr.zeros((5, 1, 40))).shape == (5, 3, 40)
    one = cr.tensor(RNG.standard_normal((1, 40)))
    np.testing.assert_allclose(conv(one).numpy(), conv(one[None])[0].numpy(), atol=1e-14)
    layer = cr.nn.Conv2d(2, 4, 3, bias=False, rng=1)
    assert layer.bias is None and layer.weight.shape == (4, 2, 3, 3)
    bound = 1 / np.sqrt(2 * 9)  # PyTorch's default initialisation: U(+-1/sqrt(fan_in))
    assert (
        np.all(np.abs(layer.weight.numpy()) <= bound) and np.std(layer.weight.numpy()) > bound / 3
    )


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: F.conv2d(cr.zeros((1, 3, 5, 5)), cr.zeros((4, 2, 3, 3))), "3 channels.*expects 2"),
        (
            lambda: F.conv2d(cr.zeros((1, 2, 2, 2)), cr.zeros((4, 2, 3, 3))),
            "larger than the padded",
        ),
        (lambda: F.conv2d(cr.zeros((1, 2, 5, 5)), cr.zeros((4, 2, 3, 3)), padding=-1), ">= 0"),
        (lambda: F.conv2d(cr.zeros((2, 5, 5)), cr.zeros((4, 2, 3, 3)), stride=0), ">= 1"),
        (
            lambda: F.conv1d(cr.zeros((1, 2, 5)), cr.zeros((4, 2, 3)), padding="same", stride=2),
            "needs stride 1",
        ),  # fmt: skip
        (lambda: F.conv2d(cr.zeros((5, 5)), cr.zeros((4, 2, 3, 3))), "expected input"),
        (lambda: cr.nn.Conv2d(3, 4, 3, groups=2), "groups=2 must divide"),
        (lambda: cr.nn.Conv1d(0, 4, 3), ">= 1"),
    ],
)
def test_bad_convolutions_say_what_is_wrong(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# -- pooling -------------------------------------------------------------------------------------
def test_pools_against_their_definitions():
    x = RNG.standard_normal((2, 3, 6, 4))
    blocks = x.reshape(2, 3, 3, 2, 2, 2)
    np.testing.assert_allclose(F.max_pool2d(cr.tensor(x), 2).numpy(), blocks.max(axis=(3, 5)))
    np.testing.assert_allclose(F.avg_pool2d(cr.tensor(x), 2).numpy(), blocks.mean(axis=(3, 5)))
    np.testing.assert_allclose(
        F.adaptive_avg_pool2d(cr.tensor(x), (3, 2)).numpy(), blocks.mean(axis=(3, 5)), atol=1e-14
    )
    # adaptive windows that overlap (5 -> 3: [0, 2), [1, 4), [3, 5), as PyTorch)
    v = RNG.standard_normal((1, 1, 5))
    want = [v[0, 0, 0:2].mean(), v[0, 0, 1:4].mean(), v[0, 0, 3:5].mean()]
    np.testing.assert_allclose(F.adaptive_avg_pool1d(cr.tensor(v), 3).numpy()[0, 0], want)
    # padding: -inf for the max, zeros counted (or not) for the mean
    row = cr.tensor(np.array([[[-1.0, -2.0, -3.0]]]))
    assert F.max_pool1d(row, 2, padding=1).tolist() == [[[-1.0, -2.0]]]
    assert F.avg_pool1d(row, 2, padding=1).tolist() == [[[-0.5, -2.5]]]
    assert F.avg_pool1d(row, 2, padding=1, count_include_pad=False).tolist() == [[[-1.0, -2.5]]]


def test_pool_gradients():
    x = RNG.permutation(2 * 2 * 6 * 6).reshape(2, 2, 6, 6) * 0.1  # no ties in a window
    assert cr.gradcheck(lambda x: cr.sum(F.max_pool2d(x, 3, stride=2, padding=1) ** 2), x)
    assert cr.gradcheck(lambda x: cr.sum(F.avg_pool2d(x, (2, 3), stride=1) ** 2), x)
    assert cr.gradcheck(lambda x: cr.sum(F.adaptive_avg_pool2d(x, (4, 5)) ** 2), x)
    assert cr.gradcheck(lambda x: cr.sum(F.max_pool1d(x, 2) ** 2), x[0, :, :, 0].copy())


def test_flatten_and_unflatten_round_trip():
    net = cr.nn.Sequential(cr.nn.Flatten(), cr.nn.Unflatten(1, (4, -1)))
    x = cr.tensor(RNG.standard_normal((2, 4, 3, 5)))
    assert cr.nn.Flatten()(x).shape == (2, 60) and net(x).shape == (2, 4, 15)


# -- normalisation ---------------------------------------------------------------------------------
def test_batchnorm_training_eval_and_running_statistics_as_pytorch():
    bn = cr.nn.BatchNorm2d(3, momentum=0.2)
    x = RNG.normal(2.0, 3.0, (8, 3, 4, 5))
    y = bn(cr.tensor(x)).numpy()
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(y, (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5))
    unbiased = var * x[:, 0].size / (x[:, 0].size - 1)  # the running variance is unbiased
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.2 * mean)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.8 + 0.2 * unbiased)
    assert int(bn.num_batches_tracked.numpy()) == 1
    bn.eval()
    z = bn(cr.tensor(x)).numpy()
    running = bn.running_mean.numpy()[:, None, None], bn.running_var.numpy()[:, None, None]
    np.testing.assert_allclose(z, (x - running[0]) / np.sqrt(running[1] + 1e-5))
    assert int(bn.num_batches_tracked.numpy()) == 1  # eval() does not count


def test_normalisation_gradients():
    x = RNG.standard_normal((4, 3, 5))
    bn = cr.nn.BatchNorm1d(3).requires_grad_(False)  # (the layers' own parameters: below)
    assert cr.gradcheck(lambda x: cr.sum(cr.sin(bn(x))), x)
    ln = cr.nn.LayerNorm((3, 5)).requires_grad_(False)
    ln.weight.data = RNG.standard_normal((3, 5))
    assert cr.gradcheck(lambda x: cr.sum(cr.sin(ln(x))), x)
    gn = cr.nn.GroupNorm(1, 3).requires_grad_(False)
    assert cr.gradcheck(lambda x: cr.sum(cr.sin(gn(x))), x, check_forward=True)
    rm, rv = np.zeros(3), np.ones(3)
    assert cr.gradcheck(
        lambda x, w, b: cr.sum(cr.sin(F.batch_norm(x, rm, rv, w, b, training=True))),
        x, RNG.standard_normal(3), RNG.standard_normal(3),
    )  # fmt: skip
    w, b = RNG.standard_normal(5), RNG.standard_normal(5)
    assert cr.gradcheck(lambda x, w, b: cr.sum(cr.tanh(F.layer_norm(x, 5, w, b))), x, w, b)


def test_layernorm_and_groupnorm_closed_forms():
    x = RNG.standard_normal((2, 4, 3))
    y = cr.nn.LayerNorm(3)(cr.tensor(x)).numpy()
    np.testing.assert_allclose(y.mean(axis=-1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=-1), 1 / (1 + 1e-5 / x.var(axis=-1)), rtol=1e-10)
    g = cr.nn.GroupNorm(2, 4)(cr.tensor(x)).numpy().reshape(2, 2, 6)
    np.testing.assert_allclose(g.mean(axis=-1), 0, atol=1e-12)


def test_bad_normalisation_inputs():
    with pytest.raises(ValueError, match="3 channels.*layer 4"):
        cr.nn.BatchNorm1d(4)(cr.zeros((2, 3)))
    with pytest.raises(ValueError, match="more than one value per channel"):
        cr.nn.BatchNorm1d(3)(cr.zeros((1, 3)))
    with pytest.raises(ValueError, match="momentum"):
        cr.nn.BatchNorm1d(3, momentum=float("nan"))
    with pytest.raises(ValueError, match="eps"):
        cr.nn.LayerNorm(3, eps=-1.0)
    with pytest.raises(ValueError, match="num_groups"):
        cr.nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match="normalized_shape"):
        F.layer_norm(cr.zeros((2, 3)), (4,))


# -- embedding -----------------------------------------------------------------------------------
def test_embedding_rows_and_padding_gets_no_gradient():
    emb = cr.nn.Embedding(6, 2, padding_idx=1, rng=0)
    assert np.all(emb.weight.numpy()[1] == 0)
    idx = np.array([[1, 3, 3], [0, 1, 5]])
    out = emb(idx)
    np.testing.assert_array_equal(out.numpy(), emb.weight.numpy()[idx])
    (out * 2.0).sum().backward()
    g = emb.weight.grad.numpy()
    np.testing.assert_array_equal(g[:, 0], [2, 0, 0, 4, 0, 2])  # row 3 twice; row 1 padding
    with pytest.raises(IndexError, match=r"\[0, 6\)"):
        emb(np.array([6]))
    with pytest.raises(TypeError, match="integers"):
        emb(np.array([0.5]))


# -- the Module machinery ------------------------------------------------------------------------
def test_buffers_in_state_dict_and_loading_them():
    bn = cr.nn.BatchNorm1d(2)
    state = bn.state_dict()
    assert list(state) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    state["running_mean"] = np.array([1.0, 2.0])
    bn.load_state_dict(state)
    assert bn.running_mean.tolist() == [1.0, 2.0] and not bn.running_mean.requires_grad
    bad = dict(state, running_var=np.ones(3))
    with pytest.raises(cr.nn.StateDictError, match="running_var"):
        bn.load_state_dict(bad)
    assert bn.running_var.tolist() == [1.0, 1.0]  # nothing changed
    m = cr.nn.Module()
    m.register_buffer("scratch", np.zeros(2), persistent=False)
    assert "scratch" not in m.state_dict() and dict(m.named_buffers())["scratch"].shape == (2,)
    with pytest.raises(ValueError, match="needs no gradient"):
        m.register_buffer("w", cr.tensor([1.0], requires_grad=True))


def test_containers_apply_freeze_and_zero_grad():
    blocks = cr.nn.ModuleList([cr.nn.Linear(2, 2, rng=i) for i in range(3)])
    heads = cr.nn.ModuleDict({"cls": cr.nn.Linear(2, 3, rng=5)})
    net = cr.nn.Sequential(
        OrderedDict([("body", cr.nn.Sequential(*blocks)), ("head", heads["cls"])])
    )
    assert [n for n, _ in net.named_parameters()][:2] == ["body.0.weight", "body.0.bias"]
    assert len(list(blocks.parameters())) == 6 and "cls" in heads
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Sequential" and seen.count("Linear") == 4
    net.body.requires_grad_(False)
    out = net(cr.tensor(RNG.standard_normal((4, 2))))
    out.sum().backward()
    assert blocks[0].weight.grad is None and heads["cls"].weight.grad is not None
    net.zero_grad(set_to_none=False)
    assert np.all(heads["cls"].weight.grad.numpy() == 0)
    with pytest.raises(TypeError, match="not a Module"):
        cr.nn.ModuleList([np.zeros(2)])


# -- transposed convolution ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "stride, pad, out_pad, dilation, groups", [(1, 0, 0, 1, 1), (2, 1, 1, 1, 1), (3, 2, 0, 2, 2)]
)
def test_conv_transpose_is_the_adjoint_of_conv(stride, pad, out_pad, dilation, groups):
    x, w = RNG.standard_normal((2, 4, 5, 4)), RNG.standard_normal((4, 3, 3, 2))
    y = F.conv_transpose2d(cr.tensor(x), cr.tensor(w), stride=stride, padding=pad,
                           output_padding=out_pad, dilation=dilation, groups=groups)  # fmt: skip
    z = RNG.standard_normal(y.shape)
    back = F.conv2d(cr.tensor(z), cr.tensor(w), stride=stride, padding=pad, dilation=dilation,
                    groups=groups)  # fmt: skip
    # <conv_transpose(x), z> = <x, conv(z)>: the defining property
    np.testing.assert_allclose(np.sum(y.numpy() * z), np.sum(x * back.numpy()), rtol=1e-12)
    assert y.shape[2] == (5 - 1) * stride - 2 * pad + dilation * 2 + 1 + out_pad


def test_conv_transpose_gradients_and_layers():
    x, w, b = RNG.standard_normal((2, 3, 4)), RNG.standard_normal((3, 2, 3)), RNG.standard_normal(2)
    assert cr.gradcheck(
        lambda x, w, b: cr.sum(cr.tanh(F.conv_transpose1d(x, w, b, stride=2, padding=1))),
        x, w, b, check_forward=True,
    )  # fmt: skip
    up = cr.nn.ConvTranspose2d(4, 2, kernel_size=4, stride=2, padding=1, rng=0)
    assert up.weight.shape == (4, 2, 4, 4) and up(cr.zeros((1, 4, 7, 7))).shape == (1, 2, 14, 14)
    with pytest.raises(ValueError, match="output_padding"):
        F.conv_transpose1d(cr.zeros((1, 3, 4)), cr.zeros((3, 2, 3)), stride=1, output_padding=1)
    with pytest.raises(ValueError, match="3 channels"):
        F.conv_transpose1d(cr.zeros((1, 3, 4)), cr.zeros((4, 2, 3)))


def test_load_state_dict_is_all_or_nothing_and_refuses_values_that_would_corrupt():
    net = cr.nn.Sequential(cr.nn.Linear(2, 3, rng=0), cr.nn.BatchNorm1d(3))
    before = net.state_dict()
    good = {k: v + 1.0 for k, v in before.items()}
    for key, value, message in [
        ("0.weight", None, "the value is None"),
        ("0.bias", np.ones(3) * (1 + 2j), "complex values"),
        ("1.running_var", np.array([1.0, np.inf, 1.0]), "NaN or infinite"),
        ("1.weight", np.array(["a", "b", "c"]), "not numeric"),
        ("1.bias", np.ones(4), r"checkpoint shape \(4,\)"),
    ]:
        with pytest.raises(cr.nn.StateDictError, match=message) as info:
            net.load_state_dict(dict(good, **{key: value}))
        assert key in str(info.value) and "nothing was changed" in str(info.value)
        for (name, a), b in zip(net.state_dict().items(), before.values()):
            np.testing.assert_array_equal(a, b, err_msg=name)  # not even the good entries
    net.load_state_dict(good)
    assert net.state_dict()["0.bias"].tolist() == (before["0.bias"] + 1).tolist()
