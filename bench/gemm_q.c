/* The prefill's matmul on quantised weights alone: matmul_forward with
 * the integer GEMM (kernels/gemm_q.c, gemm_q_grp.c) against dequantise +
 * sgemm (matmul_prefill_int8(0)), per type, on one W of rows x cols and n
 * rows of x. One thread, no pool: the process's CPU time, which a busy
 * shared machine does not inflate by descheduling. Prints per type the
 * median milliseconds of each path, GMAC/s and the ratio sgemm / int8
 * (> 1: the integer GEMM is faster); where the CPU has AMX the integer
 * GEMM is timed with the AMX tiles (gemm_q_amx.c) and without them (the
 * VNNI micro-kernels), and the ratio vnni / amx printed too. ALOE_CPU=avx2
 * times that level.
 * Usage: gemm_q [ROWS] [COLS] [N] [RUNS] [TYPE...] (types by name: q5_k) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/mem.h"
#include "formats/dtype.h"
#include "kernels/cpu.h"
#include "kernels/dispatch.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_ms(float *y, const float *x, int n, const QMat *w, int runs) {
    double t[64];
    if (runs > 64) runs = 64;
    matmul_forward(NULL, y, x, n, w); /* warm: caches, page faults */
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        matmul_forward(NULL, y, x, n, w);
        t[r] = (now() - t0) * 1e3;
    }
    qsort(t, (size_t)runs, sizeof t[0], cmp_double);
    return t[runs / 2];
}

int main(int argc, char **argv) {
    int rows = argc > 1 ? atoi(argv[1]) : 2048, cols = argc > 2 ? atoi(argv[2]) : 2048;
    int n = argc > 3 ? atoi(argv[3]) : 256, runs = argc > 4 ? atoi(argv[4]) : 5;
    static const char *all[] = {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl", "q4_k", "q5_k", "q6_k", "q2_k", "q3_k", "iq4_xs"};
    const char **names = argc > 5 ? (const char **)argv + 5 : all;
    int nt = argc > 5 ? argc - 5 : (int)(sizeof all / sizeof all[0]);
    if (rows <= 0 || cols <= 0 || cols % 256 || n <= 0 || runs <= 0) {
        fprintf(stderr, "usage: gemm_q [ROWS] [COLS (multiple of 256)] [N] [RUNS] [TYPE...]\n");
        return 2;
    }
    float *wf = xmalloc((size_t)rows * cols * sizeof(float)), *x = xmalloc((size_t)n * cols * sizeof(float));
    float *y = xmalloc((size_t)n * rows * sizeof(float));
    for (long i = 0; i < (long)rows * cols; i++) wf[i] = (float)((i * 2654435761u >> 8) % 2001) / 1000.0f - 1.0f;
    for (long i = 0; i < (long)n * cols; i++) x[i] = (float)((i * 40503u >> 4) % 1001) / 500.0f - 1.0f;
    printf("W %d x %d, %d rows of x, 1 thread, kernel level %s, CPU ms (median of %d)\n", rows, cols, n,
           kernel_level_name(kernel_level()), runs);
    for (int k = 0; k < nt; k++) {
        int t = dtype_from_name(names[k]);
        if (t == DT_INVALID || !kernel_type_ok(t)) {
            fprintf(stderr, "gemm_q: unknown type %s\n", names[k]);
            return 2;
        }
        size_t rb = dtype_nbytes(t, cols);
        char *wq = xmalloc(rb * (size_t)rows);
        for (int r = 0; r < rows; r++) quantize_row(t, wf + (long)r * cols, wq + r * rb, cols);
        QMat w = {t, wq, rows, cols};
        double ti = median_ms(y, x, n, &w, runs), tv = 0;
        if (kernel_amx()) {
            int amx = kernel_set_amx(0);
            tv = median_ms(y, x, n, &w, runs);
            kernel_set_amx(amx);
        }
        int was = matmul_prefill_int8(0);
        double ts = median_ms(y, x, n, &w, runs);
        matmul_prefill_int8(was);
        double mac = (double)rows * cols * n;
        printf("%-7s int8%s %8.2f ms %6.1f GMAC/s   sgemm %8.2f ms %6.1f GMAC/s   sgemm/int8 %.2f", names[k],
               tv > 0 ? " (amx)" : "", ti, mac / ti * 1e-6, ts, mac / ts * 1e-6, ts / ti);
        if (tv > 0) printf("   vnni %8.2f ms %6.1f GMAC/s   vnni/amx %.2f", tv, mac / tv * 1e-6, tv / ti);
        printf("\n");
        free(wq);
    }
    free(wf), free(x), free(y);
    return 0;
}
