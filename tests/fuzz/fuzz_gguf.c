/* libFuzzer harness for the GGUF reader: any input must either be rejected
 * with an error or give views that lie inside the input. Built and run by
 * scripts/fuzz.sh (not by make test). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/hfdir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Err e;
    Gguf *g = gguf_open_mem(data, size, "fuzz", &e);
    if (!g) return 0;
    const uint8_t *end = data + size;
    for (int i = 0; i < gguf_n_tensors(g); i++) {
        const TensorView *t = gguf_tensor(g, i);
        if ((const uint8_t *)t->data < data || (const uint8_t *)t->data + t->nbytes > end) abort();
        if (tensor_numel(t) <= 4096) {
            float *f = tensor_to_f32_alloc(t, &e);
            free(f);
        }
        if (gguf_find_tensor(g, t->name) == NULL) abort();
    }
    for (int i = 0; i < gguf_n_kv(g); i++) {
        const GgufKV *kv = gguf_kv(g, i);
        if (gguf_find_key(g, kv->key) == NULL) abort();
        if (kv->type == GGUF_ARRAY && kv->arr_type == GGUF_STRING)
            for (uint64_t j = 0; j < kv->n; j++)
                if ((const uint8_t *)kv->strs[j].s < data || (const uint8_t *)kv->strs[j].s + kv->strs[j].len > end)
                    abort();
        if (kv->type == GGUF_ARRAY && kv->arr_type != GGUF_STRING && kv->n > 0) {
            volatile double x = gguf_arr_f64(kv, kv->n - 1);
            (void)x;
        }
        int32_t *ai;
        float *af;
        uint64_t n;
        if (!gguf_get_arr_i32(g, kv->key, &ai, &n, &e)) free(ai);
        if (!gguf_get_arr_f32(g, kv->key, &af, &n, &e)) free(af);
    }
    ModelConfig c;
    gguf_model_config(g, &c, &e);
    gguf_close(g);
    return 0;
}
