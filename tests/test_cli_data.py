"""``chainrule train`` on the user's own data (CSV, .npz, .npy, classification or regression)
and on MNIST-1D with the CNN; its bad input gets one line and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 3))
    labels = np.where(X[:, 0] - X[:, 2] > 0, "yes", "no")
    rows = [f"{a},{b},{c},{lab}" for (a, b, c), lab in zip(X, labels)]
    (tmp_path / "classes.csv").write_text("a,b,c,label\n" + "\n".join(rows) + "\n")
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.05 * rng.normal(size=240)
    np.savez(tmp_path / "values.npz", X=X, y=y)
    np.save(tmp_path / "table.npy", np.column_stack([(X[:, 1] > 0).astype(float), X]))
    return tmp_path


def test_a_csv_of_labels_trains_a_classifier(files, capsys):
    out = files / "run1"
    code, text, _ = run(capsys, "train", "--data", files / "classes.csv", "--target", "label",
                        "--epochs", "8", "--progress", "none", "--out", out)  # fmt: skip
    assert code == 0 and "2 classes" in text
    accuracy = float(text.split("test accuracy ")[1].split()[0])
    assert accuracy > 0.9  # a linear boundary
    meta = cr.io.load_metadata(out / "model.safetensors")
    stats = json.loads(meta["feature_statistics"])
    X = np.loadtxt(files / "classes.csv", delimiter=",", skiprows=1, usecols=(0, 1, 2))
    assert len(stats["mean"]) == 3 and abs(stats["mean"][0] - X[:, 0].mean()) < 0.1
    code, text, _ = run(capsys, "evaluate", out / "model.safetensors")
    assert code == 0 and f"test accuracy {accuracy:.4f}" in text


def test_numbers_make_a_regressor_and_a_column_index_picks_the_target(files, capsys):
    code, text, _ = run(capsys, "train", "--data", files / "values.npz", "--epochs", "30",
                        "--progress", "none", "--out", files / "run2")  # fmt: skip
    assert code == 0 and "a regressor" in text
    r2 = float(text.split("test R^2 ")[1].split()[0])
    assert r2 > 0.95  # y is linear in X plus a little noise
    code, text, _ = run(capsys, "train", "--data", files / "table.npy", "--target", "0",
                        "--epochs", "5", "--progress", "none", "--out", files / "run3")  # fmt: skip
    assert code == 0 and "2 classes" in text


def test_the_cnn_on_mnist1d(tmp_path, capsys):
    code, text, _ = run(capsys, "train", "--data", "mnist1d", "--model", "cnn", "--epochs", "2",
                        "--batch-size", "100", "--lr", "5e-3", "--progress", "none",
                        "--out", tmp_path)  # fmt: skip
    assert code == 0 and "4000 samples, 10 classes" in text and "CNN (40 steps" in text
    assert float(text.split("test accuracy ")[1].split()[0]) > 0.6  # two epochs
    code, text, _ = run(capsys, "evaluate", tmp_path / "model.safetensors")
    assert code == 0 and "(mnist1d, CNN, seed 0)" in text


@pytest.mark.parametrize(
    "content, argv, message",
    [
        ("a,b,label\n1,2,x\n3,oops,y\n", (), "line 3, b: 'oops' is not a finite number"),
        ("a,b,label\n1,2,x\n3,4\n", (), "line 3 has 2 columns, expected 3"),
        ("a,b,label\n1,2,x\n3,4,y\n", ("--target", "nope"), "no column 'nope'"),
        ("a,b,label\n1,2,x\n3,4,\n", (), "row 1: the target is missing"),
        ("a,b,label\n1,2,x\n", (), "at least 2 rows"),
        ("", (), "the file is empty"),
    ],
)
def test_bad_data_files_get_one_line_naming_the_place(tmp_path, capsys, content, argv, message):
    path = tmp_path / "data.csv"
    path.write_text(content)
    code, out, err = run(capsys, "train", "--data", path, *argv, "--progress", "none",
                         "--out", tmp_path / "run")  # fmt: skip
    assert code != 0 and message in err and "Traceback" not in err
    assert not (tmp_path / "run" / "model.safetensors").exists()  # nothing written


def test_bad_data_options(tmp_path, capsys):
    for argv, message in [
        (("--data", tmp_path / "missing.csv"), "no such file"),
        (("--data", tmp_path / "data.txt"), "give a file (.csv, .npz, .npy)"),
        (("--data", "digits", "--target", "3"), "--target names a column of a data file"),
        (("--data", "digits", "--model", "transformer"), "unknown model 'transformer'"),
    ]:
        code, _, err = run(capsys, "train", *argv, "--progress", "none")
        assert code != 0 and message in err, (argv, err)


def test_a_resumed_run_ends_bit_for_bit_where_an_uninterrupted_one_does(tmp_path, capsys):
    from chainrule.cli.train import TrainConfig, train

    config = TrainConfig(data="moons", hidden=(16,), epochs=4, seed=1, optimizer="adamw")
    straight = train(config, state=tmp_path / "a.safetensors")

    def stop_after_two(metrics):
        if metrics.epoch == 2:
            raise KeyboardInterrupt

    half = train(config, on_epoch=stop_after_two, state=tmp_path / "b.safetensors")
    assert half.interrupted and len(half.history) == 2
    resumed = train(config, state=tmp_path / "b.safetensors", resume=True)
    assert [m.epoch for m in resumed.history] == [1, 2, 3, 4]
    for (name, a), (_, b) in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().items()
    ):
        assert a.tobytes() == b.tobytes(), name
    assert resumed.history[-1].test_loss == straight.history[-1].test_loss
    # from the command line: --resume continues the run in --out with its own settings
    out = tmp_path / "cli"
    out.mkdir()
    (tmp_path / "b.safetensors").rename(out / "training.safetensors")
    code, text, _ = run(capsys, "train", "--resume", "--out", out, "--progress", "none")
    assert code == 0 and "on moons" in text
    code, _, err = run(
        capsys, "train", "--resume", "--out", tmp_path / "empty", "--progress", "none"
    )
    assert code != 0 and "--resume" in err
