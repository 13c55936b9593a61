"""An activation written over the pre-activation it reads (the op contract: forward_into).

cr.nn.Sequential (and so MLP) lets relu and tanh write their result over the array of the
layer before when nothing else can see it. The tests compare against the same network
written with ops and no Sequential, where nothing is overwritten (values and gradients must
agree bit for bit), and check that inputs, parameters and anything a layer or a user kept are
never written.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import _record
from chainrule.ops import _registry
from chainrule.ops._registry import defop, reads

F = cr.nn.functional
BATCH = 256  # 256 x 128 = 32,768 elements per pre-activation: over OVERWRITE_MIN
WIDTH = 128


def _net(activation: str, dtype: str, sizes=(40, WIDTH, WIDTH, 10)) -> cr.nn.MLP:
    return cr.nn.MLP(list(sizes), activation=activation, dtype=dtype, rng=0)


def _batch(dtype: str, n: int = BATCH, d: int = 40) -> tuple[cr.Tensor, np.ndarray]:
    rng = np.random.default_rng(1)
    return cr.tensor(rng.standard_normal((n, d)).astype(dtype)), rng.integers(0, 10, n)


def _by_hand(net: cr.nn.MLP, x: cr.Tensor) -> cr.Tensor:
    """The same network as ops, without Sequential: every pre-activation kept."""
    layers = list(net)
    for layer in layers:
        if isinstance(layer, cr.nn.Linear):
            x = cr.ops.nn.linear(x, layer.weight, layer.bias)
        else:
            x = type(layer).fn(x)
    return x


def _grads(net: cr.nn.Module) -> list[np.ndarray]:
    return [p.grad.numpy().copy() for p in net.parameters()]


def _pre_activations(out: cr.Tensor) -> list[cr.Tensor]:
    """The Linear nodes feeding an activation, walking back from the network's output."""
    found = []
    t = out._a[0]  # the last Linear's input: an activation's output
    while t._op is not None and t._op.name in ("relu", "tanh"):
        z = t._a
        found.append(z)
        t = z._a[0]
    return found


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_mlp_overwrites_its_pre_activations_with_the_same_values_and_gradients(
    activation, dtype
):
    net = _net(activation, dtype)
    x, y = _batch(dtype)
    before = [p.numpy().copy() for p in net.parameters()]
    x_before = x.numpy().copy()

    out = net(x)
    zs = _pre_activations(out)
    assert len(zs) == 2
    for z in zs:
        assert z._version == _record.OVERWRITTEN
    act = out._a[0]
    assert np.shares_memory(act.data, zs[0].data)  # the activation lives in z's array
    loss = F.cross_entropy(out, y)
    loss.backward()
    got = _grads(net)

    net.zero_grad()
    ref_out = _by_hand(net, x)
    assert all(z._version == 0 for z in _pre_activations(ref_out))
    np.testing.assert_array_equal(out.numpy(), ref_out.numpy())
    ref_loss = F.cross_entropy(ref_out, y)
    ref_loss.backward()
    assert float(loss) == float(ref_loss)
    for g, r in zip(got, _grads(net)):
        np.testing.assert_array_equal(g, r)
    np.testing.assert_array_equal(x.numpy(), x_before)  # the input is never written
    for p, b in zip(net.parameters(), before):
        np.testing.assert_array_equal(p.numpy(), b)


def test_training_with_overwriting_follows_the_reference_step_for_step():
    net, ref = _net("relu", "float32"), _net("relu", "float32")
    x, y = _batch("float32")
    opt, ref_opt = cr.optim.SGD(net.parameters(), lr=0.1), cr.optim.SGD(ref.parameters(), lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
        ref_opt.zero_grad()
        F.cross_entropy(_by_hand(ref, x), y).backward()
        ref_opt.step()
    for p, r in zip(net.parameters(), ref.parameters()):
        np.testing.assert_array_equal(p.numpy(), r.numpy())


def test_gradients_of_gradients_and_retained_graphs_are_unchanged():
    net = _net("tanh", "float64")
    x, y = _batch("float64")
    params = list(net.parameters())

    def penalty(forward):
        loss = F.cross_entropy(forward(x), y)
        grads = cr.gradients(loss, params, create_graph=True)
        return loss, sum((g * g).sum() for g in grads)

    loss, pen = penalty(net)
    assert all(z._version == _record.OVERWRITTEN for z in _pre_activations(net(x)))
    pen.backward(retain_graph=True)
    first = _grads(net)
    net.zero_grad()
    pen.backward()  # the retained graph again: same values
    for a, b in zip(first, _grads(net)):
        np.testing.assert_array_equal(a, b)
    net.zero_grad()
    _, ref_pen = penalty(lambda v: _by_hand(net, v))
    ref_pen.backward()
    for a, b in zip(first, _grads(net)):
        np.testing.assert_array_equal(a, b)


class _Keeper(cr.nn.Module):
    """A layer that keeps its input: the pre-activation has a second holder."""

    def __init__(self) -> None:
        super().__init__()
        self.kept = None

    def forward(self, x):
        self.kept = x
        return x


class _Shared(cr.nn.Module):
    """A layer returning a tensor over an array it keeps: nothing may write into it."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = np.linspace(-1.0, 1.0, BATCH * WIDTH).reshape(BATCH, WIDTH).copy()

    def forward(self, x):
        return cr.Tensor(self.buffer)  # over the buffer itself, no copy; x is dropped


class _Reshape(cr.nn.Module):
    def forward(self, x):
        return cr.reshape(x, (BATCH, WIDTH))


class _MyReLU(cr.nn.ReLU):
    pass


def _linear_then(*layers):
    lin = cr.nn.Linear(40, WIDTH, rng=0, dtype="float64")
    return lin, cr.nn.Sequential(lin, *layers)


def _assert_kept(out, x, x_before):
    """The last activation's input was not overwritten, and backward leaves it as it was."""
    fed = out._a
    assert out._op.name == "relu" and fed._version != _record.OVERWRITTEN
    value = fed.numpy().copy()
    np.testing.assert_array_equal(out.numpy(), np.maximum(value, 0))
    out.sum().backward()
    np.testing.assert_array_equal(fed.numpy(), value)
    np.testing.assert_array_equal(x.numpy(), x_before)


@pytest.mark.parametrize(
    "case",
    [
        "a user keeps the pre-activation",
        "tanh's output, which tanh's rule reads",
        "a view of another array",
        "a subclass of ReLU",
        "an array below the size limit",
    ],
)
def test_nothing_is_overwritten_that_anything_reads_or_holds(case):
    x, _ = _batch("float64")
    if case == "a user keeps the pre-activation":
        keeper = _Keeper()
        lin, seq = _linear_then(keeper, cr.nn.ReLU())
    elif case == "tanh's output, which tanh's rule reads":
        lin, seq = _linear_then(cr.nn.Tanh(), cr.nn.ReLU())
    elif case == "a view of another array":
        lin, seq = _linear_then(_Reshape(), cr.nn.ReLU())
    elif case == "a subclass of ReLU":
        lin, seq = _linear_then(_MyReLU())
    else:
        lin, seq = _linear_then(cr.nn.ReLU())
        x = x[:64]  # 64 x 128 = 8,192 elements
    x_before = x.numpy().copy()
    out = seq(x)
    _assert_kept(out, x, x_before)
    if case == "a user keeps the pre-activation":
        np.testing.assert_array_equal(keeper.kept.numpy(), lin(x).numpy())


def test_neither_the_input_nor_an_array_a_layer_keeps_is_overwritten():
    x = cr.tensor(np.random.default_rng(2).standard_normal((BATCH, WIDTH)))
    x_before = x.numpy().copy()
    out = cr.nn.Sequential(cr.nn.ReLU(), cr.nn.Tanh())(x)  # the first layer reads the input
    np.testing.assert_array_equal(x.numpy(), x_before)
    np.testing.assert_array_equal(out.numpy(), np.tanh(np.maximum(x_before, 0)))
    shared = _Shared()
    kept = shared.buffer.copy()
    out = cr.nn.Sequential(cr.nn.Identity(), shared, cr.nn.ReLU())(x)
    np.testing.assert_array_equal(shared.buffer, kept)
    np.testing.assert_array_equal(out.numpy(), np.maximum(kept, 0))


def test_inference_without_a_graph_overwrites_too_and_gives_the_same_values():
    net = _net("relu", "float32")
    x, _ = _batch("float32")
    ref = _by_hand(net, x).numpy()
    with cr.no_grad():
        out = net(x)
    assert out._op is None
    np.testing.assert_array_equal(out.numpy(), ref)


@pytest.mark.parametrize("mode", ["anomaly", "forward"])
def test_special_modes_keep_every_value(mode):
    net = _net("relu", "float64")
    x, y = _batch("float64")
    if mode == "anomaly":
        with cr.detect_anomaly():
            out = net(x)
        assert all(z._version == 0 for z in _pre_activations(out))
    else:
        w = net[0].weight
        tangent = np.ones_like(w.numpy())

        def loss(v):
            net[0].weight = v
            return F.cross_entropy(net(x), y)

        try:
            _, along = cr.jvp(loss, (w.numpy(),), (tangent,))
        finally:
            net[0].weight = w
        # the same directional derivative from the reverse pass, on the same network
        F.cross_entropy(net(x), y).backward()
        np.testing.assert_allclose(float(along), float((w.grad.numpy() * tangent).sum()))


def test_the_graph_says_which_values_were_overwritten():
    net = _net("relu", "float64")
    x, _ = _batch("float64")
    g = cr.graph(net(x))
    linears = [n for n in g.nodes if n.op == "linear"]
    assert [n.overwritten for n in linears] == [True, True, False]
    assert [n.value is None for n in linears] == [True, True, False]
    assert "overwritten by the next op, in place" in g.to_dot(values=True)
    small = cr.graph(_net("relu", "float64", sizes=(4, 8, 1))(cr.ones((3, 4))))
    assert not any(n.overwritten for n in small.nodes)  # teaching-sized graphs keep it all


def test_a_compiled_mlp_gives_the_eager_gradients():
    net = _net("relu", "float32")
    x, y = _batch("float32")
    loss_fn = cr.compile(lambda v: F.cross_entropy(net(v), y))
    for _ in range(2):  # the trace, then a replay
        net.zero_grad()
        loss = loss_fn(x)
        loss.backward()
        got = _grads(net)
        net.zero_grad()
        ref = F.cross_entropy(_by_hand(net, x), y)
        ref.backward()
        assert float(loss) == float(ref)
        for a, b in zip(got, _grads(net)):
            np.testing.assert_array_equal(a, b)


def test_a_compiled_program_overwrites_the_same_values_on_every_call():
    net = _net("relu", "float32")
    x, y = _batch("float32")
    loss_fn = cr.compile(lambda v: F.cross_entropy(net(v), y))
    for _ in range(3):
        loss = loss_fn(x)
        kept = loss._a[0].values  # what the program keeps for its backward pass
        hidden = [a for a in kept if a.shape == (BATCH, WIDTH)]
        # each hidden layer's pre-activation and activation are one array
        assert len(hidden) == 4 and len({id(a) for a in hidden}) == 2
        loss.backward()
    program = next(iter(loss_fn.programs.values()))
    assert any(v is _record.overwrite for v in program.env.values())
    small = _net("tanh", "float64", sizes=(4, 8, 1))
    small_fn = cr.compile(lambda v: small(v).sum())
    small_fn(cr.ones((3, 4)))
    small_program = next(iter(small_fn.programs.values()))
    # arrays too small to gain: the program calls tanh itself, with no check on each call
    assert not any(v is _record.overwrite for v in small_program.env.values())


def test_a_compiled_program_never_writes_over_a_value_read_twice_or_a_view():
    w = cr.tensor(np.random.default_rng(3).standard_normal((WIDTH, WIDTH)), requires_grad=True)

    def twice(v):
        z = v @ w
        return (cr.relu(z) + z).sum()  # z is read again after relu

    twice_c = cr.compile(twice)
    v = cr.tensor(np.random.default_rng(4).standard_normal((BATCH, WIDTH)))
    for _ in range(2):
        assert float(twice_c(v)) == float(twice(v))

    def flat(v):
        return cr.relu(cr.reshape(v, (-1,))).sum()  # a copy at one call, a view at another

    flat_c = cr.compile(flat)
    square = np.random.default_rng(5).standard_normal((WIDTH * 2, WIDTH * 2))
    traced = cr.tensor(square.T, requires_grad=True)  # strided: reshape copies
    assert float(flat_c(traced)) == float(flat(traced))
    contiguous = cr.tensor(square.copy(), requires_grad=True)  # reshape gives a view of it
    before = contiguous.numpy().copy()
    assert float(flat_c(contiguous)) == float(flat(contiguous))
    np.testing.assert_array_equal(contiguous.numpy(), before)  # the argument is not written


def test_reads_finds_every_use_of_an_argument():
    assert reads(lambda g, out, x: g * out, 1)
    assert not reads(lambda g, out, x: g * out, 2)
    assert reads(lambda g, out, x: (lambda: x)(), 2)  # handed to an inner function
    assert reads(lambda *args: args[2], 2)  # cannot tell: assumed
    assert reads(max, 1)  # a builtin: assumed
    assert not reads(None, 1) and not reads(_registry.NOT_IMPLEMENTED, 1)

    def rule(g, out, x):
        x = None  # noqa: F841 (written, never read)
        return g

    def rebound(g, out, x):
        x = 2.0  # read after a rebinding: taken as a read (the check follows no data flow)
        return g * x

    assert not reads(rule, 2) and reads(rebound, 2)


def test_an_in_place_forward_is_refused_for_rules_that_read_the_input():
    name = "test_overwrite_bad_op"
    with pytest.raises(ValueError, match="forward_into overwrites the input"):
        defop(
            name,
            lambda xp, x: xp.exp(x),
            vjp=[lambda g, out, x: g * xp_exp(x)],  # noqa: F821 (never called)
            forward_into=lambda xp, x: xp.exp(x, out=x),
        )
    with pytest.raises(ValueError, match="forward_into overwrites the input"):
        defop(
            name,
            lambda xp, x, y: x + y,
            vjp=[lambda g, out, x, y: g, lambda g, out, x, y: g],
            forward_into=lambda xp, x, y: xp.add(x, y, out=x),
        )
    assert name not in _registry.REGISTRY
    assert cr.ops.nn.relu.into is not None and not cr.ops.nn.linear.reads_out
    assert cr.ops.nn.relu.reads_out  # its rule reads out: a relu's output is never overwritten


def test_the_graph_holds_one_array_per_layer_instead_of_two():
    import tracemalloc

    net = _net("relu", "float32", sizes=(40, 512, 512, 10))
    x, y = _batch("float32")

    def held(forward):
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            out = forward(x)
            return tracemalloc.get_traced_memory()[0] - before, out
        finally:
            tracemalloc.stop()

    kept, out = held(net)
    both, ref = held(lambda v: _by_hand(net, v))
    activations = 2 * BATCH * 512 * 4  # two hidden layers of float32
    assert both >= 2 * activations  # pre-activations and activations
    assert kept < both - 0.9 * activations  # the pre-activations' arrays are gone
    np.testing.assert_array_equal(out.numpy(), ref.numpy())
