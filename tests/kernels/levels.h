/* levels: runs a kernel test once per kernel level this CPU runs (up to
 * the level chosen at start, so ALOE_CPU caps it), as "name@level": one
 * binary checks every level's build of the kernels against the scalar
 * references (kernel_funcs.h: the references are always the scalar
 * build's). Where the CPU has AMX tiles (kernel_amx_available) and
 * ALOE_AMX does not switch them off, each AVX-512 level runs twice: as
 * "name@level" without the tiles (the VNNI kernels) and as
 * "name@level+amx" with them (gemm_q_amx.c). Header-only, for
 * tests/kernels. */
#ifndef ALOE_TESTS_KERNELS_LEVELS_H
#define ALOE_TESTS_KERNELS_LEVELS_H

#include <stdio.h>
#include <stdlib.h>

#include "kernels/cpu.h"
#include "kernels/dispatch.h"
#include "test.h"

static inline void run_levels(const char *name, void (*fn)(void)) {
    int top = kernel_level(), amx = kernel_set_amx(0);
    for (int l = KL_SCALAR; l <= top; l++) {
        Err e;
        char full[192];
        snprintf(full, sizeof full, "%s@%s", name, kernel_level_name(l));
        if (kernel_set_level(l, &e)) {
            fprintf(stderr, "%s: %s\n", full, e.msg); /* l <= the level chosen: cannot be */
            abort();
        }
        test_run(full, fn);
        if (l >= KL_AVX512 && amx && kernel_amx_available()) {
            snprintf(full, sizeof full, "%s@%s+amx", name, kernel_level_name(l));
            kernel_set_amx(1);
            test_run(full, fn);
            kernel_set_amx(0);
        }
    }
    kernel_set_amx(amx);
    kernel_set_level(top, NULL);
}
#define RUN_LEVELS(fn) run_levels(#fn, fn)

#endif
