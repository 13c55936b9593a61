"""The code in the docs runs: every fenced ```python block of README.md and docs/*.md.

One test case per Markdown file. The file's blocks run in order, in one namespace shared by
that file only (so a later block may use names an earlier one defined, as a reader would
type them into one session), with the working directory set to a fresh temporary folder.
Any exception, a failed ``assert`` included, fails the case and names the file, the line
where the block starts, and the block.

Conventions for writers:

- A block fenced as ```python is run. Put ``assert`` lines in it to state what the output is;
  a block that only prints checks only that it runs.
- A block fenced as ```python no-run is shown but not run, by design: for snippets that need
  a GPU, the network, a long training run, or that are deliberately incomplete.
- Any other fence (```bash, ```text, ```py, unlabelled) is not Python to run.
- A fence is closed by a line of at least as many backticks as opened it; a block left open
  fails the file's case, since it would swallow the rest of the page when rendered.
"""

from __future__ import annotations

import re
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [p for p in [ROOT / "README.md"] if p.exists()] + sorted((ROOT / "docs").glob("*.md"))

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})(?P<info>[^`]*)$")


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    info: str  # the info string: "python", "python no-run", "bash", ...
    code: str

    @property
    def runs(self) -> bool:
        words = self.info.split()
        return bool(words) and words[0] == "python" and "no-run" not in words[1:]


def extract_blocks(text: str, source: str = "<markdown>") -> list[Block]:
    """Every fenced code block of ``text``, in order (runnable or not)."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, ticks = len(opening["indent"]), len(opening["ticks"])
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = _FENCE.match(lines[j])
            if closing and len(closing["ticks"]) >= ticks and not closing["info"].strip():
                break
            body.append(lines[j][indent:] if lines[j][:indent].isspace() else lines[j])
            j += 1
        else:
            raise AssertionError(f"{source}:{i + 1}: a ``` fence is opened but never closed")
        blocks.append(Block(line=i + 1, info=opening["info"].strip(), code="\n".join(body)))
        i = j + 1
    return blocks


def run_blocks(blocks: list[Block], source: str) -> int:
    """Run the runnable blocks in order in one namespace; return how many ran."""
    namespace: dict[str, object] = {"__name__": "__docs__"}
    ran = 0
    for block in blocks:
        if not block.runs:
            continue
        # Pad with blank lines so tracebacks give the line number in the Markdown file.
        code = "\n" * block.line + block.code
        try:
            exec(compile(code, source, "exec"), namespace)
        except Exception:
            pytest.fail(
                f"{source}: the ```python block at line {block.line} failed:\n\n"
                f"{block.code}\n\n{traceback.format_exc()}",
                pytrace=False,
            )
        ran += 1
    return ran


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_code_blocks_run(path, tmp_path, monkeypatch):
    source = str(path.relative_to(ROOT))
    blocks = extract_blocks(path.read_text(encoding="utf-8"), source)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # A block may change global state (warning filters, NumPy error handling); undo it.
    with warnings.catch_warnings(), np.errstate():
        ran = run_blocks(blocks, source)
    assert ran == sum(b.runs for b in blocks)


def test_readme_is_checked():
    assert ROOT / "README.md" in DOC_FILES


def test_conventions_page_has_code_that_runs():
    path = ROOT / "docs" / "conventions.md"
    assert path in DOC_FILES
    blocks = [b for b in extract_blocks(path.read_text(encoding="utf-8")) if b.runs]
    assert len(blocks) >= 2
    assert any("cr.ops.table()" in b.code for b in blocks)


SAMPLE = """\
Text.

```python
x = 1
```

```python no-run
raise RuntimeError("never run")
```

- a list item with an indented block:

  ```python
  y = x + 1
  ```

````markdown
```python
z = "inside a longer fence: not a block of its own"
```
````

```bash
make demo
```
"""


def test_extractor_finds_blocks_and_honours_no_run():
    blocks = extract_blocks(SAMPLE)
    assert [b.info for b in blocks] == ["python", "python no-run", "python", "markdown", "bash"]
    assert [b.runs for b in blocks] == [True, False, True, False, False]
    assert blocks[2].code == "y = x + 1"
    assert blocks[0].line == 3
    assert run_blocks(blocks, "<sample>") == 2  # the no-run block would raise if it ran


def test_a_failing_block_fails_and_names_its_line():
    blocks = extract_blocks("intro\n\n```python\nassert 1 + 1 == 3\n```\n")
    with pytest.raises(pytest.fail.Exception, match=r"line 3"):
        run_blocks(blocks, "<sample>")


def test_an_unclosed_fence_fails():
    with pytest.raises(AssertionError, match="never closed"):
        extract_blocks("```python\nx = 1\n")


# -- docs/architecture.md: the walk from loss.backward() to .grad points at the right lines -----
ARCHITECTURE_LINES = {  # "file:line" as the page writes it -> what that line must hold
    "chainrule/engine/tensor_methods.py:63": "def __mul__",
    "chainrule/engine/op.py:110": "def __call__",
    "chainrule/engine/op.py:117": "return apply(self, args, params)",
    "chainrule/engine/op.py:198": "def apply(",
    "chainrule/engine/op.py:261": "out._op = op",
    "chainrule/engine/op.py:265": "out._seq = next_seq()",
    "chainrule/engine/tensor.py:356": "def backward(",
    "chainrule/engine/backward.py:76": "def backward(",
    "chainrule/engine/backward.py:439": "def _seed(",
    "chainrule/engine/backward.py:139": "def _run(",
    "chainrule/engine/backward.py:162": "heappop(heap)",
    "chainrule/engine/backward.py:203": "def _chain_rule(",
    "chainrule/engine/backward.py:262": "rule(g, out, *args",
    "chainrule/ops/elementwise.py:187": "dx=(lambda g, out, x: g * (1 - out * out),",
    "chainrule/engine/backward.py:241": "rules = op.vjps if create_graph else op.fast_vjps",
    "chainrule/engine/backward.py:272": "fit_to(c, a, op)",
    "chainrule/engine/backward.py:511": "def fit_to(",
    "chainrule/engine/backward.py:180": "pending[k] = _add(prev, c, owned)",
    "chainrule/engine/backward.py:178": "_enqueue(a, heap, sources)",
    "chainrule/engine/backward.py:184": "_free(t, husks)",
    "chainrule/engine/backward.py:185": "for t in sources:",
    "chainrule/engine/backward.py:187": "out.deliver(t, g)",
    "chainrule/engine/backward.py:396": "def deliver(",
    "chainrule/engine/backward.py:404": "def _accumulate(",
    "chainrule/engine/backward.py:418": "t._grad = value",
}


def test_architecture_walk_points_at_the_code_it_names():
    page = (ROOT / "docs" / "architecture.md").read_text()
    cited = set()
    for path, first, _last in re.findall(r"`(chainrule/[\w/]+\.py):(\d+)(?:-(\d+))?`", page):
        cited.add(f"{path}:{first}")
    for short in re.findall(r"`:(\d+)`", page):  # `:NNN` continues the file cited before it
        assert any(key.endswith(f":{short}") for key in ARCHITECTURE_LINES), short
    assert cited <= set(ARCHITECTURE_LINES), sorted(cited - set(ARCHITECTURE_LINES))
    moved = []
    for ref, expected in ARCHITECTURE_LINES.items():
        path, line = ref.rsplit(":", 1)
        lines = (ROOT / path).read_text().splitlines()
        if expected not in lines[int(line) - 1]:
            now = [i + 1 for i, text in enumerate(lines) if expected in text]
            moved.append(f"{ref} ({expected!r}) is now at line {now or 'none'}")
    # after an edit of the engine: renumber these in the page and in ARCHITECTURE_LINES
    assert not moved, "docs/architecture.md cites lines that moved:\n" + "\n".join(moved)


def test_reliability_cites_tests_that_exist():
    # every `tests/file.py::name` (a * for a family of names) in docs/reliability.md is a test
    page = (ROOT / "docs" / "reliability.md").read_text()
    cited = re.findall(r"`(tests/[\w/]+\.py)(?:::([\w*]+))?`", page)
    assert len(cited) > 30
    for path, name in cited:
        source = (ROOT / path).read_text()
        if name:
            pattern = "def " + re.escape(name).replace(r"\*", r"\w*") + r"\b"
            assert re.search(pattern, source), f"{path}::{name}"
    # and the names cited after a file without repeating it
    for path_and_rest in re.findall(r"`(tests/[\w/]+\.py)::\w+`((?:, `\w+`)+)", page):
        source = (ROOT / path_and_rest[0]).read_text()
        for name in re.findall(r"`(\w+)`", path_and_rest[1]):
            assert f"def {name}(" in source, f"{path_and_rest[0]}::{name}"
