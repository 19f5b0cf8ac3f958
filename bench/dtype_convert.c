/* CPU time per value of dequantize_row for F16 and BF16 rows to f32 (what
 * loading F16/BF16 Hugging Face weights into f32 and `aloe convert` spend
 * per weight): 200 passes over a 1 Mi-value row (2 MiB in, 4 MiB out).
 * Usage: dtype_convert f16|bf16  (build: make build/bench/dtype_convert). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "formats/dtype.h"

int main(int argc, char **argv) {
    if (argc != 2 || (strcmp(argv[1], "f16") && strcmp(argv[1], "bf16")))
        return fprintf(stderr, "usage: dtype_convert f16|bf16\n"), 2;
    const int t = strcmp(argv[1], "f16") ? DT_BF16 : DT_F16;
    const int64_t n = 1 << 20;
    const int reps = 200;
    uint16_t *src = malloc((size_t)n * 2);
    float *dst = malloc((size_t)n * 4);
    if (!src || !dst) return fprintf(stderr, "out of memory\n"), 1;
    /* normal values of both signs: the common case in weights */
    for (int64_t i = 0; i < n; i++) src[i] = (uint16_t)((i & 1) << 15 | (0x2c00 + (i * 7919) % 0x1800));
    double check = 0;
    clock_t c0 = clock();
    for (int r = 0; r < reps; r++) {
        dequantize_row(t, src, dst, n);
        check += dst[r];
    }
    double sec = (double)(clock() - c0) / CLOCKS_PER_SEC;
    printf("%s: %.3f ns/value (CPU time; checksum %g)\n", argv[1], sec * 1e9 / ((double)n * reps), check);
    free(src);
    free(dst);
    return 0;
}
