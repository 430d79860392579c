# Included by fastbp/_core.pyx (one extension module): the OpenMP driver (chunk_rounds, and
# run_batch on it): chunks handed out in rounds, each chunk's sums in a slot of its own, the slots
# added in chunk order. Every loop over the chunks of a batch runs here.
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
    if l == 1 and net.input.layout == INPUT_CSR:
        return      # read as it is (_sparse_inputs.pxi); no backward panel either
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


cdef void pack_layer_rows(const Net *net, int l, floating *panels, Py_ssize_t r0,
                          Py_ssize_t r1) noexcept nogil:
    """pack_layer for rows r0..r1-1 of W(l) only (their entries of both panels; the zeros that
    pad a panel's last block stay as pack_layer wrote them): the threads of a shared step
    (_sgd_epoch.pxi) each pack the rows they updated."""
    cdef int d = net.widths[l]
    cdef Py_ssize_t K = net.widths[l - 1] + 1
    cdef const floating *w = <const floating *> net.weights[l - 1]
    cdef floating *panel = panels + net.fwd_off[l]
    cdef floating *unit
    cdef Py_ssize_t i0, k, i
    cdef int r, block
    if l == 1 and net.input.layout == INPUT_CSR:
        return
    # forward: blocks of FASTBP_RB units (columns of W(l)), k-major within a block: row k of
    # W(l) is the k-th run of each block
    i0 = 0
    while i0 < d:
        block = <int> min(<Py_ssize_t> FASTBP_RB, d - i0)
        for k in range(r0, r1):
            for r in range(block):
                panel[k * FASTBP_RB + r] = w[k * d + i0 + r]
        panel += K * FASTBP_RB
        i0 += FASTBP_RB
    if l == 1:
        return
    # backward (delta(l-1)): unit i of layer l-1 is row i + 1 of W(l), one lane of its block
    panel = panels + net.bwd_off[l - 1]
    for i in range(max(r0, 1) - 1, r1 - 1):
        unit = panel + (i // FASTBP_RB) * d * FASTBP_RB + i % FASTBP_RB
        for k in range(d):
            unit[k * FASTBP_RB] = w[(i + 1) * d + k]


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


cdef struct Workspace:
    # The buffers of the chunk loop (chunk_rounds), allocated once for any number of batches of
    # the same network, plan and dtype: a gradient call, a block of full-batch epochs, an epoch of
    # mini-batch steps.
    void *scratch               # threads x scratch_len, the rows of ones written once
    void *grads                 # one gradient slot per chunk of a round, `stride` elements apart
    void *panels                # the packed weights, repacked whenever the weights change
    double *errors              # the error sum of each chunk of a round
    Py_ssize_t slots            # chunks per round
    Py_ssize_t stride           # elements per gradient slot: whole cache lines of its own
    int threads                 # the most threads that share the rounds
    bint scratch_ready
    long next_chunk             # the next chunk of a round to claim (shared by the team)
    # Column rounds (INPUT_CSR gradients of X's rows in order: _sparse_inputs.pxi says why): a
    # slot holds the layers above W(1) alone (`skip` entries fewer, where `grad_off` says), and
    # per chunk of a round its delta(1), chunk x d(1), and its nonzeros by column (starts,
    # samples and values, `cap` entries room)
    bint columns
    Py_ssize_t skip
    Py_ssize_t *grad_off
    void *deltas
    Py_ssize_t *starts
    int *samples
    void *values
    Py_ssize_t cap
    long next_block             # the next block of rows of dW(1) to claim (shared by the team)
    double *block_sums          # each thread's COLUMN_BLOCK x d(1) sums of its block of rows
    # NULL, or (a batch of one column round) dW(1) written there, times final_scale (added to
    # it with final_accumulate), never summed in grad_sum
    void *final
    double final_scale
    bint final_accumulate


cdef int workspace_alloc(const Net *net, Py_ssize_t max_chunks, Py_ssize_t slots, int threads,
                         bint gradient, size_t itemsize, Workspace *ws, Py_ssize_t N=0,
                         Py_ssize_t chunk=0) noexcept nogil:
    """Allocate ws for batches of at most max_chunks chunks, `slots` chunks per round (gradient:
    with gradient slots). N, chunk: the batches are X's N rows in order, `chunk` samples a chunk
    (an INPUT_CSR gradient then runs in column rounds); else 0. Return 0, or -1 when memory
    could not be had (nothing to free then)."""
    cdef Py_ssize_t c, p0, p1, q
    cdef size_t sizes[4]
    cdef int l
    # buffers for the chunks of one round, and no more: a small batch of 1-2 chunks would else
    # allocate and zero up to 64 gradient slots per thread for nothing
    ws.slots = max(1, min(slots, max_chunks))
    ws.threads = max(1, threads)
    ws.columns = gradient and chunk > 0 and net.input.layout == INPUT_CSR
    ws.skip = (net.widths[0] + 1) * net.widths[1] if ws.columns else 0
    ws.stride = (net.n_params - ws.skip + 15) // 16 * 16 if gradient else 0
    ws.scratch = fastbp_aligned_calloc(ws.threads * net.scratch_len * itemsize)
    ws.grads = fastbp_aligned_calloc((ws.slots * ws.stride + 1) * itemsize)
    ws.panels = fastbp_aligned_calloc(net.n_panel * itemsize)
    ws.errors = <double *> fastbp_aligned_calloc(ws.slots * sizeof(double))
    ws.scratch_ready = False
    ws.next_chunk = 0
    ws.next_block = 0
    ws.cap = 0
    ws.grad_off = NULL
    ws.deltas = ws.values = NULL
    ws.starts = NULL
    ws.samples = NULL
    ws.block_sums = NULL
    ws.final = NULL
    if ws.columns:
        c = 0
        while c < N:
            csr_row(&net.input, c, &p0, &q)
            csr_row(&net.input, min(c + chunk, N) - 1, &q, &p1)
            ws.cap = max(ws.cap, p1 - p0)
            c += chunk
        ws.grad_off = <Py_ssize_t *> fastbp_aligned_calloc((net.L + 1) * sizeof(Py_ssize_t))
        ws.block_sums = <double *> fastbp_aligned_calloc(ws.threads * COLUMN_BLOCK
                                                         * net.widths[1] * sizeof(double))
        # one block, so that a call after call keeps it (_simd.h), written before it is read
        sizes[0] = ws.slots * chunk * net.widths[1] * itemsize
        sizes[1] = ws.slots * (net.widths[0] + 2) * sizeof(Py_ssize_t)
        sizes[2] = ws.slots * ws.cap * sizeof(int)
        sizes[3] = ws.slots * ws.cap * itemsize
        for l in range(4):
            sizes[l] = (sizes[l] + 63) // 64 * 64
        ws.deltas = fastbp_aligned_malloc(sizes[0] + sizes[1] + sizes[2] + sizes[3] + 64)
        if ws.deltas != NULL:
            ws.starts = <Py_ssize_t *> (<char *> ws.deltas + sizes[0])
            ws.samples = <int *> (<char *> ws.starts + sizes[1])
            ws.values = <char *> ws.samples + sizes[2]
        if ws.grad_off != NULL:
            for l in range(2, net.L + 1):
                ws.grad_off[l] = net.grad_off[l] - ws.skip
    if (ws.scratch == NULL or ws.grads == NULL or ws.errors == NULL or ws.panels == NULL
            or (ws.columns and (ws.grad_off == NULL or ws.deltas == NULL
                                or ws.block_sums == NULL))):
        workspace_free(ws)
        return -1
    return 0


cdef void workspace_free(Workspace *ws) noexcept nogil:
    fastbp_aligned_free(ws.scratch)
    fastbp_aligned_free(ws.grads)
    fastbp_aligned_free(ws.errors)
    fastbp_aligned_free(ws.panels)
    fastbp_aligned_free(ws.grad_off)
    fastbp_aligned_free(ws.block_sums)
    fastbp_aligned_free(ws.deltas)      # (starts, samples and values are in its block)
    ws.scratch = ws.grads = ws.panels = ws.deltas = ws.values = NULL
    ws.errors = NULL
    ws.grad_off = ws.starts = NULL
    ws.block_sums = NULL
    ws.samples = NULL


cdef void workspace_ready(const Net *net, Workspace *ws, floating dummy) noexcept nogil:
    """The panels of the weights net points to, and (once) every thread's rows of ones."""
    cdef int tid
    pack_panels(net, <floating *> ws.panels)
    if not ws.scratch_ready:
        for tid in range(ws.threads):
            init_scratch(net, <floating *> ws.scratch + tid * net.scratch_len)
        ws.scratch_ready = True


cdef void chunk_rounds_member(
    const Net *net,             # net.panels packed, net.input set
    const floating *Y,          # IN  (N, d(L)) or NULL
    const Py_ssize_t *rows,     # IN  NULL, or sample i of the batch is row rows[i] of X and Y
    floating *outputs,          # OUT (N, d(L)) in MODE_FORWARD, else NULL
    Py_ssize_t start,           # IN  the batch: samples start..stop-1
    Py_ssize_t stop,
    Py_ssize_t chunk,           # IN  samples per chunk, a multiple of the tile
    int mode,
    Workspace *ws,
    int tid,                    # IN  this thread's number in the team, 0..team-1
    int team,                   # IN  the threads running this routine together
    double *grad_sum,           # IN/OUT (n_params,) float64 sums, added to (MODE_GRADIENT)
    double *error_sum,          # OUT the batch's error sum (written by thread 0)
) noexcept nogil:
    """The chunk rounds, as one member of a team runs them: every thread of the team calls this
    with its own tid (or one thread alone, team = 1). Round after round, the team claims the
    round's chunks one at a time (a thread slowed down by a busy core holds up no one), each
    chunk's sums go to a slot of its own, and after a barrier the slots are added to the float64
    totals in chunk order, each thread its own blocks of parameters: the sums are bitwise those
    of one thread, whatever the team and whoever computed which chunk. The barriers bind to the
    innermost enclosing parallel region, so the routine runs as well inside a region its caller
    keeps open across many batches (chunk_rounds opens one per call)."""
    cdef Py_ssize_t n_chunks = (stop - start + chunk - 1) // chunk
    cdef Py_ssize_t grad_len = net.n_params if mode == MODE_GRADIENT else 0
    cdef Py_ssize_t stride = ws.stride
    cdef floating *scratch = <floating *> ws.scratch + tid * net.scratch_len
    cdef floating *grads = <floating *> ws.grads
    cdef double *errors = ws.errors
    cdef Py_ssize_t first = 0
    cdef Py_ssize_t count, s, c0, p0
    cdef double err = 0.0
    cdef bint columns = ws.columns and mode == MODE_GRADIENT
    cdef Net above              # (columns) net with the slots' layout: no dW(1) in them
    cdef const Net *chunk_net = net
    cdef Py_ssize_t d0 = net.widths[0]
    cdef Py_ssize_t d1 = net.widths[1]
    cdef bint nonfinite
    if columns:
        above = net[0]
        above.grad_off = ws.grad_off
        above.n_params = net.n_params - ws.skip
        chunk_net = &above
        grad_len = above.n_params
    while first < n_chunks:
        count = min(ws.slots, n_chunks - first)
        s = fastbp_claim(&ws.next_chunk) if team > 1 else 0
        while s < count:
            c0 = start + (first + s) * chunk
            if columns:
                sparse_chunk_by_columns(net, c0, min(c0 + chunk, stop), ws.starts + s * (d0 + 2),
                                        ws.samples + s * ws.cap,
                                        <floating *> ws.values + s * ws.cap)
            else:
                errors[s] = run_chunk(net, Y, rows, outputs, c0, min(c0 + chunk, stop), scratch,
                                      grads + s * stride, mode)
            s = fastbp_claim(&ws.next_chunk) if team > 1 else s + 1
        if team > 1:
            fastbp_barrier()
        if columns:
            # s(1) of this member's chunks in one sweep of W(1), then the rest of each chunk
            nonfinite = sparse_first_sums(net, <floating *> ws.deltas, chunk, ws.starts,
                                          ws.samples, <const floating *> ws.values, ws.cap,
                                          start + first * chunk, stop, count, tid, team)
            s = tid
            while s < count:
                c0 = start + (first + s) * chunk
                errors[s] = run_chunk(chunk_net, Y, rows, outputs, c0, min(c0 + chunk, stop),
                                      scratch, grads + s * stride, mode, False,
                                      <floating *> ws.deltas + s * chunk * d1)
                if nonfinite and net.screen_inputs:
                    errors[s] = NAN
                s += team
            if team > 1:
                fastbp_barrier()
        # the ordered reduction: chunk after chunk, whatever thread computed it
        if tid == 0:
            for s in range(count):
                err = err + errors[s]
            ws.next_chunk = 0       # no one claims again before the barrier below
        if columns:
            sparse_first_columns(net, <const floating *> ws.deltas, chunk, ws.starts, ws.samples,
                                 <const floating *> ws.values, ws.cap, start + first * chunk,
                                 stop, count, grad_sum,
                                 ws.block_sums + tid * COLUMN_BLOCK * d1, &ws.next_block,
                                 team, <floating *> ws.final, ws.final_scale,
                                 ws.final_accumulate)
        if grad_len and team > 1 and grad_len * count >= PARALLEL_MERGE:
            p0 = tid * MERGE_BLOCK
            while p0 < grad_len:
                merge_slots(grad_sum + ws.skip, grads, stride, count, p0,
                            min(p0 + MERGE_BLOCK, grad_len))
                p0 += team * MERGE_BLOCK
        elif grad_len and tid == 0:
            merge_slots(grad_sum + ws.skip, grads, stride, count, 0, grad_len)
        if team > 1:
            fastbp_barrier()
        if tid == 0:
            ws.next_block = 0       # claimed again only after the next round's first barrier
        first += count
    if tid == 0:
        error_sum[0] = err


cdef void chunk_rounds(const Net *net, const floating *Y, const Py_ssize_t *rows,
                       floating *outputs, Py_ssize_t start, Py_ssize_t stop, Py_ssize_t chunk,
                       int mode, Workspace *ws, double *grad_sum,
                       double *error_sum) noexcept nogil:
    """chunk_rounds_member on a team of its own: min(ws.threads, chunks) threads, one parallel
    region for all the rounds; the calling thread alone for a batch of one chunk."""
    cdef Py_ssize_t n_chunks = (stop - start + chunk - 1) // chunk
    cdef int team = <int> min(<Py_ssize_t> ws.threads, n_chunks)
    cdef int tid = 0
    if team > 1:
        with parallel(num_threads=team):
            tid = threadid()
            # the team OpenMP gave (fewer threads than asked for share the rounds as well)
            chunk_rounds_member(net, Y, rows, outputs, start, stop, chunk, mode, ws, tid,
                                fastbp_team_size(), grad_sum, error_sum)
    else:
        chunk_rounds_member(net, Y, rows, outputs, start, stop, chunk, mode, ws, 0, 1, grad_sum,
                            error_sum)


cdef int run_batch(
    Net *net,                   # net.input: X (N, d(0))
    const floating *Y,          # IN  (N, d(L)) or NULL
    floating *outputs,          # OUT (N, d(L)) in MODE_FORWARD, else NULL
    Py_ssize_t N,
    Py_ssize_t chunk,           # IN  samples per chunk, a multiple of the tile
    int slots_per_thread,       # IN  chunks per thread per round
    int num_threads,
    int mode,
    double *error_sum,          # OUT sum of squared errors (MODE_ERROR, MODE_GRADIENT)
    double *grad_sum,           # OUT (n_params,) gradient sums (MODE_GRADIENT), cleared here
    # OUT NULL, or dW(1) (Workspace.final): written there, times scale (added to it with
    # accumulate), if the batch is one column round; *written then True, and grad_sum's dW(1)
    # neither cleared nor written
    floating *final=NULL,
    double scale=1.0,
    bint accumulate=False,
    bint *written=NULL,
) noexcept nogil:
    """Return 0, or -1 when scratch memory could not be had (nothing was written then)."""
    cdef Workspace ws
    cdef Py_ssize_t skip = 0
    if workspace_alloc(net, (N + chunk - 1) // chunk,
                       <Py_ssize_t> num_threads * slots_per_thread, num_threads,
                       mode == MODE_GRADIENT, sizeof(floating), &ws, N, chunk) != 0:
        return -1
    if (final != NULL and ws.columns and not net.screen_inputs
            and (N + chunk - 1) // chunk <= ws.slots):
        ws.final = final
        ws.final_scale = scale
        ws.final_accumulate = accumulate
        skip = ws.skip
    if written != NULL:
        written[0] = ws.final != NULL
    if mode == MODE_GRADIENT:
        memset(grad_sum + skip, 0, (net.n_params - skip) * sizeof(double))
    run_batch_in(net, Y, outputs, N, chunk, mode, error_sum, grad_sum, &ws)
    workspace_free(&ws)
    return 0


cdef void run_batch_in(
    Net *net,                   # net.input: X (N, d(0))
    const floating *Y,          # IN  (N, d(L)) or NULL
    floating *outputs,          # OUT (N, d(L)) in MODE_FORWARD, else NULL
    Py_ssize_t N,
    Py_ssize_t chunk,           # IN  samples per chunk, a multiple of the tile
    int mode,
    double *error_sum,          # OUT sum of squared errors (MODE_ERROR, MODE_GRADIENT)
    double *grad_sum,           # OUT (n_params,) gradient sums (MODE_GRADIENT), zeroed by caller
    Workspace *ws,              # IN  buffers from workspace_alloc for this N, plan and dtype
) noexcept nogil:
    """run_batch on buffers allocated already. The scratch is reused as it is between chunks:
    only the rows of ones must hold, and a padded sample's lanes add exactly nothing."""
    workspace_ready(net, ws, <floating> 0)
    net.panels = ws.panels
    chunk_rounds(net, Y, <const Py_ssize_t *> NULL, outputs, 0, N, chunk, mode, ws, grad_sum,
                 error_sum)
    net.panels = NULL
