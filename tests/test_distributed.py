"""Training on a real ``dask.distributed`` cluster (worker processes on loopback): the
parameters after N steps equal the NumPy backend's to 1e-10 in float64, also when a worker
holding part of the data is lost mid-run (Dask recomputes its chunks), and ``chainrule
train --backend dask`` gives the NumPy run's model, refusing misuse in one line."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")
da = pytest.importorskip("dask.array")

import chainrule as cr  # noqa: E402
from chainrule import io, nn  # noqa: E402
from chainrule.cli import backend, main  # noqa: E402
from chainrule.nn import functional as F  # noqa: E402

STEPS = 10
TOL = 1e-10
CLI_RUN = ["--data", "moons", "--hidden", "8", "--epochs", str(STEPS), "--progress", "none"]


@pytest.fixture(scope="module")
def client():
    """A two-worker cluster of processes on loopback, no dashboard, for the module; when it
    closes, no process of it may be left."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    cluster = distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()
    started = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    # (multiprocessing's resource tracker serves this interpreter, and ends with it)
    assert _wait_gone([p for p in started if "resource_tracker" not in _cmdline(p)]) == []


def _cmdline(process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _wait_gone(processes, seconds: float = 10.0) -> list:
    """The processes still running after up to ``seconds``."""
    _, alive = psutil.wait_procs(processes, timeout=seconds)
    return alive


def moons() -> tuple[np.ndarray, np.ndarray]:
    ds = cr.data.make_moons(n=400, noise=0.1, seed=0)
    assert ds.X.dtype == np.float64
    return ds.X, ds.y


def fit(X, y, steps: int = STEPS, after_step=None) -> dict[str, np.ndarray]:
    """An MLP trained by full-batch Adam: forward, backward, one compute, a step."""
    net = nn.MLP([2, 16, 2], activation="tanh", rng=0)
    opt = cr.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(1, steps + 1):
        loss = F.cross_entropy(net(X), y)
        opt.zero_grad()
        loss.backward()
        cr.compute(loss, net)
        opt.step()
        assert all(type(p.numpy()) is np.ndarray for p in net.parameters())  # stay NumPy
        if after_step is not None:
            after_step(step)
    return net.state_dict()


def on_cluster(client, X, y, chunk_rows: int):
    """The data as Dask arrays chunked by rows, persisted: the chunks live on the workers."""
    Xd = da.from_array(X, chunks=(chunk_rows, -1))
    yd = da.from_array(y, chunks=chunk_rows)
    Xd, yd = client.persist([Xd, yd])
    distributed.wait([Xd, yd])
    return Xd, yd


def holders(client, *arrays) -> set[str]:
    """The addresses of the workers holding chunks of ``arrays``."""
    return {w for a in arrays for ws in client.who_has(a).values() for w in ws}


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=0, atol=TOL, err_msg=name)


def test_training_on_the_cluster_matches_numpy(client):
    X, y = moons()
    Xd, yd = on_cluster(client, X, y, chunk_rows=100)
    assert Xd.numblocks == (4, 1)
    assert len(holders(client, Xd, yd)) == 2  # both workers hold data
    expected = fit(X, y)
    assert_same(expected, fit(Xd, yd))
    start = nn.MLP([2, 16, 2], activation="tanh", rng=0).state_dict()
    assert all(np.abs(expected[k] - start[k]).max() > 1e-3 for k in start)  # it trained


def test_losing_a_worker_mid_run_gives_the_same_result(client):
    X, y = moons()
    Xd, yd = on_cluster(client, X, y, chunk_rows=100)
    # one copy of each chunk (an earlier run may have left copies on both workers), spread
    # over both
    chunks = distributed.futures_of(Xd) + distributed.futures_of(yd)
    client.replicate(chunks, n=1)
    if len(holders(client, Xd, yd)) < 2:
        client.rebalance(chunks)
    held = client.who_has(Xd)
    workers = sorted(holders(client, Xd, yd))
    assert len(workers) == 2
    lost = workers[0]
    lost_chunks = [key for key, ws in held.items() if list(ws) == [lost]]
    assert lost_chunks, "the worker to lose holds no chunk only it has"

    pid = client.run(os.getpid, workers=[lost])[lost]

    def lose_a_worker(step: int) -> None:
        if step == 3:  # the process dies at once, its memory with it (its nanny starts anew)
            psutil.Process(pid).kill()
            deadline = time.monotonic() + 20
            while lost in client.scheduler_info()["workers"]:
                assert time.monotonic() < deadline, "the killed worker never left"
                time.sleep(0.05)

    result = fit(Xd, yd, after_step=lose_a_worker)
    assert lost not in client.scheduler_info()["workers"]
    now = client.who_has(Xd)
    assert all(now[key] and lost not in now[key] for key in lost_chunks)  # recomputed
    assert_same(fit(X, y), result)
    client.wait_for_workers(2, timeout=30)  # (the restarted one)


def run_cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m chainrule ARGV`` in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "chainrule", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def marked(mark: str) -> list:
    """The processes whose environment carries ``mark`` (a run's workers inherit it)."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("CHAINRULE_TEST_MARK") == mark:
                found.append(p)
        except psutil.Error:
            pass
    return found


def test_cli_dask_workers_matches_numpy(tmp_path, capsys):
    mark = uuid.uuid4().hex
    run = run_cli(
        "train",
        *CLI_RUN,
        "--backend",
        "dask",
        "--workers",
        "2",
        "--out",
        str(tmp_path / "dask"),
        env={"CHAINRULE_TEST_MARK": mark},
    )
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert "on Dask (2 workers, 2 chunks of up to 400 rows, full batch)" in run.stdout
    assert _wait_gone(marked(mark)) == []  # the cluster's processes went with the run

    dask_model = tmp_path / "dask" / "model.safetensors"
    config = json.loads(io.load_metadata(dask_model)["config"])
    rows = config["batch_size"]  # full batch: every training row
    assert rows == 800
    numpy_out = tmp_path / "numpy"
    assert main(["train", *CLI_RUN, "--batch-size", str(rows), "--out", str(numpy_out)]) == 0
    capsys.readouterr()
    assert_same(io.load(numpy_out / "model.safetensors"), io.load(dask_model))

    dask_rows, numpy_rows = (read_metrics(tmp_path / d / "metrics.csv") for d in ("dask", "numpy"))
    assert dask_rows[0].keys() == numpy_rows[0].keys()
    assert len(dask_rows) == len(numpy_rows) == STEPS
    for a, b in zip(dask_rows, numpy_rows):
        for name in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr"):
            assert abs(float(a[name]) - float(b[name])) < TOL, name


def test_cli_dask_batches_are_row_slices(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", *CLI_RUN[:-4], "--epochs", "2", "--progress", "none", "--out", str(out)]
    assert main([*args, "--backend", "dask", "--batch-size", "300", "--chunk-rows", "250"]) == 0
    printed = capsys.readouterr().out
    assert "4 chunks of up to 250 rows, batches of 300 rows" in printed
    rows = read_metrics(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"]) + 0.1
    assert json.loads(io.load_metadata(out / "model.safetensors")["config"])["batch_size"] == 300


def read_metrics(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# -- misuse: one line on stderr, exit 2 for the command line, 1 otherwise, no traceback -------
def assert_refused(code: int, err: str, expected: int, *words: str) -> None:
    assert "Traceback" not in err, err
    assert code == expected, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--workers", "2"], ["--workers is for --backend dask, not --backend numpy"]),
        (["--backend", "cupy", "--scheduler", "tcp://127.0.0.1:8786"], ["--scheduler", "cupy"]),
        (["--chunk-rows", "10"], ["--chunk-rows"]),
        (["--backend", "dask", "--workers", "2", "--scheduler", "tcp://a:1"], ["give one"]),
        (["--backend", "dask", "--workers", "0"], ["--workers must be an integer >= 1"]),
        (["--backend", "spark"], ["invalid choice", "spark"]),
    ],
)
def test_usage_errors(flags, words, tmp_path, capsys):
    code = main(["train", *CLI_RUN, "--out", str(tmp_path / "run"), *flags])
    assert_refused(code, capsys.readouterr().err, 2, *words)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "hidden, flags, words",
    [
        (["dask", "dask.array"], ["--backend", "dask"], ["needs Dask", "chainrule[dask]"]),
        (
            ["distributed"],
            ["--backend", "dask", "--workers", "2"],
            ["needs dask.distributed", "chainrule[dask]"],
        ),
        (["cupy"], ["--backend", "cupy"], ["needs CuPy", "pip install 'chainrule[cupy]'"]),
    ],
)
def test_missing_libraries(hidden, flags, words, tmp_path, capsys, monkeypatch):
    for name in hidden:
        monkeypatch.setitem(sys.modules, name, None)  # (import fails: as if not installed)
    code = main(["train", *CLI_RUN, "--out", str(tmp_path / "run"), *flags])
    assert_refused(code, capsys.readouterr().err, 1, *words)
    assert not (tmp_path / "run").exists()  # checked before anything is written


def test_cupy_without_a_gpu(tmp_path, capsys, monkeypatch):
    class Runtime:
        @staticmethod
        def getDeviceCount() -> int:
            raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    fake = type(sys)("cupy")
    fake.cuda = type(sys)("cupy.cuda")
    fake.cuda.runtime = Runtime
    monkeypatch.setitem(sys.modules, "cupy", fake)
    code = main(["train", *CLI_RUN, "--out", str(tmp_path / "run"), "--backend", "cupy"])
    assert_refused(code, capsys.readouterr().err, 1, "NVIDIA GPU", "no CUDA-capable device")


def test_unreachable_scheduler_fails_in_one_line_soon(client, tmp_path, capsys, monkeypatch):
    assert backend.CONNECT_TIMEOUT_S <= 10
    monkeypatch.setattr(backend, "CONNECT_TIMEOUT_S", 2)  # (the test need not wait 10 s)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    address = f"tcp://127.0.0.1:{port}"
    code = main(["train", *CLI_RUN, "--backend", "dask", "--scheduler", address])
    assert time.monotonic() - start < 15
    out, err = capsys.readouterr()
    assert_refused(code, err, 1, f"--scheduler {address}: cannot connect", "after 2 s")
    assert "Traceback" not in out
    assert distributed.default_client() is client  # a running client is left as it was
