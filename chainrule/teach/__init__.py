"""Teaching: :mod:`.explain` (the chain rule step by step, on an expression, with
:mod:`.expression` parsing it safely) and :mod:`.costs` (numerical against analytic gradients,
counted and timed)."""
