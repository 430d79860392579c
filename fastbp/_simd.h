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
#if defined(__aarch64__) && FASTBP_VECTOR_EXT
#define FASTBP_HAVE_NEON 1
#else
#define FASTBP_HAVE_NEON 0
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

/* ---- 64-byte aligned scratch, so that every tile row starts on a cache line ----
 * Below each block: its raw pointer and the bytes it holds. Large blocks are kept for the next
 * call when freed (FASTBP_KEPT of them, each of FASTBP_KEEP_BYTES or more): the gradient sums of
 * a wide first layer (a sparse input's W(1): 100 MB for 100000 x 128 doubles) were allocated,
 * first touched page by page and given back to the system on every call, and in a process whose
 * OpenMP threads are alive each return shoots down the other cores' TLBs: on a 2-vCPU VM that
 * was 300 of a 700 ms gradient (perf: spinlocks, IPIs, page clearing in the kernel). A kept
 * block is cleared with memset on reuse (calloc's promise) and taken by one caller only (an
 * atomic exchange of its slot); the memory it holds stays with the process until it is reused.
 * Blocks from 256 KiB are kept: a mini-batch epoch on a team allocates its members' tile buffers
 * (1.3 MB for digits on two threads) and scratch at every call, which took 55 us of a 1.1 ms
 * epoch (issue 23); the tile buffers are asked for uncleared (fastbp_aligned_malloc).
 */
#define FASTBP_KEEP_BYTES ((size_t)256 << 10)
#define FASTBP_KEPT 8
#if defined(__GNUC__) || defined(__clang__)
#define FASTBP_KEEPS_BLOCKS 1
static void *fastbp_kept[FASTBP_KEPT];
#else
#define FASTBP_KEEPS_BLOCKS 0
#endif

static inline void *fastbp_aligned_block(size_t nbytes, int cleared) {
#if FASTBP_KEEPS_BLOCKS
    if (nbytes >= FASTBP_KEEP_BYTES) {
        for (int i = 0; i < FASTBP_KEPT; i++) {
            void *p = __atomic_exchange_n(&fastbp_kept[i], NULL, __ATOMIC_ACQ_REL);
            if (p == NULL) continue;
            size_t holds = ((size_t *)p)[-2];
            if (holds >= nbytes && holds / 2 <= nbytes) {
                if (cleared) memset(p, 0, nbytes);
                return p;
            }
            /* not this size: back to its slot, or freed if another took the slot meanwhile */
            void *none = NULL;
            if (!__atomic_compare_exchange_n(&fastbp_kept[i], &none, p, 0, __ATOMIC_ACQ_REL,
                                             __ATOMIC_ACQUIRE))
                free(((void **)p)[-1]);
        }
    }
#endif
    void *raw = cleared ? calloc(nbytes + 64 + 2 * sizeof(void *), 1)
                        : malloc(nbytes + 64 + 2 * sizeof(void *));
    if (raw == NULL) return NULL;
    uintptr_t p = ((uintptr_t)raw + 2 * sizeof(void *) + 63) & ~(uintptr_t)63;
    ((void **)p)[-1] = raw;
    ((size_t *)p)[-2] = nbytes;
    return (void *)p;
}

static inline void *fastbp_aligned_calloc(size_t nbytes) { return fastbp_aligned_block(nbytes, 1); }

/* A block whose contents the caller writes before it reads them: a kept one is not cleared. */
static inline void *fastbp_aligned_malloc(size_t nbytes) { return fastbp_aligned_block(nbytes, 0); }

static inline void fastbp_aligned_free(void *p) {
    if (p == NULL) return;
#if FASTBP_KEEPS_BLOCKS
    if (((size_t *)p)[-2] >= FASTBP_KEEP_BYTES) {
        for (int i = 0; i < FASTBP_KEPT; i++) {
            void *none = NULL;
            if (__atomic_compare_exchange_n(&fastbp_kept[i], &none, p, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE))
                return;
        }
    }
#endif
    free(((void **)p)[-1]);
}

#if defined(_MSC_VER) && !defined(__clang__) && (defined(_M_X64) || defined(_M_IX86))
#include <xmmintrin.h>
#endif
/* Ask for the `bytes` from p to be brought into cache (a hint: no fault, no result). A sparse
 * input's rows of W(1) and dW(1) are where its nonzeros say, too far apart for the hardware
 * prefetcher to guess (fastbp/_sparse_inputs.pxi). */
static inline void fastbp_prefetch(const void *p, size_t bytes) {
#if defined(__GNUC__) || defined(__clang__)
    for (size_t k = 0; k < bytes; k += 64) __builtin_prefetch((const char *)p + k, 0, 3);
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
    for (size_t k = 0; k < bytes; k += 64) _mm_prefetch((const char *)p + k, _MM_HINT_T0);
#else
    (void)p;
    (void)bytes;
#endif
}

/* Units per block of a packed panel (see fastbp_pack_*): the same for every instruction set, so
 * that one packing serves them all. Each input row of a tile loaded in `linear` serves this many
 * units: with wide layers (K in the hundreds) the tile lives in L2, and 6 rather than 4 cut that
 * traffic by a third (AVX-512: 6 x 4 accumulators of the 32 registers; AVX2: 6 x 2 of 16). */
#define FASTBP_RB 6

/* The columns of a gradient block `outer` computes (its `part`): those whose elements add the
 * samples one after another into G, those that add a tile's sum into G at once, or all. */
#define FASTBP_OUTER_CHAINED 1
#define FASTBP_OUTER_BY_TILE 2
#define FASTBP_OUTER_ALL 3
#define FASTBP_OUTER_KEEP_WORK 4
/* a tile's lane sums passed between calls (`lanes`) */
#define FASTBP_OUTER_LANES_IN 8
#define FASTBP_OUTER_LANES_OUT 16

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

#if FASTBP_HAVE_NEON
/* aarch64's AdvSIMD (every ARMv8-A core has it, so no target attribute): 16-byte vectors as the
 * baseline's, but 32 registers, so larger blocks than the baseline's 6 x 2 and 4 x 2: `linear`
 * 6 units x 3 vectors of samples (18 accumulators, 3 inputs, 6 weights, each weight a register
 * of its own as GCC 12 compiles it: 6 x 4 spilled 3 accumulators a step), `outer` 5 rows x 4
 * column vectors (20 accumulators, 4 sensitivities, 5 inputs; 6 x 4 spilled 2). Checked in the
 * assembly of aarch64-linux-gnu-gcc -O3: no stack access in either inner loop. Every lane sums
 * in the baseline's order
 * (no reciprocal estimate either), so the two sets give the same bits; the set is faster only.
 * SVE is not built: its vectors have no length at compile time, which GCC's vector extensions
 * (this template) need, and on the cores that have it (Neoverse V1: 2 x 256-bit pipes; V2 and
 * Apple cores: 4 x 128-bit) it issues no more multiply-adds a cycle than NEON's four 128-bit
 * pipes. */
#define FASTBP_ATTR
#define FASTBP_VBYTES 16
#define FASTBP_NV 3
#define FASTBP_GR 5
#define FASTBP_GC 4
#define FASTBP_GR2 8
#define FASTBP_GR1 8
#define FASTBP_T double
#define FASTBP_TSIZE 8
#define FASTBP_IT int64_t
#define FASTBP_SFX(name) name##_d_neon
#include "_simd_kernels.h"
#undef FASTBP_T
#undef FASTBP_TSIZE
#undef FASTBP_IT
#undef FASTBP_SFX
#define FASTBP_T float
#define FASTBP_TSIZE 4
#define FASTBP_IT int32_t
#define FASTBP_SFX(name) name##_f_neon
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

/* ---- the kernel table ----
 * The micro-kernels of one set and type, as function pointers filled by designated initialisers
 * (a slot named twice or misnamed does not compile). The kernels that share a signature are
 * listed once here, and every use below (the table's slots, its initialisers, the wrappers that
 * fastbp/_core.pyx calls) is generated from these lists: a new kernel of one of these shapes is
 * its code in _simd_kernels.h and _simd_scalar.h, its name in a list, and its declaration in
 * _core.pyx. */
#define FASTBP_ROW_KERNELS(X, A, B) X(tanh, A, B) X(exp, A, B) X(log, A, B) X(log1p_exp, A, B) \
    X(logistic, A, B) X(relu, A, B)
/* delta *= theta'(s), from x = theta(s) */
#define FASTBP_MUL_KERNELS(X, A, B) X(dtanh_mul, A, B) X(drelu_mul, A, B) X(dlogistic_mul, A, B)

#define FASTBP_ROW_SLOT(name, T, _) void (*name)(T *, int, ptrdiff_t, ptrdiff_t);
#define FASTBP_MUL_SLOT(name, T, _) void (*name)(T *, const T *, int, ptrdiff_t, ptrdiff_t);
#define FASTBP_KERNEL_TABLE(T, S)                                                           \
    typedef struct {                                                                    \
        int (*sample_block)(void);                                                      \
        int (*tile_lanes)(int);                                                         \
        void (*linear)(const T *, int, int, const T *, ptrdiff_t, T *, int);            \
        void (*outer)(const T *const *, const T *const *, const int *, int, int, int,   \
                      ptrdiff_t, T *, T *, int, int, T *);                              \
        int (*load_inputs)(const T *, const ptrdiff_t *, ptrdiff_t, int, int, T *, ptrdiff_t, int); \
        void (*softmax)(T *, int, ptrdiff_t, ptrdiff_t, T *, T *);                      \
        FASTBP_ROW_KERNELS(FASTBP_ROW_SLOT, T, _)                                       \
        FASTBP_MUL_KERNELS(FASTBP_MUL_SLOT, T, _)                                       \
    } fastbp_kernels_##S;
FASTBP_KERNEL_TABLE(double, d)
FASTBP_KERNEL_TABLE(float, f)

#define FASTBP_INIT_SLOT(name, S, ISA) .name = name##_##S##_##ISA,
#define FASTBP_KERNELS_OF(S, ISA)                                                           \
    {.sample_block = sample_block_##S##_##ISA, .tile_lanes = tile_lanes_##S##_##ISA,    \
     .linear = linear_##S##_##ISA,                                                      \
     .outer = outer_##S##_##ISA, .load_inputs = load_inputs_##S##_##ISA,                \
     .softmax = softmax_##S##_##ISA,                                                    \
     FASTBP_ROW_KERNELS(FASTBP_INIT_SLOT, S, ISA) FASTBP_MUL_KERNELS(FASTBP_INIT_SLOT, S, ISA)}

/* ---- the kernel sets, by name, the best first ----
 * A set is its instantiation above and its row here: its name (what FASTBP_SIMD and
 * show_config() say), whether this CPU and its OS run it, and its kernels. */
typedef struct {
    const char *name;
    int (*runs_here)(void);
    fastbp_kernels_d kd;
    fastbp_kernels_f kf;
} fastbp_kernel_set;

static int fastbp_runs_anywhere(void) { return 1; }
#if FASTBP_HAVE_AVX2
static int fastbp_runs_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
static int fastbp_runs_avx512(void) {
    return fastbp_runs_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}
#endif

static const fastbp_kernel_set fastbp_kernel_sets[] = {
#if FASTBP_HAVE_AVX2
    {"avx512", fastbp_runs_avx512, FASTBP_KERNELS_OF(d, avx512), FASTBP_KERNELS_OF(f, avx512)},
    {"avx2+fma", fastbp_runs_avx2, FASTBP_KERNELS_OF(d, avx2), FASTBP_KERNELS_OF(f, avx2)},
#endif
#if FASTBP_HAVE_NEON
    {"neon", fastbp_runs_anywhere, FASTBP_KERNELS_OF(d, neon), FASTBP_KERNELS_OF(f, neon)},
#endif
    {"baseline", fastbp_runs_anywhere, FASTBP_KERNELS_OF(d, base), FASTBP_KERNELS_OF(f, base)},
};
#define FASTBP_N_KERNEL_SETS ((int)(sizeof(fastbp_kernel_sets) / sizeof(fastbp_kernel_sets[0])))

static fastbp_kernels_d fastbp_kd = FASTBP_KERNELS_OF(d, base);
static fastbp_kernels_f fastbp_kf = FASTBP_KERNELS_OF(f, base);
static const char *fastbp_isa = "baseline";
/* the x86-64 vector width of the set chosen, for the update code's own kernels (_simd_update.h):
 * 2 AVX-512, 1 AVX2, 0 anything else */
static int fastbp_isa_level = 0;

static inline int fastbp_kernel_set_count(void) { return FASTBP_N_KERNEL_SETS; }
static inline const char *fastbp_kernel_set_name(int i) { return fastbp_kernel_sets[i].name; }
static inline int fastbp_kernel_set_runs_here(int i) { return fastbp_kernel_sets[i].runs_here(); }

/* Choose the best set this CPU runs at or below the one named `cap` in the table's order (an
 * empty or unknown name: no cap); return the name of the set chosen. */
static inline const char *fastbp_select_kernels(const char *cap) {
    int first = 0;
    for (int i = 0; i < FASTBP_N_KERNEL_SETS; i++)
        if (cap != NULL && strcmp(cap, fastbp_kernel_sets[i].name) == 0) first = i;
    for (int i = first; i < FASTBP_N_KERNEL_SETS; i++)
        if (fastbp_kernel_sets[i].runs_here()) {
            fastbp_kd = fastbp_kernel_sets[i].kd;
            fastbp_kf = fastbp_kernel_sets[i].kf;
            fastbp_isa = fastbp_kernel_sets[i].name;
            fastbp_isa_level = strcmp(fastbp_isa, "avx512") == 0     ? 2
                               : strcmp(fastbp_isa, "avx2+fma") == 0 ? 1
                                                                     : 0;
            break;
        }
    return fastbp_isa;
}

/* ---- a team's chunk rounds (fastbp/_driver.pxi): the next chunk to claim, and the barrier ----
 * Both bind to the innermost enclosing OpenMP parallel region, which need not be in the function
 * that calls them: the chunk loop runs as well inside a region its caller opened. */
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static inline long fastbp_claim(long *next) { return _InterlockedExchangeAdd((volatile long *)next, 1); }
#else
static inline long fastbp_claim(long *next) { return __atomic_fetch_add(next, 1, __ATOMIC_RELAXED); }
#endif
/* ---- the barrier of a shared mini-batch epoch (fastbp/_sgd_epoch.pxi) ----
 * A team that meets several times a step waits spinning, then yielding its core, but never
 * asleep: a thread asleep on a futex is woken on whichever core the scheduler picks, often the
 * waker's, and two members sharing one core while the other idles made whole epochs twice as
 * slow (seen half the time on the 2-vCPU machines). Spinning members stay runnable, so the
 * scheduler keeps them apart; yielding after a while keeps an oversubscribed team (more members
 * than cores) moving. `arrived` and `generation` each on a cache line of their own. */
#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#define FASTBP_YIELD() SwitchToThread()
#else
#include <sched.h>
#define FASTBP_YIELD() sched_yield()
#endif
#if defined(_MSC_VER) && !defined(__clang__)
#define FASTBP_PAUSE() YieldProcessor()
#define FASTBP_LOAD_ACQ(p) (_ReadWriteBarrier(), *(volatile long *)(p))
#define FASTBP_FETCH_ADD(p, v) (_InterlockedExchangeAdd((volatile long *)(p), (v)) + (v))
#define FASTBP_STORE_REL(p, v) (_ReadWriteBarrier(), *(volatile long *)(p) = (v))
#else
#if defined(__x86_64__) || defined(__i386__)
#define FASTBP_PAUSE() __builtin_ia32_pause()
#elif defined(__aarch64__) || defined(__arm__)
#define FASTBP_PAUSE() __asm__ __volatile__("yield")
#else
#define FASTBP_PAUSE() ((void)0)
#endif
#define FASTBP_LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define FASTBP_FETCH_ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)
#define FASTBP_STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#endif
#define FASTBP_TEAM_SPINS 4096      /* pauses before a waiting member yields its core */
/* One round of a member's wait: a pause, or once it has waited FASTBP_TEAM_SPINS rounds, its core
 * yielded (never a sleep: see above) */
static inline void fastbp_team_wait_round(long spins) {
    if (spins < FASTBP_TEAM_SPINS)
        FASTBP_PAUSE();
    else
        FASTBP_YIELD();
}
typedef struct {
    long arrived;
    char pad0[64 - sizeof(long)];
    long generation;
    char pad1[64 - sizeof(long)];
} fastbp_team_sync;
static inline void fastbp_team_wait(fastbp_team_sync *s, int team) {
    const long gen = FASTBP_LOAD_ACQ(&s->generation);
    if (FASTBP_FETCH_ADD(&s->arrived, 1) == team) {
        s->arrived = 0;              /* before the release below: no one arrives again before */
        FASTBP_STORE_REL(&s->generation, gen + 1);
        return;
    }
    for (long spins = 0; FASTBP_LOAD_ACQ(&s->generation) == gen; spins++)
        fastbp_team_wait_round(spins);
}

/* A relay of the members of a team (fastbp/_sgd_epoch.pxi, chained_chunk): a counter each member
 * waits on until it reaches `value` (spinning, then yielding, as fastbp_team_wait), and sets to
 * the next member's value once it is done; what the member wrote before is then seen by the next. */
static inline void fastbp_relay_wait(long *counter, long value) {
    for (long spins = 0; FASTBP_LOAD_ACQ(counter) < value; spins++)
        fastbp_team_wait_round(spins);
}
static inline void fastbp_relay_pass(long *counter, long value) { FASTBP_STORE_REL(counter, value); }

/* Seconds on a monotonic clock (OpenMP's; 0 without OpenMP, where no team shares a step). */
static inline double fastbp_seconds(void) {
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return 0.0;
#endif
}

/* fastbp_relay_wait, returning the seconds it waited (0 when the counter was there already). */
static inline double fastbp_relay_wait_timed(long *counter, long value) {
    if (FASTBP_LOAD_ACQ(counter) >= value) return 0.0;
    const double t0 = fastbp_seconds();
    fastbp_relay_wait(counter, value);
    return fastbp_seconds() - t0;
}

/* The threads of the innermost enclosing parallel region: what OpenMP gave, which may be fewer
 * than a region asked for (OMP_THREAD_LIMIT, nesting); 1 outside any region or without OpenMP. */
static inline int fastbp_team_size(void) {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}
static inline void fastbp_barrier(void) {
#ifdef _OPENMP
#pragma omp barrier
#endif
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
                                  int ns, double *G, double *work, int panel) { fastbp_kd.outer(&X, &D, &ns, 1, rows, cols, ld, G, work, panel, FASTBP_OUTER_ALL, NULL); }
static inline void fastbp_outer_f(const float *X, int rows, const float *D, int cols, ptrdiff_t ld,
                                  int ns, float *G, float *work, int panel) { fastbp_kf.outer(&X, &D, &ns, 1, rows, cols, ld, G, work, panel, FASTBP_OUTER_ALL, NULL); }
/* outer on a tile whose samples are in pieces, `part` of its columns, its lane sums passed in
 * `lanes` (see `outer` in _simd_kernels.h) */
static inline void fastbp_outer_pieces_d(const double *const *X, const double *const *D, const int *ns,
                                         int pieces, int rows, int cols, ptrdiff_t ld, double *G,
                                         double *work, int panel, int part, double *lanes) { fastbp_kd.outer(X, D, ns, pieces, rows, cols, ld, G, work, panel, part, lanes); }
static inline void fastbp_outer_pieces_f(const float *const *X, const float *const *D, const int *ns,
                                         int pieces, int rows, int cols, ptrdiff_t ld, float *G,
                                         float *work, int panel, int part, float *lanes) { fastbp_kf.outer(X, D, ns, pieces, rows, cols, ld, G, work, panel, part, lanes); }
static inline int fastbp_tile_lanes_d(int cols) { return fastbp_kd.tile_lanes(cols); }
static inline int fastbp_tile_lanes_f(int cols) { return fastbp_kf.tile_lanes(cols); }
#define FASTBP_ROW_WRAPPER(name, _a, _b)                                                  \
    static inline void fastbp_##name##_d(double *x, int rows, ptrdiff_t ld, ptrdiff_t n) {      \
        fastbp_kd.name(x, rows, ld, n);                                                 \
    }                                                                                   \
    static inline void fastbp_##name##_f(float *x, int rows, ptrdiff_t ld, ptrdiff_t n) {       \
        fastbp_kf.name(x, rows, ld, n);                                                 \
    }
#define FASTBP_MUL_WRAPPER(name, _a, _b)                                                  \
    static inline void fastbp_##name##_d(double *d, const double *x, int rows, ptrdiff_t ld,  \
                                         ptrdiff_t n) {                                 \
        fastbp_kd.name(d, x, rows, ld, n);                                              \
    }                                                                                   \
    static inline void fastbp_##name##_f(float *d, const float *x, int rows, ptrdiff_t ld,    \
                                         ptrdiff_t n) {                                 \
        fastbp_kf.name(d, x, rows, ld, n);                                              \
    }
FASTBP_ROW_KERNELS(FASTBP_ROW_WRAPPER, _, _)
FASTBP_MUL_KERNELS(FASTBP_MUL_WRAPPER, _, _)
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
