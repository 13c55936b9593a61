"""Workload 7, per-example gradients: the gradient of each example's loss in a batch, for the
784-256-256-10 relu MLP with softmax cross-entropy (float32, batch 32): what differential
privacy (clipping each example's gradient) and influence estimates need.

- chainrule vmap: ``cr.vmap(cr.grad(loss), in_axes=(None, 0, 0))(params, x, y)``, ``loss``
  written for one example;
- chainrule loop: ``cr.grad(loss)`` called once per example (what vmap replaces);
- torch.func: ``torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))`` with
  ``torch.func.functional_call`` on the same ``nn.Sequential`` as workload 2, eager;
- jax: ``jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))``;
- numpy: by hand, the floor: the batch's forward pass, then each layer's per-example weight
  gradient as one outer product per example (``einsum('bi,bj->bij')``).

All start from the same weights and batch and are checked against chainrule's loop before they
are timed (``ok`` or the largest relative difference). Each sample computes the per-example
gradients ``inner`` times and reports the time per batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import peers
from .harness import fmt_table, interleave, log, ratios

__all__ = ["run", "make_case", "BATCH", "SIZES"]

SIZES = (784, 256, 256, 10)
BATCH = 32
DTYPE = "float32"


def _init(seed: int = 0) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """PyTorch's default initialisation (W (out, in), b uniform on +-1/sqrt(fan_in)) and one
    batch, drawn with NumPy so that every library starts from the same numbers."""
    rng = np.random.default_rng(seed)
    layers = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        w = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(DTYPE)
        b = rng.uniform(-bound, bound, fan_out).astype(DTYPE)
        layers.append((w, b))
    x = rng.standard_normal((BATCH, SIZES[0])).astype(DTYPE)
    y = rng.integers(0, SIZES[-1], BATCH)
    return layers, x, y


def _flat(grads: list[Any]) -> np.ndarray:
    """Per-example gradients as one (batch, parameters) array, for the check."""
    return np.concatenate([np.asarray(g, dtype=np.float64).reshape(BATCH, -1) for g in grads], 1)


# Each maker returns (compute, result): compute() runs once; result() gives the flat gradients.
def _chainrule(vectorised: bool) -> tuple[Callable[[], Any], Callable[[], np.ndarray]]:
    cr = peers.get("chainrule")
    layers, x, y = _init()
    params = [p for layer in layers for p in layer]

    def loss(params: list[Any], x: Any, y: Any) -> Any:
        h = x
        for i in range(0, len(params) - 2, 2):
            h = cr.relu(cr.linear(h, params[i], params[i + 1]))
        return cr.cross_entropy(cr.linear(h, params[-2], params[-1]), y)

    per_example = cr.vmap(cr.grad(loss), in_axes=(None, 0, 0))
    one = cr.grad(loss)
    out: list[Any] = []

    def compute() -> None:
        if vectorised:
            out[:] = per_example(params, x, y)
        else:
            each = [one(params, x[i], y[i]) for i in range(BATCH)]
            out[:] = [np.stack([g[k] for g in each]) for k in range(len(params))]

    return compute, lambda: _flat(out)


def _torch() -> tuple[Callable[[], Any], Callable[[], np.ndarray]] | None:
    torch = peers.get("torch")
    if torch is None:
        return None
    from torch.func import functional_call, grad, vmap

    layers, x, y = _init()
    mods: list[Any] = []
    for w, b in layers:
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        mods += [lin, torch.nn.ReLU()]
    model = torch.nn.Sequential(*mods[:-1])
    params = {k: v.detach() for k, v in model.named_parameters()}
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def loss(params: dict[str, Any], x: Any, y: Any) -> Any:
        logits = functional_call(model, params, (x[None],))
        return torch.nn.functional.cross_entropy(logits, y[None])

    per_example = vmap(grad(loss), in_dims=(None, 0, 0))
    out: dict[str, Any] = {}

    def compute() -> None:
        out.update(per_example(params, xt, yt))

    return compute, lambda: _flat([out[k].numpy() for k in params])


def _jax() -> tuple[Callable[[], Any], Callable[[], np.ndarray]] | None:
    jax = peers.get("jax")
    if jax is None:
        return None
    jnp = jax.numpy
    layers, x, y = _init()
    params = [jnp.asarray(p) for layer in layers for p in layer]
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def loss(params: list[Any], x: Any, y: Any) -> Any:
        h = x
        for i in range(0, len(params) - 2, 2):
            h = jax.nn.relu(params[i] @ h + params[i + 1])
        logits = params[-2] @ h + params[-1]
        return jax.nn.logsumexp(logits) - logits[y]

    per_example = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))
    out: list[Any] = []

    def compute() -> None:
        out[:] = jax.block_until_ready(per_example(params, xj, yj))

    return compute, lambda: _flat([np.asarray(g) for g in out])


def _numpy() -> tuple[Callable[[], Any], Callable[[], np.ndarray]]:
    layers, x, y = _init()
    out: list[Any] = []

    def compute() -> None:
        hs = [x]
        for w, b in layers[:-1]:
            hs.append(np.maximum(hs[-1] @ w.T + b, 0))
        w, b = layers[-1]
        z = hs[-1] @ w.T + b
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(BATCH), y] -= 1  # each example's dloss/dlogits (no 1/N: one loss each)
        g = p
        grads: list[Any] = []
        for i in range(len(layers) - 1, -1, -1):
            w, _ = layers[i]
            grads[:0] = [np.einsum("bi,bj->bij", g, hs[i]), g]
            if i:
                g = (g @ w) * (hs[i] > 0)
        out[:] = grads

    return compute, lambda: _flat(out)


def make_case(lib: str) -> tuple[Callable[[], Any], Callable[[], np.ndarray]] | None:
    if lib == "chainrule":
        return _chainrule(vectorised=True)
    if lib == "chainrule loop":
        return _chainrule(vectorised=False)
    if lib == "torch":
        return _torch()
    if lib == "jax":
        return _jax()
    return _numpy()


LIBS = ["chainrule", "chainrule loop", "torch", "jax", "numpy"]
LABELS = {
    "chainrule": "chainrule vmap(grad)",
    "chainrule loop": "chainrule grad, a loop",
    "torch": "torch.func vmap(grad)",
    "jax": "jax jit(vmap(grad))",
    "numpy": "numpy (by hand, floor)",
}


def run(quick: bool, repeats: int) -> tuple[str, dict[str, Any]]:
    log(f"workload 7: per-example gradients, {'-'.join(map(str, SIZES))} {DTYPE}, batch {BATCH}")
    made = {lib: make_case(lib) for lib in LIBS}
    results: dict[str, np.ndarray] = {}
    for lib, case in made.items():
        if case is not None:
            compute, result = case
            compute()
            results[lib] = result()
    want = results["chainrule loop"]
    status = {}
    for lib, flat in results.items():
        diff = float(np.max(np.abs(flat - want)) / max(1e-30, float(np.max(np.abs(want)))))
        status[lib] = "ok" if diff < 1e-4 else f"differs {diff:.1e}"
    inner = 2 if quick else 5

    def timed(compute: Callable[[], Any]) -> Callable[[], float]:
        def one() -> float:
            import time

            start = time.perf_counter()
            for _ in range(inner):
                compute()
            return (time.perf_counter() - start) / inner

        return one

    cases = {lib: (timed(c[0]) if c is not None else None) for lib, c in made.items()}
    outcomes = interleave(cases, repeats=repeats, warmup=1, missing=peers.missing(), settle=0.2)
    rel = ratios(outcomes)
    rows = []
    data: dict[str, Any] = {"batch": BATCH, "sizes": SIZES, "dtype": DTYPE, "libs": {}}
    for lib, o in outcomes.items():
        ms = o.median() * 1e3 if o.ok else None
        rows.append(
            [
                LABELS[lib],
                f"{ms:.2f}" if ms is not None else o.status,
                f"{rel[lib]:.2f}" if lib in rel else "",
                status.get(lib, "-"),
            ]
        )
        data["libs"][lib] = {**o.to_json(1e3), "check": status.get(lib, "-")}
    text = "\n".join(
        [
            f"7. Per-example gradients: {'-'.join(map(str, SIZES))} relu, cross-entropy, "
            f"{DTYPE}, batch {BATCH} (ms per batch; medians of {repeats}, {inner} per sample)",
            fmt_table(["library", "ms", "chainrule/lib", "check"], rows),
        ]
    )
    return text, data
