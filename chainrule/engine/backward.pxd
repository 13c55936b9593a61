# Cython declarations for the compiled build of backward.py (see setup.py): the types of the
# loop's locals. The .py file is the source.
from .tensor cimport Tensor
from .op cimport Op
import cython

@cython.locals(t=Tensor)
cpdef dict _run(Tensor root, object seed, bint retain_graph, bint create_graph, object targets, bint accumulate)

@cython.locals(t=Tensor)
cpdef object _enqueue(Tensor t, list heap, list sources)

@cython.locals(op=Op, seq="long long", a=Tensor)
cpdef list _chain_rule(Tensor t, object g, bint create_graph, object needed, bint writable=*, object owned=*)

@cython.locals(t=Tensor)
cpdef object _free(Tensor t)
