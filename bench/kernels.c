/* The micro-kernels of fastbp/_simd.h one by one, on the shapes of one tile of a network, one thread:
 * where a gradient's time goes, without Python, OpenMP or the chunk loop around them.
 *
 *   gcc -O3 -o /tmp/fastbp_kernels bench/kernels.c -lm
 *   /tmp/fastbp_kernels [float|double] [kernel set: avx512, avx2+fma, baseline, ...] [GHz] d0 ... dL
 *   /tmp/fastbp_kernels double avx512 3.5 784 256 256 10
 *
 * The kernel set is a cap, as FASTBP_SIMD is: the best set at or below it that this CPU runs.
 *
 * Each line: the kernel, its shape, microseconds per call on a tile of 64 samples, and the share of
 * the FMA peak it reaches at the clock given (2 FMA units x the vector width). The buffers stay hot
 * in cache between calls: a whole gradient, which streams X and its chunk buffers through memory,
 * runs somewhat slower than the sum (fastbp/_core.pyx's run_chunk is where to look for the rest).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../fastbp/_simd.h"

#define TILE 64
#define MAXL 64

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Repeat `stmt` until 0.2 s have passed; print the time per call and the share of the FMA peak. */
#define TIME(label, macs, stmt)                                                                   \
    do {                                                                                          \
        long reps = 0;                                                                            \
        double t0 = now(), t;                                                                     \
        do {                                                                                      \
            stmt;                                                                                 \
            reps++;                                                                               \
            __asm__ volatile("" ::: "memory");                                                    \
        } while ((t = now() - t0) < 0.2);                                                         \
        double us = t / reps * 1e6;                                                               \
        total += us;                                                                              \
        if ((macs) > 0)                                                                           \
            printf("%-34s %9.2f us  %5.1f %% of FMA peak\n", label, us,                           \
                   100.0 * (macs) / (2.0 * lanes * ghz * 1e3 * us));                             \
        else                                                                                      \
            printf("%-34s %9.2f us\n", label, us);                                                \
    } while (0)

#define RUN(T, S)                                                                                 \
    do {                                                                                          \
        T *act[MAXL + 1], *delta[MAXL + 1], *panel[MAXL + 1], *bpanel[MAXL + 1], *grad[MAXL + 1];   \
        T *work = fastbp_aligned_calloc((size_t)TILE * (widest + FASTBP_MAX_LANES) * sizeof(T));  \
        for (int l = 0; l <= L; l++) {                                                            \
            act[l] = fastbp_aligned_calloc((size_t)(w[l] + 1) * TILE * sizeof(T));                \
            for (int i = 0; i < (w[l] + 1) * TILE; i++) act[l][i] = (T)(0.5 * ((i * 7919) % 13) / 13.0); \
        }                                                                                         \
        for (int l = 1; l <= L; l++) {                                                            \
            int blocks = (w[l] + FASTBP_RB - 1) / FASTBP_RB;                                      \
            delta[l] = fastbp_aligned_calloc((size_t)w[l] * TILE * sizeof(T));                    \
            panel[l] = fastbp_aligned_calloc((size_t)blocks * FASTBP_RB * (w[l - 1] + 1) * sizeof(T)); \
            bpanel[l] = fastbp_aligned_calloc((size_t)blocks * FASTBP_RB * (l < L ? w[l + 1] : 1) * sizeof(T)); \
            grad[l] = fastbp_aligned_calloc((size_t)(w[l - 1] + 1) * w[l] * sizeof(T));           \
            for (int i = 0; i < w[l] * TILE; i++) delta[l][i] = (T)(0.01 * (i % 17));             \
        }                                                                                         \
        char label[96];                                                                           \
        for (int l = 1; l <= L; l++) {                                                            \
            snprintf(label, sizeof label, "linear forward  %d -> %d", w[l - 1] + 1, w[l]);        \
            TIME(label, (double)(w[l - 1] + 1) * w[l] * TILE,                                     \
                 fastbp_linear_##S(panel[l], w[l - 1] + 1, w[l], act[l - 1], TILE, act[l] + TILE, TILE)); \
            snprintf(label, sizeof label, "tanh            %d rows", w[l]);                       \
            TIME(label, 0, fastbp_tanh_##S(act[l] + TILE, w[l], TILE, TILE));                     \
        }                                                                                         \
        for (int l = L - 1; l >= 1; l--) {                                                        \
            snprintf(label, sizeof label, "linear backward %d -> %d", w[l + 1], w[l]);            \
            TIME(label, (double)w[l + 1] * w[l] * TILE,                                           \
                 fastbp_linear_##S(bpanel[l], w[l + 1], w[l], delta[l + 1], TILE, delta[l], TILE)); \
            snprintf(label, sizeof label, "dtanh_mul       %d rows", w[l]);                       \
            TIME(label, 0, fastbp_dtanh_mul_##S(delta[l], act[l] + TILE, w[l], TILE, TILE));      \
        }                                                                                         \
        for (int l = 1; l <= L; l++) {                                                            \
            snprintf(label, sizeof label, "outer           %d x %d", w[l - 1] + 1, w[l]);         \
            TIME(label, (double)(w[l - 1] + 1) * w[l] * TILE,                                     \
                 fastbp_outer_##S(act[l - 1], w[l - 1] + 1, delta[l], w[l], TILE, TILE, grad[l], work, 0)); \
        }                                                                                         \
    } while (0)

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s float|double kernel-set GHz d0 d1 ... dL\n", argv[0]);
        return 2;
    }
    int is_double = strcmp(argv[1], "float") != 0;
    const char *isa = fastbp_select_kernels(argv[2]);
    double ghz = atof(argv[3]);
    int L = argc - 5, w[MAXL + 1], widest = 1;
    if (L > MAXL) return 2;
    for (int l = 0; l <= L; l++) {
        w[l] = atoi(argv[4 + l]);
        if (w[l] > widest) widest = w[l];
    }
    int lanes = (isa[0] == 'a' && isa[3] == '5' ? 64 : isa[0] == 'a' ? 32 : 16) / (is_double ? 8 : 4);
    double total = 0;
    printf("kernels %s, %s, %d lanes, one tile of %d samples\n", isa, is_double ? "double" : "float",
           lanes, TILE);
    if (is_double)
        RUN(double, d);
    else
        RUN(float, f);
    printf("%-34s %9.2f us\n", "sum", total);
    return 0;
}
