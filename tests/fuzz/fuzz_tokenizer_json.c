/* libFuzzer harness: arbitrary bytes as tokenizer.json must load or fail
 * with an error, never crash; a tokenizer that loads must encode and
 * decode a few texts (including special-token text and invalid UTF-8).
 * Built and run by scripts/fuzz.sh (not by make test), seeded from
 * tests/data/tok/fuzz-seeds.
 * The corpus directory (build-fuzz/) grows: keep it out of the repository. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Err e;
    Tokenizer *t = tok_load_hf_mem((const char *)data, size, "fuzz.json", &e);
    if (!t) return 0;
    static const char *const texts[] = {"Hello world", " a  b\n\n", "<|im_end|>x<s>", "caf\xc3\xa9 \xff\xfe 12345",
                                        ""};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t *ids;
        int n;
        if (tok_encode(t, texts[i], 1, 1, &ids, &n, &e) == 0) {
            char *d = tok_decode(t, ids, n, 0, &e);
            free(d);
            TokStream s;
            StrBuf out;
            sb_init(&out);
            tok_stream_init(&s, t, 1);
            for (int k = 0; k < n; k++) tok_stream_push(&s, ids[k], &out, &e);
            tok_stream_flush(&s, &out);
            sb_free(&out);
            free(ids);
        }
    }
    tok_free(t);
    return 0;
}
