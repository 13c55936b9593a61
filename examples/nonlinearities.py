"""The nonlinearities and their derivatives: backprop against the closed forms.

    sigmoid     s(x) = 1 / (1 + e^-x)        s'(x) = s(x) (1 - s(x))
    ReLU        max(x, 0)                    1 if x > 0 else 0     (chainrule: relu'(0) = 0)
    tanh        tanh(x)                      1 - tanh(x)^2
    leaky ReLU  max(x, a x), a = 0.1         1 if x > 0 else a     (at 0: a)

Because each function is elementwise, one backward pass of sum(phi(x)) over a grid of points
gives phi'(x) at every point at once. The grid includes the kink x = 0.
"""

import numpy as np

import chainrule as cr

ALPHA = 0.1
grid = np.linspace(-4.0, 4.0, 17)  # includes 0.0


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


cases = {
    "sigmoid": (cr.sigmoid, lambda x: sigmoid(x) * (1 - sigmoid(x))),
    "relu": (cr.relu, lambda x: (x > 0).astype(float)),
    "tanh": (cr.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "leaky_relu": (
        lambda t: cr.leaky_relu(t, negative_slope=ALPHA),
        lambda x: np.where(x > 0, 1.0, ALPHA),
    ),
}

print(f"{'x':>6}" + "".join(f" {name + ' bp':>14} {'closed':>8}" for name in cases))
derivs = {}
for name, (phi, closed) in cases.items():
    x = cr.tensor(grid, requires_grad=True)
    cr.sum(phi(x)).backward()
    derivs[name] = (x.grad.numpy(), closed(grid))
for i, value in enumerate(grid):
    print(f"{value:6.2f}" + "".join(f" {bp[i]:14.6f} {cf[i]:8.6f}" for bp, cf in derivs.values()))

for name, (bp, cf) in derivs.items():
    np.testing.assert_allclose(bp, cf, rtol=1e-12, atol=1e-15, err_msg=name)
at_zero = {name: bp[grid == 0.0].item() for name, (bp, _) in derivs.items()}
print("\nat the kink x = 0:", at_zero)
assert at_zero == {"sigmoid": 0.25, "relu": 0.0, "tanh": 1.0, "leaky_relu": ALPHA}
print("All four derivatives match their closed forms on the grid.")
