/* The micro-kernels in plain C, for compilers without GCC/clang vector extensions (MSVC): the
 * same functions and results as _simd_kernels.h up to rounding (libm's tanh, no fused
 * multiply-adds), one value at a time. Included by _simd.h once per type with FASTBP_T and
 * FASTBP_SFX(name); FASTBP_SCALAR_KERNELS=1 selects it on any compiler (to test it). */

#define T FASTBP_T

static int FASTBP_SFX(sample_block)(void) { return 8; }

static void FASTBP_SFX(linear)(const T *panel, int K, int m, const T *in, ptrdiff_t ld, T *out,
                               int ns)
{
    for (int i = 0; i < m; i++) {
        const T *p = panel + (ptrdiff_t)(i / FASTBP_RB) * K * FASTBP_RB + i % FASTBP_RB;
        T *o = out + (ptrdiff_t)i * ld;
        for (int b = 0; b < ns; b++) o[b] = 0;
        for (int k = 0; k < K; k++) {
            const T w = p[(ptrdiff_t)k * FASTBP_RB];
            const T *x = in + (ptrdiff_t)k * ld;
            for (int b = 0; b < ns; b++) o[b] += w * x[b];
        }
    }
}

/* every column is left over: one running sum an element */
static int FASTBP_SFX(tile_lanes)(int cols) { return cols; }

static void FASTBP_SFX(outer)(const T *const *X, const T *const *D, const int *nsp, int pieces,
                              int rows, int cols, ptrdiff_t ld, T *G, T *work, int panel,
                              int part, T *lanes)
{
    (void)work;
    (void)panel;
    /* every element adds a whole tile's sum into G at once: all its columns are by tile */
    if (!(part & FASTBP_OUTER_BY_TILE))
        return;
    for (int j = 0; j < rows; j++)
        for (int c = 0; c < cols; c++) {
            T s = (part & FASTBP_OUTER_LANES_IN) ? lanes[(ptrdiff_t)j * cols + c] : 0;
            for (int p = 0; p < pieces; p++)
                for (int b = 0; b < nsp[p]; b++)
                    s += X[p][(ptrdiff_t)j * ld + b] * D[p][(ptrdiff_t)c * ld + b];
            if (part & FASTBP_OUTER_LANES_OUT)
                lanes[(ptrdiff_t)j * cols + c] = s;
            else
                G[(ptrdiff_t)j * cols + c] += s;
        }
}

static int FASTBP_SFX(load_inputs)(const T *X, const ptrdiff_t *rows, ptrdiff_t t, int nb,
                                   int d0, T *x0, ptrdiff_t ld, int ns)
{
    /* NaN when a value loaded is NaN or infinite (see _simd_kernels.h), in four sums */
    T screen[4] = {0, 0, 0, 0};
    for (int b = 0; b < nb; b++) {
        const T *xb = X + (rows != NULL ? rows[t + b] : t + b) * (ptrdiff_t)d0;
        for (int j = 0; j < d0; j++) {
            x0[(ptrdiff_t)j * ld + b] = xb[j];
            screen[j & 3] += xb[j] * (T)0;
        }
    }
    for (int j = 0; j < d0; j++)
        for (int b = nb; b < ns; b++) x0[(ptrdiff_t)j * ld + b] = 0;
    const T sum = (screen[0] + screen[1]) + (screen[2] + screen[3]);
    return sum != sum;
}

static void FASTBP_SFX(tanh)(T *x, int rows, ptrdiff_t ld, ptrdiff_t n)
{
    for (int j = 0; j < rows; j++, x += ld)
        for (ptrdiff_t i = 0; i < n; i++) x[i] = (T)tanh((double)x[i]);
}

static void FASTBP_SFX(dtanh_mul)(T *delta, const T *x, int rows, ptrdiff_t ld, ptrdiff_t n)
{
    for (int j = 0; j < rows; j++, x += ld, delta += ld)
        for (ptrdiff_t i = 0; i < n; i++) delta[i] *= (T)1 - x[i] * x[i];
}

static void FASTBP_SFX(exp)(T *x, int rows, ptrdiff_t ld, ptrdiff_t n)
{
    for (int j = 0; j < rows; j++, x += ld)
        for (ptrdiff_t i = 0; i < n; i++) x[i] = (T)exp((double)x[i]);
}

static void FASTBP_SFX(log)(T *x, int rows, ptrdiff_t ld, ptrdiff_t n)
{
    for (int j = 0; j < rows; j++, x += ld)
        for (ptrdiff_t i = 0; i < n; i++) x[i] = (T)log((double)x[i]);
}

static void FASTBP_SFX(log1p_exp)(T *x, int rows, ptrdiff_t ld, ptrdiff_t n)
{
    for (int j = 0; j < rows; j++, x += ld)
        for (ptrdiff_t i = 0; i < n; i++) x[i] = (T)log1p(exp(-fabs((double)x[i])));
}

static void FASTBP_SFX(logistic)(T *x, int rows, ptrdiff_t ld, ptrdiff_t n)
{
    for (int j = 0; j < rows; j++, x += ld)
        for (ptrdiff_t i = 0; i < n; i++) {
            double e = exp(-fabs((double)x[i]));
            x[i] = (T)(x[i] < 0 ? e / (1 + e) : 1 / (1 + e));
        }
}

static void FASTBP_SFX(relu)(T *x, int rows, ptrdiff_t ld, ptrdiff_t n)
{
    for (int j = 0; j < rows; j++, x += ld)
        for (ptrdiff_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : (T)0;
}

static void FASTBP_SFX(drelu_mul)(T *delta, const T *x, int rows, ptrdiff_t ld, ptrdiff_t n)
{
    for (int j = 0; j < rows; j++, x += ld, delta += ld)
        for (ptrdiff_t i = 0; i < n; i++) delta[i] = x[i] > 0 ? delta[i] : (T)0;
}

static void FASTBP_SFX(dlogistic_mul)(T *delta, const T *x, int rows, ptrdiff_t ld, ptrdiff_t n)
{
    for (int j = 0; j < rows; j++, x += ld, delta += ld)
        for (ptrdiff_t i = 0; i < n; i++) delta[i] *= x[i] * ((T)1 - x[i]);
}

static void FASTBP_SFX(softmax)(T *x, int rows, ptrdiff_t ld, ptrdiff_t n, T *mx, T *logsum)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        T m = x[i];
        for (int k = 1; k < rows; k++) m = x[(ptrdiff_t)k * ld + i] > m ? x[(ptrdiff_t)k * ld + i] : m;
        T sum = 0;
        for (int k = 0; k < rows; k++) {
            T e = (T)exp((double)(x[(ptrdiff_t)k * ld + i] - m));
            x[(ptrdiff_t)k * ld + i] = e;
            sum += e;
        }
        for (int k = 0; k < rows; k++) x[(ptrdiff_t)k * ld + i] /= sum;
        mx[i] = m;
        logsum[i] = (T)log((double)sum);
    }
}

#undef T
