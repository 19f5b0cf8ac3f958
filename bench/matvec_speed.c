/* Decode-path kernel speed: one activation times a weight matrix (the
 * matrix-vector products that dominate decoding), per weight type, in GB/s
 * of weights read. The matrices (rows x cols, default 8192 x 2048, as a
 * Llama 3.2 1B FFN projection) are cycled through `copies` distinct copies
 * (default: enough for 256 MB) so that they come from memory, not cache;
 * copies = 1 with a small matrix measures the in-cache compute rate. The
 * best of 5 rounds is printed: wall time, and for one thread also CPU
 * time (which a busy machine disturbs less).
 * Usage: matvec_speed THREADS [ROWS COLS COPIES [TYPES]] (TYPES: a comma
 * list such as q5_k,q6_k; default all); built and run by
 * bench/matvec_speed.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "kernels/matmul.h"

static double now(clockid_t clk) {
    struct timespec t;
    clock_gettime(clk, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void run(int type, int threads, int rows, int cols, int copies) {
    size_t rb = dtype_nbytes(type, cols), mat = rb * (size_t)rows;
    if (!rb) {
        printf("%-5s: rows of %d values are not whole blocks\n", dtype_name(type), cols);
        return;
    }
    if (copies <= 0) copies = (int)((256u << 20) / mat) + 1;
    char *w = xaligned_alloc(mat * (size_t)copies + 64);
    float *row = xmalloc((size_t)cols * sizeof(float)), *x = xmalloc((size_t)cols * sizeof(float));
    float *y = xmalloc((size_t)rows * sizeof(float));
    for (int i = 0; i < cols; i++) row[i] = (float)((i * 7919) % 13 - 6) / 10, x[i] = (float)((i * 31) % 17 - 8) / 8;
    for (long r = 0; r < (long)rows * copies; r++) quantize_row(type, row, w + (size_t)r * rb, cols);
    ThreadPool *tp = tp_create(threads);
    int reps = (int)((512u << 20) / mat) + 1;
    double best_wall = 1e30, best_cpu = 1e30;
    for (int round = 0; round < 5; round++) {
        double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
        for (int k = 0; k < reps; k++) {
            QMat m = {type, w + (size_t)(k % copies) * mat, rows, cols};
            matmul_forward(tp, y, x, 1, &m);
        }
        double wall = (now(CLOCK_MONOTONIC) - t0) / reps, cpu = (now(CLOCK_PROCESS_CPUTIME_ID) - c0) / reps;
        best_wall = wall < best_wall ? wall : best_wall;
        best_cpu = cpu < best_cpu ? cpu : best_cpu;
    }
    printf("%-5s %d thread(s) %dx%d x%d: %8.1f us, %6.2f GB/s", dtype_name(type), tp_size(tp), rows, cols, copies,
           best_wall * 1e6, (double)mat / best_wall / 1e9);
    if (tp_size(tp) == 1) printf("  (CPU time: %6.2f GB/s)", (double)mat / best_cpu / 1e9);
    printf("\n");
    tp_free(tp);
    free(w), free(row), free(x), free(y);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int rows = argc > 2 ? atoi(argv[2]) : 8192, cols = argc > 3 ? atoi(argv[3]) : 2048;
    int copies = argc > 4 ? atoi(argv[4]) : 0;
    static const int types[] = {DT_F32, DT_F16, DT_BF16, DT_Q8_0, DT_Q4_0, DT_Q4_0_G16, DT_Q4_0_G4, DT_Q4_K, DT_Q5_K, DT_Q6_K, DT_Q2_K, DT_Q3_K, DT_IQ4_XS, DT_Q4_1, DT_Q5_0, DT_Q5_1, DT_IQ4_NL, DT_Q5_0_G4, DT_Q5_1_G4, DT_Q4_1_G4, DT_IQ4_NL_G4, DT_Q4_K_PAIRS, DT_Q5_K_PAIRS, DT_Q4_0_T16, DT_Q8_0_T16};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        if (argc > 5) { /* ",LIST," contains ",name," */
            char *list = xasprintf(",%s,", argv[5]), *name = xasprintf(",%s,", dtype_name(types[i]));
            int want = strstr(list, name) != NULL;
            free(list), free(name);
            if (!want) continue;
        }
        run(types[i], threads, rows, cols, copies);
    }
    return 0;
}
