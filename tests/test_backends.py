"""Tensors and models on other backends: cr.to, Module.to, cr.compute, optimizers on lazy
gradients, mixing backends in one op (Dask with NumPy: fine; GPU with host: an error).

The op table on Dask and CuPy is tested op by op in test_ops.py; training on a cluster of
processes in test_distributed.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import chainrule as cr
from chainrule.backends.devices import backend_of, convert, mixed_devices
from chainrule.engine.errors import forward_error

da = pytest.importorskip("dask.array")
import dask  # noqa: E402  (after the skip: Dask is optional)


class Computes:
    """Counts the passes Dask's scheduler makes (each ``dask.compute``, ``.compute()``,
    ``persist``) while it is entered."""

    def __init__(self) -> None:
        self.count = 0

    def __enter__(self) -> Computes:
        def counting(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return dask.get(*args, **kwargs)

        self._config = dask.config.set(scheduler=counting)
        self._config.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._config.__exit__(*exc)


def _data(rows: int = 600, features: int = 5, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((rows, features))
    y = (x @ rng.standard_normal((features, classes))).argmax(axis=1)
    return x, y


def _model(seed: int = 0) -> cr.nn.Module:
    cr.random.seed(seed)
    return cr.nn.Sequential(cr.nn.Linear(5, 8), cr.nn.Tanh(), cr.nn.Linear(8, 3))


def _train(
    x: Any,
    y: Any,
    optimizer: str,
    steps: int = 6,
    compute: bool = True,
    model: Any = None,
    after_step: Any = None,
) -> Any:
    """``steps`` full-batch steps of ``model`` (a fresh ``_model()`` where not given), each
    followed by ``after_step(model)``: the model and the losses."""
    model = _model() if model is None else model
    opt = (
        cr.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
        if optimizer == "sgd-momentum"
        else cr.optim.SGD(model.parameters(), lr=0.3)
        if optimizer == "sgd"
        else cr.optim.Adam(model.parameters(), lr=0.05)
    )
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = cr.nn.functional.cross_entropy(model(cr.tensor(x)), cr.tensor(y))
        loss.backward()
        if compute:
            cr.compute(loss, model)
        opt.step()
        losses.append(loss.item())
        if after_step is not None:
            after_step(model)
    return model, losses


# -- training on Dask data --------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["sgd", "sgd-momentum", "adam"])
def test_training_on_dask_data_matches_numpy(optimizer: str) -> None:
    x, y = _data()
    want, want_losses = _train(x, y, optimizer)
    got, got_losses = _train(
        da.from_array(x, chunks=(150, 5)), da.from_array(y, chunks=150), optimizer
    )
    np.testing.assert_allclose(got_losses, want_losses, rtol=1e-12)
    for p, q in zip(got.parameters(), want.parameters()):
        assert type(p._data) is np.ndarray  # parameters stay small NumPy arrays
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-10, atol=1e-12)


def test_a_step_on_dask_data_is_one_computation() -> None:
    # the forward's loss and every gradient of a step share one pass over the data
    x, y = _data()
    xd, yd = da.from_array(x, chunks=(150, 5)), da.from_array(y, chunks=150)
    model = _model()
    opt = cr.optim.SGD(model.parameters(), lr=0.1)
    with Computes() as passes:
        loss = cr.nn.functional.cross_entropy(model(cr.tensor(xd)), cr.tensor(yd))
        loss.backward()
        assert passes.count == 0  # building and differentiating compute nothing
        assert backend_of(model[0].weight.grad._data) == "dask"
        assert cr.compute(loss, model) == (loss, model)
        assert passes.count == 1
        opt.step()
        loss.item(), [p.grad.numpy() for p in model.parameters()]
    assert passes.count == 1  # (everything above read the computed values)
    assert type(loss._data) is not da.Array and type(model[0].weight.grad._data) is np.ndarray


def test_an_optimizer_computes_lazy_gradients_in_one_pass() -> None:
    x, y = _data()
    xd, yd = da.from_array(x, chunks=(150, 5)), da.from_array(y, chunks=150)
    want, _ = _train(x, y, "adam", steps=3)
    with Computes() as passes:
        got, _ = _train(xd, yd, "adam", steps=3, compute=False)
    # per step, one pass for the gradients (in step()) and one for loss.item()
    assert passes.count == 6
    for p, q in zip(got.parameters(), want.parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("compute", [False, True])
@pytest.mark.parametrize("optimizer", ["sgd", "sgd-momentum"])
def test_dask_parameters_are_persisted_each_step(optimizer: str, compute: bool) -> None:
    # parameters moved to Dask: each step's update is computed and kept, so the task graph
    # of step k does not hold steps 1 ... k-1 (whether the gradients come to the step lazy
    # or already computed by cr.compute)
    x, y = _data()
    sizes = []

    def graph_size(model: Any) -> None:
        w = model[0].weight._data
        assert backend_of(w) == "dask"
        sizes.append(len(w.__dask_graph__()))

    model, _ = _train(x, y, optimizer, 4, compute, _model().to("dask"), graph_size)
    assert sizes[-1] == sizes[0] == 1, sizes
    want, _ = _train(x, y, optimizer, steps=4, compute=False)
    np.testing.assert_allclose(model[0].weight.numpy(), want[0].weight.numpy(), rtol=1e-10)


# -- cr.to and Module.to ------------------------------------------------------------------------
def test_to_moves_a_tensor_and_the_gradient_comes_back() -> None:
    x = cr.tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    assert cr.to(x, "numpy") is x
    xd = cr.to(x, "dask", chunks=(1, 2))
    assert isinstance(xd._data, da.Array) and xd._data.chunks == ((1, 1, 1), (2,))
    np.testing.assert_array_equal(xd.numpy(), x.numpy())
    (cr.to(xd * xd, "numpy") * 3).sum().backward()
    assert type(x.grad._data) is np.ndarray  # back on the input's backend
    np.testing.assert_allclose(x.grad.numpy(), 6 * x.numpy())
    # Dask to Dask with new chunks; the gradient goes back with the input's chunks
    y = cr.tensor(da.ones((4,), chunks=2), requires_grad=True)
    z = cr.to(y, "dask", chunks=4)
    assert z._data.chunks == ((4,),)
    (z * 2).sum().backward()
    assert y.grad._data.chunks == ((2, 2),)
    np.testing.assert_array_equal(y.grad.numpy(), [2.0, 2.0, 2.0, 2.0])


def test_to_moves_lists_dicts_and_modules() -> None:
    a, b = cr.tensor([1.0]), cr.tensor([2.0])
    moved = cr.to({"a": a, "pair": [a, b]}, "dask")
    assert backend_of(moved["a"]._data) == "dask"
    assert [backend_of(t._data) for t in moved["pair"]] == ["dask", "dask"]
    layer = cr.nn.Linear(3, 2)
    assert cr.to(layer, "dask") is layer and backend_of(layer.weight._data) == "dask"
    with pytest.raises(TypeError, match=r"cr.to: expected a Tensor.*cr.tensor\(array\)"):
        cr.to(np.ones(3), "dask")
    with pytest.raises(ValueError, match=r"backend must be one of .*'numpy', 'cupy', 'dask'"):
        cr.to(a, "gpu")


def test_module_to_keeps_the_parameters_and_moves_gradients() -> None:
    model = _model()
    params = list(model.parameters())
    x, y = _data()
    cr.nn.functional.cross_entropy(model(cr.tensor(x)), cr.tensor(y)).backward()
    before = {n: p.numpy().copy() for n, p in model.named_parameters()}
    grads = [p.grad.numpy().copy() for p in params]
    versions = [p._version for p in params]
    assert model.to("dask") is model
    assert list(model.parameters()) == params  # the same objects: an optimizer still holds them
    assert all(backend_of(p._data) == "dask" and backend_of(p.grad._data) == "dask" for p in params)
    assert all(p._version != v for p, v in zip(params, versions))  # old graphs are stale
    model.to("numpy")
    for (name, p), g in zip(model.named_parameters(), grads):
        assert type(p._data) is np.ndarray
        np.testing.assert_array_equal(p.numpy(), before[name])
        np.testing.assert_array_equal(p.grad.numpy(), g)


def test_module_with_buffers_and_checkpoints_on_dask(tmp_path: Any) -> None:
    net = cr.nn.Sequential(
        cr.nn.Linear(4, 6), cr.nn.BatchNorm1d(6), cr.nn.ReLU(), cr.nn.Linear(6, 2)
    )
    net.to("dask")
    x = cr.tensor(da.from_array(np.random.default_rng(1).standard_normal((40, 4)), chunks=(10, 4)))
    out = net(x)
    assert backend_of(out._data) == "dask"
    assert backend_of(net[1].running_mean._data) == "dask"
    state = net.state_dict()
    assert all(type(v) is np.ndarray for v in state.values())
    cr.save(state, tmp_path / "net.safetensors")
    fresh = cr.nn.Sequential(
        cr.nn.Linear(4, 6), cr.nn.BatchNorm1d(6), cr.nn.ReLU(), cr.nn.Linear(6, 2)
    )
    fresh.load_state_dict(cr.load(tmp_path / "net.safetensors"))
    for (name, v), (_, w) in zip(fresh.state_dict().items(), state.items()):
        np.testing.assert_array_equal(v, w, err_msg=name)


def test_compute_refuses_what_it_cannot_compute() -> None:
    t = cr.tensor([1.0])
    assert cr.compute(t) is t
    with pytest.raises(TypeError, match="cr.compute: expected Tensors or Modules, got ndarray"):
        cr.compute(np.ones(2))


# -- mixing backends in one op ------------------------------------------------------------------
def test_numpy_and_dask_mix_and_the_result_is_dask() -> None:
    w = cr.tensor(np.ones((3, 2)), requires_grad=True)
    x = cr.tensor(da.ones((4, 3), chunks=2))
    with Computes() as passes:
        for out in (x @ w, cr.matmul(w.T, x.T), w.T @ x.T, cr.add(w.sum(axis=1), x)):
            assert backend_of(out._data) == "dask"
        (x @ w).sum().backward()
        assert passes.count == 0
    np.testing.assert_array_equal(w.grad.numpy(), np.full((3, 2), 4.0))


class _FakeGPUArray(np.ndarray):
    """A stand-in for a CuPy array: a NumPy array whose type says it comes from CuPy (the
    devices check goes by the array's module, as it must without importing CuPy)."""

    __module__ = "cupy._core.core"


def _on_fake_gpu(a: Any, requires_grad: bool = False) -> cr.Tensor:
    t = cr.tensor(np.zeros(0), requires_grad=requires_grad)
    t._data = np.asarray(a, dtype=float).view(_FakeGPUArray)  # (cr.tensor would copy to NumPy)
    return t


@pytest.fixture
def fake_gpu() -> Iterator[Any]:
    import array_api_compat.numpy as compat

    from chainrule.backends import NAMESPACES

    NAMESPACES[_FakeGPUArray] = compat  # a namespace other than NumPy's, as CuPy's is
    try:
        yield _on_fake_gpu
    finally:
        del NAMESPACES[_FakeGPUArray]


def test_gpu_and_host_arrays_in_one_op_name_both_devices(fake_gpu: Any) -> None:
    gpu = fake_gpu(np.ones((2, 3)), requires_grad=True)
    host = cr.tensor(np.ones((3, 2)))
    calls = (lambda: gpu @ host, lambda: gpu + host.T, lambda: cr.concatenate([gpu, host.T]))
    for call in calls:
        with pytest.raises(TypeError) as info:
            call()
        message = str(info.value)
        assert "CuPy array (GPU)" in message and "NumPy array (host" in message, message
        assert "cr.to(tensor, 'cupy')" in message and "no silent copies" in message
        assert message.split(":")[0] in ("matmul", "add", "concatenate", "stack"), message
    # host first: NumPy's function refuses CuPy's array (CuPy allows no implicit copy), and
    # that error is restated with both devices named
    refused = TypeError("Implicit conversion to a NumPy array is not allowed")
    err = forward_error(cr.ops.OPS["matmul"], (host._data, gpu._data), {}, refused)
    assert type(err) is TypeError and "CuPy array (GPU)" in str(err), str(err)
    assert mixed_devices([np.ones(2), da.ones(2)]) is None  # Dask takes either


def test_a_missing_backend_says_how_to_install_it() -> None:
    pytest.importorskip("dask")
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install 'chainrule\[cupy\]'"):
            cr.to(cr.tensor([1.0]), "cupy")
        with pytest.raises(ImportError, match=r"chainrule\[cupy\]"):
            cr.nn.Linear(2, 2).to("cupy")
    else:  # pragma: no cover - a machine with CuPy: see test_cupy_training
        pytest.skip("CuPy is installed here")


def test_convert_round_trips_and_keeps_dtypes() -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    d = convert(a, "dask", chunks=(2, 2))
    assert d.dtype == np.float32 and d.chunks == ((2, 1), (2, 2))
    back = convert(d, "numpy")
    assert type(back) is np.ndarray and back.dtype == np.float32
    np.testing.assert_array_equal(back, a)
    assert convert(a, "numpy") is a


# -- CuPy, where there is a GPU -----------------------------------------------------------------
def test_cupy_training_matches_numpy() -> None:
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("CuPy sees no GPU")
    except Exception as err:
        pytest.skip(f"CuPy cannot use a GPU here: {err}")
    x, y = _data()
    want, want_losses = _train(x, y, "adam")
    model = _model().to("cupy")
    opt = cr.optim.Adam(model.parameters(), lr=0.05)
    xg, yg = cr.to(cr.tensor(x), "cupy"), cr.to(cr.tensor(y), "cupy")
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = cr.nn.functional.cross_entropy(model(xg), yg)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    np.testing.assert_allclose(losses, want_losses, rtol=1e-9)
    for p, q in zip(model.parameters(), want.parameters()):
        assert backend_of(p._data) == "cupy"
        np.testing.assert_allclose(cupy.asnumpy(p._data), q.numpy(), rtol=1e-8, atol=1e-10)
