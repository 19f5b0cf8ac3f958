#include "serve/gen.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "base/rng.h"
#include "tok/chat_template.h"

struct ServeChoice {
    ServeGen *g;
    int index;
    GenSeq seq;
    int initialised;
    pthread_t th;
    int rc;
    Err err;
    /* logits hook */
    float *row;           /* a copy of the last logits, for logprobs */
    double lse;           /* their log-sum-exp */
    unsigned char *seen;  /* tokens in the output so far (presence penalty) */
    /* logprobs: chat entries, or the completions' four lists; when
     * streaming, those not yet sent */
    json_t *lp, *lp_tokens, *lp_values, *lp_top, *lp_offsets;
    size_t text_offset;
    /* timing */
    double t_last;
    int sent_role;
};

double serve_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- the hooks (on the batcher's thread) ---- */

static int is_stop_id(const ServeGen *g, int32_t t) {
    for (int i = 0; i < g->sm->n_stop_ids; i++)
        if (g->sm->stop_ids[i] == t) return 1;
    return 0;
}

static void on_logits(void *ctx, int seq, float *logits, int vocab, const int32_t *out, int n_out) {
    (void)seq;
    ServeChoice *c = ctx;
    const OaiRequest *r = c->g->req;
    for (int i = 0; i < r->n_bias; i++)
        if (r->bias[i].id < vocab) logits[r->bias[i].id] += r->bias[i].bias;
    if (r->frequency_penalty != 0 || r->presence_penalty != 0) {
        /* OpenAI: mu[j] - c[j] * alpha_frequency - (c[j] > 0) * alpha_presence,
         * c[j] counting j in the output so far (not the prompt) */
        for (int i = 0; i < n_out; i++)
            if (out[i] >= 0 && out[i] < vocab) {
                logits[out[i]] -= (float)r->frequency_penalty;
                if (!c->seen[out[i]]) logits[out[i]] -= (float)r->presence_penalty;
                c->seen[out[i]] = 1;
            }
        for (int i = 0; i < n_out; i++)
            if (out[i] >= 0 && out[i] < vocab) c->seen[out[i]] = 0;
    }
    if (r->logprobs) {
        float mx = -INFINITY;
        for (int i = 0; i < vocab; i++) mx = logits[i] > mx ? logits[i] : mx;
        double sum = 0;
        for (int i = 0; i < vocab; i++) sum += exp((double)logits[i] - mx);
        c->lse = mx + log(sum);
        memcpy(c->row, logits, (size_t)vocab * sizeof *logits);
    }
}

/* The k most likely tokens of the saved row, best first. */
static int top_tokens(const ServeChoice *c, int vocab, int k, int32_t *ids) {
    int n = 0;
    for (int i = 0; i < vocab; i++) {
        if (n == k && c->row[i] <= c->row[ids[n - 1]]) continue;
        int j = n < k ? n++ : k - 1;
        while (j > 0 && c->row[ids[j - 1]] < c->row[i]) ids[j] = ids[j - 1], j--;
        ids[j] = i;
    }
    return n;
}

static void token_text(const ServeGen *g, int32_t id, const char **s, size_t *len) {
    int l = 0;
    *s = tok_token_bytes(g->sm->tok, id, &l);
    if (!*s) *s = "", l = 0;
    *len = (size_t)l;
}

/* Records token t's logprob (and alternatives) in c's lists. */
static void record_logprob(ServeChoice *c, int32_t t) {
    ServeGen *g = c->g;
    int vocab = c->seq.sampler.vocab, k = g->req->top_logprobs;
    const char *s;
    size_t len;
    token_text(g, t, &s, &len);
    double lp = c->row[t] - c->lse;
    int32_t ids[OAI_MAX_TOP_LOGPROBS];
    int n = k ? top_tokens(c, vocab, k, ids) : 0;
    if (g->req->kind == OAI_CHAT) {
        json_t *top = json_array();
        for (int i = 0; i < n; i++) {
            const char *ts;
            size_t tl;
            token_text(g, ids[i], &ts, &tl);
            json_array_append_new(top, oai_top_logprob(ts, tl, c->row[ids[i]] - c->lse));
        }
        json_array_append_new(c->lp, oai_chat_logprob(s, len, lp, top));
        return;
    }
    json_array_append_new(c->lp_tokens, oai_text(s, len));
    json_array_append_new(c->lp_values, oai_logprob_value(lp));
    json_t *top = json_object();
    for (int i = 0; i < n; i++) {
        const char *ts;
        size_t tl;
        token_text(g, ids[i], &ts, &tl);
        json_t *key = oai_text(ts, tl);
        json_object_set_new(top, json_string_value(key), oai_logprob_value(c->row[ids[i]] - c->lse));
        json_decref(key);
    }
    json_array_append_new(c->lp_top, top);
    json_array_append_new(c->lp_offsets, json_integer((json_int_t)c->text_offset));
    c->text_offset += len;
}

/* A socket whose peer has hung up reads as end-of-file. */
static int hung_up(int fd) {
    if (fd < 0) return 0;
    char b;
    ssize_t r = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static int on_token(void *ctx, int seq, int32_t t) {
    (void)seq;
    ServeChoice *c = ctx;
    ServeGen *g = c->g;
    double now = serve_now();
    if (c->seq.n_out == 1) {
        metrics_ttft(g->metrics, now - g->t0);
        metrics_gauges(g->metrics, 1, -1);
    } else {
        metrics_tpot(g->metrics, now - c->t_last);
    }
    c->t_last = now;
    if (g->req->logprobs && !is_stop_id(g, t)) {
        if (g->stream) pthread_mutex_lock(&g->mu);
        record_logprob(c, t);
        if (g->stream) pthread_mutex_unlock(&g->mu);
    }
    if (hung_up(g->watch_fd)) atomic_store(&g->cancel, 1);
    return atomic_load(&g->cancel) || (g->stopping && atomic_load(g->stopping));
}

/* ---- streaming ---- */

/* The logprobs gathered since the last chunk (NULL: none asked for), and
 * fresh lists for the next. Under g->mu. */
static json_t *take_logprobs(ServeChoice *c) {
    if (!c->g->req->logprobs) return NULL;
    json_t *out;
    if (c->g->req->kind == OAI_CHAT) {
        out = c->lp;
        c->lp = json_array();
    } else {
        out = json_pack("{s:o,s:o,s:o,s:o}", "tokens", c->lp_tokens, "token_logprobs", c->lp_values, "top_logprobs",
                        c->lp_top, "text_offset", c->lp_offsets);
        c->lp_tokens = json_array(), c->lp_values = json_array(), c->lp_top = json_array();
        c->lp_offsets = json_array();
    }
    return out;
}

/* Appends one chunk of choice c to the stream. Under g->mu. */
static void push_chunk(ServeChoice *c, const char *text, const char *finish) {
    ServeGen *g = c->g;
    const char *role = NULL;
    if (g->req->kind == OAI_CHAT && !c->sent_role) role = "assistant", c->sent_role = 1;
    json_t *j = oai_chunk(g->req->kind, g->id, g->req->model, g->created, c->index, role, text, finish,
                          take_logprobs(c));
    oai_sse_event(&g->out, j);
    json_decref(j);
    pthread_cond_broadcast(&g->cv);
}

static void on_text(void *ctx, const char *text, size_t len) {
    ServeChoice *c = ctx;
    ServeGen *g = c->g;
    if (!g->stream || !len) return;
    char *t = xstrndup(text, len);
    pthread_mutex_lock(&g->mu);
    push_chunk(c, t, NULL);
    pthread_mutex_unlock(&g->mu);
    free(t);
}

static const char *finish_reason(const GenSeq *s) { return s->finish == GEN_LENGTH ? "length" : "stop"; }

static OaiUsage usage_of(const ServeGen *g) {
    OaiUsage u = {g->n_prompt, g->completion_tokens, g->cached_tokens};
    return u;
}

/* A choice has ended: its last chunk, and after the last choice the usage
 * and [DONE]. Under g->mu. */
static void stream_choice_end(ServeChoice *c) {
    ServeGen *g = c->g;
    if (c->rc) {
        json_t *err = oai_error(c->err.msg, "server_error", NULL, NULL);
        oai_sse_event(&g->out, err);
        json_decref(err);
    } else {
        push_chunk(c, NULL, finish_reason(&c->seq));
    }
    if (--g->running) return;
    if (g->req->include_usage) {
        OaiUsage u = usage_of(g);
        json_t *j = oai_usage_chunk(g->req->kind, g->id, g->req->model, g->created, &u);
        oai_sse_event(&g->out, j);
        json_decref(j);
    }
    sb_append(&g->out, "data: [DONE]\n\n");
    g->done = 1;
    pthread_cond_broadcast(&g->cv);
}

long serve_gen_read(ServeGen *g, char *buf, size_t max, int fd) {
    pthread_mutex_lock(&g->mu);
    for (;;) {
        if (g->out_pos < g->out.len) break;
        if (g->done) {
            pthread_mutex_unlock(&g->mu);
            return 0;
        }
        /* wake now and then to notice a client that hung up while the
         * model is still prefilling (no bytes to write yet) */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
        if (g->out_pos >= g->out.len && !g->done && hung_up(fd)) {
            atomic_store(&g->cancel, 1);
            pthread_mutex_unlock(&g->mu);
            return -1;
        }
    }
    size_t n = g->out.len - g->out_pos < max ? g->out.len - g->out_pos : max;
    memcpy(buf, g->out.s + g->out_pos, n);
    g->out_pos += n;
    pthread_mutex_unlock(&g->mu);
    return (long)n;
}

/* ---- running ---- */

static void *run_choice(void *arg) {
    ServeChoice *c = arg;
    ServeGen *g = c->g;
    c->rc = batcher_run(g->sm->batcher, &c->seq, &c->err);
    if (c->seq.n_out == 0) metrics_gauges(g->metrics, 0, -1);
    else metrics_gauges(g->metrics, -1, 0);
    if (g->stream) {
        pthread_mutex_lock(&g->mu);
        if (!c->rc) {
            /* the completions' echo comes before the first reply chunk */
            g->completion_tokens += c->seq.n_out;
            if (c->index == 0) g->cached_tokens = g->n_prompt - c->seq.n_prefilled;
        } else {
            g->failed = 1;
        }
        stream_choice_end(c);
        pthread_mutex_unlock(&g->mu);
    }
    return NULL;
}

void serve_gen_launch(ServeGen *g) {
    metrics_gauges(g->metrics, 0, g->n);
    if (g->stream) {
        pthread_mutex_lock(&g->mu);
        g->running = g->n;
        /* each choice opens with its role (chat) or the echoed prompt */
        for (int i = 0; i < g->n; i++)
            if (g->req->kind == OAI_CHAT) push_chunk(&g->ch[i], "", NULL);
            else if (g->echo_text) push_chunk(&g->ch[i], g->echo_text, NULL);
        pthread_mutex_unlock(&g->mu);
    }
    for (int i = 0; i < g->n; i++) {
        ServeChoice *c = &g->ch[i];
        if (pthread_create(&c->th, NULL, run_choice, c)) {
            /* no thread: run it here, so the choice still ends */
            run_choice(c);
            c->th = 0;
        }
    }
    g->launched = 1;
}

void serve_gen_wait(ServeGen *g) {
    pthread_mutex_lock(&g->mu);
    if (!g->launched || g->joined) {
        pthread_mutex_unlock(&g->mu);
        return;
    }
    if (g->joining) { /* another thread joins: wait for it to finish */
        while (!g->joined) pthread_cond_wait(&g->cv, &g->mu);
        pthread_mutex_unlock(&g->mu);
        return;
    }
    g->joining = 1;
    pthread_mutex_unlock(&g->mu);
    for (int i = 0; i < g->n; i++)
        if (g->ch[i].th) pthread_join(g->ch[i].th, NULL);
    if (!g->stream) {
        for (int i = 0; i < g->n; i++)
            if (!g->ch[i].rc) g->completion_tokens += g->ch[i].seq.n_out;
        if (!g->ch[0].rc) g->cached_tokens = g->n_prompt - g->ch[0].seq.n_prefilled;
    }
    metrics_tokens(g->metrics, g->n_prompt, g->completion_tokens, g->cached_tokens);
    pthread_mutex_lock(&g->mu);
    g->joined = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

json_t *serve_gen_response(ServeGen *g, Err *e) {
    json_t *choices = json_array();
    for (int i = 0; i < g->n; i++) {
        ServeChoice *c = &g->ch[i];
        if (c->rc) {
            *e = c->err;
            json_decref(choices);
            return NULL;
        }
        const char *text = c->seq.reply.text.s ? c->seq.reply.text.s : "";
        json_t *lp = take_logprobs(c);
        if (g->req->kind == OAI_CHAT) {
            json_array_append_new(choices, oai_chat_choice(i, text, finish_reason(&c->seq), lp));
        } else {
            char *full = g->echo_text ? xasprintf("%s%s", g->echo_text, text) : NULL;
            json_array_append_new(choices, oai_completion_choice(i, full ? full : text, finish_reason(&c->seq), lp));
            free(full);
        }
    }
    OaiUsage u = usage_of(g);
    return oai_response(g->req->kind, g->id, g->req->model, g->created, choices, &u);
}

/* ---- setting up ---- */

static int render_chat(ServeGen *g, Err *e) {
    const OaiRequest *r = g->req;
    ChatMsg *cm = xmalloc((size_t)r->n_messages * sizeof *cm);
    for (int i = 0; i < r->n_messages; i++) cm[i] = (ChatMsg){r->messages[i].role, r->messages[i].content};
    char *text = NULL;
    int rc = chat_template_render(g->sm->tpl, cm, r->n_messages, 1, NULL, &text, e);
    free(cm);
    /* the template writes any BOS text itself (as llm/local.c) */
    if (!rc) rc = tok_encode(g->sm->tok, text, 0, 1, &g->prompt, &g->n_prompt, e);
    free(text);
    return rc;
}

/* A completions prompt: text encoded as `aloe complete --prompt` does (the
 * tokenizer's BOS), or ids used as given. */
static int completion_prompt(ServeGen *g, const char **param, Err *e) {
    const OaiRequest *r = g->req;
    if (r->prompt) {
        if (tok_encode(g->sm->tok, r->prompt, 1, 1, &g->prompt, &g->n_prompt, e)) return -1;
        if (r->echo) g->echo_text = xstrdup(r->prompt);
        return 0;
    }
    int vocab = g->sm->m->cfg.vocab_size;
    for (int i = 0; i < r->n_prompt_ids; i++)
        if (r->prompt_ids[i] >= vocab) {
            *param = "prompt";
            return err_set(e, ERR_ARG, "prompt[%d]: token id %d is outside the vocabulary (%d tokens)", i,
                           r->prompt_ids[i], vocab);
        }
    g->prompt = xmalloc((size_t)r->n_prompt_ids * sizeof *g->prompt);
    memcpy(g->prompt, r->prompt_ids, (size_t)r->n_prompt_ids * sizeof *g->prompt);
    g->n_prompt = r->n_prompt_ids;
    if (r->echo && !(g->echo_text = tok_decode(g->sm->tok, g->prompt, g->n_prompt, 1, e))) return -1;
    return 0;
}

static int request_sampling(ServeGen *g, int i, SamplerParams *sp, Err *e) {
    const OaiRequest *r = g->req;
    *sp = g->sm->defaults;
    if (r->temperature >= 0) sp->temperature = (float)r->temperature;
    if (r->top_p >= 0) sp->top_p = (float)r->top_p;
    if (r->top_k >= 0) sp->top_k = r->top_k;
    if (r->min_p >= 0) sp->min_p = (float)r->min_p;
    if (r->repetition_penalty >= 0) sp->repetition_penalty = (float)r->repetition_penalty;
    if (r->has_seed) {
        sp->seed = r->seed + (uint64_t)i; /* n choices of one seed differ, and repeat */
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        Rng rng;
        rng_derive(&rng, (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30), (uint64_t)(uintptr_t)g, (uint64_t)i);
        sp->seed = rng_u64(&rng);
    }
    return sampler_params_check(sp, e);
}

/* The stop strings: the request's, then the template's end-of-turn marks. */
static void collect_stop_strings(ServeGen *g) {
    const char *const *marks = g->req->ignore_eos ? NULL : chat_template_stop_strings(g->sm->tpl);
    int n = 0;
    while (marks && marks[n]) n++;
    g->stops = xcalloc((size_t)(g->req->n_stop + n + 1), sizeof *g->stops);
    int k = 0;
    for (int i = 0; i < g->req->n_stop; i++) g->stops[k++] = g->req->stop[i];
    for (int i = 0; i < n; i++) g->stops[k++] = marks[i];
}

static int fail(int *status, int code, const char **param, const char *field) {
    *status = code;
    if (field) *param = field;
    return -1;
}

int serve_gen_prepare(ServeGen *g, ServeModel *sm, const OaiRequest *req, const ServeLimits *lim, Metrics *metrics,
                      const atomic_int *stopping, int *status, const char **param, Err *e) {
    memset(g, 0, sizeof *g);
    g->sm = sm, g->req = req, g->metrics = metrics, g->stopping = stopping;
    g->watch_fd = -1;
    g->t0 = serve_now();
    g->created = (long)time(NULL);
    g->stream = req->stream;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    sb_init(&g->out);
    *param = NULL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    Rng rng;
    rng_derive(&rng, (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30), (uint64_t)(uintptr_t)g, 0x1d);
    snprintf(g->id, sizeof g->id, "%s-%016llx", req->kind == OAI_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)rng_u64(&rng));
    if (req->kind == OAI_CHAT ? render_chat(g, e) : completion_prompt(g, param, e))
        return fail(status, 400, param, req->kind == OAI_CHAT ? "messages" : "prompt");
    int limit = lim->max_prompt_tokens > 0 && lim->max_prompt_tokens < sm->n_ctx ? lim->max_prompt_tokens : sm->n_ctx - 1;
    if (g->n_prompt > limit) {
        err_set(e, ERR_ARG, "%s: the prompt is %d tokens, more than the %d this server takes (%s)",
                req->kind == OAI_CHAT ? "messages" : "prompt", g->n_prompt, limit,
                limit == sm->n_ctx - 1 ? "the model's context, --ctx, less one to reply" : "--max-prompt-tokens");
        return fail(status, 413, param, req->kind == OAI_CHAT ? "messages" : "prompt");
    }
    if (g->n_prompt == 0) {
        err_set(e, ERR_ARG, "prompt: expected at least one token");
        return fail(status, 400, param, "prompt");
    }
    if (req->max_tokens > lim->max_tokens) {
        err_set(e, ERR_ARG, "max_tokens: expected at most %d (the server's --max-tokens), got %d", lim->max_tokens,
                req->max_tokens);
        return fail(status, 400, param, req->max_tokens ? "max_tokens" : NULL);
    }
    int vocab = sm->m->cfg.vocab_size;
    for (int i = 0; i < req->n_bias; i++)
        if (req->bias[i].id >= vocab) {
            err_set(e, ERR_ARG, "logit_bias: token id %d is outside the vocabulary (%d tokens)", req->bias[i].id, vocab);
            return fail(status, 400, param, "logit_bias");
        }
    /* a place in the batch or the queue, else 503 */
    int before = atomic_fetch_add(&sm->seqs, req->n);
    g->admitted = 1;
    if (before + req->n > lim->max_active + lim->max_queue) {
        err_set(e, ERR_UNSUPPORTED, "the server is busy: %d sequences running or waiting for %s, the most it queues "
                "is %d (-j %d plus --max-queue %d); retry shortly", before, sm->id,
                lim->max_active + lim->max_queue, lim->max_active, lim->max_queue);
        return fail(status, 503, param, NULL);
    }
    collect_stop_strings(g);
    GenParams gp;
    gen_params_default(&gp);
    gp.max_tokens = req->max_tokens > 0 ? req->max_tokens : lim->max_tokens;
    if (gp.max_tokens > sm->n_ctx - g->n_prompt) gp.max_tokens = sm->n_ctx - g->n_prompt;
    memcpy(gp.stop_ids, sm->stop_ids, sizeof gp.stop_ids);
    gp.n_stop_ids = req->ignore_eos ? 0 : sm->n_stop_ids;
    gp.tok = sm->tok;
    gp.stop_strings = g->stops;
    gp.on_token = on_token;
    gp.on_text = on_text;
    if (req->n_bias || req->logprobs || req->presence_penalty != 0 || req->frequency_penalty != 0)
        gp.on_logits = on_logits;
    g->n = req->n;
    g->ch = xcalloc((size_t)g->n, sizeof *g->ch);
    for (int i = 0; i < g->n; i++) {
        ServeChoice *c = &g->ch[i];
        c->g = g, c->index = i;
        if (request_sampling(g, i, &gp.sampling, e)) return fail(status, 400, param, NULL);
        gp.ctx = c, gp.text_ctx = c;
        gen_seq_init(&c->seq, g->prompt, g->n_prompt, &gp);
        c->initialised = 1;
        if (req->logprobs) c->row = xmalloc((size_t)vocab * sizeof *c->row);
        if (req->presence_penalty != 0 || req->frequency_penalty != 0) c->seen = xcalloc((size_t)vocab, 1);
        c->lp = json_array(), c->lp_tokens = json_array(), c->lp_values = json_array();
        c->lp_top = json_array(), c->lp_offsets = json_array();
        if (g->echo_text) c->text_offset = strlen(g->echo_text);
    }
    return 0;
}

void serve_gen_free(ServeGen *g) {
    if (!g) return;
    serve_gen_wait(g);
    if (g->admitted) atomic_fetch_sub(&g->sm->seqs, g->req->n);
    for (int i = 0; g->ch && i < g->n; i++) {
        ServeChoice *c = &g->ch[i];
        if (c->initialised) gen_seq_free(&c->seq);
        free(c->row);
        free(c->seen);
        json_decref(c->lp), json_decref(c->lp_tokens), json_decref(c->lp_values);
        json_decref(c->lp_top), json_decref(c->lp_offsets);
    }
    free(g->ch);
    free(g->prompt);
    free(g->echo_text);
    free(g->stops);
    sb_free(&g->out);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    memset(g, 0, sizeof *g);
}
