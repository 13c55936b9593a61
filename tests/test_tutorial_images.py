"""The pictures of the docs cannot silently go missing.

Every image a docs page shows (``![...](path)`` or ``<img src="path">``) is a file in the
repository; ``docs/make_images.py`` regenerates ``docs/images/`` from the pages' own code, and
what it makes is exactly the set of files committed there, each referenced by a page (so a
renamed picture, a page that stopped drawing one, or a stale file all fail here).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
IMAGES = DOCS / "images"
PAGES = sorted(DOCS.glob("*.md"))

_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_IMAGE = re.compile(r"<img\b[^>]*\bsrc=[\"']([^\"']+)[\"']", re.IGNORECASE)

pytest.importorskip("matplotlib")  # the pages draw plots: the docs need the test extra


def referenced_images(page: Path) -> list[str]:
    """The local image paths a Markdown page shows, as written (relative to the page)."""
    text = page.read_text(encoding="utf-8")
    found = _MARKDOWN_IMAGE.findall(text) + _HTML_IMAGE.findall(text)
    return [p for p in found if not re.match(r"^[a-z]+:", p)]  # skip http:, data:, ...


def _make_images_module():
    spec = importlib.util.spec_from_file_location("_docs_make_images", DOCS / "make_images.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tutorial_shows_pictures():
    tutorial = DOCS / "tutorial.md"
    assert tutorial in PAGES
    shown = referenced_images(tutorial)
    assert len(shown) >= 9  # one per problem (a)-(g) at least, and the nonlinearities
    for problem in "abcdefg":
        assert any(Path(p).name.startswith(f"{problem}_") for p in shown), problem


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_image_a_page_shows_exists(page):
    for ref in referenced_images(page):
        path = (page.parent / ref).resolve()
        assert path.is_relative_to(ROOT), f"{page.name} shows {ref}, outside the repository"
        assert path.is_file(), f"{page.name} shows {ref}, which does not exist"
        assert path.stat().st_size > 0, f"{page.name} shows {ref}, which is empty"


def test_every_committed_image_is_shown_somewhere():
    shown = {(page.parent / ref).resolve() for page in PAGES for ref in referenced_images(page)}
    committed = {p.resolve() for p in IMAGES.iterdir() if p.is_file()}
    assert committed - shown == set(), "pictures in docs/images/ that no page shows"


PAGE = """\
A page that draws one picture.

```python
from pathlib import Path

Path("images").mkdir()
Path("images/one.svg").write_text("<svg/>")
Path("elsewhere.txt").write_text("not a picture")
```
"""


def test_render_copies_pictures_prunes_stale_ones_and_writes_nothing_else(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text(PAGE, encoding="utf-8")
    out = tmp_path / "images"
    out.mkdir()
    (out / "stale.svg").write_text("<svg/>")
    monkeypatch.chdir(tmp_path)
    assert _make_images_module().render(out, pages=[page]) == ["one.svg"]
    assert sorted(p.name for p in out.iterdir()) == ["one.svg"]  # stale.svg is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "page.md"]
    assert Path.cwd() == tmp_path


def test_a_failing_block_fails_the_render(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python\nassert 1 + 1 == 3\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError):
        _make_images_module().render(tmp_path / "images", pages=[page])


def test_regenerating_makes_exactly_the_committed_images(tmp_path):
    out = tmp_path / "pictures"
    done = subprocess.run(  # the script as a maintainer runs it, from another directory
        [sys.executable, str(DOCS / "make_images.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    committed = sorted(p.name for p in IMAGES.iterdir() if p.is_file())
    made = sorted(p.name for p in out.iterdir())
    assert made == committed, "run `.venv/bin/python docs/make_images.py`, commit docs/images/"
    assert f"{len(committed)} pictures in" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pictures"]  # nothing else written
    for name in made:
        head = (out / name).read_bytes()[:400]
        if name.endswith(".svg"):
            assert b"<svg" in head, name
        elif name.endswith(".png"):
            assert head.startswith(b"\x89PNG"), name
