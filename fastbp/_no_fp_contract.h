/* Included by fastbp/_core.pyx after _simd.h: no fused multiply-add in any function defined after
 * this point (the module's own code: the weight updates, merges and losses, whose rounding is that
 * of NumPy's expressions, operation by operation). The micro-kernels of _simd.h come before it and
 * keep theirs. GCC contracts a * b + c by default wherever the target has a fused multiply-add
 * (on aarch64's baseline, for one), clang within an expression; MSVC only under /fp:contract. */
#ifndef FASTBP_NO_FP_CONTRACT_H
#define FASTBP_NO_FP_CONTRACT_H
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#elif defined(_MSC_VER)
#pragma fp_contract(off)
#endif
#endif
