"""The ``chainrule`` command: train, evaluate, ops; progress output; Ctrl-C; bad input."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io as stdio
import json
import os
import pickle
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule import io
from chainrule.cli import app as cli
from chainrule.cli import main
from chainrule.cli.train import evaluate_checkpoint
from chainrule.ops import table

CONSOLE_SCRIPT = Path(sys.executable).with_name("chainrule")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
METRIC_COLUMNS = ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr"]
SUMMARY = re.compile(
    r"^train accuracy (\d\.\d{4})\s+test accuracy (\d\.\d{4})\s+time (\d+\.\d) s$", re.M
)
EPOCH_LINE = re.compile(
    r"^epoch\s+(\d+)/(\d+)\s+loss \d+\.\d{4}\s+train acc \d\.\d{4}\s+test acc (\d\.\d{4})", re.M
)
# moons: 1000 samples, 800 in the training split: 25 steps of 32 per epoch
MOONS_STEPS = 25


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """main() in-process; an exception escaping it would be a traceback for the user."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_process(
    *argv: str, module: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "chainrule"] if module else [str(CONSOLE_SCRIPT)]
    return subprocess.run(
        [*command, *map(str, argv)], capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(code: int, out: str, err: str, expected_code: int, *words: str) -> None:
    assert "Traceback" not in err and "Traceback" not in out, err
    assert code == expected_code, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    for word in words:
        assert word in lines[0], lines[0]


def read_metrics(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def checkpoint_epoch(path: Path) -> int:
    return json.loads(io.load_metadata(path)["metrics"])["epoch"]


# -- a real run of the main job ------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """``chainrule train --out DIR`` with the defaults (digits), run once in-process."""
    out_dir = tmp_path_factory.mktemp("cli") / "digits"
    stdout, stderr = stdio.StringIO(), stdio.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["train", "--out", str(out_dir)])
    print(f"chainrule train (digits defaults): {time.perf_counter() - start:.2f} s")
    return code, stdout.getvalue(), stderr.getvalue(), out_dir


def test_train_reaches_the_target_and_prints_the_summary(digits_run):
    code, out, err, out_dir = digits_run
    assert code == 0 and err == ""
    assert out.startswith("training an MLP [128, 64] (relu, adam, lr 0.003) on digits")
    summary = SUMMARY.search(out)
    assert summary, out
    train_acc, test_acc, _ = map(float, summary.groups())
    assert test_acc >= 0.97 and train_acc >= 0.97
    for name in ("model.safetensors", "metrics.csv", "curves.png"):
        assert re.search(rf"^\w+\s+{re.escape(str(out_dir / name))}$", out, re.M), out
    # not a terminal: one plain line per epoch
    assert [int(m.group(1)) for m in EPOCH_LINE.finditer(out)] == list(range(1, 31))


def test_train_writes_checkpoint_metrics_and_curves(digits_run):
    _, out, _, out_dir = digits_run
    # nothing else: no temporary files left from the atomic checkpoint writes
    assert sorted(os.listdir(out_dir)) == [
        "curves.png",
        "metrics.csv",
        "model.safetensors",
        "training.safetensors",
    ]  # (the last: the whole training state, for --resume)

    rows = read_metrics(out_dir / "metrics.csv")
    assert len(rows) == 30
    assert all(column in rows[0] for column in METRIC_COLUMNS), list(rows[0])
    assert [int(r["epoch"]) for r in rows] == list(range(1, 31))
    for r in rows:
        assert 0 <= float(r["train_accuracy"]) <= 1 and 0 <= float(r["test_accuracy"]) <= 1
        assert float(r["train_loss"]) > 0 and float(r["test_loss"]) > 0 and float(r["lr"]) > 0
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    last = json.loads(io.load_metadata(out_dir / "model.safetensors")["metrics"])
    assert last["epoch"] == 30
    assert float(rows[-1]["test_accuracy"]) == last["test_accuracy"]
    assert f"test accuracy {last['test_accuracy']:.4f}" in out


def test_curves_png_is_a_real_picture(digits_run):
    import matplotlib.image

    _, _, _, out_dir = digits_run
    path = out_dir / "curves.png"
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    height, width = image.shape[:2]
    assert 150 < height < width  # two panels side by side
    rgb = image[..., :3]
    assert rgb.std() > 0.05, "the picture is blank"
    ink = (rgb < 0.9).any(axis=-1).mean()
    assert 0.01 < ink < 0.6, ink  # drawn lines and text on a light background
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 20  # coloured curves, not one tone


def test_evaluate_reports_the_end_of_training_accuracy(digits_run, capsys):
    _, train_out, _, out_dir = digits_run
    checkpoint = out_dir / "model.safetensors"
    code, out, err = run(capsys, "evaluate", checkpoint)
    assert code == 0 and err == ""
    final = SUMMARY.search(train_out).group(2)
    assert re.match(rf"test accuracy {final}\s+\(digits, MLP \[128, 64\] relu, seed 0\)", out), out
    rows = read_metrics(out_dir / "metrics.csv")
    assert evaluate_checkpoint(checkpoint)[0] == float(rows[-1]["test_accuracy"])


def test_train_defaults_to_runs_data(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "train", "--data", "moons", "--epochs", "1", "--hidden", "8")
    assert code == 0
    run_dir = Path("runs") / "moons"
    assert (tmp_path / run_dir / "model.safetensors").is_file()
    assert (tmp_path / run_dir / "metrics.csv").is_file()
    assert str(run_dir / "model.safetensors") in out


def test_train_options_reach_the_checkpoint(tmp_path, capsys):
    out_dir = tmp_path / "run"
    code, out, _ = run(
        capsys,
        *("train", "--data", "spirals", "--hidden", "16,8", "--activation", "tanh"),
        *("--optimizer", "sgd", "--lr", "0.05", "--epochs", "2", "--batch-size", "50"),
        *("--seed", "3", "--out", out_dir),
    )
    assert code == 0
    config = json.loads(io.load_metadata(out_dir / "model.safetensors")["config"])
    expected = {"data": "spirals", "hidden": [16, 8], "activation": "tanh", "optimizer": "sgd"}
    expected.update({"lr": 0.05, "epochs": 2, "batch_size": 50, "seed": 3})
    assert {k: config[k] for k in expected} == expected
    assert len(read_metrics(out_dir / "metrics.csv")) == 2
    assert "MLP [16, 8] (tanh, sgd, lr 0.05) on spirals (" in out
    assert "3 classes) for 2 epochs, seed 3" in out


# -- progress output -----------------------------------------------------------------------
def test_plain_epoch_lines_when_not_on_a_terminal(tmp_path, capsys):
    code, out, err = run(
        capsys, "train", "--data", "moons", "--epochs", "3", "--hidden", "8", "--out", tmp_path
    )
    assert code == 0
    assert err == ""  # no progress bar drawn into a pipe or a log file
    epochs = EPOCH_LINE.findall(out)
    assert [(e, total) for e, total, _ in epochs] == [("1", "3"), ("2", "3"), ("3", "3")]
    assert epochs[-1][2] == SUMMARY.search(out).group(2)  # last line's test acc = summary's
    assert "\r" not in out and "step/s" not in out


def test_progress_none_prints_only_the_summary(tmp_path, capsys):
    code, out, err = run(
        capsys,
        *("train", "--data", "moons", "--epochs", "2", "--hidden", "8"),
        *("--out", tmp_path, "--progress", "none"),
    )
    assert code == 0 and err == ""
    assert not EPOCH_LINE.search(out)
    assert SUMMARY.search(out)


def _run_in_pty(argv: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run argv with stdin, stdout and stderr on a pseudo-terminal; all it wrote, decoded."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                proc.kill()
                raise AssertionError(f"{argv} still running after {timeout} s")
            ready, _, _ = select.select([master], [], [], remaining)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end of the terminal
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=timeout)
    finally:
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture(scope="module")
def terminal_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("tty")
    argv = [sys.executable, "-m", "chainrule", "train", "--epochs", "2", "--data", "moons"]
    return _run_in_pty([*argv, "--out", str(out_dir), "--progress", "auto"])


def _screen(raw: str) -> str:
    """Terminal output as lines: a carriage return starts the line over, as on a screen."""
    return "\n".join(re.split(r"\r\n|\r|\n", raw))


def test_live_bar_on_a_terminal(terminal_run):
    code, raw = terminal_run
    out = _screen(raw)
    assert code == 0, out
    assert "Traceback" not in out
    assert "step/s" in out  # tqdm's rate, in the bar's unit
    total = 2 * MOONS_STEPS
    assert re.search(rf"\d+%\|[^|\n]*\| ?{total}/{total} ", out), out
    assert re.search(r"^epoch 2/2", out, re.M) and re.search(r"loss=\d\.\d{4}", out)
    assert not EPOCH_LINE.search(out), "plain per-epoch lines on a terminal, besides the bar"
    assert SUMMARY.search(out), out
    assert re.search(r"^checkpoint\s+\S+model\.safetensors$", out, re.M)


def test_header_line_is_not_drawn_into_the_bar(terminal_run):
    """The 'training an MLP ...' line must start its own line on the terminal, not be
    appended to the bar's first frame (print it before the bar exists, or via tqdm.write)."""
    out = _screen(terminal_run[1])
    assert re.search(r"^training an MLP", out, re.M), out[:400]


# -- Ctrl-C --------------------------------------------------------------------------------
def test_ctrl_c_stops_cleanly_with_the_last_checkpoint(tmp_path, capsys):
    out_dir = tmp_path / "run"
    checkpoint = out_dir / "model.safetensors"
    proc = subprocess.Popen(
        [sys.executable, "-m", "chainrule", "train", "--data", "digits", "--epochs", "200"]
        + ["--out", str(out_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not checkpoint.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint after 60 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    match = re.search(r"stopped cleanly after epoch (\d+)", lines[0])
    assert match, lines[0]
    n = int(match.group(1))
    assert 1 <= n < 200
    assert str(checkpoint) in lines[0]
    assert checkpoint_epoch(checkpoint) == n
    rows = read_metrics(out_dir / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, n + 1))
    # the plain line of epoch N may be cut short by the signal; the earlier ones are all there
    printed = [int(e) for e, _, _ in EPOCH_LINE.findall(out)]
    assert printed in (list(range(1, n)), list(range(1, n + 1))), printed
    assert not [p for p in os.listdir(out_dir) if p.endswith(".tmp")]
    code, eval_out, eval_err = run(capsys, "evaluate", checkpoint)
    assert code == 0 and eval_err == ""
    assert eval_out.startswith(f"test accuracy {float(rows[-1]['test_accuracy']):.4f}")


@pytest.mark.parametrize("stop_at_step, epochs_done", [(3, 0), (2 * MOONS_STEPS + 3, 2)])
def test_interrupt_reports_the_saved_epoch(
    tmp_path, capsys, monkeypatch, stop_at_step, epochs_done
):
    def step(self, step: int, loss: float) -> None:
        if step == stop_at_step:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli._Progress, "step", step)
    out_dir = tmp_path / "run"
    code, out, err = run(
        capsys, "train", "--data", "moons", "--epochs", "5", "--hidden", "8", "--out", out_dir
    )
    assert_one_line_error(code, out, err, 130)
    checkpoint = out_dir / "model.safetensors"
    if epochs_done == 0:
        assert "no checkpoint" in err and not checkpoint.exists()
    else:
        assert f"stopped cleanly after epoch {epochs_done}" in err and str(checkpoint) in err
        assert checkpoint_epoch(checkpoint) == epochs_done
    assert len(read_metrics(out_dir / "metrics.csv")) == epochs_done


def test_interrupt_during_a_checkpoint_save_reports_the_saved_epoch(tmp_path, capsys, monkeypatch):
    """Ctrl-C while epoch 2's checkpoint is written: the file still holds epoch 1, so the
    message, the checkpoint and metrics.csv must all say epoch 1."""
    real_save, calls = io.save, []

    def interrupted_save(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_save(*args, **kwargs)

    monkeypatch.setattr(io, "save", interrupted_save)
    out_dir = tmp_path / "run"
    code, out, err = run(
        capsys, "train", "--data", "moons", "--epochs", "5", "--hidden", "8", "--out", out_dir
    )
    assert_one_line_error(code, out, err, 130)
    checkpoint = out_dir / "model.safetensors"
    assert checkpoint_epoch(checkpoint) == 1
    claimed = int(re.search(r"after epoch (\d+)", err).group(1))
    assert claimed == checkpoint_epoch(checkpoint), err
    assert len(read_metrics(out_dir / "metrics.csv")) == claimed


@pytest.mark.parametrize("saves_before_the_signal", [1, 2])
def test_interrupt_just_after_a_checkpoint_save_reports_that_epoch(
    tmp_path, capsys, monkeypatch, saves_before_the_signal
):
    """Ctrl-C right after epoch N's checkpoint is written, before the history records it:
    the file holds epoch N, so the message and metrics.csv must say epoch N too."""
    real_save, calls = io.save, []

    def save_then_interrupt(*args, **kwargs):
        path = real_save(*args, **kwargs)
        calls.append(1)
        if len(calls) == saves_before_the_signal:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(io, "save", save_then_interrupt)
    out_dir = tmp_path / "run"
    code, out, err = run(
        capsys, "train", "--data", "moons", "--epochs", "5", "--hidden", "8", "--out", out_dir
    )
    assert_one_line_error(code, out, err, 130)
    checkpoint = out_dir / "model.safetensors"
    assert checkpoint_epoch(checkpoint) == saves_before_the_signal
    assert f"stopped cleanly after epoch {saves_before_the_signal}" in err, err
    rows = read_metrics(out_dir / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, saves_before_the_signal + 1))


# -- python -m chainrule is the console script ---------------------------------------------
def test_python_m_chainrule_matches_the_console_script(digits_run):
    assert CONSOLE_SCRIPT.is_file()
    checkpoint = digits_run[3] / "model.safetensors"
    for argv in (["ops"], ["evaluate", checkpoint], ["--version"]):
        script, module = run_process(*argv, module=False), run_process(*argv)
        assert script.returncode == module.returncode == 0, (script.stderr, module.stderr)
        assert script.stdout == module.stdout and script.stdout
        assert script.stderr == module.stderr == ""
    assert module.stdout.strip() == f"chainrule {cr.__version__}"
    evaluated = run_process("evaluate", checkpoint)
    assert evaluated.stdout.startswith(f"test accuracy {SUMMARY.search(digits_run[1]).group(2)}")


@pytest.mark.parametrize("module", [True, False], ids=["python-m", "console-script"])
def test_bad_input_end_to_end(tmp_path, module):
    missing = tmp_path / "missing.safetensors"
    cases = [
        (["train", "--data", "mnist"], 1, "unknown data set 'mnist'"),
        (["train", "--hidden", "64,x"], 2, "'64,x'"),
        (["train", "--lr", "-0.5"], 1, "-0.5"),
        (["evaluate", missing], 1, str(missing)),
        (["nosuchcommand"], 2, "'nosuchcommand'"),
    ]
    for argv, expected_code, word in cases:
        done = (
            run_process(*argv, "--out", tmp_path / "out", module=module)
            if argv[0] == "train"
            else run_process(*argv, module=module)
        )
        assert_one_line_error(done.returncode, done.stdout, done.stderr, expected_code, word)
        assert done.stdout == ""
    assert not (tmp_path / "out").exists()


# -- bad input: one line, a non-zero exit, no traceback -------------------------------------
BAD_TRAIN = [
    (["--data", "mnist"], 1, ["unknown data set 'mnist'", "digits, moons, spirals"]),
    (["--data", ""], 1, ["unknown data set ''"]),
    (["--hidden", "64,x"], 2, ["--hidden", "'64,x'", "positive integers"]),
    (["--hidden", "0,3"], 2, ["--hidden", "'0,3'"]),
    (["--hidden="], 2, ["--hidden", "''"]),
    (["--hidden", "64,,64"], 2, ["--hidden", "'64,,64'"]),
    (["--hidden", "-5"], 2, ["--hidden", "'-5'"]),
    (["--hidden", "2.5"], 2, ["--hidden", "'2.5'"]),
    (["--lr", "-0.1"], 1, ["learning rate", "-0.1"]),
    (["--lr=-1e-3"], 1, ["learning rate", "-0.001"]),
    (["--lr", "0"], 1, ["learning rate", "0"]),
    (["--lr", "nan"], 1, ["learning rate", "nan"]),
    (["--lr", "fast"], 2, ["--lr", "'fast'"]),
    (["--activation", "swish"], 1, ["activation 'swish'", "relu"]),
    (["--optimizer", "rmsprop"], 1, ["optimizer 'rmsprop'", "adam"]),
    (["--epochs", "0"], 1, ["epochs", "0"]),
    (["--epochs", "ten"], 2, ["--epochs", "'ten'"]),
    (["--batch-size", "0"], 1, ["batch size", "0"]),
    (["--batch-size", "-8"], 1, ["batch size", "-8"]),
    (["--weight-decay", "-1"], 1, ["weight decay", "-1"]),
    (["--progress", "fancy"], 2, ["--progress", "'fancy'"]),
    (["--bogus"], 2, ["unrecognized arguments: --bogus"]),
    (["--epochs"], 2, ["--epochs", "expected one argument"]),
    (["--seed", "-1"], 1, ["seed", "-1"]),
]


@pytest.mark.parametrize(
    "args, expected_code, words", BAD_TRAIN, ids=[" ".join(args) for args, _, _ in BAD_TRAIN]
)
def test_train_bad_input(tmp_path, capsys, args, expected_code, words):
    out_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", *args, "--out", out_dir)
    assert_one_line_error(code, out, err, expected_code, *words)
    assert out == ""
    assert not out_dir.exists()  # refused before anything was written


def test_train_out_is_an_existing_file(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    code, out, err = run(capsys, "train", "--data", "moons", "--epochs", "1", "--out", target)
    assert code != 0
    assert_one_line_error(code, out, err, code, str(target))
    assert target.read_text() == "not a folder"


def test_usage_errors(capsys):
    code, out, err = run(capsys, "frobnicate")
    assert_one_line_error(code, out, err, 2, "invalid choice: 'frobnicate'", "train")
    code, out, err = run(capsys, "evaluate")
    assert_one_line_error(code, out, err, 2, "required", "checkpoint")
    code, out, err = run(capsys, "evaluate", "a.safetensors", "--bogus")
    assert_one_line_error(code, out, err, 2, "--bogus")


# -- checkpoints that cannot be evaluated ---------------------------------------------------
@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("small")
    stdout = stdio.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(
            ["train", "--data", "moons", "--hidden", "8", "--epochs", "1"]
            + ["--out", str(out_dir), "--progress", "none"]
        )
    assert code == 0
    return out_dir / "model.safetensors"


def _with_config(src: Path, dst: Path, state=None, **changes) -> Path:
    meta = io.load_metadata(src)
    config = json.loads(meta["config"])
    config.update(changes)
    meta["config"] = json.dumps(config)
    return io.save(cr.load(src) if state is None else state, dst, metadata=meta)


def test_evaluate_missing_checkpoint(tmp_path, capsys):
    path = tmp_path / "nope.safetensors"
    code, out, err = run(capsys, "evaluate", path)
    assert_one_line_error(code, out, err, 1, "no such checkpoint", str(path))
    assert out == ""


def test_evaluate_a_directory(tmp_path, capsys):
    code, out, err = run(capsys, "evaluate", tmp_path)
    assert_one_line_error(code, out, err, 1, str(tmp_path))


@pytest.mark.parametrize("keep", [0, 7, 8, 100, 0.5, -1], ids=lambda k: f"keep{k}")
def test_evaluate_truncated_checkpoint(small_checkpoint, tmp_path, capsys, keep):
    data = small_checkpoint.read_bytes()
    size = int(len(data) * keep) if isinstance(keep, float) else keep
    size = size if size >= 0 else len(data) + size
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[:size])
    code, out, err = run(capsys, "evaluate", path)
    assert_one_line_error(code, out, err, 1, str(path), "truncated")
    assert out == ""


def test_evaluate_pickle_is_refused_and_never_run(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"0.weight": Exploit()}, protocol=4))
    code, out, err = run(capsys, "evaluate", path)
    assert_one_line_error(code, out, err, 1, str(path), "pickle")
    assert not marker.exists()


def test_evaluate_checkpoint_for_another_architecture(small_checkpoint, tmp_path, capsys):
    path = _with_config(small_checkpoint, tmp_path / "other.safetensors", hidden=[32, 32])
    code, out, err = run(capsys, "evaluate", path)
    assert_one_line_error(code, out, err, 1, str(path), "hidden [32, 32]", "0.weight")
    assert "(8, 2)" in err and "(32, 2)" in err


def test_evaluate_safetensors_that_is_not_a_training_checkpoint(small_checkpoint, tmp_path, capsys):
    path = io.save(cr.load(small_checkpoint), tmp_path / "plain.safetensors")
    code, out, err = run(capsys, "evaluate", path)
    assert_one_line_error(code, out, err, 1, str(path), "not a chainrule training checkpoint")


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda s: dict(s, **{"head.weight": np.zeros((2, 2))}), id="foreign-layer"),
        pytest.param(lambda s: {"0.weight": s["0.weight"]}, id="missing-layers"),
        pytest.param(lambda s: {}, id="no-weights"),
    ],
)
def test_evaluate_weights_that_do_not_fit_their_config(small_checkpoint, tmp_path, capsys, edit):
    path = _with_config(
        small_checkpoint, tmp_path / "edited.safetensors", state=edit(cr.load(small_checkpoint))
    )
    code, out, err = run(capsys, "evaluate", path)
    assert_one_line_error(code, out, err, 1, str(path))


@pytest.mark.parametrize(
    "changes, word",
    [({"data": "digits"}, "64 features"), ({"seed": -1}, "configuration"), ({"lr": -1}, "-1")],
    ids=["other-data-set", "negative-seed", "negative-lr"],
)
def test_evaluate_checkpoint_with_an_unusable_config(
    small_checkpoint, tmp_path, capsys, changes, word
):
    path = _with_config(small_checkpoint, tmp_path / "config.safetensors", **changes)
    code, out, err = run(capsys, "evaluate", path)
    assert_one_line_error(code, out, err, 1, str(path), word)


# -- chainrule ops ------------------------------------------------------------------------
def test_ops_lists_every_op(capsys):
    code, out, err = run(capsys, "ops")
    assert code == 0 and err == ""
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["op", "family", "vjp"]
    rows = table()
    assert [line.split()[0] for line in lines[1:]] == [r["name"] for r in rows]
    assert {"add", "matmul", "relu", "cross_entropy"} <= {r["name"] for r in rows}


def test_ops_family_filter(capsys):
    code, out, err = run(capsys, "ops", "--family", "nn")
    assert code == 0 and err == ""
    lines = out.strip().splitlines()[1:]
    names = [line.split()[0] for line in lines]
    assert names == [r["name"] for r in table() if r["family"] == "nn"]
    assert "relu" in names and "add" not in names
    assert all(line.split()[1] == "nn" for line in lines)


def test_ops_json(capsys):
    code, out, err = run(capsys, "ops", "--json")
    assert code == 0 and err == ""
    listed = json.loads(out)
    assert [r["name"] for r in listed] == [r["name"] for r in table()]
    relu = next(r for r in listed if r["name"] == "relu")
    assert relu["family"] == "nn" and relu["vjp"] is True and isinstance(relu["numpy"], list)
    assert relu["kink"] and "relu'(0)" in relu["kink"]

    code, out, _ = run(capsys, "ops", "--json", "--family", "linalg")
    linalg = json.loads(out)
    assert code == 0 and linalg and {r["family"] for r in linalg} == {"linalg"}
    assert "matmul" in {r["name"] for r in linalg}


def test_ops_unknown_family(capsys):
    code, out, err = run(capsys, "ops", "--family", "quantum")
    families = sorted({r["family"] for r in table()})
    assert_one_line_error(code, out, err, 2, "unknown family 'quantum'", ", ".join(families))
    assert out == ""
