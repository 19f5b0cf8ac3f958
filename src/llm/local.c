#include "llm/local.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/dtype.h"
#include "formats/hfdir.h"
#include "model/open.h"
#include "llm/open.h"
#include "model/encoder.h"
#include "tok/chat_template.h"

typedef struct LocalImpl {
    char *path; /* the resolved local path */
    /* a decoder ... */
    Model *m;
    Tokenizer *tok;
    ChatTemplate *tpl;
    Batcher *batcher;
    int32_t stop_ids[GEN_MAX_STOP_IDS]; /* every request's */
    int n_stop_ids;
    SamplerParams defaults; /* the checkpoint's sampling settings, else greedy */
    int n_ctx;
    atomic_ullong draws;    /* makes unseeded requests differ */
    /* ... or an encoder */
    Encoder *enc;
    atomic_int refs; /* backends sharing this model (llm_local_share) */
} LocalImpl;

static void bump(atomic_long *c, long n) {
    if (c) atomic_fetch_add(c, n);
}

static const char *role_of(const LocalOptions *o) { return o && o->role ? o->role : "model"; }

/* ---- loading ---- */

/* A sentence-transformers directory, or a plain BertModel one. */
static int is_encoder_dir(const char *path) {
    if (!file_is_dir(path)) return 0;
    char *modules = path_join(path, "modules.json");
    int yes = file_exists(modules);
    free(modules);
    ModelConfig cfg;
    Err ignored;
    if (!yes && !hf_config_load(path, &cfg, &ignored)) yes = cfg.arch == ARCH_BERT;
    return yes;
}

/* Requests stop at the model's EOS ids, the tokenizer's end-of-turn ids and
 * the template's end-of-turn markers (as ids where the vocabulary has them,
 * as text in any case: see chat_stream). */
/* $name as a whole number in [lo, hi] into *out: 1 when set, 0 when unset
 * or empty (*out unchanged), -1 with e naming the variable and what it
 * expects (`expected`) otherwise. */
static int env_number(const char *name, long lo, long hi, const char *expected, long *out, Err *e) {
    const char *env = getenv(name);
    if (!env || !*env) return 0;
    char *end;
    long v = strtol(env, &end, 10);
    if (*end || v < lo || v > hi) return err_set(e, ERR_ARG, "%s: expected %s, got \"%s\"", name, expected, env);
    *out = v;
    return 1;
}

static int start_batcher(LocalImpl *L, const LocalOptions *o, Err *e) {
    GenParams stops;
    gen_params_default(&stops);
    gen_params_add_model_stops(&stops, L->m, L->tok);
    const char *const *marks = chat_template_stop_strings(L->tpl);
    for (int i = 0; marks && marks[i]; i++) gen_params_add_stop_id(&stops, tok_find(L->tok, marks[i]));
    memcpy(L->stop_ids, stops.stop_ids, sizeof L->stop_ids);
    L->n_stop_ids = stops.n_stop_ids;
    long mib = LOCAL_DEFAULT_PREFIX_CACHE_MIB;
    if (env_number("ALOE_PREFIX_CACHE", 0, 1L << 30, "MiB of prompt keys and values to keep (0: none)", &mib, e) < 0)
        return -1;
    L->batcher = batcher_start(L->m, o && o->max_active > 0 ? o->max_active : LOCAL_DEFAULT_MAX_ACTIVE,
                               (size_t)mib << 20, e);
    return L->batcher ? 0 : -1;
}

static int context_length(const LocalImpl *L, const LocalOptions *o, Err *e) {
    if (o && o->n_ctx > 0) return o->n_ctx;
    long v;
    int set = env_number("ALOE_CTX", 1, 1L << 24, "a positive number of tokens", &v, e);
    if (set) return set < 0 ? -1 : (int)v;
    return L->m->cfg.max_pos > 0 ? L->m->cfg.max_pos : 4096;
}

static int load_decoder(LocalImpl *L, const LocalOptions *o, Err *e) {
    ModelOpenOptions mo = {.weights = 1, .tokenizer = 1, .chat_template = o ? o->chat_template : NULL,
                           .n_threads = o ? o->n_threads : 0, .quiet = o ? o->quiet : 0};
    ModelBundle mb;
    if (model_open(L->path, &mo, &mb, e)) return -1;
    L->m = mb.model, L->tok = mb.tok, L->tpl = mb.tpl; /* the backend owns them now */
    free(mb.path);
    if (model_set_kv_type_name(L->m, NULL, e)) return -1; /* $ALOE_KV_TYPE */
    gen_sampling_from_checkpoint(L->path, &L->defaults);
    if ((L->n_ctx = context_length(L, o, e)) < 0) return -1;
    return start_batcher(L, o, e);
}

/* ---- chat ---- */

static int render_prompt(LocalImpl *L, const LlmMessage *msgs, int n, int32_t **ids, int *n_ids, Err *e) {
    ChatMsg *cm = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *cm);
    for (int i = 0; i < n; i++) cm[i] = (ChatMsg){msgs[i].role, msgs[i].content ? msgs[i].content : ""};
    char *text = NULL;
    int rc = chat_template_render(L->tpl, cm, n, 1, NULL, &text, e);
    free(cm);
    /* the template writes any BOS text itself: no second one from the tokenizer */
    if (!rc) rc = tok_encode(L->tok, text, 0, 1, ids, n_ids, e);
    free(text);
    return rc;
}

/* The request's sampling: LlmParams where set, else the checkpoint's. */
static int request_sampling(LocalImpl *L, const LlmParams *p, SamplerParams *sp, Err *e) {
    *sp = L->defaults;
    if (p->temperature >= 0) sp->temperature = (float)p->temperature;
    if (p->top_p >= 0) sp->top_p = (float)p->top_p;
    if (p->has_seed) {
        sp->seed = p->seed;
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        sp->seed = ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^
                   (atomic_fetch_add(&L->draws, 1) * 0x9E3779B97F4A7C15ULL);
    }
    return sampler_params_check(sp, e);
}

/* The request's generation settings: the backend's stops and tokenizer,
 * the reply streamed to on_text. */
static int request_params(LocalImpl *L, const LlmParams *p, int n_prompt, GenTextFn on_text, void *ctx,
                          GenParams *gp, Err *e) {
    gen_params_default(gp);
    if (request_sampling(L, p, &gp->sampling, e)) return -1;
    gp->max_tokens = p->max_tokens > 0 ? p->max_tokens : LOCAL_DEFAULT_MAX_TOKENS;
    if (gp->max_tokens > L->n_ctx - n_prompt) gp->max_tokens = L->n_ctx - n_prompt;
    memcpy(gp->stop_ids, L->stop_ids, sizeof gp->stop_ids);
    gp->n_stop_ids = L->n_stop_ids;
    gp->tok = L->tok;
    gp->stop_strings = chat_template_stop_strings(L->tpl);
    gp->on_text = on_text;
    gp->text_ctx = ctx;
    return 0;
}

static int chat_stream(LlmBackend *b, const LlmMessage *msgs, int n, const LlmParams *p, GenTextFn on_text,
                       void *ctx, LlmReply *out, Err *e) {
    LocalImpl *L = b->impl;
    memset(out, 0, sizeof *out);
    LlmParams defaults = llm_params_default();
    if (!p) p = &defaults;
    int32_t *ids = NULL;
    int n_ids = 0, rc = -1, started = 0;
    GenParams gp;
    GenSeq s;
    if (render_prompt(L, msgs, n, &ids, &n_ids, e)) goto done;
    if (n_ids >= L->n_ctx) {
        err_set(e, ERR_ARG, "the prompt is %d tokens, more than the model's context of %d tokens%s", n_ids, L->n_ctx,
                getenv("ALOE_CTX") ? " ($ALOE_CTX)" : " (set ALOE_CTX to allow a longer one)");
        goto done;
    }
    if (request_params(L, p, n_ids, on_text, ctx, &gp, e)) goto done;
    gen_seq_init(&s, ids, n_ids, &gp);
    started = 1;
    if (batcher_run(L->batcher, &s, e)) goto done;
    out->text = s.reply.text.s ? sb_take(&s.reply.text) : xstrdup("");
    out->finish_reason = xstrdup(s.finish == GEN_LENGTH ? "length" : "stop");
    out->usage.prompt_tokens = n_ids;
    out->usage.completion_tokens = s.n_out;
    out->usage.cached_tokens = n_ids - s.n_prefilled;
    atomic_fetch_add(&b->stats.prompt_tokens, n_ids);
    atomic_fetch_add(&b->stats.cached_prompt_tokens, n_ids - s.n_prefilled);
    atomic_fetch_add(&b->stats.completion_tokens, s.n_out);
    atomic_fetch_add(&b->stats.requests, 1);
    bump(b->live_tokens, n_ids + s.n_out);
    bump(b->live_requests, 1);
    rc = 0;
done:
    if (rc) {
        atomic_fetch_add(&b->stats.errors, 1);
        bump(b->live_errors, 1);
        err_wrap(e, "%s", b->describe);
    }
    if (started) gen_seq_free(&s);
    free(ids);
    return rc;
}

static int local_chat(LlmBackend *b, const LlmMessage *msgs, int n, const LlmParams *p, LlmReply *out, Err *e) {
    return chat_stream(b, msgs, n, p, NULL, NULL, out, e);
}

/* ---- embeddings ---- */

static int local_embed(LlmBackend *b, const char *const *texts, int n, float **vecs, int *dim, Err *e) {
    LocalImpl *L = b->impl;
    if (encoder_embed(L->enc, texts, n, vecs, dim, e)) {
        atomic_fetch_add(&b->stats.errors, 1);
        bump(b->live_errors, 1);
        return err_wrap(e, "%s", b->describe);
    }
    atomic_fetch_add(&b->stats.requests, 1);
    bump(b->live_requests, 1);
    return 0;
}

/* ---- the backend ---- */

static void local_destroy(LlmBackend *b) {
    LocalImpl *L = b->impl;
    b->impl = NULL;
    if (!L || atomic_fetch_sub(&L->refs, 1) > 1) return;
    batcher_stop(L->batcher);
    chat_template_free(L->tpl);
    tok_free(L->tok);
    model_free(L->m);
    encoder_free(L->enc);
    free(L->path);
    free(L);
}

int llm_is_local(const LlmBackend *b) { return b && b->destroy == local_destroy; }

int llm_local_chat_stream(LlmBackend *b, const LlmMessage *msgs, int n, const LlmParams *p, GenTextFn on_text,
                          void *ctx, LlmReply *out, Err *e) {
    if (!llm_is_local(b)) return err_set(e, ERR_UNSUPPORTED, "%s: not a local model", b->describe);
    if (!b->chat) return err_set(e, ERR_UNSUPPORTED, "%s: a sentence-embedding model cannot chat", b->describe);
    return chat_stream(b, msgs, n, p, on_text, ctx, out, e);
}

PrefixCacheStats llm_local_prefix_stats(const LlmBackend *b) {
    PrefixCacheStats none = {0};
    return llm_is_local(b) && b->chat ? batcher_prefix_stats(((const LocalImpl *)b->impl)->batcher) : none;
}

int llm_local_peak_batch(const LlmBackend *b) {
    return llm_is_local(b) && b->chat ? batcher_peak_active(((const LocalImpl *)b->impl)->batcher) : 0;
}

int llm_local_n_ctx(const LlmBackend *b) {
    return llm_is_local(b) && b->chat ? ((const LocalImpl *)b->impl)->n_ctx : 0;
}

LlmBackend *llm_local_open(const char *spec, const LocalOptions *o, Err *e) {
    LlmBackend *b = xcalloc(1, sizeof *b);
    LocalImpl *L = xcalloc(1, sizeof *L);
    atomic_init(&L->refs, 1);
    b->impl = L;
    b->destroy = local_destroy;
    b->model = xstrdup(spec);
    if (model_spec_resolve(spec, o ? o->quiet : 0, &L->path, e)) goto fail;
    if (!file_exists(L->path)) {
        err_set(e, ERR_NOTFOUND, "model path %s does not exist", L->path);
        goto fail;
    }
    if (is_encoder_dir(L->path)) {
        if (!(L->enc = encoder_load(L->path, e))) goto fail;
        b->embed = local_embed;
        b->describe = xasprintf("local %s (BertModel sentence embeddings, dim %d)", L->path, encoder_dim(L->enc));
        return b;
    }
    if (load_decoder(L, o, e)) goto fail;
    b->chat = local_chat;
    b->describe = xasprintf("local %s (%s, %s)", L->path, model_arch_name(L->m->cfg.arch),
                            dtype_name(L->m->weight_type));
    return b;
fail:
    err_wrap(e, "%s", role_of(o));
    llm_free(b);
    return NULL;
}

LlmBackend *llm_local_share(LlmBackend *b) {
    if (!llm_is_local(b)) return NULL;
    LocalImpl *L = b->impl;
    atomic_fetch_add(&L->refs, 1);
    LlmBackend *s = xcalloc(1, sizeof *s);
    s->describe = xstrdup(b->describe);
    s->model = xstrdup(b->model);
    s->chat = b->chat;
    s->embed = b->embed;
    s->destroy = b->destroy;
    s->impl = L;
    return s;
}

/* The hook llm_open calls for local specs (open.h). */
LlmBackend *llm_open_local(const LlmRoleConfig *cfg, Err *e) {
    LocalOptions o = {.role = cfg->role, .chat_template = cfg->chat_template};
    return llm_local_open(cfg->model, &o, e);
}
