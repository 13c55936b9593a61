"""Rich displays in a notebook: ``_repr_html_`` of Tensor, Module, Dataset and Graph. Their
text and escaping as HTML, their size for big arrays, and, in a real headless Chromium,
that each loads cleanly and shows what it should (the Graph's page inside its frame, stepped
through)."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest
from test_html_page import EVIL, EVIL_TAG, _browser, _data, _elements

import chainrule as cr
from chainrule.data import Dataset
from chainrule.viz.notebook import graph_frame

# every tag a display may hold (the Graph's page is inside the frame's attribute, as text)
ALLOWED_TAGS = {"table", "caption", "tr", "th", "td", "pre", "b", "i", "span", "br", "iframe"}


def _text(fragment: str) -> str:
    """The fragment's text, as a reader sees it (tags dropped, entities read)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", fragment))


def _row(text: str, label: str) -> bool:
    """Whether the display's text has a row headed ``label``."""
    return re.search(rf"(^|\s){label}\s", text) is not None


def _evil_model():
    class Evil(cr.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = cr.nn.Linear(2, 3, rng=0)
            self.w = cr.nn.Parameter(np.ones(3))
            self.w.name = EVIL

        def extra_repr(self) -> str:
            return EVIL_TAG

        def forward(self, x):
            return self.layer(x) * self.w

    return Evil()


def _tensor_with_history():
    x = cr.tensor([[1.0, -2.0], [0.5, 3.0]], requires_grad=True, name="x")
    w = cr.tensor([2.0, -1.0], requires_grad=True, name="w")
    y = cr.tanh(x @ w)
    cr.sum(y).backward(retain_graph=True)
    return x, w, y


# -- the HTML itself ------------------------------------------------------------------------------
def test_a_tensor_shows_value_shape_dtype_gradient_and_the_op_that_made_it():
    x, w, y = _tensor_with_history()
    leaf = x._repr_html_()
    text = _text(leaf)
    assert "Tensor 'x'" in text and "(2, 2)" in text and "float64" in text
    assert "requires_grad True" in re.sub(r"\s+", " ", text)
    assert _row(text, "grad") and "made by" not in text
    expected = np.outer(1 - np.tanh(x.numpy() @ w.numpy()) ** 2, w.numpy())
    assert np.allclose(x.grad.numpy(), expected)
    assert np.array2string(x.grad.numpy(), separator=", ") in text  # as NumPy prints it
    made = _text(y._repr_html_())
    assert "made by tanh" in re.sub(r"\s+", " ", made)
    assert "tensor (2,) float64" in made  # its input, x @ w
    product = _text(y._a._repr_html_())
    assert "matmul" in product
    assert "tensor 'x' (2, 2) float64" in product and "tensor 'w' (2,) float64" in product
    assert not _row(_text(cr.tensor(1.0)._repr_html_()), "grad")


def test_an_op_with_parameters_and_constants_shows_them():
    x = cr.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    text = re.sub(r"\s+", " ", _text(cr.sum(x * 2.0, axis=1)._repr_html_()))
    assert "made by sum axis=1" in text and "(2,)" in text
    assert "float" in _text((x * 2.0)._repr_html_())  # the constant 2.0 among the inputs


def test_every_display_escapes_what_the_user_named():
    model = _evil_model()
    x = cr.tensor(np.ones((4, 2)), name=EVIL)
    loss = cr.sum(model(x))
    loss.name = EVIL_TAG
    loss.backward(retain_graph=True)
    data = Dataset(np.ones((3, 2)), np.array([0, 1, 0]), EVIL, 2, labels=(EVIL, EVIL_TAG))
    displays = {
        "tensor": model.w._repr_html_(),
        "input": x._repr_html_(),
        "loss": loss._repr_html_(),
        "module": model._repr_html_(),
        "dataset": data._repr_html_(),
        "graph": cr.graph(loss, module=model)._repr_html_(),
    }
    for what, shown in displays.items():
        tags = {tag for tag, _ in _elements(shown)}
        assert tags <= ALLOWED_TAGS, (what, tags - ALLOWED_TAGS)
        for name in (EVIL, EVIL_TAG):
            assert name not in shown, what
    assert EVIL in _text(displays["tensor"]) and EVIL_TAG in _text(displays["module"])
    assert EVIL in _text(displays["dataset"]) and EVIL_TAG in _text(displays["dataset"])
    # inside the frame, the page is the standalone page, escaped once more
    (frame,) = [a for tag, a in _elements(displays["graph"]) if tag == "iframe"]
    assert frame["sandbox"] == "allow-scripts"
    page = frame["srcdoc"] or ""
    assert page.startswith("<!DOCTYPE html>") and "chainrule-data" in page
    names = {n["name"] for n in _data(page)["nodes"]}
    assert EVIL in names and EVIL_TAG in names


def test_a_million_entries_give_a_few_kilobytes():
    big = cr.tensor(np.arange(1e6), requires_grad=True)
    cr.sum(big * big).backward()
    shown = big._repr_html_()
    assert len(shown) < 6_000  # the value and the gradient, summarised
    for array in (big.numpy(), big.grad.numpy()):  # as NumPy prints it, first and last three
        summary = np.array2string(array, 100, separator=", ", threshold=100, edgeitems=3)
        assert summary in shown and "..." in summary
    deep = cr.tensor(np.zeros((2,) * 20))  # no axis long enough for NumPy to summarise
    shown = deep._repr_html_()
    assert len(shown) < 6_000 and "cut at 2000 characters" in shown
    net = cr.nn.Sequential(*[cr.nn.Linear(2, 2, rng=0) for _ in range(300)])
    listed = net._repr_html_()
    assert len(listed) < 200_000 and "101 more modules not listed" in listed


def test_a_freed_node_says_so_and_keeps_its_history():
    x = cr.tensor(np.ones(100), requires_grad=True, name="x")
    loss = cr.sum(cr.tanh(x * 2.0))
    loss.backward()  # frees the values of tanh and multiply (800 bytes each)
    tanh = next(n for n in cr.graph(loss).nodes if n.op == "tanh")
    text = " ".join(_text(tanh.tensor._repr_html_()).split())
    assert "value freed by backward()" in text and "shape (100,)" in text
    assert "made by tanh" in text and "tensor (100,) float64" in text


def test_a_lazy_tensor_is_described_not_computed():
    dask = pytest.importorskip("dask")
    t = cr.to(cr.tensor(np.arange(10.0), requires_grad=True), "dask", chunks=5)
    layer = cr.nn.Linear(10, 1, rng=0).to("dask")

    def refuse(*args, **kwargs):
        raise AssertionError("a display computed a Dask array")

    loss = cr.sum(layer(t[None, :]) * t.sum())
    loss.backward()
    with dask.config.set(scheduler=refuse):
        text = " ".join(_text(loss._repr_html_() + t._repr_html_()).split())
        listed = " ".join(_text(layer._repr_html_()).split())
    assert "lazy Dask array in 2 chunk(s), not computed" in text and "dask.Array" in text
    assert "made by sum" in text
    assert "weight lazy" in listed


def test_a_module_lists_its_layers_with_counts_shapes_and_gradient_norms():
    net = cr.nn.MLP([2, 5, 3], activation="tanh", rng=0)
    before = _text(net._repr_html_())
    assert "MLP: 33 parameters" in before and "no gradients yet" in before
    assert "weight (5, 2)" in before and "bias (3,)" in before and "Tanh" in before
    X = np.random.default_rng(1).normal(size=(4, 2))
    cr.nn.functional.cross_entropy(net(X), np.array([0, 1, 2, 0])).backward()
    rows = re.findall(r"<tr>(.*?)</tr>", net._repr_html_())
    cells = [
        [" ".join(_text(c).split()) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r)]
        for r in rows
    ]
    header, model, first, act, second, total = cells
    assert header == ["layer", "type", "own parameters", "parameters", "gradient norm"]
    assert model[0] == "(model)" and model[3] == "33"
    assert first[1].startswith("Linear in_features=2, out_features=5") and first[3] == "15"
    assert act[1] == "Tanh" and act[3] == "0" and act[4] == "—"
    assert second[3] == "18"
    layer = net[0]
    norm_w = np.linalg.norm(layer.weight.grad.numpy())
    assert first[4].split() == [
        "weight",
        f"{norm_w:.4g}",
        "bias",
        f"{np.linalg.norm(layer.bias.grad.numpy()):.4g}",
    ]
    overall = np.sqrt(sum(np.sum(p.grad.numpy() ** 2) for p in net.parameters()))
    assert total[3] == "33" and total[4] == f"{overall:.4g} (4 of 4 parameters have gradients)"


def test_a_shared_parameter_is_counted_once():
    layer = cr.nn.Linear(3, 3, rng=0)
    net = cr.nn.Sequential(layer, cr.nn.Tanh(), cr.nn.Sequential(layer))
    text = _text(net._repr_html_())
    assert "Sequential: 12 parameters" in text


def test_a_dataset_shows_size_shapes_classes_and_rows():
    d = cr.data.load_digits()
    text = re.sub(r"\s+", " ", _text(d._repr_html_()))
    assert "Dataset 'digits': 1,797 samples" in text
    assert "X (1797, 64) float64" in text and "y (1797,) int64" in text
    counts = np.bincount(d.y)
    assert f"10: 0 ({counts[0]}), 1 ({counts[1]})" in text
    assert "x7 … y" in text  # the first 8 of 64 features
    first_row = " ".join(f"{v:.4g}" for v in d.X[0, :8])
    assert f"0 {first_row} … {d.y[0]}" in text
    regression = _text(cr.data.make_regression(20)._repr_html_())
    assert "none (regression)" in regression


def test_the_graph_frame_shows_this_graphs_gradients_only():
    w = cr.tensor(3.0, requires_grad=True, name="w")
    (w * w).backward()  # graph A leaves w.grad = 6
    g = cr.graph(cr.tanh(w))
    page = next(a["srcdoc"] for tag, a in _elements(g._repr_html_()) if tag == "iframe")
    data = _data(page or "")
    (leaf,) = [n for n in data["nodes"] if n["name"] == "w"]
    grad = data["arrays"][leaf["grad"]]["data"]
    assert grad == pytest.approx(1 - np.tanh(3.0) ** 2)  # the page's own pass, not A's 6
    assert float(w.grad) == 6.0  # which touched no .grad
    with pytest.raises(ValueError, match="at least 100"):
        graph_frame(g, height=10)


# -- in a browser ---------------------------------------------------------------------------------
def _watch(page, problems: list[str], requests: list[str]) -> None:
    page.set_default_timeout(10_000)
    page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("request", lambda r: requests.append(r.url))


def _notebook(body: str) -> str:
    """A stand-in for a notebook's output area, with a style of its own that the displays
    must not disturb (nor be disturbed by)."""
    return (
        "<!DOCTYPE html><html><head><style>body { font-family: serif; }</style></head>"
        f'<body><div id="output">{body}</div></body></html>'
    )


def test_displays_in_headless_chromium():
    x, w, y = _tensor_with_history()
    net = cr.nn.MLP([2, 4, 2], activation="tanh", rng=0)
    X = np.random.default_rng(0).normal(size=(5, 2))
    loss = cr.nn.functional.cross_entropy(net(X), np.array([0, 1, 0, 1, 1]))
    g = cr.graph(loss, module=net)
    loss.backward()
    steps = g.backward_steps()
    moons = cr.data.make_moons(50)
    problems: list[str] = []
    requests: list[str] = []
    with _browser() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        _watch(page, problems, requests)

        page.set_content(_notebook(x._repr_html_() + y._a._repr_html_()))
        shown = page.inner_text("#output")
        assert "Tensor 'x'" in shown and "(2, 2)" in shown and "float64" in shown
        assert "matmul" in shown and "tensor 'w' (2,) float64" in shown
        assert f"{x.grad.numpy()[0, 0]:.6g}"[:6] in shown  # the gradient's first entry
        assert page.locator("table.chainrule-repr").count() == 2

        page.set_content(_notebook(net._repr_html_()))
        shown = page.inner_text("#output")
        assert "MLP: 22 parameters" in shown and "weight (4, 2)" in shown
        norm = np.linalg.norm(net[0].weight.grad.numpy())
        assert f"weight {norm:.4g}" in shown
        assert page.locator("table.chainrule-repr tr").count() == 6  # header, 4 layers, total

        page.set_content(_notebook(moons._repr_html_()))
        shown = page.inner_text("#output")
        assert "Dataset 'moons': 50 samples" in shown and "X (50, 2) float64" in shown
        assert page.locator("table.chainrule-repr").nth(1).locator("tr").count() == 6

        page.set_content(_notebook(g._repr_html_()))
        box = page.locator("iframe.chainrule-graph-frame").bounding_box()
        assert box and box["height"] == pytest.approx(642, abs=2) and box["width"] > 1000
        assert page.evaluate("document.querySelectorAll('script').length") == 0
        frame = page.frame_locator("iframe.chainrule-graph-frame")
        assert frame.locator("#counter").inner_text() == f"Step 1 of {len(steps)}"
        assert frame.locator("svg g.node").count() >= 4
        titles = [frame.locator("#step-title").inner_text()]
        while frame.locator("#next").is_enabled():
            frame.locator("#next").click()
            titles.append(frame.locator("#step-title").inner_text())
            assert len(titles) <= len(steps), "Next stays enabled past the last step"
        assert frame.locator("#counter").inner_text().endswith(f"of {len(steps)}")
        assert len(titles) > 1
        # the page cannot reach the notebook around it
        inner = next(f for f in page.frames if f != page.main_frame)
        reach = "() => { try { return window.parent.document.title || 'reached'; } "
        reach += "catch (e) { return 'blocked'; } }"
        assert inner.evaluate(reach) == "blocked"
        assert page.evaluate("getComputedStyle(document.body).fontFamily") == "serif"
    assert problems == []
    assert all(not r.startswith(("http", "file")) for r in requests), requests
