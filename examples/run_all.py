"""Run every example script in this folder, in order, and fail if any of them fails.

Each example checks the machine's answer against a closed form and exits non-zero (an
AssertionError) if they disagree, so `make demo` passing means every check held.
"""

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (train_mnist1d.py trains four model families on a benchmark for minutes, out_of_core.py
# makes a Dask cluster pass over gigabytes a few times: run them on their own)
ON_THEIR_OWN = ("run_all.py", "train_mnist1d.py", "out_of_core.py")
SCRIPTS = sorted(p for p in HERE.glob("*.py") if p.name not in ON_THEIR_OWN)


def main() -> int:
    failed = []
    start = time.perf_counter()
    for script in SCRIPTS:
        print(f"\n{'=' * 78}\n== {script.name}\n{'=' * 78}", flush=True)
        result = subprocess.run([sys.executable, str(script)], cwd=HERE)
        if result.returncode != 0:
            failed.append(script.name)
            print(f"!! {script.name} FAILED (exit code {result.returncode})", flush=True)
    elapsed = time.perf_counter() - start
    print(f"\n{'=' * 78}")
    print(f"{len(SCRIPTS) - len(failed)} of {len(SCRIPTS)} examples passed in {elapsed:.1f} s")
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed or not SCRIPTS else 0


if __name__ == "__main__":
    sys.exit(main())
