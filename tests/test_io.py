"""Checkpoints (cr.save / cr.load): safetensors format, bit-exact, atomic, never pickle."""

from __future__ import annotations

import errno
import json
import os
import pickle
import random
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

import chainrule as cr
from chainrule.io import CheckpointError

ROOT = Path(__file__).resolve().parents[1]


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _awkward_floats(dtype: str) -> np.ndarray:
    """Values that a lossy path would change: signed zero, NaN, inf, subnormals, extremes."""
    info = np.finfo(dtype)
    vals = [0.0, -0.0, np.nan, np.inf, -np.inf, info.tiny, info.tiny / 4, info.max, -info.max]
    vals += [1 / 3, np.pi, np.e, info.eps]
    rng = np.random.default_rng(0)
    return np.concatenate([np.array(vals, dtype=dtype), rng.standard_normal(50).astype(dtype)])


# -- round trip --------------------------------------------------------------------------
def test_round_trip_bit_exact(tmp_path):
    state = {
        "f64": _awkward_floats("float64").reshape(7, 9),
        "f32": _awkward_floats("float32"),
        "i64": np.array([0, -1, 2**62, -(2**63), 2**63 - 1], dtype=np.int64),
        "scalar64": np.array(np.pi),
        "scalar32": np.array(-0.0, dtype=np.float32),
        "scalar_i": np.array(7, dtype=np.int64),
        "empty": np.zeros((0, 3)),
        "empty32": np.zeros(0, dtype=np.float32),
        "bool": np.array([True, False, True]),
        "u8": np.arange(256, dtype=np.uint8),
        "f16": np.array([1.5, -2.25, 65504.0], dtype=np.float16),
    }
    meta = {"epoch": "12", "config": json.dumps({"hidden": [64, 64]}), "note": "ünïcode ✓"}
    path = cr.save(state, tmp_path / "ck.safetensors", metadata=meta)
    assert path == tmp_path / "ck.safetensors" and path.is_file()
    loaded = cr.load(path)
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert _same_bits(loaded[key], value), key
        assert loaded[key].flags.writeable  # optimizers update loaded parameters in place
    assert cr.io.load_metadata(path) == meta
    assert cr.io.load_metadata(cr.save({"a": np.ones(1)}, tmp_path / "nometa")) == {}


def test_tensors_views_and_array_likes(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((4, 6))
    w = cr.tensor(base, requires_grad=True)
    state = {
        "tensor": w * 2,  # a non-leaf: its value is saved, not its graph
        "transposed": base.T,  # not C-contiguous: must be saved by value, not by raw buffer
        "strided": base[::2, 1::3],
        "big_endian": base.astype(">f8"),
        "list": [[1.0, 2.0], [3.0, 4.0]],
        "int": 3,
    }
    loaded = cr.load(cr.save(state, tmp_path / "x.safetensors"))
    assert _same_bits(loaded["tensor"], base * 2)
    assert _same_bits(loaded["transposed"], np.ascontiguousarray(base.T))
    assert _same_bits(loaded["strided"], np.ascontiguousarray(base[::2, 1::3]))
    assert np.array_equal(loaded["big_endian"], base) and loaded["big_endian"].dtype == "<f8"
    assert loaded["list"].tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert loaded["int"].shape == () and int(loaded["int"]) == 3


def test_readable_by_another_safetensors_reader(tmp_path):
    state = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "s": np.array(2.5)}
    path = cr.save(state, tmp_path / "m.safetensors", metadata={"k": "v"})
    other = safetensors.numpy.load_file(path)  # mmap-based reader, not the bytes one we use
    assert set(other) == {"w", "s"}
    assert _same_bits(other["w"], state["w"]) and _same_bits(other["s"], state["s"])
    # the header is the documented format: u64 little-endian length, then JSON
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    checksums = json.loads(header["__metadata__"].pop("chainrule.checksums"))
    assert header["__metadata__"] == {"k": "v"}  # beside the tensors' checksums, a string
    assert set(checksums) == {"w", "s"} and checksums["w"].startswith("crc32:")
    assert header["w"]["dtype"] == "F32" and header["w"]["shape"] == [3, 4]


def test_save_overwrites_creates_parents_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "runs" / "deep" / "ck.safetensors"
    cr.save({"a": np.zeros(3)}, path)
    cr.save({"b": np.ones(2)}, str(path))
    assert list(cr.load(path)) == ["b"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["ck.safetensors"]


@pytest.mark.parametrize("fail", ["write", "fsync"])
def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch, fail):
    """A write() or fsync() that fails (ENOSPC) names no file: the error names the file being
    saved, the temporary file is removed, and the old checkpoint is left as it was."""
    from chainrule.io import checkpoint

    path = cr.save({"w": np.arange(3.0)}, tmp_path / "ck.safetensors")
    before = path.read_bytes()

    def no_space(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    if fail == "write":
        monkeypatch.setattr(checkpoint.os, "fdopen", lambda fd, mode: _FullFile(fd))
    else:
        monkeypatch.setattr(checkpoint.os, "fsync", no_space)
    with pytest.raises(OSError) as info:
        cr.save({"w": np.zeros(1000)}, path)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck.safetensors"]


class _FullFile:
    """A file object on a full disk: every write fails with ENOSPC."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> _FullFile:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_write_atomic_keeps_a_permission_error_a_permission_error(tmp_path, monkeypatch):
    from chainrule.io import checkpoint

    def denied(path, *args):
        raise PermissionError(
            errno.EACCES, "Permission denied", str(path)
        )  # names the temporary file

    monkeypatch.setattr(checkpoint.os, "open", denied)
    with pytest.raises(PermissionError) as info:
        cr.io.write_atomic(tmp_path / "notes.txt", b"x")
    assert info.value.filename == str(tmp_path / "notes.txt")  # the file asked for


def test_saved_file_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = cr.save({"a": np.zeros(1)}, tmp_path / "p.safetensors")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    "state, exc, pieces",
    [
        ({1: np.zeros(2)}, TypeError, ["keys must be str", "1", "int"]),
        ({"obj": np.array([1, "a"], dtype=object)}, TypeError, ["'obj'", "dtype object"]),
        ({"c128": np.zeros(2, dtype=np.complex128)}, TypeError, ["'c128'", "complex128"]),
        ({"s": np.array(["ab"])}, TypeError, ["'s'", "<U2", "supported: bool"]),
        ({"__metadata__": np.zeros(1)}, ValueError, ["reserved"]),
        ([("a", np.zeros(1))], TypeError, ["mapping", "list"]),
    ],
)
def test_save_errors_name_the_key_and_dtype(tmp_path, state, exc, pieces):
    path = tmp_path / "bad.safetensors"
    with pytest.raises(exc) as err:
        cr.save(state, path)
    for piece in pieces:
        assert piece in str(err.value)
    assert not path.exists() and list(tmp_path.iterdir()) == []  # nothing written


def test_save_metadata_must_be_strings(tmp_path):
    with pytest.raises(TypeError, match=r"metadata keys and values must be str.*'epoch': 3"):
        cr.save({"a": np.zeros(1)}, tmp_path / "m", metadata={"epoch": 3})  # type: ignore[dict-item]


# -- checksums ------------------------------------------------------------------------------
def _tensor_region(raw: bytes, name: str) -> tuple[int, int]:
    """Where tensor ``name``'s bytes lie in a safetensors file (start, end)."""
    (n,) = struct.unpack("<Q", raw[:8])
    start, end = json.loads(raw[8 : 8 + n])[name]["data_offsets"]
    return 8 + n + start, 8 + n + end


@pytest.mark.parametrize("name", ["w", "b", "step", "mask"])
@pytest.mark.parametrize("where", ["first", "last"])
def test_a_flipped_bit_in_a_tensor_is_refused_naming_the_file_and_the_tensor(tmp_path, name, where):
    state = {
        "w": np.random.default_rng(0).standard_normal((4, 3)),
        "b": np.arange(3, dtype=np.float32),
        "step": np.array(7),
        "mask": np.array([True, False, True]),
    }
    path = cr.save(state, tmp_path / "ck.safetensors", metadata={"epoch": "2"})
    raw = bytearray(path.read_bytes())
    start, end = _tensor_region(bytes(raw), name)
    at = start if where == "first" else end - 1
    raw[at] ^= 0x01  # one bit
    path.write_bytes(bytes(raw))
    for loader in (cr.load, cr.io.load_metadata):
        with pytest.raises(CheckpointError) as err:
            loader(path)
        message = str(err.value)
        assert str(path) in message and f"tensor {name!r}" in message and "corrupted" in message
        assert "crc32:" in message
    assert isinstance(err.value, ValueError)


def test_a_training_checkpoint_with_a_flipped_bit_is_refused(tmp_path):
    net = cr.nn.Linear(3, 2, rng=0)
    opt = cr.optim.SGD(net.parameters(), lr=0.1)
    path = tmp_path / "run.safetensors"
    cr.io.save_training(path, net, opt, epoch=1)
    raw = bytearray(path.read_bytes())
    start, _ = _tensor_region(bytes(raw), "model.weight")
    raw[start + 3] ^= 0x80
    path.write_bytes(bytes(raw))
    before = net.state_dict()
    with pytest.raises(CheckpointError, match="'model.weight'.*corrupted"):
        cr.io.load_training(path, net, opt)
    assert all(np.array_equal(before[k], v) for k, v in net.state_dict().items())


def test_checksums_live_in_the_metadata_and_stay_out_of_load_metadata(tmp_path):
    state = {"a": np.arange(5.0), "empty": np.zeros((0, 2)), "s": np.array(1.5, np.float16)}
    path = cr.save(state, tmp_path / "c.safetensors", metadata={"k": "v"})
    with safetensors.safe_open(str(path), framework="numpy") as f:  # another reader sees them
        checksums = json.loads(f.metadata()["chainrule.checksums"])
    assert set(checksums) == set(state)
    assert cr.io.load_metadata(path) == {"k": "v"}
    with pytest.raises(ValueError, match="reserved for the tensors' checksums"):
        cr.save(state, tmp_path / "d.safetensors", metadata={"chainrule.checksums": "{}"})


def test_files_without_checksums_still_load(tmp_path):
    # written by safetensors itself (the format's reference writer), as another tool would
    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.array(3)}
    plain = tmp_path / "plain.safetensors"
    safetensors.numpy.save_file(state, str(plain))
    with_meta = tmp_path / "meta.safetensors"
    safetensors.numpy.save_file(state, str(with_meta), metadata={"format": "np"})
    for path in (plain, with_meta):
        loaded = cr.load(path)
        assert set(loaded) == set(state)
        assert all(_same_bits(loaded[k], v) for k, v in state.items())
    assert cr.io.load_metadata(plain) == {} and cr.io.load_metadata(with_meta) == {"format": "np"}


def _rewrite_header(path: Path, edit) -> None:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])


@pytest.mark.parametrize(
    "edit, pieces",
    [
        (lambda h: h["__metadata__"].update({"chainrule.checksums": "not json"}), ["crc32"]),
        (
            lambda h: h["__metadata__"].update({"chainrule.checksums": json.dumps({"a": "x"})}),
            ["crc32"],
        ),
        (
            lambda h: h["__metadata__"].update({"chainrule.checksums": json.dumps({})}),
            ["tensor named 'a'", "edited"],
        ),
    ],
)
def test_a_tampered_checksum_entry_is_refused(tmp_path, edit, pieces):
    path = cr.save({"a": np.arange(4.0)}, tmp_path / "t.safetensors")
    _rewrite_header(path, edit)
    with pytest.raises(CheckpointError) as err:
        cr.load(path)
    assert str(path) in str(err.value)
    for piece in pieces:
        assert piece in str(err.value)


# -- loading what is not a checkpoint ----------------------------------------------------
def test_missing_file(tmp_path):
    missing = tmp_path / "nope" / "ck.safetensors"
    with pytest.raises(FileNotFoundError) as err:
        cr.load(missing)
    assert str(missing) in str(err.value)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        cr.io.load_metadata(missing)


class _Exploit:
    """Unpickling this creates a file: proof that a loader executed the pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_crafted_pickle_is_refused_and_never_executed(tmp_path):
    # The payload is live: plain pickle.loads does run it.
    control = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(_Exploit(control))).close()
    assert control.exists()

    marker = tmp_path / "marker"
    evil = tmp_path / "model.safetensors"
    evil.write_bytes(pickle.dumps({"w": _Exploit(marker)}, protocol=4))
    for loader in (cr.load, cr.io.load_metadata):
        with pytest.raises(CheckpointError) as err:
            loader(evil)
        msg = str(err.value)
        assert str(evil) in msg and "not a valid chainrule/safetensors checkpoint" in msg
        assert "never loads pickles" in msg and "looks like a pickle" in msg
    assert isinstance(err.value, ValueError)
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0, 3, 8, 20, "half", -1])
def test_truncated_checkpoint_is_refused(tmp_path, keep):
    path = cr.save({"w": np.arange(100.0), "b": np.ones(3)}, tmp_path / "t.safetensors")
    raw = path.read_bytes()
    cut = {"half": len(raw) // 2, -1: len(raw) - 1}.get(keep, keep)
    path.write_bytes(raw[:cut])
    with pytest.raises(CheckpointError, match="truncated") as err:
        cr.load(path)
    assert str(path) in str(err.value)
    with pytest.raises(CheckpointError):
        cr.io.load_metadata(path)


@pytest.mark.parametrize(
    "payload, hint",
    [
        (b"PK\x03\x04" + bytes(100), "zip archive"),
        (b"\x93NUMPY" + bytes(100), ".npy"),
        (os.urandom(256), ""),
        (b"\xff" * 8 + b"{}", ""),  # a header length far past the end of the file
    ],
)
def test_other_formats_are_refused(tmp_path, payload, hint):
    path = tmp_path / "f.bin"
    path.write_bytes(payload)
    with pytest.raises(CheckpointError, match=r"not a valid chainrule/safetensors") as err:
        cr.load(path)
    assert hint in str(err.value)


# -- crash in the middle of a save -------------------------------------------------------
# Two known contents of a few MB each; the writer alternates them, the test kills it.
_CONTENTS = """
import numpy as np

def content(which):
    rng = np.random.default_rng(which)
    return {
        "weight": rng.standard_normal((1024, 768)),  # 6 MB
        "bias": rng.standard_normal(512).astype(np.float32),
        "step": np.array(which, dtype=np.int64),
    }
"""

_WRITER = (
    _CONTENTS
    + """
import sys
import chainrule as cr

path = sys.argv[1]
states = [content(0), content(1)]
i = 0
while True:
    cr.save(states[i % 2], path, metadata={"which": str(i % 2)})
    if i == 1:  # both contents have been written whole at least once
        print("ready", flush=True)
    i += 1
"""
)


def test_kill_mid_save_leaves_a_whole_checkpoint(tmp_path):
    kill_saves(tmp_path, kills=10, seed=1234)  # (tests/stress kills 100)


def kill_saves(tmp_path: Path, kills: int, seed: int) -> None:
    """Kill a process that saves two known contents in turn, ``kills`` times at random
    moments; after each kill the checkpoint must be one of the two, whole."""
    namespace: dict = {}
    exec(_CONTENTS, namespace)
    known = [namespace["content"](0), namespace["content"](1)]
    path = tmp_path / "ck.safetensors"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    delays = random.Random(seed)
    seen = set()
    for _ in range(kills):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line == b"ready\n", proc.stderr.read() if proc.stderr else line
            time.sleep(delays.uniform(0.0, 0.15))  # a random moment, mostly inside a save
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            proc.stdout.close() if proc.stdout else None
            proc.stderr.close() if proc.stderr else None
        assert proc.returncode == -signal.SIGKILL

        # Whatever temp files the kill left behind, the checkpoint itself is one of the two
        # known contents, exactly.
        loaded = cr.load(path)
        which = int(cr.io.load_metadata(path)["which"])
        seen.add(which)
        assert set(loaded) == set(known[which])
        for key, value in known[which].items():
            assert _same_bits(loaded[key], value), key
        others = [p.name for p in tmp_path.iterdir() if p.name != path.name]
        assert all(name.startswith(".ck.safetensors.") for name in others), others
    # A later save over the same path, next to leftover temp files, still works.
    cr.save({"after": np.ones(2)}, path)
    assert list(cr.load(path)) == ["after"]
    assert seen  # every iteration checked a whole file
