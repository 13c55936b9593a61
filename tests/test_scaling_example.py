"""examples/out_of_core.py, run small: a LocalCluster of two worker processes trains a
logistic regression on Dask data, checks its gradient against NumPy's and its workers'
memory against the block size (the example's own asserts), in a few seconds."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "out_of_core.py"


def _example():
    spec = importlib.util.spec_from_file_location("out_of_core", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_out_of_core_example_runs_small_and_passes_its_checks():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--rows", "40000", "--chunk-rows", "5000", "--steps", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "the cluster's equals NumPy's" in out
    assert len(re.findall(r"^step \d: loss", out, flags=re.M)) == 2
    # one memory line per worker, and the learned weights point along the true ones
    assert len(re.findall(r"worker tcp://127\.0\.0\.1:\d+: idle \d+ MiB, peak", out)) == 2
    similarity = float(re.search(r"cosine\(w, w_true\) = ([\d.]+)", out)[1])
    assert similarity > 0.95


def test_out_of_core_data_is_lazy_and_deterministic():
    ooc = _example()
    X, y, w_true = ooc.make_data(1000, 4, chunk_rows=250, seed=3)
    assert X.chunks == ((250,) * 4, (4,)) and y.shape == (1000, 1)
    again, y_again, _ = ooc.make_data(1000, 4, chunk_rows=250, seed=3)
    other, _, _ = ooc.make_data(1000, 4, chunk_rows=250, seed=4)
    Xn = X.compute(scheduler="sync")
    np.testing.assert_array_equal(Xn, again.compute(scheduler="sync"))
    np.testing.assert_array_equal(y.compute(scheduler="sync"), y_again.compute(scheduler="sync"))
    assert not np.array_equal(Xn, other.compute(scheduler="sync"))
    # the labels follow w_true: most agree with the noiseless rule
    agree = np.mean((Xn @ w_true > 0) == (y.compute(scheduler="sync")[:, 0] > 0.5))
    assert agree > 0.7


def test_a_worker_killed_in_the_middle_of_a_step_changes_no_gradient(tmp_path):
    # a block's first computation kills its worker process (os._exit, as the kernel's OOM
    # killer would): the scheduler recomputes what that worker held from the task graph, the
    # nanny starts a new worker, and the step's loss and gradients are the same numbers
    ooc = _example()
    marker = tmp_path / "died"

    def die_once(block):
        if block.size and not os.path.exists(marker):  # (Dask calls it on empty meta too)
            open(marker, "w").close()
            os._exit(1)
        return block

    cluster, client = ooc.start_cluster(2, "512MiB")
    try:
        X, y, _ = ooc.make_data(2**16, 8, chunk_rows=2**12, seed=0)
        pids = set(client.run(os.getpid).values())
        results = []
        for features in (X, X.map_blocks(die_once, dtype=X.dtype)):
            model = ooc.cr.nn.Linear(8, 1, rng=0)
            loss = ooc.loss_of(model, features, y)
            loss.backward()
            ooc.cr.compute(loss, model)
            results.append((loss.item(), model.weight.grad.numpy(), model.bias.grad.numpy()))
        assert marker.exists() and pids - set(client.run(os.getpid).values())  # one died
        (loss0, w0, b0), (loss1, w1, b1) = results
        assert loss1 == loss0
        np.testing.assert_array_equal(w1, w0)
        np.testing.assert_array_equal(b1, b0)
    finally:
        client.close()
        cluster.close()
