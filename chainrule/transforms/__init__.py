"""Functional transforms: grad, value_and_grad, vjp, jvp, jacobian, hessian, vmap; cr.compile;
numerical checks; custom Functions."""

from __future__ import annotations

from . import tree
from .backend import compute, to
from .check import GradcheckError, gradcheck, numerical_grad, numerical_jacobian
from .checkpoint import checkpoint
from .compile import CompiledFunction, compile
from .derivatives import (
    elementwise_grad,
    grad,
    hessian,
    hvp,
    jacfwd,
    jacobian,
    jacrev,
    jvp,
    stop_gradient,
    value_and_grad,
    vjp,
)
from .function import Context, Function
from .vmap import vmap

__all__ = [
    "to",
    "compute",
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
    "CompiledFunction",
    "numerical_grad",
    "numerical_jacobian",
    "gradcheck",
    "GradcheckError",
    "Function",
    "Context",
    "tree",
]
