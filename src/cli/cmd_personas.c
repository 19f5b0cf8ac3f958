/* aloe personas: grow a persona pool (wiring only; see aloe/personas.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/personas.h"
#include "aloe/prompts.h"
#include "base/log.h"
#include "base/mem.h"
#include "cli/commands.h"
#include "cli/gen_roles.h"
#include "llm/cache.h"

static const ArgCommand CMD = {
    "personas", "--kind profile|personality --target N --model M --out FILE.jsonl [options]",
    "Grows a pool of user profiles (objective facts) or personalities (traits) from seed examples. Each round "
    "shows the generator --examples random pool members and asks for --per-call new ones (-j requests per "
    "round, in parallel); a candidate joins only if its embedding's cosine similarity to every pool member is "
    "<= --threshold. Stops at --target members, after --max-rounds, or when the acceptance rate over the last "
    "--floor-rounds rounds falls below --min-acceptance. Writes FILE.jsonl (the pool, seeds first), "
    "FILE.meta.jsonl (round, nearest neighbour and similarity per item) and FILE.state.jsonl (resume state with "
    "the embeddings); requests are cached in FILE.requests.sqlite. Rerun the same command to resume. "
    "--protocol paper (the default) follows the ALOE paper: its generation rules in the prompt, temperature "
    "0.8, the paraphrase-MiniLM-L6-v2 embedder run locally, threshold 0.6; --protocol rubric keeps aloe's "
    "earlier prompt (numbered lists) and sends no temperature unless given.",
    "aloe personas --kind profile --target 331 --model gpt-4o --out profiles.jsonl",
    0, 0};

int cmd_personas(int argc, char **argv) {
    const char *kind = NULL, *seeds_path = NULL, *out = NULL, *prompts_path = NULL, *cache_path = NULL;
    int target = 0, jobs = 1, quiet = 0, max_tokens = 0;
    long seed = 0;
    double temperature = PERSONAS_PAPER_TEMPERATURE; /* rubric: none unless given */
    const char *protocol_arg = "paper";
    PersonasConfig pc;
    personas_config_default(&pc);
    GenRole roles[2] = {{.name = "generator", .help = "the generator model"},
                        {.name = "embed", .help = "the sentence-embedding model (by default the paper's, run by the local "
                                                  "engine)",
                         .model = PERSONAS_DEFAULT_EMBEDDER}};
    GenConn conn = {.timeout_s = 300, .retries = 8};
    ArgSpec specs[40] = {
        {"--kind", NULL, ARG_STR, &kind, "KIND", "profile or personality", 1, 0},
        {"--protocol", NULL, ARG_STR, &protocol_arg, "P",
         "paper (the paper's prompt and temperature) or rubric (aloe's earlier prompt)", 0, 0},
        {"--seeds", NULL, ARG_STR, &seeds_path, "FILE", "seed examples, JSONL of strings (default: "
                                                          "data/seeds/KIND.jsonl)", 0, 0},
        {"--target", NULL, ARG_INT, &target, "N", "pool size to reach, seeds included", 1, 0},
        {"--threshold", NULL, ARG_DOUBLE, &pc.threshold, "T", "max cosine similarity to any pool member", 0, 0},
        {"--examples", NULL, ARG_INT, &pc.examples, "K", "pool members shown per request", 0, 0},
        {"--per-call", NULL, ARG_INT, &pc.per_call, "M", "new items asked for per request", 0, 0},
        {"--min-acceptance", NULL, ARG_DOUBLE, &pc.min_acceptance, "F",
         "stop when accepted/candidates over the last rounds falls below F", 0, 0},
        {"--floor-rounds", NULL, ARG_INT, &pc.floor_rounds, "R", "rounds the acceptance floor looks back over", 0, 0},
        {"--max-rounds", NULL, ARG_INT, &pc.max_rounds, "R", "stop after R rounds", 0, 0},
        {"--seed", NULL, ARG_LONG, &seed, "S", "seed of every random choice", 0, 0},
        {"--jobs", "-j", ARG_INT, &jobs, "N", "generator requests per round, in parallel", 0, 0},
        {"--temperature", NULL, ARG_DOUBLE, &temperature, "T", "generator temperature (< 0: server default; under "
         "--protocol rubric the server's unless given)", 0, 0},
        {"--max-tokens", NULL, ARG_INT, &max_tokens, "N", "generator max_tokens (0: server default)", 0, 0},
        {"--prompts", NULL, ARG_STR, &prompts_path, "FILE", "JSON object overriding role prompts", 0, 0},
        {"--out", "-o", ARG_STR, &out, "FILE.jsonl", "the pool", 1, 0},
        {"--cache", NULL, ARG_STR, &cache_path, "FILE", "request cache (default: FILE.requests.sqlite)", 0, 0},
        {"--quiet", "-q", ARG_FLAG, &quiet, NULL, "no progress bar", 0, 0},
    };
    int k = 0;
    while (specs[k].name) k++;
    k += genrole_specs(roles, 2, specs + k, "--model");
    /* The embedder's model flag is --embed-model; its endpoint flags keep the role name. */
    k += genrole_conn_specs(&conn, specs + k);

    Err e = {0};
    int rc = args_parse_flags(&CMD, specs, argc, argv, &e);
    if (rc) return rc > 0 ? 0 : cli_fail(&e);
    Protocol proto;
    if (protocol_parse(protocol_arg, &proto, &e)) return cli_fail(&e);
    /* The paper's reference samples at 0.8; the rubric protocol left it to the server. */
    for (int i = 0; specs[i].name; i++)
        if (!strcmp(specs[i].name, "--temperature") && !specs[i].seen && proto == PROTOCOL_RUBRIC) temperature = -1;
    PromptId pid;
    if (!strcmp(kind, "profile")) pid = PROMPT_GENERATE_PROFILE;
    else if (!strcmp(kind, "personality")) pid = PROMPT_GENERATE_PERSONALITY;
    else {
        err_set(&e, ERR_ARG, "--kind: expected profile or personality, got \"%s\"", kind);
        return cli_fail(&e);
    }
    if (!roles[0].model) {
        err_set(&e, ERR_ARG, "aloe personas: --model M is required (see 'aloe personas --help')");
        return cli_fail(&e);
    }
    if (quiet) log_set_level(LOG_WARN);
    atomic_int *stop = genrole_stop_on_signal();
    conn.cancel = stop;

    char *seeds_owned = seeds_path ? NULL : genrole_default_seeds(kind);
    if (!seeds_path) seeds_path = seeds_owned;
    StrList seeds = {0};
    Prompts prompts;
    prompts_init(&prompts, proto);
    char *cache_owned = cache_path ? NULL : personas_sidecar_path(out, ".requests.sqlite");
    LlmCache *cache = NULL;
    LlmBackend *gen = NULL, *emb = NULL;
    rc = 0;
    if (!seeds_path) rc = err_set(&e, ERR_NOTFOUND, "no --seeds given and data/seeds/%s.jsonl not found", kind);
    if (!rc) rc = jsonl_read_strings(seeds_path, &seeds, &e);
    if (!rc && prompts_path) rc = prompts_load(&prompts, prompts_path, &e);
    if (!rc) rc = llm_cache_open(cache_path ? cache_path : cache_owned, &cache, &e);
    /* Roles naming the same local model share one loaded copy. */
    LlmOpener opener;
    llm_opener_init(&opener, cache);
    conn.opener = &opener;
    if (!rc && !(gen = genrole_open(&roles[0], NULL, &conn, cache, &e))) rc = -1;
    if (!rc && !(emb = genrole_open(&roles[1], NULL, &conn, cache, &e))) rc = -1;
    llm_opener_done(&opener);
    conn.opener = NULL;
    PersonasResult res;
    json_t *templates = NULL; /* overrides, for the settings file */
    for (int i = 0; i < 2; i++) genrole_note_template(&templates, &roles[i], NULL);
    if (!rc) {
        pc.template_text = prompts.text[pid];
        pc.plain_examples = proto == PROTOCOL_PAPER;
        pc.protocol = protocol_name(proto);
        pc.target = target;
        pc.calls = jobs;
        pc.seed = (uint64_t)seed;
        pc.generator = gen;
        pc.embedder = emb;
        pc.params.temperature = temperature;
        pc.params.max_tokens = max_tokens;
        pc.out_path = out;
        pc.quiet = quiet;
        pc.stop = stop;
        pc.extra_settings = templates;
        rc = personas_run(&pc, &seeds, &res, &e);
    }
    int status = 0;
    if (rc && e.code == ERR_CANCELLED) {
        fprintf(stderr, "aloe personas: interrupted after round %d (%d items); rerun the same command to resume\n",
                res.rounds, res.pool_size);
        status = 130;
    } else if (rc) {
        status = cli_fail(&e);
    } else {
        printf("%s: %d %s (%d seeds + %d generated) after %d rounds; %ld of %ld candidates accepted\n", out,
               res.pool_size, strcmp(kind, "personality") ? "profiles" : "personalities", res.seeds, res.pool_size - res.seeds, res.rounds, res.accepted, res.candidates);
        printf("stopped: %s", personas_stop_name(res.why));
        if (res.window_acceptance >= 0)
            printf(" (acceptance over the last %d rounds: %.1f%%, floor %.1f%%)", pc.floor_rounds,
                   100 * res.window_acceptance, 100 * pc.min_acceptance);
        printf("\n");
        if (res.why != PERSONAS_TARGET)
            fprintf(stderr, "aloe personas: warning: the pool has %d of the %d items asked for\n", res.pool_size,
                    target);
    }
    llm_free(gen);
    llm_free(emb);
    llm_cache_close(cache);
    prompts_free(&prompts);
    strlist_free(&seeds);
    free(seeds_owned);
    free(cache_owned);
    json_decref(templates);
    return status;
}
