"""chainrule's peer benchmark suite: ``make bench`` runs ``benchmarks/run.py``.

Each workload lives in its own module (``overhead``, ``mlp``, ``deep``, ``cost``, ``blas``);
``harness`` times cases side by side, ``peers`` imports the libraries compared.
"""
