/* aloe bench: wiring of the ALOE benchmark (aloe/bench.h) to flags, files,
 * endpoints, the request cache, progress and Ctrl-C. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/bench.h"
#include "aloe/invocations.h"
#include "aloe/journal.h"
#include "aloe/prompts.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/progress.h"
#include "base/sha256.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "formats/jsonl.h"
#include "llm/cache.h"
#include "llm/open.h"

/* Set by the first Ctrl-C: no new conversations, requests in flight are
 * aborted. The second Ctrl-C kills the process (SA_RESETHAND). */
static atomic_int interrupted;

static void on_sigint(int sig) {
    (void)sig;
    atomic_store(&interrupted, 1);
}

typedef struct {
    const char *model, *user_model, *judge_model, *profiles, *personalities, *out;
    const char *base_url, *user_base_url, *judge_base_url;
    const char *key_env, *user_key_env, *judge_key_env;
    const char *prompts_file;
    const char *chat_template, *user_chat_template, *judge_chat_template; /* local models */
    const char *protocol, *system_prompt, *system_prompt_file;
    int per_profile, turns, threads, max_tokens, user_max_tokens, judge_max_tokens, retries, quiet, no_cache;
    int skip_failed;
    long seed;
    double temperature, timeout;
} Opts;

/* The base URL a role will use, as llm_open resolves it (for the records). */
static const char *resolve_base(const char *role_url, const char *url) {
    if (role_url && *role_url) return role_url;
    if (url && *url) return url;
    const char *env = getenv("OPENAI_BASE_URL");
    return env && *env ? env : LLM_DEFAULT_BASE_URL;
}

/* A URL as results.json may show it: user:password@ and a query string
 * (where some gateways take keys) become "***". Caller frees. */
static char *url_for_record(const char *url) {
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    const char *end = host + strcspn(host, "/?#");
    const char *at = NULL;
    for (const char *p = host; p < end; p++)
        if (*p == '@') at = p;
    StrBuf b;
    sb_init(&b);
    sb_appendn(&b, url, (size_t)(host - url));
    if (at) {
        sb_append(&b, "***");
        host = at;
    }
    const char *q = strchr(host, '?');
    if (q) {
        sb_appendn(&b, host, (size_t)(q - host));
        sb_append(&b, "?***");
    } else {
        sb_append(&b, host);
    }
    return sb_take(&b);
}

static json_t *endpoint_json(const char *url, const char *key_env) {
    char *shown = url_for_record(url);
    json_t *j = json_pack("{s:s, s:s}", "base_url", shown, "api_key_env", key_env);
    free(shown);
    return j;
}

/* Opens one role's backend; the key comes only from the environment. */
static LlmBackend *open_role(const char *role, const char *model, const char *base, const char *key_env,
                             int key_env_given, const char *chat_template, const Opts *o, LlmOpener *opener,
                             Err *e) {
    const char *key = getenv(key_env);
    if (key_env_given && !(key && *key))
        return err_set(e, ERR_ARG, "%s: the API key variable $%s is not set", role, key_env), NULL;
    LlmRoleConfig cfg = {.role = role, .model = model, .base_url = base, .api_key = key, .api_key_env = key_env,
                         .timeout_s = o->timeout,
                         .max_retries = o->retries, .cancel = &interrupted, .chat_template = chat_template};
    return llm_opener_open(opener, &cfg, e);
}

static int file_digest(const char *path, char hex[65], Err *e) {
    char *data;
    size_t len;
    if (file_read_all(path, &data, &len, e)) return -1;
    sha256_hex(data, len, hex);
    free(data);
    return 0;
}

/* The settings a run is resumed only with (run.json). Endpoints, -j, time-outs,
 * the cache and --skip-failed may change between sessions: they do not change
 * the answers a benchmark asks for. c holds the token limits in effect. */
static json_t *run_settings(const Opts *o, const BenchConfig *c, Protocol proto, const Prompts *prompts, Err *e) {
    char hp[65], hq[65], hprompts[65];
    if (file_digest(o->profiles, hp, e) || file_digest(o->personalities, hq, e)) return NULL;
    Sha256 s;
    sha256_init(&s);
    for (int i = 0; i < PROMPT__COUNT; i++) {
        /* Prompts added with the protocols are left out while empty (not
         * sent), so a run made before them keeps its digest and resumes. */
        int added = i == PROMPT_USER_REPLY_SUFFIX || i == PROMPT_RESPONDER_HINT || i == PROMPT_RESPONDER_SUFFIX;
        if (added && !prompts->text[i][0]) continue;
        sha256_update(&s, prompts->text[i], strlen(prompts->text[i]) + 1);
    }
    uint8_t d[32];
    sha256_final(&s, d);
    sha256_to_hex(d, hprompts);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:I, s:f, s:i, s:i, s:i, s:s, s:i}", "protocol",
                          protocol_name(proto), "model", o->model, "user_model", o->user_model, "judge_model",
                          o->judge_model, "profiles_sha256", hp, "personalities_sha256", hq,
                          "personalities_per_profile", o->per_profile, "turns", o->turns, "seed", (json_int_t)o->seed,
                          "temperature", o->temperature, "max_tokens", c->max_tokens, "user_max_tokens",
                          c->user_max_tokens, "judge_max_tokens", c->judge_max_tokens, "prompts_sha256", hprompts,
                          "judge_attempts", 3);
    /* the evaluated model's system prompt when a flag set it (prompts_sha256 covers it too) */
    if (o->system_prompt || o->system_prompt_file)
        json_object_set_new(j, "system_prompt", json_string(prompts->text[PROMPT_EVALUATED]));
    return j;
}

/* What a run.json written before a setting existed implies for it: runs
 * before --protocol used the rubric protocol, and their one --max-tokens
 * limited every role. */
static void settings_implied(const json_t *settings, json_t **implied, json_t **why) {
    json_t *mt = json_object_get(settings, "max_tokens");
    *implied = json_pack("{s:s, s:O, s:O}", "protocol", "rubric", "user_max_tokens", mt, "judge_max_tokens", mt);
    const char *tok = "not recorded: before the per-role limits, --max-tokens limited every role";
    *why = json_pack("{s:s, s:s, s:s}", "protocol",
                     "not recorded: runs made before --protocol used the rubric protocol; resume such a run with "
                     "--protocol rubric",
                     "user_max_tokens", tok, "judge_max_tokens", tok);
}

/* Chat templates change what local models see: part of the settings when given. */
static void add_templates(json_t *settings, const Opts *o) {
    if (o->chat_template) json_object_set_new(settings, "chat_template", json_string(o->chat_template));
    if (o->user_chat_template) json_object_set_new(settings, "user_chat_template", json_string(o->user_chat_template));
    if (o->judge_chat_template)
        json_object_set_new(settings, "judge_chat_template", json_string(o->judge_chat_template));
}

static json_t *stats_json(LlmBackend *b) {
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "requests", (json_int_t)atomic_load(&b->stats.requests),
                     "cache_hits", (json_int_t)atomic_load(&b->stats.cache_hits), "retries",
                     (json_int_t)atomic_load(&b->stats.retries), "errors", (json_int_t)atomic_load(&b->stats.errors),
                     "prompt_tokens", (json_int_t)atomic_load(&b->stats.prompt_tokens), "completion_tokens",
                     (json_int_t)atomic_load(&b->stats.completion_tokens), "cached_prompt_tokens",
                     (json_int_t)atomic_load(&b->stats.cached_prompt_tokens));
}

static json_t *requests_json(const BenchConfig *c) {
    return json_pack("{s:o, s:o, s:o}", "model", stats_json(c->model), "user", stats_json(c->user), "judge",
                     stats_json(c->judge));
}

/* This invocation's line of DIR/invocations.json, rewritten after every
 * finished conversation so that a killed invocation is still counted. */
typedef struct {
    Invocations inv;
    const BenchConfig *c;
    double t0;
    long saved; /* conversations in the last save: saves may arrive out of order */
    pthread_mutex_t lock;
} Accounting;

static void on_saved(void *ctx, long done_now) {
    Accounting *a = ctx;
    pthread_mutex_lock(&a->lock);
    if (done_now > a->saved) a->saved = done_now;
    Err e = {0};
    if (invocations_save(&a->inv, now_seconds() - a->t0, a->saved, requests_json(a->c), NULL, &e))
        log_warn("%s", e.msg); /* the benchmark goes on; the end of the run writes it again */
    pthread_mutex_unlock(&a->lock);
}

/* Everything results.json records beyond the measurements. */
static void add_run_info(json_t *r, const Opts *o, const BenchConfig *c, json_t *settings, double wall,
                         const Invocations *inv) {
    json_object_set_new(r, "models",
                        json_pack("{s:s, s:s, s:s}", "model", o->model, "user", o->user_model, "judge", o->judge_model));
    json_object_set_new(
        r, "endpoints",
        json_pack("{s:o, s:o, s:o}", "model", endpoint_json(resolve_base(o->base_url, NULL), o->key_env), "user",
                  endpoint_json(resolve_base(o->user_base_url, o->base_url),
                                o->user_key_env ? o->user_key_env : o->key_env),
                  "judge",
                  endpoint_json(resolve_base(o->judge_base_url, o->base_url),
                                o->judge_key_env ? o->judge_key_env : o->key_env)));
    json_t *s = json_deep_copy(settings);
    json_object_set_new(s, "profiles", json_string(o->profiles));
    json_object_set_new(s, "personalities", json_string(o->personalities));
    json_object_set_new(s, "threads", json_integer(o->threads));
    json_object_set_new(s, "timeout_s", json_real(o->timeout));
    json_object_set_new(s, "retries", json_integer(o->retries));
    json_object_set_new(s, "cache", json_boolean(!o->no_cache));
    json_object_set_new(s, "skip_failed", json_boolean(o->skip_failed));
    json_object_set_new(r, "settings", s);
    json_t *pr = json_object();
    static const PromptId used[] = {PROMPT_USER_SIMULATOR, PROMPT_USER_FIRST_TURN, PROMPT_USER_REPLY_SUFFIX,
                                    PROMPT_EVALUATED, PROMPT_JUDGE_SCORE, PROMPT_JUDGE_REMINDER};
    for (size_t i = 0; i < sizeof used / sizeof *used; i++)
        json_object_set_new(pr, prompt_key(used[i]), json_string(c->prompts->text[used[i]]));
    json_object_set_new(r, "prompts", pr);
    /* This invocation; "invocations" lists every one (a resumed run's
     * earlier ones too) and "totals" sums them. */
    json_object_set_new(r, "session",
                        json_pack("{s:O, s:f, s:o}", "started", json_object_get(inv->current, "started"), "wall_s",
                                  wall, "requests", requests_json(c)));
    json_object_set_new(r, "invocations", json_deep_copy(inv->list));
    json_object_set_new(r, "totals", invocations_totals(inv->list));
}

static const char *flag_help_key =
    "name of the environment variable holding the API key (keys are never read from flags or written out)";

int cmd_bench(int argc, char **argv) {
    /* The token limits start at the paper's (the default protocol's), so --help shows them. */
    Opts o = {.per_profile = 5, .turns = 10, .threads = 16, .seed = 0, .temperature = -1, .max_tokens = 2048,
              .user_max_tokens = 300, .judge_max_tokens = 300, .timeout = 300, .retries = 8,
              .key_env = "OPENAI_API_KEY", .protocol = "paper"};
    ArgSpec specs[] = {
        {"--model", NULL, ARG_STR, &o.model, "M", "the evaluated model", 1, 0},
        {"--user-model", NULL, ARG_STR, &o.user_model, "U", "the user simulator", 1, 0},
        {"--judge-model", NULL, ARG_STR, &o.judge_model, "J", "the judge", 1, 0},
        {"--profiles", NULL, ARG_STR, &o.profiles, "F", "JSONL of profile strings", 1, 0},
        {"--personalities", NULL, ARG_STR, &o.personalities, "F", "JSONL of personality strings", 1, 0},
        {"--out", NULL, ARG_STR, &o.out, "DIR", "output directory (resumable)", 1, 0},
        {"--personalities-per-profile", NULL, ARG_INT, &o.per_profile, "K",
         "pair each profile with the first K personalities", 0, 0},
        {"--turns", NULL, ARG_INT, &o.turns, "N", "turns per conversation", 0, 0},
        {"--jobs", "-j", ARG_INT, &o.threads, "N", "requests in flight at most (up to 2N conversations run at once)", 0, 0},
        {"--seed", NULL, ARG_LONG, &o.seed, "S", "seed of every request's sampling seed", 0, 0},
        {"--base-url", NULL, ARG_STR, &o.base_url, "URL", "endpoint of every role (default $OPENAI_BASE_URL)", 0, 0},
        {"--user-base-url", NULL, ARG_STR, &o.user_base_url, "URL", "endpoint of the user simulator", 0, 0},
        {"--judge-base-url", NULL, ARG_STR, &o.judge_base_url, "URL", "endpoint of the judge", 0, 0},
        {"--api-key-env", NULL, ARG_STR, &o.key_env, "NAME", flag_help_key, 0, 0},
        {"--user-api-key-env", NULL, ARG_STR, &o.user_key_env, "NAME", "the same for the user simulator", 0, 0},
        {"--judge-api-key-env", NULL, ARG_STR, &o.judge_key_env, "NAME", "the same for the judge", 0, 0},
        {"--temperature", NULL, ARG_DOUBLE, &o.temperature, "T", "sampling temperature (negative: server default)",
         0, 0},
        {"--protocol", NULL, ARG_STR, &o.protocol, "P",
         "paper (the ALOE paper's reference run) or rubric (aloe's earlier prompts and limits)", 0, 0},
        {"--system-prompt", NULL, ARG_STR, &o.system_prompt, "TEXT",
         "system prompt of the evaluated model (paper: none; rubric: a three-sentence chat prompt)", 0, 0},
        {"--system-prompt-file", NULL, ARG_STR, &o.system_prompt_file, "FILE", "the same, read from a file", 0, 0},
        {"--max-tokens", NULL, ARG_INT, &o.max_tokens, "N",
         "the evaluated model's reply limit, 0 = server default (rubric: default 0, and it limits every role)", 0, 0},
        {"--user-max-tokens", NULL, ARG_INT, &o.user_max_tokens, "N",
         "the user simulator's reply limit, 0 = server default (rubric: default --max-tokens)", 0, 0},
        {"--judge-max-tokens", NULL, ARG_INT, &o.judge_max_tokens, "N",
         "the judge's reply limit, 0 = server default (rubric: default --max-tokens)", 0, 0},
        {"--skip-failed", NULL, ARG_FLAG, &o.skip_failed, NULL,
         "skip (and list) a conversation whose request fails for good, e.g. HTTP 400 content filter, instead of "
         "stopping; a rerun tries it again",
         0, 0},
        {"--prompts", NULL, ARG_STR, &o.prompts_file, "FILE", "JSON object overriding role prompts", 0, 0},
        {"--timeout", NULL, ARG_DOUBLE, &o.timeout, "S", "per-request time-out in seconds", 0, 0},
        {"--retries", NULL, ARG_INT, &o.retries, "N", "retries of a failed request (429, 5xx, time-outs)", 0, 0},
        {"--chat-template", NULL, ARG_STR, &o.chat_template, "NAME",
         "chat template of a local evaluated model, overriding its own: a built-in family (chatml, qwen2.5, "
         "qwen3, llama3, llama3.1, llama3.2, gemma, phi3, mistral-nemo) or a .jinja file", 0, 0},
        {"--user-chat-template", NULL, ARG_STR, &o.user_chat_template, "NAME", "the same for the user simulator",
         0, 0},
        {"--judge-chat-template", NULL, ARG_STR, &o.judge_chat_template, "NAME", "the same for the judge", 0, 0},
        {"--quiet", "-q", ARG_FLAG, &o.quiet, NULL, "no progress output", 0, 0},
        {"--no-cache", NULL, ARG_FLAG, &o.no_cache, NULL, "do not keep answers in DIR/requests.sqlite", 0, 0},
        {NULL, NULL, 0, NULL, NULL, NULL, 0, 0}};
    ArgCommand cmd = {
        "bench", "--model M --user-model U --judge-model J --profiles F --personalities F --out DIR [options]",
        "The ALOE benchmark: every profile paired with each of the first K personalities, one conversation of N "
        "turns per persona with a user simulator; after each turn the judge scores the reply 1-5. Writes "
        "DIR/results.json (AL(k) with 95% t-intervals, AVG, IR, R2, N-IR, N-R2), DIR/dialogues.jsonl, "
        "DIR/report.md and DIR/al.svg. Interrupted or killed, the same command resumes where it stopped. "
        "--protocol paper (the default) runs the paper's evaluation: no system prompt for the evaluated model, "
        "the simulator's instructions as its first message, a judge asked for the score only.",
        "aloe bench --model my-model --user-model gpt-4o --judge-model gpt-4o --profiles profile_eval.jsonl "
        "--personalities personality_eval.jsonl -j 64 --out runs/my-model",
        0, 0};
    Err e = {0};
    int rc = args_parse_flags(&cmd, specs, argc, argv, &e);
    if (rc) return rc > 0 ? 0 : cli_fail(&e);
    if (o.quiet) log_set_level(LOG_WARN);

    Protocol proto;
    if (protocol_parse(o.protocol, &proto, &e)) return cli_fail(&e);
    if (o.system_prompt && o.system_prompt_file) {
        err_set(&e, ERR_ARG, "--system-prompt and --system-prompt-file: give one of them, not both");
        return cli_fail(&e);
    }
    static const char *const token_flags[] = {"--max-tokens", "--user-max-tokens", "--judge-max-tokens"};
    for (int i = 0; i < 3; i++) {
        int v = *(int *)args_find(specs, token_flags[i])->dest;
        if (v < 0) {
            err_set(&e, ERR_ARG, "%s: expected 0 (server default) or more, got %d", token_flags[i], v);
            return cli_fail(&e);
        }
    }
    if (proto == PROTOCOL_RUBRIC) { /* today's defaults: one limit, the server's unless given, for every role */
        if (!args_find(specs, "--max-tokens")->seen) o.max_tokens = 0;
        if (!args_find(specs, "--user-max-tokens")->seen) o.user_max_tokens = o.max_tokens;
        if (!args_find(specs, "--judge-max-tokens")->seen) o.judge_max_tokens = o.max_tokens;
    }
    StrList profiles = {0}, personalities = {0};
    Prompts prompts;
    prompts_init(&prompts, proto);
    /* The paper's reminder after each reply is its data generation's; its
     * evaluation (eval_own.py) shows the simulator the evaluated model's
     * reply as written. --prompts may still set one. */
    prompts.text[PROMPT_USER_REPLY_SUFFIX][0] = 0;
    LlmCache *cache = NULL;
    LlmBackend *model = NULL, *user = NULL, *judge = NULL;
    Journal *journal = NULL;
    json_t *settings = NULL;
    Accounting acc = {0};
    pthread_mutex_init(&acc.lock, NULL);
    char *path = NULL;
    int status = 1;
    if (jsonl_read_strings(o.profiles, &profiles, &e) || jsonl_read_strings(o.personalities, &personalities, &e) ||
        (o.prompts_file && prompts_load(&prompts, o.prompts_file, &e))) {
        status = cli_fail(&e);
        goto done;
    }
    if (o.system_prompt) {
        free(prompts.text[PROMPT_EVALUATED]);
        prompts.text[PROMPT_EVALUATED] = xstrdup(o.system_prompt);
    } else if (o.system_prompt_file) {
        char *text;
        size_t len;
        if (file_read_text(o.system_prompt_file, "a system prompt", &text, &len, &e)) {
            status = cli_fail(&e);
            goto done;
        }
        while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) text[--len] = 0; /* the editor's last newline */
        free(prompts.text[PROMPT_EVALUATED]);
        prompts.text[PROMPT_EVALUATED] = text;
    }
    BenchConfig c = bench_config_default();
    c.prompts = &prompts;
    c.profiles = (const char *const *)profiles.items;
    c.n_profiles = profiles.n;
    c.personalities = (const char *const *)personalities.items;
    c.n_personalities = personalities.n;
    c.per_profile = o.per_profile;
    c.turns = o.turns;
    c.threads = o.threads;
    c.seed = (uint64_t)o.seed;
    c.temperature = o.temperature;
    c.max_tokens = o.max_tokens;
    c.user_max_tokens = o.user_max_tokens;
    c.judge_max_tokens = o.judge_max_tokens;
    c.skip_failed = o.skip_failed;
    c.stop = &interrupted;
    if (bench_config_check(&c, &e)) {
        if (strstr(e.msg, "too few personalities")) err_wrap(&e, "%s", o.personalities);
        status = cli_fail(&e);
        goto done;
    }
    if ((settings = run_settings(&o, &c, proto, &prompts, &e))) add_templates(settings, &o);
    if (!settings || file_mkdirs(o.out, &e)) {
        status = cli_fail(&e);
        goto done;
    }
    path = path_join(o.out, "run.json");
    json_t *implied, *implied_why;
    settings_implied(settings, &implied, &implied_why);
    rc = bench_check_settings_compat(path, settings, implied, implied_why, &e);
    json_decref(implied);
    json_decref(implied_why);
    if (rc) {
        status = cli_fail(&e);
        goto done;
    }
    free(path);
    path = NULL;
    if (!o.no_cache) {
        path = path_join(o.out, "requests.sqlite");
        if (llm_cache_open(path, &cache, &e)) {
            status = cli_fail(&e);
            goto done;
        }
        free(path);
        path = NULL;
    }
    const ArgSpec *ue = args_find(specs, "--user-api-key-env"), *je = args_find(specs, "--judge-api-key-env");
    /* Roles naming the same local model share one loaded copy. */
    LlmOpener opener;
    llm_opener_init(&opener, cache);
    model = open_role("model", o.model, o.base_url, o.key_env, args_find(specs, "--api-key-env")->seen,
                      o.chat_template, &o, &opener, &e);
    if (model)
        user = open_role("user", o.user_model, o.user_base_url ? o.user_base_url : o.base_url,
                         o.user_key_env ? o.user_key_env : o.key_env, ue->seen, o.user_chat_template, &o, &opener,
                         &e);
    if (user)
        judge = open_role("judge", o.judge_model, o.judge_base_url ? o.judge_base_url : o.base_url,
                          o.judge_key_env ? o.judge_key_env : o.key_env, je->seen, o.judge_chat_template, &o,
                          &opener, &e);
    llm_opener_done(&opener);
    if (!judge) {
        status = cli_fail(&e);
        goto done;
    }
    c.model = model;
    c.user = user;
    c.judge = judge;
    path = path_join(o.out, "dialogues.jsonl");
    if (!(journal = journal_open(path, "id", &e)) || bench_check_journal(&c, journal, path, &e)) {
        status = cli_fail(&e);
        goto done;
    }
    free(path);
    path = path_join(o.out, "invocations.json");
    if (invocations_open(&acc.inv, path, &e)) {
        status = cli_fail(&e);
        goto done;
    }
    acc.c = &c;
    c.on_saved = on_saved;
    c.on_saved_ctx = &acc;

    Progress prog;
    long total_turns, done_turns;
    bench_progress_counts(&c, journal, &total_turns, &done_turns);
    progress_start(&prog, "bench", total_turns, done_turns, o.quiet);
    LlmBackend *roles[3] = {model, user, judge};
    for (int i = 0; i < 3; i++) {
        roles[i]->live_requests = &prog.requests;
        roles[i]->live_tokens = &prog.tokens;
        roles[i]->live_retries = &prog.retries;
        roles[i]->live_errors = &prog.errors;
    }
    c.progress = &prog;
    struct sigaction sa = {0}, old_sa;
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);
    double t0 = now_seconds();
    acc.t0 = t0;
    BenchOutcome out;
    Err run_err = {0};
    int run_rc = bench_run(&c, journal, &out, &run_err);
    double wall = now_seconds() - t0;
    char *exit_reason = run_rc == 0                       ? xstrdup("complete")
                        : run_err.code == ERR_CANCELLED ? xstrdup("interrupted")
                                                        : xasprintf("error: %s", run_err.msg);
    pthread_mutex_lock(&acc.lock);
    int inv_rc = invocations_save(&acc.inv, wall, out.done_now, requests_json(&c), exit_reason, &e);
    pthread_mutex_unlock(&acc.lock);
    free(exit_reason);
    sigaction(SIGINT, &old_sa, NULL);
    progress_stop(&prog);
    for (int i = 0; i < 3; i++)
        roles[i]->live_requests = roles[i]->live_tokens = roles[i]->live_retries = roles[i]->live_errors = NULL;

    /* Results for what is done, whatever happened. */
    json_t *res = bench_results(&c, journal);
    bench_results_add_skipped(res, &out);
    add_run_info(res, &o, &c, settings, wall, &acc.inv);
    if (inv_rc || bench_write_outputs(o.out, res, &e)) {
        json_decref(res);
        bench_outcome_free(&out);
        status = cli_fail(&e);
        goto done;
    }
    long done_n = out.done_before + out.done_now;
    if (run_rc) {
        /* Ctrl-C is no error: the run stops as asked and resumes later */
        fprintf(stderr,
                "aloe: %s%s\naloe: %ld of %ld conversations done; partial results in %s/results.json. "
                "Run the same command again to resume.\n",
                run_err.code == ERR_CANCELLED ? "" : "error: ", run_err.code == ERR_CANCELLED ? "interrupted" : run_err.msg,
                done_n, out.total, o.out);
        if (!o.skip_failed && bench_failure_skippable(&run_err))
            fprintf(stderr, "aloe: if this request fails the same way every time (e.g. HTTP 400 from a content "
                            "filter), --skip-failed skips its conversation, lists it in results.json and goes on.\n");
        status = run_err.code == ERR_CANCELLED ? 130 : 1;
    } else if (out.skipped > 0 && done_n == 0) {
        /* Skipping is for the odd conversation: with none finished the run
         * measured nothing, which points at the endpoint or the settings
         * (e.g. a --max-tokens the server refuses). As aloe dialogues. */
        const char *first = json_string_value(json_object_get(json_array_get(out.skipped_list, 0), "error"));
        fprintf(stderr,
                "aloe: error: every conversation failed (%ld skipped); the first: %s\naloe: they are listed in "
                "%s/results.json; run the same command again to retry them.\n",
                out.skipped, first ? first : "(no message)", o.out);
        status = 1;
    } else {
        printf("ALOE benchmark of %s: %ld conversations x %d turns", o.model, out.total, c.turns);
        if (out.skipped) printf(", %ld skipped", out.skipped);
        printf("\n");
        json_t *t;
        size_t i;
        printf("AL(k):");
        json_array_foreach(json_object_get(res, "turns"), i, t) {
            json_t *al = json_object_get(t, "al");
            if (json_is_number(al))
                printf(" %.2f", json_number_value(al));
            else
                printf(" -");
        }
        json_t *judge_counts = json_object_get(res, "judge");
        /* An undefined metric (no valid scores, one turn) shows as "n/a", never as 0. */
        static const char *keys[] = {"avg", "ir", "r2", "n_ir"}, *labels[] = {"AVG", "IR", "R2", "N-IR"};
        printf("\n");
        for (int k = 0; k < 4; k++) {
            json_t *v = json_object_get(res, keys[k]);
            if (json_is_number(v))
                printf("%s %.4f  ", labels[k], json_number_value(v));
            else
                printf("%s n/a  ", labels[k]);
        }
        printf("(judge: %lld retried, %lld invalid)\n",
               (long long)json_integer_value(json_object_get(judge_counts, "retried")),
               (long long)json_integer_value(json_object_get(judge_counts, "invalid")));
        long long judged = (long long)json_integer_value(json_object_get(judge_counts, "judged_turns"));
        if (judged > 0 && judged == (long long)json_integer_value(json_object_get(judge_counts, "invalid")))
            log_warn("no judge reply carried a valid score (a reply that is just the score 1-5, or a line \"Score: N\"; "
                     "see aloe/score.h): check the judge model and any --prompts override; the raw replies are in "
                     "%s/dialogues.jsonl", o.out);
        if (out.skipped) {
            printf("skipped: %ld conversation%s failed for good and %s left out of AL (results.json \"skipped\"); "
                   "run the same command again to retry %s\n",
                   out.skipped, out.skipped == 1 ? "" : "s", out.skipped == 1 ? "is" : "are",
                   out.skipped == 1 ? "it" : "them");
            size_t k;
            json_t *sk;
            json_array_foreach(out.skipped_list, k, sk)
                fprintf(stderr, "aloe: skipped %s: %s\n", json_string_value(json_object_get(sk, "id")),
                        json_string_value(json_object_get(sk, "error")));
        }
        printf("results: %s/results.json  report: %s/report.md  chart: %s/al.svg\n", o.out, o.out, o.out);
        status = 0;
    }
    json_decref(res);
    bench_outcome_free(&out);

done:
    invocations_close(&acc.inv);
    pthread_mutex_destroy(&acc.lock);
    journal_close(journal);
    llm_free(model);
    llm_free(user);
    llm_free(judge);
    llm_cache_close(cache);
    json_decref(settings);
    free(path);
    prompts_free(&prompts);
    strlist_free(&profiles);
    strlist_free(&personalities);
    return status;
}
