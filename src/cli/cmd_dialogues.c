/* aloe dialogues: preference conversation trees (wiring only; see aloe/dialogues.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/bench.h"
#include "aloe/dialogues.h"
#include "aloe/personas.h"
#include "base/log.h"
#include "base/mem.h"
#include "cli/commands.h"
#include "cli/gen_roles.h"
#include "llm/cache.h"

static const ArgCommand CMD = {
    "dialogues",
    "--profiles F --personalities F --user-model M --inducer-model M --responder-model M --judge-model M "
    "--out FILE.jsonl [options]",
    "Generates multi-turn preference conversation trees. For each persona (each profile --passes times with a "
    "random personality, or the first --num of that sequence) a user simulator role-plays the persona for "
    "--turns turns; each turn an inducer infers what the user has revealed, a responder given that hint and "
    "one without it reply, and a judge who knows the persona picks the preferred reply, asked in both orders "
    "(A/B swapped). A disagreement is recorded in meta (and the pair dropped with --drop-disagreements). The "
    "conversation goes on with one of the two replies at random (`chosen`). Output: one JSON tree per line "
    "(profile, personality, conversations[] with user, assistant.preferred/rejected, chosen, inferred_profile, "
    "inferred_personality; meta). --protocol paper (the default) follows the ALOE paper's reference run: the "
    "user simulator's instructions are its first message, the inducer is given the true persona and extracts "
    "what the user revealed, the hint is appended to the hinted responder's message, no system prompts, the "
    "pairwise judge sees the persona and the two replies, every role at most 300 new tokens; --protocol rubric "
    "is aloe's earlier variant (system prompts, an inducer that guesses, judges that give reasons). "
    "FILE.summary.json holds the counts, the judge's agreement across the two orders and its position bias, "
    "and the conversations skipped with --skip-failed. Requests are cached in FILE.requests.sqlite; rerun the "
    "same command to resume (skipped conversations are tried again).",
    "aloe dialogues --profiles profiles.jsonl --personalities personalities.jsonl --passes 10 "
    "--user-model gpt-4o-mini --inducer-model gpt-4o-mini --responder-model llama3 --judge-model gpt-4o "
    "-j 32 --out trees.jsonl",
    0, 0};

/* The run's summary on stdout; the skipped conversations also on stderr,
 * so that they are seen even when stdout goes to a file. */
static void print_summary(const char *out, const DialoguesConfig *dc, const DialoguesResult *res) {
    printf("%s: %ld of %ld conversations of %d turns (%ld resumed from an earlier run); %ld judge disagreements "
           "(%ld with no verdict in either order)%s\n",
           out, res->done, res->total, dc->turns, res->done_before, res->disagreements, res->undecided,
           dc->drop_disagreements ? " (pairs dropped)" : " (pairs kept, marked in meta)");
    printf("protocol %s, max_tokens %d; %ld conversation(s) skipped after failing%s\n", protocol_name(dc->protocol),
           dc->params.max_tokens, res->skipped, res->skipped ? " (listed below; a rerun tries them again)" : "");
    const JudgeOrderCounts *j = &res->judges;
    if (j->both_verdicts)
        printf("judge across the two orders, over %ld turns with a verdict in both: agreement %.3f (%ld turns chose "
               "the same reply), position bias %.3f (%ld of %ld verdicts chose the reply shown first; 0.5 = none)\n",
               j->both_verdicts, judge_agreement_rate(j), j->agreements, judge_position_bias_rate(j),
               j->first_position_wins, 2 * j->both_verdicts);
    else
        printf("judge across the two orders: no turn had a verdict in both orders\n");
    json_t *sk = json_object_get(res->summary, "skipped"), *x;
    size_t i;
    if (json_array_size(sk))
        fprintf(stderr, "aloe dialogues: %zu conversation(s) skipped after failing (rerun to try them again):\n",
                json_array_size(sk));
    json_array_foreach(sk, i, x) {
        fprintf(stdout, "skipped %s: %s\n", json_string_value(json_object_get(x, "id")),
                json_string_value(json_object_get(x, "error")));
        fprintf(stderr, "  %s: %s\n", json_string_value(json_object_get(x, "id")),
                json_string_value(json_object_get(x, "error")));
    }
    char *sp = personas_sidecar_path(out, ".summary.json");
    printf("summary with definitions: %s\n", sp);
    free(sp);
}

enum { R_USER, R_INDUCER, R_RESPONDER, R_HINTED, R_PLAIN, R_JUDGE, R__COUNT };

int cmd_dialogues(int argc, char **argv) {
    const char *profiles_path = NULL, *personalities_path = NULL, *out = NULL, *prompts_path = NULL,
               *cache_path = NULL, *protocol_str = "paper";
    int passes = 1, quiet = 0, max_tokens = dialogues_default_max_tokens(PROTOCOL_PAPER); /* shown by --help */
    long num = 0, seed = 0;
    double temperature = -1;
    DialoguesConfig dc;
    dialogues_config_default(&dc);
    GenRole roles[R__COUNT] = {
        {.name = "user", .help = "the user simulator"},
        {.name = "inducer", .help = "the inducer (infers the revealed persona)"},
        {.name = "responder", .help = "both responders"},
        {.name = "hinted", .help = "the responder given the inferred persona (default: --responder-model)"},
        {.name = "plain", .help = "the responder without it (default: --responder-model)"},
        {.name = "judge", .help = "the pairwise judge"},
    };
    GenConn conn = {.timeout_s = 300, .retries = 8};
    ArgSpec specs[64] = {
        {"--profiles", NULL, ARG_STR, &profiles_path, "FILE", "profiles, JSONL of strings", 1, 0},
        {"--personalities", NULL, ARG_STR, &personalities_path, "FILE", "personalities, JSONL of strings", 1, 0},
        {"--turns", NULL, ARG_INT, &dc.turns, "N", "turns per conversation", 0, 0},
        {"--passes", NULL, ARG_INT, &passes, "P", "each profile P times with a random personality", 0, 0},
        {"--num", NULL, ARG_LONG, &num, "N", "the first N conversations of that sequence instead", 0, 0},
        {"--seed", NULL, ARG_LONG, &seed, "S", "seed of every random choice", 0, 0},
        {"--jobs", "-j", ARG_INT, &dc.jobs, "N", "conversations in flight", 0, 0},
        {"--protocol", NULL, ARG_STR, &protocol_str, "paper|rubric",
         "default prompts and token limit: the paper's reference run, or aloe's earlier rubric", 0, 0},
        {"--skip-failed", NULL, ARG_FLAG, &dc.skip_failed, NULL,
         "skip a conversation whose request fails for good (e.g. HTTP 400 from a content filter): counted and "
         "listed in the summary; a rerun tries it again (default: stop)", 0, 0},
        {"--drop-disagreements", NULL, ARG_FLAG, &dc.drop_disagreements, NULL,
         "drop the pair of a turn whose two judge orders disagree", 0, 0},
        {"--judge-retries", NULL, ARG_INT, &dc.judge_retries, "N", "reminders after a judge reply without a verdict",
         0, 0},
        {"--temperature", NULL, ARG_DOUBLE, &temperature, "T", "temperature of every role (< 0: server default)", 0,
         0},
        {"--max-tokens", NULL, ARG_INT, &max_tokens, "N",
         "max_tokens of every role (0: the server's; under --protocol rubric the default is 0)", 0, 0},
        {"--prompts", NULL, ARG_STR, &prompts_path, "FILE", "JSON object overriding role prompts", 0, 0},
        {"--out", "-o", ARG_STR, &out, "FILE.jsonl", "the trees", 1, 0},
        {"--cache", NULL, ARG_STR, &cache_path, "FILE", "request cache (default: FILE.requests.sqlite)", 0, 0},
        {"--quiet", "-q", ARG_FLAG, &quiet, NULL, "no progress bar", 0, 0},
    };
    int k = 0;
    while (specs[k].name) k++;
    k += genrole_specs(roles, R__COUNT, specs + k, NULL);
    k += genrole_conn_specs(&conn, specs + k);

    Err e = {0};
    int rc = args_parse_flags(&CMD, specs, argc, argv, &e);
    if (rc) return rc > 0 ? 0 : cli_fail(&e);
    if (args_find(specs, "--passes")->seen && args_find(specs, "--num")->seen) {
        err_set(&e, ERR_ARG, "aloe dialogues: give --passes P or --num N, not both");
        return cli_fail(&e);
    }
    if ((args_find(specs, "--passes")->seen && passes < 1) || (args_find(specs, "--num")->seen && num < 1)) {
        err_set(&e, ERR_ARG, "aloe dialogues: --passes and --num expect a positive number");
        return cli_fail(&e);
    }
    if (args_find(specs, "--num")->seen) passes = 0; /* --num instead of the default --passes 1 */
    if (protocol_parse(protocol_str, &dc.protocol, &e)) return cli_fail(&e);
    if (!args_find(specs, "--max-tokens")->seen) max_tokens = dialogues_default_max_tokens(dc.protocol);
    if (max_tokens < 0) {
        err_set(&e, ERR_ARG, "--max-tokens: expected 0 (the server's) or more, got %d", max_tokens);
        return cli_fail(&e);
    }
    if (quiet) log_set_level(LOG_WARN);
    atomic_int *stop = genrole_stop_on_signal();
    conn.cancel = stop;

    StrList profiles = {0}, personalities = {0};
    Prompts prompts;
    prompts_init(&prompts, dc.protocol);
    char *cache_owned = cache_path ? NULL : personas_sidecar_path(out, ".requests.sqlite");
    LlmCache *cache = NULL;
    LlmBackend *b[R__COUNT] = {0};
    DialoguePlan plan = {0};
    rc = jsonl_read_strings(profiles_path, &profiles, &e);
    if (!rc) rc = jsonl_read_strings(personalities_path, &personalities, &e);
    if (!rc && prompts_path) rc = prompts_load(&prompts, prompts_path, &e);
    if (!rc) rc = dialogues_plan(&plan, profiles.n, personalities.n, passes, num, (uint64_t)seed, &e);
    if (!rc) rc = llm_cache_open(cache_path ? cache_path : cache_owned, &cache, &e);
    /* Roles naming the same local model share one loaded copy. */
    LlmOpener opener;
    llm_opener_init(&opener, cache);
    conn.opener = &opener;
    json_t *templates = NULL; /* overrides, for the settings file */
    for (int i = 0; !rc && i < R__COUNT; i++) {
        if (i == R_RESPONDER) continue;
        const GenRole *fallback = i == R_HINTED || i == R_PLAIN ? &roles[R_RESPONDER] : NULL;
        if (!(b[i] = genrole_open(&roles[i], fallback, &conn, cache, &e))) rc = -1;
        genrole_note_template(&templates, &roles[i], fallback);
    }
    llm_opener_done(&opener);
    conn.opener = NULL;
    DialoguesResult res = {0};
    if (!rc) {
        dc.prompts = &prompts;
        dc.seed = (uint64_t)seed;
        dc.quiet = quiet;
        dc.params.temperature = temperature;
        dc.params.max_tokens = max_tokens;
        dc.user = b[R_USER], dc.inducer = b[R_INDUCER], dc.hinted = b[R_HINTED], dc.plain = b[R_PLAIN],
        dc.judge = b[R_JUDGE];
        dc.out_path = out;
        dc.stop = stop;
        dc.extra_settings = templates;
        rc = dialogues_run(&dc, &profiles, &personalities, &plan, &res, &e);
    }
    int status = 0;
    if (rc && e.code == ERR_CANCELLED) {
        fprintf(stderr, "aloe dialogues: %s\n", e.msg);
        status = 130;
    } else if (rc) {
        status = cli_fail(&e);
        if (!dc.skip_failed && bench_failure_skippable(&e) &&
            !strstr(e.msg, "every conversation failed"))
            fprintf(stderr, "aloe dialogues: if this conversation fails the same way every time (e.g. a content "
                    "filter's HTTP 400), --skip-failed skips it, lists it and goes on\n");
        if (res.done > res.done_before)
            fprintf(stderr, "aloe dialogues: %ld of %ld conversations are saved in %s; rerun to resume\n", res.done,
                    res.total, out);
    } else {
        print_summary(out, &dc, &res);
    }
    for (int i = 0; i < R__COUNT; i++) llm_free(b[i]);
    llm_cache_close(cache);
    dialogues_plan_free(&plan);
    prompts_free(&prompts);
    strlist_free(&profiles);
    strlist_free(&personalities);
    free(cache_owned);
    json_decref(templates);
    dialogues_result_free(&res);
    return status;
}
