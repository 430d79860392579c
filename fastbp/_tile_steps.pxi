# Included by fastbp/_core.pyx (one extension module): the per-tile steps of the lecture's
# algorithm (forward, sensitivities, gradient) and run_chunk, the tiles of one chunk.
# The declarations it uses (floating, Net, the _simd.h kernels, the enums) are _core.pyx's.

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
    # ACT_IDENTITY: x = s; _Layout refuses any other code


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


cdef inline void copy_rows(floating *dst, const floating *src, int rows, Py_ssize_t ld,
                           int ns) noexcept nogil:
    """dst = src on the first ns samples of `rows` tile rows, and nothing beyond them: the
    threads of a shared step (_sgd_epoch.pxi) compute other samples of the same rows."""
    cdef int j
    for j in range(rows):
        memcpy(dst + j * ld, src + j * ld, ns * sizeof(floating))


cdef inline bint load_tile_inputs(
    const Net *net,
    const Py_ssize_t *rows,  # IN  NULL, or the tile's samples are rows rows[t..t+nb-1] of X
    Py_ssize_t t,           # IN  first sample of the tile
    Py_ssize_t nb,          # IN  samples in the tile, 1..tile
    int ns,                 # IN  samples to compute: nb rounded up to a whole vector
    floating *x0,           # OUT x(0) of the tile without its row of ones, feature-major
) noexcept nogil:
    """x(0) of the tile from X as net.input stores it; padding samples are zero. True when one of
    the values loaded is NaN or infinite."""
    if net.input.layout == INPUT_DENSE:
        if floating is double:
            return fastbp_load_inputs_d(<const double *> net.input.values, rows, t, <int> nb,
                                        net.widths[0], x0, net.tile, ns)
        else:
            return fastbp_load_inputs_f(<const float *> net.input.values, rows, t, <int> nb,
                                        net.widths[0], x0, net.tile, ns)
    if net.input.layout == INPUT_CSR_TILES:
        return load_csr_tile(net, rows, t, nb, ns, x0)
    return False    # INPUT_CSR: no x(0); forward_tile reads the nonzeros (and screens them)


cdef inline bint forward_tile(
    const Net *net,
    const Py_ssize_t *rows,  # IN  NULL, or the tile's samples are rows rows[t..t+nb-1] of X
    Py_ssize_t t,           # IN  first sample of the tile
    Py_ssize_t nb,          # IN  samples in the tile, 1..tile
    int ns,                 # IN  samples to compute: nb rounded up to a whole vector
    floating *scratch,      # OUT x(l) of the tile, l = 0..L, at net.act_off[l]
    # IN  NULL, or (INPUT_CSR, a column round) s(1) of the tile's samples, sample-major
    const floating *first_sums=NULL,
) noexcept nogil:
    """Forward propagation of the tile; True when one of its inputs is NaN or infinite."""
    cdef Py_ssize_t ld = net.tile
    cdef const floating *panels = <const floating *> net.panels
    cdef int l, d_out
    cdef floating *x
    cdef floating *sL = scratch + net.out_off
    cdef bint nonfinite = load_tile_inputs(net, rows, t, nb, ns, scratch + net.act_off[0] + ld)
    for l in range(1, net.L + 1):
        d_out = net.widths[l]
        # s(l) = W(l)^T x(l-1), written below the row of ones of x(l)
        x = scratch + net.act_off[l] + ld
        if l == 1 and first_sums != NULL:
            load_first_sums(net, first_sums, nb, ns, x)
        elif l == 1 and net.input.layout == INPUT_CSR:
            if sparse_first_layer(net, rows, t, nb, ns, x, scratch + net.work_off):
                nonfinite = True
        else:
            linear(panels + net.fwd_off[l], net.widths[l - 1] + 1, d_out,
                   scratch + net.act_off[l - 1], ld, x, ns)
        if l < net.L:
            activate_rows(net.activation, x, d_out, ld, ns)
        elif net.output == OUT_TANH:
            tanh_rows(x, d_out, ld, ns)
        elif net.output == OUT_LINEAR:
            pass                # x(L) = s(L)
        elif net.output == OUT_POISSON:
            # the deviance is computed from s(L) = log x(L), never from the log of a rounded x(L)
            copy_rows(sL, x, d_out, ld, ns)
            if floating is double:
                fastbp_exp_d(x, d_out, ld, ns)
            else:
                fastbp_exp_f(x, d_out, ld, ns)
        elif net.output == OUT_LOGISTIC or net.output == OUT_SOFTMAX:
            # the cross-entropy is computed from s(L), never from the rounded x(L)
            copy_rows(sL, x, d_out, ld, ns)
            if net.output == OUT_LOGISTIC:
                if floating is double:
                    fastbp_logistic_d(x, d_out, ld, ns)
                else:
                    fastbp_logistic_f(x, d_out, ld, ns)
            elif floating is double:
                fastbp_softmax_d(x, d_out, ld, ns, sL + d_out * ld, sL + (d_out + 1) * ld)
            else:
                fastbp_softmax_f(x, d_out, ld, ns, sL + d_out * ld, sL + (d_out + 1) * ld)
    return nonfinite


cdef inline void gradient_layer(
    const Net *net,
    int l,                    # IN  the layer, 1..L
    floating *scratch,        # IN  x(l-1) and delta(l) of the tile; room for the kernel's work
    int ns,                   # IN  samples computed (padding ones have zero sensitivities)
    floating *grad,           # IN/OUT dW(l) += x(l-1) delta(l)^T at net.grad_off[l]
    # IN  the tile's samples, as forward_tile took them (INPUT_CSR's dW(1) reads their nonzeros)
    const Py_ssize_t *rows,
    Py_ssize_t t,
    Py_ssize_t nb,
    # IN  NULL, or (INPUT_CSR, a column round) where the tile's delta(1) is kept, sample-major,
    # instead of added into grad
    floating *kept=NULL,
) noexcept nogil:
    if l == 1 and kept != NULL:
        keep_first_sensitivities(net, scratch + net.delta_off[1], nb, kept)
    elif l == 1 and net.input.layout == INPUT_CSR:
        sparse_first_gradient(net, rows, t, nb, scratch + net.delta_off[1],
                              grad + net.grad_off[1], scratch + net.work_off)
    elif floating is double:
        fastbp_outer_d(scratch + net.act_off[l - 1], net.widths[l - 1] + 1,
                       scratch + net.delta_off[l], net.widths[l], net.tile, ns,
                       grad + net.grad_off[l], scratch + net.work_off, net.panel)
    else:
        fastbp_outer_f(scratch + net.act_off[l - 1], net.widths[l - 1] + 1,
                       scratch + net.delta_off[l], net.widths[l], net.tile, ns,
                       grad + net.grad_off[l], scratch + net.work_off, net.panel)


cdef inline double sensitivities_tile(
    const Net *net,
    const floating *Y,      # IN  (N, d(L)), row-major: targets, indexed as X in forward_tile
    const Py_ssize_t *rows,  # IN  NULL, or the tile's targets are rows rows[t..t+nb-1]
    Py_ssize_t t,           # IN  first sample of the tile
    Py_ssize_t nb,          # IN  samples in the tile
    int ns,                 # IN  samples computed (padding ones get zero sensitivities)
    floating *scratch,      # IN  x(l) (and s(L)) from forward_tile; OUT delta(l), l = 1..L
    bint backward,          # IN  0: only the error, no sensitivities
    floating *grad=NULL,    # IN/OUT NULL, or the gradient sums, updated layer by layer
    floating *kept=NULL,    # IN  with grad: gradient_layer's
) noexcept nogil:
    """Sum over the tile of w_n e_n (w_n = 1 without sample weights); with `backward`, every
    delta(l) of the tile, each times w_n (backpropagation is linear in delta(L), so this weights
    the sample's whole gradient). With `grad` (the sweep is the whole tile), dW(l) is updated
    as soon as delta(l) is known, while x(l-1) and delta(l) are still in cache (gradient_tile's
    arithmetic, layer by layer: the same sums, bit for bit)."""
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
    if (net.output == OUT_TANH or net.output == OUT_LINEAR) and sw == NULL:
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
            copy_rows(tail, sL, dL, ld, ns)
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
                if net.output == OUT_TANH or net.output == OUT_LINEAR:
                    en = e * e
                    e = 2 * e if net.output == OUT_LINEAR else 2 * e * (1 - xv * xv)
                elif net.output == OUT_LOGISTIC:
                    # -y log sigma(s) - (1 - y) log(1 - sigma(s))
                    #   = max(s, 0) - y s + log(1 + e^-|s|)
                    sv = sL[j * ld + b]
                    en = ((sv if sv > 0 else 0.0) - yb[j] * sv) + tail[j * ld + b]
                elif net.output == OUT_SOFTMAX:
                    # -y_k log x_k = y_k (log-sum-exp(s) - s_k), the log-sum-exp as mx + logsum
                    en = yb[j] * ((<double> mx[b] - sL[j * ld + b]) + logsum[b])
                elif net.output == OUT_POISSON:
                    # y log(y / x) - y + x = x - y s + (y log y - y), log x = s: finite for any
                    # finite s whose exp is (scikit-learn's half Poisson deviance)
                    sv = sL[j * ld + b]
                    en = <double> xv - <double> yb[j] * sv
                    if yb[j] > 0:
                        en = en + (<double> yb[j] * c_log(<double> yb[j]) - yb[j])
                else:
                    # an output without a loss here: _Layout refuses its code before any kernel
                    # runs; were one to slip through, its error is NaN, never another's loss
                    en = NAN
                    e = NAN
                # delta(L) = x(L) - y for both cross-entropies (their theta' cancels the log's 1/x)
                # and the Poisson deviance (d/ds (e^s - y s) = x - y)
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
    if grad != NULL:
        gradient_layer(net, L, scratch, ns, grad, rows, t, nb, kept)
    for l in range(L - 1, 0, -1):
        # delta(l) = theta'(s(l)) * [W(l+1) delta(l+1)] without the bias row
        delta = scratch + net.delta_off[l]
        linear(panels + net.bwd_off[l], net.widths[l + 1], net.widths[l],
               scratch + net.delta_off[l + 1], ld, delta, ns)
        dactivation_mul_rows(net.activation, delta, scratch + net.act_off[l] + ld, net.widths[l],
                             ld, ns)
        if grad != NULL:
            gradient_layer(net, l, scratch, ns, grad, rows, t, nb, kept)
    return err


cdef inline void gradient_tile(
    const Net *net,
    floating *scratch,        # IN  x(l) and delta(l) of the tile; room for the kernel's work
    int ns,                   # IN  samples computed (padding ones have zero sensitivities)
    floating *grad,           # IN/OUT sums of x(l-1) delta(l)^T, dW(l) at net.grad_off[l]
    const Py_ssize_t *rows,   # IN  the tile's samples, as forward_tile took them
    Py_ssize_t t,
    Py_ssize_t nb,
    floating *kept=NULL,      # IN  gradient_layer's
) noexcept nogil:
    cdef int l
    for l in range(1, net.L + 1):
        gradient_layer(net, l, scratch, ns, grad, rows, t, nb, kept)


# ---------------------------------------------------------------------------------------------
# (b) one chunk

cdef double run_chunk(
    const Net *net,          # net.input: X (N, d(0))
    const floating *Y,       # IN  (N, d(L)), unused in MODE_FORWARD
    const Py_ssize_t *rows,  # IN  NULL, or sample i of the batch is row rows[i] of X and Y
    floating *outputs,       # OUT (N, d(L)) in MODE_FORWARD
    Py_ssize_t start,        # IN  first sample of the chunk
    Py_ssize_t stop,         # IN  one past its last sample
    floating *scratch,       # IN/OUT this thread's scratch
    floating *grad,          # OUT the chunk's gradient sums (MODE_GRADIENT)
    int mode,
    bint zeroed=False,       # IN  grad is all zeros already (not cleared again)
    # IN/OUT NULL, or (a column round, _driver.pxi) the chunk's s(1), sample-major, read by the
    # forward pass; its delta(1) is written over it, not added into grad (whose dW(1) is then
    # not there: net.grad_off says where the rest is)
    floating *kept=NULL,
) noexcept nogil:
    cdef int dL = net.widths[net.L]
    cdef Py_ssize_t ld = net.tile
    cdef Py_ssize_t t, nb, b, s0, nbs
    cdef int j, ns, nss
    cdef int block = sample_block(<floating> 0)
    cdef double err = 0.0
    cdef const floating *xL = scratch + net.act_off[net.L] + ld
    cdef bint nonfinite = False
    if mode == MODE_GRADIENT and not zeroed:
        memset(grad, 0, net.n_params * sizeof(floating))
    t = start
    while t < stop:
        nb = min(ld, stop - t)
        # forward and backward a sweep (net.sweep samples, a divisor of the tile) at a time: the
        # sweep's columns of every tile array (scratch + s0: the same rows, ld apart), so that a
        # wide layer's inputs stay in L2 while the panels stream by; the gradient update then
        # takes the whole tile at once (G(l) read and written once per tile)
        s0 = 0
        ns = 0
        while s0 < nb:
            nbs = min(<Py_ssize_t> net.sweep, nb - s0)
            nss = <int> ((nbs + block - 1) // block * block)
            if forward_tile(net, rows, t + s0, nbs, nss, scratch + s0,
                            kept + (t + s0 - start) * net.widths[1] if kept != NULL
                            else <floating *> NULL):
                nonfinite = net.screen_inputs
            if mode != MODE_FORWARD:
                # one sweep a tile: each dW(l) updated while its x(l-1), delta(l) are in cache
                err += sensitivities_tile(net, Y, rows, t + s0, nbs, nss, scratch + s0,
                                          mode == MODE_GRADIENT,
                                          grad if mode == MODE_GRADIENT and net.sweep >= ld
                                          else <floating *> NULL,
                                          kept + (t + s0 - start) * net.widths[1]
                                          if kept != NULL else <floating *> NULL)
            ns = <int> s0 + nss
            s0 += net.sweep
        if mode == MODE_FORWARD:
            for b in range(nb):
                for j in range(dL):
                    outputs[(t + b) * dL + j] = xL[j * ld + b]
        elif mode == MODE_GRADIENT and net.sweep < ld:
            gradient_tile(net, scratch, ns, grad, rows, t, nb,
                          kept + (t - start) * net.widths[1] if kept != NULL
                          else <floating *> NULL)
        t += ld
    return NAN if nonfinite else err
