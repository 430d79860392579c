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
) noexcept nogil:
    """INPUT_CSR: dW(1) += x(0) delta(1)^T over the tile, sample after sample: delta(1) into the
    bias row, value times delta(1) into the row of each of the sample's nonzeros."""
    cdef const floating *values = <const floating *> net.input.values
    cdef Py_ssize_t ld = net.tile
    cdef int d = net.widths[1]
    cdef Py_ssize_t b, n, p, p0, p1
    cdef int u
    cdef floating v
    cdef Py_ssize_t k
    if net.touched != NULL and nb > 0:
        net.touched[0] = 1
    for b in range(nb):
        for u in range(d):
            col[u] = delta[u * ld + b]
            G[u] = G[u] + col[u]
        n = rows[t + b] if rows != NULL else t + b
        csr_row(&net.input, n, &p0, &p1)
        for p in range(p0, min(p0 + PREFETCH_AHEAD, p1)):
            fastbp_prefetch(G + (csr_column(&net.input, p) + 1) * d, d * sizeof(floating))
        for p in range(p0, p1):
            if p + PREFETCH_AHEAD < p1:
                fastbp_prefetch(G + (csr_column(&net.input, p + PREFETCH_AHEAD) + 1) * d,
                                d * sizeof(floating))
            v = values[p]
            k = csr_column(&net.input, p) + 1
            if net.touched != NULL:
                net.touched[k] = 1
            axpy(G + k * d, col, v, d)
