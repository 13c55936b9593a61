"""chainrule: backpropagation over computation graphs, NumPy-native.

>>> import chainrule as cr
>>> x = cr.tensor(3.0, requires_grad=True)
>>> y = x ** 4 + x ** 2
>>> y.backward()
>>> float(x.grad)  # 4 x^3 + 2 x
114.0

The packages, lowest first (each imports only those before it): ``backends`` (array
namespaces), ``engine`` (Tensor, apply, backward, modes), ``ops`` (the op sheet),
``transforms`` (grad, jvp, compile, checks), ``nn``, ``optim``, ``data``, ``io``, ``viz``
(graph data and pictures), ``teach`` (explain, cost report), ``cli``.
"""

from __future__ import annotations

from . import data, io, nn, ops, optim
from .engine import (
    AnomalyError,
    Tensor,
    backward,
    detect_anomaly,
    enable_grad,
    gradients,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
    tensor,
)
from .io import CheckpointError, load, load_training, save, save_training
from .ops import *  # noqa: F403  (the op sheet's functions and tensor creation)
from .ops import matrices as linalg
from .ops import random, special
from .teach.costs import cost_report
from .transforms import (
    Context,
    Function,
    GradcheckError,
    checkpoint,
    compile,
    compute,
    elementwise_grad,
    grad,
    gradcheck,
    hessian,
    hvp,
    jacfwd,
    jacobian,
    jacrev,
    jvp,
    numerical_grad,
    numerical_jacobian,
    stop_gradient,
    to,
    tree,
    value_and_grad,
    vjp,
    vmap,
)
from .viz import Graph, Node, graph

clamp = ops.clip
concat = ops.concatenate
permute_dims = ops.transpose
float32 = "float32"
float64 = "float64"

__version__ = "0.1.0"

__all__ = [
    # tensors and the engine
    "Tensor",
    "tensor",
    "backward",
    "gradients",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "detect_anomaly",
    "AnomalyError",
    # backends
    "to",
    "compute",
    # transforms
    "grad",
    "value_and_grad",
    "vjp",
    "jvp",
    "jacobian",
    "hessian",
    "jacfwd",
    "jacrev",
    "elementwise_grad",
    "hvp",
    "vmap",
    "stop_gradient",
    "checkpoint",
    "compile",
    "numerical_grad",
    "numerical_jacobian",
    "gradcheck",
    "GradcheckError",
    "Function",
    "Context",
    # the graph as data, and teaching
    "graph",
    "Graph",
    "Node",
    "cost_report",
    # checkpoints
    "save",
    "load",
    "save_training",
    "load_training",
    "CheckpointError",
    # submodules
    "ops",
    "nn",
    "optim",
    "random",
    "linalg",
    "special",
    "data",
    "io",
    "tree",
    # tensor creation and the op sheet's functions (read from chainrule.ops)
    *ops.creation.__all__,
    *ops.FUNCTION_NAMES,
    "clamp",
    "concat",
    "permute_dims",
    "float32",
    "float64",
]
