"""The interactive HTML page: self-contained, its data the engine's own backward pass, names
escaped; and, in a real headless Chromium, that it loads cleanly, draws every node, steps
through the backward pass to the sources, and paints something."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule.viz.html_page import graph_html

EVIL = "</script><script>alert(1)</script>"
EVIL_TAG = '<img src=x onerror="alert(2)">'


def _two_layer():
    """The handout's (d): loss = 1/2 ||W2 tanh(W1 x + b) - y||^2, every tensor named."""
    rng = np.random.default_rng(0)
    W1 = cr.tensor(rng.normal(size=(3, 2)), requires_grad=True, name="W1")
    b = cr.tensor(rng.normal(size=3) * 0.1, requires_grad=True, name="b")
    W2 = cr.tensor(rng.normal(size=(1, 3)), requires_grad=True, name="W2")
    x = cr.tensor([0.5, -1.0], name="x")
    y = cr.tensor([0.3], name="y")
    h = cr.tanh(W1 @ x + b)
    h.name = "h"
    loss = 0.5 * cr.sum((W2 @ h - y) ** 2)
    loss.name = "loss"
    return loss, {"W1": W1, "b": b, "W2": W2, "x": x, "y": y}


def _data(page: str) -> dict:
    found = re.search(
        r'<script type="application/json" id="chainrule-data">(.*?)</script>', page, re.S
    )
    assert found, "the page has no data block"

    def refuse(token: str) -> None:
        raise AssertionError(f"bare {token} in the page's JSON")

    return json.loads(found.group(1), parse_constant=refuse)


def _arr(data: dict, ref: int | None) -> dict:
    """The array a node or step refers to (the page stores each array once)."""
    assert ref is not None
    return data["arrays"][ref]


class _Elements(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _elements(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(page)
    return parser.tags


def _drawn_nodes(page: str) -> list[str]:
    return [
        a["data-node"] or ""
        for tag, a in _elements(page)
        if tag == "g" and "node" in (a.get("class") or "").split()
    ]


# -- the page without a browser ----------------------------------------------------------------
def test_page_is_one_self_contained_document():
    loss, _ = _two_layer()
    page = graph_html(cr.graph(loss))
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "http" not in page  # no URL of any kind: nothing to fetch, no CDN
    for tag, attrs in _elements(page):
        for key in ("src", "href"):
            value = attrs.get(key)
            assert value is None or value.startswith(("#", "data:")), (tag, key, value)
        assert not (tag == "link" and attrs.get("rel") == "stylesheet"), "external stylesheet"
    assert "@import" not in page
    assert re.findall(r"url\(([^)]*)\)", page) == ["#arrow"] * page.count("url(")
    assert page.count("<svg") == 1 and page.count("<style>") == 1


def test_every_node_is_in_the_picture_and_the_data():
    loss, tensors = _two_layer()
    g = cr.graph(loss)
    page = graph_html(g, title="Problem (d)")
    data = _data(page)
    assert sorted(_drawn_nodes(page), key=int) == [str(n.index) for n in g.nodes]
    assert [d["name"] for d in data["nodes"]] == [n.name for n in g.nodes]
    assert {"W1", "W2", "b", "x", "y", "h", "loss"} <= {d["name"] for d in data["nodes"]}
    assert data["sink"] == g.sink.index and data["title"] == "Problem (d)"
    assert "<title>Problem (d)</title>" in page
    for d, n in zip(data["nodes"], g.nodes):
        assert d["shape"] == list(n.shape) and d["op"] == n.op
        assert d["parents"] == [p.index for p in n.parents]
        assert np.array_equal(_arr(data, d["value"])["data"], n.value)
    kinds = {d["name"]: d["kind"] for d in data["nodes"]}
    assert kinds["W1"] == "parameter" and kinds["x"] == "input" and kinds["loss"] == "sink"
    # every node that requires grad has its gradient in the page; data inputs have none
    by_name = {d["name"]: d for d in data["nodes"]}
    assert by_name["x"]["grad"] is None and by_name["y"]["grad"] is None
    t = {k: v.numpy() for k, v in tensors.items()}  # d loss / d W1 again, by cr.grad
    f = lambda W1: 0.5 * cr.sum((t["W2"] @ cr.tanh(W1 @ t["x"] + t["b"]) - t["y"]) ** 2)
    assert np.allclose(_arr(data, by_name["W1"]["grad"])["data"], cr.grad(f)(t["W1"]))


def test_steps_are_the_engines_backward_pass_in_its_order():
    loss, _ = _two_layer()
    g = cr.graph(loss)
    steps = g.backward_steps()
    data = _data(graph_html(g))
    assert [s["node"] for s in data["steps"]] == [s.node.index for s in steps]
    assert data["steps"][0]["node"] == g.sink.index
    assert {steps[k].node.name for k in range(len(steps)) if steps[k].node.is_source} == {
        "W1",
        "W2",
        "b",
    }
    for k, (rec, step) in enumerate(zip(data["steps"], steps)):
        assert rec["op"] == step.op
        assert all(o["rule"] in rec["formula"] for o in rec["outgoing"])
        assert np.array_equal(
            _arr(data, rec["grad"])["data"], step.grad
        )  # exact: floats round-trip
        assert [(o["to"], o["arg"]) for o in rec["outgoing"]] == [
            (p.index, i) for p, i, _ in step.contributions
        ]
        for o, (_, _, value) in zip(rec["outgoing"], step.contributions):
            assert np.array_equal(_arr(data, o["value"])["data"], value)
        # the gradient that arrived: what earlier steps sent here, summing to this gradient
        if k == 0:
            assert rec["incoming"] == []
            continue
        assert rec["incoming"] and all(s < k for s, _ in rec["incoming"])
        sent = [data["steps"][s]["outgoing"][j] for s, j in rec["incoming"]]
        assert all(o["to"] == rec["node"] for o in sent)
        assert np.allclose(sum(np.asarray(_arr(data, o["value"])["data"]) for o in sent), step.grad)
    # each parent gets its own clause of the op's rule, in the nodes' names: matmul's two
    # arguments differ ("d(x @ y)/dx = g @ y^T" on the op sheet)
    matmul = next(r for r in data["steps"] if r["op"] == "matmul" and len(r["outgoing"]) == 2)
    assert [o["rule"] for o in matmul["outgoing"]] == [
        "dmatmul/dW2 = g @ h^T",
        "dmatmul/dh = W2^T @ g",
    ]


def test_each_argument_s_rule_is_the_one_the_op_sheet_states_beside_it():
    # where(c, x, y): the condition has no rule, so x and y are arguments 1 and 2
    x = cr.tensor([1.0, -2.0], requires_grad=True)
    y = cr.tensor([3.0, 4.0], requires_grad=True)
    loss = cr.sum(cr.where(np.array([True, False]), x * x, y))
    data = _data(graph_html(cr.graph(loss)))
    step = next(r for r in data["steps"] if r["op"] == "where")
    # the sheet: "d where(c, x, y)/dx = c, d where(c, x, y)/dy = 1 - c"; the condition is a
    # constant array, so it keeps its letter; unnamed nodes go by their labels
    assert {o["arg"]: o["rule"] for o in step["outgoing"]} == {
        1: "dwhere/dmultiply = c",
        2: "dwhere/dinput1 = 1 - c",
    }
    assert step["formula"] == "dwhere/dmultiply = c, dwhere/dinput1 = 1 - c"


def test_page_after_a_real_backward_shows_that_pass():
    loss, tensors = _two_layer()
    g = cr.graph(loss)
    loss.backward()
    data = _data(graph_html(g))
    assert [s["node"] for s in data["steps"]] == [s.node.index for s in g.backward_steps()]
    w1 = next(d for d in data["nodes"] if d["name"] == "W1")
    assert np.array_equal(_arr(data, w1["grad"])["data"], tensors["W1"].grad.numpy())


def test_a_node_used_twice_lists_both_contributions():
    x = cr.tensor(3.0, requires_grad=True, name="x")
    g = cr.graph(x * x)
    data = _data(graph_html(g))
    last = data["steps"][-1]
    assert data["nodes"][last["node"]]["name"] == "x"
    assert len(last["incoming"]) == 2 and _arr(data, last["grad"])["data"] == 6.0


def test_arrays_are_cut_to_max_array_and_made_json_safe():
    big = cr.tensor(np.arange(100.0).reshape(10, 10), requires_grad=True, name="big")
    odd = cr.tensor([np.nan, np.inf, -np.inf, 1.0], requires_grad=True, name="odd")
    g = cr.graph(cr.sum(big * 2.0) + cr.sum(odd * 3.0))
    data = _data(graph_html(g, max_array=16))
    by_name = {d["name"]: d for d in data["nodes"]}
    value = _arr(data, by_name["big"]["value"])
    assert value["truncated"] and value["size"] == 100 and value["shape"] == [10, 10]
    assert value["data"] == list(range(16))
    assert value["stats"]["max"] == 99.0
    assert _arr(data, by_name["odd"]["value"])["data"] == ["NaN", "Infinity", "-Infinity", 1.0]
    assert _arr(data, by_name["odd"]["grad"])["data"] == [3.0, 3.0, 3.0, 3.0]
    assert not _arr(data, by_name["odd"]["value"])["truncated"]
    with pytest.raises(ValueError, match="max_array"):
        graph_html(g, max_array=0)


def test_each_array_is_stored_once():
    x = cr.tensor(np.linspace(-1, 1, 50), requires_grad=True, name="x")
    h = x
    for _ in range(20):
        h = cr.tanh(h)
    g = cr.graph(cr.sum(h))
    data = _data(graph_html(g))
    # a chain: a step's gradient is its node's, and what it sends is its parent's gradient
    for rec in data["steps"]:
        assert rec["grad"] == data["nodes"][rec["node"]]["grad"]
        for o in rec["outgoing"]:
            assert o["value"] == data["nodes"][o["to"]]["grad"]
    assert len(data["arrays"]) == 2 * len(g.nodes)  # each node's value and gradient, no more


def test_a_sink_that_needs_no_gradient_gives_the_graph_without_steps():
    c = cr.tensor([1.0, 2.0], name="c")
    g = cr.graph(cr.sum(c * 2.0))
    page = graph_html(g)
    data = _data(page)
    assert data["steps"] == [] and len(_drawn_nodes(page)) == len(g.nodes)
    assert all(d["grad"] is None for d in data["nodes"])


def test_names_cannot_break_out_of_the_page():
    x = cr.tensor(2.0, requires_grad=True, name=EVIL)
    w = cr.tensor(0.5, requires_grad=True, name=EVIL_TAG)
    out = cr.sigmoid(w * x)
    page = graph_html(cr.graph(out), title=EVIL)
    assert page.count("<script") == 2 and page.count("</script>") == 2  # ours only
    assert EVIL not in page and EVIL_TAG not in page and "<img" not in page
    assert not [tag for tag, _ in _elements(page) if tag in ("img", "iframe", "object")]
    data = _data(page)
    assert {d["name"] for d in data["nodes"]} >= {EVIL, EVIL_TAG}
    assert data["title"] == EVIL


def test_collapsed_layers_are_groups_that_hold_every_node():
    net = cr.nn.MLP([2, 4, 4, 2], activation="tanh", rng=0)
    X = np.random.default_rng(0).normal(size=(5, 2))
    loss = cr.nn.functional.cross_entropy(net(X), np.array([0, 1, 0, 1, 1]))
    g = cr.graph(loss, module=net)
    page = graph_html(g, collapse=True)
    data = _data(page)
    assert data["collapsed"]
    groups = [b for b in data["boxes"].values() if b["group"]]
    assert groups and all(len(b["members"]) >= 1 for b in groups)
    # the page holds two pictures: one box per layer (shown), and every node (on demand)
    layers, nodes = page.split('data-view="nodes"')
    drawn = set(_drawn_nodes(layers))
    assert {str(d["box"]) for d in data["nodes"]} == drawn == set(data["boxes"])
    members = sorted(i for b in data["boxes"].values() for i in b["members"])
    assert members == [n.index for n in g.nodes]
    assert len(data["steps"]) == len(g.backward_steps())
    expanded = data["expanded"]
    assert set(_drawn_nodes("<svg " + nodes)) == set(expanded["boxes"])
    assert sorted(map(int, expanded["box_of"])) == [n.index for n in g.nodes]
    assert all(not b["group"] for b in expanded["boxes"].values())


def test_graph_save_html_writes_the_page(tmp_path):
    loss, _ = _two_layer()
    path = cr.graph(loss).save(tmp_path / "pass.html")
    page = path.read_text(encoding="utf-8")
    assert len(_data(page)["steps"]) > 0 and "chainrule-graph" in page


# -- the page in a real browser ----------------------------------------------------------------
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "the HTML page's browser test needs Chromium, which is not installed: "
            "apt-get update && apt-get install -y chromium (make test does this when it is missing)"
        )
    return path


@contextlib.contextmanager
def _browser():
    """Headless Chromium driven by playwright; the test fails (never skips) without them."""
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser test needs playwright: pip install -e '.[test]'")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def _open(browser, path, problems: list[str], requests: list[str]):
    """The page at ``path`` (file://), with console messages, page errors and dialogs
    collected into ``problems`` and every URL it requests into ``requests``."""
    page = browser.new_page(viewport={"width": 1400, "height": 850})
    page.set_default_timeout(10_000)
    page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    return page


def _classes(page, selector: str) -> list[str]:
    return (page.get_attribute(selector, "class") or "").split()


def test_page_in_headless_chromium(tmp_path):
    import matplotlib.image

    loss, _ = _two_layer()
    g = cr.graph(loss)
    steps = g.backward_steps()
    path = g.save(tmp_path / "backprop.html")
    problems: list[str] = []
    requests: list[str] = []
    titles: list[str] = []
    with _browser() as browser:
        page = _open(browser, path, problems, requests)
        for n in g.nodes:  # every node drawn, visible, with a size
            box = page.locator(f'svg g.node[data-node="{n.index}"]')
            assert box.count() == 1 and box.is_visible(), n
            bounds = box.bounding_box()
            assert bounds and bounds["width"] > 20 and bounds["height"] > 20, n
        assert page.inner_text("#counter") == f"Step 1 of {len(steps)}"
        assert page.inner_text("#step-title") == "loss = multiply(...)"
        assert "the seed" in page.inner_text("#step-incoming")

        titles.append(page.inner_text("#step-title"))
        while page.is_enabled("#next"):
            page.click("#next")
            titles.append(page.inner_text("#step-title"))
            assert len(titles) <= len(steps), "Next stays enabled past the last step"
        assert len(titles) == len(steps)
        assert page.inner_text("#counter") == f"Step {len(steps)} of {len(steps)}"
        last = steps[-1].node
        assert last.is_source and page.inner_text("#step-title") == last.name
        assert page.inner_text("#step-kind").startswith("source (parameter)")
        assert "current" in _classes(page, f'g.node[data-node="{last.index}"]')
        assert {"W1", "W2", "b"} <= set(titles)  # the pass reached every source
        shot = page.screenshot()

        # hovering a node shows its arrays, pretty-printed
        w1 = next(n for n in g.nodes if n.name == "W1")
        page.hover(f'g.node[data-node="{w1.index}"]')
        shown = page.inner_text("#inspect")
        assert "W1" in shown and "(3, 2)" in shown
        assert "gradient d loss / d w1" in shown.lower()  # (CSS upper-cases the heading)
        assert f"{w1.grad[0, 0]:.4g}" in shown and f"{w1.value[2, 1]:.4g}" in shown
        # the keyboard steps too, and the parents of the current node are marked
        page.keyboard.press("Home")
        assert page.inner_text("#counter") == f"Step 1 of {len(steps)}"
        page.keyboard.press("ArrowRight")
        assert page.inner_text("#counter") == f"Step 2 of {len(steps)}"
        assert "current" in _classes(page, f'g.node[data-node="{steps[1].node.index}"]')
        for parent, _, _ in steps[1].contributions:
            assert "parent" in _classes(page, f'g.node[data-node="{parent.index}"]')
    assert problems == []
    assert requests == [path.as_uri()], "the page fetched something besides itself"
    (tmp_path / "screenshot.png").write_bytes(shot)
    pixels = matplotlib.image.imread(io.BytesIO(shot), format="png")
    assert pixels.shape[:2] == (850, 1400)
    assert pixels[..., :3].std() > 0.05
    assert len(np.unique(pixels[..., :3].reshape(-1, 3), axis=0)) > 50


def test_hostile_names_groups_and_no_steps_in_headless_chromium(tmp_path):
    x = cr.tensor(2.0, requires_grad=True, name=EVIL)
    w = cr.tensor(0.5, requires_grad=True, name=EVIL_TAG)
    evil = cr.graph(cr.sigmoid(w * x)).save(tmp_path / "evil.html")
    net = cr.nn.MLP([2, 4, 4, 2], activation="tanh", rng=0)
    X = np.random.default_rng(0).normal(size=(5, 2))
    g = cr.graph(cr.nn.functional.cross_entropy(net(X), np.array([0, 1, 0, 1, 1])), module=net)
    grouped = tmp_path / "groups.html"
    grouped.write_text(graph_html(g, collapse=True), encoding="utf-8")
    still_graph = cr.graph(cr.sum(cr.tensor([1.0, 2.0], name="c") * 2.0))
    still = still_graph.save(tmp_path / "still.html")
    problems: list[str] = []
    requests: list[str] = []
    with _browser() as browser:
        page = _open(browser, evil, problems, requests)
        page.keyboard.press("End")
        assert page.inner_text("#step-title") in (EVIL, EVIL_TAG)  # shown as text
        assert page.locator("img").count() == 0
        assert page.evaluate("document.querySelectorAll('script').length") == 2

        page = _open(browser, grouped, problems, requests)
        assert page.is_visible("#over") and page.is_checked("#over")
        shown = []
        while page.is_enabled("#next"):
            page.click("#next")
            shown.append(page.inner_text("#counter"))
        n = len(g.backward_steps())
        assert shown[-1] == f"Step {n} of {n}" and len(shown) < n - 1  # groups stepped over
        current = page.locator("g.node.current")
        assert current.count() == 1 and "group" in _classes(page, "g.node.current")

        page = _open(browser, still, problems, requests)  # no backward pass to step through
        assert page.inner_text("#counter").startswith("No backward pass")
        assert page.is_disabled("#next") and page.is_hidden("#step")
        assert page.inner_text("#inspect-title") == f"Node 0: {still_graph.sink.name}"
    assert problems == []
    assert requests == [evil.as_uri(), grouped.as_uri(), still.as_uri()]


# -- real sizes: legible on opening, every step reachable, screenshots kept ---------------------
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"  # gitignored


def _min_font_on_screen(page) -> float:
    """The smallest text of the shown picture, in screen pixels: its font size in the SVG's
    units times the picture's scale."""
    return page.evaluate(
        """() => {
        const svg = document.querySelector("svg.chainrule-graph:not([hidden])");
        const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
        const sizes = [...svg.querySelectorAll("text")].map(
            (t) => parseFloat(getComputedStyle(t).fontSize) * scale);
        return Math.min(...sizes);
    }"""
    )


def _in_pane(page, selector: str) -> bool:
    return page.evaluate(
        """(sel) => {
        const pane = document.getElementById("graph").getBoundingClientRect();
        const box = document.querySelector(sel).getBoundingClientRect();
        return box.right > pane.left && box.left < pane.right &&
               box.bottom > pane.top && box.top < pane.bottom;
    }""",
        selector,
    )


@pytest.mark.parametrize("name", ["neuron", "two_layer", "convnet", "gru"])
def test_real_sizes_open_legible_and_step_to_the_end_in_headless_chromium(name, tmp_path):
    from chainrule.viz import samples

    g = samples.SAMPLES[name]()
    steps = g.backward_steps()
    path = tmp_path / f"{name}.html"
    path.write_text(graph_html(g), encoding="utf-8")
    problems: list[str] = []
    requests: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    with _browser() as browser:
        page = _open(browser, path, problems, requests)
        assert _min_font_on_screen(page) >= 9.0
        # the picture fills its pane in one direction at least (no mostly empty canvas)
        filled = page.evaluate(
            """() => {
            const pane = document.getElementById("graph");
            const svg = document.querySelector("svg.chainrule-graph:not([hidden])");
            const r = svg.getBoundingClientRect();
            return Math.max(Math.min(1, r.width / (pane.clientWidth - 24)),
                            Math.min(1, r.height / (pane.clientHeight - 48)));
        }"""
        )
        assert filled > 0.9, filled
        assert _in_pane(page, "svg:not([hidden]) g.node.current")  # the first step is on screen
        page.screenshot(path=str(ARTIFACTS / f"page_{name}_open.png"))
        if page.is_visible("#over"):  # layers collapsed: step into them too
            page.uncheck("#over")
        for k in range(2, len(steps) + 1):  # the keyboard reaches every step, kept in view
            page.keyboard.press("n")
            assert page.inner_text("#counter") == f"Step {k} of {len(steps)}"
            assert _in_pane(page, "svg:not([hidden]) g.node.current"), k
        assert page.inner_text("#counter") == f"Step {len(steps)} of {len(steps)}"
        page.screenshot(path=str(ARTIFACTS / f"page_{name}_last.png"))
        page.keyboard.press("p")
        assert page.inner_text("#counter") == f"Step {len(steps) - 1} of {len(steps)}"
        # search by name: the matching boxes are outlined and Enter brings one into view
        query = {"neuron": "w", "two_layer": "W1", "convnet": "13.weight", "gru": "weight_hh"}[name]
        page.fill("#search", query)
        assert page.locator("svg:not([hidden]) g.node.match").count() >= 1
        page.press("#search", "Enter")
        assert _in_pane(page, "svg:not([hidden]) g.node.match")
        assert query in page.inner_text("#inspect")
        page.keyboard.press("Escape")
        assert page.locator("g.node.match").count() == 0
        if name in ("convnet", "gru"):  # one box per layer; expanding shows every node
            layers = {"convnet": 6, "gru": 2}[name]  # (the GRU and its read-out)
            assert page.locator("svg:not([hidden]) g.node.group").count() >= layers
            page.click("#view")
            assert page.locator("svg:not([hidden]) g.node").count() == len(g.nodes)
            assert _min_font_on_screen(page) >= 9.0
            assert page.inner_text("#counter") == f"Step {len(steps) - 1} of {len(steps)}"
            page.screenshot(path=str(ARTIFACTS / f"page_{name}_expanded.png"))
    assert problems == []
    assert requests == [path.as_uri()]
