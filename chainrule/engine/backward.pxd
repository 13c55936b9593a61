# Cython declarations for the compiled build of backward.py (see setup.py): the types of the
# loop's locals. The .py file is the source.
from .tensor cimport Tensor
from .op cimport Op
import cython

cdef class _Delivery:
    cdef public object targets
    cdef public bint accumulate
    cdef public bint create_graph
    cdef public dict captured
    cdef public set handed_out
    cdef public bint nodes_wanted

    @cython.locals(t=Tensor)
    cpdef bint wants(self, object t)

    @cython.locals(t=Tensor)
    cpdef deliver(self, object t, object g)

    @cython.locals(t=Tensor, prev=object)
    cpdef _accumulate(self, object t, object g)


@cython.locals(t=Tensor, out=_Delivery)
cpdef dict _run(Tensor root, object seed, bint retain_graph, bint create_graph, object targets, bint accumulate)

@cython.locals(t=Tensor)
cpdef object _enqueue(Tensor t, list heap, list sources)

@cython.locals(op=Op, seq="long long", a=Tensor, rules=tuple)
cpdef list _chain_rule(Tensor t, object g, bint create_graph, object needed, bint writable=*, object owned=*)

@cython.locals(h=Tensor)
cpdef object _free(Tensor t, dict husks)

@cython.locals(t=Tensor, h=object, data=object, key=object)
cpdef object _husked(object a, dict husks)
