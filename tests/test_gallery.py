"""docs/gallery.md is not stale: its table of picture sizes matches what the docs' code draws
now, and the gallery's own pictures are the ones committed (the built-in layout is
deterministic). Run `make gallery` and commit when this fails."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"

pytest.importorskip("matplotlib")  # make_images runs the docs' code, which draws plots


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"_docs_{name}", DOCS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_gallery_matches_the_pictures_drawn_now(tmp_path):
    gallery, images = _module("make_gallery"), _module("make_images")
    made = images.render(tmp_path, pages=[DOCS / "gallery.md"], prune=False)
    ours = [name for name, _ in gallery.PICTURES if name.startswith("gallery_")]
    assert sorted(made) == sorted(ours)
    for name in ours:
        fresh = (tmp_path / name).read_text(encoding="utf-8")
        assert fresh == (DOCS / "images" / name).read_text(encoding="utf-8"), (
            f"docs/images/{name} is stale: run `make gallery`"
        )
    committed = (DOCS / "gallery.md").read_text(encoding="utf-8")
    assert gallery.page_text(ours=tmp_path) == committed, "docs/gallery.md is stale: make gallery"


def test_every_picture_of_the_gallery_keeps_its_aspect_between_1_3_and_3_1():
    gallery = _module("make_gallery")
    for name, _ in gallery.PICTURES:
        w, h, boxes = gallery.measure(DOCS / "images" / name)
        assert 1 / 3 <= w / h <= 3, (name, w, h)
        assert boxes >= 1
