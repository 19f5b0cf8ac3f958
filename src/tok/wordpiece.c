/* wordpiece: BERT's tokenizer.
 *
 * The BERT normaliser cleans the text (drops control characters, makes
 * every whitespace a space), puts spaces around CJK ideographs, strips
 * accents (NFD, then drop the combining marks) and lowercases. Words are
 * then cut at whitespace and punctuation, and each word is split greedily
 * into the longest vocabulary pieces: the first with the word-start prefix
 * ("" in tokenizer.json, "▁" in GGUF), the rest with the continuation
 * prefix ("##" in tokenizer.json, "" in GGUF). A word that cannot be
 * spelled entirely becomes one unknown token. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok/tok_internal.h"

static int is_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS: return 1;
    default: return 0;
    }
}

static int is_space(uint32_t c) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x85 ||
        c == 0x2028 || c == 0x2029)
        return 1;
    return utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_ZS;
}

static int is_punct(uint32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
        return 1;
    int cat = utf8proc_category((utf8proc_int32_t)c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

static int is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) ||
           (c >= 0x2B920 && c <= 0x2CEAF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static void put_cp(StrBuf *b, uint32_t c) {
    char u[4];
    sb_appendn(b, u, utf8_encode(c, u));
}

char *bert_normalize(const Tokenizer *t, const char *s, size_t n, size_t *out_n) {
    StrBuf b;
    sb_init(&b);
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        i += utf8_decode(p + i, n - i, &c);
        if (t->bert_clean) {
            if (c == 0 || c == 0xFFFD || is_control(c)) continue;
            if (is_space(c)) c = ' ';
        }
        if (t->bert_chinese && is_cjk(c)) {
            sb_appendc(&b, ' ');
            put_cp(&b, c);
            sb_appendc(&b, ' ');
            continue;
        }
        utf8proc_int32_t d[8];
        int last = 0, nd = 1;
        d[0] = (utf8proc_int32_t)c;
        if (t->bert_strip_accents) {
            utf8proc_ssize_t k = utf8proc_decompose_char((utf8proc_int32_t)c, d, 8, UTF8PROC_DECOMPOSE, &last);
            nd = k > 0 && k <= 8 ? (int)k : 1;
            if (nd == 1 && k <= 0) d[0] = (utf8proc_int32_t)c;
        }
        for (int j = 0; j < nd; j++) {
            if (t->bert_strip_accents && utf8proc_category(d[j]) == UTF8PROC_CATEGORY_MN) continue;
            put_cp(&b, t->bert_lower ? (uint32_t)utf8proc_tolower(d[j]) : (uint32_t)d[j]);
        }
    }
    *out_n = b.len;
    return b.s ? sb_take(&b) : xstrdup("");
}

static void wpm_word(const Tokenizer *t, const char *w, size_t n, IdVec *out) {
    if (n == 0) return;
    size_t nchars = 0;
    for (size_t i = 0; i < n; i++) nchars += ((unsigned char)w[i] & 0xC0) != 0x80;
    int first = out->n;
    if ((int)nchars > t->wp_max_chars) goto unknown;
    char buf[1024];
    for (size_t start = 0; start < n;) {
        const char *pre = start == 0 ? t->wp_start : t->wp_cont;
        size_t lp = strlen(pre), end = n;
        int id = -1;
        while (end > start) {
            if (lp + end - start < sizeof buf) {
                memcpy(buf, pre, lp);
                memcpy(buf + lp, w + start, end - start);
                id = strmap_get(t, buf, lp + end - start);
                if (id >= 0) break;
            }
            do end--; /* back by one character */
            while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80);
        }
        if (id < 0) goto unknown;
        idvec_push(out, id);
        start = end;
    }
    return;
unknown:
    out->n = first;
    if (t->unk >= 0) idvec_push(out, t->unk);
}

/* s is normalised text: cut at spaces (dropped) and punctuation (kept alone). */
void wpm_encode(const Tokenizer *t, const char *s, size_t n, IdVec *out) {
    const unsigned char *p = (const unsigned char *)s;
    size_t word = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        int k = utf8_decode(p + i, n - i, &c);
        if (is_space(c) || is_punct(c)) {
            wpm_word(t, s + word, i - word, out);
            if (!is_space(c)) wpm_word(t, s + i, k, out);
            word = i + k;
        }
        i += k;
    }
    wpm_word(t, s + word, n - word, out);
}
