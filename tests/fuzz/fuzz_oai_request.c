/* libFuzzer harness for the server's request parser (llm/oai_wire.h): the
 * body of every POST to `aloe serve` is untrusted. The first byte picks the
 * endpoint ('c' chat, 'p' completions, anything else embeddings), the rest
 * is the body. A parse either fails with a message and the field named, or
 * gives a request whose lists hold what their counts say and whose values
 * are within the documented ranges; whatever was parsed is written back
 * into a response and a stream chunk, which must not crash either. Built
 * and run by scripts/fuzz.sh; seeds in tests/data/fuzz/oai_request. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llm/oai_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    OaiKind kind = data[0] == 'c' ? OAI_CHAT : data[0] == 'p' ? OAI_COMPLETION : OAI_EMBEDDINGS;
    OaiRequest r;
    Err e;
    int rc = oai_request_parse(kind, (const char *)data + 1, size - 1, &r, &e);
    if (rc) {
        if (!e.msg[0] || !r.param[0]) abort(); /* every failure names its field */
        oai_request_free(&r);
        return 0;
    }
    if (!r.model || !*r.model || r.n < 1 || r.n > OAI_MAX_N) abort();
    if (r.top_logprobs < 0 || r.top_logprobs > OAI_MAX_TOP_LOGPROBS || r.n_stop > OAI_MAX_STOP) abort();
    if (r.temperature > 2 || (r.top_p != -1 && (r.top_p <= 0 || r.top_p > 1))) abort();
    if (kind == OAI_CHAT && r.n_messages < 1) abort();
    if (kind == OAI_COMPLETION && !r.prompt == !r.prompt_ids) abort();
    if (kind == OAI_EMBEDDINGS && r.n_input < 1) abort();
    StrBuf b;
    sb_init(&b);
    size_t total = 0;
    for (int i = 0; i < r.n_messages; i++) total += strlen(r.messages[i].role) + strlen(r.messages[i].content);
    for (int i = 0; i < r.n_stop; i++) total += strlen(r.stop[i]);
    if (r.stop && r.stop[r.n_stop]) abort();
    for (int i = 0; i < r.n_input; i++) total += strlen(r.input[i]);
    for (int i = 0; i < r.n_bias; i++)
        if (r.bias[i].id < 0 || !(r.bias[i].bias >= -100 && r.bias[i].bias <= 100)) abort();
    const char *text = r.n_messages ? r.messages[r.n_messages - 1].content : r.prompt ? r.prompt : "";
    json_t *ch = oai_chunk(kind == OAI_EMBEDDINGS ? OAI_CHAT : kind, "id", r.model, 0, 0, "assistant", text, "stop",
                           NULL);
    if (!ch) abort();
    oai_sse_event(&b, ch);
    json_decref(ch);
    (void)total;
    sb_free(&b);
    oai_request_free(&r);
    return 0;
}
