"""cr.nn: Module registration, layers, initialisers, state dicts, and cr.nn.functional losses.

Every expectation comes from a closed form or an independent NumPy reference written here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule as cr
from chainrule.nn import functional as F
from chainrule.nn import init

RNG = np.random.default_rng(2024)


def _np(t):
    return np.asarray(t.numpy() if isinstance(t, cr.Tensor) else t)


def _log_softmax_ref(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def _softmax_ref(z: np.ndarray) -> np.ndarray:
    return np.exp(_log_softmax_ref(z))


def _onehot(t: np.ndarray, k: int) -> np.ndarray:
    return (t[:, None] == np.arange(k)).astype(np.float64)


def _std_rel_ok(a: np.ndarray, expected: float, rel: float = 0.02) -> bool:
    return abs(float(a.std()) - expected) <= rel * expected


# -- Parameter ---------------------------------------------------------------------------
def test_parameter_is_a_leaf_that_requires_grad():
    p = cr.nn.Parameter([1.0, 2.0])
    assert isinstance(p, cr.Tensor)
    assert p.requires_grad and p.is_leaf and p.grad is None
    assert p.dtype == np.float64 and p.tolist() == [1.0, 2.0]
    q = cr.nn.Parameter(np.zeros(3), requires_grad=False)
    assert not q.requires_grad


@pytest.mark.parametrize("data", [[1, 2, 3], np.arange(3, dtype=np.int32), np.array([True, False])])
def test_parameter_int_and_bool_data_becomes_float64(data):
    p = cr.nn.Parameter(data)
    assert p.dtype == np.float64
    np.testing.assert_array_equal(p.numpy(), np.asarray(data, dtype=np.float64))
    assert p.requires_grad


def test_parameter_from_tensor_and_float32_kept():
    t = cr.tensor(np.array([1.5, -2.0], dtype=np.float32))
    p = cr.nn.Parameter(t)
    assert p.dtype == np.float32 and p.requires_grad and p.is_leaf
    np.testing.assert_array_equal(p.numpy(), t.numpy())


# -- Module registration -----------------------------------------------------------------
class _Inner(cr.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = cr.nn.Parameter(np.ones((2, 3)))
        self.b = cr.nn.Parameter(np.zeros(2))

    def forward(self, x):
        return x @ self.w.T + self.b


class _Outer(cr.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = cr.nn.Parameter(np.array(2.0))
        self.inner = _Inner()
        self.block = cr.nn.Sequential(_Inner(), cr.nn.Dropout(0.5, rng=0))
        self.not_a_param = cr.tensor([1.0], requires_grad=True)  # plain Tensor: not registered
        self.config = {"k": 1}

    def forward(self, x):
        return self.inner(x) * self.scale


def test_named_parameters_dotted_and_in_registration_order():
    m = _Outer()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "inner.w", "inner.b", "block.0.w", "block.0.b"]
    assert [id(p) for p in m.parameters()] == [id(p) for _, p in m.named_parameters()]
    assert m.num_parameters() == 1 + 6 + 2 + 6 + 2
    assert m.inner.w is dict(m.named_parameters())["inner.w"]


def test_named_modules_and_children():
    m = _Outer()
    names = [n for n, _ in m.named_modules()]
    assert names == ["", "inner", "block", "block.0", "block.1"]
    assert list(m.children()) == [m.inner, m.block]
    assert list(m.modules())[0] is m


def test_parameters_unique_when_shared():
    m = _Outer()
    m.block[0].w = m.inner.w  # tie weights
    params = list(m.parameters())
    assert len(params) == len({id(p) for p in params}) == 4
    assert [n for n, _ in m.named_parameters()] == ["scale", "inner.w", "inner.b", "block.0.b"]


def test_reassigning_and_deleting_attributes_updates_registration():
    m = _Outer()
    new = cr.nn.Parameter(np.full((2, 3), 5.0))
    m.inner.w = new
    assert dict(m.named_parameters())["inner.w"] is new
    m.inner.w = None  # no longer a parameter
    assert "inner.w" not in dict(m.named_parameters())
    m.scale = _Inner()  # a parameter name reused for a module
    names = [n for n, _ in m.named_parameters()]
    assert "scale" not in names and "scale.w" in names and "scale.b" in names
    del m.inner
    assert not any(n.startswith("inner") for n, _ in m.named_parameters())
    assert "inner" not in [n for n, _ in m.named_modules()]
    m.block = "replaced"  # a module name reused for a plain value
    assert not any(n.startswith("block") for n, _ in m.named_parameters())
    assert m.block == "replaced"


def test_setattr_before_super_init_is_a_clear_error():
    class Bad(cr.nn.Module):
        def __init__(self) -> None:
            self.w = cr.nn.Parameter([1.0])

    with pytest.raises(AttributeError, match="super"):
        Bad()


def test_call_runs_forward_and_forward_is_required():
    class Twice(cr.nn.Module):
        def forward(self, x, k=2):
            return x * k

    assert Twice()(cr.tensor([1.5]), k=3).tolist() == [4.5]
    with pytest.raises(NotImplementedError):
        cr.nn.Module()(cr.tensor([1.0]))


def test_train_eval_recursive():
    m = _Outer()
    assert all(mod.training for mod in m.modules())
    assert m.eval() is m
    assert not any(mod.training for mod in m.modules())
    assert m.train() is m
    assert all(mod.training for mod in m.modules())
    m.block.eval()
    assert m.training and m.inner.training
    assert not m.block.training and not m.block[1].training


def test_zero_grad_clears_every_parameter():
    m = _Outer()
    x = cr.tensor(RNG.normal(size=(4, 3)))
    (m(x).sum() + m.block(x).sum()).backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


# -- Sequential --------------------------------------------------------------------------
def test_sequential_indexing_len_iteration_and_forward():
    a, b, c = cr.nn.Linear(3, 4, rng=0), cr.nn.Tanh(), cr.nn.Linear(4, 2, rng=1)
    s = cr.nn.Sequential(a, b, c)
    assert len(s) == 3
    assert s[0] is a and s[1] is b and s[2] is c and s[-1] is c
    assert list(s) == [a, b, c]
    assert [n for n, _ in s.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    x = RNG.normal(size=(5, 3))
    h = np.tanh(x @ _np(a.weight).T + _np(a.bias))
    np.testing.assert_allclose(_np(s(cr.tensor(x))), h @ _np(c.weight).T + _np(c.bias), rtol=1e-12)


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError, match="item 1"):
        cr.nn.Sequential(cr.nn.ReLU(), np.tanh)
    with pytest.raises(TypeError):
        cr.nn.Sequential(cr.nn.Parameter([1.0]))


# -- Linear ------------------------------------------------------------------------------
def test_linear_shapes_and_forward_against_numpy():
    layer = cr.nn.Linear(5, 3, rng=0)
    assert layer.weight.shape == (3, 5) and layer.bias.shape == (3,)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    x = RNG.normal(size=(7, 5))
    y = layer(cr.tensor(x))
    assert y.shape == (7, 3)
    np.testing.assert_allclose(_np(y), x @ _np(layer.weight).T + _np(layer.bias), rtol=1e-12)
    x3 = RNG.normal(size=(2, 4, 5))
    y3 = layer(cr.tensor(x3))
    assert y3.shape == (2, 4, 3)
    np.testing.assert_allclose(_np(y3), x3 @ _np(layer.weight).T + _np(layer.bias), rtol=1e-12)


def test_linear_gradients_against_numpy():
    layer = cr.nn.Linear(4, 3, rng=1)
    x = RNG.normal(size=(6, 4))
    g = RNG.normal(size=(6, 3))
    y = layer(cr.tensor(x))
    (y * cr.tensor(g)).sum().backward()
    np.testing.assert_allclose(_np(layer.weight.grad), g.T @ x, rtol=1e-12)
    np.testing.assert_allclose(_np(layer.bias.grad), g.sum(axis=0), rtol=1e-12)


def test_linear_without_bias():
    layer = cr.nn.Linear(4, 2, bias=False, rng=0)
    assert layer.bias is None
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    x = RNG.normal(size=(3, 4))
    np.testing.assert_allclose(_np(layer(cr.tensor(x))), x @ _np(layer.weight).T, rtol=1e-12)


def test_linear_default_init_is_uniform_within_one_over_sqrt_fan_in():
    fan_in, fan_out = 400, 300
    layer = cr.nn.Linear(fan_in, fan_out, rng=3)
    bound = 1 / math.sqrt(fan_in)
    w, b = _np(layer.weight), _np(layer.bias)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.99 * bound  # fills the interval, not a narrower one
    assert _std_rel_ok(w, bound / math.sqrt(3))  # std of U(-a, a) is a / sqrt(3)
    assert abs(float(w.mean())) < 0.01 * bound
    assert np.abs(b).max() > 0.5 * bound


def test_linear_xavier_and_kaiming_options():
    fan_in, fan_out = 500, 300
    xav = _np(cr.nn.Linear(fan_in, fan_out, rng=0, init="xavier", nonlinearity="tanh").weight)
    a = (5 / 3) * math.sqrt(6 / (fan_in + fan_out))
    assert np.abs(xav).max() <= a and np.abs(xav).max() > 0.99 * a
    assert _std_rel_ok(xav, a / math.sqrt(3))
    lin = _np(cr.nn.Linear(fan_in, fan_out, rng=0, init="xavier", nonlinearity="linear").weight)
    assert np.abs(lin).max() <= math.sqrt(6 / (fan_in + fan_out))
    kai = _np(cr.nn.Linear(fan_in, fan_out, rng=0, init="kaiming").weight)
    assert _std_rel_ok(kai, math.sqrt(2 / fan_in))
    assert np.abs(kai).max() > 3 * math.sqrt(2 / fan_in)  # normal tails, not a uniform
    kai_tanh = _np(cr.nn.Linear(fan_in, fan_out, rng=0, init="kaiming", nonlinearity="tanh").weight)
    assert _std_rel_ok(kai_tanh, (5 / 3) / math.sqrt(fan_in))


def test_linear_bad_arguments():
    with pytest.raises(ValueError):
        cr.nn.Linear(0, 3)
    with pytest.raises(ValueError):
        cr.nn.Linear(3, 0)
    with pytest.raises(ValueError, match="init"):
        cr.nn.Linear(3, 2, init="orthogonal")


def test_linear_float32():
    layer = cr.nn.Linear(3, 2, rng=0, dtype="float32")
    assert layer.weight.dtype == np.float32 and layer.bias.dtype == np.float32
    y = layer(cr.tensor(np.ones((4, 3), dtype=np.float32)))
    assert y.dtype == np.float32


# -- activations -------------------------------------------------------------------------
X_ACT = np.linspace(-4.0, 4.0, 41)
_PHI = np.vectorize(lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2))))


@pytest.mark.parametrize(
    "module, fn, ref",
    [
        (cr.nn.ReLU(), F.relu, np.maximum(X_ACT, 0)),
        (cr.nn.Tanh(), F.tanh, np.tanh(X_ACT)),
        (cr.nn.Sigmoid(), F.sigmoid, 1 / (1 + np.exp(-X_ACT))),
        (cr.nn.Softplus(), F.softplus, np.logaddexp(0, X_ACT)),
        (cr.nn.GELU(), F.gelu, X_ACT * _PHI(X_ACT)),
        (cr.nn.Identity(), lambda x: x, X_ACT),
        (
            cr.nn.LeakyReLU(0.2),
            lambda x: F.leaky_relu(x, negative_slope=0.2),
            np.where(X_ACT > 0, X_ACT, 0.2 * X_ACT),
        ),
    ],
)
def test_activation_modules_equal_functions_and_closed_forms(module, fn, ref):
    out = _np(module(cr.tensor(X_ACT)))
    np.testing.assert_allclose(out, _np(fn(cr.tensor(X_ACT))), rtol=0, atol=0)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-14)


def test_gelu_tanh_approximation():
    ref = 0.5 * X_ACT * (1 + np.tanh(math.sqrt(2 / math.pi) * (X_ACT + 0.044715 * X_ACT**3)))
    np.testing.assert_allclose(
        _np(cr.nn.GELU(approximate="tanh")(cr.tensor(X_ACT))), ref, rtol=1e-12, atol=1e-14
    )


def test_leaky_relu_default_slope_is_pytorchs():
    out = _np(cr.nn.LeakyReLU()(cr.tensor(np.array([-2.0, 3.0]))))
    np.testing.assert_allclose(out, [-0.02, 3.0], rtol=1e-15)


def test_activation_factory():
    assert isinstance(cr.nn.activation("relu"), cr.nn.ReLU)
    assert isinstance(cr.nn.activation("Tanh"), cr.nn.Tanh)
    assert isinstance(cr.nn.activation(cr.nn.Sigmoid), cr.nn.Sigmoid)
    inst = cr.nn.LeakyReLU(0.3)
    assert cr.nn.activation(inst) is inst
    with pytest.raises(ValueError, match="swish"):
        cr.nn.activation("swish")


# -- MLP ---------------------------------------------------------------------------------
def test_mlp_structure_and_names():
    net = cr.nn.MLP([3, 5, 4, 2], activation="tanh", rng=0)
    kinds = [type(m) for m in net]
    assert kinds == [cr.nn.Linear, cr.nn.Tanh, cr.nn.Linear, cr.nn.Tanh, cr.nn.Linear]
    assert [n for n, _ in net.named_parameters()] == [
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
        "4.weight",
        "4.bias",
    ]
    assert [net[i].weight.shape for i in (0, 2, 4)] == [(5, 3), (4, 5), (2, 4)]
    x = RNG.normal(size=(6, 3))
    h = x
    for i in (0, 2):
        h = np.tanh(h @ _np(net[i].weight).T + _np(net[i].bias))
    ref = h @ _np(net[4].weight).T + _np(net[4].bias)
    np.testing.assert_allclose(_np(net(cr.tensor(x))), ref, rtol=1e-12, atol=1e-14)


def test_mlp_activation_by_class_and_output_activation():
    net = cr.nn.MLP([3, 4, 2], activation=cr.nn.Sigmoid, output_activation="sigmoid", rng=0)
    assert [type(m) for m in net] == [cr.nn.Linear, cr.nn.Sigmoid, cr.nn.Linear, cr.nn.Sigmoid]
    out = _np(net(cr.tensor(RNG.normal(size=(10, 3)) * 10)))
    assert out.shape == (10, 2) and np.all((out > 0) & (out < 1))
    net = cr.nn.MLP([3, 4, 2], activation="relu", dropout=0.25, rng=0)
    assert [type(m) for m in net] == [cr.nn.Linear, cr.nn.ReLU, cr.nn.Dropout, cr.nn.Linear]
    assert net[2].p == 0.25


def test_mlp_bad_sizes():
    for sizes in ([3], [], [3, 0, 2]):
        with pytest.raises(ValueError, match="sizes"):
            cr.nn.MLP(sizes)


def test_mlp_he_init_for_relu_hidden_layers():
    n = 600
    net = cr.nn.MLP([n, n, n, 10], activation="relu", rng=1)
    for i in (0, 2):
        w = _np(net[i].weight)
        assert _std_rel_ok(w, math.sqrt(2 / n)), (i, w.std())
        assert abs(float(w.mean())) < 0.01 * math.sqrt(2 / n) * 10


def test_mlp_xavier_init_for_tanh_hidden_layers():
    n_in, n_hidden = 700, 500
    net = cr.nn.MLP([n_in, n_hidden, 10], activation="tanh", rng=2)
    w = _np(net[0].weight)
    gain = 5 / 3
    a = gain * math.sqrt(6 / (n_in + n_hidden))
    assert np.abs(w).max() <= a
    assert _std_rel_ok(w, gain * math.sqrt(2 / (n_in + n_hidden)))


def test_mlp_activation_class_initialised_like_its_name():
    """MLP(activation=cr.nn.Tanh) is the same network as MLP(activation="tanh"): with the same
    seed the weights are identical (Xavier for tanh, not He)."""
    by_name = cr.nn.MLP([300, 200, 3], activation="tanh", rng=7)
    by_class = cr.nn.MLP([300, 200, 3], activation=cr.nn.Tanh, rng=7)
    for (n1, p1), (n2, p2) in zip(by_name.named_parameters(), by_class.named_parameters()):
        assert n1 == n2
        np.testing.assert_array_equal(_np(p1), _np(p2), err_msg=n1)


def test_mlp_seeded_reproducibility():
    def weights(rng):
        return [_np(p).copy() for p in cr.nn.MLP([8, 16, 4], rng=rng).parameters()]

    a, b, c = weights(5), weights(5), weights(6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    d = weights(np.random.default_rng(5))
    e = weights(np.random.default_rng(5))
    assert all(np.array_equal(x, y) for x, y in zip(d, e))
    f = weights(cr.random.default_rng(11))
    g = weights(cr.random.default_rng(11))
    assert all(np.array_equal(x, y) for x, y in zip(f, g))


def test_mlp_float32():
    net = cr.nn.MLP([3, 4, 2], rng=0, dtype="float32")
    assert all(p.dtype == np.float32 for p in net.parameters())
    assert net(cr.tensor(np.ones((2, 3), dtype=np.float32))).dtype == np.float32


# -- init --------------------------------------------------------------------------------
def test_gain_table():
    assert init.gain("linear") == 1.0
    assert init.gain("identity") == 1.0
    assert init.gain("sigmoid") == 1.0
    assert init.gain("tanh") == pytest.approx(5 / 3, rel=1e-15)
    assert init.gain("relu") == pytest.approx(math.sqrt(2), rel=1e-15)
    assert init.gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)), rel=1e-15)
    assert init.gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04), rel=1e-15)
    with pytest.raises(ValueError, match="selu"):
        init.gain("selu")


SHAPE = (400, 600)  # (fan_out, fan_in)
FAN_OUT, FAN_IN = SHAPE


def test_xavier_uniform_bound_and_std():
    for g in (1.0, 5 / 3):
        w = init.xavier_uniform(SHAPE, gain=g, rng=0)
        a = g * math.sqrt(6 / (FAN_IN + FAN_OUT))
        assert w.shape == SHAPE and w.dtype == np.float64
        assert np.abs(w).max() <= a and np.abs(w).max() > 0.99 * a
        assert _std_rel_ok(w, a / math.sqrt(3))


def test_xavier_normal_std():
    w = init.xavier_normal(SHAPE, gain=2.0, rng=1)
    assert _std_rel_ok(w, 2.0 * math.sqrt(2 / (FAN_IN + FAN_OUT)))
    assert abs(float(w.mean())) < 0.01 * w.std()


def test_kaiming_uniform_bound_and_std():
    for nl in ("relu", "tanh", "linear"):
        w = init.kaiming_uniform(SHAPE, nonlinearity=nl, rng=2)
        a = init.gain(nl) * math.sqrt(3 / FAN_IN)
        assert np.abs(w).max() <= a and np.abs(w).max() > 0.99 * a
        assert _std_rel_ok(w, init.gain(nl) / math.sqrt(FAN_IN))


def test_kaiming_normal_std_uses_fan_in():
    w = init.kaiming_normal(SHAPE, rng=3)
    assert _std_rel_ok(w, math.sqrt(2 / FAN_IN))
    w = init.kaiming_normal(SHAPE[::-1], rng=3)  # fan_in is now 400
    assert _std_rel_ok(w, math.sqrt(2 / FAN_OUT))


def test_init_seeding_dtype_and_errors():
    a = init.kaiming_normal((20, 30), rng=4)
    assert np.array_equal(a, init.kaiming_normal((20, 30), rng=4))
    assert not np.array_equal(a, init.kaiming_normal((20, 30), rng=5))
    assert init.xavier_uniform((3, 4), rng=0, dtype="float32").dtype == np.float32
    cr.random.seed(123)
    g1 = init.xavier_normal((5, 6))
    cr.random.seed(123)
    assert np.array_equal(g1, init.xavier_normal((5, 6)))
    with pytest.raises(ValueError, match="2 dimensions"):
        init.kaiming_normal((10,))
    with pytest.raises(TypeError):
        init.xavier_uniform((3, 3), rng="seed")


# -- Dropout -----------------------------------------------------------------------------
def test_dropout_training_zeroes_and_rescales_preserving_the_mean():
    p = 0.3
    x = np.ones(200_000)
    out = _np(cr.nn.Dropout(p, rng=0)(cr.tensor(x)))
    kept = out != 0
    np.testing.assert_allclose(out[kept], 1 / (1 - p), rtol=1e-15)
    assert abs(1 - kept.mean() - p) < 0.005
    assert abs(out.mean() - 1.0) < 0.01


def test_dropout_gradient_is_the_mask():
    x = cr.tensor(RNG.normal(size=(50, 40)), requires_grad=True)
    y = cr.nn.Dropout(0.5, rng=1)(x)
    y.sum().backward()
    ratio = np.divide(_np(y), _np(x))
    np.testing.assert_allclose(_np(x.grad), ratio, rtol=1e-12)
    assert set(np.unique(np.round(_np(x.grad), 12))) <= {0.0, 2.0}


def test_dropout_eval_is_identity_and_follows_parent_mode():
    x = cr.tensor(RNG.normal(size=(30, 20)))
    net = cr.nn.Sequential(cr.nn.Identity(), cr.nn.Dropout(0.5, rng=0))
    assert (_np(net(x)) == 0).any()
    net.eval()
    np.testing.assert_array_equal(_np(net(x)), _np(x))
    np.testing.assert_array_equal(_np(F.dropout(x, 0.9, training=False)), _np(x))
    np.testing.assert_array_equal(_np(F.dropout(x, 0.0)), _np(x))


def test_dropout_seeded():
    x = cr.tensor(np.ones((40, 40)))
    a = _np(cr.nn.Dropout(0.5, rng=3)(x))
    b = _np(cr.nn.Dropout(0.5, rng=3)(x))
    c = _np(cr.nn.Dropout(0.5, rng=4)(x))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    d = cr.nn.Dropout(0.5, rng=3)
    assert not np.array_equal(_np(d(x)), _np(d(x)))  # the stream advances between calls
    np.testing.assert_array_equal(_np(F.dropout(x, 0.5, rng=9)), _np(F.dropout(x, 0.5, rng=9)))


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_dropout_p_validation(p):
    with pytest.raises(ValueError, match="p"):
        cr.nn.Dropout(p)
    with pytest.raises(ValueError, match="p"):
        F.dropout(cr.tensor([1.0]), p)


# -- state_dict / load_state_dict --------------------------------------------------------
def _params(model) -> dict[str, np.ndarray]:
    return {n: _np(p).copy() for n, p in model.named_parameters()}


def test_state_dict_round_trip():
    a = cr.nn.MLP([4, 6, 3], rng=0)
    b = cr.nn.MLP([4, 6, 3], rng=1)
    b_objects = list(b.parameters())
    sd = a.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    b.load_state_dict(sd)
    assert all(x is y for x, y in zip(b.parameters(), b_objects))  # loaded in place
    for (n, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(_np(pa), _np(pb), err_msg=n)
    x = cr.tensor(RNG.normal(size=(5, 4)))
    np.testing.assert_array_equal(_np(a(x)), _np(b(x)))


def test_state_dict_is_a_snapshot_and_loading_copies():
    m = cr.nn.Linear(3, 2, rng=0)
    sd = m.state_dict()
    before = sd["weight"].copy()
    m.weight.data += 1.0  # mutate the model's array in place
    np.testing.assert_array_equal(sd["weight"], before)
    sd["bias"][:] = 42.0  # mutating the snapshot does not reach the model
    assert not np.any(_np(m.bias) == 42.0)
    src = {"weight": np.zeros((2, 3)), "bias": np.ones(2)}
    m.load_state_dict(src)
    src["weight"][:] = 7.0
    np.testing.assert_array_equal(_np(m.weight), np.zeros((2, 3)))


def test_load_state_dict_accepts_tensors_and_keeps_model_dtype():
    m = cr.nn.Linear(3, 2, rng=0, dtype="float32")
    w = RNG.normal(size=(2, 3))
    m.load_state_dict({"weight": cr.tensor(w), "bias": np.arange(2.0)})
    assert m.weight.dtype == np.float32
    np.testing.assert_array_equal(_np(m.weight), w.astype(np.float32))
    np.testing.assert_array_equal(_np(m.bias), [0.0, 1.0])


def test_load_state_dict_lists_every_mismatch_and_changes_nothing():
    m = cr.nn.MLP([3, 4, 2], rng=0)
    before = _params(m)
    bad = {
        "0.weight": np.zeros((4, 5)),  # shape mismatch: model (4, 3)
        "0.bias": np.full(4, 9.0),  # fine on its own: must still not be loaded
        "2.weight": np.zeros((3, 4)),  # shape mismatch: model (2, 4)
        # "2.bias" missing
        "extra.weight": np.zeros((7, 1)),  # unexpected
    }
    with pytest.raises(cr.nn.StateDictError) as info:
        m.load_state_dict(bad)
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    lines = msg.splitlines()

    def line_with(key):
        found = [ln for ln in lines if repr(key) in ln or f'"{key}"' in ln]
        assert found, f"{key} not reported in:\n{msg}"
        return found[0]

    ln = line_with("0.weight")
    assert "(4, 5)" in ln and "(4, 3)" in ln
    ln = line_with("2.weight")
    assert "(3, 4)" in ln and "(2, 4)" in ln
    assert "missing" in line_with("2.bias").lower()
    ln = line_with("extra.weight")
    assert "unexpected" in ln.lower() and "(7, 1)" in ln
    assert "0.bias" not in msg
    after = _params(m)
    assert after.keys() == before.keys()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


def test_load_state_dict_non_strict():
    m = cr.nn.MLP([3, 4, 2], rng=0)
    before = _params(m)
    new_w = RNG.normal(size=(4, 3))
    m.load_state_dict({"0.weight": new_w, "unused": np.zeros(3)}, strict=False)
    after = _params(m)
    np.testing.assert_array_equal(after["0.weight"], new_w)
    for k in ("0.bias", "2.weight", "2.bias"):
        np.testing.assert_array_equal(after[k], before[k])
    # shape mismatches are still refused, and nothing is loaded
    with pytest.raises(cr.nn.StateDictError, match="2.bias") as info:
        m.load_state_dict({"0.bias": np.full(4, 3.0), "2.bias": np.zeros(5)}, strict=False)
    assert "(5,)" in str(info.value) and "(2,)" in str(info.value)
    for k, v in _params(m).items():
        np.testing.assert_array_equal(v, after[k], err_msg=k)


def test_load_state_dict_invalidates_graphs_that_used_old_values():
    m = cr.nn.Linear(3, 2, rng=0)
    loss = m(cr.tensor(np.ones((1, 3)))).sum()
    m.load_state_dict(m.state_dict())
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


# -- functional: mse_loss ----------------------------------------------------------------
def test_mse_loss_reductions_and_gradient():
    p = RNG.normal(size=(6, 2))
    t = RNG.normal(size=(6, 2))
    sq = (p - t) ** 2
    for reduction, ref in (("mean", sq.mean()), ("sum", sq.sum()), ("none", sq)):
        out = F.mse_loss(cr.tensor(p), cr.tensor(t), reduction=reduction)
        np.testing.assert_allclose(_np(out), ref, rtol=1e-13)
    x = cr.tensor(p, requires_grad=True)
    F.mse_loss(x, t).backward()
    np.testing.assert_allclose(_np(x.grad), 2 * (p - t) / p.size, rtol=1e-13)


def test_mse_loss_shape_mismatch_and_bad_reduction():
    with pytest.raises(ValueError, match=r"\(4, 1\).*\(4,\)"):
        F.mse_loss(cr.tensor(np.zeros((4, 1))), cr.tensor(np.zeros(4)))
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(cr.tensor(np.zeros(3)), cr.tensor(np.zeros(3)), reduction="avg")


# -- functional: cross_entropy -----------------------------------------------------------
Z = RNG.normal(size=(7, 5)) * 3
T = np.array([0, 4, 2, 2, 1, 3, 0])
N, K = Z.shape


def _ce_ref(z, t, eps=0.0):
    ls = _log_softmax_ref(z)
    nll = -ls[np.arange(len(t)), t]
    return (1 - eps) * nll + eps * (-ls).mean(axis=-1)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_against_log_softmax_reference(reduction):
    out = F.cross_entropy(cr.tensor(Z), T, reduction=reduction)
    ref = _ce_ref(Z, T)
    ref = {"mean": ref.mean(), "sum": ref.sum(), "none": ref}[reduction]
    assert out.shape == np.shape(ref)
    np.testing.assert_allclose(_np(out), ref, rtol=1e-12)


def test_cross_entropy_targets_as_list_and_tensor():
    ref = _ce_ref(Z, T).mean()
    assert float(F.cross_entropy(cr.tensor(Z), T.tolist())) == pytest.approx(ref, rel=1e-12)
    assert float(F.cross_entropy(cr.tensor(Z), cr.tensor(T))) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("eps", [0.1, 0.3, 1.0])
def test_cross_entropy_label_smoothing_closed_form(eps):
    out = F.cross_entropy(cr.tensor(Z), T, reduction="none", label_smoothing=eps)
    np.testing.assert_allclose(_np(out), _ce_ref(Z, T, eps), rtol=1e-12)
    # the same thing as a cross-entropy against the smoothed target q
    q = (1 - eps) * _onehot(T, K) + eps / K
    np.testing.assert_allclose(_np(out), -(q * _log_softmax_ref(Z)).sum(-1), rtol=1e-12)


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_cross_entropy_gradient_closed_form(eps):
    z = cr.tensor(Z, requires_grad=True)
    F.cross_entropy(z, T, label_smoothing=eps).backward()
    q = (1 - eps) * _onehot(T, K) + eps / K
    np.testing.assert_allclose(_np(z.grad), (_softmax_ref(Z) - q) / N, rtol=1e-12, atol=1e-16)
    z = cr.tensor(Z, requires_grad=True)
    F.cross_entropy(z, T, reduction="sum", label_smoothing=eps).backward()
    np.testing.assert_allclose(_np(z.grad), _softmax_ref(Z) - q, rtol=1e-12, atol=1e-15)
    # reduction="none" with a weighted upstream gradient
    w = RNG.normal(size=N)
    z = cr.tensor(Z, requires_grad=True)
    F.cross_entropy(z, T, reduction="none", label_smoothing=eps).backward(w)
    np.testing.assert_allclose(
        _np(z.grad), w[:, None] * (_softmax_ref(Z) - q), rtol=1e-12, atol=1e-15
    )


@pytest.mark.parametrize("eps", [0.0, 0.25])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_gradcheck(eps, reduction):
    assert cr.gradcheck(
        lambda z: F.cross_entropy(z, T, reduction=reduction, label_smoothing=eps), Z
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_stable_for_huge_logits(dtype):
    z = np.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], dtype=dtype)
    t = np.array([0, 1, 2])
    zt = cr.tensor(z, requires_grad=True)
    loss = F.cross_entropy(zt, t, reduction="none")
    assert loss.dtype == dtype
    # closed forms: softmax is one-hot at the max, the loss is max - z[target] (exp(-1e4) = 0)
    np.testing.assert_allclose(_np(loss), [0.0, 2e4, 0.0], rtol=1e-6, atol=1e-6)
    loss.sum().backward()
    g = _np(zt.grad)
    assert g.dtype == dtype and np.all(np.isfinite(g))
    soft = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float64)
    np.testing.assert_allclose(g, soft - _onehot(t, 3), atol=1e-6)


def test_cross_entropy_float32_in_float32_out():
    z = cr.tensor(Z.astype(np.float32), requires_grad=True)
    loss = F.cross_entropy(z, T, label_smoothing=0.1)
    assert loss.dtype == np.float32
    loss.backward()
    assert z.grad.dtype == np.float32
    np.testing.assert_allclose(float(loss), _ce_ref(Z.astype(np.float32), T, 0.1).mean(), rtol=1e-5)


def test_cross_entropy_bad_targets():
    z = cr.tensor(Z)
    with pytest.raises(ValueError, match=r"\[0, 5\)") as info:
        F.cross_entropy(z, np.array([0, 1, 2, 3, 4, 5, 0]))
    assert "5" in str(info.value)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        F.cross_entropy(z, np.array([0, 1, 2, 3, 4, -1, 0]))
    with pytest.raises((TypeError, ValueError), match="integer"):
        F.cross_entropy(z, T.astype(np.float64))
    with pytest.raises(ValueError, match=r"\(6,\)"):
        F.cross_entropy(z, T[:6])
    with pytest.raises(ValueError, match=r"\(7, 1\)"):
        F.cross_entropy(z, T[:, None])
    with pytest.raises(ValueError, match="logits"):
        F.cross_entropy(cr.tensor(Z[0]), T[:1])
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(z, T, reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(z, T, label_smoothing=1.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_reduces_in_one_node_with_the_bits_of_a_separate_reduction(reduction, dtype):
    # the op takes the mean or sum itself (one node, not two); value and gradient are the
    # same bits as the per-sample losses reduced by a mean or sum node after them
    z = Z.astype(dtype)
    fused_z, split_z = cr.tensor(z, requires_grad=True), cr.tensor(z, requires_grad=True)
    fused = F.cross_entropy(fused_z, T, reduction=reduction, label_smoothing=0.1)
    per_sample = F.cross_entropy(split_z, T, reduction="none", label_smoothing=0.1)
    split = cr.mean(per_sample) if reduction == "mean" else cr.sum(per_sample)
    assert fused.op == "cross_entropy" and split.op == reduction
    assert _np(fused).tobytes() == _np(split).tobytes()
    fused.backward()
    split.backward()
    assert _np(fused_z.grad).tobytes() == _np(split_z.grad).tobytes()


def test_cross_entropy_op_refuses_an_unknown_reduction():
    with pytest.raises(ValueError, match=r"cross_entropy: .*reduction must be one of"):
        cr.ops.cross_entropy(cr.tensor(Z), T, reduction="avg")


# -- functional: binary cross-entropy, nll -----------------------------------------------
def test_bce_with_logits_closed_form_and_gradient():
    z = RNG.normal(size=(8, 3)) * 4
    y = RNG.uniform(size=(8, 3))
    ref = np.logaddexp(0, z) - z * y  # = -[y log s + (1-y) log(1-s)]
    s = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(ref, -(y * np.log(s) + (1 - y) * np.log(1 - s)), rtol=1e-9)
    for reduction, r in (("mean", ref.mean()), ("sum", ref.sum()), ("none", ref)):
        out = F.binary_cross_entropy_with_logits(cr.tensor(z), cr.tensor(y), reduction=reduction)
        np.testing.assert_allclose(_np(out), r, rtol=1e-12)
    zt = cr.tensor(z, requires_grad=True)
    F.binary_cross_entropy_with_logits(zt, cr.tensor(y)).backward()
    np.testing.assert_allclose(_np(zt.grad), (s - y) / z.size, rtol=1e-12)
    assert cr.gradcheck(lambda a: F.binary_cross_entropy_with_logits(a, y), z)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_stable_for_huge_logits(dtype):
    z = np.array([1e4, -1e4, 1e4, -1e4], dtype=dtype)
    y = np.array([0.0, 1.0, 1.0, 0.0], dtype=dtype)
    zt = cr.tensor(z, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(zt, cr.tensor(y), reduction="none")
    np.testing.assert_allclose(_np(loss), [1e4, 1e4, 0.0, 0.0], rtol=1e-6, atol=1e-6)
    loss.sum().backward()
    g = _np(zt.grad)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, [1.0, -1.0, 0.0, 0.0], atol=1e-6)


def test_bce_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        F.binary_cross_entropy_with_logits(cr.tensor(np.zeros((3, 1))), cr.tensor(np.zeros(3)))


def test_nll_loss_equals_cross_entropy_on_log_softmax_and_scatters_gradient():
    for reduction in ("mean", "sum", "none"):
        a = F.nll_loss(F.log_softmax(cr.tensor(Z), axis=-1), T, reduction=reduction)
        b = F.cross_entropy(cr.tensor(Z), T, reduction=reduction)
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-12)
    lp = cr.tensor(_log_softmax_ref(Z), requires_grad=True)
    loss = F.nll_loss(lp, T)
    assert float(loss) == pytest.approx(-_log_softmax_ref(Z)[np.arange(N), T].mean(), rel=1e-12)
    loss.backward()
    np.testing.assert_array_equal(_np(lp.grad), -_onehot(T, K) / N)
    # repeated targets in a batch accumulate nothing across rows: each row has its own entry
    lp = cr.tensor(np.zeros((3, 2)), requires_grad=True)
    F.nll_loss(lp, np.array([1, 1, 1]), reduction="sum").backward()
    np.testing.assert_array_equal(_np(lp.grad), [[0, -1], [0, -1], [0, -1]])
    with pytest.raises(ValueError):
        F.nll_loss(cr.tensor(Z), np.full(N, K))


# -- whole-network gradchecks ------------------------------------------------------------
def _call_with(model, names, values, x):
    """model(x) with the named parameters replaced by ``values`` (arrays or traced tensors),
    bypassing registration so the model is left exactly as it was."""
    mods = dict(model.named_modules())
    saved = []
    try:
        for name, value in zip(names, values):
            owner, _, attr = name.rpartition(".")
            mod = mods[owner]
            saved.append((mod, attr, getattr(mod, attr)))
            object.__setattr__(mod, attr, value)
        return model(x)
    finally:
        for mod, attr, old in reversed(saved):
            object.__setattr__(mod, attr, old)


def test_gradcheck_whole_mlp_cross_entropy_wrt_every_parameter():
    net = cr.nn.MLP([4, 5, 6, 3], activation="tanh", rng=0)
    for p in net.parameters():  # non-zero biases, so their gradients are exercised
        p.data = p.data + RNG.normal(size=p.shape) * 0.1
    x = RNG.normal(size=(6, 4))
    t = np.array([0, 2, 1, 1, 0, 2])
    names = [n for n, _ in net.named_parameters()]
    values = [_np(p).copy() for p in net.parameters()]
    assert len(names) == 6

    def loss(*ps):
        return F.cross_entropy(_call_with(net, names, ps, x), t, label_smoothing=0.1)

    assert cr.gradcheck(loss, *values)  # every float argument, i.e. every parameter
    # and the gradients that the module itself accumulates match finite differences
    net.zero_grad()
    F.cross_entropy(net(cr.tensor(x)), t, label_smoothing=0.1).backward()
    numeric = cr.numerical_grad(loss, *values, argnums=tuple(range(len(values))))
    for name, p, num in zip(names, net.parameters(), numeric):
        np.testing.assert_allclose(_np(p.grad), num, rtol=1e-6, atol=1e-9, err_msg=name)


def test_gradcheck_regression_mlp_mse():
    net = cr.nn.MLP([3, 6, 2], activation="softplus", rng=1)
    x = RNG.normal(size=(5, 3))
    y = RNG.normal(size=(5, 2))
    names = [n for n, _ in net.named_parameters()]
    values = [_np(p).copy() for p in net.parameters()]
    assert cr.gradcheck(lambda *ps: F.mse_loss(_call_with(net, names, ps, x), y), *values)
    F.mse_loss(net(cr.tensor(x)), cr.tensor(y)).backward()
    numeric = cr.numerical_grad(
        lambda *ps: F.mse_loss(_call_with(net, names, ps, x), y),
        *values,
        argnums=tuple(range(len(values))),
    )
    for name, p, num in zip(names, net.parameters(), numeric):
        np.testing.assert_allclose(_np(p.grad), num, rtol=1e-6, atol=1e-9, err_msg=name)


def test_cross_entropy_with_a_masked_logit_is_finite_and_exact():
    # a -inf logit (a masked class) has probability 0: the loss and the gradient stay finite
    z = cr.tensor([[0.0, -np.inf, 1.0], [2.0, 0.5, -np.inf]], requires_grad=True)
    loss = cr.nn.functional.cross_entropy(z, np.array([2, 0]), reduction="sum")
    e = np.e
    want = (np.log(1 + e) - 1.0) + (np.log(np.exp(2.0) + np.exp(0.5)) - 2.0)
    assert abs(float(loss) - want) < 1e-12
    loss.backward()
    p0 = np.array([1 / (1 + e), 0.0, e / (1 + e)])
    p1 = np.array([np.exp(2.0), np.exp(0.5), 0.0]) / (np.exp(2.0) + np.exp(0.5))
    want_grad = np.stack([p0 - [0, 0, 1], p1 - [1, 0, 0]])
    assert np.allclose(z.grad.numpy(), want_grad, rtol=1e-12, atol=1e-15)


def test_cross_entropy_op_refuses_an_out_of_range_target():
    with pytest.raises(IndexError, match="cross_entropy"):
        cr.ops.cross_entropy(cr.tensor(np.zeros((2, 3)), requires_grad=True), np.array([0, 3]))


def test_relu_backward_is_a_mask_multiply_so_an_infinite_gradient_shows():
    x = cr.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    y = cr.relu(x)
    with np.errstate(invalid="ignore"):
        y.backward(grad=np.array([1.0, 1.0, 3.0]))
        assert x.grad.tolist() == [0.0, 0.0, 3.0]  # relu'(0) = 0
        x.grad = None
        cr.relu(x).backward(grad=np.array([np.inf, 1.0, 1.0]))
    g = x.grad.numpy()
    assert np.isnan(g[0]) and g[1:].tolist() == [0.0, 1.0]  # inf * 0, not hidden as 0


# -- the softmax family on many short rows (the transposed-copy sums of ops/nn.py) ----------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(32, 10), (64, 32), (300, 3), (33, 1), (31, 10), (40, 33)])
def test_softmax_family_on_many_short_rows_matches_references(shape, dtype):
    # at 32 or more rows of at most 32 entries, max and sum run over a transposed copy; the
    # shapes around those limits must give the same values (to within an ulp or two)
    import scipy.special as sp

    z = (RNG.normal(size=shape) * 4).astype(dtype)
    t = RNG.integers(0, shape[1], size=shape[0])
    ref64 = z.astype(np.float64)
    rtol = 4e-6 if dtype == np.float32 else 1e-13
    got = {
        "softmax": cr.softmax(cr.tensor(z), axis=-1),
        "log_softmax": F.log_softmax(cr.tensor(z), axis=-1),
        "logsumexp": cr.logsumexp(cr.tensor(z), axis=-1),
        "cross_entropy": F.cross_entropy(cr.tensor(z), t, reduction="none"),
    }
    want = {
        "softmax": sp.softmax(ref64, axis=-1),
        "log_softmax": sp.log_softmax(ref64, axis=-1),
        "logsumexp": sp.logsumexp(ref64, axis=-1),
        "cross_entropy": -sp.log_softmax(ref64, axis=-1)[np.arange(shape[0]), t],
    }
    for name, value in got.items():
        assert value.dtype == dtype, name
        np.testing.assert_allclose(_np(value), want[name], rtol=rtol, atol=rtol, err_msg=name)
    zt = cr.tensor(z, requires_grad=True)
    F.cross_entropy(zt, t, reduction="sum").backward()
    np.testing.assert_allclose(
        _np(zt.grad), sp.softmax(ref64, axis=-1) - _onehot(t, shape[1]), rtol=rtol, atol=rtol
    )


def test_softmax_family_on_many_short_rows_keeps_infinite_and_masked_rows():
    # the transposed path with -inf (masked) entries, a whole -inf row, +inf and NaN
    z = RNG.normal(size=(40, 6))
    z[0, 2] = -np.inf  # a masked class: probability 0
    z[1, :] = -np.inf  # an all -inf row: logsumexp -inf, gradient 0
    z[2, 4] = np.inf
    z[3, 0] = np.nan
    lse = cr.logsumexp(cr.tensor(z), axis=-1)
    assert lse.data[1] == -np.inf and lse.data[2] == np.inf and np.isnan(lse.data[3])
    finite_rows = z.copy()
    finite_rows[2:4] = 0.0  # (a +inf or NaN logit has a NaN gradient, with NumPy's warning)
    zt = cr.tensor(finite_rows, requires_grad=True)
    cr.sum(cr.logsumexp(zt, axis=-1)).backward()
    g = _np(zt.grad)
    assert g[0, 2] == 0.0 and np.all(g[1] == 0.0)
    np.testing.assert_allclose(g[4:].sum(axis=-1), 1.0, rtol=1e-14)
    p = _np(cr.softmax(cr.tensor(z[4:]), axis=-1))
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-14)
    assert cr.gradcheck(lambda x: cr.logsumexp(x, axis=-1), z[4:])
    assert cr.gradcheck(lambda x: F.cross_entropy(x, np.arange(36) % 6), z[4:])


class _Counting(cr.nn.Module):
    """A layer whose class has its own __call__ (a hook, say): Sequential must call it."""

    calls = 0

    def __call__(self, x):
        type(self).calls += 1
        return super().__call__(x)

    def forward(self, x):
        return x * 2.0


def test_sequential_tags_each_node_with_its_layer_and_calls_a_layer_s_own_call():
    lin, act, counting = cr.nn.Linear(3, 4, rng=0), cr.nn.Tanh(), _Counting()
    seq = cr.nn.Sequential(lin, act, counting)
    x = cr.tensor(np.ones((2, 3)))
    out = seq(x)
    assert _Counting.calls == 1
    doubled, tanh_out = out, out._a
    linear_out = tanh_out._a
    assert doubled._scope == (seq, counting)
    assert tanh_out._scope == (seq, act)
    assert linear_out._scope == (seq, lin)
    assert cr.engine.state.scope == ()  # restored after the call
    with pytest.raises(ValueError):
        seq(cr.tensor(np.ones((2, 5))))  # a layer that raises: the scope is restored too
    assert cr.engine.state.scope == ()
