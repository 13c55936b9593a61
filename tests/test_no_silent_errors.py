"""Never a silent wrong gradient: each class of NumPy code that once gave a wrong number with no
error either gives the right derivative (checked against float64 finite differences or the
closed form) or raises a TypeError that names what went wrong and what to write instead.

The classes: lists and array constructors, values read out of a differentiated Tensor,
containers in and out of transforms, nested transforms (perturbation confusion), special
points, complex intermediates, in-place writes under forward mode, and np.inner."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest

import chainrule as cr


def fd(f: Callable[[float], Any], x: float, h: float = 1e-6) -> Any:
    """The derivative of ``f`` at ``x`` by central differences in float64."""
    return (np.asarray(f(x + h), dtype=float) - np.asarray(f(x - h), dtype=float)) / (2 * h)


# -- lists and array constructors ---------------------------------------------------------------
# Each: (what the user writes with NumPy, the same function in plain floats for the reference)
NUMPY_LISTS: list[tuple[str, Callable[[Any], Any], Callable[[float], float]]] = [
    ("np.array", lambda x: np.sum(np.array([x, x * x])), lambda x: x + x * x),
    ("np.asarray", lambda x: np.sum(np.asarray([x, 2 * x])), lambda x: 3 * x),
    ("np.mean", lambda x: np.mean([x, x + 2]), lambda x: x + 1),
    ("np.linalg.norm", lambda x: np.linalg.norm([x, x]), lambda x: abs(x) * 2**0.5),
    ("np.sum", lambda x: np.sum([x, x * x]), lambda x: x + x * x),
    ("np.r_", lambda x: np.sum(np.r_[x, x]), lambda x: 2 * x),
    ("np.c_", lambda x: np.sum(np.c_[x, x]), lambda x: 2 * x),
    ("np.stack", lambda x: np.sum(np.stack([x, x * x])), lambda x: x + x * x),
    ("np.concatenate", lambda x: np.sum(np.concatenate([x[None], x[None]])), lambda x: 2 * x),
    ("np.hstack", lambda x: np.sum(np.hstack([x, x])), lambda x: 2 * x),
]


@pytest.mark.parametrize("name, f, reference", NUMPY_LISTS, ids=[n for n, _, _ in NUMPY_LISTS])
@pytest.mark.parametrize("transform", ["grad", "jacobian", "jvp", "backward"])
def test_a_list_of_tensors_through_numpy_is_recorded_or_refused(name, f, reference, transform):
    x0 = 1.3
    want = fd(reference, x0)
    try:
        if transform == "grad":
            got = cr.grad(f)(x0)
        elif transform == "jacobian":
            got = cr.jacobian(f)(np.array(x0))
        elif transform == "jvp":
            got = cr.jvp(f, (x0,), (1.0,))[1]
        else:
            x = cr.tensor(x0, requires_grad=True)
            f(x).backward()
            got = x.grad
    except TypeError as err:
        message = str(err)
        assert "cr.stack" in message and "detach" in message, message
        if name in ("np.mean", "np.linalg.norm", "np.sum"):
            assert name in message, message  # the NumPy function is named
        return
    np.testing.assert_allclose(np.asarray(got.numpy() if isinstance(got, cr.Tensor) else got),
                               want, rtol=1e-7)  # fmt: skip


@pytest.mark.parametrize(
    "f, reference",
    [
        (lambda x: cr.sum(cr.asarray([x, x * x, 2.0])), lambda x: x + x * x + 2),
        (lambda x: cr.mean([x, x + 2]), lambda x: x + 1),
        (lambda x: cr.sum(cr.asarray([[x, 1.0], [x * x, x]])), lambda x: 2 * x + x * x + 1),
        (lambda x: cr.sum(cr.stack([x, x * x])), lambda x: x + x * x),
        (lambda x: cr.max([x, 2 * x]), lambda x: max(x, 2 * x)),
    ],
)
def test_chainrule_s_own_functions_record_lists_of_tensors(f, reference):
    for x0 in (1.3, -0.7):
        np.testing.assert_allclose(cr.grad(f)(x0), fd(reference, x0), rtol=1e-7)
        np.testing.assert_allclose(cr.jvp(f, (x0,), (1.0,))[1], fd(reference, x0), rtol=1e-7)


def test_the_constructor_of_a_leaf_refuses_tensors_that_require_grad():
    x = cr.tensor(2.0, requires_grad=True)
    with pytest.raises(TypeError, match="cr.stack"):
        cr.tensor([x, x])


def test_numpy_may_convert_what_no_gradient_flows_through():
    x = cr.tensor([1.0, 2.0])  # no gradient wanted: NumPy takes its value
    assert np.array_equal(np.asarray([x, x]), [[1.0, 2.0], [1.0, 2.0]])
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    with cr.no_grad():
        assert np.asarray(w).tolist() == [1.0, 2.0]
    assert np.asarray(w.detach()).tolist() == [1.0, 2.0]


# -- a differentiated Tensor read out as a plain value ---------------------------------------
CONVERSIONS = {
    "float": lambda x: x * float(x),
    "int": lambda x: x * int(x),
    "item": lambda x: x * x.item(),
    "tolist": lambda x: x * x.tolist(),
    "numpy": lambda x: x * x.numpy(),
    "__array__": lambda x: x * np.asarray(x),
}


@pytest.mark.parametrize("what", sorted(CONVERSIONS))
@pytest.mark.parametrize("transform", ["grad", "jvp", "vjp"])
def test_reading_a_differentiated_value_inside_a_transform_is_refused(what, transform):
    f = CONVERSIONS[what]
    with pytest.raises(TypeError, match="detach"):
        if transform == "grad":
            cr.grad(f)(2.0)
        elif transform == "jvp":
            cr.jvp(f, (2.0,), (1.0,))
        else:
            cr.vjp(f, 2.0)


@pytest.mark.parametrize("what", sorted(CONVERSIONS))
def test_the_value_of_a_detached_tensor_is_a_constant(what):
    # x * value(x.detach()): the value is a constant, so the derivative at 2 is the value, 2
    f = CONVERSIONS[what]
    got = cr.grad(lambda x: f_detached(f, x))(2.0)
    assert float(got) == 2.0


def f_detached(f: Callable[[Any], Any], x: Any) -> Any:
    value = f(x.detach()) / x.detach()  # the conversion applied to the detached tensor
    return x * value


def test_control_flow_on_a_differentiated_value_still_works():
    def f(x):
        return x * x if x > 0 else -x  # a comparison is an op; bool() of its result is fine

    assert float(cr.grad(f)(3.0)) == 6.0 and float(cr.grad(f)(-3.0)) == -1.0


def test_outside_transforms_values_are_read_freely():
    w = cr.tensor(2.0, requires_grad=True)
    loss = w * w
    assert float(loss) == 4.0 and loss.item() == 4.0 and w.numpy() == 2.0


# -- containers in and out of transforms ---------------------------------------------------------
class Pair(NamedTuple):
    a: Any
    b: Any


def test_grad_of_a_function_of_a_dict_returns_a_dict():
    def loss(p, x):
        return cr.sum((p["w"] * x + p["b"]) ** 2)

    params = {"w": np.array([1.0, -2.0]), "b": 0.5}
    x = np.array([3.0, 1.0])
    g = cr.grad(loss)(params, x)
    assert set(g) == {"w", "b"}
    r = params["w"] * x + params["b"]
    np.testing.assert_allclose(g["w"], 2 * r * x)
    np.testing.assert_allclose(g["b"], np.sum(2 * r))


def test_grad_over_nested_containers_and_argnums():
    def f(p, q):
        return p[0] * q.a + p[1]["z"] * q.b

    p = (2.0, {"z": 3.0})
    q = Pair(5.0, 7.0)
    gp, gq = cr.grad(f, argnums=(0, 1))(p, q)
    assert isinstance(gp, tuple) and isinstance(gp[1], dict) and isinstance(gq, Pair)
    assert (float(gp[0]), float(gp[1]["z"]), float(gq.a), float(gq.b)) == (5.0, 7.0, 2.0, 3.0)


def test_jvp_and_vjp_of_functions_returning_tuples():
    out, tangent = cr.jvp(lambda x: (x, 2 * x), (1.0,), (1.0,))
    assert [float(v) for v in tangent] == [1.0, 2.0]
    out, pullback = cr.vjp(lambda x: {"a": x * x, "b": 3 * x}, 2.0)
    (g,) = pullback({"a": 1.0, "b": 1.0})
    assert float(g) == 7.0  # 2x + 3 at x = 2
    with pytest.raises(ValueError, match="structure"):
        pullback((1.0, 1.0))


def test_jvp_over_a_dict_of_primals():
    f = lambda p: p["x"] * p["y"]  # noqa: E731
    _, t = cr.jvp(f, ({"x": 2.0, "y": 3.0},), ({"x": 1.0, "y": 0.0},))
    assert float(t) == 3.0


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_jacobian_and_hessian_over_containers(mode):
    def f(p):
        return {"y": p["a"] * p["b"], "z": cr.stack([p["a"], p["b"] ** 2])}

    p = {"a": np.array(2.0), "b": np.array(3.0)}
    j = cr.jacobian(f, mode=mode)(p)
    assert float(j["y"]["a"]) == 3.0 and float(j["y"]["b"]) == 2.0
    np.testing.assert_allclose(j["z"]["a"], [1.0, 0.0])
    np.testing.assert_allclose(j["z"]["b"], [0.0, 6.0])
    h = cr.hessian(lambda q: q["a"] ** 2 * q["b"])({"a": 2.0, "b": 3.0})
    assert [[float(h[r][c]) for c in "ab"] for r in "ab"] == [[6.0, 4.0], [4.0, 0.0]]


def test_tree_round_trips():
    @__import__("dataclasses").dataclass
    class Config:
        w: Any
        n: Any

    tree = {"b": [1, (2, None)], "a": Pair(3, Config(4, 5))}
    leaves, spec = cr.tree.flatten(tree)
    assert leaves == [3, 4, 5, 1, 2]
    assert cr.tree.unflatten(spec, leaves) == tree
    assert cr.tree.map(lambda v: v * 10, tree)["a"].b.n == 50
    with pytest.raises(ValueError, match="fewer leaves"):
        cr.tree.unflatten(spec, leaves[:-1])
    with pytest.raises(ValueError, match="structures differ"):
        cr.tree.map(lambda a, b: a, [1], (1,))


# -- nested transforms: every combination to depth 3 -----------------------------------------------
# Each turns a scalar function into its derivative, in its own way.
DERIVATIVES: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
    "grad": lambda f: cr.grad(f),
    "jvp": lambda f: lambda x: cr.jvp(f, (x,), (1.0,))[1],
    "vjp": lambda f: lambda x: cr.vjp(f, x)[1](1.0)[0],
    "jacobian-reverse": lambda f: cr.jacobian(f, mode="reverse"),
    "jacobian-forward": lambda f: cr.jacobian(f, mode="forward"),
}
# f(x) = sin(x) x^3 and its derivatives, at x0
X0 = 0.7
F_DERIVATIVES = [
    lambda x: np.sin(x) * x**3,
    lambda x: np.cos(x) * x**3 + 3 * np.sin(x) * x**2,
    lambda x: -np.sin(x) * x**3 + 6 * np.cos(x) * x**2 + 6 * np.sin(x) * x,
    lambda x: -np.cos(x) * x**3 - 9 * np.sin(x) * x**2 + 18 * np.cos(x) * x + 6 * np.sin(x),
]
CHAINS = [c for n in (1, 2, 3) for c in itertools.product(sorted(DERIVATIVES), repeat=n)]


@pytest.mark.parametrize("chain", CHAINS, ids=["/".join(c) for c in CHAINS])
def test_every_nesting_of_transforms_gives_the_derivative(chain):
    f: Callable[..., Any] = lambda x: cr.sin(x) * x**3  # noqa: E731
    for name in chain:
        f = DERIVATIVES[name](f)
    got = f(np.array(X0))
    got = got.numpy() if isinstance(got, cr.Tensor) else got
    assert not isinstance(got, cr.Tensor)
    np.testing.assert_allclose(np.reshape(got, ()), F_DERIVATIVES[len(chain)](X0), rtol=1e-10)


@pytest.mark.parametrize("outer, inner", list(itertools.product(sorted(DERIVATIVES), repeat=2)))
def test_a_closure_over_an_outer_input_is_not_confused_with_the_inner_one(outer, inner):
    # d/dx [x * (d/dy x y at y = x)] = d/dx x^2 = 2x: the inner derivative closes over x
    def g(x):
        return x * DERIVATIVES[inner](lambda y: x * y)(x)

    got = DERIVATIVES[outer](g)(np.array(1.3))
    got = got.numpy() if isinstance(got, cr.Tensor) else got
    np.testing.assert_allclose(np.reshape(got, ()), 2.6, rtol=1e-12)


def test_mixed_partials_by_every_pair_of_modes():
    f = lambda x, y: x * x * y * y * y  # d2f/dxdy = 6 x y^2  # noqa: E731
    x0, y0 = 1.5, 2.0
    want = 6 * x0 * y0**2
    by_grad_y = lambda x: cr.grad(f, argnums=1)(x, y0)  # noqa: E731
    assert float(cr.jvp(by_grad_y, (x0,), (1.0,))[1]) == pytest.approx(want, rel=1e-12)
    assert float(cr.grad(by_grad_y)(x0)) == pytest.approx(want, rel=1e-12)
    by_jvp_y = lambda x: cr.jvp(lambda y: f(x, y), (y0,), (1.0,))[1]  # noqa: E731
    assert float(cr.grad(by_jvp_y)(x0)) == pytest.approx(want, rel=1e-12)
    assert float(cr.jvp(by_jvp_y, (x0,), (1.0,))[1]) == pytest.approx(want, rel=1e-12)
    h = cr.hessian(lambda v: f(v[0], v[1]))(np.array([x0, y0]))
    assert h[0, 1] == pytest.approx(want, rel=1e-12) and h[1, 0] == pytest.approx(want, rel=1e-12)


# -- special points ----------------------------------------------------------------------------
SPECIAL = [
    ("x**0 at 0", lambda x: x**0, 0.0, 0.0),
    ("x**0 at 2", lambda x: x**0, 2.0, 0.0),
    ("x**0 as an array power", lambda x: x ** np.zeros(()), 0.0, 0.0),
    ("x**2 at 0", lambda x: x**2, 0.0, 0.0),
    ("std of one element", lambda x: cr.std(cr.reshape(x, (1,))), 3.0, 0.0),
    ("std of equal entries", lambda x: cr.std(cr.stack([x, x])), 3.0, 0.0),
    ("relu at 0", lambda x: cr.relu(x), 0.0, 0.0),
    ("abs at 0", lambda x: cr.abs(x), 0.0, 0.0),
    ("maximum tie", lambda x: cr.maximum(x, 1.0), 1.0, 0.5),
]


@pytest.mark.parametrize("name, f, x0, want", SPECIAL, ids=[s[0] for s in SPECIAL])
def test_the_convention_at_a_special_point(name, f, x0, want):
    for got in (cr.grad(f)(x0), cr.jvp(f, (x0,), (1.0,))[1]):
        assert float(np.reshape(got, ())) == want, name


def test_std_s_gradient_away_from_its_special_point_is_the_derivative():
    x0 = np.array([1.0, 2.5, -0.5, 4.0])
    for ddof in (0, 1):
        got = cr.grad(lambda x: cr.std(x, ddof=ddof))(x0)
        want = (x0 - x0.mean()) / ((len(x0) - ddof) * np.std(x0, ddof=ddof))
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert cr.gradcheck(lambda x: cr.std(x, axis=0, ddof=1), np.array([[1.0, 2.0], [3.5, 0.1]]))


# -- complex intermediates: refused, never a number ---------------------------------------------
COMPLEX = [
    lambda x: np.abs(x * (1 + 2j)),
    lambda x: cr.sum(cr.abs(x * np.array([1 + 2j, 3 - 1j]))),
    lambda x: np.abs(np.exp(1j * x)) * x,
]


@pytest.mark.parametrize("k", range(len(COMPLEX)))
def test_complex_intermediates_are_refused_in_every_mode(k):
    f = COMPLEX[k]
    with pytest.raises(TypeError, match="complex"):
        cr.grad(f)(1.0)
    with pytest.raises(TypeError, match="complex"):
        cr.jvp(f, (1.0,), (1.0,))
    x = cr.tensor(1.0, requires_grad=True)
    with pytest.raises(TypeError, match="complex"):
        cr.sum(f(x)).backward()
    assert x.grad is None


def test_complex_leaves_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        cr.tensor(np.array([1 + 2j]), requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        cr.grad(lambda z: np.abs(z))(1 + 2j)


# -- in-place writes under forward mode ----------------------------------------------------------
def test_item_assignment_inside_jvp_is_refused():
    def f(x):
        y = x * 1.0
        y[0] = 5.0
        return y

    with pytest.raises(RuntimeError, match="forward-mode tangent"):
        cr.jvp(f, (np.array([1.0, 2.0]),), (np.array([1.0, 1.0]),))


def test_in_place_arithmetic_inside_jvp_keeps_the_tangent():
    def f(x):
        y = x * 1.0
        y += x * x
        y *= 2.0
        return y

    _, t = cr.jvp(f, (np.array([1.0, 2.0]),), (np.array([1.0, 1.0]),))
    np.testing.assert_allclose(t, 2 * (1 + 2 * np.array([1.0, 2.0])))


# -- np.inner and np.vdot --------------------------------------------------------------------
@pytest.mark.parametrize("xs, ys", [((), (3,)), ((3,), ()), ((3,), (3,)), ((2, 3), (3,)),
                                    ((2, 3), (4, 3)), ((2, 1, 3), (5, 3))])  # fmt: skip
def test_inner_matches_numpy_and_its_gradient_finite_differences(xs, ys):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=xs), rng.normal(size=ys)
    got = np.inner(cr.tensor(a), cr.tensor(b))
    np.testing.assert_allclose(got.numpy(), np.inner(a, b), rtol=1e-12)
    assert cr.gradcheck(lambda u, v: cr.sum(np.inner(u, v) ** 2), a, b)


def test_vdot_flattens_both():
    a, b = np.arange(6.0).reshape(2, 3), np.arange(6.0).reshape(3, 2)
    assert float(np.vdot(cr.tensor(a), cr.tensor(b))) == np.vdot(a, b)


# -- checkpoint: the same gradients, of any order, with the intermediates dropped ----------------
def test_checkpoint_gives_the_gradients_of_the_plain_function():
    w = np.random.default_rng(0).normal(size=(3, 3))
    f = lambda x, v: cr.tanh(x @ v) * x  # noqa: E731
    g = cr.checkpoint(f)
    x0 = np.array([0.2, -0.4, 0.9])
    plain = cr.grad(lambda x, v: cr.sum(f(x, v) ** 2), argnums=(0, 1))(x0, w)
    kept = cr.grad(lambda x, v: cr.sum(g(x, v) ** 2), argnums=(0, 1))(x0, w)
    for a, b in zip(plain, kept):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(
        cr.hessian(lambda x: cr.sum(g(x, w) ** 2))(x0),
        cr.hessian(lambda x: cr.sum(f(x, w) ** 2))(x0),
        rtol=1e-12,
    )
    assert cr.gradcheck(lambda x: cr.sum(g(x, w) ** 2), x0, check_forward=True)


def test_checkpoint_keeps_no_intermediate_node():
    block = cr.checkpoint(lambda x: cr.tanh(cr.tanh(x) * 2.0) + x * x)
    x = cr.tensor(np.array([0.1, -0.3]), requires_grad=True)
    ops = [n.op for n in cr.graph(cr.sum(block(x))).nodes if n.op is not None]
    assert ops == ["function", "sum"]  # one node for the whole block
