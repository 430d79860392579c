/* fastbp micro-kernels: the inner loops over one tile of samples (the tile length is an argument:
 * fastbp/_api.py's _TILE, a multiple of every kernel set's vector width, FASTBP_MAX_SAMPLE_BLOCK).
 *
 * Activations and sensitivities of a tile are stored feature-major: row j of a layer holds unit j for
 * the samples of the tile, contiguous, so that every inner loop runs over samples with unit
 * stride and the compiler can give each lane of a vector register its own sample. No kernel here
 * reassociates a sum: each lane keeps its own partial sums, added in a fixed order at the end, so the
 * results do not depend on the vector width beyond the rounding of fused multiply-adds.
 *
 * The template _simd_kernels.h is instantiated for float and double, once for any x86-64 (or other)
 * CPU and, on x86-64 with GCC or clang, twice more: with AVX2 + FMA and with AVX-512 (F, DQ, VL)
 * enabled by per-function target attributes; fastbp_select_kernels() picks the best set the CPU
 * reports, and FASTBP_SIMD=baseline (or avx2) caps it. Without GCC/clang vector extensions (MSVC, or
 * FASTBP_SCALAR_KERNELS=1) the plain-C kernels of _simd_scalar.h are built instead.
 */
#ifndef FASTBP_SIMD_H
#define FASTBP_SIMD_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif


#if defined(_MSC_VER) && !defined(__clang__)
#define FASTBP_RESTRICT __restrict
#else
#define FASTBP_RESTRICT __restrict__
#endif

#if (defined(__GNUC__) || defined(__clang__)) && !(defined(FASTBP_SCALAR_KERNELS) && FASTBP_SCALAR_KERNELS)
#define FASTBP_VECTOR_EXT 1
#else
#define FASTBP_VECTOR_EXT 0
#endif

#if (defined(__x86_64__) || defined(_M_X64)) && FASTBP_VECTOR_EXT
#define FASTBP_HAVE_AVX2 1
#include <immintrin.h>
#else
#define FASTBP_HAVE_AVX2 0
#endif

/* ---- OpenMP shim: the same calls with and without OpenMP ---- */
static inline int fastbp_openmp_enabled(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

static inline int fastbp_openmp_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* ---- 64-byte aligned scratch, so that every tile row starts on a cache line ---- */
static inline void *fastbp_aligned_calloc(size_t nbytes) {
    void *raw = calloc(nbytes + 64 + sizeof(void *), 1);
    if (raw == NULL) return NULL;
    uintptr_t p = ((uintptr_t)raw + sizeof(void *) + 63) & ~(uintptr_t)63;
    ((void **)p)[-1] = raw;
    return (void *)p;
}

static inline void fastbp_aligned_free(void *p) {
    if (p != NULL) free(((void **)p)[-1]);
}

/* Units per block of a packed panel (see fastbp_pack_*): the same for every instruction set, so
 * that one packing serves them all. Each input row of a tile loaded in `linear` serves this many
 * units: with wide layers (K in the hundreds) the tile lives in L2, and 6 rather than 4 cut that
 * traffic by a third (AVX-512: 6 x 4 accumulators of the 32 registers; AVX2: 6 x 2 of 16). */
#define FASTBP_RB 6

/* ---- the kernel sets ---- */
#if !FASTBP_VECTOR_EXT
#define FASTBP_T double
#define FASTBP_SFX(name) name##_d_base
#include "_simd_scalar.h"
#undef FASTBP_T
#undef FASTBP_SFX
#define FASTBP_T float
#define FASTBP_SFX(name) name##_f_base
#include "_simd_scalar.h"
#undef FASTBP_T
#undef FASTBP_SFX
#else
#define FASTBP_ATTR
#define FASTBP_VBYTES 16
#define FASTBP_NV 2
#define FASTBP_GR 4
#define FASTBP_GC 2
#define FASTBP_GR1 8
#define FASTBP_T double
#define FASTBP_TSIZE 8
#define FASTBP_IT int64_t
#define FASTBP_SFX(name) name##_d_base
#include "_simd_kernels.h"
#undef FASTBP_T
#undef FASTBP_TSIZE
#undef FASTBP_IT
#undef FASTBP_SFX
#define FASTBP_T float
#define FASTBP_TSIZE 4
#define FASTBP_IT int32_t
#define FASTBP_SFX(name) name##_f_base
#include "_simd_kernels.h"
#undef FASTBP_T
#undef FASTBP_TSIZE
#undef FASTBP_IT
#undef FASTBP_SFX
#undef FASTBP_ATTR
#undef FASTBP_VBYTES
#undef FASTBP_NV
#undef FASTBP_GR
#undef FASTBP_GC
#undef FASTBP_GR1
#undef FASTBP_GR2
#endif

#if FASTBP_HAVE_AVX2
#define FASTBP_ATTR __attribute__((target("avx2,fma")))
#define FASTBP_VBYTES 32
#define FASTBP_NV 2
/* `outer`: 6 rows x 2 column vectors, 12 accumulators of the 16 registers (4 x 2 left the FMA
 * units waiting on loads: 6 loads a sample for 8 multiply-adds, now 8 for 12); bench/kernels.c,
 * one thread, min of 4-5 interleaved runs: the outer products of E 8 % faster in float64 and 3 %
 * in float32, D's 785 x 256 17 % and 7 %. AVX-512 keeps 4 x 4 (6 x 4 was slower on D). */
#define FASTBP_GR 6
#define FASTBP_GC 2
#define FASTBP_GR1 8
#define FASTBP_T double
#define FASTBP_TSIZE 8
#define FASTBP_IT int64_t
#define FASTBP_SFX(name) name##_d_avx2
#include "_simd_kernels.h"
#undef FASTBP_T
#undef FASTBP_TSIZE
#undef FASTBP_IT
#undef FASTBP_SFX
#define FASTBP_T float
#define FASTBP_TSIZE 4
#define FASTBP_IT int32_t
#define FASTBP_SFX(name) name##_f_avx2
#include "_simd_kernels.h"
#undef FASTBP_T
#undef FASTBP_TSIZE
#undef FASTBP_IT
#undef FASTBP_SFX
#undef FASTBP_ATTR
#undef FASTBP_VBYTES
#undef FASTBP_NV
#undef FASTBP_GR
#undef FASTBP_GC
#undef FASTBP_GR1
#undef FASTBP_GR2

#define FASTBP_ATTR __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma")))
#define FASTBP_VBYTES 64
#define FASTBP_NV 4
#define FASTBP_GR 4
#define FASTBP_GC 4
#define FASTBP_GR2 8
#define FASTBP_GR1 8
/* 14-bit reciprocals (vrcp14pd/ps): two Newton steps give double precision, one single */
#define FASTBP_T double
#define FASTBP_TSIZE 8
#define FASTBP_IT int64_t
#define FASTBP_SFX(name) name##_d_avx512
#define FASTBP_RECIP(v) ((V)_mm512_rcp14_pd((__m512d)(v)))
#define FASTBP_RECIP_STEPS 2
#include "_simd_kernels.h"
#undef FASTBP_RECIP
#undef FASTBP_RECIP_STEPS
#undef FASTBP_T
#undef FASTBP_TSIZE
#undef FASTBP_IT
#undef FASTBP_SFX
#define FASTBP_T float
#define FASTBP_TSIZE 4
#define FASTBP_IT int32_t
#define FASTBP_SFX(name) name##_f_avx512
#define FASTBP_RECIP(v) ((V)_mm512_rcp14_ps((__m512)(v)))
#define FASTBP_RECIP_STEPS 1
#include "_simd_kernels.h"
#undef FASTBP_RECIP
#undef FASTBP_RECIP_STEPS
#undef FASTBP_T
#undef FASTBP_TSIZE
#undef FASTBP_IT
#undef FASTBP_SFX
#undef FASTBP_ATTR
#undef FASTBP_VBYTES
#undef FASTBP_NV
#undef FASTBP_GR
#undef FASTBP_GC
#undef FASTBP_GR1
#undef FASTBP_GR2
#endif

#define FASTBP_KERNEL_SET(T, S)                                                          \
    typedef struct {                                                                    \
        int (*sample_block)(void);                                                      \
        void (*linear)(const T *, int, int, const T *, ptrdiff_t, T *, int);            \
        void (*outer)(const T *, int, const T *, int, ptrdiff_t, int, T *, T *, int);   \
        void (*tanh)(T *, int, ptrdiff_t, ptrdiff_t);                                   \
        void (*dtanh_mul)(T *, const T *, int, ptrdiff_t, ptrdiff_t);                   \
        int (*load_inputs)(const T *, const ptrdiff_t *, ptrdiff_t, int, int, T *, ptrdiff_t, int); \
        void (*exp)(T *, int, ptrdiff_t, ptrdiff_t);                                    \
        void (*log)(T *, int, ptrdiff_t, ptrdiff_t);                                    \
        void (*log1p_exp)(T *, int, ptrdiff_t, ptrdiff_t);                              \
        void (*logistic)(T *, int, ptrdiff_t, ptrdiff_t);                               \
        void (*relu)(T *, int, ptrdiff_t, ptrdiff_t);                                   \
        void (*drelu_mul)(T *, const T *, int, ptrdiff_t, ptrdiff_t);                   \
        void (*dlogistic_mul)(T *, const T *, int, ptrdiff_t, ptrdiff_t);               \
        void (*softmax)(T *, int, ptrdiff_t, ptrdiff_t, T *, T *);                      \
    } fastbp_kernels_##S;
FASTBP_KERNEL_SET(double, d)
FASTBP_KERNEL_SET(float, f)

#define FASTBP_KERNELS_OF(S, ISA) \
    {sample_block_##S##_##ISA, linear_##S##_##ISA, outer_##S##_##ISA, tanh_##S##_##ISA, dtanh_mul_##S##_##ISA, \
     load_inputs_##S##_##ISA, exp_##S##_##ISA, log_##S##_##ISA, log1p_exp_##S##_##ISA, \
     logistic_##S##_##ISA, relu_##S##_##ISA, \
     drelu_mul_##S##_##ISA, dlogistic_mul_##S##_##ISA, softmax_##S##_##ISA}

static fastbp_kernels_d fastbp_kd = FASTBP_KERNELS_OF(d, base);
static fastbp_kernels_f fastbp_kf = FASTBP_KERNELS_OF(f, base);
static const char *fastbp_isa = "baseline";

/* 1 when this CPU (and its OS) can run the AVX2 + FMA kernels; 2 when also AVX-512 (F, DQ, VL). */
static inline int fastbp_cpu_level(void) {
#if FASTBP_HAVE_AVX2
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return 0;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        return 2;
    return 1;
#else
    return 0;
#endif
}

/* Choose the kernel set, at most `max_level` (0 baseline, 1 AVX2+FMA, 2 AVX-512); return its name. */
static inline const char *fastbp_select_kernels(int max_level) {
    int level = fastbp_cpu_level();
    if (level > max_level) level = max_level;
    fastbp_kernels_d kd = FASTBP_KERNELS_OF(d, base);
    fastbp_kernels_f kf = FASTBP_KERNELS_OF(f, base);
    fastbp_isa = "baseline";
#if FASTBP_HAVE_AVX2
    if (level == 1) {
        fastbp_kernels_d kd2 = FASTBP_KERNELS_OF(d, avx2);
        fastbp_kernels_f kf2 = FASTBP_KERNELS_OF(f, avx2);
        kd = kd2; kf = kf2;
        fastbp_isa = "avx2+fma";
    } else if (level == 2) {
        fastbp_kernels_d kd2 = FASTBP_KERNELS_OF(d, avx512);
        fastbp_kernels_f kf2 = FASTBP_KERNELS_OF(f, avx512);
        kd = kd2; kf = kf2;
        fastbp_isa = "avx512";
    }
#endif
    fastbp_kd = kd;
    fastbp_kf = kf;
    return fastbp_isa;
}

/* The tile of backprop_one (fastbp/_api.py's _TILE sets the batches' tile): a multiple of every kernel
 * set's sample block, which is its vector width (at most FASTBP_MAX_LANES values). */
#define FASTBP_MAX_SAMPLE_BLOCK 64
/* The most values a vector register of any kernel set holds (16 floats in AVX-512). */
#define FASTBP_MAX_LANES 16

/* Index of the first NaN or infinity among n values, or -1. Blocks of 64 values are screened with
 * sums of x * 0 (0 for every finite x, NaN otherwise), which vectorise without reassociating
 * anything; only a block that fails is searched value by value. */
#define FASTBP_FIRST_NONFINITE(T, S)                                                     \
    static inline ptrdiff_t fastbp_first_nonfinite_##S(const T *a, ptrdiff_t n) {        \
        ptrdiff_t i = 0;                                                                \
        for (; i + 64 <= n; i += 64) {                                                  \
            T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                        \
            for (int j = 0; j < 64; j += 8)                                             \
                for (int l = 0; l < 8; l++) acc[l] += a[i + j + l] * (T)0;              \
            T s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])); \
            if (s != s) break;                                                          \
        }                                                                               \
        for (; i < n; i++)                                                              \
            if (!(a[i] - a[i] == 0)) return i;                                          \
        return -1;                                                                      \
    }
FASTBP_FIRST_NONFINITE(double, d)
FASTBP_FIRST_NONFINITE(float, f)

/* Panels: a (K x m) matrix M[k][i] = src[k * sk + i * si], stored in blocks of FASTBP_RB units,
 * k-major within a block, the last block padded with zeros. Built once per call. */
#define FASTBP_PACK(T, S)                                                                \
    static inline void fastbp_pack_##S(const T *src, ptrdiff_t sk, ptrdiff_t si, int K, int m, \
                                       T *panel) {                                      \
        for (int i0 = 0; i0 < m; i0 += FASTBP_RB)                                       \
            for (int k = 0; k < K; k++)                                                 \
                for (int r = 0; r < FASTBP_RB; r++)                                     \
                    *panel++ = i0 + r < m ? src[k * sk + (i0 + r) * si] : (T)0;         \
    }
FASTBP_PACK(double, d)
FASTBP_PACK(float, f)

static inline int fastbp_sample_block_d(void) { return fastbp_kd.sample_block(); }
static inline int fastbp_sample_block_f(void) { return fastbp_kf.sample_block(); }
static inline void fastbp_linear_d(const double *P, int K, int m, const double *in, ptrdiff_t ld,
                                   double *out, int ns) { fastbp_kd.linear(P, K, m, in, ld, out, ns); }
static inline void fastbp_linear_f(const float *P, int K, int m, const float *in, ptrdiff_t ld,
                                   float *out, int ns) { fastbp_kf.linear(P, K, m, in, ld, out, ns); }
static inline void fastbp_outer_d(const double *X, int rows, const double *D, int cols, ptrdiff_t ld,
                                  int ns, double *G, double *work, int panel) { fastbp_kd.outer(X, rows, D, cols, ld, ns, G, work, panel); }
static inline void fastbp_outer_f(const float *X, int rows, const float *D, int cols, ptrdiff_t ld,
                                  int ns, float *G, float *work, int panel) { fastbp_kf.outer(X, rows, D, cols, ld, ns, G, work, panel); }
static inline void fastbp_tanh_d(double *x, int rows, ptrdiff_t ld, ptrdiff_t n) {
    fastbp_kd.tanh(x, rows, ld, n);
}
static inline void fastbp_tanh_f(float *x, int rows, ptrdiff_t ld, ptrdiff_t n) {
    fastbp_kf.tanh(x, rows, ld, n);
}
static inline void fastbp_dtanh_mul_d(double *d, const double *x, int rows, ptrdiff_t ld, ptrdiff_t n) {
    fastbp_kd.dtanh_mul(d, x, rows, ld, n);
}
static inline void fastbp_dtanh_mul_f(float *d, const float *x, int rows, ptrdiff_t ld, ptrdiff_t n) {
    fastbp_kf.dtanh_mul(d, x, rows, ld, n);
}
#define FASTBP_ROW_KERNEL(NAME)                                                          \
    static inline void fastbp_##NAME##_d(double *x, int rows, ptrdiff_t ld, ptrdiff_t n) {   \
        fastbp_kd.NAME(x, rows, ld, n);                                                 \
    }                                                                                   \
    static inline void fastbp_##NAME##_f(float *x, int rows, ptrdiff_t ld, ptrdiff_t n) {    \
        fastbp_kf.NAME(x, rows, ld, n);                                                 \
    }
FASTBP_ROW_KERNEL(exp)
FASTBP_ROW_KERNEL(log)
FASTBP_ROW_KERNEL(log1p_exp)
FASTBP_ROW_KERNEL(logistic)
FASTBP_ROW_KERNEL(relu)
#undef FASTBP_ROW_KERNEL
static inline void fastbp_drelu_mul_d(double *d, const double *x, int rows, ptrdiff_t ld, ptrdiff_t n) {
    fastbp_kd.drelu_mul(d, x, rows, ld, n);
}
static inline void fastbp_drelu_mul_f(float *d, const float *x, int rows, ptrdiff_t ld, ptrdiff_t n) {
    fastbp_kf.drelu_mul(d, x, rows, ld, n);
}
static inline void fastbp_dlogistic_mul_d(double *d, const double *x, int rows, ptrdiff_t ld, ptrdiff_t n) {
    fastbp_kd.dlogistic_mul(d, x, rows, ld, n);
}
static inline void fastbp_dlogistic_mul_f(float *d, const float *x, int rows, ptrdiff_t ld, ptrdiff_t n) {
    fastbp_kf.dlogistic_mul(d, x, rows, ld, n);
}
static inline void fastbp_softmax_d(double *x, int rows, ptrdiff_t ld, ptrdiff_t n, double *mx,
                                    double *logsum) {
    fastbp_kd.softmax(x, rows, ld, n, mx, logsum);
}
static inline void fastbp_softmax_f(float *x, int rows, ptrdiff_t ld, ptrdiff_t n, float *mx,
                                    float *logsum) {
    fastbp_kf.softmax(x, rows, ld, n, mx, logsum);
}
static inline int fastbp_load_inputs_d(const double *X, const ptrdiff_t *rows, ptrdiff_t t, int nb,
                                       int d0, double *x0, ptrdiff_t ld, int ns) {
    return fastbp_kd.load_inputs(X, rows, t, nb, d0, x0, ld, ns);
}
static inline int fastbp_load_inputs_f(const float *X, const ptrdiff_t *rows, ptrdiff_t t, int nb,
                                       int d0, float *x0, ptrdiff_t ld, int ns) {
    return fastbp_kf.load_inputs(X, rows, t, nb, d0, x0, ld, ns);
}

#endif
