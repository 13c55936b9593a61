"""How a Tensor shows itself in a notebook: a small HTML table (``Tensor._repr_html_``).

Jupyter calls ``_repr_html_`` and puts what it returns in the page, so everything here is
plain HTML with inline styles (no stylesheet that could restyle the notebook, no script, no
external asset), and every piece of text that comes from the user (names, values, the
parameters of an op) goes through :func:`escape`. Values are printed as NumPy prints them,
summarised past a few hundred entries, and cut to :data:`MAX_CHARS` characters: a tensor of a
million entries gives a few kilobytes of HTML.

The helpers (:func:`table`, :func:`array_block`) serve the layers above too: a Module's and a
Dataset's display are built from the same pieces.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from ..backends import to_numpy
from ..backends.batched import Batched
from .registry import SAVED

__all__ = ["escape", "table", "array_block", "array_text", "shape_text", "tensor_html"]

MAX_CHARS = 2000  # of a printed array (NumPy's summary of a 20-dimensional array is long)
_THRESHOLD = 100  # entries past which NumPy prints the first and last few of each axis

_TABLE = (
    'style="border-collapse: collapse; font-family: sans-serif; font-size: 12px; '
    'text-align: left; margin: 2px 0"'
)
_CELL = 'style="border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top"'
_HEAD = (
    'style="border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; '
    'background: #f3f3f6; font-weight: 600"'
)
_PRE = 'style="margin: 0; font-size: 11px; line-height: 1.3; white-space: pre; text-align: left"'


def escape(value: Any) -> str:
    """``str(value)`` made safe as HTML text or inside a quoted attribute."""
    return html.escape(str(value), quote=True)


def table(title: str, rows: list[list[str]], header: list[str] | None = None) -> str:
    """A table under a caption: each row a list of cells, HTML already (the first one a
    heading cell). ``title`` and ``header`` are text, escaped here."""
    out = [f'<table class="chainrule-repr" {_TABLE}>']
    out.append(f'<caption style="text-align: left; font-weight: 600">{escape(title)}</caption>')
    if header:
        out.append("<tr>" + "".join(f"<th {_HEAD}>{escape(h)}</th>" for h in header) + "</tr>")
    for first, *cells in rows:
        tds = "".join(f"<td {_CELL}>{c}</td>" for c in cells)
        out.append(f"<tr><th {_HEAD}>{first}</th>{tds}</tr>")
    out.append("</table>")
    return "".join(out)


def shape_text(shape: tuple[int, ...]) -> str:
    """``(3, 2)``; ``()`` for a scalar."""
    return "(" + ", ".join(str(int(d)) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def array_text(value: Any, max_chars: int = MAX_CHARS) -> str:
    """The array as NumPy prints it, summarised (the first and last few entries of each long
    axis) past a hundred entries and cut to ``max_chars`` characters. A lazy (Dask) array is
    not computed for a picture: it is described."""
    module = type(value).__module__
    if module.startswith("dask"):
        chunks = getattr(value, "numblocks", ())
        return (
            f"lazy Dask array in {int(np.prod(chunks)) if chunks else 1} chunk(s), not computed "
            "(cr.compute(t) or t.numpy() computes it)"
        )
    if isinstance(value, Batched):  # inside cr.vmap: no one value to print
        return repr(value)
    array = to_numpy(value)
    with np.printoptions(threshold=_THRESHOLD, edgeitems=3, linewidth=100):
        text = np.array2string(array, separator=", ")
    if len(text) > max_chars:
        text = text[:max_chars] + f"\n… (cut at {max_chars} characters)"
    return text


def array_block(value: Any, max_chars: int = MAX_CHARS) -> str:
    """:func:`array_text` as an escaped ``<pre>`` block."""
    return f"<pre {_PRE}>{escape(array_text(value, max_chars))}</pre>"


def _input_text(a: Any) -> str:
    """One input of an op, as text: a tensor's name (if any), shape and dtype, or a
    constant's value."""
    shape = getattr(a, "shape", None)
    if shape is None:
        return repr(a)
    name = getattr(a, "_name", None)
    kind = "tensor" if hasattr(a, "_rg") else type(a).__name__
    label = f"{kind} {name!r}" if name else kind
    return f"{label} {shape_text(tuple(shape))} {getattr(a, 'dtype', '')}".rstrip()


def tensor_html(t: Any) -> str:
    """The notebook display of Tensor ``t``: value, shape, dtype, gradient, requires_grad and
    the op that made it, with its inputs' shapes.

    >>> import chainrule as cr
    >>> x = cr.tensor([1.0, 2.0], requires_grad=True, name="x")
    >>> page = tensor_html(x * 3.0)
    >>> "multiply" in page and "(2,)" in page and "<script" not in page
    True
    """
    data = t._data
    freed = bool(getattr(t, "freed", False))
    rows = [
        ("value", "<i>freed by backward()</i>" if freed else array_block(data)),
        ("shape", escape(shape_text(tuple(data.shape)))),
        ("dtype", escape(data.dtype)),
        ("requires_grad", escape(bool(t._rg))),
    ]
    module = type(data).__module__.split(".")[0]
    if module != "numpy":
        rows.append(("array", escape(f"{module}.{type(data).__name__}")))
    if t._op is not None:
        node = t._node
        inputs = "<br>".join(escape(_input_text(a)) for a in node[1])
        params = {k: v for k, v in node[2].items() if k != SAVED}
        op = f"<b>{escape(t._op.name)}</b>"
        if params:
            op += " " + escape(", ".join(f"{k}={v!r}" for k, v in params.items()))
        rows.append(("made by", op))
        rows.append(("inputs", inputs or "<i>none</i>"))
    grad = t._grad
    if grad is not None:
        rows.append(("grad", array_block(getattr(grad, "_data", grad))))
    kind = type(t).__name__
    name = getattr(t, "_name", None)
    title = f"{kind} {name!r}" if name else kind
    return table(title, [[escape(label), cell] for label, cell in rows])
