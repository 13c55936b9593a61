"""The graph as data, the backward pass, grad mode and anomaly detection."""

from __future__ import annotations

import gc
import inspect
import json
import os
import sys
import threading
import weakref

import numpy as np
import pytest

import chainrule as cr

RNG = np.random.default_rng(2024)
THIS_FILE = os.path.basename(__file__)


def _mlp_loss():
    W = cr.tensor(RNG.normal(size=(2, 3)), requires_grad=True, name="W")
    x = cr.tensor(RNG.normal(size=3), name="x")
    b = cr.tensor(np.zeros(2), requires_grad=True, name="b")
    h = cr.tanh(W @ x + b)
    loss = cr.sum(h * h)
    return loss, (W, x, b)


# -- cr.graph ----------------------------------------------------------------------------
def test_graph_sink_sources_nodes_edges():
    loss, (W, x, b) = _mlp_loss()
    g = cr.graph(loss)
    assert g.sink.tensor is loss
    assert g.nodes[-1] is g.sink
    assert {id(n.tensor) for n in g.sources} == {id(W), id(x), id(b)}
    assert all(n.is_source and n.op is None for n in g.sources)
    ops = [n.op for n in g.nodes if not n.is_source]
    assert sorted(ops) == sorted(["matmul", "add", "tanh", "multiply", "sum"])
    assert len(g) == len(g.nodes) == 8
    # matmul(W, x), add(., b), tanh, multiply(h, h) (two edges), sum
    assert len(g.edges) == 8
    by_tensor = {id(n.tensor): n for n in g.nodes}
    mult = next(n for n in g.nodes if n.op == "multiply")
    tanh = next(n for n in g.nodes if n.op == "tanh")
    assert [p.index for p in mult.parents] == [tanh.index, tanh.index]
    assert (by_tensor[id(W)], next(n for n in g.nodes if n.op == "matmul")) in g.edges


def test_graph_nodes_are_topological():
    x = cr.tensor(RNG.normal(size=4), requires_grad=True)
    y = cr.tensor(RNG.normal(size=4), requires_grad=True)
    a = x * y
    b = cr.sin(a) + x
    c = cr.exp(b) * a - y
    sink = cr.sum(c * b)
    g = cr.graph(sink)
    assert g.nodes[0].is_source
    assert g.nodes[-1] is g.sink and g.sink.tensor is sink
    for i, n in enumerate(g.nodes):
        assert n.index == i
        for p in n.parents:
            assert p.index < n.index
    for parent, child in g.edges:
        assert parent.index < child.index
        assert parent in child.parents
    # every node appears exactly once
    assert len({id(n.tensor) for n in g.nodes}) == len(g.nodes)
    assert {id(n.tensor) for n in g.sources} == {id(x), id(y)}


def test_graph_to_dot_contains_every_node_and_edge():
    loss, _ = _mlp_loss()
    g = cr.graph(loss)
    dot = g.to_dot()
    assert dot.strip().startswith("digraph")
    assert dot.strip().endswith("}")
    for n in g.nodes:
        assert f"n{n.index} [" in dot
        assert n.name in dot
    for p, c in g.edges:
        # an edge into an op of several inputs carries the argument's name
        assert f"n{p.index} -> n{c.index};" in dot or f"n{p.index} -> n{c.index} [headlabel=" in dot
    assert dot.count("->") == len(g.edges)


def test_graph_to_json_round_trips():
    loss, _ = _mlp_loss()
    g = cr.graph(loss)
    data = g.to_json()
    back = json.loads(json.dumps(data))
    assert back == data
    assert back["sink"] == g.sink.index
    assert len(back["nodes"]) == len(g.nodes)
    assert [tuple(e) for e in back["edges"]] == [(p.index, c.index) for p, c in g.edges]
    for entry, n in zip(back["nodes"], g.nodes):
        assert entry["id"] == n.index
        assert entry["op"] == n.op
        assert tuple(entry["shape"]) == n.shape
        assert entry["source"] == n.is_source


def test_graph_to_networkx_same_nodes_and_edges():
    import networkx as nx  # a test dependency (chainrule[test])

    W = cr.tensor(RNG.normal(size=(2, 3)), requires_grad=True)
    x = cr.tensor(RNG.normal(size=3))
    loss = cr.sum(cr.tanh(W @ x))
    g = cr.graph(loss)
    G = g.to_networkx()
    assert isinstance(G, nx.DiGraph)
    assert G.number_of_nodes() == len(g.nodes)
    assert G.number_of_edges() == len(g.edges)
    assert nx.is_directed_acyclic_graph(G)


def test_graph_to_networkx_keeps_repeated_edges():
    # x * x feeds multiply twice; the exported graph must not lose an edge.
    x = cr.tensor(3.0, requires_grad=True)
    g = cr.graph(x * x + x)
    assert len(g.edges) == 4  # x->multiply twice, multiply->add, x->add
    G = g.to_networkx()
    assert G.number_of_nodes() == len(g.nodes)
    assert G.number_of_edges() == len(g.edges)


# -- backward ----------------------------------------------------------------------------
def test_fan_out_sums_gradients():
    a = RNG.normal(size=5)
    x = cr.tensor(a, requires_grad=True)
    y = x * x + cr.sin(x) + 3.0 * x  # x used in three places (four edges)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * a + np.cos(a) + 3.0, rtol=1e-13)


def test_diamond_graph_handbook_example():
    # l(x) = h(f(x), g(x)) with f = x^2, g = x, h = x1^2 + x2^2: l' = 4x^3 + 2x.
    x = cr.tensor(1.7, requires_grad=True)
    f, g = x**2, x
    loss = f**2 + g**2
    loss.backward()
    assert float(x.grad) == pytest.approx(4 * 1.7**3 + 2 * 1.7, rel=1e-14)


def test_broadcasting_reduced_to_each_input_shape():
    a = RNG.normal(size=(3, 1))
    b = RNG.normal(size=(1, 4))
    c = RNG.normal(size=(4,))
    s = 1.3
    w = RNG.normal(size=(2, 3, 4))
    A, B, C = (cr.tensor(v, requires_grad=True) for v in (a, b, c))
    S = cr.tensor(s, requires_grad=True)
    out = (A * B + C) * S  # shape (3, 4)
    out = out + cr.zeros((2, 3, 4))  # broadcast once more, to (2, 3, 4)
    (out * w).sum().backward()
    wsum = w.sum(axis=0)  # (3, 4)
    np.testing.assert_allclose(A.grad.numpy(), (wsum * b * s).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(B.grad.numpy(), (wsum * a * s).sum(axis=0, keepdims=True))
    np.testing.assert_allclose(C.grad.numpy(), (wsum * s).sum(axis=0))
    np.testing.assert_allclose(float(S.grad), ((a * b + c) * wsum).sum())
    assert A.grad.shape == (3, 1) and B.grad.shape == (1, 4)
    assert C.grad.shape == (4,) and S.grad.shape == ()


def test_gradients_accumulate_across_backward_calls():
    a = RNG.normal(size=3)
    x = cr.tensor(a, requires_grad=True)
    (x * x).sum().backward()
    first = x.grad.numpy().copy()
    np.testing.assert_allclose(first, 2 * a)
    cr.sum(cr.exp(x)).backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * a + np.exp(a))
    x.zero_grad()
    assert x.grad is None


def test_million_node_chain_without_recursion():
    limit = sys.getrecursionlimit()
    n = 10**6
    c = 1.0000001
    x = cr.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(n):
        y = y * c
    value = float(y)
    y.backward()
    assert sys.getrecursionlimit() == limit
    # d y / d x multiplies the same factors in the same order as the forward pass did.
    assert float(x.grad) == value
    assert float(x.grad) == pytest.approx(c**n, rel=1e-9)
    del y
    assert sys.getrecursionlimit() == limit


def test_million_node_chain_dropped_without_backward():
    # the compiled Tensor frees a deep graph without recursing as deep as it (the trashcan)
    x = cr.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(10**6):
        y = y * 1.0000001
    probe = weakref.ref(y)
    del y
    assert probe() is None


def test_long_chain_graph_and_drop_without_backward():
    limit = sys.getrecursionlimit()
    n = 200_000
    x = cr.tensor(0.5, requires_grad=True)
    y = x
    for _ in range(n):
        y = y + x
    g = cr.graph(y)
    assert len(g.nodes) == n + 1
    assert g.nodes[0].tensor is x and g.sink.tensor is y
    del g
    probe = weakref.ref(y)
    del y  # freeing a deep graph must not recurse either
    assert probe() is None
    assert sys.getrecursionlimit() == limit


def test_no_reference_cycles():
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        x = cr.tensor(RNG.normal(size=4), requires_grad=True)
        a = x * 2.0
        b = cr.tanh(a)
        c = b @ b
        sink = c + cr.sum(a)
        refs = [weakref.ref(t) for t in (a, b, c)]
        del a, b, c
        assert all(r() is not None for r in refs)  # held by the graph
        del sink
        assert all(r() is None for r in refs)

        # the same after a backward pass that retained the graph
        a = x * 3.0
        sink = cr.sum(cr.exp(a))
        ra, rs = weakref.ref(a), weakref.ref(sink)
        del a
        sink.backward(retain_graph=True)
        del sink
        assert ra() is None and rs() is None
        assert x.grad is not None
    finally:
        if was_enabled:
            gc.enable()


def test_retain_graph_false_frees_and_second_backward_raises():
    x = cr.tensor(2.0, requires_grad=True)
    y = x**3
    y.backward()
    assert float(x.grad) == 12.0
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_true_allows_second_backward():
    x = cr.tensor(2.0, requires_grad=True)
    y = cr.sin(x) * x**3
    y.backward(retain_graph=True)
    y.backward()
    expected = np.cos(2.0) * 8.0 + np.sin(2.0) * 12.0
    assert float(x.grad) == pytest.approx(2 * expected, rel=1e-14)


def test_create_graph_gives_differentiable_gradient():
    a = np.array([0.5, -1.5, 2.0])
    x = cr.tensor(a, requires_grad=True)
    (x**3).sum().backward(create_graph=True)
    g = x.grad
    np.testing.assert_allclose(g.numpy(), 3 * a**2)
    assert g.requires_grad and not g.is_leaf
    x.grad = None
    g.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * a)


def test_backward_function_form_and_gradients():
    x = cr.tensor(1.5, requires_grad=True)
    y = cr.tensor(-0.5, requires_grad=True)
    z = x * x * y
    gx, gy = cr.gradients(z, [x, y], retain_graph=True)
    assert float(gx) == pytest.approx(2 * 1.5 * -0.5)
    assert float(gy) == pytest.approx(1.5**2)
    assert x.grad is None and y.grad is None  # gradients() does not touch .grad
    cr.backward(z)
    assert float(x.grad) == pytest.approx(2 * 1.5 * -0.5)


# -- grad mode ---------------------------------------------------------------------------
def test_no_grad_and_enable_grad_context_managers():
    x = cr.tensor(1.0, requires_grad=True)
    assert cr.is_grad_enabled()
    with cr.no_grad():
        assert not cr.is_grad_enabled()
        y = x * 2
        with cr.enable_grad():
            assert cr.is_grad_enabled()
            z = x * 2
        assert not cr.is_grad_enabled()
    assert cr.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad and not z.is_leaf
    with cr.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad


def test_grad_mode_restored_after_exception():
    with pytest.raises(ZeroDivisionError):
        with cr.no_grad():
            raise ZeroDivisionError("inside no_grad")
    assert cr.is_grad_enabled()


def test_no_grad_and_enable_grad_as_decorators():
    x = cr.tensor(1.0, requires_grad=True)

    @cr.no_grad()
    def frozen(t):
        return t * 2, cr.is_grad_enabled()

    @cr.enable_grad()
    def recording(t):
        return t * 2

    y, mode = frozen(x)
    assert not mode and not y.requires_grad
    assert cr.is_grad_enabled()
    with cr.no_grad():
        z = recording(x)
        assert not cr.is_grad_enabled()
    assert z.requires_grad
    assert frozen.__name__ == "frozen"


def test_grad_mode_is_per_thread():
    entered, release = threading.Event(), threading.Event()
    seen = {}

    def worker():
        with cr.no_grad():
            entered.set()
            release.wait(10)
            seen["worker"] = cr.is_grad_enabled()
            seen["worker_records"] = (cr.tensor(1.0, requires_grad=True) * 2).requires_grad

    th = threading.Thread(target=worker)
    th.start()
    assert entered.wait(10)
    seen["main"] = cr.is_grad_enabled()
    seen["main_records"] = (cr.tensor(1.0, requires_grad=True) * 2).requires_grad
    release.set()
    th.join(10)
    assert seen == {"main": True, "main_records": True, "worker": False, "worker_records": False}

    # and the other way round: a new thread starts recording whatever the main thread does
    with cr.no_grad():
        th = threading.Thread(target=lambda: seen.update(fresh=cr.is_grad_enabled()))
        th.start()
        th.join(10)
    assert seen["fresh"] is True


# -- backward errors ---------------------------------------------------------------------
def test_backward_on_non_scalar_without_grad_raises():
    y = cr.tensor([1.0, 2.0], requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="not a scalar"):
        y.backward()


def test_backward_with_explicit_grad_on_non_scalar():
    a = np.array([1.0, 2.0])
    x = cr.tensor(a, requires_grad=True)
    y = x * x
    g = np.array([10.0, -1.0])
    y.backward(g)
    np.testing.assert_allclose(x.grad.numpy(), 2 * a * g)


def test_backward_grad_with_wrong_shape_raises():
    y = cr.tensor([1.0, 2.0], requires_grad=True) * 2
    with pytest.raises(ValueError, match=r"\(3,\)"):
        y.backward(np.ones(3))


def test_backward_grad_with_wrong_dtype_raises():
    y = cr.tensor([1.0, 2.0], requires_grad=True) * 2
    with pytest.raises(TypeError, match="float32"):
        y.backward(np.ones(2, dtype=np.float32))


def test_backward_on_tensor_without_graph_raises():
    with pytest.raises(RuntimeError):
        cr.tensor(1.0).backward()


def test_backward_inputs_only_fills_those():
    a = cr.tensor(1.5, requires_grad=True)
    b = cr.tensor(-2.0, requires_grad=True)
    c = cr.tensor(0.5, requires_grad=True)
    (a * b * c).backward(inputs=[a, c])
    assert float(a.grad) == pytest.approx(-2.0 * 0.5)
    assert float(c.grad) == pytest.approx(1.5 * -2.0)
    assert b.grad is None


def test_backward_inputs_may_name_a_non_leaf():
    a = np.array([1.0, 2.0])
    w = cr.tensor(a, requires_grad=True)
    h = w * 3.0
    (h * h).sum().backward(inputs=[h])
    assert h.grad is not None
    np.testing.assert_allclose(h.grad.numpy(), 2 * 3.0 * a)
    assert w.grad is None


# -- anomaly detection -------------------------------------------------------------------
def test_detect_anomaly_forward_nan_names_op_file_and_line():
    x = cr.tensor([-1.0, 1.0], requires_grad=True)
    with cr.detect_anomaly(), np.errstate(all="ignore"):
        line = inspect.currentframe().f_lineno + 2
        with pytest.raises(cr.AnomalyError) as info:
            cr.log(x)
    message = str(info.value)
    assert "log" in message
    assert "NaN" in message
    assert THIS_FILE in message
    assert f"{THIS_FILE}:{line}" in message


def test_detect_anomaly_backward_inf_names_op_file_and_line():
    x = cr.tensor([0.0, 4.0], requires_grad=True)
    with cr.detect_anomaly(), np.errstate(all="ignore"):
        line = inspect.currentframe().f_lineno + 1
        s = cr.sqrt(x)
        total = cr.sum(s * 3.0)
        with pytest.raises(cr.AnomalyError) as info:
            total.backward()
    message = str(info.value)
    assert "sqrt" in message
    assert "backward" in message
    assert f"{THIS_FILE}:{line}" in message


def test_detect_anomaly_is_off_by_default_and_restored():
    x = cr.tensor([-1.0], requires_grad=True)
    with np.errstate(all="ignore"):
        y = cr.log(x)  # no anomaly mode: NaN passes through
        assert np.isnan(y.numpy()).all()
        with cr.detect_anomaly():
            with pytest.raises(cr.AnomalyError):
                cr.log(x)
        z = cr.log(x)
    assert np.isnan(z.numpy()).all()


# -- the structure of a graph survives backward() -------------------------------------------
def _network() -> tuple[cr.Tensor, cr.Tensor, cr.Tensor]:
    rng = np.random.default_rng(0)
    w = cr.tensor(rng.standard_normal((16, 8)), requires_grad=True, name="W")
    x = cr.tensor(rng.standard_normal((8, 32)), name="x")
    h = cr.tanh(w @ x)
    h.retain_grad()
    loss = cr.sum(h * h) * 0.5
    return loss, h, w


def _shape_of(g: cr.Graph) -> list[tuple[str | None, tuple[int, ...], str, list[int]]]:
    return [(n.op, n.shape, str(n.dtype), [p.index for p in n.parents]) for n in g.nodes]


def test_the_graph_of_a_sink_can_be_read_after_backward():
    loss, h, w = _network()
    before = _shape_of(cr.graph(loss))
    value_of_h = weakref.ref(h._data)  # (h.data would count as an update)
    loss.backward()
    del h  # nothing outside the graph holds the activation now
    g = cr.graph(loss)
    assert _shape_of(g) == before  # ops, shapes, dtypes and edges, as before the pass
    assert value_of_h() is None  # its value was let go
    by_op = {n.op: n for n in g.nodes}
    assert by_op["tanh"].freed and by_op["tanh"].value is None
    assert by_op["tanh"].grad is not None  # the gradient retain_grad() kept stays
    assert by_op["tanh"].grad.shape == (16, 32)
    assert not by_op["multiply"].freed or by_op["multiply"].value is None
    leaf = next(n for n in g.nodes if n.name == "W")
    assert not leaf.freed and np.array_equal(leaf.grad, w.grad.numpy())
    assert g.freed
    svg = g.to_svg(engine="builtin")
    assert "freed by backward()" in svg and "tanh" in svg


def test_small_values_stay_in_a_freed_graph():
    # a scalar neuron: its values are a few bytes each, and stay readable after backward()
    w, x = cr.tensor(0.5, requires_grad=True), cr.tensor(2.0)
    loss = cr.sigmoid(w * x)
    loss.backward()
    g = cr.graph(loss)
    assert not any(n.freed for n in g.nodes)
    assert [float(n.value) for n in g.nodes if n.op == "multiply"] == [1.0]


def test_a_freed_graph_still_refuses_a_second_pass_and_says_how_to_see_its_steps(tmp_path):
    loss, _, _ = _network()
    recorded = cr.graph(loss)  # made before the pass: it records the steps as they run
    loss.backward()
    assert len(recorded.backward_steps()) == sum(n.tensor.requires_grad for n in recorded.nodes)
    with pytest.raises(RuntimeError, match="already used by a backward pass"):
        loss.backward()
    late = cr.graph(loss)
    with pytest.raises(RuntimeError, match="make the Graph before backward"):
        late.backward_steps()
    page = late.save(tmp_path / "late.html").read_text(encoding="utf-8")
    assert "freed by backward()" in page
    assert recorded.save(tmp_path / "recorded.html").exists()


def test_a_freed_graph_keeps_a_few_hundred_bytes_a_node():
    import tracemalloc

    x = cr.tensor(np.ones(256), requires_grad=True)  # 2 KB values
    y = x
    for _ in range(2000):
        y = cr.tanh(y)
    loss = cr.sum(y)
    del y
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        loss.backward()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept / 2000 < 600, f"{kept / 2000:.0f} bytes a node kept after backward()"
    assert len(cr.graph(loss).nodes) == 2002


# -- whose gradients a Graph shows ----------------------------------------------------------------
def test_a_graph_shows_no_gradient_another_graph_left_on_a_shared_leaf():
    w = cr.tensor(3.0, requires_grad=True, name="w")
    a = w * w
    graph_a = cr.graph(a)
    a.backward()  # leaves w.grad = 6 behind
    assert float(w.grad) == 6.0 and float(graph_a.sources[0].grad) == 6.0
    b = cr.tanh(w)
    graph_b = cr.graph(b)
    leaf = graph_b.sources[0]
    assert leaf.tensor is w and leaf.grad is None  # 6 is graph A's, not B's
    assert all(n.grad is None for n in graph_b.nodes)
    svg = graph_b._repr_svg_()
    assert "grad " not in svg and "value 3" in svg
    b.backward()
    expected = 1 - np.tanh(3.0) ** 2  # B's own gradient; w.grad now holds 6 + that
    assert float(leaf.grad) == pytest.approx(expected)
    assert float(w.grad) == pytest.approx(6.0 + expected)
    assert f"grad {expected:.4g}" in graph_b._repr_svg_()
    assert float(graph_a.sources[0].grad) == 6.0  # A keeps the pass it saw


def test_a_graph_made_after_backward_reads_the_gradients_that_pass_left():
    w = cr.tensor(3.0, requires_grad=True, name="w")
    out = cr.tanh(w)
    out.backward()  # frees the graph: a pass from this sink has run
    assert float(cr.graph(out).sources[0].grad) == pytest.approx(1 - np.tanh(3.0) ** 2)
    kept = cr.tensor(2.0, requires_grad=True)
    square = kept * kept
    square.backward(retain_graph=True)  # nothing says which pass left kept.grad
    late = cr.graph(square)
    assert late.sources[0].grad is None
    late.backward_steps()  # its own pass, without touching .grad
    assert float(late.sources[0].grad) == 4.0 and float(kept.grad) == 4.0


def test_a_new_pass_replaces_the_gradients_of_the_last():
    x = cr.tensor(2.0, requires_grad=True, name="x")
    out = x * x
    g = cr.graph(out)
    out.backward(retain_graph=True)
    out.backward()
    assert float(g.sources[0].grad) == 4.0  # this pass's d out / dx, not the sum in x.grad
    assert float(x.grad) == 8.0


def test_a_graph_of_a_leaf_has_no_freed_values_and_no_stale_gradient():
    x = cr.tensor(2.0, requires_grad=True, name="x")
    (x * 5.0).backward()
    g = cr.graph(x)
    assert not g.freed and g.sink.grad is None
    assert [s.node.name for s in g.backward_steps()] == ["x"] and float(g.sink.grad) == 1.0
