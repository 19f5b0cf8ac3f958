/* levels: runs a kernel test once per kernel level this CPU runs (up to
 * the level chosen at start, so ALOE_CPU caps it), as "name@level": one
 * binary checks every level's build of the kernels against the scalar
 * references (kernel_funcs.h: the references are always the scalar
 * build's). Header-only, for tests/kernels. */
#ifndef ALOE_TESTS_KERNELS_LEVELS_H
#define ALOE_TESTS_KERNELS_LEVELS_H

#include <stdio.h>
#include <stdlib.h>

#include "kernels/cpu.h"
#include "kernels/dispatch.h"
#include "test.h"

static inline void run_levels(const char *name, void (*fn)(void)) {
    int top = kernel_level();
    for (int l = KL_SCALAR; l <= top; l++) {
        Err e;
        char full[192];
        snprintf(full, sizeof full, "%s@%s", name, kernel_level_name(l));
        if (kernel_set_level(l, &e)) {
            fprintf(stderr, "%s: %s\n", full, e.msg); /* l <= the level chosen: cannot be */
            abort();
        }
        test_run(full, fn);
    }
    kernel_set_level(top, NULL);
}
#define RUN_LEVELS(fn) run_levels(#fn, fn)

#endif
