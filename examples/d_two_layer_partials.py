"""(d) The partials of a two-layer network's loss, by hand and by backprop.

    l = 1/2 || W2 Phi(W1 x + b) - y ||^2,      Phi = tanh (elementwise)

Name the intermediates z = W1 x + b, a = Phi(z), r = W2 a - y (the residual), so l = 1/2 r^T r.
Going backwards:

    dl/dr  = r
    dl/dW2 = r a^T                           (outer product)
    dl/da  = W2^T r
    dl/dz  = delta = (W2^T r) * Phi'(z),     Phi'(z) = 1 - tanh(z)^2
    dl/db  = delta
    dl/dW1 = delta x^T
    dl/dx  = W1^T delta

One backward pass gives all four; we compare each with its closed form in float64.
"""

import numpy as np

import chainrule as cr

d, h, m = 4, 5, 3  # input, hidden and output sizes
rng = np.random.default_rng(0)
x0, b0, y0 = rng.normal(size=d), rng.normal(size=h), rng.normal(size=m)
W1_0, W2_0 = rng.normal(size=(h, d)), rng.normal(size=(m, h))

x = cr.tensor(x0, requires_grad=True)
W1 = cr.tensor(W1_0, requires_grad=True)
W2 = cr.tensor(W2_0, requires_grad=True)
b = cr.tensor(b0, requires_grad=True)

residual = W2 @ cr.tanh(W1 @ x + b) - y0
loss = 0.5 * cr.sum(residual**2)
loss.backward()

# The closed forms, in plain NumPy.
z = W1_0 @ x0 + b0
a = np.tanh(z)
r = W2_0 @ a - y0
delta = (W2_0.T @ r) * (1 - np.tanh(z) ** 2)
closed = {
    "x": W1_0.T @ delta,
    "W1": np.outer(delta, x0),
    "W2": np.outer(r, a),
    "b": delta,
}
machine = {"x": x.grad, "W1": W1.grad, "W2": W2.grad, "b": b.grad}

print(f"loss = {loss.item():.6f}   (closed form {0.5 * r @ r:.6f})")
assert abs(loss.item() - 0.5 * r @ r) < 1e-12
for name, expected in closed.items():
    got = machine[name].numpy()
    err = np.max(np.abs(got - expected))
    print(f"dl/d{name:<3} shape {got.shape!s:<7} max |backprop - closed form| = {err:.2e}")
    print("   backprop:   ", np.array2string(got.ravel()[:5], precision=6))
    print("   closed form:", np.array2string(expected.ravel()[:5], precision=6))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
print("All four partials (x, W1, W2, b) match their closed forms.")
