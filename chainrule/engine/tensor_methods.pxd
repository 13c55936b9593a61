# Cython declarations for the compiled build of tensor_methods.py (see setup.py): the mixin
# becomes an extension type, so that Tensor, which derives from it, can be one too; Tensor's
# array is declared here, where the methods read it.
cdef class TensorMethods:
    cdef public object _data
