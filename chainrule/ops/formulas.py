"""The op sheet's formulas with the user's names in them.

Each rule of the sheet states its derivative as text in the names of the op's own inputs
(``"d(x @ y)/dx = g @ y^T"``: ``x``, ``y`` the inputs, ``g`` the gradient arriving from above,
``out`` the result). Every surface that shows a derivative (``chainrule explain``'s report,
the step-through page) puts the names of the nodes in their place with :func:`fill`, and writes
the differential of a sub-expression with :func:`differential`, so ``d A / d B`` reads the same
everywhere.

>>> fill("g @ y^T", {"g": "g", "x": "W1", "y": "relu(W1 @ x + b1)"})
'g @ relu(W1 @ x + b1)^T'
>>> fill("2 * x^(2-1)", {"x": "W @ v + b"})
'2 * (W @ v + b)^(2-1)'
>>> differential("W1 @ x + b"), differential("relu(z)"), differential("h")
('d(W1 @ x + b)', 'd relu(z)', 'dh')
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["bracket", "differential", "fill", "split", "named_rule", "gradient_legend"]


_NOTE = re.compile(r"\s{2,}(\(.*\))\s*$")  # a trailing remark: "  (Phi, phi: normal cdf and pdf)"


def bracket(text: str) -> str:
    """``text`` as one operand: bare when it is a name, a number that is not negative, a call
    or already parenthesised as a whole; else in parentheses.

    >>> bracket("W1 @ x + b"), bracket("sum((y - t) ** 2)"), bracket("-1"), bracket("x_1")
    ('(W1 @ x + b)', 'sum((y - t) ** 2)', '(-1)', 'x_1')
    """
    text = text.strip()
    if _enclosed(text):
        return text
    try:
        node: Any = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        # not Python ("x^T", "power(·, 4)"): bare only when a single word
        return text if re.fullmatch(r"[\w.·]+", text) else f"({text})"
    if isinstance(node, (ast.Name, ast.Call, ast.Attribute, ast.Subscript)):
        return text
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return text if node.value >= 0 else f"({text})"
    return f"({text})"


def _enclosed(text: str) -> bool:
    """Whether ``text`` is one group ``(...)`` from its first character to its last."""
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for k, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and k < len(text) - 1:
            return False
    return True


def differential(text: str) -> str:
    """The differential of a node, written after its name: ``dx``, ``d relu(z)``,
    ``d(W1 @ x + b)`` (a compound expression always in parentheses)."""
    b = bracket(text)
    return f"d{b}" if b.isidentifier() or _enclosed(b) else f"d {b}"


def fill(text: str, names: Mapping[str, str]) -> str:
    """Put each name in place of the formula's placeholder (``x``, ``y``, ``g``, ``out``, a
    parameter), in one pass (a name that is itself a placeholder is not replaced again), in
    parentheses where it is compound and not alone between ``(`` / ``,`` and ``)`` / ``,``.
    ``x_i``, an entry of ``x``, becomes the name's entry."""
    if not names:
        return text
    words = "|".join(re.escape(k) for k in sorted(names, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w.])({words})(_i)?(?![\w(])")

    def put(match: re.Match[str]) -> str:
        name = names[match.group(1)]
        before = text[: match.start()].rstrip()[-1:]
        after = text[match.end() :].lstrip()[:1]
        alone = before in ("(", ",") and after in (")", ",") and not match.group(2)
        return (name if alone else bracket(name)) + (match.group(2) or "")

    return pattern.sub(put, text)


def gradient_legend(sink: str) -> str:
    """What ``g`` stands for in a formula, in words, for a pass from ``sink``.

    >>> gradient_legend("L")
    'g: the gradient arriving from above, dL/d(this node)'
    """
    return f"g: the gradient arriving from above, {differential(sink)}/d(this node)"


def split(clause: str) -> tuple[str, str, str]:
    """A rule's formula -> (its left-hand side, its right-hand side, a trailing remark);
    ``("", clause, "")`` when it is not written as ``lhs = rhs`` (or ``lhs: rhs``)."""
    for sep in (" = ", ": "):
        lhs, found, rhs = clause.partition(sep)
        if found and lhs.lstrip().startswith("d"):
            note = _NOTE.search(rhs)
            return lhs.strip(), _NOTE.sub("", rhs).strip(), note.group(1) if note else ""
    return "", clause, ""


def named_rule(op: Any, i: int, out: str, inputs: Sequence[str | None], grad: str = "g") -> str:
    """The derivative of ``op``'s result ``out`` with respect to its input ``i``, as the op
    sheet states it, with the nodes' names in place of the sheet's: ``inputs`` gives the name
    of each input (None for one that is not known), ``grad`` the name to give ``g``.

    >>> from chainrule.ops import OPS
    >>> named_rule(OPS["matmul"], 0, "W1 @ x", ["W1", "x"])
    'd(W1 @ x)/dW1 = g @ x^T'
    """
    clause = op.formulas[i] if not op.variadic and i < len(op.formulas) else ""
    if not clause:
        return op.formula or ""
    lhs, rhs, note = split(clause)
    names = {p: n for p, n in zip(op.inputs, inputs) if n is not None}
    names.update({"out": out, "g": grad})
    me = inputs[i] if i < len(inputs) else None
    if not lhs or me is None:
        return fill(clause, names)
    return f"{differential(out)}/{differential(me)} = {fill(rhs, names)}" + (
        f"  {note}" if note else ""
    )
