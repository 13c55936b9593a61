"""``chainrule explain``: the restricted parser, the report's numbers, the command line."""

from __future__ import annotations

import builtins
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule.cli import main
from chainrule.teach import explain as explain_module
from chainrule.teach.explain import ExplainError, explain, functions, parse_at
from chainrule.viz.graph_data import Graph

MARKER = "MARKER"


def sig(z: float) -> float:
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture
def never_built(monkeypatch):
    """Fail the test if anything of EXPR is evaluated."""

    def build(self, node):
        raise AssertionError(f"evaluated {node!r} of a refused expression")

    monkeypatch.setattr(explain_module._Builder, "build", build)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- the allow-list --------------------------------------------------------------------------
def test_allowed_functions_come_from_the_table():
    known = functions()
    assert {"tanh", "sigmoid", "relu", "leaky_relu", "exp", "log", "sum", "mean"} <= set(known)
    for name, op in known.items():
        assert op is cr.ops.OPS[name]
        assert op.family in ("elementwise", "nn", "reduction") and op.nin in (1, 2)
    # not differentiable, three inputs, an integer input, a comparison, not by name
    for name in ("sign", "where", "cross_entropy", "argmax", "equal", "matmul", "reshape"):
        assert name not in known


@pytest.mark.parametrize("name", sorted(functions()))
def test_every_allowed_function_explains_and_checks(name):
    op = functions()[name]
    expr = f"{name}(x)" if op.nin == 1 else f"{name}(x, y)"
    at = {"x": 1.7 if name == "arccosh" else 0.7, "y": 0.3}  # (inside each domain)
    e = explain(expr, at)
    top = e.step(e.forward[-1].name)
    assert len(top.edges) == op.nin
    for edge in top.edges:
        assert edge.derivative.startswith(f"d {expr}/d")
        assert np.isfinite(edge.local)
        assert edge.local * edge.upstream == pytest.approx(edge.contribution, rel=1e-12)
    for d in e.derivatives:
        assert d.difference < 1e-6, (name, d)


@pytest.mark.parametrize(
    ("expr", "closed"),
    [
        ("x + y", (1.0, 1.0)),
        ("x - y", (1.0, -1.0)),
        ("x * y", (0.5, 2.0)),
        ("x / y", (1 / 0.5, -2.0 / 0.25)),
        ("x ** y", (0.5 * 2.0**-0.5, 2.0**0.5 * np.log(2.0))),
        ("-x + +y", (-1.0, 1.0)),
        ("2.5 * x - 1e-1 * y", (2.5, -0.1)),
        ("leaky_relu(-x, 0.2) + y", (-0.2, 1.0)),
        ("leaky_relu(-x, negative_slope=0.3) + y", (-0.3, 1.0)),
        ("clip(x, 0, 1) + clip(y, max=0.25)", (0.0, 0.0)),
        ("sum(x) + mean(y, axis=None, keepdims=False)", (1.0, 1.0)),
    ],
)
def test_allowed_constructs_give_closed_forms(expr, closed):
    e = explain(expr, {"x": 2.0, "y": 0.5})
    assert [float(d.backprop) for d in e.derivatives] == pytest.approx(closed, rel=1e-12)


@pytest.mark.parametrize(
    ("expr", "what"),
    [
        ("os.system", "refused attribute access (os.system)"),
        ("x.grad", "refused attribute access (x.grad)"),
        ("print(x)", "unknown function 'print'"),
        ("eval('x')", "unknown function 'eval'"),
        ("tanh(x)(x)", "calls of anything but a chainrule function"),
        ("tanh(x, foo=1)", "refused keyword argument foo="),
        ("leaky_relu(x, slope=1)", "refused keyword argument slope="),
        ("tanh(x, **x)", "refused ** arguments"),
        ("maximum(*x)", "refused starred arguments"),
        ("import os", "refused import statements"),
        ("from os import system", "refused import statements"),
        ("x = 1", "x is an input variable (given in --at) and cannot be assigned"),
        ("h = x + 1; x = h", "x is an input variable (given in --at) and cannot be assigned"),
        ("x; x", "only the last statement may be a bare expression"),
        ("h = x; h + 1", "name an expression of the variables"),
        ("h = 2 * x; h = 3 * x; h", "h is assigned twice"),
        ("a.b = x; x", "a plain name on the left"),
        ("a, b = x; x", "a plain name on the left"),
        ("a = b = 2 * x; a", "a plain name on the left"),
        ("h += x; h", "refused augmented assignments"),
        ("h: int = x; h", "refused annotated assignments"),
        ("h + 1; h = tanh(x)", "only the last statement"),
        ("k = h + 1; h = tanh(x); k", "h is used before it is assigned"),
        ("h = __import__('os'); h", "unknown function '__import__'"),
        ("if x: x", "refused If statements"),
        ("(y := x)", "refused assignment expressions"),
        ("[x for x in x]", "refused comprehensions"),
        ("{x for x in x}", "refused comprehensions"),
        ("sum(x for x in x)", "refused generator expressions"),
        ("lambda: x", "refused lambda functions"),
        ("(lambda: x)()", "refused lambda functions"),
        ("'abc'", "refused strings ('abc')"),
        ("x * 'abc'", "refused strings ('abc')"),
        ("f'{x}'", "refused f-strings"),
        ("b'x'", "refused bytes"),
        ("1j * x", "refused complex numbers"),
        ("True * x", "refused booleans"),
        ("x[0]", "refused subscripts (x[0])"),
        ("x < 1", "refused comparisons"),
        ("x and x", "refused and/or"),
        ("x if x else x", "refused conditional expressions"),
        ("x // 2", "refused the operator //"),
        ("x % 2", "refused the operator %"),
        ("~x", "refused the operator ~"),
        ("not x", "refused the operator not"),
        ("[x]", "refused lists"),
        ("(x, x)", "refused tuples"),
        ("{'a': x}", "refused dicts"),
        ("x * z", "z is used in EXPR but not given in --at"),
        ("leaky_relu(x, x)", "a parameter of leaky_relu that is not a number"),
        ("leaky_relu(x, -True)", "a parameter of leaky_relu that is not a number"),
        ("clip(x, min='a')", "a parameter of clip that is not a number"),
        ("leaky_relu(x, 0.1, negative_slope=0.2)", "negative_slope is given twice"),
        ("maximum(x)", "maximum takes 2 inputs"),
        ("tanh(x, 1)", "tanh takes 1 input"),
        ("x +", "is not an expression"),
        ("", "EXPR is empty"),
        ("(" * 300 + "x" + ")" * 300, "not an expression"),
        ("+".join(["x"] * 5000), "nested too deeply"),
    ],
)
def test_refused_with_one_line_naming_the_construct(never_built, expr, what):
    with pytest.raises(ExplainError) as info:
        explain(expr, {"x": 1.0})
    message = str(info.value)
    assert what in message and "\n" not in message
    assert isinstance(info.value, ExplainError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os').system('touch MARKER')",
        "__import__('os')",
        "open('MARKER', 'w')",
        "exec(\"open('MARKER', 'w')\")",
        "(lambda: open('MARKER', 'w'))()",
        "[open('MARKER', 'w') for _ in x]",
        "x if open('MARKER', 'w') else x",
        "x + tanh(x).__class__.__init__.__globals__['os'].system('touch MARKER')",
    ],
)
def test_refused_expression_with_side_effects_runs_nothing(tmp_path, monkeypatch, expr):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ExplainError, match="refused"):
        explain(expr, {"x": 1.0})
    assert not (tmp_path / MARKER).exists()


def test_no_eval_or_exec_is_used(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    assert float(explain("x**4 + x**2", {"x": 3.0}).derivative("x").backprop) == 114.0


# -- the report's numbers --------------------------------------------------------------------
def test_polynomial_forward_backward_and_check():
    e = explain("x**4 + x**2", {"x": 3.0})
    assert [(r.name, float(r.value)) for r in e.forward] == [
        ("x", 3.0),
        ("x ** 4", 81.0),
        ("x ** 2", 9.0),
        ("x ** 4 + x ** 2", 90.0),
    ]
    x = e.step("x")
    assert sorted(float(v) for _, v in x.terms) == [6.0, 108.0]
    assert x.gradient_line in ("dL/dx = 6 + 108 = 114", "dL/dx = 108 + 6 = 114")
    (edge,) = e.step("x ** 4").edges
    assert edge.derivative.startswith("d(x ** 4)/dx = ") and edge.derivative.endswith("= 108")
    assert "3^(4-1)" in edge.derivative  # the numbers filled in
    assert float(edge.local) == 108.0 and float(edge.contribution) == 108.0
    assert edge.passes == "1 * 108 = 108"
    d = e.derivative("x")
    assert float(d.backprop) == 114.0
    assert abs(float(d.numerical) - 114.0) < 1e-6 and d.difference < 1e-6
    assert e.step("x ** 4 + x ** 2").gradient_line == "dL/d(x ** 4 + x ** 2) = 1"


def test_steps_follow_the_engine_and_sums_follow_the_edges():
    e = explain("sigmoid(x) * (1 - sigmoid(x)) + x * x", {"x": 0.3})
    traced = e.graph.backward_steps()
    assert [s.node for s in e.steps] == [s.node.name for s in traced]
    fan_out = {n.name: 0 for n in e.graph.nodes}
    for parent, _ in e.graph.edges:
        fan_out[parent.name] += 1
    for step in e.steps[1:]:
        assert len(step.terms) == fan_out[step.node]
        assert sum(float(v) for _, v in step.terms) == pytest.approx(float(step.grad))
    # the shared sub-expression is one node, with two uses
    assert [r.name for r in e.forward].count("sigmoid(x)") == 1
    assert len(e.step("sigmoid(x)").terms) == 2
    # x: via sigmoid(x) and twice via x * x
    assert len(e.step("x").terms) == 3
    s = sig(0.3)
    closed = s * (1 - s) * (1 - s) - s * s * (1 - s) + 2 * 0.3
    assert float(e.derivative("x").backprop) == pytest.approx(closed, rel=1e-12)


def test_forward_is_topological():
    e = explain("tanh(x) * exp(-y) + x", {"x": 0.5, "y": 1.0})
    seen: set[str] = set()
    parents = {n.name: [p.name for p in n.parents] for n in e.graph.nodes}
    for row in e.forward:
        assert all(p in seen for p in parents[row.name])
        seen.add(row.name)
    assert e.forward[-1].name == "tanh(x) * exp(-y) + x"


def test_sigmoid_partials_against_closed_forms():
    w, x, b = 0.5, 2.0, -0.5
    e = explain("sigmoid(w*x + b)", {"w": w, "x": x, "b": b})
    s = sig(w * x + b)
    closed = {"w": s * (1 - s) * x, "x": s * (1 - s) * w, "b": s * (1 - s)}
    assert float(e.forward[-1].value) == pytest.approx(s, rel=1e-15)
    for name, value in closed.items():
        d = e.derivative(name)
        assert float(d.backprop) == pytest.approx(value, rel=1e-12)
        assert float(d.numerical) == pytest.approx(value, rel=1e-7)
        assert d.difference < 1e-8
    (edge,) = e.step("sigmoid(w * x + b)").edges
    assert edge.derivative.startswith("d sigmoid(w * x + b)/d(w * x + b) = ")
    assert "sigmoid(0.5)" in edge.derivative
    assert float(edge.local) == pytest.approx(s * (1 - s), rel=1e-12)


def test_tanh_edge_uses_the_table_formula_with_the_subexpression():
    e = explain("tanh(x) * exp(-y)", {"x": 0.5, "y": 1.0})
    rhs = cr.ops.OPS["tanh"].formula.split(" = ", 1)[1]
    (edge,) = e.step("tanh(x)").edges
    assert edge.derivative.startswith(f"d tanh(x)/dx = {rhs} = ")
    assert edge.derivative.endswith(f"= {1 - np.tanh(0.5) ** 2:.6g}")
    t, ey = np.tanh(0.5), np.exp(-1.0)
    assert float(e.derivative("x").backprop) == pytest.approx((1 - t * t) * ey, rel=1e-12)
    assert float(e.derivative("y").backprop) == pytest.approx(-t * ey, rel=1e-12)


def test_negated_square_over_two():
    e = explain("-(x - 1)**2 / 2", {"x": 3.0})
    assert [r.name for r in e.forward] == [
        "x",
        "x - 1",
        "(x - 1) ** 2",
        "-(x - 1) ** 2",
        "-(x - 1) ** 2 / 2",
    ]
    assert float(e.forward[-1].value) == -2.0
    assert float(e.derivative("x").backprop) == -2.0
    (edge,) = e.step("(x - 1) ** 2").edges
    assert "(x - 1)^(2-1)" in edge.derivative  # a compound input is parenthesised


def test_arrays_and_matmul_against_closed_forms():
    W = np.array([[1.0, 2.0], [0.5, -1.0]])
    v = np.array([0.1, 0.2])
    e = explain("sum(tanh(W @ v))", {"W": W, "v": v})
    slope = 1 - np.tanh(W @ v) ** 2
    assert np.allclose(e.derivative("W").backprop, np.outer(slope, v), rtol=1e-12)
    assert np.allclose(e.derivative("v").backprop, W.T @ slope, rtol=1e-12)
    assert all(d.difference < 1e-8 for d in e.derivatives)
    (edge,) = e.step("tanh(W @ v)").edges
    assert np.allclose(edge.local, slope)  # elementwise: the derivative per entry
    matmul_edges = e.step("W @ v").edges
    assert all(edge.local is None for edge in matmul_edges)  # a Jacobian: only what passes


def test_unused_variable_and_kinks_and_non_finite_are_noted():
    e = explain("relu(x)", {"x": 0.0, "z": 2.0})
    assert float(e.derivative("z").backprop) == 0.0 and not e.derivative("z").used
    assert any("z is given but EXPR does not use it" in n for n in e.notes)
    (edge,) = e.step("relu(x)").edges
    assert cr.ops.OPS["relu"].kink in edge.derivative and float(edge.local) == 0.0
    assert any("kink" in n and "dL/dx" in n for n in e.notes)  # central differences give 0.5
    assert "kink" not in explain("relu(x)", {"x": 1.0}).text()
    bad = explain("log(x)", {"x": -1.0})
    assert any("values are not finite" in n for n in bad.notes)
    steep = explain("sqrt(x)", {"x": 0.0})
    assert float(steep.derivative("x").backprop) == np.inf
    assert any("derivative is not finite" in n for n in steep.notes)


def test_sink_symbol_avoids_a_variable_named_L():
    e = explain("L * 2", {"L": 1.0})
    assert e.symbol != "L" and e.step("L").gradient_line == f"d{e.symbol}/dL = 2"


def test_array_result_is_refused():
    with pytest.raises(ExplainError, match=r"shape \(2,\).*sum\(x\)"):
        explain("x", {"x": [1.0, 2.0]})
    with pytest.raises(ExplainError, match="uses none of the variables"):
        explain("2 + 3", {"x": 1.0})
    with pytest.raises(ExplainError, match="matmul"):
        explain("x @ x", {"x": 1.0})


def test_text_report():
    e = explain("x**4 + x**2", {"x": 3.0})
    text = str(e)
    assert text == e.text()
    assert text.startswith("L = x ** 4 + x ** 2   at x = 3\n")
    assert re.search(r"^  x \*\* 4 +\s+= 81\b", text, re.M)
    assert re.search(r"^  x \*\* 4 \+ x \*\* 2\s+= 90\b.*<- L$", text, re.M)
    assert e.step("x").gradient_line in text
    assert "d(x ** 2)/dx = " in text and "passes 1 * 6 = 6" in text
    assert re.search(r"^  dL/dx\s+114\s+114\.0*\d*\s+\d\.\de-\d\d$", text, re.M)
    assert "numerical" in text


# -- --at ------------------------------------------------------------------------------------
def test_parse_at():
    assert parse_at("x=3, y=-1.5") == {"x": 3.0, "y": -1.5}
    at = parse_at("W=[[1, 2], [3, 4]],b=0.5")
    assert at["W"].shape == (2, 2) and at["W"].dtype == np.float64 and at["b"] == 0.5


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("x=", "x has no value"),
        ("x=abc", "not a number"),
        ("x=__import__('os')", "not a number"),
        ("3=x", "'3' is not a variable name"),
        ("=3", "'' is not a variable name"),
        ("x=1,x=2", "x is given twice"),
        ("x", "give a value"),
        ("x=1,,y=2", "an empty entry"),
        ("x=1e999", "finite"),
        ("x=[1, [2]]", "not a number"),
        ("lambda=1", "not a variable name"),
    ],
)
def test_parse_at_refuses(text, what):
    with pytest.raises(ExplainError) as info:
        parse_at(text)
    assert what in str(info.value) and "\n" not in str(info.value)


def test_explain_checks_the_point():
    with pytest.raises(ExplainError, match="not a variable name"):
        explain("x", {"1x": 1.0})
    with pytest.raises(ExplainError, match="not a variable name"):
        explain("x", {"import": 1.0})
    with pytest.raises(ExplainError, match="not a number"):
        explain("x", {"x": "abc"})
    with pytest.raises(ExplainError, match="finite"):
        explain("x", {"x": float("nan")})
    with pytest.raises(ExplainError, match="an empty array"):
        explain("sum(x)", {"x": []})
    with pytest.raises(ExplainError, match=f"more than {explain_module.MAX_ENTRIES} entries"):
        explain("sum(x)", {"x": np.ones(explain_module.MAX_ENTRIES + 1)})
    e = explain("x * 2", {"x": 3})  # an int becomes a float64 leaf
    assert e.graph.sources[0].tensor.dtype == np.float64


# -- the command -----------------------------------------------------------------------------
def test_cli_prints_the_report(capsys):
    code, out, err = run(capsys, "explain", "x**4 + x**2", "--at", "x=3")
    assert code == 0 and err == ""
    assert re.search(r"^     dL/dx = (6 \+ 108|108 \+ 6) = 114", out, re.M)
    assert "Forward pass" in out and "Backward pass" in out and "numerical" in out


def test_cli_at_may_repeat_and_expr_may_start_with_minus(capsys):
    code, out, _ = run(capsys, "explain", "sigmoid(w*x + b)", "--at", "w=0.5", "--at", "x=2,b=-0.5")
    assert code == 0 and "dL/dw" in out and "dL/db" in out
    code, out, _ = run(capsys, "explain", "-(x - 1)**2 / 2", "--at", "x=3")
    assert code == 0 and "dL/dx = -2" in out
    code, out, _ = run(capsys, "explain", "--at", "x=3", "--", "-(x-1)**2")
    assert code == 0 and "dL/dx = -4" in out


@pytest.mark.parametrize(
    ("argv", "what"),
    [
        (["x**2", "--at", "x="], "x has no value"),
        (["x**2", "--at", "x=abc"], "not a number"),
        (["x**2", "--at", "3=x"], "not a variable name"),
        (["x**2", "--at", "x=1,x=2"], "x is given twice"),
        (["x**2", "--at", "x=1", "--at", "x=2"], "x is given twice"),
        (["x*y", "--at", "x=1"], "y is used in EXPR but not given"),
        (["x**2"], "x is used in EXPR but not given"),
        (["foo(x)", "--at", "x=1"], "unknown function 'foo'"),
        (["x.grad", "--at", "x=1"], "refused attribute access"),
        (["import os", "--at", "x=1"], "refused import statements"),
        (["x**2", "--at", "x=1", "--svg", "out.png"], "--svg out.png: give a path ending in"),
        (["x**2", "--at", "x=1", "--html", "out.svg"], "--html out.svg: give a path ending"),
    ],
)
def test_cli_bad_input_is_one_line_exit_1(capsys, tmp_path, monkeypatch, argv, what):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "explain", *argv)
    assert code == 1 and out == ""
    assert err.startswith("chainrule explain: ") and what in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_draws_the_graph(capsys, tmp_path):
    svg, page = tmp_path / "g.svg", tmp_path / "g.html"
    code, out, _ = run(
        capsys, "explain", "tanh(w*x)", "--at", "w=0.5,x=2", "--svg", str(svg), "--html", str(page)
    )
    assert code == 0 and f"wrote {svg}" in out and f"wrote {page}" in out
    assert "<svg" in svg.read_text() and "</svg>" in svg.read_text()
    assert "w * x" in page.read_text() and "<html" in page.read_text().lower()


def test_cli_without_graph_save_says_so(capsys, tmp_path, monkeypatch):
    monkeypatch.delattr(Graph, "save")
    code, out, err = run(capsys, "explain", "x*x", "--at", "x=1", "--svg", str(tmp_path / "g.svg"))
    assert code == 1 and "Graph.save" in err and err.count("\n") == 1
    assert "dL/dx" in out  # the report came first


def test_python_dash_m(tmp_path):
    ok = subprocess.run(
        [sys.executable, "-m", "chainrule", "explain", "sigmoid(w*x + b)"]
        + ["--at", "w=0.5,x=2,b=-0.5"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert ok.returncode == 0 and ok.stderr == ""
    assert re.search(r"^  dL/dw\s+0\.470007424", ok.stdout, re.M)
    bad = subprocess.run(
        [sys.executable, "-m", "chainrule", "explain", "__import__('os').system('touch MARKER')"]
        + ["--at", "x=1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("chainrule explain: refused attribute access")
    assert bad.stderr.count("\n") == 1
    assert not (tmp_path / MARKER).exists() and not Path(MARKER).exists()


def test_local_derivative_when_nothing_flows_back():
    e = explain("0 * tanh(x)", {"x": 0.5})
    (edge,) = e.step("tanh(x)").edges
    assert float(edge.upstream) == 0.0 and float(edge.contribution) == 0.0
    assert float(edge.local) == pytest.approx(1 - np.tanh(0.5) ** 2, rel=1e-12)
    assert edge.derivative.endswith(f"= {1 - np.tanh(0.5) ** 2:.6g}")


# -- kinks, names for intermediates, the page and the picture --------------------------------
TWO_LAYER = "0.5 * sum((W2 @ relu(W1 @ x + b1) + b2 - t)**2)"
NAMED = "h = relu(W1 @ x + b1); y = W2 @ h + b2; 0.5 * sum((y - t)**2)"
SMALL = "W1=[[1, -1], [0.5, 1]],x=[1, 1],b1=[0, 0.5],W2=[[1, 2]],b2=[0.1],t=[1]"


@pytest.mark.parametrize(
    ("expr", "at"),
    [
        ("relu(x)", "x=0"),
        ("relu(x - y) + y", "x=1,y=1"),
        ("sum(relu(x))", "x=[0, 1]"),
        (NAMED, SMALL),
    ],
)
def test_cli_at_a_kink_the_note_is_the_answer_exit_0(capsys, expr, at):
    code, out, err = run(capsys, "explain", expr, "--at", at)
    assert code == 0 and err == ""
    assert "at a kink" in out and "note: dL/d" in out and "EXPR is at a kink" in out


def test_python_dash_m_at_a_kink_exits_0(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "chainrule", "explain", "relu(x)", "--at", "x=0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0 and done.stderr == "" and "relu'(0) = 0" in done.stdout


def test_statements_name_the_intermediates_in_every_derivative():
    e = explain(NAMED, parse_at(SMALL))
    text = e.text()
    assert text.startswith("h = relu(W1 @ x + b1)\ny = W2 @ h + b2\nL = 0.5 * sum((y - t) ** 2)")
    names = [r.name for r in e.forward]
    assert {"h", "y", "W2 @ h", "y - t"} <= set(names)
    assert not any("relu(W1" in n for n in names[:-1] if n != "h")
    assert e.step("h").gradient_line.startswith("dL/dh = ")
    (edge,) = e.step("h").edges
    assert edge.derivative.startswith("dh/d(W1 @ x + b1) = 1 if (W1 @ x + b1) > 0 else 0")
    assert [edge.derivative for edge in e.step("W2 @ h").edges] == [
        "d(W2 @ h)/dW2 = g @ h^T",
        "d(W2 @ h)/dh = W2^T @ g",
    ]
    assert "(g: the gradient arriving from above, dL/d(this node))" in text
    # the same numbers as the expression written out in one line
    whole = explain(TWO_LAYER, parse_at(SMALL))
    for a, b in zip(e.derivatives, whole.derivatives):
        assert a.name == b.name and np.array_equal(a.backprop, b.backprop)


def test_names_option_names_a_sub_expression_written_in_full(capsys):
    e = explain(TWO_LAYER, parse_at(SMALL), names={"h": "relu(W1 @ x + b1)"})
    assert "h" in [r.name for r in e.forward]
    assert e.step("W2 @ h").edges[1].derivative == "d(W2 @ h)/dh = W2^T @ g"
    code, out, err = run(capsys, "explain", TWO_LAYER, "--name", "h=relu(W1 @ x + b1)")
    assert code == 1 and "is used in EXPR but not given in --at" in err
    argv = ["explain", TWO_LAYER, "--at", SMALL, "--name", "h=relu(W1 @ x + b1)"]
    code, out, err = run(capsys, *argv, "--name", "y = W2 @ h + b2")
    assert code == 0 and err == "" and out.startswith("h = relu(W1 @ x + b1)\ny = W2 @ h + b2\n")
    assert "dL/dy = [3.1]" in out and "L = 0.5 * sum((y - t) ** 2)" in out


@pytest.mark.parametrize(
    ("argv", "what"),
    [
        (["--name", "h"], "write NAME=EXPR"),
        (["--name", "h=tanh(x)", "--name", "h=exp(x)"], "h is given twice"),
        (["--name", "x=tanh(x)"], "x is an input variable"),
        (["--name", "1h=tanh(x)"], "'1h' is not a name"),
        (["--name", "h=tanh(x); import os"], "give one expression"),
        (["--name", "h=__import__('os')"], "unknown function '__import__'"),
    ],
)
def test_cli_bad_names_are_one_line_exit_1(capsys, argv, what):
    code, out, err = run(capsys, "explain", "x**2", "--at", "x=1", *argv)
    assert code == 1 and out == "" and what in err and err.count("\n") == 1


def test_one_expression_named_twice_and_unused_names():
    with pytest.raises(ExplainError, match="k and h name the same expression"):
        explain("h = 2 * x; k = 2 * x; h + k", {"x": 1.0})
    e = explain("u = exp(x); tanh(x)", {"x": 0.5})
    assert "u is assigned but L does not use it" in e.notes
    e = explain("z = w * x; loss = z ** 2", {"w": 2.0, "x": 3.0})  # a named sink
    assert e.symbol == "loss" and e.text().startswith("z = w * x\nloss = z ** 2   at")
    assert e.step("z").gradient_line == "dloss/dz = 12"


def test_compound_differentials_are_parenthesised_names_and_calls_bare():
    from chainrule.ops.formulas import bracket, differential

    assert differential("0.5 * sum(y)") == "d(0.5 * sum(y))"
    assert differential("W1 @ x + b") == "d(W1 @ x + b)"
    assert differential("relu(z)") == "d relu(z)" and differential("h") == "dh"
    assert bracket("(a + b) * (c + d)") == "((a + b) * (c + d))" and bracket("(a + b)") == "(a + b)"
    e = explain(TWO_LAYER, parse_at(SMALL))
    heads = [edge.derivative.split(" = ")[0] for s in e.steps for edge in s.edges]
    assert "d(W2 @ relu(W1 @ x + b1))/d relu(W1 @ x + b1)" in heads
    assert "d relu(W1 @ x + b1)/d(W1 @ x + b1)" in heads
    for head in heads:  # every compound operand of a head is in parentheses
        for part in head.split("/", 1):
            assert part.startswith(("d(", "d ")) or part[1:].isidentifier(), head


def _page_data(page: str) -> dict:
    import json

    block = re.search(r'<script type="application/json" id="chainrule-data">(.*?)</script>', page)
    assert block is not None
    return json.loads(block.group(1))


def test_page_writes_the_formulas_in_the_user_s_names(capsys, tmp_path):
    path = tmp_path / "page.html"
    code, _, _ = run(capsys, "explain", NAMED, "--at", SMALL, "--html", str(path))
    assert code == 0
    page = path.read_text()
    data = _page_data(page)
    rules = [o["rule"] for s in data["steps"] for o in s["outgoing"]]
    assert "d(W2 @ h)/dW2 = g @ h^T" in rules and "d(W2 @ h)/dh = W2^T @ g" in rules
    assert "dh/d(W1 @ x + b1) = 1 if (W1 @ x + b1) > 0 else 0" in rules
    assert "d sum((y - t) ** 2)/d((y - t) ** 2) = 1" in rules
    sheet = ("(x + y)", "(x - y)", "(x * y)", "(x @ y)", "x^y", "sum(x)", "relu(x)")
    assert not any(p in r for r in rules for p in sheet)  # the op sheet's own letters
    # g is spelled out in words on the page, next to the rules that use it
    legend = "g: the gradient arriving from above, d(0.5 * sum((y - t) ** 2))/d(this node)"
    assert data["legend"] == legend and html_escape(legend) in page
    # headers d A / d B with compound nodes in parentheses
    ds = {n["name"]: n["d"] for n in data["nodes"]}
    assert ds["0.5 * sum((y - t) ** 2)"] == "d (0.5 * sum((y - t) ** 2))"
    assert ds["W1 @ x + b1"] == "d (W1 @ x + b1)" and ds["h"] == "d h"
    assert ds["sum((y - t) ** 2)"] == "d sum((y - t) ** 2)"


def html_escape(text: str) -> str:
    import html

    return html.escape(text)


def test_svg_labels_are_short_with_the_whole_expression_as_tooltip(capsys, tmp_path):
    path = tmp_path / "g.svg"
    code, _, _ = run(capsys, "explain", TWO_LAYER, "--at", SMALL, "--svg", str(path))
    assert code == 0
    svg = path.read_text()
    width = float(re.search(r'<svg[^>]*\bwidth="([\d.]+)"', svg).group(1))
    assert width < 2400  # 3158 with whole sub-expressions as titles
    titles = re.findall(r'font-weight="bold">([^<]*)</text>', svg)
    assert titles and max(len(t) for t in titles) <= 20
    whole = "0.5 * sum((W2 @ relu(W1 @ x + b1) + b2 - t) ** 2) = multiply(0.5, ·)"
    assert f"<title>{html_escape(whole)}\n" in svg  # (then the box's value and gradient)
    assert "multiply: 0.5 * sum…" in titles
