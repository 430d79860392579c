# Included by fastbp/_core.pyx (one extension module): what a training step minimises beside the
# network's error measure (net.output), described once for both training drivers, the mini-batch
# epoch (_sgd_epoch.pxi) and the full-batch epochs (_full_batch_epochs.pxi): the penalty, and the
# factors scikit-learn's loss puts on E_in and on its gradient. Each function rounds as the NumPy
# expression it stands for (named in its docstring), operation by operation.

# ---------------------------------------------------------------------------------------------
# the loss and the penalty

cdef struct Loss:
    # loss = loss_scale E_in + the penalties; a step follows grad_scale dE_in/dW + their gradients
    # fastbp's weight decay (Learning From Data, e-Chapter 7): lambda / N. E_aug adds
    # (lambda / N) sum w^2 over every weight, bias rows included; gradient (2 lambda / N) w
    double decay
    # scikit-learn's L2 term: alpha. The loss adds alpha / 2 ||coefs||^2 / (the samples' total
    # weight), the intercept rows (row 0 of each W(l)) spared; gradient alpha / total [0; coefs]
    double alpha
    # the total weight alpha is divided by over the whole training set (the full-batch epochs;
    # a mini-batch step divides by its batch's own)
    double total
    # c: the step follows c dE_in/dW (1; scikit-learn's squared error: 1/2)
    double grad_scale
    # E_in's factor in the loss reported (1; scikit-learn's squared error: 1 / (2 d(L)))
    double loss_scale
    # the blocks NumPy reduces a sum in: 0 for one pairwise sum of the whole array (NumPy 2),
    # else np.getbufsize() elements (NumPy 1.x buffers its reductions: each block a pairwise sum,
    # the blocks added in turn); so the penalties round as the installed NumPy's twins
    Py_ssize_t sum_block


cdef Loss loss_from(tuple spec):
    """The Loss of (decay, alpha, total, grad_scale, loss_scale, sum_block), as fastbp._api
    builds it."""
    cdef Loss loss
    loss.decay = spec[0]
    loss.alpha = spec[1]
    loss.total = spec[2]
    loss.grad_scale = spec[3]
    loss.loss_scale = spec[4]
    loss.sum_block = spec[5]
    return loss


cdef double sum_squares(const floating *a, Py_ssize_t n, Py_ssize_t block) noexcept nogil:
    """sum a^2 in float64, in the order of the installed NumPy's sum (block: Loss.sum_block):
    what float(np.square(a, dtype=np.float64).sum()) returns (fastbp._objective.sum_squares)."""
    cdef double res
    cdef Py_ssize_t k
    if block <= 0 or n <= block:
        return pairwise_squares(a, n)
    res = pairwise_squares(a, block)
    k = block
    while k < n:
        res += pairwise_squares(a + k, min(block, n - k))
        k += block
    return res


cdef double pairwise_squares(const floating *a, Py_ssize_t n) noexcept nogil:
    """sum a^2 in float64, in the order of NumPy's pairwise sum (numpy/_core/src/umath/
    loops_utils.h: blocks of 8 lanes up to 128 elements, halves above)."""
    cdef double r[8]
    cdef double res, x
    cdef Py_ssize_t i, j, n2
    if n < 8:
        res = 0.0
        for i in range(n):
            x = a[i]
            res += x * x
        return res
    if n <= 128:
        for j in range(8):
            x = a[j]
            r[j] = x * x
        i = 8
        while i < n - n % 8:
            for j in range(8):
                x = a[i + j]
                r[j] += x * x
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            x = a[i]
            res += x * x
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return pairwise_squares(a, n2) + pairwise_squares(a + n2, n - n2)


cdef floating sum_masked_squares(const floating *a, const floating *mask, Py_ssize_t n,
                                 Py_ssize_t block) noexcept nogil:
    """sum (a mask)^2 in the weights' dtype, in the order of the installed NumPy's sum (block:
    Loss.sum_block): what float(np.multiply(c, c).sum()) returns for c = a * mask (fastbp.sklearn's
    ||coefs||^2)."""
    cdef floating res
    cdef Py_ssize_t k
    if block <= 0 or n <= block:
        return pairwise_masked_squares(a, mask, n)
    res = pairwise_masked_squares(a, mask, block)
    k = block
    while k < n:
        res += pairwise_masked_squares(a + k, mask + k, min(block, n - k))
        k += block
    return res


cdef floating pairwise_masked_squares(const floating *a, const floating *mask,
                                      Py_ssize_t n) noexcept nogil:
    """sum (a mask)^2 in the weights' dtype, in the order of NumPy's pairwise sum."""
    cdef floating r[8]
    cdef floating res, c
    cdef Py_ssize_t i, j, n2
    if n < 8:
        res = 0
        for i in range(n):
            c = a[i] * mask[i]
            res += c * c
        return res
    if n <= 128:
        for j in range(8):
            c = a[j] * mask[j]
            r[j] = c * c
        i = 8
        while i < n - n % 8:
            for j in range(8):
                c = a[i + j] * mask[i + j]
                r[j] += c * c
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            c = a[i] * mask[i]
            res += c * c
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return (pairwise_masked_squares(a, mask, n2)
            + pairwise_masked_squares(a + n2, mask + n2, n - n2))


cdef void coef_mask(const Net *net, floating *mask) noexcept nogil:
    """mask over the flat weights: 0 on the intercept rows (row 0 of each W(l)), 1 elsewhere."""
    cdef int l
    cdef Py_ssize_t i, n
    for l in range(1, net.L + 1):
        n = <Py_ssize_t> (net.widths[l - 1] + 1) * net.widths[l]
        for i in range(n):
            mask[net.grad_off[l] + i] = 0 if i < net.widths[l] else 1


cdef inline bint has_penalty(const Loss *loss) noexcept nogil:
    return loss.decay != 0 or loss.alpha != 0


cdef double penalty_value(const Loss *loss, const floating *w, const floating *mask,
                          Py_ssize_t P) noexcept nogil:
    """The penalties at the flat w over the whole training set: (lambda / N) sum w^2 in float64
    (fastbp._objective.Objective.penalty), then + 0.5 (alpha / total) ||w mask||^2 in the weights'
    dtype (fastbp.sklearn's _LossObjective.penalty); mask from coef_mask."""
    cdef double value = 0.0
    if loss.decay != 0:
        value = loss.decay * sum_squares(w, P, loss.sum_block)
    if loss.alpha != 0:
        value = value + 0.5 * (loss.alpha / loss.total) * <double> sum_masked_squares(
            w, mask, P, loss.sum_block)
    return value


cdef void add_penalty_gradient(const Loss *loss, const floating *w, const floating *mask,
                               floating *g, Py_ssize_t P) noexcept nogil:
    """g += the penalties' gradients at the flat w over the whole training set: (2 lambda / N) w
    (Objective.add_penalty_gradient), then (alpha / total) (w * mask) (_LossObjective's), each
    as its NumPy expression rounds."""
    cdef floating f, step
    cdef Py_ssize_t p
    if loss.decay != 0:
        f = <floating> (2.0 * loss.decay)
        for p in range(P):
            step = f * w[p]
            g[p] = g[p] + step
    if loss.alpha != 0:
        f = <floating> (loss.alpha / loss.total)
        for p in range(P):
            step = w[p] * mask[p]
            step = f * step
            g[p] = g[p] + step


cdef void add_step_penalty(const Loss *loss, const Net *net, int l, const floating *w,
                           floating *g, double scale, Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    """g += the penalties' gradients for rows r0..r1-1 of W(l) in a mini-batch step whose mean
    has the factor `scale` (1 / the batch's total weight): (2 lambda / N) w on every weight, then
    alpha scale w on the coefficient rows (no L2 on the intercepts: scikit-learn's _backprop).
    w points to row 0 of W(l), g to row r0 of its gradient (a block of rows r0..r1-1)."""
    cdef Py_ssize_t i
    cdef Py_ssize_t d = net.widths[l]
    cdef Py_ssize_t i0 = r0 * d
    cdef floating f, step
    if loss.decay != 0:
        f = <floating> (2.0 * loss.decay)
        for i in range(r0 * d, r1 * d):
            step = f * w[i]
            g[i - i0] = g[i - i0] + step
    if loss.alpha != 0:
        f = <floating> (loss.alpha * scale)
        for i in range(max(r0, 1) * d, r1 * d):
            step = f * w[i]
            g[i - i0] = g[i - i0] + step
