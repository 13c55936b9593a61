"""A user's own data set from a file: ``.csv`` (with or without a header), ``.npz`` or ``.npy``.

The target is one column (by header name or index; the last by default) or, in an ``.npz``,
one array. A target of labels (text, or at most 50 distinct integers) makes a classification
set, its classes numbered in sorted order; any other numbers make a regression set. Every
problem (a missing or non-numeric value, an unknown column, a ragged row) is reported with the
file, the row and the column, and nothing is trained.
"""

from __future__ import annotations

import csv
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import Dataset

__all__ = ["load_file", "MAX_CLASSES", "FileDataError"]

MAX_CLASSES = 50  # integer targets with more distinct values than this are a regression
_MAGIC = {".npy": b"\x93NUMPY", ".npz": b"PK\x03\x04"}  # how NumPy's files begin (.npz: a zip)


class FileDataError(ValueError):
    """A data file that cannot be read as features and a target; the message says where."""


def load_file(path: str | Path, target: str | int | None = None) -> Dataset:
    """Features and target from ``path`` (see the module docstring).

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "flowers.csv"
    >>> _ = f.write_text("width,height,kind\\n1.0,2.0,rose\\n1.5,0.5,tulip\\n0.9,2.2,rose\\n")
    >>> d = load_file(f, target="kind")
    >>> d.X.shape, d.y.tolist(), d.n_classes, d.labels
    ((3, 2), [0, 1, 0], 2, ('rose', 'tulip'))
    """
    path = Path(path)
    if not path.is_file():
        raise FileDataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    readers = {".csv": _read_csv, ".npz": _read_npz, ".npy": _read_npy}
    if suffix not in readers:
        raise FileDataError(f"{path}: unsupported file type {suffix!r}; use .csv, .npz or .npy")
    if suffix in _MAGIC and not _starts_with(path, _MAGIC[suffix]):
        raise FileDataError(f"{path}: not a {suffix} file (it does not begin as NumPy writes one)")
    try:
        X, raw_y, names = readers[suffix](path, target)
    except FileDataError:
        raise
    except UnicodeDecodeError:
        raise FileDataError(f"{path}: not a text file (a .csv must be UTF-8 text)") from None
    except (ValueError, EOFError, zipfile.BadZipFile, csv.Error) as err:
        # NumPy's and the csv module's own words: object arrays, a cut file, a bad archive
        raise FileDataError(f"{path}: not a readable {suffix} file ({err})") from None
    if len(X) < 2:
        raise FileDataError(f"{path}: needs at least 2 rows, found {len(X)}")
    y, n_classes, labels = _target(raw_y, path)
    return Dataset(X, y, path.stem, n_classes, labels=labels, feature_names=names)


def _starts_with(path: Path, magic: bytes) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(magic)) == magic


def _column(target: str | int | None, header: list[str] | None, width: int, path: Path) -> int:
    if target is None:
        return width - 1
    if header is not None and str(target) in header:
        return header.index(str(target))
    try:
        index = int(target)
    except (TypeError, ValueError):
        known = f"; the columns are {', '.join(header)}" if header else " (the file has no header)"
        raise FileDataError(f"{path}: no column {target!r}{known}") from None
    if not -width <= index < width:
        raise FileDataError(f"{path}: column index {index} is outside the {width} columns")
    return index % width


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value


def _read_csv(path: Path, target: Any) -> tuple[np.ndarray, list[Any], tuple[str, ...] | None]:
    with path.open(newline="") as handle:
        rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    if not rows:
        raise FileDataError(f"{path}: the file is empty")
    header = None
    if any(_number(cell) is None for cell in rows[0]):  # a first row of names
        header = [cell.strip() for cell in rows[0]]
        rows = rows[1:]
    width = len(header) if header is not None else len(rows[0]) if rows else 0
    if width < 2:
        raise FileDataError(f"{path}: needs at least two columns (features and a target)")
    col = _column(target, header, width, path)
    first = 2 if header is not None else 1
    features, ys = [], []
    for i, row in enumerate(rows):
        line = i + first
        if len(row) != width:
            raise FileDataError(f"{path}: line {line} has {len(row)} columns, expected {width}")
        values = []
        for j, cell in enumerate(row):
            if j == col:
                continue
            value = _number(cell.strip())
            if value is None or not math.isfinite(value):
                name = header[j] if header else f"column {j}"
                raise FileDataError(
                    f"{path}: line {line}, {name}: {cell.strip()!r} is not a finite number"
                )
            values.append(value)
        features.append(values)
        ys.append(row[col].strip())
    names = tuple(h for j, h in enumerate(header) if j != col) if header else None
    return np.asarray(features, dtype=np.float64), ys, names


def _read_npz(path: Path, target: Any) -> tuple[np.ndarray, Any, None]:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    y_key = (
        str(target) if target is not None else next((k for k in ("y", "Y") if k in arrays), None)
    )
    x_keys = [k for k in arrays if k != y_key]
    if y_key not in arrays or len(x_keys) != 1:
        raise FileDataError(
            f"{path}: expected two arrays, the features and the target (named by --target, or "
            f"'y'); found {sorted(arrays)}"
        )
    X = np.asarray(arrays[x_keys[0]])
    return _numeric_2d(X, path), arrays[y_key], None


def _read_npy(path: Path, target: Any) -> tuple[np.ndarray, Any, None]:
    table = np.load(path, allow_pickle=False)
    if table.ndim != 2 or table.shape[1] < 2:
        raise FileDataError(f"{path}: expected a 2-D array of features and a target column")
    col = _column(target, None, table.shape[1], path)
    return _numeric_2d(np.delete(table, col, axis=1), path), table[:, col], None


def _numeric_2d(X: np.ndarray, path: Path) -> np.ndarray:
    if X.dtype.kind not in "biuf":
        raise FileDataError(f"{path}: the features must be numbers, got dtype {X.dtype}")
    X = X.reshape(len(X), -1).astype(np.float64)
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        row, col = bad[0]
        raise FileDataError(
            f"{path}: row {row}, column {col}: the value {X[row, col]} is not finite"
        )
    return X


def _target(raw: Any, path: Path) -> tuple[np.ndarray, int | None, tuple[str, ...] | None]:
    """(targets, number of classes or None for regression, the class labels)."""
    values = list(np.asarray(raw).tolist())
    for i, v in enumerate(values):
        if isinstance(v, str) and not v:
            raise FileDataError(f"{path}: row {i}: the target is missing")
        if isinstance(v, float) and not math.isfinite(v):
            raise FileDataError(f"{path}: row {i}: the target is {v}")
    numbers = [v if not isinstance(v, str) else _number(v) for v in values]
    if all(n is not None and math.isfinite(n) for n in numbers):
        y = np.asarray(numbers, dtype=np.float64)
        distinct = np.unique(y)
        if np.all(distinct == np.round(distinct)) and len(distinct) <= MAX_CLASSES:
            labels = tuple(str(int(v)) for v in distinct)
            return np.searchsorted(distinct, y).astype(np.int64), len(distinct), labels
        return y.reshape(-1, 1), None, None  # a regression target, one column
    texts = [str(v) for v in values]
    labels = tuple(sorted(set(texts)))
    index = {label: k for k, label in enumerate(labels)}
    return np.asarray([index[t] for t in texts], dtype=np.int64), len(labels), labels
