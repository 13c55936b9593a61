/* chainrule._native: the recording step and the backward loop, in C; and the optimizers'
 * updates in one pass (sgd_update, adam_update, at the end of this file).
 *
 * This module is an accelerator, not a second implementation. It runs exactly the algorithm of
 * the pure-Python reference, chainrule/_record.py (apply) and chainrule/graph.py (_run), on
 * the same Tensor objects and the same op table, and calls the same Python rules in the same
 * order (or, where an op declares one, the in-place form of a rule, vjp_into, on a gradient it
 * alone holds), so its gradients are bit for bit those of the reference (the tests run both).
 * What it removes is the interpreter's bookkeeping around each node: attribute look-ups, tuple
 * building, the heap of tuples and the dict of pending gradients.
 *
 * Only the common cases come here. Python keeps everything else and every error message: when
 * something is off (anomaly mode, tracing, forward mode, create_graph, a traced backward, an
 * op of more than eight inputs in apply), the Python side runs instead, and when an error must
 * be raised, C calls a Python function that builds it.
 *
 * The node lives in the Tensor's __slots__ (see chainrule/tensor.py); configure() reads each
 * slot's offset from its member descriptor, so C reads and writes the same memory Python does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <float.h>
#include <math.h>
#include <string.h>

#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

/* ------------------------------------------------------------------------------------------ */
/* What configure() hands over from Python                                                     */

static PyTypeObject *Tensor = NULL;
static PyObject *ONE, *MANY, *FREED, *NOT_IMPLEMENTED, *NO_PARAMS;
static PyObject *namespaces;      /* dict: array type -> namespace */
static PyObject *namespace_fn;    /* chainrule.backend.namespace */
static PyObject *flags;           /* chainrule._state.flags */
static PyObject *local;           /* chainrule._state.local (a threading.local) */
static PyObject *next_seq;        /* chainrule._state.next_seq */
static PyObject *apply_py;        /* the Python apply: every case not handled here */
static PyObject *forward_error;   /* (op, raw, params, err) -> raises the explained error */
static PyObject *errors;          /* (kind, *details) -> the exception to raise */
static PyObject *fit_to;          /* (c, a, op) -> c summed over broadcast axes and cast */
static PyObject *zeros_for;       /* (a) -> zeros like a.data */
static PyObject *ZERO;            /* the int 0 */
static PyObject *add_reduce;      /* np.add.reduce */
static PyObject *s_forward, *s_save, *s_saved, *s_vjps, *s_differentiable, *s_variadic, *s_special,
    *s_grad_enabled, *s_scope, *s_shape, *s_dtype, *s_freed, *s_modified, *s_no_rule, *s_vjp_into,
    *s_reshape;

/* slot offsets in a Tensor */
static Py_ssize_t o_data, o_rg, o_grad, o_version, o_op, o_a, o_b, o_params, o_seq, o_scope;
/* the op table's class (chainrule/ops/_registry.py, Op) and the offsets of the slots read here */
static PyTypeObject *Op;
static Py_ssize_t p_forward, p_save, p_vjps, p_differentiable, p_variadic, p_vjp_into;

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))
#define IS_TENSOR(obj) PyObject_TypeCheck((obj), Tensor)

static int
offset_of(PyObject *type, const char *name, Py_ssize_t *out)
{
    PyObject *descr = PyObject_GetAttrString(type, name);
    if (descr == NULL)
        return -1;
    if (!Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyErr_Format(PyExc_TypeError, "chainrule._native: %s.%s is not a slot",
                     ((PyTypeObject *)type)->tp_name, name);
        Py_DECREF(descr);
        return -1;
    }
    PyMemberDef *m = ((PyMemberDescrObject *)descr)->d_member;
    if (m->type != T_OBJECT_EX) {
        PyErr_Format(PyExc_TypeError, "chainrule._native: %s.%s is not an object slot",
                     ((PyTypeObject *)type)->tp_name, name);
        Py_DECREF(descr);
        return -1;
    }
    *out = m->offset;
    Py_DECREF(descr);
    return 0;
}

static PyObject *
configure(PyObject *self, PyObject *args)
{
    PyObject *tensor_type, *op_type;
    if (!PyArg_ParseTuple(args, "O!OOOOO!O!OOOOOOOOOO!", &PyType_Type, &tensor_type, &ONE, &MANY,
                          &FREED, &NOT_IMPLEMENTED, &PyDict_Type, &NO_PARAMS, &PyDict_Type,
                          &namespaces, &namespace_fn, &flags, &local, &next_seq, &apply_py,
                          &forward_error, &errors, &fit_to, &zeros_for, &PyType_Type, &op_type))
        return NULL;
    PyObject *held[] = {tensor_type, ONE, MANY, FREED, NOT_IMPLEMENTED, NO_PARAMS, namespaces,
                        namespace_fn, flags, local, next_seq, apply_py, forward_error, errors,
                        fit_to, zeros_for, op_type};
    for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++)
        Py_INCREF(held[i]); /* kept for the life of the process */
    Tensor = (PyTypeObject *)tensor_type;
    if (offset_of(tensor_type, "data", &o_data) < 0 || offset_of(tensor_type, "_rg", &o_rg) < 0 ||
        offset_of(tensor_type, "_grad", &o_grad) < 0 ||
        offset_of(tensor_type, "_version", &o_version) < 0 ||
        offset_of(tensor_type, "_op", &o_op) < 0 || offset_of(tensor_type, "_a", &o_a) < 0 ||
        offset_of(tensor_type, "_b", &o_b) < 0 || offset_of(tensor_type, "_params", &o_params) < 0 ||
        offset_of(tensor_type, "_seq", &o_seq) < 0 || offset_of(tensor_type, "_scope", &o_scope) < 0)
        return NULL;
    if (offset_of(op_type, "forward", &p_forward) < 0 || offset_of(op_type, "save", &p_save) < 0 ||
        offset_of(op_type, "vjps", &p_vjps) < 0 ||
        offset_of(op_type, "differentiable", &p_differentiable) < 0 ||
        offset_of(op_type, "variadic", &p_variadic) < 0 ||
        offset_of(op_type, "vjp_into", &p_vjp_into) < 0)
        return NULL;
    Op = (PyTypeObject *)op_type;
    Py_RETURN_NONE;
}

static PyObject *
not_configured(void)
{
    PyErr_SetString(PyExc_RuntimeError,
                    "chainrule._native is used through chainrule._accel, which configures it");
    return NULL;
}

/* op.<name>, a new reference: read from its slot when op is exactly an Op (a look-up by name
 * costs about 150 instructions, several times per op), else by name, as Python would (an op
 * of another class, a slot never set). */
static PyObject *
op_attr(PyObject *op, Py_ssize_t off, PyObject *name)
{
    if (Py_IS_TYPE(op, Op)) {
        PyObject *v = SLOT(op, off);
        if (v != NULL) {
            Py_INCREF(v);
            return v;
        }
    }
    return PyObject_GetAttr(op, name);
}

/* bool(op.<name>): 1, 0, or -1 on error */
static int
op_true(PyObject *op, Py_ssize_t off, PyObject *name)
{
    PyObject *v = op_attr(op, off, name);
    if (v == NULL)
        return -1;
    int r = PyObject_IsTrue(v);
    Py_DECREF(v);
    return r;
}

/* Read a slot that Python would read: NULL (never set) raises AttributeError as Python does. */
static PyObject *
get_slot(PyObject *t, Py_ssize_t off, const char *name)
{
    PyObject *v = SLOT(t, off);
    if (v == NULL)
        PyErr_Format(PyExc_AttributeError, "'Tensor' object has no attribute '%s'", name);
    return v; /* borrowed */
}

/* obj.name as a truth value: 1 or 0, or -1 on error. */
static int
attr_true(PyObject *obj, PyObject *name)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return -1;
    int r = PyObject_IsTrue(v);
    Py_DECREF(v);
    return r;
}

static inline void
set_slot(PyObject *t, Py_ssize_t off, PyObject *v)
{
    PyObject *old = SLOT(t, off);
    Py_INCREF(v);
    SLOT(t, off) = v;
    Py_XDECREF(old);
}

/* ------------------------------------------------------------------------------------------ */
/* apply: the recording step (chainrule/_record.py, apply)                                     */

#define MAX_APPLY 8 /* ops of more inputs (a stack of many tensors) take the Python path */

static PyObject *
apply(PyObject *self, PyObject *const *argv, Py_ssize_t argc)
{
    if (Tensor == NULL)
        return not_configured();
    if (argc != 3 || !PyTuple_Check(argv[1]) || !PyDict_Check(argv[2])) {
        PyErr_SetString(PyExc_TypeError, "apply(op, args: tuple, params: dict)");
        return NULL;
    }
    PyObject *op = argv[0], *args = argv[1], *params = argv[2];
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n < 1 || n > MAX_APPLY || (n == 1 && !IS_TENSOR(PyTuple_GET_ITEM(args, 0))))
        return PyObject_Vectorcall(apply_py, argv, 3, NULL);
    int is_special = attr_true(flags, s_special);
    if (is_special < 0)
        return NULL;
    if (is_special)
        return PyObject_Vectorcall(apply_py, argv, 3, NULL);

    /* the forward's arguments: the namespace, then each input's raw value (owned) */
    PyObject *fargs[MAX_APPLY + 1];
    PyObject **raw = fargs + 1;
    Py_ssize_t n_raw = 0;
    PyObject *data = NULL, *xp = NULL;
    int rg = 0;
    for (; n_raw < n; n_raw++) {
        PyObject *v = PyTuple_GET_ITEM(args, n_raw);
        if (IS_TENSOR(v)) {
            if (!rg) { /* whether any input requires grad, as Python's `rg or v._rg` */
                PyObject *r = get_slot(v, o_rg, "_rg");
                if (r == NULL || (rg = PyObject_IsTrue(r)) < 0)
                    goto fail;
            }
            if ((v = get_slot(v, o_data, "data")) == NULL)
                goto fail;
        }
        Py_INCREF(v);
        raw[n_raw] = v;
    }
    xp = PyDict_GetItemWithError(namespaces, (PyObject *)Py_TYPE(raw[0])); /* borrowed */
    if (xp != NULL)
        Py_INCREF(xp);
    else if (PyErr_Occurred() || (xp = PyObject_Vectorcall(namespace_fn, raw, n, NULL)) == NULL)
        goto fail;
    fargs[0] = xp;
    /* whether the result records a node, decided before the forward: an op with a save()
     * is then called through it, and its node keeps the value save() returns (op contract) */
    int record = 0;
    if (rg) {
        record = op_true(op, p_differentiable, s_differentiable);
        if (record > 0)
            record = attr_true(local, s_grad_enabled);
        if (record < 0)
            goto fail;
    }
    PyObject *forward = NULL;
    if (record) {
        if ((forward = op_attr(op, p_save, s_save)) == NULL)
            goto fail;
        if (forward == Py_None)
            Py_CLEAR(forward);
    }
    int saving = forward != NULL;
    if (!saving && (forward = op_attr(op, p_forward, s_forward)) == NULL)
        goto fail;
    data = PyObject_VectorcallDict(forward, fargs, n + 1, PyDict_GET_SIZE(params) ? params : NULL);
    Py_DECREF(forward);
    if (data == NULL) {
        if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_TypeError) ||
            PyErr_ExceptionMatches(PyExc_IndexError)) {
            /* explained by the Python code, as `raise _forward_error(...) from err` */
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyErr_NormalizeException(&type, &value, &tb);
            if (tb != NULL)
                PyException_SetTraceback(value, tb);
            PyObject *values = PyTuple_New(n);
            if (values != NULL) {
                for (Py_ssize_t i = 0; i < n; i++) {
                    Py_INCREF(raw[i]);
                    PyTuple_SET_ITEM(values, i, raw[i]);
                }
                PyObject *fe[4] = {op, values, params, value};
                Py_XDECREF(PyObject_Vectorcall(forward_error, fe, 4, NULL)); /* raises */
                Py_DECREF(values);
            }
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_RuntimeError, "chainrule: the forward failed");
        }
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        Py_DECREF(raw[i]);
    Py_DECREF(xp);

    PyObject *node_params = params; /* borrowed, or (saving) owned */
    if (saving) { /* (out, saved): the node's parameters are params and saved=saved */
        if (!PyTuple_Check(data) || PyTuple_GET_SIZE(data) != 2) {
            PyErr_Format(PyExc_TypeError, "%R: save() must return a pair (out, saved)", op);
            Py_DECREF(data);
            return NULL;
        }
        PyObject *pair = data;
        data = PyTuple_GET_ITEM(pair, 0);
        Py_INCREF(data);
        node_params = PyDict_Copy(params);
        if (node_params == NULL ||
            PyDict_SetItem(node_params, s_saved, PyTuple_GET_ITEM(pair, 1)) < 0) {
            Py_XDECREF(node_params);
            Py_DECREF(pair);
            Py_DECREF(data);
            return NULL;
        }
        Py_DECREF(pair);
    }

    PyObject *out = Tensor->tp_alloc(Tensor, 0);
    if (out == NULL) {
        Py_DECREF(data);
        if (saving)
            Py_DECREF(node_params);
        return NULL;
    }
    SLOT(out, o_data) = data; /* the new reference moves into the slot */
    set_slot(out, o_grad, Py_None);
    set_slot(out, o_version, ZERO);

    if (record) {
        PyObject *seq = PyObject_CallNoArgs(next_seq);
        if (seq == NULL)
            goto fail_out;
        PyObject *scope = PyObject_GetAttr(local, s_scope);
        if (scope == NULL) {
            Py_DECREF(seq);
            goto fail_out;
        }
        set_slot(out, o_rg, Py_True);
        set_slot(out, o_op, op);
        /* the inputs, as tensor.py lays them out: one (b is ONE), two, or a tuple (MANY) */
        if (n == 1) {
            set_slot(out, o_a, PyTuple_GET_ITEM(args, 0));
            set_slot(out, o_b, ONE);
        }
        else if (n == 2) {
            set_slot(out, o_a, PyTuple_GET_ITEM(args, 0));
            set_slot(out, o_b, PyTuple_GET_ITEM(args, 1));
        }
        else {
            set_slot(out, o_a, args);
            set_slot(out, o_b, MANY);
        }
        set_slot(out, o_params, PyDict_GET_SIZE(node_params) ? node_params : NO_PARAMS);
        SLOT(out, o_seq) = seq;
        SLOT(out, o_scope) = scope;
    }
    else {
        set_slot(out, o_rg, Py_False);
        set_slot(out, o_op, Py_None);
    }
    if (saving)
        Py_DECREF(node_params);
    return out;

fail_out:
    if (saving)
        Py_DECREF(node_params);
    Py_DECREF(out);
    return NULL;
fail:
    for (Py_ssize_t i = 0; i < n_raw; i++)
        Py_DECREF(raw[i]);
    Py_XDECREF(xp);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* run: the backward loop (chainrule/graph.py, _run, its plain case)                           */

/* Pending gradients, by node: an open-addressing table keyed by the Tensor's address, holding a
 * strong reference to the Tensor and to its gradient so far. */
typedef struct {
    PyObject *t;
    PyObject *g;
} Slot;

typedef struct {
    Slot *slots;
    size_t cap; /* a power of two */
    size_t used;
} Table;

static inline size_t
hash_ptr(PyObject *p, size_t mask)
{
    uint64_t h = (uint64_t)(uintptr_t)p >> 4;
    h *= 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> 20) & mask;
}

static int
table_init(Table *T, size_t cap)
{
    T->cap = cap;
    T->used = 0;
    T->slots = PyMem_Calloc(cap, sizeof(Slot));
    if (T->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void
table_clear(Table *T)
{
    if (T->slots == NULL)
        return;
    for (size_t i = 0; i < T->cap; i++) {
        Py_XDECREF(T->slots[i].t);
        Py_XDECREF(T->slots[i].g);
    }
    PyMem_Free(T->slots);
    T->slots = NULL;
}

static size_t
table_find(Table *T, PyObject *t)
{
    size_t mask = T->cap - 1;
    size_t i = hash_ptr(t, mask);
    while (T->slots[i].t != NULL && T->slots[i].t != t)
        i = (i + 1) & mask;
    return i; /* where t is, or the empty slot where it would go */
}

static int
table_grow(Table *T)
{
    Slot *old = T->slots;
    size_t oldcap = T->cap;
    if (table_init(T, oldcap * 2) < 0) {
        T->slots = old;
        T->cap = oldcap;
        return -1;
    }
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].t != NULL) {
            size_t j = table_find(T, old[i].t);
            T->slots[j] = old[i];
            T->used++;
        }
    }
    PyMem_Free(old);
    return 0;
}

/* Remove slot i (linear probing with backward shift, so no tombstones are left). */
static void
table_remove(Table *T, size_t i)
{
    size_t mask = T->cap - 1;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (T->slots[j].t == NULL)
            break;
        size_t k = hash_ptr(T->slots[j].t, mask);
        int stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (stays)
            continue;
        T->slots[i] = T->slots[j];
        i = j;
    }
    T->slots[i].t = NULL;
    T->slots[i].g = NULL;
    T->used--;
}

/* The heap of nodes waiting for their turn: largest sequence number first. The table holds
 * the references; the heap borrows them. */
typedef struct {
    long long seq;
    PyObject *t;
} Item;

typedef struct {
    Item *items;
    size_t n, cap;
} Heap;

static int
heap_push(Heap *H, long long seq, PyObject *t)
{
    if (H->n == H->cap) {
        size_t cap = H->cap ? H->cap * 2 : 64;
        Item *items = PyMem_Realloc(H->items, cap * sizeof(Item));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        H->items = items;
        H->cap = cap;
    }
    size_t i = H->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (H->items[parent].seq >= seq)
            break;
        H->items[i] = H->items[parent];
        i = parent;
    }
    H->items[i].seq = seq;
    H->items[i].t = t;
    return 0;
}

static PyObject *
heap_pop(Heap *H)
{
    PyObject *top = H->items[0].t;
    Item last = H->items[--H->n];
    size_t i = 0, n = H->n;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && H->items[child + 1].seq > H->items[child].seq)
            child++;
        if (H->items[child].seq <= last.seq)
            break;
        H->items[i] = H->items[child];
        i = child;
    }
    if (n > 0)
        H->items[i] = last;
    return top;
}

static int
as_seq(PyObject *v, long long *out)
{
    *out = PyLong_AsLongLong(v);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* Raise the error errors(kind, *details) builds. Always returns -1. */
static int
raise_error(PyObject *kind, PyObject *const *details, Py_ssize_t n)
{
    PyObject *argv[5];
    argv[0] = kind;
    for (Py_ssize_t i = 0; i < n; i++)
        argv[i + 1] = details[i];
    PyObject *exc = PyObject_Vectorcall(errors, argv, n + 1, NULL);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return -1;
}

/* Whether a rule's result already has its input's shape and dtype. -1 on error. */
static int
fits(PyObject *c, PyObject *data)
{
    if (PyArray_Check(c) && PyArray_Check(data)) {
        PyArrayObject *ca = (PyArrayObject *)c, *da = (PyArrayObject *)data;
        int nd = PyArray_NDIM(ca);
        if (nd != PyArray_NDIM(da))
            return 0;
        if (nd && memcmp(PyArray_DIMS(ca), PyArray_DIMS(da), nd * sizeof(npy_intp)) != 0)
            return 0;
        PyArray_Descr *cd = PyArray_DESCR(ca), *dd = PyArray_DESCR(da);
        return cd == dd || PyArray_EquivTypes(cd, dd);
    }
    PyObject *cs = PyObject_GetAttr(c, s_shape);
    if (cs == NULL)
        return -1;
    PyObject *ds = PyObject_GetAttr(data, s_shape);
    if (ds == NULL) {
        Py_DECREF(cs);
        return -1;
    }
    int same = PyObject_RichCompareBool(cs, ds, Py_EQ);
    Py_DECREF(cs);
    Py_DECREF(ds);
    if (same != 1)
        return same;
    PyObject *cd = PyObject_GetAttr(c, s_dtype);
    if (cd == NULL)
        return -1;
    PyObject *dd = PyObject_GetAttr(data, s_dtype);
    if (dd == NULL) {
        Py_DECREF(cd);
        return -1;
    }
    same = cd == dd ? 1 : PyObject_RichCompareBool(cd, dd, Py_EQ);
    Py_DECREF(cd);
    Py_DECREF(dd);
    return same;
}

/* graph._fit_to's plain case: c, a NumPy array of data's dtype whose shape broadcasts to
 * data's, summed over the broadcast axes (the leading ones and those where data has size 1)
 * with the same np.add.reduce call as graph._unbroadcast, and reshaped where size-1 axes were
 * summed. NULL with no error set where the case is not plain (Python's _fit_to does it). */
static PyObject *
unbroadcast(PyObject *c, PyObject *data)
{
    if (!PyArray_CheckExact(c) || !PyArray_CheckExact(data))
        return NULL;
    PyArrayObject *ca = (PyArrayObject *)c, *da = (PyArrayObject *)data;
    int nd = PyArray_NDIM(ca), dn = PyArray_NDIM(da), lead = nd - dn;
    PyArray_Descr *cd = PyArray_DESCR(ca), *dd = PyArray_DESCR(da);
    if (lead < 0 || !(cd == dd || PyArray_EquivTypes(cd, dd)))
        return NULL;
    npy_intp *cdims = PyArray_DIMS(ca), *ddims = PyArray_DIMS(da);
    int summed[NPY_MAXDIMS];
    Py_ssize_t n = 0;
    for (int i = 0; i < nd; i++) {
        if (i < lead || (ddims[i - lead] == 1 && cdims[i] != 1))
            summed[n++] = i;
        else if (ddims[i - lead] != cdims[i])
            return NULL; /* not a broadcast: Python's _fit_to explains it */
    }
    PyObject *axes = PyTuple_New(n);
    if (axes == NULL)
        return NULL;
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *k = PyLong_FromLong(summed[j]);
        if (k == NULL) {
            Py_DECREF(axes);
            return NULL;
        }
        PyTuple_SET_ITEM(axes, j, k);
    }
    PyObject *args[2] = {c, axes};
    PyObject *sum = PyObject_Vectorcall(add_reduce, args, 2, NULL);
    Py_DECREF(axes);
    if (sum == NULL || n == lead) /* over leading axes only: the shape is data's already */
        return sum;
    /* (a sum over every axis is a NumPy scalar, not an array: reshaped by its method too) */
    PyObject *shape = PyObject_GetAttr(data, s_shape);
    PyObject *fitted = shape ? PyObject_CallMethodOneArg(sum, s_reshape, shape) : NULL;
    Py_XDECREF(shape);
    Py_DECREF(sum);
    return fitted;
}

/* Whether id(t) is in the container (a set or dict of ids). */
static int
contains_id(PyObject *container, PyObject *t)
{
    PyObject *k = PyLong_FromVoidPtr(t);
    if (k == NULL)
        return -1;
    int found = PySequence_Contains(container, k);
    Py_DECREF(k);
    return found;
}

/* t has just received its first gradient: note it in sources if it is a leaf, else queue it
 * (a node whose inputs were freed by an earlier pass is an error). 0, or -1 on error. */
static int
reached(PyObject *t, Heap *H, PyObject *sources)
{
    PyObject *op = SLOT(t, o_op);
    if (op == NULL || op == Py_None)
        return PyList_Append(sources, t);
    PyObject *b = get_slot(t, o_b, "_b");
    PyObject *s = b ? get_slot(t, o_seq, "_seq") : NULL;
    long long seq;
    if (s == NULL || as_seq(s, &seq) < 0)
        return -1;
    if (b == FREED)
        return raise_error(s_freed, &t, 1);
    return heap_push(H, seq, t);
}

/* Whether g may be written into: a NumPy array owning writeable memory whose one reference is
 * the engine's (not shared with another pending gradient, .grad, the seed or the user). */
static inline int
sole_owner(PyObject *g)
{
    return Py_REFCNT(g) == 1 && PyArray_CheckExact(g) &&
           PyArray_CHKFLAGS((PyArrayObject *)g, NPY_ARRAY_OWNDATA | NPY_ARRAY_WRITEABLE) &&
           PyArray_BASE((PyArrayObject *)g) == NULL;
}

#define MAX_ARGS 8

/* Send the gradient g of node t back to its inputs: call each rule, fit the result to its
 * input, add it into the input's pending gradient (queueing a node the first time it gets one,
 * noting a leaf in sources). Python's _run, the body of its loop. 0, or -1 on error. */
static int
node_backward(PyObject *t, PyObject *g, Table *T, Heap *H, PyObject *sources, PyObject *needed,
              int retain_graph)
{
    PyObject *op = SLOT(t, o_op);
    PyObject *params = get_slot(t, o_params, "_params");
    PyObject *seqobj = get_slot(t, o_seq, "_seq");
    PyObject *version = get_slot(t, o_version, "_version");
    PyObject *xa = get_slot(t, o_a, "_a");
    PyObject *yb = get_slot(t, o_b, "_b");
    PyObject *out = get_slot(t, o_data, "data");
    if (params == NULL || seqobj == NULL || version == NULL || xa == NULL || yb == NULL ||
        out == NULL)
        return -1;
    if (op == NULL || op == Py_None) {
        PyErr_SetString(PyExc_RuntimeError,
                        "backward: a node lost its op during the backward pass (a rule or hook "
                        "detached it); run the pass again from a graph left as recorded");
        return -1;
    }
    long long seq, ver;
    if (as_seq(seqobj, &seq) < 0 || as_seq(version, &ver) < 0)
        return -1;
    if (ver > seq) {
        PyObject *d[4] = {op, t, NULL, t};
        if ((d[2] = PyLong_FromLong(-1)) != NULL) {
            raise_error(s_modified, d, 4);
            Py_DECREF(d[2]);
        }
        return -1;
    }

    /* the inputs (borrowed from xa, which is held until the end) */
    PyObject *pair[2];
    PyObject *const *inputs;
    Py_ssize_t nin;
    if (yb == ONE) {
        pair[0] = xa;
        inputs = pair;
        nin = 1;
    }
    else if (yb == MANY) {
        if (!PyTuple_Check(xa)) {
            PyErr_SetString(PyExc_TypeError, "backward: a node's inputs must be a tuple");
            return -1;
        }
        inputs = &PyTuple_GET_ITEM(xa, 0);
        nin = PyTuple_GET_SIZE(xa);
    }
    else {
        pair[0] = xa;
        pair[1] = yb;
        inputs = pair;
        nin = 2;
    }

    /* the rule's arguments: [index,] g, out, then the raw inputs (owned) */
    PyObject *stack[MAX_ARGS + 3];
    PyObject **rargs = stack;
    if (nin > MAX_ARGS && (rargs = PyMem_Malloc((nin + 3) * sizeof(PyObject *))) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    PyObject **raw = rargs + 3;
    Py_ssize_t n_raw = 0;
    int status = -1;
    PyObject *vjps = NULL;
    /* held, not borrowed: a rule is Python code and may rebind the node's slots (or run a
     * nested backward pass that frees them) while the next rule still needs them */
    Py_INCREF(xa);
    Py_INCREF(yb);
    Py_INCREF(op);
    Py_INCREF(params);
    Py_INCREF(out);
    for (; n_raw < nin; n_raw++) {
        PyObject *v = inputs[n_raw];
        if (IS_TENSOR(v) && (v = get_slot(v, o_data, "data")) == NULL)
            goto end;
        Py_INCREF(v);
        raw[n_raw] = v;
    }
    if ((vjps = op_attr(op, p_vjps, s_vjps)) == NULL)
        goto end;
    int variadic = op_true(op, p_variadic, s_variadic);
    if (variadic < 0)
        goto end;
    if (!PyTuple_Check(vjps) || PyTuple_GET_SIZE(vjps) < (variadic ? 1 : nin)) {
        PyErr_SetString(PyExc_TypeError, "backward: an op's vjps must be a tuple, one per input");
        goto end;
    }
    PyObject *kw = PyDict_GET_SIZE(params) ? params : NULL;
    for (Py_ssize_t i = 0; i < nin; i++) {
        PyObject *a = inputs[i];
        if (!IS_TENSOR(a))
            continue;
        PyObject *av = get_slot(a, o_version, "_version");
        long long aver;
        if (av == NULL || as_seq(av, &aver) < 0)
            goto end;
        if (aver > seq) {
            PyObject *d[4] = {op, a, NULL, t};
            if ((d[2] = PyLong_FromSsize_t(i)) != NULL) {
                raise_error(s_modified, d, 4);
                Py_DECREF(d[2]);
            }
            goto end;
        }
        PyObject *arg = get_slot(a, o_rg, "_rg");
        int rg = arg ? PyObject_IsTrue(arg) : -1;
        if (rg < 0)
            goto end;
        if (!rg)
            continue;
        if (needed != NULL) {
            int in = contains_id(needed, a);
            if (in < 0)
                goto end;
            if (!in)
                continue;
        }
        PyObject *c;
        if (variadic) {
            PyObject *idx = PyLong_FromSsize_t(i);
            if (idx == NULL)
                goto end;
            rargs[0] = idx;
            rargs[1] = g;
            rargs[2] = out;
            c = PyObject_VectorcallDict(PyTuple_GET_ITEM(vjps, 0), rargs, nin + 3, kw);
            Py_DECREF(idx);
        }
        else {
            PyObject *rule = PyTuple_GET_ITEM(vjps, i);
            if (rule == Py_None || rule == NOT_IMPLEMENTED) {
                PyObject *d[3] = {op, NULL, a};
                if ((d[1] = PyLong_FromSsize_t(i)) != NULL) {
                    raise_error(s_no_rule, d, 3);
                    Py_DECREF(d[1]);
                }
                goto end;
            }
            rargs[1] = g;
            rargs[2] = out;
            PyObject *into = NULL; /* the op's vjp_into, when it may write into g */
            if (nin == 1 && sole_owner(g)) {
                if ((into = op_attr(op, p_vjp_into, s_vjp_into)) == NULL)
                    goto end;
                if (PyTuple_Check(into) && PyTuple_GET_SIZE(into) == 1)
                    rule = PyTuple_GET_ITEM(into, 0);
            }
            c = PyObject_VectorcallDict(rule, rargs + 1, nin + 2, kw);
            Py_XDECREF(into);
        }
        if (c == NULL)
            goto end;
        if (c == Py_None) { /* a custom Function may return None for "no gradient" */
            Py_DECREF(c);
            if ((c = PyObject_CallOneArg(zeros_for, a)) == NULL)
                goto end;
        }
        PyObject *adata = get_slot(a, o_data, "data");
        int ok = adata ? fits(c, adata) : -1;
        if (ok == 0) {
            PyObject *fitted = unbroadcast(c, adata);
            if (fitted == NULL && !PyErr_Occurred()) { /* not the plain case: Python's _fit_to */
                PyObject *fa[3] = {c, a, op};
                fitted = PyObject_Vectorcall(fit_to, fa, 3, NULL);
            }
            Py_DECREF(c);
            c = fitted;
        }
        if (ok < 0 || c == NULL) {
            Py_XDECREF(c);
            goto end;
        }
        /* add it into a's pending gradient, or start one */
        size_t k = table_find(T, a);
        if (T->slots[k].t != NULL) {
            PyObject *sum = PyNumber_Add(T->slots[k].g, c);
            Py_DECREF(c);
            if (sum == NULL)
                goto end;
            Py_SETREF(T->slots[k].g, sum);
            continue;
        }
        Py_INCREF(a);
        T->slots[k].t = a;
        T->slots[k].g = c;
        T->used++;
        if (reached(a, H, sources) < 0)
            goto end;
        if (T->used * 2 > T->cap && table_grow(T) < 0)
            goto end;
    }
    if (!retain_graph) { /* free what this node held (its inputs); keep what made it */
        set_slot(t, o_a, Py_None);
        set_slot(t, o_b, FREED);
        set_slot(t, o_params, NO_PARAMS);
    }
    status = 0;
end:
    for (Py_ssize_t j = 0; j < n_raw; j++)
        Py_DECREF(raw[j]);
    if (rargs != stack)
        PyMem_Free(rargs);
    Py_XDECREF(vjps);
    Py_DECREF(xa);
    Py_DECREF(yb);
    Py_DECREF(op);
    Py_DECREF(params);
    Py_DECREF(out);
    return status;
}

/*
 * run(root, seed, retain_graph, needed, watch, retained, on_node) -> [(leaf, gradient), ...]
 *
 * needed: None, or the ids of the nodes whose gradient matters (inputs outside it are skipped).
 * watch: None, or the ids of the nodes whose gradient on_node(t, g) must see when popped.
 * retained: whether on_node also sees each popped node whose .grad is set (retain_grad()).
 * Returns the leaves reached with their gradients, in the order they were first reached.
 */
static PyObject *
run(PyObject *self, PyObject *const *argv, Py_ssize_t argc)
{
    if (Tensor == NULL)
        return not_configured();
    if (argc != 7) {
        PyErr_SetString(PyExc_TypeError,
                        "run(root, seed, retain_graph, needed, watch, retained, on_node)");
        return NULL;
    }
    PyObject *root = argv[0], *seed = argv[1];
    int retain_graph = PyObject_IsTrue(argv[2]);
    PyObject *needed = argv[3] == Py_None ? NULL : argv[3];
    PyObject *watch = argv[4] == Py_None ? NULL : argv[4];
    int retained = PyObject_IsTrue(argv[5]);
    PyObject *on_node = argv[6];
    if (retain_graph < 0 || retained < 0)
        return NULL;
    if (!IS_TENSOR(root)) {
        PyErr_SetString(PyExc_TypeError, "run: root must be a Tensor");
        return NULL;
    }

    Table T = {NULL, 0, 0};
    Heap H = {NULL, 0, 0};
    PyObject *result = NULL;
    PyObject *t = NULL, *g = NULL; /* the node being processed, and its gradient (owned) */
    PyObject *sources = PyList_New(0);
    if (sources == NULL || table_init(&T, 64) < 0)
        goto done;

    /* the root: its gradient is the seed */
    {
        size_t i = table_find(&T, root);
        Py_INCREF(root);
        Py_INCREF(seed);
        T.slots[i].t = root;
        T.slots[i].g = seed;
        T.used++;
        if (reached(root, &H, sources) < 0)
            goto done;
    }

    while (H.n) {
        size_t where = table_find(&T, heap_pop(&H));
        if (T.slots[where].t == NULL) { /* every queued node has a pending gradient */
            PyErr_SetString(PyExc_SystemError, "chainrule._native: a queued node was lost");
            goto done;
        }
        t = T.slots[where].t; /* the references move out of the table */
        g = T.slots[where].g;
        table_remove(&T, where);
        if (watch != NULL || retained) {
            int call = 0;
            if (watch != NULL && (call = contains_id(watch, t)) < 0)
                goto done;
            if (!call && retained) {
                PyObject *grad = SLOT(t, o_grad);
                call = grad != NULL && grad != Py_None;
            }
            if (call) {
                PyObject *cargs[2] = {t, g};
                PyObject *r = PyObject_Vectorcall(on_node, cargs, 2, NULL);
                if (r == NULL)
                    goto done;
                Py_DECREF(r);
            }
        }
        if (node_backward(t, g, &T, &H, sources, needed, retain_graph) < 0)
            goto done;
        Py_CLEAR(t);
        Py_CLEAR(g);
    }

    /* the leaves, with their gradients, in the order they were reached */
    {
        Py_ssize_t n = PyList_GET_SIZE(sources);
        result = PyList_New(n);
        if (result == NULL)
            goto done;
        for (Py_ssize_t j = 0; j < n; j++) {
            PyObject *leaf = PyList_GET_ITEM(sources, j);
            PyObject *pair = PyTuple_Pack(2, leaf, T.slots[table_find(&T, leaf)].g);
            if (pair == NULL) {
                Py_CLEAR(result);
                goto done;
            }
            PyList_SET_ITEM(result, j, pair);
        }
    }

done:
    Py_XDECREF(t);
    Py_XDECREF(g);
    Py_XDECREF(sources);
    table_clear(&T);
    PyMem_Free(H.items);
    return result;
}

/*
 * deliver(pairs, stored, fallback): the leaves' gradients into .grad (graph.py, _accumulate).
 *
 * The common case is done here: a leaf whose .grad is None receives, wrapped in a new Tensor,
 * a gradient that is a NumPy array owning writeable memory and not handed out before (its id
 * not in stored). Every other case calls fallback(t, g), the Python code.
 */
static PyObject *
deliver(PyObject *self, PyObject *const *argv, Py_ssize_t argc)
{
    if (Tensor == NULL)
        return not_configured();
    if (argc != 3 || !PyList_Check(argv[0]) || !PySet_Check(argv[1])) {
        PyErr_SetString(PyExc_TypeError, "deliver(pairs: list, stored: set, fallback)");
        return NULL;
    }
    PyObject *pairs = argv[0], *stored = argv[1], *fallback = argv[2];
    for (Py_ssize_t j = 0; j < PyList_GET_SIZE(pairs); j++) {
        PyObject *pair = PyList_GET_ITEM(pairs, j);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
            !IS_TENSOR(PyTuple_GET_ITEM(pair, 0))) {
            PyErr_SetString(PyExc_TypeError, "deliver: pairs of (Tensor, gradient)");
            return NULL;
        }
        PyObject *t = PyTuple_GET_ITEM(pair, 0), *g = PyTuple_GET_ITEM(pair, 1);
        PyObject *prev = SLOT(t, o_grad);
        int done = 0;
        if ((prev == NULL || prev == Py_None) && PyArray_CheckExact(g) &&
            PyArray_BASE((PyArrayObject *)g) == NULL && PyArray_ISWRITEABLE((PyArrayObject *)g)) {
            PyObject *key = PyLong_FromVoidPtr(g);
            if (key == NULL)
                return NULL;
            int seen = PySet_Contains(stored, key);
            if (seen == 0) {
                PyObject *w = Tensor->tp_alloc(Tensor, 0);
                if (w == NULL || PySet_Add(stored, key) < 0) {
                    Py_XDECREF(w);
                    Py_DECREF(key);
                    return NULL;
                }
                set_slot(w, o_data, g);
                set_slot(w, o_rg, Py_False);
                set_slot(w, o_op, Py_None);
                set_slot(w, o_grad, Py_None);
                set_slot(w, o_version, ZERO);
                SLOT(t, o_grad) = w; /* the new reference moves into the slot */
                Py_XDECREF(prev);
                done = 1;
            }
            Py_DECREF(key);
            if (seen < 0)
                return NULL;
        }
        if (!done) {
            Py_INCREF(pair); /* held while Python runs */
            PyObject *r = PyObject_Vectorcall(fallback, &PyTuple_GET_ITEM(pair, 0), 2, NULL);
            Py_DECREF(pair);
            if (r == NULL)
                return NULL;
            Py_DECREF(r);
        }
    }
    Py_RETURN_NONE;
}

/*
 * take(G, j, into, rule, *args, **params): one step of a cr.compile'd backward program
 * (chainrule/compile.py) for an op that declares vjp_into.
 *
 * The gradient g waits in the list G at j; it is taken out (None is left there), so that the
 * program's own reference is gone, and into(g, *args, **params) is called when this call then
 * holds the only reference to g, a NumPy array owning writeable memory (sole_owner, the same
 * test as the backward loop's); otherwise rule(g, *args, **params). Either way the list no
 * longer holds the gradient: it is used up, as a node's gradient is in the backward loop.
 */
static PyObject *
take(PyObject *self, PyObject *const *argv, Py_ssize_t nargsf, PyObject *kwnames)
{
    Py_ssize_t argc = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (argc < 4 || !PyList_CheckExact(argv[0]) || !PyLong_CheckExact(argv[1])) {
        PyErr_SetString(PyExc_TypeError, "take(G: list, j: int, into, rule, *args, **params)");
        return NULL;
    }
    PyObject *G = argv[0];
    Py_ssize_t j = PyLong_AsSsize_t(argv[1]);
    if (j == -1 && PyErr_Occurred())
        return NULL;
    if (j < 0 || j >= PyList_GET_SIZE(G)) {
        PyErr_SetString(PyExc_IndexError, "take: no gradient slot at that index");
        return NULL;
    }
    PyObject *g = PyList_GET_ITEM(G, j); /* the list's reference becomes this call's */
    Py_INCREF(Py_None);
    PyList_SET_ITEM(G, j, Py_None);
    PyObject *rule = sole_owner(g) ? argv[2] : argv[3];
    Py_ssize_t n = argc - 3 + nkw; /* g, the other arguments, the keyword values */
    PyObject *small[MAX_ARGS + 1], **call = small;
    if (n > MAX_ARGS && (call = PyMem_Malloc(n * sizeof(PyObject *))) == NULL) {
        Py_DECREF(g);
        return PyErr_NoMemory();
    }
    call[0] = g;
    for (Py_ssize_t k = 1; k < n; k++)
        call[k] = argv[k + 3];
    PyObject *result = PyObject_Vectorcall(rule, call, argc - 3, kwnames);
    if (call != small)
        PyMem_Free(call);
    Py_DECREF(g);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* The SGD update in one pass                                                                   */

/*
 * NumPy computes p - g * lr in two passes, with g * lr written to a temporary that the
 * subtraction reads back: on a 784-256-256-10 MLP that is 1 MB written and read again per
 * step; with momentum, weight decay or Nesterov, five to eight passes. These loops do the
 * same operations element by element, in the same order and in p's own precision (every
 * product and sum rounded to the dtype, each scalar first rounded to it as NumPy does with a
 * Python float), so the bits are those of chainrule/optim.py's NumPy lines, the reference:
 *
 *     g' = g + weight_decay * p                      (where weight_decay != 0)
 *     b  = b * momentum + g' * (1 - dampening)       (where there is a buffer b)
 *     g' = g' + momentum * b  (Nesterov)  or  b
 *     p  = p - g' * lr
 *
 * None may become a fused multiply-add, whose single rounding gives other bits: setup.py
 * compiles this file with -ffp-contract=off, and the x87's wider registers (FLT_EVAL_METHOD
 * != 0) send every case back to NumPy. Where the compiler can choose the instruction set at
 * run time (GCC on x86-64 Linux), an AVX2 version is picked on processors that have it.
 */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif
#if defined(_MSC_VER) && !defined(restrict) /* (MSVC's C has it under another name) */
#define restrict __restrict
#endif

#define SGD_LOOPS(T, NAME)                                                                         \
    CLONES static void NAME##_plain(T *restrict p, const T *restrict g, T lr, npy_intp n)          \
    {                                                                                              \
        for (npy_intp i = 0; i < n; i++)                                                           \
            p[i] = p[i] - g[i] * lr;                                                               \
    }                                                                                              \
    CLONES static void NAME##_decay(T *restrict p, const T *restrict g, T lr, T wd, npy_intp n)    \
    {                                                                                              \
        for (npy_intp i = 0; i < n; i++) {                                                         \
            T gi = g[i] + wd * p[i];                                                               \
            p[i] = p[i] - gi * lr;                                                                 \
        }                                                                                          \
    }                                                                                              \
    CLONES static void NAME##_momentum(T *restrict p, const T *restrict g, T *restrict b, T lr,    \
                                       T mom, T damp1, T wd, int decay, int nesterov, npy_intp n)  \
    {                                                                                              \
        for (npy_intp i = 0; i < n; i++) {                                                         \
            T gi = decay ? g[i] + wd * p[i] : g[i];                                                \
            T bi = b[i] * mom + gi * damp1;                                                        \
            b[i] = bi;                                                                             \
            gi = nesterov ? gi + mom * bi : bi;                                                    \
            p[i] = p[i] - gi * lr;                                                                 \
        }                                                                                          \
    }

SGD_LOOPS(float, sgd_f32)
SGD_LOOPS(double, sgd_f64)

/* Whether o is a NumPy array (exactly) laid out like p: the same native dtype and shape,
 * contiguous in p's order (C if c, else F), aligned, and writeable where asked. */
static int
like(PyArrayObject *p, PyObject *o, int c, int writeable)
{
    if (!PyArray_CheckExact(o))
        return 0;
    PyArrayObject *a = (PyArrayObject *)o;
    int nd = PyArray_NDIM(p);
    return PyArray_TYPE(a) == PyArray_TYPE(p) && !PyArray_ISBYTESWAPPED(a) &&
           PyArray_NDIM(a) == nd &&
           (nd == 0 || memcmp(PyArray_DIMS(a), PyArray_DIMS(p), nd * sizeof(npy_intp)) == 0) &&
           PyArray_ISALIGNED(a) && (!writeable || PyArray_ISWRITEABLE(a)) &&
           (c ? PyArray_IS_C_CONTIGUOUS(a) : PyArray_IS_F_CONTIGUOUS(a));
}

static int
overlap(PyArrayObject *a, PyArrayObject *b)
{
    char *x = PyArray_BYTES(a), *y = PyArray_BYTES(b);
    npy_intp bytes = PyArray_NBYTES(a);
    return bytes && x < y + bytes && y < x + bytes;
}

/*
 * sgd_update(p, g, lr[, buf, momentum, damp1, weight_decay, nesterov]) -> bool: the update
 * above, in place, in one pass, where the case is plain: p, g (and buf) NumPy arrays
 * (exactly) of the same shape and the same native float32 or float64 dtype, all contiguous in
 * the same order, aligned, p (and buf) writeable, no two of them overlapping, and every
 * number a Python float (damp1 is 1 - dampening). buf None: no momentum. False, with nothing
 * written, for anything else: the caller then does it with NumPy (chainrule/optim.py), which
 * is also the reference.
 */
static PyObject *
sgd_update(PyObject *self, PyObject *const *argv, Py_ssize_t argc)
{
    if (argc != 3 && argc != 8) {
        PyErr_SetString(PyExc_TypeError, "sgd_update(p, g, lr[, buf, momentum, damp1, "
                                         "weight_decay, nesterov]) takes 3 or 8 arguments");
        return NULL;
    }
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
    PyObject *po = argv[0], *bo = argc == 8 ? argv[3] : Py_None;
    for (Py_ssize_t k = 2; k < argc; k++)
        if (k != 3 && k != 7 && !PyFloat_CheckExact(argv[k]))
            Py_RETURN_FALSE; /* NumPy rounds its own scalar types by other rules */
    if (!PyArray_CheckExact(po))
        Py_RETURN_FALSE;
    PyArrayObject *p = (PyArrayObject *)po;
    int type = PyArray_TYPE(p);
    int c = PyArray_IS_C_CONTIGUOUS(p);
    if ((type != NPY_FLOAT32 && type != NPY_FLOAT64) || !like(p, po, c, 1) ||
        !like(p, argv[1], c, 0) || (bo != Py_None && !like(p, bo, c, 1)))
        Py_RETURN_FALSE;
    PyArrayObject *g = (PyArrayObject *)argv[1], *b = bo == Py_None ? NULL : (PyArrayObject *)bo;
    if (overlap(p, g) || (b != NULL && (overlap(b, p) || overlap(b, g))))
        Py_RETURN_FALSE; /* NumPy's buffered ufuncs handle overlapping memory */
    double lr = PyFloat_AS_DOUBLE(argv[2]), mom = 0, damp1 = 1, wd = 0;
    int nesterov = 0;
    if (argc == 8) {
        mom = PyFloat_AS_DOUBLE(argv[4]);
        damp1 = PyFloat_AS_DOUBLE(argv[5]);
        wd = PyFloat_AS_DOUBLE(argv[6]);
        if ((nesterov = PyObject_IsTrue(argv[7])) < 0)
            return NULL;
    }
    int decay = wd != 0.0;
    npy_intp n = PyArray_SIZE(p);
    char *pd = PyArray_BYTES(p), *gd = PyArray_BYTES(g), *bd = b ? PyArray_BYTES(b) : NULL;
    PyThreadState *state = PyArray_NBYTES(p) >= (1 << 16) ? PyEval_SaveThread() : NULL;
    if (type == NPY_FLOAT32) {
        float *P = (float *)pd, *B = (float *)bd;
        const float *G = (const float *)gd;
        if (B != NULL)
            sgd_f32_momentum(P, G, B, (float)lr, (float)mom, (float)damp1, (float)wd, decay,
                             nesterov, n);
        else if (decay)
            sgd_f32_decay(P, G, (float)lr, (float)wd, n);
        else
            sgd_f32_plain(P, G, (float)lr, n);
    }
    else {
        double *P = (double *)pd, *B = (double *)bd;
        const double *G = (const double *)gd;
        if (B != NULL)
            sgd_f64_momentum(P, G, B, lr, mom, damp1, wd, decay, nesterov, n);
        else if (decay)
            sgd_f64_decay(P, G, lr, wd, n);
        else
            sgd_f64_plain(P, G, lr, n);
    }
    if (state != NULL) /* (released as NumPy does for large arrays) */
        PyEval_RestoreThread(state);
    Py_RETURN_TRUE;
#else
    Py_RETURN_FALSE;
#endif
}

/*
 * Adam's update, the same way: optim.py's NumPy lines (Adam._update) make about a dozen passes
 * over each parameter and its two buffers; this loop makes one, with the same operations in
 * the same order, in the dtype (sqrt is IEEE's correctly rounded square root, as NumPy's):
 *
 *     p  = p * shrink                                (AdamW's decoupled weight decay)
 *     g' = g + l2 * p                                (Adam's L2 weight decay)
 *     m  = m * b1 + g' * c1                          (c1 = 1 - b1)
 *     v  = v * b2 + (g' * g') * c2                   (c2 = 1 - b2)
 *     p  = p - (m / (sqrt(v / bc2) + eps)) * step    (bc2 = 1 - b2^t, step = lr / (1 - b1^t))
 */
#define ADAM_LOOP(T, NAME, SQRT)                                                                  \
    CLONES static void NAME(T *restrict p, const T *restrict g, T *restrict m, T *restrict v,      \
                            T b1, T c1, T b2, T c2, T bc2, T step, T eps, T l2, T shrink,          \
                            int decay, int decoupled, npy_intp n)                                  \
    {                                                                                              \
        for (npy_intp i = 0; i < n; i++) {                                                         \
            T pi = decoupled ? p[i] * shrink : p[i];                                               \
            T gi = decay ? g[i] + l2 * pi : g[i];                                                  \
            T mi = m[i] * b1 + gi * c1;                                                            \
            T vi = v[i] * b2 + (gi * gi) * c2;                                                     \
            m[i] = mi;                                                                             \
            v[i] = vi;                                                                             \
            p[i] = pi - (mi / (SQRT(vi / bc2) + eps)) * step;                                      \
        }                                                                                          \
    }

ADAM_LOOP(float, adam_f32, sqrtf)
ADAM_LOOP(double, adam_f64, sqrt)

/*
 * adam_update(p, g, m, v, b1, c1, b2, c2, bc2, step, eps, l2, shrink) -> bool: the update
 * above, in place, in one pass, where the case is plain (as sgd_update's: four arrays laid
 * out alike, p, m and v writeable, none overlapping another; every number a Python float).
 * l2 = 0: no L2 term; shrink None: no decoupled decay. False, with nothing written, for
 * anything else: Adam._update's NumPy lines then do it.
 */
static PyObject *
adam_update(PyObject *self, PyObject *const *argv, Py_ssize_t argc)
{
    if (argc != 13) {
        PyErr_SetString(PyExc_TypeError, "adam_update(p, g, m, v, b1, c1, b2, c2, bc2, step, "
                                         "eps, l2, shrink) takes 13 arguments");
        return NULL;
    }
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
    int decoupled = argv[12] != Py_None;
    for (Py_ssize_t k = 4; k < 13; k++)
        if ((k < 12 || decoupled) && !PyFloat_CheckExact(argv[k]))
            Py_RETURN_FALSE; /* NumPy rounds its own scalar types by other rules */
    if (!PyArray_CheckExact(argv[0]))
        Py_RETURN_FALSE;
    PyArrayObject *p = (PyArrayObject *)argv[0];
    int type = PyArray_TYPE(p), c = PyArray_IS_C_CONTIGUOUS(p);
    if ((type != NPY_FLOAT32 && type != NPY_FLOAT64) || !like(p, argv[0], c, 1) ||
        !like(p, argv[1], c, 0) || !like(p, argv[2], c, 1) || !like(p, argv[3], c, 1))
        Py_RETURN_FALSE;
    PyArrayObject *a[4] = {p, (PyArrayObject *)argv[1], (PyArrayObject *)argv[2],
                           (PyArrayObject *)argv[3]};
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            if (overlap(a[i], a[j]))
                Py_RETURN_FALSE; /* NumPy's buffered ufuncs handle overlapping memory */
    double s[8];
    for (int k = 0; k < 8; k++)
        s[k] = PyFloat_AS_DOUBLE(argv[4 + k]); /* b1, c1, b2, c2, bc2, step, eps, l2 */
    double shrink = decoupled ? PyFloat_AS_DOUBLE(argv[12]) : 1.0;
    int decay = s[7] != 0.0;
    npy_intp n = PyArray_SIZE(p);
    PyThreadState *state = PyArray_NBYTES(p) >= (1 << 16) ? PyEval_SaveThread() : NULL;
    if (type == NPY_FLOAT32)
        adam_f32((float *)PyArray_BYTES(p), (const float *)PyArray_BYTES(a[1]),
                 (float *)PyArray_BYTES(a[2]), (float *)PyArray_BYTES(a[3]), (float)s[0],
                 (float)s[1], (float)s[2], (float)s[3], (float)s[4], (float)s[5], (float)s[6],
                 (float)s[7], (float)shrink, decay, decoupled, n);
    else
        adam_f64((double *)PyArray_BYTES(p), (const double *)PyArray_BYTES(a[1]),
                 (double *)PyArray_BYTES(a[2]), (double *)PyArray_BYTES(a[3]), s[0], s[1], s[2],
                 s[3], s[4], s[5], s[6], s[7], shrink, decay, decoupled, n);
    if (state != NULL)
        PyEval_RestoreThread(state);
    Py_RETURN_TRUE;
#else
    Py_RETURN_FALSE;
#endif
}

/* ------------------------------------------------------------------------------------------ */

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS, "Hand over the Python objects the fast paths use."},
    {"apply", (PyCFunction)(void (*)(void))apply, METH_FASTCALL,
     "apply(op, args, params): chainrule._record.apply's common case."},
    {"run", (PyCFunction)(void (*)(void))run, METH_FASTCALL,
     "run(root, seed, retain_graph, needed, watch, retained, on_node): the backward loop."},
    {"deliver", (PyCFunction)(void (*)(void))deliver, METH_FASTCALL,
     "deliver(pairs, stored, fallback): the leaves' gradients into .grad."},
    {"take", (PyCFunction)(void (*)(void))take, METH_FASTCALL | METH_KEYWORDS,
     "take(G, j, into, rule, *args, **params): a compiled backward step, in place if it may."},
    {"sgd_update", (PyCFunction)(void (*)(void))sgd_update, METH_FASTCALL,
     "sgd_update(p, g, lr[, buf, momentum, damp1, weight_decay, nesterov]): SGD's update in "
     "one pass where the case is plain; whether it did."},
    {"adam_update", (PyCFunction)(void (*)(void))adam_update, METH_FASTCALL,
     "adam_update(p, g, m, v, b1, c1, b2, c2, bc2, step, eps, l2, shrink): Adam's update in "
     "one pass where the case is plain; whether it did."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "chainrule._native",
    "The recording step, the backward loop and the optimizers' updates in C (see "
    "chainrule/_native.c).",
    -1, methods,
};

#define INTERN(var, text)                                                                          \
    if ((var = PyUnicode_InternFromString(text)) == NULL)                                          \
        return NULL;

PyMODINIT_FUNC
PyInit__native(void)
{
    import_array();
    INTERN(s_forward, "forward");
    INTERN(s_save, "save");
    INTERN(s_saved, "saved");
    INTERN(s_vjps, "vjps");
    INTERN(s_differentiable, "differentiable");
    INTERN(s_variadic, "variadic");
    INTERN(s_special, "special");
    INTERN(s_grad_enabled, "grad_enabled");
    INTERN(s_scope, "scope");
    INTERN(s_shape, "shape");
    INTERN(s_dtype, "dtype");
    INTERN(s_freed, "freed");
    INTERN(s_modified, "modified");
    INTERN(s_no_rule, "no_rule");
    INTERN(s_vjp_into, "vjp_into");
    INTERN(s_reshape, "reshape");
    if ((ZERO = PyLong_FromLong(0)) == NULL)
        return NULL;
    PyObject *numpy = PyImport_ImportModule("numpy");
    PyObject *add = numpy ? PyObject_GetAttrString(numpy, "add") : NULL;
    add_reduce = add ? PyObject_GetAttrString(add, "reduce") : NULL;
    Py_XDECREF(add);
    Py_XDECREF(numpy);
    if (add_reduce == NULL)
        return NULL;
    return PyModule_Create(&module);
}
