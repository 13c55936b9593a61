"""Pictures for learning backprop: the nonlinearities with their derivatives, and the cost
of numerical against analytic gradients (:func:`plot_costs`, behind ``CostReport.plot``).

Each activation is elementwise, so one backward pass of ``sum(phi(x))`` over a grid of points
gives ``phi'(x)`` at every point at once: the derivative curves drawn here are chainrule's own
backward pass, not the closed forms (the tests compare the two). At a kink the library's
convention is drawn as a filled dot (``relu'(0) = 0``, ``leaky_relu'(0) = negative_slope``) and
the other one-sided limit as an open circle, the way a lecture slide draws a jump.

matplotlib is optional (``pip install 'chainrule[train]'``); figures use its object-oriented API
and the Agg canvas, so nothing global (the pyplot backend) is touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import ops as F
from ..engine.tensor import Tensor
from ..io import write_atomic

if TYPE_CHECKING:
    from ..teach.costs import CostReport

__all__ = [
    "ACTIVATIONS",
    "ActivationCurve",
    "activation_curves",
    "activation_figure",
    "plot_activations",
    "cost_figure",
    "plot_costs",
]

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
_FORMATS = (".png", ".svg")


@dataclass(frozen=True)
class ActivationCurve:
    """One nonlinearity on a grid: its values and its derivative by backprop.

    ``kinks`` lists the points where the derivative jumps; ``kink_note`` says which value the
    library gives there.
    """

    name: str
    title: str
    x: np.ndarray
    value: np.ndarray
    derivative: np.ndarray
    formula: str
    kinks: tuple[float, ...] = ()
    kink_note: str = ""


def _check_slope(negative_slope: float) -> float:
    try:
        slope = float(negative_slope)
    except (TypeError, ValueError):
        raise ValueError(
            f"negative_slope must be a number between 0 and 1, got {negative_slope!r}"
        ) from None
    # The handout's leaky ReLU is max(x, a x); it equals "x if x > 0 else a x" only for a <= 1.
    if not (math.isfinite(slope) and 0.0 <= slope <= 1.0):
        raise ValueError(
            f"negative_slope must be between 0 and 1 (leaky ReLU is max(x, a x)), got {slope!r}"
        )
    return slope


def _grid(xs: Any) -> np.ndarray:
    grid = np.asarray(xs, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError(f"xs must be a non-empty 1-D grid of points, got shape {grid.shape}")
    if not np.isfinite(grid).all():
        raise ValueError("xs must be finite")
    return grid


def _by_backprop(fn: Callable[[Tensor], Tensor], grid: np.ndarray) -> tuple[Any, Any]:
    x = Tensor(grid.copy(), requires_grad=True)
    out = fn(x)
    F.sum(out).backward()
    assert x.grad is not None  # every activation here uses its input
    return np.asarray(out.numpy(), dtype=np.float64), np.asarray(x.grad.numpy(), np.float64)


def activation_curves(xs: Any, negative_slope: float = 0.1) -> dict[str, ActivationCurve]:
    """Sigmoid, tanh, ReLU and leaky ReLU on the grid ``xs``, with derivatives by backprop.

    Parameters
    ----------
    xs : array_like
        1-D grid of points (float64). Include 0 to see the conventions at the kinks.
    negative_slope : float
        The leaky ReLU's slope for x <= 0, between 0 and 1; 0.1 as in the handout.

    Returns
    -------
    dict mapping ``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"leaky_relu"`` to
    :class:`ActivationCurve` (``value``, ``derivative``, ``formula``, ``kinks``).

    Examples
    --------
    >>> curves = activation_curves([-1.0, 0.0, 2.0])
    >>> curves["relu"].derivative.tolist()          # relu'(0) = 0
    [0.0, 0.0, 1.0]
    >>> curves["leaky_relu"].derivative.tolist()    # slope 0.1 at and below 0
    [0.1, 0.1, 1.0]
    >>> float(curves["sigmoid"].derivative[1])      # sigma(0) (1 - sigma(0))
    0.25
    """
    slope = _check_slope(negative_slope)
    grid = _grid(xs)
    specs: list[tuple[str, str, Callable[[Tensor], Tensor], str, tuple[float, ...], str]] = [
        ("sigmoid", "sigmoid σ", F.sigmoid, "σ'(x) = σ(x)(1 − σ(x))", (), ""),
        ("tanh", "tanh", F.tanh, "tanh'(x) = 1 − tanh²(x)", (), ""),
        (
            "relu",
            "ReLU max(x, 0)",
            F.relu,
            "relu'(x) = 1 if x > 0 else 0",
            (0.0,),
            "relu'(0) = 0",
        ),
        (
            "leaky_relu",
            f"leaky ReLU max(x, {slope:g}x)",
            lambda t: F.leaky_relu(t, negative_slope=slope),
            f"leaky'(x) = 1 if x > 0 else {slope:g}",
            (0.0,),
            f"leaky'(0) = {slope:g}",
        ),
    ]
    curves = {}
    for name, title, fn, formula, kinks, note in specs:
        value, derivative = _by_backprop(fn, grid)
        curves[name] = ActivationCurve(
            name, title, grid.copy(), value, derivative, formula, kinks, note
        )
    return curves


def _default_grid() -> np.ndarray:
    return np.arange(-400, 401) / 100.0  # -4 to 4 in steps of 0.01, with 0.0 exactly


def _figure(what: str, figsize: tuple[float, float]) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            f"plotting {what} needs matplotlib: pip install 'chainrule[train]'"
        ) from err
    fig = Figure(figsize=figsize, dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _format(path: str | Path) -> tuple[Path, str]:
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in _FORMATS:
        raise ValueError(
            f"cannot tell the picture format from {str(out)!r}: "
            f"end the file name with {' or '.join(_FORMATS)}"
        )
    return out, suffix[1:]


def _save(fig: Any, out: Path, fmt: str) -> Path:
    # Drawn in memory, then written whole: an old picture stays until the new one is complete.
    picture = BytesIO()
    fig.savefig(picture, format=fmt)
    return write_atomic(out, picture.getvalue())


def activation_figure(negative_slope: float = 0.1, xs: Any = None) -> Any:
    """The four nonlinearities (solid) and their derivatives by backprop (dashed), 2 x 2.

    Returns a ``matplotlib.figure.Figure`` on an Agg canvas; the kink points are always
    evaluated (added to ``xs``) so the library's convention there is drawn.
    """
    grid = _default_grid() if xs is None else _grid(xs)
    curves = activation_curves(np.union1d(grid, [0.0]), negative_slope)
    fig = _figure("the activations", (9.5, 7.2))
    axes = fig.subplots(2, 2)
    for ax, curve in zip(axes.flat, curves.values()):
        _draw(ax, curve, grid.min(), grid.max())
    fig.suptitle(
        "Nonlinearities (solid) and their derivatives by chainrule's backward pass (dashed)"
    )
    fig.tight_layout()
    return fig


def _draw(ax: Any, curve: ActivationCurve, lo: float, hi: float) -> None:
    x, value, derivative = curve.x, curve.value, curve.derivative
    ax.axhline(0.0, color="0.75", linewidth=0.8, zorder=0)
    ax.axvline(0.0, color="0.75", linewidth=0.8, zorder=0)
    ax.plot(x, value, color="C0", linewidth=2.0, label=curve.name.replace("_", " ") + "(x)")
    # Break the dashed derivative at each kink, so no vertical jump is drawn that the
    # function does not have; the kink's own value is a dot, drawn below.
    pieces = np.split(np.arange(x.size), np.searchsorted(x, curve.kinks))
    for n, idx in enumerate(pieces):
        keep = idx[~np.isin(x[idx], curve.kinks)]
        ax.plot(
            x[keep],
            derivative[keep],
            color="C3",
            linestyle="--",
            linewidth=2.0,
            label=curve.formula if n == 0 else None,
        )
    for k in curve.kinks:
        (at,) = np.flatnonzero(x == k)
        sides = [derivative[i] for i in (at - 1, at + 1) if 0 <= i < x.size]
        for limit in {float(s) for s in sides if s != derivative[at]}:
            ax.plot([k], [limit], "o", markersize=7, markerfacecolor="white", color="C3")
        ax.plot([k], [derivative[at]], "o", markersize=7, color="C3", label=curve.kink_note)
    ax.set_xlim(lo, hi)
    ax.set_title(curve.title)
    ax.set_xlabel("x")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8.5, framealpha=0.9)


def plot_activations(path: str | Path, negative_slope: float = 0.1, xs: Any = None) -> Path:
    """Save the figure of :func:`activation_figure` as PNG or SVG (chosen by the extension).

    >>> import tempfile, pathlib
    >>> out = plot_activations(pathlib.Path(tempfile.mkdtemp()) / "activations.png")
    >>> out.read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    out, fmt = _format(path)
    return _save(activation_figure(negative_slope, xs), out, fmt)


def cost_figure(report: CostReport) -> Any:
    """Time of one gradient against d on log-log axes and, beside it, the counted evaluations;
    a ``Figure``.

    Each curve is drawn as its median times, error bars spanning the interquartile range of
    the repeats, and its fitted line over the sizes fitted, ``slope ± err`` in the legend.
    Dashed lines of the slopes theory expects (handout's loss: 4 and 2) pass
    through each curve's point at the largest d, where fixed costs weigh least, and a note
    under the axes says which fits are not meaningful (``report.warnings``)."""
    ds = np.array([r.d for r in report.rows], dtype=float)
    size = "d" if report.handout else "n"
    problems = [k for k in ("numerical", "backprop") if report.problems[k]]
    note = [
        f"Note: the {k} slope is not meaningful here: {report.problems[k][0]}." for k in problems
    ]
    if note:
        note.append("Measure larger sizes or more repeats (see the warnings of the text report).")
    fig = _figure("the cost report", (10, 5.2 + 0.2 * len(note)))
    time_ax, eval_ax = fig.subplots(1, 2)
    series = [
        ("numerical", "central differences", "C3"),
        ("backprop", "backprop (forward + backward)", "C0"),
    ]
    handles: list[Any] = []
    for key, label, color in series:
        ts = np.array([getattr(r, f"t_{key}") for r in report.rows])
        runs = [getattr(r, f"times_{key}") or (t,) for r, t in zip(report.rows, ts)]
        q1, q3 = np.array([np.percentile(run, [25, 75]) for run in runs]).T
        fit = report.fits[key]
        text = f"{label}: slope {fit}" if math.isfinite(fit.slope) else label
        if key in problems:
            text += " (not meaningful)"
        bars = np.clip([ts - q1, q3 - ts], 0.0, None)
        handles.append(
            time_ax.errorbar(ds, ts, yerr=bars, fmt="o", color=color, capsize=3, label=text)
        )
        if math.isfinite(fit.slope):
            line = np.geomspace(min(fit.sizes), max(fit.sizes), 50)
            time_ax.plot(line, fit.line(line), "-", color=color, alpha=0.6)
        expected = report.expected_slopes.get(key)
        if expected is not None and len(ds) > 1:
            anchor_d, anchor_t = ds[-1], ts[-1]
            line = np.geomspace(ds.min(), ds.max(), 50)
            (reference,) = time_ax.plot(
                line,
                anchor_t * (line / anchor_d) ** expected,
                "--",
                color=color,
                alpha=0.45,
                linewidth=1.2,
                label=f"slope {expected:g} (expected: {key})",
            )
            handles.append(reference)
    handles += time_ax.plot(
        ds, [r.t_forward for r in report.rows], "^", color="C2", label="one forward pass"
    )
    time_ax.set_xscale("log")
    time_ax.set_yscale("log")
    time_ax.set_xlabel(size)
    time_ax.set_ylabel("wall time (s)")
    time_ax.set_title("time of one gradient")
    # Under the axes, each curve beside its expected slope: inside, it would hide the points.
    time_ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    time_ax.grid(alpha=0.3, which="both")
    eval_ax.plot(
        ds,
        [r.evals_numerical for r in report.rows],
        "o-",
        color="C3",
        label="central differences: " + ("$2d^2$" if report.handout else "$2n$") + " (counted)",
    )
    eval_ax.plot(
        ds,
        [r.evals_backprop + r.backward_passes for r in report.rows],
        "o-",
        color="C0",
        label="backprop: 1 forward + 1 backward",
    )
    eval_ax.set_xscale("log")
    eval_ax.set_yscale("log")
    eval_ax.set_xlabel(size)
    eval_ax.set_ylabel("passes (counted)")
    eval_ax.set_title("evaluations of the function, and passes")
    eval_ax.legend(fontsize=8.5)
    eval_ax.grid(alpha=0.3, which="both")
    for ax in (time_ax, eval_ax):
        ax.set_xticks(ds, [f"{d:g}" for d in ds])
        ax.minorticks_off()
    fig.suptitle(f"Gradient of {report.what}")
    if note:
        height = fig.get_figheight()
        fig.text(0.01, 0.01, "\n".join(note), fontsize=8, color="C3", va="bottom")
        fig.tight_layout(rect=(0, (0.2 * len(note) + 0.1) / height, 1, 1))
    else:
        fig.tight_layout()
    return fig


def plot_costs(report: CostReport, path: str | Path) -> Path:
    """Save :func:`cost_figure` as PNG or SVG (by the extension); ``report.plot(path)``."""
    out, fmt = _format(path)
    return _save(cost_figure(report), out, fmt)
