#include "llm/oai_wire.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/jsonl.h" /* json_type_name */

/* ---- request parsing ---- */

/* Fails naming the field: e gets "FIELD: expected WHAT", r->param FIELD. */
static int bad(OaiRequest *r, Err *e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int bad(OaiRequest *r, Err *e, const char *field, const char *fmt, ...) {
    snprintf(r->param, sizeof r->param, "%s", field);
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return err_set(e, ERR_ARG, "%s: %s", field, what);
}

/* A JSON string as a C string: an embedded U+0000 would cut it silently,
 * so it is refused. */
static int get_text(OaiRequest *r, json_t *v, const char *field, char **out, Err *e) {
    if (!json_is_string(v)) return bad(r, e, field, "expected a string, got %s", json_type_name(v));
    if (memchr(json_string_value(v), 0, json_string_length(v)))
        return bad(r, e, field, "expected text without U+0000");
    *out = xstrdup(json_string_value(v));
    return 0;
}

/* Optional number field in [lo, hi] into *out (unchanged when absent or null). */
static int get_number(OaiRequest *r, json_t *o, const char *field, double lo, double hi, double *out, Err *e) {
    json_t *v = json_object_get(o, field);
    if (!v || json_is_null(v)) return 0;
    double x = json_number_value(v);
    if (!json_is_number(v) || !(x >= lo && x <= hi))
        return bad(r, e, field, "expected a number from %g to %g, got %s", lo, hi,
                   json_is_number(v) ? "one outside" : json_type_name(v));
    *out = x;
    return 0;
}

static int get_int(OaiRequest *r, json_t *o, const char *field, long lo, long hi, int *out, Err *e) {
    json_t *v = json_object_get(o, field);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return bad(r, e, field, "expected a whole number from %ld to %ld", lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

static int get_bool(OaiRequest *r, json_t *o, const char *field, int *out, Err *e) {
    json_t *v = json_object_get(o, field);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return bad(r, e, field, "expected true or false, got %s", json_type_name(v));
    *out = json_is_true(v);
    return 0;
}

/* A message's content: a string, or a list of parts of which only
 * {"type": "text", "text": ...} are understood (joined in order). */
static int message_content(OaiRequest *r, json_t *c, int i, char **out, Err *e) {
    char field[64];
    snprintf(field, sizeof field, "messages[%d].content", i);
    if (!c || json_is_null(c)) {
        *out = xstrdup(""); /* an assistant turn that only called tools */
        return 0;
    }
    if (json_is_string(c)) return get_text(r, c, field, out, e);
    if (!json_is_array(c)) return bad(r, e, field, "expected a string or a list of text parts");
    StrBuf b;
    sb_init(&b);
    size_t k;
    json_t *part;
    json_array_foreach(c, k, part) {
        json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") || !json_is_string(text) ||
            memchr(json_string_value(text), 0, json_string_length(text))) {
            sb_free(&b);
            snprintf(field, sizeof field, "messages[%d].content[%zu]", i, k);
            return bad(r, e, field, "expected {\"type\": \"text\", \"text\": STRING} (only text parts are supported)");
        }
        sb_append(&b, json_string_value(text));
    }
    *out = b.s ? sb_take(&b) : xstrdup("");
    return 0;
}

static int parse_messages(OaiRequest *r, json_t *msgs, Err *e) {
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return bad(r, e, "messages", "expected a non-empty list of {\"role\", \"content\"} objects");
    if (json_array_size(msgs) > 100000) return bad(r, e, "messages", "expected at most 100000 messages");
    r->messages = xcalloc(json_array_size(msgs), sizeof *r->messages);
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        char field[64];
        snprintf(field, sizeof field, "messages[%zu].role", i);
        json_t *role = json_object_get(m, "role");
        static const char *const roles[] = {"system", "developer", "user", "assistant", "tool"};
        int known = 0;
        for (size_t k = 0; json_is_string(role) && k < sizeof roles / sizeof *roles; k++)
            known |= !strcmp(json_string_value(role), roles[k]);
        if (!known) return bad(r, e, field, "expected \"system\", \"developer\", \"user\", \"assistant\" or \"tool\"");
        char *content = NULL;
        if (message_content(r, json_object_get(m, "content"), (int)i, &content, e)) return -1;
        /* "developer" is OpenAI's newer name for the system turn */
        const char *rs = json_string_value(role);
        r->messages[i].role = xstrdup(!strcmp(rs, "developer") ? "system" : rs);
        r->messages[i].content = content;
        r->n_messages = (int)i + 1;
    }
    return 0;
}

/* prompt: a string, a list of one string, or a list of token ids. */
static int parse_prompt(OaiRequest *r, json_t *p, Err *e) {
    if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0)))
        p = json_array_get(p, 0);
    if (json_is_string(p)) return get_text(r, p, "prompt", &r->prompt, e);
    if (!json_is_array(p) || json_array_size(p) == 0)
        return bad(r, e, "prompt", "expected a string, or a non-empty list of token ids");
    if (json_array_size(p) > (1u << 24)) return bad(r, e, "prompt", "expected at most 2^24 token ids");
    r->prompt_ids = xmalloc(json_array_size(p) * sizeof *r->prompt_ids);
    size_t i;
    json_t *v;
    json_array_foreach(p, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
            char field[48];
            snprintf(field, sizeof field, "prompt[%zu]", i);
            return bad(r, e, field, "expected a token id (a whole number >= 0); a list of several prompts is not supported");
        }
        r->prompt_ids[i] = (int32_t)json_integer_value(v);
    }
    r->n_prompt_ids = (int)json_array_size(p);
    return 0;
}

static int parse_input(OaiRequest *r, json_t *in, Err *e) {
    if (json_is_string(in)) {
        r->input = xcalloc(1, sizeof *r->input);
        r->n_input = 1;
        return get_text(r, in, "input", &r->input[0], e);
    }
    if (!json_is_array(in) || json_array_size(in) == 0)
        return bad(r, e, "input", "expected a string or a non-empty list of strings");
    if (json_array_size(in) > 2048) return bad(r, e, "input", "expected at most 2048 texts (OpenAI's limit)");
    r->input = xcalloc(json_array_size(in), sizeof *r->input);
    size_t i;
    json_t *v;
    json_array_foreach(in, i, v) {
        char field[48];
        snprintf(field, sizeof field, "input[%zu]", i);
        if (!json_is_string(v)) return bad(r, e, field, "expected a string (token-id input is not supported)");
        if (get_text(r, v, field, &r->input[i], e)) return -1;
        r->n_input = (int)i + 1;
    }
    return 0;
}

static int parse_stop(OaiRequest *r, json_t *s, Err *e) {
    if (!s || json_is_null(s)) return 0;
    json_t *one = json_is_string(s) ? s : NULL;
    if (!one && (!json_is_array(s) || json_array_size(s) > OAI_MAX_STOP))
        return bad(r, e, "stop", "expected a string or a list of at most %d strings", OAI_MAX_STOP);
    size_t n = one ? 1 : json_array_size(s);
    r->stop = xcalloc(n + 1, sizeof *r->stop);
    for (size_t i = 0; i < n; i++) {
        json_t *v = one ? one : json_array_get(s, i);
        char field[32];
        if (one) snprintf(field, sizeof field, "stop");
        else snprintf(field, sizeof field, "stop[%zu]", i);
        if (!json_is_string(v) || json_string_length(v) == 0)
            return bad(r, e, field, "expected a non-empty string");
        if (get_text(r, v, field, &r->stop[r->n_stop], e)) return -1;
        r->n_stop++;
    }
    return 0;
}

/* logit_bias: {"TOKEN_ID": bias in [-100, 100]}. */
static int parse_bias(OaiRequest *r, json_t *b, Err *e) {
    if (!b || json_is_null(b)) return 0;
    if (!json_is_object(b) || json_object_size(b) > OAI_MAX_BIAS)
        return bad(r, e, "logit_bias", "expected an object of at most %d \"token id\": bias entries", OAI_MAX_BIAS);
    r->bias = xcalloc(json_object_size(b) + 1, sizeof *r->bias);
    const char *k;
    json_t *v;
    json_object_foreach(b, k, v) {
        char *end;
        long id = strtol(k, &end, 10);
        char field[64];
        snprintf(field, sizeof field, "logit_bias.%.40s", k);
        if (!*k || *end || id < 0 || id > INT32_MAX) return bad(r, e, field, "expected a token id as the key");
        double x = json_number_value(v);
        if (!json_is_number(v) || !(x >= -100 && x <= 100)) return bad(r, e, field, "expected a bias from -100 to 100");
        r->bias[r->n_bias++] = (OaiBias){(int32_t)id, (float)x};
    }
    return 0;
}

/* logprobs: chat has a boolean and top_logprobs; completions an integer
 * (how many alternatives, which also turns logprobs on). */
static int parse_logprobs(OaiRequest *r, json_t *o, Err *e) {
    json_t *lp = json_object_get(o, "logprobs");
    if (r->kind == OAI_COMPLETION) {
        if (!lp || json_is_null(lp)) return 0;
        if (!json_is_integer(lp) || json_integer_value(lp) < 0 || json_integer_value(lp) > 5)
            return bad(r, e, "logprobs", "expected a whole number from 0 to 5");
        r->logprobs = 1;
        r->top_logprobs = (int)json_integer_value(lp);
        return 0;
    }
    if (get_bool(r, o, "logprobs", &r->logprobs, e)) return -1;
    if (get_int(r, o, "top_logprobs", 0, OAI_MAX_TOP_LOGPROBS, &r->top_logprobs, e)) return -1;
    if (r->top_logprobs && !r->logprobs) return bad(r, e, "top_logprobs", "needs \"logprobs\": true");
    return 0;
}

static int parse_sampling(OaiRequest *r, json_t *o, Err *e) {
    int max = 0;
    if (get_int(r, o, "max_tokens", 1, INT32_MAX, &max, e)) return -1;
    if (get_int(r, o, "max_completion_tokens", 1, INT32_MAX, &max, e)) return -1;
    r->max_tokens = max;
    if (get_number(r, o, "temperature", 0, 2, &r->temperature, e)) return -1;
    if (get_number(r, o, "top_p", 0, 1, &r->top_p, e)) return -1;
    if (r->top_p == 0) return bad(r, e, "top_p", "expected a number above 0 and at most 1");
    if (get_int(r, o, "top_k", 0, INT32_MAX, &r->top_k, e)) return -1;
    if (get_number(r, o, "min_p", 0, 0.999999, &r->min_p, e)) return -1;
    if (get_number(r, o, "repetition_penalty", 1e-6, 100, &r->repetition_penalty, e)) return -1;
    if (get_number(r, o, "presence_penalty", -2, 2, &r->presence_penalty, e)) return -1;
    if (get_number(r, o, "frequency_penalty", -2, 2, &r->frequency_penalty, e)) return -1;
    json_t *seed = json_object_get(o, "seed");
    if (seed && !json_is_null(seed)) {
        if (!json_is_integer(seed)) return bad(r, e, "seed", "expected a whole number");
        r->has_seed = 1;
        r->seed = (uint64_t)json_integer_value(seed);
    }
    if (get_int(r, o, "n", 1, OAI_MAX_N, &r->n, e)) return -1;
    if (parse_stop(r, json_object_get(o, "stop"), e)) return -1;
    if (parse_bias(r, json_object_get(o, "logit_bias"), e)) return -1;
    if (parse_logprobs(r, o, e)) return -1;
    if (get_bool(r, o, "stream", &r->stream, e)) return -1;
    json_t *so = json_object_get(o, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so)) return bad(r, e, "stream_options", "expected an object");
        json_t *iu = json_object_get(so, "include_usage");
        if (iu && !json_is_boolean(iu)) return bad(r, e, "stream_options.include_usage", "expected true or false");
        r->include_usage = json_is_true(iu);
    }
    if (r->kind == OAI_COMPLETION && get_bool(r, o, "echo", &r->echo, e)) return -1;
    if (get_bool(r, o, "ignore_eos", &r->ignore_eos, e)) return -1;
    return 0;
}

int oai_request_parse(OaiKind kind, const char *body, size_t len, OaiRequest *r, Err *e) {
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->temperature = r->top_p = r->min_p = r->repetition_penalty = -1;
    r->top_k = -1;
    r->n = 1;
    json_error_t je;
    /* U+0000 is let through the JSON parser so that the field holding it is named */
    json_t *o = json_loadb(body ? body : "", len, JSON_ALLOW_NUL, &je);
    if (!o) {
        snprintf(r->param, sizeof r->param, "%s", "body");
        return err_set(e, ERR_ARG, "the body is not valid JSON (%s at byte %zu)", je.text,
                       (size_t)(unsigned int)je.position);
    }
    int rc = -1;
    if (!json_is_object(o)) {
        bad(r, e, "body", "expected a JSON object, got %s", json_type_name(o));
        goto done;
    }
    json_t *model = json_object_get(o, "model");
    if (!json_is_string(model) || json_string_length(model) == 0) {
        bad(r, e, "model", "expected the model's name (a non-empty string)");
        goto done;
    }
    if (get_text(r, model, "model", &r->model, e)) goto done;
    if (kind == OAI_CHAT && parse_messages(r, json_object_get(o, "messages"), e)) goto done;
    if (kind == OAI_COMPLETION) {
        json_t *p = json_object_get(o, "prompt");
        if (!p) {
            bad(r, e, "prompt", "expected a string or a list of token ids");
            goto done;
        }
        if (parse_prompt(r, p, e)) goto done;
    }
    if (kind == OAI_EMBEDDINGS) {
        if (parse_input(r, json_object_get(o, "input"), e)) goto done;
        json_t *f = json_object_get(o, "encoding_format");
        if (f && !json_is_null(f)) {
            if (!json_is_string(f) || (strcmp(json_string_value(f), "float") && strcmp(json_string_value(f), "base64"))) {
                bad(r, e, "encoding_format", "expected \"float\" or \"base64\"");
                goto done;
            }
            r->base64 = !strcmp(json_string_value(f), "base64");
        }
    } else if (parse_sampling(r, o, e)) {
        goto done;
    }
    rc = 0;
done:
    json_decref(o);
    return rc;
}

void oai_request_free(OaiRequest *r) {
    if (!r) return;
    for (int i = 0; i < r->n_messages; i++) {
        free((char *)r->messages[i].role);
        free((char *)r->messages[i].content);
    }
    free(r->messages);
    free(r->model);
    free(r->prompt);
    free(r->prompt_ids);
    for (int i = 0; i < r->n_input; i++) free(r->input[i]);
    free(r->input);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->stop);
    free(r->bias);
    memset(r, 0, sizeof *r);
}

/* ---- responses ---- */

json_t *oai_error(const char *message, const char *type, const char *param, const char *code) {
    /* a message may hold a request's text cut mid-character (Err's buffer) */
    json_t *err = json_pack("{s:o,s:s}", "message", oai_text(message ? message : "", message ? strlen(message) : 0),
                            "type", type ? type : "server_error");
    json_object_set_new(err, "param", param && *param ? oai_text(param, strlen(param)) : json_null());
    json_object_set_new(err, "code", code ? json_string(code) : json_null());
    return json_pack("{s:o}", "error", err);
}

json_t *oai_usage(const OaiUsage *u) {
    return json_pack("{s:I,s:I,s:I,s:{s:I}}", "prompt_tokens", (json_int_t)u->prompt_tokens, "completion_tokens",
                     (json_int_t)u->completion_tokens, "total_tokens",
                     (json_int_t)(u->prompt_tokens + u->completion_tokens), "prompt_tokens_details",
                     "cached_tokens", (json_int_t)u->cached_tokens);
}

/* Text as a JSON string: a model can write bytes that are not UTF-8 (a
 * token holding half a character), which JSON cannot carry; each invalid
 * byte becomes U+FFFD, so the rest survives. */
json_t *oai_text(const char *s, size_t n) {
    StrBuf b;
    sb_init(&b);
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        int len = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
        int ok = len > 0 && p + len <= end && *p;
        for (int k = 1; ok && k < len; k++) ok = (p[k] & 0xC0) == 0x80;
        if (ok && len == 2) ok = *p >= 0xC2;
        if (ok && len == 3) {
            unsigned cp = (p[0] & 0x0Fu) << 12 | (p[1] & 0x3Fu) << 6 | (p[2] & 0x3Fu);
            ok = cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF);
        }
        if (ok && len == 4) {
            unsigned cp = (p[0] & 0x07u) << 18 | (p[1] & 0x3Fu) << 12 | (p[2] & 0x3Fu) << 6 | (p[3] & 0x3Fu);
            ok = cp >= 0x10000 && cp <= 0x10FFFF;
        }
        if (ok) sb_appendn(&b, (const char *)p, (size_t)len), p += len;
        else sb_append(&b, "\xEF\xBF\xBD"), p++;
    }
    json_t *j = json_stringn(b.s ? b.s : "", b.len);
    sb_free(&b);
    return j;
}

static json_t *token_bytes(const char *token, size_t len) {
    json_t *a = json_array();
    for (size_t i = 0; i < len; i++) json_array_append_new(a, json_integer((unsigned char)token[i]));
    return a;
}

/* -inf (a token banned by logit_bias) is not JSON: OpenAI writes -9999.0. */
json_t *oai_logprob_value(double lp) { return json_real(isfinite(lp) ? lp : -9999.0); }

json_t *oai_top_logprob(const char *token, size_t len, double logprob) {
    return json_pack("{s:o,s:o,s:o}", "token", oai_text(token, len), "logprob", oai_logprob_value(logprob), "bytes",
                     token_bytes(token, len));
}

json_t *oai_chat_logprob(const char *token, size_t len, double logprob, json_t *top) {
    return json_pack("{s:o,s:o,s:o,s:o}", "token", oai_text(token, len), "logprob", oai_logprob_value(logprob), "bytes",
                     token_bytes(token, len), "top_logprobs", top ? top : json_array());
}

static json_t *finish_value(const char *f) { return f ? json_string(f) : json_null(); }

json_t *oai_chat_choice(int index, const char *text, const char *finish_reason, json_t *logprobs_content) {
    json_t *c = json_pack("{s:i,s:{s:s,s:o},s:o}", "index", index, "message", "role", "assistant", "content",
                          oai_text(text ? text : "", text ? strlen(text) : 0), "finish_reason",
                          finish_value(finish_reason));
    json_object_set_new(c, "logprobs",
                        logprobs_content ? json_pack("{s:o}", "content", logprobs_content) : json_null());
    return c;
}

json_t *oai_completion_choice(int index, const char *text, const char *finish_reason, json_t *logprobs) {
    return json_pack("{s:i,s:o,s:o,s:o}", "index", index, "text", oai_text(text ? text : "", text ? strlen(text) : 0),
                     "finish_reason",
                     finish_value(finish_reason), "logprobs", logprobs ? logprobs : json_null());
}

static const char *object_name(OaiKind kind, int chunk) {
    if (kind == OAI_CHAT) return chunk ? "chat.completion.chunk" : "chat.completion";
    return "text_completion";
}

json_t *oai_response(OaiKind kind, const char *id, const char *model, long created, json_t *choices,
                     const OaiUsage *usage) {
    json_t *j = json_pack("{s:s,s:s,s:I,s:s,s:o,s:s}", "id", id, "object", object_name(kind, 0), "created",
                          (json_int_t)created, "model", model, "choices", choices, "system_fingerprint", "aloe");
    if (usage) json_object_set_new(j, "usage", oai_usage(usage));
    return j;
}

json_t *oai_chunk(OaiKind kind, const char *id, const char *model, long created, int index, const char *role,
                  const char *text, const char *finish_reason, json_t *logprobs) {
    json_t *choice;
    if (kind == OAI_CHAT) {
        json_t *delta = json_object();
        if (role) json_object_set_new(delta, "role", json_string(role));
        if (text) json_object_set_new(delta, "content", oai_text(text, strlen(text)));
        choice = json_pack("{s:i,s:o,s:o}", "index", index, "delta", delta, "finish_reason", finish_value(finish_reason));
        json_object_set_new(choice, "logprobs", logprobs ? json_pack("{s:o}", "content", logprobs) : json_null());
    } else {
        choice = oai_completion_choice(index, text, finish_reason, logprobs);
    }
    return json_pack("{s:s,s:s,s:I,s:s,s:s,s:[o]}", "id", id, "object", object_name(kind, 1), "created",
                     (json_int_t)created, "model", model, "system_fingerprint", "aloe", "choices", choice);
}

json_t *oai_usage_chunk(OaiKind kind, const char *id, const char *model, long created, const OaiUsage *u) {
    return json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", id, "object", object_name(kind, 1), "created",
                     (json_int_t)created, "model", model, "choices", "usage", oai_usage(u));
}

void oai_sse_event(StrBuf *b, json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT);
    sb_append(b, "data: ");
    sb_append(b, s);
    sb_append(b, "\n\n");
    free(s);
}

char *oai_base64(const void *data, size_t n) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    char *out = xmalloc((n + 2) / 3 * 4 + 1), *o = out;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        *o++ = abc[v >> 18 & 63];
        *o++ = abc[v >> 12 & 63];
        *o++ = i + 1 < n ? abc[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? abc[v & 63] : '=';
    }
    *o = 0;
    return out;
}

json_t *oai_embeddings(const char *model, const float *vecs, int n, int dim, int base64, long prompt_tokens) {
    json_t *data = json_array();
    for (int i = 0; i < n; i++) {
        const float *v = vecs + (size_t)i * dim;
        json_t *emb;
        if (base64) {
            /* little-endian float32, as OpenAI's clients decode it (x86 is little-endian) */
            char *s = oai_base64(v, (size_t)dim * sizeof *v);
            emb = json_string(s);
            free(s);
        } else {
            emb = json_array();
            for (int k = 0; k < dim; k++) json_array_append_new(emb, json_real(v[k]));
        }
        json_array_append_new(data, json_pack("{s:s,s:i,s:o}", "object", "embedding", "index", i, "embedding", emb));
    }
    return json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model", model, "usage",
                     "prompt_tokens", (json_int_t)prompt_tokens, "total_tokens", (json_int_t)prompt_tokens);
}

json_t *oai_models(const char *const *ids, int n, long created) {
    json_t *data = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(data, json_pack("{s:o,s:s,s:I,s:s}", "id", oai_text(ids[i], strlen(ids[i])), "object",
                                              "model", "created",
                                              (json_int_t)created, "owned_by", "aloe"));
    return json_pack("{s:s,s:o}", "object", "list", "data", data);
}

/* ---- client side ---- */

char *oai_chat_body(const char *model, const LlmMessage *msgs, int n, const LlmParams *p) {
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s,s:s}", "role", msgs[i].role ? msgs[i].role : "user", "content",
                                             msgs[i].content ? msgs[i].content : ""));
    json_t *req = json_pack("{s:s,s:o}", "model", model, "messages", arr);
    if (p && p->temperature >= 0) json_object_set_new(req, "temperature", json_real(p->temperature));
    if (p && p->top_p >= 0) json_object_set_new(req, "top_p", json_real(p->top_p));
    if (p && p->max_tokens > 0) json_object_set_new(req, "max_tokens", json_integer(p->max_tokens));
    /* JSON integers are signed 64-bit here; keep seeds in range. */
    if (p && p->has_seed) json_object_set_new(req, "seed", json_integer((json_int_t)(p->seed & INT64_MAX)));
    char *s = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    return s;
}

char *oai_embeddings_body(const char *model, const char *const *texts, int n) {
    json_t *input = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(input, json_string(texts[i] ? texts[i] : ""));
    json_t *req = json_pack("{s:s,s:o}", "model", model, "input", input);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    return body;
}

void oai_read_usage(json_t *j, LlmUsage *u) {
    json_t *usage = json_object_get(j, "usage");
    u->prompt_tokens = (long)json_integer_value(json_object_get(usage, "prompt_tokens"));
    u->completion_tokens = (long)json_integer_value(json_object_get(usage, "completion_tokens"));
    u->cached_tokens = (long)json_integer_value(
        json_object_get(json_object_get(usage, "prompt_tokens_details"), "cached_tokens"));
}

json_t *oai_error_message(json_t *j) {
    json_t *m = json_object_get(json_object_get(j, "error"), "message");
    if (!json_is_string(m)) m = json_object_get(j, "error");
    if (!json_is_string(m)) m = json_object_get(j, "detail");
    return json_is_string(m) ? m : NULL;
}

int oai_chat_reply(json_t *j, OaiChatReply *r, Err *e) {
    memset(r, 0, sizeof *r);
    json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
    json_t *content = json_object_get(json_object_get(choice, "message"), "content");
    if (!json_is_string(content)) {
        /* Some servers answer 200 with an error object. */
        json_t *m = json_object_get(json_object_get(j, "error"), "message");
        r->error_message = json_is_string(m) ? m : NULL;
        return err_set(e, ERR_PARSE, "no choices[0].message.content string in the JSON answer");
    }
    r->content = content;
    json_t *fr = json_object_get(choice, "finish_reason");
    r->finish_reason = json_is_string(fr) ? fr : NULL;
    oai_read_usage(j, &r->usage);
    return 0;
}

int oai_embeddings_reply(json_t *j, int n, float **vecs, int *dim_out, Err *e) {
    *vecs = NULL;
    *dim_out = 0;
    json_t *data = json_object_get(j, "data");
    if (json_array_size(data) != (size_t)n)
        return err_set(e, ERR_PARSE, "expected %d embeddings in \"data\", got %zu", n, json_array_size(data));
    /* Each index once: a repeated one would leave another text without a
     * vector (zeros) and no error. */
    char *seen = xcalloc((size_t)(n ? n : 1), 1);
    float *out = NULL;
    int rc = 0, d = 0;
    for (int i = 0; i < n && !rc; i++) {
        json_t *item = json_array_get(data, i);
        json_t *vec = json_object_get(item, "embedding");
        json_t *ix = json_object_get(item, "index");
        json_int_t at = json_is_integer(ix) ? json_integer_value(ix) : i;
        size_t dim = json_array_size(vec);
        if (at < 0 || at >= n || seen[at] || dim == 0 || dim > INT32_MAX || (d && dim != (size_t)d)) {
            rc = err_set(e, ERR_PARSE, "data[%d]: expected a distinct index in [0,%d) and a non-empty embedding%s", i,
                         n, d ? " of the same length as the others" : "");
            break;
        }
        seen[at] = 1;
        if (!d) {
            d = (int)dim;
            out = xcalloc((size_t)n * dim, sizeof(float));
        }
        for (size_t k = 0; k < dim; k++) {
            json_t *v = json_array_get(vec, k);
            double x = json_number_value(v);
            /* a double beyond float's range would become inf and every
             * cosine similarity with it NaN */
            if (!json_is_number(v) || !(fabs(x) <= FLT_MAX)) {
                rc = err_set(e, ERR_PARSE, "data[%d].embedding[%zu]: expected a number within float range", i, k);
                break;
            }
            out[(size_t)at * dim + k] = (float)x;
        }
    }
    free(seen);
    if (rc) {
        free(out);
        return -1;
    }
    *vecs = out;
    *dim_out = d;
    return 0;
}
