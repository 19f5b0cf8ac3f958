#include "llm/llm.h"

#include <stdlib.h>

LlmParams llm_params_default(void) {
    LlmParams p = {.temperature = -1, .top_p = -1, .max_tokens = 0, .has_seed = 0, .seed = 0, .sample = 0};
    return p;
}

void llm_reply_free(LlmReply *r) {
    free(r->text);
    free(r->finish_reason);
    r->text = r->finish_reason = NULL;
}

int llm_chat(LlmBackend *b, const LlmMessage *msgs, int n, const LlmParams *p, LlmReply *out, Err *e) {
    if (!b->chat) return err_set(e, ERR_UNSUPPORTED, "%s: this backend cannot chat", b->describe);
    return b->chat(b, msgs, n, p, out, e);
}

int llm_embed(LlmBackend *b, const char *const *texts, int n, float **vecs, int *dim, Err *e) {
    if (!b->embed) return err_set(e, ERR_UNSUPPORTED, "%s: this backend cannot embed", b->describe);
    return b->embed(b, texts, n, vecs, dim, e);
}

void llm_free(LlmBackend *b) {
    if (!b) return;
    if (b->destroy) b->destroy(b);
    free(b->describe);
    free(b->model);
    free(b);
}
