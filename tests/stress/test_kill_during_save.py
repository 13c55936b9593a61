"""cr.save killed with SIGKILL at random moments, STRESS_KILLS times (100 by default): the
checkpoint on disk is always one of the two contents written whole, never a mixture or a
torn file, and a later save over it works. (The suite runs 10 of these in tests/test_io.py.)
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr

ROOT = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("STRESS_KILLS", "100"))

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

_CONTENTS = """
import numpy as np

def content(which):
    rng = np.random.default_rng(which)
    return {
        "weight": rng.standard_normal((1024, 512)),  # 4 MB
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


def test_a_killed_save_always_leaves_one_whole_checkpoint(tmp_path: Path) -> None:
    namespace: dict = {}
    exec(_CONTENTS, namespace)
    known = [namespace["content"](0), namespace["content"](1)]
    path = tmp_path / "ck.safetensors"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    delays = random.Random(2026)
    held = 0
    for _ in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == b"ready\n"
            time.sleep(delays.uniform(0.0, 0.1))  # a random moment, mostly inside a save
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=10)
        loaded = cr.load(path)  # verified against the checksums in its header
        which = int(cr.io.load_metadata(path)["which"])
        assert set(loaded) == set(known[which])
        for key, value in known[which].items():
            assert np.array_equal(loaded[key], value) and loaded[key].dtype == value.dtype
        held += 1
    assert held == KILLS
    cr.save({"after": np.ones(2)}, path)  # beside whatever temporary files the kills left
    assert cr.load(path)["after"].tolist() == [1.0, 1.0]
