/* aloe export: conversation trees to TRL JSONL (wiring only; see aloe/export.h). */
#include <stdio.h>

#include "aloe/export.h"
#include "cli/args.h"
#include "cli/commands.h"

static const ArgCommand CMD = {
    "export", "TREES.jsonl [--sft FILE] [--dpo FILE] [--branch preferred|rejected] [--system TEXT]",
    "Converts conversation trees (from aloe dialogues) to TRL training JSONL. For every turn the context is the "
    "real conversation along the branch actually taken, ending with that turn's user message. --sft writes "
    "{\"messages\": [...]} records ending with the --branch reply (rejected: a control); --dpo writes "
    "{\"prompt\": [...], \"chosen\": [...], \"rejected\": [...]} message lists. Turns whose pair was dropped "
    "give no record.",
    "aloe export trees.jsonl --sft sft.jsonl --dpo dpo.jsonl --system \"You are a helpful assistant.\"", 1, 1};

int cmd_export(int argc, char **argv) {
    const char *sft = NULL, *dpo = NULL, *branch = "preferred", *system = NULL;
    int quiet = 0;
    ArgSpec specs[] = {
        {"--sft", NULL, ARG_STR, &sft, "FILE", "write SFT records (messages)", 0, 0},
        {"--dpo", NULL, ARG_STR, &dpo, "FILE", "write DPO records (prompt, chosen, rejected)", 0, 0},
        {"--branch", NULL, ARG_STR, &branch, "B", "reply the SFT records end with: preferred or rejected", 0, 0},
        {"--system", NULL, ARG_STR, &system, "TEXT", "a system message to start every record with", 0, 0},
        {"--quiet", "-q", ARG_FLAG, &quiet, NULL, "no summary line", 0, 0},
        {0},
    };
    char *pos[2];
    int npos;
    Err e = {0};
    int rc = args_parse(&CMD, specs, argc, argv, pos, &npos, &e);
    if (rc) return rc > 0 ? 0 : cli_fail(&e);
    ExportOptions o = {branch, system};
    ExportStats st;
    if (export_run(pos[0], sft, dpo, &o, &st, &e)) return cli_fail(&e);
    if (!quiet)
        printf("%s: %ld trees, %ld turns -> %ld SFT records%s%s, %ld DPO records%s%s; %ld dropped pairs skipped\n",
               pos[0], st.trees, st.turns, st.sft, sft ? " in " : "", sft ? sft : "", st.dpo, dpo ? " in " : "",
               dpo ? dpo : "", st.dropped);
    return 0;
}
