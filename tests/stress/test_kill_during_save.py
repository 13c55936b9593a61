"""cr.save killed with SIGKILL at random moments, STRESS_KILLS times (100 by default): the
checkpoint on disk is always one of the two contents written whole, never a mixture or a
torn file, and a later save over it works. tests/test_io.py runs 10 of these with the same
code (``kill_saves``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for test_io
from test_io import kill_saves  # noqa: E402

KILLS = int(os.environ.get("STRESS_KILLS", "100"))


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_killed_save_always_leaves_one_whole_checkpoint(tmp_path: Path) -> None:
    kill_saves(tmp_path, kills=KILLS, seed=2026)
