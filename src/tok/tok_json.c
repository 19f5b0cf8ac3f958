/* tok_json: a small, fast JSON scanner for tokenizer.json.
 *
 * The vocabulary and merges of a real tokenizer.json are ~300k small
 * values; building a jansson tree for them alone costs about half a
 * second. This scanner reads those two arrays straight into C strings and
 * hands every other value, as its source span, to jansson. */
#include <string.h>

#include "tok/tok_json.h"

void js_ws(JScan *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) j->p++;
}

int js_fail(JScan *j, Err *e, const char *what) {
    /* report a line and column (in bytes, from 1): count newlines up to the
     * failure point */
    int line = 1;
    const char *bol = j->start;
    for (const char *q = j->start; q < j->p && q < j->end; q++)
        if (*q == '\n') line++, bol = q + 1;
    return err_set(e, ERR_PARSE, "%s:%d: expected %s (column %ld)", j->name, line, what, (long)(j->p - bol) + 1);
}

int js_expect(JScan *j, char c, Err *e) {
    js_ws(j);
    if (j->p >= j->end || *j->p != c) {
        char what[8] = {'\'', c, '\'', 0};
        return js_fail(j, e, what);
    }
    j->p++;
    return 0;
}

/* Is the next non-space character c? (consumes it if so) */
int js_peek(JScan *j, char c) {
    js_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_u4(JScan *j, unsigned *u) {
    if (j->end - j->p < 4) return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(j->p[i]);
        if (h < 0) return -1;
        v = v * 16 + (unsigned)h;
    }
    j->p += 4;
    *u = v;
    return 0;
}

int js_string(JScan *j, StrBuf *out, Err *e) {
    if (js_expect(j, '"', e)) return -1;
    sb_clear(out);
    for (;;) {
        const char *q = j->p;
        while (q < j->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20) q++;
        sb_appendn(out, j->p, q - j->p);
        j->p = q;
        if (q >= j->end) return js_fail(j, e, "the end of a string");
        if (*q == '"') {
            j->p++;
            return 0;
        }
        if ((unsigned char)*q < 0x20) return js_fail(j, e, "no control character inside a string");
        const char *esc = j->p; /* errors in an escape point at its backslash */
        j->p++;
        if (j->p >= j->end) return js_fail(j, e, "an escape");
        char c = *j->p++;
        switch (c) {
        case '"': sb_appendc(out, '"'); break;
        case '\\': sb_appendc(out, '\\'); break;
        case '/': sb_appendc(out, '/'); break;
        case 'b': sb_appendc(out, '\b'); break;
        case 'f': sb_appendc(out, '\f'); break;
        case 'n': sb_appendc(out, '\n'); break;
        case 'r': sb_appendc(out, '\r'); break;
        case 't': sb_appendc(out, '\t'); break;
        case 'u': {
            unsigned u, lo;
            if (read_u4(j, &u)) return j->p = esc, js_fail(j, e, "4 hex digits after \\u");
            if (u >= 0xD800 && u <= 0xDBFF) {
                /* UTF-16 in JSON: a high surrogate must be followed by a low one */
                const char *lo_esc = j->p;
                if (j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u') {
                    j->p += 2;
                    if (read_u4(j, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        return j->p = lo_esc, js_fail(j, e, "a low surrogate (\\uDC00-\\uDFFF) after a high surrogate");
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                } else {
                    return j->p = esc, js_fail(j, e, "a low surrogate escape after the high surrogate (a lone high surrogate is not a character)");
                }
            } else if (u >= 0xDC00 && u <= 0xDFFF) {
                return j->p = esc, js_fail(j, e, "no lone low surrogate (\\uDC00-\\uDFFF without a high one before it)");
            }
            if (u == 0) return j->p = esc, js_fail(j, e, "no NUL character (\\u0000) in a token");
            char buf[4];
            int k;
            if (u < 0x80) buf[0] = (char)u, k = 1;
            else if (u < 0x800) buf[0] = (char)(0xC0 | (u >> 6)), buf[1] = (char)(0x80 | (u & 0x3F)), k = 2;
            else if (u < 0x10000)
                buf[0] = (char)(0xE0 | (u >> 12)), buf[1] = (char)(0x80 | ((u >> 6) & 0x3F)),
                buf[2] = (char)(0x80 | (u & 0x3F)), k = 3;
            else
                buf[0] = (char)(0xF0 | (u >> 18)), buf[1] = (char)(0x80 | ((u >> 12) & 0x3F)),
                buf[2] = (char)(0x80 | ((u >> 6) & 0x3F)), buf[3] = (char)(0x80 | (u & 0x3F)), k = 4;
            sb_appendn(out, buf, k);
            break;
        }
        default: return j->p = esc, js_fail(j, e, "a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
        }
    }
}

int js_int(JScan *j, long *v, Err *e) {
    js_ws(j);
    const char *q = j->p;
    int neg = 0;
    if (q < j->end && *q == '-') neg = 1, q++;
    if (q >= j->end || *q < '0' || *q > '9') return js_fail(j, e, "an integer");
    long x = 0;
    while (q < j->end && *q >= '0' && *q <= '9') {
        if (x > 100000000000L) return js_fail(j, e, "an integer of sensible size");
        x = x * 10 + (*q++ - '0');
    }
    if (q < j->end && (*q == '.' || *q == 'e' || *q == 'E')) return js_fail(j, e, "an integer");
    j->p = q;
    *v = neg ? -x : x;
    return 0;
}

int js_skip(JScan *j, int depth, Err *e) {
    if (depth > 64) return js_fail(j, e, "nesting under 64 levels");
    js_ws(j);
    if (j->p >= j->end) return js_fail(j, e, "a value");
    char c = *j->p;
    if (c == '"') {
        j->p++;
        while (j->p < j->end && *j->p != '"') j->p += (*j->p == '\\' && j->p + 1 < j->end) ? 2 : 1;
        if (j->p >= j->end) return js_fail(j, e, "the end of a string");
        j->p++;
        return 0;
    }
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        if (js_peek(j, close)) return 0;
        for (;;) {
            if (c == '{') {
                if (js_skip(j, depth + 1, e) || js_expect(j, ':', e)) return -1;
            }
            if (js_skip(j, depth + 1, e)) return -1;
            if (js_peek(j, ',')) continue;
            return js_expect(j, close, e);
        }
    }
    /* number, true, false, null */
    const char *q = j->p;
    while (q < j->end && (strchr("+-.eE0123456789", *q) || (*q >= 'a' && *q <= 'z'))) q++;
    if (q == j->p) return js_fail(j, e, "a value");
    j->p = q;
    return 0;
}
