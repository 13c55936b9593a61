"""What a gradient costs, measured: central differences against one backward pass.

For the handout's two-layer loss l(W1) = 1/2 ||W2 tanh(W1 x + b) - y||^2 with W1 of size d x d,
central differences need two evaluations of l per entry of W1, 2 d^2 in all, each O(d^2): the
numerical gradient costs O(d^4). Backprop needs one forward pass (recording the graph) and one
backward pass, a small constant times the forward pass, O(d^2) for all d^2 entries at once.
:func:`cost_report` counts the evaluations and times both, for real.
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

__all__ = ["cost_report", "CostReport", "CostRow", "two_layer_loss", "DEFAULT_SIZES"]

DEFAULT_SIZES = (10, 20, 50, 100, 200)
_NUMERICAL_BUDGET_S = 1.0  # repeat the numerical gradient only while the runs stay this short
_LOSS_TEXT = "l = 1/2 ||W2 tanh(W1 x + b) - y||^2 with respect to W1 (d x d)"


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
    the backward passes (1). Times are seconds, the best of the timed runs: ``t_backprop`` is
    forward + backward, split into ``t_forward`` (recorded) and ``t_backward``.
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
    ``slopes`` (fitted exponents of time against d, on log-log axes; NaN with one size),
    ``str(report)`` a table, and ``plot(path)`` a picture."""

    rows: list[CostRow]
    what: str
    handout: bool
    repeats: int
    slopes: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        ds = [r.d for r in self.rows]
        self.slopes = {
            "numerical": _fit(ds, [r.t_numerical for r in self.rows]),
            "backprop": _fit(ds, [r.t_backprop for r in self.rows]),
        }

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
            f"times: time.perf_counter, best of {self.repeats} runs (numerical: best of as many "
            f"runs as fit in {_NUMERICAL_BUDGET_S:g} s, at least one); ratio = numerical / "
            "(fwd+bwd); bwd/fwd = one backward pass / one recorded forward pass."
        )
        notes.append(
            f"agreement: max |numerical - backprop| = {self.max_abs_diff:.1e} over every entry "
            "of every full gradient."
        )
        num, bp = self.slopes["numerical"], self.slopes["backprop"]
        if math.isnan(num):
            notes.append("slopes: one size measured, no fit (give two sizes or more).")
        else:
            notes.append(
                f"fitted slopes of log time against log {size}: numerical {num:.2f}, "
                f"backprop {bp:.2f}."
            )
            if len(self.rows) > 2:
                tail = self.tail_slopes
                notes[-1] += (
                    f" Between the two largest sizes alone: numerical {tail['numerical']:.2f}, "
                    f"backprop {tail['backprop']:.2f}."
                )
            if self.handout:
                notes.append(
                    "For large d expect 4 for numerical (2 d^2 evaluations of an O(d^2) loss) "
                    "and 2 for backprop; at small d fixed per-op costs flatten both."
                )
        lines.append("")
        lines.extend(textwrap.fill(n, 100, subsequent_indent="  ") for n in notes)
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Save time against d on log-log axes, each with its fitted slope, and the counted
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
    runs_numerical, t_numerical, spent = 0, math.inf, 0.0
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
        t_numerical = min(t_numerical, elapsed)
        spent += elapsed
        runs_numerical += 1

    # Backprop: one recorded forward pass and one backward pass, counted, then timed.
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
        t_numerical=t_numerical,
        t_backprop=min(totals[1:]),
        t_forward=min(forwards[1:]),
        t_backward=min(backwards[1:]),
        max_abs_diff=float(np.max(np.abs(numeric - backprop))),
        max_abs_grad=float(np.max(np.abs(backprop))),
        runs_numerical=runs_numerical,
        runs_backprop=repeats,
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
        Timed runs of forward + backward per size (the best is reported); the numerical
        gradient is rerun up to ``repeats`` times while its runs total under 1 s.
    seed : int
        Seed of the random W1, W2, x, b, y (only without ``f``).
    progress : callable, optional
        Called with each size d just before it is measured (for a progress line).

    Returns
    -------
    CostReport
        ``.rows`` (d, evals_numerical, evals_backprop, t_numerical, t_backprop, ratio,
        backward_over_forward, max_abs_diff, ...), ``.slopes``, ``str(report)``,
        ``.plot(path)``.

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
    rows = []
    for d in _check_sizes(DEFAULT_SIZES if sizes is None else sizes):
        if progress is not None:
            progress(d)
        rng = np.random.default_rng([seed, d])
        W1, W2 = rng.normal(size=(2, d, d)) / math.sqrt(d)
        x, b, y = rng.normal(size=(3, d))
        rows.append(_measure(two_layer_loss, W1, (W2, x, b, y), d, repeats))
    return CostReport(rows, what=_LOSS_TEXT, handout=True, repeats=repeats)
