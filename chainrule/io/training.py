"""A training run in one checkpoint: the model's parameters, the optimizer's and the
schedule's state, the epoch and a NumPy random generator, in one safetensors file, so that a
run stopped and resumed gives the same numbers, bit for bit, as a run that never stopped.

The arrays go in as ``model.<name>`` (the model's ``state_dict()``) and
``optimizer.<i>.<buffer>`` (the optimizer's flat state); everything else is JSON in the
file's metadata (``format``, ``epoch``, ``optimizer``, ``scheduler``, ``rng``, ``extra``).

>>> import os, tempfile
>>> import numpy as np
>>> import chainrule as cr
>>> model = cr.nn.Linear(2, 1, rng=0)
>>> opt = cr.optim.Adam(model.parameters(), lr=0.01)
>>> path = os.path.join(tempfile.mkdtemp(), "run.safetensors")
>>> _ = save_training(path, model, opt, epoch=3, extra={"best": 0.5})
>>> load_training(path, cr.nn.Linear(2, 1, rng=1), cr.optim.Adam(model.parameters()))
{'epoch': 3, 'extra': {'best': 0.5}}
"""

from __future__ import annotations

import json
import numbers
import pathlib
from typing import Any

import numpy as np

from .checkpoint import CheckpointError, PathLike, load, load_metadata, save

__all__ = ["save_training", "load_training"]

FORMAT = "chainrule.training/1"


def save_training(
    path: PathLike,
    model: Any,
    optimizer: Any,
    scheduler: Any = None,
    *,
    epoch: int,
    rng: np.random.Generator | None = None,
    extra: Any = None,
) -> pathlib.Path:
    """Write a training checkpoint to ``path`` (atomically, as :func:`chainrule.save`).

    Parameters
    ----------
    path : where to write (conventionally ``*.safetensors``).
    model : an ``nn.Module`` (anything with ``state_dict()`` giving name -> array).
    optimizer : a ``chainrule.optim`` optimizer.
    scheduler : its learning-rate schedule, if any.
    epoch : the number of epochs (or steps) done, an int >= 0.
    rng : a ``np.random.Generator`` whose state is saved (the data order, dropout, ...).
    extra : anything JSON can write (a dict of metrics, the config), returned on load.

    Returns
    -------
    pathlib.Path of the written file.
    """
    if not isinstance(epoch, numbers.Integral) or isinstance(epoch, bool) or epoch < 0:
        raise ValueError(f"save_training: epoch must be an integer >= 0, got {epoch!r}")
    arrays = {f"model.{name}": value for name, value in model.state_dict().items()}
    opt_state = optimizer.state_dict()
    arrays.update((f"optimizer.{key}", value) for key, value in opt_state["state"].items())
    meta = {
        "format": FORMAT,
        "epoch": str(int(epoch)),
        "optimizer": json.dumps({k: v for k, v in opt_state.items() if k != "state"}),
    }
    if scheduler is not None:
        meta["scheduler"] = json.dumps(scheduler.state_dict())
    if rng is not None:
        meta["rng"] = json.dumps(_encode(_generator(rng, "save_training").bit_generator.state))
    if extra is not None:
        try:
            meta["extra"] = json.dumps(extra)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"save_training: extra must be JSON-able (dicts, lists, str, numbers): {exc}"
            ) from None
    return save(arrays, path, metadata=meta)


def load_training(
    path: PathLike,
    model: Any,
    optimizer: Any,
    scheduler: Any = None,
    rng: np.random.Generator | None = None,
) -> dict[str, Any]:
    """Restore what :func:`save_training` wrote into ``model``, ``optimizer`` and, if given,
    ``scheduler`` and ``rng`` (a state in the file that is not asked for is skipped).

    All or nothing: each part is checked by its own ``load_state_dict``; if any part does not
    fit, the parts already loaded are put back as they were and the error lists the
    problems of every part.

    Returns
    -------
    dict with ``"epoch"`` (the int saved) and ``"extra"`` (what was saved, or None).

    Raises
    ------
    FileNotFoundError : no file at ``path``.
    CheckpointError : not a training checkpoint (or not a safetensors file at all).
    ValueError : the checkpoint does not fit the objects given; nothing was changed.
    """
    arrays = load(path)
    meta = load_metadata(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a training checkpoint: its metadata has no format {FORMAT!r} "
            f"(it has {sorted(meta)}). A file written by cr.save() holds only arrays: read it "
            "with cr.load() and model.load_state_dict()"
        )
    problems: list[str] = []
    model_state = {k[len("model.") :]: v for k, v in arrays.items() if k.startswith("model.")}
    opt_arrays = {
        k[len("optimizer.") :]: v for k, v in arrays.items() if k.startswith("optimizer.")
    }
    problems += [
        f"unexpected array {k!r} (neither model. nor optimizer.)"
        for k in arrays
        if not k.startswith(("model.", "optimizer."))
    ]
    epoch = _json(meta, "epoch", problems)
    if "epoch" in meta and (not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0):
        problems.append(f"the metadata's 'epoch' is not an integer >= 0: {meta['epoch']!r}")
    opt_state = _json(meta, "optimizer", problems)
    if isinstance(opt_state, dict):
        opt_state = {**opt_state, "state": opt_arrays}
    parts: list[tuple[str, Any, Any]] = [
        ("model", model, model_state),
        ("optimizer", optimizer, opt_state),
    ]
    if scheduler is not None:
        if "scheduler" in meta:
            parts.append(("scheduler", scheduler, _json(meta, "scheduler", problems)))
        else:
            problems.append("a scheduler was given, but the checkpoint holds no scheduler state")
    if rng is not None:
        generator = _generator(rng, "load_training")
        if "rng" in meta:
            parts.append(("rng", _RngState(generator), _decode(_json(meta, "rng", problems))))
        else:
            problems.append("an rng was given, but the checkpoint holds no generator state")
    if problems:  # the file itself is wrong: touch nothing
        raise ValueError(_message(path, problems))
    loaded: list[tuple[Any, Any]] = []  # (object, its state before) of each part done
    for what, obj, state in parts:
        before = obj.state_dict()
        try:
            obj.load_state_dict(state)
        except (ValueError, TypeError, KeyError) as exc:
            problems.append(f"{what}: {exc}")
        else:
            loaded.append((obj, before))
    if problems:
        for obj, before in reversed(loaded):  # put back what was loaded
            obj.load_state_dict(before)
        raise ValueError(_message(path, problems))
    extra = json.loads(meta["extra"]) if "extra" in meta else None
    return {"epoch": epoch, "extra": extra}


def _message(path: PathLike, problems: list[str]) -> str:
    return (
        f"load_training: {path} does not fit the objects given ({len(problems)} "
        f"problem{'s' if len(problems) > 1 else ''}); nothing was changed:\n  "
        + "\n  ".join(p.replace("\n", "\n    ") for p in problems)
    )


def _json(meta: dict[str, str], key: str, problems: list[str]) -> Any:
    if key not in meta:
        problems.append(f"the metadata has no {key!r}")
        return None
    try:
        return json.loads(meta[key])
    except ValueError as exc:
        problems.append(f"the metadata's {key!r} is not JSON ({exc})")
    except RecursionError:  # json.loads recurses: "[[[[...]]]]" deep enough ends here
        problems.append(f"the metadata's {key!r} is JSON nested too deeply")
    return None


def _generator(rng: Any, who: str) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{who}: rng must be a numpy.random.Generator (np.random.default_rng(seed)), got "
            f"a {type(rng).__name__}"
        )
    return rng


class _RngState:
    """A Generator seen as a part with state_dict()/load_state_dict(), as the others."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def state_dict(self) -> dict[str, Any]:
        return dict(self.rng.bit_generator.state)

    def load_state_dict(self, state: Any) -> None:
        kind = type(self.rng.bit_generator).__name__
        saved = state.get("bit_generator") if isinstance(state, dict) else None
        if saved != kind:
            raise ValueError(f"the checkpoint's generator is a {saved}, the rng given a {kind}")
        self.rng.bit_generator.state = state


# The states of NumPy's bit generators hold ints (JSON keeps them exact, however large) and,
# for some (MT19937, Philox, SFC64), arrays: written as {"ndarray": [...], "dtype": "uint32"}.
def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"ndarray": value.tolist(), "dtype": value.dtype.name}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, np.integer):
        return int(value)
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"ndarray", "dtype"}:
            return np.array(value["ndarray"], dtype=value["dtype"])
        return {k: _decode(v) for k, v in value.items()}
    return value
