/* The multiply-add peak of this CPU, measured: the denominator of compare.py's "% of the FMA peak".
 *
 * Each thread runs CHAINS independent chains a = a * b + c on whole vectors, in registers, with no
 * memory traffic: as many multiply-adds per cycle as the cores can start, at the clock they hold
 * while doing it (AVX-512 code may run at a lower clock than AVX2 code). CHAINS = 12 covers the
 * latency of two FMA units (4 cycles x 2 units = 8 chains in flight) and, with b and c, fits the
 * 16 vector registers of AVX2. Built by bench/_common.py (cc -O2 -ffp-contract=fast -fopenmp
 * -shared, no -march: each instruction set is a target attribute, chosen at run time) and called
 * through ctypes.
 *
 *   double fastbp_bench_fma_peak(int isa, int itemsize, int threads, double seconds)
 *
 * isa 0: SSE2 (a multiply and an add: x86-64's baseline has no FMA), 1: AVX2 + FMA, 2: AVX-512F;
 * on aarch64, isa 0 is NEON (16-byte vectors, fused).
 * Returns the GFLOP/s of the fastest of five runs (2 flops a lane per multiply-add), about
 * `seconds` in all, or -1 when this CPU lacks the instruction set (or the compiler cannot target
 * it).
 */
#include <omp.h>

/* 16 chains on aarch64: its cores start up to four 128-bit multiply-adds a cycle (4 x 4-cycle
 * latency), and its 32 registers hold them with b and c */
#if defined(__aarch64__)
#define CHAINS 16
#define FASTBP_UNROLL _Pragma("GCC unroll 16")
#else
#define CHAINS 12
#define FASTBP_UNROLL _Pragma("GCC unroll 12")
#endif

#define FASTBP_PEAK_KERNEL(NAME, T, VBYTES, ATTR)                                          \
    typedef T NAME##_vec __attribute__((vector_size(VBYTES)));                              \
    ATTR static double NAME(long iters, int threads)   /* seconds */                       \
    {                                                                                      \
        double sink = 0.0;                                                                 \
        double t0 = omp_get_wtime();                                                       \
        _Pragma("omp parallel num_threads(threads) reduction(+:sink)")                     \
        {                                                                                  \
            NAME##_vec a[CHAINS];                                                          \
            /* b and c from the thread number: not constants the compiler could fold */    \
            const T tn = (T)omp_get_thread_num();                                          \
            const NAME##_vec b = (NAME##_vec){0} + (T)0.999999 + tn * (T)1e-9;             \
            const NAME##_vec c = (NAME##_vec){0} + (T)1e-7 + tn * (T)1e-12;                \
            for (int k = 0; k < CHAINS; k++) a[k] = (NAME##_vec){0} + (T)(1 + k) / CHAINS;  \
            for (long i = 0; i < iters; i++) {                                             \
                /* unrolled, so that the chains live in registers */                       \
                FASTBP_UNROLL                                                              \
                for (int k = 0; k < CHAINS; k++) a[k] = a[k] * b + c;                       \
            }                                                                              \
            NAME##_vec s = a[0];                                                           \
            for (int k = 1; k < CHAINS; k++) s += a[k];                                    \
            sink += (double)s[0];                                                          \
        }                                                                                  \
        double t = omp_get_wtime() - t0;                                                   \
        /* the sum keeps every chain alive; it is never this large */                      \
        return sink == -1.0 ? t + 1.0 : t;                                                 \
    }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
FASTBP_PEAK_KERNEL(peak_sse2_d, double, 16, )
FASTBP_PEAK_KERNEL(peak_sse2_f, float, 16, )
FASTBP_PEAK_KERNEL(peak_avx2_d, double, 32, __attribute__((target("avx2,fma"))))
FASTBP_PEAK_KERNEL(peak_avx2_f, float, 32, __attribute__((target("avx2,fma"))))
FASTBP_PEAK_KERNEL(peak_avx512_d, double, 64, __attribute__((target("avx512f"))))
FASTBP_PEAK_KERNEL(peak_avx512_f, float, 64, __attribute__((target("avx512f"))))

static int supported(int isa)
{
    __builtin_cpu_init();
    if (isa == 0) return 1;
    if (isa == 1) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == 2) return __builtin_cpu_supports("avx512f");
    return 0;
}

static double run(int isa, int itemsize, long iters, int threads)
{
    switch (isa * 2 + (itemsize == 4)) {
    case 0: return peak_sse2_d(iters, threads);
    case 1: return peak_sse2_f(iters, threads);
    case 2: return peak_avx2_d(iters, threads);
    case 3: return peak_avx2_f(iters, threads);
    case 4: return peak_avx512_d(iters, threads);
    default: return peak_avx512_f(iters, threads);
    }
}
#define FASTBP_HAVE_PEAK 1
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
/* isa 0 on aarch64: NEON (AdvSIMD), which every ARMv8-A core has; a * b + c fuses (FMLA) */
FASTBP_PEAK_KERNEL(peak_neon_d, double, 16, )
FASTBP_PEAK_KERNEL(peak_neon_f, float, 16, )

static int supported(int isa) { return isa == 0; }

static double run(int isa, int itemsize, long iters, int threads)
{
    (void)isa;
    return itemsize == 4 ? peak_neon_f(iters, threads) : peak_neon_d(iters, threads);
}
#define FASTBP_HAVE_PEAK 1
#endif

#ifdef FASTBP_HAVE_PEAK
double fastbp_bench_fma_peak(int isa, int itemsize, int threads, double seconds)
{
    if (isa < 0 || isa > 2 || (itemsize != 4 && itemsize != 8) || threads < 1 || !supported(isa))
        return -1.0;
    /* calibrate: double the iterations until a run takes a tenth of `seconds`; then five runs of
     * twice that, about `seconds` in all, and the best */
    /* 2 flops a lane per multiply-add, (16 << isa) bytes a vector */
    const double flops_per_iter = 2.0 * CHAINS * (16 << isa) / itemsize * threads;
    long iters = 1000;
    while (run(isa, itemsize, iters, threads) < 0.1 * seconds && iters < (1L << 40)) iters *= 2;
    double least = run(isa, itemsize, 2 * iters, threads);
    for (int r = 1; r < 5; r++) {
        double t = run(isa, itemsize, 2 * iters, threads);
        if (t < least) least = t;
    }
    return flops_per_iter * 2 * iters / least / 1e9;
}
#else
double fastbp_bench_fma_peak(int isa, int itemsize, int threads, double seconds)
{
    (void)isa; (void)itemsize; (void)threads; (void)seconds;
    return -1.0;
}
#endif
