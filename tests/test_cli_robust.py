"""The ``chainrule`` command never prints a traceback: hostile input (outputs that cannot be
written, a full disk, sizes beyond this machine's memory, unreadable or crafted checkpoints,
broken data files) gets one line on stderr naming the flag or file and the problem, exit
status 1, and leaves nothing half written."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule import io
from chainrule.cli import main, memory
from chainrule.cli import train as train_module
from chainrule.io import checkpoint as checkpoint_module

TINY_RUN = ["--data", "moons", "--hidden", "4", "--epochs", "1", "--progress", "none"]
RUN_FILES = ["curves.png", "metrics.csv", "model.safetensors", "training.safetensors"]
GIB = 2**30


def run(capsys, *argv) -> tuple[int, str, str]:
    """main() in-process; an exception escaping it would be a traceback for the user."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_process(*argv, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    """``python -m chainrule ARGV`` in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "chainrule", *map(str, argv)],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )


def assert_refused(code: int, out: str, err: str, *words: str, expected_code: int = 1) -> None:
    """One line on stderr holding every word, the exit status, and no traceback."""
    assert "Traceback" not in out + err, err
    assert code == expected_code, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    for word in words:
        assert word in lines[0], (word, lines[0])


def contents(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` by name, with its bytes (folders as None)."""
    return {p.name: p.read_bytes() if p.is_file() else None for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """The folder of a finished tiny run (copied by the tests that write over it)."""
    out_dir = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", *TINY_RUN, "--out", str(out_dir)]) == 0
    assert sorted(os.listdir(out_dir)) == RUN_FILES
    return out_dir


@pytest.fixture
def old_run(finished_run, tmp_path) -> Path:
    """A copy of a finished run's folder, for a second run to write over."""
    return Path(shutil.copytree(finished_run, tmp_path / "old-run"))


@pytest.fixture
def permissions_enforced(tmp_path) -> None:
    """Skip where file permissions do not stop this process (root with CAP_DAC_OVERRIDE)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        return
    finally:
        folder.chmod(0o755)
    pytest.skip("file permissions are not enforced for this user (root?)")


@pytest.fixture
def machine_of_16_gib(monkeypatch) -> None:
    monkeypatch.setattr(memory, "machine_memory", lambda: 16 * GIB)


@pytest.fixture
def nothing_built(monkeypatch) -> None:
    """Fail the test if a model is built (sizes must be refused before)."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was built before its sizes were checked")

    monkeypatch.setattr(train_module, "build_model", refuse)


# -- the output folder is checked before training -------------------------------------------
def test_out_below_a_regular_file(tmp_path, capsys):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("keep me")
    code, out, err = run(capsys, "train", *TINY_RUN, "--out", blocker / "run")
    assert_refused(code, out, err, "--out", str(blocker), "is a file")
    assert out == "" and blocker.read_text() == "keep me"


@pytest.mark.parametrize("name", RUN_FILES)
def test_an_output_name_taken_by_a_folder_is_refused_before_training(tmp_path, capsys, name):
    out_dir = tmp_path / "run"
    (out_dir / name).mkdir(parents=True)
    code, out, err = run(capsys, "train", *TINY_RUN, "--out", out_dir)
    assert_refused(code, out, err, "--out", str(out_dir / name), "is a folder")
    assert out == ""  # refused before the first line of training
    assert os.listdir(out_dir) == [name] and not any((out_dir / name).iterdir())


def test_a_read_only_run_folder_is_refused_before_training(old_run, capsys, permissions_enforced):
    before = contents(old_run)
    old_run.chmod(0o555)
    try:
        code, out, err = run(capsys, "train", *TINY_RUN, "--out", old_run)
    finally:
        old_run.chmod(0o755)
    assert_refused(code, out, err, "--out", str(old_run), "Permission denied")
    assert out == "" and contents(old_run) == before


def test_an_out_folder_that_cannot_be_created(tmp_path, capsys, permissions_enforced):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        code, out, err = run(capsys, "train", *TINY_RUN, "--out", parent / "run")
    finally:
        parent.chmod(0o755)
    assert_refused(code, out, err, "--out", "cannot create the folder", "Permission denied")
    assert out == "" and not (parent / "run").exists()


def test_a_folder_that_refuses_files_is_refused_before_training(old_run, capsys, monkeypatch):
    """As a read-only run folder, for any user (root too): creating a file there fails."""
    before = contents(old_run)
    real_open = os.open

    def read_only_open(path, flags, *args):
        if Path(path).parent == old_run and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(checkpoint_module.os, "open", read_only_open)
    code, out, err = run(capsys, "train", *TINY_RUN, "--out", old_run)
    assert_refused(code, out, err, "--out", str(old_run), "Permission denied", "permissions")
    assert out == "" and contents(old_run) == before


# -- a full disk: one line naming the file; every file whole, old or new ---------------------
def fill_the_disk_for(monkeypatch, victim: str) -> None:
    """Make fsync fail with ENOSPC while a file whose name contains ``victim`` is written,
    as a full disk does (the data is only refused when it is flushed)."""
    real_atomic_write, real_fsync = checkpoint_module._atomic_write, os.fsync
    writing: list[str] = []

    def atomic_write(target, payload):
        writing.append(target.name)
        try:
            return real_atomic_write(target, payload)
        finally:
            writing.pop()

    def fsync(fd):
        if writing and victim in writing[-1]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(checkpoint_module, "_atomic_write", atomic_write)
    monkeypatch.setattr(checkpoint_module.os, "fsync", fsync)


@pytest.mark.parametrize(
    "victim",
    ["probe", "model.safetensors", "training.safetensors", "metrics.csv", "curves.png"],
)
def test_a_full_disk_names_the_file_and_keeps_old_files_whole(old_run, capsys, monkeypatch, victim):
    before = contents(old_run)
    fill_the_disk_for(monkeypatch, victim)
    code, out, err = run(capsys, "train", *TINY_RUN, "--out", old_run)
    assert_refused(code, out, err, "No space left on device", "free some disk space")
    shown = str(old_run) if victim == "probe" else str(old_run / victim)
    assert shown in err
    after = contents(old_run)
    assert sorted(after) == RUN_FILES  # no temporary file left behind
    if victim == "probe":
        assert out == "" and after == before  # refused before training
    else:
        assert after[victim] == before[victim]  # the file being written is the old one, whole
    for name in ("model.safetensors", "training.safetensors"):  # old or new, each whole
        assert cr.load(old_run / name)


def test_stdout_on_a_full_disk():
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    with open("/dev/full", "w") as full:
        done = run_process("ops", stdout=full)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "chainrule ops: No space left on device; free some disk space, or write to another disk"
    )


# -- sizes beyond this machine's memory are refused before anything is built ---------------
@pytest.mark.parametrize("hidden", ["100000000", "9223372036854775808", "64,100000000000"])
def test_hidden_sizes_beyond_memory_are_refused_with_the_estimate(
    tmp_path, capsys, machine_of_16_gib, nothing_built, hidden
):
    out_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", *TINY_RUN[:2], "--hidden", hidden, "--out", out_dir)
    assert_refused(code, out, err, f"--hidden {hidden}: the run would need about", "GiB")
    assert "this machine has 16.0 GiB" in err and "at most 75% of it (12.0 GiB)" in err
    assert "give smaller --hidden sizes" in err
    assert out == "" and not out_dir.exists()


def test_the_estimate_of_a_large_run(capsys, machine_of_16_gib, tmp_path):
    # moons' 2 inputs and 2 classes, hidden 1e8: 5e8 parameters at 13 numbers each with Adam,
    # and 200 test rows of 3e8 numbers evaluated at once; 8 bytes a number
    argv = ["train", "--data", "moons", "--hidden", "100000000", "--out", tmp_path / "run"]
    code, _, err = run(capsys, *argv)
    expected = (5 * 10**8 + 2) * 13 + 200 * 3 * 10**8
    assert memory.format_bytes(expected * 8) == "495.5 GiB"
    assert_refused(code, "", err, "about 495.5 GiB (parameters, gradients, optimizer state")


def test_a_run_that_fits_is_not_refused(tmp_path, capsys, machine_of_16_gib):
    code, out, err = run(capsys, "train", *TINY_RUN, "--out", tmp_path / "run")
    assert code == 0 and err == "" and "test accuracy" in out


def test_hidden_of_2_to_the_63_end_to_end(tmp_path):
    """With this machine's own memory, in a process of its own."""
    done = run_process("train", "--data", "moons", "--hidden", 2**63, "--out", tmp_path / "r")
    assert_refused(done.returncode, done.stdout, done.stderr, f"--hidden {2**63}", "GiB")
    assert "this machine has" in done.stderr and not (tmp_path / "r").exists()


def test_machine_memory_is_read_on_linux():
    total = memory.machine_memory()
    if sys.platform.startswith("linux"):
        assert total is not None
    assert total is None or total > 64 * 2**20


def test_cost_sizes_beyond_memory(capsys, monkeypatch, machine_of_16_gib):
    import chainrule.teach.costs as costs

    monkeypatch.setattr(costs, "cost_report", lambda **kw: pytest.fail("measured anyway"))
    code, out, err = run(capsys, "cost", "--sizes", "10,100000")
    assert_refused(code, out, err, "--sizes 100000", "about 596.0 GiB", "16.0 GiB", "smaller")
    assert out == ""


def test_cost_plot_is_checked_before_measuring(tmp_path, capsys, monkeypatch):
    import chainrule.teach.costs as costs

    monkeypatch.setattr(costs, "cost_report", lambda **kw: pytest.fail("measured anyway"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, out, err = run(capsys, "cost", "--sizes", "2", "--plot", blocker / "costs.png")
    assert_refused(code, out, err, "--plot", str(blocker), "is a file")


def test_an_out_of_memory_error_gets_one_line(tmp_path, capsys, monkeypatch):
    def exhausted(*args, **kwargs):
        raise MemoryError("Unable to allocate 8.0 GiB for an array with shape (1024, 1048576)")

    monkeypatch.setattr(train_module, "build_model", exhausted)
    code, out, err = run(capsys, "train", *TINY_RUN, "--out", tmp_path / "run")
    assert_refused(code, "", err, "chainrule train: out of memory", "8.0 GiB", "smaller sizes")


# -- training settings that used to reach NumPy ---------------------------------------------
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_weight_decay_must_be_finite(tmp_path, capsys, value):
    code, out, err = run(capsys, "train", *TINY_RUN, "--weight-decay", value, "--out", tmp_path)
    assert_refused(code, out, err, "weight decay", value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "name, data, words",
    [
        ("junk.npz", os.urandom(600), ["not a .npz file"]),
        ("junk.npy", os.urandom(600), ["not a .npy file"]),
        ("junk.csv", b"\xff\xfe\x00garbage" + os.urandom(200), ["not a text file"]),
        ("cut.npy", None, ["not a readable .npy file"]),
        ("two-rows.csv", b"x,label\n1,0\n2,1\n", ["cannot split", "empty test set"]),
    ],
)
def test_broken_data_files(tmp_path, capsys, name, data, words):
    path = tmp_path / name
    if data is None:  # a .npy cut short
        np.save(path, np.ones((50, 3)))
        path.write_bytes(path.read_bytes()[:200])
    else:
        path.write_bytes(data)
    out_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", "--data", path, "--epochs", "1", "--out", out_dir)
    assert_refused(code, out, err, str(path), *words)
    assert not out_dir.exists()  # the data is read before the output folder is made


def test_data_that_is_a_folder(tmp_path, capsys):
    folder = tmp_path / "table.csv"
    folder.mkdir()
    code, out, err = run(capsys, "train", "--data", folder, "--out", tmp_path / "run")
    assert_refused(code, out, err, f"--data {folder}: a folder, not a data file")


def test_data_that_is_a_pipe(tmp_path, capsys):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    pipe = tmp_path / "table.csv"
    os.mkfifo(pipe)  # reading it would wait for a writer forever
    code, out, err = run(capsys, "train", "--data", pipe, "--out", tmp_path / "run")
    assert_refused(code, out, err, f"--data {pipe}: not a regular file")


# -- chainrule evaluate: unreadable files ---------------------------------------------------
def test_evaluate_a_folder_points_at_the_model_inside(finished_run, capsys):
    code, out, err = run(capsys, "evaluate", finished_run)
    assert_refused(code, out, err, f"{finished_run} is a folder", "model.safetensors")


def test_evaluate_a_device(capsys):
    code, out, err = run(capsys, "evaluate", os.devnull)
    assert_refused(code, out, err, os.devnull, "not a regular file")


def test_evaluate_garbage_bytes(tmp_path, capsys):
    path = tmp_path / "model.safetensors"
    path.write_bytes(os.urandom(4096))
    code, out, err = run(capsys, "evaluate", path)
    assert_refused(code, out, err, str(path), "not a valid chainrule/safetensors checkpoint")


def test_evaluate_an_unreadable_file(finished_run, tmp_path, capsys, permissions_enforced):
    path = Path(shutil.copy(finished_run / "model.safetensors", tmp_path / "locked.safetensors"))
    path.chmod(0)
    try:
        code, out, err = run(capsys, "evaluate", path)
    finally:
        path.chmod(0o644)
    assert_refused(code, out, err, str(path), "Permission denied", "permissions")


def test_evaluate_a_file_that_cannot_be_read(finished_run, capsys, monkeypatch):
    """As an unreadable file, for any user (root too): reading it fails."""
    path = finished_run / "model.safetensors"

    def denied(self):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    code, out, err = run(capsys, "evaluate", path)
    assert_refused(code, out, err, f"chainrule evaluate: {path}: Permission denied")


# -- chainrule evaluate: crafted metadata, checked before anything is built ----------------
def crafted(finished_run: Path, tmp_path: Path, **meta_changes) -> Path:
    """The finished run's model with its metadata changed; ``config`` a dict of changes to
    the configuration, anything else a metadata entry replaced (a str)."""
    source = finished_run / "model.safetensors"
    meta = io.load_metadata(source)
    changes = meta_changes.pop("config", {})
    meta["config"] = json.dumps({**json.loads(meta["config"]), **changes})
    meta.update(meta_changes)
    return io.save(cr.load(source), tmp_path / "crafted.safetensors", metadata=meta)


def test_a_tiny_test_fraction(finished_run, tmp_path, capsys):
    path = crafted(finished_run, tmp_path, config={"test_fraction": 1e-9})
    code, out, err = run(capsys, "evaluate", path)
    assert_refused(code, out, err, str(path), "test_fraction=1e-09", "empty test set")


def test_a_hidden_size_beyond_memory(
    finished_run, tmp_path, capsys, nothing_built, machine_of_16_gib
):
    path = crafted(finished_run, tmp_path, config={"hidden": [10_000_000_000]})
    code, out, err = run(capsys, "evaluate", path)
    assert_refused(code, out, err, str(path), "hidden [10000000000]", "would need about")
    assert "this machine has 16.0 GiB" in err


CRAFTED = [
    ("lr-text", {"config": {"lr": "fast"}}, ["learning rate", "'fast'"]),
    ("weight-decay-nan", {"config": {"weight_decay": float("nan")}}, ["weight decay", "nan"]),
    ("test-fraction-text", {"config": {"test_fraction": "0.5"}}, ["test_fraction", "'0.5'"]),
    ("hidden-text", {"config": {"hidden": "64"}}, ["hidden must be a list", "'64'"]),
    ("hidden-bool", {"config": {"hidden": [True]}}, ["hidden sizes must be positive integers"]),
    ("data-number", {"config": {"data": 7}}, ["data must be a name", "7"]),
    ("unknown-setting", {"config": {"volume": 11}}, ["unknown settings 'volume'"]),
    ("optimizer-null", {"config": {"optimizer": None}}, ["optimizer must be a name"]),
    ("huge-inputs", {"io_shape": "[10000000000, 2]"}, ["10000000000 inputs", "has 2 features"]),
    ("wrong-outputs", {"io_shape": "[2, 7]"}, ["7 outputs", "needs 2"]),
    ("io-shape-short", {"io_shape": "[2]"}, ["io_shape '[2]' is not two positive integers"]),
    ("io-shape-nested", {"io_shape": "[" * 100_000}, ["io_shape", "not two positive integers"]),
]


@pytest.mark.parametrize("changes, words", [c[1:] for c in CRAFTED], ids=[c[0] for c in CRAFTED])
def test_crafted_metadata_is_refused_before_building(
    finished_run, tmp_path, capsys, nothing_built, changes, words
):
    path = crafted(finished_run, tmp_path, **changes)
    code, out, err = run(capsys, "evaluate", path)
    assert_refused(code, out, err, str(path), *words)


@pytest.mark.parametrize(
    "config_text, words",
    [
        ("[1, 2]", ["expected a JSON object", "list"]),
        ("{oops", ["not JSON"]),
        ("[" * 100_000 + "]" * 100_000, ["nested too deeply"]),
    ],
    ids=["a-list", "not-json", "deeply-nested"],
)
def test_a_configuration_that_is_not_one(
    finished_run, tmp_path, capsys, nothing_built, config_text, words
):
    source = finished_run / "model.safetensors"
    meta = {**io.load_metadata(source), "config": config_text}
    path = io.save(cr.load(source), tmp_path / "crafted.safetensors", metadata=meta)
    code, out, err = run(capsys, "evaluate", path)
    assert_refused(code, out, err, str(path), "training configuration is unreadable", *words)


# -- chainrule train --resume: a crafted training state -----------------------------------
def craft_training_state(run_folder: Path, **config_changes) -> None:
    """Change the configuration a run's training state holds (its arrays stay)."""
    path = run_folder / "training.safetensors"
    meta = io.load_metadata(path)
    extra = json.loads(meta["extra"])
    extra["config"].update(config_changes)
    meta["extra"] = json.dumps(extra)
    io.save(cr.load(path), path, metadata=meta)


def test_resume_from_a_state_that_does_not_fit_its_configuration(old_run, capsys):
    craft_training_state(old_run, hidden=[8], epochs=3)
    before = contents(old_run)
    code, out, err = run(capsys, "train", "--out", old_run, "--resume", "--progress", "none")
    assert_refused(code, out, err, "--resume", str(old_run / "training.safetensors"))
    assert "hidden [8]" in err and "'0.weight': checkpoint shape (4, 2), model shape (8, 2)" in err
    assert contents(old_run) == before


def test_resume_from_a_state_beyond_memory(old_run, capsys, nothing_built, machine_of_16_gib):
    craft_training_state(old_run, hidden=[10_000_000_000])
    before = contents(old_run)
    code, out, err = run(capsys, "train", "--out", old_run, "--resume", "--progress", "none")
    assert_refused(code, out, err, "--resume", "hidden [10000000000]", "would need about")
    assert contents(old_run) == before


# -- the other commands' outputs ----------------------------------------------------------
def test_plot_out_below_a_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, out, err = run(capsys, "plot", "activations", "--out", blocker / "a.png")
    assert_refused(code, out, err, "--out", str(blocker), "is a file")


def test_plot_out_is_a_folder(tmp_path, capsys):
    folder = tmp_path / "picture.svg"
    folder.mkdir()
    code, out, err = run(capsys, "plot", "activations", "--out", folder)
    assert_refused(code, out, err, "--out", str(folder), "is a folder")


def test_explain_svg_is_a_folder(tmp_path, capsys):
    folder = tmp_path / "graph.svg"
    folder.mkdir()
    code, out, err = run(capsys, "explain", "x**2", "--at", "x=3", "--svg", folder)
    assert_refused(code, out, err, "--svg", str(folder), "is a folder")
    assert out == ""  # checked before the report is printed


def test_metrics_and_curves_are_replaced_whole(old_run, capsys):
    """A second run over an old one: the new files replace the old ones in one rename each
    (no temporary file is left, and each file is complete)."""
    code, _, _ = run(capsys, "train", *TINY_RUN, "--epochs", "2", "--out", old_run)
    assert code == 0 and sorted(os.listdir(old_run)) == RUN_FILES
    assert (old_run / "metrics.csv").read_text().count("\n") == 3  # header and 2 epochs
    assert (old_run / "curves.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
