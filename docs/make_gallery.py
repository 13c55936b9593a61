"""Write ``docs/gallery.md``: every graph picture of the docs, with its size and aspect ratio.

The gallery shows the handout's small problems (the pictures of ``docs/tutorial.md``) beside
graphs at real sizes (:mod:`chainrule.viz.samples`: a single neuron, a two-layer network, a
small convnet, drawn by the gallery page's own code block, so that ``docs/make_images.py``
makes them as it makes every picture of the docs). Each is listed with its size in pixels,
its aspect ratio and its number of boxes: a layout change that makes a picture a strip again
shows in the table, and ``tests/test_gallery.py`` fails until the gallery is regenerated.

    make gallery                                # the pictures, then this page
    .venv/bin/python docs/make_gallery.py       # this page only, and the gallery's pictures
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
IMAGES = DOCS / "images"
PAGE = DOCS / "gallery.md"

__all__ = ["PICTURES", "page_text", "measure", "main"]

# (file under docs/images, what it shows); the first ones come from the tutorial's code
PICTURES = [
    ("a_scalar_composite.svg", "(a) ℓ(x) = h(f(x), g(x)), a scalar composite"),
    ("b_fan_out_fan_in.svg", "(b) w fans out to three nodes, f fans them in"),
    ("c_graph_of_f.svg", "(c) f(W, x, y) = y − Σᵢ φ(wᵢᵀx + bᵢ)"),
    ("d_two_layer.svg", "(d) ℓ = ½‖W⁽²⁾ Φ(W⁽¹⁾x + b) − y‖²"),
    ("f_sensitivity.svg", "(f) ∂sink/∂node at every node"),
    ("g_descent.svg", "(g) one step of gradient descent on f(W, x, y)"),
    ("g_moons_net.svg", "(g) an MLP on two moons, one box per layer"),
    ("gallery_neuron.svg", "a single neuron, y = sigmoid(w x + b)"),
    ("gallery_two_layer.svg", "a two-layer network: x (4,), W1 (8, 4), W2 (3, 8), relu"),
    (
        "gallery_convnet.svg",
        "a small convnet: 3 × (Conv2d, BatchNorm2d, ReLU, MaxPool2d), 2 Linear",
    ),
    ("gallery_convnet_layers.svg", "the same convnet, one box per layer"),
    ("gallery_gru.svg", "a GRU over 6 steps (input 3, hidden 5), a Linear read-out, MSE"),
    ("gallery_gru_layers.svg", "the same GRU, one box per layer"),
]

CODE = """\
```python
from chainrule.viz import samples

samples.neuron().save("images/gallery_neuron.svg", engine="builtin")
samples.two_layer().save("images/gallery_two_layer.svg", engine="builtin")
convnet = samples.convnet()
convnet.save("images/gallery_convnet.svg", collapse=False, engine="builtin")
convnet.save("images/gallery_convnet_layers.svg", collapse=True, engine="builtin")
gru = samples.gru()
gru.save("images/gallery_gru.svg", collapse=False, engine="builtin")
gru.save("images/gallery_gru_layers.svg", collapse=True, engine="builtin")
```"""


def measure(svg: Path) -> tuple[int, int, int]:
    """Width and height in pixels (the root's attributes) and the number of boxes."""
    text = svg.read_text(encoding="utf-8")
    root = re.search(r"<svg\b[^>]*>", text)
    assert root is not None, f"{svg} is not an SVG"
    size = [re.search(rf'\b{k}="([\d.]+)', root.group(0)) for k in ("width", "height")]
    assert size[0] and size[1], f"{svg} has no width and height"
    boxes = len(re.findall(r'<g class="node ', text))
    return round(float(size[0].group(1))), round(float(size[1].group(1))), boxes


def page_text(images: Path = IMAGES, ours: Path | None = None) -> str:
    """The gallery page, measuring the pictures in ``images`` (the gallery's own pictures in
    ``ours`` when given: a fresh rendering to compare with the committed one)."""
    rows = []
    shown = []
    for name, caption in PICTURES:
        where = ours if ours is not None and name.startswith("gallery_") else images
        w, h, boxes = measure(where / name)
        rows.append(f"| [{name}](images/{name}) | {caption} | {boxes} | {w} × {h} | {w / h:.2f} |")
        shown.append(
            f"### {caption}\n\n{w} × {h} px, aspect {w / h:.2f}\n\n![{caption}](images/{name})"
        )
    return "\n".join(
        [
            "# Gallery: graph pictures from one neuron to a convnet",
            "",
            "Written by `make gallery` (`docs/make_gallery.py`); do not edit by hand:",
            "`tests/test_gallery.py` checks that this table matches the pictures.",
            "The built-in layout folds a deep graph into bands and picks left to right or top",
            "to bottom so that every picture stays between 1:3 and 3:1; each argument of an",
            "op is labelled at its arrowhead (matmul's x and y, subtract's x − y).",
            "",
            "The pictures at real sizes are drawn by this code (the handout's come from the",
            "[tutorial](tutorial.md)):",
            "",
            CODE,
            "",
            "| picture | what | boxes | size (px) | aspect (w/h) |",
            "|---|---|---:|---:|---:|",
            *rows,
            "",
            *("\n".join([s, ""]) for s in shown),
        ]
    )


def _make_images():
    spec = importlib.util.spec_from_file_location("_docs_make_images", DOCS / "make_images.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    # the page holds the code that draws its pictures: written first where it is not that code
    if not PAGE.exists() or CODE not in PAGE.read_text(encoding="utf-8"):
        PAGE.write_text(CODE + "\n", encoding="utf-8")
    _make_images().render(IMAGES, pages=[PAGE], prune=False)
    PAGE.write_text(page_text(), encoding="utf-8")
    print(f"{PAGE.relative_to(DOCS.parent)}: {len(PICTURES)} pictures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
