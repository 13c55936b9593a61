"""chainrule: backpropagation over computation graphs, NumPy-native.

>>> import chainrule as cr
>>> x = cr.tensor(3.0, requires_grad=True)
>>> y = x ** 4 + x ** 2
>>> y.backward()
>>> float(x.grad)  # 4 x^3 + 2 x
114.0
"""

from __future__ import annotations

from . import ops, random
from ._interop import install as _install_interop
from .check import GradcheckError, gradcheck, numerical_grad, numerical_jacobian
from .creation import (
    arange,
    empty,
    eye,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    zeros,
    zeros_like,
)
from .function import Context, Function
from .graph import (
    Graph,
    backward,
    detect_anomaly,
    enable_grad,
    gradients,
    graph,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from .ops import (
    abs,
    add,
    all,
    any,
    argmax,
    argmin,
    astype,
    broadcast_to,
    clip,
    concatenate,
    cos,
    divide,
    dot,
    einsum,
    equal,
    erf,
    exp,
    expand_dims,
    expm1,
    flip,
    gelu,
    greater,
    greater_equal,
    inner,
    isfinite,
    isnan,
    leaky_relu,
    less,
    less_equal,
    log,
    log1p,
    log_softmax,
    logical_and,
    logical_not,
    logical_or,
    logsumexp,
    matmul,
    matrix_transpose,
    max,
    maximum,
    mean,
    min,
    minimum,
    multiply,
    negative,
    not_equal,
    outer,
    pad,
    permute,
    power,
    relu,
    reshape,
    sigmoid,
    sign,
    sin,
    softmax,
    softplus,
    sqrt,
    squeeze,
    stack,
    std,
    subtract,
    sum,
    tan,
    tanh,
    transpose,
    var,
    where,
)
from .tensor import AnomalyError, Tensor, tensor
from .transforms import grad, hessian, jacobian, jvp, value_and_grad, vjp

_install_interop(Tensor)

clamp = clip
concat = concatenate
permute_dims = transpose
float32 = "float32"
float64 = "float64"

__version__ = "0.1.0"

__all__ = [
    "Tensor", "tensor", "AnomalyError", "Graph", "graph", "backward", "gradients",
    "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "detect_anomaly",
    "grad", "value_and_grad", "vjp", "jvp", "jacobian", "hessian",
    "numerical_grad", "numerical_jacobian", "gradcheck", "GradcheckError",
    "Function", "Context", "ops", "random",
    "zeros", "ones", "full", "empty", "arange", "linspace", "eye",
    "zeros_like", "ones_like", "full_like",
    "abs", "add", "all", "any", "argmax", "argmin", "astype", "broadcast_to", "clip", "clamp", "concatenate",
    "concat", "cos", "divide", "dot", "einsum", "equal", "erf", "exp", "expand_dims", "expm1",
    "flip", "gelu", "greater", "greater_equal", "inner", "isfinite", "isnan", "leaky_relu",
    "less", "less_equal", "log", "log1p", "log_softmax", "logical_and", "logical_not",
    "logical_or", "logsumexp", "matmul", "matrix_transpose", "max", "maximum", "mean", "min",
    "minimum", "multiply", "negative", "not_equal", "outer", "pad", "permute", "permute_dims",
    "power", "relu", "reshape", "sigmoid", "sign", "sin", "softmax", "softplus", "sqrt",
    "squeeze", "stack", "std", "subtract", "sum", "tan", "tanh", "transpose", "var", "where",
    "float32", "float64",
]
