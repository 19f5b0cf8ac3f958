/* The request cache: keys, hits, reopening, kill -9 durability, embeddings,
 * and concurrent use, against the fake server. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "llm/cache.h"
#include "llm/fake_server.h"
#include "llm/open.h"
#include "llm/openai.h"
#include "test.h"

static FakeServer fs;
static int fs_up;

#define NEED_SERVER() \
    NEED_STARTED(fs_up, "fake_openai")

static char *cache_path(void) {
    char *d = test_tmpdir();
    char *p = path_join(d, "cache.sqlite");
    free(d);
    return p;
}

static LlmBackend *open_role(const char *model, LlmCache *c) {
    LlmRoleConfig cfg = {.role = "test", .model = model, .base_url = fs.url, .timeout_s = 10, .max_retries = 3};
    Err e;
    LlmBackend *b = llm_open(&cfg, c, &e);
    if (!b) fprintf(stderr, "llm_open: %s\n", e.msg);
    return b;
}

static int ask(LlmBackend *b, const char *text, const LlmParams *p, LlmReply *r, Err *e) {
    LlmMessage m[2] = {{"system", "be brief"}, {"user", text}};
    return llm_chat(b, m, 2, p, r, e);
}

static void test_keys_depend_on_every_field(void) {
    LlmMessage m[2] = {{"system", "s"}, {"user", "u"}};
    LlmParams p = llm_params_default();
    char k0[65], k[65];
    llm_cache_chat_key("http://h/v1", "m", m, 2, &p, k0);
    llm_cache_chat_key("http://h/v1", "m", m, 2, &p, k);
    CHECK_EQ_STR(k, k0);
    CHECK_EQ_INT(strlen(k0), 64);
    llm_cache_chat_key("http://other/v1", "m", m, 2, &p, k);
    CHECK(strcmp(k, k0));
    llm_cache_chat_key("http://h/v1", "m2", m, 2, &p, k);
    CHECK(strcmp(k, k0));
    llm_cache_chat_key("http://h/v1", "m", m, 1, &p, k);
    CHECK(strcmp(k, k0));
    LlmMessage m2[2] = {{"system", "s"}, {"assistant", "u"}};
    llm_cache_chat_key("http://h/v1", "m", m2, 2, &p, k);
    CHECK(strcmp(k, k0));
    /* Role/content boundaries cannot be shifted to collide. */
    LlmMessage m3[2] = {{"system", "su"}, {"user", ""}};
    llm_cache_chat_key("http://h/v1", "m", m3, 2, &p, k);
    CHECK(strcmp(k, k0));
    LlmParams q = p;
    q.temperature = 0;
    llm_cache_chat_key("http://h/v1", "m", m, 2, &q, k);
    CHECK(strcmp(k, k0));
    q = p, q.top_p = 1;
    llm_cache_chat_key("http://h/v1", "m", m, 2, &q, k);
    CHECK(strcmp(k, k0));
    q = p, q.max_tokens = 5;
    llm_cache_chat_key("http://h/v1", "m", m, 2, &q, k);
    CHECK(strcmp(k, k0));
    q = p, q.has_seed = 1;
    llm_cache_chat_key("http://h/v1", "m", m, 2, &q, k);
    CHECK(strcmp(k, k0));
    q = p, q.sample = 1;
    llm_cache_chat_key("http://h/v1", "m", m, 2, &q, k);
    CHECK(strcmp(k, k0));
    llm_cache_chat_key("http://h/v1", "m", m, 2, NULL, k);
    CHECK_EQ_STR(k, k0);
}

static void test_second_call_is_a_hit(void) {
    NEED_SERVER();
    char *path = cache_path();
    LlmCache *c;
    Err e;
    CHECK_OK(llm_cache_open(path, &c, &e), &e);
    LlmBackend *b = open_role("cached-a", c);
    CHECK(b);
    atomic_long live_req = 0;
    b->live_requests = &live_req;
    LlmReply r1, r2;
    CHECK_OK(ask(b, "same question", NULL, &r1, &e), &e);
    CHECK_OK(ask(b, "same question", NULL, &r2, &e), &e);
    CHECK_EQ_INT(fake_log_count(&fs, "cached-a"), 1);
    CHECK_EQ_INT(r1.cached, 0);
    CHECK_EQ_INT(r2.cached, 1);
    CHECK_EQ_STR(r2.text, r1.text);
    CHECK_EQ_STR(r2.finish_reason, "stop");
    CHECK_EQ_INT(r2.usage.prompt_tokens, r1.usage.prompt_tokens);
    CHECK_EQ_INT(r2.usage.completion_tokens, r1.usage.completion_tokens);
    CHECK_EQ_INT(b->stats.requests, 2);
    CHECK_EQ_INT(b->stats.cache_hits, 1);
    CHECK_EQ_INT(b->stats.prompt_tokens, r1.usage.prompt_tokens); /* tokens spent, not served */
    CHECK_EQ_INT(live_req, 2);
    llm_reply_free(&r1);
    llm_reply_free(&r2);

    /* A deliberate repeat (another sample) is a new request. */
    LlmParams p = llm_params_default();
    p.sample = 1;
    CHECK_OK(ask(b, "same question", &p, &r1, &e), &e);
    CHECK_EQ_INT(r1.cached, 0);
    CHECK_EQ_INT(fake_log_count(&fs, "cached-a"), 2);
    llm_reply_free(&r1);
    llm_free(b);
    llm_cache_close(c);
    free(path);
}

static void test_cache_survives_reopen(void) {
    NEED_SERVER();
    char *path = cache_path();
    LlmCache *c;
    Err e;
    CHECK_OK(llm_cache_open(path, &c, &e), &e);
    LlmBackend *b = open_role("cached-b", c);
    LlmReply r;
    CHECK_OK(ask(b, "remember me", NULL, &r, &e), &e);
    char *first = xstrdup(r.text);
    llm_reply_free(&r);
    llm_free(b);
    llm_cache_close(c);

    CHECK_OK(llm_cache_open(path, &c, &e), &e);
    b = open_role("cached-b", c);
    CHECK_OK(ask(b, "remember me", NULL, &r, &e), &e);
    CHECK_EQ_INT(r.cached, 1);
    CHECK_EQ_STR(r.text, first);
    CHECK_EQ_INT(fake_log_count(&fs, "cached-b"), 1);
    llm_reply_free(&r);
    llm_free(b);
    llm_cache_close(c);
    free(first);
    free(path);
}

static void test_answer_survives_kill_9(void) {
    NEED_SERVER();
    char *path = cache_path();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        LlmCache *c;
        Err e;
        if (llm_cache_open(path, &c, &e)) _exit(3);
        LlmBackend *b = open_role("cached-k", c);
        LlmReply r;
        if (!b || ask(b, "before the crash", NULL, &r, &e)) _exit(4);
        raise(SIGKILL); /* no close, no checkpoint */
        _exit(5);
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
    LlmCache *c;
    Err e;
    CHECK_OK(llm_cache_open(path, &c, &e), &e);
    LlmBackend *b = open_role("cached-k", c);
    LlmReply r;
    CHECK_OK(ask(b, "before the crash", NULL, &r, &e), &e);
    CHECK_EQ_INT(r.cached, 1);
    CHECK_EQ_INT(fake_log_count(&fs, "cached-k"), 1);
    llm_reply_free(&r);
    llm_free(b);
    llm_cache_close(c);
    free(path);
}

static void test_errors_are_not_cached(void) {
    NEED_SERVER();
    char *path = cache_path();
    LlmCache *c;
    Err e;
    CHECK_OK(llm_cache_open(path, &c, &e), &e);
    LlmBackend *b = open_role("cached-gone", c);
    atomic_long live_err = 0;
    b->live_errors = &live_err;
    LlmReply r;
    CHECK(ask(b, "q", NULL, &r, &e) == -1);
    CHECK_EQ_INT(e.code, ERR_NOTFOUND);
    CHECK(ask(b, "q", NULL, &r, &e) == -1);
    CHECK_EQ_INT(fake_log_count(&fs, "cached-gone"), 2);
    CHECK_EQ_INT(b->stats.errors, 2);
    CHECK_EQ_INT(live_err, 2); /* live counters set on the wrapper reach the HTTP backend */
    llm_free(b);
    llm_cache_close(c);
    free(path);
}

static void test_embeddings_cached_per_text(void) {
    NEED_SERVER();
    char *path = cache_path();
    LlmCache *c;
    Err e;
    CHECK_OK(llm_cache_open(path, &c, &e), &e);
    LlmBackend *b = open_role("cached-emb", c);
    const char *t1[2] = {"red apples", "green pears"};
    const char *t2[3] = {"green pears", "blue sky", "red apples"};
    float *v1, *v2;
    int d1, d2;
    CHECK_OK(llm_embed(b, t1, 2, &v1, &d1, &e), &e);
    CHECK_OK(llm_embed(b, t2, 3, &v2, &d2, &e), &e);
    CHECK_EQ_INT(d1, d2);
    CHECK(!memcmp(v2, v1 + d1, d1 * sizeof(float)));     /* green pears */
    CHECK(!memcmp(v2 + 2 * d1, v1, d1 * sizeof(float))); /* red apples */
    CHECK_EQ_INT(fake_log_count(&fs, "cached-emb"), 2);
    json_t *last = fake_log_last(&fs, "cached-emb");
    CHECK_EQ_INT(json_array_size(json_object_get(json_object_get(last, "body"), "input")), 1); /* only the miss */
    json_decref(last);
    CHECK_EQ_INT(b->stats.cache_hits, 2);
    free(v1);
    free(v2);
    llm_free(b);
    llm_cache_close(c);
    free(path);
}

typedef struct Crowd {
    LlmBackend *b;
    atomic_int next, failures;
} Crowd;

static void *crowd_worker(void *arg) {
    Crowd *c = arg;
    for (int i; (i = atomic_fetch_add(&c->next, 1)) < 256;) {
        char q[32];
        snprintf(q, sizeof q, "question %d", i % 128); /* every question twice */
        LlmReply r;
        Err e;
        if (ask(c->b, q, NULL, &r, &e)) {
            atomic_fetch_add(&c->failures, 1);
            continue;
        }
        if (strcmp(r.text, q)) atomic_fetch_add(&c->failures, 1); /* a wrong answer */
        llm_reply_free(&r);
    }
    return NULL;
}

static void test_concurrent_use(void) {
    NEED_SERVER();
    char *path = cache_path();
    LlmCache *c;
    Err e;
    CHECK_OK(llm_cache_open(path, &c, &e), &e);
    Crowd cr = {open_role("cached-many", c), 0, 0};
    pthread_t th[32];
    for (int i = 0; i < 32; i++) pthread_create(&th[i], NULL, crowd_worker, &cr);
    for (int i = 0; i < 32; i++) pthread_join(th[i], NULL);
    CHECK_EQ_INT(cr.failures, 0);
    CHECK_EQ_INT(cr.b->stats.requests, 256);
    long sent = fake_log_count(&fs, "cached-many");
    /* Concurrent identical misses may both go out; most repeats are hits. */
    CHECK_MSG(sent >= 128 && sent + cr.b->stats.cache_hits == 256, "sent %ld, hits %ld", sent,
              (long)cr.b->stats.cache_hits);
    llm_free(cr.b);
    llm_cache_close(c);
    free(path);
}

static void test_bad_cache_file(void) {
    char *path = cache_path();
    Err e;
    file_write_atomic(path, "this is not a database, just text of some length ........................", 70, &e);
    LlmCache *c;
    CHECK(llm_cache_open(path, &c, &e) == -1);
    CHECK_EQ_INT(e.code, ERR_IO);
    CHECK_MSG(strstr(e.msg, path), "message names the file: %s", e.msg);
    CHECK(c == NULL);
    free(path);
    CHECK(llm_cache_open("/nonexistent-dir/x/cache.sqlite", &c, &e) == -1);
    CHECK(strstr(e.msg, "/nonexistent-dir/x/cache.sqlite") != NULL);
}

int main(void) {
    fs_up = fake_start(&fs, "{\"models\": {\"cached-gone\": {\"always\": {\"status\": 404}}}, "
                            "\"*\": {\"reply\": \"{last_user}\"}}", 0) == 0;
    RUN(test_keys_depend_on_every_field);
    RUN(test_second_call_is_a_hit);
    RUN(test_cache_survives_reopen);
    RUN(test_answer_survives_kill_9);
    RUN(test_errors_are_not_cached);
    RUN(test_embeddings_cached_per_text);
    RUN(test_concurrent_use);
    RUN(test_bad_cache_file);
    fake_stop(&fs);
    return test_summary();
}
