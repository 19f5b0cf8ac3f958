/* libFuzzer harness for the GGUF -> model path: the model settings
 * (gguf_model_config), the tokenizer from tokenizer.ggml.* metadata
 * (tok_from_gguf, then encode/decode), the chat template key, and the whole
 * decoder load (model_from_gguf: layer count, shapes, conversions). Any
 * input must load or fail with an error, never crash, overflow or allocate
 * from an unchecked size. Built and run by scripts/fuzz.sh; seeds in
 * tests/data/fuzz/gguf_model (tiny complete models made by
 * tests/fuzz/seedgen_gguf_model.c, and the numel-overflow finding). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/hfdir.h"
#include "model/decoder.h"
#include "model/model_internal.h"
#include "tok/chat_template.h"
#include "tok/tok.h"

static void exercise_tokenizer(const Gguf *g) {
    Err e;
    Tokenizer *t = tok_from_gguf(g, &e);
    if (!t) return;
    static const char *const texts[] = {"<|user|>\nHello<|end|>\n<|assistant|>\n", "the  the\n\n", "<s></s>x",
                                        "caf\xc3\xa9 \xff 12", ""};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t *ids;
        int n;
        if (tok_encode(t, texts[i], 1, 1, &ids, &n, &e)) continue;
        free(tok_decode(t, ids, n, 0, &e));
        free(ids);
    }
    const char *tpl;
    if (gguf_find_key(g, "tokenizer.chat_template") && !gguf_get_str(g, "tokenizer.chat_template", &tpl, &e)) {
        ChatTemplate *ct = chat_template_detect(tpl, "<s>", "</s>", &e);
        chat_template_free(ct);
    }
    tok_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Err e;
    Gguf *g = gguf_open_mem(data, size, "fuzz.gguf", &e);
    if (!g) return 0;
    ModelConfig c;
    gguf_model_config(g, &c, &e);
    exercise_tokenizer(g);
    Model *m = model_from_gguf(g, 1, &e); /* takes g over */
    if (m) model_free(m);
    return 0;
}
