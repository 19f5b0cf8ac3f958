/* jinja_format: Python's printf-style string formatting, `fmt % args` and
 * jinja2's `fmt|format(*args, **kwargs)` (which is `fmt % (kwargs or
 * args)`). Conversions: %s %r %a %d %i %u %x %X %o %e %E %f %F %g %G %c and
 * %%, with a `(name)` key into a mapping, the flags - + space # 0, a width
 * and a precision; `*` widths are refused. Widths and precisions of %s
 * count code points, as Python's do. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "tok/jinja_int.h"

/* Appends s (n bytes) padded to width code points (left: pad on the right). */
static void pad_append(StrBuf *b, const char *s, size_t n, long width, int left, char fill) {
    long len = (long)ju_len(s, n);
    if (!left)
        for (long i = len; i < width; i++) sb_appendc(b, fill);
    sb_appendn(b, s, n);
    if (left)
        for (long i = len; i < width; i++) sb_appendc(b, ' ');
}

/* One numeric conversion through C's printf, which shares Python's flags
 * for these types; '#o' differs (Python writes 0o) and is written here. */
static int num_conv(JCtx *c, const JNode *at, StrBuf *b, const char *flags, long width, long prec,
                    char type, const JVal *v) {
    if (!jv_is_num(v))
        return jerr(c, at, ERR_PARSE, "%%%c format: a real number is required, not %s", type,
                    jv_type_name(v)), -1;
    char spec[48];
    int alt_o = type == 'o' && strchr(flags, '#');
    char fl[8];
    size_t k = 0;
    for (const char *f = flags; *f && k < sizeof fl - 1; f++)
        if (!(alt_o && *f == '#')) fl[k++] = *f;
    fl[k] = 0;
    if (strchr("dixXo", type)) {
        if (v->t == JV_FLOAT && type != 'd' && type != 'i')
            return jerr(c, at, ERR_PARSE, "%%%c format: an integer is required, not float", type), -1;
        double f = jv_num(v);
        if (v->t == JV_FLOAT && !(f > -9.2e18 && f < 9.2e18))
            return jerr(c, at, ERR_PARSE, "%%%c format: %g does not fit an integer", type, f), -1;
        long long x = v->t == JV_FLOAT ? (long long)f : v->t == JV_INT ? (long long)v->i : v->b;
        if (alt_o) { /* Python: sign, then 0o, then the digits (zero padding after the 0o) */
            StrBuf t;
            sb_init(&t);
            sb_printf(&t, "%s0o%llo", x < 0 ? "-" : strchr(fl, '+') ? "+" : strchr(fl, ' ') ? " " : "",
                      x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x);
            size_t lead = (x < 0 || strchr(fl, '+') || strchr(fl, ' ')) ? 3 : 2;
            if (strchr(fl, '0') && !strchr(fl, '-') && (long)t.len < width) {
                sb_appendn(b, t.s, lead);
                for (long i = (long)t.len; i < width; i++) sb_appendc(b, '0');
                sb_append(b, t.s + lead);
            } else {
                pad_append(b, t.s, t.len, width, strchr(fl, '-') != NULL, ' ');
            }
            sb_free(&t);
            return 0;
        }
        const char *conv = type == 'x' ? "x" : type == 'X' ? "X" : type == 'o' ? "o" : "d";
        snprintf(spec, sizeof spec, "%%%s*%sll%s", fl, prec >= 0 ? ".*" : "", conv);
        if (prec >= 0) sb_printf(b, spec, (int)width, (int)prec, x);
        else sb_printf(b, spec, (int)width, x);
    } else {
        snprintf(spec, sizeof spec, "%%%s*.*%c", fl, type);
        sb_printf(b, spec, (int)width, (int)(prec >= 0 ? prec : 6), jv_num(v));
    }
    return 0;
}

JVal *jformat_percent(JCtx *c, const JNode *at, JVal *fmt, JVal *args) {
    if (fmt->b)
        return jerr(c, at, ERR_UNSUPPORTED, "%% formatting of a safe (Markup) string is not supported");
    int tuple = args->t == JV_LIST && args->i == 1 && !args->b;
    int mapping = args->t == JV_DICT || args->t == JV_NS;
    int next = 0;
    StrBuf b;
    sb_init(&b);
    const char *s = fmt->s;
    size_t n = fmt->n;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            sb_appendc(&b, s[i]);
            continue;
        }
        if (++i >= n) goto incomplete;
        JVal *v = NULL;
        if (s[i] == '(') { /* %(key)s */
            size_t k0 = ++i;
            while (i < n && s[i] != ')') i++;
            if (i >= n) goto incomplete;
            if (!mapping) {
                sb_free(&b);
                return jerr(c, at, ERR_PARSE, "%% format: a mapping is required for %%(key)");
            }
            v = jd_get(args->d, s + k0, i - k0);
            if (!v) {
                char *key = ja_strndup(c->ar, s + k0, i - k0);
                sb_free(&b);
                return jerr(c, at, ERR_PARSE, "%% format: no key '%s' in the mapping", key);
            }
            if (++i >= n) goto incomplete;
        }
        char flags[8];
        size_t nf = 0;
        while (i < n && strchr("-+ #0", s[i])) {
            if (nf < sizeof flags - 1 && !memchr(flags, s[i], nf)) flags[nf++] = s[i];
            i++;
        }
        flags[nf] = 0;
        long width = 0, prec = -1;
        if (i < n && s[i] == '*') {
            sb_free(&b);
            return jerr(c, at, ERR_UNSUPPORTED, "%% format: '*' widths are not supported");
        }
        for (; i < n && isdigit((unsigned char)s[i]); i++)
            if (width <= 4096) width = width * 10 + (s[i] - '0');
        if (i < n && s[i] == '.') {
            prec = 0;
            i++;
            for (; i < n && isdigit((unsigned char)s[i]); i++)
                if (prec <= 4096) prec = prec * 10 + (s[i] - '0');
        }
        if (width > 4096 || prec > 4096) { /* bounds the output of one conversion */
            sb_free(&b);
            return jerr(c, at, ERR_PARSE, "%% format: width or precision past 4096");
        }
        while (i < n && strchr("hlL", s[i])) i++; /* length modifiers: ignored, as Python does */
        if (i >= n) goto incomplete;
        char type = s[i];
        if (type == '%') {
            sb_appendc(&b, '%');
            continue;
        }
        if (!strchr("sradiuxXoeEfFgGc", type)) {
            sb_free(&b);
            return jerr(c, at, ERR_PARSE, "%% format: unsupported format character '%c'", type);
        }
        if (!v) {
            if (tuple) {
                if (next >= args->l->n) {
                    sb_free(&b);
                    return jerr(c, at, ERR_PARSE, "%% format: not enough arguments for format string");
                }
                v = args->l->v[next++];
            } else {
                if (next++ > 0) {
                    sb_free(&b);
                    return jerr(c, at, ERR_PARSE, "%% format: not enough arguments for format string");
                }
                v = args;
            }
        }
        if (type == 'u') type = 'd';
        if (type == 's' || type == 'r' || type == 'a') {
            StrBuf t;
            sb_init(&t);
            if (type == 's') jv_str_append(&t, v);
            else jv_repr_append(&t, v);
            size_t len = t.len;
            if (prec >= 0) len = ju_offset(t.s ? t.s : "", t.len, (size_t)prec);
            pad_append(&b, t.s ? t.s : "", len, width, strchr(flags, '-') != NULL, ' ');
            sb_free(&t);
        } else if (type == 'c') {
            if (v->t == JV_STR && ju_len(v->s, v->n) == 1) {
                pad_append(&b, v->s, v->n, width, strchr(flags, '-') != NULL, ' ');
            } else {
                sb_free(&b);
                return jerr(c, at, ERR_PARSE, "%%c format: a single character is required");
            }
        } else if (num_conv(c, at, &b, flags, width, prec, type, v)) {
            sb_free(&b);
            return NULL;
        }
        if (b.len > c->max_output) {
            sb_free(&b);
            return jerr(c, at, ERR_PARSE, "%% format: output past %zu bytes", c->max_output);
        }
    }
    if (tuple && next < args->l->n) {
        sb_free(&b);
        return jerr(c, at, ERR_PARSE, "%% format: not all arguments converted during string formatting");
    }
    if (!tuple && !mapping && next == 0) {
        sb_free(&b);
        return jerr(c, at, ERR_PARSE, "%% format: not all arguments converted during string formatting");
    }
    JVal *r = jv_str(c, b.s ? b.s : "", b.len);
    sb_free(&b);
    return r;
incomplete:
    sb_free(&b);
    return jerr(c, at, ERR_PARSE, "%% format: incomplete format");
}
