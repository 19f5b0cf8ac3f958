/* dispatch: which kernel level (cpu.h) runs. The public kernel functions
 * (quant.h, ops.h, attention.h, stream.h) jump through a table of the
 * chosen level's builds; it is chosen once, at the first kernel call or at
 * kernels_init, from the CPU's features and ALOE_CPU. */
#ifndef ALOE_KERNELS_DISPATCH_H
#define ALOE_KERNELS_DISPATCH_H

#include "base/err.h"

/* Chooses the level now (thread-safe; once per process): the best this
 * CPU runs, capped by the environment variable ALOE_CPU (scalar, avx2,
 * avx512, avx512vbmi). Returns -1 with e set when ALOE_CPU names no level
 * or one this CPU cannot run; the kernels then run the best level the CPU
 * has (a program that never calls this gets that silently), so a program
 * that honours the request calls this at start and stops on the error. */
int kernels_init(Err *e);
/* The level running (KernelLevel). */
int kernel_level(void);
/* Switches to `level` (tests and benchmarks compare the levels in one
 * process): -1 with e set when this CPU cannot run it. Not to be called
 * while kernels run. */
int kernel_set_level(int level, Err *e);

/* Where the decode dots and the bandwidth probe ask for the weights they
 * will read 8 KB on (quant_internal.h): `auto` (the default), each kernel
 * into the cache level measured faster for it on the AMD Zen 4 this was
 * tuned on (L2 for the AVX-512 dots of BF16/F16/F32, Q8_0, regrouped Q4_0
 * and Q4_K/Q5_K/Q6_K, and for the probe; L1 for the others); `l1`, `l2`:
 * every kernel into that level; `off`: none. Set at start from
 * ALOE_PREFETCH (kernels_init reports a value it does not know), and by
 * kernel_set_prefetch (benchmarks comparing them; not while kernels run),
 * which returns the previous mode. A CPU whose prefetchers differ may want
 * another: bench/prefetch_ab measures the modes against each other. */
typedef enum { KPF_OFF, KPF_L1, KPF_L2, KPF_AUTO } KernelPrefetch;
int kernel_prefetch(void);
int kernel_set_prefetch(int mode);
const char *kernel_prefetch_name(int mode);
/* `auto` on an Intel CPU (set at start from the vendor; tests switch it):
 * the one-sequence decode dots of stored Q4_0 rows -- the AVX-512 quads
 * and the AVX2 dots of Q4_0 as stored or in groups -- prefetch into L2,
 * where the Zen 4 measured L1 faster (L2 0.72x there) and an Intel Xeon
 * (AMX, family/model 6/167) the opposite: qwen2.5-0.5b Q4_0 decode +6-7%,
 * llama-3.2-1b Q4_0 at the avx2 level +20-35% (docs/BENCHMARKS.md,
 * "What a decode step's instructions cost"). Returns the previous one. */
int kernel_prefetch_intel(void);
int kernel_set_prefetch_intel(int on);

/* AMX-INT8 tiles for the prefill's integer GEMM (gemm_q_amx.c): whether
 * this CPU has them and the OS granted the tile state (asked once, at the
 * first call: arch_prctl ARCH_REQ_XCOMP_PERM); whether they are in use (the
 * running level is an AVX-512 one and they are not switched off by
 * ALOE_AMX=0 in the environment or kernel_set_amx(0)); and that switch
 * (tests and benchmarks compare both paths in one process; not while
 * kernels run), which returns the previous setting. */
int kernel_amx_available(void);
int kernel_amx(void);
int kernel_set_amx(int on);

#endif
