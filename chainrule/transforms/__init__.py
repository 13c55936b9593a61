"""Functional transforms: grad, value_and_grad, vjp, jvp, jacobian, hessian; cr.compile;
numerical checks; custom Functions."""

from __future__ import annotations

from . import tree
from .check import GradcheckError, gradcheck, numerical_grad, numerical_jacobian
from .compile import CompiledFunction, compile
from .derivatives import grad, hessian, jacobian, jvp, value_and_grad, vjp
from .function import Context, Function

__all__ = [
    "grad",
    "value_and_grad",
    "vjp",
    "jvp",
    "jacobian",
    "hessian",
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
