/* libFuzzer harness for resume state, which a crash, a full disk or a hand
 * edit may damage: the same bytes as the bench journal (dialogues.jsonl,
 * opened, torn-line repair included, checked, then summarised into results
 * and report.md), as run.json (the settings guard), as the personas state
 * (FILE.state.jsonl) and as invocations.json. Each is read or refused with
 * an error naming the file, never a crash. Built and run by scripts/fuzz.sh
 * (not by make test). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aloe/bench.h"
#include "aloe/invocations.h"
#include "aloe/journal.h"
#include "aloe/personas.h"
#include "aloe/report.h"
#include "base/fileio.h"
#include "base/log.h"
#include "fuzz_tmp.h"

static char *dir;

static char *write_tmp(const char *name, const uint8_t *data, size_t size) {
    char *p = path_join(dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    return p;
}

static void must_name(const Err *e, const char *name) {
    if (!strstr(e->msg, name)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir) {
        dir = fuzz_tmpdir("journal");
        log_set_level(LOG_SILENT);
    }
    /* the bench journal */
    char *path = write_tmp("dialogues.jsonl", data, size);
    Err e = {0};
    Journal *j = journal_open(path, "id", &e);
    if (!j) {
        must_name(&e, "dialogues.jsonl");
    } else {
        const char *profiles[] = {"p0", "p1"}, *pers[] = {"q0", "q1"};
        BenchConfig c = bench_config_default();
        c.profiles = profiles;
        c.n_profiles = 2;
        c.personalities = pers;
        c.n_personalities = 2;
        c.per_profile = 2;
        c.turns = 2;
        if (bench_check_journal(&c, j, path, &e)) {
            must_name(&e, "dialogues.jsonl");
        } else {
            json_t *r = bench_results(&c, j);
            char *md = report_run_markdown(r);
            free(md);
            json_decref(r);
        }
        journal_close(j);
    }
    unlink(path);
    free(path);
    /* run.json */
    path = write_tmp("run.json", data, size);
    json_t *settings = json_pack("{s:s, s:i}", "model", "m", "turns", 2);
    if (bench_check_settings(path, settings, &e)) must_name(&e, "run.json");
    json_decref(settings);
    unlink(path);
    free(path);
    /* the personas state */
    StrList seeds = {0};
    strlist_push(&seeds, "a");
    strlist_push(&seeds, "b");
    int rounds, items;
    if (personas_state_load_buf("p.state.jsonl", (const char *)data, size, &seeds, &rounds, &items, &e))
        must_name(&e, "p.state.jsonl");
    strlist_free(&seeds);
    /* invocations.json */
    json_t *inv = invocations_parse("invocations.json", (const char *)data, size, &e);
    if (!inv) {
        must_name(&e, "invocations.json");
    } else {
        json_t *t = invocations_totals(inv);
        if (!t) abort();
        json_decref(t);
        json_decref(inv);
    }
    return 0;
}
