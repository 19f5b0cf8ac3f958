/* llama.cpp's per-tensor choice under each preset for the architectures
 * issue 13 added: tests/data/gguf-mix/arch-types.txt holds the type
 * llama-quantize gave every tensor of OLMo, OLMo 2, Gemma 2 and Phi-3
 * models 256 wide with 8 layers (widths that are whole K-quant blocks, so
 * the rules show rather than the fallbacks the 32-wide fixtures take:
 * Phi-3's fused attn_qkv, Gemma 2's tied head, the layer pattern of
 * attn_v / ffn_down). convert_mix_tensor_type must choose the same for
 * every tensor (each line gives its name, ne[0] and dimensions). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/dtype.h"
#include "model/convert_mix.h"
#include "test.h"

#define TYPES "tests/data/gguf-mix/arch-types.txt"
#define N_LAYERS 8
#define N_GQA 2 /* 4 heads over 2 key/value heads */

static void test_arch_rules_match_llamacpp(void) {
    FILE *f = fopen(TYPES, "r");
    CHECK_MSG(f != NULL, "%s: cannot read", TYPES);
    char line[4096], arch[32], preset[32], name[128], types[2048];
    long ne0;
    int ndim, checked = 0, wrong = 0, lines = 0;
    /* has_output per architecture: whether its file has output.weight */
    char untied[4][32];
    int n_untied = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%31s %31s %127s", arch, preset, name) == 3 && !strcmp(name, "output.weight") &&
            n_untied < 4 && (!n_untied || strcmp(untied[n_untied - 1], arch)))
            snprintf(untied[n_untied++], sizeof untied[0], "%s", arch);
    rewind(f);
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        CHECK_MSG(sscanf(line, "%31s %31s %127s %ld %d %2047s", arch, preset, name, &ne0, &ndim, types) == 6,
                  "%s: bad line %s", TYPES, line);
        lines++;
        Err e;
        int type;
        CHECK_OK(convert_mix_parse(preset, &type, &e), &e);
        int has_output = 0;
        for (int i = 0; i < n_untied; i++) has_output |= !strcmp(untied[i], arch);
        ConvertMix m = {.ftype = convert_mix_file_type(type), .base = convert_mix_default_type(type),
                        .n_layer = N_LAYERS, .n_gqa = N_GQA, .n_expert = 0, .has_output = has_output};
        int is_blk = !strncmp(name, "blk.", 4), layer = 0;
        for (char *tok = strtok(types, ","); tok; tok = strtok(NULL, ","), layer++) {
            char full[160];
            if (is_blk) snprintf(full, sizeof full, "blk.%d.%s", layer, name + 4);
            else snprintf(full, sizeof full, "%s", name);
            int want = dtype_from_name(tok), got = convert_mix_tensor_type(&m, full, ndim, ne0);
            checked++;
            if (got != want && wrong++ < 10)
                printf("  %s %s %s: aloe chooses %s, llama-quantize %s\n", arch, preset, full, dtype_name(got), tok);
        }
        CHECK_MSG(!is_blk || layer == N_LAYERS, "%s %s %s: %d layers listed", arch, preset, name, layer);
    }
    fclose(f);
    printf("  %d tensor choices (%d lines), %d differ from llama-quantize's\n", checked, lines, wrong);
    CHECK(lines > 500);
    CHECK(n_untied == 3); /* OLMo, OLMo 2 and Phi-3 have their own head; Gemma 2 ties it */
    CHECK_EQ_INT(wrong, 0);
}

int main(void) {
    RUN(test_arch_rules_match_llamacpp);
    return test_summary();
}
