"""The cost report: counted evaluations, real times, agreeing gradients, slopes, the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.image import imread

import chainrule as cr
from chainrule.cli import main
from chainrule.teach.costs import CostReport, CostRow, two_layer_loss
from chainrule.viz.plots import cost_figure

SIZES = (4, 8, 16)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report() -> CostReport:
    return cr.cost_report(sizes=SIZES, repeats=2)


def test_one_row_per_size_in_increasing_order(report):
    assert [row.d for row in report.rows] == list(SIZES)
    assert [row.entries for row in report.rows] == [d * d for d in SIZES]


def test_central_differences_make_exactly_two_d_squared_evaluations(report):
    assert [row.evals_numerical for row in report.rows] == [2 * d * d for d in SIZES]


def test_backprop_is_one_forward_and_one_backward(report):
    for row in report.rows:
        assert (row.evals_backprop, row.backward_passes) == (1, 1)


def test_times_are_positive_and_ratios_follow_from_them(report):
    for row in report.rows:
        times = (row.t_numerical, row.t_backprop, row.t_forward, row.t_backward)
        assert all(t > 0 and math.isfinite(t) for t in times)
        assert row.ratio == row.t_numerical / row.t_backprop
        assert row.backward_over_forward == row.t_backward / row.t_forward
        assert row.runs_numerical >= 1 and row.runs_backprop == 2


def test_the_two_gradients_agree(report):
    for row in report.rows:
        assert row.max_abs_grad > 1e-3  # a real gradient, not zeros on both sides
        assert row.max_abs_diff < 1e-7
    assert report.max_abs_diff == max(row.max_abs_diff for row in report.rows)


def test_the_backprop_gradient_is_the_handouts_closed_form():
    # dl/dW1 = (W2^T r * (1 - tanh^2(u))) x^T with u = W1 x + b, r = W2 tanh(u) - y
    rng = np.random.default_rng(3)
    W1, W2 = rng.normal(size=(2, 5, 5))
    x, b, y = rng.normal(size=(3, 5))
    u = W1 @ x + b
    r = W2 @ np.tanh(u) - y
    expected = np.outer((W2.T @ r) * (1 - np.tanh(u) ** 2), x)
    got = cr.grad(two_layer_loss)(W1, W2, x, b, y)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert float(two_layer_loss(W1, W2, x, b, y)) == pytest.approx(0.5 * r @ r, rel=1e-14)


def test_slopes_are_fitted_and_finite(report):
    assert set(report.slopes) == set(report.fits) == {"numerical", "backprop"}
    assert all(math.isfinite(s) for s in report.slopes.values())
    for key, fit in report.fits.items():
        rows = [row for row in report.rows if row.d in fit.sizes]
        assert len(rows) == len(fit.sizes) >= 3  # every size, or the 3+ above the fixed cost
        times = [getattr(row, f"t_{key}") for row in rows]
        (slope, _), cov = np.polyfit(np.log(fit.sizes), np.log(times), 1, cov=True)
        assert report.slopes[key] == fit.slope == pytest.approx(slope)
        assert report.slope_errors[key] == fit.err == pytest.approx(math.sqrt(cov[0, 0]))


def test_times_are_medians_of_every_run_kept(report):
    for row in report.rows:
        assert len(row.times_backprop) == row.runs_backprop == 2
        assert len(row.times_numerical) == row.runs_numerical
        assert row.t_backprop == np.median(row.times_backprop)
        assert row.t_numerical == np.median(row.times_numerical)


def test_the_fixed_cost_is_measured_and_bounds_every_time(report):
    cost = report.fixed_cost
    assert cost is not None and all(v > 0 for v in cost.values())
    for row in report.rows:
        assert cost["backprop"] <= row.t_backprop
        assert cost["numerical"] * row.evals_numerical <= row.t_numerical


def test_the_table_mentions_every_size_and_the_counts(report):
    text = str(report)
    lines = text.splitlines()
    for d in SIZES:
        assert any(line.split()[:2] == [str(d), f"{2 * d * d:,}"] for line in lines), d
    assert "1 fwd + 1 bwd" in text and "slope" in text and "max |numerical - backprop|" in text
    assert "W1" in text


def test_the_plot_is_a_non_blank_png(report, tmp_path):
    out = report.plot(tmp_path / "cost.png")
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    assert imread(out)[..., :3].var() > 1e-3


def test_the_plot_refuses_an_unknown_extension(report, tmp_path):
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        report.plot(tmp_path / "cost.gif")


def test_the_plot_shows_the_fitted_slopes_in_the_legend(report, tmp_path):
    out = report.plot(tmp_path / "cost.svg")
    text = out.read_text()
    for fit in report.fits.values():
        assert f"slope {fit.slope:.2f} ± {fit.err:.2f}" in text


def test_seeded_data_gives_the_same_gradients_and_counts():
    a = cr.cost_report(sizes=(3,), repeats=1, seed=5).rows[0]
    b = cr.cost_report(sizes=(3,), repeats=1, seed=5).rows[0]
    assert (a.max_abs_grad, a.evals_numerical) == (b.max_abs_grad, b.evals_numerical)


def test_progress_is_called_with_each_size():
    seen = []
    cr.cost_report(sizes=(3, 2, 3), repeats=1, progress=seen.append)
    assert seen == [2, 3]  # sorted, duplicates measured once


# -- your own function ---------------------------------------------------------------------
def test_your_own_function_with_respect_to_its_first_argument():
    calls = []

    def f(x, w):
        calls.append(1)
        return cr.sum(cr.sin(x) * w)

    x, w = np.linspace(-1, 1, 7), np.arange(7.0)
    report = cr.cost_report(f, x, w, repeats=1)
    (row,) = report.rows
    assert (row.d, row.entries, row.evals_numerical, row.evals_backprop) == (7, 7, 14, 1)
    assert row.max_abs_diff < 1e-8 and row.max_abs_grad == pytest.approx(
        np.abs(np.cos(x) * w).max()
    )
    assert all(math.isnan(s) for s in report.slopes.values())
    assert "no fit" in str(report) and "f with respect to its first argument" in str(report)
    # counted: 14 + the timed reruns of central differences, 1 + 1 timed run of backprop
    assert len(calls) == row.runs_numerical * 14 + 2


def test_your_own_function_that_ignores_its_argument_is_refused():
    with pytest.raises(ValueError, match="does not depend on its first argument"):
        cr.cost_report(lambda x, c: cr.sum(c * c), np.ones(3), np.ones(2))


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: cr.cost_report(sizes=(0, 4)), ValueError),
        (lambda: cr.cost_report(sizes=()), ValueError),
        (lambda: cr.cost_report(sizes=(2.5,)), ValueError),
        (lambda: cr.cost_report(sizes=(True,)), ValueError),
        (lambda: cr.cost_report(sizes=(4,), repeats=0), ValueError),
        (lambda: cr.cost_report(lambda x: cr.sum(x)), TypeError),
        (lambda: cr.cost_report(lambda x: cr.sum(x), np.ones(2), sizes=(4,)), TypeError),
        (lambda: cr.cost_report(None, np.ones(2)), TypeError),
        (lambda: cr.cost_report(lambda x: x * 2, np.ones(2)), TypeError),
        (lambda: cr.cost_report(lambda x: cr.sum(x), np.ones(0)), ValueError),
    ],
)
def test_bad_arguments_are_refused(call, error):
    with pytest.raises(error):
        call()


# -- the command ---------------------------------------------------------------------------
def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_cost_prints_the_table_and_the_slopes(capsys):
    code, out, err = run(capsys, "cost", "--sizes", "3,6", "--repeats", "1")
    assert code == 0, err
    lines = out.splitlines()
    for d in (3, 6):
        assert any(line.split()[:2] == [str(d), f"{2 * d * d}"] for line in lines)
    assert "fitted slopes" in out and "1 fwd + 1 bwd" in out
    assert "measuring d = 6" in err


def test_cli_cost_saves_the_plot(tmp_path, capsys):
    out_path = tmp_path / "plots" / "cost.png"
    code, out, err = run(capsys, "cost", "--sizes", "3,5", "--repeats", "1", "--plot", out_path)
    assert code == 0, err
    assert out_path.read_bytes()[:8] == PNG_SIGNATURE
    assert str(out_path) in out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["cost", "--sizes", "10,x"], "--sizes"),
        (["cost", "--sizes", "0"], "--sizes"),
        (["cost", "--sizes", ""], "--sizes"),
        (["cost", "--sizes", "4,-2"], "--sizes"),
        (["cost", "--sizes", "2.5"], "--sizes"),
        (["cost", "--sizes", "4", "--repeats", "0"], "--repeats"),
        (["cost", "--sizes", "4", "--repeats", "many"], "--repeats"),
        (["cost", "--sizes", "4", "--plot", "{tmp}/cost.jpg"], ".png or .svg"),
    ],
)
def test_cli_cost_bad_input_is_one_line_and_exit_1(tmp_path, capsys, argv, words):
    code, out, err = run(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("chainrule cost: ")
    assert words in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_the_tail_slopes_use_the_two_largest_sizes_only(report):
    (*_, a, b) = report.rows
    expected = math.log(b.t_numerical / a.t_numerical) / math.log(b.d / a.d)
    assert report.tail_slopes["numerical"] == pytest.approx(expected)
    assert "two largest sizes" in " ".join(str(report).split())


# -- slopes from made-up timings: known answers, whatever the machine ------------------------
DS = (10, 20, 50, 100, 200)
FIXED = {"numerical": 1e-5, "backprop": 1e-4}  # per evaluation, per forward + backward


def made_up(times_numerical, times_backprop, ds=DS, runs=None, fixed_cost=FIXED) -> CostReport:
    rows = [
        CostRow(
            d=d,
            entries=d * d,
            evals_numerical=2 * d * d,
            evals_backprop=1,
            backward_passes=1,
            t_numerical=tn,
            t_backprop=tb,
            t_forward=tb / 3,
            t_backward=2 * tb / 3,
            max_abs_diff=1e-9,
            max_abs_grad=1.0,
            runs_numerical=1,
            runs_backprop=len(runs[i]) if runs else 1,
            times_numerical=(tn,),
            times_backprop=tuple(runs[i]) if runs else (tb,),
        )
        for i, (d, tn, tb) in enumerate(zip(ds, times_numerical, times_backprop))
    ]
    return CostReport(rows, what="made up", handout=True, repeats=5, fixed_cost=fixed_cost)


@pytest.fixture
def clean() -> CostReport:
    # well past the fixed costs: t = c d^4 and c d^2, exactly
    return made_up([1e-5 * d**4 for d in DS], [3e-4 * d**2 for d in DS])


@pytest.fixture
def flat() -> CostReport:
    # backprop at its fixed cost, the numerical gradient 2 d^2 evaluations of a fixed cost
    rng = np.random.default_rng(2)
    return made_up(
        [2 * d * d * 1e-5 * (1 + 0.1 * rng.random()) for d in DS],
        [1e-4 * (1 + 0.1 * rng.random()) for d in DS],
    )


def test_clean_timings_give_the_exponents_exactly_and_no_warning(clean):
    assert clean.slopes == {"numerical": pytest.approx(4.0), "backprop": pytest.approx(2.0)}
    assert all(err == pytest.approx(0.0, abs=1e-9) for err in clean.slope_errors.values())
    assert clean.fits["backprop"].sizes == DS
    assert clean.warnings == []
    text = " ".join(str(clean).split())
    assert "numerical 4.00 ± 0.00 [4.00, 4.00] over d = 10, 20, 50, 100, 200" in text
    assert "backprop 2.00 ± 0.00" in text and "WARNING" not in text


def test_flat_timings_warn_and_say_what_to_measure(flat):
    assert len(flat.warnings) == 2
    for key, warning in zip(("numerical", "backprop"), flat.warnings):
        assert warning.startswith(f"the {key} slope {flat.fits[key]}")
        assert "within 2x of the fixed cost" in warning and "--sizes 200,400,800" in warning
    assert (
        "(expected 2)" in flat.warnings[1] and "100 µs per forward + backward" in flat.warnings[1]
    )
    assert "WARNING: the backprop slope" in " ".join(str(flat).split())


def test_the_teachers_negative_slope_is_not_shown_without_a_warning():
    ds = (4, 8, 16, 32)
    report = made_up([1e-5 * d**4 for d in ds], [1.3e-4 * d**-0.32 for d in ds], ds=ds)
    assert report.slopes["backprop"] == pytest.approx(-0.32)
    (warning,) = report.warnings
    assert "backprop slope -0.32 ± 0.00 (expected 2)" in warning and "negative" in warning
    assert "--repeats" in warning


def test_noisy_repeats_warn_and_ask_for_more_repeats(clean):
    runs = [[3e-4 * d**2 * f for f in (0.5, 1.0, 1.0, 1.8, 2.5)] for d in DS]
    noisy = made_up([1e-5 * d**4 for d in DS], [3e-4 * d**2 for d in DS], runs=runs)
    assert noisy.rows[0].spread_backprop == pytest.approx(0.8)
    (warning,) = noisy.warnings
    assert "repeats disagree" in warning and "--repeats 15" in warning
    assert "--sizes" not in warning  # the sizes were fine: only the repeats need more


def test_sizes_at_the_fixed_cost_are_left_out_of_the_fit_and_named():
    # backprop: 1.2x, 1.5x the fixed cost at d = 10, 20, then c d^2 well above it
    times = [1.2e-4, 1.5e-4, 2.5e-3, 1e-2, 4e-2]
    report = made_up([1e-5 * d**4 for d in DS], times)
    assert report.fits["backprop"].sizes == (50, 100, 200)
    assert report.slopes["backprop"] == pytest.approx(2.0) and report.warnings == []
    assert "backprop 2.00 ± 0.00 [2.00, 2.00] over d = 50, 100, 200" in " ".join(
        str(report).split()
    )


def test_fewer_than_three_sizes_warn():
    report = made_up([1.0, 16.0], [1e-3, 4e-3], ds=(100, 200))
    assert len(report.warnings) == 2 and all("only 2 sizes" in w for w in report.warnings)


def _reference_lines(report):
    (time_ax, _) = cost_figure(report).axes
    return {ln.get_label(): ln for ln in time_ax.get_lines() if ln.get_linestyle() == "--"}


def test_the_plot_draws_the_expected_slopes_as_dashed_lines(clean):
    lines = _reference_lines(clean)
    assert set(lines) == {"slope 4 (expected: numerical)", "slope 2 (expected: backprop)"}
    for label, k in (("slope 4 (expected: numerical)", 4), ("slope 2 (expected: backprop)", 2)):
        x, y = (np.asarray(v, float) for v in lines[label].get_data())
        assert np.polyfit(np.log(x), np.log(y), 1)[0] == pytest.approx(k)
        # anchored at the measured point of the largest d
        key = label.split(": ")[1].rstrip(")")
        assert (x[-1], y[-1]) == (200, pytest.approx(getattr(clean.rows[-1], f"t_{key}")))


def test_the_plot_says_when_a_fit_is_not_meaningful(flat, clean, tmp_path):
    text = flat.plot(tmp_path / "flat.svg").read_text()
    assert "slope 4 (expected: numerical)" in text and "slope 2 (expected: backprop)" in text
    assert "Note: the backprop slope is not meaningful here" in text
    assert "(not meaningful)" in text  # in the legend too
    assert "not meaningful" not in clean.plot(tmp_path / "clean.svg").read_text()


def test_your_own_function_has_no_reference_lines_and_no_warnings():
    report = cr.cost_report(lambda x: cr.sum(x * x), np.ones(3), repeats=1)
    assert report.warnings == [] and report.expected_slopes == {}
    assert _reference_lines(report) == {}


def test_cli_cost_prints_slopes_with_their_errors(capsys):
    code, out, err = run(capsys, "cost", "--sizes", "2,3,4", "--repeats", "2")
    assert code == 0, err
    assert "±" in out and "[95% interval]" in " ".join(out.split())
    assert "fixed cost of a call" in out


def test_cli_cost_prints_the_warnings(capsys, monkeypatch, flat):
    import chainrule.teach.costs as costs

    monkeypatch.setattr(costs, "cost_report", lambda **kw: flat)
    code, out, err = run(capsys, "cost", "--sizes", ",".join(map(str, DS)))
    assert code == 0, err
    text = " ".join(out.split())
    for warning in flat.warnings:
        assert f"WARNING: {warning}" in text
