"""Data sets that need no network, and mini-batches drawn from a seeded generator.

One bundled set, the 8x8 handwritten digits (shipped in ``chainrule/data/_datasets``; its source
and licence are in the README there), and three generated ones: two moons, spirals and a noisy
regression. Generated sets are functions of their seed alone, so a seed reproduces them bit
for bit on any machine.

>>> import chainrule as cr
>>> train, test = cr.data.split(cr.data.load("moons", n=200), test_fraction=0.25, seed=0)
>>> len(train), len(test)
(150, 50)
>>> for xb, yb in cr.data.batches(train.X, train.y, batch_size=64, seed=0):
...     print(xb.shape, yb.shape)
(64, 2) (64,)
(64, 2) (64,)
(22, 2) (22,)
"""

from __future__ import annotations

import functools
import gzip
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any, overload

import numpy as np

from ..engine.tensor import Tensor
from ..ops.random import Generator as _CrGenerator

__all__ = [
    "Dataset",
    "load_digits",
    "load_mnist1d",
    "make_moons",
    "make_spirals",
    "make_regression",
    "load",
    "split",
    "batches",
    "standardize",
]

SeedLike = int | np.random.Generator | _CrGenerator | None


@dataclass(frozen=True, eq=False)
class Dataset:
    """Features ``X`` (one sample per row), targets ``y``, a name, and the number of classes.

    ``n_classes`` is ``None`` for regression sets, whose ``y`` is a float column.
    (``eq=False``: arrays have no single truth value, so datasets compare by identity.)

    >>> d = Dataset(np.zeros((3, 2)), np.array([0, 1, 1]), "toy", 2)
    >>> len(d), d.X.shape
    (3, (3, 2))
    """

    X: np.ndarray
    y: np.ndarray
    name: str
    n_classes: int | None
    labels: tuple[str, ...] | None = None  # the class names, where a file gave them
    feature_names: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def __repr__(self) -> str:
        kind = "regression" if self.n_classes is None else f"{self.n_classes} classes"
        return (
            f"Dataset({self.name!r}, {len(self)} samples, X {self.X.shape} {self.X.dtype}, "
            f"y {self.y.shape} {self.y.dtype}, {kind})"
        )

    def _repr_html_(self) -> str:
        """A notebook shows a data set as its summary and first rows (see
        :mod:`chainrule.data.display`)."""
        from .display import dataset_html

        return dataset_html(self)


# -- helpers ------------------------------------------------------------------------------
def _rng(seed: SeedLike) -> np.random.Generator:
    """A NumPy Generator from an int, a NumPy or chainrule Generator, or None (fresh entropy).

    A Generator passed in is used as is (not copied), so successive calls draw new numbers:
    that is what gives each epoch of ``batches`` its own order.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, _CrGenerator):
        return seed.bit_generator
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise TypeError(
        f"seed must be an int, None, or a numpy/chainrule Generator; got {type(seed).__name__}"
    )


def _positive_int(value: Any, what: str, minimum: int = 1) -> int:
    # bool is an int to Python, but batch_size=True is a bug, not a request for size 1
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _non_negative(value: float, what: str) -> float:
    if not value >= 0:  # also catches NaN
        raise ValueError(f"{what} must be >= 0; got {value!r}")
    return float(value)


def _as_numpy(a: Any) -> np.ndarray:
    return a.numpy() if isinstance(a, Tensor) else np.asarray(a)


# -- the bundled digits -------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _digits_raw() -> np.ndarray:
    # Parsed once per process; callers get copies, so nobody can corrupt the cache.
    ref = resources.files("chainrule.data") / "_datasets" / "digits.csv.gz"
    with ref.open("rb") as raw, gzip.open(raw, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.int64)
    table.setflags(write=False)
    return table


def load_digits(dtype: Any = "float64") -> Dataset:
    """The 8x8 handwritten digits: 1,797 images of 64 pixels, 10 classes (bundled).

    Pixel counts 0..16 are divided by 16, so ``X`` lies in [0, 1]. Source: the test set of
    UCI's "Optical Recognition of Handwritten Digits" (E. Alpaydin, C. Kaynak, 1998), as
    redistributed by scikit-learn; see ``chainrule/data/_datasets/README.md``.

    Parameters
    ----------
    dtype : floating dtype of ``X`` ("float64" or "float32").

    Returns
    -------
    Dataset with ``X`` of shape (1797, 64) and ``y`` int64 in 0..9.

    >>> d = load_digits()
    >>> d.X.shape, d.y.dtype, d.n_classes, float(d.X.max())
    ((1797, 64), dtype('int64'), 10, 1.0)
    """
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise ValueError(f"load_digits: dtype must be a floating type; got {dt}")
    table = _digits_raw()
    X = (table[:, :64] / 16.0).astype(dt)  # 16 = the largest count of a 4x4 block
    y = table[:, 64].copy()
    return Dataset(X, y, "digits", 10)


# -- generated sets -----------------------------------------------------------------------
def make_moons(n: int = 1000, noise: float = 0.1, seed: SeedLike = 0) -> Dataset:
    """Two interleaved half circles in the plane, one per class (a classic non-linear task).

    Class 0 is the upper arc of the unit circle centred at (0, 0); class 1 the lower arc
    centred at (1, 0.5). Gaussian noise of standard deviation ``noise`` is added to each
    coordinate; rows come shuffled.

    Parameters
    ----------
    n : number of samples (class 0 gets ``n // 2``, class 1 the rest).
    noise : standard deviation of the Gaussian noise.
    seed : int or Generator; the same int gives the same data bit for bit.

    >>> d = make_moons(n=6, seed=0)
    >>> d.X.shape, sorted(d.y.tolist())
    ((6, 2), [0, 0, 0, 1, 1, 1])
    """
    n = _positive_int(n, "make_moons: n", minimum=2)
    noise = _non_negative(noise, "make_moons: noise")
    rng = _rng(seed)
    n0 = n // 2
    n1 = n - n0
    t0 = np.linspace(0.0, np.pi, n0)
    t1 = np.linspace(0.0, np.pi, n1)
    upper = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    lower = np.stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)
    X = np.concatenate([upper, lower]) + noise * rng.standard_normal((n, 2))
    y = np.concatenate([np.zeros(n0, np.int64), np.ones(n1, np.int64)])
    # Shuffle so that a prefix of the rows is not all one class.
    order = rng.permutation(n)
    return Dataset(X[order], y[order], "moons", 2)


def make_spirals(n: int = 900, classes: int = 3, noise: float = 0.2, seed: SeedLike = 0) -> Dataset:
    """``classes`` arms of a spiral winding out of the origin, one class per arm.

    Arm ``k`` has radius r in [0, 1] and angle ``4 (k + r) + noise * N(0, 1)`` (radians);
    the noise is on the angle, so arms blur into each other near the centre, where they are
    close, and stay apart outside. Rows come shuffled.

    Parameters
    ----------
    n : total number of samples, shared as evenly as possible across the arms.
    classes : number of arms (classes), at least 2.
    noise : standard deviation of the angular noise.
    seed : int or Generator; the same int gives the same data bit for bit.

    >>> d = make_spirals(n=90, classes=3)
    >>> d.X.shape, np.bincount(d.y).tolist()
    ((90, 2), [30, 30, 30])
    """
    classes = _positive_int(classes, "make_spirals: classes", minimum=2)
    n = _positive_int(n, "make_spirals: n", minimum=classes)
    noise = _non_negative(noise, "make_spirals: noise")
    rng = _rng(seed)
    Xs, ys = [], []
    for k in range(classes):
        m = n // classes + (k < n % classes)
        r = np.linspace(0.0, 1.0, m)
        # 4 radians per arm spreads the arms around the circle without overlapping at r = 1
        t = 4.0 * (k + r) + noise * rng.standard_normal(m)
        Xs.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1))
        ys.append(np.full(m, k, dtype=np.int64))
    order = rng.permutation(n)
    return Dataset(np.concatenate(Xs)[order], np.concatenate(ys)[order], "spirals", classes)


def make_regression(
    n: int = 500, features: int = 1, noise: float = 0.1, seed: SeedLike = 0
) -> Dataset:
    """A noisy smooth function: ``y = sum_j sin(x_j) / sqrt(features) + noise * N(0, 1)``.

    ``X`` is uniform on [-pi, pi]; dividing by sqrt(features) keeps the variance of the
    clean signal near 1/2 whatever the number of features. ``y`` is a float64 column of
    shape (n, 1), the shape ``mse_loss`` expects against a network's (n, 1) output.

    Parameters
    ----------
    n : number of samples.
    features : number of input features.
    noise : standard deviation of the Gaussian noise on ``y``.
    seed : int or Generator; the same int gives the same data bit for bit.

    >>> d = make_regression(n=10, features=3)
    >>> d.X.shape, d.y.shape, d.n_classes
    ((10, 3), (10, 1), None)
    """
    n = _positive_int(n, "make_regression: n")
    features = _positive_int(features, "make_regression: features")
    noise = _non_negative(noise, "make_regression: noise")
    rng = _rng(seed)
    X = rng.uniform(-np.pi, np.pi, size=(n, features))
    clean = np.sin(X).sum(axis=1, keepdims=True) / math.sqrt(features)
    y = clean + noise * rng.standard_normal((n, 1))
    return Dataset(X, y, "regression", None)


_LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "moons": make_moons,
    "spirals": make_spirals,
    "regression": make_regression,
}


def load_mnist1d(dtype: Any = "float64") -> tuple[Dataset, Dataset]:
    """MNIST-1D (Greydanus & Kobak, 2020) as its paper made it: the ``mnist1d`` package's
    generator with its default arguments, no download; its own split, 4,000 training and
    1,000 test sequences of length 40, 10 classes. Needs ``pip install 'chainrule[mnist1d]'``.
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as err:
        raise ImportError(
            "MNIST-1D needs the mnist1d package: pip install 'chainrule[mnist1d]'"
        ) from err
    d = make_dataset(get_dataset_args())
    dt = np.dtype(dtype)
    train = Dataset(d["x"].astype(dt), d["y"].astype(np.int64), "mnist1d", 10)
    test = Dataset(d["x_test"].astype(dt), d["y_test"].astype(np.int64), "mnist1d", 10)
    return train, test


def load(name: str, **kwargs: Any) -> Dataset:
    """A data set by name: "digits", "moons", "spirals" or "regression".

    Keyword arguments go to the loader (``load_digits``, ``make_moons``, ...).

    >>> load("spirals", n=30, classes=2).n_classes
    2
    >>> load("mnist")
    Traceback (most recent call last):
    ...
    ValueError: unknown data set 'mnist'; valid names: digits, moons, spirals, regression
    """
    loader = _LOADERS.get(name) if isinstance(name, str) else None
    if loader is None:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(_LOADERS)}")
    return loader(**kwargs)


# -- splitting, batching, scaling ---------------------------------------------------------
def split(
    dataset: Dataset, test_fraction: float = 0.2, seed: SeedLike = 0
) -> tuple[Dataset, Dataset]:
    """Split into (train, test), each class in the same proportion in both (stratified).

    Each class contributes ``round(test_fraction * its count)`` samples to the test set (for
    regression, the whole set does). The two parts are disjoint, together cover the set, keep
    the original row order, and depend only on ``seed``.

    >>> train, test = split(load_digits(), test_fraction=0.2, seed=0)
    >>> len(train), len(test)
    (1438, 359)
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"split: test_fraction must be in (0, 1); got {test_fraction!r}")
    rng = _rng(seed)
    n = len(dataset)
    if dataset.n_classes is None:
        groups = [np.arange(n)]
    else:
        # np.unique sorts the labels, so groups (and the draws below) come in a fixed order
        labels = np.asarray(dataset.y).reshape(n, -1)[:, 0]
        groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    test_parts = []
    for idx in groups:
        k = int(round(test_fraction * len(idx)))
        test_parts.append(rng.permutation(idx)[:k])
    test_idx = np.sort(np.concatenate(test_parts)).astype(np.intp)
    train_mask = np.ones(n, dtype=bool)
    train_mask[test_idx] = False
    train_idx = np.flatnonzero(train_mask)
    if len(test_idx) == 0 or len(train_idx) == 0:
        raise ValueError(
            f"split: test_fraction={test_fraction} of {n} samples leaves an empty "
            f"{'test' if len(test_idx) == 0 else 'training'} set"
        )

    def take(idx: np.ndarray) -> Dataset:
        return Dataset(dataset.X[idx], dataset.y[idx], dataset.name, dataset.n_classes)

    return take(train_idx), take(test_idx)


def batches(
    X: Any,
    y: Any,
    batch_size: int,
    shuffle: bool = True,
    seed: SeedLike = None,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Mini-batches ``(X_batch, y_batch)`` of NumPy arrays: one pass (epoch) over the data.

    Every sample appears exactly once per epoch (bar the short last batch if ``drop_last``).
    The order comes from ``seed``: an int gives the same order every call; a NumPy or
    chainrule Generator, reused across epochs, gives a new but reproducible order each epoch;
    ``None`` draws fresh entropy (not reproducible). Arguments are checked, and the order
    drawn, when ``batches`` is called, not at the first ``next``.

    Parameters
    ----------
    X, y : arrays (or Tensors) with the same first dimension.
    batch_size : samples per batch, an integer >= 1.
    shuffle : draw a random order; ``False`` keeps the row order.
    seed : int, None, or a NumPy/chainrule Generator.
    drop_last : skip a final batch smaller than ``batch_size``.

    >>> X, y = np.arange(10).reshape(5, 2), np.arange(5)
    >>> [yb.tolist() for _, yb in batches(X, y, batch_size=2, shuffle=False)]
    [[0, 1], [2, 3], [4]]
    >>> rng = np.random.default_rng(0)
    >>> epoch1 = [yb.tolist() for _, yb in batches(X, y, 5, seed=rng)]
    >>> epoch2 = [yb.tolist() for _, yb in batches(X, y, 5, seed=rng)]
    >>> sorted(epoch1[0]) == sorted(epoch2[0]) == [0, 1, 2, 3, 4], epoch1 != epoch2
    (True, True)
    """
    batch_size = _positive_int(batch_size, "batches: batch_size")
    X, y = _as_numpy(X), _as_numpy(y)
    if X.ndim == 0 or y.ndim == 0 or X.shape[0] != y.shape[0]:
        raise ValueError(
            f"batches: X and y need the same number of rows; got shapes {X.shape} and {y.shape}"
        )
    n = X.shape[0]
    order = _rng(seed).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    return _iterate(X, y, order, batch_size, stop)


def _iterate(
    X: np.ndarray, y: np.ndarray, order: np.ndarray, batch_size: int, stop: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    # Fancy indexing copies, so a caller that edits a batch in place cannot touch the data set.
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        yield X[idx], y[idx]


@overload
def standardize(train: Dataset, test: Dataset) -> tuple[Dataset, Dataset]: ...
@overload
def standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
def standardize(train: Any, test: Any) -> tuple[Any, Any]:
    """Copies of the features scaled to zero mean and unit variance *by the training set*.

    The test set is scaled with the training mean and standard deviation, never its own, so
    no information leaks from test to train. Constant features (standard deviation 0, e.g.
    the always-blank corner pixels of the digits) are centred but not divided. Targets are
    left alone. Accepts two Datasets or two arrays, and returns the same kind.

    NaN and inf are not refused: as ``(x - x.mean(0)) / x.std(0)`` does in PyTorch, a feature
    with a NaN or an infinite value in the training set comes out NaN in both sets (its mean
    or spread is undefined), without NumPy's warnings; a NaN in the test set stays in its own
    entry. Drop or fill missing values first (``np.nan_to_num``, or a mean of the rest).

    >>> tr, te = standardize(np.array([[1.0], [3.0]]), np.array([[5.0]]))
    >>> tr.ravel().tolist(), te.ravel().tolist()
    ([-1.0, 1.0], [3.0])
    """
    as_dataset = isinstance(train, Dataset)
    if as_dataset != isinstance(test, Dataset):
        raise TypeError("standardize: pass two Datasets or two arrays, not one of each")
    Xtr = np.asarray(train.X if as_dataset else _as_numpy(train))
    Xte = np.asarray(test.X if as_dataset else _as_numpy(test))
    if Xtr.dtype.kind not in "fiub":
        raise TypeError(f"standardize: features must be numeric; got dtype {Xtr.dtype}")
    dt = Xtr.dtype if Xtr.dtype.kind == "f" else np.dtype(np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf: the NaN documented above
        mean = Xtr.mean(axis=0, dtype=np.float64)
        std = Xtr.std(axis=0, dtype=np.float64)
        std = np.where(std == 0, 1.0, std)  # (a NaN spread stays NaN)
        Xtr2 = ((Xtr - mean) / std).astype(dt)
        Xte2 = ((Xte - mean) / std).astype(dt)
    if not as_dataset:
        return Xtr2, Xte2
    return (
        Dataset(Xtr2, train.y.copy(), train.name, train.n_classes),
        Dataset(Xte2, test.y.copy(), test.name, test.n_classes),
    )
