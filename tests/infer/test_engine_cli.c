/* The engine's commands, run as a user would: aloe logits (against the
 * fixture logits), aloe complete --print-ids (against the fixture's greedy
 * ids), aloe speed --json (its last line parses; the memory bound counts
 * the bytes a step reads; timings are printed, never asserted). */
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/mem.h"
#include "formats/safetensors.h"
#include "test.h"

/* Runs cmd and returns its stdout (caller frees), or NULL if it failed. */
static char *run(const char *cmd) {
    FILE *f = popen(cmd, "r");
    if (!f) return NULL;
    StrBuf b;
    sb_init(&b);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sb_appendn(&b, buf, n);
    int rc = pclose(f);
    if (rc != 0) {
        sb_free(&b);
        return NULL;
    }
    return b.s ? sb_take(&b) : xstrdup("");
}

static void test_logits_command(void) {
    char *dir = test_shared_path("fixtures/models/tiny-qwen3");
    char *exp = test_shared_path("fixtures/models/tiny-qwen3/expected.safetensors");
    char *js = test_shared_path("fixtures/models/tiny-qwen3/expected.json");
    if (!dir || !exp || !js) {
        free(dir), free(exp), free(js);
        SKIP("fixtures/models/tiny-qwen3 not found");
    }
    json_t *j = json_load_file(js, 0, NULL);
    json_t *row = json_array_get(json_object_get(json_object_get(j, "forward"), "input_ids"), 1);
    StrBuf ids;
    sb_init(&ids);
    for (size_t i = 0; i < json_array_size(row); i++)
        sb_printf(&ids, "%s%lld", i ? "," : "", (long long)json_integer_value(json_array_get(row, i)));
    int len = (int)json_array_size(row);
    char *tmp = test_tmpdir(), *aloe = test_build_path("aloe");
    char *cmd = xasprintf("%s logits --model %s --ids %s --out %s/l.safetensors -t 2", aloe, dir, ids.s, tmp);
    char *out = run(cmd);
    char *lpath = xasprintf("%s/l.safetensors", tmp);
    Err e;
    SafeTensors *got = out ? st_open(lpath, &e) : NULL, *ref = st_open(exp, &e);
    int ok = got && ref;
    double maxerr = 0, lo = 0, hi = 0;
    if (ok) {
        const TensorView *g = st_find(got, "logits"), *r = st_find(ref, "forward.logits");
        ok = g && r && g->dtype == DT_F32 && g->ndim == 2 && g->shape[0] == len && g->shape[1] == r->shape[2];
        for (long i = 0; ok && i < (long)len * r->shape[2]; i++) {
            float rv = ((const float *)r->data)[(long)len * r->shape[2] + i]; /* row 1 */
            float gv = ((const float *)g->data)[i];
            lo = rv < lo ? rv : lo, hi = rv > hi ? rv : hi;
            maxerr = fabs(gv - rv) > maxerr ? fabs(gv - rv) : maxerr;
        }
    }
    if (got) st_close(got);
    if (ref) st_close(ref);
    json_decref(j);
    sb_free(&ids);
    free(dir), free(exp), free(js), free(tmp), free(aloe), free(cmd), free(out), free(lpath);
    CHECK_MSG(ok, "aloe logits failed or wrote the wrong shape");
    /* tiny-qwen3's f32 gold budget from tests/model/test_decoder.c
     * (gold_tol: two float32 evaluations, 6 standard deviations of the
     * rounding model; docs/TESTING.md): 8.9e-7 of the range for both rows
     * there; one row of 40 here has fewer logits, so it holds too. */
    CHECK_MSG(maxerr <= 8.9e-7 * (hi - lo), "aloe logits: max error %g of range %g", maxerr, hi - lo);
}

static void test_complete_print_ids(void) {
    char *dir = test_shared_path("fixtures/models/tiny-mistral");
    char *js = test_shared_path("fixtures/models/tiny-mistral/expected.json");
    if (!dir || !js) {
        free(dir), free(js);
        SKIP("fixtures/models/tiny-mistral not found");
    }
    json_t *j = json_load_file(js, 0, NULL), *g = json_object_get(j, "greedy");
    json_t *pr = json_object_get(g, "prompt_ids");
    StrBuf ids, want;
    sb_init(&ids), sb_init(&want);
    /* id-0 tokens left out, as transformers masked them (see tests/model) */
    for (size_t i = 0; i < json_array_size(pr); i++) {
        long long id = json_integer_value(json_array_get(pr, i));
        if (id) sb_printf(&ids, "%s%lld", ids.len ? "," : "", id);
    }
    char *w = json_dumps(json_object_get(g, "new_ids"), JSON_COMPACT);
    char *aloe = test_build_path("aloe");
    /* the fixture's eos id (2) is not among the 12 expected ids */
    char *cmd = xasprintf("%s complete --model %s --prompt-ids %s --max-tokens 12 --print-ids", aloe, dir, ids.s);
    char *out = run(cmd);
    json_t *got = out ? json_loads(out, 0, NULL) : NULL;
    char *gs = got ? json_dumps(got, JSON_COMPACT) : NULL;
    int ok = gs && !strcmp(gs, w);
    CHECK_MSG(ok, "aloe complete --print-ids: got %s, expected %s", gs ? gs : "(failure)", w);
    free(gs), free(w), free(aloe), free(cmd), free(out), free(dir), free(js);
    json_decref(got);
    json_decref(j);
    sb_free(&ids), sb_free(&want);
}

/* --stop: the output ends right before the first occurrence of the stop
 * string in the unstopped output. */
static void test_complete_stop_string(void) {
    char *dir = test_shared_path("fixtures/models/tiny-qwen2");
    if (!dir) SKIP("fixtures/models/tiny-qwen2 not found");
    char *aloe = test_build_path("aloe");
    char *cmd = xasprintf("%s complete --model %s --prompt 'Hello, I am' --max-tokens 20", aloe, dir);
    char *full = run(cmd);
    CHECK_MSG(full, "aloe complete failed");
    char *sp = strchr(full + 3, ' ');
    CHECK_MSG(sp && sp[1] && sp[1] != '\n', "no stop string candidate in: %s", full);
    char stop[3] = {sp[0], sp[1], 0};
    size_t want = (size_t)(strstr(full, stop) - full);
    char *cmd2 = xasprintf("%s complete --model %s --prompt 'Hello, I am' --max-tokens 20 --stop '%s'", aloe, dir, stop);
    char *part = run(cmd2);
    int ok = part && strlen(part) == want + 1 && !strncmp(part, full, want) && part[want] == '\n';
    free(dir), free(aloe), free(cmd), free(cmd2), free(full), free(part);
    CHECK_MSG(ok, "--stop output is not the text before the stop string");
}

/* Runs `aloe speed ARGS --json` and returns its last line's JSON (NULL if
 * it failed), with the whole output in *out (caller frees). */
static json_t *speed_json(const char *aloe, const char *args, char **out) {
    char *cmd = xasprintf("%s speed %s --json", aloe, args);
    *out = run(cmd);
    free(cmd);
    char *last = *out ? strrchr(*out, '{') : NULL;
    return last ? json_loads(last, 0, NULL) : NULL;
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* The resident-memory bound of a process that needs `bytes`. Under
 * AddressSanitizer the process also holds its shadow (one byte per eight of
 * application memory) and the quarantine of freed blocks, which ASan keeps
 * resident up to quarantine_size_mb (256 MB by default) before reusing
 * them: a bound for the engine's own memory does not apply to the
 * instrumented binary without those two terms. */
static double rss_bound(double bytes) {
#ifdef UNDER_ASAN
    return bytes * 9.0 / 8.0 + 256.0 * (1 << 20);
#else
    return bytes;
#endif
}

/* What an aloe process holds resident besides a model's weights, KV cache
 * and buffers: its own image (text and data: under ASan 36 MB of
 * instrumented text and 23 MB of the globals' metadata, once the kernels
 * were built once per prefetch mode), the libraries, the
 * threads' stacks. Measured on the tiny GGUF model, whose weights and
 * cache are a few KB: the peak resident bytes less those. 0 where the
 * shared fixtures are absent. */
static double process_base_rss(const char *aloe, const char *gguf, int *ok) {
    char *out;
    char *args = xasprintf("--model %s -p 8 -n 2 -t 1", gguf);
    json_t *j = speed_json(aloe, args, &out);
    double wb = (double)json_integer_value(json_object_get(j, "weights_bytes"));
    double rss = (double)json_integer_value(json_object_get(j, "peak_rss_bytes"));
    double kv = (double)json_integer_value(json_object_get(j, "kv_cache_bytes"));
    const char *src = json_string_value(json_object_get(j, "source"));
    *ok = src && !strcmp(src, "gguf") && wb > 0 && rss >= wb && kv == 8.0 * 2 * 2 * 16 * 2 * 4;
    if (!*ok) fprintf(stderr, "aloe speed --model GGUF --json: weights %.0f, kv %.0f, peak resident %.0f\n", wb, kv, rss);
    json_decref(j);
    free(args), free(out);
    return rss > wb + kv ? rss - wb - kv : 0;
}

static void test_speed_json(void) {
    char *aloe = test_build_path("aloe");
    char *out;
    /* a GGUF file is mapped: its pages count once the warm-up touched them;
     * the tiny model's run gives the process's own resident bytes */
    char *gguf = test_shared_path("fixtures/gguf/tiny-qwen2-q8_0.gguf");
    int tiny_ok = 1;
    double base = gguf ? process_base_rss(aloe, gguf, &tiny_ok) : 0;
    json_t *j = speed_json(aloe, "--shape qwen2.5-0.5b --type q4_0 -p 16 -n 2 -t 2", &out);
    CHECK_MSG(out, "aloe speed failed");
    /* timings are reported, never asserted: only that they are numbers */
    int timed = json_is_number(json_object_get(j, "prefill_tps")) && json_is_number(json_object_get(j, "decode_tps"));
    const char *type = json_string_value(json_object_get(j, "type"));
    int ok = j && timed && type && !strcmp(type, "q4_0");
    /* memory: the largest KV cache is the prefill's (16 positions x 24
     * layers x 2 KV heads x 64 x K and V x 4 bytes); resident memory holds
     * the weights (random ones are in memory) plus a few buffers, on top of
     * the process itself (process_base_rss). Measured 2026-12-07: 297 MB
     * against a bound of 359 (the process 13 MB), under ASan 664 against
     * 730 (the process 73 MB); a second copy of the weights (278 MB) exceeds
     * either. */
    double wb = (double)json_integer_value(json_object_get(j, "weights_bytes"));
    double kv = (double)json_integer_value(json_object_get(j, "kv_cache_bytes"));
    double rss = (double)json_integer_value(json_object_get(j, "peak_rss_bytes"));
    /* the memory bound counts the bytes a decode step reads: all the
     * weights but the norms and biases (the head is the tied embedding) */
    double step_bytes = json_real_value(json_object_get(j, "decode_step_bytes"));
    int line = out && strstr(out, "\nbandwidth: reading the ") && strstr(out, "decode bound");
    json_decref(j);
    free(out);
    CHECK_MSG(ok, "aloe speed --json: last line lacks prefill_tps/decode_tps numbers or the type");
    CHECK_MSG(line && step_bytes > 0.99 * wb && step_bytes <= wb + kv, "bandwidth line %d: %g bytes a step of %g + %g",
              line, step_bytes, wb, kv);
    CHECK_MSG(kv == 16.0 * 24 * 2 * 64 * 2 * 4, "kv_cache_bytes %.0f", kv);
    CHECK_MSG(wb > 0 && rss >= wb && rss <= rss_bound(wb + kv + 64.0 * (1 << 20)) + base,
              "weights %.0f, peak resident %.0f, the process itself %.0f", wb, rss, base);
    free(aloe);
    if (!gguf) SKIP("fixtures/gguf/tiny-qwen2-q8_0.gguf not found");
    free(gguf);
    CHECK_MSG(tiny_ok, "aloe speed --model GGUF --json: see the line above");
}

/* Decoding after -d tokens of context with an f16 KV cache: the cache is
 * (depth + n) positions of half floats, the bound counts the keys and
 * values each step reads, the table row says the depth; a bad type fails
 * with the flag and the accepted types in the message. */
static void test_speed_depth_f16_cache(void) {
    char *aloe = test_build_path("aloe");
    char *out;
    json_t *j = speed_json(aloe, "--shape qwen2.5-0.5b --type q4_0 -p 0 -n 2 -d 8 --kv-type f16 -t 2", &out);
    CHECK_MSG(out, "aloe speed -d 8 --kv-type f16 failed");
    double kv = (double)json_integer_value(json_object_get(j, "kv_cache_bytes"));
    double wb = (double)json_integer_value(json_object_get(j, "weights_bytes"));
    double step8 = json_real_value(json_object_get(j, "decode_step_bytes"));
    const char *kt = json_string_value(json_object_get(j, "kv_type"));
    int depth = (int)json_integer_value(json_object_get(j, "depth"));
    int label = out && strstr(out, "| tg2 @ d8 |") != NULL;
    int f16 = kt && !strcmp(kt, "f16");
    json_decref(j);
    free(out);
    double per_pos = 24.0 * 2 * 64 * 2 * 2; /* layers x KV heads x head_dim x (K, V) x 2 bytes */
    CHECK_MSG(kv == 10 * per_pos && f16 && depth == 8 && label, "kv_cache_bytes %.0f, kv_type %s, depth %d, label %d",
              kv, f16 ? "f16" : "?", depth, label);
    /* a step reads the weights and, on average over the two steps, 9.5
     * positions of keys and values: 8 more than without the depth (1.5) */
    j = speed_json(aloe, "--shape qwen2.5-0.5b --type q4_0 -p 0 -n 2 --kv-type f16 -t 2", &out);
    double step0 = json_real_value(json_object_get(j, "decode_step_bytes"));
    json_decref(j);
    free(out);
    CHECK_MSG(step0 > 0.99 * wb && step0 < 1.001 * wb && fabs(step8 - step0 - 8 * per_pos) < 1,
              "bound: %.0f bytes a step at depth 8, %.0f at 0 (weights %.0f): %.0f more, expected %.0f", step8, step0,
              wb, step8 - step0, 8 * per_pos);
    /* a prefill after the context too: its cache holds both */
    j = speed_json(aloe, "--shape qwen2.5-0.5b --type q4_0 -p 4 -n 0 -d 8 --kv-type f16 -t 2", &out);
    kv = (double)json_integer_value(json_object_get(j, "kv_cache_bytes"));
    double pp = json_real_value(json_object_get(j, "prefill_tps"));
    label = out && strstr(out, "| pp4 @ d8 |") != NULL;
    json_decref(j);
    free(out);
    CHECK_MSG(label && pp > 0 && kv == 12 * per_pos, "pp4 @ d8: label %d, %g tok/s, kv_cache_bytes %.0f", label, pp, kv);
    char *cmd = xasprintf("%s speed --shape qwen2.5-0.5b -p 0 -n 2 --kv-type q8_0 2>&1", aloe);
    FILE *f = popen(cmd, "r");
    char msg[512] = "";
    size_t n = f ? fread(msg, 1, sizeof msg - 1, f) : 0;
    msg[n] = 0;
    int rc = f ? pclose(f) : 0;
    free(cmd), free(aloe);
    CHECK_MSG(rc != 0 && strstr(msg, "--kv-type") && strstr(msg, "f16") && strstr(msg, "q8_0"),
              "bad --kv-type: exit %d, message %s", rc, msg);
}

int main(void) {
    RUN(test_logits_command);
    RUN(test_complete_print_ids);
    RUN(test_complete_stop_string);
    RUN(test_speed_json);
    RUN(test_speed_depth_f16_cache);
    return test_summary();
}
