/* The real templates of tests/data/templates/ through the path a chat takes
 * (chat_template_detect, then chat_template_render with ChatMsg messages),
 * not the interpreter alone: for every expected case that a plain chat can
 * produce (string contents, roles system/user/assistant, no tools or
 * documents, enable_thinking false or left to the template), the prompt must
 * be what jinja2 rendered, byte for byte, and where jinja2 raised the render
 * must fail (templates that call strftime_now are left out: a chat renders
 * today's date, the expected files a fixed one). This checks the variables chat_template passes (tools and
 * documents as None, the BOS/EOS texts, add_generation_prompt) against what
 * transformers passes, for each family, e.g. Mistral v0.3's [INST] layout,
 * Gemma 3's system text merged into the first user turn and OLMo 2's. */
#include <glob.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "test.h"
#include "tok/chat_template.h"

/* Can chat_template_render reproduce these variables? Fills msgs/opts. */
static int plain_chat(json_t *vars, ChatMsg *msgs, int cap, int *n, int *agp, ChatRenderOpts *o) {
    const char *k;
    json_t *x;
    json_object_foreach(vars, k, x) {
        if (!strcmp(k, "messages") || !strcmp(k, "add_generation_prompt") || !strcmp(k, "bos_token") ||
            !strcmp(k, "eos_token"))
            continue;
        if ((!strcmp(k, "tools") || !strcmp(k, "documents")) && json_is_null(x)) continue;
        if (!strcmp(k, "enable_thinking") && json_is_false(x)) continue;
        return 0;
    }
    json_t *m = json_object_get(vars, "messages");
    if ((int)json_array_size(m) > cap) return 0;
    size_t i;
    json_array_foreach(m, i, x) {
        const char *role = json_string_value(json_object_get(x, "role"));
        const char *content = json_string_value(json_object_get(x, "content"));
        if (!role || !content || json_object_size(x) != 2) return 0;
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant")) return 0;
        msgs[i] = (ChatMsg){role, content};
    }
    *n = (int)json_array_size(m);
    *agp = json_is_true(json_object_get(vars, "add_generation_prompt"));
    *o = chat_render_opts_default();
    if (json_is_false(json_object_get(vars, "enable_thinking"))) o->enable_thinking = 0;
    return 1;
}

static void test_families_through_chat_template(void) {
    glob_t g;
    CHECK(glob("tests/data/templates/*.expected.json", 0, NULL, &g) == 0);
    int cases = 0, bad = 0, templates = 0;
    for (size_t gi = 0; gi < g.gl_pathc; gi++) {
        json_t *exp = json_load_file(g.gl_pathv[gi], 0, NULL);
        CHECK(exp != NULL);
        if (!exp) continue;
        char *path = xasprintf("tests/data/templates/%s",
                               json_string_value(json_object_get(exp, "template")));
        char *src = test_read_text(path);
        if (strstr(src, "strftime_now")) { /* renders today's date here, a fixed one in the file */
            free(src);
            free(path);
            json_decref(exp);
            continue;
        }
        size_t i;
        json_t *c;
        int used = 0;
        json_array_foreach(json_object_get(exp, "cases"), i, c) {
            json_t *vars = json_object_get(c, "vars");
            ChatMsg msgs[16];
            int n, agp;
            ChatRenderOpts o;
            if (!plain_chat(vars, msgs, 16, &n, &agp, &o)) continue;
            Err e = {0};
            ChatTemplate *t = chat_template_detect(src, json_string_value(json_object_get(vars, "bos_token")),
                                                   json_string_value(json_object_get(vars, "eos_token")), &e);
            if (!t) {
                fprintf(stderr, "  %s: %s\n", path, e.msg);
                bad++;
                break;
            }
            used = 1;
            cases++;
            char *out = NULL;
            int rc = chat_template_render(t, msgs, n, agp, &o, &out, &e);
            const char *want = json_string_value(json_object_get(c, "output"));
            const char *name = json_string_value(json_object_get(c, "name"));
            if (want && (rc || strcmp(out, want))) {
                fprintf(stderr, "  %s [%s] (%s): got \"%.200s\"\n    want \"%.200s\"\n", path, name,
                        chat_template_name(t), rc ? e.msg : out, want);
                bad++;
            } else if (!want && !rc) {
                fprintf(stderr, "  %s [%s]: rendered, but jinja2 raised\n", path, name);
                bad++;
            }
            free(out);
            chat_template_free(t);
        }
        templates += used;
        free(src);
        free(path);
        json_decref(exp);
    }
    globfree(&g);
    fprintf(stderr, "  %d templates, %d plain-chat cases through chat_template\n", templates, cases);
    CHECK(templates >= 55);
    CHECK_EQ_INT(bad, 0);
}

int main(void) {
    RUN(test_families_through_chat_template);
    return test_summary();
}
