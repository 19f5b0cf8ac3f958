/* libFuzzer harness for what aloe view reads and writes (aloe/view.h): any
 * bytes, read both as a dialogues trees file and as a run's dialogues.jsonl,
 * are refused with an error naming the file, or become a page whose data
 * block holds no '<', '>' or '&' (so nothing can end the script element)
 * and parses back to the same data. The escaper alone, over the raw bytes,
 * must leave no '<' and no invalid UTF-8 either. Built and run by
 * scripts/fuzz.sh (not by make test). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/view.h"

static void check_page(const json_t *d) {
    char *page = view_html(d, NULL);
    static const char open[] = "<script type=\"application/json\" id=\"aloe-data\">";
    char *s = strstr(page, open);
    if (!s) abort();
    s += sizeof open - 1;
    char *end = strstr(s, "</script>");
    if (!end) abort();
    for (char *p = s; p < end; p++)
        if (*p == '<' || *p == '>' || *p == '&') abort();
    json_t *back = json_loadb(s, (size_t)(end - s), 0, NULL);
    if (!back || !json_equal(back, d)) abort();
    json_decref(back);
    free(page);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    Err e = {0};
    json_t *d = view_trees_parse("t.jsonl", buf, size, NULL, &e);
    if (!d) {
        if (strncmp(e.msg, "t.jsonl", 7) != 0) abort();
    } else {
        check_page(d);
        json_decref(d);
    }
    err_clear(&e);
    json_t *r = view_run_dialogues_parse("d.jsonl", buf, size, &e);
    if (!r && strncmp(e.msg, "d.jsonl", 7) != 0) abort();
    json_decref(r);
    StrBuf b;
    sb_init(&b);
    view_escape_script_json(&b, buf, size);
    char *fixed;
    size_t n;
    if (b.len && (memchr(b.s, '<', b.len) || view_repair_utf8(b.s, b.len, &fixed, &n) != 0)) abort();
    if (b.len) free(fixed);
    sb_free(&b);
    return 0;
}
