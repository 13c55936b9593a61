"""(c) The graph of f(W, x, y) = y - sum_i phi(w_i^T x + b_i).

W is n x d (row i is w_i), x has d entries, b has n, y is a scalar, phi = tanh. The sources are
the inputs W, x, b, y; the sink is f. In between: one matmul computes every w_i^T x at once,
then add b, apply phi, sum, and subtract from y.

cr.graph(f) returns that graph as data: .sources, .sink, .nodes (topological order: every node
after its parents), .edges (parent, child) and .to_dot() for Graphviz
(`dot -Tpng graph.dot -o graph.png` draws it).
"""

import chainrule as cr

n, d = 3, 4
rng = cr.random.default_rng(0)
W = rng.normal(size=(n, d), requires_grad=True)
x = rng.normal(size=(d,), requires_grad=True)
b = rng.normal(size=(n,), requires_grad=True)
y = cr.tensor(1.0, requires_grad=True)
W.name, x.name, b.name, y.name = "W", "x", "b", "y"

z = W @ x + b  # z_i = w_i^T x + b_i
z.name = "z"
f = y - cr.sum(cr.tanh(z))
f.name = "f"

graph = cr.graph(f)
print(graph)
print("sources:", [s.name for s in graph.sources])
print("sink:   ", graph.sink.name)
print("nodes (topological order):")
for node in graph.nodes:
    kind = "source" if node.is_source else node.op
    parents = ", ".join(p.name for p in node.parents) or "-"
    print(f"  {node.index}: {node.name:<8} {kind:<8} shape={node.shape!s:<7} parents: {parents}")
print("edges:", [(p.name, c.name) for p, c in graph.edges])
print()
print(graph.to_dot())

names = [node.name for node in graph.nodes]
assert {s.name for s in graph.sources} == {"W", "x", "b", "y"}
assert graph.sink.name == "f" and graph.sink.tensor is f
assert all(p.index < c.index for p, c in graph.edges)  # parents come first
ops = [node.op for node in graph.nodes if not node.is_source]
assert ops == ["matmul", "add", "tanh", "sum", "subtract"], ops
assert graph.to_dot().startswith("digraph") and "->" in graph.to_dot()
print("\nSources W, x, b, y; sink f; every edge points forward in the order.")
