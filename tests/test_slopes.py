"""Slopes on log-log axes: the fit, its standard error and interval, and when it means nothing.

Every timing here is made up, so each result is known in closed form and no test depends on
how fast the machine is.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from chainrule.teach.slopes import (
    MAX_SLOPE_ERR,
    fit_slope,
    judge_slope,
    relative_spread,
    t_quantile_975,
)

SIZES = (10, 20, 50, 100, 200)


@pytest.mark.parametrize("k", [4.0, 2.0, 1.0, 0.0, -0.5])
def test_an_exact_power_law_has_its_exponent_and_no_error(k):
    fit = fit_slope(SIZES, [3e-6 * d**k for d in SIZES])
    assert fit.slope == pytest.approx(k, abs=1e-12)
    assert fit.err == pytest.approx(0.0, abs=1e-12)
    assert (fit.low, fit.high) == (pytest.approx(k, abs=1e-10), pytest.approx(k, abs=1e-10))
    assert fit.intercept == pytest.approx(math.log(3e-6))
    assert fit.sizes == SIZES
    np.testing.assert_allclose(fit.line(SIZES), [3e-6 * d**k for d in SIZES], rtol=1e-10)


def test_noisy_times_give_numpy_polyfits_slope_and_standard_error():
    rng = np.random.default_rng(0)
    times = [2e-7 * d**3 * math.exp(rng.normal(scale=0.2)) for d in SIZES]
    fit = fit_slope(SIZES, times)
    (slope, intercept), cov = np.polyfit(np.log(SIZES), np.log(times), 1, cov=True)
    assert fit.slope == pytest.approx(slope, rel=1e-12)
    assert fit.intercept == pytest.approx(intercept, rel=1e-12)
    assert fit.err == pytest.approx(math.sqrt(cov[0, 0]), rel=1e-10)
    assert fit.err > 0.01  # the noise shows
    half = t_quantile_975(len(SIZES) - 2) * fit.err
    assert (fit.low, fit.high) == (pytest.approx(slope - half), pytest.approx(slope + half))


def test_three_points_against_the_formula_by_hand():
    # x = log d = 0, a, 2a (a = log 2), y = log t = 0, 2a, 5a: mean x = a, mean y = 7a/3,
    # Sxx = 2a^2, Sxy = 5a^2, slope 5/2, intercept -a/6, residuals a/6 (1, -2, 1), so
    # err = sqrt(SSR / (n - 2) / Sxx) = sqrt((a^2/6) / 1 / (2a^2)) = sqrt(1/12).
    a = math.log(2)
    fit = fit_slope([1, 2, 4], np.exp([0, 2 * a, 5 * a]))
    assert fit.slope == pytest.approx(2.5)
    assert fit.intercept == pytest.approx(-a / 6)
    assert fit.err == pytest.approx(math.sqrt(1 / 12))
    assert fit.high - fit.slope == pytest.approx(12.706 * math.sqrt(1 / 12))  # t(0.975, 1 dof)
    assert str(fit) == "2.50 ± 0.29"


def test_two_sizes_give_a_slope_without_error_and_one_size_nothing():
    two = fit_slope([10, 20], [1.0, 4.0])
    assert two.slope == pytest.approx(2.0) and math.isnan(two.err)
    assert "two sizes" in str(two)
    one = fit_slope([10, 10], [1.0, 2.0])
    assert math.isnan(one.slope) and str(one) == "no fit"


@pytest.mark.parametrize(
    "sizes, times",
    [([1, 2], [1.0, 0.0]), ([1, 2], [1.0, -1.0]), ([0, 2], [1.0, 1.0]), ([1, 2], [1.0])],
)
def test_bad_timings_are_refused(sizes, times):
    with pytest.raises(ValueError, match="fit_slope"):
        fit_slope(sizes, times)


def test_the_t_quantile_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for dof in range(1, 80):
        assert t_quantile_975(dof) == pytest.approx(stats.t.ppf(0.975, dof), abs=6e-4), dof
    assert math.isnan(t_quantile_975(0))


def test_the_spread_is_the_interquartile_range_over_the_median():
    assert relative_spread([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(2.0 / 3.0)
    assert relative_spread([1.0, 1.0, 1.0, 1.0, 9.0]) == 0.0  # one outlier moves no quartile
    assert math.isnan(relative_spread([1.0]))


# -- judging a fit ------------------------------------------------------------------------
FLOOR = 1e-4


def test_clean_times_above_the_floor_raise_no_problem():
    times = [FLOOR + 1.5e-6 * d**2 for d in SIZES]  # 2.5x the floor already at d = 10
    fit, problems = judge_slope(SIZES, times, floors=[FLOOR] * 5, spreads=[0.05] * 5)
    assert problems == []
    assert fit.sizes == SIZES


def test_flat_times_at_the_floor_are_named():
    rng = np.random.default_rng(1)
    times = [FLOOR * (1 + 0.05 * rng.random()) for _ in SIZES]
    fit, problems = judge_slope(SIZES, times, floors=[FLOOR] * 5)
    assert any("within 2x of the fixed cost" in p for p in problems)
    assert fit.sizes == SIZES  # nothing clears the floor: everything fitted, and said so


def test_sizes_near_the_floor_are_left_out_when_three_remain():
    times = [FLOOR * 1.1, FLOOR * 1.5, FLOOR * 3, FLOOR * 12, FLOOR * 48]
    fit, problems = judge_slope(SIZES, times, floors=[FLOOR] * 5)
    assert fit.sizes == (50, 100, 200) and problems == []
    assert fit.slope == pytest.approx(2.0)


def test_only_two_sizes_above_the_floor_is_named():
    times = [FLOOR, FLOOR, FLOOR * 1.2, FLOOR * 3, FLOOR * 12]
    fit, problems = judge_slope(SIZES, times, floors=[FLOOR] * 5, size_name="d")
    assert fit.sizes == SIZES
    assert "only at d = 100, 200" in problems[0]


def test_a_large_uncertainty_is_named():
    times = [1.0, 9.0, 2.0, 40.0, 8.0]
    fit, problems = judge_slope(SIZES, times)
    assert fit.err > MAX_SLOPE_ERR
    assert any("uncertainty" in p for p in problems)


def test_a_negative_slope_is_named():
    # the teacher's run: backprop times at d <= 32 falling by timer noise, slope -0.32
    sizes = (4, 8, 16, 32)
    times = [1.3e-4 * d**-0.32 for d in sizes]
    fit, problems = judge_slope(sizes, times)
    assert fit.slope == pytest.approx(-0.32)
    assert any("negative" in p for p in problems)


def test_fewer_than_three_sizes_is_named():
    _, problems = judge_slope([10, 20], [1.0, 4.0])
    assert any("only 2 sizes" in p for p in problems)
    _, problems = judge_slope([10], [1.0])
    assert any("one size" in p for p in problems)


def test_noisy_repeats_are_named_where_they_were_fitted():
    times = [1e-8 * d**2 for d in SIZES]
    spreads = [math.nan, 0.1, 0.6, 0.1, 0.1]
    _, problems = judge_slope(SIZES, times, spreads=spreads, size_name="d")
    assert problems == ["the repeats disagree by more than 25% (interquartile range / median) "
                        "at d = 50"]  # fmt: skip
