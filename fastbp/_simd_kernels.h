/* Template of the micro-kernels, included by _simd.h once per (type, instruction set) with
 * FASTBP_T (float or double), FASTBP_SFX(name) (the suffixed name) and FASTBP_ATTR (the target). */

#define T FASTBP_T
#define TILE FASTBP_TILE
/* Samples handled together by one block of accumulators: two 32-byte vectors' worth. */
#define SB (64 / (int)sizeof(T))
/* Units handled together, each with its own accumulators. */
#define RB 4

/* out[i][b] = sum_k M[k*sk + i*si] * in[k][b] for i < m, b < TILE: one layer's linear map on a
 * tile (the forward signal with M = W, the backward sweep with M = W(l+1) without its bias row). */
FASTBP_ATTR static void FASTBP_SFX(linear)(const T *M, ptrdiff_t sk, ptrdiff_t si, int K, int m,
                                           const T *FASTBP_RESTRICT in, T *FASTBP_RESTRICT out)
{
    int i = 0;
    for (; i + RB <= m; i += RB) {
        for (int b0 = 0; b0 < TILE; b0 += SB) {
            T acc[RB][SB];
            for (int r = 0; r < RB; r++)
                for (int b = 0; b < SB; b++) acc[r][b] = 0;
            for (int k = 0; k < K; k++) {
                const T *x = in + (ptrdiff_t)k * TILE + b0;
                const T *w = M + k * sk + i * si;
                for (int r = 0; r < RB; r++) {
                    const T wr = w[r * si];
                    for (int b = 0; b < SB; b++) acc[r][b] += wr * x[b];
                }
            }
            for (int r = 0; r < RB; r++)
                for (int b = 0; b < SB; b++) out[(ptrdiff_t)(i + r) * TILE + b0 + b] = acc[r][b];
        }
    }
    for (; i < m; i++) {
        T acc[TILE];
        for (int b = 0; b < TILE; b++) acc[b] = 0;
        for (int k = 0; k < K; k++) {
            const T *x = in + (ptrdiff_t)k * TILE;
            const T w = M[k * sk + i * si];
            for (int b = 0; b < TILE; b++) acc[b] += w * x[b];
        }
        for (int b = 0; b < TILE; b++) out[(ptrdiff_t)i * TILE + b] = acc[b];
    }
}

/* G[j][c] += sum_b X[j][b] * D[c][b] for j < rows, c < cols: the gradient update of one layer from
 * a tile, X the layer's inputs x(l-1) and D its sensitivities delta(l). Each lane sums its own
 * samples; the lanes are added in a fixed order at the end. */
FASTBP_ATTR static void FASTBP_SFX(outer)(const T *FASTBP_RESTRICT X, int rows,
                                          const T *FASTBP_RESTRICT D, int cols,
                                          T *FASTBP_RESTRICT G)
{
    for (int j = 0; j < rows; j++) {
        const T *x = X + (ptrdiff_t)j * TILE;
        for (int c = 0; c < cols; c++) {
            const T *d = D + (ptrdiff_t)c * TILE;
            T part[SB];
            for (int b = 0; b < SB; b++) part[b] = 0;
            for (int b0 = 0; b0 < TILE; b0 += SB)
                for (int b = 0; b < SB; b++) part[b] += x[b0 + b] * d[b0 + b];
            T s = 0;
            for (int b = 0; b < SB; b++) s += part[b];
            G[(ptrdiff_t)j * cols + c] += s;
        }
    }
}

FASTBP_ATTR static void FASTBP_SFX(tanh)(T *x, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) x[i] = (T)tanh((double)x[i]);
}

#undef T
#undef TILE
#undef SB
#undef RB
