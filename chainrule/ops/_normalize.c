/* chainrule.ops._normalize: the normalize op (batch, layer and group normalisation) forward
 * and backward in two or three passes over each channel, where NumPy makes about twenty.
 *
 * The op (chainrule/ops/nn.py) is  out = (x - mean) / sqrt(var + eps) * weight + bias,  the
 * statistics taken over some axes of x. Where those axes are a leading and a trailing block of
 * a C-contiguous x, x reads as an (A, C, B) array and each of its C channels is normalised over
 * its A * B values x[a, c, b]: batch norm's (N, C, H * W), layer norm's (1, rows, features).
 * weight and bias are absent, one value per channel (batch norm) or one per position b (layer
 * norm). The sums are taken in double precision for either dtype, a channel at a time, and
 * the variance from the mean (two passes over a channel, the second from cache), so the
 * results agree with the NumPy rules of the sheet to rounding, not bit for bit: a sum in
 * another order rounds otherwise. tests/test_normalize_kernels.py holds the two together.
 *
 * Each function returns whether it did the work; where it did not (anything that is not the
 * plain case: another dtype, a non-contiguous array, sizes that disagree), nothing was
 * written and chainrule/ops/kernels.py runs the sheet's NumPy rule.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#if defined(_POSIX_THREADS) && _POSIX_THREADS > 0
#define HAVE_PTHREADS 1
#endif
#endif

#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif
#if defined(_MSC_VER) && !defined(restrict)
#define restrict __restrict
#endif
/* (sums in a loop may be reordered into vector lanes: setup.py passes -fopenmp-simd) */
#define PRAGMA(text) _Pragma(#text)
#define SIMD_SUM(s) PRAGMA(omp simd reduction(+ : s))

enum { NONE = 0, PER_CHANNEL = 1, PER_POSITION = 2 }; /* how weight and bias are laid out */

/* One call's arrays and sizes: x (or g and x) read as (A, C, B); the loops below each take a
 * range [c0, c1) of the channels, so that threads can share the channels out. */
typedef struct {
    const void *x, *g, *w, *b;
    void *out;            /* the value (forward) or x's gradient (backward_x) */
    double *mean, *rstd;  /* C values each */
    double *var;          /* C values, where asked for (moments) */
    npy_intp A, C, B;
    double eps;
    int wmode, bmode;     /* (reduce: mode is wmode) */
} Job;

/*
 * The loops, for T = float and double. Row (a, c) of x starts at x + (a * C + c) * B.
 *
 * forward:    mean[c], rstd[c] = 1 / sqrt(var[c] + eps), out = (x - mean) * rstd * w + b (var[c]
 *             too where asked; out where given)
 * backward_x: with gw = g * w, dx = rstd * (gw - sum(gw) / n - xhat * sum(gw * xhat) / n)
 * reduce:     the sum of g * xhat (or of g, where x is NULL) per channel or per position,
 *             added to acc
 */
#define NORMALIZE_LOOPS(T, NAME)                                                                   \
    CLONES static void NAME##_forward(const Job *job, npy_intp c0, npy_intp c1, double *acc)       \
    {                                                                                              \
        const T *restrict x = job->x, *w = job->w, *b = job->b;                                    \
        T *restrict out = job->out;                                                                \
        npy_intp A = job->A, C = job->C, B = job->B;                                               \
        int wmode = job->wmode, bmode = job->bmode;                                                \
        double n = (double)A * (double)B;                                                          \
        for (npy_intp c = c0; c < c1; c++) {                                                       \
            double s = 0, q = 0;                                                                   \
            for (npy_intp a = 0; a < A; a++) {                                                     \
                const T *row = x + (a * C + c) * B;                                                \
                SIMD_SUM(s)                                                                        \
                for (npy_intp i = 0; i < B; i++)                                                   \
                    s += row[i];                                                                   \
            }                                                                                      \
            double m = s / n;                                                                      \
            for (npy_intp a = 0; a < A; a++) {                                                     \
                const T *row = x + (a * C + c) * B;                                                \
                SIMD_SUM(q)                                                                        \
                for (npy_intp i = 0; i < B; i++) {                                                 \
                    double d = row[i] - m;                                                         \
                    q += d * d;                                                                    \
                }                                                                                  \
            }                                                                                      \
            double r = 1.0 / sqrt(q / n + job->eps);                                               \
            job->mean[c] = m;                                                                      \
            job->rstd[c] = r;                                                                      \
            if (job->var != NULL)                                                                  \
                job->var[c] = q / n;                                                               \
            if (out == NULL)                                                                       \
                continue;                                                                          \
            double wc = wmode == PER_CHANNEL ? w[c] : 1.0, bc = bmode == PER_CHANNEL ? b[c] : 0.0; \
            for (npy_intp a = 0; a < A; a++) {                                                     \
                const T *row = x + (a * C + c) * B;                                                \
                T *o = out + (a * C + c) * B;                                                      \
                if (wmode == PER_POSITION)                                                         \
                    for (npy_intp i = 0; i < B; i++)                                               \
                        o[i] = (T)((row[i] - m) * r * w[i] + bc);                                  \
                else                                                                               \
                    for (npy_intp i = 0; i < B; i++)                                               \
                        o[i] = (T)((row[i] - m) * r * wc + bc);                                    \
                if (bmode == PER_POSITION)                                                         \
                    for (npy_intp i = 0; i < B; i++)                                               \
                        o[i] += b[i];                                                              \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    CLONES static void NAME##_backward_x(const Job *job, npy_intp c0, npy_intp c1, double *acc)    \
    {                                                                                              \
        const T *restrict g = job->g, *restrict x = job->x, *w = job->w;                           \
        T *restrict dx = job->out;                                                                 \
        npy_intp A = job->A, C = job->C, B = job->B;                                               \
        int wmode = job->wmode;                                                                    \
        double n = (double)A * (double)B;                                                          \
        for (npy_intp c = c0; c < c1; c++) {                                                       \
            double m = job->mean[c], r = job->rstd[c], wc = wmode == PER_CHANNEL ? w[c] : 1.0;     \
            double s1 = 0, s2 = 0;                                                                 \
            for (npy_intp a = 0; a < A; a++) {                                                     \
                const T *gr = g + (a * C + c) * B, *xr = x + (a * C + c) * B;                      \
                if (wmode == PER_POSITION) {                                                       \
                    SIMD_SUM(s1)                                                                   \
                    for (npy_intp i = 0; i < B; i++)                                               \
                        s1 += (double)gr[i] * w[i];                                                \
                    SIMD_SUM(s2)                                                                   \
                    for (npy_intp i = 0; i < B; i++)                                               \
                        s2 += (double)gr[i] * w[i] * (xr[i] - m);                                  \
                }                                                                                  \
                else {                                                                             \
                    SIMD_SUM(s1)                                                                   \
                    for (npy_intp i = 0; i < B; i++)                                               \
                        s1 += gr[i];                                                               \
                    SIMD_SUM(s2)                                                                   \
                    for (npy_intp i = 0; i < B; i++)                                               \
                        s2 += gr[i] * (xr[i] - m);                                                 \
                }                                                                                  \
            }                                                                                      \
            /* (w, where it is one per channel, and r were taken out of the sums) */               \
            double k1 = s1 * wc / n, k2 = s2 * wc * r / n;                                         \
            for (npy_intp a = 0; a < A; a++) {                                                     \
                const T *gr = g + (a * C + c) * B, *xr = x + (a * C + c) * B;                      \
                T *d = dx + (a * C + c) * B;                                                       \
                if (wmode == PER_POSITION)                                                         \
                    for (npy_intp i = 0; i < B; i++)                                               \
                        d[i] = (T)(r * ((double)gr[i] * w[i] - k1 - (xr[i] - m) * r * k2));       \
                else                                                                               \
                    for (npy_intp i = 0; i < B; i++)                                               \
                        d[i] = (T)(r * (gr[i] * wc - k1 - (xr[i] - m) * r * k2));                 \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    CLONES static void NAME##_reduce(const Job *job, npy_intp c0, npy_intp c1, double *into)       \
    {                                                                                              \
        const T *restrict g = job->g, *restrict x = job->x;                                        \
        double *restrict acc = into;                                                               \
        npy_intp A = job->A, C = job->C, B = job->B;                                               \
        for (npy_intp c = c0; c < c1; c++)                                                         \
            for (npy_intp a = 0; a < A; a++) {                                                     \
                const T *gr = g + (a * C + c) * B, *xr = x ? x + (a * C + c) * B : NULL;           \
                double m = x ? job->mean[c] : 0.0, r = x ? job->rstd[c] : 1.0;                     \
                if (job->wmode == PER_CHANNEL) {                                                   \
                    double s = 0;                                                                  \
                    if (xr) {                                                                      \
                        SIMD_SUM(s)                                                                \
                        for (npy_intp i = 0; i < B; i++)                                           \
                            s += gr[i] * (xr[i] - m);                                              \
                        s *= r;                                                                    \
                    }                                                                              \
                    else {                                                                         \
                        SIMD_SUM(s)                                                                \
                        for (npy_intp i = 0; i < B; i++)                                           \
                            s += gr[i];                                                            \
                    }                                                                              \
                    acc[c] += s;                                                                   \
                }                                                                                  \
                else if (xr)                                                                       \
                    for (npy_intp i = 0; i < B; i++)                                               \
                        acc[i] += gr[i] * ((xr[i] - m) * r);                                       \
                else                                                                               \
                    for (npy_intp i = 0; i < B; i++)                                               \
                        acc[i] += gr[i];                                                           \
            }                                                                                      \
    }

NORMALIZE_LOOPS(float, f32)
NORMALIZE_LOOPS(double, f64)

typedef void (*Loop)(const Job *, npy_intp, npy_intp, double *);

/*
 * Threads. The channels are shared out in contiguous ranges over `threads` threads (made for
 * the call and joined before it returns: nothing outlives it, so a fork is always safe), one
 * range each, where each thread then has at least MIN_PER_THREAD values; a channel's
 * statistics are computed by one thread, so the values do not depend on the thread count,
 * except the per-position sums of reduce, which add the threads' partial sums in thread order
 * (the same bits for the same count). Where a thread cannot be made, its range runs in the
 * calling thread.
 */
#define MIN_PER_THREAD (1 << 16)
#define MAX_THREADS 64

typedef struct {
    Loop loop;
    const Job *job;
    npy_intp c0, c1;
    double *acc;
} Part;

#if defined(HAVE_PTHREADS)
#include <pthread.h>
static void *
run_part(void *arg)
{
    Part *p = arg;
    p->loop(p->job, p->c0, p->c1, p->acc);
    return NULL;
}
#endif

/* Runs loop over all channels; acc (acc_size values) receives the sums of the reduce loop. */
static int
run(Loop loop, const Job *job, long threads, double *acc, npy_intp acc_size)
{
    npy_intp C = job->C, work = job->A * job->C * job->B;
    npy_intp k = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
    if (k > C)
        k = C;
    if (k > work / MIN_PER_THREAD)
        k = work / MIN_PER_THREAD;
#if !defined(HAVE_PTHREADS)
    k = 1;
#endif
    if (k <= 1) {
        loop(job, 0, C, acc);
        return 1;
    }
    Part parts[MAX_THREADS];
    double *sums = acc_size ? calloc((size_t)(k * acc_size), sizeof(double)) : NULL;
    if (acc_size && sums == NULL) {
        loop(job, 0, C, acc);
        return 1;
    }
    for (npy_intp t = 0; t < k; t++)
        parts[t] = (Part){loop, job, C * t / k, C * (t + 1) / k, sums ? sums + t * acc_size : acc};
#if defined(HAVE_PTHREADS)
    pthread_t ids[MAX_THREADS];
    int made[MAX_THREADS] = {0};
    for (npy_intp t = 1; t < k; t++)
        made[t] = pthread_create(&ids[t], NULL, run_part, &parts[t]) == 0;
    run_part(&parts[0]);
    for (npy_intp t = 1; t < k; t++) {
        if (made[t])
            pthread_join(ids[t], NULL);
        else
            run_part(&parts[t]);
    }
#endif
    if (sums != NULL) {
        for (npy_intp t = 0; t < k; t++)
            for (npy_intp i = 0; i < acc_size; i++)
                acc[i] += sums[t * acc_size + i];
        free(sums);
    }
    return 1;
}

/* Whether o is a NumPy array (exactly) of the given dtype, C-contiguous, aligned, native byte
 * order, of `size` values (writeable where asked). */
static int
plain(PyObject *o, int type, npy_intp size, int writeable)
{
    if (!PyArray_CheckExact(o))
        return 0;
    PyArrayObject *a = (PyArrayObject *)o;
    return PyArray_TYPE(a) == type && !PyArray_ISBYTESWAPPED(a) && PyArray_ISALIGNED(a) &&
           PyArray_IS_C_CONTIGUOUS(a) && PyArray_SIZE(a) == size &&
           (!writeable || PyArray_ISWRITEABLE(a));
}

static void *
bytes(PyObject *o)
{
    return o == Py_None ? NULL : PyArray_BYTES((PyArrayObject *)o);
}

/* Whether the arrays at the given positions of argv share no memory with `out`. */
static int
apart(PyObject *out, PyObject *const *argv, const int *which, int k)
{
    PyArrayObject *o = (PyArrayObject *)out;
    char *p = PyArray_BYTES(o);
    npy_intp size = PyArray_NBYTES(o);
    for (int j = 0; j < k; j++) {
        if (argv[which[j]] == Py_None)
            continue;
        PyArrayObject *a = (PyArrayObject *)argv[which[j]];
        char *q = PyArray_BYTES(a);
        npy_intp other = PyArray_NBYTES(a);
        if (size > 0 && other > 0 && p < q + other && q < p + size)
            return 0;
    }
    return 1;
}

/* The (A, C, B) sizes in argv[k], argv[k + 1], argv[k + 2]: non-negative Python ints. */
static int
sizes(PyObject *const *argv, int k, npy_intp *A, npy_intp *C, npy_intp *B)
{
    npy_intp v[3];
    for (int j = 0; j < 3; j++) {
        if (!PyLong_CheckExact(argv[k + j]))
            return 0;
        v[j] = PyLong_AsSsize_t(argv[k + j]);
        if (v[j] < 0) {
            PyErr_Clear();
            return 0;
        }
    }
    *A = v[0];
    *C = v[1];
    *B = v[2];
    return 1;
}

/* Whether the weight or bias v in `mode` is plain: None with NONE, else `type` with C or B
 * values. */
static int
affine(PyObject *v, PyObject *mode, int type, npy_intp C, npy_intp B, int *m)
{
    if (!PyLong_CheckExact(mode))
        return 0;
    *m = (int)PyLong_AsLong(mode);
    if (*m == NONE)
        return v == Py_None;
    if (*m != PER_CHANNEL && *m != PER_POSITION)
        return 0;
    return plain(v, type, *m == PER_CHANNEL ? C : B, 0);
}

/* The thread count in argv[k]: a Python int. */
static int
thread_count(PyObject *o, long *threads)
{
    if (!PyLong_CheckExact(o))
        return 0;
    *threads = PyLong_AsLong(o);
    if (*threads == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* Runs the job without the GIL (as NumPy does for large arrays). */
static PyObject *
run_released(Loop loop, const Job *job, long threads, double *acc, npy_intp acc_size)
{
    Py_BEGIN_ALLOW_THREADS
    run(loop, job, threads, acc, acc_size);
    Py_END_ALLOW_THREADS
    Py_RETURN_TRUE;
}

/*
 * forward(x, A, C, B, eps, weight, wmode, bias, bmode, out, mean, rstd, threads) -> bool: out
 * (like x) and the channels' mean and 1 / sqrt(var + eps) (float64, C values) written.
 */
static PyObject *
forward(PyObject *self, PyObject *const *argv, Py_ssize_t argc)
{
    if (argc != 13) {
        PyErr_SetString(PyExc_TypeError, "forward(x, A, C, B, eps, weight, wmode, bias, bmode, "
                                         "out, mean, rstd, threads) takes 13 arguments");
        return NULL;
    }
    Job job = {0};
    long threads;
    if (!PyArray_CheckExact(argv[0]) || !sizes(argv, 1, &job.A, &job.C, &job.B) ||
        !PyFloat_CheckExact(argv[4]) || !thread_count(argv[12], &threads))
        Py_RETURN_FALSE;
    int type = PyArray_TYPE((PyArrayObject *)argv[0]);
    npy_intp n = job.A * job.C * job.B;
    const int inputs[] = {0, 5, 7};
    if ((type != NPY_FLOAT32 && type != NPY_FLOAT64) || !plain(argv[0], type, n, 0) ||
        !affine(argv[5], argv[6], type, job.C, job.B, &job.wmode) ||
        !affine(argv[7], argv[8], type, job.C, job.B, &job.bmode) ||
        !plain(argv[9], type, n, 1) || !plain(argv[10], NPY_FLOAT64, job.C, 1) ||
        !plain(argv[11], NPY_FLOAT64, job.C, 1) || !apart(argv[9], argv, inputs, 3))
        Py_RETURN_FALSE;
    job.x = bytes(argv[0]);
    job.w = bytes(argv[5]);
    job.b = bytes(argv[7]);
    job.out = bytes(argv[9]);
    job.mean = bytes(argv[10]);
    job.rstd = bytes(argv[11]);
    job.eps = PyFloat_AS_DOUBLE(argv[4]);
    return run_released(type == NPY_FLOAT32 ? f32_forward : f64_forward, &job, threads, NULL, 0);
}

/*
 * moments(x, A, C, B, mean, var, threads) -> bool: each channel's mean and (biased) variance
 * (float64, C values) written.
 */
static PyObject *
moments(PyObject *self, PyObject *const *argv, Py_ssize_t argc)
{
    if (argc != 7) {
        PyErr_SetString(PyExc_TypeError, "moments(x, A, C, B, mean, var, threads) takes 7 "
                                         "arguments");
        return NULL;
    }
    Job job = {0};
    long threads;
    if (!PyArray_CheckExact(argv[0]) || !sizes(argv, 1, &job.A, &job.C, &job.B) ||
        !thread_count(argv[6], &threads))
        Py_RETURN_FALSE;
    int type = PyArray_TYPE((PyArrayObject *)argv[0]);
    if ((type != NPY_FLOAT32 && type != NPY_FLOAT64) ||
        !plain(argv[0], type, job.A * job.C * job.B, 0) ||
        !plain(argv[4], NPY_FLOAT64, job.C, 1) || !plain(argv[5], NPY_FLOAT64, job.C, 1))
        Py_RETURN_FALSE;
    double *rstd = malloc((size_t)(job.C ? job.C : 1) * sizeof(double));
    if (rstd == NULL)
        return PyErr_NoMemory();
    job.x = bytes(argv[0]);
    job.mean = bytes(argv[4]);
    job.var = bytes(argv[5]);
    job.rstd = rstd;
    PyObject *done =
        run_released(type == NPY_FLOAT32 ? f32_forward : f64_forward, &job, threads, NULL, 0);
    free(rstd);
    return done;
}

/*
 * backward_x(g, x, mean, rstd, A, C, B, weight, wmode, dx, threads) -> bool: x's gradient
 * written to dx (like x).
 */
static PyObject *
backward_x(PyObject *self, PyObject *const *argv, Py_ssize_t argc)
{
    if (argc != 11) {
        PyErr_SetString(PyExc_TypeError, "backward_x(g, x, mean, rstd, A, C, B, weight, wmode, "
                                         "dx, threads) takes 11 arguments");
        return NULL;
    }
    Job job = {0};
    long threads;
    if (!PyArray_CheckExact(argv[1]) || !sizes(argv, 4, &job.A, &job.C, &job.B) ||
        !thread_count(argv[10], &threads))
        Py_RETURN_FALSE;
    int type = PyArray_TYPE((PyArrayObject *)argv[1]);
    npy_intp n = job.A * job.C * job.B;
    const int inputs[] = {0, 1, 7};
    if ((type != NPY_FLOAT32 && type != NPY_FLOAT64) || !plain(argv[0], type, n, 0) ||
        !plain(argv[1], type, n, 0) || !plain(argv[2], NPY_FLOAT64, job.C, 0) ||
        !plain(argv[3], NPY_FLOAT64, job.C, 0) ||
        !affine(argv[7], argv[8], type, job.C, job.B, &job.wmode) ||
        !plain(argv[9], type, n, 1) || !apart(argv[9], argv, inputs, 3))
        Py_RETURN_FALSE;
    job.g = bytes(argv[0]);
    job.x = bytes(argv[1]);
    job.mean = bytes(argv[2]);
    job.rstd = bytes(argv[3]);
    job.w = bytes(argv[7]);
    job.out = bytes(argv[9]);
    return run_released(type == NPY_FLOAT32 ? f32_backward_x : f64_backward_x, &job, threads,
                        NULL, 0);
}

/*
 * reduce(g, x, mean, rstd, A, C, B, mode, acc, threads) -> bool: the sum of
 * g * (x - mean) * rstd (the weight's gradient), or of g where x, mean and rstd are None (the
 * bias's), per channel (mode 1) or per position (mode 2), added to acc (float64, C or B
 * values).
 */
static PyObject *
reduce(PyObject *self, PyObject *const *argv, Py_ssize_t argc)
{
    if (argc != 10) {
        PyErr_SetString(PyExc_TypeError,
                        "reduce(g, x, mean, rstd, A, C, B, mode, acc, threads) takes 10 arguments");
        return NULL;
    }
    Job job = {0};
    long threads;
    if (!PyArray_CheckExact(argv[0]) || !sizes(argv, 4, &job.A, &job.C, &job.B) ||
        !PyLong_CheckExact(argv[7]) || !thread_count(argv[9], &threads))
        Py_RETURN_FALSE;
    int type = PyArray_TYPE((PyArrayObject *)argv[0]);
    long mode = PyLong_AsLong(argv[7]);
    npy_intp n = job.A * job.C * job.B, size = mode == PER_CHANNEL ? job.C : job.B;
    int with_x = argv[1] != Py_None;
    if ((type != NPY_FLOAT32 && type != NPY_FLOAT64) || !plain(argv[0], type, n, 0) ||
        (mode != PER_CHANNEL && mode != PER_POSITION) || !plain(argv[8], NPY_FLOAT64, size, 1) ||
        (with_x && (!plain(argv[1], type, n, 0) || !plain(argv[2], NPY_FLOAT64, job.C, 0) ||
                    !plain(argv[3], NPY_FLOAT64, job.C, 0))) ||
        (!with_x && (argv[2] != Py_None || argv[3] != Py_None)))
        Py_RETURN_FALSE;
    job.g = bytes(argv[0]);
    job.x = bytes(argv[1]);
    job.mean = bytes(argv[2]);
    job.rstd = bytes(argv[3]);
    job.wmode = (int)mode;
    return run_released(type == NPY_FLOAT32 ? f32_reduce : f64_reduce, &job, threads,
                        bytes(argv[8]), size);
}

static PyMethodDef methods[] = {
    {"forward", (PyCFunction)(void (*)(void))forward, METH_FASTCALL,
     "forward(x, A, C, B, eps, weight, wmode, bias, bmode, out, mean, rstd, threads): the "
     "normalize op's value, and each channel's mean and 1 / sqrt(var + eps); whether it did."},
    {"moments", (PyCFunction)(void (*)(void))moments, METH_FASTCALL,
     "moments(x, A, C, B, mean, var, threads): each channel's mean and biased variance; "
     "whether it did."},
    {"backward_x", (PyCFunction)(void (*)(void))backward_x, METH_FASTCALL,
     "backward_x(g, x, mean, rstd, A, C, B, weight, wmode, dx, threads): the gradient of x; "
     "whether it did."},
    {"reduce", (PyCFunction)(void (*)(void))reduce, METH_FASTCALL,
     "reduce(g, x, mean, rstd, A, C, B, mode, acc, threads): the weight's (or, x None, the bias's) "
     "gradient added to acc; whether it did."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "chainrule.ops._normalize",
    "The normalize op's forward and backward loops (see chainrule/ops/_normalize.c).",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__normalize(void)
{
    import_array();
    return PyModule_Create(&module);
}
