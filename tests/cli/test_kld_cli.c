/* aloe kld as a user runs it: the tiny Qwen2 fixture written by aloe
 * convert as f32, Q8_0 and Q4_0 GGUF files; the f32 file against itself
 * has KL 0 and the same top token everywhere; the quantised files drift,
 * Q8_0 less than Q4_0; bad input exits with a message naming the file or
 * flag and what was expected. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "aloe_sh.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "test.h"

/* Plain English, long enough for several chunks of 32 tokens with the
 * fixture's 1024-token vocabulary (~3 characters a token). */
static const char *TEXT =
    "She is a 34-year-old freelance graphic designer who enjoys hiking, yoga, and painting. She is vegan, "
    "a spicy-food lover and loves experimenting with new recipes. She loves travel around the world, especially "
    "natural scenery. She lives in a small apartment in the city with two cats named Pixel and Scribble.\n"
    "He is a 22-year-old college student studying anthropology. He has a strong interest in different "
    "cultures. He plays the guitar, loves indie films, and is a member of a local theater group. He is always "
    "seen with a coffee in hand and his favorite is an iced americano with an extra shot.\n";

/* Runs aloe kld of model against base on tmp/text.txt; the JSON summary
 * in *out (caller frees), NULL on failure (the test has failed then). */
static json_t *kld(const char *tmp, const char *base, const char *model, const char *extra) {
    char *out = NULL;
    char *args = xasprintf("kld --base %s/%s --model %s/%s --text %s/text.txt --ctx 32 -t 1 --json %s/k.json %s", tmp,
                           base, tmp, model, tmp, tmp, extra);
    int rc = aloe_sh_run(NULL, args, &out);
    free(args);
    json_t *j = rc == 0 ? aloe_sh_json(tmp, "k.json") : NULL;
    if (!j) test_fail(__FILE__, __LINE__, "aloe kld %s vs %s: exit %d:\n%s", model, base, rc, out);
    free(out);
    return j;
}

static double num(json_t *j, const char *key, const char *field) {
    return json_real_value(json_object_get(json_object_get(j, key), field));
}

static void test_self_and_quantised(void) {
    NEED_SHARED(model, "fixtures/models/tiny-qwen2");
    char *tmp = test_tmpdir(), *aloe = test_build_path("aloe"), *text = path_join(tmp, "text.txt");
    test_put_text(text, TEXT);
    int rc = 0;
    const char *types[] = {"f32", "q8_0", "q4_0"};
    for (int i = 0; i < 3 && !rc; i++)
        rc = test_system("%s convert --model %s --out %s/%s.gguf --type %s 2>>%s/log", aloe, model, tmp, types[i],
                         types[i], tmp);
    CHECK_MSG(rc == 0, "aloe convert failed (see %s/log)", tmp);
    json_t *self = kld(tmp, "f32.gguf", "f32.gguf", "");
    if (!self) return;
    /* Both sides are the same float logits: every term p (log p - log p) is 0. */
    CHECK(num(self, "kld", "value") == 0);
    CHECK(num(self, "same_top", "value") == 1);
    CHECK_NEAR(num(self, "ppl", "value"), num(self, "ppl_base", "value"), 0);
    /* 4 whole chunks of 32 in the text, 32 - 1 - 16 = 15 positions each */
    int positions = (int)json_integer_value(json_object_get(self, "positions"));
    int chunks = (int)json_integer_value(json_object_get(self, "chunks"));
    CHECK_MSG(chunks >= 2 && positions == chunks * 15, "%d positions in %d chunks", positions, chunks);
    json_decref(self);
    json_t *q8 = kld(tmp, "f32.gguf", "q8_0.gguf", "");
    json_t *q4 = q8 ? kld(tmp, "f32.gguf", "q4_0.gguf", "--chunks 3") : NULL;
    if (!q4) return;
    double k8 = num(q8, "kld", "value"), k4 = num(q4, "kld", "value");
    printf("  tiny-qwen2: KL Q8_0 %.3g, Q4_0 %.3g; same top %.1f%%, %.1f%%\n", k8, k4,
           100 * num(q8, "same_top", "value"), 100 * num(q4, "same_top", "value"));
    CHECK(k8 > 0);
    CHECK(k4 > k8);
    CHECK_EQ_INT(json_integer_value(json_object_get(q4, "chunks")), 3);
    /* Percentiles are ordered and bracket the median. */
    json_t *pct = json_object_get(q4, "kld_percentiles");
    double p99 = json_real_value(json_object_get(pct, "99")), p50 = json_real_value(json_object_get(pct, "50"));
    double p1 = json_real_value(json_object_get(pct, "1"));
    CHECK(p1 <= p50 && p50 <= p99 && p99 <= json_real_value(json_object_get(q4, "kld_max")));
    json_decref(q8);
    json_decref(q4);
    free(text);
    free(aloe);
    free(tmp);
    free(model);
}

/* Runs aloe with args; checks it fails (exit 1 or 2) with every one of the
 * NULL-terminated phrases in its output. */
static int fails_with(const char *args, ...) {
    char *out = NULL;
    int rc = aloe_sh_run(NULL, args, &out), ok = rc == 1 || rc == 2;
    va_list ap;
    va_start(ap, args);
    for (const char *w; ok && (w = va_arg(ap, const char *));) ok = strstr(out, w) != NULL;
    va_end(ap);
    if (!ok) fprintf(stderr, "aloe %s: exit %d:\n%s\n", args, rc, out);
    free(out);
    return ok;
}

static void test_bad_input(void) {
    NEED_SHARED(qwen, "fixtures/models/tiny-qwen2");
    NEED_SHARED(llama, "fixtures/models/tiny-llama3");
    char *tmp = test_tmpdir(), *text = path_join(tmp, "text.txt"), *ids = path_join(tmp, "ids.txt");
    char *junk = path_join(tmp, "junk.txt"), *shorttext = path_join(tmp, "short.txt");
    test_put_text(text, TEXT);
    test_put_text(ids, "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]");
    test_put_text(junk, "1, 2, three");
    test_put_text(shorttext, "Hello.");
    char *a;
    /* other vocabularies: 1027 and 1029 named */
    a = xasprintf("kld --base %s --model %s --text %s --ctx 16", qwen, llama, text);
    CHECK(fails_with(a, "1027", "1029", NULL));
    free(a);
    a = xasprintf("kld --base %s --model %s --text %s/missing.txt", qwen, qwen, tmp);
    CHECK(fails_with(a, "--text", "missing.txt", NULL));
    free(a);
    a = xasprintf("kld --base %s --model %s --ids %s", qwen, qwen, junk);
    CHECK(fails_with(a, "junk.txt", "three", "expected token ids", NULL));
    free(a);
    a = xasprintf("kld --base %s --model %s --ids %s --ctx 8", qwen, qwen, ids);
    CHECK(fails_with(a, "10 tokens", "at least 16", NULL));
    free(a);
    a = xasprintf("kld --base %s --model %s --text %s --ctx 16", qwen, qwen, shorttext);
    CHECK(fails_with(a, "short.txt", "at least 32", NULL));
    free(a);
    a = xasprintf("kld --base %s --model %s", qwen, qwen);
    CHECK(fails_with(a, "--text FILE or --ids FILE", NULL));
    free(a);
    a = xasprintf("kld --base %s --model %s --text %s --ctx 2", qwen, qwen, text);
    CHECK(fails_with(a, "--ctx", "at least 4", NULL));
    free(a);
    a = xasprintf("kld --base %s/nothing --model %s --text %s", tmp, qwen, text);
    CHECK(fails_with(a, "--base", "nothing", NULL));
    free(a);
    free(text);
    free(ids);
    free(junk);
    free(shorttext);
    free(tmp);
    free(qwen);
    free(llama);
}

/* A base model file with no chat template (as llama.cpp's converter writes
 * for base models) is scored: kld needs the tokenizer, not a template. */
static void test_base_without_template(void) {
    NEED_SHARED(model, "fixtures/models/tiny-qwen2");
    char *tmp = test_tmpdir(), *aloe = test_build_path("aloe"), *text = path_join(tmp, "text.txt");
    test_put_text(text, TEXT);
    int rc = test_system("mkdir -p %s/nt && cp %s/config.json %s/model.safetensors %s/tokenizer.json %s/nt/ && "
                         "echo '{\"eos_token\": \"<|im_end|>\"}' > %s/nt/tokenizer_config.json && "
                         "%s convert --model %s/nt --out %s/nt.gguf --type f32 2>>%s/log",
                         tmp, model, model, model, tmp, tmp, aloe, tmp, tmp, tmp);
    CHECK_MSG(rc == 0, "making a GGUF without a chat template failed (see %s/log)", tmp);
    char *out = NULL;
    char *args = xasprintf("kld --base %s/nt.gguf --model %s/nt.gguf --text %s --ctx 32 -t 1", tmp, tmp, text);
    rc = aloe_sh_run(NULL, args, &out);
    CHECK_MSG(rc == 0 && strstr(out, "Same top p: 100.000"), "aloe %s: exit %d:\n%s", args, rc, out);
    free(args);
    free(out);
    free(text);
    free(aloe);
    free(tmp);
    free(model);
}

int main(void) {
    RUN(test_self_and_quantised);
    RUN(test_bad_input);
    RUN(test_base_without_template);
    return test_summary();
}
