"""Which array namespace a value belongs to, and the few helpers the array API lacks.

chainrule's ops never call ``numpy`` directly: they receive ``xp``, the namespace of their
inputs (the Python array API standard). NumPy is the default and the fast path: its types are
looked up in a dictionary, every other array type goes through ``array_api_compat``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import (
    batching_rules,  # noqa: F401 (fills Batched's rules)
    gaps,  # (what some namespaces lack)
)
from .batched import Batched, concrete_error, elementwise

__all__ = [
    "namespace",
    "is_array",
    "asarray",
    "as_array",
    "to_numpy",
    "to_host",
    "from_host",
    "erf",
    "scipy_special",
    "index_add",
    "default_float",
    "owned",
    "full_for",
    "Batched",
]

# NOTE: NumPy returns scalars (np.float64, ...) from 0-d operations; they are arrays for our
# purposes, so every NumPy scalar type maps to the NumPy namespace as well.
if int(np.__version__.split(".")[0]) >= 2:
    _NP: Any = np  # NumPy 2 is itself an array-API namespace: the fast path
else:  # NumPy 1.26: the array API functions come from array_api_compat's thin wrapper
    import array_api_compat.numpy as _NP  # type: ignore[no-redef]

NAMESPACES: dict[type, Any] = {np.ndarray: _NP}
for _t in set(np.sctypeDict.values()):
    if isinstance(_t, type) and issubclass(_t, np.generic):
        NAMESPACES[_t] = _NP
_SCALARS = (bool, int, float, complex)

# Inside cr.vmap arrays are Batched: NumPy hands every NumPy call on them to their rules.
NAMESPACES[Batched] = _NP


def namespace(*values: Any) -> Any:
    """Return the array namespace (``xp``) of the first array among ``values``.

    Python scalars carry no namespace; if nothing but scalars is given, NumPy is used.

    >>> import numpy as np
    >>> namespace(np.ones(3)) is np
    True
    """
    for v in values:
        xp = NAMESPACES.get(type(v))
        if xp is not None:
            return xp
        if isinstance(v, _SCALARS) or v is None:
            continue
        if isinstance(v, (list, tuple)):
            continue
        import array_api_compat

        xp = array_api_compat.array_namespace(v)
        NAMESPACES[type(v)] = xp
        return xp
    return _NP


def is_array(value: Any) -> bool:
    """True for an array of any namespace chainrule knows (not for Python scalars or lists)."""
    if type(value) in NAMESPACES:
        return True
    if isinstance(value, (*_SCALARS, list, tuple, str)) or value is None:
        return False
    try:
        namespace(value)
    except TypeError:
        return False
    return True


def default_float(xp: Any) -> Any:
    """The default floating dtype: float64, as NumPy gives for Python floats."""
    return xp.float64


def asarray(data: Any, dtype: Any = None, xp: Any = None) -> Any:
    """Turn ``data`` (array, nested lists, Python scalar) into an array of namespace ``xp``."""
    if xp is None:
        xp = namespace(data)
    if dtype is None:
        return xp.asarray(data)
    return xp.asarray(data, dtype=dtype)


def as_array(value: Any) -> Any:
    """``value`` if it is an array of any namespace (a batch inside ``cr.vmap`` too), else
    ``value`` made an array (NumPy's for Python numbers and lists)."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return value
    return namespace(value).asarray(value)


def to_host(value: Any) -> Any:
    """``value`` as a NumPy array, for index arithmetic done in NumPy (a sort order, a count);
    inside ``cr.vmap`` a batch stays a batch (NumPy's functions batch it)."""
    return value if isinstance(value, Batched) else to_numpy(value)


def from_host(xp: Any, value: Any) -> Any:
    """An array computed by NumPy (from :func:`to_host`) back in namespace ``xp``."""
    return value if isinstance(value, Batched) else xp.asarray(value)


def to_numpy(value: Any) -> np.ndarray:
    """Copy-free where possible conversion of an array of any namespace to a NumPy array."""
    if isinstance(value, (np.ndarray, np.generic)):
        return np.asarray(value)
    if isinstance(value, Batched):
        raise concrete_error("a NumPy array of the value (.numpy(), printing it)")
    if hasattr(value, "get") and type(value).__module__.startswith("cupy"):
        return value.get()  # CuPy: device to host
    if hasattr(value, "compute") and type(value).__module__.startswith("dask"):
        return np.asarray(value.compute())
    try:
        return np.asarray(value)
    except (TypeError, ValueError, RuntimeError):
        return np.from_dlpack(value)


_vector_erf = np.vectorize(math.erf, otypes=[np.float64])


def erf(xp: Any, x: Any) -> Any:
    """The error function, elementwise, in the namespace of ``x``.

    The array API has no ``erf``. NumPy arrays use SciPy when it is installed (fast, exact to
    the last bit) and Python's ``math.erf`` per element otherwise (exact, slower); other
    namespaces go through NumPy and back.
    """
    if xp is _NP:
        return _numpy_erf(x)
    if gaps.is_dask(x):
        return gaps.elementwise(_numpy_erf, x, dtype=x.dtype)
    dtype = x.dtype
    out = _numpy_erf(to_numpy(x))
    return xp.asarray(out, dtype=dtype)


def _numpy_erf(x: Any) -> Any:
    special = _scipy_special()
    if special is not None:
        return special.erf(x)
    x = np.asarray(x)
    return _vector_erf(x).astype(x.dtype, copy=False)


_SPECIAL: list[Any] = []


def _scipy_special() -> Any:
    if not _SPECIAL:
        try:
            import scipy.special as special
        except ImportError:  # optional: chainrule[special]
            special = None
        _SPECIAL.append(special)
    return _SPECIAL[0]


def scipy_special(xp: Any, name: str, *args: Any) -> Any:
    """``scipy.special.<name>(*args)`` in the namespace of the arrays (SciPy works on NumPy
    arrays; others go through NumPy and back). SciPy is optional: chainrule[special]."""
    special = _scipy_special()
    if special is None:
        raise ImportError(
            f"{name} needs SciPy, which is not installed: pip install 'chainrule[special]'"
        )
    fn = getattr(special, name)
    if xp is _NP:
        if not isinstance(fn, np.ufunc) and any(isinstance(a, Batched) for a in args):
            return elementwise(fn, args)  # (a Python function around ufuncs: polygamma)
        return fn(*args)
    arrays = [a for a in args if hasattr(a, "dtype")]
    if any(gaps.is_dask(a) for a in arrays):
        return gaps.elementwise(fn, *args, dtype=arrays[-1].dtype)
    out = fn(*[to_numpy(a) if hasattr(a, "dtype") else a for a in args])
    return xp.asarray(out, dtype=arrays[-1].dtype if arrays else None)


def index_add(xp: Any, target: Any, index: Any, values: Any) -> Any:
    """Return ``target`` with ``values`` added at ``index``, repeated indices accumulating.

    This is the scatter-add that the gradient of advanced indexing needs. NumPy has it
    (``np.add.at``); for other namespaces the sum is done in NumPy and brought back.
    """
    if xp is _NP:
        out = target.copy()  # (a method: a Batched target copies itself)
        np.add.at(out, index, values)
        return out
    host = np.array(to_numpy(target), copy=True)
    host_index = (
        tuple(_index_to_numpy(i) for i in index)
        if isinstance(index, tuple)
        else _index_to_numpy(index)
    )
    np.add.at(host, host_index, to_numpy(values))
    return xp.asarray(host, dtype=target.dtype)


def full_for(xp: Any, like: Any, shape: tuple[int, ...], value: Any = 0) -> Any:
    """A new array of ``shape`` filled with ``value``, to write ``like`` (or values computed
    from it) into: of its namespace and dtype, and a batch of them inside ``cr.vmap``."""
    if isinstance(like, Batched):
        return np.full_like(like, value, shape=shape)
    return xp.full(shape, value, dtype=like.dtype)


def _index_to_numpy(i: Any) -> Any:
    if isinstance(i, (int, slice)) or i is None or i is Ellipsis:
        return i
    return to_numpy(i)


def owned(x: Any) -> Any:
    """``x`` if it is an array that owns writeable memory, else a copy of it.

    A gradient stored in ``.grad`` must not be a read-only broadcast view or share memory with
    another tensor's gradient, or an in-place edit of one would change the other.
    """
    if type(x) is np.ndarray:
        if x.base is None and x.flags.writeable:
            return x
        return x.copy()
    if isinstance(x, np.generic):
        return np.asarray(x).copy()
    return x
