#include "aloe/bench.h"
#include "aloe/bench_stats.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/metrics.h"
#include "aloe/report.h"
#include "aloe/score.h"
#include "aloe/usersim.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "base/pool.h"
#include "base/rng.h"
#include "formats/jsonl.h"

enum { ROLE_USER, ROLE_MODEL, ROLE_JUDGE, ROLE__COUNT };
static const char *const role_names[ROLE__COUNT] = {"user", "model", "judge"};
static const char *const role_labels[ROLE__COUNT] = {"user simulator", "evaluated model", "judge"};

BenchConfig bench_config_default(void) {
    BenchConfig c = {0};
    c.per_profile = 5;
    c.turns = 10;
    c.threads = 16;
    c.temperature = -1;
    c.judge_attempts = 3;
    return c;
}

int bench_config_check(const BenchConfig *c, Err *e) {
    if (c->n_profiles < 1) return err_set(e, ERR_ARG, "bench: no profiles");
    if (c->per_profile < 1)
        return err_set(e, ERR_ARG, "--personalities-per-profile: expected at least 1, got %d", c->per_profile);
    if (c->n_personalities < c->per_profile)
        return err_set(e, ERR_ARG,
                       "too few personalities: --personalities-per-profile %d needs at least %d, the file has %d",
                       c->per_profile, c->per_profile, c->n_personalities);
    if (c->turns < 1) return err_set(e, ERR_ARG, "--turns: expected at least 1, got %d", c->turns);
    if (c->threads < 1) return err_set(e, ERR_ARG, "-j: expected at least 1, got %d", c->threads);
    if (c->judge_attempts < 1) return err_set(e, ERR_ARG, "judge attempts: expected at least 1");
    return 0;
}

long bench_persona_count(const BenchConfig *c) { return (long)c->n_profiles * c->per_profile; }

void bench_persona_id(const BenchConfig *c, long i, char *buf, int size) {
    snprintf(buf, (size_t)size, "p%ld-k%ld", i / c->per_profile, i % c->per_profile);
}

/* ---- the request gate ----
 *
 * -j N bounds the requests in flight, not the conversations: a conversation's
 * requests are sequential, so with one conversation per slot a slot idles
 * while its conversation waits for nothing, and the last wave of
 * conversations runs on few slots. Running up to 2N conversations through N
 * slots handed out first come, first served keeps N requests in flight
 * until the very end. Each waiter sleeps on its own condition variable, so a
 * release wakes exactly one thread. */

typedef struct GateWaiter {
    pthread_cond_t cond;
    int granted;
    struct GateWaiter *next;
} GateWaiter;

typedef struct {
    pthread_mutex_t lock;
    int free;
    GateWaiter *head, *tail;
} Gate;

static void gate_init(Gate *g, int slots) {
    pthread_mutex_init(&g->lock, NULL);
    g->free = slots;
    g->head = g->tail = NULL;
}

static void gate_destroy(Gate *g) { pthread_mutex_destroy(&g->lock); }

static void gate_enter(Gate *g) {
    pthread_mutex_lock(&g->lock);
    if (g->free > 0 && !g->head) {
        g->free--;
        pthread_mutex_unlock(&g->lock);
        return;
    }
    GateWaiter w = {.granted = 0, .next = NULL};
    pthread_cond_init(&w.cond, NULL);
    if (g->tail)
        g->tail->next = &w;
    else
        g->head = &w;
    g->tail = &w;
    while (!w.granted) pthread_cond_wait(&w.cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
    pthread_cond_destroy(&w.cond);
}

static void gate_leave(Gate *g) {
    pthread_mutex_lock(&g->lock);
    GateWaiter *w = g->head;
    if (w) { /* hand the slot straight to the longest waiter */
        g->head = w->next;
        if (!g->head) g->tail = NULL;
        w->granted = 1;
        pthread_cond_signal(&w->cond);
    } else {
        g->free++;
    }
    pthread_mutex_unlock(&g->lock);
}

/* ---- one conversation ---- */

typedef struct {
    const BenchConfig *c;
    Journal *journal;
    long *todo; /* persona indices not yet in the journal */
    atomic_int halt; /* a failure or *stop: start nothing new */
    atomic_long done_now;
    Gate gate;
    pthread_mutex_t lock;
    int failed;
    Err first;
    char **skip_error; /* per persona index: why its conversation was skipped, or NULL */
    atomic_long skipped;
} Run;

static int halted(Run *r) { return atomic_load(&r->halt) || (r->c->stop && atomic_load(r->c->stop)); }

/* A growing message list whose contents it owns. */
typedef struct {
    LlmMessage *m;
    int n, cap;
} Msgs;

static void msgs_add(Msgs *l, const char *role, const char *content) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->m = xrealloc(l->m, (size_t)l->cap * sizeof *l->m);
    }
    l->m[l->n++] = (LlmMessage){role, xstrdup(content)};
}

static void msgs_free(Msgs *l) {
    for (int i = 0; i < l->n; i++) free((char *)l->m[i].content);
    free(l->m);
    memset(l, 0, sizeof *l);
}

typedef struct {
    long requests, cached, prompt_tokens, completion_tokens;
} RoleUsage;

typedef struct {
    Run *run;
    Rng rng; /* request seeds of this persona */
    RoleUsage usage[ROLE__COUNT];
} Convo;

/* Whether a final failure belongs to this conversation's content (see the
 * failure policy in bench.h): only such failures are skipped. */
int bench_failure_skippable(const Err *e) {
    /* An endpoint that cannot be reached at all fails every conversation
     * alike; the OpenAI backend reports it as ERR_HTTP "cannot reach URL". */
    if (e->code == ERR_HTTP) return !strstr(e->msg, "cannot reach ");
    return e->code == ERR_PARSE || e->code == ERR_TIMEOUT;
}

/* Sends one request of a role; the reply text is trimmed and returned owned. */
static char *ask(Convo *cv, int role, const LlmMessage *m, int nm, Err *e) {
    const BenchConfig *c = cv->run->c;
    LlmBackend *b = role == ROLE_USER ? c->user : role == ROLE_MODEL ? c->model : c->judge;
    if (halted(cv->run)) {
        err_set(e, ERR_CANCELLED, "interrupted");
        return NULL;
    }
    LlmParams p = llm_params_default();
    p.temperature = c->temperature;
    p.max_tokens = role == ROLE_USER ? c->user_max_tokens : role == ROLE_MODEL ? c->max_tokens : c->judge_max_tokens;
    p.has_seed = 1;
    p.seed = rng_u64(&cv->rng) >> 33; /* small positive: some servers take only 32-bit seeds */
    LlmReply rep = {0};
    gate_enter(&cv->run->gate);
    if (halted(cv->run)) { /* stopped while waiting for a slot */
        gate_leave(&cv->run->gate);
        err_set(e, ERR_CANCELLED, "interrupted");
        return NULL;
    }
    int rc = llm_chat(b, m, nm, &p, &rep, e);
    /* The backend already retried what was worth retrying: a failure stops
     * the run, before the slot goes to a request that would fail alike,
     * unless it is one conversation's own and skip_failed skips it. */
    if (rc && e->code != ERR_CANCELLED && !(c->skip_failed && bench_failure_skippable(e))) atomic_store(&cv->run->halt, 1);
    gate_leave(&cv->run->gate);
    if (rc) {
        err_wrap(e, "%s", role_labels[role]); /* the backend's message names model and endpoint */
        return NULL;
    }
    RoleUsage *u = &cv->usage[role];
    u->requests++;
    u->cached += rep.cached != 0;
    u->prompt_tokens += rep.usage.prompt_tokens;
    u->completion_tokens += rep.usage.completion_tokens;
    const char *s = rep.text ? rep.text : "";
    while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
    char *out = xstrndup(s, n);
    llm_reply_free(&rep);
    return out;
}

/* Scores one reply; appends the judge's raw replies to raws. *score = 0
 * when every attempt came back without a valid score. */
static int judge_turn(Convo *cv, const char *profile, const char *personality, const char *user_msg,
                      const char *reply, json_t *raws, int *score, Err *e) {
    const Prompts *P = cv->run->c->prompts;
    const char *vars[] = {"profile", profile, "personality", personality, "user_message", user_msg,
                          "reply", reply, NULL};
    char *q = prompt_fill(P->text[PROMPT_JUDGE_SCORE], vars);
    Msgs m = {0};
    msgs_add(&m, "user", q);
    free(q);
    *score = 0;
    for (int a = 0; a < cv->run->c->judge_attempts; a++) {
        if (a > 0) msgs_add(&m, "user", P->text[PROMPT_JUDGE_REMINDER]);
        char *raw = ask(cv, ROLE_JUDGE, m.m, m.n, e);
        if (!raw) {
            msgs_free(&m);
            return -1;
        }
        json_array_append_new(raws, json_string(raw));
        *score = score_parse(raw);
        msgs_add(&m, "assistant", raw);
        free(raw);
        if (*score) break;
    }
    msgs_free(&m);
    return 0;
}

static json_t *usage_json(const RoleUsage *u) {
    json_t *o = json_object();
    for (int r = 0; r < ROLE__COUNT; r++)
        json_object_set_new(o, role_names[r],
                            json_pack("{s:I, s:I, s:I, s:I}", "requests", (json_int_t)u[r].requests, "cached",
                                      (json_int_t)u[r].cached, "prompt_tokens", (json_int_t)u[r].prompt_tokens,
                                      "completion_tokens", (json_int_t)u[r].completion_tokens));
    return o;
}

/* Runs persona i's conversation; returns its journal record or NULL. */
static json_t *converse(Run *run, long i, Err *e) {
    const BenchConfig *c = run->c;
    const Prompts *P = c->prompts;
    long pi = i / c->per_profile, ki = i % c->per_profile;
    const char *profile = c->profiles[pi], *personality = c->personalities[ki];
    Convo cv = {.run = run};
    rng_derive(&cv.rng, c->seed, (uint64_t)i, 0x62656e6368ULL /* "bench" */);

    /* what the user said (stage directions removed) and the replies, turn by turn */
    char **users = xcalloc((size_t)c->turns, sizeof *users), **replies = xcalloc((size_t)c->turns, sizeof *replies);
    Msgs mm = {0}; /* the evaluated model's view */
    if (P->text[PROMPT_EVALUATED][0]) msgs_add(&mm, "system", P->text[PROMPT_EVALUATED]);

    json_t *turns = json_array();
    int ok = 1;
    for (int k = 1; k <= c->turns && ok; k++) {
        UsersimView uv;
        usersim_view(&uv, P, profile, personality, (const char *const *)users, (const char *const *)replies, k - 1);
        char *raw = ask(&cv, ROLE_USER, uv.m, uv.n, e);
        usersim_view_free(&uv);
        if (!raw) break;
        char *user_msg = usersim_strip_stage_directions(raw);
        msgs_add(&mm, "user", user_msg);
        char *reply = ask(&cv, ROLE_MODEL, mm.m, mm.n, e);
        if (!reply) {
            free(raw);
            free(user_msg);
            break;
        }
        json_t *raws = json_array();
        int score = 0;
        ok = judge_turn(&cv, profile, personality, user_msg, reply, raws, &score, e) == 0;
        if (ok) {
            json_t *t = json_pack("{s:i, s:s}", "turn", k, "user", user_msg);
            if (strcmp(raw, user_msg)) json_object_set_new(t, "user_raw", json_string(raw));
            json_object_set_new(t, "assistant", json_string(reply));
            json_object_set_new(t, "judge", raws);
            json_object_set_new(t, "score", score ? json_integer(score) : json_null());
            json_object_set_new(t, "attempts", json_integer((json_int_t)json_array_size(raws)));
            json_array_append_new(turns, t);
            msgs_add(&mm, "assistant", reply);
            users[k - 1] = user_msg;
            replies[k - 1] = reply;
            user_msg = reply = NULL;
            if (c->progress) progress_add(c->progress, 1);
        } else {
            json_decref(raws);
        }
        free(raw);
        free(user_msg);
        free(reply);
    }
    for (int k = 0; k < c->turns; k++) {
        free(users[k]);
        free(replies[k]);
    }
    free(users);
    free(replies);
    msgs_free(&mm);
    if ((int)json_array_size(turns) < c->turns) {
        json_decref(turns);
        return NULL;
    }
    char id[64];
    bench_persona_id(c, i, id, sizeof id);
    return json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:o, s:o}", "id", id, "index", (json_int_t)i,
                     "profile_index", (json_int_t)pi, "personality_index", (json_int_t)ki, "profile", profile,
                     "personality", personality, "turns", turns, "usage", usage_json(cv.usage));
}

static void conversation_job(void *ctx, long t, int thread) {
    (void)thread;
    Run *run = ctx;
    if (halted(run)) return;
    Err e = {0};
    long i = run->todo[t];
    json_t *rec = converse(run, i, &e);
    if (rec && journal_append(run->journal, rec, &e) == 0) {
        long done = atomic_fetch_add(&run->done_now, 1) + 1;
        if (run->c->on_saved) run->c->on_saved(run->c->on_saved_ctx, done);
    } else if (!rec && run->c->skip_failed && e.code != ERR_CANCELLED && bench_failure_skippable(&e)) {
        run->skip_error[i] = xstrdup(e.msg); /* each persona has one job: no lock needed */
        atomic_fetch_add(&run->skipped, 1);
    } else if (e.code != ERR_CANCELLED) {
        pthread_mutex_lock(&run->lock);
        if (!run->failed) {
            run->failed = 1;
            run->first = e;
        }
        pthread_mutex_unlock(&run->lock);
        atomic_store(&run->halt, 1);
    }
    json_decref(rec);
}

int bench_run(const BenchConfig *c, Journal *j, BenchOutcome *out, Err *e) {
    memset(out, 0, sizeof *out);
    if (!c->model || !c->user || !c->judge || !c->prompts)
        return err_set(e, ERR_ARG, "bench: the evaluated model, user simulator, judge and prompts are all required");
    if (bench_config_check(c, e)) return -1;
    long n = bench_persona_count(c);
    Run run = {.c = c, .journal = j};
    pthread_mutex_init(&run.lock, NULL);
    run.todo = xmalloc((size_t)n * sizeof *run.todo);
    run.skip_error = xcalloc((size_t)n, sizeof *run.skip_error);
    long ntodo = 0;
    for (long i = 0; i < n; i++) {
        char id[64];
        bench_persona_id(c, i, id, sizeof id);
        if (!journal_get(j, id)) run.todo[ntodo++] = i;
    }
    out->total = n;
    out->done_before = n - ntodo;
    if (c->progress) { /* the caller started it with bench_progress_counts() */
        atomic_store(&c->progress->total, n * c->turns);
        atomic_store(&c->progress->done, out->done_before * c->turns);
    }
    gate_init(&run.gate, c->threads);
    long conversations = 2L * c->threads; /* see the request gate */
    pool_run(conversations < ntodo ? (int)conversations : (int)ntodo, ntodo, conversation_job, &run, &run.halt);
    gate_destroy(&run.gate);
    out->done_now = atomic_load(&run.done_now);
    out->unfinished = ntodo - out->done_now;
    out->cancelled = c->stop && atomic_load(c->stop);
    out->skipped = atomic_load(&run.skipped);
    if (c->skip_failed) {
        out->skipped_list = json_array();
        for (long i = 0; i < n; i++) {
            if (!run.skip_error[i]) continue;
            char id[64];
            bench_persona_id(c, i, id, sizeof id);
            json_array_append_new(out->skipped_list, json_pack("{s:s, s:s}", "id", id, "error", run.skip_error[i]));
        }
    }
    for (long i = 0; i < n; i++) free(run.skip_error[i]);
    free(run.skip_error);
    free(run.todo);
    pthread_mutex_destroy(&run.lock);
    if (run.failed) {
        *e = run.first;
        return -1;
    }
    if (out->unfinished > out->skipped)
        return err_set(e, ERR_CANCELLED, "interrupted with %ld of %ld conversations unfinished", out->unfinished,
                       n);
    return 0;
}

void bench_outcome_free(BenchOutcome *o) {
    json_decref(o->skipped_list);
    o->skipped_list = NULL;
}

void bench_results_add_skipped(json_t *results, const BenchOutcome *o) {
    json_t *list = o->skipped_list ? json_deep_copy(o->skipped_list) : json_array();
    json_t *conv = json_object_get(results, "conversations");
    if (json_is_object(conv)) json_object_set_new(conv, "skipped", json_integer((json_int_t)json_array_size(list)));
    json_object_set_new(results, "skipped", list);
}

void bench_progress_counts(const BenchConfig *c, Journal *j, long *total, long *done) {
    long n = bench_persona_count(c), have = 0;
    for (long i = 0; i < n; i++) {
        char id[64];
        bench_persona_id(c, i, id, sizeof id);
        have += journal_get(j, id) != NULL;
    }
    *total = n * c->turns;
    *done = have * c->turns;
}

/* ---- the journal's records, checked on resume ---- */

/* Counts above 2^50 are no real run's: refusing them keeps the sums exact. */
#define BENCH_MAX_COUNT ((json_int_t)1 << 50)

static int check_count(const json_t *o, const char *key, json_int_t lo, json_int_t hi, const char *where,
                       const char *id, const char *name, Err *e) {
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi) return 0;
    return err_set(e, ERR_PARSE, "%s: record \"%s\": %s%s: expected an integer from %lld to %lld, %s%s", name, id,
                   where, key, (long long)lo, (long long)hi, v ? "got " : "", v ? json_type_name(v) : "it is missing");
}

int bench_check_journal(const BenchConfig *c, Journal *j, const char *name, Err *e) {
    long n = bench_persona_count(c);
    for (long i = 0; i < n; i++) {
        char id[64], where[64];
        bench_persona_id(c, i, id, sizeof id);
        json_t *rec = journal_get(j, id);
        if (!rec) continue;
        json_t *turns = json_object_get(rec, "turns");
        if (!json_is_array(turns) || (int)json_array_size(turns) != c->turns)
            return err_set(e, ERR_PARSE, "%s: record \"%s\": turns: expected a list of %d turns (the run's --turns), "
                           "got %s", name, id, c->turns, json_is_array(turns) ? "another number" :
                           turns ? json_type_name(turns) : "nothing");
        size_t k;
        json_t *t;
        json_array_foreach(turns, k, t) {
            snprintf(where, sizeof where, "turns[%zu].", k);
            if (!json_is_object(t))
                return err_set(e, ERR_PARSE, "%s: record \"%s\": turns[%zu]: expected an object, got %s", name, id,
                               k, json_type_name(t));
            json_t *s = json_object_get(t, "score");
            if (!json_is_null(s) && !(json_is_integer(s) && json_integer_value(s) >= 1 && json_integer_value(s) <= 5))
                return err_set(e, ERR_PARSE, "%s: record \"%s\": turns[%zu].score: expected an integer from 1 to 5 "
                               "or null (no valid score), %s%s", name, id, k, s ? "got " : "",
                               s ? json_type_name(s) : "it is missing");
            if (check_count(t, "attempts", 1, c->judge_attempts, where, id, name, e)) return -1;
        }
        json_t *u = json_object_get(rec, "usage");
        if (!json_is_object(u))
            return err_set(e, ERR_PARSE, "%s: record \"%s\": usage: expected an object, got %s", name, id,
                           u ? json_type_name(u) : "nothing");
        static const char *const ukeys[4] = {"requests", "cached", "prompt_tokens", "completion_tokens"};
        for (int r = 0; r < ROLE__COUNT; r++) {
            json_t *ru = json_object_get(u, role_names[r]);
            if (!ru) continue;
            snprintf(where, sizeof where, "usage.%s.", role_names[r]);
            if (!json_is_object(ru))
                return err_set(e, ERR_PARSE, "%s: record \"%s\": usage.%s: expected an object, got %s", name, id,
                               role_names[r], json_type_name(ru));
            for (int f = 0; f < 4; f++)
                if (json_object_get(ru, ukeys[f]) && check_count(ru, ukeys[f], 0, BENCH_MAX_COUNT, where, id, name, e))
                    return -1;
        }
    }
    return 0;
}

/* ---- results ---- */

static json_t *num_or_null(double v) { return isnan(v) || isinf(v) ? json_null() : json_real(v); }

json_t *bench_results(const BenchConfig *c, Journal *j) {
    long n = bench_persona_count(c);
    int T = c->turns;
    double *scores = xmalloc((size_t)T * (size_t)(n > 0 ? n : 1) * sizeof *scores);
    long *ns = xcalloc((size_t)T, sizeof *ns), *invalid = xcalloc((size_t)T, sizeof *invalid);
    long done = 0, retried = 0, n_invalid = 0, unscored_replies = 0, judged = 0;
    long use[ROLE__COUNT][4] = {{0}};
    static const char *const ukeys[4] = {"requests", "cached", "prompt_tokens", "completion_tokens"};
    for (long i = 0; i < n; i++) {
        char id[64];
        bench_persona_id(c, i, id, sizeof id);
        json_t *rec = journal_get(j, id);
        if (!rec) continue;
        done++;
        json_t *turns = json_object_get(rec, "turns");
        for (int k = 0; k < T && k < (int)json_array_size(turns); k++) {
            json_t *t = json_array_get(turns, (size_t)k);
            json_t *s = json_object_get(t, "score");
            long attempts = (long)json_integer_value(json_object_get(t, "attempts"));
            judged++;
            if (attempts > 1) retried++;
            if (json_is_integer(s)) {
                scores[(size_t)k * (size_t)n + (size_t)ns[k]++] = (double)json_integer_value(s);
                unscored_replies += attempts - 1;
            } else {
                invalid[k]++;
                n_invalid++;
                unscored_replies += attempts;
            }
        }
        json_t *u = json_object_get(rec, "usage");
        for (int r = 0; r < ROLE__COUNT; r++)
            for (int f = 0; f < 4; f++)
                use[r][f] += (long)json_integer_value(json_object_get(json_object_get(u, role_names[r]), ukeys[f]));
    }
    TurnStat *ts = xmalloc((size_t)T * sizeof *ts);
    json_t *jt = json_array();
    for (int k = 0; k < T; k++) {
        ts[k] = metrics_turn(k + 1, scores + (size_t)k * (size_t)n, ns[k]);
        json_array_append_new(jt, json_pack("{s:i, s:o, s:I, s:o, s:o, s:I}", "turn", k + 1, "al",
                                            num_or_null(ts[k].al), "n", (json_int_t)ts[k].n, "ci95",
                                            num_or_null(ts[k].ci95), "sd", num_or_null(ts[k].sd), "invalid",
                                            (json_int_t)invalid[k]));
    }
    BenchMetrics m = metrics_summary(ts, T);
    json_t *usage = json_object();
    for (int r = 0; r < ROLE__COUNT; r++) {
        json_t *o = json_object();
        for (int f = 0; f < 4; f++) json_object_set_new(o, ukeys[f], json_integer(use[r][f]));
        json_object_set_new(usage, role_names[r], o);
    }
    json_t *res = json_pack(
        "{s:s, s:b, s:{s:I, s:I}, s:o, s:o, s:o, s:o, s:o, s:o}", "benchmark", "ALOE", "complete", done == n,
        "conversations", "done", (json_int_t)done, "total", (json_int_t)n, "turns", jt, "avg", num_or_null(m.avg),
        "ir", num_or_null(m.ir), "r2", num_or_null(m.r2), "n_ir", num_or_null(m.n_ir), "n_r2",
        num_or_null(m.n_r2));
    json_object_set_new(
        res, "definitions",
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "al",
                  "AL(k): mean of the valid judge scores (1-5) at turn k; invalid judge replies are left out",
                  "ci95", "half-width of the 95% t-interval of AL(k): t(0.975, n-1) * sd / sqrt(n), sd with n-1; "
                          "null when n < 2",
                  "avg", "mean of AL(k) over the turns", "ir",
                  "least-squares slope of AL(k) on k; r2 is the R^2 of that line", "n_ir",
                  "least-squares slope of AL(k)/AL(1) on k (AL normalised by the first turn's AL)", "n_r2",
                  "R^2 of the normalised line (equal to r2: scaling AL does not change R^2)"));
    json_object_set_new(res, "judge",
                        json_pack("{s:I, s:I, s:I, s:I, s:i}", "judged_turns", (json_int_t)judged, "retried",
                                  (json_int_t)retried, "invalid", (json_int_t)n_invalid, "replies_without_score",
                                  (json_int_t)unscored_replies, "max_attempts", c->judge_attempts));
    json_object_set_new(res, "usage", usage);
    free(scores);
    free(ns);
    free(invalid);
    free(ts);
    bench_stats_attach(res, c, j);
    return res;
}

/* ---- the output directory ---- */

int bench_check_settings(const char *path, json_t *settings, Err *e) {
    return bench_check_settings_compat(path, settings, NULL, NULL, e);
}

int bench_check_settings_compat(const char *path, json_t *settings, json_t *implied, json_t *implied_why, Err *e) {
    if (!file_exists(path)) {
        char *s = json_dumps(settings, JSON_INDENT(2) | JSON_SORT_KEYS);
        StrBuf b;
        sb_init(&b);
        sb_printf(&b, "%s\n", s);
        free(s);
        int rc = file_write_atomic(path, b.s, b.len, e);
        sb_free(&b);
        return rc;
    }
    json_error_t jerr;
    json_t *old = json_load_file(path, 0, &jerr);
    if (!old || !json_is_object(old)) {
        json_decref(old);
        return err_set(e, ERR_PARSE, "%s: unreadable run settings (%s); use a new --out directory", path,
                       old ? "not an object" : jerr.text);
    }
    StrBuf diff;
    sb_init(&diff);
    const char *key;
    json_t *v;
    json_object_foreach(settings, key, v) {
        json_t *o = json_object_get(old, key);
        const char *why = NULL;
        if (!o && (o = json_object_get(implied, key))) why = json_string_value(json_object_get(implied_why, key));
        if (o && json_equal(o, v)) continue;
        char *was = o ? json_dumps(o, JSON_ENCODE_ANY | JSON_COMPACT) : xstrdup("(absent)");
        char *now = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        if (strlen(was) > 80) strcpy(was + 77, "...");
        if (strlen(now) > 80) strcpy(now + 77, "...");
        sb_printf(&diff, "%s  %s: was %s%s%s%s, now %s", diff.len ? "\n" : "", key, was, why ? " (" : "",
                  why ? why : "", why ? ")" : "", now);
        free(was);
        free(now);
    }
    json_object_foreach(old, key, v) {
        if (!json_object_get(settings, key)) sb_printf(&diff, "%s  %s: was set, now absent", diff.len ? "\n" : "", key);
    }
    json_decref(old);
    int rc = 0;
    if (diff.len)
        rc = err_set(e, ERR_ARG,
                     "%s: this directory holds a run with other settings; resume it with the same settings or "
                     "use a new --out directory:\n%s",
                     path, diff.s);
    sb_free(&diff);
    return rc;
}

static int write_text(const char *dir, const char *name, const char *text, Err *e) {
    char *path = path_join(dir, name);
    int rc = file_write_atomic(path, text, strlen(text), e);
    free(path);
    return rc;
}

int bench_write_outputs(const char *dir, json_t *results, Err *e) {
    char *js = json_dumps(results, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    StrBuf b;
    sb_init(&b);
    sb_printf(&b, "%s\n", js);
    free(js);
    int rc = write_text(dir, "results.json", b.s, e);
    sb_free(&b);
    if (rc) return -1;
    char *md = report_run_markdown(results);
    json_t *skipped = json_object_get(results, "skipped");
    if (json_array_size(skipped) > 0) { /* never silent: the report says what AL leaves out */
        StrBuf r;
        sb_init(&r);
        sb_printf(&r, "%s\n**Skipped:** %zu conversation%s failed permanently (--skip-failed) and %s left out of AL; "
                  "a rerun tries %s again:\n\n", md, json_array_size(skipped), json_array_size(skipped) == 1 ? "" : "s",
                  json_array_size(skipped) == 1 ? "is" : "are", json_array_size(skipped) == 1 ? "it" : "them");
        size_t k;
        json_t *s;
        json_array_foreach(skipped, k, s) {
            char *err = xstrdup(json_string_value(json_object_get(s, "error")) ? json_string_value(json_object_get(s, "error")) : "");
            for (char *c = err; *c; c++)
                if (*c == '\n' || *c == '|' || *c == '`') *c = ' ';
            sb_printf(&r, "- `%s`: %s\n", json_string_value(json_object_get(s, "id")), err);
            free(err);
        }
        free(md);
        md = sb_take(&r);
    }
    rc = write_text(dir, "report.md", md, e);
    free(md);
    if (rc) return -1;
    ReportSeries s = {report_run_name(results, dir), results};
    char *svg = report_svg(&s, 1, "ALOE benchmark: AL(k) with 95% confidence intervals");
    rc = write_text(dir, "al.svg", svg, e);
    free(svg);
    free((char *)s.name);
    return rc;
}
