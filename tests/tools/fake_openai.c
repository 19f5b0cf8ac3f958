/* fake_openai: a scripted OpenAI-compatible server, used ONLY by the tests and
 * the benchmarks. It is not part of aloe and is never installed.
 *
 * Usage:
 *   build/tests/tools/fake_openai --port 0 --port-file F [--latency-ms 100]
 *                                 [--script FILE] [--log FILE] [--embed-dim 64]
 *
 *   --port 0       pick a free port (127.0.0.1 only); the chosen port is written
 *                  to --port-file (atomically, so a reader never sees half a
 *                  number). Runs until SIGTERM or SIGINT.
 *   --latency-ms   delay before every answer (default 0); a model may override.
 *   --log FILE     one JSON line per request, written when it arrives:
 *                  {"seq":N, "path":"/v1/chat/completions", "model":"m",
 *                   "model_seq":K, "authorization":"Bearer ..."|null,
 *                   "fault":"none"|"status 429"|"garbage"|..., "body":{request}}
 *   --embed-dim    dimension of /v1/embeddings vectors (default 64).
 *   --exit-with-parent 1   stop when the process that started it dies (tests
 *                  use it so a crashed test never leaves a server behind).
 *
 * Endpoints (with or without the /v1 prefix):
 *   POST /v1/chat/completions   scripted per model name (below)
 *   POST /v1/embeddings         deterministic hashed bag of words, L2-normalised:
 *                               texts sharing words have cosine > 0, identical
 *                               texts cosine 1. `input` is a string or a list.
 *   GET  /v1/models             the models named in the script
 *   GET  /stats                 {"requests":N, "active":N, "peak":N} where peak
 *                               is the most requests in flight at once
 *   POST /stats/reset           zeroes requests and peak
 *   POST /gate/N                the next N chat or embedding requests each wait
 *                               (before their latency) until all N have arrived:
 *                               a test sees N requests in flight at once by
 *                               events, not timing. A client that never has N
 *                               in flight releases them after 60 s (the test then
 *                               sees a lower peak).
 *
 * Script (--script FILE, JSON). Roles of a pipeline are told apart by model
 * name, so each role can be scripted on its own:
 *
 *   {
 *     "models": {
 *       "user-sim":  {"reply": "Hi, I am turn {turns}. {last_user}"},
 *       "inducer":   {"replies": ["Likes hiking.", "Is a nurse."], "pick": "hash"},
 *       "judge":     {"reply": "Reasoning ...\\nScore: {score}",
 *                     "rules": [{"contains": "[tailored]", "reply": "Score: 5"}]},
 *       "pair-judge":{"reply": "Preferred: {ab}"},
 *       "flaky":     {"faults": [{"status": 429, "retry_after": 1}, {"status": 503},
 *                                "garbage", "truncated", "cut", "drop", "no_content"],
 *                     "reply": "ok"},
 *       "sometimes": {"every": {"n": 10, "fault": {"status": 500}}, "reply": "ok"},
 *       "locked":    {"always": {"status": 401}},
 *       "gone":      {"always": {"status": 404}},
 *       "slow":      {"latency_ms": 2000, "reply": "late"}
 *     },
 *     "*": {"reply": "echo: {last_user}"}
 *   }
 *
 * A model not named uses "*", or, without it, {"reply": "echo: {last_user}"}.
 * Per model:
 *   reply       a template (placeholders below)
 *   replies     a list of templates; "pick": "cycle" (default: the k-th request
 *               to this model gets replies[k % n]; order depends on arrival) or
 *               "hash" (chosen by a hash of the messages: deterministic whatever
 *               the concurrency, so reruns and resumes see the same answers)
 *   rules       [{"contains": S, "reply": T}, {"any_contains": S, ...}]: the
 *               first rule whose S occurs in the last user message (contains) or
 *               in any message (any_contains) gives the template; a rule with
 *               "fault": F instead of "reply" answers every request it matches
 *               with that fault (a content filter that refuses one persona)
 *   latency_ms  overrides --latency-ms for this model
 *   usage       {"prompt_tokens": P, "completion_tokens": C}; default: word counts
 *               of the messages and of the reply
 *   finish_reason  default "stop"
 *   faults      list applied in order to this model's first requests (request k
 *               gets faults[k-1]), then normal answers
 *   every       {"n": N, "fault": F}: every N-th request to this model gets F
 *   always      a fault for every request
 * A fault is {"status": N, "retry_after": S, "body": "..."} (an HTTP error with an
 * OpenAI-style error body unless "body" is given; 404 says the model does not
 * exist) or one of the strings:
 *   "garbage"     200 with a non-JSON body
 *   "truncated"   200 with the first half of a valid JSON answer (exact length)
 *   "cut"         200 announcing the full length but closing after half of it
 *   "drop"        the connection closes with no response at all
 *   "no_content"  200 with valid JSON that lacks choices[0].message.content
 *   "hang"        waits 1 hour (use a client time-out)
 *   "nul"         200 with the normal answer whose content has "\u0000 after
 *                 NUL" appended (valid JSON; llama.cpp's server has sent such)
 *   "huge"        200 with a valid chat answer whose content is size_mb MiB of
 *                 'a' (streamed, never held in memory)
 *   "gzip_bomb"   200 with "Content-Encoding: gzip" and a body of about
 *                 size_mb/160 MiB that inflates to a valid chat answer of
 *                 size_mb MiB (a deflate stream written here, no zlib)
 * size_mb is a per-model key (default 80).
 *
 * Templates and fault bodies may hold {key}: the bearer token the client sent
 * in its Authorization header (a server that echoes secrets back).
 *
 * A realistic pipeline (each role its own model name; "hash" picks keep reruns
 * and resumes identical whatever the concurrency):
 *   {"models": {
 *     "sim":   {"replies": ["I just got back from a hike.", "Work was long today."], "pick": "hash"},
 *     "ind":   {"reply": "The user seems to like the outdoors."},
 *     "resp":  {"reply": "Sounds great! ({hash})", "rules": [
 *                {"any_contains": "outdoors", "reply": "[tailored] Which trail did you take?"}]},
 *     "judge": {"reply": "The reply fits.\\nScore: {score}", "rules": [
 *                {"contains": "[tailored]", "reply": "Preferred: A. Score: 5"},
 *                {"contains": "REMINDER", "reply": "Score: 3"}]},
 *     "vague": {"reply": "I cannot rate this."}}}      <- a judge with no valid score
 * Template placeholders: {last_user} (last user message), {system} (first system
 * message), {model}, {n} (this model's request number, from 1), {turns} (number
 * of user messages), {score} (1..5 from a hash of the messages), {ab} ("A" or
 * "B" from that hash), {hash} (8 hex digits of it). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/sha256.h"

typedef struct ModelState {
    char *name;
    atomic_long count;
} ModelState;

typedef struct Server {
    json_t *script;
    json_t *fallback; /* a model not scripted, without "*" */
    int latency_ms;
    int embed_dim;
    FILE *log;
    pthread_mutex_t log_mu;
    pthread_mutex_t models_mu;
    ModelState *models;
    int n_models, cap_models;
    atomic_long seq, requests, active, peak;
    pthread_mutex_t gate_mu; /* POST /gate/N */
    pthread_cond_t gate_cv;
    long gate_left, gate_round;
} Server;

#define GATE_MAX_S 60

typedef struct Upload {
    StrBuf body;
} Upload;

/* ---- helpers ---- */

static void sleep_ms(long ms) {
    if (ms <= 0) return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

static long model_next(Server *s, const char *name) {
    pthread_mutex_lock(&s->models_mu);
    ModelState *m = NULL;
    for (int i = 0; i < s->n_models; i++)
        if (!strcmp(s->models[i].name, name)) m = &s->models[i];
    if (!m) {
        if (s->n_models == s->cap_models) {
            s->cap_models = s->cap_models ? 2 * s->cap_models : 16;
            s->models = xrealloc(s->models, s->cap_models * sizeof *s->models);
        }
        m = &s->models[s->n_models++];
        m->name = xstrdup(name);
        atomic_init(&m->count, 0);
    }
    long k = atomic_fetch_add(&m->count, 1) + 1;
    pthread_mutex_unlock(&s->models_mu);
    return k;
}

static json_t *model_script(Server *s, const char *name) {
    json_t *models = json_object_get(s->script, "models");
    json_t *m = models ? json_object_get(models, name) : NULL;
    if (m) return m;
    m = json_object_get(s->script, "*");
    if (m) return m;
    return s->fallback;
}

static long count_words(const char *t) {
    long n = 0;
    int in = 0;
    for (; t && *t; t++) {
        int sp = (*t == ' ' || *t == '\n' || *t == '\t' || *t == '\r');
        if (!sp && !in) n++;
        in = !sp;
    }
    return n;
}

static const char *msg_field(json_t *msg, const char *k) {
    const char *v = json_string_value(json_object_get(msg, k));
    return v ? v : "";
}

static const char *last_user(json_t *msgs) {
    const char *r = "";
    for (size_t i = 0; i < json_array_size(msgs); i++)
        if (!strcmp(msg_field(json_array_get(msgs, i), "role"), "user"))
            r = msg_field(json_array_get(msgs, i), "content");
    return r;
}

static uint64_t messages_hash(json_t *msgs) {
    Sha256 c;
    sha256_init(&c);
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        json_t *m = json_array_get(msgs, i);
        const char *r = msg_field(m, "role"), *t = msg_field(m, "content");
        sha256_update(&c, r, strlen(r) + 1);
        sha256_update(&c, t, strlen(t) + 1);
    }
    uint8_t d[32];
    sha256_final(&c, d);
    uint64_t h = 0;
    for (int i = 0; i < 8; i++) h = h << 8 | d[i];
    return h;
}

/* Expands {placeholders} in a template. */
static char *expand(const char *tpl, json_t *msgs, const char *model, long n, const char *key) {
    uint64_t h = messages_hash(msgs);
    const char *system = "";
    int turns = 0;
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        json_t *m = json_array_get(msgs, i);
        if (!strcmp(msg_field(m, "role"), "user")) turns++;
        if (!*system && !strcmp(msg_field(m, "role"), "system")) system = msg_field(m, "content");
    }
    StrBuf b;
    sb_init(&b);
    for (const char *p = tpl; *p; p++) {
        const char *end = *p == '{' ? strchr(p, '}') : NULL;
        if (!end) {
            sb_appendc(&b, *p);
            continue;
        }
        size_t len = end - p - 1;
#define IS(name) (len == strlen(name) && !strncmp(p + 1, name, len))
        if (IS("last_user")) sb_append(&b, last_user(msgs));
        else if (IS("system")) sb_append(&b, system);
        else if (IS("model")) sb_append(&b, model);
        else if (IS("n")) sb_printf(&b, "%ld", n);
        else if (IS("turns")) sb_printf(&b, "%d", turns);
        else if (IS("score")) sb_printf(&b, "%d", (int)(1 + (h >> 8) % 5));
        else if (IS("ab")) sb_append(&b, (h >> 20) & 1 ? "B" : "A");
        else if (IS("hash")) sb_printf(&b, "%08x", (unsigned)(h >> 32));
        else if (IS("key")) sb_append(&b, key ? key : "");
        else {
            sb_appendc(&b, *p);
            continue;
        }
#undef IS
        p = end;
    }
    if (!b.s) sb_append(&b, "");
    return sb_take(&b);
}

static int rule_hit(json_t *r, json_t *msgs) {
    const char *c = json_string_value(json_object_get(r, "contains"));
    const char *a = json_string_value(json_object_get(r, "any_contains"));
    if (c && strstr(last_user(msgs), c)) return 1;
    for (size_t j = 0; a && j < json_array_size(msgs); j++)
        if (strstr(msg_field(json_array_get(msgs, j), "content"), a)) return 1;
    return 0;
}

static const char *choose_template(json_t *ms, json_t *msgs, long n) {
    json_t *rules = json_object_get(ms, "rules");
    for (size_t i = 0; i < json_array_size(rules); i++) {
        json_t *r = json_array_get(rules, i);
        if (json_object_get(r, "fault")) continue; /* choose_fault's */
        if (rule_hit(r, msgs)) return msg_field(r, "reply");
    }
    json_t *list = json_object_get(ms, "replies");
    if (json_array_size(list) > 0) {
        const char *pick = json_string_value(json_object_get(ms, "pick"));
        size_t k = pick && !strcmp(pick, "hash") ? messages_hash(msgs) % json_array_size(list)
                                                 : (size_t)(n - 1) % json_array_size(list);
        const char *t = json_string_value(json_array_get(list, k));
        return t ? t : "";
    }
    const char *t = json_string_value(json_object_get(ms, "reply"));
    return t ? t : "echo: {last_user}";
}

/* The fault (or NULL) for the n-th request to a model. */
static json_t *choose_fault(json_t *ms, long n, json_t *msgs) {
    json_t *rules = json_object_get(ms, "rules");
    for (size_t i = 0; i < json_array_size(rules); i++) {
        json_t *r = json_array_get(rules, i);
        if (json_object_get(r, "fault") && rule_hit(r, msgs)) return json_object_get(r, "fault");
    }
    json_t *always = json_object_get(ms, "always");
    if (always) return always;
    json_t *faults = json_object_get(ms, "faults");
    if (n >= 1 && (size_t)n <= json_array_size(faults)) return json_array_get(faults, n - 1);
    json_t *every = json_object_get(ms, "every");
    long k = (long)json_integer_value(json_object_get(every, "n"));
    if (every && k > 0 && n % k == 0) return json_object_get(every, "fault");
    return NULL;
}

static char *fault_name(json_t *f) {
    if (!f) return xstrdup("none");
    if (json_is_string(f)) return xstrdup(json_string_value(f));
    return xasprintf("status %lld", (long long)json_integer_value(json_object_get(f, "status")));
}

/* ---- script validation: a typo in a script should fail loudly ---- */

static int bad(char *err, size_t n, const char *where, const char *what) {
    snprintf(err, n, "%s: %s", where, what);
    return -1;
}

static int check_fault(json_t *f, const char *where, char *err, size_t n) {
    static const char *kinds[] = {"garbage", "truncated", "cut", "drop", "no_content", "hang", "nul", "huge",
                                  "gzip_bomb"};
    if (json_is_string(f)) {
        for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
            if (!strcmp(json_string_value(f), kinds[i])) return 0;
        return bad(err, n, where, "unknown fault (expected garbage, truncated, cut, drop, no_content, hang, nul, huge "
                                  "or gzip_bomb)");
    }
    if (!json_is_object(f) || !json_is_integer(json_object_get(f, "status")))
        return bad(err, n, where, "a fault is a string or an object with an integer \"status\"");
    const char *k;
    json_t *v;
    json_object_foreach(f, k, v) {
        if (strcmp(k, "status") && strcmp(k, "retry_after") && strcmp(k, "body"))
            return bad(err, n, where, "unknown key in fault (expected status, retry_after, body)");
        if (!strcmp(k, "retry_after") && !json_is_integer(v)) return bad(err, n, where, "retry_after: expected seconds");
        if (!strcmp(k, "body") && !json_is_string(v)) return bad(err, n, where, "body: expected a string");
    }
    return 0;
}

static int check_model(const char *name, json_t *m, char *err, size_t n) {
    char where[300];
    snprintf(where, sizeof where, "model \"%s\"", name);
    if (!json_is_object(m)) return bad(err, n, where, "expected an object");
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) {
        snprintf(where, sizeof where, "model \"%s\", key \"%s\"", name, k);
        int ok = 1;
        if (!strcmp(k, "reply") || !strcmp(k, "finish_reason")) ok = json_is_string(v);
        else if (!strcmp(k, "pick")) ok = json_is_string(v) && (!strcmp(json_string_value(v), "cycle") ||
                                                                !strcmp(json_string_value(v), "hash"));
        else if (!strcmp(k, "latency_ms")) ok = json_is_integer(v);
        else if (!strcmp(k, "size_mb")) ok = json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 4096;
        else if (!strcmp(k, "usage")) ok = json_is_object(v);
        else if (!strcmp(k, "replies")) {
            ok = json_is_array(v) && json_array_size(v) > 0;
            for (size_t i = 0; ok && i < json_array_size(v); i++) ok = json_is_string(json_array_get(v, i));
        } else if (!strcmp(k, "rules")) {
            ok = json_is_array(v);
            for (size_t i = 0; ok && i < json_array_size(v); i++) {
                json_t *r = json_array_get(v, i);
                json_t *f = json_object_get(r, "fault");
                if (f && check_fault(f, where, err, n)) return -1;
                ok = (json_is_string(json_object_get(r, "reply")) || f) &&
                     (json_is_string(json_object_get(r, "contains")) || json_is_string(json_object_get(r, "any_contains")));
            }
        } else if (!strcmp(k, "faults")) {
            if (!json_is_array(v)) return bad(err, n, where, "expected a list of faults");
            for (size_t i = 0; i < json_array_size(v); i++)
                if (check_fault(json_array_get(v, i), where, err, n)) return -1;
        } else if (!strcmp(k, "always")) {
            if (check_fault(v, where, err, n)) return -1;
        } else if (!strcmp(k, "every")) {
            if (!json_is_integer(json_object_get(v, "n")) || json_integer_value(json_object_get(v, "n")) < 1)
                return bad(err, n, where, "expected {\"n\": N >= 1, \"fault\": F}");
            if (check_fault(json_object_get(v, "fault"), where, err, n)) return -1;
        } else {
            return bad(err, n, where, "unknown key (see the header of tests/tools/fake_openai.c)");
        }
        if (!ok) return bad(err, n, where, "wrong type (see the header of tests/tools/fake_openai.c)");
    }
    return 0;
}

static int check_script(json_t *script, char *err, size_t n) {
    const char *k;
    json_t *v;
    json_object_foreach(script, k, v) {
        if (!strcmp(k, "*")) {
            if (check_model("*", v, err, n)) return -1;
        } else if (!strcmp(k, "models")) {
            if (!json_is_object(v)) return bad(err, n, "\"models\"", "expected an object of model name -> behaviour");
            const char *name;
            json_t *m;
            json_object_foreach(v, name, m) if (check_model(name, m, err, n)) return -1;
        } else {
            return bad(err, n, k, "unknown top-level key (expected \"models\" and \"*\")");
        }
    }
    return 0;
}

/* ---- responses ---- */

static enum MHD_Result send_text(struct MHD_Connection *c, int status, const char *body,
                                 const char *ctype, json_t *fault) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body,
                                                             MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", ctype);
    json_t *ra = fault ? json_object_get(fault, "retry_after") : NULL;
    if (ra) {
        char v[32];
        snprintf(v, sizeof v, "%lld", (long long)json_integer_value(ra));
        MHD_add_response_header(r, "Retry-After", v);
    }
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_json(struct MHD_Connection *c, int status, json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT);
    enum MHD_Result ok = send_text(c, status, s, "application/json", NULL);
    free(s);
    return ok;
}

typedef struct CutBody {
    char *data;
    size_t len;
} CutBody;

/* Serves the first half of the body, then reports an error so that MHD
 * closes the connection short of the announced Content-Length. */
static ssize_t cut_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    CutBody *cb = cls;
    size_t half = cb->len / 2;
    if (pos >= half) return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = half - pos < max ? half - pos : max;
    memcpy(buf, cb->data + pos, n);
    return (ssize_t)n;
}

static void cut_free(void *cls) {
    CutBody *cb = cls;
    free(cb->data);
    free(cb);
}

/* ---- oversized answers ---- */

/* A valid chat answer whose content is `n` bytes of 'a', as the text
 * before and after those bytes. */
static const char HUGE_HEAD[] = "{\"id\":\"chatcmpl-huge\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
                                "\"message\":{\"role\":\"assistant\",\"content\":\"";
static const char HUGE_TAIL[] = "\"},\"finish_reason\":\"stop\"}]}";

typedef struct HugeBody {
    uint64_t n; /* bytes of 'a' */
} HugeBody;

static ssize_t huge_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    HugeBody *hb = cls;
    uint64_t head = sizeof HUGE_HEAD - 1, tail = sizeof HUGE_TAIL - 1, total = head + hb->n + tail;
    if (pos >= total) return MHD_CONTENT_READER_END_OF_STREAM;
    size_t k = 0;
    while (k < max && pos < total) {
        if (pos < head) buf[k++] = HUGE_HEAD[pos++];
        else if (pos < head + hb->n) {
            uint64_t run = head + hb->n - pos;
            size_t m = run < max - k ? (size_t)run : max - k;
            memset(buf + k, 'a', m);
            k += m;
            pos += m;
        } else buf[k++] = HUGE_TAIL[pos++ - head - hb->n];
    }
    return (ssize_t)k;
}

static uint64_t size_mb(json_t *ms) {
    json_t *v = json_object_get(ms, "size_mb");
    return (uint64_t)(v ? json_integer_value(v) : 80) << 20;
}

/* Deflate (RFC 1951) bits go out least significant first; Huffman codes
 * most significant first. */
typedef struct Bits {
    StrBuf *out;
    uint32_t acc;
    int n;
} Bits;

static void put_bits(Bits *b, uint32_t v, int n) {
    b->acc |= v << b->n;
    b->n += n;
    while (b->n >= 8) {
        sb_appendc(b->out, (char)(b->acc & 0xff));
        b->acc >>= 8;
        b->n -= 8;
    }
}

static void put_code(Bits *b, uint32_t code, int len) {
    uint32_t r = 0;
    for (int i = 0; i < len; i++) r |= ((code >> i) & 1u) << (len - 1 - i);
    put_bits(b, r, len);
}

/* A literal byte in the fixed Huffman code (the answer is ASCII: < 144). */
static void put_literal(Bits *b, unsigned char c) { put_code(b, 0x30u + c, 8); }

static uint32_t crc32_update(uint32_t crc, const char *p, size_t n, uint64_t repeat_a) {
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ (unsigned char)p[i]) & 0xff] ^ (crc >> 8);
    for (uint64_t i = 0; i < repeat_a; i++) crc = table[(crc ^ 'a') & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* A gzip member whose inflated text is HUGE_HEAD, n times 'a', HUGE_TAIL:
 * one fixed-Huffman block where every further 258 'a's cost one 13-bit
 * back-reference (length 258, distance 1), about 160:1. */
static void gzip_bomb(uint64_t n, StrBuf *out) {
    static const unsigned char hdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    sb_appendn(out, (const char *)hdr, sizeof hdr);
    Bits b = {out, 0, 0};
    put_bits(&b, 1, 1); /* BFINAL */
    put_bits(&b, 1, 2); /* BTYPE 01: fixed Huffman */
    for (const char *p = HUGE_HEAD; *p; p++) put_literal(&b, (unsigned char)*p);
    uint64_t left = n;
    if (left) put_literal(&b, 'a'), left--;
    for (; left >= 258; left -= 258) {
        put_code(&b, 0xC5, 8); /* length code 285: 258 bytes */
        put_code(&b, 0, 5);    /* distance code 0: 1 byte back */
    }
    for (; left; left--) put_literal(&b, 'a');
    for (const char *p = HUGE_TAIL; *p; p++) put_literal(&b, (unsigned char)*p);
    put_code(&b, 0, 7); /* end of block (256) */
    if (b.n) put_bits(&b, 0, 8 - b.n);
    uint32_t crc = crc32_update(0, HUGE_HEAD, sizeof HUGE_HEAD - 1, 0);
    crc = crc32_update(crc, "", 0, n);
    crc = crc32_update(crc, HUGE_TAIL, sizeof HUGE_TAIL - 1, 0);
    uint32_t isize = (uint32_t)(sizeof HUGE_HEAD - 1 + n + sizeof HUGE_TAIL - 1);
    unsigned char trailer[8];
    for (int i = 0; i < 4; i++) trailer[i] = (unsigned char)(crc >> (8 * i)), trailer[4 + i] = (unsigned char)(isize >> (8 * i));
    sb_appendn(out, (const char *)trailer, sizeof trailer);
}

/* {key} in a fault body replaced by the client's bearer token. */
static char *with_key(const char *body, const char *key) {
    StrBuf b;
    sb_init(&b);
    const char *p = body, *hit;
    while ((hit = strstr(p, "{key}"))) {
        sb_appendn(&b, p, (size_t)(hit - p));
        sb_append(&b, key ? key : "");
        p = hit + 5;
    }
    sb_append(&b, p);
    return sb_take(&b);
}

/* Answers with a fault. Returns MHD_NO to drop the connection. */
static enum MHD_Result send_fault(struct MHD_Connection *c, json_t *f, json_t *ms, const char *model,
                                  const char *good_body, const char *key) {
    if (json_is_object(f)) {
        int status = (int)json_integer_value(json_object_get(f, "status"));
        const char *body = json_string_value(json_object_get(f, "body"));
        if (body) {
            char *b = with_key(body, key);
            enum MHD_Result ok = send_text(c, status, b, "application/json", f);
            free(b);
            return ok;
        }
        char *msg = status == 404 ? xasprintf("The model `%s` does not exist or you do not have access to it.", model)
                    : status == 401 ? xstrdup("Incorrect API key provided.")
                    : status == 429 ? xstrdup("Rate limit reached. Please try again later.")
                                    : xasprintf("The server had an error (status %d).", status);
        json_t *j = json_pack("{s:{s:s,s:s,s:s}}", "error", "message", msg, "type",
                              status == 429 ? "rate_limit_exceeded" : "invalid_request_error", "code",
                              status == 404 ? "model_not_found" : "error");
        char *s = json_dumps(j, JSON_COMPACT);
        enum MHD_Result ok = send_text(c, status, s, "application/json", f);
        free(s);
        free(msg);
        json_decref(j);
        return ok;
    }
    const char *kind = json_string_value(f);
    if (!kind) kind = "garbage";
    if (!strcmp(kind, "drop")) return MHD_NO;
    if (!strcmp(kind, "hang")) {
        sleep_ms(3600 * 1000L);
        return MHD_NO;
    }
    if (!strcmp(kind, "truncated")) {
        char *half = xstrndup(good_body, strlen(good_body) / 2);
        enum MHD_Result ok = send_text(c, 200, half, "application/json", NULL);
        free(half);
        return ok;
    }
    if (!strcmp(kind, "cut")) {
        CutBody *cb = xmalloc(sizeof *cb);
        cb->data = xstrdup(good_body);
        cb->len = strlen(good_body);
        struct MHD_Response *r = MHD_create_response_from_callback(cb->len, 1024, cut_reader, cb, cut_free);
        MHD_add_response_header(r, "Content-Type", "application/json");
        enum MHD_Result ok = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ok;
    }
    if (!strcmp(kind, "nul")) {
        json_t *j = json_loads(good_body, 0, NULL);
        json_t *msg = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message");
        const char *t = json_string_value(json_object_get(msg, "content"));
        StrBuf b;
        sb_init(&b);
        sb_append(&b, t ? t : "");
        sb_appendn(&b, "\0 after NUL", 11);
        json_object_set_new(msg, "content", json_stringn(b.s, b.len));
        char *out = json_dumps(j, JSON_COMPACT);
        enum MHD_Result ok = send_text(c, 200, out, "application/json", NULL);
        free(out);
        sb_free(&b);
        json_decref(j);
        return ok;
    }
    if (!strcmp(kind, "huge")) {
        HugeBody *hb = xmalloc(sizeof *hb);
        hb->n = size_mb(ms);
        struct MHD_Response *r = MHD_create_response_from_callback(sizeof HUGE_HEAD - 1 + hb->n + sizeof HUGE_TAIL - 1,
                                                                   64 * 1024, huge_reader, hb, free);
        MHD_add_response_header(r, "Content-Type", "application/json");
        enum MHD_Result ok = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ok;
    }
    if (!strcmp(kind, "gzip_bomb")) {
        StrBuf gz;
        sb_init(&gz);
        gzip_bomb(size_mb(ms), &gz);
        struct MHD_Response *r = MHD_create_response_from_buffer(gz.len, gz.s, MHD_RESPMEM_MUST_COPY);
        MHD_add_response_header(r, "Content-Type", "application/json");
        MHD_add_response_header(r, "Content-Encoding", "gzip");
        enum MHD_Result ok = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        sb_free(&gz);
        return ok;
    }
    if (!strcmp(kind, "no_content"))
        return send_text(c, 200, "{\"id\":\"x\",\"object\":\"chat.completion\",\"choices\":[]}",
                         "application/json", NULL);
    return send_text(c, 200, "<html><body>502 Bad Gateway (nginx)</body></html>", "text/html", NULL);
}

/* ---- endpoints ---- */

static void log_request(Server *s, struct MHD_Connection *c, const char *path, const char *model,
                        long model_seq, json_t *fault, json_t *body) {
    if (!s->log) return;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    char *fn = fault_name(fault);
    json_t *rec = json_pack("{s:I,s:s,s:s,s:I,s:s?,s:s,s:O}", "seq", (json_int_t)atomic_fetch_add(&s->seq, 1) + 1,
                            "path", path, "model", model, "model_seq", (json_int_t)model_seq,
                            "authorization", auth, "fault", fn, "body", body ? body : json_null());
    if (!auth) json_object_set_new(rec, "authorization", json_null());
    char *line = json_dumps(rec, JSON_COMPACT);
    pthread_mutex_lock(&s->log_mu);
    fprintf(s->log, "%s\n", line);
    fflush(s->log);
    pthread_mutex_unlock(&s->log_mu);
    free(line);
    free(fn);
    json_decref(rec);
}

static json_t *chat_answer(Server *s, json_t *ms, json_t *msgs, const char *model, long n, const char *key) {
    char *text = expand(choose_template(ms, msgs, n), msgs, model, n, key);
    json_t *u = json_object_get(ms, "usage");
    long pt = 0;
    for (size_t i = 0; i < json_array_size(msgs); i++) pt += count_words(msg_field(json_array_get(msgs, i), "content"));
    long ct = count_words(text);
    if (json_object_get(u, "prompt_tokens")) pt = (long)json_integer_value(json_object_get(u, "prompt_tokens"));
    if (json_object_get(u, "completion_tokens")) ct = (long)json_integer_value(json_object_get(u, "completion_tokens"));
    const char *fr = json_string_value(json_object_get(ms, "finish_reason"));
    json_t *j = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:{s:s,s:s},s:s}],s:{s:I,s:I,s:I}}", "id", "chatcmpl-fake",
                          "object", "chat.completion", "created", (json_int_t)time(NULL), "model", model,
                          "choices", "index", 0, "message", "role", "assistant", "content", text,
                          "finish_reason", fr ? fr : "stop", "usage", "prompt_tokens", (json_int_t)pt,
                          "completion_tokens", (json_int_t)ct, "total_tokens", (json_int_t)(pt + ct));
    /* an endpoint with prompt caching reports the cached part (OpenAI's usage.prompt_tokens_details) */
    if (json_object_get(u, "cached_tokens"))
        json_object_set_new(json_object_get(j, "usage"), "prompt_tokens_details",
                            json_pack("{s:I}", "cached_tokens", json_integer_value(json_object_get(u, "cached_tokens"))));
    (void)s;
    free(text);
    return j;
}

static void embed_text(const char *t, int dim, double *v) {
    memset(v, 0, dim * sizeof *v);
    char word[256];
    size_t wl = 0;
    for (const char *p = t;; p++) {
        unsigned char ch = (unsigned char)*p;
        int alnum = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch >= 0x80;
        if (alnum && wl < sizeof word - 1) {
            word[wl++] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
        } else if (!alnum && wl) {
            uint8_t d[32];
            Sha256 c;
            sha256_init(&c);
            sha256_update(&c, word, wl);
            sha256_final(&c, d);
            v[(d[0] | d[1] << 8 | d[2] << 16) % dim] += 1.0;
            wl = 0;
        }
        if (!ch) break;
    }
    double norm = 0;
    for (int i = 0; i < dim; i++) norm += v[i] * v[i];
    if (norm == 0) {
        v[0] = 1; /* an empty text still gets a unit vector */
        return;
    }
    for (int i = 0; i < dim; i++) v[i] /= sqrt(norm);
}

static json_t *embed_answer(Server *s, json_t *input, const char *model) {
    json_t *data = json_array();
    json_t *texts = json_is_string(input) ? json_pack("[O]", input) : json_incref(input);
    double *v = xmalloc(s->embed_dim * sizeof *v);
    long words = 0;
    for (size_t i = 0; i < json_array_size(texts); i++) {
        const char *t = json_string_value(json_array_get(texts, i));
        embed_text(t ? t : "", s->embed_dim, v);
        words += count_words(t);
        json_t *vec = json_array();
        for (int k = 0; k < s->embed_dim; k++) json_array_append_new(vec, json_real(v[k]));
        json_array_append_new(data, json_pack("{s:s,s:I,s:o}", "object", "embedding", "index", (json_int_t)i,
                                              "embedding", vec));
    }
    free(v);
    json_decref(texts);
    return json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model", model, "usage",
                     "prompt_tokens", (json_int_t)words, "total_tokens", (json_int_t)words);
}

/* Holds a request while a gate is armed, until the gate's last request
 * arrives (or GATE_MAX_S passes: then the gate opens for all). */
static void gate_pass(Server *s) {
    pthread_mutex_lock(&s->gate_mu);
    if (s->gate_left > 0) {
        long round = s->gate_round;
        if (--s->gate_left == 0) {
            s->gate_round++;
            pthread_cond_broadcast(&s->gate_cv);
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += GATE_MAX_S;
        while (s->gate_round == round)
            if (pthread_cond_timedwait(&s->gate_cv, &s->gate_mu, &until) == ETIMEDOUT) {
                s->gate_left = 0;
                s->gate_round++;
                pthread_cond_broadcast(&s->gate_cv);
            }
    }
    pthread_mutex_unlock(&s->gate_mu);
}

static enum MHD_Result handle_post(Server *s, struct MHD_Connection *c, const char *path, const char *body) {
    int is_chat = !strcmp(path, "/chat/completions"), is_embed = !strcmp(path, "/embeddings");
    if (!strcmp(path, "/stats/reset")) {
        atomic_store(&s->requests, 0);
        atomic_store(&s->peak, atomic_load(&s->active) - 1); /* less this request */
        return send_text(c, 200, "{}", "application/json", NULL);
    }
    if (!strncmp(path, "/gate/", 6)) {
        char *end;
        long n = strtol(path + 6, &end, 10);
        if (*end || n < 1) return send_text(c, 400, "{\"error\":{\"message\":\"/gate/N wants N >= 1\"}}", "application/json", NULL);
        pthread_mutex_lock(&s->gate_mu);
        s->gate_left = n;
        s->gate_round++;
        pthread_mutex_unlock(&s->gate_mu);
        return send_text(c, 200, "{}", "application/json", NULL);
    }
    if (!is_chat && !is_embed) return send_text(c, 404, "{\"error\":{\"message\":\"no such path\"}}", "application/json", NULL);
    json_error_t je;
    json_t *req = json_loads(body, 0, &je);
    const char *model = json_string_value(json_object_get(req, "model"));
    if (!req || !model) {
        json_decref(req);
        return send_text(c, 400, "{\"error\":{\"message\":\"request is not JSON with a model\"}}", "application/json", NULL);
    }
    long n = model_next(s, model);
    json_t *ms = model_script(s, model);
    json_t *fault = is_chat ? choose_fault(ms, n, json_object_get(req, "messages")) : choose_fault(ms, n, NULL);
    log_request(s, c, is_chat ? "/v1/chat/completions" : "/v1/embeddings", model, n, fault, req);
    gate_pass(s);
    json_t *lat = json_object_get(ms, "latency_ms");
    sleep_ms(lat ? (long)json_integer_value(lat) : s->latency_ms);

    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *key = auth && !strncmp(auth, "Bearer ", 7) ? auth + 7 : NULL;
    json_t *ans = is_chat ? chat_answer(s, ms, json_object_get(req, "messages"), model, n, key)
                          : embed_answer(s, json_object_get(req, "input"), model);
    enum MHD_Result ok;
    if (fault) {
        char *good = json_dumps(ans, JSON_COMPACT);
        ok = send_fault(c, fault, ms, model, good, key);
        free(good);
    } else {
        ok = send_json(c, 200, ans);
    }
    json_decref(ans);
    json_decref(req);
    return ok;
}

static enum MHD_Result handle_get(Server *s, struct MHD_Connection *c, const char *path) {
    if (!strcmp(path, "/stats")) {
        json_t *j = json_pack("{s:I,s:I,s:I}", "requests", (json_int_t)atomic_load(&s->requests), "active",
                              (json_int_t)atomic_load(&s->active), "peak", (json_int_t)atomic_load(&s->peak));
        enum MHD_Result ok = send_json(c, 200, j);
        json_decref(j);
        return ok;
    }
    if (!strcmp(path, "/models")) {
        json_t *data = json_array();
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(s->script, "models"), k, v)
            json_array_append_new(data, json_pack("{s:s,s:s}", "id", k, "object", "model"));
        json_t *j = json_pack("{s:s,s:o}", "object", "list", "data", data);
        enum MHD_Result ok = send_json(c, 200, j);
        json_decref(j);
        return ok;
    }
    return send_text(c, 404, "{\"error\":{\"message\":\"no such path\"}}", "application/json", NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    Server *s = cls;
    Upload *u = *con_cls;
    if (!u) {
        u = xcalloc(1, sizeof *u);
        sb_init(&u->body);
        *con_cls = u;
        return MHD_YES;
    }
    if (*upload_size) {
        sb_appendn(&u->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    const char *path = !strncmp(url, "/v1/", 4) ? url + 3 : url;
    if (strcmp(method, "POST")) return handle_get(s, c, path);
    /* Only POSTs count as requests in flight (not the /stats reads). */
    long a = atomic_fetch_add(&s->active, 1) + 1;
    long p = atomic_load(&s->peak);
    while (a > p && !atomic_compare_exchange_weak(&s->peak, &p, a)) {
    }
    atomic_fetch_add(&s->requests, 1);
    enum MHD_Result ok = handle_post(s, c, path, u->body.s ? u->body.s : "");
    atomic_fetch_sub(&s->active, 1);
    return ok;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t) {
    (void)cls, (void)c, (void)t;
    Upload *u = *con_cls;
    if (u) {
        sb_free(&u->body);
        free(u);
    }
    *con_cls = NULL;
}

static void usage(void) {
    fprintf(stderr, "usage: fake_openai --port N [--port-file F] [--latency-ms MS] [--script FILE] "
                    "[--log FILE] [--embed-dim D] [--exit-with-parent 1]\n(test-only OpenAI-compatible server; see its source header)\n");
    exit(2);
}

int main(int argc, char **argv) {
    Server s;
    memset(&s, 0, sizeof s);
    s.embed_dim = 64;
    int port = 0, with_parent = 0;
    const char *port_file = NULL, *script = NULL, *log_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--port-file")) port_file = v;
        else if (!strcmp(a, "--latency-ms")) s.latency_ms = atoi(v);
        else if (!strcmp(a, "--script")) script = v;
        else if (!strcmp(a, "--log")) log_path = v;
        else if (!strcmp(a, "--embed-dim")) s.embed_dim = atoi(v);
        else if (!strcmp(a, "--exit-with-parent")) with_parent = atoi(v);
        else usage();
    }
    if (s.embed_dim < 1) usage();
    if (script) {
        json_error_t je;
        s.script = json_load_file(script, 0, &je);
        if (!s.script || !json_is_object(s.script)) {
            fprintf(stderr, "fake_openai: %s:%d: %s\n", script, je.line, s.script ? "expected an object" : je.text);
            return 2;
        }
        char err[512];
        if (check_script(s.script, err, sizeof err)) {
            fprintf(stderr, "fake_openai: %s: %s\n", script, err);
            return 2;
        }
    } else {
        s.script = json_object();
    }
    if (log_path && !(s.log = fopen(log_path, "a"))) {
        fprintf(stderr, "fake_openai: cannot open log %s: %s\n", log_path, strerror(errno));
        return 2;
    }
    s.fallback = json_pack("{s:s}", "reply", "echo: {last_user}");
    pthread_mutex_init(&s.log_mu, NULL);
    pthread_mutex_init(&s.models_mu, NULL);
    pthread_mutex_init(&s.gate_mu, NULL);
    pthread_cond_init(&s.gate_cv, NULL);

    /* Block the stop signals in every thread; main waits for them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    pid_t parent = getppid();
    if (with_parent && (prctl(PR_SET_PDEATHSIG, SIGTERM) || getppid() != parent)) return 1;

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD, (uint16_t)port, NULL,
        NULL, on_request, &s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)2000, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_LISTEN_BACKLOG_SIZE,
        (unsigned)1024, MHD_OPTION_NOTIFY_COMPLETED, on_completed, &s, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "fake_openai: cannot listen on 127.0.0.1:%d\n", port);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int bound = info ? info->port : port;
    if (port_file) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%d\n", bound);
        Err e;
        if (file_write_atomic(port_file, buf, (size_t)n, &e)) {
            fprintf(stderr, "fake_openai: %s\n", e.msg);
            return 1;
        }
    }
    if (!port_file) fprintf(stderr, "fake_openai: listening on http://127.0.0.1:%d/v1\n", bound);
    int sig;
    sigwait(&stop, &sig);
    /* Connection threads may be sleeping in an injected latency or a "hang";
     * a test tool need not wait for them. */
    if (s.log) fflush(s.log);
    _exit(0);
}
