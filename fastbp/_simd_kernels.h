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
/* The same vector at any address aligned to its element: G's blocks (a row of G need not start on
 * a vector boundary), a sample's row of X, a row of outer's transposed sensitivities. Loaded and
 * stored as whole vectors: copied with memcpy through the stack, GCC moved each in 16-byte halves
 * and the next 32-byte read of it waited on store forwarding, which cannot merge two stores into
 * one load. */
typedef T FASTBP_SFX(uvec) __attribute__((vector_size(FASTBP_VBYTES), may_alias, aligned(FASTBP_TSIZE)));
#define VU FASTBP_SFX(uvec)
typedef FASTBP_IT FASTBP_SFX(ivec) __attribute__((vector_size(FASTBP_VBYTES)));

/* Two-source shuffles with constant indices (0..LANES-1 pick from a, LANES.. from b). */
#if defined(__clang__)
#define FASTBP_SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define FASTBP_SHUF(a, b, ...) __builtin_shuffle(a, b, (FASTBP_SFX(ivec)){__VA_ARGS__})
#endif

/* A LANES x LANES transpose in registers: log2(LANES) stages, each swapping the off-diagonal
 * blocks of half the size of the last (r[i] and r[i+s] trade the halves that belong to the
 * other), LANES shuffles a stage: 24 for 8 x 8, against 64 scalar loads and stores. */
#define FASTBP_LANES_PP (FASTBP_VBYTES / FASTBP_TSIZE)
#if FASTBP_LANES_PP == 2
#define FASTBP_TRANSPOSE_STAGES(r) \
    do { \
        V t; \
        t = FASTBP_SHUF(r[0], r[1], 0, 2); r[1] = FASTBP_SHUF(r[0], r[1], 1, 3); r[0] = t; \
    } while (0)
#elif FASTBP_LANES_PP == 4
#define FASTBP_TRANSPOSE_STAGES(r) \
    do { \
        V t; \
        t = FASTBP_SHUF(r[0], r[2], 0, 1, 4, 5); r[2] = FASTBP_SHUF(r[0], r[2], 2, 3, 6, 7); r[0] = t; \
        t = FASTBP_SHUF(r[1], r[3], 0, 1, 4, 5); r[3] = FASTBP_SHUF(r[1], r[3], 2, 3, 6, 7); r[1] = t; \
        t = FASTBP_SHUF(r[0], r[1], 0, 4, 2, 6); r[1] = FASTBP_SHUF(r[0], r[1], 1, 5, 3, 7); r[0] = t; \
        t = FASTBP_SHUF(r[2], r[3], 0, 4, 2, 6); r[3] = FASTBP_SHUF(r[2], r[3], 1, 5, 3, 7); r[2] = t; \
    } while (0)
#elif FASTBP_LANES_PP == 8
#define FASTBP_TRANSPOSE_STAGES(r) \
    do { \
        V t; \
        t = FASTBP_SHUF(r[0], r[4], 0, 1, 2, 3, 8, 9, 10, 11); r[4] = FASTBP_SHUF(r[0], r[4], 4, 5, 6, 7, 12, 13, 14, 15); r[0] = t; \
        t = FASTBP_SHUF(r[1], r[5], 0, 1, 2, 3, 8, 9, 10, 11); r[5] = FASTBP_SHUF(r[1], r[5], 4, 5, 6, 7, 12, 13, 14, 15); r[1] = t; \
        t = FASTBP_SHUF(r[2], r[6], 0, 1, 2, 3, 8, 9, 10, 11); r[6] = FASTBP_SHUF(r[2], r[6], 4, 5, 6, 7, 12, 13, 14, 15); r[2] = t; \
        t = FASTBP_SHUF(r[3], r[7], 0, 1, 2, 3, 8, 9, 10, 11); r[7] = FASTBP_SHUF(r[3], r[7], 4, 5, 6, 7, 12, 13, 14, 15); r[3] = t; \
        t = FASTBP_SHUF(r[0], r[2], 0, 1, 8, 9, 4, 5, 12, 13); r[2] = FASTBP_SHUF(r[0], r[2], 2, 3, 10, 11, 6, 7, 14, 15); r[0] = t; \
        t = FASTBP_SHUF(r[1], r[3], 0, 1, 8, 9, 4, 5, 12, 13); r[3] = FASTBP_SHUF(r[1], r[3], 2, 3, 10, 11, 6, 7, 14, 15); r[1] = t; \
        t = FASTBP_SHUF(r[4], r[6], 0, 1, 8, 9, 4, 5, 12, 13); r[6] = FASTBP_SHUF(r[4], r[6], 2, 3, 10, 11, 6, 7, 14, 15); r[4] = t; \
        t = FASTBP_SHUF(r[5], r[7], 0, 1, 8, 9, 4, 5, 12, 13); r[7] = FASTBP_SHUF(r[5], r[7], 2, 3, 10, 11, 6, 7, 14, 15); r[5] = t; \
        t = FASTBP_SHUF(r[0], r[1], 0, 8, 2, 10, 4, 12, 6, 14); r[1] = FASTBP_SHUF(r[0], r[1], 1, 9, 3, 11, 5, 13, 7, 15); r[0] = t; \
        t = FASTBP_SHUF(r[2], r[3], 0, 8, 2, 10, 4, 12, 6, 14); r[3] = FASTBP_SHUF(r[2], r[3], 1, 9, 3, 11, 5, 13, 7, 15); r[2] = t; \
        t = FASTBP_SHUF(r[4], r[5], 0, 8, 2, 10, 4, 12, 6, 14); r[5] = FASTBP_SHUF(r[4], r[5], 1, 9, 3, 11, 5, 13, 7, 15); r[4] = t; \
        t = FASTBP_SHUF(r[6], r[7], 0, 8, 2, 10, 4, 12, 6, 14); r[7] = FASTBP_SHUF(r[6], r[7], 1, 9, 3, 11, 5, 13, 7, 15); r[6] = t; \
    } while (0)
#elif FASTBP_LANES_PP == 16
#define FASTBP_TRANSPOSE_STAGES(r) \
    do { \
        V t; \
        t = FASTBP_SHUF(r[0], r[8], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23); r[8] = FASTBP_SHUF(r[0], r[8], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31); r[0] = t; \
        t = FASTBP_SHUF(r[1], r[9], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23); r[9] = FASTBP_SHUF(r[1], r[9], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31); r[1] = t; \
        t = FASTBP_SHUF(r[2], r[10], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23); r[10] = FASTBP_SHUF(r[2], r[10], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31); r[2] = t; \
        t = FASTBP_SHUF(r[3], r[11], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23); r[11] = FASTBP_SHUF(r[3], r[11], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31); r[3] = t; \
        t = FASTBP_SHUF(r[4], r[12], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23); r[12] = FASTBP_SHUF(r[4], r[12], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31); r[4] = t; \
        t = FASTBP_SHUF(r[5], r[13], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23); r[13] = FASTBP_SHUF(r[5], r[13], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31); r[5] = t; \
        t = FASTBP_SHUF(r[6], r[14], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23); r[14] = FASTBP_SHUF(r[6], r[14], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31); r[6] = t; \
        t = FASTBP_SHUF(r[7], r[15], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23); r[15] = FASTBP_SHUF(r[7], r[15], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31); r[7] = t; \
        t = FASTBP_SHUF(r[0], r[4], 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27); r[4] = FASTBP_SHUF(r[0], r[4], 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31); r[0] = t; \
        t = FASTBP_SHUF(r[1], r[5], 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27); r[5] = FASTBP_SHUF(r[1], r[5], 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31); r[1] = t; \
        t = FASTBP_SHUF(r[2], r[6], 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27); r[6] = FASTBP_SHUF(r[2], r[6], 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31); r[2] = t; \
        t = FASTBP_SHUF(r[3], r[7], 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27); r[7] = FASTBP_SHUF(r[3], r[7], 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31); r[3] = t; \
        t = FASTBP_SHUF(r[8], r[12], 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27); r[12] = FASTBP_SHUF(r[8], r[12], 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31); r[8] = t; \
        t = FASTBP_SHUF(r[9], r[13], 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27); r[13] = FASTBP_SHUF(r[9], r[13], 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31); r[9] = t; \
        t = FASTBP_SHUF(r[10], r[14], 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27); r[14] = FASTBP_SHUF(r[10], r[14], 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31); r[10] = t; \
        t = FASTBP_SHUF(r[11], r[15], 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27); r[15] = FASTBP_SHUF(r[11], r[15], 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31); r[11] = t; \
        t = FASTBP_SHUF(r[0], r[2], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29); r[2] = FASTBP_SHUF(r[0], r[2], 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31); r[0] = t; \
        t = FASTBP_SHUF(r[1], r[3], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29); r[3] = FASTBP_SHUF(r[1], r[3], 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31); r[1] = t; \
        t = FASTBP_SHUF(r[4], r[6], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29); r[6] = FASTBP_SHUF(r[4], r[6], 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31); r[4] = t; \
        t = FASTBP_SHUF(r[5], r[7], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29); r[7] = FASTBP_SHUF(r[5], r[7], 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31); r[5] = t; \
        t = FASTBP_SHUF(r[8], r[10], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29); r[10] = FASTBP_SHUF(r[8], r[10], 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31); r[8] = t; \
        t = FASTBP_SHUF(r[9], r[11], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29); r[11] = FASTBP_SHUF(r[9], r[11], 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31); r[9] = t; \
        t = FASTBP_SHUF(r[12], r[14], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29); r[14] = FASTBP_SHUF(r[12], r[14], 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31); r[12] = t; \
        t = FASTBP_SHUF(r[13], r[15], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29); r[15] = FASTBP_SHUF(r[13], r[15], 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31); r[13] = t; \
        t = FASTBP_SHUF(r[0], r[1], 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30); r[1] = FASTBP_SHUF(r[0], r[1], 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31); r[0] = t; \
        t = FASTBP_SHUF(r[2], r[3], 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30); r[3] = FASTBP_SHUF(r[2], r[3], 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31); r[2] = t; \
        t = FASTBP_SHUF(r[4], r[5], 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30); r[5] = FASTBP_SHUF(r[4], r[5], 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31); r[4] = t; \
        t = FASTBP_SHUF(r[6], r[7], 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30); r[7] = FASTBP_SHUF(r[6], r[7], 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31); r[6] = t; \
        t = FASTBP_SHUF(r[8], r[9], 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30); r[9] = FASTBP_SHUF(r[8], r[9], 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31); r[8] = t; \
        t = FASTBP_SHUF(r[10], r[11], 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30); r[11] = FASTBP_SHUF(r[10], r[11], 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31); r[10] = t; \
        t = FASTBP_SHUF(r[12], r[13], 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30); r[13] = FASTBP_SHUF(r[12], r[13], 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31); r[12] = t; \
        t = FASTBP_SHUF(r[14], r[15], 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30); r[15] = FASTBP_SHUF(r[14], r[15], 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31); r[14] = t; \
    } while (0)
#endif

/* The samples one call of these kernels handles at a time: `ns` must be a multiple of this. */
FASTBP_ATTR static int FASTBP_SFX(sample_block)(void) { return LANES; }

/* values a row of the lane sums `outer` passes between calls: a vector for each column left
 * over by the column vectors */
FASTBP_ATTR static int FASTBP_SFX(tile_lanes)(int cols) { return cols % LANES * LANES; }

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
        /* a last, partial block of units computes only its own rows (32 units = 5 x 6 + 2) */
        switch (rows) {
#define FASTBP_LINEAR_ROWS(RBC)                                                         \
        case RBC:                                                                       \
            for (b0 = 0; b0 + SBLK <= ns; b0 += SBLK) FASTBP_LINEAR_BLOCK(RBC, NV);     \
            for (; b0 < ns; b0 += LANES) FASTBP_LINEAR_BLOCK(RBC, 1);                   \
            break;
        FASTBP_LINEAR_ROWS(1)
        FASTBP_LINEAR_ROWS(2)
        FASTBP_LINEAR_ROWS(3)
        FASTBP_LINEAR_ROWS(4)
        FASTBP_LINEAR_ROWS(5)
        default:
            FASTBP_LINEAR_ROWS(FASTBP_RB)
#undef FASTBP_LINEAR_ROWS
        }
    }
}

/* x0[j][b] = X[row(t + b)][j] for j < d0 and b < nb, with row(i) = rows[i] (rows != NULL) or i:
 * the inputs of a tile turned feature-major, LANES samples x LANES features at a time through
 * the transpose in registers (a wide input, 784 features, was 50 000 scalar stores a tile, each
 * to another line of a tile beyond L1). Samples nb..ns-1 are zero. Returns 1 when a value
 * loaded is NaN or infinite, else 0: the sum of every value times 0 (0 for a finite value, NaN
 * otherwise), a multiply-add per vector already in registers (four sums, so that they do not
 * wait on each other), where screening X before the call read it from memory once more. The
 * values loaded one by one (the features after the last whole vector, the samples after the
 * last whole vector of samples) are screened from x0 afterwards, a vector at a time: a running
 * scalar sum of them had cost [2, 3, 1]'s small tiles 18 %. */
FASTBP_ATTR static int FASTBP_SFX(load_inputs)(const T *FASTBP_RESTRICT X, const ptrdiff_t *rows,
                                               ptrdiff_t t, int nb, int d0, T *FASTBP_RESTRICT x0,
                                               ptrdiff_t ld, int ns)
{
    const int d0v = d0 / LANES * LANES;
    const int nbv = nb / LANES * LANES;
    V screen[4] = {(V){0}, (V){0}, (V){0}, (V){0}};
    int b0 = 0;
    for (; b0 < nbv; b0 += LANES) {
        const T *src[LANES];
        for (int i = 0; i < LANES; i++)
            src[i] = X + (rows != NULL ? rows[t + b0 + i] : t + b0 + i) * (ptrdiff_t)d0;
        for (int j0 = 0; j0 < d0v; j0 += LANES) {
            V r[LANES];
            for (int i = 0; i < LANES; i++) {
                r[i] = *(const VU *)(src[i] + j0);
                screen[i & 3] += r[i] * (T)0;
            }
            FASTBP_TRANSPOSE_STAGES(r);
            for (int i = 0; i < LANES; i++) *(V *)(x0 + (ptrdiff_t)(j0 + i) * ld + b0) = r[i];
        }
        for (int j = d0v; j < d0; j++)
            for (int i = 0; i < LANES; i++) x0[(ptrdiff_t)j * ld + b0 + i] = src[i][j];
    }
    for (; b0 < nb; b0++) {
        const T *xb = X + (rows != NULL ? rows[t + b0] : t + b0) * (ptrdiff_t)d0;
        for (int j = 0; j < d0; j++) x0[(ptrdiff_t)j * ld + b0] = xb[j];
    }
    for (int j = 0; j < d0; j++)
        for (int b = nb; b < ns; b++) x0[(ptrdiff_t)j * ld + b] = 0;
    /* what went in one value at a time, from x0 (the padding zeros are finite) */
    for (int j = d0v; j < d0; j++)
        for (int b = 0; b < nbv; b += LANES)
            screen[(j + b / LANES) & 3] += *(const V *)(x0 + (ptrdiff_t)j * ld + b) * (T)0;
    if (nbv < nb)
        for (int j = 0; j < d0; j++)
            screen[j & 3] += *(const V *)(x0 + (ptrdiff_t)j * ld + nbv) * (T)0;
    const V all = (screen[0] + screen[1]) + (screen[2] + screen[3]);
    T sum = 0;
    for (int i = 0; i < LANES; i++) sum += all[i];
    return sum != sum;
}

/* Sum of the lanes of a vector, always in the same order: halves folded onto each other, a
 * short dependency chain (log2(LANES) shuffles and adds) rather than LANES - 1 scalar adds. */
FASTBP_ATTR static inline T FASTBP_SFX(lanesum)(V a)
{
#if FASTBP_LANES_PP == 4
    a = a + FASTBP_SHUF(a, a, 2, 3, 0, 1);
#elif FASTBP_LANES_PP == 8
    a = a + FASTBP_SHUF(a, a, 4, 5, 6, 7, 0, 1, 2, 3);
    a = a + FASTBP_SHUF(a, a, 2, 3, 0, 1, 6, 7, 4, 5);
#elif FASTBP_LANES_PP == 16
    a = a + FASTBP_SHUF(a, a, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    a = a + FASTBP_SHUF(a, a, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
    a = a + FASTBP_SHUF(a, a, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
#endif
    return a[0] + a[1];
}

#define FASTBP_OUTER_BLOCK(RC, CC)                                                      \
    do {                                                                                \
        V acc[RC][CC];                                                                  \
        for (int r = 0; r < RC; r++)                                                    \
            for (int c = 0; c < CC; c++)                                                \
                acc[r][c] = (part & FASTBP_OUTER_LANES_IN)                              \
                    ? *(const VU *)(lanes + ((ptrdiff_t)(j + r) * tc + c0 - vcols + c) * LANES) \
                    : (V){0};                                                           \
        for (int p = 0; p < pieces; p++) {                                              \
            const T *FASTBP_RESTRICT Xp = X[p];                                         \
            const T *FASTBP_RESTRICT Dp = D[p];                                         \
            for (int b = 0; b < nsp[p]; b += LANES) {                                   \
                V xv[RC], dv[CC];                                                       \
                for (int r = 0; r < RC; r++) xv[r] = *(const V *)(Xp + (ptrdiff_t)(j + r) * ld + b); \
                for (int c = 0; c < CC; c++) dv[c] = *(const V *)(Dp + (ptrdiff_t)(c0 + c) * ld + b); \
                for (int r = 0; r < RC; r++)                                            \
                    for (int c = 0; c < CC; c++) acc[r][c] += xv[r] * dv[c];            \
            }                                                                           \
        }                                                                               \
        for (int r = 0; r < RC; r++)                                                    \
            for (int c = 0; c < CC; c++) {                                              \
                if (part & FASTBP_OUTER_LANES_OUT)                                      \
                    *(VU *)(lanes + ((ptrdiff_t)(j + r) * tc + c0 - vcols + c) * LANES) = acc[r][c]; \
                else                                                                    \
                    G[(ptrdiff_t)(j + r) * cols + c0 + c] += FASTBP_SFX(lanesum)(acc[r][c]); \
            }                                                                           \
    } while (0)

/* G[j..j+RC-1][c0..c0+CC*LANES-1] += sum_b X[j+r][b] work[b][c0..]: the block in registers. */
#define FASTBP_OUTER_T_BLOCK(RC, CC)                                                    \
    do {                                                                                \
        V acc[RC][CC];                                                                  \
        for (int r = 0; r < RC; r++)                                                    \
            for (int c = 0; c < CC; c++)                                                \
                acc[r][c] = *(const VU *)(G + (ptrdiff_t)(j + r) * cols + c0 + c * LANES); \
        const T *wb = work + c0;                                                        \
        for (int p = 0; p < pieces; p++) {                                              \
            const T *FASTBP_RESTRICT Xp = X[p];                                         \
            for (int b = 0; b < nsp[p]; b++, wb += wld) {                               \
                V dv[CC];                                                               \
                for (int c = 0; c < CC; c++) memcpy(&dv[c], wb + c * LANES, sizeof(V)); \
                for (int r = 0; r < RC; r++) {                                          \
                    const T xr = Xp[(ptrdiff_t)(j + r) * ld + b];                       \
                    for (int c = 0; c < CC; c++) acc[r][c] += xr * dv[c];               \
                }                                                                       \
            }                                                                           \
        }                                                                               \
        for (int r = 0; r < RC; r++)                                                    \
            for (int c = 0; c < CC; c++)                                                \
                *(VU *)(G + (ptrdiff_t)(j + r) * cols + c0 + c * LANES) = acc[r][c];    \
    } while (0)

/* G[j][c] += sum_{b < ns} X[j][b] D[c][b]: the gradient update of one layer from a tile, X its
 * inputs x(l-1) (rows units), D its sensitivities delta(l) (cols units), `work` room for
 * ns x (cols + LANES) values. The tile's samples come in `pieces` pieces, piece p nsp[p]
 * samples (a multiple of LANES) at X[p] and D[p] (rows `ld` apart): the pieces of a tile whose
 * samples the threads of a shared step swept each in its own buffer (_sgd_epoch.pxi), or one
 * piece. Every element adds the samples in the order of the pieces, in the same lanes, so the
 * sums are those of one contiguous piece, bit for bit. Columns in whole vectors go through D transposed
 * (work[b][c] = D[c][b]): a block of G stays in registers while the samples stream by, each
 * sample one broadcast of x per row and one load of delta per vector of columns, nothing summed
 * across lanes. The few columns left over (fewer than a vector) are dot products over the
 * samples, each lane summing its own samples.
 * `part` says which columns: FASTBP_OUTER_CHAINED those whose elements add sample after sample
 * into G (a tile's samples may then come in several calls, in order, with the same sums),
 * FASTBP_OUTER_BY_TILE those that add a whole tile's lane sums into G at once (a tile in one
 * call), or both; with FASTBP_OUTER_KEEP_WORK, `work` holds D transposed already (the last call
 * had the same D, pieces and cols: only the rows differ).
 * A tile's lane sums may also be passed from call to call (a tile's samples swept by several
 * threads, each summing its own): FASTBP_OUTER_LANES_IN starts them from `lanes` (the sums of
 * the tile's samples before these), FASTBP_OUTER_LANES_OUT leaves them there (samples of the tile
 * follow) instead of adding them into G. Each lane adds its samples one after another, so the
 * sums so continued are those of one call, bit for bit. `lanes` holds tile_lanes(cols) values a
 * row: LANES for each column left over. */
FASTBP_ATTR static void FASTBP_SFX(outer)(const T *const *X, const T *const *D,
                                          const int *nsp, int pieces, int rows, int cols,
                                          ptrdiff_t ld, T *FASTBP_RESTRICT G,
                                          T *FASTBP_RESTRICT work, int panel, int part,
                                          T *FASTBP_RESTRICT lanes)
{
    const int vcols = cols / LANES * LANES;
    const int tc = cols - vcols;
    /* rows of `work` one vector longer than needed: 2^k bytes apart (256 columns of doubles:
     * 2 KiB), the samples' rows would all fall in the same few sets of L1 and evict each other */
    const ptrdiff_t wld = vcols + LANES;
    if (vcols > 0 && (part & FASTBP_OUTER_CHAINED)) {
        for (int c0 = 0; c0 < vcols && !(part & FASTBP_OUTER_KEEP_WORK); c0 += LANES) {
            ptrdiff_t boff = 0;
            for (int p = 0; p < pieces; boff += nsp[p], p++)
                for (int b0 = 0; b0 < nsp[p]; b0 += LANES) {
                    V r[LANES];
                    for (int i = 0; i < LANES; i++)
                        r[i] = *(const V *)(D[p] + (ptrdiff_t)(c0 + i) * ld + b0);
                    FASTBP_TRANSPOSE_STAGES(r);
                    for (int i = 0; i < LANES; i++)
                        *(VU *)(work + (boff + b0 + i) * wld + c0) = r[i];
                }
        }
        /* Blocks of rows x column vectors kept in registers. Each accumulator waits a multiply-add
         * latency (4 cycles) per sample, so a block needs about 8 of them to keep two FMA units
         * busy: fewer column vectors (a layer of 32 units in float32 has 2) get more rows. The
         * rows left over go in blocks of 4, 2, 1. Every element sums its samples in order,
         * whatever block it falls in. */
#define FASTBP_OUTER_COLS(RC, CC)                                                       \
        do {                                                                            \
            int j = j0;                                                                 \
            for (; j + RC <= j1; j += RC) FASTBP_OUTER_T_BLOCK(RC, CC);                  \
            if (RC > 4 && j + 4 <= j1) { FASTBP_OUTER_T_BLOCK(4, CC); j += 4; }         \
            if (RC > 2 && j + 2 <= j1) { FASTBP_OUTER_T_BLOCK(2, CC); j += 2; }         \
            if (RC > 1 && j < j1) FASTBP_OUTER_T_BLOCK(1, CC);                          \
        } while (0)
        /* Rows in panels of `panel` rows (all rows when panel <= 0), each panel through every
         * column block before the next: X is read from L2 (or beyond) once per tile, not once per
         * column block (32 times for 256 columns of doubles in AVX2: a wide input layer's X,
         * 400 KB a tile, left a 512 KiB L2 between those reads). Each element of G sums its
         * samples in the same order whatever the panels: the result does not depend on them. */
        if (panel <= 0) panel = rows;
        for (int j0 = 0; j0 < rows; j0 += panel) {
            const int j1 = rows - j0 < panel ? rows : j0 + panel;
            int c0 = 0;
            for (; c0 + GC * LANES <= vcols; c0 += GC * LANES) FASTBP_OUTER_COLS(GR, GC);
#if GC > 2
            for (; c0 + 2 * LANES <= vcols; c0 += 2 * LANES) FASTBP_OUTER_COLS(FASTBP_GR2, 2);
#endif
            for (; c0 < vcols; c0 += LANES) FASTBP_OUTER_COLS(FASTBP_GR1, 1);
        }
#undef FASTBP_OUTER_COLS
    }
    if (vcols == cols || !(part & FASTBP_OUTER_BY_TILE)) return;
    /* four rows at a time, so that their dot products (one dependency chain each) overlap */
    int j = 0;
    for (; j + 4 <= rows; j += 4) {
        int c0 = vcols;
        for (; c0 + 2 <= cols; c0 += 2) FASTBP_OUTER_BLOCK(4, 2);
        for (; c0 < cols; c0++) FASTBP_OUTER_BLOCK(4, 1);
    }
    for (; j < rows; j++) {
        int c0 = vcols;
        for (; c0 + 2 <= cols; c0 += 2) FASTBP_OUTER_BLOCK(1, 2);
        for (; c0 < cols; c0++) FASTBP_OUTER_BLOCK(1, 1);
    }
}

/* expm1(r) for |r| <= ln2/2, the reduced argument of tanh1 and exp1: r + r^2 P(r). Double: P the
 * Taylor series 1/2! + r/3! + ... + r^11/13! (truncation below 1e-17 relative for |r| <= ln2/2).
 * Float: P of degree 4 fitted here to expm1 on [-ln2/2, ln2/2] (weighted least squares iterated
 * toward minimax, 1.3e-8 relative, 0.2 ulp), two multiply-adds fewer than the Taylor series it
 * replaces. */
FASTBP_ATTR static inline __attribute__((always_inline)) V FASTBP_SFX(expm1_reduced)(V r)
{
    V p;
    if (sizeof(T) == 8) {
        p = (V){0} + (T)(1.0 / 6227020800.0);             /* 1/13! */
        p = p * r + (T)(1.0 / 479001600.0);
        p = p * r + (T)(1.0 / 39916800.0);
        p = p * r + (T)(1.0 / 3628800.0);
        p = p * r + (T)(1.0 / 362880.0);
        p = p * r + (T)(1.0 / 40320.0);
        p = p * r + (T)(1.0 / 5040.0);
        p = p * r + (T)(1.0 / 720.0);
        p = p * r + (T)(1.0 / 120.0);
        p = p * r + (T)(1.0 / 24.0);
        p = p * r + (T)(1.0 / 6.0);
        p = p * r + (T)0.5;
    } else {
        p = (V){0} + (T)0.0013882521872358318;
        p = p * r + (T)0.008366513991038719;
        p = p * r + (T)0.04166719965912572;
        p = p * r + (T)0.16666543669629305;
        p = p * r + (T)0.49999998155118097;
    }
    return r + r * r * p;
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
        V em1r = FASTBP_SFX(expm1_reduced)(r);           /* expm1(r) */
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

/* tanh in place on the first n values (a multiple of LANES) of `rows` rows, `ld` apart: one call
 * a layer, however few samples a tile holds. Two vectors at a time, so that two of the long
 * dependency chains above are in flight together. */
FASTBP_ATTR static void FASTBP_SFX(tanh)(T *FASTBP_RESTRICT x, int rows, ptrdiff_t ld, ptrdiff_t n)
{
    if (n == ld) {  /* whole rows: one run over all of them */
        n *= rows;
        rows = 1;
    }
    for (int j = 0; j < rows; j++, x += ld) {
        ptrdiff_t i = 0;
        for (; i + 2 * LANES <= n; i += 2 * LANES) {
            V a = FASTBP_SFX(tanh1)(*(V *)(x + i));
            V b = FASTBP_SFX(tanh1)(*(V *)(x + i + LANES));
            *(V *)(x + i) = a;
            *(V *)(x + i + LANES) = b;
        }
        for (; i < n; i += LANES) *(V *)(x + i) = FASTBP_SFX(tanh1)(*(V *)(x + i));
    }
}

/* delta *= 1 - x^2 (tanh'(s) = 1 - tanh(s)^2) on the first n values of `rows` rows, `ld` apart. */
FASTBP_ATTR static void FASTBP_SFX(dtanh_mul)(T *FASTBP_RESTRICT delta, const T *FASTBP_RESTRICT x,
                                              int rows, ptrdiff_t ld, ptrdiff_t n)
{
    if (n == ld) {
        n *= rows;
        rows = 1;
    }
    for (int j = 0; j < rows; j++, x += ld, delta += ld)
        for (ptrdiff_t i = 0; i < n; i += LANES) {
            V xv = *(const V *)(x + i);
            *(V *)(delta + i) *= (T)1 - xv * xv;
        }
}

/* Lanes of a where mask is all ones, of b where it is zero (C has no ?: on vectors). */
#define FASTBP_SELECT(mask, a, b) ((V)(((VI)(a) & (mask)) | ((VI)(b) & ~(mask))))
#define VI FASTBP_SFX(ivec)

/* exp of one vector, within 1.03 ulp (float) and 0.96 ulp (double) for results in the normal range
 * (measured over a dense sweep of [lo, hi]; tests/test_activations.py allows 2): the reduction of
 * tanh1, v = n ln2 + r, and exp(v) = 2^n + 2^n expm1(r). Arguments are clamped to [lo, hi]: below lo the
 * result would be subnormal and is 0 instead (an absolute error under 2^-1021 for double, 2^-125
 * for float), above hi it stays exp(hi) (the kernels only call it with v <= 0). */
FASTBP_ATTR static inline __attribute__((always_inline)) V FASTBP_SFX(exp1)(V v)
{
    const int is_double = sizeof(T) == 8;
    const T lo = is_double ? (T)-708.0 : (T)-87.0;
    const T hi = is_double ? (T)709.0 : (T)88.0;
    const T log2e = (T)1.4426950408889634;
    const T ln2_hi = is_double ? (T)6.93147180369123816490e-01 : (T)0.693145751953125;
    const T ln2_lo = is_double ? (T)1.90821492927058770002e-10 : (T)1.428606765330187e-06;
    const T shifter = is_double ? (T)6755399441055744.0 : (T)12582912.0;
    const int mant = is_double ? 52 : 23;
    const FASTBP_IT bias = is_double ? 1023 : 127;
    VI under = (VI)(v < lo);
    V a = FASTBP_SELECT(under, (V){0} + lo, v);
    a = FASTBP_SELECT((VI)(a > hi), (V){0} + hi, a);
    V kd = a * log2e + shifter;
    V nr = kd - shifter;
    V r = (a - nr * ln2_hi) - nr * ln2_lo;
    V em1r = FASTBP_SFX(expm1_reduced)(r);
    V scale = (V)(((VI)kd + bias) << mant);
    V e = scale + scale * em1r;
    return (V)((VI)e & ~under);
}

/* The logistic function 1 / (1 + exp(-x)) of one vector, from e = exp(-|x|) only, which never
 * overflows: 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0. Within 2.3 ulp (float) and 2.1 ulp
 * (double) where the result is normal (measured; the tests allow 3). */
FASTBP_ATTR static inline __attribute__((always_inline)) V FASTBP_SFX(logistic1)(V v)
{
    const VI sign = (VI){0} + ((FASTBP_IT)1 << (8 * sizeof(T) - 1));
    V e = FASTBP_SFX(exp1)((V)((VI)v | sign));          /* exp(-|x|) */
    V den = e + (T)1;
#ifdef FASTBP_RECIP
    V rec = FASTBP_RECIP(den);
    for (int it = 0; it < FASTBP_RECIP_STEPS; it++) rec = rec + rec * ((T)1 - den * rec);
#else
    V rec = (T)1 / den;
#endif
    return FASTBP_SELECT((VI)(v < 0), e * rec, rec);
}

/* log of one vector of normal values u >= 1 (the kernels' sums of exponentials, 1 + exp(-|s|)):
 * u = 2^k m with m in [sqrt(2)/2, sqrt(2)), log u = k ln2 + 2 atanh(z), z = (m - 1)/(m + 1) (m - 1
 * is exact), |z| <= 0.172; atanh(z)/z = 1 + z^2/3 + z^4/5 + ... to z^22/23 for double (below
 * 1e-18), to z^10/11 for float. */
FASTBP_ATTR static inline __attribute__((always_inline)) V FASTBP_SFX(log1)(V u)
{
    const int is_double = sizeof(T) == 8;
    const int mant = is_double ? 52 : 23;
    const FASTBP_IT bias = is_double ? 1023 : 127;
    const T ln2_hi = is_double ? (T)6.93147180369123816490e-01 : (T)0.693145751953125;
    const T ln2_lo = is_double ? (T)1.90821492927058770002e-10 : (T)1.428606765330187e-06;
    const T shifter = is_double ? (T)6755399441055744.0 : (T)12582912.0;
    VI bits = (VI)u;
    VI k = (bits >> mant) - bias;
    V m = (V)((bits & (((FASTBP_IT)1 << mant) - 1)) | (bias << mant));   /* [1, 2) */
    VI high = (VI)(m > (T)1.4142135623730951);                            /* -1 where true */
    m = FASTBP_SELECT(high, m * (T)0.5, m);
    k = k - high;
    V kf = (V)((VI)((V){0} + shifter) + k) - shifter;                     /* k, exactly */
    V z = (m - (T)1) / (m + (T)1);
    V z2 = z * z;
    V p;
    if (is_double) {
        p = (V){0} + (T)(1.0 / 23);
        p = p * z2 + (T)(1.0 / 21);
        p = p * z2 + (T)(1.0 / 19);
        p = p * z2 + (T)(1.0 / 17);
        p = p * z2 + (T)(1.0 / 15);
        p = p * z2 + (T)(1.0 / 13);
        p = p * z2 + (T)(1.0 / 11);
        p = p * z2 + (T)(1.0 / 9);
        p = p * z2 + (T)(1.0 / 7);
        p = p * z2 + (T)(1.0 / 5);
        p = p * z2 + (T)(1.0 / 3);
    } else {
        p = (V){0} + (T)(1.0 / 11);
        p = p * z2 + (T)(1.0 / 9);
        p = p * z2 + (T)(1.0 / 7);
        p = p * z2 + (T)(1.0 / 5);
        p = p * z2 + (T)(1.0 / 3);
    }
    V twoz = z + z;
    return kf * ln2_hi + (twoz + (kf * ln2_lo + twoz * z2 * p));
}

/* log(1 + exp(-|x|)) of one vector, the tail of the binary cross-entropy
 * max(s, 0) - y s + log(1 + exp(-|s|)): u = 1 + e rounds e away below u's last bit, and
 * (e - (u - 1)) / u puts back what it lost (log(1 + e) = log u + log(1 + c/u), c = e - (u - 1)). */
FASTBP_ATTR static inline __attribute__((always_inline)) V FASTBP_SFX(log1p_exp1)(V v)
{
    const VI sign = (VI){0} + ((FASTBP_IT)1 << (8 * sizeof(T) - 1));
    V e = FASTBP_SFX(exp1)((V)((VI)v | sign));          /* exp(-|x|) */
    V u = e + (T)1;
    return FASTBP_SFX(log1)(u) + (e - (u - (T)1)) / u;
}

/* exp in place on the first n values (a multiple of LANES) of `rows` rows, `ld` apart (a test hook
 * for exp1: the kernels call exp1 itself). */
FASTBP_ATTR static void FASTBP_SFX(exp)(T *FASTBP_RESTRICT x, int rows, ptrdiff_t ld, ptrdiff_t n)
{
    for (int j = 0; j < rows; j++, x += ld)
        for (ptrdiff_t i = 0; i < n; i += LANES) *(V *)(x + i) = FASTBP_SFX(exp1)(*(V *)(x + i));
}

/* log(u) in place for u >= 1, laid out as for exp (a test hook for log1). */
FASTBP_ATTR static void FASTBP_SFX(log)(T *FASTBP_RESTRICT x, int rows, ptrdiff_t ld, ptrdiff_t n)
{
    for (int j = 0; j < rows; j++, x += ld)
        for (ptrdiff_t i = 0; i < n; i += LANES) *(V *)(x + i) = FASTBP_SFX(log1)(*(V *)(x + i));
}

/* log(1 + exp(-|x|)) in place, laid out as for tanh. */
FASTBP_ATTR static void FASTBP_SFX(log1p_exp)(T *FASTBP_RESTRICT x, int rows, ptrdiff_t ld, ptrdiff_t n)
{
    if (n == ld) {
        n *= rows;
        rows = 1;
    }
    for (int j = 0; j < rows; j++, x += ld)
        for (ptrdiff_t i = 0; i < n; i += LANES)
            *(V *)(x + i) = FASTBP_SFX(log1p_exp1)(*(V *)(x + i));
}

/* The logistic function in place, laid out as for tanh. */
FASTBP_ATTR static void FASTBP_SFX(logistic)(T *FASTBP_RESTRICT x, int rows, ptrdiff_t ld, ptrdiff_t n)
{
    if (n == ld) {
        n *= rows;
        rows = 1;
    }
    for (int j = 0; j < rows; j++, x += ld)
        for (ptrdiff_t i = 0; i < n; i += LANES)
            *(V *)(x + i) = FASTBP_SFX(logistic1)(*(V *)(x + i));
}

/* max(x, 0) in place, laid out as for tanh. A select, not a multiply: -0 and +0 both give +0. */
FASTBP_ATTR static void FASTBP_SFX(relu)(T *FASTBP_RESTRICT x, int rows, ptrdiff_t ld, ptrdiff_t n)
{
    if (n == ld) {
        n *= rows;
        rows = 1;
    }
    for (int j = 0; j < rows; j++, x += ld)
        for (ptrdiff_t i = 0; i < n; i += LANES) {
            V xv = *(V *)(x + i);
            *(V *)(x + i) = (V)((VI)xv & (VI)(xv > 0));
        }
}

/* delta *= relu'(s), which is 1 where x = relu(s) > 0 and 0 elsewhere (relu'(0) = 0, as PyTorch
 * and scikit-learn take it). */
FASTBP_ATTR static void FASTBP_SFX(drelu_mul)(T *FASTBP_RESTRICT delta, const T *FASTBP_RESTRICT x,
                                              int rows, ptrdiff_t ld, ptrdiff_t n)
{
    if (n == ld) {
        n *= rows;
        rows = 1;
    }
    for (int j = 0; j < rows; j++, x += ld, delta += ld)
        for (ptrdiff_t i = 0; i < n; i += LANES) {
            V xv = *(const V *)(x + i);
            V dv = *(V *)(delta + i);
            *(V *)(delta + i) = (V)((VI)dv & (VI)(xv > 0));
        }
}

/* delta *= x (1 - x) (sigma'(s) = sigma(s) (1 - sigma(s))), laid out as dtanh_mul. */
FASTBP_ATTR static void FASTBP_SFX(dlogistic_mul)(T *FASTBP_RESTRICT delta, const T *FASTBP_RESTRICT x,
                                                  int rows, ptrdiff_t ld, ptrdiff_t n)
{
    if (n == ld) {
        n *= rows;
        rows = 1;
    }
    for (int j = 0; j < rows; j++, x += ld, delta += ld)
        for (ptrdiff_t i = 0; i < n; i += LANES) {
            V xv = *(const V *)(x + i);
            *(V *)(delta + i) *= xv * ((T)1 - xv);
        }
}

/* Softmax over the `rows` units of each of the first n samples (columns), in place, with each
 * sample's log-sum-exp in two parts, mx[b] + logsum[b] (kept apart so that the cross-entropy
 * log-sum-exp - s_k = (mx - s_k) + logsum loses nothing to cancellation at huge logits): x_k = exp(s_k - m) / sum_j exp(s_j - m) with m the sample's
 * largest s, so that no exp overflows and the largest term is 1 (the sum is in [1, rows]). The
 * samples of a vector go side by side; the sum runs over the units in order, the same in every
 * lane. */
FASTBP_ATTR static void FASTBP_SFX(softmax)(T *FASTBP_RESTRICT x, int rows, ptrdiff_t ld, ptrdiff_t n,
                                            T *FASTBP_RESTRICT mx, T *FASTBP_RESTRICT logsum)
{
    for (ptrdiff_t i = 0; i < n; i += LANES) {
        V m = *(V *)(x + i);
        for (int k = 1; k < rows; k++) {
            V s = *(V *)(x + (ptrdiff_t)k * ld + i);
            m = FASTBP_SELECT((VI)(s > m), s, m);
        }
        V sum = (V){0};
        for (int k = 0; k < rows; k++) {
            V *p = (V *)(x + (ptrdiff_t)k * ld + i);
            V e = FASTBP_SFX(exp1)(*p - m);
            *p = e;
            sum += e;
        }
        for (int k = 0; k < rows; k++) *(V *)(x + (ptrdiff_t)k * ld + i) /= sum;
        *(V *)(mx + i) = m;
        *(V *)(logsum + i) = FASTBP_SFX(log1)(sum);   /* sum >= 1: its largest term is exp(0) */
    }
}

#undef FASTBP_LINEAR_BLOCK
#undef FASTBP_SELECT
#undef VI
#undef FASTBP_SHUF
#undef FASTBP_LANES_PP
#undef FASTBP_TRANSPOSE_STAGES
#undef FASTBP_OUTER_BLOCK
#undef FASTBP_OUTER_T_BLOCK
#undef T
#undef V
#undef VU
#undef LANES
#undef NV
#undef SBLK
#undef GR
#undef GC
