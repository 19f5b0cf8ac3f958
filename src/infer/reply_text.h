/* reply_text: the text of a reply as its tokens arrive, cut at stop
 * strings, and streamed without ever showing a stop string.
 *
 * Each new id is detokenised incrementally (whole UTF-8 characters only).
 * A stop string may begin in one token's text and end in a later one, so
 * the search for it starts that far back, and while streaming the bytes at
 * the end that could still be the start of a stop string are held back
 * until the next token decides. */
#ifndef ALOE_INFER_REPLY_TEXT_H
#define ALOE_INFER_REPLY_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/mem.h"
#include "tok/tok.h"

/* Receives reply text as it is generated (whole UTF-8 characters, never a
 * part of a stop string). */
typedef void (*GenTextFn)(void *ctx, const char *text, size_t len);

typedef struct ReplyText {
    StrBuf text;                      /* the reply so far (cut at a stop string) */
    const char *const *stops;         /* NULL-terminated; not copied; may be NULL */
    size_t longest;                   /* of the stop strings */
    GenTextFn on_text;                /* may be NULL */
    void *ctx;
    size_t emitted;                   /* bytes of text handed to on_text */
    TokStream ts;
} ReplyText;

void reply_text_init(ReplyText *r, const Tokenizer *tok, const char *const *stops, GenTextFn on_text, void *ctx);
void reply_text_free(ReplyText *r);
/* Adds id's text; *stopped = 1 when a stop string now ends the reply (the
 * text is cut where it starts). -1 for an id the tokenizer does not have. */
int reply_text_push(ReplyText *r, int32_t id, int *stopped, Err *e);
/* Streams what is safe to show: everything when the reply has ended
 * (after flushing an incomplete character, unless a stop string cut it),
 * else all but a possible stop-string start. */
void reply_text_stream(ReplyText *r, int ended, int stopped_by_string);

#endif
