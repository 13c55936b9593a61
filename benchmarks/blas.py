"""Workload 5, the BLAS ceiling: NumPy's matmul at the shapes of the 784-256-256-10 MLP step
(batch 128), in GFLOP/s, and the step's achieved GFLOP/s against it.

The eight products a step makes, each with the memory layout the hand-written NumPy step uses
(weights stored (out, in), so the forward pass multiplies by a transposed view):

    forward    X @ W1.T, h1 @ W2.T, h2 @ W3.T
    backward   dW = g.T @ h for each layer; dh = g @ W for layers 3 and 2

The ceiling of a step is its matmul FLOPs over the time of these eight products run back to
back (each product timed alone, ``inner`` calls per sample, medians). PyTorch's ``torch.mm`` at
the same shapes is timed beside NumPy, interleaved: it is PyTorch's own ceiling (its BLAS is MKL /
oneDNN, NumPy's is OpenBLAS), which bounds what its eager step can reach.

Each sample starts after a pause (``mlp.SETTLE``) that lets the other library's BLAS threads go
idle: without it, whichever library ran second shared the cores with the first one's spinning
workers (torch.mm at half speed right after NumPy).

A step's achieved GFLOP/s (matmul FLOPs only, over the whole step's time, from workload 2) says
how much of the step is spent outside the matmuls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import mlp, peers
from .harness import Outcome, fmt_num, fmt_table, interleave, log, timer

__all__ = ["PRODUCTS", "run", "achieved"]

B, D0, D1, D2, D3 = 128, 784, 256, 256, 10

# name -> (shape of the left operand as stored, transposed?, right as stored, transposed?)
PRODUCTS: dict[str, tuple[tuple[int, int], bool, tuple[int, int], bool]] = {
    "X @ W1.T": ((B, D0), False, (D1, D0), True),
    "h1 @ W2.T": ((B, D1), False, (D2, D1), True),
    "h2 @ W3.T": ((B, D2), False, (D3, D2), True),
    "g3.T @ h2": ((B, D3), True, (B, D2), False),
    "g3 @ W3": ((B, D3), False, (D3, D2), False),
    "g2.T @ h1": ((B, D2), True, (B, D1), False),
    "g2 @ W2": ((B, D2), False, (D2, D1), False),
    "g1.T @ X": ((B, D1), True, (B, D0), False),
}


def _flops(name: str) -> int:
    (ra, ca), ta, (rb, cb), tb = PRODUCTS[name]
    m, k = (ca, ra) if ta else (ra, ca)
    n = rb if tb else cb
    return 2 * m * k * n


STEP_FLOPS = sum(_flops(name) for name in PRODUCTS)


def _stored(dtype: str) -> dict[str, tuple[np.ndarray, bool, np.ndarray, bool]]:
    """The operands as stored (C order) and whether each enters transposed."""
    rng = np.random.default_rng(0)
    out = {}
    for name, (sa, ta, sb, tb) in PRODUCTS.items():
        a = rng.standard_normal(sa).astype(dtype)
        b = rng.standard_normal(sb).astype(dtype)
        out[name] = (a, ta, b, tb)
    return out


def _numpy_case(dtype: str, inner: int) -> Callable[[], dict[str, float]]:
    pairs = {
        name: (a.T if ta else a, b.T if tb else b)
        for name, (a, ta, b, tb) in _stored(dtype).items()
    }

    def run() -> dict[str, float]:
        times = {}
        for name, (a, b) in pairs.items():
            start = timer()
            for _ in range(inner):
                a @ b
            times[name] = (timer() - start) / inner
        return times

    return run


def _torch_case(dtype: str, inner: int) -> Callable[[], dict[str, float]] | None:
    torch = peers.get("torch")
    if torch is None:
        return None
    pairs = {}
    for name, (a, ta, b, tb) in _stored(dtype).items():
        at, bt = torch.from_numpy(a), torch.from_numpy(b)
        pairs[name] = (at.T if ta else at, bt.T if tb else bt)

    def run() -> dict[str, float]:
        times = {}
        for name, (a, b) in pairs.items():
            start = timer()
            for _ in range(inner):
                torch.mm(a, b)
            times[name] = (timer() - start) / inner
        return times

    return run


def run(quick: bool, repeats: int) -> tuple[str, dict[str, Any]]:
    inner = 20 if quick else 100
    data: dict[str, Any] = {"step_matmul_flops": STEP_FLOPS, "products": {}}
    rows = []
    for dtype in ("float32", "float64"):
        log(f"workload 5: matmul at the MLP's shapes, {dtype}")
        cases = {"numpy": _numpy_case(dtype, inner), "torch": _torch_case(dtype, inner)}
        outcomes: dict[str, Outcome] = interleave(
            cases, repeats=repeats, warmup=1, missing=peers.missing(), settle=mlp.SETTLE
        )
        per: dict[str, Any] = {}
        for lib, o in outcomes.items():
            if not o.ok:
                per[lib] = {"status": o.status}
                continue
            gflops = {name: _flops(name) / o.median(name) / 1e9 for name in PRODUCTS}
            step_time = sum(o.median(name) for name in PRODUCTS)
            per[lib] = {
                "seconds": {name: o.median(name) for name in PRODUCTS},
                "gflops": gflops,
                "step_matmuls_s": step_time,
                "ceiling_gflops": STEP_FLOPS / step_time / 1e9,
            }
        data["products"][dtype] = per
        for name in [*PRODUCTS, "all eight (the step's ceiling)"]:
            row = [dtype, name]
            for lib in ("numpy", "torch"):
                p = per.get(lib, {})
                if "gflops" not in p:
                    row.append(p.get("status", "-"))
                elif name in PRODUCTS:
                    row.append(fmt_num(p["gflops"][name]))
                else:
                    row.append(fmt_num(p["ceiling_gflops"]))
            rows.append(row)
    text = "\n".join(
        [
            f"5. BLAS ceiling: matmul GFLOP/s at the MLP's shapes (batch 128; medians of "
            f"{repeats}, {inner} calls per sample; step matmul FLOPs {STEP_FLOPS / 1e6:.1f} M)",
            fmt_table(["dtype", "product", "numpy GFLOP/s", "torch.mm GFLOP/s"], rows),
        ]
    )
    return text, data


def achieved(blas: dict[str, Any], mlp_data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Each library's MLP step in GFLOP/s (matmul FLOPs / step time) against NumPy's ceiling."""
    rows = []
    out: dict[str, Any] = {}
    for spec in mlp.SPECS:
        if spec.sizes[0] != 784 or spec.name not in mlp_data:
            continue
        ceiling = blas["products"].get(spec.dtype, {}).get("numpy", {}).get("ceiling_gflops")
        flops = mlp.matmul_flops(spec)
        assert flops == STEP_FLOPS
        out[spec.name] = {}
        for lib, res in mlp_data[spec.name]["libs"].items():
            if res.get("status") != "ok":
                continue
            seconds = res["time"]["median"] / 1e3  # stored in ms
            gflops = flops / seconds / 1e9
            frac = gflops / ceiling if ceiling else float("nan")
            out[spec.name][lib] = {"gflops": gflops, "fraction_of_numpy_ceiling": frac}
            rows.append([spec.name, lib, fmt_num(gflops), f"{frac:.0%}"])
    lines = [
        "5b. MLP step: achieved GFLOP/s (matmul FLOPs / step time) against NumPy's ceiling",
        fmt_table(["step", "library", "GFLOP/s", "of ceiling"], rows),
    ]
    if any(r["fraction_of_numpy_ceiling"] > 1 for step in out.values() for r in step.values()):
        # the ceiling and the steps are timed minutes apart, and this machine's BLAS speed
        # drifts: a whole step cannot beat its own matmuls
        lines.append(
            "NOTE: a step above 100% means the ceiling (workload 5) was timed in a slower phase "
            "of the machine than the steps (workload 2); compare the steps with each other, "
            "not with the ceiling, in this run."
        )
    return "\n".join(lines), out
