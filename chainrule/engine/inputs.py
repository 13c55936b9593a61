"""What a tensor may be made of: numbers and booleans. Text, None, dates and other Python
objects are refused where they come in (``cr.tensor``, ``cr.asarray``), with a message that
names the first such entry and how to convert it, rather than by every op later on."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import namespace

__all__ = ["NOT_NUMBERS", "not_numbers_hint", "check_numeric", "checked_namespace"]


# NumPy's dtype kinds that hold no numbers: what a user would call them, and how to convert
NOT_NUMBERS = {
    "U": ("text", "float(s) or arr.astype(float) for numeric text"),
    "S": ("bytes", "float(s) or arr.astype(float) for numeric text"),
    "O": (
        "Python objects",
        "a number or np.nan for each missing value (None), then arr.astype(float)",
    ),
    "M": ("dates and times", "(t - t0) / np.timedelta64(1, 's') for seconds since t0"),
    "m": ("time differences", "t / np.timedelta64(1, 's') for seconds"),
    "V": ("structured records", "one array per field, arr['name']"),
}


def not_numbers_hint(kind: str) -> str:
    """'(text)', '(dates and times)', ... and how to turn such data into numbers."""
    name, fix = NOT_NUMBERS[kind]
    return f"({name}); convert the data to numbers first: {fix}"


def check_numeric(arr: Any, given: Any, who: str) -> None:
    """Refuse ``arr`` (made from ``given``) unless it holds numbers or booleans: text,
    None, dates and other Python objects have no derivative and break every op later, far
    from where they came in."""
    kind = getattr(getattr(arr, "dtype", None), "kind", "f")  # (array-API dtypes: numeric)
    if kind in NOT_NUMBERS:
        raise _not_numbers(who, f"{_describe_given(given, arr)} {not_numbers_hint(kind)}")


def checked_namespace(data: Any, who: str) -> Any:
    """The array namespace of ``data`` that ``who`` makes a tensor of; a string, a dict or
    any other object that is neither an array nor a (nested list of) number(s) is refused."""
    if isinstance(data, (str, bytes)):
        kind = "S" if isinstance(data, bytes) else "U"
        raise _not_numbers(who, f"{_describe_leaf(data)} {not_numbers_hint(kind)}")
    try:
        return namespace(data)
    except TypeError:  # a dict, a set, any object that is no array
        raise _not_numbers(who, f"a {type(data).__name__}") from None


def _not_numbers(who: str, what: str) -> TypeError:
    return TypeError(
        f"{who}: expected numbers or booleans (a number, nested lists of them, or a numeric "
        f"array), got {what}"
    )


def _describe_given(given: Any, arr: Any) -> str:
    """What the caller passed, for an error message: the first entry that is not a number."""
    if isinstance(given, (list, tuple)):
        found = _first_non_number(given, "")
        if found is not None:
            where, leaf = found
            return f"a {type(given).__name__} holding {_describe_leaf(leaf)} at {where}"
    if hasattr(given, "dtype") and hasattr(given, "shape"):
        return f"an array of dtype {given.dtype}"
    if given is None:
        return "None"
    return f"a {type(given).__name__} (read as dtype {arr.dtype})"


def _first_non_number(items: Any, where: str) -> tuple[str, Any] | None:
    for i, item in enumerate(items):
        if isinstance(item, (list, tuple)):
            found = _first_non_number(item, f"{where}[{i}]")
            if found is not None:
                return found
        elif not isinstance(item, (bool, int, float, complex, np.number, np.bool_)):
            if not (hasattr(item, "dtype") and getattr(item.dtype, "kind", "f") in "biufc"):
                return f"{where}[{i}]", item
    return None


def _describe_leaf(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, bytes):
        return f"the bytes {value[:40]!r}"
    return f"a {type(value).__name__} ({str(value)[:40]})"
