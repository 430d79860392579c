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
    Net *net,                   # net.input: X (N, d(0))
    floating **weights,         # IN/OUT W(1..L), updated after every mini-batch
    floating **velocity,        # IN/OUT v(1..L) (momentum > 0), Adam's first moments m, or unused
    floating **moment2,         # IN/OUT Adam's second moments, else unused
    const floating *Y,          # IN  (N, d(L))
    const Py_ssize_t *order,    # IN  the epoch's permutation of 0..N-1
    Py_ssize_t N,
    Py_ssize_t batch_size,
    Py_ssize_t chunk,           # IN  samples per chunk, as `gradient` would use
    int num_threads,            # IN  threads for the chunks of a batch of two chunks or more
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
    Its epoch loss
    sums, over the batches, |batch| times the batch's loss at the weights the batch saw; the two
    parts of that sum come back apart, since scikit-learn scales the error part by its own
    factor: loss[1] += |batch| err_batch / total (err_batch the kernel's sum of w_n e_n) and
    loss[0] += |batch| (alpha / 2) ||W(rows 1..)||^2 / total (0 when alpha = 0).
    Threads: a batch of one chunk runs on the calling thread, as it always did (handing its
    activations between cores costs more than its work). A batch of two chunks or more is
    computed by chunk_rounds, the driver of every gradient (up to num_threads threads, `slots`
    chunks per round, each chunk into a slot of its own, the slots added to the float64 sums in
    chunk order), so the weights, moments, steps and losses are bitwise those of
    num_threads = 1. The step itself (decay, L2, the rule, the packing of the panels) runs on the
    calling thread after the batch's parallel region, so no thread starts the next batch before
    the weights and panels are complete.
    Return 0, or -1 when memory could not be had (the weights are untouched then).
    """
    cdef Py_ssize_t P = net.n_params
    cdef int threads = max(1, num_threads)
    cdef Workspace ws
    cdef floating *grad = <floating *> fastbp_aligned_calloc((P + 1) * sizeof(floating))
    cdef double *grad64 = <double *> fastbp_aligned_calloc((P + 1) * sizeof(double))
    cdef floating *chunk_grad
    cdef floating *scratch
    cdef floating *panels
    cdef Py_ssize_t start, stop, p, i, n
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
    cdef double grad_scale = objective.grad_scale
    cdef double l2 = objective.alpha
    cdef double batch_err, coef_sq
    # allocated once per epoch: one scratch per thread, one gradient slot per chunk of a round
    if grad == NULL or grad64 == NULL or workspace_alloc(
            net, (batch_size + chunk - 1) // chunk, slots if threads > 1 else 1, threads, True,
            sizeof(floating), &ws) != 0:
        fastbp_aligned_free(grad)
        fastbp_aligned_free(grad64)
        return -1
    workspace_ready(net, &ws, <floating> 0)
    chunk_grad = <floating *> ws.grads
    scratch = <floating *> ws.scratch
    panels = <floating *> ws.panels
    net.panels = panels
    start = 0
    while start < N:
        stop = min(start + batch_size, N)
        scale = batch_scale(net, <const floating *> net.sample_weight, order, start, stop)
        if stop - start <= chunk:
            # one chunk (the usual mini-batch): its sums go straight to the step, with the same
            # rounding as through the float64 total (0.0 + x, not x: the sign of a zero included);
            # converted layer by layer below, while each layer's sums are in cache
            batch_err = run_chunk(net, Y, order, <floating *> NULL, start, stop, scratch,
                                  chunk_grad, MODE_GRADIENT)
        else:
            # A parallel region per batch (chunk_rounds opens it), not one around the epoch with
            # barriers between steps: GNU OpenMP keeps its team between regions, and a thread
            # waits for the next region as it would wait at a barrier (it spins GOMP_SPINCOUNT
            # times, 2000 as fastbp/__init__.py sets it, then sleeps on a futex), against at
            # least two chunks of work (>= 8 tiles, 512 samples, each). callgrind (4 batches of
            # 4096, B and C = [64, 128, 128, 10]): the threads' chunks split evenly, the serial
            # step is under 1 % of the 1-thread instructions.
            memset(grad64, 0, P * sizeof(double))
            chunk_rounds(net, Y, order, <floating *> NULL, start, stop, chunk, MODE_GRADIENT,
                         &ws, grad64, &batch_err)
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
            add_step_penalty(objective, net, l + 1, w, g, scale)
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
    workspace_free(&ws)
    fastbp_aligned_free(grad)
    fastbp_aligned_free(grad64)
    return 0
