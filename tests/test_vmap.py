"""cr.vmap: every op of the table batched against a loop over the examples, per-example
gradients, the composition with every transform, nesting, and the errors."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_samples import KINDS, SAMPLES, Sample, np_const

import chainrule as cr
from chainrule.backends.batched import FALLBACKS, Batched
from chainrule.ops import OPS

_SCALE = float(os.environ.get("OP_TESTS_SCALE", "1"))
NAMES = sorted(SAMPLES)
DIFF = [n for n in NAMES if n in OPS and OPS[n].differentiable]
# Ops whose forward needs each example's values (a count, an order) and so runs once per
# example (the fallback), not by a batching rule.
PER_EXAMPLE: set[str] = set()


def _run(strategy: Any, check: Callable[[Any], None], n: int) -> None:
    @settings(
        max_examples=max(1, round(n * _SCALE)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(strategy)
    def run(drawn: Any) -> None:
        check(drawn)

    run()


def _samples(name: str) -> Any:
    return st.tuples(st.one_of(*(SAMPLES[name](kind) for kind in KINDS)), st.integers(0, 2**31))


def _examples(a: np.ndarray) -> list[np.ndarray]:
    """Three examples near ``a``: itself and two scaled copies (floats only: an index stays)."""
    if a.dtype.kind != "f":
        return [a, a, a]
    return [a, a * (1 + 1e-3), a * (1 - 2e-3)]


def _close(got: Any, want: Any, what: str) -> None:
    got = got.numpy() if isinstance(got, cr.Tensor) else np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, a loop gives {want.shape}"
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, equal_nan=True, err_msg=what)


def _plain(x: Any) -> Any:
    return x.numpy() if isinstance(x, cr.Tensor) else x


# -- every op, batched by its rules, against a loop ---------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_vmap_of_every_op_equals_a_loop(name: str) -> None:
    def check(drawn: tuple[Sample, int]) -> None:
        s, seed = drawn
        batches = [np.stack(_examples(a)) for a in s.args]
        mapped = np.random.default_rng(seed).integers(0, 2, len(s.args)).astype(bool)
        mapped[0] = True
        in_axes = tuple(0 if m else None for m in mapped)
        args = [b if m else a for b, a, m in zip(batches, s.args, mapped)]
        loop = [
            _plain(
                s.call(np_const, *[b[k] if m else a for b, a, m in zip(batches, s.args, mapped)])
            )
            for k in range(3)
        ]
        got = cr.vmap(lambda *xs: s.call(np_const, *xs), in_axes=in_axes)(*args)
        _close(got, np.stack(loop), f"{s} with in_axes={in_axes}")

    _run(_samples(name), check, 6)


@pytest.mark.parametrize("name", DIFF)
def test_per_example_gradients_of_every_op_equal_a_loop(name: str) -> None:
    def check(drawn: tuple[Sample, int]) -> None:
        s, seed = drawn
        rng = np.random.default_rng(seed)
        floats = tuple(i for i, a in enumerate(s.args) if a.dtype.kind == "f")
        if not floats:
            return
        w = rng.standard_normal(np.shape(_plain(s.call(np_const, *s.args))))

        def loss(*xs: Any) -> Any:
            return cr.sum(s.call(np_const, *xs) * w)

        grad = cr.grad(loss, argnums=floats)
        batches = [np.stack(_examples(a)) for a in s.args]
        got = cr.vmap(grad)(*batches)
        for k in range(3):
            want = grad(*[b[k] for b in batches])
            for i, (g, wk) in enumerate(zip(got, want)):
                _close(g[k], wk, f"{s}: example {k}, gradient {i}")
        # and the other way round: the gradient of a summed batch, where the arguments after
        # the first are shared by the examples (their gradient sums over them)
        in_axes = (0,) + (None,) * (len(s.args) - 1)
        args = [batches[0], *s.args[1:]]
        summed = cr.vmap(loss, in_axes=in_axes)
        total = cr.grad(lambda *xs: cr.sum(summed(*xs)), argnums=floats)(*args)
        loops = [grad(batches[0][k], *s.args[1:]) for k in range(3)]
        for j, (i, t) in enumerate(zip(floats, total)):
            each = [g[j] for g in loops]
            want = np.stack(each) if i == 0 else np.sum(each, axis=0)
            _close(t, want, f"{s}: gradient {i} of the summed batch")

    _run(_samples(name), check, 5)


# every op of these families has batching rules for all that its forward and rules call
RULED = [
    n
    for n in NAMES
    if n in OPS
    and OPS[n].family in {"elementwise", "reduction", "shape", "nn", "indexing", "linalg", "scan"}
    and n not in PER_EXAMPLE
]


@pytest.mark.parametrize("name", RULED)
def test_the_table_batches_by_rules_not_by_loops(name: str) -> None:
    def check(drawn: tuple[Sample, int]) -> None:
        s, _ = drawn
        FALLBACKS.clear()
        batches = [np.stack(_examples(a)) for a in s.args]
        cr.vmap(lambda *xs: s.call(np_const, *xs))(*batches)
        if OPS[name].differentiable and s.args[0].dtype.kind == "f":
            cr.vmap(cr.grad(lambda *xs: cr.sum(s.call(np_const, *xs))))(*batches)
        assert not FALLBACKS, f"{s}: ran once per example: {dict(FALLBACKS)}"

    _run(_samples(name), check, 3)


# -- per-example gradients of a network ---------------------------------------------------------
def _mlp_loss(params: dict[str, Any], x: Any, y: Any) -> Any:
    h = cr.tanh(x @ params["W1"] + params["b1"])
    logits = h @ params["W2"] + params["b2"]
    return cr.cross_entropy(logits, y)


def test_per_example_gradients_of_an_mlp_equal_a_loop() -> None:
    rng = np.random.default_rng(0)
    params = {
        "W1": rng.standard_normal((6, 5)) * 0.5,
        "b1": rng.standard_normal(5) * 0.1,
        "W2": rng.standard_normal((5, 3)) * 0.5,
        "b2": np.zeros(3),
    }
    x, y = rng.standard_normal((8, 6)), rng.integers(0, 3, 8)
    per_example = cr.vmap(cr.grad(_mlp_loss), in_axes=(None, 0, 0))(params, x, y)
    assert set(per_example) == set(params)
    for k in range(8):
        want = cr.grad(_mlp_loss)(params, x[k], y[k])
        for key in params:
            _close(per_example[key][k], want[key], f"example {k}, {key}")
    # their mean is the gradient of the mean loss
    mean = cr.grad(lambda p: cr.mean(cr.vmap(_mlp_loss, in_axes=(None, 0, 0))(p, x, y)))(params)
    for key in params:
        _close(per_example[key].mean(axis=0), mean[key], key)
    assert not FALLBACKS or "cross_entropy" not in str(FALLBACKS)


def test_per_example_gradient_norms_clip_like_dp_sgd() -> None:
    # the use that needs per-example gradients: clip each example's gradient, then average
    rng = np.random.default_rng(1)
    w, x, y = rng.standard_normal(4), rng.standard_normal((16, 4)), rng.standard_normal(16)
    loss = lambda w, x, y: (x @ w - y) ** 2  # noqa: E731
    g = cr.vmap(cr.grad(loss), in_axes=(None, 0, 0))(w, x, y)
    closed_form = 2 * (x @ w - y)[:, None] * x
    _close(g, closed_form, "per-example gradients of a squared error")
    norms = np.linalg.norm(g, axis=1)
    clipped = g / np.maximum(1.0, norms / 1.0)[:, None]
    assert np.all(np.linalg.norm(clipped, axis=1) <= 1.0 + 1e-12)


# -- composition --------------------------------------------------------------------------------
X = np.random.default_rng(2).standard_normal((4, 3))


def _f(x: Any) -> Any:
    return cr.sum(cr.sin(x) * x) * cr.tanh(x)


@pytest.mark.parametrize(
    "name, batched, one",
    [
        ("jacobian", cr.vmap(cr.jacobian(_f)), cr.jacobian(_f)),
        ("jacfwd", cr.vmap(cr.jacfwd(_f)), cr.jacfwd(_f)),
        (
            "hessian",
            cr.vmap(cr.hessian(lambda x: cr.sum(_f(x)))),
            cr.hessian(lambda x: cr.sum(_f(x))),
        ),
        (
            "jvp",
            cr.vmap(lambda x: cr.jvp(_f, (x,), (cr.ones_like(x),))[1]),
            lambda x: cr.jvp(_f, (x,), (np.ones_like(x),))[1],
        ),
        (
            "vjp",
            cr.vmap(lambda x: cr.vjp(_f, x)[1](cr.ones_like(x))[0]),
            lambda x: cr.vjp(_f, x)[1](np.ones_like(x))[0],
        ),
        ("vmap", cr.vmap(cr.vmap(lambda v: cr.sin(v) * v)), lambda x: np.sin(x) * x),
        (
            "grad of grad",
            cr.vmap(cr.grad(lambda x: cr.sum(cr.grad(lambda y: cr.sum(_f(y)))(x) ** 2))),
            cr.grad(lambda x: cr.sum(cr.grad(lambda y: cr.sum(_f(y)))(x) ** 2)),
        ),
    ],
)
def test_vmap_composes_with(name: str, batched: Any, one: Any) -> None:
    got = batched(X)
    want = np.stack([_plain(one(x)) for x in X])
    _close(got, want, name)


def test_transforms_of_a_vmapped_function() -> None:
    f = cr.vmap(lambda x: cr.sum(cr.exp(x) * x))
    # jvp of vmap: one tangent per example
    t = np.ones_like(X)
    _, tangent = cr.jvp(f, (X,), (t,))
    _close(tangent, ((1 + X) * np.exp(X)).sum(axis=1), "jvp of vmap")
    # jacobian of vmap: block diagonal
    J = cr.jacobian(f)(X)
    assert J.shape == (4, 4, 3)
    for i in range(4):
        for j in range(4):
            want = (1 + X[i]) * np.exp(X[i]) if i == j else np.zeros(3)
            _close(J[i, j], want, f"block {i}, {j}")
    # hessian through vmap
    H = cr.hessian(lambda x: cr.sum(f(x)))(X)
    assert H.shape == (4, 3, 4, 3)
    _close(H[1, :, 1, :], np.diag((2 + X[1]) * np.exp(X[1])), "hessian block")
    _close(H[1, :, 2, :], np.zeros((3, 3)), "hessian off-block")


def test_nested_vmap_with_closures_over_the_outer_batch() -> None:
    A, B = np.random.default_rng(3).standard_normal((2, 4, 3))

    def outer(a: Any) -> Any:
        return cr.vmap(lambda b: cr.sum(a * b) + cr.max(a))(B)  # a: the outer example

    got = cr.vmap(outer)(A)
    want = A @ B.T + A.max(axis=1)[:, None]
    _close(got, want, "vmap of a vmap closing over the outer value")
    # per-example gradients through the nesting
    g = cr.vmap(cr.grad(lambda a: cr.sum(outer(a))))(A)
    _close(g, np.broadcast_to(B.sum(axis=0), A.shape) + 4 * (A == A.max(1, keepdims=True)), "grad")


def test_in_axes_and_out_axes() -> None:
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((3, 5, 2)), rng.standard_normal(2)
    got = cr.vmap(lambda a, b: a * b, in_axes=(1, None), out_axes=2)(x, w)
    assert got.shape == (3, 2, 5)
    _close(got, np.moveaxis(np.moveaxis(x, 1, 0) * w, 0, 2), "in_axes=1, out_axes=2")
    # containers, with in_axes a matching container, and several results
    d = {"a": rng.standard_normal((4, 2)), "b": rng.standard_normal(2)}
    out = cr.vmap(
        lambda p: (p["a"] + p["b"], cr.sum(p["b"])),
        in_axes=({"a": 0, "b": None},),
        out_axes=(0, None),
    )(d)
    _close(out[0], d["a"] + d["b"], "dict argument")
    _close(out[1], d["b"].sum(), "out_axes=None result")
    # an output that does not depend on the batch is repeated along it
    _close(cr.vmap(lambda v: cr.tensor(2.0))(x), np.full(3, 2.0), "constant result")
    # keyword arguments pass as they are
    _close(cr.vmap(lambda v, *, k: v * k)(x, k=3.0), 3 * x, "keyword argument")


def test_tensors_in_tensors_out_and_gradients_flow_through() -> None:
    x = cr.tensor(X, requires_grad=True)
    y = cr.vmap(lambda v: cr.sum(v * v))(x)
    assert isinstance(y, cr.Tensor) and y.shape == (4,)
    y.sum().backward()
    _close(x.grad, 2 * X, "gradient through vmap by backward()")
    plain = cr.vmap(lambda v: cr.sum(v * v))(X)
    assert isinstance(plain, np.ndarray)


def test_a_batch_of_linear_solves_and_decompositions() -> None:
    rng = np.random.default_rng(5)
    A = rng.standard_normal((5, 3, 3)) + 3 * np.eye(3)
    b = rng.standard_normal((5, 3))
    _close(cr.vmap(cr.linalg.solve)(A, b), np.linalg.solve(A, b[..., None])[..., 0], "solve")
    g = cr.vmap(cr.grad(lambda a: cr.linalg.slogdet(a)[1]))(A)
    _close(g, np.linalg.inv(A).transpose(0, 2, 1), "d log|det A|/dA = A^-T")


# -- errors ------------------------------------------------------------------------------------
def test_python_control_flow_on_a_batch_is_refused() -> None:
    def branchy(v: Any) -> Any:
        return v if cr.sum(v) > 0 else -v

    with pytest.raises(TypeError, match="vmap.*cr.where"):
        cr.vmap(branchy)(X)
    with pytest.raises(TypeError, match="vmap"):
        cr.vmap(lambda v: float(cr.sum(v)))(X)


def test_mismatched_and_missing_batch_axes_are_refused() -> None:
    with pytest.raises(ValueError, match="different sizes.*leaf 0: 4, leaf 1: 3"):
        cr.vmap(lambda a, b: a + b)(X, X[:3])
    with pytest.raises(ValueError, match="no argument is mapped"):
        cr.vmap(lambda a: a, in_axes=None)(X)
    with pytest.raises(ValueError, match="axis 2 .* shape \\(4, 3\\)"):
        cr.vmap(lambda a: a, in_axes=2)(X)
    with pytest.raises(ValueError, match="one entry per argument \\(2\\)"):
        cr.vmap(lambda a, b: a, in_axes=(0,))(X, X)
    with pytest.raises(ValueError, match="out_axes=None"):
        cr.vmap(lambda a: a, out_axes=None)(X)


def test_a_value_leaking_out_of_vmap_still_says_what_it_is() -> None:
    kept: list[Any] = []
    cr.vmap(lambda v: kept.append(v) or v)(X)  # an array enters as a batch of arrays
    assert isinstance(kept[0], Batched) and kept[0].shape == (3,)
    assert "batch of 4 arrays of shape (3,)" in repr(kept[0])
    with pytest.raises(TypeError, match="vmap"):
        np.asarray(kept[0])
    cr.vmap(lambda v: kept.append(v) or v)(cr.tensor(X))  # a Tensor as a Tensor of a batch
    assert isinstance(kept[1], cr.Tensor) and kept[1].shape == (3,)
    assert "batch of 4 arrays" in repr(kept[1])
    with pytest.raises(TypeError, match="vmap"):
        kept[1].numpy()


# -- NumPy's functions, on arrays and on Tensors ------------------------------------------------
def _numpy_cases() -> list[Any]:
    from test_numpy_functions import CASES

    return [pytest.param(fn, args, id=name) for name, fn, args in CASES]


@pytest.mark.parametrize("fn, args", _numpy_cases())
def test_numpy_functions_on_a_batch_of_arrays_equal_a_loop(fn: Any, args: Any) -> None:
    batches = [np.stack(_examples(a)) for a in args]
    got = cr.vmap(fn)(*batches)
    want = np.stack([np.asarray(fn(*[b[k] for b in batches])) for k in range(3)])
    _close(got, want, "on arrays")


@pytest.mark.parametrize("fn, args", _numpy_cases())
def test_numpy_functions_on_a_batch_of_tensors_and_their_gradients(fn: Any, args: Any) -> None:
    batches = [np.stack(_examples(a)) for a in args]
    xs = [cr.tensor(b, requires_grad=True) for b in batches]
    out = cr.vmap(fn)(*xs)
    w = np.random.default_rng(0).standard_normal(out.shape)
    (out * w).sum().backward()
    for k in range(3):
        one = [cr.tensor(b[k], requires_grad=True) for b in batches]
        y = fn(*one)
        _close(out[k], y.numpy(), f"example {k}")
        (y * w[k]).sum().backward()
        for x, o in zip(xs, one):
            _close(x.grad.numpy()[k], o.grad.numpy(), f"gradient of example {k}")


def test_per_example_gradients_of_a_convnet_run_by_rules_and_equal_a_loop() -> None:
    nn, F = cr.nn, cr.nn.functional
    conv, lin = nn.Conv1d(1, 4, 3, padding=1, rng=0), nn.Linear(4 * 5, 3, rng=1)
    params = {
        "cw": conv.weight.numpy(), "cb": conv.bias.numpy(),
        "lw": lin.weight.numpy(), "lb": lin.bias.numpy(),
    }  # fmt: skip

    def loss(p: Any, x: Any, y: Any) -> Any:  # one sequence x (10,), one label y
        h = F.max_pool1d(F.relu(F.conv1d(x[None, None], p["cw"], p["cb"], padding=1)), 2)
        return F.cross_entropy(F.flatten(h, 1) @ p["lw"].T + p["lb"], y[None])

    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(6, 10)), rng.integers(0, 3, 6)
    FALLBACKS.clear()
    per_example = cr.vmap(cr.grad(loss), in_axes=(None, 0, 0))(params, x, y)
    assert not FALLBACKS  # unfold, fold, the pool and the loss all batch by rules
    for k in range(6):
        want = cr.grad(loss)(params, x[k], y[k])
        for name in params:
            _close(per_example[name][k], want[name], f"example {k}, {name}")


def test_transforms_in_eight_threads_agree_with_the_serial_results() -> None:
    import threading

    def f(v: Any) -> Any:
        return cr.sum(cr.sin(v) * v)

    x = np.linspace(-1, 1, 5)
    batch = np.stack([x, 2 * x])
    compiled = cr.compile(lambda v: cr.sum(cr.tanh(v) * v))
    jobs = {
        "jvp": lambda: cr.jvp(f, (x,), (np.ones(5),))[1],
        "grad": lambda: cr.grad(f)(x),
        "vjp": lambda: cr.vjp(f, x)[1](np.array(1.0))[0],
        "jacobian": lambda: cr.jacobian(cr.grad(f))(x),
        "hessian": lambda: cr.hessian(f)(x),
        "vmap": lambda: cr.vmap(cr.grad(f))(batch),
        "compile": lambda: cr.grad(compiled)(x),
    }
    serial = {name: np.asarray(job()) for name, job in jobs.items()}
    errors: list[str] = []

    def work() -> None:
        try:
            for _ in range(50):
                for name, job in jobs.items():
                    np.testing.assert_allclose(job(), serial[name], rtol=1e-12, atol=1e-12)
        except Exception as err:  # reported below: a thread's failure must fail the test
            errors.append(f"{type(err).__name__}: {err}")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


def test_backward_inside_vmap_into_a_shared_grad_is_refused_with_the_alternatives() -> None:
    w = cr.tensor(np.ones(3), requires_grad=True)

    def per_example(x: Any) -> Any:
        loss = cr.sum(w * x)
        loss.backward()  # one gradient per example: nowhere to keep them in w.grad
        return loss

    with pytest.raises(RuntimeError, match=r"cr.vmap\(cr.grad\(f\)\)"):
        cr.vmap(per_example)(np.ones((4, 3)))
    assert w.grad is None
    xs = np.arange(12.0).reshape(4, 3)
    cr.vmap(lambda x: cr.sum(w * x))(xs).sum().backward()  # after the vmap: the sum
    _close(w.grad, xs.sum(axis=0), "the gradient of the summed batch")
