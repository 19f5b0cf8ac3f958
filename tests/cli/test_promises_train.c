/* README promises of `aloe train dpo`, end to end on the built binary and
 * the shared tiny-qwen2 fixtures, read from DIR/metrics.jsonl (step 1: the
 * log-probs of the model before its first update):
 *   --ref M        the reference log-probs are M's: rewards/chosen =
 *                  beta * (the policy's log-prob - M's), where M's is what
 *                  a run with M as the policy logs as logps/chosen; without
 *                  --ref the reference is the starting model (rewards 0);
 *                  DIR/ref_logps.safetensors records M.
 *   --max-len L    drops the oldest turns, never the target: a pair whose
 *                  prompt does not fit is trained exactly as the same pair
 *                  written without its oldest turn (system prompt kept);
 *                  a pair whose replies alone exceed L is skipped with a
 *                  warning, and when none fits the run stops (exit 2). */
#include <jansson.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/safetensors.h"
#include "test.h"

typedef struct {
    double logp_c, logp_r, rew_c, rew_r;
    int ok;
} Step1;

/* Runs `aloe train dpo ARGS --out DIR` (one step); rc, step 1's metrics,
 * and the output (stdout+stderr) in *log (caller frees). */
static int train(const char *args, const char *dir, Step1 *s, char **log) {
    char *bin = test_build_path("aloe"), *lp = path_join(dir, "log");
    file_mkdirs(dir, &(Err){0});
    char *out = path_join(dir, "run");
    int rc = test_system("%s train dpo %s --out %s --steps 1 --lr 1e-6 --beta 0.5 -t 1 -q >'%s' 2>&1", bin, args,
                         out, lp);
    *log = test_read_text(lp);
    memset(s, 0, sizeof *s);
    size_t n;
    Err e;
    char *mp = path_join(out, "metrics.jsonl"), *txt = NULL;
    if (!rc && !file_read_all(mp, &txt, &n, &e)) {
        char *nl = strchr(txt, '\n');
        if (nl) *nl = 0;
        json_t *j = json_loads(txt, 0, NULL);
        if (j) {
            s->logp_c = json_real_value(json_object_get(j, "logps/chosen"));
            s->logp_r = json_real_value(json_object_get(j, "logps/rejected"));
            s->rew_c = json_real_value(json_object_get(j, "rewards/chosen"));
            s->rew_r = json_real_value(json_object_get(j, "rewards/rejected"));
            s->ok = json_object_get(j, "logps/chosen") != NULL;
        }
        json_decref(j);
    }
    free(txt), free(mp), free(out), free(lp), free(bin);
    return rc;
}

/* metrics.jsonl keeps 8 significant digits: a relative 1e-7 each */
static int close8(double a, double b) { return fabs(a - b) <= 1e-7 * (fabs(a) + fabs(b)) + 1e-12; }

static const char *pair =
    "{\"prompt\": [{\"role\": \"user\", \"content\": \"I just moved to a new city and I like hiking.\"}], "
    "\"chosen\": [{\"role\": \"assistant\", \"content\": \"Welcome! There are great trails nearby.\"}], "
    "\"rejected\": [{\"role\": \"assistant\", \"content\": \"Cities have roads.\"}]}\n";

static void test_dpo_ref(void) {
    char *pol = test_shared_path("fixtures/models/tiny-qwen2"), *ref = test_shared_path("fixtures/models/tiny-qwen2-ref");
    if (!pol || !ref) SKIP("shared fixtures absent (ALOE_SHARED)");
    char *tmp = test_tmpdir(), *data = path_join(tmp, "pairs.jsonl");
    Err e;
    CHECK_OK(file_write_atomic(data, pair, strlen(pair), &e), &e);
    char *a_dir = path_join(tmp, "a"), *b_dir = path_join(tmp, "b"), *c_dir = path_join(tmp, "c");
    char *a_args = xasprintf("--model %s --ref %s --data %s", pol, ref, data);
    char *b_args = xasprintf("--model %s --data %s", ref, data);
    char *c_args = xasprintf("--model %s --data %s", pol, data);
    Step1 a, b, c;
    char *la, *lb, *lc;
    int ra = train(a_args, a_dir, &a, &la), rb = train(b_args, b_dir, &b, &lb), rc = train(c_args, c_dir, &c, &lc);
    CHECK_MSG(ra == 0 && a.ok, "--ref run: exit %d: %s", ra, la);
    CHECK_MSG(rb == 0 && b.ok, "ref-as-policy run: exit %d: %s", rb, lb);
    CHECK_MSG(rc == 0 && c.ok, "no --ref run: exit %d: %s", rc, lc);
    /* the policy is the same with and without --ref */
    CHECK(close8(a.logp_c, c.logp_c) && close8(a.logp_r, c.logp_r));
    /* the reference really is M: it differs from the starting model ... */
    CHECK_MSG(fabs(b.logp_c - c.logp_c) > 1e-3, "the fixtures' models give the same log-probs: %g", b.logp_c);
    /* ... and the rewards are beta * (policy - M's own log-probs) */
    double want_c = 0.5 * (a.logp_c - b.logp_c), want_r = 0.5 * (a.logp_r - b.logp_r);
    double tol_c = 0.5 * 1e-7 * (fabs(a.logp_c) + fabs(b.logp_c)) + 1e-7 * fabs(a.rew_c) + 1e-9;
    double tol_r = 0.5 * 1e-7 * (fabs(a.logp_r) + fabs(b.logp_r)) + 1e-7 * fabs(a.rew_r) + 1e-9;
    CHECK_MSG(fabs(a.rew_c - want_c) <= tol_c, "rewards/chosen %.9g, beta*(policy - ref) %.9g", a.rew_c, want_c);
    CHECK_MSG(fabs(a.rew_r - want_r) <= tol_r, "rewards/rejected %.9g, beta*(policy - ref) %.9g", a.rew_r, want_r);
    /* without --ref the reference is the starting model: zero rewards at step 1 */
    CHECK_MSG(fabs(c.rew_c) <= 1e-9 && fabs(c.rew_r) <= 1e-9, "rewards %g %g without --ref", c.rew_c, c.rew_r);
    /* the cache of reference log-probs names M */
    char *cache = path_join(a_dir, "run/ref_logps.safetensors");
    SafeTensors *st = st_open(cache, &e);
    free(cache);
    CHECK_OK(st == NULL, &e);
    const char *named = st_metadata(st, "reference");
    int names_m = named && !strcmp(named, ref);
    st_close(st);
    CHECK(names_m);
    free(la), free(lb), free(lc), free(a_args), free(b_args), free(c_args);
    free(a_dir), free(b_dir), free(c_dir), free(data);
    test_system("rm -rf '%s'", tmp);
    free(tmp), free(pol), free(ref);
}

/* A pair with a long first exchange, and the same pair without it. */
static char *long_pair(int with_first_turn) {
    StrBuf b;
    sb_init(&b);
    sb_printf(&b, "{\"prompt\": [{\"role\": \"system\", \"content\": \"You are a friendly guide.\"}");
    if (with_first_turn) {
        sb_printf(&b, ", {\"role\": \"user\", \"content\": \"");
        for (int i = 0; i < 12; i++) sb_printf(&b, "I love hiking in the mountains with my dog. ");
        sb_printf(&b, "\"}, {\"role\": \"assistant\", \"content\": \"That sounds wonderful, tell me more.\"}");
    }
    sb_printf(&b, ", {\"role\": \"user\", \"content\": \"Any trail for this weekend?\"}], "
                  "\"chosen\": [{\"role\": \"assistant\", \"content\": \"Try the lake loop, it is shaded.\"}], "
                  "\"rejected\": [{\"role\": \"assistant\", \"content\": \"Trails exist.\"}]}\n");
    return b.s;
}

static void test_dpo_max_len(void) {
    char *pol = test_shared_path("fixtures/models/tiny-qwen2");
    if (!pol) SKIP("shared fixtures absent (ALOE_SHARED)");
    char *tmp = test_tmpdir(), *full = path_join(tmp, "full.jsonl"), *cut = path_join(tmp, "cut.jsonl");
    char *tf = long_pair(1), *tc = long_pair(0);
    Err e;
    CHECK_OK(file_write_atomic(full, tf, strlen(tf), &e) || file_write_atomic(cut, tc, strlen(tc), &e), &e);
    Step1 whole, capped, by_hand;
    char *l1, *l2, *l3;
    char *d1 = path_join(tmp, "1"), *d2 = path_join(tmp, "2"), *d3 = path_join(tmp, "3");
    char *a1 = xasprintf("--model %s --data %s", pol, full);
    /* 90 tokens: the pair without its first exchange is ~40, with it ~140 */
    char *a2 = xasprintf("--model %s --data %s --max-len 90", pol, full);
    char *a3 = xasprintf("--model %s --data %s", pol, cut);
    int r1 = train(a1, d1, &whole, &l1), r2 = train(a2, d2, &capped, &l2), r3 = train(a3, d3, &by_hand, &l3);
    CHECK_MSG(r1 == 0 && whole.ok, "exit %d: %s", r1, l1);
    CHECK_MSG(r2 == 0 && capped.ok, "exit %d: %s", r2, l2);
    CHECK_MSG(r3 == 0 && by_hand.ok, "exit %d: %s", r3, l3);
    /* the cut changed the context (the long turn mattered) ... */
    CHECK_MSG(!close8(whole.logp_c, capped.logp_c), "--max-len 90 changed nothing: %g", capped.logp_c);
    /* ... and is exactly the oldest exchange: the replies whole, the system
     * prompt and the last user turn kept */
    CHECK_MSG(close8(capped.logp_c, by_hand.logp_c) && close8(capped.logp_r, by_hand.logp_r),
              "--max-len: logps %.9g / %.9g, the pair without its first exchange %.9g / %.9g", capped.logp_c,
              capped.logp_r, by_hand.logp_c, by_hand.logp_r);
    free(l1), free(l2), free(l3), free(a1), free(a2), free(a3);

    /* replies alone too long: that pair is skipped with a warning, the rest
     * trains; none fits: exit 2 naming --max-len */
    StrBuf b;
    sb_init(&b);
    sb_printf(&b, "%s", pair);
    sb_printf(&b, "{\"prompt\": [{\"role\": \"user\", \"content\": \"Tell me everything.\"}], "
                  "\"chosen\": [{\"role\": \"assistant\", \"content\": \"");
    for (int i = 0; i < 20; i++) sb_printf(&b, "The trail goes up the hill and down to the lake. ");
    sb_printf(&b, "\"}], \"rejected\": [{\"role\": \"assistant\", \"content\": \"No.\"}]}\n");
    char *mixed = path_join(tmp, "mixed.jsonl"), *only = path_join(tmp, "only.jsonl");
    const char *second = strchr(b.s, '\n') + 1;
    CHECK_OK(file_write_atomic(mixed, b.s, strlen(b.s), &e) || file_write_atomic(only, second, strlen(second), &e),
             &e);
    char *d4 = path_join(tmp, "4"), *d5 = path_join(tmp, "5");
    char *a4 = xasprintf("--model %s --data %s --max-len 150", pol, mixed); /* the short pair: ~100 */
    char *a5 = xasprintf("--model %s --data %s --max-len 150", pol, only);
    Step1 s4, s5;
    char *l4, *l5;
    int r4 = train(a4, d4, &s4, &l4), r5 = train(a5, d5, &s5, &l5);
    CHECK_MSG(r4 == 0 && s4.ok, "exit %d: %s", r4, l4);
    CHECK_MSG(strstr(l4, "skipped") && strstr(l4, "mixed.jsonl:2") && strstr(l4, "--max-len 150"),
              "no warning naming the skipped pair: %s", l4);
    CHECK_MSG(r5 == 2 && strstr(l5, "--max-len 150"), "none fits: exit %d: %s", r5, l5);
    free(l4), free(l5), free(a4), free(a5), free(d4), free(d5), free(mixed), free(only);
    sb_free(&b);
    free(d1), free(d2), free(d3), free(tf), free(tc), free(full), free(cut);
    test_system("rm -rf '%s'", tmp);
    free(tmp), free(pol);
}

int main(void) {
    RUN(test_dpo_ref);
    RUN(test_dpo_max_len);
    return test_summary();
}
