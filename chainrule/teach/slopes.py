"""Slopes on log-log axes, with their uncertainty, and whether they mean anything.

If a time grows as t = c d^k, then log t = log c + k log d: a straight line of slope k on
log-log axes. :func:`fit_slope` fits that line by least squares and gives the standard error
of the slope from the scatter of the points about it,

    err = sqrt( sum(r_i^2) / (n - 2) / sum((x_i - mean x)^2) ),   x = log d, r = residuals,

the formula behind ``numpy.polyfit(x, y, 1, cov=True)``, with a 95% interval from Student's t
on n - 2 degrees of freedom. :func:`judge_slope` adds what a plain fit does not say: whether
the times are clearly above the fixed cost of a call (below it the slope measures overhead,
not work), whether the repeats agree, and whether enough sizes were measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "SlopeFit",
    "fit_slope",
    "judge_slope",
    "relative_spread",
    "t_quantile_975",
    "MIN_SIZES",
    "MAX_SLOPE_ERR",
    "FLOOR_FACTOR",
    "MAX_SPREAD",
]

MIN_SIZES = 3  # two points always lie on a line: a third is the first that can disagree
MAX_SLOPE_ERR = 0.3  # a standard error past this cannot tell a slope of 2 from one of 3
FLOOR_FACTOR = 2.0  # a time under 2x the fixed cost of a call is mostly that fixed cost
MAX_SPREAD = 0.25  # repeats whose interquartile range passes 25% of their median: a busy machine

# Student's t, 97.5th percentile, for 1 to 30 degrees of freedom (two-sided 95%).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile_975(dof: int) -> float:
    """The 97.5th percentile of Student's t with ``dof`` degrees of freedom (the half-width
    of a 95% interval, in standard errors); NaN for ``dof < 1``.

    >>> t_quantile_975(1), t_quantile_975(10)
    (12.706, 2.228)
    """
    if dof < 1:
        return math.nan
    if dof <= len(_T975):
        return _T975[dof - 1]
    # NOTE: Cornish-Fisher expansion about the normal quantile; within 1e-4 of the exact
    # value past 30 degrees of freedom, where the table stops.
    z = 1.959963984540054
    return z + (z**3 + z) / (4 * dof) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * dof**2)


@dataclass(frozen=True)
class SlopeFit:
    """A straight line fitted to log time against log size.

    ``slope`` is the exponent k of t ~ d^k; ``err`` its standard error (NaN with two sizes:
    a line through two points has no scatter to measure); ``low`` and ``high`` the 95%
    interval; ``intercept`` is log t at d = 1; ``sizes`` are the sizes fitted.
    ``str(fit)`` reads ``2.01 ± 0.05``.
    """

    slope: float
    err: float
    low: float
    high: float
    intercept: float
    sizes: tuple[int, ...]

    def __str__(self) -> str:
        if math.isnan(self.slope):
            return "no fit"
        if math.isnan(self.err):
            return f"{self.slope:.2f} ± ? (two sizes)"
        return f"{self.slope:.2f} ± {self.err:.2f}"

    def line(self, ds: Sequence[float] | np.ndarray) -> np.ndarray:
        """The fitted times at the sizes ``ds``: exp(intercept) * d ** slope."""
        return np.exp(self.intercept) * np.asarray(ds, dtype=float) ** self.slope


def _positive(name: str, values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or not np.all(np.isfinite(arr)) or not np.all(arr > 0):
        raise ValueError(f"fit_slope: {name} must be finite positive numbers, got {values!r}")
    return arr


def fit_slope(sizes: Sequence[int], times: Sequence[float]) -> SlopeFit:
    """Least squares of log(time) on log(size): the slope, its standard error, 95% interval.

    With one distinct size everything is NaN; with two the slope is exact and ``err`` NaN.

    >>> fit = fit_slope([10, 20, 40], [3e-4 * d**2 for d in (10, 20, 40)])
    >>> round(fit.slope, 12), round(fit.err, 12)
    (2.0, 0.0)
    >>> str(fit_slope([1, 2, 4, 8], [1.0, 4.4, 15.0, 70.0]))
    '2.02 ± 0.06'
    """
    d = _positive("sizes", sizes)
    t = _positive("times", times)
    if d.shape != t.shape:
        raise ValueError(f"fit_slope: {d.size} sizes but {t.size} times")
    used = tuple(int(s) for s in d)
    if np.unique(d).size < 2:
        return SlopeFit(math.nan, math.nan, math.nan, math.nan, math.nan, used)
    x, y = np.log(d), np.log(t)
    dx = x - x.mean()
    sxx = float(dx @ dx)
    slope = float(dx @ (y - y.mean())) / sxx
    intercept = float(y.mean() - slope * x.mean())
    dof = x.size - 2
    if dof < 1:
        return SlopeFit(slope, math.nan, math.nan, math.nan, intercept, used)
    residuals = y - (intercept + slope * x)
    err = math.sqrt(float(residuals @ residuals) / dof / sxx)
    half = t_quantile_975(dof) * err
    return SlopeFit(slope, err, slope - half, slope + half, intercept, used)


def relative_spread(runs: Sequence[float]) -> float:
    """How much repeated timings disagree: interquartile range / median (NaN under 2 runs).

    One slow run among five, a collection or another process, moves neither quartile much,
    as it moves neither the median.

    >>> relative_spread([1.0, 1.0, 1.0, 1.0, 9.0])
    0.0
    """
    if len(runs) < 2:
        return math.nan
    q1, median, q3 = np.percentile(np.asarray(runs, dtype=float), [25, 50, 75])
    return float((q3 - q1) / median)


def judge_slope(
    sizes: Sequence[int],
    times: Sequence[float],
    *,
    floors: Sequence[float] | None = None,
    spreads: Sequence[float] | None = None,
    size_name: str = "d",
) -> tuple[SlopeFit, list[str]]:
    """Fit the slope where it means something, and say why it might not.

    ``floors[i]`` is the fixed cost at ``sizes[i]`` (what the time would be with no work that
    grows with the size); a size is fitted when its time is at least ``FLOOR_FACTOR`` times
    that. When fewer than ``MIN_SIZES`` sizes clear the floor every size is fitted, and the
    floor is named as a problem. ``spreads[i]`` is the relative spread of the repeats at
    ``sizes[i]`` (NaN: unknown); ``size_name`` names the sizes in the phrases. Returns the fit
    and its problems, short phrases, empty when the slope can be believed.

    >>> fit, problems = judge_slope([1, 2, 4], [1.0, 1.1, 0.9], floors=[1.0, 1.0, 1.0])
    >>> problems[0]
    'at every size the time is within 2x of the fixed cost of a call'
    """
    n = len(sizes)
    if len(times) != n:
        raise ValueError(f"judge_slope: {n} sizes but {len(times)} times")
    problems: list[str] = []
    chosen = list(range(n))
    if floors is not None:
        above = [i for i in chosen if times[i] >= FLOOR_FACTOR * floors[i]]
        if len(above) >= MIN_SIZES:
            chosen = above
        elif not above:
            problems.append(
                f"at every size the time is within {FLOOR_FACTOR:g}x of the fixed cost of a call"
            )
        elif len(above) < n:
            clear = ", ".join(str(sizes[i]) for i in above)
            problems.append(
                f"only at {size_name} = {clear} is the time clearly above the fixed cost of a call "
                f"({FLOOR_FACTOR:g}x or more)"
            )
    fit = fit_slope([sizes[i] for i in chosen], [times[i] for i in chosen])
    if math.isnan(fit.slope):
        problems.append("one size measured: no slope to fit")
    elif len(chosen) < MIN_SIZES:
        problems.append(f"only {len(chosen)} sizes: no uncertainty (give {MIN_SIZES} or more)")
    elif fit.err > MAX_SLOPE_ERR:
        problems.append(f"its uncertainty ±{fit.err:.2f} is over {MAX_SLOPE_ERR:g}")
    if fit.slope < 0:
        problems.append("it is negative: more work cannot take less time, this is timer noise")
    if spreads is not None:
        noisy = [sizes[i] for i in chosen if spreads[i] > MAX_SPREAD]  # NaN compares False
        if noisy:
            problems.append(
                "the repeats disagree by more than "
                f"{MAX_SPREAD:.0%} (interquartile range / median) at {size_name} = "
                + ", ".join(str(s) for s in noisy)
            )
    return fit, problems
