"""An optimizer's state as flat data, and back: arrays under ``"<i>.<name>"`` keys (parameter
``i``'s buffer ``name``; step counts as 0-d int64 arrays) beside JSON-able entries (``type``,
``steps``, ``param_groups``), so that a safetensors file can hold it.

Reading is two steps: :func:`read` checks everything and lists every problem; only when there
are none does :func:`apply` change the optimizer.

>>> parse_key("12.exp_avg")
(12, 'exp_avg')
>>> parse_key("exp_avg") is None
True
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backends import namespace, to_numpy
from ..engine.tensor import Tensor
from . import _checks

if TYPE_CHECKING:
    from .optimizer import Optimizer

__all__ = ["flatten", "read", "apply", "parse_key"]

_KEYS = ("type", "steps", "param_groups", "state")
_KEY = re.compile(r"^(0|[1-9][0-9]*)\.([A-Za-z_][A-Za-z0-9_]*)$")


def parse_key(key: Any) -> tuple[int, str] | None:
    """``(i, name)`` of a state key ``"<i>.<name>"``, or None if it is not one."""
    match = _KEY.match(key) if isinstance(key, str) else None
    return (int(match[1]), match[2]) if match else None


def flatten(opt: Optimizer) -> dict[str, Any]:
    """The optimizer's ``state_dict()``: copies, nothing shared with the optimizer."""
    arrays: dict[str, np.ndarray] = {}
    for i, state in enumerate(opt.state):
        for name, value in state.items():
            if isinstance(value, numbers.Integral):  # a step count
                arrays[f"{i}.{name}"] = np.array(int(value), dtype=np.int64)
            else:  # (a copy: the optimizer's buffers change in place at every step)
                arrays[f"{i}.{name}"] = np.array(to_numpy(value), copy=True)
    groups = []
    start = 0
    for group in opt.param_groups:
        n = len(group["params"])
        entry: dict[str, Any] = {"params": list(range(start, start + n))}
        for key in opt.SPEC:
            value = group[key]
            entry[key] = list(value) if isinstance(value, tuple) else value
        groups.append(entry)
        start += n
    return {"type": opt.name, "steps": opt.steps, "param_groups": groups, "state": arrays}


def read(opt: Optimizer, sd: Any) -> tuple[list[str], Any]:
    """``(problems, loaded)``: every way ``sd`` does not fit ``opt``, and what
    :func:`apply` takes when there are none."""
    if not isinstance(sd, Mapping):
        return [f"the state is a {type(sd).__name__}, not the dict state_dict() returns"], None
    problems = [f"missing key {key!r}" for key in _KEYS if key not in sd]
    problems += [f"unexpected key {key!r}" for key in sd if key not in _KEYS]
    if "type" in sd and sd["type"] != opt.name:
        problems.append(f"'type': the state is for {sd['type']!r}, not {opt.name!r}")
    steps = 0
    if "steps" in sd:
        try:
            steps = _checks.integer("'steps'", sd["steps"])
        except ValueError as exc:
            problems.append(str(exc))
    groups = _read_groups(opt, sd["param_groups"], problems) if "param_groups" in sd else []
    states = _read_states(opt, sd["state"], problems) if "state" in sd else []
    return problems, (groups, steps, states)


def _read_groups(opt: Optimizer, saved: Any, problems: list[str]) -> list[dict[str, Any]]:
    if not isinstance(saved, (list, tuple)) or not all(isinstance(s, Mapping) for s in saved):
        problems.append(f"'param_groups' must be a list of dicts, got {saved!r:.200}")
        return []
    if len(saved) != len(opt.param_groups):
        problems.append(
            f"'param_groups' has {len(saved)} group{'s' if len(saved) != 1 else ''}, "
            f"{opt.name} has {len(opt.param_groups)}"
        )
        return []
    out = []
    start = 0
    for k, (s, group) in enumerate(zip(saved, opt.param_groups)):
        where = f"param_groups[{k}]"
        n = len(group["params"])
        ids = s.get("params")
        expected = list(range(start, start + n))
        start += n
        if isinstance(ids, (list, tuple)) and len(ids) != n:
            problems.append(f"{where} has {len(ids)} parameters, {opt.name}'s group {k} has {n}")
        elif not isinstance(ids, (list, tuple)) or list(ids) != expected:
            problems.append(
                f"{where}['params'] must be the parameter indices {expected}, got {ids!r:.200}"
            )
        problems += [
            f"{where} has unknown key {key!r}"
            for key in s
            if key not in opt.SPEC and key != "params"
        ]
        hp: dict[str, Any] = {}
        for key, check in opt.SPEC.items():
            if key not in s:
                problems.append(f"{where} has no {key!r}")
                continue
            try:
                hp[key] = check(f"{where}[{key!r}]", s[key])
            except ValueError as exc:
                problems.append(str(exc))
        if len(hp) == len(opt.SPEC):
            try:
                opt._check_group(hp, f"{where}: ")
            except ValueError as exc:
                problems.append(str(exc))
        out.append(hp)
    return out


def _read_states(opt: Optimizer, arrays: Any, problems: list[str]) -> list[dict[str, Any]]:
    if not isinstance(arrays, Mapping):
        problems.append(
            f"'state' must be a dict of '<i>.<name>' -> array, got a {type(arrays).__name__}"
        )
        return []
    n = len(opt.params)
    states: list[dict[str, Any]] = [{} for _ in range(n)]
    named: list[set[str]] = [set() for _ in range(n)]  # what each parameter's state names
    for key, value in arrays.items():
        parsed = parse_key(key)
        if parsed is None:
            problems.append(f"state key {key!r} is not '<parameter index>.<name>'")
            continue
        i, name = parsed
        if i >= n:
            problems.append(f"state {key!r}: there is no parameter {i} ({opt.name} has {n})")
            continue
        kind = opt.STATE.get(name)
        if kind is None:
            kept = ", ".join(repr(s) for s in opt.STATE) or "nothing"
            problems.append(f"state {key!r}: {opt.name} keeps no {name!r} (it keeps {kept})")
            continue
        named[i].add(name)
        arr = _as_numpy(value)
        if arr is None:
            problems.append(f"state {key!r} is a {type(value).__name__}, not a NumPy array")
        elif kind == "count":
            if arr.shape != () or arr.dtype.kind not in "iu" or int(arr) < 0:
                problems.append(
                    f"state {key!r} must be a step count (a 0-d integer array >= 0), got "
                    f"dtype {arr.dtype}, shape {arr.shape}"
                    + (f", value {arr.item()!r}" if arr.shape == () else "")
                )
            else:
                states[i][name] = int(arr)
        else:
            p = opt.params[i]
            dtype = _dtype(p._data)
            if arr.shape != tuple(p.shape):
                problems.append(
                    f"state {key!r}: shape {arr.shape}, but parameter {i} has shape {p.shape}"
                )
            elif arr.dtype != dtype:
                problems.append(
                    f"state {key!r}: dtype {arr.dtype}, but parameter {i} has dtype {dtype}"
                )
            else:
                states[i][name] = arr
    for i, names in enumerate(named):
        missing = [r for r in opt.REQUIRED_STATE if r not in names]
        if names and missing:
            problems.append(
                f"state of parameter {i} has {sorted(names)} but not {missing}; {opt.name} "
                f"keeps {list(opt.REQUIRED_STATE)} together"
            )
    return states


def _as_numpy(value: Any) -> np.ndarray | None:
    if isinstance(value, Tensor):
        value = value._data
    if isinstance(value, (np.ndarray, np.generic)):
        return np.asarray(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return np.asarray(value, dtype=np.int64)  # a step count typed in by hand
    try:  # an array of another namespace (CuPy, ...): to the host
        return to_numpy(value) if hasattr(value, "__array_namespace__") else None
    except (TypeError, ValueError, RuntimeError):
        return None


def _dtype(data: Any) -> np.dtype[Any]:
    return data.dtype if isinstance(data, np.ndarray) else to_numpy(data).dtype


def apply(opt: Optimizer, loaded: Any) -> None:
    """Put what :func:`read` found without problems into ``opt``."""
    groups, steps, states = loaded
    for group, hp in zip(opt.param_groups, groups):
        group.update(hp)
    opt.steps = steps
    new = []
    for p, state in zip(opt.params, states):
        own: dict[str, Any] = {}
        for name, value in state.items():
            if isinstance(value, int):
                own[name] = value
            elif isinstance(p._data, np.ndarray):  # own memory laid out as the parameter's,
                own[name] = buf = np.empty_like(p._data)  # which the one-pass kernels need
                buf[...] = value
            else:
                own[name] = namespace(p._data).asarray(np.array(value, copy=True))
        new.append(own)
    opt.state = new
