/* libFuzzer harness for the safetensors reader: any input must either be
 * rejected with an error or give tensor views inside the input. Built and
 * run by scripts/fuzz.sh (not by make test). */
#include <stdint.h>
#include <stdlib.h>

#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Err e;
    SafeTensors *st = st_open_mem(data, size, "fuzz", &e);
    if (!st) return 0;
    for (int i = 0; i < st_count(st); i++) {
        const TensorView *t = st_tensor(st, i);
        if ((const uint8_t *)t->data < data || (const uint8_t *)t->data + t->nbytes > data + size) abort();
        if (st_find(st, t->name) != t) abort();
        if (tensor_numel(t) <= 4096) {
            float *f = tensor_to_f32_alloc(t, &e);
            free(f);
        }
    }
    st_metadata(st, "format");
    st_close(st);
    return 0;
}
