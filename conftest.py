"""pytest, at the root: the doctests of an engine module compiled in place (its ``.so`` beside
its ``.py``) are collected from the plain copy that ``make test`` runs second, since the
compiled module, not the ``.py`` file, is what ``import`` finds here."""

from pathlib import Path

_ENGINE = Path(__file__).parent / "chainrule" / "engine"
collect_ignore = [
    str(source) for source in _ENGINE.glob("*.py") if any(_ENGINE.glob(f"{source.stem}.*.so"))
]
