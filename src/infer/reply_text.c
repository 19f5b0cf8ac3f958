#include "infer/reply_text.h"

#include <string.h>

void reply_text_init(ReplyText *r, const Tokenizer *tok, const char *const *stops, GenTextFn on_text, void *ctx) {
    memset(r, 0, sizeof *r);
    sb_init(&r->text);
    r->stops = stops;
    for (int i = 0; stops && stops[i]; i++)
        if (strlen(stops[i]) > r->longest) r->longest = strlen(stops[i]);
    r->on_text = on_text;
    r->ctx = ctx;
    tok_stream_init(&r->ts, tok, 1);
}

void reply_text_free(ReplyText *r) { sb_free(&r->text); }

/* Cuts the text at the first stop string that starts at or after `from`;
 * 1 if one was found. */
static int cut_at_stop_string(ReplyText *r, size_t from) {
    StrBuf *t = &r->text;
    const char *best = NULL;
    for (int i = 0; r->stops && r->stops[i]; i++) {
        const char *hit = t->len && *r->stops[i] ? strstr(t->s + from, r->stops[i]) : NULL;
        if (hit && (!best || hit < best)) best = hit;
    }
    if (!best) return 0;
    t->len = (size_t)(best - t->s);
    t->s[t->len] = 0;
    return 1;
}

int reply_text_push(ReplyText *r, int32_t id, int *stopped, Err *e) {
    size_t before = r->text.len;
    *stopped = 0;
    if (tok_stream_push(&r->ts, id, &r->text, e)) return -1;
    /* a stop string may have begun in earlier tokens' text */
    size_t from = before >= r->longest ? before - r->longest + 1 : 0;
    *stopped = cut_at_stop_string(r, from);
    return 0;
}

/* Bytes at the end of the text that could be the start of a stop string. */
static size_t stop_prefix_len(const ReplyText *r) {
    const StrBuf *t = &r->text;
    size_t keep = 0;
    for (int i = 0; r->stops && r->stops[i]; i++) {
        size_t m = strlen(r->stops[i]);
        for (size_t k = m ? m - 1 : 0; k > keep; k--)
            if (k <= t->len && !memcmp(t->s + t->len - k, r->stops[i], k)) {
                keep = k;
                break;
            }
    }
    return keep;
}

void reply_text_stream(ReplyText *r, int ended, int stopped_by_string) {
    if (ended && !stopped_by_string) tok_stream_flush(&r->ts, &r->text);
    size_t upto = ended ? r->text.len : r->text.len - stop_prefix_len(r);
    if (upto <= r->emitted) return;
    if (r->on_text) r->on_text(r->ctx, r->text.s + r->emitted, upto - r->emitted);
    r->emitted = upto;
}
