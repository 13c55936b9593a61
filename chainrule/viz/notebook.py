"""The graph in a notebook (``Graph._repr_html_``): the interactive page, inline.

The page of :func:`~chainrule.viz.html_page.graph_html` is a whole document with its own
styles, scripts and keyboard handling. Put straight into a notebook's output it would restyle
the notebook and fight it for the arrow keys, so it goes into an ``<iframe srcdoc="...">``:
a document of its own, its text escaped once more to sit inside the attribute. The frame is
sandboxed to run scripts only (no access to the notebook, no forms, no pop-ups, no
navigation of the notebook's window); no widget library is needed.
"""

from __future__ import annotations

import html
from typing import Any

from .html_page import graph_html

__all__ = ["graph_frame"]

HEIGHT = 640  # pixels: the page fits its picture to the frame's width and scrolls its panel


def graph_frame(graph: Any, height: int = HEIGHT, collapse: bool | None = None) -> str:
    """The interactive page of ``graph`` inside a sandboxed ``<iframe>``, as HTML to show in a
    notebook (like :func:`~chainrule.viz.html_page.graph_html`, it runs the backward pass's
    step-by-step record if none was taken, without touching any ``.grad``).

    >>> import chainrule as cr
    >>> x = cr.tensor(3.0, requires_grad=True, name="x")
    >>> frame = graph_frame(cr.graph(cr.tanh(x * x)))
    >>> frame.startswith("<iframe") and "<script" not in frame  # (the page's are escaped)
    True
    """
    if height < 100:
        raise ValueError(f"graph_frame: height must be at least 100 pixels, got {height}")
    page = graph_html(graph, collapse=collapse)
    title = f"the backward pass of {graph.sink.name}"
    return (
        f'<iframe class="chainrule-graph-frame" title="{html.escape(title, quote=True)}" '
        f'sandbox="allow-scripts" srcdoc="{html.escape(page, quote=True)}" '
        f'style="width: 100%; height: {int(height)}px; border: 1px solid #ddd; '
        f'border-radius: 3px"></iframe>'
    )
