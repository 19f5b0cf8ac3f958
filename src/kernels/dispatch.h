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

#endif
