# Included by fastbp/_core.pyx (one extension module): a whole epoch of mini-batch SGD,
# Nesterov or Adam (sgd_epoch_run), step after step without returning to Python.
# The declarations it uses (floating, Net, the _simd.h kernels, the enums) are _core.pyx's.

# ---------------------------------------------------------------------------------------------
# (c') the SGD epoch

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


cdef enum Rule:
    RULE_SGD = 0         # w -= lr g, or with momentum: v = mu v - lr g; w += v
    RULE_NESTEROV = 1    # v = mu v - lr g; w += mu v - lr g
    RULE_ADAM = 2        # Adam, with scikit-learn's bias correction folded into the step


cdef struct Epoch:
    # One epoch of mini-batch steps, as every member of its team sees it (sgd_epoch_member).
    Net *net                    # net.input, net.panels set
    void **weights              # W(1..L), updated after every mini-batch
    void **velocity             # v(1..L) (momentum > 0), Adam's first moments m, or unused
    void **moment2              # Adam's second moments, else unused
    const void *Y
    const Py_ssize_t *order     # the epoch's permutation of 0..N-1
    Py_ssize_t N
    Py_ssize_t batch_size
    Py_ssize_t chunk
    int rule
    double lr
    double momentum
    double beta2
    double eps
    long long steps             # Adam's step count t before the epoch
    const Loss *objective
    double *loss                # scikit-learn's loss parts, or NULL
    Workspace *ws
    void *grad                  # each member's block of the step's gradient (grad_stride each)
    Py_ssize_t grad_stride      # elements per member: a block of step_rows, or one row of W(l)
    double *grad64              # (P,) float64 sums of a batch of two chunks or more, kept zero
    void *tiles                 # each member's tile buffers in a shared step (`segments`), or NULL
    Py_ssize_t segments         # tile buffers per member: the most tiles its samples meet
    long *relay                 # chained_chunk's counter of each group of rows (a line each)
    void *lanes                 # chained_chunk's lane sums of each tile, passed member to member
    Py_ssize_t lanes_stride     # values a tile in lanes: tile_lanes of every layer's columns
    double *tile_errors         # each tile's error in chained_chunk, summed in order by thread 0
    double *pace                # each member's seconds of sweep and sums, and blocks, by parity
    double *rates               # each member's own estimate of every member's seconds a block
    Py_ssize_t *starts          # each member's own copy of the members' first blocks (team + 1)
    Py_ssize_t split_stride     # values per member in rates and starts
    void **pieces               # room for each member's pieces of a tile (3 team each), or NULL
    fastbp_team_sync *sync      # the team's barrier (team > 1), or NULL
    double *row_squares         # ||row||^2 of every row of every W(l) (loss and alpha), or NULL


cdef inline void rows_of(const Net *net, int l, int tid, int team, Py_ssize_t *r0,
                         Py_ssize_t *r1) noexcept nogil:
    """The rows of W(l) member tid of a team sums and updates: an even share, in order."""
    cdef Py_ssize_t rows = net.widths[l - 1] + 1
    r0[0] = rows * tid // team
    r1[0] = rows * (tid + 1) // team


cdef inline void update_rows_of(const Net *net, int l, int tid, int team, Py_ssize_t *r0,
                                Py_ssize_t *r1) noexcept nogil:
    """The rows of W(l) member tid updates after chained_chunk: a share each, the last member a
    third of one. The last member of the relay is the last to hold every group's sums; the
    others update theirs while it adds (digits on two threads: 2/3 and 1/3 of the rows took 5 us
    a step less than halves, the first member no longer waiting at the barrier for the second;
    3/4 and 1/4, 3 % less again on bench/ab_epoch.py's digits-sized and [40, 128, 64, 5] rows)."""
    cdef Py_ssize_t rows = net.widths[l - 1] + 1
    r0[0] = min(rows, rows * 3 * tid // (3 * team - 2))
    r1[0] = min(rows, rows * 3 * (tid + 1) // (3 * team - 2))


cdef inline floating *member_tile(floating *tiles, const Net *net, int member,
                                  long k) noexcept nogil:
    """The buffer member `member` sweeps tile k of a shared step into: a pair per member, the
    tiles alternating between the two."""
    return tiles + (2 * member + (k & 1)) * net.scratch_len


cdef inline void copy_output_rows(const Net *net, floating *dst, const floating *src,
                                  Py_ssize_t b0, Py_ssize_t b1) noexcept nogil:
    """Samples b0..b1-1 of a tile's rows the error reads, from another member's buffer into dst:
    x(L), and s(L) with its two rows (cross-entropy, Poisson)."""
    cdef Py_ssize_t ld = net.tile
    cdef int dL = net.widths[net.L]
    cdef int out_rows = (2 * dL + 2 if net.output == OUT_LOGISTIC or net.output == OUT_SOFTMAX
                         or net.output == OUT_POISSON else 0)
    cdef int j
    for j in range(1, dL + 1):
        memcpy(dst + net.act_off[net.L] + j * ld + b0, src + net.act_off[net.L] + j * ld + b0,
               (b1 - b0) * sizeof(floating))
    for j in range(out_rows):
        memcpy(dst + net.out_off + j * ld + b0, src + net.out_off + j * ld + b0,
               (b1 - b0) * sizeof(floating))


cdef double shared_chunk(
    const Net *net,
    const floating *Y,          # IN  (N, d(L))
    const Py_ssize_t *order,    # IN  sample i of the batch is row order[i] of X and Y
    Py_ssize_t start,           # IN  the batch: samples start..stop-1, one chunk at most
    Py_ssize_t stop,
    floating *tiles,            # IN/OUT two tile buffers (scratch layout) per member of the team
    floating *work,             # IN  this member's room for `outer`
    void **pieces,              # IN  this member's room for a tile's pieces: 3 team pointers
    fastbp_team_sync *sync,     # IN  the team's barrier
    floating *grad,             # OUT (P,) the batch's sums: this member's rows of each W(l)
    int tid,
    int team,
    bint zeroed=False,          # IN  a sparse X's rows of dW(1) in grad are zero already
) noexcept nogil:
    """run_chunk's sums for one chunk, computed by a whole team: each tile's forward and backward
    sweeps shared by samples, each member sweeping its samples into a tile buffer of its own
    (every sample's values are those of run_chunk: its lanes sum in the same order whatever the
    samples beside it), then its gradient update by rows of each dW(l), each member's rows over
    the tile's samples in order, piece after piece (`outer` on pieces: every element of G sums
    the tile's samples in order, the tiles in order, whoever computes it). The members sweep
    into buffers apart: sweeping into lines of the same rows, each member its own, made the
    sweeps of two threads half again as slow as their samples' share (measured, issue 23). The
    error sum is thread 0's, tile after tile in run_chunk's order over the whole tile (the other
    members' output rows copied beside its own first); returned by thread 0 (0 elsewhere). One
    barrier a tile: each member's tiles alternate between its two buffers, so that it sweeps
    the next tile while another still adds up the last one."""
    cdef Py_ssize_t ld = net.tile
    cdef int block = sample_block(<floating> 0)
    cdef double err = 0.0
    cdef Py_ssize_t t, nb, b0, b1, r0, r1
    cdef int l, m, ns, blocks, n_pieces
    cdef long k = 0
    cdef floating *buf
    cdef const floating **xs = <const floating **> pieces
    cdef const floating **ds = <const floating **> (pieces + team)
    cdef int *nsp = <int *> (pieces + 2 * team)
    for l in range(1, net.L + 1):
        if l == 1 and net.input.layout == INPUT_CSR and zeroed:
            continue        # (step_block left them zero: a wide W(1) is not cleared each step)
        rows_of(net, l, tid, team, &r0, &r1)
        memset(grad + net.grad_off[l] + r0 * net.widths[l], 0,
               (r1 - r0) * net.widths[l] * sizeof(floating))
    t = start
    while t < stop:
        nb = min(ld, stop - t)
        ns = <int> ((nb + block - 1) // block * block)
        blocks = ns // block
        b0 = blocks * tid // team * block
        b1 = blocks * (tid + 1) // team * block
        if b0 < b1:
            # (the epoch's X was checked: no screen, net.screen_inputs is off)
            buf = member_tile(tiles, net, tid, k)
            forward_tile(net, order, t + b0, min(b1, nb) - b0, <int> (b1 - b0), buf + b0)
            sensitivities_tile(net, Y, order, t + b0, min(b1, nb) - b0, <int> (b1 - b0),
                               buf + b0, True)
        fastbp_team_wait(sync, team)
        for l in range(1, net.L + 1):
            rows_of(net, l, tid, team, &r0, &r1)
            if r0 == r1:
                continue
            if l == 1 and net.input.layout == INPUT_CSR:
                # a sparse X: each member adds every sample's nonzeros of its rows, in order
                for m in range(team):
                    b0 = blocks * m // team * block
                    b1 = blocks * (m + 1) // team * block
                    if b0 < min(b1, nb):
                        buf = member_tile(tiles, net, m, k)
                        sparse_first_gradient(net, order, t + b0, min(b1, nb) - b0,
                                              buf + net.delta_off[1] + b0,
                                              grad + net.grad_off[1], work, r0, r1)
                continue
            n_pieces = 0
            for m in range(team):
                b0 = blocks * m // team * block
                b1 = blocks * (m + 1) // team * block
                if b0 < b1:
                    buf = member_tile(tiles, net, m, k)
                    xs[n_pieces] = buf + net.act_off[l - 1] + r0 * ld + b0
                    ds[n_pieces] = buf + net.delta_off[l] + b0
                    nsp[n_pieces] = <int> (b1 - b0)
                    n_pieces += 1
            if floating is double:
                fastbp_outer_pieces_d(xs, ds, nsp, n_pieces, <int> (r1 - r0), net.widths[l], ld,
                                      grad + net.grad_off[l] + r0 * net.widths[l], work,
                                      net.panel, FASTBP_OUTER_ALL, NULL)
            else:
                fastbp_outer_pieces_f(xs, ds, nsp, n_pieces, <int> (r1 - r0), net.widths[l], ld,
                                      grad + net.grad_off[l] + r0 * net.widths[l], work,
                                      net.panel, FASTBP_OUTER_ALL, NULL)
        if tid == 0:
            # the tile's error again, whole, in run_chunk's order (the members' own sums of it
            # would add up in another): the other members' output rows copied beside its own
            buf = member_tile(tiles, net, 0, k)
            for m in range(1, team):
                b0 = blocks * m // team * block
                b1 = blocks * (m + 1) // team * block
                if b0 < b1:
                    copy_output_rows(net, buf, member_tile(tiles, net, m, k), b0, b1)
            err += sensitivities_tile(net, Y, order, t, nb, ns, buf, False)
        t += ld
        k += 1
    return err


cdef enum:
    # elements of dW(l) per group of rows handed from member to member in chained_chunk: small
    # enough that the first member's lead and the last one's lag (a group each) are a few
    # microseconds, large enough that a group keeps outer's register blocks busy
    RELAY_GROUP = 1024
    RELAY_LINE = 8              # longs per counter: a cache line of its own
    PACE_LINE = 8               # doubles per member and parity in e.pace


cdef inline int tile_lanes(int cols, floating dummy) noexcept nogil:
    """Values a row of `outer`'s lane sums for a layer of `cols` units (FASTBP_OUTER_LANES_*)."""
    if floating is double:
        return fastbp_tile_lanes_d(cols)
    else:
        return fastbp_tile_lanes_f(cols)


cdef inline Py_ssize_t relay_rows(const Net *net, int l) noexcept nogil:
    """Rows of W(l) per group of chained_chunk's relay."""
    return max(1, RELAY_GROUP // net.widths[l])


cdef inline Py_ssize_t relay_first(const Net *net, int l) noexcept nogil:
    """The index of W(l)'s first group among all layers' (layer 1's first)."""
    cdef Py_ssize_t g = 0
    cdef int m
    for m in range(1, l):
        g += (net.widths[m - 1] + relay_rows(net, m)) // relay_rows(net, m)
    return g


# A test's switch (fastbp._core._random_splits): every chained step split at random, the same
# draw for every member (a split changes no bit of a step; tests/test_shared_steps.py).
cdef bint random_splits = False


def _random_splits(bint on):
    """Split every shared step's samples among the threads at random (tests only)."""
    global random_splits
    random_splits = on


cdef void split_batch(const Epoch *e, Py_ssize_t blocks, int block, int team, long step,
                      double *rates, Py_ssize_t *starts) noexcept nogil:
    """The members' shares of a batch's `blocks` sample blocks in chained_chunk: member m takes
    blocks starts[m]..starts[m+1]-1, in order. The shares follow each member's pace, its seconds
    a block in the step before (e.pace, smoothed in `rates`): a member whose core is shared, or
    slower, takes fewer blocks, and the relay's members end their sums together. A share changes
    no bit of the step (every sample's values are one member's, and every sum is in sample
    order), so the timing may decide it. With no pace yet (an epoch's first step) the shares are
    even, the last members taking the blocks left over: the first member's sums start the relay,
    and every later member waits on them (digits, 25 blocks on two threads: 12 + 13 took 2 us a
    step less than 13 + 12). Every member computes the same shares from the same figures (e.pace
    of the step before: written before the step's barrier, read after it; each member's own
    rates and starts)."""
    # a member's blocks meet at most segments tiles (its buffers): cap // tile + 1 <= segments
    cdef Py_ssize_t cap = (e.segments - 1) * (e.net.tile // block)
    cdef const double *pace
    cdef double r, known, total, acc
    cdef unsigned long long draw
    cdef int m, n_known
    if random_splits:
        draw = ((<unsigned long long> step) * 2654435761ULL
                + (<unsigned long long> blocks) * 40503ULL)
        starts[0] = 0
        for m in range(1, team):
            draw = draw * 6364136223846793005ULL + 1442695040888963407ULL
            starts[m] = starts[m - 1] + <Py_ssize_t> ((draw >> 33) % <unsigned long long> (
                blocks - starts[m - 1] + 1))
    else:
        if step == 0:
            for m in range(team):
                rates[m] = 0
        else:
            pace = e.pace + ((step - 1) & 1) * team * PACE_LINE
            for m in range(team):
                if pace[m * PACE_LINE + 1] > 0 and pace[m * PACE_LINE] > 0:
                    r = pace[m * PACE_LINE] / pace[m * PACE_LINE + 1]
                    if rates[m] > 0:
                        # one slow step (a member preempted) moves the shares by a bounded step
                        r = 0.5 * (rates[m] + min(max(r, 0.25 * rates[m]), 4 * rates[m]))
                    rates[m] = r
        known = 0
        n_known = 0
        for m in range(team):
            if rates[m] > 0:
                known += rates[m]
                n_known += 1
        starts[0] = 0
        if n_known == 0:
            for m in range(1, team):
                starts[m] = blocks * m // team
        else:
            # a member not timed yet (no blocks so far) is taken at the others' mean
            total = 0
            for m in range(team):
                if rates[m] <= 0:
                    rates[m] = known / n_known
                total += 1 / rates[m]
            acc = 0
            for m in range(1, team):
                acc += 1 / rates[m - 1]
                starts[m] = min(blocks, <Py_ssize_t> (blocks * (acc / total)))
    starts[team] = blocks
    for m in range(1, team):
        starts[m] = max(starts[m], starts[m - 1])
        starts[m] = min(starts[m], starts[m - 1] + cap)
    for m in range(team - 1, 0, -1):
        starts[m] = max(starts[m], starts[m + 1] - cap)


cdef inline bint tile_segment(Py_ssize_t n, Py_ssize_t ld, int block, Py_ssize_t B0,
                              Py_ssize_t B1, Py_ssize_t k, Py_ssize_t *b0,
                              Py_ssize_t *b1) noexcept nogil:
    """The samples b0..b1-1 of tile k (counted from the tile's start, padding included) that
    blocks B0..B1-1 hold; False when they hold none of it."""
    cdef Py_ssize_t per_tile = ld // block
    cdef Py_ssize_t first = k * per_tile
    cdef Py_ssize_t last = first + (min(ld, n - k * ld) + block - 1) // block
    cdef Py_ssize_t lo = max(B0, first)
    cdef Py_ssize_t hi = min(B1, last)
    if lo >= hi:
        return False
    b0[0] = (lo - first) * block
    b1[0] = (hi - first) * block
    return True


cdef inline floating *segment_buffer(const Epoch *e, floating *tiles, int member, Py_ssize_t B0,
                                     Py_ssize_t k, Py_ssize_t ld, int block) noexcept nogil:
    """The buffer member `member` (first block B0) sweeps its samples of tile k into."""
    return tiles + (member * e.segments + k - B0 // (ld // block)) * e.net.scratch_len


cdef void chained_chunk(
    const Epoch *e,
    Py_ssize_t start,           # IN  the batch: samples start..stop-1 of e.order, one chunk
    Py_ssize_t stop,
    void **pieces,              # IN  this member's room for a tile's pieces: 3 team pointers
    long relay_base,            # IN  the relay counters' value before this step
    bint zeroed,                # IN  the chunk slot's sums are zero already
    int tid,
    int team,
    floating dummy,             # IN  0 in the weights' dtype (which the kernels are chosen by)
) noexcept nogil:
    """run_chunk's sums for one chunk of a dense X, computed by a whole team. Each member sweeps
    its share of the batch's samples (whole sample blocks, in order) forward and backward into
    buffers of its own, a tile's samples at their places in the tile (every sample's values are
    run_chunk's, whatever the samples beside it). Then the sums, group of rows by group of rows
    of every dW(l), are relayed from member to member in the order of their samples: member m
    waits until member m - 1 has added all of its samples into a group, adds its own, and hands
    the group on (e.relay). Each element of G so adds the batch's samples in run_chunk's order,
    each member reading only the samples it swept. The columns `outer` sums by lanes (those left
    over by its column vectors, every column in the plain-C set) go the same way within a tile:
    a member takes the tile's lane sums over from the member before (e.lanes; the tile began
    there), adds its samples, and hands them on, the member holding the tile's last samples
    adding them into G (before, that member read the others' samples of the tile: on two
    threads the plain-C set's steps were 11-12 % slower, the vector sets' the same within the
    noise). Sharing each tile's samples instead, every member adding every sample into its own
    rows, moved half of all x(l) and delta(l) between cores every step, the largest part of what
    two threads lost (issue 23).
    The first member, whose part of the relay ends first, then computes each tile's error whole,
    into e.tile_errors[k]: it adds them in order after the step's barrier."""
    cdef const Net *net = e.net
    cdef const floating *Y = <const floating *> e.Y
    cdef floating *tiles = <floating *> e.tiles
    cdef floating *grad = <floating *> e.ws.grads
    cdef Py_ssize_t ld = net.tile
    cdef int block = sample_block(<floating> 0)
    cdef Py_ssize_t n = stop - start
    cdef Py_ssize_t B0, B1, M0, M1, k, k0, k1, nb, b0, b1, c0, c1, ra, rb, rows, K, g
    cdef int l, m, cols, part, ns
    cdef int last = 0
    cdef Py_ssize_t last_first = 0
    cdef Py_ssize_t lanes_off = 0
    cdef Py_ssize_t row_lanes
    cdef floating *buf
    cdef floating *G
    cdef floating *lanes
    cdef const floating **xs = <const floating **> pieces
    cdef const floating **ds = <const floating **> (pieces + team)
    cdef int *nsp = <int *> (pieces + 2 * team)
    cdef long step = relay_base // team
    cdef Py_ssize_t *starts = e.starts + tid * e.split_stride
    cdef double *pace = e.pace + ((step & 1) * team + tid) * PACE_LINE
    cdef double waited = 0
    cdef double t0 = fastbp_seconds()
    b0 = b1 = 0
    split_batch(e, (n + block - 1) // block, block, team, step, e.rates + tid * e.split_stride,
                starts)
    B0 = starts[tid]
    B1 = starts[tid + 1]
    # the tiles this member's blocks meet: k0..k1-1
    k0 = B0 // (ld // block)
    k1 = (B1 + ld // block - 1) // (ld // block) if B1 > B0 else k0
    for k in range(k0, k1):
        tile_segment(n, ld, block, B0, B1, k, &b0, &b1)
        nb = min(ld, n - k * ld)
        buf = segment_buffer(e, tiles, tid, B0, k, ld, block)
        # (the epoch's X was checked: no screen, net.screen_inputs is off)
        forward_tile(net, e.order, start + k * ld + b0, min(b1, nb) - b0, <int> (b1 - b0),
                     buf + b0)
        sensitivities_tile(net, Y, e.order, start + k * ld + b0, min(b1, nb) - b0,
                           <int> (b1 - b0), buf + b0, True)
    # the layers from the output down (the order of the groups changes no sum; the update follows
    # it, so that each member's first rows there are among the first the relay has finished)
    for l in range(net.L, 0, -1):
        rows = relay_rows(net, l)
        K = net.widths[l - 1] + 1
        cols = net.widths[l]
        row_lanes = tile_lanes(cols, <floating> 0)
        g = relay_first(net, l)
        ra = 0
        while ra < K:
            rb = min(ra + rows, K)
            G = grad + net.grad_off[l] + ra * cols
            waited += fastbp_relay_wait_timed(e.relay + g * RELAY_LINE, relay_base + tid)
            if tid == 0 and not zeroed:
                memset(G, 0, (rb - ra) * cols * sizeof(floating))
            for k in range(k0, k1):
                # this member's samples of tile k: the columns summed sample by sample, added
                # into G; the columns left over, by lanes, their sums taken over from the
                # member before (the tile began there) and handed to the one after (it ends
                # there), added into G by the member holding the tile's last samples
                tile_segment(n, ld, block, B0, B1, k, &b0, &b1)
                buf = segment_buffer(e, tiles, tid, B0, k, ld, block)
                xs[0] = buf + net.act_off[l - 1] + ra * ld + b0
                ds[0] = buf + net.delta_off[l] + b0
                nsp[0] = <int> (b1 - b0)
                # delta(l) transposed once a layer, in the segment's own work space: the layer's
                # later groups use it again
                part = (FASTBP_OUTER_CHAINED | FASTBP_OUTER_BY_TILE
                        | (FASTBP_OUTER_KEEP_WORK if ra > 0 else 0)
                        | (FASTBP_OUTER_LANES_IN if b0 > 0 else 0)
                        | (FASTBP_OUTER_LANES_OUT
                           if b1 < (min(ld, n - k * ld) + block - 1) // block * block else 0))
                lanes = <floating *> e.lanes + k * e.lanes_stride + lanes_off + ra * row_lanes
                if floating is double:
                    fastbp_outer_pieces_d(xs, ds, nsp, 1, <int> (rb - ra), cols, ld, G,
                                          buf + net.work_off, net.panel, part, lanes)
                else:
                    fastbp_outer_pieces_f(xs, ds, nsp, 1, <int> (rb - ra), cols, ld, G,
                                          buf + net.work_off, net.panel, part, lanes)
            fastbp_relay_pass(e.relay + g * RELAY_LINE, relay_base + tid + 1)
            ra = rb
            g += 1
        lanes_off += K * row_lanes
    # this member's pace for the next step's shares: its time less its waits on the relay
    pace[0] = fastbp_seconds() - t0 - waited
    pace[1] = <double> (B1 - B0)
    if tid != 0:
        return
    # Each tile's error, whole, in run_chunk's order, by the first member: the relay's later
    # members end after it (each waits on the one before), so this costs the step nothing while
    # there are later members. The error is read from the buffer of the member holding the tile's
    # last samples, the other members' output rows copied beside them (the relay does not read
    # those rows). Once the last member has handed on the relay's first group, every member has
    # swept its samples.
    fastbp_relay_wait(e.relay + relay_first(net, net.L) * RELAY_LINE, relay_base + team)
    for k in range((n + ld - 1) // ld):
        nb = min(ld, n - k * ld)
        ns = <int> ((nb + block - 1) // block * block)
        for m in range(team):
            M0 = starts[m]
            M1 = starts[m + 1]
            if tile_segment(n, ld, block, M0, M1, k, &c0, &c1) and c1 == ns:
                last = m
                last_first = M0
        buf = segment_buffer(e, tiles, last, last_first, k, ld, block)
        for m in range(team):
            M0 = starts[m]
            M1 = starts[m + 1]
            if m != last and tile_segment(n, ld, block, M0, M1, k, &c0, &c1):
                copy_output_rows(net, buf, segment_buffer(e, tiles, m, M0, k, ld, block), c0, c1)
        e.tile_errors[k] = sensitivities_tile(net, Y, e.order, start + k * ld, nb, ns, buf, False)


cdef void step_block(
    const Epoch *e,
    int l,                      # IN  the layer, 1..L
    Py_ssize_t r0,              # IN  its rows r0..r1-1
    Py_ssize_t r1,
    bint from_chunk,            # IN  the sums are in ws.grads (one chunk), else in e.grad64
    double scale,               # IN  1 / the batch's total weight
    floating lr_t,              # IN  Adam's step size this step
    floating *g,                # IN  room for the block's gradient, (r1 - r0) d(l) values
) noexcept nogil:
    """step_rows for rows r0..r1-1 of W(l), their panels aside. The sums it reads from the chunk's
    slot are left zero there (run_chunk's zeroed: the next step's chunk need not clear them)."""
    cdef const Net *net = e.net
    cdef Py_ssize_t d = net.widths[l]
    cdef Py_ssize_t i0 = r0 * d
    cdef Py_ssize_t i1 = r1 * d
    cdef Py_ssize_t i, r, row0
    cdef int m
    cdef floating *w = <floating *> e.weights[l - 1]
    cdef floating *sums = <floating *> e.ws.grads + net.grad_off[l]
    cdef double *sums64 = e.grad64 + net.grad_off[l] if not from_chunk else NULL
    cdef floating *v
    cdef floating *s2
    cdef floating step, update
    cdef floating lr_f = <floating> e.lr
    cdef floating mu = <floating> e.momentum
    cdef floating one_b1 = <floating> (1.0 - e.momentum)
    cdef floating b2 = <floating> e.beta2
    cdef floating one_b2 = <floating> (1.0 - e.beta2)
    cdef floating eps_f = <floating> e.eps
    cdef double grad_scale = e.objective.grad_scale
    if e.row_squares != NULL:
        row0 = 0
        for m in range(1, l):
            row0 += net.widths[m - 1] + 1
        for r in range(max(r0, 1), r1):
            e.row_squares[row0 + r] = sum_squares(w + r * d, d, e.objective.sum_block)
    if from_chunk and l == 1 and net.touched != NULL:
        # a sparse X's batch adds into the rows of W(1) its nonzeros name: the others' sums are
        # zero, and their gradient 0.0 (+0.0, as (0.0 + 0.0) * scale * grad_scale) unread
        for r in range(r0, r1):
            if net.touched[r]:
                net.touched[r] = 0
                for i in range(r * d, (r + 1) * d):
                    g[i - i0] = <floating> ((0.0 + sums[i]) * scale * grad_scale)
                    sums[i] = 0
            else:
                for i in range(r * d, (r + 1) * d):
                    g[i - i0] = 0
    elif from_chunk:
        # the chunk's sums straight to the step, with the rounding of the float64 total
        # (0.0 + x, not x: the sign of a zero included)
        for i in range(i0, i1):
            g[i - i0] = <floating> ((0.0 + sums[i]) * scale * grad_scale)
            sums[i] = 0
    else:
        for i in range(i0, i1):
            g[i - i0] = <floating> (sums64[i] * scale * grad_scale)
            sums64[i] = 0
    add_step_penalty(e.objective, net, l, w, g, scale, r0, r1)
    if e.rule == RULE_ADAM:
        v = <floating *> e.velocity[l - 1]
        s2 = <floating *> e.moment2[l - 1]
        # v = mu v + (1 - mu) g; s2 = b2 s2 + (1 - b2) g^2; w -= lr_t v / (sqrt(s2) + eps)
        if floating is double:
            fastbp_adam_d(w + i0, v + i0, s2 + i0, g, i1 - i0, mu, one_b1, b2, one_b2, lr_t,
                          eps_f)
        else:
            fastbp_adam_f(w + i0, v + i0, s2 + i0, g, i1 - i0, mu, one_b1, b2, one_b2, lr_t,
                          eps_f)
    elif e.rule == RULE_NESTEROV:
        v = <floating *> e.velocity[l - 1]
        for i in range(i0, i1):
            v[i] = v[i] * mu
            step = lr_f * g[i - i0]
            v[i] = v[i] - step
            update = mu * v[i] - step
            w[i] = w[i] + update
    elif e.momentum != 0:
        v = <floating *> e.velocity[l - 1]
        for i in range(i0, i1):
            v[i] = v[i] * mu
            step = lr_f * g[i - i0]
            v[i] = v[i] - step
            w[i] = w[i] + v[i]
    else:
        for i in range(i0, i1):
            step = lr_f * g[i - i0]
            w[i] = w[i] - step


cdef enum:
    # weights per block of a step: the block's sums, gradient, weights and moments stay in L1/L2
    # from the first pass over them to the last (each weight's arithmetic is its own, so the
    # blocks change no result)
    STEP_BLOCK = 2048


cdef void step_rows(
    const Epoch *e,
    int l,                      # IN  the layer, 1..L
    Py_ssize_t r0,              # IN  its rows r0..r1-1
    Py_ssize_t r1,
    bint from_chunk,            # IN  the sums are in ws.grads (one chunk), else in e.grad64
    double scale,               # IN  1 / the batch's total weight
    floating lr_t,              # IN  Adam's step size this step
    int tid,                    # IN  the member (its block of e.grad)
) noexcept nogil:
    """The step for rows r0..r1-1 of W(l): their squares for the loss (before the step), their
    gradient, penalties and update (step_block, a few rows at a time: one pass over memory, not
    one per phase: a wide W(1), as sparse inputs have, is hundreds of megabytes), then their
    entries of the panels."""
    cdef const Net *net = e.net
    cdef Py_ssize_t rows = max(1, STEP_BLOCK // net.widths[l])
    cdef Py_ssize_t b0 = r0
    while b0 < r1:
        step_block(e, l, b0, min(b0 + rows, r1), from_chunk, scale, lr_t,
                   <floating *> e.grad + tid * e.grad_stride)
        b0 += rows
    if r0 == 0 and r1 == net.widths[l - 1] + 1:
        pack_layer(net, l, <floating *> net.panels)
    else:
        pack_layer_rows(net, l, <floating *> net.panels, r0, r1)


cdef void sgd_epoch_member(const Epoch *e, int tid, int team, floating dummy) noexcept nogil:
    """The epoch as member tid of a team of `team` threads runs it (team 1: alone). Each step:
    the batch's sums (shared_chunk for one chunk on a team, run_chunk alone, chunk_rounds_member
    for two chunks or more), then each member's rows of every W(l) stepped and packed, then a
    barrier, so that no member sweeps the next batch before every weight and panel is new."""
    cdef Net *net = e.net
    cdef floating *chunk_grad = <floating *> e.ws.grads
    cdef Py_ssize_t start = 0
    cdef Py_ssize_t stop, r0, r1, r, row0
    cdef long long t = e.steps
    cdef double scale, coef_sq
    cdef double batch_err = 0.0
    cdef bint from_chunk, chained
    cdef bint slot_zero = True      # ws.grads as workspace_alloc left it
    cdef floating lr_t = 0
    cdef int l
    cdef long relay_base = 0
    cdef Py_ssize_t g, k
    while start < e.N:
        stop = min(start + e.batch_size, e.N)
        scale = batch_scale(net, <const floating *> net.sample_weight, e.order, start, stop)
        from_chunk = stop - start <= e.chunk
        chained = from_chunk and team > 1 and net.input.layout == INPUT_DENSE
        if chained:
            chained_chunk(e, start, stop, e.pieces + tid * 3 * team, relay_base, slot_zero, tid,
                          team, <floating> 0)
        elif from_chunk and team > 1:
            batch_err = shared_chunk(net, <const floating *> e.Y, e.order, start, stop,
                                     <floating *> e.tiles,
                                     <floating *> e.ws.scratch + tid * net.scratch_len
                                     + net.work_off, e.pieces + tid * 3 * team,
                                     e.sync, chunk_grad, tid, team, slot_zero)
        elif from_chunk:
            batch_err = run_chunk(net, <const floating *> e.Y, e.order, <floating *> NULL, start,
                                  stop, <floating *> e.ws.scratch, chunk_grad, MODE_GRADIENT,
                                  slot_zero)
        else:
            # the chunk rounds end at a barrier: every sum is in e.grad64 after it
            chunk_rounds_member(net, <const floating *> e.Y, e.order, <floating *> NULL, start,
                                stop, e.chunk, MODE_GRADIENT, e.ws, tid, team, e.grad64,
                                &batch_err)
        # a one-chunk step leaves its slot zero (step_block); chunk rounds leave their sums
        slot_zero = from_chunk
        if e.rule == RULE_ADAM:
            t += 1
            lr_t = <floating> (e.lr * sqrt(1.0 - pow(e.beta2, <double> t))
                               / (1.0 - pow(e.momentum, <double> t)))
        # a member's rows are those it summed in shared_chunk: no barrier between; in
        # chained_chunk, the rows' groups once the last member has handed them on (the layers
        # in the relay's order)
        for l in range(net.L, 0, -1):
            if chained:
                update_rows_of(net, l, tid, team, &r0, &r1)
            else:
                rows_of(net, l, tid, team, &r0, &r1)
            if chained and r0 < r1:
                for g in range(relay_first(net, l) + r0 // relay_rows(net, l),
                               relay_first(net, l) + (r1 - 1) // relay_rows(net, l) + 1):
                    fastbp_relay_wait(e.relay + g * RELAY_LINE, relay_base + team)
            step_rows(e, l, r0, r1, from_chunk, scale, lr_t, tid)
        if team > 1:
            fastbp_team_wait(e.sync, team)
        if chained:
            relay_base += team
            if tid == 0:
                batch_err = 0.0
                for k in range((stop - start + net.tile - 1) // net.tile):
                    batch_err += e.tile_errors[k]
        if tid == 0 and e.loss != NULL:
            # read before any member can write the next step's squares: a barrier comes first
            coef_sq = 0.0
            if e.row_squares != NULL:
                row0 = 0
                for l in range(1, net.L + 1):
                    for r in range(1, net.widths[l - 1] + 1):
                        coef_sq += e.row_squares[row0 + r]
                    row0 += net.widths[l - 1] + 1
            e.loss[1] += batch_err * scale * (stop - start)
            e.loss[0] += 0.5 * e.objective.alpha * coef_sq * scale * (stop - start)
        start = stop


cdef int sgd_epoch_run(
    Net *net,                   # net.input: X (N, d(0))
    floating **weights,         # IN/OUT W(1..L), updated after every mini-batch
    floating **velocity,        # IN/OUT v(1..L) (momentum > 0), Adam's first moments m, or unused
    floating **moment2,         # IN/OUT Adam's second moments, else unused
    const floating *Y,          # IN  (N, d(L))
    const Py_ssize_t *order,    # IN  the epoch's permutation of 0..N-1
    Py_ssize_t N,
    Py_ssize_t batch_size,
    Py_ssize_t chunk,           # IN  samples per chunk, as `gradient` would use
    int num_threads,            # IN  the team of the epoch: 1, or the threads sharing each step
    Py_ssize_t slots,           # IN  chunk buffers: chunks computed per round (>= 1)
    int rule,                   # IN  RULE_SGD, RULE_NESTEROV or RULE_ADAM
    double lr,
    double momentum,            # IN  mu (RULE_SGD, RULE_NESTEROV); Adam's beta1
    double beta2,               # IN  Adam's beta2
    double eps,                 # IN  Adam's epsilon
    long long *steps,           # IN/OUT Adam's step count t, before and after the epoch
    const Loss *objective,      # IN  the penalties (and c = grad_scale) of each step (_loss.pxi)
    double *loss,               # OUT scikit-learn's epoch loss, summed (see below)
) noexcept nogil:
    """One epoch of mini-batch SGD (or Adam), step after step, without returning to Python.

    Each step computes exactly what fastbp.gradient(reduction="mean") returns for the batch (the
    same tiles and chunks, float64 sums in chunk order, scaled by 1/|batch| (see batch_scale for
    sample weights), rounded to the weights' dtype) and then, in the weights' dtype and in this
    order of operations, g += the penalties' gradients (add_step_penalty: fastbp's 2 lambda / N w,
    then scikit-learn's alpha / (the batch's total weight) w on the coefficient rows) and
      RULE_SGD:       v = momentum v; v -= lr g; w += v (momentum > 0) or w -= lr g;
      RULE_NESTEROV:  v = momentum v; v -= lr g; w += momentum v - lr g;
      RULE_ADAM:      t += 1; lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t) (in double);
                      m = beta1 m + (1 - beta1) g; s = beta2 s + (1 - beta2) g^2;
                      w -= lr_t m / (sqrt(s) + eps),
    the steps of fastbp._methods (scalars rounded to the weights' dtype, as NumPy rounds a Python
    float against a float32 array). No multiply-add is fused here (_no_fp_contract.h, on every
    target), so the rounding is that of those NumPy expressions.

    scikit-learn's MLP (fastbp.sklearn) steps along another gradient of the same sums: c times the
    mean (c = objective.grad_scale, 1/2 for its squared error), plus its L2 term (objective.alpha).
    Its epoch loss sums, over the batches, |batch| times the batch's loss at the weights the batch
    saw; the two parts of that sum come back apart, since scikit-learn scales the error part by
    its own factor: loss[1] += |batch| err_batch / total (err_batch the kernel's sum of w_n e_n)
    and loss[0] += |batch| (alpha / 2) ||W(rows 1..)||^2 / total (0 when alpha = 0), the squares
    summed row by row (each row as NumPy's np.square(row, dtype=float64).sum(), the rows in order).

    Threads: with num_threads > 1 the whole epoch runs in one parallel region, its team kept
    from step to step (a thread that waits does so at a barrier, spinning GOMP_SPINCOUNT times as
    fastbp/__init__.py sets it, not in a new region's start-up). Every step is shared: a batch of
    one chunk by samples, its sums relayed from member to member (chained_chunk; shared_chunk,
    by samples and rows of each tile, for a sparse X), one of two chunks or more chunk by chunk
    (chunk_rounds_member), and the update by rows of each W(l). fastbp._api decides whether an
    epoch's steps are worth sharing (their flops). The weights, moments, steps and losses are
    bitwise those of num_threads = 1, whatever the team.
    Return 0, or -1 when memory could not be had (the weights are untouched then).
    """
    cdef Py_ssize_t P = net.n_params
    cdef int threads = max(1, num_threads)
    cdef Py_ssize_t total_rows = 0
    cdef Workspace ws
    cdef Epoch e
    cdef int l, tid
    # each member's block of the step's gradient: it stays in cache from the sums to the update
    cdef Py_ssize_t grad_stride = STEP_BLOCK
    cdef floating *grad = NULL
    # (only a batch of two chunks or more sums into grad64: else it is never touched, and a
    # wide network's would be hundreds of megabytes cleared for nothing)
    cdef double *grad64 = <double *> fastbp_aligned_calloc(((P if batch_size > chunk else 0) + 1)
                                                           * sizeof(double))
    cdef floating *tiles = NULL
    cdef void **pieces = NULL
    cdef long *relay = NULL
    cdef floating *lanes = NULL
    cdef Py_ssize_t lanes_stride = 0
    cdef double *tile_errors = NULL
    cdef double *pace = NULL
    cdef double *rates = NULL
    cdef Py_ssize_t *starts = NULL
    # (a line or more for each member's rates and starts)
    cdef Py_ssize_t split_stride = (threads + 1 + 7) // 8 * 8
    cdef int block = sample_block(<floating> 0)
    # tile buffers per member: two (shared_chunk's), or as many tiles as an even share of a batch's
    # blocks can meet in a team of two (chained_chunk's, batches of one chunk; split_batch caps
    # every share to them): OpenMP may give fewer threads than asked for, and a team of one does
    # not chain
    cdef Py_ssize_t batch_blocks = (min(batch_size, chunk) + block - 1) // block
    cdef Py_ssize_t segments = max(2, ((batch_blocks + 1) // 2 + net.tile // block - 1)
                                   // (net.tile // block) + 1)
    cdef fastbp_team_sync *sync = NULL
    cdef int scratch_threads
    cdef int status = 0
    cdef double *row_squares = NULL
    cdef unsigned char *touched = NULL
    for l in range(net.L):
        total_rows += net.widths[l] + 1
        grad_stride = max(grad_stride, net.widths[l + 1])
        lanes_stride += (net.widths[l] + 1) * tile_lanes(net.widths[l + 1], <floating> 0)
    grad_stride = (grad_stride + 15) // 16 * 16
    grad = <floating *> fastbp_aligned_calloc((threads * grad_stride + 1) * sizeof(floating))
    if net.input.layout == INPUT_CSR and threads > 1 and batch_size > chunk:
        # a batch of several chunks would be summed by the team chunk by chunk, each member
        # marking rows of W(1) in `touched`: the team shares one-chunk batches only
        threads = 1
    # the chunk loop's scratch, one a thread; a team's one-chunk steps on a dense X sweep into its
    # tile buffers instead (chained_chunk), and a team OpenMP cut to one thread uses thread 0's
    # (a second one, allocated and cleared for nothing, was 4-5 us of the 18-20 us an epoch on two
    # threads spent setting up: [64, 100, 10], batch 200; one thread's set-up takes 7 us)
    scratch_threads = 1 if net.input.layout == INPUT_DENSE and batch_size <= chunk else threads
    if net.input.layout == INPUT_CSR:
        # the rows of W(1) a step's nonzeros add into (sparse_first_gradient marks them)
        touched = <unsigned char *> fastbp_aligned_calloc(net.widths[0] + 1)
    if threads > 1:
        tiles = <floating *> fastbp_aligned_malloc(segments * threads * net.scratch_len
                                                   * sizeof(floating))
        relay = <long *> fastbp_aligned_calloc((relay_first(net, net.L + 1) + 1) * RELAY_LINE
                                               * sizeof(long))
        tile_errors = <double *> fastbp_aligned_calloc((chunk // net.tile + 1) * sizeof(double))
        # (uncleared: a member reads only the lane sums an earlier member wrote in the step)
        lanes = <floating *> fastbp_aligned_malloc(((chunk // net.tile + 1) * lanes_stride + 1)
                                                   * sizeof(floating))
        pace = <double *> fastbp_aligned_calloc(2 * threads * PACE_LINE * sizeof(double))
        rates = <double *> fastbp_aligned_calloc(threads * split_stride * sizeof(double))
        starts = <Py_ssize_t *> fastbp_aligned_calloc(threads * split_stride * sizeof(Py_ssize_t))
        pieces = <void **> fastbp_aligned_calloc(3 * threads * threads * sizeof(void *))
        sync = <fastbp_team_sync *> fastbp_aligned_calloc(sizeof(fastbp_team_sync))
    if loss != NULL and objective.alpha != 0:
        row_squares = <double *> fastbp_aligned_calloc(total_rows * sizeof(double))
    # allocated once per epoch: one scratch per thread, one gradient slot per chunk of a round
    if (grad == NULL or grad64 == NULL
            or (net.input.layout == INPUT_CSR and touched == NULL)
            or (threads > 1 and (tiles == NULL or pieces == NULL or sync == NULL
                                 or relay == NULL or lanes == NULL or tile_errors == NULL
                                 or pace == NULL or rates == NULL or starts == NULL))
            or (loss != NULL and objective.alpha != 0 and row_squares == NULL)
            or workspace_alloc(net, (batch_size + chunk - 1) // chunk, slots if threads > 1 else 1,
                               scratch_threads, True, sizeof(floating), &ws) != 0):
        status = -1
    else:
        workspace_ready(net, &ws, <floating> 0)
        net.touched = touched
        if tiles != NULL:
            for l in range(segments * threads):
                init_scratch(net, tiles + l * net.scratch_len)
        net.panels = ws.panels
        e.net = net
        e.weights = <void **> weights
        e.velocity = <void **> velocity
        e.moment2 = <void **> moment2
        e.Y = Y
        e.order = order
        e.N = N
        e.batch_size = batch_size
        e.chunk = chunk
        e.rule = rule
        e.lr = lr
        e.momentum = momentum
        e.beta2 = beta2
        e.eps = eps
        e.steps = steps[0]
        e.objective = objective
        e.loss = loss
        e.ws = &ws
        e.grad = grad
        e.grad_stride = grad_stride
        e.grad64 = grad64
        e.tiles = tiles
        e.segments = segments
        e.relay = relay
        e.lanes = lanes
        e.lanes_stride = lanes_stride
        e.tile_errors = tile_errors
        e.pace = pace
        e.rates = rates
        e.starts = starts
        e.split_stride = split_stride
        e.pieces = pieces
        e.sync = sync
        e.row_squares = row_squares
        tid = 0
        if threads > 1:
            with parallel(num_threads=threads):
                tid = threadid()
                # the team OpenMP gave: every member's share follows from it
                sgd_epoch_member(&e, tid, fastbp_team_size(), <floating> 0)
        else:
            sgd_epoch_member(&e, 0, 1, <floating> 0)
        if rule == RULE_ADAM:
            steps[0] += (N + batch_size - 1) // batch_size
        net.panels = NULL
        net.touched = NULL
        workspace_free(&ws)
    # (every pointer NULL or allocated: after a failed allocation too)
    fastbp_aligned_free(grad)
    fastbp_aligned_free(grad64)
    fastbp_aligned_free(tiles)
    fastbp_aligned_free(pieces)
    fastbp_aligned_free(sync)
    fastbp_aligned_free(relay)
    fastbp_aligned_free(lanes)
    fastbp_aligned_free(tile_errors)
    fastbp_aligned_free(pace)
    fastbp_aligned_free(rates)
    fastbp_aligned_free(starts)
    fastbp_aligned_free(row_squares)
    fastbp_aligned_free(touched)
    return status
