"""How a Dataset shows itself in a notebook (``Dataset._repr_html_``): its size, the shape
and type of its features and targets, its classes (with how many samples each has), and its
first few rows, as plain HTML with escaped text (built like a Tensor's display,
:mod:`chainrule.engine.display`). Wide rows show their first :data:`MAX_COLUMNS` features."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine.display import array_text, escape, shape_text, table

__all__ = ["dataset_html"]

ROWS = 5
MAX_COLUMNS = 8


def _number(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)


def _classes(d: Any) -> str:
    """'3: a (40), b (35), c (25)': the classes, named where the data gave names, with their
    counts."""
    if d.n_classes is None:
        return "none (regression)"
    y = np.asarray(d.y).reshape(-1)
    counts = (
        np.bincount(y.astype(np.int64), minlength=d.n_classes)
        if y.size and np.issubdtype(y.dtype, np.integer) and y.min() >= 0
        else None
    )
    parts = []
    for k in range(min(d.n_classes, 20)):
        name = d.labels[k] if d.labels is not None and k < len(d.labels) else str(k)
        parts.append(name if counts is None or k >= len(counts) else f"{name} ({counts[k]})")
    if d.n_classes > 20:
        parts.append("…")
    return f"{d.n_classes}: " + ", ".join(parts)


def dataset_html(d: Any) -> str:
    """The notebook display of Dataset ``d``.

    >>> import chainrule as cr
    >>> page = dataset_html(cr.data.make_moons(100))
    >>> "100 samples" in page and "(100, 2)" in page
    True
    """
    X = np.asarray(d.X)
    y = np.asarray(d.y)
    summary = [
        ["samples", escape(f"{len(d):,}")],
        ["features", escape(f"X {shape_text(X.shape)} {X.dtype}")],
        ["targets", escape(f"y {shape_text(y.shape)} {y.dtype}")],
        ["classes", escape(_classes(d))],
    ]
    if d.feature_names:
        names = ", ".join(d.feature_names[:MAX_COLUMNS])
        more = len(d.feature_names) - MAX_COLUMNS
        summary.append(
            ["feature names", escape(names + (f", … ({more} more)" if more > 0 else ""))]
        )
    flat = X.reshape(len(X), -1)
    width = flat.shape[1] if flat.ndim == 2 else 0
    shown = min(width, MAX_COLUMNS)
    if d.feature_names and len(d.feature_names) >= shown and X.ndim == 2:
        header = [str(n) for n in d.feature_names[:shown]]
    else:
        header = [f"x{j}" for j in range(shown)]
    header = ["row", *header] + (["…"] if width > shown else []) + ["y"]
    rows = []
    for i in range(min(ROWS, len(d))):
        cells = [escape(_number(v)) for v in flat[i, :shown].tolist()]
        if width > shown:
            cells.append("…")
        target = y[i]
        text = _number(target.item()) if target.ndim == 0 else array_text(target, 80)
        k = target.item() if target.ndim == 0 else None
        if d.labels is not None and isinstance(k, (int, np.integer)) and 0 <= k < len(d.labels):
            text += f" ({d.labels[k]})"
        cells.append(escape(text))
        rows.append([str(i), *cells])
    title = f"Dataset {d.name!r}: {len(d):,} samples"
    first = f"the first {len(rows)} rows" + (" (features flattened)" if X.ndim > 2 else "")
    return table(title, summary) + table(first, rows, header)
