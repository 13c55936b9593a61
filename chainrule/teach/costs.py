"""What a gradient costs, measured: central differences against one backward pass.

For the handout's two-layer loss l(W1) = 1/2 ||W2 tanh(W1 x + b) - y||^2 with W1 of size d x d,
central differences need two evaluations of l per entry of W1, 2 d^2 in all, each O(d^2): the
numerical gradient costs O(d^4). Backprop needs one forward pass (recording the graph) and one
backward pass, a small constant times the forward pass, O(d^2) for all d^2 entries at once.
On log-log axes of time against d the two are lines of slope 4 and 2 (per parameter, P = d^2,
slopes 2 and 1), once d is large enough that the arithmetic outweighs the fixed cost of each
call. :func:`cost_report` counts the evaluations and times both, for real, fits the slopes with
their uncertainty (:mod:`chainrule.teach.slopes`), and warns when a slope means nothing.
"""

from __future__ import annotations

import gc
import math
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import ops as F
from ..engine.tensor import Tensor
from ..transforms.check import numerical_grad
from .slopes import FLOOR_FACTOR, SlopeFit, judge_slope, relative_spread

__all__ = [
    "cost_report",
    "CostReport",
    "CostRow",
    "two_layer_loss",
    "DEFAULT_SIZES",
    "EXPECTED_SLOPES",
]

DEFAULT_SIZES = (10, 20, 50, 100, 200)
_NUMERICAL_BUDGET_S = 1.0  # repeat the numerical gradient only while the runs stay this short
_LOSS_TEXT = "l = 1/2 ||W2 tanh(W1 x + b) - y||^2 with respect to W1 (d x d)"
_CURVES = ("numerical", "backprop")
# For the handout's loss, large d: 2 d^2 evaluations of an O(d^2) loss; one forward and one
# backward pass, O(d^2) each.
EXPECTED_SLOPES = {"numerical": 4.0, "backprop": 2.0}


def two_layer_loss(W1: Any, W2: Any, x: Any, b: Any, y: Any) -> Any:
    """The handout's loss ``1/2 ||W2 tanh(W1 x + b) - y||^2``; on Tensors it is recorded,
    on NumPy arrays it is plain NumPy.

    >>> import numpy as np
    >>> float(two_layer_loss(np.zeros((2, 2)), np.eye(2), np.ones(2), np.zeros(2), np.ones(2)))
    1.0
    """
    r = W2 @ F.tanh(W1 @ x + b) - y
    return 0.5 * F.sum(r * r)


@dataclass(frozen=True)
class CostRow:
    """One size, measured.

    ``d`` is the size (W1 is d x d) or, for your own function, the number of entries of its
    first argument; ``entries`` is the number of entries differentiated. ``evals_numerical``
    counts the calls central differences made; ``evals_backprop`` counts the calls of the
    function during forward + backward (1: backward never calls it again), ``backward_passes``
    the backward passes (1). Times are seconds, the median of the timed runs: ``t_backprop``
    is forward + backward, split into ``t_forward`` (recorded) and ``t_backward``; every run is
    kept in ``times_numerical`` and ``times_backprop`` (forward + backward).
    ``max_abs_diff`` is max |numerical - backprop| over the whole gradient.
    """

    d: int
    entries: int
    evals_numerical: int
    evals_backprop: int
    backward_passes: int
    t_numerical: float
    t_backprop: float
    t_forward: float
    t_backward: float
    max_abs_diff: float
    max_abs_grad: float
    runs_numerical: int
    runs_backprop: int
    times_numerical: tuple[float, ...] = ()
    times_backprop: tuple[float, ...] = ()

    @property
    def spread_numerical(self) -> float:
        """Interquartile range / median of the numerical runs (NaN under two runs)."""
        return relative_spread(self.times_numerical)

    @property
    def spread_backprop(self) -> float:
        """Interquartile range / median of the forward + backward runs (NaN under two runs)."""
        return relative_spread(self.times_backprop)

    @property
    def ratio(self) -> float:
        """How many times longer the numerical gradient took than forward + backward."""
        return self.t_numerical / self.t_backprop

    @property
    def backward_over_forward(self) -> float:
        """The time of one backward pass over that of one (recorded) forward pass."""
        return self.t_backward / self.t_forward


def _fit(ds: Sequence[int], ts: Sequence[float]) -> float:
    if len(set(ds)) < 2:
        return math.nan
    slope, _ = np.polyfit(np.log(np.asarray(ds, float)), np.log(np.asarray(ts, float)), 1)
    return float(slope)


def _fmt_time(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} µs"


@dataclass
class CostReport:
    """The measurements of :func:`cost_report`: ``rows`` (one :class:`CostRow` per size),
    ``fits`` (per curve, a :class:`~chainrule.teach.slopes.SlopeFit` of log time against log
    d: slope, standard error, 95% interval, the sizes fitted), ``slopes`` and ``slope_errors``
    (the same numbers as plain dicts; NaN with one size), ``warnings`` (one sentence per
    slope that should not be believed, saying what to measure instead), ``str(report)`` a
    table, and ``plot(path)`` a picture.

    ``fixed_cost`` is the cost of a call with no arithmetic to speak of: the time of one
    evaluation of the loss (``"numerical"``) and of one forward + backward (``"backprop"``) at
    d = 1, lowered to the least measured at any size (work only adds to it). Sizes whose time
    is under ``FLOOR_FACTOR`` (2) times that are left out of a fit while 3 or more remain. With
    ``fixed_cost=None`` every size is fitted.
    """

    rows: list[CostRow]
    what: str
    handout: bool
    repeats: int
    fixed_cost: dict[str, float] | None = None
    fits: dict[str, SlopeFit] = field(init=False)
    slopes: dict[str, float] = field(init=False)
    slope_errors: dict[str, float] = field(init=False)
    problems: dict[str, list[str]] = field(init=False)
    warnings: list[str] = field(init=False)

    def __post_init__(self) -> None:
        ds = [r.d for r in self.rows]
        times = {
            "numerical": [r.t_numerical for r in self.rows],
            "backprop": [r.t_backprop for r in self.rows],
        }
        spreads = {
            "numerical": [r.spread_numerical for r in self.rows],
            "backprop": [r.spread_backprop for r in self.rows],
        }
        floors: dict[str, list[float] | None] = {k: None for k in _CURVES}
        if self.fixed_cost is not None:
            per_eval = min(
                self.fixed_cost["numerical"],
                *(r.t_numerical / r.evals_numerical for r in self.rows),
            )
            per_call = min(self.fixed_cost["backprop"], *times["backprop"])
            self.fixed_cost = {"numerical": per_eval, "backprop": per_call}
            floors["numerical"] = [per_eval * r.evals_numerical for r in self.rows]
            floors["backprop"] = [per_call] * len(self.rows)
        self.fits, self.problems = {}, {}
        for key in _CURVES:
            self.fits[key], self.problems[key] = judge_slope(
                ds,
                times[key],
                floors=floors[key],
                spreads=spreads[key],
                size_name="d" if self.handout else "n",
            )
        self.slopes = {k: fit.slope for k, fit in self.fits.items()}
        self.slope_errors = {k: fit.err for k, fit in self.fits.items()}
        if not (self.handout or len(self.rows) > 1):
            # your own function at one point: a slope was never the question
            self.problems = {k: [] for k in _CURVES}
        self.warnings = [self._warning(k) for k in _CURVES if self.problems[k]]

    @property
    def expected_slopes(self) -> dict[str, float]:
        """The slopes theory predicts at large d (handout's loss only; empty otherwise)."""
        return dict(EXPECTED_SLOPES) if self.handout else {}

    def _warning(self, key: str) -> str:
        size = "d" if self.handout else "n"
        fit, problems = self.fits[key], self.problems[key]
        expected = self.expected_slopes.get(key)
        head = f"the {key} slope {fit}"
        if expected is not None:
            head += f" (expected {expected:g})"
        sizes = ", ".join(str(r.d) for r in self.rows)
        text = f"{head} is not meaningful at {size} = {sizes}: " + "; ".join(problems) + "."
        if self.fixed_cost is not None and any("fixed cost" in p for p in problems):
            unit = "evaluation of the loss" if key == "numerical" else "forward + backward"
            text += (
                f" The fixed cost is {_fmt_time(self.fixed_cost[key])} per {unit} (measured "
                "at d = 1): below 2x that the slope measures overhead, not arithmetic."
            )
        largest = max(r.d for r in self.rows)
        advice = []
        if any(w in p for p in problems for w in ("fixed cost", "size", "negative", "uncertainty")):
            advice.append(
                f"larger sizes (e.g. --sizes {largest},{2 * largest},{4 * largest}; the "
                "numerical gradient takes 16x longer with each doubling of d)"
            )
        if any("uncertainty" in p or "repeats" in p or "negative" in p for p in problems):
            advice.append(f"more repeats (e.g. --repeats {max(3 * self.repeats, 15)})")
        return f"{text} Measure {' and '.join(advice)}."

    @property
    def tail_slopes(self) -> dict[str, float]:
        """The slopes between the two largest sizes alone, where fixed costs weigh least."""
        tail = self.rows[-2:]
        ds = [r.d for r in tail]
        return {
            "numerical": _fit(ds, [r.t_numerical for r in tail]),
            "backprop": _fit(ds, [r.t_backprop for r in tail]),
        }

    @property
    def max_abs_diff(self) -> float:
        """The largest |numerical - backprop| over every size (full gradients, all entries)."""
        return max(r.max_abs_diff for r in self.rows)

    def _slope_notes(self, size: str) -> list[str]:
        if math.isnan(self.slopes["numerical"]):
            return ["slopes: one size measured, no fit (give two sizes or more)."]
        parts = []
        for key in _CURVES:
            fit = self.fits[key]
            part = f"{key} {fit}"
            if not math.isnan(fit.err):
                part += f" [{fit.low:.2f}, {fit.high:.2f}]"
            part += f" over {size} = {', '.join(str(s) for s in fit.sizes)}"
            parts.append(part)
        notes = [
            f"fitted slopes of log time against log {size} (least squares on the median times; "
            f"± standard error, [95% interval]): {'; '.join(parts)}."
        ]
        if len(self.rows) > 2:
            tail = self.tail_slopes
            notes[-1] += (
                f" Between the two largest sizes alone: numerical {tail['numerical']:.2f}, "
                f"backprop {tail['backprop']:.2f}."
            )
        if self.handout:
            notes.append(
                "For large d expect 4 for numerical (2 d^2 evaluations of an O(d^2) loss) "
                "and 2 for backprop (per parameter, P = d^2: 2 and 1); at small d fixed "
                "per-op costs flatten both."
            )
        if self.fixed_cost is not None:
            notes.append(
                f"fixed cost of a call (at d = 1, or less where measured): "
                f"{_fmt_time(self.fixed_cost['numerical'])} per evaluation, "
                f"{_fmt_time(self.fixed_cost['backprop'])} per forward + backward; a fit leaves "
                f"out sizes whose time is under {FLOOR_FACTOR:g}x that while 3 sizes remain."
            )
        return notes

    def __str__(self) -> str:
        size = "d" if self.handout else "n"
        head = (
            f"{size:>5} {'evals: numerical':>17} {'backprop':>13} {'numerical':>10} "
            f"{'fwd+bwd':>10} {'ratio':>8} {'bwd/fwd':>7} {'max |diff|':>10}"
        )
        lines = [f"Gradient of {self.what}, float64", head, "-" * len(head)]
        for r in self.rows:
            lines.append(
                f"{r.d:>5} {r.evals_numerical:>17,} "
                f"{f'{r.evals_backprop} fwd + {r.backward_passes} bwd':>13} "
                f"{_fmt_time(r.t_numerical):>10} {_fmt_time(r.t_backprop):>10} "
                f"{r.ratio:>8,.0f} {r.backward_over_forward:>7.2f} {r.max_abs_diff:>10.1e}"
            )
        notes: list[str] = []
        counts = "2 d^2" if self.handout else "2 n"
        notes.append(
            f"evaluations: counted calls of the loss; central differences made {counts} of them "
            f"at every size, backprop one forward and one backward pass."
        )
        notes.append(
            f"times: time.perf_counter, median of {self.repeats} runs (numerical: of as many "
            f"runs as fit in {_NUMERICAL_BUDGET_S:g} s, at least one); ratio = numerical / "
            "(fwd+bwd); bwd/fwd = one backward pass / one recorded forward pass."
        )
        spreads = []
        for key in _CURVES:
            values = [getattr(r, f"spread_{key}") for r in self.rows]
            known = [v for v in values if not math.isnan(v)]
            if known:
                spreads.append(f"up to {max(known):.0%} ({key})")
        if spreads:
            notes[-1] += (
                " Spread of the repeats (interquartile range / median): " + ", ".join(spreads) + "."
            )
        notes.append(
            f"agreement: max |numerical - backprop| = {self.max_abs_diff:.1e} over every entry "
            "of every full gradient."
        )
        notes.extend(self._slope_notes(size))
        notes.extend(f"WARNING: {w}" for w in self.warnings)
        lines.append("")
        lines.extend(textwrap.fill(n, 100, subsequent_indent="  ") for n in notes)
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Save time against d on log-log axes (medians, the spread of the repeats as error
        bars, the fitted lines with ``slope ± err`` in the legend, dashed reference lines of
        the expected slopes, and a note when a fit is not meaningful), and the counted
        evaluations beside it; PNG or SVG by the extension (see ``chainrule.viz.plots``)."""
        from ..viz.plots import plot_costs

        return plot_costs(self, path)


class _Counted:
    """``f``, counting its calls."""

    def __init__(self, f: Callable[..., Any]) -> None:
        self.f = f
        self.calls = 0

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        return self.f(*args)


@contextmanager
def _gc_paused() -> Iterator[None]:
    # As timeit does: a collection in the middle of a timed run measures the collector.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _as_array(value: Any) -> np.ndarray:
    data = value.numpy() if isinstance(value, Tensor) else value
    arr = np.array(data, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("cost_report: the first argument is empty: nothing to differentiate")
    return arr


def _check_output(out: Any) -> None:
    shape = tuple(getattr(out, "shape", ()))
    if shape not in ((), (1,)):
        raise TypeError(f"cost_report: the function must return a scalar, got shape {shape}")
    if not (isinstance(out, Tensor) and out.requires_grad):
        raise ValueError(
            "cost_report: the function's value does not depend on its first argument "
            "(nothing was recorded from it), so there is no gradient to measure"
        )


def _measure(
    f: Callable[..., Any], x0: np.ndarray, rest: Sequence[Any], d: int, repeats: int
) -> CostRow:
    counted = _Counted(f)

    # Central differences: the first run is counted, kept for the agreement check, and timed.
    runs_numerical, spent = 0, 0.0
    times_numerical: list[float] = []
    numeric: Any = None
    while runs_numerical < repeats and (runs_numerical == 0 or spent < _NUMERICAL_BUDGET_S):
        counted.calls = 0
        with _gc_paused():
            start = time.perf_counter()
            result = numerical_grad(counted, x0, *rest, argnums=0)
            elapsed = time.perf_counter() - start
        if numeric is None:
            numeric = np.asarray(result, dtype=np.float64)
            evals_numerical = counted.calls
        elif counted.calls != evals_numerical:  # pragma: no cover - would be a bug in check.py
            raise RuntimeError("numerical_grad made a different number of calls on a rerun")
        times_numerical.append(elapsed)
        spent += elapsed
        runs_numerical += 1

    # Backprop: one recorded forward pass and one backward pass, counted (a warm-up, not
    # timed), then timed.
    def forward_backward() -> tuple[float, float, Tensor]:
        W = Tensor(x0.copy(), requires_grad=True)
        with _gc_paused():
            start = time.perf_counter()
            out = counted(W, *rest)
            mid = time.perf_counter()
            _check_output(out)
            out.backward()
            end = time.perf_counter()
        return mid - start, end - mid, W

    counted.calls = 0
    fwd, bwd, W = forward_backward()
    evals_backprop = counted.calls
    backprop = np.zeros_like(x0) if W.grad is None else np.asarray(W.grad.numpy(), np.float64)
    forwards, backwards, totals = [fwd], [bwd], [fwd + bwd]
    for _ in range(repeats):
        fwd, bwd, _W = forward_backward()
        forwards.append(fwd)
        backwards.append(bwd)
        totals.append(fwd + bwd)

    return CostRow(
        d=d,
        entries=int(x0.size),
        evals_numerical=evals_numerical,
        evals_backprop=evals_backprop,
        backward_passes=1,
        t_numerical=float(np.median(times_numerical)),
        t_backprop=float(np.median(totals[1:])),
        t_forward=float(np.median(forwards[1:])),
        t_backward=float(np.median(backwards[1:])),
        max_abs_diff=float(np.max(np.abs(numeric - backprop))),
        max_abs_grad=float(np.max(np.abs(backprop))),
        runs_numerical=runs_numerical,
        runs_backprop=repeats,
        times_numerical=tuple(times_numerical),
        times_backprop=tuple(totals[1:]),
    )


def _check_sizes(sizes: Sequence[int]) -> list[int]:
    try:
        values = list(sizes)
    except TypeError:
        raise ValueError(f"sizes must be a sequence of positive integers, got {sizes!r}") from None
    if not values or any(
        isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in values
    ):
        raise ValueError(f"sizes must be one or more positive integers, got {sizes!r}")
    return sorted({int(s) for s in values})


def cost_report(
    f: Callable[..., Any] | None = None,
    *args: Any,
    sizes: Sequence[int] | None = None,
    repeats: int = 5,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> CostReport:
    """Measure the numerical gradient (central differences) against backprop.

    With no ``f``: the handout's loss ``1/2 ||W2 tanh(W1 x + b) - y||^2`` with respect to W1,
    d x d, for every d in ``sizes`` (default 10, 20, 50, 100, 200), on seeded random data.
    With ``f`` and ``args``: ``f(*args)`` (a scalar) with respect to its first argument, at
    those arguments (one row; ``d`` is then the number of entries of that argument).

    Everything is computed in full and measured, never estimated: central differences
    (``cr.numerical_grad``) evaluate the loss at all 2 d^2 perturbed points, and the calls are
    counted by wrapping the loss; the gradients of both methods are compared entry by entry.
    The numerical gradient costs O(d^4) time, so the default sizes take about 10 s on a 2-core
    machine, almost all of it at d = 200 (80,000 evaluations); d = 400 would take 16 times as
    long. Keep ``sizes`` small (e.g. 4, 8, 16) for a quick look.

    Parameters
    ----------
    f : callable, optional
        A function returning a scalar; differentiated with respect to its first argument.
    *args
        The arguments of ``f`` (only with ``f``).
    sizes : sequence of int, optional
        The sizes d of W1 (only without ``f``).
    repeats : int
        Timed runs of forward + backward per size (the median is reported, the spread kept);
        the numerical gradient is rerun up to ``repeats`` times while its runs total under 1 s.
    seed : int
        Seed of the random W1, W2, x, b, y (only without ``f``).
    progress : callable, optional
        Called with each size d just before it is measured (for a progress line).

    The slopes of log time against log d are fitted by least squares on the median times, with
    their standard error and 95% interval (``.fits``), over the sizes whose time is clearly
    above the fixed cost of a call (measured at d = 1). ``.warnings`` says when a slope means
    nothing at the sizes measured (too close to that fixed cost, too uncertain, negative, too
    few sizes, noisy repeats) and what to measure instead.

    Returns
    -------
    CostReport
        ``.rows`` (d, evals_numerical, evals_backprop, t_numerical, t_backprop, ratio,
        backward_over_forward, max_abs_diff, ...), ``.fits``, ``.slopes``, ``.slope_errors``,
        ``.warnings``, ``str(report)``, ``.plot(path)``.

    Examples
    --------
    >>> import chainrule as cr
    >>> report = cr.cost_report(sizes=(3, 6), repeats=1)
    >>> [(row.d, row.evals_numerical, row.evals_backprop) for row in report.rows]
    [(3, 18, 1), (6, 72, 1)]
    >>> report.max_abs_diff < 1e-7
    True
    >>> row = cr.cost_report(lambda x: cr.sum(x ** 3), [1.0, 2.0]).rows[0]
    >>> row.evals_numerical, row.evals_backprop, row.backward_passes
    (4, 1, 1)
    """
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    repeats = int(repeats)
    if f is not None:
        if not callable(f):
            raise TypeError(f"cost_report: f must be a function, got {type(f).__name__}")
        if not args:
            raise TypeError("cost_report: give the arguments to evaluate f at: cost_report(f, x)")
        if sizes is not None:
            raise TypeError("cost_report: sizes is for the handout's loss; with f give its args")
        x0 = _as_array(args[0])
        name = getattr(f, "__name__", "f")
        what = f"{name} with respect to its first argument (n = {x0.size} entries)"
        row = _measure(f, x0, args[1:], int(x0.size), repeats)
        return CostReport([row], what=what, handout=False, repeats=repeats)
    if args:
        raise TypeError("cost_report: arguments were given without a function f")
    checked = _check_sizes(DEFAULT_SIZES if sizes is None else sizes)
    # The fixed cost of a call: d = 1, the same ops on 1 x 1 arrays, nothing to compute.
    one = _measure_handout(1, seed, repeats)
    fixed_cost = {"numerical": one.t_numerical / one.evals_numerical, "backprop": one.t_backprop}
    rows = []
    for d in checked:
        if progress is not None:
            progress(d)
        rows.append(_measure_handout(d, seed, repeats))
    return CostReport(rows, what=_LOSS_TEXT, handout=True, repeats=repeats, fixed_cost=fixed_cost)


def _measure_handout(d: int, seed: int, repeats: int) -> CostRow:
    rng = np.random.default_rng([seed, d])
    W1, W2 = rng.normal(size=(2, d, d)) / math.sqrt(d)
    x, b, y = rng.normal(size=(3, d))
    return _measure(two_layer_loss, W1, (W2, x, b, y), d, repeats)
