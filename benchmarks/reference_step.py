"""The 784-256-256-10 batch-128 SGD step against the team's hand-written NumPy reference,
``../shared/bench/mlp_numpy_reference.py`` (its ``init`` and ``step``, unchanged), interleaved
in one process.

chainrule runs the same step the way a user writes it: ``cr.nn.MLP`` (weights stored (out, in),
as nn.Linear does: the reference's weights transposed and copied), ``F.cross_entropy`` on the
class indices of the reference's one-hot targets, ``loss.backward()``, ``cr.optim.SGD`` with
the reference's learning rate. The losses of the first three steps are checked against the
reference's first. Each round times 25 steps of each, in turn; the ratio is the median of the
per-round ratios (chainrule / reference), so a slow moment of the machine moves both sides.

    python benchmarks/reference_step.py [float32 float64] [--rounds 21]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import chainrule as cr

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "bench" / "mlp_numpy_reference.py"


def _load_reference() -> Any:
    spec = importlib.util.spec_from_file_location("mlp_numpy_reference", REFERENCE)
    if spec is None or spec.loader is None or not REFERENCE.exists():
        raise SystemExit(f"reference_step: {REFERENCE} not found; nothing to compare against")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _timed(step: Any, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) / n


def compare(dtype: str, rounds: int, inner: int = 25) -> dict[str, float]:
    ref = _load_reference()
    params, X, Y = ref.init(np.dtype(dtype))
    net = cr.nn.MLP(list(ref.SIZES), activation="relu", dtype=dtype)
    layers = [m for m in net if isinstance(m, cr.nn.Linear)]
    for k, layer in enumerate(layers):
        layer.weight.data = np.ascontiguousarray(params[2 * k].T)
        layer.bias.data = params[2 * k + 1].copy()
    opt = cr.optim.SGD(net.parameters(), lr=ref.LR)
    data, labels = cr.tensor(X), Y.argmax(axis=1)

    def chainrule_step() -> Any:
        opt.zero_grad()
        loss = cr.nn.functional.cross_entropy(net(data), labels)
        loss.backward()
        opt.step()
        return loss

    ref_params = [p.copy() for p in params]
    first = [float(ref.step(ref_params, X, Y)) for _ in range(3)]
    ours = [float(chainrule_step()) for _ in range(3)]
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    if not np.allclose(first, ours, rtol=tolerance):
        raise SystemExit(f"reference_step: the losses differ: reference {first}, chainrule {ours}")
    times_ref, times_ours = [], []
    for _ in range(rounds):
        times_ref.append(_timed(lambda: ref.step(ref_params, X, Y), inner))
        times_ours.append(_timed(chainrule_step, inner))
    ratios = [a / b for a, b in zip(times_ours, times_ref)]
    return {
        "reference ms": 1e3 * statistics.median(times_ref),
        "chainrule ms": 1e3 * statistics.median(times_ours),
        "ratio": statistics.median(ratios),
        "ratio min": min(ratios),
        "ratio max": max(ratios),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dtypes", nargs="*", default=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args(argv)
    print("784-256-256-10 batch 128 SGD step, chainrule against the shared NumPy reference")
    for dtype in args.dtypes:
        r = compare(dtype, args.rounds)
        print(
            f"{dtype}: reference {r['reference ms']:.3f} ms, chainrule {r['chainrule ms']:.3f} ms, "
            f"chainrule/reference {r['ratio']:.3f} (rounds {r['ratio min']:.2f}-"
            f"{r['ratio max']:.2f}); target <= 1.05"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
