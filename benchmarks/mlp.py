"""Workload 2, one training step of an MLP: forward, loss, backward, SGD update (lr 0.01).

- ``784-256-256-10 relu`` at batch 128 with softmax cross-entropy, in float32 and float64;
- ``2-16-16-1 tanh`` at batch 32 with mean squared error, in float64 (overhead-bound).

Every library starts from the same weights (PyTorch's default initialisation, drawn once with
NumPy: W and b uniform on +-1/sqrt(fan_in), W stored (out, in) and applied as ``x @ W.T + b``)
and the same batch, and is checked to give the same losses over three steps as the NumPy floor
before it is timed (the table says ``ok`` or the largest relative difference).

- chainrule: ``cr.nn.MLP``, ``cr.nn.functional.cross_entropy`` / ``mse_loss``, ``cr.optim.SGD``;
  ``zero_grad()``, ``loss.backward()``, ``step()``.
- chainrule compiled: the same, with the loss (model and loss function) under ``cr.compile``;
  ``backward()`` and the optimizer step as in eager mode.
- torch: ``torch.nn.Sequential`` of ``Linear`` and ``ReLU``/``Tanh``, ``F.cross_entropy`` /
  ``F.mse_loss``, ``torch.optim.SGD`` (its default foreach update), eager.
- jax: the whole step (``value_and_grad`` and the update) under ``jax.jit``, parameters donated;
  the clock stops after ``block_until_ready()`` on the last step's parameters.
- autograd: ``autograd.value_and_grad`` of the loss written with ``autograd.numpy``; the update
  by hand.
- mygrad: ``mygrad`` tensors, ``mygrad.nnet`` relu/tanh and ``softmax_crossentropy``,
  ``backward()``, then ``p.data -= lr * p.grad``.
- numpy: the floor, forward and backward written by hand (the softmax-cross-entropy gradient
  ``(softmax - onehot) / N`` fused), the update in place.

Each sample times ``inner`` consecutive steps and reports the time per step. For the large
MLP, each sample starts after a pause (``SETTLE``) that lets the previous library's BLAS worker
threads go idle (see ``harness.interleave``). The same classes
give the forward / backward split of workload 4 (``forward`` = the recorded forward pass and the
loss, ``backward`` = the backward pass; the update untimed), for every library whose API
separates the two (not jax, whose jitted step fuses them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import peers
from .harness import Outcome, interleave, log, ratios, side_by_side, timer

__all__ = [
    "Spec",
    "SPECS",
    "Init",
    "make",
    "step_case",
    "split_case",
    "check",
    "matmul_flops",
    "run",
]

LR = 0.01
# The targets against the hand-written NumPy step are the tightest (5%): chainrule, compiled
# and NumPy get this many more rounds, interleaved among themselves, after the common ones, so
# that their paired ratios are medians of about 30 rounds (each round's ratio moves by up to
# 2x on a shared machine; the other peers' ratios use the common rounds)
AGAINST_NUMPY = ("chainrule", "chainrule compiled", "numpy")
EXTRA_ROUNDS = 20
SETTLE = 0.15  # seconds between runs where BLAS threads run (see harness.interleave)


@dataclass(frozen=True)
class Spec:
    name: str
    sizes: tuple[int, ...]
    activation: str  # "relu" or "tanh"
    batch: int
    dtype: str
    loss: str  # "cross_entropy" or "mse"
    inner: int  # steps per timed sample


SPECS = [
    Spec(
        "784-256-256-10 relu f32", (784, 256, 256, 10), "relu", 128, "float32", "cross_entropy", 10
    ),
    Spec(
        "784-256-256-10 relu f64", (784, 256, 256, 10), "relu", 128, "float64", "cross_entropy", 10
    ),
    Spec("2-16-16-1 tanh f64", (2, 16, 16, 1), "tanh", 32, "float64", "mse", 100),
]


def matmul_flops(spec: Spec) -> int:
    """Multiply-add FLOPs (2 per multiply-add) of the step's matmuls: forward x W^T per layer,
    backward dW = g^T h per layer and dx = g W for all but the first layer."""
    pairs = list(zip(spec.sizes[:-1], spec.sizes[1:]))
    per_layer = [2 * spec.batch * n_in * n_out for n_in, n_out in pairs]
    return 3 * sum(per_layer) - per_layer[0]


@dataclass
class Init:
    """The shared starting point: weights (out, in), biases, the batch and its targets."""

    params: list[tuple[np.ndarray, np.ndarray]]
    X: np.ndarray
    y: np.ndarray  # int64 classes (cross-entropy) or (batch, 1) targets (mse)

    @classmethod
    def of(cls, spec: Spec, seed: int = 0) -> Init:
        rng = np.random.default_rng(seed)
        params = []
        for n_in, n_out in zip(spec.sizes[:-1], spec.sizes[1:]):
            bound = 1.0 / np.sqrt(n_in)
            W = rng.uniform(-bound, bound, size=(n_out, n_in)).astype(spec.dtype)
            b = rng.uniform(-bound, bound, size=n_out).astype(spec.dtype)
            params.append((W, b))
        X = rng.standard_normal((spec.batch, spec.sizes[0])).astype(spec.dtype)
        if spec.loss == "cross_entropy":
            y = rng.integers(0, spec.sizes[-1], size=spec.batch).astype(np.int64)
        else:
            y = (np.sin(2 * X[:, :1]) * np.cos(X[:, 1:2])).astype(spec.dtype)
        return cls(params, X, y)


class _Lib:
    """One library's version of the step: ``forward()`` returns what ``backward`` needs,
    ``update()`` applies SGD; ``step()`` does all three and returns the loss."""

    def __init__(self, spec: Spec, init: Init) -> None:
        raise NotImplementedError

    def forward(self) -> Any:
        raise NotImplementedError

    def backward(self, state: Any) -> None:
        raise NotImplementedError

    def update(self) -> None:
        raise NotImplementedError

    def step(self) -> Any:
        state = self.forward()
        self.backward(state)
        self.update()
        return state

    def loss_value(self, state: Any) -> float:
        raise NotImplementedError

    def sync(self) -> None:
        """Wait for queued work (jax's asynchronous dispatch); a no-op elsewhere."""


class _Chainrule(_Lib):
    def __init__(self, spec: Spec, init: Init) -> None:
        cr = peers.get("chainrule")
        self.F = cr.nn.functional
        self.net = cr.nn.MLP(list(spec.sizes), activation=spec.activation, dtype=spec.dtype)
        linears = [m for m in self.net if isinstance(m, cr.nn.Linear)]
        for layer, (W, b) in zip(linears, init.params):
            layer.weight.data = W.copy()
            layer.bias.data = b.copy()
        self.opt = cr.optim.SGD(self.net.parameters(), lr=LR)
        self.X = cr.tensor(init.X)
        self.y = init.y if spec.loss == "cross_entropy" else cr.tensor(init.y)
        self.loss_fn = self.F.cross_entropy if spec.loss == "cross_entropy" else self.F.mse_loss

    def forward(self) -> Any:
        self.opt.zero_grad()
        return self.loss_fn(self.net(self.X), self.y)

    def backward(self, loss: Any) -> None:
        loss.backward()

    def update(self) -> None:
        self.opt.step()

    def loss_value(self, loss: Any) -> float:
        return float(loss)


class _ChainruleCompiled(_Chainrule):
    def __init__(self, spec: Spec, init: Init) -> None:
        super().__init__(spec, init)
        net, loss_fn, y = self.net, self.loss_fn, self.y
        self.loss = peers.get("chainrule").compile(lambda X: loss_fn(net(X), y))

    def forward(self) -> Any:
        self.opt.zero_grad()
        return self.loss(self.X)


class _Torch(_Lib):
    def __init__(self, spec: Spec, init: Init) -> None:
        torch = peers.get("torch")
        nn = torch.nn
        self.F = nn.functional
        dtype = getattr(torch, spec.dtype)
        layers: list[Any] = []
        for i, (W, b) in enumerate(init.params):
            layer = nn.Linear(W.shape[1], W.shape[0], dtype=dtype)
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(W))
                layer.bias.copy_(torch.from_numpy(b))
            layers.append(layer)
            if i < len(init.params) - 1:
                layers.append(nn.ReLU() if spec.activation == "relu" else nn.Tanh())
        self.net = nn.Sequential(*layers)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=LR)
        self.X = torch.from_numpy(init.X.copy())
        self.y = torch.from_numpy(init.y.copy())
        self.ce = spec.loss == "cross_entropy"

    def forward(self) -> Any:
        self.opt.zero_grad()
        out = self.net(self.X)
        return self.F.cross_entropy(out, self.y) if self.ce else self.F.mse_loss(out, self.y)

    def backward(self, loss: Any) -> None:
        loss.backward()

    def update(self) -> None:
        self.opt.step()

    def loss_value(self, loss: Any) -> float:
        return float(loss.item())


class _Jax(_Lib):
    def __init__(self, spec: Spec, init: Init) -> None:
        jax = peers.get("jax")
        jnp = jax.numpy
        self.jax = jax
        act = jax.nn.relu if spec.activation == "relu" else jnp.tanh
        ce = spec.loss == "cross_entropy"

        def loss_fn(params: Any, X: Any, y: Any) -> Any:
            h = X
            for W, b in params[:-1]:
                h = act(h @ W.T + b)
            W, b = params[-1]
            out = h @ W.T + b
            if ce:
                logz = jax.nn.logsumexp(out, axis=1)
                picked = jnp.take_along_axis(out, y[:, None], axis=1)[:, 0]
                return jnp.mean(logz - picked)
            return jnp.mean((out - y) ** 2)

        def step(params: Any, X: Any, y: Any) -> Any:
            loss, grads = jax.value_and_grad(loss_fn)(params, X, y)
            new = jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads)
            return new, loss

        self._step = jax.jit(step, donate_argnums=0)
        self.params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in init.params]
        self.X = jnp.asarray(init.X)
        self.y = jnp.asarray(init.y)

    def step(self) -> Any:
        self.params, loss = self._step(self.params, self.X, self.y)
        return loss

    def loss_value(self, loss: Any) -> float:
        return float(loss)

    def sync(self) -> None:
        self.jax.block_until_ready(self.params)


class _Autograd(_Lib):
    def __init__(self, spec: Spec, init: Init) -> None:
        import autograd
        import autograd.numpy as anp
        from autograd.core import vspace
        from autograd.scipy.special import logsumexp

        X, y = init.X, init.y
        rows = np.arange(spec.batch)
        relu = spec.activation == "relu"
        ce = spec.loss == "cross_entropy"

        def loss_fn(flat: list[Any]) -> Any:
            h = X
            layers = list(zip(flat[0::2], flat[1::2]))
            for W, b in layers[:-1]:
                z = anp.dot(h, W.T) + b
                h = anp.maximum(z, 0.0) if relu else anp.tanh(z)
            W, b = layers[-1]
            out = anp.dot(h, W.T) + b
            if ce:
                return anp.mean(logsumexp(out, axis=1) - out[rows, y])
            return anp.mean((out - y) ** 2)

        self.params = [a.copy() for W, b in init.params for a in (W, b)]
        self._value_and_grad = autograd.value_and_grad(loss_fn)
        self._make_vjp = autograd.make_vjp(loss_fn)
        self._vspace = vspace
        self.grads: list[Any] = []

    def step(self) -> Any:
        loss, grads = self._value_and_grad(self.params)
        self.params = [p - LR * g for p, g in zip(self.params, grads)]
        return loss

    def forward(self) -> Any:
        return self._make_vjp(self.params)

    def backward(self, state: Any) -> None:
        vjp, loss = state
        self.grads = vjp(self._vspace(loss).ones())

    def update(self) -> None:
        self.params = [p - LR * g for p, g in zip(self.params, self.grads)]

    def loss_value(self, loss: Any) -> float:
        return float(loss[1] if isinstance(loss, tuple) else loss)


class _Mygrad(_Lib):
    def __init__(self, spec: Spec, init: Init) -> None:
        mg = peers.get("mygrad")
        from mygrad.nnet.activations import relu, tanh
        from mygrad.nnet.losses import softmax_crossentropy

        self.mg = mg
        self.act = relu if spec.activation == "relu" else tanh
        self.softmax_crossentropy = softmax_crossentropy
        self.params = [(mg.tensor(W.copy()), mg.tensor(b.copy())) for W, b in init.params]
        self.X = init.X
        self.y = init.y
        self.ce = spec.loss == "cross_entropy"

    def forward(self) -> Any:
        mg = self.mg
        h = self.X
        for W, b in self.params[:-1]:
            h = self.act(mg.matmul(h, W.T) + b)
        W, b = self.params[-1]
        out = mg.matmul(h, W.T) + b
        if self.ce:
            return self.softmax_crossentropy(out, self.y)
        return mg.mean((out - self.y) ** 2)

    def backward(self, loss: Any) -> None:
        loss.backward()

    def update(self) -> None:
        for W, b in self.params:
            W.data -= LR * W.grad
            b.data -= LR * b.grad

    def loss_value(self, loss: Any) -> float:
        return float(loss.item())


class _Numpy(_Lib):
    """The floor: what a careful hand-written NumPy step costs."""

    def __init__(self, spec: Spec, init: Init) -> None:
        self.params = [(W.copy(), b.copy()) for W, b in init.params]
        self.X, self.y = init.X, init.y
        self.rows = np.arange(spec.batch)
        self.relu = spec.activation == "relu"
        self.ce = spec.loss == "cross_entropy"
        self.grads: list[tuple[np.ndarray, np.ndarray]] = []

    def forward(self) -> Any:
        h = self.X
        hs = [h]
        for W, b in self.params[:-1]:
            z = h @ W.T
            z += b
            h = np.maximum(z, 0) if self.relu else np.tanh(z)
            hs.append(h)
        W, b = self.params[-1]
        out = h @ W.T
        out += b
        n = out.shape[0]
        if self.ce:
            m = out.max(axis=1, keepdims=True)
            e = np.exp(out - m)
            s = e.sum(axis=1, keepdims=True)
            loss = float(np.mean(np.log(s[:, 0]) + m[:, 0] - out[self.rows, self.y]))
            g = e / s  # softmax
            g[self.rows, self.y] -= 1
            g /= n
        else:
            diff = out - self.y
            loss = float(np.mean(diff * diff))
            g = diff * (2.0 / diff.size)
        return loss, g, hs

    def backward(self, state: Any) -> None:
        _, g, hs = state
        grads = []
        for i in range(len(self.params) - 1, -1, -1):
            W, _b = self.params[i]
            h = hs[i]
            grads.append((g.T @ h, g.sum(axis=0)))
            if i > 0:
                g = g @ W
                if self.relu:
                    g *= h > 0  # relu'(z) from its output: z > 0 exactly when h > 0
                else:
                    g *= 1 - h * h
        self.grads = grads[::-1]

    def update(self) -> None:
        for (W, b), (dW, db) in zip(self.params, self.grads):
            W -= LR * dW
            b -= LR * db

    def loss_value(self, state: Any) -> float:
        return float(state[0])


_CLASSES: dict[str, type[_Lib]] = {
    "chainrule": _Chainrule,
    "chainrule compiled": _ChainruleCompiled,
    "torch": _Torch,
    "jax": _Jax,
    "autograd": _Autograd,
    "mygrad": _Mygrad,
    "numpy": _Numpy,
}
LIBS = list(_CLASSES)
SPLIT_LIBS = ["chainrule", "torch", "autograd", "mygrad", "numpy"]


def _module(lib: str) -> Any:
    """The imported library behind a row ("chainrule compiled" is chainrule)."""
    return peers.get(lib.split()[0])


def make(lib: str, spec: Spec, init: Init) -> _Lib:
    return _CLASSES[lib](spec, init)


def check(spec: Spec, steps: int = 3) -> dict[str, float | str]:
    """Each library's largest relative difference from the NumPy floor's losses over ``steps``
    steps from the same start (or the error it raised)."""
    init = Init.of(spec)
    floor = make("numpy", spec, init)
    ref = [floor.loss_value(floor.step()) for _ in range(steps)]
    out: dict[str, float | str] = {}
    for lib in LIBS:
        if lib == "numpy" or _module(lib) is None:
            continue
        try:
            model = make(lib, spec, init)
            got = [model.loss_value(model.step()) for _ in range(steps)]
        except Exception as err:
            out[lib] = f"{type(err).__name__}: {err}"[:300]
            continue
        out[lib] = max(abs(a - b) / abs(b) for a, b in zip(got, ref))
    return out


def step_case(lib: str, spec: Spec) -> Callable[[], float] | None:
    """A case timing ``spec.inner`` steps; it returns seconds per step."""
    if _module(lib) is None:
        return None
    model = make(lib, spec, Init.of(spec))
    inner = spec.inner

    def run() -> float:
        start = timer()
        for _ in range(inner):
            model.step()
        model.sync()
        return (timer() - start) / inner

    return run


def split_case(lib: str, spec: Spec) -> Callable[[], dict[str, float]] | None:
    """A case timing the forward and the backward pass apart over ``spec.inner`` steps."""
    if peers.get(lib) is None or lib not in SPLIT_LIBS:
        return None
    model = make(lib, spec, Init.of(spec))
    inner = spec.inner

    def run() -> dict[str, float]:
        fwd = bwd = 0.0
        for _ in range(inner):
            t0 = timer()
            state = model.forward()
            t1 = timer()
            model.backward(state)
            t2 = timer()
            model.update()
            fwd += t1 - t0
            bwd += t2 - t1
        return {"forward": fwd / inner, "backward": bwd / inner, "ratio": bwd / fwd}

    return run


LABELS = {"jax": "jax (jit)", "numpy": "numpy (by hand, floor)"}
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}  # relative, on the losses of three steps


def run(quick: bool, repeats: int) -> tuple[str, dict[str, Any]]:
    """Every step spec, interleaved; the table in milliseconds per step, and the JSON data."""
    columns: dict[str, dict[str, Outcome]] = {}
    data: dict[str, Any] = {}
    notes = []
    for spec in SPECS:
        log(f"workload 2: MLP step, {spec.name}")
        agreement = check(spec)
        cases = {lib: step_case(lib, spec) for lib in LIBS}
        outcomes = interleave(
            cases,
            repeats=repeats,
            warmup=1 if quick else 2,
            missing=peers.missing(),
            extra_repeats=None if quick else dict.fromkeys(AGAINST_NUMPY, EXTRA_ROUNDS),
            label=spec.name,
            settle=SETTLE if spec.sizes[0] == 784 else 0.0,
        )
        for lib, diff in agreement.items():
            if isinstance(diff, str) or diff > TOLERANCE[spec.dtype]:
                outcomes[lib].error = f"MISMATCH with the NumPy floor: {diff}"
        columns[f"{spec.name} ms"] = outcomes
        data[spec.name] = {
            "spec": {
                "sizes": list(spec.sizes),
                "activation": spec.activation,
                "batch": spec.batch,
                "dtype": spec.dtype,
                "loss": spec.loss,
                "steps_per_sample": spec.inner,
                "lr": LR,
                "matmul_flops": matmul_flops(spec),
            },
            "agreement_max_rel_diff_vs_numpy": agreement,
            "libs": {lib: o.to_json(scale=1e3) for lib, o in outcomes.items()},
            "ratio_chainrule_over": ratios(outcomes),
        }
        shown = ", ".join(
            f"{lib} {v:.0e}" if not isinstance(v, str) else f"{lib} {v}"
            for lib, v in agreement.items()
        )
        notes.append(f"  {spec.name}: {shown}")
    count = f"{repeats} rounds"
    if not quick:
        count += f" ({repeats + EXTRA_ROUNDS} for {', '.join(AGAINST_NUMPY)})"
    title = (
        f"2. MLP training step (forward, loss, backward, SGD): ms per step; medians of {count}, "
        "interleaved, each sample the mean of consecutive steps"
    )
    agreement_text = (
        "Agreement with the NumPy floor (largest relative difference of the losses over three "
        "steps from the same start):\n" + "\n".join(notes)
    )
    return "\n".join([title, side_by_side(columns, 1e3, LABELS), agreement_text]), data
