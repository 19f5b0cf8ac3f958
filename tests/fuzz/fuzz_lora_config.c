/* libFuzzer harness for a peft adapter's adapter_config.json: arbitrary
 * bytes in that file must make lora_config_load read a LoRA config or
 * refuse it with a message naming the file and field, never crash; a
 * config it reads then attaches to a tiny Phi-3-shaped training decoder
 * (fused qkv_proj / gate_up_proj: target sets that split a fused module
 * are refused with a message) or is refused by lora_config_check. Also
 * the bytes as a --lora-targets list. Built and run by scripts/fuzz.sh
 * (not by make test). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "train/decoder_train.h"
#include "train/lora.h"
#include "fuzz_tmp.h"

static char *g_dir, *g_path;

static void cleanup(void) {
    Err e;
    file_remove_tree(g_dir, &e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_dir) {
        g_dir = fuzz_tmpdir("lora");
        g_path = path_join(g_dir, "adapter_config.json");
        atexit(cleanup);
    }
    FILE *f = fopen(g_path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f)) abort();
    Err e;
    e.msg[0] = 0;
    LoraConfig c;
    if (lora_config_load(g_dir, &c, &e)) {
        if (!e.msg[0]) abort(); /* a refusal says why */
    } else if (c.r <= 64) {     /* keep the adapter small */
        ModelConfig mc;
        memset(&mc, 0, sizeof mc);
        mc.arch = ARCH_PHI3, mc.hidden_size = 8, mc.intermediate_size = 8, mc.n_layers = 1, mc.n_heads = 2;
        mc.n_kv_heads = 1, mc.head_dim = 4, mc.vocab_size = 8, mc.norm_eps = 1e-5f, mc.rope.theta = 10000;
        mc.max_pos = 16;
        arch_config_quirks(&mc);
        TrainDecoder m;
        if (td_init(&m, &mc, &e)) abort();
        e.msg[0] = 0;
        if (td_lora_attach(&m, &c, &e) && !e.msg[0]) abort();
        td_free(&m);
    }
    char *list = malloc(size + 1);
    memcpy(list, data, size);
    list[size] = 0;
    unsigned t;
    e.msg[0] = 0;
    if (lora_targets_parse(list, &t, &e) && !e.msg[0]) abort();
    free(list);
    return 0;
}
