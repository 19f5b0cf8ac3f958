/* libFuzzer harness for the architecture table's name matching: tensor
 * names come from untrusted files (safetensors headers, GGUF tensor
 * infos) and are matched against the table's patterns (arch_kind_of_hf,
 * arch_kind_of_gguf, hf_name_from_gguf, gguf_name_from_hf). A name that
 * matches must translate and translate back to itself, with the layer it
 * was read with; nothing may read past the name or overflow the layer
 * number. Built and run by scripts/fuzz.sh; seeds in
 * tests/data/fuzz/arch_names. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/arch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *name = malloc(size + 1);
    memcpy(name, data, size);
    name[size] = 0; /* names are NUL-terminated where they reach the table */
    char out[160], back[160];
    int layer;
    int k = arch_kind_of_hf(name, &layer);
    if (k >= 0) {
        if (layer < 0 || gguf_name_from_hf(name, out, sizeof out) || hf_name_from_gguf(out, back, sizeof back) ||
            strcmp(back, name))
            abort();
    }
    k = arch_kind_of_gguf(name, &layer);
    if (k >= 0) {
        if (layer < 0 || hf_name_from_gguf(name, out, sizeof out) || gguf_name_from_hf(out, back, sizeof back) ||
            strcmp(back, name))
            abort();
    }
    free(name);
    return 0;
}
