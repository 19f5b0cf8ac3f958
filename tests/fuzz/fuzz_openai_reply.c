/* libFuzzer harness for what an OpenAI-compatible endpoint sends back: the
 * same bytes go through the chat-completion parser, the embeddings parser
 * (for 1 to 3 inputs) and the error-body parser. Each must accept or reject
 * with a message, never crash; an accepted chat text is a whole C string, an
 * embeddings answer has a positive dimension, and an error snippet is one
 * line without control characters. Built and run by scripts/fuzz.sh (not by
 * make test). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llm/openai.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *body = (const char *)data;
    Err e;
    e.msg[0] = 0;
    LlmReply r;
    if (llm_openai_parse_chat(body, size, &r, &e) == 0) {
        if (!r.text) abort();
        (void)strlen(r.text);
        llm_reply_free(&r);
    } else if (!e.msg[0]) {
        abort();
    }
    for (int n = 1; n <= 3; n++) {
        float *v = NULL;
        int dim = 0;
        e.msg[0] = 0;
        if (llm_openai_parse_embeddings(body, size, n, &v, &dim, &e) == 0) {
            if (!v || dim <= 0) abort();
            volatile float sum = 0;
            for (size_t i = 0; i < (size_t)n * dim; i++) sum += v[i]; /* every slot was allocated */
            free(v);
        } else if (!e.msg[0] || v) {
            abort();
        }
    }
    char *t = llm_openai_error_text(body, size);
    for (const char *p = t; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) abort();
    free(t);
    return 0;
}
