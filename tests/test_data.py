"""Bundled and generated data sets, splitting, mini-batches and standardization (cr.data)."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

import chainrule as cr
from chainrule.data import Dataset

# Per-class counts of the UCI optdigits test set (optdigits.tes), which is the bundled file.
DIGITS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _labelled_ids(counts: list[int]) -> Dataset:
    """A data set whose single feature is the row's id, so rows can be traced through."""
    y = np.concatenate([np.full(c, k, dtype=np.int64) for k, c in enumerate(counts)])
    y = np.random.default_rng(99).permutation(y)
    return Dataset(np.arange(len(y), dtype=np.float64)[:, None], y, "ids", len(counts))


# -- digits ------------------------------------------------------------------------------
def test_digits_shape_classes_and_range():
    d = cr.data.load_digits()
    assert d.X.shape == (1797, 64) and d.X.dtype == np.float64
    assert d.y.shape == (1797,) and d.y.dtype == np.int64
    assert d.n_classes == 10 and d.name == "digits" and len(d) == 1797
    assert np.bincount(d.y).tolist() == DIGITS_COUNTS
    assert d.X.min() == 0.0 and d.X.max() == 1.0
    # the /16 scaling: every pixel was an integer count 0..16
    counts = d.X * 16
    assert np.array_equal(counts, np.round(counts))
    assert len(np.unique(counts)) == 17


def test_digits_looks_like_digits():
    d = cr.data.load_digits()
    # each class's mean image differs from every other class's: the labels go with the pixels
    means = np.stack([d.X[d.y == k].mean(axis=0) for k in range(10)])
    gaps = np.linalg.norm(means[:, None] - means[None], axis=-1)
    assert gaps[~np.eye(10, dtype=bool)].min() > 0.5
    # a nearest-class-mean classifier does far better than chance (10%)
    pred = np.argmin(((d.X[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (pred == d.y).mean() > 0.85


def test_digits_file_is_small_and_bundled():
    ref = resources.files("chainrule.data") / "_datasets" / "digits.csv.gz"
    size = len(ref.read_bytes())
    assert 10_000 < size < 100_000
    readme = (resources.files("chainrule.data") / "_datasets" / "README.md").read_text()
    assert "Alpaydin" in readme and "BSD-3-Clause" in readme


def test_digits_float32_and_copies():
    d32 = cr.data.load_digits(dtype="float32")
    assert d32.X.dtype == np.float32
    first = cr.data.load_digits()
    first.X[:] = -1.0  # the loader caches the parsed file; callers must not be able to edit it
    first.y[:] = -1
    again = cr.data.load_digits()
    assert again.X.min() == 0.0 and again.y.min() == 0
    with pytest.raises(ValueError, match="floating"):
        cr.data.load_digits(dtype="int64")


# -- generated sets ----------------------------------------------------------------------
GENERATORS = [
    ("moons", {}),
    ("spirals", {}),
    ("regression", {}),
    ("regression", {"features": 3}),
]


@pytest.mark.parametrize("name, kwargs", GENERATORS)
def test_generated_sets_reproducible_per_seed(name, kwargs):
    a = cr.data.load(name, seed=7, **kwargs)
    b = cr.data.load(name, seed=7, **kwargs)
    c = cr.data.load(name, seed=8, **kwargs)
    assert _same_bits(a.X, b.X) and _same_bits(a.y, b.y)
    assert not np.array_equal(a.X, c.X)
    # a Generator as seed gives the same data as the int it was made from
    g = cr.data.load(name, seed=np.random.default_rng(7), **kwargs)
    assert _same_bits(a.X, g.X) and _same_bits(a.y, g.y)


def test_generated_sets_shapes_and_dtypes():
    m = cr.data.make_moons()
    assert m.X.shape == (1000, 2) and m.y.dtype == np.int64 and m.n_classes == 2
    assert np.bincount(m.y).tolist() == [500, 500]
    s = cr.data.make_spirals()
    assert s.X.shape == (900, 2) and s.y.dtype == np.int64 and s.n_classes == 3
    assert np.bincount(s.y).tolist() == [300, 300, 300]
    assert np.bincount(cr.data.make_spirals(n=100, classes=3).y).tolist() == [34, 33, 33]
    r = cr.data.make_regression()
    assert r.X.shape == (500, 1) and r.y.shape == (500, 1) and r.y.dtype == np.float64
    assert r.n_classes is None
    # rows come shuffled, not class-sorted
    assert len(np.unique(m.y[:20])) == 2


def test_moons_are_two_interleaved_half_circles():
    clean = cr.data.make_moons(n=400, noise=0.0)
    up, low = clean.X[clean.y == 0], clean.X[clean.y == 1]
    assert np.allclose(np.linalg.norm(up, axis=1), 1.0) and (up[:, 1] >= -1e-12).all()
    assert np.allclose(np.linalg.norm(low - [1.0, 0.5], axis=1), 1.0)
    assert (low[:, 1] <= 0.5 + 1e-12).all()
    # interleaved: each arc's tips reach past the other's centre line
    assert low[:, 1].max() > up[:, 1].min() and up[:, 0].max() > low[:, 0].min()

    noisy = cr.data.make_moons(n=4000, noise=0.1, seed=3)
    # class means of the arcs: (0, 2/pi) and (1, 0.5 - 2/pi)
    assert np.allclose(noisy.X[noisy.y == 0].mean(axis=0), [0.0, 2 / np.pi], atol=0.03)
    assert np.allclose(noisy.X[noisy.y == 1].mean(axis=0), [1.0, 0.5 - 2 / np.pi], atol=0.03)
    # the noise is isotropic with std 0.1, so its radial part, the distance from each arc's
    # circle, has std 0.1 as well
    r_up = np.linalg.norm(noisy.X[noisy.y == 0], axis=1)
    r_low = np.linalg.norm(noisy.X[noisy.y == 1] - [1.0, 0.5], axis=1)
    assert abs(r_up.std() - 0.1) < 0.01 and abs(r_low.std() - 0.1) < 0.01
    assert abs(r_up.mean() - 1.0) < 0.02 and abs(r_low.mean() - 1.0) < 0.02


def test_spirals_arms_stay_in_unit_disc_and_wind():
    s = cr.data.make_spirals(n=600, classes=3, noise=0.0)
    r = np.linalg.norm(s.X, axis=1)
    assert r.max() <= 1.0 + 1e-12
    for k in range(3):
        arm = s.X[s.y == k]
        order = np.argsort(np.linalg.norm(arm, axis=1))
        angle = np.unwrap(np.arctan2(arm[order, 0], arm[order, 1]))
        # noise-free arms turn through 4 radians from centre to rim
        assert abs(abs(angle[-1] - angle[1]) - 4.0) < 0.05


def test_regression_is_a_noisy_smooth_function():
    clean = cr.data.make_regression(n=200, features=1, noise=0.0)
    assert np.array_equal(clean.y, np.sin(clean.X))
    assert np.abs(clean.X).max() <= np.pi
    noisy = cr.data.make_regression(n=5000, features=2, noise=0.1, seed=1)
    resid = noisy.y - np.sin(noisy.X).sum(axis=1, keepdims=True) / np.sqrt(2)
    assert abs(resid.std() - 0.1) < 0.01


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: cr.data.make_moons(n=1), "n must be an integer >= 2"),
        (lambda: cr.data.make_moons(noise=-0.1), "noise must be >= 0"),
        (lambda: cr.data.make_spirals(classes=1), "classes must be an integer >= 2"),
        (lambda: cr.data.make_regression(features=0), "features must be an integer >= 1"),
    ],
)
def test_generator_arguments_checked(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_generator_bad_seed_type():
    with pytest.raises(TypeError, match="seed must be"):
        cr.data.make_moons(seed=1.5)


# -- load --------------------------------------------------------------------------------
def test_load_dispatches_and_rejects_unknown_names():
    assert cr.data.load("digits").X.shape == (1797, 64)
    assert len(cr.data.load("moons", n=10)) == 10
    assert cr.data.load("spirals", classes=4).n_classes == 4
    assert cr.data.load("regression", n=5).y.shape == (5, 1)
    with pytest.raises(ValueError) as err:
        cr.data.load("bogus")
    msg = str(err.value)
    assert "'bogus'" in msg
    for name in ("digits", "moons", "spirals", "regression"):
        assert name in msg


# -- split -------------------------------------------------------------------------------
def test_split_is_stratified_disjoint_covering():
    counts = [50, 30, 20, 7]
    d = _labelled_ids(counts)
    train, test = cr.data.split(d, test_fraction=0.2, seed=0)
    ids_tr, ids_te = train.X[:, 0].astype(int), test.X[:, 0].astype(int)
    assert np.intersect1d(ids_tr, ids_te).size == 0
    assert np.array_equal(np.sort(np.concatenate([ids_tr, ids_te])), np.arange(len(d)))
    # each class contributes round(0.2 * count) to the test set
    assert np.bincount(test.y, minlength=4).tolist() == [10, 6, 4, 1]
    assert np.bincount(train.y, minlength=4).tolist() == [40, 24, 16, 6]
    # rows keep their labels
    assert np.array_equal(train.y, d.y[ids_tr]) and np.array_equal(test.y, d.y[ids_te])
    assert train.n_classes == test.n_classes == 4 and train.name == "ids"


def test_split_deterministic_per_seed():
    d = cr.data.load_digits()
    a_tr, a_te = cr.data.split(d, seed=5)
    b_tr, b_te = cr.data.split(d, seed=5)
    c_tr, c_te = cr.data.split(d, seed=6)
    assert _same_bits(a_te.X, b_te.X) and _same_bits(a_tr.y, b_tr.y)
    assert not np.array_equal(a_te.X, c_te.X)
    per_class = np.bincount(a_te.y) / np.bincount(d.y)
    assert np.all(np.abs(per_class - 0.2) < 0.01)


def test_split_regression_and_bad_fraction():
    d = cr.data.make_regression(n=100)
    train, test = cr.data.split(d, test_fraction=0.3)
    assert (len(train), len(test)) == (70, 30) and test.y.shape == (30, 1)
    assert np.intersect1d(train.X[:, 0], test.X[:, 0]).size == 0
    for bad in (0.0, 1.0, -0.5, 2):
        with pytest.raises(ValueError, match="test_fraction"):
            cr.data.split(d, test_fraction=bad)
    with pytest.raises(ValueError, match="empty test set"):
        cr.data.split(cr.data.make_regression(n=2), test_fraction=0.1)


# -- batches -----------------------------------------------------------------------------
def _epoch_ids(X, y, batch_size, **kw):
    out = list(cr.data.batches(X, y, batch_size, **kw))
    for xb, yb in out:
        assert isinstance(xb, np.ndarray) and isinstance(yb, np.ndarray)
        assert np.array_equal(xb[:, 0].astype(int) % 7, yb)  # rows stay paired
    return out


def test_batches_cover_every_sample_once_per_epoch():
    n = 103
    X = np.stack([np.arange(n), -np.arange(n)], axis=1).astype(np.float64)
    y = np.arange(n) % 7
    out = _epoch_ids(X, y, 10, seed=0)
    assert [len(yb) for _, yb in out] == [10] * 10 + [3]
    ids = np.concatenate([xb[:, 0] for xb, _ in out]).astype(int)
    assert sorted(ids.tolist()) == list(range(n))
    assert not np.array_equal(ids, np.arange(n))  # shuffled


def test_batches_reproducible_with_seed():
    n = 50
    X, y = np.arange(n, dtype=float)[:, None], np.arange(n) % 7
    order = lambda **kw: np.concatenate([xb[:, 0] for xb, _ in _epoch_ids(X, y, 8, **kw)])
    assert np.array_equal(order(seed=3), order(seed=3))
    assert not np.array_equal(order(seed=3), order(seed=4))
    # one Generator across epochs: a new order each epoch, the same sequence from the same seed
    g1, g2 = np.random.default_rng(11), np.random.default_rng(11)
    e1, e2 = order(seed=g1), order(seed=g1)
    assert not np.array_equal(e1, e2)
    assert np.array_equal(e1, order(seed=g2)) and np.array_equal(e2, order(seed=g2))
    # chainrule's Generator works the same way
    c1, c2 = cr.random.default_rng(11), cr.random.default_rng(11)
    assert np.array_equal(order(seed=c1), order(seed=c2))
    assert np.array_equal(order(shuffle=False), np.arange(n))


def test_batches_drop_last_and_tensors():
    X, y = cr.tensor(np.arange(20.0).reshape(10, 2)), cr.tensor(np.arange(10))
    sizes = [len(yb) for _, yb in cr.data.batches(X, y, 4, seed=0, drop_last=True)]
    assert sizes == [4, 4]
    sizes = [len(yb) for _, yb in cr.data.batches(X, y, 4, seed=0)]
    assert sizes == [4, 4, 2]
    assert [len(yb) for _, yb in cr.data.batches(X, y, 5, drop_last=True)] == [5, 5]
    assert list(cr.data.batches(X, y, 11, drop_last=True)) == []
    xb, yb = next(iter(cr.data.batches(X, y, 3, shuffle=False)))
    assert isinstance(xb, np.ndarray) and xb.tolist() == [[0, 1], [2, 3], [4, 5]]


def test_batches_do_not_alias_the_data():
    X, y = np.zeros((4, 2)), np.zeros(4)
    for xb, _ in cr.data.batches(X, y, 2, shuffle=False):
        xb += 1.0
    assert not X.any()


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "8", None])
def test_batches_bad_batch_size(bad):
    with pytest.raises(ValueError, match=r"batch_size must be an integer >= 1; got"):
        cr.data.batches(np.zeros((4, 2)), np.zeros(4), bad)  # raised at the call, not at next()


def test_batches_mismatched_lengths():
    with pytest.raises(ValueError, match=r"same number of rows.*\(4, 2\).*\(3,\)"):
        cr.data.batches(np.zeros((4, 2)), np.zeros(3), 2)


# -- standardize -------------------------------------------------------------------------
def test_standardize_uses_training_statistics():
    rng = np.random.default_rng(0)
    Xtr = rng.normal(5.0, 3.0, size=(200, 3))
    Xtr[:, 2] = 7.0  # a constant feature must not become NaN
    Xte = rng.normal(5.0, 3.0, size=(50, 3))
    train = Dataset(Xtr, np.zeros(200, np.int64), "t", 2)
    test = Dataset(Xte, np.ones(50, np.int64), "t", 2)
    s_tr, s_te = cr.data.standardize(train, test)
    assert np.allclose(s_tr.X[:, :2].mean(axis=0), 0.0) and np.allclose(s_tr.X[:, :2].std(0), 1)
    assert np.all(s_tr.X[:, 2] == 0.0) and np.isfinite(s_te.X).all()
    expected = (Xte[:, :2] - Xtr[:, :2].mean(0)) / Xtr[:, :2].std(0)
    assert np.allclose(s_te.X[:, :2], expected)
    assert np.array_equal(s_te.y, test.y) and s_tr.n_classes == 2
    assert Xtr[0, 2] == 7.0 and s_tr.X is not Xtr  # copies; inputs untouched
    a_tr, a_te = cr.data.standardize(Xtr, Xte)
    assert np.array_equal(a_tr, s_tr.X) and np.array_equal(a_te, s_te.X)
    with pytest.raises(TypeError, match="two Datasets or two arrays"):
        cr.data.standardize(train, Xte)
