"""The cost report: counted evaluations, real times, agreeing gradients, slopes, the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.image import imread

import chainrule as cr
from chainrule.cli import main
from chainrule.teach.costs import CostReport, two_layer_loss

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
    assert set(report.slopes) == {"numerical", "backprop"}
    assert all(math.isfinite(s) for s in report.slopes.values())
    ds = np.log([row.d for row in report.rows])
    expected = np.polyfit(ds, np.log([row.t_numerical for row in report.rows]), 1)[0]
    assert report.slopes["numerical"] == pytest.approx(expected)


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
    assert f"slope {report.slopes['numerical']:.2f}" in text
    assert f"slope {report.slopes['backprop']:.2f}" in text


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
