"""Workload 4, the cheap-gradient principle, measured two ways.

1. The handout's comparison, by chainrule's own ``cr.cost_report(sizes=(10, 50, 100))``:
   the gradient of l = 1/2 ||W2 tanh(W1 x + b) - y||^2 with respect to W1 (d x d) by central
   differences (2 d^2 evaluations, counted) against one forward and one backward pass; its times
   are the best of its runs (see ``cr.cost_report``), not medians.
2. Backward time over forward time for the 784-256-256-10 MLP step of workload 2, float32 and
   float64, side by side with the peers whose API separates the two passes (``mlp.split_case``):
   forward = the recorded forward pass and the loss, backward = the backward pass.
"""

from __future__ import annotations

from typing import Any

from . import mlp, peers
from .harness import Outcome, fmt_num, fmt_table, interleave, log

__all__ = ["run"]


def _handout(sizes: tuple[int, ...]) -> tuple[str, dict[str, Any]]:
    cr = peers.get("chainrule")
    report = cr.cost_report(sizes=sizes, progress=lambda d: log(f"  cost_report: d = {d}"))
    rows = [
        {
            "d": r.d,
            "evals_numerical": r.evals_numerical,
            "evals_backprop": r.evals_backprop,
            "t_numerical_s": r.t_numerical,
            "t_backprop_s": r.t_backprop,
            "t_forward_s": r.t_forward,
            "t_backward_s": r.t_backward,
            "ratio_numerical_over_backprop": r.ratio,
            "backward_over_forward": r.backward_over_forward,
            "max_abs_diff": r.max_abs_diff,
        }
        for r in report.rows
    ]
    data = {"sizes": list(sizes), "rows": rows, "slopes": report.slopes}
    return str(report), data


def run(quick: bool, repeats: int) -> tuple[str, dict[str, Any]]:
    sizes = (10, 50) if quick else (10, 50, 100)
    log(f"workload 4: cr.cost_report(sizes={sizes})")
    text, handout = _handout(sizes)
    parts = ["4a. The handout's cost comparison: cr.cost_report(sizes=" + repr(sizes) + ")", text]

    specs = [s for s in mlp.SPECS if s.sizes[0] == 784]
    split: dict[str, dict[str, Any]] = {}
    rows = []
    for spec in specs:
        log(f"workload 4: forward/backward split, {spec.name}")
        cases = {lib: mlp.split_case(lib, spec) for lib in mlp.SPLIT_LIBS}
        outcomes: dict[str, Outcome] = interleave(
            cases,
            repeats=repeats,
            warmup=2,
            missing=peers.missing(),
            label=spec.name,
            settle=mlp.SETTLE,
        )
        split[spec.name] = {lib: o.to_json(scale=1e3) for lib, o in outcomes.items()}
        for lib, o in outcomes.items():
            rows.append(
                [
                    spec.name,
                    lib,
                    fmt_num(o.median("forward") * 1e3) if o.ok else o.status,
                    fmt_num(o.median("backward") * 1e3) if o.ok else "",
                    fmt_num(o.median("ratio"), 2) if o.ok else "",
                ]
            )
    table = fmt_table(["step", "library", "forward ms", "backward ms", "backward/forward"], rows)
    parts += [
        "",
        "4b. Backward / forward time, 784-256-256-10 MLP step (medians of "
        f"{repeats}; forward includes the loss; jax omitted: its jitted step fuses the passes)",
        table,
    ]
    return "\n".join(parts), {"handout": handout, "mlp_split_ms": split}
