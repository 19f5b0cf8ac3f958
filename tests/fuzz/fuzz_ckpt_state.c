/* libFuzzer harness for a checkpoint's trainer_state.json: arbitrary bytes
 * in that file must make ckpt_verify accept the checkpoint or refuse it
 * with a message, never crash, and never look outside the directory. The
 * directory also holds a small optimizer.safetensors of step 3 (2 x 4
 * floats). Built and run by scripts/fuzz.sh (not by make test). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "formats/safetensors.h"
#include "train/checkpoint.h"
#include "fuzz_tmp.h"

static char *g_dir, *g_state;

static void cleanup(void) {
    Err e;
    file_remove_tree(g_dir, &e);
}

static void setup(void) {
    g_dir = fuzz_tmpdir("ckpt");
    g_state = path_join(g_dir, "trainer_state.json");
    atexit(cleanup);
    static const float m[4] = {1, 2, 3, 4};
    TensorView v[2];
    memset(v, 0, sizeof v);
    const char *names[2] = {"exp_avg", "exp_avg_sq"};
    for (int i = 0; i < 2; i++) {
        v[i].name = names[i], v[i].dtype = DT_F32, v[i].ndim = 1, v[i].data = m, v[i].nbytes = sizeof m;
        for (int d = 0; d < TENSOR_MAX_DIMS; d++) v[i].shape[d] = 1;
        v[i].shape[0] = 4;
    }
    const char *const meta[] = {"format", "pt", "step", "3", "adamw_step", "3", "numel", "4", NULL};
    char *op = path_join(g_dir, "optimizer.safetensors");
    Err e;
    if (st_write(op, v, 2, meta, &e)) abort();
    free(op);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_dir) setup();
    FILE *f = fopen(g_state, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f)) abort();
    Err e;
    e.msg[0] = 0;
    json_t *state = NULL;
    long step = size ? (long)(data[0] % 5) - 1 : 3; /* -1 (any) .. 3 */
    if (ckpt_verify(g_dir, step, &state, &e)) {
        if (!e.msg[0] || state) abort();
    } else {
        if (!state) abort();
        json_decref(state);
    }
    return 0;
}
