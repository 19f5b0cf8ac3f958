/* The OpenAI-compatible backend against the fake server: answers, usage,
 * parameters, every failure mode and its retry policy, time-outs, keys, and
 * concurrency actually reached. */
#include <pthread.h>
#include <stdlib.h>

#include "llm/fake_server.h"
#include "llm/open.h"
#include "llm/openai.h"
#include "test.h"

static FakeServer fs;
static int fs_up;

static const char *SCRIPT =
    "{\"models\": {"
    " \"fixed\": {\"reply\": \"hello there\", \"usage\": {\"prompt_tokens\": 11, \"completion_tokens\": 7, \"cached_tokens\": 4}},"
    " \"rate\": {\"faults\": [{\"status\": 429, \"retry_after\": 1}], \"reply\": \"after wait\"},"
    " \"five\": {\"faults\": [{\"status\": 500}, {\"status\": 503}], \"reply\": \"recovered\"},"
    " \"down\": {\"always\": {\"status\": 503}},"
    " \"locked\": {\"always\": {\"status\": 401, \"body\": "
    "   \"{\\\"error\\\": {\\\"message\\\": \\\"Incorrect API key provided: sk-secret-123\\\"}}\"}},"
    " \"gone\": {\"always\": {\"status\": 404}},"
    " \"bad\": {\"always\": {\"status\": 400, \"body\": \"{\\\"error\\\": {\\\"message\\\": \\\"max_tokens is too "
    "large\\\"}}\"}},"
    " \"garbage1\": {\"faults\": [\"garbage\"], \"reply\": \"fine\"},"
    " \"garbage\": {\"always\": \"garbage\"},"
    " \"trunc\": {\"faults\": [\"truncated\", \"cut\"], \"reply\": \"whole\"},"
    " \"empty\": {\"always\": \"no_content\"},"
    " \"drop\": {\"faults\": [\"drop\", \"drop\"], \"reply\": \"still here\"},"
    " \"slow\": {\"latency_ms\": 2000, \"reply\": \"late\"},"
    " \"throttled\": {\"always\": {\"status\": 429, \"retry_after\": 600}},"
    " \"hangs\": {\"always\": \"hang\"},"
    " \"busy\": {\"latency_ms\": 400, \"reply\": \"ok {n}\"}"
    "}}";

/* A backend at the fake server with short back-off. */
static LlmBackend *open_fake(const char *model, const char *key, double timeout_s, int retries) {
    Err e;
    LlmBackend *b = llm_openai_new(fs.url, key, model, timeout_s, retries, &e);
    if (b) llm_openai_set_backoff(b, 0.01, 0.05);
    return b;
}

static int ask(LlmBackend *b, const char *text, LlmReply *r, Err *e) {
    LlmMessage m[2] = {{"system", "be brief"}, {"user", text}};
    return llm_chat(b, m, 2, NULL, r, e);
}

#define NEED_SERVER() \
    NEED_STARTED(fs_up, "fake_openai")

static void test_chat_answers_and_counts_usage(void) {
    NEED_SERVER();
    LlmBackend *b = open_fake("fixed", NULL, 10, 2);
    CHECK(b);
    LlmReply r;
    Err e;
    CHECK_OK(ask(b, "hi", &r, &e), &e);
    llm_reply_free(&r);
    CHECK_OK(ask(b, "hi again", &r, &e), &e);
    CHECK_EQ_STR(r.text, "hello there");
    CHECK_EQ_STR(r.finish_reason, "stop");
    CHECK_EQ_INT(r.usage.prompt_tokens, 11);
    CHECK_EQ_INT(r.usage.completion_tokens, 7);
    CHECK_EQ_INT(r.usage.cached_tokens, 4);
    CHECK_EQ_INT(b->stats.cached_prompt_tokens, 8);
    CHECK_EQ_INT(r.retries, 0);
    CHECK_EQ_INT(r.cached, 0);
    CHECK_EQ_INT(b->stats.requests, 2);
    CHECK_EQ_INT(b->stats.prompt_tokens, 22);
    CHECK_EQ_INT(b->stats.completion_tokens, 14);
    CHECK_EQ_INT(b->stats.retries, 0);
    llm_reply_free(&r);
    llm_free(b);
}

static void test_echo_sees_the_messages(void) {
    NEED_SERVER();
    LlmBackend *b = open_fake("echoer", NULL, 10, 2);
    LlmReply r;
    Err e;
    CHECK_OK(ask(b, "unicode é ✓ and \"quotes\"\nnewline", &r, &e), &e);
    CHECK_EQ_STR(r.text, "echo: unicode é ✓ and \"quotes\"\nnewline");
    llm_reply_free(&r);
    llm_free(b);
}

static void test_params_are_passed_only_when_set(void) {
    NEED_SERVER();
    LlmBackend *b = open_fake("params", "sk-test-key", 10, 2);
    LlmMessage m = {"user", "x"};
    LlmParams p = llm_params_default();
    LlmReply r;
    Err e;
    CHECK_OK(llm_chat(b, &m, 1, &p, &r, &e), &e);
    llm_reply_free(&r);
    json_t *rec = fake_log_last(&fs, "params");
    CHECK(rec);
    json_t *body = json_object_get(rec, "body");
    CHECK(!json_object_get(body, "temperature") && !json_object_get(body, "top_p"));
    CHECK(!json_object_get(body, "max_tokens") && !json_object_get(body, "seed"));
    CHECK_EQ_STR(json_string_value(json_object_get(rec, "authorization")), "Bearer sk-test-key");
    json_decref(rec);

    p.temperature = 0.7;
    p.top_p = 0.9;
    p.max_tokens = 64;
    p.has_seed = 1;
    p.seed = 42;
    p.sample = 3;
    CHECK_OK(llm_chat(b, &m, 1, &p, &r, &e), &e);
    llm_reply_free(&r);
    rec = fake_log_last(&fs, "params");
    body = json_object_get(rec, "body");
    CHECK_NEAR(json_number_value(json_object_get(body, "temperature")), 0.7, 1e-12);
    CHECK_NEAR(json_number_value(json_object_get(body, "top_p")), 0.9, 1e-12);
    CHECK_EQ_INT(json_integer_value(json_object_get(body, "max_tokens")), 64);
    CHECK_EQ_INT(json_integer_value(json_object_get(body, "seed")), 42);
    CHECK(!json_object_get(body, "sample"));
    json_t *msg0 = json_array_get(json_object_get(body, "messages"), 0);
    CHECK_EQ_STR(json_string_value(json_object_get(msg0, "role")), "user");
    CHECK_EQ_STR(json_string_value(json_object_get(msg0, "content")), "x");
    json_decref(rec);
    llm_free(b);

    /* No key: no Authorization header at all. */
    b = open_fake("params-nokey", NULL, 10, 2);
    CHECK_OK(llm_chat(b, &m, 1, NULL, &r, &e), &e);
    llm_reply_free(&r);
    rec = fake_log_last(&fs, "params-nokey");
    CHECK(json_is_null(json_object_get(rec, "authorization")));
    json_decref(rec);
    llm_free(b);
}

static void test_429_waits_for_retry_after(void) {
    NEED_SERVER();
    LlmBackend *b = open_fake("rate", NULL, 10, 3);
    atomic_long live = 0;
    b->live_retries = &live;
    LlmReply r;
    Err e;
    double t0 = fake_now();
    CHECK_OK(ask(b, "hi", &r, &e), &e);
    double dt = fake_now() - t0;
    /* A lower bound only: a sleep never ends early, and with back-off capped
     * at 0.05 s only the Retry-After makes the wait reach 1 s (how much
     * longer a loaded machine takes says nothing). */
    CHECK_MSG(dt >= 1.0, "Retry-After: 1 honoured, waited only %.3f s", dt);
    CHECK_EQ_STR(r.text, "after wait");
    CHECK_EQ_INT(r.retries, 1);
    CHECK_EQ_INT(b->stats.retries, 1);
    CHECK_EQ_INT(live, 1);
    CHECK_EQ_INT(fake_log_count(&fs, "rate"), 2);
    llm_reply_free(&r);
    llm_free(b);
}

static void test_5xx_then_success(void) {
    NEED_SERVER();
    LlmBackend *b = open_fake("five", NULL, 10, 3);
    LlmReply r;
    Err e;
    CHECK_OK(ask(b, "hi", &r, &e), &e);
    CHECK_EQ_STR(r.text, "recovered");
    CHECK_EQ_INT(r.retries, 2);
    CHECK_EQ_INT(b->stats.errors, 0);
    llm_reply_free(&r);
    llm_free(b);
}

static void test_retry_bound_reached(void) {
    NEED_SERVER();
    LlmBackend *b = open_fake("down", NULL, 10, 2);
    atomic_long live_err = 0;
    b->live_errors = &live_err;
    LlmReply r;
    Err e;
    CHECK(ask(b, "hi", &r, &e) == -1);
    CHECK_EQ_INT(e.code, ERR_HTTP);
    CHECK_MSG(strstr(e.msg, "HTTP 503") && strstr(e.msg, "gave up after 3 attempts"), "message: %s", e.msg);
    CHECK_MSG(strstr(e.msg, "down at http://127.0.0.1"), "message names model and endpoint: %s", e.msg);
    CHECK_EQ_INT(fake_log_count(&fs, "down"), 3);
    CHECK_EQ_INT(b->stats.retries, 2);
    CHECK_EQ_INT(b->stats.errors, 1);
    CHECK_EQ_INT(live_err, 1);
    llm_free(b);
}

static void test_401_is_auth_error_without_retry_or_key(void) {
    NEED_SERVER();
    LlmBackend *b = open_fake("locked", "sk-secret-123", 10, 5);
    LlmReply r;
    Err e;
    CHECK(ask(b, "hi", &r, &e) == -1);
    CHECK_EQ_INT(e.code, ERR_AUTH);
    CHECK_EQ_INT(fake_log_count(&fs, "locked"), 1);
    CHECK_MSG(strstr(e.msg, "401") && strstr(e.msg, "API key"), "message: %s", e.msg);
    CHECK_MSG(!strstr(e.msg, "sk-secret-123"), "key leaked: %s", e.msg);
    CHECK(!strstr(b->describe, "sk-secret"));
    llm_free(b);
}

static void test_404_is_notfound_naming_the_model(void) {
    NEED_SERVER();
    LlmBackend *b = open_fake("gone", NULL, 10, 5);
    LlmReply r;
    Err e;
    CHECK(ask(b, "hi", &r, &e) == -1);
    CHECK_EQ_INT(e.code, ERR_NOTFOUND);
    CHECK_EQ_INT(fake_log_count(&fs, "gone"), 1);
    CHECK_MSG(strstr(e.msg, "model \"gone\" not found") && strstr(e.msg, "does not exist"), "message: %s", e.msg);
    llm_free(b);
}

static void test_other_4xx_shows_body_without_retry(void) {
    NEED_SERVER();
    LlmBackend *b = open_fake("bad", NULL, 10, 5);
    LlmReply r;
    Err e;
    CHECK(ask(b, "hi", &r, &e) == -1);
    CHECK_EQ_INT(e.code, ERR_HTTP);
    CHECK_EQ_INT(fake_log_count(&fs, "bad"), 1);
    CHECK_MSG(strstr(e.msg, "HTTP 400") && strstr(e.msg, "max_tokens is too large"), "message: %s", e.msg);
    llm_free(b);
}

static void test_garbage_body_retried_then_error(void) {
    NEED_SERVER();
    LlmBackend *b = open_fake("garbage1", NULL, 10, 5);
    LlmReply r;
    Err e;
    CHECK_OK(ask(b, "hi", &r, &e), &e);
    CHECK_EQ_STR(r.text, "fine");
    CHECK_EQ_INT(r.retries, 1);
    llm_reply_free(&r);
    llm_free(b);

    /* Always garbage: two retries, not max_retries. */
    b = open_fake("garbage", NULL, 10, 5);
    CHECK(ask(b, "hi", &r, &e) == -1);
    CHECK_EQ_INT(e.code, ERR_PARSE);
    CHECK_MSG(strstr(e.msg, "not valid JSON") && strstr(e.msg, "502 Bad Gateway"), "message: %s", e.msg);
    CHECK_EQ_INT(fake_log_count(&fs, "garbage"), 3);
    llm_free(b);
}

static void test_truncated_and_cut_bodies_retried(void) {
    NEED_SERVER();
    LlmBackend *b = open_fake("trunc", NULL, 10, 5);
    LlmReply r;
    Err e;
    CHECK_OK(ask(b, "hi", &r, &e), &e);
    CHECK_EQ_STR(r.text, "whole");
    CHECK_EQ_INT(r.retries, 2);
    llm_reply_free(&r);
    llm_free(b);
}

static void test_json_without_content_is_an_error(void) {
    NEED_SERVER();
    LlmBackend *b = open_fake("empty", NULL, 10, 5);
    LlmReply r;
    Err e;
    CHECK(ask(b, "hi", &r, &e) == -1);
    CHECK_EQ_INT(e.code, ERR_PARSE);
    CHECK_MSG(strstr(e.msg, "choices[0].message.content"), "message: %s", e.msg);
    llm_free(b);
}

static void test_dropped_connection_retried(void) {
    NEED_SERVER();
    LlmBackend *b = open_fake("drop", NULL, 10, 5);
    LlmReply r;
    Err e;
    CHECK_OK(ask(b, "hi", &r, &e), &e);
    CHECK_EQ_STR(r.text, "still here");
    CHECK_EQ_INT(r.retries, 2);
    llm_reply_free(&r);
    llm_free(b);
}

static void test_timeout(void) {
    NEED_SERVER();
    LlmBackend *b = open_fake("slow", NULL, 0.3, 1);
    LlmReply r;
    Err e;
    double t0 = fake_now();
    CHECK(ask(b, "hi", &r, &e) == -1);
    double dt = fake_now() - t0;
    CHECK_EQ_INT(e.code, ERR_TIMEOUT);
    CHECK_MSG(strstr(e.msg, "no answer within 0.3 s"), "message: %s", e.msg);
    /* The time-out is shown by the error (the reply would come after 2 s and
     * succeed) and by the two attempts; dt only has a lower bound, which no
     * load can break: each attempt waited its 0.3 s. */
    CHECK_MSG(dt >= 0.6, "two 0.3 s attempts took %.3f s", dt);
    CHECK_EQ_INT(fake_log_count(&fs, "slow"), 2);
    llm_free(b);
}

typedef struct Canceller {
    atomic_int *flag;
    atomic_long *live_retries; /* cancel once a retry wait has begun, or */
    const char *model;         /* once the server has the request in hand */
    int logged_before;
} Canceller;

/* Cancels on an event, not after a delay: the request has reached the server
 * (it hangs there for an hour) or the client is waiting out a 600 s
 * Retry-After. The poll's 60 s bound is reached only if that never happens. */
static void *cancel_later(void *arg) {
    Canceller *c = arg;
    for (int i = 0; i < 60000; i++) {
        if (c->live_retries ? atomic_load(c->live_retries) > 0 : fake_log_count(&fs, c->model) > c->logged_before)
            break;
        usleep(1000);
    }
    atomic_store(c->flag, 1);
    return NULL;
}

/* Cancelling ends a request in flight, and a long Retry-After wait, promptly:
 * without the cancel the first would wait out its 600 s time-out and the
 * second a 600 s Retry-After, so the cancel must come back in well under
 * 300 s, a threshold halfway between the outcomes that no machine load
 * crosses (it is not a speed bound). */
static void test_cancel(void) {
    NEED_STARTED(fs_up, "fake_openai");
    const char *models[2] = {"hangs", "throttled"};
    for (int i = 0; i < 2; i++) {
        atomic_int flag = 0;
        atomic_long live = 0;
        LlmRoleConfig cfg = {.role = "t", .model = models[i], .base_url = fs.url, .timeout_s = 600, .max_retries = 8,
                             .cancel = &flag};
        Err e;
        LlmBackend *b = llm_open(&cfg, NULL, &e);
        CHECK(b);
        b->live_retries = &live;
        Canceller c = {&flag, i ? &live : NULL, models[i], fake_log_count(&fs, models[i])};
        pthread_t th;
        pthread_create(&th, NULL, cancel_later, &c);
        LlmReply r;
        double t0 = fake_now();
        int rc = ask(b, "hi", &r, &e);
        double dt = fake_now() - t0;
        pthread_join(th, NULL);
        CHECK(rc == -1);
        CHECK_EQ_INT(e.code, ERR_CANCELLED);
        CHECK_MSG(dt < 300, "%s: cancel took %.3f s", models[i], dt);
        CHECK_MSG(!i || strstr(e.msg, "while waiting to retry"), "%s: %s", models[i], e.msg);
        CHECK_EQ_INT(b->stats.errors, 0);
        CHECK_OK(ask(b, "hi", &r, &e) == -1 && e.code == ERR_CANCELLED ? 0 : -1, &e); /* stays cancelled */
        llm_free(b);
    }
}

static void test_unreachable_endpoint_names_url(void) {
    /* Port 1 on loopback: nothing listens there. */
    LlmRoleConfig cfg = {.role = "judge", .model = "m", .base_url = "http://127.0.0.1:1/v1/", .max_retries = 8};
    Err e;
    LlmBackend *b = llm_open(&cfg, NULL, &e);
    CHECK_OK(b ? 0 : -1, &e);
    llm_openai_set_backoff(b, 0.01, 0.05);
    LlmReply r;
    CHECK(ask(b, "hi", &r, &e) == -1);
    CHECK_EQ_INT(e.code, ERR_HTTP);
    CHECK_MSG(strstr(e.msg, "cannot reach http://127.0.0.1:1/v1/chat/completions"), "message: %s", e.msg);
    /* Fails fast, counted in attempts rather than seconds: a refused
     * connection is retried twice (MAX_CONNECT_RETRIES), not max_retries 8
     * times. */
    CHECK_EQ_INT(b->stats.retries, 2);
    CHECK_MSG(strstr(e.msg, "gave up after 3 attempts"), "message: %s", e.msg);
    llm_free(b);
}

static void test_key_never_in_describe_or_errors(void) {
    NEED_SERVER();
    const char *key = "sk-very-secret-0042";
    LlmBackend *b = open_fake("down", key, 10, 0);
    CHECK(!strstr(b->describe, key));
    LlmReply r;
    Err e;
    CHECK(ask(b, "hi", &r, &e) == -1);
    CHECK(!strstr(e.msg, key));
    llm_free(b);
    LlmRoleConfig cfg = {.role = "judge", .model = "m", .base_url = "http://127.0.0.1:1/v1", .api_key = key};
    b = llm_open(&cfg, NULL, &e);
    CHECK(b && !strstr(b->describe, key));
    llm_openai_set_backoff(b, 0.01, 0.05);
    CHECK(ask(b, "hi", &r, &e) == -1);
    CHECK(!strstr(e.msg, key));
    llm_free(b);
    /* Credentials in the URL are hidden too. */
    cfg.base_url = "http://someone:pa55word@127.0.0.1:1/v1";
    b = llm_open(&cfg, NULL, &e);
    CHECK(b);
    CHECK_EQ_STR(b->describe, "m at http://***@127.0.0.1:1/v1");
    llm_openai_set_backoff(b, 0.01, 0.05);
    CHECK(ask(b, "hi", &r, &e) == -1);
    CHECK_MSG(!strstr(e.msg, "pa55word") && strstr(e.msg, "http://***@127.0.0.1:1/v1"), "message: %s", e.msg);
    llm_free(b);
}

static double cosine(const float *a, const float *b, int d) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < d; i++) ab += a[i] * b[i], aa += a[i] * a[i], bb += b[i] * b[i];
    return ab / sqrt(aa * bb);
}

static void test_embeddings(void) {
    NEED_SERVER();
    LlmBackend *b = open_fake("embedder", NULL, 10, 2);
    enum { N = 300 }; /* more than one batch */
    const char *texts[N];
    char bufs[N][32];
    for (int i = 0; i < N; i++) {
        snprintf(bufs[i], sizeof bufs[i], "item number %d", i);
        texts[i] = bufs[i];
    }
    texts[0] = "I love hiking in the mountains";
    texts[1] = "I love hiking in the mountains";
    texts[2] = "hiking boots";
    float *v = NULL;
    int dim = 0;
    Err e;
    CHECK_OK(llm_embed(b, texts, N, &v, &dim, &e), &e);
    CHECK_EQ_INT(dim, 64);
    CHECK_NEAR(cosine(v, v + dim, dim), 1.0, 1e-6);
    CHECK(cosine(v, v + 2 * dim, dim) > 0.1);
    CHECK_NEAR(cosine(v + 10 * dim, v + 10 * dim, dim), 1.0, 1e-6);
    CHECK_EQ_INT(fake_log_count(&fs, "embedder"), 3);
    free(v);
    llm_free(b);
}

typedef struct Crowd {
    LlmBackend *b;
    atomic_int failures;
} Crowd;

static void *crowd_worker(void *arg) {
    Crowd *c = arg;
    /* Two rounds: the second starts with every thread and connection up, even
     * on a slow (sanitised, 2-core) machine. */
    for (int i = 0; i < 2; i++) {
        LlmReply r;
        Err e;
        if (ask(c->b, "hi", &r, &e))
            atomic_fetch_add(&c->failures, 1);
        else
            llm_reply_free(&r);
    }
    return NULL;
}

static void test_64_threads_reach_the_server_at_once(void) {
    NEED_SERVER();
    Crowd c = {open_fake("busy", NULL, 600, 2), 0};
    json_decref(fake_call(&fs, "/stats/reset", 1));
    /* The server holds the first 64 requests until all 64 have arrived: the
     * peak is reached by events, whatever the load (a client that cannot
     * have 64 in flight leaves them waiting 60 s and the peak short). */
    json_decref(fake_call(&fs, "/gate/64", 1));
    pthread_t th[64];
    for (int i = 0; i < 64; i++) pthread_create(&th[i], NULL, crowd_worker, &c);
    for (int i = 0; i < 64; i++) pthread_join(th[i], NULL);
    CHECK_EQ_INT(c.failures, 0);
    long peak = fake_stat(&fs, "peak");
    /* >= : requests that earlier tests abandoned (time-outs, cancels) may
     * still sit in the server's latency */
    CHECK_MSG(peak >= 64, "peak concurrent requests at the server: %ld", peak);
    CHECK_EQ_INT(c.b->stats.requests, 128);
    llm_free(c.b);
}

static void test_open_resolves_specs(void) {
    Err e;
    /* local specs go to the embedded engine (tests/llm/test_local.c): an
     * empty directory is not a model, and the error names it */
    LlmRoleConfig cfg = {.role = "judge"};
    char *dir = test_tmpdir();
    cfg.model = dir;
    CHECK(llm_open(&cfg, NULL, &e) == NULL);
    CHECK_MSG(strstr(e.msg, dir) && strstr(e.msg, "judge"), "message: %s", e.msg);
    free(dir);
    cfg.model = "./no/such/model.gguf";
    CHECK(llm_open(&cfg, NULL, &e) == NULL);
    CHECK_EQ_INT(e.code, ERR_NOTFOUND);
    CHECK(strstr(e.msg, "./no/such/model.gguf") != NULL);
    cfg.model = "";
    CHECK(llm_open(&cfg, NULL, &e) == NULL);
    CHECK_EQ_INT(e.code, ERR_ARG);

    /* Endpoint from the environment; a name with '/' is still an endpoint model. */
    setenv("OPENAI_BASE_URL", "http://example.invalid:9/v1", 1);
    unsetenv("OPENAI_API_KEY");
    cfg.model = "meta-llama/Llama-3.1-8B-Instruct";
    LlmBackend *b = llm_open(&cfg, NULL, &e);
    CHECK_OK(b ? 0 : -1, &e);
    CHECK_EQ_STR(b->describe, "meta-llama/Llama-3.1-8B-Instruct at http://example.invalid:9/v1");
    llm_free(b);
    unsetenv("OPENAI_BASE_URL");
    b = llm_open(&cfg, NULL, &e);
    CHECK_OK(b ? 0 : -1, &e);
    CHECK(strstr(b->describe, "at https://api.openai.com/v1") != NULL);
    llm_free(b);
    cfg.base_url = "ftp://host/v1";
    CHECK(llm_open(&cfg, NULL, &e) == NULL);
    CHECK_EQ_INT(e.code, ERR_ARG);
}

static void test_fake_server_rejects_bad_scripts(void) {
    FakeServer bad;
    CHECK(fake_start(&bad, "{\"models\": {\"j\": {\"faults\": [\"garbge\"]}}}", 0) == -1);
    fake_stop(&bad);
    CHECK(fake_start(&bad, "{\"models\": {\"j\": {\"replys\": [\"a\"]}}}", 0) == -1);
    fake_stop(&bad);
}

int main(void) {
    fs_up = fake_start(&fs, SCRIPT, 0) == 0;
    RUN(test_chat_answers_and_counts_usage);
    RUN(test_echo_sees_the_messages);
    RUN(test_params_are_passed_only_when_set);
    RUN(test_429_waits_for_retry_after);
    RUN(test_5xx_then_success);
    RUN(test_retry_bound_reached);
    RUN(test_401_is_auth_error_without_retry_or_key);
    RUN(test_404_is_notfound_naming_the_model);
    RUN(test_other_4xx_shows_body_without_retry);
    RUN(test_garbage_body_retried_then_error);
    RUN(test_truncated_and_cut_bodies_retried);
    RUN(test_json_without_content_is_an_error);
    RUN(test_dropped_connection_retried);
    RUN(test_timeout);
    RUN(test_cancel);
    RUN(test_unreachable_endpoint_names_url);
    RUN(test_key_never_in_describe_or_errors);
    RUN(test_embeddings);
    RUN(test_64_threads_reach_the_server_at_once);
    RUN(test_open_resolves_specs);
    RUN(test_fake_server_rejects_bad_scripts);
    fake_stop(&fs);
    return test_summary();
}
