/* libFuzzer harness for config.json and model loading: the bytes are
 * parsed as config.json and generation_config.json on the buffer
 * (hf_config_parse, hf_genconfig_parse), and -- when the shared tiny-qwen2
 * fixture is found ($ALOE_SHARED or ../shared) -- written as config.json
 * beside its model.safetensors and loaded (model_load_hf), so the checks
 * before allocation (layer count, shapes, overflow-checked sizes) see every
 * mutant. Nothing may crash, abort on an allocation or overflow. Built and
 * run by scripts/fuzz.sh; seeds in tests/data/fuzz/config. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "fuzz_tmp.h"
#include "formats/hfdir.h"
#include "model/decoder.h"

static char *dir, *cfg_path;

static void cleanup(void) {
    char *w = path_join(dir, "model.safetensors");
    unlink(w), unlink(cfg_path), rmdir(dir);
    free(w), free(cfg_path), free(dir);
}

/* A temporary model directory whose weights are the fixture's, or NULL. */
static void setup(void) {
    static int done;
    if (done) return;
    done = 1;
    const char *shared = getenv("ALOE_SHARED");
    char *src = xasprintf("%s/fixtures/models/tiny-qwen2/model.safetensors", shared ? shared : "../shared");
    char *abs = realpath(src, NULL);
    free(src);
    if (!abs) return;
    dir = fuzz_tmpdir("config");
    char *w = path_join(dir, "model.safetensors");
    if (symlink(abs, w)) abort();
    free(w), free(abs);
    cfg_path = path_join(dir, "config.json");
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    char *text = xstrndup((const char *)data, size);
    Err e;
    ModelConfig c;
    GenConfig g;
    hf_config_parse(text, "fuzz/config.json", &c, &e);
    gen_config_init(&g);
    hf_genconfig_parse(text, "fuzz/generation_config.json", &g, &e);
    if (dir) {
        FILE *f = fopen(cfg_path, "wb");
        if (!f) abort();
        fwrite(data, 1, size, f);
        fclose(f);
        Model *m = model_load_hf(dir, 1, &e);
        if (m) model_free(m);
    }
    free(text);
    return 0;
}
