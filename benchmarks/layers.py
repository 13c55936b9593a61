"""Workload 8, deep-learning layers against PyTorch (same threads, float32): forward + backward of

- ``Conv2d`` 32 -> 64 channels, 3 x 3, padding 1, on (64, 32, 28, 28);
- ``BatchNorm2d`` (training) and ``LayerNorm`` on (64, 64, 28, 28) and (64, 128, 256);
- scaled dot-product attention, (batch 32, 4 heads, 128 tokens, 32 per head) (when chainrule has
  it);
- one training epoch of the MNIST-1D CNN of ``examples/train_mnist1d.py`` (4,000 sequences of
  length 40, batch 100, AdamW), on random data of that shape.

Each library starts from the same weights and inputs; a fixed random array is backpropagated
from the layer's output (``out.backward(g)``) to the input and every parameter, so that the
times are the layer's alone: weighting and summing the output first would add two passes
over it, and a multiplication's backward, to both sides. The table gives ms per
call and chainrule / PyTorch (the median of the per-round ratios).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import peers
from .harness import fmt_table, interleave, log, ratios

__all__ = ["run"]

DT = np.float32


def _conv(lib: str) -> Callable[[], Any] | None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 32, 28, 28)).astype(DT)
    w = (rng.standard_normal((64, 32, 3, 3)) * 0.05).astype(DT)
    b = np.zeros(64, DT)
    g = rng.standard_normal((64, 64, 28, 28)).astype(DT)
    if lib == "chainrule":
        cr = peers.get("chainrule")
        F = cr.nn.functional

        def run() -> None:
            xt = cr.tensor(x, requires_grad=True)
            wt, bt = cr.tensor(w, requires_grad=True), cr.tensor(b, requires_grad=True)
            F.conv2d(xt, wt, bt, padding=1).backward(g)

        return run
    torch = peers.get("torch")
    if torch is None:
        return None
    tg = torch.from_numpy(g)

    def run_torch() -> None:
        xt = torch.tensor(x, requires_grad=True)
        wt, bt = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
        torch.nn.functional.conv2d(xt, wt, bt, padding=1).backward(tg)

    return run_torch


def _norm(kind: str) -> Callable[[str], Callable[[], Any] | None]:
    def make(lib: str) -> Callable[[], Any] | None:
        rng = np.random.default_rng(1)
        shape = (64, 64, 28, 28) if kind == "batch" else (64, 128, 256)
        x = rng.standard_normal(shape).astype(DT)
        g = rng.standard_normal(shape).astype(DT)
        if lib == "chainrule":
            cr = peers.get("chainrule")
            layer = cr.nn.BatchNorm2d(64, dtype="float32") if kind == "batch" else (
                cr.nn.LayerNorm(256, dtype="float32"))  # fmt: skip

            def run() -> None:
                xt = cr.tensor(x, requires_grad=True)
                layer(xt).backward(g)

            return run
        torch = peers.get("torch")
        if torch is None:
            return None
        t_layer = torch.nn.BatchNorm2d(64) if kind == "batch" else torch.nn.LayerNorm(256)
        tg = torch.from_numpy(g)

        def run_torch() -> None:
            xt = torch.tensor(x, requires_grad=True)
            t_layer(xt).backward(tg)

        return run_torch

    return make


def _attention(lib: str) -> Callable[[], Any] | None:
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((32, 4, 128, 32)).astype(DT) for _ in range(3))
    g = rng.standard_normal((32, 4, 128, 32)).astype(DT)
    if lib == "chainrule":
        cr = peers.get("chainrule")
        sdpa = getattr(cr.nn.functional, "scaled_dot_product_attention", None)
        if sdpa is None:
            return None

        def run() -> None:
            qt, kt, vt = (cr.tensor(a, requires_grad=True) for a in (q, k, v))
            sdpa(qt, kt, vt, is_causal=True).backward(g)

        return run
    torch = peers.get("torch")
    if torch is None:
        return None
    tg = torch.from_numpy(g)

    def run_torch() -> None:
        qt, kt, vt = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
        out = torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, is_causal=True)
        out.backward(tg)

    return run_torch


def _cnn_epoch(lib: str) -> Callable[[], Any] | None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4000, 1, 40)).astype(DT)
    y = rng.integers(0, 10, 4000)
    width = 32
    if lib == "chainrule":
        cr = peers.get("chainrule")
        nn = cr.nn
        model = nn.Sequential(
            nn.Conv1d(1, width, 5, padding=2, rng=0, dtype="float32"),
            nn.BatchNorm1d(width, dtype="float32"), nn.ReLU(),
            nn.Conv1d(width, width, 3, stride=2, padding=1, rng=1, dtype="float32"),
            nn.BatchNorm1d(width, dtype="float32"), nn.ReLU(),
            nn.Conv1d(width, width, 3, stride=2, padding=1, rng=2, dtype="float32"),
            nn.BatchNorm1d(width, dtype="float32"), nn.ReLU(),
            nn.Flatten(), nn.Linear(width * 10, 10, rng=3, dtype="float32"),
        )  # fmt: skip
        opt = cr.optim.AdamW(model.parameters(), lr=1e-3)

        def run() -> None:
            for i in range(0, 4000, 100):
                loss = cr.nn.functional.cross_entropy(
                    model(cr.tensor(x[i : i + 100])), y[i : i + 100]
                )
                opt.zero_grad()
                loss.backward()
                opt.step()

        return run
    torch = peers.get("torch")
    if torch is None:
        return None
    tn = torch.nn
    model = tn.Sequential(
        tn.Conv1d(1, width, 5, padding=2), tn.BatchNorm1d(width), tn.ReLU(),
        tn.Conv1d(width, width, 3, stride=2, padding=1), tn.BatchNorm1d(width), tn.ReLU(),
        tn.Conv1d(width, width, 3, stride=2, padding=1), tn.BatchNorm1d(width), tn.ReLU(),
        tn.Flatten(), tn.Linear(width * 10, 10),
    )  # fmt: skip
    opt_t = torch.optim.AdamW(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def run_torch() -> None:
        for i in range(0, 4000, 100):
            loss = torch.nn.functional.cross_entropy(model(xt[i : i + 100]), yt[i : i + 100])
            opt_t.zero_grad()
            loss.backward()
            opt_t.step()

    return run_torch


CASES: dict[str, Callable[[str], Callable[[], Any] | None]] = {
    "Conv2d 32->64 3x3, (64, 32, 28, 28)": _conv,
    "BatchNorm2d, (64, 64, 28, 28)": _norm("batch"),
    "LayerNorm(256), (64, 128, 256)": _norm("layer"),
    "attention, causal, (32, 4, 128, 32)": _attention,
    "MNIST-1D CNN, one epoch (40 steps)": _cnn_epoch,
}


def run(quick: bool, repeats: int) -> tuple[str, dict[str, Any]]:
    import time

    rows, data = [], {}
    for name, make in CASES.items():
        log(f"workload 8: {name}")
        made = {lib: make(lib) for lib in ("chainrule", "torch")}

        def timed(fn: Callable[[], Any] | None) -> Callable[[], float] | None:
            if fn is None:
                return None

            def once() -> float:
                start = time.perf_counter()
                fn()
                return time.perf_counter() - start

            return once

        cases = {lib: timed(fn) for lib, fn in made.items()}
        outcomes = interleave(cases, repeats=max(3, repeats // 2) if quick else repeats, warmup=1,
                              missing=peers.missing(), settle=0.2)  # fmt: skip
        rel = ratios(outcomes)
        cells = []
        for lib in ("chainrule", "torch"):
            o = outcomes[lib]
            cells.append(f"{o.median() * 1e3:.1f}" if o.ok else o.status)
        ratio = rel.get("torch")
        rows.append([name, *cells, f"{ratio:.2f}" if ratio is not None else "-"])
        data[name] = {lib: o.to_json(1e3) for lib, o in outcomes.items()}
        data[name]["ratio"] = ratio
    text = "\n".join(
        [
            f"8. Layers, forward + backward, float32, ms per call (medians of {repeats}), "
            "chainrule / torch",
            fmt_table(["case", "chainrule ms", "torch ms", "chainrule/torch"], rows),
        ]
    )
    return text, data
