"""Regenerate the pictures of the docs, ``docs/images/*``, by running the docs' code blocks.

The pictures on the docs pages are made by the pages' own code: a block that draws writes its
picture to ``images/NAME`` in the current directory, and the page shows ``images/NAME``. This
script runs the ```python blocks of every ``docs/*.md`` page exactly as ``tests/test_docs.py``
does (same extraction, one namespace per page, in order), in a fresh temporary directory, then
copies what appeared under ``images/`` there into the output directory (``docs/images`` by
default) and deletes files there that no page makes any more, so the folder is exactly the set
of pictures the pages make.

    .venv/bin/python docs/make_images.py            # rewrite docs/images/
    .venv/bin/python docs/make_images.py --out DIR  # write them somewhere else

Matplotlib's SVGs are made reproducible (a fixed date and id salt), and graph pictures use
chainrule's built-in layout unless Graphviz's ``dot`` is installed. The cost plot of (e) is a
real measurement, so it differs from run to run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
IMAGES = DOCS / "images"

__all__ = ["render", "main", "DOCS", "IMAGES"]


def _doc_blocks_module():
    """tests/test_docs.py, so that a block here is exactly a block there."""
    name = "_chainrule_test_docs"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "test_docs.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it: its dataclasses look it up
        spec.loader.exec_module(module)
    return sys.modules[name]


@contextlib.contextmanager
def _reproducible(workdir: Path) -> Iterator[None]:
    """Run in ``workdir`` with the Agg backend, fixed SVG metadata, and the caller's
    directory, environment and NumPy/warnings state restored afterwards."""
    import matplotlib

    saved_env = {k: os.environ.get(k) for k in ("MPLBACKEND", "SOURCE_DATE_EPOCH")}
    cwd = Path.cwd()
    os.environ["MPLBACKEND"] = "Agg"
    os.environ["SOURCE_DATE_EPOCH"] = "0"  # matplotlib's SVG date
    try:
        os.chdir(workdir)
        with (
            matplotlib.rc_context({"svg.hashsalt": "chainrule-docs"}),
            warnings.catch_warnings(),
            np.errstate(),
        ):
            yield
    finally:
        os.chdir(cwd)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def render(out: Path = IMAGES, pages: list[Path] | None = None, prune: bool = True) -> list[str]:
    """Run the pages' blocks and write their pictures to ``out``; return the file names.

    ``pages`` defaults to every ``docs/*.md``. With ``prune``, files directly in ``out`` that
    no page made are deleted. Raises if a block fails (naming the page and the line).
    """
    docs = _doc_blocks_module()
    pages = sorted(DOCS.glob("*.md")) if pages is None else pages
    out = Path(out)
    made: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="chainrule-docs-") as tmp:
        for page in pages:
            workdir = Path(tmp) / page.stem
            workdir.mkdir()
            source = str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)
            blocks = docs.extract_blocks(page.read_text(encoding="utf-8"), source)
            namespace: dict[str, object] = {"__name__": "__docs__"}
            with _reproducible(workdir), contextlib.redirect_stdout(io.StringIO()):
                for block in blocks:
                    if block.runs:
                        code = "\n" * block.line + block.code  # tracebacks give the .md line
                        exec(compile(code, source, "exec"), namespace)
            images = workdir / "images"
            for path in sorted(images.iterdir()) if images.is_dir() else []:
                if path.name in made:
                    raise RuntimeError(f"{path.name} is made by both {made[path.name]} and {page}")
                made[path.name] = page
        out.mkdir(parents=True, exist_ok=True)
        for name, page in made.items():
            shutil.copyfile(Path(tmp) / page.stem / "images" / name, out / name)
    if prune:
        for stale in out.iterdir():
            if stale.is_file() and stale.name not in made:
                stale.unlink()
    return sorted(made)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=IMAGES, help="where to write (docs/images)")
    args = parser.parse_args(argv)
    names = render(args.out)
    shown = args.out.resolve()
    with contextlib.suppress(ValueError):
        shown = shown.relative_to(Path.cwd())
    print(f"{len(names)} pictures in {shown}/: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
