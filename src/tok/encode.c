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
    IdVec out;
} Enc;

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
static int is_word(unsigned char c) { return isalnum(c) || c == '_' || c >= 0x80; }

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
            bpe_encode(t, p, n + 1, &en->out);
            free(p);
        } else {
            bpe_encode(t, s, n, &en->out);
        }
        break;
    case TOK_SPM: spm_encode(t, s, n, t->add_space_prefix && en->prev_token, &en->out); break;
    case TOK_WPM: wpm_encode(t, s, n, &en->out); break;
    }
    en->prev_token = 0;
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
        size_t end = at;
        if (a->lstrip)
            while (end > seg && is_ws(s[end - 1])) end--;
        text_fn(en, s + seg, end - seg);
        idvec_push(&en->out, a->id);
        en->prev_token = 1;
        at += a->len;
        if (a->rstrip)
            while (at < n && is_ws(s[at])) at++;
        seg = at;
    }
    text_fn(en, s + seg, n - seg);
}

int tok_encode_n(const Tokenizer *t, const char *text, size_t len, int add_special, int parse_special,
                 int32_t **ids, int *n, Err *e) {
    (void)e;
    Enc en = {t, parse_special, 1, {0}};
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
