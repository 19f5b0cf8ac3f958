/* aloe run RECIPE: a whole study, stage by stage (the plan comes from
 * aloe/recipe.h; this file executes it and keeps its markers).
 *
 * Each stage's commands run as child processes of this same binary
 * (/proc/self/exe), not as cmd_* calls in this process: the stage commands
 * install their own signal handlers and log level, keep CLI-global state and
 * return through paths written for a process that ends afterwards; a child
 * per command keeps each stage exactly as the user would run it by hand (the
 * dry run prints those command lines), and a crash in one stage cannot take
 * the study's bookkeeping with it. The child dies with its parent
 * (PR_SET_PDEATHSIG), so a kill of `aloe run` leaves no stage running on.
 *
 * Markers, under OUT/STAGE/:
 *   .started.json  the stage's settings when it started (a changed setting of
 *                  a started stage is refused as for a finished one)
 *   .stepK.done    step K (from 1) finished; a rerun goes on after it
 *   .done.json     the stage finished: {"stage", "digest", "settings"}
 * All written atomically after the work they stand for. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aloe/recipe.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "base/sha256.h"
#include "cli/args.h"
#include "cli/commands.h"

/* ---- the environment the plan sees ---- */

static const char *env_lookup(void *ctx, const char *name) {
    (void)ctx;
    return getenv(name);
}

static long count_lines(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    long n = 0;
    int c, last = '\n';
    while ((c = getc(f)) != EOF) {
        if (c == '\n') n++;
        last = c;
    }
    fclose(f);
    return n + (last != '\n');
}

static long env_count(void *ctx, const char *path) {
    (void)ctx;
    return count_lines(path);
}

static int env_sha256(void *ctx, const char *path, char hex[65]) {
    (void)ctx;
    char *data;
    size_t len;
    Err e = {0};
    if (file_read_all(path, &data, &len, &e)) return -1; /* a missing pool is the copy step's error to report */
    sha256_hex(data, len, hex);
    free(data);
    return 0;
}

/* ---- cost and progress, read from what each stage already records ---- */

typedef struct Cost {
    long done, requests, prompt, completion;
} Cost;

/* Answered requests and their tokens in a request cache (sqlite). */
static void cost_cache(const char *path, Cost *c) {
    sqlite3 *db = NULL;
    if (!file_exists(path) || sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return;
    }
    sqlite3_busy_timeout(db, 2000);
    const char *q[] = {"SELECT count(*), total(prompt_tokens), total(completion_tokens) FROM chat",
                       "SELECT count(*), 0, 0 FROM embedding"};
    for (int i = 0; i < 2; i++) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, q[i], -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
            c->requests += sqlite3_column_int64(st, 0);
            c->prompt += (long)sqlite3_column_double(st, 1);
            c->completion += (long)sqlite3_column_double(st, 2);
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
}

static char *sidecar(const char *jsonl, const char *suffix) {
    size_t n = strlen(jsonl);
    if (n > 6 && !strcmp(jsonl + n - 6, ".jsonl")) n -= 6;
    return xasprintf("%.*s%s", (int)n, jsonl, suffix);
}

/* dialogues: finished trees, their recorded usage (meta.usage) and the
 * requests the cache answered. */
static void cost_dialogues(const RecipeStage *s, Cost *c) {
    FILE *f = fopen(s->out_file, "rb");
    char *line = NULL;
    size_t cap = 0;
    while (f && getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        if (!j) continue; /* a torn last line: the command repairs it */
        c->done++;
        const char *role;
        json_t *u;
        json_object_foreach(json_object_get(json_object_get(j, "meta"), "usage"), role, u) {
            c->prompt += (long)json_integer_value(json_object_get(u, "prompt_tokens"));
            c->completion += (long)json_integer_value(json_object_get(u, "completion_tokens"));
        }
        json_decref(j);
    }
    free(line);
    if (f) fclose(f);
    Cost cc = {0};
    char *cache = sidecar(s->out_file, ".requests.sqlite");
    cost_cache(cache, &cc);
    free(cache);
    c->requests += cc.requests;
}

/* bench: finished conversations; requests and tokens over every invocation
 * (DIR/invocations.json, rewritten after every conversation). */
static void cost_bench(const RecipeStage *s, Cost *c) {
    c->done = count_lines(s->out_file);
    if (c->done < 0) c->done = 0;
    char *p = path_join(s->dir, "invocations.json");
    json_t *inv = json_load_file(p, 0, NULL);
    free(p);
    size_t i;
    json_t *en;
    json_array_foreach(inv, i, en) {
        const char *role;
        json_t *r;
        json_object_foreach(json_object_get(en, "requests"), role, r) {
            c->requests += (long)(json_integer_value(json_object_get(r, "requests")) -
                                  json_integer_value(json_object_get(r, "cache_hits")));
            c->prompt += (long)json_integer_value(json_object_get(r, "prompt_tokens"));
            c->completion += (long)json_integer_value(json_object_get(r, "completion_tokens"));
        }
    }
    json_decref(inv);
}

/* train: the last logged optimizer step. */
static void cost_train(const RecipeStage *s, Cost *c) {
    char *p = path_join(s->steps[0].train_out, "metrics.jsonl");
    FILE *f = fopen(p, "rb");
    free(p);
    char *line = NULL;
    size_t cap = 0;
    while (f && getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        long step = (long)json_integer_value(json_object_get(j, "step"));
        if (step > c->done) c->done = step;
        json_decref(j);
    }
    free(line);
    if (f) fclose(f);
}

static int step_done(const RecipeStage *s, int k);

static Cost stage_cost(const RecipeStage *s, int finished) {
    Cost c = {0};
    switch (s->kind) {
    case STAGE_PERSONAS:
        for (int k = 0; k < s->nsteps; k++) {
            const RecipeStep *st = &s->steps[k];
            const char *pool = st->argv ? st->argv[st->argc - 1] : st->dst;
            long n = count_lines(pool);
            c.done += n > 0 ? n : 0;
            if (st->argv) {
                char *cache = sidecar(pool, ".requests.sqlite");
                cost_cache(cache, &c);
                free(cache);
            }
        }
        break;
    case STAGE_DIALOGUES: cost_dialogues(s, &c); break;
    case STAGE_BENCH: cost_bench(s, &c); break;
    case STAGE_TRAIN: cost_train(s, &c); break;
    default:
        for (int k = 0; k < s->nsteps; k++) c.done += step_done(s, k);
        if (s->kind == STAGE_REPORT) c.done = finished;
        break;
    }
    return c;
}

static void print_status(const RecipePlan *pl, int i, const char *state, int finished, Cost *sum) {
    const RecipeStage *s = &pl->stages[i];
    Cost c = stage_cost(s, finished);
    if (sum) {
        sum->requests += c.requests;
        sum->prompt += c.prompt;
        sum->completion += c.completion;
    }
    char total[32] = "?";
    long t = s->total;
    if (s->kind == STAGE_TRAIN && finished && c.done > t) t = c.done;
    if (t >= 0) snprintf(total, sizeof total, "%ld", t);
    printf("[%d/%d] %-20s %-8s %ld/%s %s", i + 1, pl->n, s->name, state, c.done, total, s->unit ? s->unit : "");
    if (c.requests || c.prompt || c.completion)
        printf("; %ld requests, %ld tokens (%ld prompt + %ld completion)", c.requests, c.prompt + c.completion,
               c.prompt, c.completion);
    printf("\n");
    fflush(stdout);
}

/* ---- markers ---- */

static char *marker(const RecipeStage *s, const char *name) { return path_join(s->dir, name); }

static char *step_marker(const RecipeStage *s, int k) {
    char name[32];
    snprintf(name, sizeof name, ".step%d.done", k + 1);
    return marker(s, name);
}

static int step_done(const RecipeStage *s, int k) {
    char *p = step_marker(s, k);
    int ok = file_exists(p);
    free(p);
    return ok;
}

static int write_json(const char *path, json_t *j, Err *e) {
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    StrBuf b;
    sb_init(&b);
    sb_append(&b, text);
    sb_appendc(&b, '\n');
    free(text);
    int rc = file_write_atomic(path, b.s, b.len, e);
    sb_free(&b);
    return rc;
}

static int write_marker(const RecipeStage *s, const char *name, Err *e) {
    json_t *j = json_pack("{s:s, s:s, s:O}", "stage", s->name, "digest", s->digest, "settings", s->settings);
    char *p = marker(s, name);
    int rc = write_json(p, j, e);
    free(p);
    json_decref(j);
    return rc;
}

/* The settings a stage was started or finished with, or NULL. */
static json_t *read_marker(const RecipeStage *s, const char *name) {
    char *p = marker(s, name);
    json_t *j = json_load_file(p, 0, NULL);
    free(p);
    return j;
}

static int is_done(const RecipeStage *s) {
    char *p = marker(s, ".done.json");
    int ok = file_exists(p);
    free(p);
    return ok;
}

/* ---- running a step ---- */

static volatile sig_atomic_t g_stop;
static volatile pid_t g_child;

static void on_signal(int sig) {
    g_stop = 1;
    /* Ctrl-C reaches the child through the terminal's process group; a
     * SIGTERM sent to this process alone is passed on. */
    if (sig == SIGTERM && g_child > 0) kill(g_child, SIGTERM);
}

static int run_child(char **argv, int quiet, Err *e) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return err_set(e, ERR_IO, "/proc/self/exe: %s", strerror(errno));
    self[n] = 0;
    int argc = 0;
    while (argv[argc]) argc++;
    char **full = xcalloc((size_t)argc + 3, sizeof *full);
    full[0] = self;
    for (int i = 0; i < argc; i++) full[i + 1] = argv[i];
    /* the commands with progress bars take --quiet */
    static const char *const with_quiet[] = {"personas", "dialogues", "export", "train", "bench", NULL};
    for (int i = 0; quiet && with_quiet[i]; i++)
        if (!strcmp(argv[0], with_quiet[i])) full[argc + 1] = "--quiet";
    char pid_env[32];
    snprintf(pid_env, sizeof pid_env, "%d", (int)getpid());
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        free(full);
        return err_set(e, ERR_IO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(137); /* the parent died before prctl */
        setenv("ALOE_RUN_PID", pid_env, 1);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execv(self, full);
        fprintf(stderr, "aloe run: exec %s: %s\n", self, strerror(errno));
        _exit(127);
    }
    free(full);
    g_child = pid;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    g_child = 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 130) return err_set(e, ERR_CANCELLED, "interrupted");
    if (WIFEXITED(st)) return err_set(e, ERR_IO, "exited with status %d", WEXITSTATUS(st));
    return err_set(e, g_stop ? ERR_CANCELLED : ERR_IO, "ended by signal %d", WTERMSIG(st));
}

static int copy_file(const char *src, const char *dst, Err *e) {
    char *buf;
    size_t len;
    if (file_read_all(src, &buf, &len, e)) return err_wrap(e, "published pool");
    int rc = file_write_atomic(dst, buf, len, e);
    free(buf);
    return rc;
}

/* A train step resumes from the newest checkpoint its --out holds. */
static int has_checkpoint(const char *dir) {
    char **names = NULL;
    int n = 0, found = 0;
    Err e;
    if (!file_is_dir(dir) || file_list_dir(dir, &names, &n, &e)) return 0;
    /* checkpoint-N only: checkpoint-N.tmp.PID is a save that was cut short
     * (a checkpoint appears whole, by rename, or not at all) */
    for (int i = 0; i < n; i++)
        if (!strncmp(names[i], "checkpoint-", 11) && names[i][11] &&
            strspn(names[i] + 11, "0123456789") == strlen(names[i] + 11))
            found = 1;
    file_list_free(names, n);
    return found;
}

static int run_step(const RecipeStage *s, int k, int quiet, Err *e) {
    const RecipeStep *st = &s->steps[k];
    if (!st->argv) return copy_file(st->src, st->dst, e);
    char **argv = st->argv;
    char **with = NULL;
    if (st->train_resume && has_checkpoint(st->train_out)) {
        fprintf(stderr, "aloe run: %s: resuming from the newest checkpoint in %s (--resume)\n", s->name, st->train_out);
        with = xcalloc((size_t)st->argc + 2, sizeof *with);
        for (int i = 0; i < st->argc; i++) with[i] = st->argv[i];
        with[st->argc] = "--resume";
        argv = with;
    }
    int rc = run_child(argv, quiet, e);
    free(with);
    return rc;
}

/* Runs the steps of stage i not yet done, then marks it done. */
static int run_stage(const RecipePlan *pl, int i, int quiet, Err *e) {
    const RecipeStage *s = &pl->stages[i];
    if (file_mkdirs(s->dir, e) || write_marker(s, ".started.json", e)) return -1;
    for (int k = 0; k < s->nsteps; k++) {
        if (step_done(s, k)) continue;
        if (g_stop) return err_set(e, ERR_CANCELLED, "interrupted");
        char *line = recipe_step_line(&s->steps[k]);
        fprintf(stderr, "aloe run: %s: %s\n", s->name, line);
        int rc = run_step(s, k, quiet, e);
        if (rc) {
            err_wrap(e, "stage %s: %s", s->name, line);
            free(line);
            return -1;
        }
        free(line);
        char *p = step_marker(s, k);
        rc = file_write_atomic(p, "done\n", 5, e);
        free(p);
        if (rc) return -1;
    }
    return write_marker(s, ".done.json", e);
}

/* ---- settings checks and --from ---- */

/* Stages whose recorded settings differ from the recipe's (finished or
 * started ones), not counting those to be redone. Returns -1 with e naming
 * every one of them and the keys. */
static int check_settings(const RecipePlan *pl, const int *redo, Err *e) {
    StrBuf b;
    sb_init(&b);
    int first = -1;
    for (int i = 0; i < pl->n; i++) {
        const RecipeStage *s = &pl->stages[i];
        if (redo[i]) continue;
        json_t *m = read_marker(s, ".done.json");
        int finished = m != NULL;
        if (!m) m = read_marker(s, ".started.json");
        if (!m) continue;
        const char *d = json_string_value(json_object_get(m, "digest"));
        if (!d || strcmp(d, s->digest)) {
            char *diff = recipe_settings_diff(json_object_get(m, "settings"), s->settings);
            sb_printf(&b, "\n  %s (%s): %s", s->name, finished ? "finished" : "started", *diff ? diff : "settings");
            free(diff);
            if (first < 0) first = i;
        }
        json_decref(m);
    }
    if (first < 0) {
        sb_free(&b);
        return 0;
    }
    err_set(e, ERR_ARG,
            "%s: these stages ran with other settings than the recipe's now:%s\nrestore the old values, or redo "
            "with --from %s (it redoes that stage and every stage after it that depends on it; their folders are "
            "moved aside to %s/.old/)",
            pl->path, b.s, pl->stages[first].name, pl->out);
    sb_free(&b);
    return -1;
}

/* --from NAME: a stage, or "train" / "bench" for every stage of the group. */
static int from_set(const RecipePlan *pl, const char *from, int *redo, Err *e) {
    int found = 0;
    size_t n = strlen(from);
    for (int i = 0; i < pl->n; i++) {
        const char *name = pl->stages[i].name;
        if (!strcmp(name, from) || (!strncmp(name, from, n) && name[n] == '/')) {
            recipe_dependents(pl, i, redo);
            found = 1;
        }
    }
    if (found) return 0;
    StrBuf b;
    sb_init(&b);
    for (int i = 0; i < pl->n; i++) sb_printf(&b, "%s%s", i ? ", " : "", pl->stages[i].name);
    err_set(e, ERR_ARG, "--from %s: no such stage (the stages: %s; train and bench name all of their kind)", from,
            b.s);
    sb_free(&b);
    return -1;
}

/* Moves the folders of the stages to be redone to OUT/.old/TIME/. */
static int move_aside(const RecipePlan *pl, const int *redo, Err *e) {
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    char *old = xasprintf("%s/.old/%s", pl->out, stamp);
    for (int k = 2; file_exists(old); k++) { /* two --from within a second */
        free(old);
        old = xasprintf("%s/.old/%s-%d", pl->out, stamp, k);
    }
    int rc = 0;
    for (int i = 0; !rc && i < pl->n; i++) {
        const RecipeStage *s = &pl->stages[i];
        if (!redo[i] || !file_exists(s->dir)) continue;
        char *to = path_join(old, s->name);
        char *slash = strrchr(to, '/');
        *slash = 0;
        rc = file_mkdirs(to, e);
        *slash = '/';
        if (!rc) rc = file_rename(s->dir, to, e);
        if (!rc) printf("aloe run: --from: moved %s aside to %s\n", s->dir, to);
        free(to);
    }
    free(old);
    return rc;
}

/* ---- the command ---- */

static int write_preset(const char *name, const char *out, Err *e) {
    const char *text = recipe_preset(name);
    if (!text) return err_set(e, ERR_ARG, "--preset %s: no such preset (expected paper or tiny)", name);
    if (!out) {
        fputs(text, stdout);
        return 0;
    }
    if (file_exists(out)) return err_set(e, ERR_ARG, "--out %s: the file exists (remove it or name another)", out);
    if (file_write_atomic(out, text, strlen(text), e)) return -1;
    fprintf(stderr, "aloe run: wrote the %s recipe to %s; edit it, then: aloe run %s --dry-run\n", name, out, out);
    return 0;
}

static int lock_out(const char *out, int *fd, Err *e) {
    char *p = path_join(out, ".lock");
    *fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    int rc = 0;
    if (*fd < 0) rc = err_set(e, ERR_IO, "%s: %s", p, strerror(errno));
    else if (flock(*fd, LOCK_EX | LOCK_NB))
        rc = err_set(e, ERR_ARG, "%s: another aloe run is working on this study (wait for it, or stop it)", out);
    free(p);
    return rc;
}

int cmd_run(int argc, char **argv) {
    const char *from = NULL, *preset = NULL, *preset_out = NULL;
    int dry = 0, quiet = 0;
    ArgSpec specs[] = {
        {"--dry-run", "-n", ARG_FLAG, &dry, NULL, "print the plan (command lines and a cost estimate) and stop", 0, 0},
        {"--from", NULL, ARG_STR, &from, "STAGE",
         "redo STAGE and every later stage that depends on it (their folders are moved to OUT/.old/)", 0, 0},
        {"--preset", NULL, ARG_STR, &preset, "NAME", "write a recipe instead: paper or tiny", 0, 0},
        {"--out", "-o", ARG_STR, &preset_out, "FILE", "with --preset: the file to write (default: stdout)", 0, 0},
        {"--quiet", "-q", ARG_FLAG, &quiet, NULL, "no progress bars from the stages", 0, 0},
        {NULL, NULL, 0, NULL, NULL, NULL, 0, 0}};
    ArgCommand cmd = {
        "run", "RECIPE.yaml [--dry-run] [--from STAGE] | --preset paper|tiny [--out FILE]",
        "Runs a whole ALOE study from one commented YAML recipe: persona pools, preference conversations, TRL "
        "export, training arms (base, SFT on preferred or rejected replies, DPO, SFT->DPO, a checkpoint or an "
        "endpoint trained elsewhere), the benchmark of every arm and one report comparing them. Each stage writes "
        "OUT/STAGE/ and is marked done when its commands succeed; rerunning the same command resumes (finished "
        "stages are skipped, an unfinished one resumes its own journal or checkpoint). A finished stage whose "
        "settings changed is refused unless --from redoes it. --preset writes a recipe to start from.",
        "aloe run --preset paper --out study.yaml && aloe run study.yaml --dry-run && aloe run study.yaml", 0, 1};
    char *pos[2];
    int npos = 0;
    Err e = {0};
    int rc = args_parse(&cmd, specs, argc, argv, pos, &npos, &e);
    if (rc) return rc > 0 ? 0 : cli_fail(&e);
    if (preset) {
        if (npos) {
            err_set(&e, ERR_ARG, "aloe run: give a RECIPE or --preset NAME, not both");
            return cli_fail(&e);
        }
        return write_preset(preset, preset_out, &e) ? cli_fail(&e) : 0;
    }
    if (!npos) {
        err_set(&e, ERR_ARG, "aloe run: a RECIPE file is required (aloe run --preset tiny --out tiny.yaml writes one)");
        return cli_fail(&e);
    }
    if (preset_out) {
        err_set(&e, ERR_ARG, "aloe run: --out goes with --preset (the study's folder is the recipe's out:)");
        return cli_fail(&e);
    }
    char *text;
    size_t len;
    if (file_read_text(pos[0], "a recipe", &text, &len, &e)) return cli_fail(&e);
    RecipeEnv env = {env_lookup, env_count, NULL, env_sha256};
    RecipePlan pl;
    rc = recipe_plan_text(pos[0], text, len, &env, &pl, &e);
    free(text);
    if (rc) return cli_fail(&e);
    int *redo = xcalloc((size_t)pl.n, sizeof *redo);
    int status = 0, lock = -1;
    if (from && from_set(&pl, from, redo, &e)) {
        status = cli_fail(&e);
        goto done;
    }
    if (dry) {
        char *s = recipe_plan_text_summary(&pl);
        fputs(s, stdout);
        free(s);
        for (int i = 0; i < pl.n; i++)
            if (is_done(&pl.stages[i]) && !redo[i]) printf("(%s is already done and will be skipped)\n", pl.stages[i].name);
        for (int i = 0; from && i < pl.n; i++)
            if (redo[i] && file_exists(pl.stages[i].dir))
                printf("(--from %s: %s would be moved aside to %s/.old/ and redone)\n", from, pl.stages[i].dir, pl.out);
        goto done;
    }
    if (file_mkdirs(pl.out, &e) || lock_out(pl.out, &lock, &e) || check_settings(&pl, redo, &e) ||
        (from && move_aside(&pl, redo, &e))) {
        status = cli_fail(&e);
        goto done;
    }
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    Cost sum = {0};
    for (int i = 0; i < pl.n && !status; i++) {
        const RecipeStage *s = &pl.stages[i];
        if (is_done(s)) {
            print_status(&pl, i, "done", 1, &sum);
            continue;
        }
        print_status(&pl, i, "running", 0, NULL);
        if (run_stage(&pl, i, quiet, &e)) {
            print_status(&pl, i, "stopped", 0, &sum);
            if (e.code == ERR_CANCELLED || g_stop) {
                fprintf(stderr, "aloe run: %s: interrupted; rerun the same command to resume\n", s->name);
                status = 130;
            } else {
                fprintf(stderr, "aloe run: error: %s\naloe run: the finished work is kept: fix the cause and rerun "
                                "the same command to resume\n", e.msg);
                status = 1;
            }
            break;
        }
        print_status(&pl, i, "done", 1, &sum);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (!status)
        printf("study done: %ld requests, %ld tokens (%ld prompt + %ld completion); report: %s/report/report.md\n",
               sum.requests, sum.prompt + sum.completion, sum.prompt, sum.completion, pl.out);
done:
    if (lock >= 0) close(lock);
    free(redo);
    recipe_plan_free(&pl);
    return status;
}
