/* A benchmark peer, never shipped: E_in and dE_in/dW of a fully connected tanh network over
 * LIBXSMM's JIT-generated small matrix multiplications (LIBXSMM 1.17's libxsmm_dmmdispatch /
 * libxsmm_smmdispatch), on tiles of XP_TILE samples, OpenMP over tiles.
 *
 * fastbp's conventions: W(l) row-major (d(l-1)+1, d(l)), row 0 the bias; E_in = (1/N) sum_n
 * ||x(L)_n - y_n||^2; the output layer tanh or linear; the gradient averaged over N.
 *
 * LIBXSMM multiplies column-major matrices, C(m x n) (+)= A(m x k) B(k x n), and this file uses
 * no transposed operand. Per tile of T samples:
 *   activations  X(l): d(l) x T, a sample per column (the input tile is X's rows as they are);
 *   sensitivities D(l): T x d(l), a unit per column (the transposed layout);
 *   forward      S(l) = W(l)[1:]^T X(l-1)      m = d(l),   n = T,      k = d(l-1)
 *                (W(l)[1:] row-major is W(l)[1:]^T column-major, leading dimension d(l))
 *   backward     D(l-1) = D(l) W(l)[1:]^T      m = T,      n = d(l-1), k = d(l)
 *                then times 1 - x(l-1)^2 (the one step that reads both layouts)
 *   gradient     G(l) += X(l-1) D(l)           m = d(l-1), n = d(l),   k = T
 *                (G(l) column-major d(l-1) x d(l) is dE/dW(l)[1:] transposed: turned round once,
 *                when the threads' sums are merged)
 * A last, partial tile is copied into a zero-padded tile whose padding gets zero sensitivities,
 * so that it adds nothing. Each thread sums into its own G and E; they are merged in thread order.
 *
 * The same body is compiled for double (suffix _f64) and float (_f32): this file includes itself
 * (by its name, so keep it libxsmm_peer.c).
 */
#ifndef XP_BODY
#define XP_BODY

#include <libxsmm.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* glibc's vector tanh (libmvec, glibc >= 2.35), as its <math.h> declares it under -ffast-math:
 * the forward loops then call tanh 4 (AVX2) or 8 (AVX-512) at a time. Without it (another libc,
 * -DXP_NO_LIBMVEC), one scalar tanh per unit. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__GLIBC__) && !defined(XP_NO_LIBMVEC)
__attribute__((__simd__("notinbranch"))) extern double tanh(double);
__attribute__((__simd__("notinbranch"))) extern float tanhf(float);
#define XP_SIMD _Pragma("omp simd")
#else
#define XP_SIMD
#endif

#define XP_TILE 64
#define XP_MAX_LAYERS 64

static void *xp_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    if (posix_memalign(&p, 64, (bytes + 63) / 64 * 64) != 0) return NULL;
    memset(p, 0, bytes);
    return p;
}

int xp_tile(void) { return XP_TILE; }

#define REAL double
#define SFX(name) name##_f64
#define MMFUNC libxsmm_dmmfunction
#define MMDISPATCH libxsmm_dmmdispatch
#define TANH tanh
#include "libxsmm_peer.c"
#undef REAL
#undef SFX
#undef MMFUNC
#undef MMDISPATCH
#undef TANH

#define REAL float
#define SFX(name) name##_f32
#define MMFUNC libxsmm_smmfunction
#define MMDISPATCH libxsmm_smmdispatch
#define TANH tanhf
#include "libxsmm_peer.c"

#else  /* the body, once per REAL */

/* The kernels of one network: made once (JIT) by SFX(xp_plan), used by every gradient call. */
typedef struct {
    int L;
    int widths[XP_MAX_LAYERS + 1];
    MMFUNC fwd[XP_MAX_LAYERS + 1];      /* fwd[l]: S(l) = W(l)[1:]^T X(l-1), l = 1..L */
    MMFUNC back[XP_MAX_LAYERS + 1];     /* back[l]: D(l-1) = D(l) W(l)[1:]^T, l = 2..L */
    MMFUNC grad[XP_MAX_LAYERS + 1];     /* grad[l]: G(l) += X(l-1) D(l), l = 1..L */
} SFX(xp_plan_t);

static MMFUNC SFX(xp_dispatch)(int m, int n, int k, int lda, int ldb, int ldc, REAL beta) {
    const libxsmm_blasint M = m, N = n, K = k, LDA = lda, LDB = ldb, LDC = ldc;
    const REAL alpha = 1;
    const int flags = LIBXSMM_GEMM_FLAG_NONE, prefetch = LIBXSMM_GEMM_PREFETCH_NONE;
    return MMDISPATCH(M, N, K, &LDA, &LDB, &LDC, &alpha, &beta, &flags, &prefetch);
}

/* The plan for widths[0..L], or NULL (too many layers, no memory, or a kernel LIBXSMM cannot JIT).
 * Free it with xp_free. */
void *SFX(xp_plan)(int L, const int *widths) {                       /* IN: L, widths[0..L] */
    SFX(xp_plan_t) *p;
    int l;
    if (L < 1 || L > XP_MAX_LAYERS) return NULL;
    libxsmm_init();
    p = (SFX(xp_plan_t) *)calloc(1, sizeof(*p));
    if (p == NULL) return NULL;
    p->L = L;
    for (l = 0; l <= L; l++) p->widths[l] = widths[l];
    for (l = 1; l <= L; l++) {
        const int a = widths[l - 1], b = widths[l];
        p->fwd[l] = SFX(xp_dispatch)(b, XP_TILE, a, b, a, b, 0);
        p->grad[l] = SFX(xp_dispatch)(a, b, XP_TILE, a, XP_TILE, a, 1);
        if (p->fwd[l] == NULL || p->grad[l] == NULL) { free(p); return NULL; }
        if (l >= 2) {
            p->back[l] = SFX(xp_dispatch)(XP_TILE, a, b, XP_TILE, b, XP_TILE, 0);
            if (p->back[l] == NULL) { free(p); return NULL; }
        }
    }
    return p;
}

/* E_in and dE_in/dW(l) (row-major, fastbp's layout) for X (n, d(0)) and y (n, d(L)), row-major.
 * Returns 0, or -1 if memory ran out. */
int SFX(xp_gradient)(const void *plan,                               /* IN: from xp_plan */
                     const REAL *const *weights,                      /* IN: W(1..L) as weights[0..L-1] */
                     const REAL *X, const REAL *y, long n,            /* IN */
                     int linear_output, int num_threads,              /* IN */
                     REAL *const *grads,                              /* OUT: like weights */
                     double *E_in) {                                  /* OUT */
    const SFX(xp_plan_t) *p = (const SFX(xp_plan_t) *)plan;
    const int L = p->L;
    const int *d = p->widths;
    const int T = XP_TILE;
    const long n_tiles = (n + T - 1) / T;
    const REAL scale = (REAL)(2.0 / (double)n);
    size_t g_size = 0, x_size = 0;
    int dmax = 0, l, nt = 1, failed = 0;
    REAL **G_all;
    double *E_all;
#ifdef _OPENMP
    nt = num_threads > 0 ? num_threads : 1;
#endif
    for (l = 0; l <= L; l++) if (d[l] > dmax) dmax = d[l];
    for (l = 1; l <= L; l++) {
        g_size += (size_t)(d[l - 1] + 1) * d[l];
        x_size += (size_t)d[l] * T;
    }
    G_all = (REAL **)calloc(nt, sizeof(REAL *));
    E_all = (double *)calloc(nt, sizeof(double));
    if (G_all == NULL || E_all == NULL) { free(G_all); free(E_all); return -1; }

#pragma omp parallel num_threads(nt) reduction(|:failed) private(l)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        /* per-thread scratch, zeroed: G(l) then its bias sums, per layer; X(1..L); two D's;
         * the padded input and target tiles */
        REAL *G = (REAL *)xp_alloc(g_size * sizeof(REAL));
        REAL *Xs = (REAL *)xp_alloc(x_size * sizeof(REAL));
        REAL *Da = (REAL *)xp_alloc((size_t)T * dmax * sizeof(REAL));
        REAL *Db = (REAL *)xp_alloc((size_t)T * dmax * sizeof(REAL));
        REAL *Xpad = (REAL *)xp_alloc((size_t)T * d[0] * sizeof(REAL));
        REAL *Ypad = (REAL *)xp_alloc((size_t)T * d[L] * sizeof(REAL));
        REAL *xl[XP_MAX_LAYERS + 1], *gl[XP_MAX_LAYERS + 1];
        double E = 0;
        long tile;
        G_all[tid] = G;
        if (!G || !Xs || !Da || !Db || !Xpad || !Ypad) failed = 1;
        if (!failed) {
            size_t go = 0, xo = 0;
            for (l = 1; l <= L; l++) {
                gl[l] = G + go;                    /* d(l-1) x d(l), then d(l) bias sums */
                go += (size_t)(d[l - 1] + 1) * d[l];
                xl[l] = Xs + xo;
                xo += (size_t)d[l] * T;
            }
        }
#pragma omp for schedule(static)
        for (tile = 0; tile < n_tiles; tile++) {
            const long t0 = tile * T;
            const int rows = (int)(n - t0 < T ? n - t0 : T);
            const REAL *x0 = X + t0 * d[0], *yt = y + t0 * d[L];
            REAL *D = Da, *Dn = Db, *tmp;
            int i, j, t, k;
            if (failed) continue;
            if (rows < T) {                        /* the last tile: zero-padded copies */
                memcpy(Xpad, x0, (size_t)rows * d[0] * sizeof(REAL));
                memset(Xpad + (size_t)rows * d[0], 0, (size_t)(T - rows) * d[0] * sizeof(REAL));
                memcpy(Ypad, yt, (size_t)rows * d[L] * sizeof(REAL));
                x0 = Xpad;
                yt = Ypad;
            }
            /* forward */
            for (l = 1; l <= L; l++) {
                const REAL *prev = l == 1 ? x0 : xl[l - 1];
                const REAL *b = weights[l - 1];            /* row 0: the biases */
                REAL *s = xl[l];
                const int lin = l == L && linear_output;
                p->fwd[l](weights[l - 1] + d[l], prev, s);
                for (t = 0; t < T; t++) {
                    REAL *col = s + (size_t)t * d[l];
                    if (lin) for (j = 0; j < d[l]; j++) col[j] += b[j];
                    else {
                        XP_SIMD
                        for (j = 0; j < d[l]; j++) col[j] = TANH(col[j] + b[j]);
                    }
                }
            }
            /* the output's sensitivities D(L) = (2/N) (x(L) - y) theta'(s(L)), zero past `rows` */
            for (k = 0; k < d[L]; k++) {
                REAL *dcol = D + (size_t)k * T;
                for (t = 0; t < rows; t++) {
                    const REAL x = xl[L][(size_t)t * d[L] + k];
                    const REAL e = x - yt[(size_t)t * d[L] + k];
                    E += (double)e * (double)e;
                    dcol[t] = linear_output ? scale * e : scale * e * (1 - x * x);
                }
                for (; t < T; t++) dcol[t] = 0;
            }
            /* backward */
            for (l = L; l >= 1; l--) {
                const REAL *prev = l == 1 ? x0 : xl[l - 1];
                REAL *gb = gl[l] + (size_t)d[l - 1] * d[l];
                p->grad[l](prev, D, gl[l]);                    /* G(l) += X(l-1) D(l) */
                for (j = 0; j < d[l]; j++) {                   /* bias: sum of D(l)'s column */
                    const REAL *dcol = D + (size_t)j * T;
                    REAL acc = 0;
                    for (t = 0; t < T; t++) acc += dcol[t];
                    gb[j] += acc;
                }
                if (l >= 2) {
                    const REAL *xp = xl[l - 1];
                    p->back[l](D, weights[l - 1] + d[l], Dn);   /* D(l-1) = D(l) W(l)[1:]^T */
                    for (i = 0; i < d[l - 1]; i++) {
                        REAL *dcol = Dn + (size_t)i * T;
                        for (t = 0; t < T; t++) {
                            const REAL x = xp[(size_t)t * d[l - 1] + i];
                            dcol[t] *= 1 - x * x;
                        }
                    }
                    tmp = D; D = Dn; Dn = tmp;
                }
            }
        }
        E_all[tid] = E;
        free(Xs); free(Da); free(Db); free(Xpad); free(Ypad);
    }

    if (!failed) {                                 /* merge in thread order, transposing G(l) */
        size_t go = 0;
        double E = 0;
        int th, i, j;
        for (th = 0; th < nt; th++) E += E_all[th];
        *E_in = E / (double)n;
        for (l = 1; l <= L; l++) {
            const int a = d[l - 1], b = d[l];
            REAL *out = grads[l - 1];
            for (j = 0; j < b; j++) {
                REAL acc = 0;
                for (th = 0; th < nt; th++) acc += G_all[th][go + (size_t)a * b + j];
                out[j] = acc;
            }
            for (i = 0; i < a; i++) {
                for (j = 0; j < b; j++) {
                    REAL acc = 0;
                    for (th = 0; th < nt; th++) acc += G_all[th][go + i + (size_t)a * j];
                    out[(size_t)(i + 1) * b + j] = acc;
                }
            }
            go += (size_t)(a + 1) * b;
        }
    }
    for (l = 0; l < nt; l++) free(G_all[l]);
    free(G_all);
    free(E_all);
    return failed ? -1 : 0;
}

void SFX(xp_free)(void *plan) { free(plan); }

#endif
