/* jinja_lex: splits a template into data text and the tokens inside
 * {{ }} and {% %}, dropping {# #} comments, and applies whitespace control
 * as jinja2 does with transformers' settings:
 *   - "{%-", "{{-", "{#-" strip all whitespace before the tag; "-%}", "-}}",
 *     "-#}" all whitespace after it;
 *   - lstrip_blocks: spaces and tabs between the start of a line and a
 *     "{%" or "{#" are dropped ("{%+" keeps them);
 *   - trim_blocks: one newline right after "%}" or "#}" is dropped ("+%}"
 *     keeps it).
 * {% raw %}...{% endraw %} becomes one data token. Newlines are normalised
 * first (normalize_source). */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tok/jinja_int.h"

typedef struct Lexer {
    const char *src;
    size_t pos;
    JArena *a;
    JTok *t;
    int n, cap;
    Err *e;
    size_t last_p; /* positions only grow: count lines from the last token */
    int last_line, last_col;
} Lexer;

static void pos_of(const char *src, size_t p, int *line, int *col) {
    int l = 1, c = 1;
    for (size_t i = 0; i < p; i++) {
        if (src[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static JTok *push(Lexer *L, JTokType t, const char *s, size_t n, size_t at) {
    if (L->n == L->cap) {
        L->cap = L->cap ? 2 * L->cap : 256;
        L->t = xrealloc(L->t, (size_t)L->cap * sizeof *L->t);
    }
    JTok *k = &L->t[L->n++];
    memset(k, 0, sizeof *k);
    k->t = t;
    k->s = s;
    k->n = n;
    if (at < L->last_p) {
        L->last_p = 0;
        L->last_line = L->last_col = 1;
    }
    int line = L->last_line, col = L->last_col;
    for (size_t i = L->last_p; i < at; i++) {
        if (L->src[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    L->last_p = at;
    k->line = L->last_line = line;
    k->col = L->last_col = col;
    return k;
}

static int lerr(Lexer *L, size_t at, const char *msg) {
    int line, col;
    pos_of(L->src, at, &line, &col);
    return err_set(L->e, ERR_PARSE, "template line %d, column %d: %s", line, col, msg);
}

static void utf8_put(StrBuf *b, unsigned long cp) {
    if (cp < 0x80) {
        sb_appendc(b, (char)cp);
    } else if (cp < 0x800) {
        sb_appendc(b, (char)(0xC0 | (cp >> 6)));
        sb_appendc(b, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        sb_appendc(b, (char)(0xE0 | (cp >> 12)));
        sb_appendc(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        sb_appendc(b, (char)(0x80 | (cp & 0x3F)));
    } else {
        sb_appendc(b, (char)(0xF0 | (cp >> 18)));
        sb_appendc(b, (char)(0x80 | ((cp >> 12) & 0x3F)));
        sb_appendc(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        sb_appendc(b, (char)(0x80 | (cp & 0x3F)));
    }
}

/* A Python string literal at src[*p] (the quote), escapes decoded. */
static int lex_string(Lexer *L, size_t *p) {
    const char *s = L->src;
    size_t start = *p;
    char q = s[(*p)++];
    StrBuf b;
    sb_init(&b);
    while (s[*p] && s[*p] != q) {
        char c = s[*p];
        if (c == '\\' && s[*p + 1]) {
            char d = s[++*p];
            int hex = d == 'x' ? 2 : d == 'u' ? 4 : d == 'U' ? 8 : 0;
            if (hex) {
                unsigned long cp = 0;
                int k;
                for (k = 1; k <= hex && isxdigit((unsigned char)s[*p + (size_t)k]); k++) {
                    char h = s[*p + (size_t)k];
                    cp = cp * 16 + (unsigned long)(isdigit((unsigned char)h) ? h - '0'
                                                                              : (tolower(h) - 'a' + 10));
                }
                if (k <= hex || cp > 0x10FFFF) {
                    sb_free(&b);
                    return lerr(L, *p, "bad \\x, \\u or \\U escape in a string");
                }
                utf8_put(&b, cp);
                *p += (size_t)hex;
            } else {
                switch (d) {
                case 'n': sb_appendc(&b, '\n'); break;
                case 't': sb_appendc(&b, '\t'); break;
                case 'r': sb_appendc(&b, '\r'); break;
                case '0': sb_appendc(&b, '\0'); break;
                case 'a': sb_appendc(&b, '\a'); break;
                case 'b': sb_appendc(&b, '\b'); break;
                case 'f': sb_appendc(&b, '\f'); break;
                case 'v': sb_appendc(&b, '\v'); break;
                case '\n': break; /* line continuation */
                case '\\': case '\'': case '"': sb_appendc(&b, d); break;
                default: sb_appendc(&b, '\\'); sb_appendc(&b, d); break; /* Python keeps it */
                }
            }
        } else {
            sb_appendc(&b, c);
        }
        (*p)++;
    }
    if (!s[*p]) {
        sb_free(&b);
        return lerr(L, start, "unterminated string");
    }
    (*p)++;
    JTok *t = push(L, JT_STRING, ja_strndup(L->a, b.s ? b.s : "", b.len), b.len, start);
    (void)t;
    sb_free(&b);
    return 0;
}

static const char *const OPS[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%",
                                  "~", "<", ">", "=", "|", ".", ",", ":", "(", ")", "[", "]",
                                  "{", "}", NULL};

/* Tokens inside a tag from L->pos up to its end; block: "%}" ends it,
 * else "}}". Sets *strip_after for "-%}" / "-}}", *keep_nl for "+%}". */
static int lex_tag(Lexer *L, int block, int *strip_after, int *keep_nl) {
    const char *s = L->src;
    size_t p = L->pos;
    int depth = 0;
    char close = block ? '%' : '}';
    for (;;) {
        while (s[p] == ' ' || s[p] == '\t' || s[p] == '\n' || s[p] == '\r') p++;
        if (!s[p]) return lerr(L, L->pos, block ? "unclosed '{%'" : "unclosed '{{'");
        if ((s[p] == '-' || s[p] == '+') && s[p + 1] == close && s[p + 2] == '}' &&
            (block || depth == 0)) {
            *strip_after = s[p] == '-';
            *keep_nl = s[p] == '+';
            push(L, block ? JT_BLOCK_END : JT_VAR_END, s + p, 3, p);
            L->pos = p + 3;
            return 0;
        }
        if (s[p] == close && s[p + 1] == '}' && (block || depth == 0)) {
            push(L, block ? JT_BLOCK_END : JT_VAR_END, s + p, 2, p);
            L->pos = p + 2;
            return 0;
        }
        char c = s[p];
        if (c == '\'' || c == '"') {
            if (lex_string(L, &p)) return -1;
        } else if (isdigit((unsigned char)c)) {
            size_t a = p;
            int is_float = 0;
            while (isdigit((unsigned char)s[p]) || s[p] == '_') p++;
            if (s[p] == '.' && isdigit((unsigned char)s[p + 1])) {
                is_float = 1;
                p++;
                while (isdigit((unsigned char)s[p]) || s[p] == '_') p++;
            }
            if ((s[p] == 'e' || s[p] == 'E') &&
                (isdigit((unsigned char)s[p + 1]) ||
                 ((s[p + 1] == '+' || s[p + 1] == '-') && isdigit((unsigned char)s[p + 2])))) {
                is_float = 1;
                p += 2;
                while (isdigit((unsigned char)s[p])) p++;
            }
            char buf[64];
            size_t k = 0;
            for (size_t i = a; i < p && k < sizeof buf - 1; i++)
                if (s[i] != '_') buf[k++] = s[i];
            buf[k] = 0;
            errno = 0;
            int64_t iv = is_float ? 0 : strtoll(buf, NULL, 10);
            if (!is_float && (errno == ERANGE || k == sizeof buf - 1))
                return lerr(L, a, "integer literal past 64 bits (Python's big integers are not supported)");
            JTok *t = push(L, is_float ? JT_FLOAT : JT_INT, s + a, p - a, a);
            if (is_float) t->f = strtod(buf, NULL);
            else t->i = iv;
        } else if (isalpha((unsigned char)c) || c == '_') {
            size_t a = p;
            while (isalnum((unsigned char)s[p]) || s[p] == '_') p++;
            push(L, JT_NAME, s + a, p - a, a);
        } else {
            int found = 0;
            for (int i = 0; OPS[i]; i++) {
                size_t n = strlen(OPS[i]);
                if (!strncmp(s + p, OPS[i], n)) {
                    if (OPS[i][0] == '(' || OPS[i][0] == '[' || OPS[i][0] == '{') depth++;
                    if (OPS[i][0] == ')' || OPS[i][0] == ']' || OPS[i][0] == '}') depth--;
                    push(L, JT_OP, s + p, n, p);
                    p += n;
                    found = 1;
                    break;
                }
            }
            if (!found) {
                char msg[64];
                snprintf(msg, sizeof msg, "unexpected character '%c'", c);
                return lerr(L, p, msg);
            }
        }
    }
}

/* Does the block tag at s[p] (just after "{%" and its marker) read "raw"? */
static int is_raw_tag(const char *s, size_t p, size_t *after) {
    while (s[p] == ' ' || s[p] == '\t' || s[p] == '\n') p++;
    if (strncmp(s + p, "raw", 3) || isalnum((unsigned char)s[p + 3]) || s[p + 3] == '_') return 0;
    p += 3;
    while (s[p] == ' ' || s[p] == '\t' || s[p] == '\n') p++;
    if (s[p] == '-' || s[p] == '+') p++;
    if (s[p] != '%' || s[p + 1] != '}') return 0;
    *after = p + 2;
    return 1;
}

/* Appends data text src[a..b) as a token. */
static void push_data(Lexer *L, size_t a, size_t b) {
    /* copied: the template outlives the caller's source text */
    if (b > a) push(L, JT_DATA, ja_strndup(L->a, L->src + a, b - a), b - a, a);
}

/* The source as jinja2's lexer reads it: "\r\n" and "\r" become "\n", and
 * one newline that ends the template is dropped (keep_trailing_newline is
 * off in transformers' environment), so a template file's final newline
 * does not reach the prompt. In the arena: tokens point into it. */
static const char *normalize_source(const char *src, JArena *a) {
    size_t n = strlen(src), k = 0;
    char *s = ja_alloc(a, n + 1);
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '\r') {
            s[k++] = '\n';
            if (src[i + 1] == '\n') i++;
        } else {
            s[k++] = src[i];
        }
    }
    if (k && s[k - 1] == '\n') k--;
    s[k] = 0;
    return s;
}

int jinja_lex(const char *src, JArena *a, JTok **toks, int *ntoks, Err *e) {
    src = normalize_source(src, a);
    Lexer L = {.src = src, .a = a, .e = e, .last_line = 1, .last_col = 1};
    size_t p = 0;
    int strip_next = 0, trim_nl = 0;
    for (;;) {
        /* the data before the next tag */
        if (strip_next)
            while (src[p] && isspace((unsigned char)src[p])) p++;
        else if (trim_nl && src[p] == '\n')
            p++;
        strip_next = trim_nl = 0;
        size_t d0 = p;
        const char *tag = NULL;
        for (const char *q = src + p; *q; q++) {
            if (q[0] == '{' && (q[1] == '{' || q[1] == '%' || q[1] == '#')) {
                tag = q;
                break;
            }
        }
        size_t d1 = tag ? (size_t)(tag - src) : strlen(src + p) + p;
        if (!tag) {
            push_data(&L, d0, d1);
            break;
        }
        char kind = tag[1];
        char mark = tag[2];
        size_t end_data = d1;
        if (mark == '-') {
            while (end_data > d0 && isspace((unsigned char)src[end_data - 1])) end_data--;
        } else if (kind != '{' && mark != '+') {
            /* lstrip_blocks: only blanks between the line start and the tag */
            size_t k = end_data;
            while (k > d0 && (src[k - 1] == ' ' || src[k - 1] == '\t')) k--;
            if (k == 0 || src[k - 1] == '\n') end_data = k;
        }
        push_data(&L, d0, end_data);
        size_t body = d1 + 2 + ((mark == '-' || mark == '+') ? 1 : 0);
        if (kind == '#') {
            const char *end = strstr(src + body, "#}");
            if (!end) return free(L.t), lerr(&L, d1, "unclosed comment '{#'");
            p = (size_t)(end - src) + 2;
            if (end > src + body && end[-1] == '-') strip_next = 1;
            else if (!(end > src + body && end[-1] == '+')) trim_nl = 1;
            continue;
        }
        size_t after;
        if (kind == '%' && is_raw_tag(src, body, &after)) {
            /* raw: everything up to {% endraw %} is data */
            const char *q = src + after;
            for (;;) {
                q = strstr(q, "{%");
                if (!q) return free(L.t), lerr(&L, d1, "unclosed '{% raw %}'");
                size_t r = (size_t)(q - src) + 2;
                int m = src[r] == '-' || src[r] == '+';
                size_t x = r + (size_t)m;
                while (src[x] == ' ' || src[x] == '\t' || src[x] == '\n') x++;
                if (!strncmp(src + x, "endraw", 6)) {
                    size_t y = x + 6;
                    while (src[y] == ' ' || src[y] == '\t' || src[y] == '\n') y++;
                    int sm = src[y] == '-';
                    if (sm || src[y] == '+') y++;
                    if (src[y] == '%' && src[y + 1] == '}') {
                        size_t rs = after, re = (size_t)(q - src);
                        if (src[after - 3] == '-')
                            while (rs < re && isspace((unsigned char)src[rs])) rs++;
                        else if (src[rs] == '\n')
                            rs++;
                        if (src[r] == '-')
                            while (re > rs && isspace((unsigned char)src[re - 1])) re--;
                        push_data(&L, rs, re);
                        p = y + 2;
                        if (sm) strip_next = 1;
                        else if (src[y - 1] != '+') trim_nl = 1;
                        break;
                    }
                }
                q += 2;
            }
            continue;
        }
        push(&L, kind == '%' ? JT_BLOCK_BEGIN : JT_VAR_BEGIN, tag, 2, d1);
        L.pos = body;
        int sa = 0, keep = 0;
        if (lex_tag(&L, kind == '%', &sa, &keep)) return free(L.t), -1;
        p = L.pos;
        strip_next = sa;
        trim_nl = kind == '%' && !sa && !keep;
    }
    push(&L, JT_EOF, src + strlen(src), 0, strlen(src));
    *toks = L.t;
    *ntoks = L.n;
    return 0;
}
