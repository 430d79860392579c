# The compiled kernels of fastbp.
#
# Layers of this file, from the inside out (the design of scikit-learn's _loss.pyx):
#   (a) per-tile steps, `noexcept nogil`: forward_tile, sensitivities_tile, gradient_tile. Each runs
#       the lecture's per-sample algorithm for the samples of one tile (64) side by side, with
#       the inner loops in the micro-kernels of _simd.h;
#   (b) run_chunk: the tiles of one fixed-size chunk of the batch, summed into that chunk's own
#       buffer;
#   (c) chunk_rounds: the OpenMP driver every caller runs on (run_batch for gradient, error and
#       forward; the SGD and full-batch epochs). Chunks are handed out in rounds, each chunk's
#       partial sums land in a slot of its own, and the slots are added to the float64 totals in
#       chunk order, so the result is bitwise the same for any number of threads;
#   (d) the private `def` entry points, called by fastbp/_api.py once every argument is checked and
#       converted (C-contiguous, one float dtype, finite, shapes consistent). Nothing here
#       re-checks.
# One extension module, its parts in files included here by concern (as msgpack's _cmsgpack.pyx
# includes its packer and unpacker): _tile_steps.pxi (a, b), _driver.pxi (c), _loss.pxi (the
# loss and penalties of the training drivers), _sgd_epoch.pxi (the SGD epoch on top of b and c),
# _full_batch_epochs.pxi (blocks of gd, variable-lr and rprop epochs on top of c), this file (d),
# _screening.pxi (the NaN/infinity screen and the quick path of the checks).
#
# Tile layout: x(l) of a tile is (d(l)+1) rows of `tile` samples, row 0 all ones (the bias
# input); delta(l) is d(l) rows. Padded samples of a last, partial tile get zero sensitivities, so
# they add exactly nothing to the gradient.

from cython.parallel cimport parallel, prange, threadid
from libc.math cimport NAN, pow, sqrt
from libc.math cimport log as c_log
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset

cimport numpy as cnp
import numpy as np

cnp.import_array()

ctypedef fused floating:
    float
    double

cdef extern from "_simd.h" nogil:
    enum: FASTBP_RB
    enum: FASTBP_MAX_SAMPLE_BLOCK
    enum: FASTBP_MAX_LANES
    int fastbp_openmp_enabled()
    int fastbp_openmp_max_threads()
    void *fastbp_aligned_calloc(size_t nbytes)
    void *fastbp_aligned_malloc(size_t nbytes)
    void fastbp_aligned_free(void *p)
    void fastbp_prefetch(const void *p, size_t nbytes)
    int fastbp_kernel_set_count()
    const char *fastbp_kernel_set_name(int i)
    int fastbp_kernel_set_runs_here(int i)
    const char *fastbp_select_kernels(const char *cap)
    long fastbp_claim(long *next)
    void fastbp_barrier()
    int fastbp_team_size()
    ctypedef struct fastbp_team_sync:
        pass
    void fastbp_team_wait(fastbp_team_sync *s, int team)
    void fastbp_relay_wait(long *counter, long value)
    void fastbp_relay_pass(long *counter, long value)
    double fastbp_seconds()
    double fastbp_relay_wait_timed(long *counter, long value)
    void fastbp_pack_d(const double *src, Py_ssize_t sk, Py_ssize_t si, int K, int m, double *panel)
    void fastbp_pack_f(const float *src, Py_ssize_t sk, Py_ssize_t si, int K, int m, float *panel)
    int fastbp_sample_block_d()
    int fastbp_sample_block_f()
    void fastbp_linear_d(const double *panel, int K, int m, const double *inp, Py_ssize_t ld,
                         double *out, int ns)
    void fastbp_linear_f(const float *panel, int K, int m, const float *inp, Py_ssize_t ld,
                         float *out, int ns)
    void fastbp_outer_d(const double *X, int rows, const double *D, int cols, Py_ssize_t ld,
                        int ns, double *G, double *work, int panel)
    void fastbp_outer_f(const float *X, int rows, const float *D, int cols, Py_ssize_t ld,
                        int ns, float *G, float *work, int panel)
    void fastbp_outer_pieces_d(const double **X, const double **D, const int *ns, int pieces,
                               int rows, int cols, Py_ssize_t ld, double *G, double *work,
                               int panel, int part, double *lanes)
    void fastbp_outer_pieces_f(const float **X, const float **D, const int *ns, int pieces,
                               int rows, int cols, Py_ssize_t ld, float *G, float *work, int panel,
                               int part, float *lanes)
    int fastbp_tile_lanes_d(int cols)
    int fastbp_tile_lanes_f(int cols)
    enum:
        FASTBP_OUTER_CHAINED
        FASTBP_OUTER_BY_TILE
        FASTBP_OUTER_ALL
        FASTBP_OUTER_KEEP_WORK
        FASTBP_OUTER_LANES_IN
        FASTBP_OUTER_LANES_OUT
    void fastbp_tanh_d(double *x, int rows, Py_ssize_t ld, Py_ssize_t n)
    void fastbp_tanh_f(float *x, int rows, Py_ssize_t ld, Py_ssize_t n)
    void fastbp_exp_d(double *x, int rows, Py_ssize_t ld, Py_ssize_t n)
    void fastbp_exp_f(float *x, int rows, Py_ssize_t ld, Py_ssize_t n)
    void fastbp_log_d(double *x, int rows, Py_ssize_t ld, Py_ssize_t n)
    void fastbp_log_f(float *x, int rows, Py_ssize_t ld, Py_ssize_t n)
    void fastbp_log1p_exp_d(double *x, int rows, Py_ssize_t ld, Py_ssize_t n)
    void fastbp_log1p_exp_f(float *x, int rows, Py_ssize_t ld, Py_ssize_t n)
    void fastbp_logistic_d(double *x, int rows, Py_ssize_t ld, Py_ssize_t n)
    void fastbp_logistic_f(float *x, int rows, Py_ssize_t ld, Py_ssize_t n)
    void fastbp_relu_d(double *x, int rows, Py_ssize_t ld, Py_ssize_t n)
    void fastbp_relu_f(float *x, int rows, Py_ssize_t ld, Py_ssize_t n)
    void fastbp_softmax_d(double *x, int rows, Py_ssize_t ld, Py_ssize_t n, double *mx,
                          double *logsum)
    void fastbp_softmax_f(float *x, int rows, Py_ssize_t ld, Py_ssize_t n, float *mx,
                          float *logsum)
    void fastbp_drelu_mul_d(double *delta, const double *x, int rows, Py_ssize_t ld, Py_ssize_t n)
    void fastbp_drelu_mul_f(float *delta, const float *x, int rows, Py_ssize_t ld, Py_ssize_t n)
    void fastbp_dlogistic_mul_d(double *delta, const double *x, int rows, Py_ssize_t ld,
                                Py_ssize_t n)
    void fastbp_dlogistic_mul_f(float *delta, const float *x, int rows, Py_ssize_t ld,
                                Py_ssize_t n)
    Py_ssize_t fastbp_first_nonfinite_d(const double *a, Py_ssize_t n)
    Py_ssize_t fastbp_first_nonfinite_f(const float *a, Py_ssize_t n)
    void fastbp_dtanh_mul_d(double *delta, const double *x, int rows, Py_ssize_t ld, Py_ssize_t n)
    void fastbp_dtanh_mul_f(float *delta, const float *x, int rows, Py_ssize_t ld, Py_ssize_t n)
    int fastbp_load_inputs_d(const double *X, const Py_ssize_t *rows, Py_ssize_t t, int nb, int d0,
                             double *x0, Py_ssize_t ld, int ns)
    int fastbp_load_inputs_f(const float *X, const Py_ssize_t *rows, Py_ssize_t t, int nb, int d0,
                             float *x0, Py_ssize_t ld, int ns)

# The update code (the SGD and full-batch epochs, the merges, the losses) rounds as NumPy's
# expressions do, operation by operation: no multiply-add may be fused there, on any target
# (GCC fuses them by default where the instruction set has them, as aarch64's baseline does).
# This header turns contraction off for everything compiled after it, which is all of this
# module's own code; the micro-kernels of _simd.h, included before it, keep their fused
# multiply-adds.
cdef extern from "_no_fp_contract.h":
    pass

# Adam's update of a block of weights in the vectors of the set in use (no fused multiply-add:
# after the header above), bit for bit the scalar loop's
cdef extern from "_simd_update.h" nogil:
    void fastbp_adam_d(double *w, double *m, double *v, const double *g, Py_ssize_t n, double b1,
                       double one_b1, double b2, double one_b2, double lr, double eps)
    void fastbp_adam_f(float *w, float *m, float *v, const float *g, Py_ssize_t n, float b1,
                       float one_b1, float b2, float one_b2, float lr, float eps)
    void fastbp_axpy_d(double *y, const double *x, double a, Py_ssize_t n)
    void fastbp_axpy_f(float *y, const float *x, float a, Py_ssize_t n)

RB = FASTBP_RB
MAX_SAMPLE_BLOCK = FASTBP_MAX_SAMPLE_BLOCK

cdef enum Mode:
    MODE_FORWARD = 0    # write x(L) of every sample
    MODE_ERROR = 1      # sum of the errors e_n only
    MODE_GRADIENT = 2   # sum of the errors and of x(l-1) delta(l)^T

# The codes of fastbp._checks.ACTIVATIONS and fastbp._checks.OUTPUTS, in their order.
cdef enum Activation:
    ACT_TANH = 0
    ACT_RELU = 1
    ACT_LOGISTIC = 2
    ACT_IDENTITY = 3

cdef enum Output:
    OUT_TANH = 0        # x(L) = tanh(s(L)), squared error
    OUT_LINEAR = 1      # x(L) = s(L), squared error
    OUT_LOGISTIC = 2    # x(L) = sigma(s(L)), binary cross-entropy summed over the units
    OUT_SOFTMAX = 3     # x(L) = softmax(s(L)), cross-entropy -sum_k y_k log x_k
    OUT_POISSON = 4     # x(L) = exp(s(L)), half the Poisson deviance: y log(y / x) - y + x


# How the inputs X are stored: what the loader of a tile (load_tile_inputs) reads. Nothing else
# in the kernels sees X.
cdef enum InputLayout:
    INPUT_DENSE = 0     # (N, d(0)) row-major, C-contiguous
    # CSR (scipy.sparse's compressed rows): s(1) from each sample's nonzeros, and dW(1) added
    # row by row where they are (_sparse_inputs.pxi); x(0) never exists, W(1) has no panel
    INPUT_CSR = 1
    # CSR, each tile's rows written out dense into x(0) as they are loaded, then the dense
    # kernels: for matrices dense enough that the panels beat the nonzeros one by one
    INPUT_CSR_TILES = 2


cdef struct Input:
    int layout                  # an InputLayout
    # INPUT_DENSE: the (N, d(0)) array; CSR: the nonzero values (nnz,); the weights' dtype
    const void *values
    const void *indices         # CSR: the column of each nonzero, int32 or int64 (index64)
    const void *indptr          # CSR: (N + 1,) sample n's nonzeros are indptr[n]..indptr[n+1]-1
    bint index64                # CSR: indices and indptr are int64 (else int32)


cdef struct Net:
    int L                       # number of layers with weights
    int activation              # theta of the hidden layers, an Activation
    int output                  # theta of the output layer and the error measure, an Output
    const void *sample_weight   # (N,) weights w_n of the samples, the weights' dtype; NULL: all 1
    int tile                    # samples per tile: the row length of every tile array
    int sweep                   # samples per forward/backward sweep: a divisor of the tile
    int panel                   # rows of x(l-1) per panel of the gradient update (0: all rows)
    # screen each tile's inputs for NaN and infinity as it is loaded (run_chunk; X was not
    # screened before the call); a chunk that finds one returns a NaN error
    bint screen_inputs
    Input input                 # X, as the loader reads it (set by each entry point)
    const int *widths           # d(0), ..., d(L)
    const void **weights        # W(1), ..., W(L), each (d(l-1)+1, d(l)) row-major
    const Py_ssize_t *act_off   # offset of the x(l) tile in a thread's scratch, l = 0..L
    const Py_ssize_t *delta_off  # offset of the delta(l) tile, l = 1..L (index l)
    const Py_ssize_t *grad_off  # offset of dW(l) in a gradient buffer, l = 1..L (index l)
    const Py_ssize_t *fwd_off   # offset of W(l)'s forward panel in the panel buffer (index l)
    const Py_ssize_t *bwd_off   # offset of W(l+1)'s backward panel, for delta(l) (index l)
    Py_ssize_t n_params         # sum of (d(l-1)+1) d(l)
    Py_ssize_t n_panel          # elements of the panel buffer
    Py_ssize_t work_off         # offset of the micro-kernels' work space, tile x (max d(l) + 16)
    # offset of s(L) (d(L) rows), then d(L) rows for the logistic loss's log(1 + exp(-|s|)) or
    # softmax's two log-sum-exp rows (cross-entropy and Poisson outputs only)
    Py_ssize_t out_off
    Py_ssize_t scratch_len      # elements of one thread's scratch
    void *panels                # the packed panels of this call
    # INPUT_CSR, a mini-batch epoch on one thread: the rows of dW(1) a step's nonzeros added
    # into (marked by sparse_first_gradient, cleared by the step that reads them); else NULL
    unsigned char *touched


include "_sparse_inputs.pxi"
include "_tile_steps.pxi"
include "_driver.pxi"
include "_loss.pxi"
include "_sgd_epoch.pxi"
include "_full_batch_epochs.pxi"
include "_screening.pxi"


# ---------------------------------------------------------------------------------------------
# (d) entry points for fastbp/_api.py

cdef class _Layout:
    """The C description of a checked network, and the memory it points into (one allocation)."""
    cdef Net net
    cdef void *block
    cdef list weights
    cdef object sample_weight

    def __cinit__(self, list weights, list widths, tuple spec, int tile, int sweep=0,
                  int panel=0, int input_layout=INPUT_DENSE):
        """spec: (activation code, output code, sample weights or None), the codes those of
        Activation and Output; sample weights C-contiguous (N,) of the weights' dtype. sweep: the
        samples per forward/backward sweep, a divisor of the tile and a multiple of every kernel
        set's sample block (0: the whole tile); panel: rows of x(l-1) per panel of the gradient
        update (0: all rows in one; the result does not depend on it). input_layout: how X
        will be stored (InputLayout; INPUT_CSR: no x(0) tile and no forward panel of W(1))."""
        cdef int L = len(weights)
        cdef int l
        cdef Py_ssize_t pos, n_params, n_panel
        cdef int widest = 1
        cdef int *w_c
        cdef Py_ssize_t *offs
        cdef const void **ptrs
        self.block = NULL
        # every code the kernels' switches name, and no other (an unknown one fails here, loudly,
        # not as another unit's arithmetic inside the kernels)
        if spec[0] not in (ACT_TANH, ACT_RELU, ACT_LOGISTIC, ACT_IDENTITY):
            raise ValueError(f"activation code must be one of 0..{ACT_IDENTITY:d} (Activation), "
                             f"got {spec[0]!r}")
        if spec[1] not in (OUT_TANH, OUT_LINEAR, OUT_LOGISTIC, OUT_SOFTMAX, OUT_POISSON):
            raise ValueError(f"output code must be one of 0..{OUT_POISSON:d} (Output), "
                             f"got {spec[1]!r}")
        self.weights = weights  # keeps the arrays alive while the kernel reads them
        self.sample_weight = spec[2]
        # 5 offset arrays of L+1 entries, L+1 widths, L weight pointers
        self.block = calloc(1, 5 * (L + 1) * sizeof(Py_ssize_t) + (L + 1) * sizeof(int)
                            + (L + 1) * sizeof(void *))
        if self.block == NULL:
            raise MemoryError("fastbp could not allocate a network description")
        offs = <Py_ssize_t *> self.block
        ptrs = <const void **> (offs + 5 * (L + 1))
        w_c = <int *> (ptrs + (L + 1))
        for l in range(L + 1):
            w_c[l] = widths[l]
        for l in range(L):
            ptrs[l] = cnp.PyArray_DATA(<cnp.ndarray> weights[l])
        act_off = offs
        delta_off = offs + (L + 1)
        grad_off = offs + 2 * (L + 1)
        fwd_off = offs + 3 * (L + 1)
        bwd_off = offs + 4 * (L + 1)
        if input_layout not in (INPUT_DENSE, INPUT_CSR, INPUT_CSR_TILES):
            raise ValueError(f"input_layout must be one of 0..{INPUT_CSR_TILES:d} (InputLayout), "
                             f"got {input_layout!r}")
        pos = 0
        for l in range(L + 1):
            act_off[l] = pos
            # INPUT_CSR: x(0) is its row of ones alone (s(1) comes from the nonzeros)
            pos += <Py_ssize_t> (1 if l == 0 and input_layout == INPUT_CSR else w_c[l] + 1) * tile
        for l in range(1, L + 1):
            delta_off[l] = pos
            pos += <Py_ssize_t> w_c[l] * tile
        self.net.work_off = pos
        for l in range(1, L + 1):
            widest = max(widest, w_c[l])
        pos += <Py_ssize_t> (widest + FASTBP_MAX_LANES) * tile
        self.net.out_off = pos
        if spec[1] in (OUT_LOGISTIC, OUT_SOFTMAX, OUT_POISSON):   # s(L), for the error
            pos += <Py_ssize_t> (2 * w_c[L] + 2) * tile
        n_params = 0
        for l in range(1, L + 1):
            grad_off[l] = n_params
            n_params += <Py_ssize_t> (w_c[l - 1] + 1) * w_c[l]
        n_panel = 0
        for l in range(1, L + 1):
            fwd_off[l] = n_panel
            if l == 1 and input_layout == INPUT_CSR:
                continue        # W(1) is read as it is, row by row
            n_panel += (<Py_ssize_t> ((w_c[l] + FASTBP_RB - 1) // FASTBP_RB) * FASTBP_RB
                        * (w_c[l - 1] + 1))
        for l in range(1, L):
            bwd_off[l] = n_panel
            n_panel += <Py_ssize_t> ((w_c[l] + FASTBP_RB - 1) // FASTBP_RB) * FASTBP_RB * w_c[l + 1]
        self.net.L = L
        self.net.activation = spec[0]
        self.net.output = spec[1]
        self.net.sample_weight = (NULL if spec[2] is None
                                  else cnp.PyArray_DATA(<cnp.ndarray> spec[2]))
        self.net.tile = tile
        self.net.sweep = tile if sweep <= 0 else sweep
        self.net.panel = panel
        self.net.screen_inputs = False
        self.net.input.layout = input_layout
        self.net.input.values = NULL
        self.net.input.indices = NULL
        self.net.input.indptr = NULL
        self.net.input.index64 = False
        self.net.widths = w_c
        self.net.weights = ptrs
        self.net.act_off = act_off
        self.net.delta_off = delta_off
        self.net.grad_off = grad_off
        self.net.fwd_off = fwd_off
        self.net.bwd_off = bwd_off
        self.net.n_params = n_params
        self.net.n_panel = n_panel
        self.net.scratch_len = pos
        self.net.panels = NULL
        self.net.touched = NULL

    def __dealloc__(self):
        free(self.block)

    @property
    def act_off(self):
        return [self.net.act_off[l] for l in range(self.net.L + 1)]

    @property
    def delta_off(self):
        return [self.net.delta_off[l] for l in range(self.net.L + 1)]

    @property
    def scratch_len(self):
        return self.net.scratch_len


cdef int set_input(_Layout layout, object X) except -1:
    """net.input from X: a C-contiguous (N, d(0)) ndarray, or fastbp._sparse.SparseRows (its
    CSR arrays, checked there) for a layout made with its input_layout. Returns N."""
    cdef Input *inp = &layout.net.input
    cdef cnp.ndarray values
    if isinstance(X, cnp.ndarray):
        if inp.layout != INPUT_DENSE:
            raise ValueError("a dense X for a layout made for sparse input")
        inp.values = cnp.PyArray_DATA(<cnp.ndarray> X)
        return X.shape[0]
    if inp.layout == INPUT_DENSE or X.input_layout != inp.layout:
        raise ValueError(f"X of input layout {X.input_layout!r} for a layout made for "
                         f"{inp.layout!r}")
    values = X.data
    inp.values = cnp.PyArray_DATA(values)
    inp.indices = cnp.PyArray_DATA(<cnp.ndarray> X.indices)
    inp.indptr = cnp.PyArray_DATA(<cnp.ndarray> X.indptr)
    inp.index64 = X.indices.dtype.itemsize == 8
    return X.shape[0]


def input_layout_of(object X):
    """The InputLayout a _Layout for X needs."""
    return INPUT_DENSE if isinstance(X, cnp.ndarray) else X.input_layout


def select_kernels(str cap=""):
    """Pick the micro-kernels: the best set this CPU runs, at most the set named `cap` (in
    kernel_sets()' order; "" or an unknown name: no cap); return the name of the set chosen."""
    return fastbp_select_kernels(cap.encode()).decode()


def kernel_sets():
    """[(name, whether this CPU runs it)] of the kernel sets built in, the best first."""
    return [(fastbp_kernel_set_name(i).decode(), bool(fastbp_kernel_set_runs_here(i)))
            for i in range(fastbp_kernel_set_count())]


def openmp_enabled():
    return bool(fastbp_openmp_enabled())


def openmp_max_threads():
    return fastbp_openmp_max_threads()


cdef void write_gradient(const Net *net, const double *grad_sum, floating **grads, double scale,
                         bint accumulate, int first=0) noexcept nogil:
    """grads[l] = scale * sum (or += with `accumulate`), rounded once to the weights' dtype, for
    the layers from index `first` (1: dW(1) was written already, run_batch's `final`)."""
    cdef int l
    for l in range(first, net.L):
        write_scaled(grads[l], grad_sum + net.grad_off[l + 1],
                     <Py_ssize_t> (net.widths[l] + 1) * net.widths[l + 1], scale, accumulate)


cdef inline void write_scaled(floating *dst, const double *src, Py_ssize_t n, double scale,
                              bint accumulate) noexcept nogil:
    """dst = scale * src (or += with `accumulate`), rounded once to dst's dtype."""
    cdef Py_ssize_t p
    if accumulate:
        for p in range(n):
            dst[p] = <floating> (dst[p] + src[p] * scale)
    else:
        for p in range(n):
            dst[p] = <floating> (src[p] * scale)


def run(list weights, list widths, tuple spec, object X, object Y, object outputs,
        int mode, int num_threads, int tile, Py_ssize_t chunk, int slots_per_thread,
        list grads=None, double scale=1.0, bint accumulate=False, int sweep=0, int panel=0,
        bint screen_inputs=False):
    """Run the batch; return the sum of the errors w_n e_n (0.0 in MODE_FORWARD).

    spec is (activation code, output code, sample weights or None), as _Layout takes it.
    X, Y, outputs (and the sample weights) share the weights' dtype. In MODE_GRADIENT, `grads` holds
    one C-contiguous, aligned array per layer, of the weights' shapes and dtype: the float64 sums
    times `scale` are written there (added to them with `accumulate`). sweep, panel: the
    blocking within a tile, as _Layout takes them. screen_inputs: X has not been screened for NaN
    and infinity; each tile's rows are, as the tile is loaded (in cache then, where a screen
    before the call reads all of X from memory once more). If one is found, the result is NaN
    (in MODE_FORWARD too, whose result is otherwise 0.0) and `grads` are left as they were: the
    caller finds the value (fastbp._api._run).
    """
    cdef _Layout layout = _Layout(weights, widths, spec, tile, sweep, panel, input_layout_of(X))
    cdef Py_ssize_t N = set_input(layout, X)
    cdef int L = len(weights)
    cdef int l
    cdef void *y_ptr = NULL if Y is None else cnp.PyArray_DATA(<cnp.ndarray> Y)
    cdef void *o_ptr = NULL if outputs is None else cnp.PyArray_DATA(<cnp.ndarray> outputs)
    cdef double *g_ptr = NULL
    cdef void **out_ptrs = NULL
    cdef double err = 0.0
    cdef int status
    cdef bint is_double = X.dtype == np.float64
    cdef bint first_written = False
    layout.net.screen_inputs = screen_inputs
    if mode == MODE_GRADIENT:
        # (the aligned allocator keeps a large one for the next call: _simd.h)
        # (cleared by run_batch, as much as it is read; the aligned allocator keeps a large
        # block for the next call: _simd.h)
        g_ptr = <double *> fastbp_aligned_malloc((layout.net.n_params + 1) * sizeof(double))
        out_ptrs = <void **> calloc(L + 1, sizeof(void *))
        if g_ptr == NULL or out_ptrs == NULL:
            fastbp_aligned_free(g_ptr)
            free(out_ptrs)
            raise MemoryError("fastbp could not allocate its gradient sums")
        for l in range(L):
            out_ptrs[l] = cnp.PyArray_DATA(<cnp.ndarray> grads[l])
    try:
        with nogil:
            if is_double:
                status = run_batch[double](&layout.net, <const double *> y_ptr,
                                           <double *> o_ptr, N, chunk, slots_per_thread,
                                           num_threads, mode, &err, g_ptr,
                                           <double *> out_ptrs[0] if out_ptrs != NULL else NULL,
                                           scale, accumulate, &first_written)
                # (err != err: a NaN, from an input the screen found or from the network's own
                # arithmetic; the caller tells them apart)
                if status == 0 and mode == MODE_GRADIENT and not (screen_inputs and err != err):
                    write_gradient[double](&layout.net, g_ptr, <double **> out_ptrs, scale,
                                           accumulate, 1 if first_written else 0)
            else:
                status = run_batch[float](&layout.net, <const float *> y_ptr,
                                          <float *> o_ptr, N, chunk, slots_per_thread,
                                          num_threads, mode, &err, g_ptr,
                                          <float *> out_ptrs[0] if out_ptrs != NULL else NULL,
                                          scale, accumulate, &first_written)
                if status == 0 and mode == MODE_GRADIENT and not (screen_inputs and err != err):
                    write_gradient[float](&layout.net, g_ptr, <float **> out_ptrs, scale,
                                          accumulate, 1 if first_written else 0)
    finally:
        fastbp_aligned_free(g_ptr)
        free(out_ptrs)
    if status != 0:
        raise MemoryError("fastbp could not allocate its scratch memory")
    return err


cdef int backprop_one(Net *net, const floating *x, const floating *y, floating *scratch,
                      double *err) noexcept nogil:
    cdef floating *panels = <floating *> fastbp_aligned_calloc(net.n_panel * sizeof(floating))
    cdef int block = sample_block(<floating> 0)
    if panels == NULL:
        return -1
    pack_panels(net, panels)
    net.panels = panels
    init_scratch(net, scratch)
    net.input.values = x
    forward_tile(net, NULL, 0, 1, block, scratch)
    err[0] = sensitivities_tile(net, y, NULL, 0, 1, block, scratch, True)
    net.panels = NULL
    fastbp_aligned_free(panels)
    return 0


def backprop_sample(list weights, list widths, tuple spec, cnp.ndarray x, cnp.ndarray y):
    """One sample through the tile steps: ([x(0), ..., x(L)], [delta(1), ..., delta(L)])."""
    cdef int tile = MAX_SAMPLE_BLOCK
    cdef _Layout layout = _Layout(weights, widths, spec, tile)
    cdef int L = len(weights)
    cdef double err = 0.0
    cdef int status
    cdef cnp.ndarray scratch_arr
    # the kernels read whole aligned vectors: a 64-byte aligned scratch
    raw = np.zeros(layout.scratch_len + 64, dtype=x.dtype)
    shift = (-raw.ctypes.data % 64) // x.dtype.itemsize
    scratch = raw[shift:shift + layout.scratch_len]
    scratch_arr = scratch
    cdef void *s_ptr = cnp.PyArray_DATA(scratch_arr)
    if x.dtype == np.float64:
        status = backprop_one[double](&layout.net, <const double *> cnp.PyArray_DATA(x),
                                      <const double *> cnp.PyArray_DATA(y), <double *> s_ptr, &err)
    else:
        status = backprop_one[float](&layout.net, <const float *> cnp.PyArray_DATA(x),
                                     <const float *> cnp.PyArray_DATA(y), <float *> s_ptr, &err)
    if status != 0:
        raise MemoryError("fastbp could not allocate its scratch memory")
    act_off = layout.act_off
    delta_off = layout.delta_off
    xs = []
    for l in range(L + 1):
        rows = scratch[act_off[l]:act_off[l] + (widths[l] + 1) * tile]
        column = rows.reshape(widths[l] + 1, tile)[:, 0].copy()
        xs.append(column if l < L else column[1:])
    deltas = []
    for l in range(1, L + 1):
        rows = scratch[delta_off[l]:delta_off[l] + widths[l] * tile]
        deltas.append(rows.reshape(widths[l], tile)[:, 0].copy())
    return xs, deltas


def tanh(cnp.ndarray x):
    """The kernels' tanh, in place, on a 64-byte aligned contiguous array whose length is a multiple
    of the sample block (a test hook: fastbp/_api.py never calls it)."""
    cdef Py_ssize_t n = x.size
    if x.dtype == np.float64:
        fastbp_tanh_d(<double *> cnp.PyArray_DATA(x), 1, n, n)
    else:
        fastbp_tanh_f(<float *> cnp.PyArray_DATA(x), 1, n, n)


def exp(cnp.ndarray x):
    """The kernels' exp, in place, on an array as for `tanh` (a test hook)."""
    cdef Py_ssize_t n = x.size
    if x.dtype == np.float64:
        fastbp_exp_d(<double *> cnp.PyArray_DATA(x), 1, n, n)
    else:
        fastbp_exp_f(<float *> cnp.PyArray_DATA(x), 1, n, n)


def log(cnp.ndarray x):
    """The kernels' log of values >= 1, in place, on an array as for `tanh` (a test hook)."""
    cdef Py_ssize_t n = x.size
    if x.dtype == np.float64:
        fastbp_log_d(<double *> cnp.PyArray_DATA(x), 1, n, n)
    else:
        fastbp_log_f(<float *> cnp.PyArray_DATA(x), 1, n, n)


def log1p_exp(cnp.ndarray x):
    """The kernels' log(1 + exp(-|x|)), in place, on an array as for `tanh` (a test hook)."""
    cdef Py_ssize_t n = x.size
    if x.dtype == np.float64:
        fastbp_log1p_exp_d(<double *> cnp.PyArray_DATA(x), 1, n, n)
    else:
        fastbp_log1p_exp_f(<float *> cnp.PyArray_DATA(x), 1, n, n)


def logistic(cnp.ndarray x):
    """The kernels' logistic function 1 / (1 + exp(-x)), in place, on an array as for `tanh` (a
    test hook)."""
    cdef Py_ssize_t n = x.size
    if x.dtype == np.float64:
        fastbp_logistic_d(<double *> cnp.PyArray_DATA(x), 1, n, n)
    else:
        fastbp_logistic_f(<float *> cnp.PyArray_DATA(x), 1, n, n)


def sgd_epoch(list weights, list widths, tuple spec, object X, cnp.ndarray Y,
              cnp.ndarray order, Py_ssize_t batch_size, double lr, double momentum,
              object velocity, tuple objective, int tile, Py_ssize_t chunk, int rule=RULE_SGD,
              object moment2=None, double beta2=0.999, double eps=1e-8, long long steps=0,
              int num_threads=1, Py_ssize_t slots=1, int sweep=0, int panel=0):
    """One epoch of mini-batch SGD or Adam in place on `weights` (and `velocity`, `moment2`); see
    sgd_epoch_run. Returns (Adam's step count after the epoch (`steps` unchanged for SGD),
    the epoch's summed L2 loss, its summed error part) (see sgd_epoch_run: scikit-learn's loss).

    weights, velocity and moment2 are C-contiguous, writeable, of X's dtype; order is an intp
    permutation; spec as for run; objective (decay, alpha, total, grad_scale, loss_scale),
    the Loss of each step (_loss.pxi). rule: 0 SGD (with momentum when momentum > 0), 1 Nesterov,
    2 Adam (momentum is then beta1, velocity the first moments and moment2 the second).
    num_threads, slots: threads and chunk buffers for the batches of two chunks or more (the
    result does not depend on them); sweep, panel as for run."""
    cdef _Layout layout = _Layout(weights, widths, spec, tile, sweep, panel, input_layout_of(X))
    cdef Loss loss_spec = loss_from(objective)
    cdef int L = len(weights)
    cdef int l
    cdef int status
    cdef Py_ssize_t N = set_input(layout, X)
    cdef const Py_ssize_t *order_ptr = <const Py_ssize_t *> cnp.PyArray_DATA(order)
    cdef double loss[2]
    loss[0] = 0.0
    loss[1] = 0.0
    ptrs = np.zeros(3 * L, dtype=np.uintp)
    cdef size_t[::1] ptr_view = ptrs
    for l in range(L):
        ptr_view[l] = <size_t> cnp.PyArray_DATA(<cnp.ndarray> weights[l])
        if velocity is not None:
            ptr_view[L + l] = <size_t> cnp.PyArray_DATA(<cnp.ndarray> velocity[l])
        if moment2 is not None:
            ptr_view[2 * L + l] = <size_t> cnp.PyArray_DATA(<cnp.ndarray> moment2[l])
    if X.dtype == np.float64:
        with nogil:
            status = sgd_epoch_run[double](
                &layout.net, <double **> &ptr_view[0], <double **> &ptr_view[L],
                <double **> &ptr_view[2 * L], <const double *> cnp.PyArray_DATA(Y),
                order_ptr, N, batch_size, chunk, num_threads, slots, rule, lr, momentum, beta2,
                eps, &steps, &loss_spec, loss)
    else:
        with nogil:
            status = sgd_epoch_run[float](
                &layout.net, <float **> &ptr_view[0], <float **> &ptr_view[L],
                <float **> &ptr_view[2 * L], <const float *> cnp.PyArray_DATA(Y),
                order_ptr, N, batch_size, chunk, num_threads, slots, rule, lr, momentum, beta2,
                eps, &steps, &loss_spec, loss)
    if status != 0:
        raise MemoryError("fastbp could not allocate its scratch memory")
    return steps, loss[0], loss[1]


def full_batch_epochs(list weights, list widths, tuple spec, object X, cnp.ndarray Y,
                      int num_threads, int tile, Py_ssize_t chunk, int slots_per_thread,
                      int rule, cnp.ndarray params, tuple objective, cnp.ndarray w,
                      cnp.ndarray g, object v,
                      object steps, object g_prev, object trial, cnp.ndarray state, Py_ssize_t k,
                      cnp.ndarray E_in, cnp.ndarray E_aug, cnp.ndarray lr, cnp.ndarray accepted,
                      cnp.ndarray result, int sweep=0, int panel=0):
    """Up to k epochs of gd, variable-lr or rprop in place (see full_batch_run); writes the
    number of epochs kept and the status into `result` (int64 (2,)) last, so that a caller
    interrupted after the call still finds them there.

    weights are the per-layer views of the flat w; w, g, v, steps, g_prev, trial flat
    C-contiguous arrays of X's dtype (None where the rule does not use them); params (float64)
    by FullBatchParam; objective (decay, alpha, total, grad_scale, loss_scale), the Loss of
    E_aug (_loss.pxi); state (float64) E_in, E_aug, E_prev, learning rate, updated; E_in, E_aug,
    lr (float64) and accepted (uint8) of length >= k, the records of the epochs kept. sweep,
    panel: the blocking, as for `run` (the same as `run`'s for this network and cache)."""
    cdef _Layout layout = _Layout(weights, widths, spec, tile, sweep, panel, input_layout_of(X))
    cdef Loss loss = loss_from(objective)
    cdef Py_ssize_t N = set_input(layout, X)
    cdef Py_ssize_t done
    cdef int status = 0
    cdef const double *par = <const double *> cnp.PyArray_DATA(params)
    cdef double *st = <double *> cnp.PyArray_DATA(state)
    cdef double *r_in = <double *> cnp.PyArray_DATA(E_in)
    cdef double *r_aug = <double *> cnp.PyArray_DATA(E_aug)
    cdef double *r_lr = <double *> cnp.PyArray_DATA(lr)
    cdef unsigned char *r_acc = <unsigned char *> cnp.PyArray_DATA(accepted)
    cdef void *y_ptr = cnp.PyArray_DATA(Y)
    cdef void *w_ptr = cnp.PyArray_DATA(w)
    cdef void *g_ptr = cnp.PyArray_DATA(g)
    cdef void *v_ptr = NULL if v is None else cnp.PyArray_DATA(<cnp.ndarray> v)
    cdef void *s_ptr = NULL if steps is None else cnp.PyArray_DATA(<cnp.ndarray> steps)
    cdef void *p_ptr = NULL if g_prev is None else cnp.PyArray_DATA(<cnp.ndarray> g_prev)
    cdef void *t_ptr = NULL if trial is None else cnp.PyArray_DATA(<cnp.ndarray> trial)
    cdef long long *res = <long long *> cnp.PyArray_DATA(result)
    if X.dtype == np.float64:
        with nogil:
            done = full_batch_run[double](
                &layout.net, <const double *> y_ptr, N, chunk,
                slots_per_thread, num_threads, rule, par, &loss, <double *> w_ptr,
                <double *> g_ptr,
                <double *> v_ptr, <double *> s_ptr, <double *> p_ptr, <double *> t_ptr, st, k,
                r_in, r_aug, r_lr, r_acc, &status)
            res[1] = status
            res[0] = done
    else:
        with nogil:
            done = full_batch_run[float](
                &layout.net, <const float *> y_ptr, N, chunk,
                slots_per_thread, num_threads, rule, par, &loss, <float *> w_ptr,
                <float *> g_ptr,
                <float *> v_ptr, <float *> s_ptr, <float *> p_ptr, <float *> t_ptr, st, k,
                r_in, r_aug, r_lr, r_acc, &status)
            res[1] = status
            res[0] = done
    if done < 0:
        raise MemoryError("fastbp could not allocate its scratch memory")


def sum_squares_pairwise(cnp.ndarray a, Py_ssize_t block):
    """sum a^2 in float64 in the order of NumPy's sum in blocks of `block` elements (0: one
    pairwise sum), as the full-batch epochs compute the penalty (a test hook: with
    fastbp._api.numpy_sum_block(), float(np.square(a, dtype=np.float64).sum()) is the same)."""
    if a.dtype == np.float64:
        return sum_squares[double](<const double *> cnp.PyArray_DATA(a), a.size, block)
    return sum_squares[float](<const float *> cnp.PyArray_DATA(a), a.size, block)
