/* pretok: the regex pre-tokenizers of byte-level BPE.
 *
 * Text is cut into words by a regex before BPE so that merges never cross
 * word, number or punctuation boundaries. The patterns come from the
 * tokenizer (tokenizer.json "Split" pre-tokenizers) or, for GGUF, from the
 * pre-tokenizer name llama.cpp stores. Matches and the gaps between them
 * both become pieces ("Isolated" behaviour). PCRE2 with UCP gives \p{L},
 * \p{N} and \s their Unicode meaning, as Oniguruma does in the tokenizers
 * library; invalid UTF-8 never matches and ends up in a gap piece. */
#include <string.h>

#include "tok/tok_internal.h"

const char *const TOK_RE_GPT2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char *const TOK_RE_LLAMA3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char *const TOK_RE_QWEN2 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

int pretok_compile(Tokenizer *t, const char *pattern, Err *e) {
    if (t->n_re >= (int)(sizeof t->re / sizeof t->re[0]))
        return err_set(e, ERR_UNSUPPORTED, "pre-tokenizer: more than %d regex splits",
                       (int)(sizeof t->re / sizeof t->re[0]));
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return err_set(e, ERR_PARSE, "pre-tokenizer regex at offset %zu: %s (pattern %s)", (size_t)off,
                       (char *)msg, pattern);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if JIT is unavailable */
    t->re[t->n_re++] = re;
    return 0;
}

/* "default" (old conversions that name none) gets GPT-2's regex; the loader
 * warns, since llama.cpp's own fallback differs in details. */
int tok_set_pre(Tokenizer *t, const char *name, Err *e) {
    const char *re = NULL;
    if (!name || !strcmp(name, "gpt-2") || !strcmp(name, "gpt2") || !strcmp(name, "default"))
        re = TOK_RE_GPT2;
    else if (!strcmp(name, "llama3") || !strcmp(name, "llama-bpe") || !strcmp(name, "llama-v3") ||
             !strcmp(name, "smaug-bpe"))
        re = TOK_RE_LLAMA3;
    else if (!strcmp(name, "qwen2") || !strcmp(name, "deepseek-r1-qwen"))
        re = TOK_RE_QWEN2;
    if (!re)
        return err_set(e, ERR_UNSUPPORTED,
                       "unknown pre-tokenizer \"%s\" (tokenizer.ggml.pre); known: gpt-2, default, "
                       "llama-bpe, llama3, smaug-bpe, qwen2, deepseek-r1-qwen",
                       name);
    for (int i = 0; i < t->n_re; i++) pcre2_code_free(t->re[i]);
    t->n_re = 0;
    return pretok_compile(t, re, e);
}

static void split_level(const Tokenizer *t, int level, const char *s, size_t n, PieceFn fn, IdVec *out) {
    if (n == 0) return;
    if (level >= t->n_re) {
        fn(t, s, n, out);
        return;
    }
    pcre2_code *re = t->re[level];
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    size_t at = 0, gap = 0;
    while (at <= n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, at, 0, md, NULL);
        /* a JIT resource limit: the interpreter (heap-based) has none */
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) rc = pcre2_match(re, (PCRE2_SPTR)s, n, at, PCRE2_NO_JIT, md, NULL);
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t b = ov[0], en = ov[1];
        if (en == b) { /* empty match: move on by one character */
            at = b + 1;
            while (at < n && ((unsigned char)s[at] & 0xC0) == 0x80) at++;
            continue;
        }
        if (b > gap) split_level(t, level + 1, s + gap, b - gap, fn, out);
        split_level(t, level + 1, s + b, en - b, fn, out);
        gap = at = en;
    }
    if (gap < n) split_level(t, level + 1, s + gap, n - gap, fn, out);
    pcre2_match_data_free(md);
}

void pretok_split(const Tokenizer *t, const char *s, size_t n, PieceFn fn, IdVec *out) {
    split_level(t, 0, s, n, fn, out);
}
