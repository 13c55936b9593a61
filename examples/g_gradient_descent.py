"""(g) Gradient descent on f(W, x, y) with backprop supplying df/dW.

With f(W, x, y) = y - sum_i phi(w_i^T x + b_i) as in (c), fit W so that f is 0 on a small set
of examples (x_k, y_k): minimise the mean of the squared f,

    L(W) = 1/K sum_k f(W, x_k, y_k)^2,      W <- W - lr * dL/dW

Backprop is the subroutine: each step runs the forward pass, calls backward() for dL/dW,
then updates W in place inside cr.no_grad() (the update itself must not be recorded) and
clears W.grad (gradients accumulate otherwise).
"""

import numpy as np

import chainrule as cr

n, d, K = 4, 3, 32
rng = np.random.default_rng(0)
X = rng.normal(size=(K, d))  # K examples x_k as rows
W_true, b = rng.normal(size=(n, d)), rng.normal(size=n)
Y = np.sum(np.tanh(X @ W_true.T + b), axis=1)  # targets a W can reach exactly

W = cr.random.default_rng(1).normal(size=(n, d), requires_grad=True)
lr = 0.05


def loss_fn(W):
    f = Y - cr.sum(cr.tanh(X @ W.T + b), axis=1)  # f(W, x_k, y_k) for every k at once
    return cr.mean(f**2)


losses = []
for step in range(201):
    loss = loss_fn(W)
    loss.backward()  # fills W.grad = dL/dW
    losses.append(loss.item())
    if step % 25 == 0:
        grad_norm = np.linalg.norm(W.grad.numpy())
        print(f"step {step:3d}  loss {losses[-1]:.6f}  |dL/dW| {grad_norm:.4f}")
    with cr.no_grad():
        W -= lr * W.grad
    W.grad = None

print(f"loss: {losses[0]:.4f} -> {losses[-1]:.6f}")
assert losses[-1] < 0.05 * losses[0], "gradient descent should reduce the loss a lot"
assert all(new < old for old, new in zip(losses, losses[1:])), "the loss went up at some step"
print("The loss goes down at every step.")
