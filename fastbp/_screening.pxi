# Included by fastbp/_core.pyx (one extension module): the input screening, NaN and infinity
# found in C (on the call's threads for a large X), and `ready`, the quick path of
# _checks.check_batch.
# The declarations it uses (floating, Net, the _simd.h kernels, the enums) are _core.pyx's.

# ---------------------------------------------------------------------------------------------
# input screening

cdef inline Py_ssize_t first_nonfinite_run(const floating *a, Py_ssize_t n) noexcept nogil:
    if floating is double:
        return fastbp_first_nonfinite_d(a, n)
    else:
        return fastbp_first_nonfinite_f(a, n)


def first_nonfinite(cnp.ndarray a):
    """Flat index of the first NaN or infinity in a C-contiguous float32/float64 array, or -1."""
    cdef Py_ssize_t n = a.size
    cdef Py_ssize_t i
    cdef void *p = cnp.PyArray_DATA(a)
    if a.dtype.itemsize == 8:
        with nogil:
            i = first_nonfinite_run[double](<const double *> p, n)
    else:
        with nogil:
            i = first_nonfinite_run[float](<const float *> p, n)
    return i


cdef Py_ssize_t first_nonfinite_threads(const floating *a, Py_ssize_t n,
                                        int num_threads) noexcept nogil:
    """first_nonfinite_run on num_threads threads, each screening pieces of the array: a large X
    is screened at the speed of memory, not of one core."""
    cdef Py_ssize_t pieces = 4 * num_threads
    cdef Py_ssize_t *first
    cdef Py_ssize_t p, lo, hi, i, found = -1
    if num_threads <= 1:
        return first_nonfinite_run(a, n)
    first = <Py_ssize_t *> calloc(pieces, sizeof(Py_ssize_t))
    if first == NULL:
        return first_nonfinite_run(a, n)
    for p in prange(pieces, schedule='dynamic', num_threads=num_threads):
        lo = n * p // pieces
        hi = n * (p + 1) // pieces
        i = first_nonfinite_run(a + lo, hi - lo)
        first[p] = lo + i if i >= 0 else -1
    for p in range(pieces):
        if first[p] >= 0:
            found = first[p]
            break
    free(first)
    return found


cdef inline bint ready_array(object a, int typenum, int ndim, int num_threads=1) noexcept:
    """An exact ndarray of this dtype (native byte order) and ndim, C-contiguous and aligned,
    with no NaN or inf (screened on num_threads threads; not screened when num_threads is 0)."""
    cdef cnp.ndarray arr
    cdef Py_ssize_t n, found
    cdef void *data
    if type(a) is not cnp.ndarray:
        return False
    arr = <cnp.ndarray> a
    if (cnp.PyArray_TYPE(arr) != typenum or cnp.PyArray_NDIM(arr) != ndim
            or not cnp.PyArray_ISCARRAY_RO(arr) or not cnp.PyArray_ISNOTSWAPPED(arr)):
        return False
    n = arr.size
    data = cnp.PyArray_DATA(arr)
    if num_threads == 0:
        return True
    if num_threads <= 1:
        if typenum == cnp.NPY_DOUBLE:
            return first_nonfinite_run[double](<const double *> data, n) < 0
        return first_nonfinite_run[float](<const float *> data, n) < 0
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            found = first_nonfinite_threads[double](<const double *> data, n, num_threads)
        else:
            found = first_nonfinite_threads[float](<const float *> data, n, num_threads)
    return found < 0


def ready(object weights, object X, object y, Py_ssize_t max_width, int x_threads=1):
    """widths [d(0), ..., d(L)] when weights, X (and y, unless None) need no conversion and pass
    every check (a list of finite, aligned, C-contiguous 2-D arrays of one float dtype, of
    consistent shapes, no layer wider than max_width; X (N, d(0)) with N >= 1; y (N, d(L)), or
    (N,) for d(L) = 1), else None. X is screened for NaN and infinity on x_threads threads
    (not here when x_threads is 0: the kernel then screens it tile by tile, see `run`).
    The quick path of fastbp._checks.check_batch: it never raises, and None only means that the
    full checks must run (and say what is wrong, if anything is)."""
    cdef Py_ssize_t L, l, n
    cdef int typenum
    cdef cnp.ndarray w, xa, ya
    if type(weights) is not list or len(<list> weights) == 0:
        return None
    L = len(<list> weights)
    first = (<list> weights)[0]
    if type(first) is not cnp.ndarray:
        return None
    typenum = cnp.PyArray_TYPE(<cnp.ndarray> first)
    if typenum != cnp.NPY_DOUBLE and typenum != cnp.NPY_FLOAT:
        return None
    widths = [0] * (L + 1)
    for l in range(L):
        a = (<list> weights)[l]
        if not ready_array(a, typenum, 2):
            return None
        w = <cnp.ndarray> a
        if l == 0:
            if w.shape[0] < 2 or w.shape[0] - 1 > max_width:
                return None
            widths[0] = w.shape[0] - 1
        elif w.shape[0] != <Py_ssize_t> widths[l] + 1:
            return None
        if w.shape[1] < 1 or w.shape[1] > max_width:
            return None
        widths[l + 1] = w.shape[1]
    if not ready_array(X, typenum, 2, x_threads):
        return None
    xa = <cnp.ndarray> X
    n = xa.shape[0]
    if n < 1 or xa.shape[1] != <Py_ssize_t> widths[0]:
        return None
    if y is not None:
        if type(y) is not cnp.ndarray:
            return None
        ya = <cnp.ndarray> y
        if cnp.PyArray_NDIM(ya) == 1:
            if widths[L] != 1 or not ready_array(y, typenum, 1) or ya.shape[0] != n:
                return None
        elif (not ready_array(y, typenum, 2) or ya.shape[0] != n
                or ya.shape[1] != <Py_ssize_t> widths[L]):
            return None
    return widths


def out_ready(object out, list weights):
    """True when `out` passes every check of fastbp._checks.check_out and the kernel can write it
    as it is: a list or tuple of len(weights) arrays (exactly ndarray), each of its weight's
    shape and dtype, writeable, aligned, C-contiguous, in native byte order, non-empty, and no
    two overlapping in memory (for contiguous arrays, np.shares_memory). The quick path of
    fastbp.gradient's `out=`: it never raises, and False only means that the full checks must run
    (and say what is wrong, if anything is)."""
    cdef Py_ssize_t L, l, m, d
    cdef cnp.ndarray o, w, p
    cdef char *lo
    cdef char *hi
    cdef char *plo
    if type(out) is not list and type(out) is not tuple:
        return False
    L = len(out)
    if L != len(weights):
        return False
    for l in range(L):
        a = out[l]
        b = weights[l]
        if type(a) is not cnp.ndarray or type(b) is not cnp.ndarray:
            return False
        o = <cnp.ndarray> a
        w = <cnp.ndarray> b
        if (cnp.PyArray_TYPE(o) != cnp.PyArray_TYPE(w) or cnp.PyArray_NDIM(o) != cnp.PyArray_NDIM(w)
                or not cnp.PyArray_ISCARRAY(o) or not cnp.PyArray_ISNOTSWAPPED(o)
                or not cnp.PyArray_ISNOTSWAPPED(w) or o.size == 0):
            return False
        for d in range(cnp.PyArray_NDIM(o)):
            if o.shape[d] != w.shape[d]:
                return False
        lo = <char *> cnp.PyArray_DATA(o)
        hi = lo + cnp.PyArray_NBYTES(o)
        for m in range(l):
            p = <cnp.ndarray> out[m]
            plo = <char *> cnp.PyArray_DATA(p)
            if lo < plo + cnp.PyArray_NBYTES(p) and plo < hi:
                return False
    return True
