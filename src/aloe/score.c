#include "aloe/score.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* The rule is in score.h; this file only reads lines by it. */

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

/* Markdown and list decoration before a label. */
static int is_mark(char c) { return c == '*' || c == '_' || c == '#' || c == '>' || c == '`' || c == '-' || c == '['; }

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int starts_word(const char *s, const char *end, const char *w) {
    size_t n = strlen(w);
    return (size_t)(end - s) >= n && !strncasecmp(s, w, n);
}

/* Skips an unsigned integer; *val is its value, capped (the cap only has
 * to stay out of 1-5). */
static const char *read_int(const char *s, const char *end, int *val) {
    *val = 0;
    while (s < end && is_digit(*s)) {
        if (*val < 1000) *val = *val * 10 + (*s - '0');
        s++;
    }
    return s;
}

/* A value at s: "-"? digits, then an optional scale "/D" or "out of D".
 * Returns where it ends and sets *v to 1-5, or 0 for an invalid value
 * (out of range, a decimal, a range, a negative, another scale); NULL when
 * no value starts at s. */
static const char *read_value(const char *s, const char *end, int *v) {
    int negative = 0, n;
    if (s < end && *s == '-') {
        if (s + 1 >= end || !is_digit(s[1])) return NULL;
        negative = 1;
        s++;
    }
    if (s >= end || !is_digit(*s)) return NULL;
    s = read_int(s, end, &n);
    *v = !negative && n >= 1 && n <= 5 ? n : 0;
    /* "4.5", "4,5", "4-5": not an integer score */
    if (s + 1 < end && (*s == '.' || *s == ',' || *s == '-') && is_digit(s[1])) {
        *v = 0;
        return read_int(s + 1, end, &n);
    }
    const char *t = s;
    while (t < end && (is_blank(*t) || *t == '*' || *t == '_')) t++;
    int has_scale = 0;
    if (t < end && *t == '/') {
        t++;
        has_scale = 1;
    } else if (starts_word(t, end, "out of")) {
        t += 6;
        has_scale = 1;
    }
    if (!has_scale) return s;
    while (t < end && is_blank(*t)) t++;
    if (t >= end || !is_digit(*t)) { /* "4/" or "4 out of" with no scale */
        *v = 0;
        return t;
    }
    t = read_int(t, end, &n);
    if (n != 5) *v = 0;
    return t;
}

static const char *const labels[] = {"final score", "final rating", "overall score", "overall rating",
                                     "score",       "rating",       "overall"};

/* Matches a label at s (one or more blanks between its words); returns
 * where it ends, or NULL. */
static const char *match_label(const char *s, const char *end) {
    for (size_t i = 0; i < sizeof labels / sizeof *labels; i++) {
        const char *p = s, *w = labels[i];
        while (*w && p < end) {
            if (*w == ' ') {
                if (!is_blank(*p)) break;
                while (p < end && is_blank(*p)) p++;
                w++;
            } else if (tolower((unsigned char)*p) == *w) {
                p++;
                w++;
            } else {
                break;
            }
        }
        if (!*w && !(p < end && isalnum((unsigned char)*p))) return p;
    }
    return NULL;
}

/* A labelled line's value start, or NULL when the line is not labelled. */
static const char *labelled(const char *s, const char *end) {
    while (s < end && (is_mark(*s) || is_blank(*s))) s++;
    s = match_label(s, end);
    if (!s) return NULL;
    while (s < end && (is_blank(*s) || *s == '*' || *s == '_')) s++;
    if (s < end && *s == '(') { /* "Score (1-5): 4" */
        const char *close = memchr(s, ')', (size_t)(end - s));
        if (!close) return NULL;
        s = close + 1;
        while (s < end && (is_blank(*s) || *s == '*' || *s == '_')) s++;
    }
    if (s >= end || (*s != ':' && *s != '=')) return NULL;
    s++;
    /* Not '-': "Score: -3" is a negative value, not a list mark. */
    while (s < end && (is_blank(*s) || *s == '*' || *s == '_' || *s == '`' || *s == '[' || *s == '(')) s++;
    return s;
}

/* The candidate of one line: 1 with *v set (1-5 or 0 = invalid), or 0 when
 * the line gives none. */
static int line_candidate(const char *s, const char *end, int *v) {
    const char *val = labelled(s, end);
    if (val) return read_value(val, end, v) != NULL;
    /* number-only: decoration, the value, decoration and end punctuation */
    while (s < end && (is_blank(*s) || *s == '*' || *s == '_' || *s == '#' || *s == '>' || *s == '`' ||
                       *s == '[' || *s == '('))
        s++;
    const char *t = read_value(s, end, v);
    if (!t) return 0;
    while (t < end && (is_blank(*t) || *t == '*' || *t == '_' || *t == '`' || *t == ']' || *t == ')' || *t == '.' ||
                       *t == '!' || *t == ';'))
        t++;
    return t == end;
}

int score_parse(const char *reply) {
    if (!reply) return 0;
    int score = 0;
    for (const char *line = reply; *line;) {
        const char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        int v;
        if (line_candidate(line, end, &v)) {
            if (!v || (score && v != score)) return 0; /* invalid, or ambiguous */
            score = v;
        }
        line = *end ? end + 1 : end;
    }
    return score;
}
