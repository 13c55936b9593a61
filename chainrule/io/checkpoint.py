"""Checkpoints in the safetensors format: written atomically, checksummed, read without pickle.

A checkpoint is a flat mapping from names to arrays, as ``Module.state_dict()`` gives, plus
optional string metadata. The format is safetensors (a JSON header and raw little-endian
bytes), which PyTorch, JAX, TensorFlow and every other safetensors reader can open, and which
cannot run code when read: there is nothing in it but numbers and text.

Each tensor's bytes are checksummed (CRC32) when saved, in the header's metadata under
``chainrule.checksums`` (a string, as the format requires: JSON of name -> "crc32:<hex>"),
and checked when loaded: a flipped bit on disk or in transfer is refused with the file and
the tensor named, instead of loading as a wrong number. Files without checksums (written by
other tools) load as they are.

>>> import os, tempfile
>>> import numpy as np
>>> import chainrule as cr
>>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
>>> _ = cr.save({"w": np.eye(2), "b": cr.zeros(2)}, path, metadata={"epoch": "3"})
>>> sorted(cr.load(path)), cr.io.load_metadata(path)
(['b', 'w'], {'epoch': '3'})
"""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import struct
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import safetensors.numpy

from ..engine.tensor import Tensor

__all__ = ["CheckpointError", "CHECKSUMS", "save", "load", "load_metadata", "write_atomic"]

PathLike = str | os.PathLike[str]

# The NumPy dtypes safetensors can store (bfloat16 and float8 exist in the format, not NumPy).
_SUPPORTED = frozenset(
    np.dtype(t)
    for t in (
        "bool",
        "int8",
        "uint8",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "int64",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
    )
)
_SUPPORTED_NAMES = ", ".join(sorted(d.name for d in _SUPPORTED))


# The metadata entry that holds the checksums: JSON {tensor name: "crc32:<8 hex digits>"}.
CHECKSUMS = "chainrule.checksums"


class CheckpointError(ValueError):
    """A file that is not a valid chainrule (safetensors) checkpoint: truncated, corrupted, or
    in another format. chainrule never falls back to pickle, so such a file is refused."""


# -- saving -------------------------------------------------------------------------------
def save(
    state_dict: Mapping[str, Any],
    path: PathLike,
    metadata: Mapping[str, str] | None = None,
) -> pathlib.Path:
    """Write ``state_dict`` to ``path`` as a safetensors file, atomically.

    The bytes go to a temporary file in the same directory, which is flushed, fsynced and
    then renamed over ``path`` (``os.replace``, an atomic rename on POSIX); the directory
    is fsynced so the rename itself survives a power cut. A crash at any moment leaves
    either the old file or the new one at ``path``, whole, never a mixture. Missing parent
    directories are created.

    Parameters
    ----------
    state_dict : mapping of str to NumPy arrays, chainrule Tensors or array-likes.
    path : where to write (conventionally ``*.safetensors``).
    metadata : optional str -> str annotations stored in the header (epoch, config, ...);
        the key ``chainrule.checksums`` is reserved for the CRC32 of each tensor.

    Returns
    -------
    pathlib.Path of the written file.

    >>> import tempfile
    >>> p = save({"w": np.ones((2, 3), dtype="float32")}, tempfile.mkdtemp() + "/a/ck.safetensors")
    >>> p.name, load(p)["w"].dtype
    ('ck.safetensors', dtype('float32'))
    """
    return write_atomic(path, _serialize(state_dict, metadata))


def write_atomic(path: PathLike, data: bytes) -> pathlib.Path:
    """Write ``data`` to ``path`` so that ``path`` always holds a whole file, old or new.

    As :func:`save` does for checkpoints: the bytes go to a temporary file beside ``path``,
    which is fsynced and renamed over it. Missing parent directories are created. An OSError
    (a full disk, no permission) names ``path`` (never the temporary file, which is removed)
    and leaves the old file as it was.

    >>> import tempfile
    >>> p = write_atomic(tempfile.mkdtemp() + "/notes/a.txt", b"epoch,loss")
    >>> p.name, p.read_bytes()
    ('a.txt', b'epoch,loss')
    """
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(target, data)
    return target


def _serialize(state_dict: Mapping[str, Any], metadata: Mapping[str, str] | None) -> bytes:
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            "save: state_dict must be a mapping of names to arrays; "
            f"got {type(state_dict).__name__}"
        )
    arrays: dict[str, np.ndarray] = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"save: keys must be str; got {key!r} of type {type(key).__name__}")
        if key == "__metadata__":  # reserved by the format for the metadata block
            raise ValueError("save: '__metadata__' is reserved by safetensors; rename that entry")
        arrays[key] = _to_array(key, value)
    meta: dict[str, str] = {}
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise TypeError(f"save: metadata must be a dict of str; got {type(metadata).__name__}")
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(
                    f"save: metadata keys and values must be str; got {k!r}: {v!r} "
                    f"({type(k).__name__}: {type(v).__name__}); use str() or json.dumps()"
                )
        if CHECKSUMS in metadata:
            raise ValueError(
                f"save: the metadata key {CHECKSUMS!r} is reserved for the tensors' checksums; "
                "rename that entry"
            )
        meta = dict(metadata)
    meta[CHECKSUMS] = json.dumps({key: _checksum(_file_bytes(a)) for key, a in arrays.items()})
    return safetensors.numpy.save(arrays, metadata=meta)


def _file_bytes(arr: np.ndarray) -> np.ndarray:
    """``arr`` as the bytes safetensors writes: little-endian, C order (a view when it is
    already so, as on every little-endian machine)."""
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False)


def _checksum(buffer: Any) -> str:
    return f"crc32:{zlib.crc32(buffer):08x}"


def _to_array(key: str, value: Any) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.numpy()  # the data, never the graph; CuPy arrays come to the host
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise TypeError(
            f"save: {key!r} is a {type(value).__name__}, not an array or Tensor"
        ) from exc
    native = arr.dtype.newbyteorder("=")
    if native not in _SUPPORTED:
        raise TypeError(
            f"save: {key!r} has dtype {arr.dtype}, which safetensors cannot store; "
            f"supported: {_SUPPORTED_NAMES}"
        )
    if arr.dtype != native:  # a big-endian array ('>f8'): same values, native byte order
        arr = arr.astype(native)
    # NOTE: safetensors copies nbytes from the array's data pointer, so a strided view (a
    # transpose, a slice) must be made contiguous or the wrong bytes are written.
    # (np.ascontiguousarray would also turn a 0-d array into shape (1,).)
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def _atomic_write(target: pathlib.Path, payload: bytes) -> None:
    # A unique name per writer: two processes saving to one path never share a temp file.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # os.open with mode 0o666 lets the umask decide the permissions, as for any new file
    # (tempfile.mkstemp would force 0o600 onto the checkpoint).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:  # (the open inside: a Ctrl-C right after it must not leave the temp file either)
        fd = os.open(tmp, flags, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the name points at it
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        # NOTE: a failed write() or fsync() (ENOSPC) names no file, and a failed open names
        # the temporary one: name the file being saved instead, keeping the errno (and so
        # the subclass: OSError(ENOSPC, ...) is an OSError, OSError(EACCES, ...) a
        # PermissionError).
        raise OSError(err.errno, err.strerror or str(err), str(target)) from err
    except BaseException:
        # KeyboardInterrupt too: never leave a half-written temp file behind when we can help it
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(directory: pathlib.Path) -> None:
    # The rename lives in the directory entry; without this a power cut can undo it.
    # Windows cannot open a directory this way; there os.replace is the best we have.
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- loading ------------------------------------------------------------------------------
def load(path: PathLike) -> dict[str, np.ndarray]:
    """Read a checkpoint written by :func:`save` (or any safetensors file) into NumPy arrays.

    Only the safetensors format is read; pickles (``torch.save`` files, ``.npy`` with
    objects) are refused, never executed.

    Raises
    ------
    FileNotFoundError : no file at ``path``.
    CheckpointError : the file is not a valid safetensors checkpoint (truncated, corrupted or
        another format), or a tensor's bytes differ from the checksum recorded when it was
        saved (the message names the file and the tensor).

    >>> import tempfile
    >>> p = save({"step": np.array(7)}, tempfile.mkdtemp() + "/ck.safetensors")
    >>> load(p)
    {'step': array(7)}
    """
    arrays, _ = _parse(path)
    # Writable arrays that own their memory: optimizers update parameters in place.
    return {k: v if v.flags.writeable else v.copy() for k, v in arrays.items()}


def load_metadata(path: PathLike) -> dict[str, str]:
    """The str -> str metadata stored in a checkpoint's header (``{}`` if there is none),
    without the tensors' checksums.

    The whole file is validated, as by :func:`load` (its checksums too), so a truncated or
    corrupted checkpoint is refused here too.

    >>> import tempfile
    >>> p = save({"w": np.zeros(2)}, tempfile.mkdtemp() + "/ck.safetensors", {"lr": "0.1"})
    >>> load_metadata(p)
    {'lr': '0.1'}
    """
    _, meta = _parse(path)
    return meta


def _parse(path: PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays and the metadata (checksums taken out) of a valid checkpoint, whose
    tensors match their checksums where it has them."""
    data = _read(path)
    try:
        arrays = safetensors.numpy.load(data)  # checks the header, the offsets, the size
        (header_len,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + header_len])
        meta = header.pop("__metadata__", None) or {}
    except Exception as exc:  # SafetensorError, or anything a malformed header provokes
        raise _invalid(path, data, str(exc)) from None
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise _invalid(path, data, "its __metadata__ is not a str -> str mapping")
    if CHECKSUMS in meta:
        recorded = _recorded_checksums(path, data, meta.pop(CHECKSUMS))
        _verify(path, memoryview(data)[8 + header_len :], header, recorded)
    return arrays, dict(meta)


def _recorded_checksums(path: PathLike, data: bytes, text: str) -> dict[str, str]:
    try:
        recorded = json.loads(text)
    except ValueError:
        recorded = None
    if not isinstance(recorded, dict) or not all(
        isinstance(v, str) and v.startswith("crc32:") for v in recorded.values()
    ):
        raise _invalid(
            path, data, f"its {CHECKSUMS!r} metadata is not JSON of name -> 'crc32:<hex>'"
        )
    return recorded


def _verify(
    path: PathLike, body: memoryview, header: dict[str, Any], recorded: dict[str, str]
) -> None:
    """Each tensor's bytes (``body`` is the file after the header) against its checksum."""
    unmatched = sorted(set(header) ^ set(recorded))
    if unmatched:
        name = unmatched[0]
        has, lacks = ("a tensor", "checksum") if name in header else ("a checksum", "tensor")
        raise CheckpointError(
            f"{path}: the checkpoint has {has} named {name!r} but no {lacks} of that name: "
            "its header was edited after it was saved. Restore the file from a copy or save "
            "it again"
        )
    for name, info in header.items():
        start, end = info["data_offsets"]
        found = _checksum(body[start:end])
        if found != recorded[name]:
            raise CheckpointError(
                f"{path}: tensor {name!r} ({info['dtype']}, shape {tuple(info['shape'])}) is "
                f"corrupted: its {end - start} bytes have checksum {found}, but "
                f"{recorded[name]} was recorded when it was saved (a bit flipped on disk or in "
                "transfer, or another tool edited the file). Nothing was loaded; restore the "
                "file from a copy or save it again"
            )


def _read(path: PathLike) -> bytes:
    p = pathlib.Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {p} (file not found)") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{p} is a directory, not a checkpoint file") from None


def _invalid(path: PathLike, data: bytes, reason: str) -> CheckpointError:
    hint = ""
    if data[:1] == b"\x80":  # pickle protocol 2+ opcode PROTO
        hint = " It looks like a pickle."
    elif data[:4] == b"PK\x03\x04":  # torch.save's zip archive holds a pickle
        hint = " It looks like a zip archive (torch.save writes pickles inside one)."
    elif data[:6] == b"\x93NUMPY":
        hint = " It looks like a .npy file."
    return CheckpointError(
        f"{path} is not a valid chainrule/safetensors checkpoint ({len(data)} bytes): it is "
        f"truncated, corrupted or in another format ({reason}).{hint} chainrule never loads "
        "pickles; save with cr.save() (or safetensors' save_file) and load that file."
    )
