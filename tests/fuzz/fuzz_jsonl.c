/* libFuzzer harness for JSONL input: arbitrary bytes as a JSONL file must
 * be read value by value or rejected with an error naming the line, never
 * crash; every object read is also run through the conversation-tree
 * exporter, whose errors must name a field. Built and run by
 * scripts/fuzz.sh (not by make test). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/export.h"
#include "formats/jsonl.h"

static int on_value(void *ctx, json_t *v, const char *path, int line, int nth, Err *e) {
    (void)ctx;
    (void)nth;
    (void)path;
    (void)line;
    if (!json_is_object(v)) return 0;
    json_t *sft = json_array(), *dpo = json_array();
    ExportOptions o = {.branch = "preferred", .system = NULL};
    ExportStats st = {0};
    Err te;
    if (export_tree(v, &o, sft, dpo, &st, "fuzz:1", &te) != 0 && te.msg[0] == 0) abort();
    json_decref(sft);
    json_decref(dpo);
    (void)e;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Err e;
    e.msg[0] = 0;
    long n = jsonl_foreach_buf("fuzz.jsonl", (const char *)data, size, on_value, NULL, &e);
    if (n < 0 && strncmp(e.msg, "fuzz.jsonl:", 11) != 0) abort(); /* errors name file:line */
    return 0;
}
