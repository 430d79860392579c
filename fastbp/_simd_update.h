/* Included by fastbp/_core.pyx after _no_fp_contract.h: Adam's update of a block of weights
 * (fastbp/_sgd_epoch.pxi, step_block), in the vectors of the kernel set in use.
 *
 * Per weight, in this order and rounding (scikit-learn's AdamOptimizer, operation by operation):
 *     m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;  w = w - lr_t m / (sqrt(v) + eps)
 * Every operation is IEEE-754 correctly rounded, lane by lane as in scalar code, and nothing is
 * fused (contraction is off from _no_fp_contract.h on): each set gives the scalar loop's results
 * bit for bit. The square root and the division are most of a step's time on a wide layer (a
 * sparse input's W(1)), and the scalar loop ran one of each per weight: the vectors run 2 to 8.
 */
#ifndef FASTBP_SIMD_UPDATE_H
#define FASTBP_SIMD_UPDATE_H

/* Call fn's variant for the kernel set chosen at import (fastbp_select_kernels, which sets
 * fastbp_isa_level): its vectors on x86-64, the scalar loop elsewhere. */
#if FASTBP_HAVE_AVX2
#define FASTBP_BY_SET(fn, ...)                                                             \
    do {                                                                                \
        if (fastbp_isa_level == 2)                                                      \
            fn##_avx512(__VA_ARGS__);                                                   \
        else if (fastbp_isa_level == 1)                                                 \
            fn##_avx2(__VA_ARGS__);                                                     \
        else                                                                            \
            fn##_sse2(__VA_ARGS__);                                                     \
    } while (0)
#else
#define FASTBP_BY_SET(fn, ...) fn##_scalar(__VA_ARGS__)
#endif

#define FASTBP_ADAM_SCALAR(T, SQRT)                                                         \
    for (; i < n; i++) {                                                                \
        m[i] = b1 * m[i] + one_b1 * g[i];                                               \
        v[i] = b2 * v[i] + one_b2 * (g[i] * g[i]);                                      \
        w[i] = w[i] - lr * m[i] / (SQRT(v[i]) + eps);                                   \
    }

static inline void fastbp_adam_d_scalar(double *FASTBP_RESTRICT w, double *FASTBP_RESTRICT m,
                                        double *FASTBP_RESTRICT v,
                                        const double *FASTBP_RESTRICT g, ptrdiff_t n, double b1,
                                        double one_b1, double b2, double one_b2, double lr,
                                        double eps) {
    ptrdiff_t i = 0;
    FASTBP_ADAM_SCALAR(double, sqrt)
}

static inline void fastbp_adam_f_scalar(float *FASTBP_RESTRICT w, float *FASTBP_RESTRICT m,
                                        float *FASTBP_RESTRICT v, const float *FASTBP_RESTRICT g,
                                        ptrdiff_t n, float b1, float one_b1, float b2,
                                        float one_b2, float lr, float eps) {
    ptrdiff_t i = 0;
    FASTBP_ADAM_SCALAR(float, sqrtf)
}

#if FASTBP_HAVE_AVX2
/* One body per vector type: LOAD, STORE, SET1, MUL, ADD, SUB, DIV, SQRT, the lanes W. */
#define FASTBP_ADAM_VECTOR(VT, W, LOAD, STORE, SET1, MUL, ADD, SUB, DIV, SQRT, SSQRT)       \
    ptrdiff_t i = 0;                                                                    \
    const VT vb1 = SET1(b1), vob1 = SET1(one_b1), vb2 = SET1(b2), vob2 = SET1(one_b2);  \
    const VT vlr = SET1(lr), veps = SET1(eps);                                          \
    for (; i + W <= n; i += W) {                                                        \
        VT gi = LOAD(g + i);                                                            \
        VT mi = ADD(MUL(vb1, LOAD(m + i)), MUL(vob1, gi));                              \
        VT vi = ADD(MUL(vb2, LOAD(v + i)), MUL(vob2, MUL(gi, gi)));                     \
        STORE(m + i, mi);                                                               \
        STORE(v + i, vi);                                                               \
        STORE(w + i, SUB(LOAD(w + i), DIV(MUL(vlr, mi), ADD(SQRT(vi), veps))));         \
    }                                                                                   \
    FASTBP_ADAM_SCALAR(T, SSQRT)

#define FASTBP_ADAM_FN(SFX, T, ATTR, VT, W, LOAD, STORE, SET1, MUL, ADD, SUB, DIV, SQRT, SSQRT) \
    ATTR static void fastbp_adam_##SFX(T *FASTBP_RESTRICT w, T *FASTBP_RESTRICT m,     \
                                       T *FASTBP_RESTRICT v, const T *FASTBP_RESTRICT g, \
                                       ptrdiff_t n, T b1, T one_b1, T b2, T one_b2, T lr, \
                                       T eps) {                                         \
        FASTBP_ADAM_VECTOR(VT, W, LOAD, STORE, SET1, MUL, ADD, SUB, DIV, SQRT, SSQRT)     \
    }

/* SSE2: every x86-64 CPU */
FASTBP_ADAM_FN(d_sse2, double, , __m128d, 2, _mm_loadu_pd, _mm_storeu_pd, _mm_set1_pd,
               _mm_mul_pd, _mm_add_pd, _mm_sub_pd, _mm_div_pd, _mm_sqrt_pd, sqrt)
FASTBP_ADAM_FN(f_sse2, float, , __m128, 4, _mm_loadu_ps, _mm_storeu_ps, _mm_set1_ps,
               _mm_mul_ps, _mm_add_ps, _mm_sub_ps, _mm_div_ps, _mm_sqrt_ps, sqrtf)
FASTBP_ADAM_FN(d_avx2, double, __attribute__((target("avx2"))), __m256d, 4, _mm256_loadu_pd,
               _mm256_storeu_pd, _mm256_set1_pd, _mm256_mul_pd, _mm256_add_pd, _mm256_sub_pd,
               _mm256_div_pd, _mm256_sqrt_pd, sqrt)
FASTBP_ADAM_FN(f_avx2, float, __attribute__((target("avx2"))), __m256, 8, _mm256_loadu_ps,
               _mm256_storeu_ps, _mm256_set1_ps, _mm256_mul_ps, _mm256_add_ps, _mm256_sub_ps,
               _mm256_div_ps, _mm256_sqrt_ps, sqrtf)
FASTBP_ADAM_FN(d_avx512, double, __attribute__((target("avx512f"))), __m512d, 8,
               _mm512_loadu_pd, _mm512_storeu_pd, _mm512_set1_pd, _mm512_mul_pd, _mm512_add_pd,
               _mm512_sub_pd, _mm512_div_pd, _mm512_sqrt_pd, sqrt)
FASTBP_ADAM_FN(f_avx512, float, __attribute__((target("avx512f"))), __m512, 16,
               _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps, _mm512_mul_ps, _mm512_add_ps,
               _mm512_sub_ps, _mm512_div_ps, _mm512_sqrt_ps, sqrtf)
#endif

static inline void fastbp_adam_d(double *w, double *m, double *v, const double *g, ptrdiff_t n,
                                 double b1, double one_b1, double b2, double one_b2, double lr,
                                 double eps) {
    FASTBP_BY_SET(fastbp_adam_d, w, m, v, g, n, b1, one_b1, b2, one_b2, lr, eps);
}

static inline void fastbp_adam_f(float *w, float *m, float *v, const float *g, ptrdiff_t n,
                                 float b1, float one_b1, float b2, float one_b2, float lr,
                                 float eps) {
    FASTBP_BY_SET(fastbp_adam_f, w, m, v, g, n, b1, one_b1, b2, one_b2, lr, eps);
}

/* y += a x over n values, a product then a sum (never fused: the same bits on every set): a
 * sparse input's row of W(1) into s(1), or delta(1) into a row of dW(1) (_sparse_inputs.pxi). */
#define FASTBP_AXPY_SCALAR for (; i < n; i++) y[i] = y[i] + a * x[i];
static inline void fastbp_axpy_d_scalar(double *FASTBP_RESTRICT y,
                                        const double *FASTBP_RESTRICT x, double a, ptrdiff_t n) {
    ptrdiff_t i = 0;
    FASTBP_AXPY_SCALAR
}
static inline void fastbp_axpy_f_scalar(float *FASTBP_RESTRICT y, const float *FASTBP_RESTRICT x,
                                        float a, ptrdiff_t n) {
    ptrdiff_t i = 0;
    FASTBP_AXPY_SCALAR
}
#if FASTBP_HAVE_AVX2
#define FASTBP_AXPY_FN(SFX, T, ATTR, VT, W, LOAD, STORE, SET1, MUL, ADD)                    \
    ATTR static void fastbp_axpy_##SFX(T *FASTBP_RESTRICT y, const T *FASTBP_RESTRICT x,  \
                                       T a, ptrdiff_t n) {                              \
        ptrdiff_t i = 0;                                                                \
        const VT va = SET1(a);                                                          \
        for (; i + W <= n; i += W) STORE(y + i, ADD(LOAD(y + i), MUL(va, LOAD(x + i))));  \
        FASTBP_AXPY_SCALAR                                                              \
    }
FASTBP_AXPY_FN(d_sse2, double, , __m128d, 2, _mm_loadu_pd, _mm_storeu_pd, _mm_set1_pd,
               _mm_mul_pd, _mm_add_pd)
FASTBP_AXPY_FN(f_sse2, float, , __m128, 4, _mm_loadu_ps, _mm_storeu_ps, _mm_set1_ps, _mm_mul_ps,
               _mm_add_ps)
FASTBP_AXPY_FN(d_avx2, double, __attribute__((target("avx2"))), __m256d, 4, _mm256_loadu_pd,
               _mm256_storeu_pd, _mm256_set1_pd, _mm256_mul_pd, _mm256_add_pd)
FASTBP_AXPY_FN(f_avx2, float, __attribute__((target("avx2"))), __m256, 8, _mm256_loadu_ps,
               _mm256_storeu_ps, _mm256_set1_ps, _mm256_mul_ps, _mm256_add_ps)
FASTBP_AXPY_FN(d_avx512, double, __attribute__((target("avx512f"))), __m512d, 8,
               _mm512_loadu_pd, _mm512_storeu_pd, _mm512_set1_pd, _mm512_mul_pd, _mm512_add_pd)
FASTBP_AXPY_FN(f_avx512, float, __attribute__((target("avx512f"))), __m512, 16,
               _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps, _mm512_mul_ps, _mm512_add_ps)
#endif

static inline void fastbp_axpy_d(double *FASTBP_RESTRICT y, const double *FASTBP_RESTRICT x,
                                 double a, ptrdiff_t n) {
    FASTBP_BY_SET(fastbp_axpy_d, y, x, a, n);
}

static inline void fastbp_axpy_f(float *FASTBP_RESTRICT y, const float *FASTBP_RESTRICT x,
                                 float a, ptrdiff_t n) {
    FASTBP_BY_SET(fastbp_axpy_f, y, x, a, n);
}

#endif
