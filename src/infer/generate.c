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
    reply_text_init(&s->reply, p->tok, p->stop_strings, p->on_text, p->text_ctx);
}

void gen_seq_release(GenSeq *s) {
    free(s->history);
    kv_cache_free(&s->kv);
    sampler_free(&s->sampler);
    s->history = NULL;
}

void gen_seq_free(GenSeq *s) {
    gen_seq_release(s);
    free(s->out);
    s->out = NULL;
    reply_text_free(&s->reply);
}

/* Samples the next token of s from logits, records it and its text, and
 * sets finish. */
static int take_token(GenSeq *s, float *logits, Err *e) {
    int n_hist = s->n_prompt + s->n_out, cut = 0;
    if (s->params.on_logits) s->params.on_logits(s->params.ctx, s->index, logits, s->sampler.vocab, s->out, s->n_out);
    int32_t t = sampler_sample(&s->sampler, logits, s->history, n_hist);
    s->out[s->n_out++] = t;
    s->history[n_hist] = t;
    for (int i = 0; i < s->params.n_stop_ids; i++)
        if (t == s->params.stop_ids[i]) s->finish = GEN_STOP_TOKEN;
    /* a stop token's text is not part of the reply */
    if (s->params.tok && !s->finish) {
        if (reply_text_push(&s->reply, t, &cut, e)) return err_wrap(e, "sequence %d", s->index);
        if (cut) s->finish = GEN_STOP_STRING;
    }
    if (s->params.on_token && s->params.on_token(s->params.ctx, s->index, t) && !s->finish)
        s->finish = GEN_STOP_CALLBACK;
    if (!s->finish && s->n_out >= s->params.max_tokens) s->finish = GEN_LENGTH;
    if (s->params.tok) reply_text_stream(&s->reply, s->finish != GEN_RUNNING, s->finish == GEN_STOP_STRING);
    return 0;
}

int gen_seq_start(Model *m, GenSeq *s, int index, Err *e) {
    if (s->n_prompt <= 0) return err_set(e, ERR_ARG, "sequence %d: empty prompt", index);
    if (s->params.max_tokens <= 0)
        return err_set(e, ERR_ARG, "sequence %d: max_tokens must be positive, got %d", index, s->params.max_tokens);
    if (s->params.stop_strings && !s->params.tok)
        return err_set(e, ERR_ARG, "sequence %d: stop strings need a tokenizer", index);
    if (sampler_params_check(&s->params.sampling, e)) return err_wrap(e, "sequence %d", index);
    if (kv_cache_init(&s->kv, m, s->n_prompt + s->params.max_tokens, e)) return -1;
    sampler_init(&s->sampler, &s->params.sampling, m->cfg.vocab_size);
    s->out = xmalloc((size_t)s->params.max_tokens * sizeof *s->out);
    s->history = xmalloc((size_t)(s->n_prompt + s->params.max_tokens) * sizeof *s->history);
    memcpy(s->history, s->prompt, (size_t)s->n_prompt * sizeof *s->prompt);
    s->n_out = 0;
    s->n_fed = 0;
    s->n_prefilled = 0;
    s->index = index;
    s->finish = GEN_RUNNING;
    return 0;
}

/* Feeds sequences still in their prompt their next chunk, each in its own
 * forward pass, until `budget` prompt tokens went in this step (at least
 * one chunk); a prompt's last chunk samples its first new token. */
static int prefill(Model *m, GenSeq *const *seqs, int n, float *logits, Err *e) {
    int budget = GEN_PREFILL_CHUNK;
    for (int i = 0; i < n && budget > 0; i++) {
        GenSeq *s = seqs[i];
        if (s->finish || s->n_fed >= s->n_prompt) continue;
        int k = s->n_prompt - s->n_fed < GEN_PREFILL_CHUNK ? s->n_prompt - s->n_fed : GEN_PREFILL_CHUNK;
        if (model_forward(m, &s->kv, s->prompt + s->n_fed, k, s->n_fed, logits, 0, e)) return -1;
        s->n_fed += k;
        s->n_prefilled += k;
        budget -= k;
        if (s->n_fed == s->n_prompt && take_token(s, logits, e)) return -1;
    }
    return 0;
}

/* One forward pass over the last token of every sequence past its prompt;
 * returns how many there were. */
static int decode(Model *m, GenSeq *const *seqs, int n, float *logits, Err *e) {
    int32_t *ids = xmalloc((size_t)n * sizeof *ids);
    int *pos = xmalloc((size_t)n * sizeof *pos);
    KvCache **caches = xmalloc((size_t)n * sizeof *caches);
    GenSeq **rows = xmalloc((size_t)n * sizeof *rows);
    int k = 0, rc = 0, V = m->cfg.vocab_size;
    for (int i = 0; i < n; i++) {
        GenSeq *s = seqs[i];
        if (s->finish || s->n_fed < s->n_prompt) continue;
        ids[k] = s->out[s->n_out - 1], pos[k] = s->n_fed++, caches[k] = &s->kv, rows[k++] = s;
    }
    if (k > 0) rc = model_forward_batch(m, caches, ids, pos, k, NULL, k, logits, e);
    for (int r = 0; r < k && !rc; r++) rc = take_token(rows[r], logits + (size_t)r * V, e);
    free(ids), free(pos), free(caches), free(rows);
    return rc ? -1 : k;
}

int gen_step(Model *m, GenSeq *const *seqs, int n, Err *e) {
    float *logits = xmalloc((size_t)(n > 0 ? n : 1) * m->cfg.vocab_size * sizeof *logits);
    int rc = prefill(m, seqs, n, logits, e);
    if (!rc) rc = decode(m, seqs, n, logits, e);
    free(logits);
    return rc;
}

int generate(Model *m, GenSeq *seqs, int n, Err *e) {
    for (int i = 0; i < n; i++)
        if (gen_seq_start(m, &seqs[i], i, e)) return -1;
    GenSeq **active = xmalloc((size_t)n * sizeof *active);
    int rc = 0;
    for (;;) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (!seqs[i].finish) active[k++] = &seqs[i];
        if (k == 0 || (rc = gen_step(m, active, k, e)) < 0) break;
    }
    free(active);
    return rc < 0 ? -1 : 0;
}
