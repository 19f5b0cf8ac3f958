/* decode: ids back to text, whole or streaming.
 *
 * Each token's bytes are precomputed (tok_build_pieces), so decoding is
 * concatenation plus the model's small fix-ups: SentencePiece drops the
 * space its prefix added, WordPiece drops the first word's space and
 * re-attaches punctuation as the tokenizers library's "cleanup" does. */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"

static int skip_token(const Tokenizer *t, int id, int skip_special) {
    return skip_special && t->type[id] == TOK_TYPE_CONTROL;
}

/* The tokenizers library's WordPiece cleanup (BERT's clean_up_tokenization). */
static void wp_cleanup(StrBuf *b) {
    static const char *const from[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"};
    static const char *const to[] = {".", "?", "!", ",", "'", "n't", "'m", "'s", "'ve", "'re"};
    for (size_t r = 0; r < sizeof from / sizeof from[0]; r++) {
        size_t lf = strlen(from[r]), lt = strlen(to[r]), w = 0;
        for (size_t i = 0; i < b->len;) {
            if (i + lf <= b->len && !memcmp(b->s + i, from[r], lf)) {
                memmove(b->s + w, to[r], lt);
                w += lt;
                i += lf;
            } else {
                b->s[w++] = b->s[i++];
            }
        }
        b->len = w;
        b->s[w] = 0;
    }
}

char *tok_decode(const Tokenizer *t, const int32_t *ids, int n, int skip_special, Err *e) {
    StrBuf b;
    sb_init(&b);
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n) {
            sb_free(&b);
            return err_set(e, ERR_ARG, "decode: token id %d at position %d is outside the vocabulary (0..%d)",
                           ids[i], i, t->n - 1),
                   NULL;
        }
        if (skip_token(t, ids[i], skip_special)) continue;
        sb_appendn(&b, t->piece[ids[i]], t->piece_len[ids[i]]);
    }
    size_t drop = 0;
    if ((t->strip_decoded_space || t->wp_decode) && b.len > 0 && b.s[0] == ' ') drop = 1;
    if (drop) {
        memmove(b.s, b.s + 1, b.len);
        b.len--;
    }
    if (t->wp_decode) wp_cleanup(&b);
    return sb_take(&b);
}

void tok_stream_init(TokStream *s, const Tokenizer *t, int skip_special) {
    memset(s, 0, sizeof *s);
    s->t = t;
    s->skip_special = skip_special;
}

static void put_replacement(StrBuf *out) { sb_append(out, "\xef\xbf\xbd"); }

/* Emits the complete, valid sequences of p[0..n); returns how many bytes
 * at the end are the start of a sequence that may still complete. */
static int emit_valid(const unsigned char *p, int n, StrBuf *out) {
    int i = 0;
    while (i < n) {
        int k = utf8_seq_len(p[i]);
        if (k == 0) {
            put_replacement(out);
            i++;
            continue;
        }
        if (i + k > n) { /* incomplete: hold back if what is there could still be valid */
            int ok = 1;
            for (int j = i + 1; j < n; j++) ok &= (p[j] & 0xC0) == 0x80;
            if (ok) return n - i;
        }
        uint32_t cp;
        int got = utf8_decode(p + i, n - i, &cp);
        if (cp == 0xFFFD && got == 1) { /* invalid byte */
            put_replacement(out);
            i++;
            continue;
        }
        sb_appendn(out, (const char *)p + i, got);
        i += got;
    }
    return 0;
}

int tok_stream_push(TokStream *s, int32_t id, StrBuf *out, Err *e) {
    const Tokenizer *t = s->t;
    if (id < 0 || id >= t->n)
        return err_set(e, ERR_ARG, "decode: token id %d is outside the vocabulary (0..%d)", id, t->n - 1);
    if (skip_token(t, id, s->skip_special)) return 0;
    const char *p = t->piece[id];
    int n = t->piece_len[id];
    if (!s->started && n > 0 && p[0] == ' ' && (t->strip_decoded_space || t->wp_decode)) p++, n--;
    if (n > 0) s->started = 1;
    unsigned char buf[64];
    unsigned char *all = (size_t)(n + s->npend) <= sizeof buf ? buf : xmalloc(n + s->npend);
    memcpy(all, s->pend, s->npend);
    memcpy(all + s->npend, p, n);
    int total = n + s->npend;
    int keep = emit_valid(all, total, out);
    memcpy(s->pend, all + total - keep, keep);
    s->npend = keep;
    if (all != buf) free(all);
    return 0;
}

void tok_stream_flush(TokStream *s, StrBuf *out) {
    if (s->npend > 0) put_replacement(out);
    s->npend = 0;
}
