/* encode: the pipeline from text to ids, in the tokenizers library's order:
 * split off added tokens matched in the raw text, normalise the rest, split
 * off added tokens that match normalised text, run the model (pre-tokenizer
 * + BPE, SentencePiece or WordPiece) on what is left, then add the
 * post-processor's BOS/EOS when asked. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok/tok_internal.h"

typedef struct {
    const Tokenizer *t;
    int parse_special;
    int prev_token; /* the last fragment was a token (SentencePiece puts a space after it) */
    int first;      /* nothing has been emitted yet (Metaspace prepend_scheme "first") */
    IdVec out;
} Enc;

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
static int is_word(unsigned char c) { return isalnum(c) || c == '_' || c >= 0x80; }

/* Unicode White_Space (Rust's char::is_whitespace, which the tokenizers
 * library strips for lstrip/rstrip): ASCII's six, NEL, NBSP, OGHAM SPACE
 * MARK, the U+2000 block's spaces, LS, PS, NNBSP, MMSP, IDEOGRAPHIC SPACE. */
static int is_unicode_ws(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Bytes of the whitespace character starting at s[at] (< n), 0 if none.
 * GGUF tokenizers strip what llama.cpp's isspace() does (ASCII). */
static size_t ws_after(const Tokenizer *t, const char *s, size_t n, size_t at) {
    if (!t->strip_unicode_ws) return is_ws(s[at]) ? 1 : 0;
    uint32_t cp;
    int k = utf8_decode((const unsigned char *)s + at, n - at, &cp);
    return cp != 0xFFFD && is_unicode_ws(cp) ? (size_t)k : 0;
}

/* Bytes of the whitespace character ending at s[end] (exclusive), not
 * reaching before lo; 0 if none. */
static size_t ws_before(const Tokenizer *t, const char *s, size_t lo, size_t end) {
    if (!t->strip_unicode_ws) return is_ws(s[end - 1]) ? 1 : 0;
    size_t b = end - 1;
    while (b > lo && end - b < 4 && ((unsigned char)s[b] & 0xC0) == 0x80) b--;
    uint32_t cp;
    int k = utf8_decode((const unsigned char *)s + b, end - b, &cp);
    return (size_t)k == end - b && cp != 0xFFFD && is_unicode_ws(cp) ? (size_t)k : 0;
}

/* The longest added token at s[at], or NULL. `normalized` picks the tokens
 * matched on normalised text (1) or on raw text (0). */
static const AddedTok *added_at(const Enc *en, const char *s, size_t n, size_t at, int normalized) {
    const Tokenizer *t = en->t;
    if (!t->added_first[(unsigned char)s[at]]) return NULL;
    const AddedTok *best = NULL;
    for (int i = 0; i < t->n_added; i++) {
        const AddedTok *a = &t->added[i];
        int a_norm = a->normalized && t->norm != NORM_NONE;
        if (a_norm != normalized || a->len == 0 || (size_t)a->len > n - at) continue;
        if (a->special && !en->parse_special) continue;
        if (best && a->len <= best->len) continue;
        if (memcmp(s + at, a->text, a->len)) continue;
        if (a->single_word && ((at > 0 && is_word((unsigned char)s[at - 1])) ||
                               (at + a->len < n && is_word((unsigned char)s[at + a->len]))))
            continue;
        best = a;
    }
    return best;
}

static void run_model(Enc *en, const char *s, size_t n) {
    const Tokenizer *t = en->t;
    if (n == 0) return;
    switch (t->model) {
    case TOK_BPE:
        if (t->prefix_space && s[0] != ' ') {
            char *p = xmalloc(n + 1);
            p[0] = ' ';
            memcpy(p + 1, s, n);
            bpe_encode(t, p, n + 1, en->first, &en->out);
            free(p);
        } else {
            bpe_encode(t, s, n, en->first, &en->out);
        }
        break;
    case TOK_SPM: spm_encode(t, s, n, t->add_space_prefix && en->prev_token, &en->out); break;
    case TOK_WPM: wpm_encode(t, s, n, &en->out); break;
    }
    en->prev_token = 0;
    en->first = 0;
}

static void split_added(Enc *en, const char *s, size_t n, int normalized, void (*text_fn)(Enc *, const char *, size_t));

static void normalize_then_model(Enc *en, const char *s, size_t n) {
    const Tokenizer *t = en->t;
    if (n == 0) return;
    char *norm = NULL;
    size_t nn = n;
    if (t->norm == NORM_NFC) {
        char *tmp = xstrndup(s, n);
        /* invalid UTF-8 cannot be normalised: it goes on unchanged */
        if (strlen(tmp) == n) norm = (char *)utf8proc_NFC((const utf8proc_uint8_t *)tmp);
        free(tmp);
        if (norm) nn = strlen(norm);
    } else if (t->norm == NORM_BERT) {
        norm = bert_normalize(t, s, n, &nn);
    }
    if (t->norm_prepend[0] || t->norm_space_to_meta) {
        /* SentencePiece-style tokenizer.json: Prepend("▁") then Replace(" ", "▁") */
        const char *src = norm ? norm : s;
        StrBuf b;
        sb_init(&b);
        sb_append(&b, t->norm_prepend);
        for (size_t i = 0; i < nn; i++) {
            if (src[i] == ' ' && t->norm_space_to_meta) sb_append(&b, "\xe2\x96\x81");
            else sb_appendc(&b, src[i]);
        }
        free(norm);
        nn = b.len;
        norm = sb_take(&b);
    }
    if (norm) split_added(en, norm, nn, 1, run_model);
    else run_model(en, s, n);
    free(norm);
}

static void split_added(Enc *en, const char *s, size_t n, int normalized, void (*text_fn)(Enc *, const char *, size_t)) {
    size_t seg = 0;
    for (size_t at = 0; at < n;) {
        const AddedTok *a = added_at(en, s, n, at, normalized);
        if (!a) {
            at++;
            continue;
        }
        size_t end = at, k;
        if (a->lstrip) /* never into the previous token: only back to seg */
            while (end > seg && (k = ws_before(en->t, s, seg, end))) end -= k;
        text_fn(en, s + seg, end - seg);
        idvec_push(&en->out, a->id);
        en->prev_token = 1;
        en->first = 0;
        at += a->len;
        if (a->rstrip)
            while (at < n && (k = ws_after(en->t, s, n, at))) at += k;
        seg = at;
    }
    text_fn(en, s + seg, n - seg);
}

int tok_encode_n(const Tokenizer *t, const char *text, size_t len, int add_special, int parse_special,
                 int32_t **ids, int *n, Err *e) {
    (void)e;
    Enc en = {t, parse_special, 1, 1, {0}};
    if (add_special)
        for (int i = 0; i < t->n_pre; i++) idvec_push(&en.out, t->pre_ids[i]);
    split_added(&en, text, len, 0, normalize_then_model);
    if (add_special)
        for (int i = 0; i < t->n_post; i++) idvec_push(&en.out, t->post_ids[i]);
    if (!en.out.v) en.out.v = xmalloc(sizeof(int32_t));
    *ids = en.out.v;
    *n = en.out.n;
    return 0;
}

int tok_encode(const Tokenizer *t, const char *text, int add_special, int parse_special, int32_t **ids, int *n,
               Err *e) {
    if (!text) return err_set(e, ERR_ARG, "tok_encode: NULL text");
    return tok_encode_n(t, text, strlen(text), add_special, parse_special, ids, n, e);
}
