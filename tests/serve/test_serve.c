/* aloe serve end to end: the built binary serving the tiny fixtures, driven
 * over HTTP with libcurl and raw sockets. Greedy output equals `aloe
 * complete` token for token, embeddings equal `aloe embed` bit for bit,
 * the SSE framing byte for byte, every error status, the key, concurrent
 * clients, a client that hangs up, and SIGTERM. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "cli/aloe_sh.h"
#include "infer/idlist.h"
#include "llm/oai_wire.h"
#include "serve/served.h"
#include "serve/server.h"
#include "test.h"
#include "tok/chat_template.h"
#include "tok/tok.h"

#define QWEN "fixtures/models/tiny-qwen2"
#define BERT "fixtures/models/tiny-bert-st"

/* ---- expectations from the other commands ---- */

/* The ids `aloe complete --prompt-ids` generates greedily (max new tokens). */
static int complete_ids(const char *dir, const int32_t *prompt, int n, int max, int32_t **out, int *n_out) {
    StrBuf ids;
    sb_init(&ids);
    idlist_format(&ids, prompt, n);
    /* "[1, 2, 3]" -> "1,2,3" */
    StrBuf flat;
    sb_init(&flat);
    for (size_t i = 0; i < ids.len; i++)
        if (ids.s[i] != '[' && ids.s[i] != ']' && ids.s[i] != ' ') sb_appendc(&flat, ids.s[i]);
    char *args = xasprintf("complete --model %s --prompt-ids %s --max-tokens %d --temperature 0 --print-ids 2>/dev/null",
                           dir, flat.s, max);
    char *log = NULL;
    int rc = aloe_sh_run(NULL, args, &log);
    Err e;
    /* the ids are the last line that is a JSON array (stderr shares the log) */
    const char *arr = NULL;
    for (const char *p = log; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (*p == '[') arr = p;
    if (!rc && arr) {
        char *line = xstrndup(arr, strcspn(arr, "]") + 1);
        StrBuf f;
        sb_init(&f);
        for (const char *p = line; *p; p++)
            if (*p != '[' && *p != ']' && *p != ' ') sb_appendc(&f, *p);
        rc = f.len ? idlist_parse(f.s, out, n_out, &e) : (*out = NULL, *n_out = 0, 0);
        sb_free(&f);
        free(line);
    } else {
        rc = -1;
    }
    free(log);
    free(args);
    sb_free(&ids);
    sb_free(&flat);
    return rc;
}

/* ids as the reply text a stream shows: up to a stop id, invalid UTF-8 as U+FFFD. */
static char *reply_of(const Tokenizer *tok, const int32_t *ids, int n) {
    TokStream ts;
    StrBuf b;
    sb_init(&b);
    tok_stream_init(&ts, tok, 1);
    Err e;
    for (int i = 0; i < n; i++) {
        if (tok_is_eot(tok, ids[i]) || ids[i] == tok_eos(tok)) break;
        tok_stream_push(&ts, ids[i], &b, &e);
    }
    tok_stream_flush(&ts, &b);
    return b.s ? sb_take(&b) : xstrdup("");
}

/* The chat prompt's ids, rendered as the server renders it. */
static int chat_prompt_ids(const char *dir, const char *system, const char *user, Tokenizer **tok, int32_t **ids,
                           int *n) {
    Err e;
    ChatTemplate *t = chat_template_open_hf(dir, NULL, &e);
    *tok = tok_load_hf(dir, &e);
    if (!t || !*tok) return -1;
    ChatMsg cm[2] = {{"system", system}, {"user", user}};
    char *text = NULL;
    int rc = chat_template_render(t, cm, 2, 1, NULL, &text, &e) || tok_encode(*tok, text, 0, 1, ids, n, &e);
    free(text);
    chat_template_free(t);
    return rc;
}

/* choices[i].message.content (chat) or choices[i].text (completions). */
static const char *choice_text(json_t *j, int i) {
    json_t *c = json_array_get(json_object_get(j, "choices"), (size_t)i);
    json_t *m = json_object_get(c, "message");
    return json_string_value(m ? json_object_get(m, "content") : json_object_get(c, "text"));
}

static long usage_of(json_t *j, const char *field) {
    return (long)json_integer_value(json_object_get(json_object_get(j, "usage"), field));
}

/* ---- one server for most tests: the decoder and the encoder ---- */

static Served sv;
static int sv_up;
static char *qwen_dir, *bert_dir;

static int need_server(void) {
    if (sv_up) return sv_up > 0;
    qwen_dir = test_need_shared(QWEN);
    bert_dir = test_need_shared(BERT);
    if (!qwen_dir || !bert_dir) return 0;
    /* no prefix cache here: a prompt prefilled partly from it may round
     * differently from a whole prefill (a GEMM of other row counts), and
     * these tests compare greedy texts of repeated prompts exactly; the
     * cache has its own test below */
    char *args = xasprintf("--model %s --alias tq --model %s --alias bert -j 4 --max-queue 8 --max-body-mib 1 "
                           "--max-prompt-tokens 200 --max-tokens 1000 --ctx 2048 --threads 1 --prefix-cache-mib 0",
                           qwen_dir, bert_dir);
    sv_up = served_start(&sv, args, NULL) ? -1 : 1;
    free(args);
    if (sv_up < 0) test_fail(__FILE__, __LINE__, "aloe serve did not start (see the lines above)");
    return sv_up > 0;
}

/* ---- tests ---- */

static void test_listening_line(void) {
    if (!need_server()) return;
    char *out = served_output(&sv);
    char *want = xasprintf("listening on http://127.0.0.1:%d\n", sv.port);
    CHECK_MSG(strstr(out, want) == out || strstr(out, want), "no \"%s\" in: %s", want, out);
    /* exactly one such line */
    const char *first = strstr(out, "listening on");
    CHECK(first && !strstr(first + 1, "listening on"));
    free(want);
    free(out);
}

static void test_greedy_chat_equals_complete(void) {
    if (!need_server()) return;
    const char *sys = "Be brief.", *user = "I just moved to a new city and want to find friends.";
    Tokenizer *tok = NULL;
    int32_t *ids = NULL, *out = NULL;
    int n = 0, n_out = 0;
    CHECK(!chat_prompt_ids(qwen_dir, sys, user, &tok, &ids, &n));
    CHECK(!complete_ids(qwen_dir, ids, n, 24, &out, &n_out));
    char *want = reply_of(tok, out, n_out);
    char *body = xasprintf("{\"model\": \"tq\", \"messages\": [{\"role\": \"system\", \"content\": \"%s\"}, "
                           "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"%s\"}]}], "
                           "\"max_tokens\": 24, \"temperature\": 0}", sys, user);
    HttpReply r = served_post(&sv, "/v1/chat/completions", body, NULL);
    CHECK_EQ_INT(r.status, 200);
    json_t *j = http_json(&r);
    CHECK(j != NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "object")), "chat.completion");
    CHECK_EQ_STR(choice_text(j, 0), want);
    CHECK_EQ_INT(usage_of(j, "prompt_tokens"), n);
    /* complete's ids include the stop id that ended it, which is no reply token */
    int stopped = n_out < 24;
    CHECK_EQ_INT(usage_of(j, "completion_tokens"), n_out);
    const char *fr = json_string_value(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "finish_reason"));
    CHECK_EQ_STR(fr, stopped ? "stop" : "length");
    json_decref(j);
    http_reply_free(&r);
    free(body);
    free(want);
    free(ids);
    free(out);
    tok_free(tok);
}

static void test_completions_ids_text_and_echo(void) {
    if (!need_server()) return;
    Err e;
    Tokenizer *tok = tok_load_hf(qwen_dir, &e);
    CHECK_OK(tok == NULL, &e);
    int32_t prompt[] = {1025, 82, 287};
    int32_t *out = NULL;
    int n_out = 0;
    CHECK(!complete_ids(qwen_dir, prompt, 3, 16, &out, &n_out));
    char *want = reply_of(tok, out, n_out);
    HttpReply r = served_post(&sv, "/v1/completions",
                              "{\"model\": \"tq\", \"prompt\": [1025, 82, 287], \"max_tokens\": 16, \"temperature\": 0}",
                              NULL);
    CHECK_EQ_INT(r.status, 200);
    json_t *j = http_json(&r);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "object")), "text_completion");
    CHECK_EQ_STR(choice_text(j, 0), want);
    CHECK_EQ_INT(usage_of(j, "prompt_tokens"), 3);
    json_decref(j);
    http_reply_free(&r);
    /* a text prompt is encoded as `aloe complete --prompt` encodes it; echo puts it first */
    int32_t *ids = NULL;
    int n = 0;
    CHECK_OK(tok_encode(tok, "Once upon a time", 1, 1, &ids, &n, &e), &e);
    free(out);
    CHECK(!complete_ids(qwen_dir, ids, n, 12, &out, &n_out));
    char *cont = reply_of(tok, out, n_out);
    r = served_post(&sv, "/completions",
                    "{\"model\": \"tq\", \"prompt\": \"Once upon a time\", \"max_tokens\": 12, \"temperature\": 0, "
                    "\"echo\": true}", NULL);
    CHECK_EQ_INT(r.status, 200);
    j = http_json(&r);
    char *both = xasprintf("Once upon a time%s", cont);
    CHECK_EQ_STR(choice_text(j, 0), both);
    json_decref(j);
    http_reply_free(&r);
    free(both);
    free(cont);
    free(ids);
    free(out);
    free(want);
    tok_free(tok);
}

/* The SSE stream byte for byte: "data: JSON\n\n" events, the role first,
 * the text pieces adding up to the non-streamed reply, a finish_reason,
 * the usage chunk when asked for, and "data: [DONE]\n\n" last. */
static void test_stream_framing(void) {
    if (!need_server()) return;
    const char *req = "{\"model\": \"tq\", \"messages\": [{\"role\": \"user\", \"content\": \"Tell me a story.\"}], "
                      "\"max_tokens\": 20, \"temperature\": 0%s}";
    char *plain = xasprintf(req, "");
    char *streamed = xasprintf(req, ", \"stream\": true, \"stream_options\": {\"include_usage\": true}");
    HttpReply a = served_post(&sv, "/v1/chat/completions", plain, NULL);
    json_t *ja = http_json(&a);
    HttpReply r = served_post(&sv, "/v1/chat/completions", streamed, NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strcasestr(r.headers.s, "Content-Type: text/event-stream") != NULL);
    const char *tail = "data: [DONE]\n\n";
    CHECK(r.body.len >= strlen(tail) && !strcmp(r.body.s + r.body.len - strlen(tail), tail));
    StrBuf text;
    sb_init(&text);
    int events = 0, roles = 0, finishes = 0, usage_chunks = 0, done = 0;
    char *p = r.body.s;
    while (*p) {
        CHECK_MSG(!strncmp(p, "data: ", 6), "event %d does not start with \"data: \": %.40s", events, p);
        char *end = strstr(p, "\n\n");
        CHECK(end != NULL);
        if (!end) break;
        CHECK(memchr(p, '\n', (size_t)(end - p)) == NULL); /* one line per event */
        *end = 0;
        events++;
        if (!strcmp(p + 6, "[DONE]")) {
            done++;
            CHECK(end[2] == 0); /* the last */
        } else {
            json_t *c = json_loads(p + 6, 0, NULL);
            CHECK_MSG(c != NULL, "event %d is not JSON: %s", events, p + 6);
            CHECK_EQ_STR(json_string_value(json_object_get(c, "object")), "chat.completion.chunk");
            json_t *choices = json_object_get(c, "choices");
            if (json_array_size(choices) == 0) {
                usage_chunks++;
                CHECK_EQ_INT(usage_of(c, "completion_tokens"), usage_of(ja, "completion_tokens"));
            } else {
                CHECK_EQ_INT(usage_chunks, 0); /* usage comes after every choice chunk */
                json_t *ch = json_array_get(choices, 0), *delta = json_object_get(ch, "delta");
                if (json_object_get(delta, "role")) roles++;
                if (json_is_string(json_object_get(delta, "content")))
                    sb_append(&text, json_string_value(json_object_get(delta, "content")));
                if (json_is_string(json_object_get(ch, "finish_reason"))) finishes++;
            }
            json_decref(c);
        }
        p = end + 2;
    }
    CHECK_EQ_INT(roles, 1);
    CHECK_EQ_INT(finishes, 1);
    CHECK_EQ_INT(usage_chunks, 1);
    CHECK_EQ_INT(done, 1);
    CHECK_EQ_STR(text.s ? text.s : "", choice_text(ja, 0));
    sb_free(&text);
    json_decref(ja);
    http_reply_free(&a);
    http_reply_free(&r);
    free(plain);
    free(streamed);
}

static void test_embeddings_equal_embed(void) {
    if (!need_server()) return;
    char *args = xasprintf("embed --model %s 'She is a nurse.' 'He runs marathons.' 2>/dev/null", bert_dir);
    char *log = NULL;
    CHECK_EQ_INT(aloe_sh_run(NULL, args, &log), 0);
    /* the two lines that are JSON arrays (stderr shares the log) */
    json_t *want[2] = {NULL, NULL};
    int got = 0;
    for (char *p = log; p && *p && got < 2; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (*p == '[') want[got++] = json_loadb(p, strcspn(p, "\n"), 0, NULL);
    CHECK(want[0] && want[1]);
    if (!want[0] || !want[1]) return;
    HttpReply r = served_post(&sv, "/v1/embeddings",
                              "{\"model\": \"bert\", \"input\": [\"She is a nurse.\", \"He runs marathons.\"]}", NULL);
    CHECK_EQ_INT(r.status, 200);
    json_t *j = http_json(&r);
    HttpReply r64 = served_post(&sv, "/v1/embeddings",
                                "{\"model\": \"bert\", \"input\": [\"She is a nurse.\", \"He runs marathons.\"], "
                                "\"encoding_format\": \"base64\"}", NULL);
    json_t *j64 = http_json(&r64);
    for (int i = 0; i < 2; i++) {
        json_t *item = json_array_get(json_object_get(j, "data"), (size_t)i);
        CHECK_EQ_INT(json_integer_value(json_object_get(item, "index")), i);
        json_t *vec = json_object_get(item, "embedding");
        CHECK_EQ_INT(json_array_size(vec), json_array_size(want[i]));
        /* floats printed %.9g by embed and %.17g of the same float here: both read back exactly */
        for (size_t k = 0; k < json_array_size(vec); k++)
            CHECK_MSG((float)json_number_value(json_array_get(vec, k)) == (float)json_number_value(json_array_get(want[i], k)),
                      "input %d, dimension %zu differs", i, k);
        /* base64: the same floats' little-endian bytes */
        const char *b64 = json_string_value(json_object_get(json_array_get(json_object_get(j64, "data"), (size_t)i),
                                                            "embedding"));
        CHECK(b64 != NULL);
        size_t dim = json_array_size(want[i]);
        float *v = xmalloc(dim * sizeof *v);
        for (size_t k = 0; k < dim; k++) v[k] = (float)json_number_value(json_array_get(want[i], k));
        char *enc = oai_base64(v, dim * sizeof *v);
        CHECK_EQ_STR(b64 ? b64 : "", enc);
        free(enc);
        free(v);
        json_decref(want[i]);
    }
    CHECK(usage_of(j, "prompt_tokens") > 0);
    json_decref(j);
    json_decref(j64);
    http_reply_free(&r);
    http_reply_free(&r64);
    free(log);
    free(args);
}

static void test_models_health_metrics(void) {
    if (!need_server()) return;
    HttpReply r = served_get(&sv, "/v1/models", NULL);
    CHECK_EQ_INT(r.status, 200);
    json_t *j = http_json(&r);
    json_t *data = json_object_get(j, "data");
    CHECK_EQ_INT(json_array_size(data), 2);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(data, 0), "id")), "tq");
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(data, 1), "id")), "bert");
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(data, 0), "object")), "model");
    json_decref(j);
    http_reply_free(&r);
    r = served_get(&sv, "/health", NULL);
    CHECK_EQ_INT(r.status, 200);
    http_reply_free(&r);
    /* a model is also found by its directory's name */
    r = served_post(&sv, "/v1/completions", "{\"model\": \"tiny-qwen2\", \"prompt\": [1], \"max_tokens\": 2}", NULL);
    CHECK_EQ_INT(r.status, 200);
    http_reply_free(&r);
    r = served_get(&sv, "/metrics", NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strstr(r.body.s, "# TYPE aloe_time_to_first_token_seconds histogram") != NULL);
    CHECK(strstr(r.body.s, "aloe_time_per_output_token_seconds_bucket{le=\"+Inf\"}") != NULL);
    CHECK(strstr(r.body.s, "aloe_requests_total{status=\"200\"}") != NULL);
    CHECK(strstr(r.body.s, "aloe_requests_waiting ") != NULL);
    http_reply_free(&r);
    CHECK(served_metric(&sv, "aloe_completion_tokens_total") >= 2);
}

/* status, error.param and error.code of one request */
static void expect_error(const char *path, const char *body, long status, const char *param, const char *code) {
    HttpReply r = served_post(&sv, path, body, NULL);
    CHECK_MSG(r.status == status, "%s %s: status %ld, expected %ld (%s)", path, body, r.status, status, r.body.s);
    json_t *j = http_json(&r);
    json_t *err = json_object_get(j, "error");
    CHECK_MSG(json_is_string(json_object_get(err, "message")), "no error.message in %s", r.body.s);
    CHECK(json_is_string(json_object_get(err, "type")));
    if (param) CHECK_EQ_STR(json_string_value(json_object_get(err, "param")) ? json_string_value(json_object_get(err, "param")) : "(null)", param);
    if (code) CHECK_EQ_STR(json_string_value(json_object_get(err, "code")) ? json_string_value(json_object_get(err, "code")) : "(null)", code);
    json_decref(j);
    http_reply_free(&r);
}

static void test_error_statuses(void) {
    if (!need_server()) return;
    const char *chat = "/v1/chat/completions";
    expect_error(chat, "{not json", 400, "body", NULL);
    expect_error(chat, "{\"model\": \"tq\"}", 400, "messages", NULL);
    expect_error(chat, "{\"model\": \"tq\", \"messages\": [{\"role\": \"user\", \"content\": 5}]}", 400,
                 "messages[0].content", NULL);
    expect_error(chat, "{\"model\": \"tq\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"temperature\": 9}",
                 400, "temperature", NULL);
    expect_error(chat, "{\"model\": \"tq\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"n\": 0}", 400,
                 "n", NULL);
    expect_error(chat, "{\"model\": \"tq\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], "
                       "\"logit_bias\": {\"99999\": 1}}", 400, "logit_bias", NULL);
    expect_error(chat, "{\"model\": \"tq\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], "
                       "\"max_tokens\": 5000}", 400, "max_tokens", NULL);
    expect_error("/v1/completions", "{\"model\": \"tq\", \"prompt\": [1, 5000]}", 400, "prompt", NULL);
    expect_error("/v1/embeddings", "{\"model\": \"tq\", \"input\": \"x\"}", 400, "model", NULL);
    expect_error(chat, "{\"model\": \"bert\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", 400, "model",
                 NULL);
    expect_error(chat, "{\"model\": \"gpt-9\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", 404, "model",
                 "model_not_found");
    expect_error("/v1/nothing", "{}", 404, NULL, NULL);
    HttpReply r = served_get(&sv, "/v1/chat/completions", NULL);
    CHECK_EQ_INT(r.status, 405);
    http_reply_free(&r);
    /* 413: a body over --max-body-mib 1, and a prompt over --max-prompt-tokens 200 */
    size_t big = (1u << 20) + 100;
    char *body = xmalloc(big + 100);
    int off = snprintf(body, 100, "{\"model\": \"tq\", \"prompt\": \"");
    memset(body + off, 'a', big);
    strcpy(body + off + big, "\"}");
    expect_error("/v1/completions", body, 413, NULL, NULL);
    StrBuf ids;
    sb_init(&ids);
    sb_append(&ids, "{\"model\": \"tq\", \"prompt\": [1");
    for (int i = 0; i < 300; i++) sb_append(&ids, ", 7");
    sb_append(&ids, "]}");
    expect_error("/v1/completions", ids.s, 413, "prompt", "context_length_exceeded");
    sb_free(&ids);
    free(body);
    /* 503: more sequences than the batch (-j 4) and the queue (--max-queue 8) together hold */
    r = served_post(&sv, chat, "{\"model\": \"tq\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"n\": 13}",
                    NULL);
    CHECK_EQ_INT(r.status, 503);
    CHECK(strcasestr(r.headers.s, "Retry-After: ") != NULL);
    http_reply_free(&r);
    /* within them, n choices: seeded sampling differs between choices and repeats per seed */
    const char *ns = "{\"model\": \"tq\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"n\": 3, "
                     "\"temperature\": 1.5, \"seed\": 7, \"max_tokens\": 12}";
    HttpReply a = served_post(&sv, chat, ns, NULL), b = served_post(&sv, chat, ns, NULL);
    CHECK_EQ_INT(a.status, 200);
    json_t *ja = http_json(&a), *jb = http_json(&b);
    CHECK_EQ_INT(json_array_size(json_object_get(ja, "choices")), 3);
    for (int i = 0; i < 3; i++) CHECK_EQ_STR(choice_text(ja, i), choice_text(jb, i));
    json_decref(ja);
    json_decref(jb);
    http_reply_free(&a);
    http_reply_free(&b);
}

/* logprobs are a distribution's (top alternatives sorted, the chosen greedy
 * token the most likely); logit_bias of -100 bans a token; stop cuts. */
static void test_logprobs_bias_stop(void) {
    if (!need_server()) return;
    HttpReply r = served_post(&sv, "/v1/chat/completions",
                              "{\"model\": \"tq\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}], "
                              "\"max_tokens\": 6, \"temperature\": 0, \"logprobs\": true, \"top_logprobs\": 3}", NULL);
    CHECK_EQ_INT(r.status, 200);
    json_t *j = http_json(&r);
    json_t *content = json_object_get(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "logprobs"),
                                      "content");
    CHECK(json_array_size(content) > 0);
    size_t i;
    json_t *tk;
    json_array_foreach(content, i, tk) {
        double lp = json_number_value(json_object_get(tk, "logprob"));
        CHECK(lp <= 0);
        json_t *top = json_object_get(tk, "top_logprobs");
        CHECK_EQ_INT(json_array_size(top), 3);
        double best = json_number_value(json_object_get(json_array_get(top, 0), "logprob"));
        CHECK_NEAR(lp, best, 0); /* greedy took the most likely */
        CHECK(json_number_value(json_object_get(json_array_get(top, 1), "logprob")) <= best);
    }
    /* ban the first greedy token: the reply now starts differently */
    const char *first = json_string_value(json_object_get(json_array_get(content, 0), "token"));
    Err e;
    Tokenizer *tok = tok_load_hf(qwen_dir, &e);
    int32_t *ids = NULL;
    int n = 0;
    CHECK_OK(tok_encode(tok, first, 0, 0, &ids, &n, &e), &e);
    if (n == 1) {
        char *body = xasprintf("{\"model\": \"tq\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}], "
                               "\"max_tokens\": 6, \"temperature\": 0, \"logprobs\": true, \"logit_bias\": {\"%d\": -100}}",
                               ids[0]);
        HttpReply b = served_post(&sv, "/v1/chat/completions", body, NULL);
        json_t *jb = http_json(&b);
        json_t *c2 = json_object_get(json_object_get(json_array_get(json_object_get(jb, "choices"), 0), "logprobs"),
                                     "content");
        CHECK(strcmp(json_string_value(json_object_get(json_array_get(c2, 0), "token")), first) != 0);
        json_decref(jb);
        http_reply_free(&b);
        free(body);
    }
    free(ids);
    tok_free(tok);
    /* stop: the reply is cut before the stop string, finish_reason "stop" */
    const char *text = choice_text(j, 0);
    char stop = 0;
    for (size_t k = 1; text && text[k] && !stop; k++)
        if (text[k] > ' ' && text[k] < 0x7f && text[k] != '"' && text[k] != '\\') stop = text[k];
    if (stop) {
        char *body = xasprintf("{\"model\": \"tq\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}], "
                               "\"max_tokens\": 6, \"temperature\": 0, \"stop\": [\"%c\"]}", stop);
        HttpReply s = served_post(&sv, "/v1/chat/completions", body, NULL);
        json_t *js = http_json(&s);
        const char *cut = choice_text(js, 0);
        CHECK(cut && strlen(cut) < strlen(text) && !strncmp(cut, text, strlen(cut)) && !strchr(cut, stop));
        CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(json_object_get(js, "choices"), 0),
                                                       "finish_reason")), "stop");
        json_decref(js);
        http_reply_free(&s);
        free(body);
    }
    json_decref(j);
    http_reply_free(&r);
}

/* ---- concurrency ---- */

#define N_CLIENTS 6

typedef struct Client {
    int i;
    char *text;
    long status;
} Client;

static char *client_body(int i) {
    return xasprintf("{\"model\": \"tq\", \"prompt\": [1025, %d, %d], \"max_tokens\": %d, \"temperature\": 0}",
                     10 + 37 * i, 300 + i, 8 + 5 * i);
}

static void *client_run(void *arg) {
    Client *c = arg;
    char *body = client_body(c->i);
    HttpReply r = served_post(&sv, "/v1/completions", body, NULL);
    c->status = r.status;
    json_t *j = http_json(&r);
    c->text = xstrdup(choice_text(j, 0) ? choice_text(j, 0) : "(none)");
    json_decref(j);
    http_reply_free(&r);
    free(body);
    return NULL;
}

/* Clients at once each get what they get alone (the batcher decodes them
 * together; prefill is per sequence, decode rows independent). */
static void test_concurrent_clients(void) {
    if (!need_server()) return;
    Client alone[N_CLIENTS], together[N_CLIENTS];
    for (int i = 0; i < N_CLIENTS; i++) {
        alone[i] = (Client){.i = i};
        client_run(&alone[i]);
    }
    pthread_t th[N_CLIENTS];
    for (int i = 0; i < N_CLIENTS; i++) {
        together[i] = (Client){.i = i};
        pthread_create(&th[i], NULL, client_run, &together[i]);
    }
    for (int i = 0; i < N_CLIENTS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N_CLIENTS; i++) {
        CHECK_EQ_INT(together[i].status, 200);
        CHECK_EQ_STR(together[i].text, alone[i].text);
        free(alone[i].text);
        free(together[i].text);
    }
}

/* ---- a client that hangs up ---- */

static int raw_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

static void raw_send(int fd, const char *path, const char *body) {
    char *req = xasprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                          path, strlen(body), body);
    size_t off = 0, n = strlen(req);
    while (off < n) {
        ssize_t w = write(fd, req + off, n - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    free(req);
}

/* The end-of-turn and end-of-sequence ids, banned so that only max_tokens
 * or a cancel ends a sequence. */
static char *ban_stops(void) {
    Err e;
    Tokenizer *tok = tok_load_hf(qwen_dir, &e);
    StrBuf b;
    sb_init(&b);
    sb_append(&b, "{");
    int n_eot = 0;
    const int32_t *eot = tok_eot(tok, &n_eot);
    for (int i = 0; i < n_eot; i++) sb_printf(&b, "%s\"%d\": -100", i ? ", " : "", eot[i]);
    if (tok_eos(tok) >= 0) sb_printf(&b, "%s\"%d\": -100", n_eot ? ", " : "", tok_eos(tok));
    sb_append(&b, "}");
    tok_free(tok);
    return sb_take(&b);
}

/* A client that sends a long request and hangs up: its sequence stops at
 * the next token (status 499 in the log and metrics), long before its
 * max_tokens. Waits on the event (the 499 counted), not on time. */
static void test_disconnect_cancels(void) {
    if (!need_server()) return;
    double before = served_metric(&sv, "aloe_completion_tokens_total");
    char *bias = ban_stops();
    char *body = xasprintf("{\"model\": \"tq\", \"prompt\": [1025, 82, 287], \"max_tokens\": 1000, "
                           "\"temperature\": 0, \"logit_bias\": %s}", bias);
    int fd = raw_connect(sv.port);
    CHECK(fd >= 0);
    raw_send(fd, "/v1/completions", body);
    close(fd);
    double cancelled = -1;
    for (int i = 0; i < 6000 && cancelled < 1; i++) { /* 60 s: a liveness cap */
        cancelled = served_metric(&sv, "aloe_requests_total{status=\"499\"}");
        if (cancelled < 1) usleep(10000);
    }
    CHECK_MSG(cancelled >= 1, "no request counted as cancelled (499)");
    double made = served_metric(&sv, "aloe_completion_tokens_total") - before;
    CHECK_MSG(made < 1000, "the cancelled sequence made %.0f tokens", made);
    /* the same request kept open runs to max_tokens: the bias holds */
    HttpReply r = served_post(&sv, "/v1/completions", body, NULL);
    json_t *j = http_json(&r);
    CHECK_EQ_INT(usage_of(j, "completion_tokens"), 1000);
    json_decref(j);
    http_reply_free(&r);
    char *out = served_output(&sv);
    CHECK(strstr(out, "POST /v1/completions 499 ") != NULL);
    free(out);
    free(body);
    free(bias);
}

/* ---- the key ---- */

static void test_api_key(void) {
    char *dir = test_need_shared(QWEN);
    if (!dir) return;
    const char *key = "sk-serve-secret-4242";
    for (int from_env = 0; from_env < 2; from_env++) {
        Served k;
        char *args = xasprintf("--model %s --alias tq --threads 1%s%s", dir, from_env ? "" : " --api-key ",
                               from_env ? "" : key);
        char *env = from_env ? xasprintf("ALOE_API_KEY=%s", key) : NULL;
        NEED_STARTED(!served_start(&k, args, env), "aloe serve with a key");
        const char *body = "{\"model\": \"tq\", \"prompt\": [1], \"max_tokens\": 2}";
        HttpReply r = served_post(&k, "/v1/completions", body, NULL);
        CHECK_EQ_INT(r.status, 401);
        http_reply_free(&r);
        r = served_post(&k, "/v1/completions", body, "Bearer sk-serve-secret-4243");
        CHECK_EQ_INT(r.status, 401);
        json_t *j = http_json(&r);
        CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(j, "error"), "type")), "authentication_error");
        json_decref(j);
        http_reply_free(&r);
        r = served_post(&k, "/v1/completions", body, "Bearer sk-serve-secret-424");
        CHECK_EQ_INT(r.status, 401);
        http_reply_free(&r);
        r = served_get(&k, "/v1/models", "Bearer sk-serve-secret-4242");
        CHECK_EQ_INT(r.status, 200);
        http_reply_free(&r);
        r = served_post(&k, "/v1/completions", body, "Bearer sk-serve-secret-4242");
        CHECK_EQ_INT(r.status, 200);
        http_reply_free(&r);
        r = served_get(&k, "/health", NULL); /* for load balancers: no key */
        CHECK_EQ_INT(r.status, 200);
        http_reply_free(&r);
        CHECK_EQ_INT(served_signal_wait(&k, SIGTERM), 0);
        char *out = served_output(&k);
        CHECK_MSG(!strstr(out, "secret"), "the key is in the server's output: %s", out);
        CHECK(strstr(out, "POST /v1/completions 401 ") != NULL);
        free(out);
        served_free(&k);
        free(args);
        free(env);
    }
    free(dir);
}

/* The prefix cache is shared across requests: the same prompt again
 * prefills only its last token, and usage says how many were reused. */
static void test_prefix_cache_shared(void) {
    char *dir = test_need_shared(QWEN);
    if (!dir) return;
    Served c;
    char *args = xasprintf("--model %s --alias tq --threads 1", dir);
    NEED_STARTED(!served_start(&c, args, NULL), "aloe serve");
    const char *body = "{\"model\": \"tq\", \"messages\": [{\"role\": \"user\", \"content\": \"Remember me?\"}], "
                       "\"max_tokens\": 4}";
    HttpReply a = served_post(&c, "/v1/chat/completions", body, NULL);
    HttpReply b = served_post(&c, "/v1/chat/completions", body, NULL);
    json_t *ja = http_json(&a), *jb = http_json(&b);
    json_t *da = json_object_get(json_object_get(ja, "usage"), "prompt_tokens_details");
    json_t *db = json_object_get(json_object_get(jb, "usage"), "prompt_tokens_details");
    CHECK_EQ_INT(json_integer_value(json_object_get(da, "cached_tokens")), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(db, "cached_tokens")), usage_of(jb, "prompt_tokens") - 1);
    CHECK_EQ_INT(served_metric(&c, "aloe_cached_prompt_tokens_total"), usage_of(jb, "prompt_tokens") - 1);
    json_decref(ja);
    json_decref(jb);
    http_reply_free(&a);
    http_reply_free(&b);
    CHECK_EQ_INT(served_signal_wait(&c, SIGTERM), 0);
    served_free(&c);
    free(args);
    free(dir);
}

/* SIGTERM lets a stream in flight finish, then exits 0. */
static void test_sigterm_drains(void) {
    char *dir = test_need_shared(QWEN);
    if (!dir) return;
    Served t;
    char *args = xasprintf("--model %s --alias tq --threads 1", dir);
    NEED_STARTED(!served_start(&t, args, NULL), "aloe serve");
    int fd = raw_connect(t.port);
    CHECK(fd >= 0);
    raw_send(fd, "/v1/chat/completions",
             "{\"model\": \"tq\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 30, "
             "\"stream\": true}");
    /* the stream has begun (its headers and role chunk arrived) */
    StrBuf got;
    sb_init(&got);
    char buf[4096];
    while (!got.s || !strstr(got.s, "data: ")) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        sb_appendn(&got, buf, (size_t)n);
    }
    kill(t.pid, SIGTERM);
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        sb_appendn(&got, buf, (size_t)n);
        if (strstr(got.s, "data: [DONE]")) break;
    }
    close(fd);
    CHECK_MSG(got.s && strstr(got.s, "data: [DONE]"), "the stream did not finish: %s", got.s ? got.s : "");

    CHECK_EQ_INT(served_signal_wait(&t, 0), 0);
    sb_free(&got);
    served_free(&t);
    free(args);
    free(dir);
}

static void test_key_compare(void) {
    CHECK(serve_key_matches("Bearer sk-abc", "sk-abc"));
    CHECK(!serve_key_matches("Bearer sk-abd", "sk-abc"));
    CHECK(!serve_key_matches("Bearer sk-ab", "sk-abc"));
    CHECK(!serve_key_matches("Bearer sk-abcd", "sk-abc"));
    CHECK(!serve_key_matches("sk-abc", "sk-abc"));
    CHECK(!serve_key_matches(NULL, "sk-abc"));
}

static void test_bad_flags(void) {
    char *out = NULL;
    CHECK_EQ_INT(aloe_sh_run(NULL, "serve --port 1", &out), 2); /* no --model */
    free(out);
    CHECK_EQ_INT(aloe_sh_run(NULL, "serve --model /nonexistent/model --port 0", &out), 1);
    CHECK(strstr(out, "/nonexistent/model") != NULL);
    free(out);
    CHECK_EQ_INT(aloe_sh_run(NULL, "serve --help", &out), 0);
    CHECK(strstr(out, "--max-tokens") && strstr(out, "default 2048"));
    free(out);
}

/* SIGTERM after all of the above: a clean exit, status 0. */
static void test_shared_server_exits_0(void) {
    if (sv_up <= 0) return;
    CHECK_EQ_INT(served_signal_wait(&sv, SIGTERM), 0);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    RUN(test_listening_line);
    RUN(test_greedy_chat_equals_complete);
    RUN(test_completions_ids_text_and_echo);
    RUN(test_stream_framing);
    RUN(test_embeddings_equal_embed);
    RUN(test_models_health_metrics);
    RUN(test_error_statuses);
    RUN(test_logprobs_bias_stop);
    RUN(test_concurrent_clients);
    RUN(test_disconnect_cancels);
    RUN(test_api_key);
    RUN(test_prefix_cache_shared);
    RUN(test_sigterm_drains);
    RUN(test_bad_flags);
    RUN(test_key_compare);
    RUN(test_shared_server_exits_0);
    served_free(&sv);
    free(qwen_dir);
    free(bert_dir);
    return test_summary();
}
