"""Training in 8 threads at once, 50 steps each (STRESS_STEPS), each thread its own model and
data: every thread's parameters after the run are bit-identical to the same run made alone.
Grad mode, the tape and the optimizers' state are per thread or per model; nothing leaks
between them. (The suite runs every transform in 8 threads x 50 rounds: tests/test_vmap.py.)
"""

from __future__ import annotations

import os
import threading

import numpy as np

import chainrule as cr

STEPS = int(os.environ.get("STRESS_STEPS", "50"))
THREADS = 8


def _train(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, 16))
    y = rng.integers(0, 4, 64)
    model = cr.nn.Sequential(
        cr.nn.Linear(16, 32, rng=seed), cr.nn.Tanh(), cr.nn.Linear(32, 4, rng=seed + 1)
    )
    opt = cr.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(STEPS):
        if step % 10 == 5:  # a no-grad evaluation in the middle, as a training loop has
            with cr.no_grad():
                model(cr.tensor(x))
        loss = cr.nn.functional.cross_entropy(model(cr.tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.numpy().copy() for p in model.parameters()]


def test_eight_threads_train_as_each_would_alone() -> None:
    alone = {seed: _train(seed) for seed in range(THREADS)}
    together: dict[int, list[np.ndarray]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def run(seed: int) -> None:
        try:
            start.wait()
            together[seed] = _train(seed)
        except BaseException as err:  # (reported below, not lost in the thread)
            errors.append(err)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for seed in range(THREADS):
        for a, b in zip(alone[seed], together[seed]):
            assert a.tobytes() == b.tobytes(), f"thread {seed}"
