#include "infer/generate.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

void gen_params_default(GenParams *p) {
    memset(p, 0, sizeof *p);
    sampler_params_default(&p->sampling);
    p->max_tokens = 128;
}

void gen_seq_init(GenSeq *s, const int32_t *prompt, int n_prompt, const GenParams *p) {
    memset(s, 0, sizeof *s);
    s->prompt = prompt;
    s->n_prompt = n_prompt;
    s->params = *p;
}

void gen_seq_free(GenSeq *s) {
    free(s->out);
    free(s->history);
    kv_cache_free(&s->kv);
    sampler_free(&s->sampler);
    s->out = s->history = NULL;
}

/* Samples the next token of s from logits and records it; sets finish. */
static void take_token(GenSeq *s, int index, float *logits) {
    int n_hist = s->n_prompt + s->n_out;
    int32_t t = sampler_sample(&s->sampler, logits, s->history, n_hist);
    s->out[s->n_out++] = t;
    s->history[n_hist] = t;
    for (int i = 0; i < s->params.n_stop_ids; i++)
        if (t == s->params.stop_ids[i]) s->finish = GEN_STOP_TOKEN;
    if (s->params.on_token && s->params.on_token(s->params.ctx, index, t) && !s->finish)
        s->finish = GEN_STOP_CALLBACK;
    if (!s->finish && s->n_out >= s->params.max_tokens) s->finish = GEN_LENGTH;
}

static int setup(Model *m, GenSeq *s, int index, Err *e) {
    if (s->n_prompt <= 0) return err_set(e, ERR_ARG, "sequence %d: empty prompt", index);
    if (s->params.max_tokens <= 0)
        return err_set(e, ERR_ARG, "sequence %d: max_tokens must be positive, got %d", index, s->params.max_tokens);
    if (sampler_params_check(&s->params.sampling, e)) return err_wrap(e, "sequence %d", index);
    if (kv_cache_init(&s->kv, m, s->n_prompt + s->params.max_tokens, e)) return -1;
    sampler_init(&s->sampler, &s->params.sampling, m->cfg.vocab_size);
    s->out = xmalloc((size_t)s->params.max_tokens * sizeof *s->out);
    s->history = xmalloc((size_t)(s->n_prompt + s->params.max_tokens) * sizeof *s->history);
    memcpy(s->history, s->prompt, (size_t)s->n_prompt * sizeof *s->prompt);
    s->n_out = 0;
    s->finish = GEN_RUNNING;
    return 0;
}

/* Prefill: the prompts back to back in chunks; logits only for each
 * prompt's last token, from which its first new token is sampled. */
static int prefill(Model *m, GenSeq *seqs, int n, Err *e) {
    int V = m->cfg.vocab_size, chunk = GEN_PREFILL_CHUNK;
    int32_t *ids = xmalloc((size_t)chunk * sizeof *ids);
    int *pos = xmalloc((size_t)chunk * sizeof *pos), *rows = xmalloc((size_t)chunk * sizeof *rows);
    int *owner = xmalloc((size_t)chunk * sizeof *owner);
    KvCache **caches = xmalloc((size_t)chunk * sizeof *caches);
    float *logits = xmalloc((size_t)(n < chunk ? n : chunk) * V * sizeof(float));
    int rc = 0, s = 0, p = 0;
    while (s < n && !rc) {
        int k = 0, n_rows = 0;
        for (; k < chunk && s < n; k++) {
            ids[k] = seqs[s].prompt[p];
            pos[k] = p;
            caches[k] = &seqs[s].kv;
            if (++p == seqs[s].n_prompt) {
                owner[n_rows] = s;
                rows[n_rows++] = k;
                s++, p = 0;
            }
        }
        rc = model_forward_batch(m, caches, ids, pos, k, rows, n_rows, logits, e);
        for (int r = 0; r < n_rows && !rc; r++) take_token(&seqs[owner[r]], owner[r], logits + (size_t)r * V);
    }
    free(ids), free(pos), free(rows), free(owner), free(caches), free(logits);
    return rc;
}

static int decode(Model *m, GenSeq *seqs, int n, Err *e) {
    int V = m->cfg.vocab_size;
    int32_t *ids = xmalloc((size_t)n * sizeof *ids);
    int *pos = xmalloc((size_t)n * sizeof *pos), *active = xmalloc((size_t)n * sizeof *active);
    KvCache **caches = xmalloc((size_t)n * sizeof *caches);
    float *logits = xmalloc((size_t)n * V * sizeof(float));
    int rc = 0;
    for (;;) {
        int k = 0;
        for (int i = 0; i < n; i++) {
            GenSeq *s = &seqs[i];
            if (s->finish) continue;
            active[k] = i;
            ids[k] = s->out[s->n_out - 1];
            pos[k] = s->n_prompt + s->n_out - 1;
            caches[k++] = &s->kv;
        }
        if (k == 0) break;
        if ((rc = model_forward_batch(m, caches, ids, pos, k, NULL, k, logits, e))) break;
        for (int j = 0; j < k; j++) take_token(&seqs[active[j]], active[j], logits + (size_t)j * V);
    }
    free(ids), free(pos), free(active), free(caches), free(logits);
    return rc;
}

int generate(Model *m, GenSeq *seqs, int n, Err *e) {
    for (int i = 0; i < n; i++)
        if (setup(m, &seqs[i], i, e)) return -1;
    if (prefill(m, seqs, n, e)) return -1;
    return decode(m, seqs, n, e);
}
