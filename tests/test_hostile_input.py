"""Hostile input: values, types and structures that a careless or adversarial caller hands the
library. Each either gets PyTorch's documented answer or an error that names the op (or the
object), the shapes and dtypes, and what to do; never a crash from inside the library
(ZeroDivisionError, RecursionError, an error that fails to build its own message)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import chainrule as cr


# -- var and std with no degrees of freedom (ddof >= n, an empty axis) ----------------------
def _value_and_grad(fn, x0, **kwargs):
    """fn's value on x0 and the gradient of its sum, with NumPy's warnings silenced."""
    x = cr.tensor(x0, requires_grad=True)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        out = fn(x, **kwargs)
        cr.sum(out).backward()
    return out.numpy(), x.grad.numpy()


@pytest.mark.parametrize("fn", [cr.var, cr.std], ids=["var", "std"])
def test_var_std_over_an_empty_axis_are_nan_with_an_empty_gradient(fn):
    value, grad = _value_and_grad(fn, np.zeros((3, 0)), axis=1)
    assert value.shape == (3,) and np.all(np.isnan(value))
    assert grad.shape == (3, 0)


@pytest.mark.parametrize("ddof", [2, 3, 5])
def test_var_with_ddof_at_least_n_follows_pytorch(ddof):
    x0 = np.array([[1.0, 3.0], [2.0, 2.0]])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        want = np.var(x0, axis=1, ddof=ddof)
    value, grad = _value_and_grad(cr.var, x0, axis=1, ddof=ddof)
    np.testing.assert_array_equal(value, want)  # NumPy's (and PyTorch's) inf and NaN
    # 2 (x_i - mean) / 0: +-inf where x_i differs from the mean, NaN where it equals it
    assert grad[0].tolist() == [-np.inf, np.inf]
    assert np.all(np.isnan(grad[1]))


@pytest.mark.parametrize("ddof", [1, 2])
def test_std_with_ddof_at_least_n_has_a_nan_gradient(ddof):
    value, grad = _value_and_grad(cr.std, np.array([4.0]), ddof=ddof)
    assert np.isnan(value)
    assert np.all(np.isnan(grad))


def test_var_with_no_degrees_of_freedom_in_forward_mode_and_second_order():
    x0 = np.array([1.0, 3.0])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        _, tangent = cr.jvp(lambda x: cr.var(x, ddof=2), (x0,), (np.array([1.0, 0.0]),))
        assert np.isinf(tangent)
        hess = cr.hessian(lambda x: cr.var(x, ddof=2))(x0)
    assert not np.all(np.isfinite(np.asarray(hess)))


# -- text, dates and Python objects -----------------------------------------------------------
NOT_NUMBERS = {
    "text": np.array(["a", "b"]),
    "bytes": np.array([b"a", b"b"]),
    "datetime": np.array(["2020-01-01", "2021-06-30"], dtype="datetime64[D]"),
    "object": np.array([1.0, None], dtype=object),
}


@pytest.mark.parametrize("data", NOT_NUMBERS.values(), ids=NOT_NUMBERS.keys())
@pytest.mark.parametrize(
    "name, op",
    [
        ("negative", lambda t: -t),
        ("exp", cr.exp),
        ("sum", cr.sum),
        ("multiply", lambda t: t * t),
        ("matmul", lambda t: t @ t),
    ],
)
def test_ops_on_non_numeric_tensors_name_the_op_and_the_dtype(data, name, op):
    t = cr.Tensor(data)  # the bare constructor, which does not check, as ops see their results
    with pytest.raises(TypeError) as err:
        op(t)
    message = str(err.value)
    assert message.startswith(f"{name}: ") and str(data.dtype) in message
    assert "numbers and booleans" in message and "convert the data to numbers first" in message


@pytest.mark.parametrize(
    "data, given",
    [
        (None, "got None"),
        ("abc", "got the string 'abc'"),
        (b"abc", "got the bytes b'abc'"),
        ([1.0, None], "got a list holding None at [1]"),
        ([[1.0, 2.0], [3.0, "4"]], "got a list holding the string '4' at [1][1]"),
        ((1, object()), "got a tuple holding a object"),
        ({"w": 1.0}, "got a dict"),
        (np.array(["1.5"]), "got an array of dtype <U3"),
        (np.array([1, None], dtype=object), "got an array of dtype object"),
        (np.array(["2020-01-01"], dtype="datetime64[D]"), "got an array of dtype datetime64[D]"),
        (np.array([1, 2], dtype="timedelta64[s]"), "got an array of dtype timedelta64[s]"),
    ],
)
def test_tensor_refuses_what_is_not_numbers(data, given):
    for make in (cr.tensor, cr.asarray):
        with pytest.raises(TypeError) as err:
            make(data)
        message = str(err.value)
        assert "expected numbers or booleans" in message and given in message, message


def test_tensor_still_takes_numbers_booleans_and_text_it_is_told_to_convert():
    assert cr.tensor([1, 2.5, True]).dtype == np.float64
    assert cr.tensor([np.float32(1.0), np.int8(2)]).dtype == np.float32
    assert cr.tensor(np.array([True, False])).dtype == np.bool_
    assert cr.tensor(["1.5", "2"], dtype="float64").tolist() == [1.5, 2.0]  # asked for
    assert cr.tensor([np.array(1.0), 2.0]).tolist() == [1.0, 2.0]


# -- a module that contains itself --------------------------------------------------------------
class Net(cr.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = cr.nn.Linear(2, 2, rng=0)
        self.register_buffer("steps", cr.tensor(0.0))

    def forward(self, x):
        return self.fc(x)


def _self_loop():
    net = Net()
    net.child = net
    return net


def _loop_through_a_list():
    net = Net()
    net.blocks = cr.nn.ModuleList([cr.nn.Linear(2, 2, rng=1)])
    net.blocks.append(net)
    return net


def _loop_through_a_sequential():
    net = Net()
    inner = Net()
    net.seq = cr.nn.Sequential(cr.nn.Tanh(), inner)
    inner.back = net.seq
    return net


CYCLES = {
    "self": _self_loop,
    "list": _loop_through_a_list,
    "sequential": _loop_through_a_sequential,
}


@pytest.mark.parametrize("make", CYCLES.values(), ids=CYCLES.keys())
def test_a_module_that_contains_itself_is_walked_once(make):
    net = make()
    names = [name for name, _ in net.named_parameters()]
    assert len(names) == len(set(names)) and {"fc.weight", "fc.bias"} <= set(names)
    assert len(list(net.parameters())) == len(names)
    modules = list(net.modules())
    assert len(modules) == len({id(m) for m in modules})  # each once
    assert modules[0] is net
    state = net.state_dict()
    assert set(state) == set(names) | {n for n, _ in net._state_buffers()}
    assert "steps" in state
    net.load_state_dict(state)
    assert len(list(net.named_buffers())) == len({id(b) for b in net.buffers()})
    visited = []
    net.apply(visited.append)
    assert len(visited) == len(modules) and visited[-1] is net  # children first, each once
    net.eval()
    assert not any(m.training for m in modules)
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    net.zero_grad()
    assert net.num_parameters() == sum(p.size for p in net.parameters())


def test_the_repr_of_a_cycle_shows_it():
    text = repr(_self_loop())
    assert "(child): <cycle: Net>" in text and "(fc): Linear" in text
    text = repr(_loop_through_a_list())
    assert "(1): <cycle: Net>" in text
    text = repr(_loop_through_a_sequential())
    assert "(back): <cycle: Sequential>" in text


def test_a_shared_module_is_listed_once_under_its_first_name():
    shared = cr.nn.Linear(2, 2, rng=0)
    net = cr.nn.Sequential(shared, cr.nn.Tanh(), shared)
    assert [name for name, _ in net.named_modules()] == ["", "0", "1"]
    assert [name for name, _ in net.named_parameters()] == ["0.weight", "0.bias"]
    assert repr(net).count("Linear") == 2  # not a cycle: shown in full at each place


# -- assigning .grad -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, error, given",
    [
        ("abc", TypeError, "got str 'abc'"),
        (3.0, TypeError, "got float 3.0"),
        ([1.0, 2.0, 3.0], TypeError, "got list"),
        (object(), TypeError, "got object"),
        (np.zeros(2), ValueError, "got shape (2,) (dtype float64)"),
        (np.zeros((3, 1)), ValueError, "got shape (3, 1)"),
        (cr.zeros((2, 3)), ValueError, "got shape (2, 3)"),
        (np.array(["a", "b", "c"]), TypeError, "got dtype <U1"),
        (np.array([1, 2, 3]), TypeError, "got dtype int64"),
    ],
)
def test_a_wrong_grad_says_what_is_wrong(value, error, given):
    x = cr.tensor([1.0, 2.0, 3.0], dtype="float32", requires_grad=True)
    with pytest.raises(error) as err:
        x.grad = value
    message = str(err.value)
    assert message.startswith("grad: ") and given in message
    assert "shape (3,) and dtype float32" in message  # what the tensor is
    assert x.grad is None  # nothing was assigned


def test_grad_takes_a_tensor_or_an_array_of_its_shape_and_none_clears_it():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    x.grad = np.array([0.5, -1.0])
    assert x.grad.tolist() == [0.5, -1.0]
    x.grad = cr.tensor([2.0, 3.0], dtype="float32")
    assert x.grad.tolist() == [2.0, 3.0]
    x.grad = None
    assert x.grad is None
    cr.sum(x * x).backward()
    assert x.grad.tolist() == [2.0, 4.0]


# -- losses and preprocessing on values outside their usual range -------------------------------
def test_bce_with_logits_takes_any_target_as_pytorch_does():
    z0 = np.array([-3.0, -0.5, 0.0, 2.0, 40.0])
    y0 = np.array([2.0, -1.0, 1.5, -0.25, 3.0])  # none in [0, 1]
    z = cr.tensor(z0, requires_grad=True)
    y = cr.tensor(y0, requires_grad=True)
    loss = cr.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none")
    # PyTorch's formula, (1 - y) z + log(1 + exp(-z)), for every y
    np.testing.assert_allclose(loss.numpy(), (1 - y0) * z0 + np.log1p(np.exp(-z0)), rtol=1e-13)
    assert loss.numpy()[-1] < 0  # not a probability, so not a cross-entropy >= 0
    cr.sum(loss).backward()
    np.testing.assert_allclose(z.grad.numpy(), 1 / (1 + np.exp(-z0)) - y0, rtol=1e-13)
    np.testing.assert_allclose(y.grad.numpy(), -z0, rtol=1e-13)
    nan_target = cr.nn.functional.binary_cross_entropy_with_logits(
        cr.tensor([0.0, 1.0]), np.array([np.nan, 1.0]), reduction="none"
    )
    assert np.isnan(nan_target.numpy()[0]) and np.isfinite(nan_target.numpy()[1])


def test_bce_with_logits_names_itself_for_a_wrong_reduction():
    with pytest.raises(ValueError, match=r"^binary_cross_entropy_with_logits: reduction"):
        cr.nn.functional.binary_cross_entropy_with_logits(
            cr.tensor([0.0]), np.array([1.0]), reduction="average"
        )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_standardize_with_nan_or_inf_gives_nan_features_without_warnings(bad):
    train = np.array([[1.0, 2.0], [bad, 4.0], [3.0, 6.0]])
    test = np.array([[2.0, np.nan], [2.0, 4.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from NumPy either
        tr, te = cr.data.standardize(train, test)
    # as (x - x.mean(0)) / x.std(0) in PyTorch: the feature with the bad value is NaN throughout
    assert np.all(np.isnan(tr[:, 0])) and np.all(np.isnan(te[:, 0]))
    np.testing.assert_allclose(tr[:, 1], [-np.sqrt(1.5), 0.0, np.sqrt(1.5)])
    assert np.isnan(te[0, 1]) and te[1, 1] == 0.0  # a NaN in the test set stays where it is
