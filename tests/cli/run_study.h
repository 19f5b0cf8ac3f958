/* run_study: what the `aloe run` tests share: the fake endpoint started
 * with the tiny preset's script (data/recipes/tiny-fake-openai.json), the
 * tiny preset written by `aloe run --preset tiny` with its out: pointed at
 * a test folder, and running it. Header-only, like cli/aloe_sh.h. */
#ifndef ALOE_TESTS_RUN_STUDY_H
#define ALOE_TESTS_RUN_STUDY_H

#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "cli/aloe_sh.h"
#include "llm/fake_server.h"
#include "test.h"

typedef struct Study {
    FakeServer fs;
    char *dir;    /* the test's folder */
    char *recipe; /* dir/tiny.yaml */
    char *out;    /* dir/study: the recipe's out: */
    char *env;    /* the environment of every aloe run */
} Study;

/* Starts the endpoint and writes the recipe; 0 when both worked. */
static inline int study_init(Study *s) {
    memset(s, 0, sizeof *s);
    char *script = test_read_text("data/recipes/tiny-fake-openai.json");
    int rc = script && *script ? fake_start(&s->fs, script, 0) : -1;
    free(script);
    if (rc) return -1;
    s->dir = test_tmpdir();
    s->recipe = path_join(s->dir, "tiny.yaml");
    s->out = path_join(s->dir, "study");
    s->env = xasprintf("OPENAI_API_KEY=sk-test OPENAI_BASE_URL=%s ALOE_SHARED=%s", s->fs.url, test_shared_root());
    char *args = xasprintf("run --preset tiny --out %s", s->recipe), *log = NULL;
    rc = aloe_sh_run(s->env, args, &log);
    free(args);
    if (rc) fprintf(stderr, "aloe run --preset tiny: exit %d: %s\n", rc, log);
    free(log);
    if (rc) return -1;
    /* out: study-tiny -> out: DIR/study */
    char *text = test_read_text(s->recipe), *at = strstr(text, "out: study-tiny");
    if (!at) return -1;
    *at = 0;
    char *patched = xasprintf("%sout: %s%s", text, s->out, at + strlen("out: study-tiny"));
    test_put_text(s->recipe, patched);
    free(patched);
    free(text);
    return 0;
}

/* Replaces the first `from` of the recipe with `to` (0 when found). */
static inline int study_edit(Study *s, const char *from, const char *to) {
    char *text = test_read_text(s->recipe), *at = strstr(text, from);
    if (!at) {
        free(text);
        return -1;
    }
    *at = 0;
    char *patched = xasprintf("%s%s%s", text, to, at + strlen(from));
    test_put_text(s->recipe, patched);
    free(patched);
    free(text);
    return 0;
}

/* aloe run RECIPE EXTRA with env_extra (VAR=value words) added. */
static inline int study_run(Study *s, const char *env_extra, const char *extra, char **log) {
    char *env = env_extra ? xasprintf("%s %s", s->env, env_extra) : xstrdup(s->env);
    char *args = xasprintf("run %s -q %s", s->recipe, extra ? extra : "");
    int rc = aloe_sh_run(env, args, log);
    free(args);
    free(env);
    return rc;
}

static inline void study_free(Study *s) {
    fake_stop(&s->fs);
    free(s->dir), free(s->recipe), free(s->out), free(s->env);
}

/* OUT/rel exists. */
static inline int study_has(const Study *s, const char *rel) {
    char *p = path_join(s->out, rel);
    int ok = file_exists(p);
    free(p);
    return ok;
}

#endif
