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
static void take_token(GenSeq *s, float *logits) {
    int n_hist = s->n_prompt + s->n_out;
    int32_t t = sampler_sample(&s->sampler, logits, s->history, n_hist);
    s->out[s->n_out++] = t;
    s->history[n_hist] = t;
    for (int i = 0; i < s->params.n_stop_ids; i++)
        if (t == s->params.stop_ids[i]) s->finish = GEN_STOP_TOKEN;
    if (s->params.on_token && s->params.on_token(s->params.ctx, s->index, t) && !s->finish)
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
    s->n_fed = 0;
    s->index = index;
    s->finish = GEN_RUNNING;
    return 0;
}

/* One step over the unfinished sequences: every sequence past its prompt
 * feeds its last token; sequences still in their prompt feed as much of it
 * as fits in GEN_PREFILL_CHUNK tokens. All go through one forward pass;
 * logits are taken for decode tokens and for prompts' last tokens. */
int gen_step(Model *m, GenSeq *const *seqs, int n, Err *e) {
    int V = m->cfg.vocab_size, cap = n + GEN_PREFILL_CHUNK;
    int32_t *ids = xmalloc((size_t)cap * sizeof *ids);
    int *pos = xmalloc((size_t)cap * sizeof *pos), *rows = xmalloc((size_t)cap * sizeof *rows);
    int *owner = xmalloc((size_t)cap * sizeof *owner);
    KvCache **caches = xmalloc((size_t)cap * sizeof *caches);
    int k = 0, n_rows = 0, budget = GEN_PREFILL_CHUNK;
    for (int i = 0; i < n; i++) { /* decode tokens first: they are never held back */
        GenSeq *s = seqs[i];
        if (s->finish || s->n_fed < s->n_prompt) continue;
        ids[k] = s->out[s->n_out - 1], pos[k] = s->n_fed++, caches[k] = &s->kv;
        owner[n_rows] = i, rows[n_rows++] = k++;
    }
    for (int i = 0; i < n && budget > 0; i++) {
        GenSeq *s = seqs[i];
        if (s->finish || s->n_fed >= s->n_prompt) continue;
        while (s->n_fed < s->n_prompt && budget > 0) {
            ids[k] = s->prompt[s->n_fed], pos[k] = s->n_fed, caches[k] = &s->kv;
            budget--, k++;
            if (++s->n_fed == s->n_prompt) owner[n_rows] = i, rows[n_rows++] = k - 1;
        }
    }
    int rc = 0;
    if (k > 0) {
        float *logits = xmalloc((size_t)(n_rows ? n_rows : 1) * V * sizeof(float));
        rc = model_forward_batch(m, caches, ids, pos, k, rows, n_rows, logits, e);
        for (int r = 0; r < n_rows && !rc; r++) take_token(seqs[owner[r]], logits + (size_t)r * V);
        free(logits);
    }
    free(ids), free(pos), free(rows), free(owner), free(caches);
    return rc;
}

int gen_seq_start(Model *m, GenSeq *s, int index, Err *e) { return setup(m, s, index, e); }

int generate(Model *m, GenSeq *seqs, int n, Err *e) {
    for (int i = 0; i < n; i++)
        if (setup(m, &seqs[i], i, e)) return -1;
    GenSeq **active = xmalloc((size_t)n * sizeof *active);
    int rc = 0;
    for (;;) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (!seqs[i].finish) active[k++] = &seqs[i];
        if (k == 0 || (rc = gen_step(m, active, k, e))) break;
    }
    free(active);
    return rc;
}
