/* Chat templates: every render must equal, byte for byte, what transformers'
 * apply_chat_template renders.
 *
 * Where the expected text comes from:
 *   - gold (transformers 5.17): chats[] of ../shared/fixtures/tokenizers/
 *     {chatml,llama3}/expected.json (Qwen2.5 ChatML with its default system
 *     prompt, Llama 3.1) and fixtures/realvocab/expected.json (Qwen3, with
 *     and without enable_thinking=False). realvocab's Llama 3 entries hold
 *     the reference's error ("'bos_token' is undefined"), not a render.
 *   - derived: tests/data/chat/derived.json for the templates without a gold
 *     render (Gemma 2, Llama 3.2, Llama 3.1 with a date, Phi-3.5, Mistral
 *     Nemo, plain Llama 3, more Qwen2.5/Qwen3 cases). NOT from transformers:
 *     rendered by tests/data/chat/derive_expected.py with jinja2 in the
 *     environment transformers uses, and checked by reading each template.
 *     One case ("source": "extension") is aloe's own behaviour where the
 *     template raises (a system message with Gemma 2). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "test.h"
#include "tok/chat_render.h"
#include "tok/chat_template.h"

/* ---- helpers ---------------------------------------------------------------- */

static json_t *load_json(const char *path) {
    json_error_t je;
    json_t *j = json_load_file(path, JSON_DECODE_INT_AS_REAL, &je);
    if (!j) fprintf(stderr, "%s:%d: %s\n", path, je.line, je.text);
    return j;
}

/* Messages pointing into arr (valid while arr lives; caller frees the array). */
static ChatMsg *messages_of(json_t *arr, int *n) {
    *n = (int)json_array_size(arr);
    ChatMsg *m = xcalloc((size_t)*n + 1, sizeof *m);
    for (int i = 0; i < *n; i++) {
        json_t *o = json_array_get(arr, (size_t)i);
        m[i].role = json_string_value(json_object_get(o, "role"));
        m[i].content = json_string_value(json_object_get(o, "content"));
    }
    return m;
}

/* The template text of a file under shared: a .jinja file, or the
 * chat_template of a tokenizer_config.json. NULL if absent. */
static char *shared_template(const char *rel) {
    char *p = test_shared_path(rel);
    if (!p) return NULL;
    char *text = NULL;
    if (strstr(rel, ".json")) {
        json_t *j = load_json(p);
        const char *s = json_string_value(json_object_get(j, "chat_template"));
        text = s ? xstrdup(s) : NULL;
        json_decref(j);
    } else {
        size_t len;
        Err e;
        if (file_read_all(p, &text, &len, &e)) text = NULL;
    }
    free(p);
    return text;
}

/* Renders one {messages, add_generation_prompt, kwargs?} case and compares
 * with its text; returns 0 when equal (prints the difference otherwise). */
static int render_matches(const ChatTemplate *t, json_t *c, const char *label) {
    int n;
    ChatMsg *m = messages_of(json_object_get(c, "messages"), &n);
    ChatRenderOpts o = chat_render_opts_default();
    json_t *kw = json_object_get(c, "kwargs");
    json_t *think = json_object_get(kw, "enable_thinking");
    if (think) o.enable_thinking = json_is_true(think);
    o.date = json_string_value(json_object_get(kw, "date_string"));
    char *out = NULL;
    Err e;
    int rc = chat_template_render(t, m, n, json_is_true(json_object_get(c, "add_generation_prompt")),
                                  &o, &out, &e);
    const char *want = json_string_value(json_object_get(c, "text"));
    int ok = rc == 0 && want && !strcmp(out, want);
    const char *src = json_string_value(json_object_get(c, "source"));
    if (src && !strcmp(src, "extension")) {
        /* aloe's former own behaviour where the template raises (a system
         * message with Gemma): the interpreter now raises as jinja2 does */
        ok = rc != 0 && strstr(e.msg, "System role not supported") != NULL;
        if (!ok) want = "an error carrying the template's \"System role not supported\"";
    }
    if (!ok)
        fprintf(stderr, "%s (%s):\n  got:  %s\n  want: %s\n", label, chat_template_name(t),
                rc ? e.msg : out, want ? want : "(none)");
    free(out);
    free(m);
    return ok ? 0 : -1;
}

/* ---- gold renders ----------------------------------------------------------- */

static void check_fixture_dir(const char *rel, const char *want_name, const char *chats_rel) {
    char *dir = test_shared_path(rel);
    char *exp = test_shared_path(chats_rel);
    if (!dir || !exp) {
        free(dir);
        free(exp);
        SKIP("%s not found (set ALOE_SHARED)", rel);
    }
    Err e;
    ChatTemplate *t = chat_template_open_hf(dir, NULL, &e);
    json_t *j = load_json(exp);
    free(dir);
    free(exp);
    CHECK_MSG(t != NULL, "%s: %s", rel, e.msg);
    CHECK(j != NULL);
    CHECK_EQ_STR(chat_template_name(t), want_name);
    json_t *chats = json_object_get(j, "chats");
    CHECK(json_array_size(chats) >= 4);
    int bad = 0;
    for (size_t i = 0; i < json_array_size(chats); i++)
        bad += render_matches(t, json_array_get(chats, i), rel) != 0;
    json_decref(j);
    chat_template_free(t);
    CHECK_EQ_INT(bad, 0);
}

static void test_gold_chatml_fixture(void) {
    check_fixture_dir("fixtures/tokenizers/chatml", "qwen2.5", "fixtures/tokenizers/chatml/expected.json");
}

static void test_gold_llama31_fixture(void) {
    check_fixture_dir("fixtures/tokenizers/llama3", "llama3.1", "fixtures/tokenizers/llama3/expected.json");
}

/* The model fixtures carry the same templates as the tokenizer fixtures
 * (tiny-mistral, tiny-qwen2 and tiny-qwen3 the Qwen2.5 one). */
static void test_gold_model_fixtures(void) {
    check_fixture_dir("fixtures/models/tiny-qwen2", "qwen2.5", "fixtures/tokenizers/chatml/expected.json");
    check_fixture_dir("fixtures/models/tiny-qwen3", "qwen2.5", "fixtures/tokenizers/chatml/expected.json");
    check_fixture_dir("fixtures/models/tiny-mistral", "qwen2.5", "fixtures/tokenizers/chatml/expected.json");
    check_fixture_dir("fixtures/models/tiny-llama3", "llama3.1", "fixtures/tokenizers/llama3/expected.json");
}

static void test_gold_realvocab(void) {
    char *exp = test_shared_path("fixtures/realvocab/expected.json");
    if (!exp) SKIP("fixtures/realvocab not found (set ALOE_SHARED)");
    json_t *j = load_json(exp);
    free(exp);
    CHECK(j != NULL);
    const char *subs[] = {"qwen3", "llama3"};
    int rendered = 0, bad = 0, reference_errors = 0;
    for (int s = 0; s < 2; s++) {
        char *rel = xasprintf("tokenizer-data/%s", subs[s]);
        char *dir = test_shared_path(rel);
        Err e;
        ChatTemplate *t = dir ? chat_template_open_hf(dir, NULL, &e) : NULL;
        free(dir);
        free(rel);
        CHECK_MSG(t != NULL, "tokenizer-data/%s: %s", subs[s], e.msg);
        CHECK_EQ_STR(chat_template_name(t), subs[s]);
        json_t *chats = json_object_get(json_object_get(j, subs[s]), "chats");
        for (size_t i = 0; i < json_array_size(chats); i++) {
            json_t *c = json_array_get(chats, i);
            if (!json_object_get(c, "text")) { /* the reference failed to render */
                reference_errors++;
                continue;
            }
            bad += render_matches(t, c, subs[s]) != 0;
            rendered++;
        }
        chat_template_free(t);
    }
    json_decref(j);
    CHECK_EQ_INT(bad, 0);
    CHECK(rendered >= 8); /* Qwen3: 4 chats x with/without enable_thinking=False */
    if (reference_errors) printf("note: %d realvocab chat(s) hold a reference error, not a render\n",
                                 reference_errors);
}

/* ---- derived renders -------------------------------------------------------- */

static void test_derived_renders(void) {
    json_t *j = load_json("tests/data/chat/derived.json");
    CHECK(j != NULL);
    CHECK(json_array_size(j) >= 20);
    int bad = 0, done = 0;
    for (size_t i = 0; i < json_array_size(j); i++) {
        json_t *c = json_array_get(j, i);
        const char *name = json_string_value(json_object_get(c, "name"));
        char *text = shared_template(json_string_value(json_object_get(c, "template")));
        if (!text) {
            json_decref(j);
            SKIP("shared chat templates not found (set ALOE_SHARED)");
        }
        Err e;
        ChatTemplate *t = chat_template_detect(text, json_string_value(json_object_get(c, "bos")),
                                               json_string_value(json_object_get(c, "eos")), &e);
        free(text);
        if (!t) {
            fprintf(stderr, "%s: %s\n", name, e.msg);
            bad++;
            continue;
        }
        bad += render_matches(t, c, name) != 0;
        done++;
        chat_template_free(t);
    }
    json_decref(j);
    CHECK_EQ_INT(bad, 0);
    CHECK(done >= 20);
}

/* ---- recognition ------------------------------------------------------------- */

static const struct {
    const char *file, *name;
} TEMPLATE_FILES[] = {
    {"tokenizer-data/chat-templates/Qwen-Qwen2.5-7B-Instruct.jinja", "qwen2.5"},
    {"tokenizer-data/chat-templates/google-gemma-2-2b-it.jinja", "gemma"},
    {"tokenizer-data/chat-templates/meta-llama-Llama-3.1-8B-Instruct.jinja", "llama3.1"},
    {"tokenizer-data/chat-templates/meta-llama-Llama-3.2-3B-Instruct.jinja", "llama3.2"},
    {"tokenizer-data/chat-templates/microsoft-Phi-3.5-mini-instruct.jinja", "phi3"},
    {"tokenizer-data/chat-templates/mistralai-Mistral-Nemo-Instruct-2407.jinja", "mistral-nemo"},
    {"tokenizer-data/qwen3/tokenizer_config.json", "qwen3"},
    {"tokenizer-data/llama3/tokenizer_config.json", "llama3"},
    {"fixtures/tokenizers/chatml/chat_template.jinja", "qwen2.5"},
    {"fixtures/tokenizers/llama3/chat_template.jinja", "llama3.1"},
};
#define N_TEMPLATE_FILES (int)(sizeof TEMPLATE_FILES / sizeof TEMPLATE_FILES[0])

static void test_recognises_every_template_file(void) {
    for (int i = 0; i < N_TEMPLATE_FILES; i++) {
        char *text = shared_template(TEMPLATE_FILES[i].file);
        if (!text) SKIP("%s not found (set ALOE_SHARED)", TEMPLATE_FILES[i].file);
        Err e;
        ChatTemplate *t = chat_template_detect(text, "<bos>", "<eos>", &e);
        free(text);
        CHECK_MSG(t != NULL, "%s: %s", TEMPLATE_FILES[i].file, e.msg);
        CHECK_MSG(!strcmp(chat_template_name(t), TEMPLATE_FILES[i].name), "%s: got %s, want %s",
                  TEMPLATE_FILES[i].file, chat_template_name(t), TEMPLATE_FILES[i].name);
        chat_template_free(t);
    }
}

/* Rewrites a template the way another checkpoint might format the same one:
 * other whitespace and whitespace control in tags, message.x instead of
 * message['x'], double quotes instead of single. */
static char *reformat(const char *s) {
    StrBuf b;
    sb_init(&b);
    int in_tag = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] == '{' && (s[i + 1] == '{' || s[i + 1] == '%')) {
            sb_appendc(&b, '{');
            sb_appendc(&b, s[i + 1]);
            i++;
            if (s[i + 1] == '-') i++;
            sb_append(&b, "-  ");
            in_tag = 1;
        } else if (in_tag && (s[i] == '-' || s[i] == ' ') && (s[i + 1] == '}' || s[i + 1] == '%') &&
                   s[i + 2] == '}') {
            /* dropped; the close below writes its own */
        } else if (in_tag && (s[i] == '}' || s[i] == '%') && s[i + 1] == '}') {
            sb_append(&b, "\n  ");
            sb_appendc(&b, s[i]);
            sb_appendc(&b, '}');
            i++;
            in_tag = 0;
        } else if (in_tag && !strncmp(s + i, "message['role']", 15)) {
            sb_append(&b, "message.role");
            i += 14;
        } else if (in_tag && !strncmp(s + i, "message.content", 15)) {
            sb_append(&b, "message[ \"content\" ]");
            i += 14;
        } else if (in_tag && s[i] == '"') {
            /* Double-quoted literals are copied as they are. */
            size_t j = i + 1;
            while (s[j] && s[j] != '"') j += s[j] == '\\' && s[j + 1] ? 2 : 1;
            sb_appendn(&b, s + i, j - i + (s[j] != 0));
            i = s[j] ? j : j - 1;
        } else if (in_tag && s[i] == '\'') {
            /* Swap the quotes of a literal that holds no double quote. */
            const char *end = strchr(s + i + 1, '\'');
            if (end && !memchr(s + i + 1, '"', (size_t)(end - s - i - 1)) &&
                !memchr(s + i + 1, '\\', (size_t)(end - s - i - 1))) {
                sb_appendc(&b, '"');
                sb_appendn(&b, s + i + 1, (size_t)(end - s - i - 1));
                sb_appendc(&b, '"');
                i = (size_t)(end - s);
            } else if (end) {
                sb_appendn(&b, s + i, (size_t)(end - s) - i + 1);
                i = (size_t)(end - s);
            } else {
                sb_appendc(&b, s[i]);
            }
        } else {
            sb_appendc(&b, s[i]);
        }
    }
    return sb_take(&b);
}

static void test_recognition_ignores_formatting(void) {
    for (int i = 0; i < N_TEMPLATE_FILES; i++) {
        char *text = shared_template(TEMPLATE_FILES[i].file);
        if (!text) SKIP("%s not found (set ALOE_SHARED)", TEMPLATE_FILES[i].file);
        char *re = reformat(text);
        CHECK(strcmp(re, text) != 0);
        Err e;
        ChatTemplate *t = chat_template_detect(re, "<bos>", "<eos>", &e);
        free(text);
        free(re);
        CHECK_MSG(t != NULL, "%s reformatted: %s", TEMPLATE_FILES[i].file, e.msg);
        CHECK_EQ_STR(chat_template_name(t), TEMPLATE_FILES[i].name);
        chat_template_free(t);
    }
}

/* The settings read from the text, not assumed from the family. */
static void test_variant_settings_come_from_the_template(void) {
    const char *tpl =
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\\nYou are a pirate.<|im_end|>\\n' }}{% endif %}"
        "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    Err e;
    ChatTemplate *t = chat_template_detect(tpl, NULL, "<|im_end|>", &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    CHECK_EQ_STR(chat_template_name(t), "chatml");
    ChatMsg m[] = {{"user", "Hi"}};
    char *out;
    CHECK_OK(chat_template_render(t, m, 1, 1, NULL, &out, &e), &e);
    CHECK_EQ_STR(out, "<|im_start|>system\nYou are a pirate.<|im_end|>\n<|im_start|>user\nHi"
                      "<|im_end|>\n<|im_start|>assistant\n");
    free(out);
    chat_template_free(t);

    /* Llama 3.1 with another default date and knowledge cutoff. */
    char *l31 = shared_template("tokenizer-data/chat-templates/meta-llama-Llama-3.1-8B-Instruct.jinja");
    if (!l31) SKIP("shared chat templates not found");
    StrBuf b;
    sb_init(&b);
    const char *p = strstr(l31, "26 Jul 2024"), *q = strstr(l31, "December 2023");
    CHECK(p && q && p < q);
    sb_appendn(&b, l31, (size_t)(p - l31));
    sb_append(&b, "01 Feb 2025");
    sb_appendn(&b, p + 11, (size_t)(q - (p + 11)));
    sb_append(&b, "June 2024");
    sb_append(&b, q + 13);
    free(l31);
    t = chat_template_detect(b.s, "<|begin_of_text|>", "<|eot_id|>", &e);
    sb_free(&b);
    CHECK_MSG(t != NULL, "%s", e.msg);
    CHECK_OK(chat_template_render(t, m, 1, 0, NULL, &out, &e), &e);
    CHECK_EQ_STR(out, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                      "Cutting Knowledge Date: June 2024\nToday Date: 01 Feb 2025\n\n<|eot_id|>"
                      "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
    free(out);
    chat_template_free(t);
}

/* Llama 3.2 dates its system block with today's date (transformers'
 * strftime_now), unless a date is given. */
static void test_llama32_default_date_is_today(void) {
    Err e;
    ChatTemplate *t = chat_template_by_name("llama3.2", "<|begin_of_text|>", "<|eot_id|>", &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    ChatMsg m[] = {{"user", "Hi"}};
    char before[64], after[64], *out;
    time_t now = time(NULL);
    struct tm tm;
    strftime(before, sizeof before, "Today Date: %d %b %Y\n", localtime_r(&now, &tm));
    CHECK_OK(chat_template_render(t, m, 1, 1, NULL, &out, &e), &e);
    now = time(NULL);
    strftime(after, sizeof after, "Today Date: %d %b %Y\n", localtime_r(&now, &tm));
    CHECK_MSG(strstr(out, before) || strstr(out, after), "no today's date in: %s", out);
    free(out);
    chat_template_free(t);
}

/* ---- names and errors -------------------------------------------------------- */

static void test_unknown_template_lists_known_names(void) {
    Err e;
    /* A template of no known family is interpreted (named "jinja"), with the
     * end-of-turn texts it writes as its stop strings. */
    ChatTemplate *t = chat_template_detect(
        "{% for m in messages %}<|turn|>{{ m.role }}: {{ m.content }}<|end|>{% endfor %}", NULL,
        "</s>", &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    CHECK_EQ_STR(chat_template_name(t), "jinja");
    const char *const *stops = chat_template_stop_strings(t);
    CHECK_EQ_STR(stops[0], "<|end|>");
    CHECK_EQ_STR(stops[1], "</s>");
    CHECK(stops[2] == NULL);
    ChatMsg m[] = {{"user", "hi"}};
    char *out;
    CHECK_OK(chat_template_render(t, m, 1, 1, NULL, &out, &e), &e);
    CHECK_EQ_STR(out, "<|turn|>user: hi<|end|>");
    free(out);
    chat_template_free(t);

    /* Mistral-7B-Instruct-v0.1's form (spaces around [INST]), once refused. */
    t = chat_template_detect("{{ bos_token }}{% for m in messages %}{{ '[INST] ' + m['content'] + "
                             "' [/INST]' }}{% endfor %}",
                             "<s>", "</s>", &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    CHECK_OK(chat_template_render(t, m, 1, 1, NULL, &out, &e), &e);
    CHECK_EQ_STR(out, "<s>[INST] hi [/INST]");
    free(out);
    chat_template_free(t);

    /* A template that does not parse: an error naming line and column. */
    t = chat_template_detect("{% for m in messages %}\n{{ m.content | }}{% endfor %}", NULL, NULL, &e);
    CHECK(t == NULL);
    CHECK_MSG(strstr(e.msg, "line 2, column") != NULL, "%s", e.msg);

    t = chat_template_by_name("vicuna", NULL, NULL, &e);
    CHECK(t == NULL);
    CHECK(strstr(e.msg, "'vicuna'") != NULL);
    for (const char *const *n = chat_template_names(); *n; n++) CHECK(strstr(e.msg, *n) != NULL);
    CHECK(strstr(e.msg, ".jinja") != NULL);
}

/* --chat-template PATH reads and interprets a .jinja file. */
static void test_template_file_by_path(void) {
    char *path = test_write_file("my.jinja", "{% for m in messages %}[{{ m.role|upper }}] {{ m.content }}\n"
                                             "{% endfor %}{% if add_generation_prompt %}[BOT]{% endif %}");
    Err e;
    ChatTemplate *t = chat_template_by_name(path, NULL, NULL, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    ChatMsg m[] = {{"system", "s"}, {"user", "u"}};
    char *out;
    CHECK_OK(chat_template_render(t, m, 2, 1, NULL, &out, &e), &e);
    CHECK_EQ_STR(out, "[SYSTEM] s\n[USER] u\n[BOT]");
    free(out);
    chat_template_free(t);
    CHECK(chat_template_by_name("/nonexistent/x.jinja", NULL, NULL, &e) == NULL);
    CHECK(strstr(e.msg, "/nonexistent/x.jinja") != NULL);
    free(path);
}

static void test_unknown_role_is_an_error(void) {
    for (const char *const *n = chat_template_names(); *n; n++) {
        Err e;
        ChatTemplate *t = chat_template_by_name(*n, "<s>", "</s>", &e);
        CHECK_MSG(t != NULL, "%s: %s", *n, e.msg);
        ChatMsg m[] = {{"user", "Hi"}, {"tool", "{\"x\": 1}"}};
        char *out = NULL;
        CHECK(chat_template_render(t, m, 2, 1, NULL, &out, &e) == -1);
        CHECK(out == NULL);
        CHECK_MSG(strstr(e.msg, "'tool'") && strstr(e.msg, *n), "%s", e.msg);
        ChatMsg none[] = {{"user", NULL}};
        CHECK(chat_template_render(t, none, 1, 1, NULL, &out, &e) == -1);
        CHECK(chat_template_render(t, m, 0, 1, NULL, &out, &e) == -1);
        chat_template_free(t);
    }
}

static void test_alternation_is_enforced_where_the_template_does(void) {
    Err e;
    ChatMsg m[] = {{"user", "a"}, {"user", "b"}};
    const char *names[] = {"gemma", "mistral-nemo"};
    for (int i = 0; i < 2; i++) {
        ChatTemplate *t = chat_template_by_name(names[i], "<s>", "</s>", &e);
        CHECK(t != NULL);
        char *out = NULL;
        CHECK(chat_template_render(t, m, 2, 1, NULL, &out, &e) == -1);
        CHECK_MSG(strstr(e.msg, "alternate") != NULL, "%s", e.msg);
        chat_template_free(t);
    }
    /* Phi-3 without a system turn in its template rejects system messages. */
    ChatTemplate *t = chat_template_detect(
        "{% for message in messages %}{% if message['role'] == 'user' %}{{'<|user|>\n' + "
        "message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
        "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}",
        NULL, NULL, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    ChatMsg s[] = {{"system", "x"}, {"user", "a"}};
    char *out = NULL;
    /* the template has no branch for system messages: jinja2 drops them */
    CHECK_OK(chat_template_render(t, s, 2, 1, NULL, &out, &e), &e);
    CHECK_EQ_STR(out, "<|user|>\na<|end|>\n<|assistant|>\n");
    free(out);
    CHECK_OK(chat_template_render(t, s + 1, 1, 0, NULL, &out, &e), &e);
    CHECK_EQ_STR(out, "<|user|>\na<|end|>\n"); /* no eos_token in this template */
    free(out);
    chat_template_free(t);
}

static void test_special_token_text_required_when_written(void) {
    Err e;
    CHECK(chat_template_by_name("gemma", NULL, "<eos>", &e) == NULL);
    CHECK(strstr(e.msg, "bos_token") != NULL);
    CHECK(chat_template_by_name("mistral-nemo", "<s>", NULL, &e) == NULL);
    CHECK(strstr(e.msg, "eos_token") != NULL);
    ChatTemplate *t = chat_template_by_name("qwen3", NULL, NULL, &e); /* writes neither */
    CHECK(t != NULL);
    chat_template_free(t);
}

/* A family by name renders what the recognised reference template renders. */
static void test_by_name_matches_recognised(void) {
    /* no system message: Gemma's template raises on one (the native
     * renderer prepends it to the first user turn) */
    ChatMsg m[] = {{"user", " Sys "}, {"assistant", " Hi "}, {"user", "Yo"}, {"assistant", "Q"}};
    for (int i = 0; i < N_TEMPLATE_FILES; i++) {
        char *text = shared_template(TEMPLATE_FILES[i].file);
        if (!text) SKIP("%s not found (set ALOE_SHARED)", TEMPLATE_FILES[i].file);
        Err e;
        ChatTemplate *a = chat_template_detect(text, "<s>", "</s>", &e);
        free(text);
        CHECK_MSG(a != NULL, "%s", e.msg);
        ChatTemplate *b = chat_template_by_name(chat_template_name(a), "<s>", "</s>", &e);
        CHECK_MSG(b != NULL, "%s", e.msg);
        ChatRenderOpts o = chat_render_opts_default();
        o.date = "02 Mar 2025";
        char *ra, *rb;
        CHECK_OK(chat_template_render(a, m, 4, 1, &o, &ra, &e), &e);
        CHECK_OK(chat_template_render(b, m, 4, 1, &o, &rb, &e), &e);
        CHECK_EQ_STR(ra, rb);
        free(ra);
        free(rb);
        chat_template_free(a);
        chat_template_free(b);
    }
}

static void test_stop_strings(void) {
    const struct {
        const char *name, *stop;
    } want[] = {{"qwen2.5", "<|im_end|>"}, {"qwen3", "<|im_end|>"}, {"llama3", "<|eot_id|>"},
                {"llama3.1", "<|eot_id|>"}, {"gemma", "<end_of_turn>"}, {"phi3", "<|end|>"},
                {"mistral-nemo", "</s>"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        Err e;
        ChatTemplate *t = chat_template_by_name(want[i].name, "<s>", "</s>", &e);
        CHECK(t != NULL);
        CHECK_EQ_STR(chat_template_stop_strings(t)[0], want[i].stop);
        chat_template_free(t);
    }
}

static void test_py_strip_matches_python(void) {
    size_t n;
    /* NBSP, EM SPACE, IDEOGRAPHIC SPACE, NEL and \x1c..\x1f are whitespace to Python. */
    const char *s = "\xc2\xa0\xe2\x80\x83 \x1c\xc2\x85x y\xe3\x80\x80\n\x1f";
    const char *p = chat_py_strip(s, &n);
    CHECK_EQ_INT(n, 3);
    CHECK(!strncmp(p, "x y", 3));
    /* ZERO WIDTH SPACE and BOM are not. */
    p = chat_py_strip("\xe2\x80\x8bx\xef\xbb\xbf", &n);
    CHECK_EQ_INT(n, 7);
    p = chat_py_strip(" \t\n", &n);
    CHECK_EQ_INT(n, 0);
    /* A malformed byte is kept, not read past. */
    p = chat_py_strip(" \xe3\x80", &n);
    CHECK_EQ_INT(n, 2);
}

/* ---- HF directory loading ---------------------------------------------------- */

static char *write_dir_file(const char *dir, const char *name, const char *text) {
    char *p = path_join(dir, name);
    Err e;
    file_write_atomic(p, text, strlen(text), &e);
    return p;
}

static void test_hf_config_forms(void) {
    char *dir = test_tmpdir();
    free(write_dir_file(dir, "tokenizer_config.json",
                        "{\"bos_token\": {\"content\": \"<bos>\", \"lstrip\": false}, \"eos_token\": "
                        "\"<eos>\", \"chat_template\": [{\"name\": \"tool_use\", \"template\": "
                        "\"x\"}, {\"name\": \"default\", \"template\": \"{{ bos_token }}{% for "
                        "message in messages %}{% if message.role == 'assistant' %}{% set role = "
                        "'model' %}{% else %}{% set role = message.role %}{% endif %}{{ "
                        "'<start_of_turn>' + role + '\\\\n' + message.content | trim + "
                        "'<end_of_turn>\\\\n' }}{% endfor %}{% if add_generation_prompt "
                        "%}{{'<start_of_turn>model\\\\n'}}{% endif %}\"}]}"));
    char *tpl, *bos, *eos;
    Err e;
    CHECK_OK(chat_template_load_hf(dir, &tpl, &bos, &eos, &e), &e);
    CHECK_EQ_STR(bos, "<bos>");
    CHECK_EQ_STR(eos, "<eos>");
    CHECK(strncmp(tpl, "{{ bos_token }}", 15) == 0);
    free(tpl);
    free(bos);
    free(eos);
    ChatTemplate *t = chat_template_open_hf(dir, NULL, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    CHECK_EQ_STR(chat_template_name(t), "gemma");
    ChatMsg m[] = {{"user", " Hi "}};
    char *out;
    CHECK_OK(chat_template_render(t, m, 1, 1, NULL, &out, &e), &e);
    CHECK_EQ_STR(out, "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
    free(out);
    chat_template_free(t);

    /* chat_template.jinja beside the config wins over the config's template. */
    free(write_dir_file(dir, "chat_template.jinja",
                        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                        "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if "
                        "add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"));
    t = chat_template_open_hf(dir, NULL, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    CHECK_EQ_STR(chat_template_name(t), "chatml");
    chat_template_free(t);
    free(dir);
}

static void test_hf_missing_template(void) {
    char *dir = test_tmpdir();
    free(write_dir_file(dir, "tokenizer_config.json",
                        "{\"bos_token\": null, \"eos_token\": \"<|im_end|>\", \"chat_template\": "
                        "[{\"name\": \"rag\", \"template\": \"x\"}]}"));
    Err e;
    ChatTemplate *t = chat_template_open_hf(dir, NULL, &e);
    CHECK(t == NULL);
    CHECK_MSG(strstr(e.msg, "\"default\"") && strstr(e.msg, "rag"), "%s", e.msg);
    /* Named explicitly, the directory needs no template. */
    t = chat_template_open_hf(dir, "qwen3", &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    chat_template_free(t);

    free(write_dir_file(dir, "tokenizer_config.json", "{\"eos_token\": \"</s>\"}"));
    t = chat_template_open_hf(dir, NULL, &e);
    CHECK(t == NULL);
    CHECK_EQ_INT(e.code, ERR_NOTFOUND);
    CHECK_MSG(strstr(e.msg, "--chat-template") && strstr(e.msg, "llama3.1"), "%s", e.msg);

    free(write_dir_file(dir, "tokenizer_config.json", "{\"eos_token\": 5}"));
    t = chat_template_open_hf(dir, "chatml", &e);
    CHECK(t == NULL);
    CHECK_MSG(strstr(e.msg, "tokenizer_config.json: eos_token") != NULL, "%s", e.msg);
    free(dir);
}

int main(void) {
    RUN(test_gold_chatml_fixture);
    RUN(test_gold_llama31_fixture);
    RUN(test_gold_model_fixtures);
    RUN(test_gold_realvocab);
    RUN(test_derived_renders);
    RUN(test_recognises_every_template_file);
    RUN(test_recognition_ignores_formatting);
    RUN(test_variant_settings_come_from_the_template);
    RUN(test_llama32_default_date_is_today);
    RUN(test_unknown_template_lists_known_names);
    RUN(test_unknown_role_is_an_error);
    RUN(test_alternation_is_enforced_where_the_template_does);
    RUN(test_special_token_text_required_when_written);
    RUN(test_by_name_matches_recognised);
    RUN(test_template_file_by_path);
    RUN(test_stop_strings);
    RUN(test_py_strip_matches_python);
    RUN(test_hf_config_forms);
    RUN(test_hf_missing_template);
    return test_summary();
}
