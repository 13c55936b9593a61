"""How a Module shows itself in a notebook (``Module._repr_html_``): its layers as a tree,
each with its type and settings, its own parameters' shapes, the number of parameters in it
and below it, and the norms of the gradients its parameters hold; the total at the foot.

Plain HTML with inline styles and escaped text, as :mod:`chainrule.engine.display` builds for
a Tensor. A model of thousands of layers lists its first :data:`MAX_ROWS`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backends import to_numpy
from ..engine.display import escape, shape_text, table

__all__ = ["module_html"]

MAX_ROWS = 200


def _grad_norm(p: Any) -> float | None:
    """The 2-norm of the gradient ``p`` holds; None without one, NaN for a lazy (Dask) one,
    which a display does not compute."""
    g = p._grad
    if g is None:
        return None
    data = getattr(g, "_data", g)
    if type(data).__module__.startswith("dask"):
        return math.nan
    return float(np.sqrt(np.sum(np.square(to_numpy(data), dtype=np.float64))))


def _norm_text(norm: float) -> str:
    return "lazy" if math.isnan(norm) else f"{norm:.4g}"


def module_html(module: Any) -> str:
    """The notebook display of ``module``: a table of its layers, nested by indentation.

    >>> import chainrule as cr
    >>> net = cr.nn.MLP([2, 3, 1], rng=0)
    >>> page = module_html(net)
    >>> "13" in page and "(3, 2)" in page  # 2*3 + 3 + 3*1 + 1 parameters; a weight's shape
    True
    """
    rows = []
    modules = list(module.named_modules())
    first_path: dict[int, str] = {}  # a parameter shared between layers is counted once
    for path, m in modules[:MAX_ROWS]:
        depth = path.count(".") + 1 if path else 0
        name = path.rsplit(".", 1)[-1] if path else "(model)"
        label = f'<span style="padding-left: {1.2 * depth:.1f}em">{escape(name)}</span>'
        settings = m.extra_repr()
        kind = f"<b>{escape(type(m).__name__)}</b>"
        if settings:
            kind += f" <span style='color: #555'>{escape(settings)}</span>"
        shapes, norms = [], []
        for pname, p in m._parameters.items():
            if p is None:
                continue
            where = f"{path}.{pname}" if path else pname
            line = f"{pname} {shape_text(tuple(p.shape))}"
            if id(p) in first_path and first_path[id(p)] != where:
                line += f" (shared with {first_path[id(p)]})"
            first_path.setdefault(id(p), where)
            shapes.append(escape(line))
            norm = _grad_norm(p)
            if norm is not None:
                norms.append(escape(f"{pname} {_norm_text(norm)}"))
        below = sum(p.size for p in m.parameters())
        rows.append([label, kind, "<br>".join(shapes), f"{below:,}", "<br>".join(norms) or "—"])
    if len(modules) > MAX_ROWS:
        more = len(modules) - MAX_ROWS
        rows.append(["…", escape(f"{more} more modules not listed"), "", "", ""])
    params = list(module.parameters())
    found = [n for n in (_grad_norm(p) for p in params) if n is not None]
    if found:
        total_norm = _norm_text(math.sqrt(sum(n * n for n in found)))
        with_grad = f"{total_norm} ({len(found)} of {len(params)} parameters have gradients)"
    else:
        with_grad = "no gradients yet"
    total = sum(p.size for p in params)
    rows.append(["total", "", "", f"<b>{total:,}</b>", escape(with_grad)])
    header = ["layer", "type", "own parameters", "parameters", "gradient norm"]
    return table(f"{type(module).__name__}: {total:,} parameters", rows, header)
