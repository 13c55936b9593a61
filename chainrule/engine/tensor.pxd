# Cython declarations for the compiled build of tensor.py (see setup.py): Tensor's slots as C
# fields, read and written directly by the compiled engine. The .py file is the source.
import cython
from .tensor_methods cimport TensorMethods

cdef class Tensor(TensorMethods):
    cdef public bint _rg
    cdef public object _grad
    cdef public long long _version
    cdef public object _name
    cdef object __weakref__
    cdef public object _op
    cdef public object _a
    cdef public object _b
    cdef public object _params
    cdef public long long _seq
    cdef public object _where
    cdef public object _scope


# backward() makes one husk per freed node: its slots set as C fields
@cython.locals(h=Tensor)
cpdef object husk(Tensor t)
