"""The course handout's problems (a)-(g) and the nonlinearities, each against its closed form.

Everything runs in float64 so the comparisons can be tight. The last tests run every script in
examples/ as a subprocess, so the examples cannot rot.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import expit

import chainrule as cr

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
quick = settings(max_examples=60, deadline=None)


def close(got, expected, rtol=1e-12, atol=1e-12):
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), expected, rtol=rtol, atol=atol)


# -- (a) a scalar composite --------------------------------------------------------------
@quick
@given(finite)
def test_a_scalar_composite_matches_4x3_plus_2x(value):
    def f(x):
        return x**2

    def g(x):
        return x

    def h(x1, x2):
        return x1**2 + x2**2

    x = cr.tensor(value, requires_grad=True)
    loss = h(f(x), g(x))
    loss.backward()
    expected = 4 * value**3 + 2 * value
    close(loss.item(), value**4 + value**2)
    close(x.grad.item(), expected, rtol=1e-12, atol=1e-9)
    # the functional transform gives the same number
    close(cr.grad(lambda t: h(f(t), g(t)))(value), expected, rtol=1e-12, atol=1e-9)


# -- (b) the multivariable chain rule: fan-out, fan-in -----------------------------------
def _fan(w, n):
    gs = [cr.sin(i * w) for i in range(1, n + 1)]  # fan-out from w
    return sum(gi**2 for gi in gs)  # fan-in at f


def _fan_closed(w, n):
    # sum over paths of df/dx_i * dg_i/dw, with f = sum x_i^2 and g_i = sin(i w)
    return sum(2 * math.sin(i * w) * i * math.cos(i * w) for i in range(1, n + 1))


@quick
@given(st.floats(-3.0, 3.0), st.integers(1, 8))
def test_b_reverse_mode_sums_over_paths(w0, n):
    w = cr.tensor(w0, requires_grad=True, name="w")
    out = _fan(w, n)
    graph = cr.graph(out)
    assert sum(1 for parent, _ in graph.edges if parent.tensor is w) == n  # fan-out of n
    out.backward()
    close(w.grad.item(), _fan_closed(w0, n), atol=1e-12)


@quick
@given(st.floats(-3.0, 3.0), st.integers(1, 8))
def test_b_forward_mode_gives_the_same_derivative(w0, n):
    value, tangent = cr.jvp(lambda w: _fan(w, n), (w0,), (1.0,))
    close(value, sum(math.sin(i * w0) ** 2 for i in range(1, n + 1)))
    close(tangent, _fan_closed(w0, n), atol=1e-12)
    # and agrees with reverse mode
    close(tangent, cr.grad(lambda w: _fan(w, n))(w0), atol=1e-12)


# -- (c) the graph of f(W, x, y) = y - sum_i phi(w_i^T x + b_i) --------------------------
def _problem_c(n=3, d=4, seed=0):
    rng = cr.random.default_rng(seed)
    W = rng.normal(size=(n, d), requires_grad=True)
    x = rng.normal(size=(d,), requires_grad=True)
    b = rng.normal(size=(n,), requires_grad=True)
    y = cr.tensor(0.5, requires_grad=True)
    W.name, x.name, b.name, y.name = "W", "x", "b", "y"
    f = y - cr.sum(cr.tanh(W @ x + b))
    f.name = "f"
    return W, x, b, y, f


def test_c_graph_has_sources_W_x_b_y_and_sink_f():
    W, x, b, y, f = _problem_c()
    graph = cr.graph(f)
    assert {id(s.tensor) for s in graph.sources} == {id(W), id(x), id(b), id(y)}
    assert {s.name for s in graph.sources} == {"W", "x", "b", "y"}
    assert graph.sink.tensor is f and graph.sink.name == "f"
    assert graph.nodes[-1] is graph.sink
    ops = [node.op for node in graph.nodes if not node.is_source]
    assert ops == ["matmul", "add", "tanh", "sum", "subtract"]
    assert len(graph.nodes) == 9 and len(graph.edges) == 8
    index = {id(node): i for i, node in enumerate(graph.nodes)}
    for parent, child in graph.edges:
        assert index[id(parent)] < index[id(child)]  # topological order
        assert parent in child.parents
    shapes = {node.op: node.shape for node in graph.nodes if node.op}
    assert shapes == {"matmul": (3,), "add": (3,), "tanh": (3,), "sum": (), "subtract": ()}
    dot = graph.to_dot()
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert dot.count("->") == len(graph.edges)


def test_c_gradients_of_f_match_closed_forms():
    W, x, b, y, f = _problem_c(n=4, d=5, seed=3)
    Wn, xn, bn = W.numpy(), x.numpy(), b.numpy()
    z = Wn @ xn + bn
    close(f.item(), 0.5 - np.tanh(z).sum())
    f.backward()
    dphi = 1 - np.tanh(z) ** 2
    close(W.grad.numpy(), -np.outer(dphi, xn))  # df/dw_i = -phi'(z_i) x
    close(x.grad.numpy(), -Wn.T @ dphi)
    close(b.grad.numpy(), -dphi)
    close(y.grad.item(), 1.0)


# -- (d) the two-layer partials -------------------------------------------------------------
@pytest.mark.parametrize("d,h,m,seed", [(1, 1, 1, 0), (4, 5, 3, 1), (7, 2, 6, 2), (3, 8, 1, 3)])
def test_d_two_layer_partials_for_x_W1_W2_b(d, h, m, seed):
    rng = np.random.default_rng(seed)
    x0, b0, y0 = rng.normal(size=d), rng.normal(size=h), rng.normal(size=m)
    W1_0, W2_0 = rng.normal(size=(h, d)), rng.normal(size=(m, h))
    x, b = cr.tensor(x0, requires_grad=True), cr.tensor(b0, requires_grad=True)
    W1, W2 = cr.tensor(W1_0, requires_grad=True), cr.tensor(W2_0, requires_grad=True)

    loss = 0.5 * cr.sum((W2 @ cr.tanh(W1 @ x + b) - y0) ** 2)
    loss.backward()

    z = W1_0 @ x0 + b0
    a = np.tanh(z)
    r = W2_0 @ a - y0
    delta = (W2_0.T @ r) * (1 - a**2)  # dl/dz
    close(loss.item(), 0.5 * r @ r)
    close(x.grad.numpy(), W1_0.T @ delta)
    close(W1.grad.numpy(), np.outer(delta, x0))
    close(W2.grad.numpy(), np.outer(r, a))
    close(b.grad.numpy(), delta)


def test_d_partials_agree_with_the_functional_transforms():
    rng = np.random.default_rng(7)
    args = [rng.normal(size=s) for s in [(3,), (4, 3), (2, 4), (4,), (2,)]]

    def loss(x, W1, W2, b, y):
        return 0.5 * cr.sum((W2 @ cr.tanh(W1 @ x + b) - y) ** 2)

    grads = cr.grad(loss, argnums=(0, 1, 2, 3))(*args)
    numeric = cr.numerical_grad(loss, *args, argnums=(0, 1, 2, 3))
    for got, expected in zip(grads, numeric):
        close(got, expected, rtol=1e-6, atol=1e-8)


# -- (e) the cost: 2 d^2 evaluations against one forward + backward ---------------------------
@pytest.mark.parametrize("d", [1, 3, 6])
def test_e_numerical_gradient_costs_two_evaluations_per_entry(d):
    rng = np.random.default_rng(d)
    W1, W2 = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    x, b, y = rng.normal(size=d), rng.normal(size=d), rng.normal(size=d)
    calls = []

    def loss(W1, W2, x, b, y):
        calls.append(1)
        return 0.5 * cr.sum((W2 @ cr.tanh(W1 @ x + b) - y) ** 2)

    numeric = cr.numerical_grad(loss, W1, W2, x, b, y, argnums=0)
    assert len(calls) == 2 * d * d

    calls.clear()
    W = cr.tensor(W1, requires_grad=True)
    loss(W, W2, x, b, y).backward()
    assert len(calls) == 1  # one forward pass; backward never calls the function again
    close(W.grad.numpy(), numeric, rtol=1e-6, atol=1e-8)


def test_e_backward_is_linear_in_the_graph_not_in_the_number_of_paths():
    # Each level doubles the number of paths from x to the sink: 2**200 paths in all, far too
    # many to enumerate, yet one backward pass visits each of the 601 nodes once.
    x = cr.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(200):
        y = 0.5 * y + 0.5 * y
    assert len(cr.graph(y).nodes) == 1 + 3 * 200  # two multiplies and an add per level
    y.backward()
    assert x.grad.item() == 1.0

    z = x
    for _ in range(60):
        z = z + z  # d z/dx = 2**60, the number of paths
    z.backward()
    assert x.grad.item() == 1.0 + 2.0**60


# -- (f) the gradient at a node is the sink's sensitivity to that node -------------------------
def test_f_node_gradient_is_first_order_change_of_the_sink():
    rng = np.random.default_rng(11)
    x, b, y = rng.normal(size=4), rng.normal(size=5), rng.normal(size=3)
    W1, W2 = rng.normal(size=(5, 4)), rng.normal(size=(3, 5))

    def after(z):
        return 0.5 * cr.sum((W2 @ cr.tanh(z) - y) ** 2)

    z = cr.tensor(W1, requires_grad=True) @ x + b  # intermediate node
    assert not z.is_leaf
    z.retain_grad()
    sink = after(z)
    sink.backward()
    dz = z.grad.numpy()
    z0, l0 = z.numpy(), sink.item()

    eps = 1e-6
    central = [(after(z0 + eps * e) - after(z0 - eps * e)) / (2 * eps) for e in np.eye(5)]
    close(dz, central, rtol=1e-6, atol=1e-9)

    v = rng.normal(size=5)
    errors = []
    for step in [1e-2, 5e-3, 2.5e-3]:
        change = float(after(z0 + step * v)) - l0
        errors.append(abs(change - step * dz @ v))
    # the first-order prediction is off by O(eps^2): halving eps quarters the error
    for big, small in zip(errors, errors[1:]):
        assert 3.5 < big / small < 4.5


def test_f_retained_gradient_matches_the_chain_rule_at_each_node():
    x = cr.tensor([0.3, -1.2, 2.0], requires_grad=True)
    u = cr.tanh(x).retain_grad()
    v = (u * u).retain_grad()
    sink = cr.sum(v)
    sink.backward()
    t = np.tanh(x.numpy())
    close(v.grad.numpy(), np.ones(3))  # d sink / d v
    close(u.grad.numpy(), 2 * t)  # d sink / d u
    close(x.grad.numpy(), 2 * t * (1 - t**2))  # d sink / d x


# -- (g) gradient descent with backprop as the subroutine ------------------------------------
def test_g_gradient_descent_on_f_decreases_the_loss():
    rng = np.random.default_rng(0)
    n, d, K = 4, 3, 32
    X = rng.normal(size=(K, d))
    W_true, b = rng.normal(size=(n, d)), rng.normal(size=n)
    Y = np.tanh(X @ W_true.T + b).sum(axis=1)
    W = cr.random.default_rng(1).normal(size=(n, d), requires_grad=True)

    def loss_fn(W):
        return cr.mean((Y - cr.sum(cr.tanh(X @ W.T + b), axis=1)) ** 2)

    def closed_grad(Wn):  # dL/dW = 2/K sum_k f_k * (-phi'(z_k)) x_k^T
        z = X @ Wn.T + b
        f = Y - np.tanh(z).sum(axis=1)
        return (2 / K) * ((f[:, None] * -(1 - np.tanh(z) ** 2)).T @ X)

    lr, losses = 0.05, []
    for _ in range(100):
        before = W.numpy().copy()
        loss = loss_fn(W)
        loss.backward()
        losses.append(loss.item())
        close(W.grad.numpy(), closed_grad(before))  # backprop supplies the exact dL/dW
        with cr.no_grad():
            W -= lr * W.grad
        W.grad = None
        close(W.numpy(), before - lr * closed_grad(before))
        assert W.is_leaf and W.requires_grad and W.grad is None

    assert all(new < old for old, new in zip(losses, losses[1:]))
    assert losses[-1] < 0.05 * losses[0]


# -- the nonlinearities ----------------------------------------------------------------------
ALPHA = 0.1
points = hnp.arrays(
    np.float64,
    st.integers(1, 20),
    elements=st.floats(-50.0, 50.0, allow_nan=False, allow_infinity=False),
)

NONLINEARITIES = {
    "sigmoid": (cr.sigmoid, lambda x: expit(x) * (1 - expit(x))),
    "relu": (cr.relu, lambda x: (x > 0).astype(np.float64)),
    "tanh": (cr.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "leaky_relu": (
        lambda t: cr.leaky_relu(t, negative_slope=ALPHA),
        lambda x: np.where(x > 0, 1.0, ALPHA),
    ),
}


def _derivative(phi, values):
    x = cr.tensor(values, requires_grad=True)
    cr.sum(phi(x)).backward()
    return x.grad.numpy()


@pytest.mark.parametrize("name", list(NONLINEARITIES))
@quick
@given(values=points)
def test_nonlinearity_derivative_matches_closed_form(name, values):
    phi, closed = NONLINEARITIES[name]
    values = np.concatenate([values, [0.0, -0.0]])  # always include the kink
    close(_derivative(phi, values), closed(values), rtol=1e-12, atol=1e-300)
    # forward mode gives the same diagonal
    _, tangent = cr.jvp(phi, (values,), (np.ones_like(values),))
    close(tangent, closed(values), rtol=1e-12, atol=1e-300)


def test_nonlinearities_on_a_fixed_grid_and_at_the_kink():
    grid = np.linspace(-6.0, 6.0, 121)
    assert 0.0 in grid
    s = 1 / (1 + np.exp(-grid))
    close(_derivative(cr.sigmoid, grid), s * (1 - s))
    close(_derivative(cr.relu, grid), np.where(grid > 0, 1.0, 0.0), atol=0)
    close(_derivative(cr.tanh, grid), 1 - np.tanh(grid) ** 2)
    leaky = _derivative(lambda t: cr.leaky_relu(t, negative_slope=ALPHA), grid)
    close(leaky, np.where(grid > 0, 1.0, ALPHA), atol=0)
    zero = np.array([0.0])
    assert _derivative(cr.relu, zero)[0] == 0.0  # relu'(0) = 0
    assert _derivative(lambda t: cr.leaky_relu(t, negative_slope=ALPHA), zero)[0] == ALPHA
    assert _derivative(cr.sigmoid, zero)[0] == 0.25
    assert _derivative(cr.tanh, zero)[0] == 1.0


def test_nonlinearity_values():
    grid = np.linspace(-5.0, 5.0, 41)
    t = cr.tensor(grid)
    close(cr.sigmoid(t).numpy(), 1 / (1 + np.exp(-grid)))
    close(cr.relu(t).numpy(), np.maximum(grid, 0.0), atol=0)
    close(cr.tanh(t).numpy(), np.tanh(grid))
    close(cr.leaky_relu(t, negative_slope=ALPHA).numpy(), np.maximum(grid, ALPHA * grid), atol=0)


# -- the examples run and pass their own checks ----------------------------------------------
EXPECTED_EXAMPLES = {
    "a_scalar_composite.py",
    "b_multivariable_chain_rule.py",
    "c_graph_of_f.py",
    "d_two_layer_partials.py",
    "e_cost_numerical_vs_analytic.py",
    "f_sensitivity.py",
    "g_gradient_descent.py",
    "nonlinearities.py",
    "run_all.py",
}
# (train_mnist1d.py trains for minutes and out_of_core.py starts a Dask cluster on gigabytes:
# run_all.py leaves them out, and each is tested on its own, small)
ON_THEIR_OWN = ("run_all.py", "train_mnist1d.py", "out_of_core.py")
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if p.name not in ON_THEIR_OWN)


def test_every_handout_example_exists():
    assert EXPECTED_EXAMPLES <= {p.name for p in EXAMPLES.glob("*.py")}


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_script_runs_and_passes_its_checks(script):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    assert result.stdout.strip(), f"{script} printed nothing"


def test_run_all_runs_every_example():
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "run_all.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(SCRIPTS)} of {len(SCRIPTS)} examples passed" in result.stdout
    for script in SCRIPTS:
        assert f"== {script}" in result.stdout


def test_the_mnist1d_example_trains_each_family_quickly():
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "train_mnist1d.py"), "--quick", "--seeds", "0",
         "--models", "logreg,mlp,cnn"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4000 train, 1000 test sequences of length 40" in result.stdout
    accuracy = {
        line.split()[0]: float(line.split()[2].rstrip("%")) / 100
        for line in result.stdout.splitlines()
        if " mean " in line
    }
    # a few epochs: far above chance (10%) for each, the CNN well above the MLP
    assert accuracy["logreg"] > 0.2 and accuracy["mlp"] > 0.4 and accuracy["cnn"] > 0.8, accuracy
    bad = subprocess.run(
        [sys.executable, str(EXAMPLES / "train_mnist1d.py"), "--models", "transformer"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "unknown models" in bad.stderr
