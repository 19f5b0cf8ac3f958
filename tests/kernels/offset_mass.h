/* offset_mass: the part of a quantised dot's float bound that the weights'
 * offsets add. Where a kernel sums a block's products with the weights'
 * integer offset folded in, scale (q + o) y, and takes o·scale·sum(y)
 * back separately (Q4_0's 8, the T16 layouts' Q8_0 + 128, the K-quants'
 * mins), its float terms carry, beside sum|w y|, twice sum_j o_j
 * sum_{i in j}|y_i| over the values sharing one offset (groups of
 * `group`), with o_j (in weight units) <= 2 max_j|w| (the offset is at
 * most the largest weight plus one step). The callers scale it as their
 * analyses say. */
#ifndef ALOE_TESTS_KERNELS_OFFSET_MASS_H
#define ALOE_TESTS_KERNELS_OFFSET_MASS_H

#include <math.h>

static inline double offset_mass_of(const float *w, const float *x, long n, int group) {
    double s = 0;
    for (long b = 0; b < n / group; b++) {
        double mw = 0, sx = 0;
        for (int i = 0; i < group; i++) mw = fmax(mw, fabs(w[group * b + i])), sx += fabs(x[group * b + i]);
        s += 2 * (2 * mw) * sx;
    }
    return s;
}

#endif
