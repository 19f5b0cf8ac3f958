#include "llm/cache.h"

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "base/sha256.h"

struct LlmCache {
    sqlite3 *db;
    pthread_mutex_t mu; /* one connection, one user at a time */
    sqlite3_stmt *get_reply, *put_reply, *get_vec, *put_vec;
    char *path;
};

static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS chat ("
    "  key TEXT PRIMARY KEY, text TEXT NOT NULL, finish_reason TEXT,"
    "  prompt_tokens INTEGER, completion_tokens INTEGER, created INTEGER) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS embedding ("
    "  key TEXT PRIMARY KEY, dim INTEGER NOT NULL, vec BLOB NOT NULL, created INTEGER) WITHOUT ROWID;";

static int db_fail(LlmCache *c, Err *e, const char *what) {
    return err_set(e, ERR_IO, "request cache %s: %s: %s", c->path, what, sqlite3_errmsg(c->db));
}

static int prepare(LlmCache *c, const char *sql, sqlite3_stmt **st, Err *e) {
    if (sqlite3_prepare_v2(c->db, sql, -1, st, NULL) != SQLITE_OK) return db_fail(c, e, "prepare");
    return 0;
}

int llm_cache_open(const char *path, LlmCache **out, Err *e) {
    *out = NULL;
    LlmCache *c = xcalloc(1, sizeof *c);
    c->path = xstrdup(path);
    pthread_mutex_init(&c->mu, NULL);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
        db_fail(c, e, "cannot open");
        llm_cache_close(c);
        return -1;
    }
    sqlite3_busy_timeout(c->db, 30000);
    char *msg = NULL;
    /* journal_mode answers with the mode actually in force: a file system
     * without shared memory support may refuse WAL. */
    sqlite3_stmt *st = NULL;
    if (prepare(c, "PRAGMA journal_mode=WAL", &st, e)) goto fail;
    int wal = sqlite3_step(st) == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    if (!wal) {
        db_fail(c, e, "cannot switch to WAL mode (is it a database on a network file system?)");
        goto fail;
    }
    if (sqlite3_exec(c->db, "PRAGMA synchronous=NORMAL;", NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(c->db, SCHEMA, NULL, NULL, &msg) != SQLITE_OK) {
        err_set(e, ERR_IO, "request cache %s: %s (is it an aloe cache file?)", path, msg ? msg : "error");
        sqlite3_free(msg);
        goto fail;
    }
    if (prepare(c, "SELECT text, finish_reason, prompt_tokens, completion_tokens FROM chat WHERE key=?",
                &c->get_reply, e) ||
        prepare(c, "INSERT OR REPLACE INTO chat VALUES (?,?,?,?,?,?)", &c->put_reply, e) ||
        prepare(c, "SELECT dim, vec FROM embedding WHERE key=?", &c->get_vec, e) ||
        prepare(c, "INSERT OR REPLACE INTO embedding VALUES (?,?,?,?)", &c->put_vec, e))
        goto fail;
    *out = c;
    return 0;
fail:
    llm_cache_close(c);
    return -1;
}

void llm_cache_close(LlmCache *c) {
    if (!c) return;
    sqlite3_finalize(c->get_reply);
    sqlite3_finalize(c->put_reply);
    sqlite3_finalize(c->get_vec);
    sqlite3_finalize(c->put_vec);
    sqlite3_close(c->db);
    pthread_mutex_destroy(&c->mu);
    free(c->path);
    free(c);
}

/* ---- keys ---- */

static void key_of(json_t *j, char key[65]) {
    /* Compact, keys sorted, strings as given (no float keys): the same request
     * always serialises to the same bytes. */
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    sha256_hex(s, strlen(s), key);
    free(s);
}

void llm_cache_chat_key(const char *endpoint, const char *model, const LlmMessage *msgs, int n,
                        const LlmParams *p, char key[65]) {
    LlmParams d = llm_params_default();
    if (!p) p = &d;
    json_t *m = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(m, json_pack("[s,s]", msgs[i].role ? msgs[i].role : "user",
                                           msgs[i].content ? msgs[i].content : ""));
    /* Doubles as text with 17 digits: exact, and free of jansson's float
     * formatting choices. */
    char t[32] = "", tp[32] = "", seed[32] = "";
    if (p->temperature >= 0) snprintf(t, sizeof t, "%.17g", p->temperature);
    if (p->top_p >= 0) snprintf(tp, sizeof tp, "%.17g", p->top_p);
    if (p->has_seed) snprintf(seed, sizeof seed, "%llu", (unsigned long long)p->seed);
    json_t *j = json_pack("{s:s,s:s,s:s,s:o,s:s,s:s,s:i,s:s,s:i}", "kind", "chat", "endpoint", endpoint, "model",
                          model, "messages", m, "temperature", t, "top_p", tp, "max_tokens",
                          p->max_tokens > 0 ? p->max_tokens : 0, "seed", seed, "sample", p->sample);
    key_of(j, key);
    json_decref(j);
}

void llm_cache_embed_key(const char *endpoint, const char *model, const char *text, char key[65]) {
    json_t *j = json_pack("{s:s,s:s,s:s,s:s}", "kind", "embedding", "endpoint", endpoint, "model", model, "text",
                          text ? text : "");
    key_of(j, key);
    json_decref(j);
}

/* ---- get / put ---- */

int llm_cache_get_reply(LlmCache *c, const char *key, LlmReply *out, Err *e) {
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st = c->get_reply;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), found = 0;
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        out->text = xstrdup((const char *)sqlite3_column_text(st, 0));
        const char *fr = (const char *)sqlite3_column_text(st, 1);
        out->finish_reason = fr ? xstrdup(fr) : NULL;
        out->usage.prompt_tokens = (long)sqlite3_column_int64(st, 2);
        out->usage.completion_tokens = (long)sqlite3_column_int64(st, 3);
        out->cached = 1;
        found = 1;
    } else if (rc != SQLITE_DONE) {
        db_fail(c, e, "lookup");
        found = -1;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&c->mu);
    return found;
}

int llm_cache_put_reply(LlmCache *c, const char *key, const LlmReply *r, Err *e) {
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st = c->put_reply;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->text ? r->text : "", -1, SQLITE_STATIC);
    if (r->finish_reason)
        sqlite3_bind_text(st, 3, r->finish_reason, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_int64(st, 4, r->usage.prompt_tokens);
    sqlite3_bind_int64(st, 5, r->usage.completion_tokens);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)time(NULL));
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(c, e, "store");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int llm_cache_get_vec(LlmCache *c, const char *key, float **vec, int *dim, Err *e) {
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st = c->get_vec;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), found = 0;
    if (rc == SQLITE_ROW) {
        int d = sqlite3_column_int(st, 0);
        int bytes = sqlite3_column_bytes(st, 1);
        if (d <= 0 || bytes != d * (int)sizeof(float)) {
            err_set(e, ERR_PARSE, "request cache %s: embedding %s has %d bytes for dim %d", c->path, key, bytes, d);
            found = -1;
        } else {
            *vec = xmalloc((size_t)bytes);
            memcpy(*vec, sqlite3_column_blob(st, 1), (size_t)bytes);
            *dim = d;
            found = 1;
        }
    } else if (rc != SQLITE_DONE) {
        db_fail(c, e, "lookup");
        found = -1;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&c->mu);
    return found;
}

int llm_cache_put_vecs(LlmCache *c, char (*keys)[65], const float *vecs, int n, int dim, Err *e) {
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_fail(c, e, "begin");
        goto out;
    }
    sqlite3_stmt *st = c->put_vec;
    for (int i = 0; i < n && !rc; i++) {
        sqlite3_bind_text(st, 1, keys[i], -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, dim);
        sqlite3_bind_blob(st, 3, vecs + (size_t)i * dim, dim * (int)sizeof(float), SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
        if (sqlite3_step(st) != SQLITE_DONE) rc = db_fail(c, e, "store");
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    if (sqlite3_exec(c->db, rc ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL) != SQLITE_OK && !rc)
        rc = db_fail(c, e, "commit");
out:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- the wrapping backend ---- */

typedef struct Cached {
    LlmBackend *inner;
    LlmCache *cache;
    char *endpoint;
    pthread_mutex_t mu; /* guards handing live counters to the inner backend */
} Cached;

/* Raises *dst to v if v is larger. Mirrored counters only grow, and every
 * increment of the inner backend is followed by a mirror from the thread that
 * made it, so the mirror ends at the inner's final value. */
static void raise_to(atomic_long *dst, long v) {
    long cur = atomic_load(dst);
    while (v > cur && !atomic_compare_exchange_weak(dst, &cur, v)) {
    }
}

static void mirror_stats(LlmBackend *b) {
    Cached *w = b->impl;
    LlmStats *in = &w->inner->stats;
    raise_to(&b->stats.requests, atomic_load(&in->requests) + atomic_load(&b->stats.cache_hits));
    raise_to(&b->stats.retries, atomic_load(&in->retries));
    raise_to(&b->stats.errors, atomic_load(&in->errors));
    raise_to(&b->stats.prompt_tokens, atomic_load(&in->prompt_tokens));
    raise_to(&b->stats.completion_tokens, atomic_load(&in->completion_tokens));
    raise_to(&b->stats.cached_prompt_tokens, atomic_load(&in->cached_prompt_tokens));
}

/* Callers set live counters on the wrapper (after llm_open); the inner
 * backend is the one that sees retries and tokens as they happen. The
 * pointers are written only when they change, under the mutex. */
static void pass_live_counters(LlmBackend *b) {
    Cached *w = b->impl;
    LlmBackend *in = w->inner;
    pthread_mutex_lock(&w->mu);
    if (in->live_retries != b->live_retries) in->live_retries = b->live_retries;
    if (in->live_tokens != b->live_tokens) in->live_tokens = b->live_tokens;
    if (in->live_requests != b->live_requests) in->live_requests = b->live_requests;
    if (in->live_errors != b->live_errors) in->live_errors = b->live_errors;
    pthread_mutex_unlock(&w->mu);
}

static void count_hit(LlmBackend *b, long n) {
    atomic_fetch_add(&b->stats.cache_hits, n);
    if (b->live_requests) atomic_fetch_add(b->live_requests, n);
}

static int cached_chat(LlmBackend *b, const LlmMessage *msgs, int n, const LlmParams *p, LlmReply *out, Err *e) {
    Cached *w = b->impl;
    char key[65];
    llm_cache_chat_key(w->endpoint, w->inner->model, msgs, n, p, key);
    int hit = llm_cache_get_reply(w->cache, key, out, e);
    if (hit < 0) return err_wrap(e, "%s", b->describe);
    if (hit) {
        count_hit(b, 1);
        mirror_stats(b);
        return 0;
    }
    pass_live_counters(b);
    int rc = llm_chat(w->inner, msgs, n, p, out, e);
    mirror_stats(b);
    if (rc) return -1;
    if (llm_cache_put_reply(w->cache, key, out, e)) {
        llm_reply_free(out);
        return err_wrap(e, "%s", b->describe);
    }
    return 0;
}

static int cached_embed(LlmBackend *b, const char *const *texts, int n, float **vecs, int *dim, Err *e) {
    Cached *w = b->impl;
    *vecs = NULL;
    *dim = 0;
    char (*keys)[65] = xmalloc((size_t)(n ? n : 1) * sizeof *keys);
    float **have = xcalloc((size_t)(n ? n : 1), sizeof *have);
    const char **miss = xmalloc((size_t)(n ? n : 1) * sizeof *miss);
    int *miss_at = xmalloc((size_t)(n ? n : 1) * sizeof *miss_at);
    int n_miss = 0, d = 0, rc = -1;
    float *fresh = NULL;
    for (int i = 0; i < n; i++) {
        llm_cache_embed_key(w->endpoint, w->inner->model, texts[i], keys[i]);
        int hd = 0;
        int hit = llm_cache_get_vec(w->cache, keys[i], &have[i], &hd, e);
        if (hit < 0) goto out;
        if (hit && d && hd != d) { /* a model changed dimension: refetch */
            free(have[i]);
            have[i] = NULL;
            hit = 0;
        }
        if (hit) d = hd;
        else miss_at[n_miss] = i, miss[n_miss++] = texts[i];
    }
    if (n - n_miss) count_hit(b, n - n_miss);
    if (n_miss) {
        pass_live_counters(b);
        int fd = 0;
        int r = llm_embed(w->inner, miss, n_miss, &fresh, &fd, e);
        mirror_stats(b);
        if (r) goto out;
        if (d && fd != d) {
            err_set(e, ERR_PARSE, "%s: new embeddings have %d dimensions, cached ones %d", b->describe, fd, d);
            goto out;
        }
        d = fd;
        char (*mkeys)[65] = xmalloc((size_t)n_miss * sizeof *mkeys);
        for (int k = 0; k < n_miss; k++) memcpy(mkeys[k], keys[miss_at[k]], 65);
        r = llm_cache_put_vecs(w->cache, mkeys, fresh, n_miss, d, e);
        free(mkeys);
        if (r) goto out;
    }
    mirror_stats(b);
    float *all = xmalloc((size_t)(n ? n : 1) * (d ? d : 1) * sizeof(float));
    for (int i = 0; i < n; i++)
        if (have[i]) memcpy(all + (size_t)i * d, have[i], (size_t)d * sizeof(float));
    for (int k = 0; k < n_miss; k++) memcpy(all + (size_t)miss_at[k] * d, fresh + (size_t)k * d, (size_t)d * sizeof(float));
    *vecs = all;
    *dim = d;
    rc = 0;
out:
    for (int i = 0; i < n; i++) free(have[i]);
    free(have);
    free(keys);
    free(miss);
    free(miss_at);
    free(fresh);
    return rc;
}

static void cached_destroy(LlmBackend *b) {
    Cached *w = b->impl;
    llm_free(w->inner);
    pthread_mutex_destroy(&w->mu);
    free(w->endpoint);
    free(w);
}

LlmBackend *llm_cache_wrap(LlmBackend *inner, LlmCache *c, const char *endpoint) {
    Cached *w = xcalloc(1, sizeof *w);
    w->inner = inner;
    w->cache = c;
    w->endpoint = xstrdup(endpoint ? endpoint : "");
    pthread_mutex_init(&w->mu, NULL);
    LlmBackend *b = xcalloc(1, sizeof *b);
    b->impl = w;
    b->model = xstrdup(inner->model);
    b->describe = xstrdup(inner->describe);
    b->chat = inner->chat ? cached_chat : NULL;
    b->embed = inner->embed ? cached_embed : NULL;
    b->destroy = cached_destroy;
    return b;
}
