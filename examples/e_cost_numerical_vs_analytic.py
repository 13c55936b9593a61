"""(e) What a gradient costs: central differences against one backward pass.

For l(W1) = 1/2 || W2 tanh(W1 x + b) - y ||^2 with W1 of size d x d, central differences

    dl/dW1_jk ~ (l(W1 + eps E_jk) - l(W1 - eps E_jk)) / (2 eps)

need two evaluations of l per entry: 2 d^2 forward passes, O(d^2) of them. Backprop needs one
forward pass (recording the graph) and one backward pass, which costs a small constant times
the forward pass, for all d^2 entries at once.

We count the evaluations of l, and time both ways with time.perf_counter for a few d
(best of a few runs; "fwd" is one recorded forward pass, "f+b" forward plus backward).
"""

import time

import numpy as np

import chainrule as cr

calls = 0


def loss(W1, W2, x, b, y):
    """The two-layer loss; works on Tensors (recorded) and on plain arrays alike."""
    global calls
    calls += 1
    r = W2 @ cr.tanh(W1 @ x + b) - y
    return 0.5 * cr.sum(r * r)


def best_time(fn, repeat):
    """The fastest of `repeat` runs of fn(), in seconds (the least disturbed measurement)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


print(
    f"{'d':>3} {'evals: numerical':>16} {'2 d^2':>6} {'backprop':>8}"
    f" {'numerical (s)':>13} {'fwd+bwd (s)':>11} {'fwd (s)':>9} {'num/(f+b)':>9} {'(f+b)/f':>7}"
)
for d in [4, 8, 16, 32, 64]:
    rng = np.random.default_rng(d)
    W1, W2 = rng.normal(size=(d, d)) / np.sqrt(d), rng.normal(size=(d, d)) / np.sqrt(d)
    x, b, y = rng.normal(size=d), rng.normal(size=d), rng.normal(size=d)

    def numerical():
        return cr.numerical_grad(loss, W1, W2, x, b, y, argnums=0)

    def analytic():
        W = cr.tensor(W1, requires_grad=True)
        loss(W, W2, x, b, y).backward()
        return W.grad.numpy()

    calls = 0
    numeric_grad = numerical()
    numeric_calls = calls
    calls = 0
    backprop_grad = analytic()
    backprop_calls = calls

    t_num = best_time(numerical, repeat=1)
    t_bp = best_time(analytic, repeat=5)
    # one forward pass on the same Tensors, recorded but not backpropagated
    t_fwd = best_time(lambda: loss(cr.tensor(W1, requires_grad=True), W2, x, b, y), 5)
    print(
        f"{d:3d} {numeric_calls:16d} {2 * d * d:6d} {backprop_calls:8d}"
        f" {t_num:13.6f} {t_bp:11.6f} {t_fwd:9.6f} {t_num / t_bp:9.1f} {t_bp / t_fwd:7.1f}"
    )

    assert numeric_calls == 2 * d * d, numeric_calls
    assert backprop_calls == 1, backprop_calls
    np.testing.assert_allclose(backprop_grad, numeric_grad, rtol=1e-5, atol=1e-7)

assert t_num > t_bp, "at d = 64, 8192 forward passes should take longer than one forward+backward"
print("Both give the same gradient; the numerical one costs 2 d^2 forward passes.")
