/* chainrule.optim._fused: the optimizers' updates in one pass over each parameter.
 *
 * Kernels NumPy cannot express: NumPy writes every intermediate of an update (g * lr, the
 * momentum buffer's terms, Adam's moments) to a temporary and reads it back; these loops do
 * the same operations element by element, with NumPy's roundings, so the bits are those of
 * the NumPy lines in chainrule/optim/optimizers.py, which stay the reference (and run
 * wherever a case is not plain, or this module was not built). tests/test_fused.py holds the
 * two equal. Each function returns whether it did the update; where it did not, nothing was
 * written.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <string.h>

#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

/* ------------------------------------------------------------------------------------------ */
/* The SGD update in one pass                                                                   */

/*
 * NumPy computes p - g * lr in two passes, with g * lr written to a temporary that the
 * subtraction reads back: on a 784-256-256-10 MLP that is 1 MB written and read again per
 * step; with momentum, weight decay or Nesterov, five to eight passes. These loops do the
 * same operations element by element, in the same order and in p's own precision (every
 * product and sum rounded to the dtype, each scalar first rounded to it as NumPy does with a
 * Python float), so the bits are those of chainrule/optim/optimizers.py's NumPy lines, the reference:
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
 * written, for anything else: the caller then does it with NumPy (chainrule/optim/optimizers.py), which
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
 * Adam's update, the same way: optimizers.py's NumPy lines (Adam._update) make about a dozen passes
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
    {"sgd_update", (PyCFunction)(void (*)(void))sgd_update, METH_FASTCALL,
     "sgd_update(p, g, lr[, buf, momentum, damp1, weight_decay, nesterov]): SGD's update in "
     "one pass where the case is plain; whether it did."},
    {"adam_update", (PyCFunction)(void (*)(void))adam_update, METH_FASTCALL,
     "adam_update(p, g, m, v, b1, c1, b2, c2, bc2, step, eps, l2, shrink): Adam's update in "
     "one pass where the case is plain; whether it did."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "chainrule.optim._fused",
    "The optimizers' updates in one pass (see chainrule/optim/_fused.c).",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__fused(void)
{
    import_array();
    return PyModule_Create(&module);
}
