/* libFuzzer harness for sharded safetensors: the bytes are written as
 * model.safetensors.index.json beside two small valid shards and opened
 * with st_open; any index must open (with every tensor inside its shard's
 * map) or fail with an error. Shard names outside the directory must be
 * refused. Built and run by scripts/fuzz.sh; seeds in
 * tests/data/fuzz/st_index. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "fuzz_tmp.h"
#include "formats/safetensors.h"

static char *dir, *index_path, *shard[2];

static void cleanup(void) {
    for (int i = 0; i < 2; i++) unlink(shard[i]), free(shard[i]);
    unlink(index_path), rmdir(dir);
    free(index_path), free(dir);
}

static void setup(void) {
    if (dir) return;
    dir = fuzz_tmpdir("st-index");
    static const float a[4] = {1, 2, 3, 4}, b[2] = {5, 6}, c[6] = {7, 8, 9, 10, 11, 12};
    TensorView s1[] = {{.name = "a", .dtype = DT_F32, .ndim = 2, .shape = {2, 2, 1, 1}, .data = a, .nbytes = 16},
                       {.name = "b", .dtype = DT_F32, .ndim = 1, .shape = {2, 1, 1, 1}, .data = b, .nbytes = 8}};
    TensorView s2[] = {{.name = "c", .dtype = DT_F32, .ndim = 2, .shape = {3, 2, 1, 1}, .data = c, .nbytes = 24}};
    Err e;
    shard[0] = path_join(dir, "model-00001-of-00002.safetensors");
    shard[1] = path_join(dir, "model-00002-of-00002.safetensors");
    if (st_write(shard[0], s1, 2, NULL, &e) || st_write(shard[1], s2, 1, NULL, &e)) abort();
    index_path = path_join(dir, "model.safetensors.index.json");
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    FILE *f = fopen(index_path, "wb");
    if (!f) abort();
    fwrite(data, 1, size, f);
    fclose(f);
    Err e;
    SafeTensors *st = st_open(index_path, &e);
    if (!st) return 0;
    for (int i = 0; i < st_count(st); i++) {
        const TensorView *t = st_tensor(st, i);
        if (st_find(st, t->name) != t) abort();
        float *v = tensor_to_f32_alloc(t, &e);
        free(v);
        (void)st_file_of(st, t);
    }
    st_close(st);
    return 0;
}
