/* fastbp micro-kernels: the inner loops over one tile of FASTBP_TILE samples.
 *
 * Activations and sensitivities of a tile are stored feature-major: row j of a layer holds unit j for
 * the FASTBP_TILE samples of the tile, contiguous, so that every inner loop runs over samples with unit
 * stride and the compiler can give each lane of a vector register its own sample. No kernel here
 * reassociates a sum: each lane keeps its own partial sums, added in a fixed order at the end, so the
 * results do not depend on the vector width beyond the rounding of fused multiply-adds.
 *
 * The template _simd_kernels.h is instantiated for float and double, once for any x86-64 (or other)
 * CPU and, on x86-64 with GCC or clang, once more with AVX2 + FMA enabled; fastbp_select_kernels()
 * picks the set at import from what the CPU reports, and FASTBP_SIMD=baseline forces the first.
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

#define FASTBP_TILE 32

#if defined(_MSC_VER) && !defined(__clang__)
#define FASTBP_RESTRICT __restrict
#else
#define FASTBP_RESTRICT __restrict__
#endif

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define FASTBP_HAVE_AVX2 1
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

/* ---- the kernel sets ---- */
#define FASTBP_ATTR
#define FASTBP_T double
#define FASTBP_SFX(name) name##_d_base
#include "_simd_kernels.h"
#undef FASTBP_T
#undef FASTBP_SFX
#define FASTBP_T float
#define FASTBP_SFX(name) name##_f_base
#include "_simd_kernels.h"
#undef FASTBP_T
#undef FASTBP_SFX
#undef FASTBP_ATTR

#if FASTBP_HAVE_AVX2
#define FASTBP_ATTR __attribute__((target("avx2,fma")))
#define FASTBP_T double
#define FASTBP_SFX(name) name##_d_avx2
#include "_simd_kernels.h"
#undef FASTBP_T
#undef FASTBP_SFX
#define FASTBP_T float
#define FASTBP_SFX(name) name##_f_avx2
#include "_simd_kernels.h"
#undef FASTBP_T
#undef FASTBP_SFX
#undef FASTBP_ATTR
#endif

typedef struct {
    void (*linear)(const double *, ptrdiff_t, ptrdiff_t, int, int, const double *, double *);
    void (*outer)(const double *, int, const double *, int, double *);
    void (*tanh)(double *, ptrdiff_t);
} fastbp_kernels_d;

typedef struct {
    void (*linear)(const float *, ptrdiff_t, ptrdiff_t, int, int, const float *, float *);
    void (*outer)(const float *, int, const float *, int, float *);
    void (*tanh)(float *, ptrdiff_t);
} fastbp_kernels_f;

static fastbp_kernels_d fastbp_kd = {linear_d_base, outer_d_base, tanh_d_base};
static fastbp_kernels_f fastbp_kf = {linear_f_base, outer_f_base, tanh_f_base};
static const char *fastbp_isa = "baseline";

/* 1 when this CPU (and its OS) can run the AVX2 + FMA kernels. */
static inline int fastbp_cpu_has_avx2_fma(void) {
#if FASTBP_HAVE_AVX2
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* Choose the kernel set; returns the name of the one chosen. */
static inline const char *fastbp_select_kernels(int allow_simd) {
    fastbp_kernels_d kd = {linear_d_base, outer_d_base, tanh_d_base};
    fastbp_kernels_f kf = {linear_f_base, outer_f_base, tanh_f_base};
    fastbp_isa = "baseline";
#if FASTBP_HAVE_AVX2
    if (allow_simd && fastbp_cpu_has_avx2_fma()) {
        kd.linear = linear_d_avx2; kd.outer = outer_d_avx2; kd.tanh = tanh_d_avx2;
        kf.linear = linear_f_avx2; kf.outer = outer_f_avx2; kf.tanh = tanh_f_avx2;
        fastbp_isa = "avx2+fma";
    }
#endif
    fastbp_kd = kd;
    fastbp_kf = kf;
    return fastbp_isa;
}

static inline void fastbp_linear_d(const double *M, ptrdiff_t sk, ptrdiff_t si, int K, int m,
                                   const double *in, double *out) { fastbp_kd.linear(M, sk, si, K, m, in, out); }
static inline void fastbp_linear_f(const float *M, ptrdiff_t sk, ptrdiff_t si, int K, int m,
                                   const float *in, float *out) { fastbp_kf.linear(M, sk, si, K, m, in, out); }
static inline void fastbp_outer_d(const double *X, int rows, const double *D, int cols, double *G) { fastbp_kd.outer(X, rows, D, cols, G); }
static inline void fastbp_outer_f(const float *X, int rows, const float *D, int cols, float *G) { fastbp_kf.outer(X, rows, D, cols, G); }
static inline void fastbp_tanh_d(double *x, ptrdiff_t n) { fastbp_kd.tanh(x, n); }
static inline void fastbp_tanh_f(float *x, ptrdiff_t n) { fastbp_kf.tanh(x, n); }

#endif
