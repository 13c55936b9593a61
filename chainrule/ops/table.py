"""``cr.ops.table()``: every registered op with its derivative formula and what it supports."""

from __future__ import annotations

from ..engine.registry import COMPOSED, NOT_IMPLEMENTED, OPS, numpy_functions

__all__ = ["table", "Table"]


class Table(list):  # type: ignore[type-arg]
    """The rows of :func:`table`; prints as an aligned text table."""

    def __str__(self) -> str:
        head = ("op", "family", "vjp", "jvp", "2nd", "derivative", "kink convention")
        rows = [head] + [
            (
                r["name"],
                r["family"],
                _yes(r["vjp"]),
                _yes(r["jvp"]),
                _yes(r["second_order"]),
                r["formula"] or "-",
                r["kink"] or "",
            )
            for r in self
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(head) - 1)]
        out = []
        for row in rows:
            cells = [c.ljust(w) for c, w in zip(row[:-1], widths)] + [row[-1]]
            out.append("  ".join(cells).rstrip())
        return "\n".join(out)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def table() -> Table:
    """Every registered op with its derivative formula and what it supports, then every
    function composed from ops (family ``"composed"``: NumPy's ``trace``, ``sort``, ``norm``,
    ...), whose derivative follows from their rules.

    Each row is a dict: ``name``, ``family``, ``formula``, ``kink``, ``vjp``, ``jvp``,
    ``second_order``, ``numpy`` (the NumPy and SciPy functions that dispatch to it).

    >>> import chainrule as cr
    >>> row = next(r for r in cr.ops.table() if r["name"] == "tanh")
    >>> row["formula"], row["vjp"], row["jvp"], row["second_order"]
    ('d tanh(x)/dx = 1 - tanh(x)^2', True, True, True)
    """
    rows = Table()
    for op in OPS.values():
        rows.append(
            {
                "name": op.name,
                "family": op.family,
                "formula": op.formula,
                "kink": op.kink,
                "vjp": op.differentiable and all(r is not NOT_IMPLEMENTED for r in op.vjps),
                "jvp": op.differentiable
                and all(r is not NOT_IMPLEMENTED for r in op.jvps)
                and len(op.jvps) == len(op.vjps),
                "second_order": op.second_order,
                "numpy": op.numpy,
            }
        )
    by_function: dict[int, list[str]] = {}
    for name, fn in numpy_functions().items():
        by_function.setdefault(id(fn), []).append(name)
    for name, (fn, op) in COMPOSED.items():
        summary = " ".join((fn.__doc__ or "").strip().split("\n\n")[0].split())
        rows.append(
            {
                "name": name,
                "family": "composed",
                "formula": f"composed of ops ({op.name}, ...): {summary}",
                "kink": None,
                "vjp": op.differentiable,
                "jvp": op.differentiable,
                "second_order": op.second_order,
                "numpy": tuple(by_function.get(id(fn), ())),
            }
        )
    return rows
