"""(f) dsink/dnode is the sink's first-order change per unit perturbation at that node.

Take l = 1/2 || W2 tanh(z) - y ||^2 with the intermediate node z = W1 x + b. Backprop computes
dl/dz on the way to the weights; z.retain_grad() asks it to keep that gradient in z.grad.

What the number means: nudge the node, z -> z + eps v, re-run only the part of the graph
after z, and the sink moves by

    l(z + eps v) - l(z) = eps <dl/dz, v> + O(eps^2)

so the first-order prediction eps <dl/dz, v> is off by O(eps^2) (halving eps quarters the
error), and a central difference in the direction e_j recovers the entry dl/dz_j.
"""

import numpy as np

import chainrule as cr

rng = np.random.default_rng(1)
x, b, y = rng.normal(size=4), rng.normal(size=5), rng.normal(size=3)
W1, W2 = rng.normal(size=(5, 4)), rng.normal(size=(3, 5))


def after_z(z):
    """The rest of the graph: from the node z to the sink l."""
    r = W2 @ cr.tanh(z) - y
    return 0.5 * cr.sum(r * r)


z = cr.tensor(W1, requires_grad=True) @ x + b  # an intermediate node, not a leaf
z.retain_grad()
sink = after_z(z)
sink.backward()
dl_dz = z.grad.numpy()
z0, l0 = z.numpy(), sink.item()

print("dl/dz from backprop:      ", np.array2string(dl_dz, precision=6))
eps = 1e-6
central = np.array(
    [(after_z(z0 + eps * e) - after_z(z0 - eps * e)) / (2 * eps) for e in np.eye(z0.size)]
)
print("central differences at z: ", np.array2string(central, precision=6))
np.testing.assert_allclose(dl_dz, central, rtol=1e-6, atol=1e-8)

v = rng.normal(size=z0.size)  # a direction to perturb the node in
print(f"\n{'eps':>8} {'actual change':>15} {'eps <dl/dz, v>':>15} {'error':>9} {'err/eps^2':>9}")
errors = []
for eps in [1e-1, 5e-2, 2.5e-2, 1.25e-2]:
    actual = float(after_z(z0 + eps * v)) - l0
    predicted = eps * dl_dz @ v
    error = abs(actual - predicted)
    errors.append(error)
    print(f"{eps:8.4f} {actual:15.8f} {predicted:15.8f} {error:9.2e} {error / eps**2:9.4f}")

# Second-order error: halving eps divides the error by about 4.
for big, small in zip(errors, errors[1:]):
    assert 3.0 < big / small < 5.0, (big, small)
print("\ndl/dz is the sink's change per unit change of z, to first order.")
