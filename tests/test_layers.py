"""The packages import one way: backends <- engine <- ops <- transforms <- nn/optim/data/io <-
viz/teach <- cli. Every import in the package, at the top of a file or inside a function,
is read from the source and checked against that order."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "chainrule"
LAYERS = {
    "backends": 0,
    "engine": 1,
    "ops": 2,
    "transforms": 3,
    "nn": 4,
    "optim": 4,
    "data": 4,
    "io": 4,
    "viz": 5,
    "teach": 5,
    "cli": 6,
}
ROOT = 6  # a name of chainrule/__init__.py (the user API, which imports everything): cli only
FILES = sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE)


def imported_packages(source: str, module: list[str], is_package: bool) -> list[tuple[int, str]]:
    """(line, what it names right under chainrule) for every import of chainrule code in the
    ``source`` of ``module`` (its dotted name as a list, e.g. ["chainrule", "engine", "op"])."""
    package = module if is_package else module[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        targets: list[list[str]] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = base + (node.module.split(".") if node.module else [])
            else:
                target = (node.module or "").split(".")
            # `from chainrule import x`, `from .. import x`: each x is named under chainrule
            names = [[alias.name] for alias in node.names] if len(target) == 1 else [[]]
            targets += [target + name for name in names]
        elif isinstance(node, ast.Import):
            targets += [alias.name.split(".") for alias in node.names]
        for target in targets:
            if target[0] == "chainrule" and len(target) > 1:
                found.append((node.lineno, target[1]))
    return found


def _layer(name: str) -> int:
    return LAYERS.get(name, ROOT)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path: Path) -> None:
    own = path.relative_to(PACKAGE).parts[0]
    assert own in LAYERS, f"{own}/ is not in the layer order: add it to LAYERS"
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    module = parts[:-1] if is_package else parts
    for line, name in imported_packages(path.read_text(), module, is_package):
        assert _layer(name) <= LAYERS[own], (
            f"chainrule/{path.relative_to(PACKAGE)}:{line} imports chainrule.{name}, a higher "
            f"layer than {own}/ ({' <- '.join(LAYERS)})"
        )


def test_the_check_sees_upward_imports_of_every_form() -> None:
    source = (
        "from ..ops import tanh\n"
        "import chainrule.viz.drawing\n"
        "from chainrule import nn\n"
        "def f():\n"
        "    from .. import cli\n"
        "    from .. import __version__\n"
        "from .tensor import Tensor\n"
    )
    found = dict(
        (name, line)
        for line, name in imported_packages(source, ["chainrule", "engine", "fake"], False)
    )
    assert found == {"ops": 1, "viz": 2, "nn": 3, "cli": 5, "__version__": 6, "engine": 7}
    upward = {name for name in found if _layer(name) > LAYERS["engine"]}
    assert upward == {"ops", "viz", "nn", "cli", "__version__"}
