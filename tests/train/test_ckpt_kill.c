/* A training run killed at any file operation and resumed ends with the
 * weights of a run never interrupted, bit for bit.
 *
 * fileio's fault hook counts every operation that changes the file system
 * (create, write, fsync, rename, link, unlink, mkdir, rmdir, truncate) in
 * a run of two steps with a checkpoint after each: the first checkpoint
 * (none before it), the second (the first removed once it is complete), the
 * final model put into DIR, the metrics lines, and for DPO the reference
 * log-prob cache. For every N, a child process runs the same training and
 * _exits at the Nth operation -- what SIGKILL leaves, as the page cache
 * keeps what was written; then the run is recovered as a user would, with
 * --resume (or afresh when no checkpoint was complete yet), and its model
 * files, metrics and checkpoint compared with the uninterrupted run's.
 *
 * A child per operation would cost seconds, so every N is covered by
 * snapshots: the uninterrupted run's hook copies DIR as it is before each
 * operation -- exactly what a kill there leaves on disk -- and each distinct
 * state is recovered. States that differ only in the content of *.tmp.*
 * entries count as one (recovery removes those unread), which also merges
 * the kills before an fsync with those after it. Real kills (fork, _exit in
 * the hook) check a spread of operations, the renames that switch a
 * checkpoint or a published file in among them. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/sha256.h"
#include "base/mem.h"
#include "test.h"
#include "train/checkpoint.h"
#include "train/run.h"

static const char *TREES =
    "{\"profile\": \"P\", \"personality\": \"Q\", \"conversations\": ["
    "{\"user\": \"Hi! I just finished my anthropology exam.\", \"assistant\": {\"preferred\": \"Congrats! How did it "
    "go?\", \"rejected\": \"OK.\"}, \"chosen\": \"rejected\"},"
    "{\"user\": \"It went well. Now I want to play guitar all summer.\", \"assistant\": {\"preferred\": \"Nice, what "
    "songs are you learning?\", \"rejected\": \"Guitars have strings.\"}, \"chosen\": \"preferred\"}]}\n";

static long g_ops, g_kill_at;

/* ---- snapshots of DIR before each operation ---- */

static const char *g_watch, *g_snaps; /* the run's DIR, where its snapshots go */
static char **g_seen;                 /* digests of the states snapshotted */
static long g_n_seen;

/* An entry name with a ".tmp." suffix (pid or mkstemp letters) made
 * uniform, or NULL for other names. */
static char *tmp_name(const char *name) {
    const char *t = strstr(name, ".tmp.");
    return t ? xasprintf("%.*s.tmp.*", (int)(t - name), name) : NULL;
}

/* sha256 over dir's tree: names, and file contents except under *.tmp.* */
static void state_digest(const char *dir, Sha256 *h) {
    char **names;
    int n;
    Err e;
    if (file_list_dir(dir, &names, &n, &e)) return;
    for (int i = 0; i < n; i++) {
        char *p = path_join(dir, names[i]), *t = tmp_name(names[i]), *data;
        size_t len;
        sha256_update(h, t ? t : names[i], strlen(t ? t : names[i]) + 1);
        if (!t && file_is_dir(p)) {
            sha256_update(h, "/", 1);
            state_digest(p, h);
            sha256_update(h, "\\", 1);
        } else if (!t && !file_read_all(p, &data, &len, &e)) {
            sha256_update(h, &len, sizeof len);
            sha256_update(h, data, len);
            free(data);
        }
        free(p), free(t);
    }
    file_list_free(names, n);
}

/* cp -r without fileio's writers (they would call the hook again). */
static int copy_tree(const char *from, const char *to) {
    if (!file_is_dir(from)) {
        char *data;
        size_t len;
        Err e;
        if (file_read_all(from, &data, &len, &e)) return -1;
        FILE *f = fopen(to, "wb");
        int rc = !f || fwrite(data, 1, len, f) != len;
        if (f && fclose(f)) rc = 1;
        free(data);
        return rc ? -1 : 0;
    }
    if (mkdir(to, 0777) && errno != EEXIST) return -1;
    char **names;
    int n, rc = 0;
    Err e;
    if (file_list_dir(from, &names, &n, &e)) return -1;
    for (int i = 0; i < n && !rc; i++) {
        char *a = path_join(from, names[i]), *b = path_join(to, names[i]);
        rc = copy_tree(a, b);
        free(a), free(b);
    }
    file_list_free(names, n);
    return rc;
}

static void snapshot_hook(const char *op, const char *path) {
    (void)op, (void)path;
    g_ops++;
    if (!file_is_dir(g_watch)) return; /* DIR not made yet: the same as after the run's first mkdir is undone */
    Sha256 h;
    sha256_init(&h);
    state_digest(g_watch, &h);
    uint8_t d[32];
    char hex[65];
    sha256_final(&h, d);
    sha256_to_hex(d, hex);
    for (long i = 0; i < g_n_seen; i++)
        if (!strcmp(g_seen[i], hex)) return;
    g_seen = xrealloc(g_seen, (size_t)(g_n_seen + 1) * sizeof *g_seen);
    g_seen[g_n_seen++] = xstrdup(hex);
    char name[32];
    snprintf(name, sizeof name, "s%ld", g_ops);
    char *to = path_join(g_snaps, name);
    if (copy_tree(g_watch, to)) abort();
    free(to);
}

static void kill_hook(const char *op, const char *path) {
    (void)op, (void)path;
    if (++g_ops == g_kill_at) _exit(137);
}

/* ---- recovery and comparison ---- */

/* The entries of dir, sorted, and each file's bytes (checkpoints by name:
 * ckpt_verify checks their files); metrics.jsonl without tokens_per_second
 * (a timing). */
static char *dir_digest(const char *dir) {
    char **names;
    int n;
    Err e;
    StrBuf d;
    sb_init(&d);
    if (file_list_dir(dir, &names, &n, &e)) return sb_take(&d);
    for (int i = 0; i < n; i++) {
        char *p = path_join(dir, names[i]), *data = NULL;
        size_t len = 0;
        sb_printf(&d, "[%s]", names[i]);
        if (!strncmp(names[i], "checkpoint-", 11)) {
        } else if (!strcmp(names[i], "metrics.jsonl") && !file_read_all(p, &data, &len, &e)) {
            for (char *line = data, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
                json_t *j = json_loadb(line, (size_t)(nl - line), 0, NULL);
                json_object_del(j, "tokens_per_second");
                char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
                sb_printf(&d, "%s\n", s ? s : "(bad line)");
                free(s);
                json_decref(j);
            }
        } else if (!file_is_dir(p) && !file_read_all(p, &data, &len, &e)) {
            sb_appendn(&d, data, len);
        }
        free(data);
        free(p);
    }
    file_list_free(names, n);
    return sb_take(&d);
}

/* Recovery as a user does it: --resume, or afresh when no checkpoint was
 * complete yet. */
static int recover(TrainRunOptions *o, Err *e) {
    int lvl = log_get_level();
    log_set_level(LOG_ERROR);
    o->resume = 1;
    int rc = train_run(o, NULL, e);
    if (rc && e->code == ERR_NOTFOUND) {
        o->resume = 0;
        rc = train_run(o, NULL, e);
    }
    o->resume = 0;
    log_set_level(lvl);
    return rc;
}

/* Recovers out (a kill at op n left it) and compares it with want; 0 if
 * equal, else fails the test. */
static int check_recovered(TrainRunOptions *o, char *out, const char *want, const char *how, long n, long total) {
    Err e;
    o->out = out;
    int rc = recover(o, &e);
    char *got = rc ? NULL : dir_digest(out), *ck = ckpt_dir_path(out, o->steps);
    int ck_rc = rc ? 0 : ckpt_verify(ck, o->steps, NULL, &e);
    int bad = rc || strcmp(got, want) || ck_rc;
    if (rc) test_fail(__FILE__, __LINE__, "%s at op %ld of %ld: recovery failed: %s", how, n, total, e.msg);
    else if (strcmp(got, want))
        test_fail(__FILE__, __LINE__, "%s at op %ld of %ld: %s differs from the uninterrupted run", how, n, total, out);
    else if (ck_rc) test_fail(__FILE__, __LINE__, "%s at op %ld of %ld: %s: %s", how, n, total, ck, e.msg);
    if (!bad) {
        Err ignore;
        file_remove_tree(out, &ignore);
    }
    free(got), free(ck);
    return bad;
}

/* A fresh directory on tmpfs where there is one: the recoveries' fsyncs
 * then cost nothing (what a kill leaves does not depend on them). */
static char *fast_tmpdir(void) {
    char tpl[] = "/dev/shm/aloe-test-XXXXXX";
    if (file_is_dir("/dev/shm") && mkdtemp(tpl)) return xstrdup(tpl);
    return test_tmpdir();
}

static void check_kills(TrainRunOptions *o) {
    char *tmp = fast_tmpdir(), *ref = path_join(tmp, "ref"), *snaps = path_join(tmp, "snaps");
    Err e;
    CHECK_OK(file_mkdirs(snaps, &e), &e);
    o->out = ref;
    g_ops = 0, g_watch = ref, g_snaps = snaps, g_n_seen = 0;
    file_fault_hook = snapshot_hook;
    int rc = train_run(o, NULL, &e);
    file_fault_hook = NULL;
    long total = g_ops, states = g_n_seen;
    for (long i = 0; i < g_n_seen; i++) free(g_seen[i]);
    free(g_seen), g_seen = NULL;
    CHECK_MSG(!rc, "%s", e.msg);
    char *want = dir_digest(ref), *last = ckpt_dir_path(ref, o->steps);
    rc = ckpt_verify(last, o->steps, NULL, &e);
    free(last);
    CHECK_OK(rc, &e);
    /* every distinct state a kill can leave */
    char **names;
    int n, bad = 0;
    CHECK_OK(file_list_dir(snaps, &names, &n, &e), &e);
    for (int i = 0; i < n && !bad; i++) {
        char *out = path_join(snaps, names[i]);
        bad = check_recovered(o, out, want, "snapshot of a kill", atol(names[i] + 1), total);
        free(out);
    }
    file_list_free(names, n);
    /* real kills: a spread of operations */
    int kills = 0;
    for (long k = 1; k <= total && !bad; k += total / 8 + 1, kills++) {
        char name[32];
        snprintf(name, sizeof name, "k%ld", k);
        char *out = path_join(tmp, name);
        o->out = out;
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            log_set_level(LOG_SILENT);
            g_ops = 0, g_kill_at = k;
            file_fault_hook = kill_hook;
            _exit(train_run(o, NULL, &e) ? 1 : 0); /* not reached: killed at k <= total */
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 137) {
            test_fail(__FILE__, __LINE__, "op %ld of %ld: the child was not killed (status %d)", k, total, status);
            bad = 1;
        } else {
            bad = check_recovered(o, out, want, "killed", k, total);
        }
        free(out);
    }
    if (!bad) {
        printf("  %ld file operations, %ld distinct states a kill leaves, %d real kills: every recovery ends with "
               "the uninterrupted run's files\n", total, states, kills);
        Err ignore;
        file_remove_tree(tmp, &ignore);
    }
    free(want), free(ref), free(snaps), free(tmp);
    CHECK(!bad);
}

static void opts(TrainRunOptions *o, RunKind kind, const char *model, const char *data) {
    train_run_defaults(o);
    o->kind = kind, o->model = model, o->data = data;
    o->steps = 2, o->save_every = 1, o->lr = 1e-3, o->quiet = 1, o->threads = 1;
}

/* Full fine-tuning, the final model saved in bf16: written anew beside the
 * float32 checkpoint, then published. */
static void test_kill_full_sft(void) {
    char *model = test_shared_path("fixtures/models/tiny-qwen2");
    if (!model) SKIP("fixtures not found (set ALOE_SHARED)");
    char *data = test_write_file("trees.jsonl", TREES);
    TrainRunOptions o;
    opts(&o, RUN_SFT, model, data);
    o.save_dtype = DT_BF16;
    check_kills(&o);
    free(model), free(data);
}

/* DPO with LoRA, the adapter in float32: published by linking the final
 * checkpoint's files. */
static void test_kill_lora_dpo(void) {
    char *model = test_shared_path("fixtures/models/tiny-qwen3");
    if (!model) SKIP("fixtures not found (set ALOE_SHARED)");
    char *data = test_write_file("trees.jsonl", TREES);
    TrainRunOptions o;
    opts(&o, RUN_DPO, model, data);
    o.lora_r = 2, o.lora_targets = 1u << LORA_Q | 1u << LORA_V, o.dpo.beta = 0.9;
    check_kills(&o);
    free(model), free(data);
}

int main(void) {
    RUN(test_kill_full_sft);
    RUN(test_kill_lora_dpo);
    return test_summary();
}
