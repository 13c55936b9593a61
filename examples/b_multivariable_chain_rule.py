"""(b) The multivariable chain rule: fan-out from one source, fan-in at f.

One source w feeds n functions g_1(w), ..., g_n(w) (fan-out), and f combines them (fan-in):

    d/dw f(g_1(w), ..., g_n(w)) = sum_i  df/dx_i * dg_i/dw

Here g_i(w) = sin(i w) and f(x_1, ..., x_n) = sum_i x_i**2, so the closed form is

    df/dw = sum_i 2 sin(i w) * i cos(i w)

Reverse mode (backward) starts at f and *sums* the contributions arriving at w over the n paths.
Forward mode (cr.jvp) starts at w with tangent dw = 1 and pushes it forward through every g_i;
f adds the tangents it receives. Both give the same number.
"""

import math

import chainrule as cr

n = 5
w0 = 0.7


def f_of_w(w):
    gs = [cr.sin(i * w) for i in range(1, n + 1)]  # fan-out: w is used n times
    return sum(gi**2 for gi in gs)  # fan-in: f uses every g_i


closed = sum(2 * math.sin(i * w0) * i * math.cos(i * w0) for i in range(1, n + 1))

# Reverse mode: one backward pass; w's gradient is the sum over the n incoming paths.
w = cr.tensor(w0, requires_grad=True, name="w")
out = f_of_w(w)
graph = cr.graph(out)  # look at the graph before backward() frees it
out.backward()
reverse = w.grad.item()

# The same sum, path by path: each path's contribution is df/dx_i * dg_i/dw.
paths = [2 * math.sin(i * w0) * i * math.cos(i * w0) for i in range(1, n + 1)]

# Forward mode: push the tangent dw = 1 forward through the graph.
_, forward = cr.jvp(f_of_w, (w0,), (1.0,))
forward = float(forward)

uses_of_w = sum(1 for parent, _ in graph.edges if parent.name == "w")
print(f"w feeds {uses_of_w} nodes (fan-out); f is reached along {n} paths")
for i, p in enumerate(paths, start=1):
    print(f"  path through g_{i}: df/dx_{i} * dg_{i}/dw = {p:+.6f}")
print(f"sum over paths (closed form) = {closed:+.12f}")
print(f"reverse mode (backward)      = {reverse:+.12f}")
print(f"forward mode (cr.jvp)        = {forward:+.12f}")

assert uses_of_w == n
assert abs(sum(paths) - closed) < 1e-12
assert abs(reverse - closed) < 1e-12, (reverse, closed)
assert abs(forward - closed) < 1e-12, (forward, closed)
print("Reverse and forward mode agree with the sum over paths.")
