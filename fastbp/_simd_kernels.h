/* Template of the micro-kernels, included by _simd.h once per (type, instruction set) with
 *   FASTBP_T        float or double
 *   FASTBP_VBYTES   bytes of one vector register (16 SSE2, 32 AVX2, 64 AVX-512)
 *   FASTBP_NV       vectors of samples per block in `linear`
 *   FASTBP_GR, FASTBP_GC  rows x columns of the gradient block in `outer`
 *   FASTBP_SFX(x)   the suffixed name, FASTBP_ATTR the target attribute.
 * The vectors are GCC/clang vector extensions: the compiler maps them to the target's registers, and
 * the code says exactly which lanes are summed with which (no reassociation is left to the compiler).
 */

#define T FASTBP_T
#define V FASTBP_SFX(vec)
#define LANES ((int)(FASTBP_VBYTES / sizeof(T)))
#define NV FASTBP_NV
#define SBLK (NV * LANES)
#define GR FASTBP_GR
#define GC FASTBP_GC

typedef T V __attribute__((vector_size(FASTBP_VBYTES), may_alias));

/* The samples one call of these kernels handles at a time: `ns` must be a multiple of this. */
FASTBP_ATTR static int FASTBP_SFX(sample_block)(void) { return LANES; }

/* One block of `linear`: units i..i+RBC-1 of the panel, samples b0..b0+NVC*LANES-1. */
#define FASTBP_LINEAR_BLOCK(RBC, NVC)                                                   \
    do {                                                                                \
        V acc[RBC][NVC];                                                                \
        for (int r = 0; r < RBC; r++)                                                   \
            for (int v = 0; v < NVC; v++) acc[r][v] = (V){0};                           \
        const T *x = in + b0;                                                           \
        for (int k = 0; k < K; k++, x += ld) {                                          \
            const T *w = p + (ptrdiff_t)k * FASTBP_RB;                                  \
            V xv[NVC];                                                                  \
            for (int v = 0; v < NVC; v++) xv[v] = *(const V *)(x + v * LANES);         \
            for (int r = 0; r < RBC; r++) {                                             \
                const T wr = w[r];                                                      \
                for (int v = 0; v < NVC; v++) acc[r][v] += wr * xv[v];                  \
            }                                                                           \
        }                                                                               \
        for (int r = 0; r < rows; r++)                                                  \
            for (int v = 0; v < NVC; v++)                                               \
                *(V *)(o + (ptrdiff_t)r * ld + b0 + v * LANES) = acc[r][v];             \
    } while (0)

/* out[i][b] = sum_k panel_i[k] * in[k][b] for units i < m and samples b < ns (rows `ld` apart).
 * The panel holds the matrix in blocks of FASTBP_RB units, k-major within a block (see
 * fastbp_pack_*): forward it is W(l) (M[k][i] = W[k][i]), backward W(l+1) without its bias row
 * (M[k][i] = W[i+1][k]). Samples go NV vectors at a time, and the last few one vector at a time
 * (a mini-batch of SGD need not be padded to a whole block): every lane sums over k in the same
 * order either way, so each sample's result is the same bits. */
FASTBP_ATTR static void FASTBP_SFX(linear)(const T *FASTBP_RESTRICT panel, int K, int m,
                                           const T *FASTBP_RESTRICT in, ptrdiff_t ld,
                                           T *FASTBP_RESTRICT out, int ns)
{
    for (int i = 0; i < m; i += FASTBP_RB) {
        const T *p = panel + (ptrdiff_t)(i / FASTBP_RB) * K * FASTBP_RB;
        T *o = out + (ptrdiff_t)i * ld;
        const int rows = m - i < FASTBP_RB ? m - i : FASTBP_RB;
        int b0 = 0;
        for (; b0 + SBLK <= ns; b0 += SBLK) {
            if (rows == 1)
                FASTBP_LINEAR_BLOCK(1, NV);
            else
                FASTBP_LINEAR_BLOCK(FASTBP_RB, NV);
        }
        for (; b0 < ns; b0 += LANES) {
            if (rows == 1)
                FASTBP_LINEAR_BLOCK(1, 1);
            else
                FASTBP_LINEAR_BLOCK(FASTBP_RB, 1);
        }
    }
}

/* Sum of the lanes of a vector, always in the same order. */
FASTBP_ATTR static inline T FASTBP_SFX(lanesum)(V a)
{
    T s = 0;
    for (int l = 0; l < LANES; l++) s += a[l];
    return s;
}

#define FASTBP_OUTER_BLOCK(RC, CC)                                                      \
    do {                                                                                \
        V acc[RC][CC];                                                                  \
        for (int r = 0; r < RC; r++)                                                    \
            for (int c = 0; c < CC; c++) acc[r][c] = (V){0};                            \
        for (int b = 0; b < ns; b += LANES) {                                           \
            V xv[RC], dv[CC];                                                           \
            for (int r = 0; r < RC; r++) xv[r] = *(const V *)(X + (ptrdiff_t)(j + r) * ld + b); \
            for (int c = 0; c < CC; c++) dv[c] = *(const V *)(D + (ptrdiff_t)(c0 + c) * ld + b); \
            for (int r = 0; r < RC; r++)                                                \
                for (int c = 0; c < CC; c++) acc[r][c] += xv[r] * dv[c];                \
        }                                                                               \
        for (int r = 0; r < RC; r++)                                                    \
            for (int c = 0; c < CC; c++)                                                \
                G[(ptrdiff_t)(j + r) * cols + c0 + c] += FASTBP_SFX(lanesum)(acc[r][c]); \
    } while (0)

/* G[j..j+RC-1][c0..c0+CC*LANES-1] += sum_b X[j+r][b] work[b][c0..]: the block in registers. */
#define FASTBP_OUTER_T_BLOCK(RC, CC)                                                    \
    do {                                                                                \
        V acc[RC][CC];                                                                  \
        for (int r = 0; r < RC; r++)                                                    \
            for (int c = 0; c < CC; c++) {                                              \
                memcpy(&acc[r][c], G + (ptrdiff_t)(j + r) * cols + c0 + c * LANES, sizeof(V)); \
            }                                                                           \
        const T *wb = work + c0;                                                        \
        for (int b = 0; b < ns; b++, wb += vcols) {                                     \
            V dv[CC];                                                                   \
            for (int c = 0; c < CC; c++) memcpy(&dv[c], wb + c * LANES, sizeof(V));     \
            for (int r = 0; r < RC; r++) {                                              \
                const T xr = X[(ptrdiff_t)(j + r) * ld + b];                            \
                for (int c = 0; c < CC; c++) acc[r][c] += xr * dv[c];                   \
            }                                                                           \
        }                                                                               \
        for (int r = 0; r < RC; r++)                                                    \
            for (int c = 0; c < CC; c++)                                                \
                memcpy(G + (ptrdiff_t)(j + r) * cols + c0 + c * LANES, &acc[r][c], sizeof(V)); \
    } while (0)

/* G[j][c] += sum_{b < ns} X[j][b] D[c][b]: the gradient update of one layer from a tile, X its
 * inputs x(l-1) (rows units), D its sensitivities delta(l) (cols units), `work` room for ns x cols
 * values. Columns in whole vectors go through D transposed (work[b][c] = D[c][b]): a block of G
 * stays in registers while the samples stream by, each sample one broadcast of x per row and one
 * load of delta per vector of columns, nothing summed across lanes. The few columns left over
 * (fewer than a vector) are dot products over the samples, each lane summing its own samples. */
FASTBP_ATTR static void FASTBP_SFX(outer)(const T *FASTBP_RESTRICT X, int rows,
                                          const T *FASTBP_RESTRICT D, int cols, ptrdiff_t ld,
                                          int ns, T *FASTBP_RESTRICT G, T *FASTBP_RESTRICT work)
{
    const int vcols = cols / LANES * LANES;
    if (vcols > 0) {
        for (int b = 0; b < ns; b++)
            for (int c = 0; c < vcols; c++) work[(ptrdiff_t)b * vcols + c] = D[(ptrdiff_t)c * ld + b];
        int c0 = 0;
        for (; c0 + GC * LANES <= vcols; c0 += GC * LANES) {
            int j = 0;
            for (; j + GR <= rows; j += GR) FASTBP_OUTER_T_BLOCK(GR, GC);
            for (; j < rows; j++) FASTBP_OUTER_T_BLOCK(1, GC);
        }
        for (; c0 < vcols; c0 += LANES) {
            int j = 0;
            for (; j + GR <= rows; j += GR) FASTBP_OUTER_T_BLOCK(GR, 1);
            for (; j < rows; j++) FASTBP_OUTER_T_BLOCK(1, 1);
        }
    }
    for (int j = 0; j < rows; j++) {
        int c0 = vcols;
        for (; c0 + 2 <= cols; c0 += 2) FASTBP_OUTER_BLOCK(1, 2);
        for (; c0 < cols; c0++) FASTBP_OUTER_BLOCK(1, 1);
    }
}

/* tanh of one vector, accurate to a few ulp:
 * tanh(x) = sign(x) e / (e + 2) with e = expm1(2|x|); expm1 by Cody-Waite reduction
 * 2|x| = n ln2 + r, |r| <= ln2/2, a Taylor polynomial of expm1(r) long enough for the type, and
 * e = 2^n expm1(r) + (2^n - 1), with 2^n built in the exponent bits. Only vector operations. */
FASTBP_ATTR static inline __attribute__((always_inline)) V FASTBP_SFX(tanh1)(V v)
{
    typedef FASTBP_IT VI __attribute__((vector_size(FASTBP_VBYTES)));
    const int is_double = sizeof(T) == 8;
    /* beyond this |x|, tanh rounds to +-1 in the type */
    const T big = is_double ? (T)19.5 : (T)9.5;
    const T log2e = (T)1.4426950408889634;
    const T ln2_hi = is_double ? (T)6.93147180369123816490e-01 : (T)0.693145751953125;
    const T ln2_lo = is_double ? (T)1.90821492927058770002e-10 : (T)1.428606765330187e-06;
    /* adding 1.5 * 2^mantissa_bits rounds to an integer, which lands in the low bits */
    const T shifter = is_double ? (T)6755399441055744.0 : (T)12582912.0;
    const int mant = is_double ? 52 : 23;
    const FASTBP_IT bias = is_double ? 1023 : 127;
    const VI sign = (VI){0} + ((FASTBP_IT)1 << (8 * sizeof(T) - 1));
    {
        V a = (V)((VI)v & ~sign);                         /* |x| */
        VI over = (VI)(a > big);                          /* all ones where |x| > big */
        a = (V)(((VI)a & ~over) | ((VI)((V){0} + big) & over));
        V t = a + a;
        V kd = t * log2e + shifter;
        V nr = kd - shifter;                              /* round(t / ln2), exactly */
        V r = (t - nr * ln2_hi) - nr * ln2_lo;
        /* expm1(r) = r + r^2 (1/2! + r/3! + ... + r^(m-2)/m!), m = 14 for double, 8 for float */
        V p = (V){0} + (T)(1.0 / 40320.0);                /* 1/8! */
        if (is_double) {
            p = (V){0} + (T)(1.0 / 87178291200.0);        /* 1/14! */
            p = p * r + (T)(1.0 / 6227020800.0);
            p = p * r + (T)(1.0 / 479001600.0);
            p = p * r + (T)(1.0 / 39916800.0);
            p = p * r + (T)(1.0 / 3628800.0);
            p = p * r + (T)(1.0 / 362880.0);
            p = p * r + (T)(1.0 / 40320.0);
        }
        p = p * r + (T)(1.0 / 5040.0);
        p = p * r + (T)(1.0 / 720.0);
        p = p * r + (T)(1.0 / 120.0);
        p = p * r + (T)(1.0 / 24.0);
        p = p * r + (T)(1.0 / 6.0);
        p = p * r + (T)0.5;
        V em1r = r + r * r * p;                           /* expm1(r) */
        VI bits = ((VI)kd + bias) << mant;                /* 2^n: n sits in the low bits of kd */
        V scale = (V)bits;
        V e = scale * em1r + (scale - (T)1);              /* expm1(2|x|) */
#ifdef FASTBP_RECIP
        /* division is the slowest vector operation there is: an approximate reciprocal refined by
         * Newton steps r <- r + r (1 - d r) instead (each doubles the correct bits) */
        V den = e + (T)2;
        V rec = FASTBP_RECIP(den);
        for (int it = 0; it < FASTBP_RECIP_STEPS; it++) rec = rec + rec * ((T)1 - den * rec);
        V th = e * rec;
#else
        V th = e / (e + (T)2);
#endif
        return (V)((VI)th | ((VI)v & sign));              /* th >= 0 takes the sign of x */
    }
}

/* tanh in place on n values, n a multiple of LANES; two vectors at a time, so that two of the
 * long dependency chains above are in flight together. */
FASTBP_ATTR static void FASTBP_SFX(tanh)(T *FASTBP_RESTRICT x, ptrdiff_t n)
{
    ptrdiff_t i = 0;
    for (; i + 2 * LANES <= n; i += 2 * LANES) {
        V a = FASTBP_SFX(tanh1)(*(V *)(x + i));
        V b = FASTBP_SFX(tanh1)(*(V *)(x + i + LANES));
        *(V *)(x + i) = a;
        *(V *)(x + i + LANES) = b;
    }
    for (; i < n; i += LANES) *(V *)(x + i) = FASTBP_SFX(tanh1)(*(V *)(x + i));
}

/* delta[i] *= 1 - x[i]^2 for n values (n a multiple of LANES): tanh'(s) = 1 - tanh(s)^2. */
FASTBP_ATTR static void FASTBP_SFX(dtanh_mul)(T *FASTBP_RESTRICT delta, const T *FASTBP_RESTRICT x,
                                              ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i += LANES) {
        V xv = *(const V *)(x + i);
        *(V *)(delta + i) *= (T)1 - xv * xv;
    }
}

#undef FASTBP_LINEAR_BLOCK
#undef FASTBP_OUTER_BLOCK
#undef FASTBP_OUTER_T_BLOCK
#undef T
#undef V
#undef LANES
#undef NV
#undef SBLK
#undef GR
#undef GC
