# Included by fastbp/_core.pyx (one extension module): the OpenMP driver (run_batch): chunks
# handed out in rounds, each chunk's sums in a slot of its own, the slots added in chunk order.
# The declarations it uses (floating, Net, the _simd.h kernels, the enums) are _core.pyx's.

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


cdef struct Batch:
    # run_batch's buffers, allocated once for any number of batches of the same network, size,
    # plan and dtype (fastbp/_full_batch_epochs.pxi runs a whole block of epochs on one)
    void *scratch               # num_threads x scratch_len, the rows of ones written once
    void *grads                 # one gradient slot per chunk of a round
    void *panels                # the packed weights, repacked by every batch
    double *errors              # the error sum of each chunk of a round
    Py_ssize_t slots            # chunks per round
    bint scratch_ready


cdef int batch_alloc(const Net *net, Py_ssize_t N, Py_ssize_t chunk, int slots_per_thread,
                     int num_threads, bint gradient, size_t itemsize, Batch *b) noexcept nogil:
    """Allocate b for batches of N samples (gradient: with room for MODE_GRADIENT's slots).
    Return 0, or -1 when memory could not be had (nothing to free then)."""
    cdef Py_ssize_t n_chunks = (N + chunk - 1) // chunk
    cdef Py_ssize_t grad_len = net.n_params if gradient else 0
    # buffers for the chunks of one round, and no more: a small batch of 1-2 chunks would else
    # allocate and zero up to 64 gradient slots per thread for nothing
    b.slots = min(<Py_ssize_t> num_threads * slots_per_thread, n_chunks)
    b.scratch = fastbp_aligned_calloc(num_threads * net.scratch_len * itemsize)
    b.grads = fastbp_aligned_calloc((b.slots * grad_len + 1) * itemsize)
    b.panels = fastbp_aligned_calloc(net.n_panel * itemsize)
    b.errors = <double *> fastbp_aligned_calloc(b.slots * sizeof(double))
    b.scratch_ready = False
    if b.scratch == NULL or b.grads == NULL or b.errors == NULL or b.panels == NULL:
        batch_free(b)
        return -1
    return 0


cdef void batch_free(Batch *b) noexcept nogil:
    fastbp_aligned_free(b.scratch)
    fastbp_aligned_free(b.grads)
    fastbp_aligned_free(b.errors)
    fastbp_aligned_free(b.panels)
    b.scratch = b.grads = b.panels = NULL
    b.errors = NULL


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
    cdef Batch b
    if batch_alloc(net, N, chunk, slots_per_thread, num_threads, mode == MODE_GRADIENT,
                   sizeof(floating), &b) != 0:
        return -1
    run_batch_in(net, X, Y, outputs, N, chunk, num_threads, mode, error_sum, grad_sum, &b)
    batch_free(&b)
    return 0


cdef void run_batch_in(
    Net *net,
    const floating *X,          # IN  (N, d(0))
    const floating *Y,          # IN  (N, d(L)) or NULL
    floating *outputs,          # OUT (N, d(L)) in MODE_FORWARD, else NULL
    Py_ssize_t N,
    Py_ssize_t chunk,           # IN  samples per chunk, a multiple of the tile
    int num_threads,
    int mode,
    double *error_sum,          # OUT sum of squared errors (MODE_ERROR, MODE_GRADIENT)
    double *grad_sum,           # OUT (n_params,) gradient sums (MODE_GRADIENT), zeroed by caller
    Batch *b,                   # IN  buffers from batch_alloc for this N, plan and dtype
) noexcept nogil:
    """run_batch on buffers allocated already. The scratch is reused as it is between chunks:
    only the rows of ones must hold, and a padded sample's lanes add exactly nothing."""
    cdef Py_ssize_t n_chunks = (N + chunk - 1) // chunk
    cdef Py_ssize_t slots = b.slots
    cdef Py_ssize_t grad_len = net.n_params if mode == MODE_GRADIENT else 0
    cdef floating *scratch = <floating *> b.scratch
    cdef floating *grads = <floating *> b.grads
    cdef floating *panels = <floating *> b.panels
    cdef double *errors = b.errors
    cdef Py_ssize_t first, count, s, p0, start, stop
    cdef int tid
    cdef double err = 0.0
    pack_panels(net, panels)
    net.panels = panels
    if not b.scratch_ready:
        for tid in range(num_threads):
            init_scratch(net, scratch + tid * net.scratch_len)
        b.scratch_ready = True

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
