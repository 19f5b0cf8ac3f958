/* The decode dots' prefetch modes against each other (dispatch.h:
 * ALOE_PREFETCH): one weight matrix from memory times one activation
 * (matmul_forward, as a decode step), the modes taking turns call by call,
 * their order rotating, so that the host's memory bandwidth -- which on a
 * shared machine moves by the second -- weighs on every mode alike; then
 * GB/s of weights per mode and its ratio to the first mode. Runs minutes
 * apart on such a host differ by more than the modes do: only this kind
 * of interleaving ranks them.
 * Usage: prefetch_ab [THREADS ROWS COLS CALLS TYPES MODES]
 *   defaults: 2 65536 2048 16 bf16,f16,q8_0,q4_0,q4_k,q5_k,q6_k auto,l1,l2,off
 * (65536 x 2048 bf16 is 256 MB: far past the caches). A Q4_0 matrix is
 * laid out as a model loader would (kernel_weight_type). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "kernels/dispatch.h"
#include "kernels/matmul.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static int mode_of(const char *s) {
    for (int m = KPF_OFF; m <= KPF_AUTO; m++)
        if (!strcmp(s, kernel_prefetch_name(m))) return m;
    return -1;
}

static void run(ThreadPool *tp, int type, int rows, int cols, int calls, const int *modes, int nm) {
    int t = kernel_weight_type(type, cols);
    size_t rb = dtype_nbytes(t, cols), mat = rb * (size_t)rows;
    if (!rb) {
        printf("%-5s: rows of %d values are not whole blocks\n", dtype_name(type), cols);
        return;
    }
    char *w = xaligned_alloc(mat + 64);
    float *row = xmalloc((size_t)cols * sizeof(float)), *x = xmalloc((size_t)cols * sizeof(float));
    float *y = xmalloc((size_t)rows * sizeof(float));
    for (int i = 0; i < cols; i++) row[i] = (float)((i * 7919) % 13 - 6) / 10, x[i] = (float)((i * 31) % 17 - 8) / 8;
    for (long r = 0; r < rows; r++) quantize_row(t, row, w + (size_t)r * rb, cols);
    QMat m = {t, w, rows, cols};
    double secs[8] = {0};
    matmul_forward(tp, y, x, 1, &m); /* warm-up: pages, scratch */
    for (int c = 0; c < calls; c++)
        for (int k = 0; k < nm; k++) {
            int i = (k + c) % nm;
            kernel_set_prefetch(modes[i]);
            double t0 = now();
            matmul_forward(tp, y, x, 1, &m);
            secs[i] += now() - t0;
        }
    printf("%-8s", dtype_name(t));
    for (int i = 0; i < nm; i++)
        printf("  %s %6.2f GB/s (%.2fx)", kernel_prefetch_name(modes[i]), (double)mat * calls / secs[i] / 1e9,
               secs[0] / secs[i]);
    printf("\n");
    free(w), free(row), free(x), free(y);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, rows = argc > 2 ? atoi(argv[2]) : 65536;
    int cols = argc > 3 ? atoi(argv[3]) : 2048, calls = argc > 4 ? atoi(argv[4]) : 16;
    char *types = xstrdup(argc > 5 ? argv[5] : "bf16,f16,q8_0,q4_0,q4_k,q5_k,q6_k");
    char *mlist = xstrdup(argc > 6 ? argv[6] : "auto,l1,l2,off");
    int modes[8], nm = 0;
    for (char *s = strtok(mlist, ","); s && nm < 8; s = strtok(NULL, ",")) {
        if ((modes[nm] = mode_of(s)) < 0) {
            fprintf(stderr, "prefetch_ab: mode %s: expected auto, l1, l2 or off\n", s);
            return 2;
        }
        nm++;
    }
    int was = kernel_prefetch();
    ThreadPool *tp = tp_create(threads);
    printf("%d thread(s), %d x %d, %d calls per mode, alternating\n", tp_size(tp), rows, cols, calls);
    char *save = NULL;
    for (char *s = strtok_r(types, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        int t = dtype_from_name(s);
        if (t == DT_INVALID) {
            fprintf(stderr, "prefetch_ab: type %s: unknown\n", s);
            return 2;
        }
        run(tp, t, rows, cols, calls, modes, nm);
    }
    kernel_set_prefetch(was);
    tp_free(tp);
    free(types), free(mlist);
    return 0;
}
