# Cython declarations for the compiled build of op.py (see setup.py): Op's slots as C fields,
# and the types of the locals of apply. The .py file is the source.
from .tensor cimport Tensor
import cython

cdef class Op:
    cdef public object name
    cdef public object forward
    cdef public tuple inputs
    cdef public tuple vjps
    cdef public tuple jvps
    cdef public tuple formulas
    cdef public object formula
    cdef public object kink
    cdef public tuple numpy
    cdef public bint differentiable
    cdef public bint second_order
    cdef public object family
    cdef public object description
    cdef public bint variadic
    cdef public object nin
    cdef public tuple param_names
    cdef public object public
    cdef public object doc
    cdef public tuple fast_vjps
    cdef public object vjp_into
    cdef public object save

@cython.locals(out=Tensor, op=Op)
cpdef object apply(object op, tuple args, dict params)
