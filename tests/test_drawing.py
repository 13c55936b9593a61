"""Graph pictures: the layered layout, the SVG/DOT/PNG renderers, values and gradients in the
boxes, and layers of cr.nn modules collapsing into groups."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import chainrule as cr
from chainrule.viz import drawing
from chainrule.viz.layout import layered_layout

SVG = "{http://www.w3.org/2000/svg}"


def _small():
    x = cr.tensor(2.0, requires_grad=True, name="x")
    w = cr.tensor(0.5, requires_grad=True, name="w")
    b = cr.tensor(0.1, requires_grad=True, name="b")
    out = cr.sigmoid(w * x + b)
    return out, (x, w, b)


def _nodes(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)
    return [g for g in root.iter(f"{SVG}g") if "node" in g.get("class", "").split()]


def _texts(element: ET.Element) -> list[str]:
    return [t.text or "" for t in element.iter(f"{SVG}text")]


def test_layout_layers_follow_the_edges_and_sources_sit_by_their_consumer():
    #  0 -> 2 -> 3 -> 5 ; 1 -> 4 -> 5 ; 6 -> 5 (a source used only at the end)
    edges = [(0, 2), (2, 3), (3, 5), (1, 4), (4, 5), (6, 5)]
    pos = layered_layout([0, 1, 2, 3, 4, 5, 6], edges)
    for a, b in edges:
        assert pos[a][0] < pos[b][0]
    assert pos[6][0] == pos[5][0] - 1  # pulled next to its only consumer
    assert pos[0][0] == 0 and pos[5][0] == 3
    # no two nodes share a place
    assert len(set(pos.values())) == len(pos)


def test_layout_accepts_any_node_order_and_refuses_cycles():
    pos = layered_layout([2, 1, 0], [(0, 1), (1, 2)])
    assert [pos[n][0] for n in (0, 1, 2)] == [0, 1, 2]
    with pytest.raises(ValueError, match="cycle"):
        layered_layout([0, 1], [(0, 1), (1, 0)])


def test_layout_is_deterministic():
    edges = [(i, i + 5) for i in range(5)] + [(i + 5, 10) for i in range(5)]
    nodes = list(range(11))
    assert layered_layout(nodes, edges) == layered_layout(nodes, edges)


def test_builtin_svg_has_one_box_per_node_and_marks_sources_and_sink():
    out, _ = _small()
    g = cr.graph(out)
    svg = g.to_svg(engine="builtin")
    boxes = _nodes(svg)
    assert sorted(int(b.get("data-node")) for b in boxes) == [n.index for n in g.nodes]
    kinds = {int(b.get("data-node")): b.get("class").split()[1] for b in boxes}
    assert kinds[g.sink.index] == "sink"
    for s in g.sources:
        assert kinds[s.index] == "parameter"  # leaves that require grad
    edges = [p for p in ET.fromstring(svg).iter(f"{SVG}path") if p.get("class") == "edge"]
    assert len(edges) == len(g.edges)


def test_values_and_gradients_appear_after_backward():
    out, (x, w, b) = _small()
    g = cr.graph(out)
    before = {int(n.get("data-node")): _texts(n) for n in _nodes(g.to_svg(engine="builtin"))}
    assert not any(t.startswith("grad") for texts in before.values() for t in texts)
    out.backward()
    after = {int(n.get("data-node")): _texts(n) for n in _nodes(g.to_svg(engine="builtin"))}
    s = 1 / (1 + np.exp(-(0.5 * 2.0 + 0.1)))
    by_name = {n.name: n.index for n in g.nodes}
    assert f"value {s:.4g}" in after[g.sink.index]
    assert f"grad {s * (1 - s) * 2.0:.4g}" in after[by_name["w"]]  # d out / dw = s(1-s) x
    assert f"grad {s * (1 - s):.4g}" in after[by_name["add"]]  # interior node: d out / d(wx+b)


def test_array_nodes_show_a_summary():
    W = cr.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, name="W")
    loss = cr.sum(W * W)
    g = cr.graph(loss)
    loss.backward()
    texts = {int(n.get("data-node")): _texts(n) for n in _nodes(g.to_svg(engine="builtin"))}
    w_texts = texts[g.sources[0].index]
    assert "2×3" in w_texts
    norm = np.linalg.norm(np.arange(6.0))
    assert f"value norm {norm:.3g} [0, 5]" in w_texts


def _mlp_loss(layers: int = 2, width: int = 4):
    sizes = [3] + [width] * layers + [2]
    net = cr.nn.MLP(sizes, activation="tanh", rng=0)
    X = np.random.default_rng(0).normal(size=(5, 3))
    y = np.array([0, 1, 0, 1, 1])
    return cr.nn.functional.cross_entropy(net(X), y), net


def test_collapse_groups_each_layer_and_names_it_from_the_module():
    loss, net = _mlp_loss()
    g = cr.graph(loss, module=net)
    sc = drawing.scene(g, collapse=True)
    groups = [b for b in sc.boxes if b.kind == "group"]
    assert [b.title for b in groups] == [
        "0 (Linear)",
        "1 (Tanh)",
        "2 (Linear)",
        "3 (Tanh)",
        "4 (Linear)",
    ]
    linear = groups[0]
    # weight, bias and the fused linear node
    assert len(linear.members) == 3 and "linear" in linear.lines[0]
    # every node is in exactly one box; the arrows form a chain through the layers
    members = sorted(i for b in sc.boxes for i in b.members)
    assert members == [n.index for n in g.nodes]
    expanded = drawing.scene(g, collapse=False)
    assert not any(b.kind == "group" for b in expanded.boxes)
    assert len(expanded.boxes) == len(g.nodes)


def test_big_graphs_collapse_by_themselves_and_stay_small():
    loss, net = _mlp_loss(layers=40, width=3)
    g = cr.graph(loss)
    assert len(g.nodes) > drawing.AUTO_COLLAPSE
    sc = drawing.scene(g)  # collapse=None: automatic, and the 40 repeated layers fold
    titles = [b.title for b in sc.boxes if b.kind == "group"]
    assert "Linear → Tanh ×40" in titles
    assert len(sc.boxes) < 10
    run = next(b for b in sc.boxes if b.title == "Linear → Tanh ×40")
    assert len(run.members) == 40 * (3 + 1)  # each Linear: W, b, linear; each Tanh: tanh
    unfolded = drawing.scene(g, fold=False)
    # one box per layer (40 x Linear and Tanh, the last Linear), and the loss (its mean
    # taken by the cross_entropy op itself)
    assert len(unfolded.boxes) == 2 * 40 + 1 + 1
    kinds = {b.title.split(" #")[0] for b in unfolded.boxes if b.kind == "group"}
    assert kinds == {"Linear", "Tanh"}
    svg = g.to_svg(engine="builtin")
    assert len(_nodes(svg)) == len(sc.boxes)
    # every node is drawn somewhere, once
    assert sorted(i for b in sc.boxes for i in b.members) == [n.index for n in g.nodes]
    small, _ = _small()
    assert not any(b.kind == "group" for b in drawing.scene(cr.graph(small)).boxes)


def test_save_by_extension(tmp_path):
    out, _ = _small()
    g = cr.graph(out)
    out.backward()
    assert g.save(tmp_path / "g.svg").read_text().lstrip().startswith(("<svg", "<?xml"))
    assert "digraph" in g.save(tmp_path / "g.dot").read_text()
    png = g.save(tmp_path / "g.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    pixels = matplotlib.image.imread(str(png))
    assert pixels.std() > 0.05  # drawn, not blank
    with pytest.raises(ValueError, match=r"\.svg, \.png, \.dot or \.html"):
        g.save(tmp_path / "g.jpg")


def test_notebook_repr_is_svg():
    out, _ = _small()
    assert "<svg" in cr.graph(out)._repr_svg_()


def test_engine_choice():
    out, _ = _small()
    g = cr.graph(out)
    with pytest.raises(ValueError, match="engine"):
        g.to_svg(engine="neato")
    if shutil.which("dot") is None:
        with pytest.raises(RuntimeError, match="Graphviz"):
            g.to_svg(engine="dot")
        assert g.to_svg() == g.to_svg(engine="builtin")  # auto falls back to ours
    else:
        assert "<svg" in g.to_svg(engine="dot")


def test_dot_keeps_repeated_edges_and_labels_group_arrows():
    x = cr.tensor(3.0, requires_grad=True, name="x")
    g = cr.graph(x * x)
    assert g.to_dot().count("n0 -> n1 [headlabel=") == 2  # as argument x, and as y
    assert 'headlabel="x"' in g.to_dot() and 'headlabel="y"' in g.to_dot()
    loss, net = _mlp_loss()
    dot = cr.graph(loss, module=net).to_dot(collapse=True)
    assert '"0 (Linear)' in dot


# -- layout at real sizes, operand order, short titles ------------------------------------------
def _size(svg: str) -> tuple[float, float]:
    root = ET.fromstring(svg)
    return float(root.get("width")), float(root.get("height"))


@pytest.mark.parametrize("name", ["neuron", "two_layer", "convnet"])
def test_pictures_keep_an_aspect_ratio_between_1_3_and_3_1(name):
    from chainrule.viz import samples

    g = samples.SAMPLES[name]()
    for collapse in (False, True):
        w, h = _size(g.to_svg(collapse=collapse, engine="builtin"))
        assert 1 / 3 <= w / h <= 3, (name, collapse, w, h)
    # the one-row layout made the two-layer net 11:1 (2,277 x 196) and the convnet 10:1
    if name != "neuron":
        assert w * h < 4e6


def test_a_few_hundred_nodes_fold_into_bands_and_every_box_is_apart():
    loss, net = _mlp_loss(layers=75, width=3)
    g = cr.graph(loss, module=net)
    assert len(g.nodes) > 300
    sc = drawing.scene(g, collapse=False)
    placed, _ = drawing._geometry(sc)
    assert 1 / 3 <= placed.width / placed.height <= 3 and placed.bands > 1
    rects = sorted(placed.boxes.values())
    for i, (x, y, w, h) in enumerate(rects):  # no two boxes overlap
        for x2, y2, w2, h2 in rects[i + 1 : i + 40]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y


def test_layout_of_a_small_graph_runs_left_to_right_in_one_band():
    from chainrule.viz.layout import arrange

    a = arrange({k: (60.0, 40.0) for k in "abcd"}, [("a", "c"), ("b", "c"), ("c", "d")])
    assert a.direction == "LR" and a.bands == 1
    xs = {k: a.boxes[k][0] for k in "abcd"}
    assert xs["a"] == xs["b"] < xs["c"] < xs["d"]
    forced = arrange({k: (60.0, 40.0) for k in "abcd"}, [("a", "c"), ("b", "c")], "TB")
    assert forced.direction == "TB" and forced.boxes["a"][1] < forced.boxes["c"][1]


def _edges_into(svg: str, key: int) -> list[ET.Element]:
    root = ET.fromstring(svg)
    return [p for p in root.iter(f"{SVG}path") if p.get("data-to") == str(key)]


def _tip(path: ET.Element) -> tuple[str, str]:
    return tuple(path.get("d").split()[-2:])  # type: ignore[return-value]


def test_each_operand_arrives_at_its_own_port_with_the_op_sheets_name():
    W = cr.tensor(np.ones((2, 3)), requires_grad=True, name="W")
    x = cr.tensor(np.ones(3), name="x")
    y = cr.tensor(np.ones(2), name="y")
    g = cr.graph(cr.sum(y - W @ x))
    svg = g.to_svg(engine="builtin")
    by_op = {n.op: n.index for n in g.nodes if n.op}
    into_matmul = _edges_into(svg, by_op["matmul"])
    assert sorted(p.get("data-arg") for p in into_matmul) == ["x", "y"]
    assert len({_tip(p) for p in into_matmul}) == 2  # two arrowheads, not one
    into_subtract = {
        p.get("data-arg"): int(p.get("data-from")) for p in _edges_into(svg, by_op["subtract"])
    }
    assert into_subtract == {
        "x": g.sources[[s.name for s in g.sources].index("y")].index,
        "y": by_op["matmul"],
    }
    labels = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text") if t.get("class") == "arg"]
    assert sorted(labels) == ["x", "x", "y", "y"]
    # x * x: the same parent twice, two edges, two ports
    a = cr.tensor(3.0, requires_grad=True, name="a")
    twice = _edges_into(cr.graph(a * a).to_svg(engine="builtin"), 1)
    assert [p.get("data-arg") for p in twice] == ["x", "y"] and _tip(twice[0]) != _tip(twice[1])
    # a one-input op needs no label
    assert _edges_into(cr.graph(cr.tanh(a)).to_svg(engine="builtin"), 1)[0].get("data-arg") is None


def test_getitem_shows_its_index_and_long_titles_keep_the_full_text_in_a_tooltip():
    h = cr.tensor(np.arange(12.0).reshape(2, 6), requires_grad=True, name="h")
    part = h[:, 0:3]
    very = cr.tanh(part)
    very.name = "a_rather_long_name_for_a_tensor"
    g = cr.graph(cr.sum(very))
    boxes = {int(b.get("data-node")): b for b in _nodes(g.to_svg(engine="builtin"))}
    getitem = next(n.index for n in g.nodes if n.op == "getitem")
    assert _texts(boxes[getitem])[0] == "h[:, 0:3]"
    long = next(n.index for n in g.nodes if n.op == "tanh")
    title = _texts(boxes[long])[0]
    assert len(title) <= 20 and title.endswith("…")
    tooltip = boxes[long].find(f"{SVG}title")
    assert tooltip is not None and tooltip.text.startswith("a_rather_long_name_for_a_tensor = tanh")
    assert drawing._index_text((Ellipsis, None, 2)) == "[..., None, 2]"
    assert drawing._index_text(slice(None, None, 2)) == "[::2]"


def test_collapsed_layers_show_their_parameters_shapes_and_gradient_norms():
    loss, net = _mlp_loss()
    g = cr.graph(loss, module=net)
    loss.backward()
    first = drawing.scene(g, collapse=True).boxes[0]
    norm = np.linalg.norm(net[0].weight.grad.numpy())
    assert first.title == "0 (Linear)"
    assert f"weight 4×3 ‖grad‖ {norm:.3g}" in first.lines
    assert any(line.startswith("bias 4") for line in first.lines)
