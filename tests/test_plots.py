"""The activation plot: derivatives by backprop against the closed forms; the picture; the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from chainrule.cli import main
from chainrule.viz.plots import ACTIVATIONS, activation_curves, activation_figure, plot_activations

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GRID = np.union1d(np.linspace(-6.0, 6.0, 121), [-1e-12, 0.0, 1e-12])  # 0 exactly, once


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_the_grid_includes_the_kink():
    assert (GRID == 0.0).sum() == 1


def test_sigmoid_derivative_is_sigma_times_one_minus_sigma():
    curve = activation_curves(GRID)["sigmoid"]
    s = _sigmoid(GRID)
    np.testing.assert_allclose(curve.value, s, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(curve.derivative, s * (1 - s), rtol=1e-12, atol=1e-300)
    assert curve.derivative[GRID == 0.0].tolist() == [0.25]


def test_tanh_derivative_is_one_minus_tanh_squared():
    curve = activation_curves(GRID)["tanh"]
    np.testing.assert_allclose(curve.value, np.tanh(GRID), rtol=1e-14, atol=0)
    np.testing.assert_allclose(curve.derivative, 1 - np.tanh(GRID) ** 2, rtol=1e-12, atol=1e-300)
    assert curve.derivative[GRID == 0.0].tolist() == [1.0]


def test_relu_derivative_is_the_indicator_of_x_positive_and_zero_at_zero():
    curve = activation_curves(GRID)["relu"]
    np.testing.assert_array_equal(curve.value, np.maximum(GRID, 0.0))
    np.testing.assert_array_equal(curve.derivative, (GRID > 0).astype(float))
    assert curve.derivative[GRID == 0.0].tolist() == [0.0]
    assert curve.kinks == (0.0,) and curve.kink_note == "relu'(0) = 0"


@pytest.mark.parametrize("alpha", [0.1, 0.0, 0.3, 1.0])
def test_leaky_relu_derivative_is_one_above_zero_and_alpha_at_or_below(alpha):
    curve = activation_curves(GRID, negative_slope=alpha)["leaky_relu"]
    np.testing.assert_array_equal(curve.value, np.maximum(GRID, alpha * GRID))
    np.testing.assert_array_equal(curve.derivative, np.where(GRID > 0, 1.0, alpha))
    assert curve.derivative[GRID == 0.0].tolist() == [alpha]


def test_default_leaky_slope_is_the_handouts_point_one():
    curve = activation_curves([-2.0, 0.0, 2.0])["leaky_relu"]
    assert curve.derivative.tolist() == [0.1, 0.1, 1.0]
    assert "0.1" in curve.title


def test_all_four_nonlinearities_are_there_in_order():
    assert list(activation_curves([0.0])) == list(ACTIVATIONS)
    assert ACTIVATIONS == ("sigmoid", "tanh", "relu", "leaky_relu")


@pytest.mark.parametrize("slope", [-0.1, 1.5, float("nan"), float("inf"), "steep"])
def test_a_bad_slope_is_refused(slope):
    with pytest.raises(ValueError, match="between 0 and 1"):
        activation_curves([0.0], negative_slope=slope)


@pytest.mark.parametrize("xs", [[], [[0.0, 1.0]], [0.0, np.nan]])
def test_a_bad_grid_is_refused(xs):
    with pytest.raises(ValueError, match="xs"):
        activation_curves(xs)


def _png_pixels(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    return imread(path)


def test_the_png_exists_and_is_not_blank(tmp_path):
    out = plot_activations(tmp_path / "sub" / "activations.png")
    assert out == tmp_path / "sub" / "activations.png" and out.is_file()
    pixels = _png_pixels(out)
    assert pixels.ndim == 3 and pixels.shape[0] > 400 and pixels.shape[1] > 400
    assert pixels[..., :3].var() > 1e-3
    # the curves are in colour: some pixels are far from grey
    rgb = pixels[..., :3]
    assert (rgb.max(axis=-1) - rgb.min(axis=-1) > 0.3).mean() > 0.002


def test_the_slope_changes_the_picture(tmp_path):
    a = imread(plot_activations(tmp_path / "a.png"))
    b = imread(plot_activations(tmp_path / "b.png", negative_slope=0.5))
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_svg_by_extension(tmp_path):
    out = plot_activations(tmp_path / "activations.SVG")
    text = out.read_text()
    assert "<svg" in text and text.rstrip().endswith("</svg>")


@pytest.mark.parametrize("name", ["activations.jpg", "activations", "activations.pdf"])
def test_an_unknown_extension_is_refused_and_nothing_is_written(tmp_path, name):
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        plot_activations(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def _panel(fig, title_start):
    (ax,) = [ax for ax in fig.axes if ax.get_title().startswith(title_start)]
    return ax


def _points(ax, filled):
    """(x, y) of single-point markers; filled dots or open circles (white face)."""
    found = []
    for line in ax.get_lines():
        x, y = line.get_xdata(), line.get_ydata()
        if len(x) == 1 and line.get_marker() == "o":
            is_open = line.get_markerfacecolor() in ("white", (1.0, 1.0, 1.0, 1.0))
            if is_open != filled:
                found.append((float(x[0]), float(y[0])))
    return found


def test_the_kink_conventions_are_drawn_as_the_library_computes_them():
    fig = activation_figure(negative_slope=0.2, xs=np.linspace(-3, 3, 50))  # 0 not in xs
    relu, leaky = _panel(fig, "ReLU"), _panel(fig, "leaky ReLU")
    assert _points(relu, filled=True) == [(0.0, 0.0)]  # relu'(0) = 0
    assert _points(relu, filled=False) == [(0.0, 1.0)]  # the right-hand limit, not taken
    assert _points(leaky, filled=True) == [(0.0, 0.2)]
    assert _points(leaky, filled=False) == [(0.0, 1.0)]
    assert _points(_panel(fig, "tanh"), filled=True) == []
    # no dashed line crosses the jump: each dashed piece is constant
    for line in relu.get_lines():
        if line.get_linestyle() == "--":
            assert np.ptp(line.get_ydata()) == 0.0
    assert len(fig.axes) == 4


def test_function_solid_and_derivative_dashed_on_every_panel():
    fig = activation_figure()
    for ax in fig.axes:
        styles = {line.get_linestyle() for line in ax.get_lines() if len(line.get_xdata()) > 1}
        assert {"-", "--"} <= styles, ax.get_title()


# -- the command ---------------------------------------------------------------------------
def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_plot_activations_writes_the_png(tmp_path, capsys):
    out = tmp_path / "act.png"
    code, stdout, err = run(capsys, "plot", "activations", "--out", out)
    assert code == 0, err
    assert _png_pixels(out)[..., :3].var() > 1e-3
    assert str(out) in stdout and "0.1" in stdout


def test_cli_slope_option(tmp_path, capsys):
    out = tmp_path / "act.svg"
    code, stdout, err = run(capsys, "plot", "activations", "--out", out, "--slope", "0.25")
    assert code == 0, err
    assert out.read_text().rstrip().endswith("</svg>")
    assert "0.25" in stdout


@pytest.mark.parametrize(
    "argv, words",
    [
        (["plot", "histogram", "--out", "{tmp}/x.png"], "unknown plot 'histogram'"),
        (["plot", "activations", "--out", "{tmp}/x.jpg"], ".png or .svg"),
        (["plot", "activations", "--out", "{tmp}/x.png", "--slope", "abc"], "--slope"),
        (["plot", "activations", "--out", "{tmp}/x.png", "--slope", "-0.5"], "--slope"),
        (["plot", "activations", "--out", "{tmp}/x.png", "--slope", "nan"], "--slope"),
        (["plot", "activations", "--out", "{tmp}/x.png", "--slope", "2"], "--slope"),
    ],
)
def test_cli_plot_bad_input_is_one_line_and_exit_1(tmp_path, capsys, argv, words):
    code, stdout, err = run(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 1
    assert stdout == ""
    assert err.count("\n") == 1 and err.startswith("chainrule plot: ")
    assert words in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_plot_into_an_unwritable_place_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = run(capsys, "plot", "activations", "--out", blocker / "act.png")
    assert code == 1 and err.count("\n") == 1 and "cannot write" in err
