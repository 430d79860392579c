# The compiled kernels of fastbp.
#
# Layers of this file, from the inside out (the design of scikit-learn's _loss.pyx):
#   (a) per-tile steps, `noexcept nogil`: forward_tile, sensitivities_tile, gradient_tile. Each runs
#       the lecture's per-sample algorithm for the samples of one tile (64) side by side, with
#       the inner loops in the micro-kernels of _simd.h;
#   (b) run_chunk: the tiles of one fixed-size chunk of the batch, summed into that chunk's own
#       buffer;
#   (c) run_batch: the OpenMP driver. Chunks are handed out in rounds, each chunk's partial sums
#       land in a slot of its own, and the slots are added to the float64 totals in chunk order, so
#       the result is bitwise the same for any number of threads;
#   (d) the private `def` entry points, called by fastbp/_api.py once every argument is checked and
#       converted (C-contiguous, one float dtype, finite, shapes consistent). Nothing here
#       re-checks.
#
# Tile layout: x(l) of a tile is (d(l)+1) rows of `tile` samples, row 0 all ones (the bias
# input); delta(l) is d(l) rows. Padded samples of a last, partial tile get zero sensitivities, so
# they add exactly nothing to the gradient.

from cython.parallel cimport prange, threadid
from libc.math cimport pow, sqrt, sqrtf
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
    void fastbp_aligned_free(void *p)
    int fastbp_cpu_level()
    const char *fastbp_select_kernels(int max_level)
    void fastbp_pack_d(const double *src, Py_ssize_t sk, Py_ssize_t si, int K, int m, double *panel)
    void fastbp_pack_f(const float *src, Py_ssize_t sk, Py_ssize_t si, int K, int m, float *panel)
    int fastbp_sample_block_d()
    int fastbp_sample_block_f()
    void fastbp_linear_d(const double *panel, int K, int m, const double *inp, Py_ssize_t ld,
                         double *out, int ns)
    void fastbp_linear_f(const float *panel, int K, int m, const float *inp, Py_ssize_t ld,
                         float *out, int ns)
    void fastbp_outer_d(const double *X, int rows, const double *D, int cols, Py_ssize_t ld,
                        int ns, double *G, double *work)
    void fastbp_outer_f(const float *X, int rows, const float *D, int cols, Py_ssize_t ld,
                        int ns, float *G, float *work)
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
    void fastbp_load_inputs_d(const double *X, const Py_ssize_t *rows, Py_ssize_t t, int nb, int d0,
                              double *x0, Py_ssize_t ld, int ns)
    void fastbp_load_inputs_f(const float *X, const Py_ssize_t *rows, Py_ssize_t t, int nb, int d0,
                              float *x0, Py_ssize_t ld, int ns)

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


cdef struct Net:
    int L                       # number of layers with weights
    int activation              # theta of the hidden layers, an Activation
    int output                  # theta of the output layer and the error measure, an Output
    const void *sample_weight   # (N,) weights w_n of the samples, the weights' dtype; NULL: all 1
    int tile                    # samples per tile: the row length of every tile array
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
    # softmax's two log-sum-exp rows (cross-entropy outputs only)
    Py_ssize_t out_off
    Py_ssize_t scratch_len      # elements of one thread's scratch
    void *panels                # the packed panels of this call


# ---------------------------------------------------------------------------------------------
# (a) per-tile steps

cdef inline void linear(const floating *panel, int K, int m, const floating *inp, Py_ssize_t ld,
                        floating *out, int ns) noexcept nogil:
    if floating is double:
        fastbp_linear_d(panel, K, m, inp, ld, out, ns)
    else:
        fastbp_linear_f(panel, K, m, inp, ld, out, ns)


cdef inline void tanh_rows(floating *x, int rows, Py_ssize_t ld, int ns) noexcept nogil:
    """tanh in place on the first ns samples of `rows` tile rows."""
    if floating is double:
        fastbp_tanh_d(x, rows, ld, ns)
    else:
        fastbp_tanh_f(x, rows, ld, ns)


cdef inline void dtanh_mul_rows(floating *delta, const floating *x, int rows, Py_ssize_t ld,
                                int ns) noexcept nogil:
    """delta *= 1 - x^2 on the first ns samples of `rows` tile rows."""
    if floating is double:
        fastbp_dtanh_mul_d(delta, x, rows, ld, ns)
    else:
        fastbp_dtanh_mul_f(delta, x, rows, ld, ns)


cdef inline void activate_rows(int activation, floating *x, int rows, Py_ssize_t ld,
                               int ns) noexcept nogil:
    """x = theta(s) in place on the first ns samples of `rows` tile rows."""
    if activation == ACT_TANH:
        tanh_rows(x, rows, ld, ns)
    elif activation == ACT_RELU:
        if floating is double:
            fastbp_relu_d(x, rows, ld, ns)
        else:
            fastbp_relu_f(x, rows, ld, ns)
    elif activation == ACT_LOGISTIC:
        if floating is double:
            fastbp_logistic_d(x, rows, ld, ns)
        else:
            fastbp_logistic_f(x, rows, ld, ns)


cdef inline void dactivation_mul_rows(int activation, floating *delta, const floating *x, int rows,
                                      Py_ssize_t ld, int ns) noexcept nogil:
    """delta *= theta'(s), from x = theta(s), on the first ns samples of `rows` tile rows."""
    if activation == ACT_TANH:
        dtanh_mul_rows(delta, x, rows, ld, ns)
    elif activation == ACT_RELU:
        if floating is double:
            fastbp_drelu_mul_d(delta, x, rows, ld, ns)
        else:
            fastbp_drelu_mul_f(delta, x, rows, ld, ns)
    elif activation == ACT_LOGISTIC:
        if floating is double:
            fastbp_dlogistic_mul_d(delta, x, rows, ld, ns)
        else:
            fastbp_dlogistic_mul_f(delta, x, rows, ld, ns)


cdef inline int sample_block(floating dummy) noexcept nogil:
    if floating is double:
        return fastbp_sample_block_d()
    else:
        return fastbp_sample_block_f()


cdef inline void forward_tile(
    const Net *net,
    const floating *X,      # IN  (N, d(0)), row-major: the tile's samples are rows t..t+nb-1
    const Py_ssize_t *rows,  # IN  NULL, or the tile's samples are rows rows[t..t+nb-1]
    Py_ssize_t t,           # IN  first sample of the tile
    Py_ssize_t nb,          # IN  samples in the tile, 1..tile
    int ns,                 # IN  samples to compute: nb rounded up to a whole vector
    floating *scratch,      # OUT x(l) of the tile, l = 0..L, at net.act_off[l]
) noexcept nogil:
    cdef Py_ssize_t ld = net.tile
    cdef floating *x0 = scratch + net.act_off[0] + ld
    cdef const floating *panels = <const floating *> net.panels
    cdef int l, d_out
    cdef floating *x
    cdef floating *sL = scratch + net.out_off
    # x(0) without its row of ones: the inputs, turned feature-major; padding samples are zero
    if floating is double:
        fastbp_load_inputs_d(X, rows, t, <int> nb, net.widths[0], x0, ld, ns)
    else:
        fastbp_load_inputs_f(X, rows, t, <int> nb, net.widths[0], x0, ld, ns)
    for l in range(1, net.L + 1):
        d_out = net.widths[l]
        # s(l) = W(l)^T x(l-1), written below the row of ones of x(l)
        x = scratch + net.act_off[l] + ld
        linear(panels + net.fwd_off[l], net.widths[l - 1] + 1, d_out,
               scratch + net.act_off[l - 1], ld, x, ns)
        if l < net.L:
            activate_rows(net.activation, x, d_out, ld, ns)
        elif net.output == OUT_TANH:
            tanh_rows(x, d_out, ld, ns)
        elif net.output != OUT_LINEAR:
            # the cross-entropy is computed from s(L), never from the rounded x(L)
            memcpy(sL, x, d_out * ld * sizeof(floating))
            if net.output == OUT_LOGISTIC:
                if floating is double:
                    fastbp_logistic_d(x, d_out, ld, ns)
                else:
                    fastbp_logistic_f(x, d_out, ld, ns)
            elif floating is double:
                fastbp_softmax_d(x, d_out, ld, ns, sL + d_out * ld, sL + (d_out + 1) * ld)
            else:
                fastbp_softmax_f(x, d_out, ld, ns, sL + d_out * ld, sL + (d_out + 1) * ld)


cdef inline double sensitivities_tile(
    const Net *net,
    const floating *Y,      # IN  (N, d(L)), row-major: targets, indexed as X in forward_tile
    const Py_ssize_t *rows,  # IN  NULL, or the tile's targets are rows rows[t..t+nb-1]
    Py_ssize_t t,           # IN  first sample of the tile
    Py_ssize_t nb,          # IN  samples in the tile
    int ns,                 # IN  samples computed (padding ones get zero sensitivities)
    floating *scratch,      # IN  x(l) (and s(L)) from forward_tile; OUT delta(l), l = 1..L
    bint backward,          # IN  0: only the error, no sensitivities
) noexcept nogil:
    """Sum over the tile of w_n e_n (w_n = 1 without sample weights); with `backward`, every
    delta(l) of the tile, each times w_n (backpropagation is linear in delta(L), so this weights
    the sample's whole gradient)."""
    cdef int L = net.L
    cdef int dL = net.widths[L]
    cdef Py_ssize_t ld = net.tile
    cdef const floating *xL = scratch + net.act_off[L] + ld
    cdef const floating *sL = scratch + net.out_off
    cdef floating *tail = scratch + net.out_off + dL * ld
    cdef const floating *mx = sL + dL * ld
    cdef const floating *logsum = sL + (dL + 1) * ld
    cdef const floating *panels = <const floating *> net.panels
    cdef const floating *sw = <const floating *> net.sample_weight
    cdef floating *delta = scratch + net.delta_off[L]
    cdef floating e, xv, wn
    cdef double err = 0.0
    cdef double en, sv
    cdef Py_ssize_t b, n
    cdef int j, l
    cdef const floating *yb
    if net.output <= OUT_LINEAR and sw == NULL:
        # squared error, the lecture's case (and fastbp 0.1's arithmetic, bit for bit)
        for j in range(dL):
            for b in range(nb):
                yb = Y + (rows[t + b] if rows != NULL else t + b) * dL
                xv = xL[j * ld + b]
                e = xv - yb[j]
                err += e * e
                if backward:
                    # delta(L) = 2 (x(L) - y) theta'(s(L)), theta' = 1 - x^2 for tanh, 1 for linear
                    delta[j * ld + b] = 2 * e if net.output == OUT_LINEAR else 2 * e * (1 - xv * xv)
            if backward:
                for b in range(nb, ns):
                    delta[j * ld + b] = 0
    else:
        if net.output == OUT_LOGISTIC:
            # log(1 + exp(-|s(L)|)) of the tile, vectorised (libm's log1p and exp, value by value,
            # cost several times a small network's whole gradient)
            memcpy(tail, sL, dL * ld * sizeof(floating))
            if floating is double:
                fastbp_log1p_exp_d(tail, dL, ld, ns)
            else:
                fastbp_log1p_exp_f(tail, dL, ld, ns)
        for j in range(dL):
            for b in range(nb):
                n = rows[t + b] if rows != NULL else t + b
                yb = Y + n * dL
                xv = xL[j * ld + b]
                e = xv - yb[j]
                wn = sw[n] if sw != NULL else 1
                if net.output <= OUT_LINEAR:
                    en = e * e
                    e = 2 * e if net.output == OUT_LINEAR else 2 * e * (1 - xv * xv)
                elif net.output == OUT_LOGISTIC:
                    # -y log sigma(s) - (1 - y) log(1 - sigma(s))
                    #   = max(s, 0) - y s + log(1 + e^-|s|)
                    sv = sL[j * ld + b]
                    en = ((sv if sv > 0 else 0.0) - yb[j] * sv) + tail[j * ld + b]
                else:
                    # -y_k log x_k = y_k (log-sum-exp(s) - s_k), the log-sum-exp as mx + logsum
                    en = yb[j] * ((<double> mx[b] - sL[j * ld + b]) + logsum[b])
                # delta(L) = x(L) - y for both cross-entropies (their theta' cancels the log's 1/x)
                if sw != NULL:
                    en = en * wn
                    e = e * wn
                err += en
                if backward:
                    delta[j * ld + b] = e
            if backward:
                for b in range(nb, ns):
                    delta[j * ld + b] = 0
    if not backward:
        return err
    for l in range(L - 1, 0, -1):
        # delta(l) = theta'(s(l)) * [W(l+1) delta(l+1)] without the bias row
        delta = scratch + net.delta_off[l]
        linear(panels + net.bwd_off[l], net.widths[l + 1], net.widths[l],
               scratch + net.delta_off[l + 1], ld, delta, ns)
        dactivation_mul_rows(net.activation, delta, scratch + net.act_off[l] + ld, net.widths[l],
                             ld, ns)
    return err


cdef inline void gradient_tile(
    const Net *net,
    floating *scratch,        # IN  x(l) and delta(l) of the tile; room for the kernel's work
    int ns,                   # IN  samples computed (padding ones have zero sensitivities)
    floating *grad,           # IN/OUT sums of x(l-1) delta(l)^T, dW(l) at net.grad_off[l]
) noexcept nogil:
    cdef int l
    for l in range(1, net.L + 1):
        if floating is double:
            fastbp_outer_d(scratch + net.act_off[l - 1], net.widths[l - 1] + 1,
                           scratch + net.delta_off[l], net.widths[l], net.tile, ns,
                           grad + net.grad_off[l], scratch + net.work_off)
        else:
            fastbp_outer_f(scratch + net.act_off[l - 1], net.widths[l - 1] + 1,
                           scratch + net.delta_off[l], net.widths[l], net.tile, ns,
                           grad + net.grad_off[l], scratch + net.work_off)


# ---------------------------------------------------------------------------------------------
# (b) one chunk

cdef double run_chunk(
    const Net *net,
    const floating *X,       # IN  (N, d(0))
    const floating *Y,       # IN  (N, d(L)), unused in MODE_FORWARD
    const Py_ssize_t *rows,  # IN  NULL, or sample i of the batch is row rows[i] of X and Y
    floating *outputs,       # OUT (N, d(L)) in MODE_FORWARD
    Py_ssize_t start,        # IN  first sample of the chunk
    Py_ssize_t stop,         # IN  one past its last sample
    floating *scratch,       # IN/OUT this thread's scratch
    floating *grad,          # OUT the chunk's gradient sums (MODE_GRADIENT)
    int mode,
) noexcept nogil:
    cdef int dL = net.widths[net.L]
    cdef Py_ssize_t ld = net.tile
    cdef Py_ssize_t t, nb, b
    cdef int j, ns
    cdef int block = sample_block(<floating> 0)
    cdef double err = 0.0
    cdef const floating *xL = scratch + net.act_off[net.L] + ld
    if mode == MODE_GRADIENT:
        memset(grad, 0, net.n_params * sizeof(floating))
    t = start
    while t < stop:
        nb = min(ld, stop - t)
        ns = <int> ((nb + block - 1) // block * block)
        forward_tile(net, X, rows, t, nb, ns, scratch)
        if mode == MODE_FORWARD:
            for b in range(nb):
                for j in range(dL):
                    outputs[(t + b) * dL + j] = xL[j * ld + b]
        else:
            err += sensitivities_tile(net, Y, rows, t, nb, ns, scratch, mode == MODE_GRADIENT)
            if mode == MODE_GRADIENT:
                gradient_tile(net, scratch, ns, grad)
        t += ld
    return err


# ---------------------------------------------------------------------------------------------
# (c) the OpenMP driver

cdef void init_scratch(const Net *net, floating *scratch) noexcept nogil:
    """Write the rows of ones (the bias inputs) of x(0), ..., x(L-1); they never change."""
    cdef int l, b
    for l in range(net.L):
        for b in range(net.tile):
            scratch[net.act_off[l] + b] = 1


cdef void pack_layer(const Net *net, int l, floating *panels) noexcept nogil:
    """The panels W(l) is read from: forward W(l), and (l > 1) W(l) without its bias row as the
    backward panel of delta(l-1)."""
    cdef int d = net.widths[l]
    if floating is double:
        fastbp_pack_d(<const double *> net.weights[l - 1], d, 1, net.widths[l - 1] + 1, d,
                      panels + net.fwd_off[l])
        if l > 1:
            fastbp_pack_d(<const double *> net.weights[l - 1] + d, 1, d, d, net.widths[l - 1],
                          panels + net.bwd_off[l - 1])
    else:
        fastbp_pack_f(<const float *> net.weights[l - 1], d, 1, net.widths[l - 1] + 1, d,
                      panels + net.fwd_off[l])
        if l > 1:
            fastbp_pack_f(<const float *> net.weights[l - 1] + d, 1, d, d, net.widths[l - 1],
                          panels + net.bwd_off[l - 1])


cdef void pack_panels(const Net *net, floating *panels) noexcept nogil:
    """The weights as the kernels read them: W(l) forward, W(l+1) without its bias row backward."""
    cdef int l
    for l in range(1, net.L + 1):
        pack_layer(net, l, panels)


cdef enum:
    PARALLEL_MERGE = 16384     # below this many additions a merge runs on one thread
    MERGE_BLOCK = 4096         # parameters per piece of a parallel merge


cdef inline void merge_slots(double *grad_sum, const floating *grads, Py_ssize_t grad_len,
                             Py_ssize_t count, Py_ssize_t p0, Py_ssize_t p1) noexcept nogil:
    """grad_sum[p] += slot 0, then slot 1, ... for p in [p0, p1)."""
    cdef Py_ssize_t s, p
    for s in range(count):
        for p in range(p0, p1):
            grad_sum[p] = grad_sum[p] + grads[s * grad_len + p]


cdef int run_batch(
    Net *net,
    const floating *X,          # IN  (N, d(0))
    const floating *Y,          # IN  (N, d(L)) or NULL
    floating *outputs,          # OUT (N, d(L)) in MODE_FORWARD, else NULL
    Py_ssize_t N,
    Py_ssize_t chunk,           # IN  samples per chunk, a multiple of the tile
    int slots_per_thread,       # IN  chunks per thread per round
    int num_threads,
    int mode,
    double *error_sum,          # OUT sum of squared errors (MODE_ERROR, MODE_GRADIENT)
    double *grad_sum,           # OUT (n_params,) gradient sums (MODE_GRADIENT), zeroed by caller
) noexcept nogil:
    """Return 0, or -1 when scratch memory could not be had (nothing was written then)."""
    cdef Py_ssize_t n_chunks = (N + chunk - 1) // chunk
    cdef Py_ssize_t slots = <Py_ssize_t> num_threads * slots_per_thread
    cdef Py_ssize_t grad_len = net.n_params if mode == MODE_GRADIENT else 0
    cdef floating *scratch = <floating *> fastbp_aligned_calloc(
        num_threads * net.scratch_len * sizeof(floating))
    cdef floating *grads = <floating *> fastbp_aligned_calloc(
        (slots * grad_len + 1) * sizeof(floating))
    cdef floating *panels = <floating *> fastbp_aligned_calloc(net.n_panel * sizeof(floating))
    cdef double *errors = <double *> fastbp_aligned_calloc(slots * sizeof(double))
    cdef Py_ssize_t first, count, s, p0, start, stop
    cdef int tid
    cdef double err = 0.0
    if scratch == NULL or grads == NULL or errors == NULL or panels == NULL:
        fastbp_aligned_free(scratch)
        fastbp_aligned_free(grads)
        fastbp_aligned_free(errors)
        fastbp_aligned_free(panels)
        return -1
    pack_panels(net, panels)
    net.panels = panels
    for tid in range(num_threads):
        init_scratch(net, scratch + tid * net.scratch_len)

    first = 0
    while first < n_chunks:
        count = min(slots, n_chunks - first)
        if num_threads > 1 and count > 1:
            # dynamic: a thread slowed down (a busy core) holds up no one; which thread computes
            # a chunk does not change the result, each chunk has its slot
            for s in prange(count, nogil=True, schedule='dynamic', num_threads=num_threads):
                start = (first + s) * chunk
                stop = min(start + chunk, N)
                errors[s] = run_chunk(net, X, Y, NULL, outputs, start, stop,
                                      scratch + threadid() * net.scratch_len,
                                      grads + s * grad_len, mode)
        else:
            for s in range(count):
                start = (first + s) * chunk
                stop = min(start + chunk, N)
                errors[s] = run_chunk(net, X, Y, NULL, outputs, start, stop, scratch,
                                      grads + s * grad_len, mode)
        # the ordered reduction: chunk after chunk, whatever thread computed it
        for s in range(count):
            err = err + errors[s]
        if grad_len and num_threads > 1 and grad_len * count >= PARALLEL_MERGE:
            # each thread adds up its own range of parameters, still chunk after chunk
            for p0 in prange(0, grad_len, MERGE_BLOCK, nogil=True, schedule='dynamic',
                             num_threads=num_threads):
                merge_slots(grad_sum, grads, grad_len, count, p0, min(p0 + MERGE_BLOCK, grad_len))
        elif grad_len:
            merge_slots(grad_sum, grads, grad_len, count, 0, grad_len)
        first += slots
    error_sum[0] = err
    net.panels = NULL
    fastbp_aligned_free(scratch)
    fastbp_aligned_free(grads)
    fastbp_aligned_free(errors)
    fastbp_aligned_free(panels)
    return 0


cdef inline double batch_scale(const Net *net, const floating *sw, const Py_ssize_t *order,
                               Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    """1 / (the total weight of the samples order[start:stop]), the `mean` of a mini-batch:
    1 / |batch| without sample weights; 0 for a batch whose weights are all 0 (no step from it).
    The weights are added one by one in float64; fastbp.gradient adds them with NumPy's pairwise
    sum, which may round the total differently in its last bit."""
    cdef double total = 0.0
    cdef Py_ssize_t i
    if sw == NULL:
        return 1.0 / (stop - start)
    for i in range(start, stop):
        total += sw[order[i]]
    return 1.0 / total if total > 0 else 0.0


cdef inline floating root(floating a) noexcept nogil:
    """The square root, correctly rounded in the argument's own type (as NumPy's np.sqrt)."""
    if floating is double:
        return sqrt(a)
    else:
        return sqrtf(a)


cdef enum Rule:
    RULE_SGD = 0         # w -= lr g, or with momentum: v = mu v - lr g; w += v
    RULE_NESTEROV = 1    # v = mu v - lr g; w += mu v - lr g
    RULE_ADAM = 2        # Adam, with scikit-learn's bias correction folded into the step


cdef int sgd_epoch_run(
    Net *net,
    floating **weights,         # IN/OUT W(1..L), updated after every mini-batch
    floating **velocity,        # IN/OUT v(1..L) (momentum > 0), Adam's first moments m, or unused
    floating **moment2,         # IN/OUT Adam's second moments, else unused
    const floating *X,          # IN  (N, d(0))
    const floating *Y,          # IN  (N, d(L))
    const Py_ssize_t *order,    # IN  the epoch's permutation of 0..N-1
    Py_ssize_t N,
    Py_ssize_t batch_size,
    Py_ssize_t chunk,           # IN  samples per chunk, as `gradient` would use
    int rule,                   # IN  RULE_SGD, RULE_NESTEROV or RULE_ADAM
    double lr,
    double momentum,            # IN  mu (RULE_SGD, RULE_NESTEROV); Adam's beta1
    double beta2,               # IN  Adam's beta2
    double eps,                 # IN  Adam's epsilon
    long long *steps,           # IN/OUT Adam's step count t, before and after the epoch
    double decay,               # IN  2 lambda / N, or 0
    double grad_scale,          # IN  c: the step follows c times the mean gradient (1: fastbp)
    double l2,                  # IN  alpha of scikit-learn's L2 term, or 0
    double *loss,               # OUT scikit-learn's epoch loss, summed (see below), when l2 or c
) noexcept nogil:
    """One epoch of mini-batch SGD (or Adam), step after step, without returning to Python.

    Each step computes exactly what fastbp.gradient(reduction="mean") returns for the batch (the
    same tiles and chunks, float64 sums in chunk order, scaled by 1/|batch| (see batch_scale for
    sample weights), rounded to the weights' dtype) and then, in the weights' dtype and in this
    order of operations, g += decay w and
      RULE_SGD:       v = momentum v; v -= lr g; w += v (momentum > 0) or w -= lr g;
      RULE_NESTEROV:  v = momentum v; v -= lr g; w += momentum v - lr g;
      RULE_ADAM:      t += 1; lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t) (in double);
                      m = beta1 m + (1 - beta1) g; s = beta2 s + (1 - beta2) g^2;
                      w -= lr_t m / (sqrt(s) + eps),
    the steps of fastbp._methods (scalars rounded to the weights' dtype, as NumPy rounds a Python
    float against a float32 array). The code here is compiled for the baseline instruction set, so
    no multiply-add is fused and the rounding is that of those NumPy expressions.

    scikit-learn's MLP (fastbp.sklearn) steps along another gradient of the same sums: c times the
    mean (c = grad_scale, 1/2 for its squared error), plus alpha / (the batch's total weight)
    times the weights of rows 1.. (its L2 term spares the intercepts: l2 = alpha). Its epoch loss
    sums, over the batches, |batch| times the batch's loss at the weights the batch saw; the two
    parts of that sum come back apart, since scikit-learn scales the error part by its own
    factor: loss[1] += |batch| err_batch / total (err_batch the kernel's sum of w_n e_n) and
    loss[0] += |batch| (l2 / 2) ||W(rows 1..)||^2 / total (0 when l2 = 0).
    Return 0, or -1 when memory could not be had (the weights are untouched then).
    """
    cdef Py_ssize_t P = net.n_params
    cdef floating *scratch = <floating *> fastbp_aligned_calloc(net.scratch_len * sizeof(floating))
    cdef floating *chunk_grad = <floating *> fastbp_aligned_calloc((P + 1) * sizeof(floating))
    cdef floating *grad = <floating *> fastbp_aligned_calloc((P + 1) * sizeof(floating))
    cdef double *grad64 = <double *> fastbp_aligned_calloc((P + 1) * sizeof(double))
    cdef floating *panels = <floating *> fastbp_aligned_calloc(net.n_panel * sizeof(floating))
    cdef Py_ssize_t start, stop, c0, c1, p, i, n
    cdef double scale
    cdef int l
    cdef floating *w
    cdef floating *g
    cdef floating *v
    cdef floating *s2
    cdef floating step, update
    cdef floating lr_f = <floating> lr
    cdef floating mu = <floating> momentum
    cdef floating b1 = <floating> momentum
    cdef floating one_b1 = <floating> (1.0 - momentum)
    cdef floating b2 = <floating> beta2
    cdef floating one_b2 = <floating> (1.0 - beta2)
    cdef floating eps_f = <floating> eps
    cdef floating lr_t = 0
    cdef floating decay_f = <floating> decay
    cdef floating l2_f
    cdef double batch_err, coef_sq
    cdef Py_ssize_t first_coef
    if scratch == NULL or chunk_grad == NULL or grad == NULL or grad64 == NULL or panels == NULL:
        fastbp_aligned_free(scratch)
        fastbp_aligned_free(chunk_grad)
        fastbp_aligned_free(grad)
        fastbp_aligned_free(grad64)
        fastbp_aligned_free(panels)
        return -1
    init_scratch(net, scratch)
    net.panels = panels
    pack_panels(net, panels)
    start = 0
    while start < N:
        stop = min(start + batch_size, N)
        scale = batch_scale(net, <const floating *> net.sample_weight, order, start, stop)
        l2_f = <floating> (l2 * scale)
        if stop - start <= chunk:
            # one chunk (the usual mini-batch): its sums go straight to the step, with the same
            # rounding as through the float64 total (0.0 + x, not x: the sign of a zero included);
            # converted layer by layer below, while each layer's sums are in cache
            batch_err = run_chunk(net, X, Y, order, <floating *> NULL, start, stop, scratch,
                                  chunk_grad, MODE_GRADIENT)
        else:
            memset(grad64, 0, P * sizeof(double))
            batch_err = 0.0
            c0 = start
            while c0 < stop:
                c1 = min(c0 + chunk, stop)
                batch_err += run_chunk(net, X, Y, order, <floating *> NULL, c0, c1, scratch,
                                       chunk_grad, MODE_GRADIENT)
                for p in range(P):
                    grad64[p] = grad64[p] + chunk_grad[p]
                c0 = c1
            for p in range(P):
                grad[p] = <floating> (grad64[p] * scale * grad_scale)
        if loss != NULL:
            coef_sq = 0.0
            if l2 != 0:
                for l in range(net.L):
                    w = weights[l]
                    n = <Py_ssize_t> (net.widths[l] + 1) * net.widths[l + 1]
                    for i in range(net.widths[l + 1], n):
                        coef_sq += <double> w[i] * w[i]
            loss[1] += batch_err * scale * (stop - start)
            loss[0] += 0.5 * l2 * coef_sq * scale * (stop - start)
        if rule == RULE_ADAM:
            steps[0] += 1
            lr_t = <floating> (lr * sqrt(1.0 - pow(beta2, <double> steps[0]))
                               / (1.0 - pow(momentum, <double> steps[0])))
        # layer by layer, each layer's update and the packing of its panels for the next step
        # while its weights are in cache (a wide layer does not fit in L2 twice over)
        for l in range(net.L):
            w = weights[l]
            g = grad + net.grad_off[l + 1]
            n = <Py_ssize_t> (net.widths[l] + 1) * net.widths[l + 1]
            if stop - start <= chunk:
                for i in range(n):
                    g[i] = <floating> ((0.0 + chunk_grad[net.grad_off[l + 1] + i]) * scale
                                       * grad_scale)
            if decay != 0:
                for i in range(n):
                    step = decay_f * w[i]
                    g[i] = g[i] + step
            if l2 != 0:
                first_coef = net.widths[l + 1]          # row 0, the intercepts, has no L2
                for i in range(first_coef, n):
                    step = l2_f * w[i]
                    g[i] = g[i] + step
            if rule == RULE_ADAM:
                v = velocity[l]
                s2 = moment2[l]
                for i in range(n):
                    v[i] = b1 * v[i] + one_b1 * g[i]
                    s2[i] = b2 * s2[i] + one_b2 * (g[i] * g[i])
                    update = lr_t * v[i] / (root(s2[i]) + eps_f)
                    w[i] = w[i] - update
            elif rule == RULE_NESTEROV:
                v = velocity[l]
                for i in range(n):
                    v[i] = v[i] * mu
                    step = lr_f * g[i]
                    v[i] = v[i] - step
                    update = mu * v[i] - step
                    w[i] = w[i] + update
            elif momentum != 0:
                v = velocity[l]
                for i in range(n):
                    v[i] = v[i] * mu
                    step = lr_f * g[i]
                    v[i] = v[i] - step
                    w[i] = w[i] + v[i]
            else:
                for i in range(n):
                    step = lr_f * g[i]
                    w[i] = w[i] - step
            pack_layer(net, l + 1, panels)
        start = stop
    net.panels = NULL
    fastbp_aligned_free(scratch)
    fastbp_aligned_free(chunk_grad)
    fastbp_aligned_free(grad)
    fastbp_aligned_free(grad64)
    fastbp_aligned_free(panels)
    return 0


# ---------------------------------------------------------------------------------------------
# (d) entry points for fastbp/_api.py

cdef class _Layout:
    """The C description of a checked network, and the memory it points into (one allocation)."""
    cdef Net net
    cdef void *block
    cdef list weights
    cdef object sample_weight

    def __cinit__(self, list weights, list widths, tuple spec, int tile):
        """spec: (activation code, output code, sample weights or None), the codes those of
        Activation and Output; sample weights C-contiguous (N,) of the weights' dtype."""
        cdef int L = len(weights)
        cdef int l
        cdef Py_ssize_t pos, n_params, n_panel
        cdef int widest = 1
        cdef int *w_c
        cdef Py_ssize_t *offs
        cdef const void **ptrs
        self.block = NULL
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
        pos = 0
        for l in range(L + 1):
            act_off[l] = pos
            pos += <Py_ssize_t> (w_c[l] + 1) * tile
        for l in range(1, L + 1):
            delta_off[l] = pos
            pos += <Py_ssize_t> w_c[l] * tile
        self.net.work_off = pos
        for l in range(1, L + 1):
            widest = max(widest, w_c[l])
        pos += <Py_ssize_t> (widest + FASTBP_MAX_LANES) * tile
        self.net.out_off = pos
        if spec[1] == OUT_LOGISTIC or spec[1] == OUT_SOFTMAX:   # s(L) for the cross-entropy
            pos += <Py_ssize_t> (2 * w_c[L] + 2) * tile
        n_params = 0
        for l in range(1, L + 1):
            grad_off[l] = n_params
            n_params += <Py_ssize_t> (w_c[l - 1] + 1) * w_c[l]
        n_panel = 0
        for l in range(1, L + 1):
            fwd_off[l] = n_panel
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


def select_kernels(int max_level):
    """Pick the micro-kernels, at most `max_level` (0 baseline, 1 AVX2+FMA, 2 AVX-512) and at most
    what this CPU runs; return the name of the set chosen."""
    return fastbp_select_kernels(max_level).decode()


def cpu_level():
    """0: baseline x86-64 (or not x86-64); 1: AVX2 + FMA; 2: also AVX-512."""
    return fastbp_cpu_level()


def openmp_enabled():
    return bool(fastbp_openmp_enabled())


def openmp_max_threads():
    return fastbp_openmp_max_threads()


cdef void write_gradient(const Net *net, const double *grad_sum, floating **grads, double scale,
                         bint accumulate) noexcept nogil:
    """grads[l] = scale * sum (or += with `accumulate`), rounded once to the weights' dtype."""
    cdef int l
    cdef Py_ssize_t p, n
    cdef const double *src
    cdef floating *dst
    for l in range(net.L):
        src = grad_sum + net.grad_off[l + 1]
        dst = grads[l]
        n = <Py_ssize_t> (net.widths[l] + 1) * net.widths[l + 1]
        if accumulate:
            for p in range(n):
                dst[p] = <floating> (dst[p] + src[p] * scale)
        else:
            for p in range(n):
                dst[p] = <floating> (src[p] * scale)


def run(list weights, list widths, tuple spec, cnp.ndarray X, object Y, object outputs,
        int mode, int num_threads, int tile, Py_ssize_t chunk, int slots_per_thread,
        list grads=None, double scale=1.0, bint accumulate=False):
    """Run the batch; return the sum of the errors w_n e_n (0.0 in MODE_FORWARD).

    spec is (activation code, output code, sample weights or None), as _Layout takes it.
    X, Y, outputs (and the sample weights) share the weights' dtype. In MODE_GRADIENT, `grads` holds
    one C-contiguous, aligned array per layer, of the weights' shapes and dtype: the float64 sums
    times `scale` are written there (added to them with `accumulate`).
    """
    cdef _Layout layout = _Layout(weights, widths, spec, tile)
    cdef Py_ssize_t N = X.shape[0]
    cdef int L = len(weights)
    cdef int l
    cdef void *x_ptr = cnp.PyArray_DATA(X)
    cdef void *y_ptr = NULL if Y is None else cnp.PyArray_DATA(<cnp.ndarray> Y)
    cdef void *o_ptr = NULL if outputs is None else cnp.PyArray_DATA(<cnp.ndarray> outputs)
    cdef double *g_ptr = NULL
    cdef void **out_ptrs = NULL
    cdef double err = 0.0
    cdef int status
    cdef bint is_double = cnp.PyArray_TYPE(X) == cnp.NPY_DOUBLE
    if mode == MODE_GRADIENT:
        g_ptr = <double *> calloc(layout.net.n_params + 1, sizeof(double))
        out_ptrs = <void **> calloc(L + 1, sizeof(void *))
        if g_ptr == NULL or out_ptrs == NULL:
            free(g_ptr)
            free(out_ptrs)
            raise MemoryError("fastbp could not allocate its gradient sums")
        for l in range(L):
            out_ptrs[l] = cnp.PyArray_DATA(<cnp.ndarray> grads[l])
    try:
        with nogil:
            if is_double:
                status = run_batch[double](&layout.net, <const double *> x_ptr,
                                           <const double *> y_ptr, <double *> o_ptr, N, chunk,
                                           slots_per_thread, num_threads, mode, &err, g_ptr)
                if status == 0 and mode == MODE_GRADIENT:
                    write_gradient[double](&layout.net, g_ptr, <double **> out_ptrs, scale,
                                           accumulate)
            else:
                status = run_batch[float](&layout.net, <const float *> x_ptr,
                                          <const float *> y_ptr, <float *> o_ptr, N, chunk,
                                          slots_per_thread, num_threads, mode, &err, g_ptr)
                if status == 0 and mode == MODE_GRADIENT:
                    write_gradient[float](&layout.net, g_ptr, <float **> out_ptrs, scale,
                                          accumulate)
    finally:
        free(g_ptr)
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
    forward_tile(net, x, NULL, 0, 1, block, scratch)
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


def sgd_epoch(list weights, list widths, tuple spec, cnp.ndarray X, cnp.ndarray Y,
              cnp.ndarray order, Py_ssize_t batch_size, double lr, double momentum,
              object velocity, double decay, int tile, Py_ssize_t chunk, int rule=RULE_SGD,
              object moment2=None, double beta2=0.999, double eps=1e-8, long long steps=0,
              double grad_scale=1.0, double l2=0.0):
    """One epoch of mini-batch SGD or Adam in place on `weights` (and `velocity`, `moment2`); see
    sgd_epoch_run. Returns (Adam's step count after the epoch (`steps` unchanged for SGD),
    the epoch's summed L2 loss, its summed error part) (see sgd_epoch_run: scikit-learn's loss).

    weights, velocity and moment2 are C-contiguous, writeable, of X's dtype; order is an intp
    permutation; spec as for run. rule: 0 SGD (with momentum when momentum > 0), 1 Nesterov,
    2 Adam (momentum is then beta1, velocity the first moments and moment2 the second)."""
    cdef _Layout layout = _Layout(weights, widths, spec, tile)
    cdef int L = len(weights)
    cdef int l
    cdef int status
    cdef Py_ssize_t N = X.shape[0]
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
                <double **> &ptr_view[2 * L],
                <const double *> cnp.PyArray_DATA(X), <const double *> cnp.PyArray_DATA(Y),
                order_ptr, N, batch_size, chunk, rule, lr, momentum, beta2, eps, &steps, decay,
                grad_scale, l2, loss)
    else:
        with nogil:
            status = sgd_epoch_run[float](
                &layout.net, <float **> &ptr_view[0], <float **> &ptr_view[L],
                <float **> &ptr_view[2 * L],
                <const float *> cnp.PyArray_DATA(X), <const float *> cnp.PyArray_DATA(Y),
                order_ptr, N, batch_size, chunk, rule, lr, momentum, beta2, eps, &steps, decay,
                grad_scale, l2, loss)
    if status != 0:
        raise MemoryError("fastbp could not allocate its scratch memory")
    return steps, loss[0], loss[1]


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
    with no NaN or inf (screened on num_threads threads)."""
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
    (N,) for d(L) = 1), else None. X is screened for NaN and infinity on x_threads threads.
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
