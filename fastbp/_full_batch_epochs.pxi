# Included by fastbp/_core.pyx (one extension module): whole epochs of the full-batch methods gd
# (with momentum or Nesterov), variable-lr and rprop, k at a time (full_batch_run), without
# returning to Python between epochs. Each epoch's gradient and error are those of run_batch, as
# fastbp.gradient and fastbp.error compute them (the same chunks, threads and ordered reduction;
# run_batch_in, on a workspace allocated once per block); the updates are fastbp._methods' NumPy
# expressions, operation for operation.
# The declarations it uses (floating, Net, the enums) are _core.pyx's.

# ---------------------------------------------------------------------------------------------
# (c'') the full-batch epochs

from libc.math cimport INFINITY, NAN, fabs


cdef extern from "<math.h>" nogil:
    bint isfinite(double x)


cdef enum FullBatchRule:
    FB_GD = 0            # w -= lr g; with momentum: v = mu v; v -= lr g; w += v
    FB_NESTEROV = 1      # v = mu v; v -= lr g; w += mu v - lr g
    FB_VARIABLE_LR = 2   # the bold driver: try w - lr g, accept if E_aug falls
    FB_RPROP = 3         # iRPROP-


cdef enum FullBatchStatus:
    FB_DONE = 0          # the k epochs ran
    FB_TOL = 1           # the tol rule holds after the last epoch reported: training stops there
    FB_CONVERGED = 2     # variable-lr: the next step would not change w (state: the last epoch's)
    FB_DIVERGED = 3      # the next epoch made w or E infinite or NaN (state: that epoch's, dropped)


# The float64 parameters, by position (fastbp._api.full_batch_epochs packs them)
cdef enum FullBatchParam:
    FBP_MOMENTUM = 0
    FBP_LR_INCREASE = 1
    FBP_LR_DECREASE = 2
    FBP_STEP_INCREASE = 3
    FBP_STEP_DECREASE = 4
    FBP_STEP_MIN = 5
    FBP_STEP_MAX = 6
    FBP_TOTAL = 7        # the total weight of the samples (N without sample weights)
    FBP_TOL = 8          # tol, or < 0 for none


cdef inline bint all_finite(const floating *a, Py_ssize_t n) noexcept nogil:
    """np.isfinite(a).all(), by the vector screen of fastbp's input checks (_screening.pxi)."""
    return first_nonfinite_run(a, n) < 0


cdef struct Objective:
    # E_aug and its gradient on the data in memory, as fastbp._objective.DataObjective (or
    # fastbp.sklearn's _LossObjective over one) computes them
    const Loss *loss
    const void *mask            # coef_mask's 0/1 over the flat weights (with alpha), or NULL
    double total                # the samples' total weight: E_in and its gradient are means


cdef void fb_gradient(Net *net, const floating *Y, Py_ssize_t N, Py_ssize_t chunk,
                      Workspace *ws, const Objective *obj,
                      const floating *w,      # IN  the flat weights net.weights points into
                      floating *g,            # OUT grad E_aug at w
                      double *grad_sum,       # scratch (n_params,), zero before and after
                      double *E) noexcept nogil:    # OUT (E_in, E_aug) at w
    """What the objective's gradient computes: fastbp.gradient's E_in and gradient (reduction
    "mean"), each times the loss's factor (g *= grad_scale in the weights' dtype), then
    g += the penalty's gradient and E_aug = E_in + the penalty."""
    cdef double err = 0.0
    cdef double scale = 1.0 / obj.total
    cdef Py_ssize_t p, P = net.n_params
    cdef floating c = <floating> obj.loss.grad_scale
    cdef const floating *mask = <const floating *> obj.mask
    run_batch_in(net, Y, <floating *> NULL, N, chunk, MODE_GRADIENT, &err, grad_sum, ws)
    for p in range(P):
        g[p] = <floating> (grad_sum[p] * scale)
        grad_sum[p] = 0         # ready for the next gradient, without a pass of its own
    if obj.loss.grad_scale != 1.0:
        for p in range(P):
            g[p] = g[p] * c
    E[0] = err * scale * obj.loss.loss_scale
    E[1] = E[0]
    if has_penalty(obj.loss):
        add_penalty_gradient(obj.loss, w, mask, g, P)
        E[1] = E[0] + penalty_value(obj.loss, w, mask, P)


cdef void fb_error(Net *net, const floating *Y, Py_ssize_t N, Py_ssize_t chunk,
                   Workspace *ws, const Objective *obj, const floating *w,
                   double *E) noexcept nogil:
    """(E_in, E_aug) at w, as the objective's error: fastbp.error's E_in (sum / total) times the
    loss's factor, E_aug = E_in + the penalty."""
    cdef double err = 0.0
    run_batch_in(net, Y, <floating *> NULL, N, chunk, MODE_ERROR, &err, NULL, ws)
    E[0] = err / obj.total * obj.loss.loss_scale
    E[1] = E[0]
    if has_penalty(obj.loss):
        E[1] = E[0] + penalty_value(obj.loss, w, <const floating *> obj.mask, net.n_params)


cdef Py_ssize_t full_batch_run(
    Net *net,                   # net.weights: W(1..L) inside the flat w; net.input: X (N, d(0))
    const floating *Y,          # IN  (N, d(L))
    Py_ssize_t N,
    Py_ssize_t chunk,           # IN  as fastbp.gradient's plan
    int slots_per_thread,
    int num_threads,
    int rule,                   # IN  a FullBatchRule
    const double *par,          # IN  the FullBatchParam values
    const Loss *loss,           # IN  the loss and penalty of E_aug
    floating *w,                # IN/OUT flat weights
    floating *g,                # IN/OUT grad E_aug at w
    floating *v,                # IN/OUT gd's velocity (momentum > 0), else unused
    floating *steps,            # IN/OUT rprop's step sizes, else unused
    floating *g_prev,           # IN/OUT rprop's last gradient (0 where its sign flipped)
    floating *trial,            # scratch: variable-lr's trial weights
    double *state,              # IN/OUT E_in, E_aug, E_prev (tol's), learning rate
    Py_ssize_t k,               # IN  epochs at most
    double *rec_E_in,           # OUT (k,) per epoch
    double *rec_E_aug,          # OUT (k,)
    double *rec_lr,             # OUT (k,) the learning rate used (NaN for rprop)
    unsigned char *rec_accepted,  # OUT (k,)
    int *status,                # OUT a FullBatchStatus
) noexcept nogil:
    """Up to k epochs; return how many ran and were kept (-1 when memory could not be had).

    Epoch after epoch, as fastbp._methods' epoch() and the trainer's checks would run them: the
    update in the weights' dtype (scalars rounded to it, no fused multiply-add on any target:
    _no_fp_contract.h), the gradient or error at the new weights, then
    the trainer's rules: an epoch whose E_aug or weights are not finite ends the run before it
    is counted (FB_DIVERGED: the caller redoes it the Python way), and tol stops after the epoch
    where |E_prev - E_aug| <= tol |E_prev| (accepted epochs only)."""
    cdef Py_ssize_t P = net.n_params
    cdef Py_ssize_t p, e, done = 0
    cdef int l
    cdef double *grad_sum = <double *> fastbp_aligned_calloc((P + 1) * sizeof(double))
    cdef const void **w_ptrs = <const void **> calloc(2 * net.L + 2, sizeof(void *))
    cdef const void **t_ptrs
    cdef Objective obj
    cdef floating *mask = NULL
    cdef double tol = par[<int> FBP_TOL]
    cdef double momentum = par[<int> FBP_MOMENTUM]
    cdef double lr
    cdef double E_new[2]
    cdef floating lr_f, neg_lr, mu, t, step, update, same, sgn, gi
    cdef floating inc_f = <floating> par[<int> FBP_STEP_INCREASE]
    cdef floating dec_f = <floating> par[<int> FBP_STEP_DECREASE]
    cdef floating min_f = <floating> par[<int> FBP_STEP_MIN]
    cdef floating max_f = <floating> par[<int> FBP_STEP_MAX]
    cdef bint accepted, unchanged, finite
    cdef const void **layout_ptrs = net.weights
    cdef Workspace ws
    status[0] = FB_DONE
    if loss.alpha != 0:
        mask = <floating *> fastbp_aligned_calloc((P + 1) * sizeof(floating))
        if mask != NULL:
            coef_mask(net, mask)
    obj.loss = loss
    obj.mask = mask
    obj.total = par[<int> FBP_TOTAL]
    if (grad_sum == NULL or w_ptrs == NULL or (loss.alpha != 0 and mask == NULL)
            or workspace_alloc(net, (N + chunk - 1) // chunk,
                               <Py_ssize_t> num_threads * slots_per_thread, num_threads, True,
                               sizeof(floating), &ws, N, chunk) != 0):
        fastbp_aligned_free(grad_sum)
        fastbp_aligned_free(mask)
        free(w_ptrs)
        return -1
    t_ptrs = w_ptrs + net.L + 1
    for l in range(net.L):
        w_ptrs[l] = w + net.grad_off[l + 1]
        t_ptrs[l] = trial + net.grad_off[l + 1] if trial != NULL else NULL
    net.weights = w_ptrs
    mu = <floating> momentum
    for e in range(k):
        lr = state[3]
        accepted = True
        if rule == FB_VARIABLE_LR:
            # trial = -lr g + w; E there (inf when not finite); accept when E_aug falls
            neg_lr = <floating> (-lr)
            finite = True
            unchanged = True
            for p in range(P):
                t = g[p] * neg_lr
                t = t + w[p]
                trial[p] = t
                if not isfinite(t):
                    finite = False
                if t != w[p]:
                    unchanged = False
            if finite:
                net.weights = t_ptrs
                fb_error(net, Y, N, chunk, &ws, &obj, trial, E_new)
                net.weights = w_ptrs
            else:
                E_new[0] = E_new[1] = INFINITY
            if unchanged:
                status[0] = FB_CONVERGED
                break
            if E_new[1] < state[1]:
                memcpy(w, trial, P * sizeof(floating))
                state[0] = E_new[0]
                state[1] = E_new[1]
                # the gradient at the new w (its E is not kept: the trial's error-mode E is)
                fb_gradient(net, Y, N, chunk, &ws, &obj, w, g, grad_sum, E_new)
                state[3] = lr * par[<int> FBP_LR_INCREASE]
            else:
                accepted = False
                state[3] = lr * par[<int> FBP_LR_DECREASE]
        else:
            if rule == FB_RPROP:
                lr = NAN
                for p in range(P):
                    gi = g[p]
                    same = gi * g_prev[p]
                    if same > 0:
                        t = steps[p] * inc_f
                        steps[p] = t if (t <= max_f or t != t) else max_f     # np.minimum
                    elif same < 0:
                        t = steps[p] * dec_f
                        steps[p] = t if (t >= min_f or t != t) else min_f     # np.maximum
                        gi = 0
                    if gi > 0:
                        sgn = 1
                    elif gi < 0:
                        sgn = -1
                    elif gi == 0:
                        sgn = 0
                    else:
                        sgn = gi                                                # np.sign(NaN)
                    update = sgn * steps[p]
                    w[p] = w[p] - update
                    g_prev[p] = gi
            else:
                lr_f = <floating> lr
                if momentum != 0:
                    for p in range(P):
                        v[p] = v[p] * mu
                        step = lr_f * g[p]
                        v[p] = v[p] - step
                        if rule == FB_NESTEROV:
                            update = mu * v[p] - step
                            w[p] = w[p] + update
                        else:
                            w[p] = w[p] + v[p]
                else:
                    for p in range(P):
                        step = lr_f * g[p]
                        w[p] = w[p] - step
            if not all_finite(w, P):
                status[0] = FB_DIVERGED
                break
            fb_gradient(net, Y, N, chunk, &ws, &obj, w, g, grad_sum, state)
        if not isfinite(state[1]):
            status[0] = FB_DIVERGED
            break
        rec_E_in[e] = state[0]
        rec_E_aug[e] = state[1]
        rec_lr[e] = lr
        rec_accepted[e] = accepted
        done = e + 1
        if tol >= 0 and accepted and fabs(state[2] - state[1]) <= tol * fabs(state[2]):
            state[2] = state[1]
            status[0] = FB_TOL
            break
        state[2] = state[1]
    net.weights = layout_ptrs
    workspace_free(&ws)
    fastbp_aligned_free(grad_sum)
    fastbp_aligned_free(mask)
    free(w_ptrs)
    return done
