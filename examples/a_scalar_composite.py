"""(a) A scalar composite, differentiated by backprop.

    f(x) = x**2,   g(x) = x,   h(x1, x2) = x1**2 + x2**2,   l(x) = h(f(x), g(x)) = x**4 + x**2

By the chain rule, l'(x) = dh/dx1 * f'(x) + dh/dx2 * g'(x) = 2 x**2 * 2x + 2x * 1 = 4 x**3 + 2 x.
Backprop builds the graph x -> f, g -> h and walks it backwards once; we compare its answer with
the closed form at a few points.
"""

import chainrule as cr


def f(x):
    return x**2


def g(x):
    return x


def h(x1, x2):
    return x1**2 + x2**2


print(f"{'x':>6} {'backprop':>12} {'4x^3 + 2x':>12}")
for value in [-2.0, -0.5, 0.0, 1.0, 1.5, 3.0]:
    x = cr.tensor(value, requires_grad=True)
    loss = h(f(x), g(x))
    loss.backward()
    machine = x.grad.item()
    closed = 4 * value**3 + 2 * value
    print(f"{value:6.2f} {machine:12.6f} {closed:12.6f}")
    assert abs(machine - closed) <= 1e-12 * max(1.0, abs(closed)), (value, machine, closed)

print("l'(x) = 4x^3 + 2x: backprop agrees at every point.")
