/* The linear layers' GEMMs of one training step on a Qwen2.5-0.5B-shaped
 * layer, f32 (OpenBLAS sgemm on its own threads) against bf16 products
 * (kernels/gemm_bf16.h on a pool), per shape and pass: forward y = x·Wᵀ,
 * input gradient dx = dy·W, weight gradient dW += dyᵀ·x. Prints one line
 * per shape and pass: milliseconds (median of the runs) and GFLOP/s, and a
 * total per layer (q, k, v, o, gate, up, down). bench/train_bf16.sh runs it
 * beside PyTorch's autocast (bench/train_bf16.py) on the same shapes.
 * ALOE_CPU=avx2 (or gemm_bf16_use_dot's absence of BF16) times the portable path.
 * Usage: gemm_bf16 [T] [THREADS] [RUNS] */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/mem.h"
#include "kernels/gemm_bf16.h"
#include "kernels/threads.h"

/* One thread: the process's CPU time, which a busy shared machine does not
 * inflate by descheduling; more threads: wall time (workers spin between
 * tasks, so their CPU time overstates the work). */
static int cpu_clock;
static double now(void) {
    struct timespec t;
    clock_gettime(cpu_clock ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *randv(long n) {
    float *v = xaligned_alloc((size_t)n * 4);
    for (long i = 0; i < n; i++) v[i] = (float)((i * 2654435761u >> 8) % 2001) / 1000.0f - 1.0f;
    return v;
}

/* pass 0 forward, 1 dx, 2 dW; bf16 0/1: the median seconds of runs */
static double time_pass(ThreadPool *tp, int threads, int bf16, int pass, int T, int in, int out, int runs) {
    float *x = randv((long)T * in), *w = randv((long)out * in), *y = randv((long)T * out);
    double s[64];
    if (runs > 64) runs = 64;
    for (int r = 0; r <= runs; r++) { /* run 0: warm-up */
        if (!bf16) openblas_set_num_threads(threads); /* tp_create set it to 1 */
        double t0 = now();
        if (pass == 0) {
            if (bf16) gemm_bf16_sgemm(tp, 0, 1, T, out, in, 1, x, in, w, in, 0, y, out);
            else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, out, in, 1, x, in, w, in, 0, y, out);
        } else if (pass == 1) {
            if (bf16) gemm_bf16_sgemm(tp, 0, 0, T, in, out, 1, y, out, w, in, 0, x, in);
            else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, in, out, 1, y, out, w, in, 0, x, in);
        } else {
            if (bf16) gemm_bf16_sgemm(tp, 1, 0, out, in, T, 1, y, out, x, in, 1, w, in);
            else cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, T, 1, y, out, x, in, 1, w, in);
        }
        if (r) s[r - 1] = now() - t0;
    }
    free(x), free(w), free(y);
    qsort(s, (size_t)runs, sizeof s[0], cmp_double);
    return s[runs / 2];
}

int main(int argc, char **argv) {
    int T = argc > 1 ? atoi(argv[1]) : 512, threads = argc > 2 ? atoi(argv[2]) : 2, runs = argc > 3 ? atoi(argv[3]) : 5;
    static const struct { const char *name; int in, out, count; } shapes[] = {
        {"q/o 896x896", 896, 896, 2}, {"k/v 896x128", 896, 128, 2}, {"gate/up 896x4864", 896, 4864, 2},
        {"down 4864x896", 4864, 896, 1}};
    static const char *const passes[] = {"forward", "dx", "dW"};
    ThreadPool *tp = threads > 1 ? tp_create(threads) : NULL;
    cpu_clock = threads == 1;
    printf("gemm_bf16 bench: T=%d threads=%d runs=%d dot=%d (%s time)\n", T, threads, runs, gemm_bf16_dot(),
           cpu_clock ? "CPU" : "wall");
    double total[2] = {0, 0};
    for (int s = 0; s < 4; s++)
        for (int p = 0; p < 3; p++) {
            double t[2];
            for (int b = 0; b < 2; b++) t[b] = time_pass(tp, threads, b, p, T, shapes[s].in, shapes[s].out, runs);
            double flop = 2.0 * T * shapes[s].in * shapes[s].out;
            printf("%-18s %-8s f32 %7.2f ms %6.1f GFLOP/s   bf16 %7.2f ms %6.1f GFLOP/s   x%.2f\n", shapes[s].name,
                   passes[p], t[0] * 1e3, flop / t[0] * 1e-9, t[1] * 1e3, flop / t[1] * 1e-9, t[0] / t[1]);
            for (int b = 0; b < 2; b++) total[b] += t[b] * shapes[s].count;
        }
    printf("layer total (7 linears, 3 passes): f32 %.1f ms, bf16 %.1f ms, x%.2f\n", total[0] * 1e3, total[1] * 1e3,
           total[0] / total[1]);
    if (tp) tp_free(tp);
    return 0;
}
