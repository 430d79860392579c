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
    # buffers for the chunks of one round, and no more: a small batch of 1-2 chunks would else
    # allocate and zero up to 64 gradient slots per thread for nothing
    cdef Py_ssize_t slots = min(<Py_ssize_t> num_threads * slots_per_thread, n_chunks)
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
