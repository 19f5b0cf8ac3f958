#include "aloe/personas.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/gensettings.h"
#include "aloe/listparse.h"
#include "aloe/prompts.h"
#include "aloe/simpool.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/pool.h"
#include "base/progress.h"
#include "base/rng.h"

/* Purposes of the random streams (rng_derive's second index). */
enum { RNG_EXAMPLES = 1, RNG_CALL_SEED = 2 };

enum { EMBED_BATCH = 32 };

void personas_config_default(PersonasConfig *c) {
    memset(c, 0, sizeof *c);
    c->threshold = 0.6;
    c->examples = 5;
    c->per_call = 20;
    c->calls = 1;
    c->max_rounds = 1000;
    c->floor_rounds = 3;
    c->min_acceptance = 0.02;
    c->params = llm_params_default();
}

const char *personas_stop_name(PersonasStop s) {
    switch (s) {
    case PERSONAS_TARGET: return "reached the target size";
    case PERSONAS_FLOOR: return "acceptance fell below the floor";
    case PERSONAS_MAX_ROUNDS: return "reached the maximum number of rounds";
    case PERSONAS_CANCELLED: return "interrupted";
    }
    return "?";
}

char *personas_sidecar_path(const char *out_path, const char *suffix) {
    size_t n = strlen(out_path);
    if (n > 6 && !strcmp(out_path + n - 6, ".jsonl")) n -= 6;
    return xasprintf("%.*s%s", (int)n, out_path, suffix);
}

/* Provenance of one pool member. */
typedef struct Member {
    char *text;
    int round;   /* 0: a seed */
    int nearest; /* -1 for seeds */
    double sim;
} Member;

typedef struct Run {
    const PersonasConfig *c;
    char *state_path, *meta_path;
    Member *m;
    int n, cap;
    SimPool pool;
    int *round_cand, *round_acc; /* per finished round, index = round */
    int rounds;                  /* last finished round */
    Appender state;
} Run;

static void run_push_member(Run *r, const char *text, int round, int nearest, double sim) {
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->m = xrealloc(r->m, sizeof *r->m * (size_t)r->cap);
    }
    r->m[r->n++] = (Member){xstrdup(text), round, nearest, sim};
}

static void run_note_round(Run *r, int round, int cand, int acc) {
    r->round_cand = xrealloc(r->round_cand, sizeof(int) * (size_t)(round + 1));
    r->round_acc = xrealloc(r->round_acc, sizeof(int) * (size_t)(round + 1));
    r->round_cand[round] = cand;
    r->round_acc[round] = acc;
    r->rounds = round;
}

static void run_free(Run *r) {
    for (int i = 0; i < r->n; i++) free(r->m[i].text);
    free(r->m);
    simpool_free(&r->pool);
    free(r->round_cand);
    free(r->round_acc);
    free(r->state_path);
    free(r->meta_path);
    if (r->state.fd >= 0) appender_close(&r->state);
}

/* ---- state file ---- */

typedef struct LoadCtx {
    Run *run;
    const StrList *seeds;
} LoadCtx;

static int load_round(void *ctx, json_t *v, const char *path, int line, int nth, Err *e) {
    (void)nth;
    LoadCtx *lc = ctx;
    Run *r = lc->run;
    json_t *jr = json_object_get(v, "round"), *items = json_object_get(v, "items");
    json_t *jc = json_object_get(v, "candidates");
    if (!json_is_integer(jr) || !json_is_array(items) || !json_is_integer(jc))
        return err_set(e, ERR_PARSE, "%s:%d: expected a round record with \"round\", \"candidates\", \"items\"", path,
                       line);
    int round = (int)json_integer_value(jr);
    if (round != (r->n ? r->rounds + 1 : 0))
        return err_set(e, ERR_PARSE, "%s:%d: round %d out of order (expected %d)", path, line, round,
                       r->n ? r->rounds + 1 : 0);
    if (round == 0 && (int)json_array_size(items) != lc->seeds->n)
        return err_set(e, ERR_PARSE, "%s:%d: the state holds %zu seeds, the seed file %d: remove the state or use "
                       "the seeds it was made from", path, line, json_array_size(items), lc->seeds->n);
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        json_t *t = json_object_get(it, "text"), *emb = json_object_get(it, "embedding");
        if (!json_is_string(t) || !json_is_array(emb) || json_array_size(emb) == 0)
            return err_set(e, ERR_PARSE, "%s:%d: item %zu: expected \"text\" and \"embedding\"", path, line, i);
        if (round == 0 && strcmp(json_string_value(t), lc->seeds->items[i]))
            return err_set(e, ERR_PARSE, "%s:%d: seed %zu differs from the seed file: remove the state or use the "
                           "seeds it was made from", path, line, i + 1);
        /* "nearest" indexes an earlier member (the meta file prints its text). */
        json_t *jn = json_object_get(it, "nearest"), *js = json_object_get(it, "similarity");
        if (round > 0 && !(json_is_integer(jn) && json_integer_value(jn) >= 0 && json_integer_value(jn) < r->n))
            return err_set(e, ERR_PARSE, "%s:%d: item %zu: nearest: expected the index of an earlier item (0 to %d)",
                           path, line, i, r->n - 1);
        int dim = (int)json_array_size(emb);
        float *vec = xmalloc(sizeof(float) * (size_t)dim);
        for (int k = 0; k < dim; k++) {
            json_t *x = json_array_get(emb, (size_t)k);
            double d = json_number_value(x);
            if (!json_is_number(x) || !(fabs(d) <= FLT_MAX)) {
                free(vec);
                return err_set(e, ERR_PARSE, "%s:%d: item %zu: embedding[%d]: expected a number (a float), got %s",
                               path, line, i, k, json_is_number(x) ? "one out of range" : json_type_name(x));
            }
            vec[k] = (float)d;
        }
        int rc = simpool_add(&r->pool, vec, dim, e);
        free(vec);
        if (rc) return err_wrap(e, "%s:%d", path, line);
        run_push_member(r, json_string_value(t), round, round > 0 ? (int)json_integer_value(jn) : -1,
                        json_is_number(js) ? json_number_value(js) : -1);
    }
    run_note_round(r, round, (int)json_integer_value(jc), round ? (int)json_array_size(items) : 0);
    return 0;
}

int personas_state_load_buf(const char *name, const char *buf, size_t len, const StrList *seeds, int *rounds,
                            int *items, Err *e) {
    Run r = {0};
    r.state.fd = -1;
    LoadCtx lc = {&r, seeds};
    JsonlOptions so = {.max_line = PERSONAS_STATE_MAX_LINE, .limit_hint = "the limit for a resume-state round"};
    long n = jsonl_foreach_buf_opt(name, buf, len, &so, load_round, &lc, e);
    *rounds = r.rounds;
    *items = r.n;
    run_free(&r);
    return n < 0 ? -1 : 0;
}

static json_t *vec_json(const float *v, int dim) {
    json_t *a = json_array();
    for (int i = 0; i < dim; i++) json_array_append_new(a, json_real(v[i]));
    return a;
}

/* Appends a finished round: members [first, r->n) with their embeddings. */
static int write_round(Run *r, int round, int candidates, int first, const float *const *vecs, Err *e) {
    json_t *rec = json_object(), *items = json_array();
    json_object_set_new(rec, "round", json_integer(round));
    json_object_set_new(rec, "candidates", json_integer(candidates));
    for (int i = first; i < r->n; i++) {
        json_t *it = json_object();
        json_object_set_new(it, "text", json_string(r->m[i].text));
        json_object_set_new(it, "embedding", vec_json(vecs[i - first], r->pool.dim));
        if (round) {
            json_object_set_new(it, "nearest", json_integer(r->m[i].nearest));
            json_object_set_new(it, "similarity", json_real(r->m[i].sim));
        }
        json_array_append_new(items, it);
    }
    json_object_set_new(rec, "items", items);
    char *line = json_dumps(rec, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(rec);
    StrBuf b;
    sb_init(&b);
    sb_append(&b, line);
    sb_appendc(&b, '\n');
    free(line);
    int rc = appender_write(&r->state, b.s, b.len, e);
    sb_free(&b);
    return rc;
}

/* Rewrites the pool and its provenance from memory, atomically. */
static int write_outputs(Run *r, Err *e) {
    StrBuf out, meta;
    sb_init(&out);
    sb_init(&meta);
    for (int i = 0; i < r->n; i++) {
        const Member *m = &r->m[i];
        json_t *s = json_string(m->text);
        char *line = json_dumps(s, JSON_ENCODE_ANY);
        sb_append(&out, line);
        sb_appendc(&out, '\n');
        free(line);
        json_decref(s);
        json_t *rec = json_object();
        json_object_set_new(rec, "index", json_integer(i));
        json_object_set_new(rec, "text", json_string(m->text));
        json_object_set_new(rec, "source", json_string(m->round ? "generated" : "seed"));
        json_object_set_new(rec, "round", json_integer(m->round));
        json_object_set_new(rec, "nearest", m->nearest >= 0 ? json_integer(m->nearest) : json_null());
        json_object_set_new(rec, "nearest_text", m->nearest >= 0 ? json_string(r->m[m->nearest].text) : json_null());
        json_object_set_new(rec, "similarity", m->nearest >= 0 ? json_real(m->sim) : json_null());
        line = json_dumps(rec, JSON_COMPACT | JSON_REAL_PRECISION(6));
        sb_append(&meta, line);
        sb_appendc(&meta, '\n');
        free(line);
        json_decref(rec);
    }
    int rc = file_write_atomic(r->c->out_path, out.s, out.len, e);
    if (!rc) rc = file_write_atomic(r->meta_path, meta.s, meta.len, e);
    sb_free(&out);
    sb_free(&meta);
    return rc;
}

/* ---- embedding ---- */

/* Embeds texts in batches: vecs[i] = a new array of *dim floats. */
static int embed_all(LlmBackend *b, char *const *texts, int n, float **vecs, int *dim, Err *e) {
    for (int i = 0; i < n; i += EMBED_BATCH) {
        int k = n - i < EMBED_BATCH ? n - i : EMBED_BATCH, d = 0;
        float *out = NULL;
        if (llm_embed(b, (const char *const *)texts + i, k, &out, &d, e)) return err_wrap(e, "embedding");
        if (d <= 0 || (*dim && d != *dim)) {
            free(out);
            return err_set(e, ERR_PARSE, "embedding: %s returned %d dimensions, earlier %d", b->describe, d, *dim);
        }
        *dim = d;
        for (int j = 0; j < k; j++) {
            vecs[i + j] = xmalloc(sizeof(float) * (size_t)d);
            memcpy(vecs[i + j], out + (size_t)j * (size_t)d, sizeof(float) * (size_t)d);
        }
        free(out);
    }
    return 0;
}

static int add_seeds(Run *r, const StrList *seeds, Err *e) {
    float **vecs = xcalloc((size_t)seeds->n, sizeof *vecs);
    int dim = 0, rc = embed_all(r->c->embedder, seeds->items, seeds->n, vecs, &dim, e);
    for (int i = 0; !rc && i < seeds->n; i++) {
        run_push_member(r, seeds->items[i], 0, -1, -1);
        rc = simpool_add(&r->pool, vecs[i], dim, e);
    }
    if (!rc) rc = write_round(r, 0, seeds->n, 0, (const float *const *)vecs, e);
    if (!rc) run_note_round(r, 0, seeds->n, 0);
    for (int i = 0; i < seeds->n; i++) free(vecs[i]);
    free(vecs);
    return rc;
}

/* ---- one round ---- */

typedef struct GenCtx {
    Run *run;
    int round;
    char **replies; /* per call */
    Err *errs;
    atomic_int failed;
} GenCtx;

static char *examples_text(Run *r, int round, int call) {
    const PersonasConfig *c = r->c;
    int k = c->examples < r->n ? c->examples : r->n;
    int *idx = xmalloc(sizeof(int) * (size_t)(k ? k : 1));
    Rng rng;
    rng_derive(&rng, c->seed, (uint64_t)round * 1000003u + (uint64_t)call, RNG_EXAMPLES);
    rng_sample(&rng, r->n, k, idx);
    StrBuf b;
    sb_init(&b);
    for (int i = 0; i < k; i++) {
        if (c->plain_examples) sb_printf(&b, "%s%s", i ? "\n\n" : "", r->m[idx[i]].text);
        else sb_printf(&b, "%s%d. %s", i ? "\n" : "", i + 1, r->m[idx[i]].text);
    }
    free(idx);
    return sb_take(&b);
}

static void gen_job(void *ctx, long call, int thread) {
    (void)thread;
    GenCtx *g = ctx;
    Run *r = g->run;
    const PersonasConfig *c = r->c;
    if (atomic_load(&g->failed)) return;
    char *ex = examples_text(r, g->round, (int)call);
    char n[16];
    snprintf(n, sizeof n, "%d", c->per_call);
    const char *vars[] = {"examples", ex, "n", n, NULL};
    char *prompt = prompt_fill(c->template_text, vars);
    LlmMessage msg = {"user", prompt};
    LlmParams p = c->params;
    Rng rng;
    rng_derive(&rng, c->seed, (uint64_t)g->round * 1000003u + (uint64_t)call, RNG_CALL_SEED);
    p.has_seed = 1;
    p.seed = rng_u64(&rng) >> 33; /* servers take 31-bit seeds */
    LlmReply reply = {0};
    if (llm_chat(c->generator, &msg, 1, &p, &reply, &g->errs[call])) {
        atomic_store(&g->failed, 1);
    } else {
        g->replies[call] = reply.text;
        reply.text = NULL;
    }
    llm_reply_free(&reply);
    free(prompt);
    free(ex);
}

static int stop_requested(const PersonasConfig *c) { return c->stop && atomic_load(c->stop); }

/* Runs round `round`: generate, split, embed, filter; then records it. */
static int run_round(Run *r, int round, Progress *prog, Err *e) {
    const PersonasConfig *c = r->c;
    GenCtx g = {.run = r, .round = round};
    g.replies = xcalloc((size_t)c->calls, sizeof(char *));
    g.errs = xcalloc((size_t)c->calls, sizeof(Err));
    atomic_init(&g.failed, 0);
    pool_run(c->calls, c->calls, gen_job, &g, c->stop);
    int rc = 0;
    StrList cand = {0};
    for (int i = 0; i < c->calls; i++) {
        if (!rc && g.errs[i].code) {
            *e = g.errs[i];
            rc = err_wrap(e, "round %d, generator request %d", round, i + 1);
        }
        if (g.replies[i]) listparse_split(g.replies[i], &cand);
        free(g.replies[i]);
    }
    free(g.replies);
    free(g.errs);
    if (!rc && stop_requested(c)) rc = err_set(e, ERR_CANCELLED, "interrupted");

    float **vecs = xcalloc((size_t)(cand.n ? cand.n : 1), sizeof *vecs);
    int dim = r->pool.dim;
    if (!rc && cand.n) rc = embed_all(c->embedder, cand.items, cand.n, vecs, &dim, e);
    if (!rc && dim != r->pool.dim)
        rc = err_set(e, ERR_PARSE, "embedding: %s returned %d dimensions, the pool's have %d",
                     c->embedder->describe, dim, r->pool.dim);
    int first = r->n, considered = 0;
    const float **kept = xcalloc((size_t)(cand.n ? cand.n : 1), sizeof *kept);
    for (int i = 0; !rc && i < cand.n && r->n < c->target; i++) {
        considered++;
        double sim;
        int near = simpool_nearest(&r->pool, vecs[i], &sim);
        if (near >= 0 && sim > c->threshold) continue;
        kept[r->n - first] = vecs[i];
        run_push_member(r, cand.items[i], round, near, sim);
        rc = simpool_add(&r->pool, vecs[i], dim, e);
    }
    if (!rc) rc = write_round(r, round, considered, first, (const float *const *)kept, e);
    if (!rc) rc = write_outputs(r, e);
    if (!rc) {
        run_note_round(r, round, considered, r->n - first);
        progress_add(prog, r->n - first);
    }
    free(kept);
    for (int i = 0; i < cand.n; i++) free(vecs[i]);
    free(vecs);
    strlist_free(&cand);
    return rc;
}

/* Acceptance over the last floor_rounds generation rounds, or -1 if fewer. */
static double window_acceptance(const Run *r, int window) {
    if (window <= 0 || r->rounds < window) return -1;
    long cand = 0, acc = 0;
    for (int k = r->rounds - window + 1; k <= r->rounds; k++) cand += r->round_cand[k], acc += r->round_acc[k];
    return cand ? (double)acc / (double)cand : 0.0;
}

static int check_config(const PersonasConfig *c, const StrList *seeds, Err *e) {
    if (!c->template_text || !c->generator || !c->embedder || !c->out_path)
        return err_set(e, ERR_ARG, "personas: template, generator, embedder and output are required");
    if (seeds->n < 1) return err_set(e, ERR_ARG, "personas: no seed examples");
    if (c->target < 1) return err_set(e, ERR_ARG, "--target: expected a positive pool size");
    if (c->examples < 1 || c->per_call < 1 || c->calls < 1 || c->max_rounds < 1)
        return err_set(e, ERR_ARG, "--examples, --per-call, -j and --max-rounds must be positive");
    if (c->threshold < -1 || c->threshold > 1) return err_set(e, ERR_ARG, "--threshold: expected a cosine in [-1, 1]");
    return 0;
}

int personas_run(const PersonasConfig *c, const StrList *seeds, PersonasResult *res, Err *e) {
    memset(res, 0, sizeof *res);
    if (check_config(c, seeds, e)) return -1;
    Run r = {.c = c, .state = {.fd = -1}};
    simpool_init(&r.pool);
    r.state_path = personas_sidecar_path(c->out_path, ".state.jsonl");
    r.meta_path = personas_sidecar_path(c->out_path, ".meta.jsonl");
    char *settings_path = personas_sidecar_path(c->out_path, ".settings.json");
    json_t *settings = json_pack("{s:s, s:s, s:s, s:s, s:f, s:i, s:i, s:i, s:I, s:f, s:i}", "command", "personas",
                                 "template", c->template_text, "generator", c->generator->model, "embedder",
                                 c->embedder->model, "threshold", c->threshold, "examples", c->examples, "per_call",
                                 c->per_call, "calls", c->calls, "seed", (json_int_t)c->seed, "temperature",
                                 c->params.temperature, "max_tokens", c->params.max_tokens);
    if (c->protocol) json_object_set_new(settings, "protocol", json_string(c->protocol));
    if (c->extra_settings) json_object_update(settings, c->extra_settings);
    int rc = gensettings_check_or_write(settings_path, settings, e);
    json_decref(settings);
    free(settings_path);
    long cut = rc ? 0 : appender_repair(r.state_path, e);
    if (cut < 0) rc = -1;
    else if (cut > 0) log_warn("%s: dropped a torn last round left by an interrupted run", r.state_path);
    LoadCtx lc = {&r, seeds};
    /* A round's line holds every item it added with its embedding; round 0
     * holds all the seeds (about 12 bytes per dimension per item). */
    JsonlOptions so = {.max_line = PERSONAS_STATE_MAX_LINE, .limit_hint = "the limit for a resume-state round"};
    if (!rc && file_exists(r.state_path) && jsonl_foreach_opt(r.state_path, &so, load_round, &lc, e) < 0) rc = -1;
    if (!rc) rc = appender_open(&r.state, r.state_path, e);
    if (!rc && r.n == 0) rc = add_seeds(&r, seeds, e);
    if (!rc) rc = write_outputs(&r, e);

    Progress prog;
    progress_start(&prog, "pool", c->target, r.n < c->target ? r.n : c->target, c->quiet);
    c->generator->live_requests = c->embedder->live_requests = &prog.requests;
    c->generator->live_tokens = &prog.tokens;
    c->generator->live_retries = c->embedder->live_retries = &prog.retries;
    c->generator->live_errors = c->embedder->live_errors = &prog.errors;
    res->why = PERSONAS_MAX_ROUNDS;
    while (!rc) {
        if (r.n >= c->target) {
            res->why = PERSONAS_TARGET;
            break;
        }
        double w = window_acceptance(&r, c->floor_rounds);
        if (w >= 0 && w < c->min_acceptance) {
            res->why = PERSONAS_FLOOR;
            break;
        }
        if (r.rounds >= c->max_rounds) break;
        if (stop_requested(c)) rc = err_set(e, ERR_CANCELLED, "interrupted");
        else rc = run_round(&r, r.rounds + 1, &prog, e);
    }
    progress_stop(&prog);
    c->generator->live_requests = c->embedder->live_requests = NULL;
    c->generator->live_tokens = NULL;
    c->generator->live_retries = c->embedder->live_retries = NULL;
    c->generator->live_errors = c->embedder->live_errors = NULL;
    if (rc && e->code == ERR_CANCELLED) res->why = PERSONAS_CANCELLED;

    res->pool_size = r.n;
    res->seeds = seeds->n;
    res->rounds = r.rounds;
    for (int k = 1; k <= r.rounds; k++) res->candidates += r.round_cand[k], res->accepted += r.round_acc[k];
    res->window_acceptance = window_acceptance(&r, c->floor_rounds);
    run_free(&r);
    return rc;
}
