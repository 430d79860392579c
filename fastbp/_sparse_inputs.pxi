# Included by fastbp/_core.pyx (one extension module): the first layer of a network whose inputs
# X are CSR (scipy.sparse's compressed rows; net.input, InputLayout). Only the first layer ever
# sees X: s(1) = W(1)^T x(0) is summed from the sample's nonzeros alone, and dW(1) += x(0)
# delta(1)^T adds delta(1) into the rows of dW(1) that they name. The layers above are the dense
# tile steps of _tile_steps.pxi. Duplicate entries add (scipy's meaning); the entries of a row
# are taken in their stored order, sorted or not.

cdef enum:
    # nonzeros ahead whose rows of W(1) (dW(1)) are fetched while one is added: enough to cover
    # a row's trip from memory behind the adds of the rows before it
    PREFETCH_AHEAD = 6


cdef inline void axpy(floating *y, const floating *x, floating a, int n) noexcept nogil:
    """y += a x, a product then a sum per value (_simd_update.h: the vectors of the set in use,
    the same bits as this loop written out)."""
    if floating is double:
        fastbp_axpy_d(y, x, a, n)
    else:
        fastbp_axpy_f(y, x, a, n)


cdef inline void csr_row(const Input *inp, Py_ssize_t n, Py_ssize_t *p0,
                         Py_ssize_t *p1) noexcept nogil:
    """Sample n's nonzeros are entries p0..p1-1."""
    if inp.index64:
        p0[0] = (<const long long *> inp.indptr)[n]
        p1[0] = (<const long long *> inp.indptr)[n + 1]
    else:
        p0[0] = (<const int *> inp.indptr)[n]
        p1[0] = (<const int *> inp.indptr)[n + 1]


cdef inline Py_ssize_t csr_column(const Input *inp, Py_ssize_t p) noexcept nogil:
    if inp.index64:
        return <Py_ssize_t> (<const long long *> inp.indices)[p]
    return (<const int *> inp.indices)[p]


cdef bint load_csr_tile(
    const Net *net,
    const Py_ssize_t *rows,  # IN  NULL, or the tile's samples are rows rows[t..t+nb-1] of X
    Py_ssize_t t,           # IN  first sample of the tile
    Py_ssize_t nb,          # IN  samples in the tile
    int ns,                 # IN  samples to compute: nb rounded up to a whole vector
    floating *x0,           # OUT x(0) of the tile without its row of ones, feature-major
) noexcept nogil:
    """INPUT_CSR_TILES: the tile's rows written out dense (zeros, then the nonzeros added in
    place). True when one of the values is NaN or infinite."""
    cdef const floating *values = <const floating *> net.input.values
    cdef Py_ssize_t ld = net.tile
    cdef Py_ssize_t b, n, p, p0, p1
    cdef int k
    cdef floating v
    cdef floating screen = 0
    for k in range(net.widths[0]):
        memset(x0 + k * ld, 0, ns * sizeof(floating))
    for b in range(nb):
        n = rows[t + b] if rows != NULL else t + b
        csr_row(&net.input, n, &p0, &p1)
        for p in range(p0, p1):
            v = values[p]
            screen += v * 0      # 0, or NaN once a value is NaN or infinite
            k = <int> csr_column(&net.input, p)
            x0[k * ld + b] += v
    return screen != 0


cdef bint sparse_first_layer(
    const Net *net,
    const Py_ssize_t *rows,  # IN  NULL, or the tile's samples are rows rows[t..t+nb-1] of X
    Py_ssize_t t,           # IN  first sample of the tile
    Py_ssize_t nb,          # IN  samples in the tile
    int ns,                 # IN  samples to compute (padding ones: s(1) = the bias row)
    floating *s1,           # OUT s(1) of the tile, d(1) rows, net.tile apart
    floating *acc,          # IN  room for d(1) values
) noexcept nogil:
    """INPUT_CSR: s(1) = W(1)^T x(0) of each sample as its bias row plus, in stored order, value
    times the row of W(1) its column names. True when one of the values is NaN or infinite."""
    cdef const floating *values = <const floating *> net.input.values
    cdef const floating *W = <const floating *> net.weights[0]
    cdef const floating *w
    cdef Py_ssize_t ld = net.tile
    cdef int d = net.widths[1]
    cdef Py_ssize_t b, n, p, p0, p1
    cdef int u
    cdef floating v
    cdef floating screen = 0
    for b in range(ns):
        memcpy(acc, W, d * sizeof(floating))
        if b < nb:
            n = rows[t + b] if rows != NULL else t + b
            csr_row(&net.input, n, &p0, &p1)
            for p in range(p0, min(p0 + PREFETCH_AHEAD, p1)):
                fastbp_prefetch(W + (csr_column(&net.input, p) + 1) * d, d * sizeof(floating))
            for p in range(p0, p1):
                if p + PREFETCH_AHEAD < p1:
                    fastbp_prefetch(W + (csr_column(&net.input, p + PREFETCH_AHEAD) + 1) * d,
                                    d * sizeof(floating))
                v = values[p]
                screen += v * 0
                w = W + (csr_column(&net.input, p) + 1) * d
                axpy(acc, w, v, d)
        for u in range(d):
            s1[u * ld + b] = acc[u]
    return screen != 0


cdef void sparse_first_gradient(
    const Net *net,
    const Py_ssize_t *rows,  # IN  NULL, or the tile's samples are rows rows[t..t+nb-1] of X
    Py_ssize_t t,           # IN  first sample of the tile
    Py_ssize_t nb,          # IN  samples in the tile (padding ones add nothing)
    const floating *delta,  # IN  delta(1) of the tile, d(1) rows, net.tile apart
    floating *G,            # IN/OUT dW(1), (d(0)+1, d(1)) row-major
    floating *col,          # IN  room for d(1) values
    # IN  the rows of dW(1) added into: all (r1 < 0), or (the members of a shared step,
    # _sgd_epoch.pxi, each adding every sample's nonzeros of its own rows) r0..r1-1
    Py_ssize_t r0=0,
    Py_ssize_t r1=-1,
) noexcept nogil:
    """INPUT_CSR: dW(1) += x(0) delta(1)^T over the tile, sample after sample: delta(1) into the
    bias row, value times delta(1) into the row of each of the sample's nonzeros. Each row's
    additions are the same, in the same order, whatever rows r0..r1-1 are."""
    cdef const floating *values = <const floating *> net.input.values
    cdef Py_ssize_t ld = net.tile
    cdef int d = net.widths[1]
    cdef Py_ssize_t b, n, p, p0, p1, k
    cdef int u
    # (a member's rows are a share: those it would fetch ahead might be another's)
    cdef bint ahead = r1 < 0
    if r1 < 0:
        r1 = net.widths[0] + 1
    if net.touched != NULL and nb > 0 and r0 == 0:
        net.touched[0] = 1
    for b in range(nb):
        for u in range(d):
            col[u] = delta[u * ld + b]
        if r0 == 0:
            for u in range(d):
                G[u] = G[u] + col[u]
        n = rows[t + b] if rows != NULL else t + b
        csr_row(&net.input, n, &p0, &p1)
        if ahead:
            for p in range(p0, min(p0 + PREFETCH_AHEAD, p1)):
                fastbp_prefetch(G + (csr_column(&net.input, p) + 1) * d, d * sizeof(floating))
        for p in range(p0, p1):
            if ahead and p + PREFETCH_AHEAD < p1:
                fastbp_prefetch(G + (csr_column(&net.input, p + PREFETCH_AHEAD) + 1) * d,
                                d * sizeof(floating))
            k = csr_column(&net.input, p) + 1
            if k < r0 or k >= r1:
                continue
            if net.touched != NULL:
                net.touched[k] = 1
            axpy(G + k * d, col, values[p], d)


# ---------------------------------------------------------------------------------------------
# Column rounds: the first layer of a gradient over X's rows in order (a gradient call, a
# full-batch epoch; _driver.pxi's chunk_rounds_member). Sample after sample, every nonzero reads
# a row of W(1) and reads and writes a row of dW(1), each anywhere in memory, and each chunk has
# a dense slot of all of dW(1) to clear and add: for [100000, 128, 20] on 20000 rows at 0.1 %
# (float64, 2 threads) that was most of a 306 ms call. Here a round's chunks are sorted by
# column first (sparse_chunk_by_columns); each member sums s(1) of its chunks in one sweep of
# W(1)'s rows (sparse_first_sums), into buffers of the round's size; the chunks keep their
# delta(1) there, sample-major; and after the round each row of dW(1) is summed whole, in
# float64, sample after sample (sparse_first_columns): W(1) and dW(1) are each swept once a
# round and the random reads and writes go to the round's buffers, which a cache can hold.

cdef enum:
    COLUMN_BLOCK = 32       # rows of dW(1) a member claims at a time in the column pass


cdef void sparse_chunk_by_columns(
    const Net *net,
    Py_ssize_t c0,              # IN  the chunk: samples c0..c1-1 (rows of X in order)
    Py_ssize_t c1,
    Py_ssize_t *starts,         # OUT (d(0) + 2,) column k's entries are starts[k]..starts[k+1]-1
    int *samples,               # OUT each entry's sample in the chunk, 0..c1-c0-1
    floating *values,           # OUT each entry's value
) noexcept nogil:
    """The chunk's nonzeros by column (a counting sort): within a column in sample order, and a
    sample's duplicates in their stored order."""
    cdef const floating *stored = <const floating *> net.input.values
    cdef Py_ssize_t d0 = net.widths[0]
    cdef Py_ssize_t b, p, p0, p1, k, q
    memset(starts, 0, (d0 + 2) * sizeof(Py_ssize_t))
    csr_row(&net.input, c0, &p0, &p1)
    csr_row(&net.input, c1 - 1, &q, &p1)
    for p in range(p0, p1):
        starts[csr_column(&net.input, p) + 2] += 1
    for k in range(2, d0 + 2):
        starts[k] += starts[k - 1]
    # starts[k + 1] is the next free entry of column k; once all are placed, column k's end
    for b in range(c1 - c0):
        csr_row(&net.input, c0 + b, &p0, &p1)
        for p in range(p0, p1):
            k = csr_column(&net.input, p) + 1
            q = starts[k]
            starts[k] = q + 1
            samples[q] = <int> b
            values[q] = stored[p]


cdef inline void keep_first_sensitivities(const Net *net, const floating *delta, Py_ssize_t nb,
                                          floating *kept) noexcept nogil:
    """delta(1) of nb samples (d(1) rows, net.tile apart) into kept, sample-major."""
    cdef int d = net.widths[1]
    cdef Py_ssize_t ld = net.tile
    cdef Py_ssize_t b
    cdef int u
    for b in range(nb):
        for u in range(d):
            kept[b * d + u] = delta[u * ld + b]


cdef inline void load_first_sums(const Net *net, const floating *sums, Py_ssize_t nb, int ns,
                                 floating *s1) noexcept nogil:
    """s(1) of nb samples, sample-major, into the tile's rows (net.tile apart); a padding sample's
    is the bias row, as sparse_first_layer writes it."""
    cdef const floating *bias = <const floating *> net.weights[0]
    cdef int d = net.widths[1]
    cdef Py_ssize_t ld = net.tile
    cdef Py_ssize_t b
    cdef int u
    for u in range(d):
        for b in range(nb):
            s1[u * ld + b] = sums[b * d + u]
        for b in range(nb, ns):
            s1[u * ld + b] = bias[u]


cdef enum:
    TASKS = 2048            # additions queued by sparse_first_sums and sparse_first_columns
    PREFETCH_TASKS = 3      # additions ahead whose row is fetched


cdef inline void add_scaled(double *out, const floating *x, floating a, int n) noexcept nogil:
    """out += a x in float64 (a float32 product is exact in float64)."""
    cdef int u
    if floating is double:
        fastbp_axpy_d(out, x, a, n)
    else:
        for u in range(n):
            out[u] = out[u] + <double> a * <double> x[u]


cdef void sparse_first_columns(
    const Net *net,
    const floating *deltas,     # IN  each chunk's delta(1), sample-major, chunk x d(1) apart
    Py_ssize_t chunk,           # IN  samples per chunk
    const Py_ssize_t *starts,   # IN  each chunk's sparse_chunk_by_columns, (d(0) + 2) apart
    const int *samples,         # IN  ... cap apart
    const floating *values,     # IN  ... cap apart
    Py_ssize_t cap,
    Py_ssize_t first,           # IN  the first chunk's first sample, and the batch's end
    Py_ssize_t stop,
    Py_ssize_t count,           # IN  chunks
    double *grad_sum,           # IN/OUT the float64 sums; dW(1)'s rows added to
    double *block_sums,         # IN  room for COLUMN_BLOCK x d(1) float64 values (final)
    long *next_block,           # IN/OUT the next block of rows to claim (team > 1)
    int team,
    # OUT NULL, or (the chunks are the whole batch) dW(1) itself, written as write_gradient
    # would write it from grad_sum (which is then neither read nor written for dW(1))
    floating *final=NULL,
    double scale=1.0,
    bint accumulate=False,
) noexcept nogil:
    """dW(1) of the chunks, the rows claimed COLUMN_BLOCK at a time: row 0 (the bias) is the sum
    of delta(1), row k + 1 that of value times delta(1) over column k's entries, each summed in
    float64 sample after sample (in grad_sum, on from earlier rounds): the same sums for any
    chunk, round and team."""
    cdef Py_ssize_t d0 = net.widths[0]
    cdef int d = net.widths[1]
    cdef Py_ssize_t blocks = (d0 + COLUMN_BLOCK) // COLUMN_BLOCK
    cdef Py_ssize_t blk = fastbp_claim(next_block) if team > 1 else 0
    cdef Py_ssize_t r, r0, r1, s, b, nb, e
    cdef const Py_ssize_t *st
    cdef const int *smp
    cdef const floating *val
    cdef const floating *dl
    cdef double *sums
    cdef double *out
    cdef int u
    # the additions in their order, queued so that the row of delta(1) PREFETCH_TASKS ahead is
    # fetched while one is added: a chunk's column has too few entries to fetch ahead within
    # it, and those rows are anywhere in the round's delta(1) (the size of L3)
    cdef double *into[TASKS]
    cdef const floating *by[TASKS]
    cdef floating times[TASKS]
    cdef int k, n
    while blk < blocks:
        r0 = blk * COLUMN_BLOCK
        r1 = min(r0 + COLUMN_BLOCK, d0 + 1)
        if final != NULL:
            sums = block_sums       # the rows' sums, from +0 as grad_sum's
            memset(sums, 0, (r1 - r0) * d * sizeof(double))
        else:
            sums = grad_sum + r0 * d
        if r0 == 0:
            for s in range(count):
                dl = deltas + s * chunk * d
                nb = min(chunk, stop - (first + s * chunk))
                for b in range(nb):
                    for u in range(d):
                        sums[u] = sums[u] + dl[b * d + u]
        n = 0
        for r in range(max(r0, 1), r1):
            out = sums + (r - r0) * d
            for s in range(count):
                st = starts + s * (d0 + 2)
                smp = samples + s * cap
                val = values + s * cap
                dl = deltas + s * chunk * d
                for e in range(st[r - 1], st[r]):
                    if n == TASKS:
                        run_tasks(into, by, times, n, d)
                        n = 0
                    into[n] = out
                    by[n] = dl + smp[e] * d
                    times[n] = val[e]
                    n += 1
        run_tasks(into, by, times, n, d)
        if final != NULL:
            write_scaled(final + r0 * d, sums, (r1 - r0) * d, scale, accumulate)
        blk = fastbp_claim(next_block) if team > 1 else blk + 1


cdef inline void run_tasks(double **into, const floating **by, const floating *times, int n,
                           int d) noexcept nogil:
    cdef int k
    for k in range(n):
        if k + PREFETCH_TASKS < n:
            fastbp_prefetch(by[k + PREFETCH_TASKS], d * sizeof(floating))
        add_scaled(into[k], by[k], times[k], d)


cdef bint sparse_first_sums(
    const Net *net,
    floating *sums,             # OUT each chunk's s(1), sample-major, chunk x d(1) apart
    Py_ssize_t chunk,           # IN  samples per chunk
    const Py_ssize_t *starts,   # IN  each chunk's sparse_chunk_by_columns, (d(0) + 2) apart
    const int *samples,         # IN  ... cap apart
    const floating *values,     # IN  ... cap apart
    Py_ssize_t cap,
    Py_ssize_t first,           # IN  the first chunk's first sample, and the batch's end
    Py_ssize_t stop,
    Py_ssize_t count,           # IN  chunks
    int tid,                    # IN  this member computes chunks tid, tid + team, ...
    int team,
) noexcept nogil:
    """s(1) = W(1)^T x(0) of this member's chunks, in one sweep of the rows of W(1): each sample's
    bias row, then value times row k + 1 for its entries of column k, k ascending (a sample's
    stored order when its indices are sorted, as scipy's canonical format keeps them: then the
    sums of sparse_first_layer, bit for bit). A row of W(1) is read from memory once for all the
    member's chunks, where sample by sample every nonzero fetched one. True when one of the
    values is NaN or infinite."""
    cdef const floating *W = <const floating *> net.weights[0]
    cdef Py_ssize_t d0 = net.widths[0]
    cdef int d = net.widths[1]
    cdef Py_ssize_t r, s, b, nb, e, e1
    cdef const Py_ssize_t *st
    cdef const int *smp
    cdef const floating *val
    cdef floating *sm
    cdef floating screen = 0
    # the additions in their order, queued so that the row of s(1) of the one PREFETCH_TASKS
    # ahead is fetched while one is added: a chunk's column has too few entries to fetch ahead
    # within it, and those rows are anywhere in the round's (L3-sized) s(1)
    cdef floating *rows[TASKS]
    cdef const floating *by[TASKS]
    cdef floating times[TASKS]
    cdef int k, n = 0
    s = tid
    while s < count:
        nb = min(chunk, stop - (first + s * chunk))
        for b in range(nb):
            memcpy(sums + (s * chunk + b) * d, W, d * sizeof(floating))
        s += team
    for r in range(1, d0 + 2):
        if r > d0 or n >= TASKS // 2:
            # (at a row's start: a row's entries are queued whole, unless more than fit)
            for k in range(n):
                if k + PREFETCH_TASKS < n:
                    fastbp_prefetch(rows[k + PREFETCH_TASKS], d * sizeof(floating))
                axpy(rows[k], by[k], times[k], d)
            n = 0
            if r > d0:
                break
        s = tid
        while s < count:
            st = starts + s * (d0 + 2)
            e1 = st[r]
            smp = samples + s * cap
            val = values + s * cap
            sm = sums + s * chunk * d
            for e in range(st[r - 1], e1):
                screen += val[e] * 0
                if n == TASKS:
                    # a column of more entries than the queue holds: run it now
                    for k in range(n):
                        axpy(rows[k], by[k], times[k], d)
                    n = 0
                rows[n] = sm + smp[e] * d
                by[n] = W + r * d
                times[n] = val[e]
                n += 1
            s += team
    return screen != 0
