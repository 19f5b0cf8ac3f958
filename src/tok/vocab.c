/* vocab: the tokenizer's tables (token strings, hash maps for string -> id
 * and merge pair -> rank), the plain constructor, and the accessors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"

uint32_t tok_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static uint32_t table_size(int n) {
    uint32_t sz = 16;
    while (sz < (uint32_t)n * 2) sz <<= 1;
    return sz;
}

static void strmap_build(Tokenizer *t) {
    uint32_t sz = table_size(t->n);
    t->map.slot = xmalloc(sz * sizeof(int32_t));
    memset(t->map.slot, 0xff, sz * sizeof(int32_t));
    t->map.mask = sz - 1;
    for (int id = 0; id < t->n; id++) {
        uint32_t i = tok_hash(t->text[id], t->len[id]) & t->map.mask;
        for (;; i = (i + 1) & t->map.mask) {
            int32_t o = t->map.slot[i];
            if (o < 0) break;
            /* a repeated string: the later id wins, as in llama.cpp */
            if (t->len[o] == t->len[id] && !memcmp(t->text[o], t->text[id], t->len[id])) break;
        }
        t->map.slot[i] = id;
    }
}

int strmap_get(const Tokenizer *t, const char *s, size_t n) {
    if (!t->map.slot) return -1;
    for (uint32_t i = tok_hash(s, n) & t->map.mask;; i = (i + 1) & t->map.mask) {
        int32_t id = t->map.slot[i];
        if (id < 0) return -1;
        if ((size_t)t->len[id] == n && !memcmp(t->text[id], s, n)) return id;
    }
}

static uint64_t pair_key(int a, int b) { return ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)(b + 1); }

static uint32_t pair_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (uint32_t)k;
}

int pairmap_get(const PairMap *m, int a, int b, int *merged) {
    if (!m->key) return -1;
    uint64_t k = pair_key(a, b);
    for (uint32_t i = pair_hash(k) & m->mask;; i = (i + 1) & m->mask) {
        if (m->key[i] == 0) return -1;
        if (m->key[i] == k) {
            *merged = m->merged[i];
            return m->rank[i];
        }
    }
}

/* Merges are (left, right) token strings by rank; a merge whose parts or
 * result are not in the vocabulary can never apply and is an error in
 * the file (the tokenizers library refuses it too). */
int tok_add_merges(Tokenizer *t, int n, const char *const *left, const char *const *right, Err *e) {
    PairMap *m = &t->merges;
    uint32_t sz = table_size(n);
    m->key = xcalloc(sz, sizeof(uint64_t));
    m->rank = xmalloc(sz * sizeof(int32_t));
    m->merged = xmalloc(sz * sizeof(int32_t));
    m->mask = sz - 1;
    char buf[512];
    for (int r = 0; r < n; r++) {
        size_t la = strlen(left[r]), lb = strlen(right[r]);
        int a = strmap_get(t, left[r], la), b = strmap_get(t, right[r], lb);
        if (a < 0 || b < 0)
            return err_set(e, ERR_PARSE, "merge %d (\"%s %s\"): %s part \"%s\" is not in the vocabulary", r,
                           left[r], right[r], a < 0 ? "left" : "right", a < 0 ? left[r] : right[r]);
        char *cat = la + lb < sizeof buf ? buf : xmalloc(la + lb);
        memcpy(cat, left[r], la);
        memcpy(cat + la, right[r], lb);
        int c = strmap_get(t, cat, la + lb);
        if (cat != buf) free(cat);
        if (c < 0)
            return err_set(e, ERR_PARSE, "merge %d (\"%s %s\"): the merged token is not in the vocabulary",
                           r, left[r], right[r]);
        uint64_t k = pair_key(a, b);
        uint32_t i = pair_hash(k) & m->mask;
        while (m->key[i] && m->key[i] != k) i = (i + 1) & m->mask;
        if (m->key[i]) continue; /* repeated merge: the first (lowest rank) counts */
        m->key[i] = k;
        m->rank[i] = r;
        m->merged[i] = c;
    }
    return 0;
}

void tok_add_added(Tokenizer *t, int id, const char *content, int special, int lstrip, int rstrip,
                   int normalized, int single_word) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) { /* listed twice: the first entry counts */
            free((char *)content);
            return;
        }
    t->added = xrealloc(t->added, (t->n_added + 1) * sizeof(AddedTok));
    AddedTok *a = &t->added[t->n_added++];
    a->id = id;
    a->text = content ? content : t->text[id];
    a->len = (int)strlen(a->text);
    a->special = (uint8_t)special;
    a->lstrip = (uint8_t)lstrip;
    a->rstrip = (uint8_t)rstrip;
    a->normalized = (uint8_t)normalized;
    a->single_word = (uint8_t)single_word;
    if (a->len > 0) t->added_first[(unsigned char)a->text[0]] = 1;
}

static int parse_byte_token(const char *s, int len) {
    static const char hex[] = "0123456789ABCDEF";
    if (len != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    const char *h = strchr(hex, s[3]), *l = strchr(hex, s[4]);
    if (!h || !l || !*h || !*l) return -1;
    return (int)((h - hex) * 16 + (l - hex));
}

/* The bytes token id decodes to, written to o (at most len + 1 bytes). */
static int piece_of(const Tokenizer *t, int id, char *o) {
    const char *s = t->text[id];
    int n = t->len[id], ty = t->type[id], k = 0;
    if (ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_USER_DEFINED || ty == TOK_TYPE_UNKNOWN) {
        memcpy(o, s, n);
        return n;
    }
    if (t->model == TOK_BPE && t->byte_level) {
        for (int i = 0; i < n;) {
            uint32_t cp;
            int m = utf8_decode((const unsigned char *)s + i, n - i, &cp);
            int byte = bytelevel_byte(cp);
            if (byte >= 0) o[k++] = (char)byte;
            else memcpy(o + k, s + i, m), k += m;
            i += m;
        }
        return k;
    }
    if (t->model == TOK_SPM || t->model == TOK_BPE) {
        int byte = parse_byte_token(s, n);
        if (byte >= 0 && (ty == TOK_TYPE_BYTE || t->byte_fallback)) {
            o[0] = (char)byte;
            return 1;
        }
        for (int i = 0; i < n; i++) {
            if (i + 3 <= n && !memcmp(s + i, "\xe2\x96\x81", 3)) {
                o[k++] = ' ';
                i += 2;
            } else {
                o[k++] = s[i];
            }
        }
        return k;
    }
    /* WordPiece: words start with a space, continuations do not */
    int ls = (int)strlen(t->wp_start), lc = (int)strlen(t->wp_cont);
    if (lc && n >= lc && !memcmp(s, t->wp_cont, lc)) {
        memcpy(o, s + lc, n - lc);
        return n - lc;
    }
    if (ls && n >= ls && !memcmp(s, t->wp_start, ls)) {
        o[0] = ' ';
        memcpy(o + 1, s + ls, n - ls);
        return n - ls + 1;
    }
    if (!lc) { /* "▁" convention: a bare piece is a continuation */
        memcpy(o, s, n);
        return n;
    }
    o[0] = ' ';
    memcpy(o + 1, s, n);
    return n + 1;
}

/* What each token decodes to, computed once so that decoding is a lookup. */
void tok_build_pieces(Tokenizer *t) {
    free(t->piece);
    free(t->piece_pool);
    free(t->piece_len);
    t->piece = xmalloc(t->n * sizeof(char *));
    t->piece_len = xmalloc(t->n * sizeof(int));
    size_t total = 1;
    for (int id = 0; id < t->n; id++) total += t->len[id] + 2; /* a piece is at most one byte longer, + NUL */
    t->piece_pool = xmalloc(total);
    size_t at = 0;
    for (int id = 0; id < t->n; id++) {
        int k = piece_of(t, id, t->piece_pool + at);
        t->piece[id] = t->piece_pool + at;
        t->piece_len[id] = k;
        t->piece_pool[at + k] = 0;
        at += k + 1;
    }
}

Tokenizer *tok_new(const TokVocab *v, Err *e) {
    if (v->n <= 0) return err_set(e, ERR_PARSE, "tokenizer: empty vocabulary"), NULL;
    if (v->model != TOK_BPE && v->model != TOK_SPM && v->model != TOK_WPM)
        return err_set(e, ERR_UNSUPPORTED, "tokenizer: unknown model kind %d", (int)v->model), NULL;
    Tokenizer *t = xcalloc(1, sizeof *t);
    t->model = v->model;
    t->n = v->n;
    t->text = xmalloc(v->n * sizeof(char *));
    t->len = xmalloc(v->n * sizeof(int));
    t->score = xcalloc(v->n, sizeof(float));
    t->type = xmalloc(v->n);
    size_t total = 0;
    for (int i = 0; i < v->n; i++) {
        t->len[i] = v->text[i] ? (int)strlen(v->text[i]) : 0;
        total += t->len[i] + 1;
    }
    t->text_pool = xmalloc(total);
    size_t at = 0;
    for (int i = 0; i < v->n; i++) {
        t->text[i] = t->text_pool + at;
        memcpy(t->text[i], v->text[i] ? v->text[i] : "", t->len[i]);
        t->text[i][t->len[i]] = 0;
        at += t->len[i] + 1;
        if (v->score) t->score[i] = v->score[i];
        int ty = v->type ? v->type[i] : TOK_TYPE_NORMAL;
        t->type[i] = (uint8_t)(ty >= TOK_TYPE_NORMAL && ty <= TOK_TYPE_BYTE ? ty : TOK_TYPE_NORMAL);
    }
    strmap_build(t);
    t->bos = t->eos = t->unk = t->pad = -1;
    t->byte_level = v->model == TOK_BPE;
    t->add_space_prefix = v->model == TOK_SPM;
    t->strip_decoded_space = v->model == TOK_SPM;
    t->wp_decode = v->model == TOK_WPM;
    strcpy(t->wp_start, "\xe2\x96\x81");
    t->wp_cont[0] = 0;
    t->wp_max_chars = 100;
    if (v->model == TOK_WPM) {
        t->norm = NORM_BERT;
        t->bert_lower = t->bert_strip_accents = t->bert_chinese = t->bert_clean = 1;
    }
    for (int b = 0; b < 256; b++) {
        char c[2], hx[8];
        int k = bytelevel_char((unsigned char)b, c);
        t->byte_id[b] = strmap_get(t, c, k);
        snprintf(hx, sizeof hx, "<0x%02X>", b);
        t->spm_byte[b] = strmap_get(t, hx, 6);
    }
    t->byte_fallback = v->model == TOK_SPM && t->spm_byte['A'] >= 0;
    /* as llama.cpp's special-token cache: control and unknown tokens match
     * their text only with parse_special, user-defined ones always */
    for (int i = 0; i < v->n; i++) {
        int ty = t->type[i];
        if (ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_USER_DEFINED || ty == TOK_TYPE_UNKNOWN)
            tok_add_added(t, i, NULL, ty != TOK_TYPE_USER_DEFINED, 0, 0, 0, 0);
    }
    if (v->n_merges > 0) {
        const char **l = xmalloc(v->n_merges * sizeof(char *)), **r = xmalloc(v->n_merges * sizeof(char *));
        char **own = xmalloc(v->n_merges * sizeof(char *));
        int rc = 0;
        for (int i = 0; i < v->n_merges; i++) {
            own[i] = xstrdup(v->merges[i] ? v->merges[i] : "");
            char *sp = strchr(own[i], ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                rc = err_set(e, ERR_PARSE, "merge %d: expected \"left right\", got \"%s\"", i, own[i]);
                l[i] = r[i] = NULL;
                for (int j = 0; j <= i; j++) free(own[j]);
                break;
            }
            *sp = 0;
            l[i] = own[i];
            r[i] = sp + 1;
        }
        if (rc == 0) {
            rc = tok_add_merges(t, v->n_merges, l, r, e);
            for (int i = 0; i < v->n_merges; i++) free(own[i]);
        }
        free(l);
        free(r);
        free(own);
        if (rc) {
            tok_free(t);
            return NULL;
        }
    }
    if (v->model == TOK_BPE && tok_set_pre(t, "gpt-2", e)) {
        tok_free(t);
        return NULL;
    }
    tok_build_pieces(t);
    return t;
}

void tok_set_specials(Tokenizer *t, int bos, int eos, int unk, int pad, int add_bos, int add_eos) {
    t->bos = bos >= 0 && bos < t->n ? bos : -1;
    t->eos = eos >= 0 && eos < t->n ? eos : -1;
    t->unk = unk >= 0 && unk < t->n ? unk : -1;
    t->pad = pad >= 0 && pad < t->n ? pad : -1;
    t->n_pre = t->n_post = 0;
    if (add_bos && t->bos >= 0) t->pre_ids[t->n_pre++] = t->bos;
    if (add_eos && t->eos >= 0) t->post_ids[t->n_post++] = t->eos;
    if (t->eos >= 0) tok_add_eot(t, t->eos);
}

void tok_add_eot(Tokenizer *t, int id) {
    if (id < 0 || id >= t->n || tok_is_eot(t, id)) return;
    t->eot = xrealloc(t->eot, (t->n_eot + 1) * sizeof(int32_t));
    t->eot[t->n_eot++] = id;
}

void tok_set_add_space_prefix(Tokenizer *t, int on) {
    t->add_space_prefix = on;
    t->strip_decoded_space = on;
}

void tok_free(Tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].text != t->text[t->added[i].id]) free((char *)t->added[i].text);
    free(t->text_pool);
    free(t->piece_pool);
    free(t->text);
    free(t->len);
    free(t->score);
    free(t->type);
    free(t->piece);
    free(t->piece_len);
    free(t->map.slot);
    free(t->merges.key);
    free(t->merges.rank);
    free(t->merges.merged);
    for (int i = 0; i < t->n_re; i++) pcre2_code_free(t->re[i]);
    free(t->added);
    free(t->eot);
    free(t);
}

const char *tok_token_str(const Tokenizer *t, int id) { return id >= 0 && id < t->n ? t->text[id] : NULL; }
const char *tok_token_bytes(const Tokenizer *t, int id, int *len) {
    if (id < 0 || id >= t->n) return NULL;
    if (len) *len = t->piece_len[id];
    return t->piece[id];
}
int tok_vocab_size(const Tokenizer *t) { return t->n; }
float tok_token_score(const Tokenizer *t, int id) { return id >= 0 && id < t->n ? t->score[id] : 0; }
int tok_token_type(const Tokenizer *t, int id) { return id >= 0 && id < t->n ? t->type[id] : 0; }
TokModel tok_model(const Tokenizer *t) { return t->model; }
int tok_find(const Tokenizer *t, const char *s) {
    for (int i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].text, s)) return t->added[i].id;
    return strmap_get(t, s, strlen(s));
}
int tok_bos(const Tokenizer *t) { return t->bos; }
int tok_eos(const Tokenizer *t) { return t->eos; }
int tok_pad(const Tokenizer *t) { return t->pad; }
int tok_unk(const Tokenizer *t) { return t->unk; }
const int32_t *tok_eot(const Tokenizer *t, int *n) {
    *n = t->n_eot;
    return t->eot;
}
int tok_is_eot(const Tokenizer *t, int id) {
    for (int i = 0; i < t->n_eot; i++)
        if (t->eot[i] == id) return 1;
    return 0;
}
int tok_is_special(const Tokenizer *t, int id) { return id >= 0 && id < t->n && t->type[id] == TOK_TYPE_CONTROL; }
