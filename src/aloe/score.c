#include "aloe/score.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* Markdown and list decoration that may surround the label and the value. */
static int is_mark(char c) { return c == '*' || c == '_' || c == '#' || c == '>' || c == '`' || c == '-' || c == '['; }

static const char *skip_marks(const char *s, const char *end) {
    while (s < end && (is_mark(*s) || *s == ' ' || *s == '\t')) s++;
    return s;
}

static int starts_word(const char *s, const char *end, const char *w) {
    size_t n = strlen(w);
    return (size_t)(end - s) >= n && !strncasecmp(s, w, n);
}

/* If [s, end) is a score line, returns where its value starts, else NULL. */
static const char *score_label(const char *s, const char *end) {
    s = skip_marks(s, end);
    if (starts_word(s, end, "final ")) s += 6;
    else if (starts_word(s, end, "overall ")) s += 8;
    if (!starts_word(s, end, "score")) return NULL;
    s += 5;
    while (s < end && (*s == '*' || *s == '_' || *s == ' ' || *s == '\t')) s++;
    if (s >= end || (*s != ':' && *s != '=')) return NULL;
    return s + 1;
}

/* The value of a score line: 1-5 or 0 when it is not a valid score. */
static int score_value(const char *s, const char *end) {
    /* Not skip_marks: "-3" must not read as 3. */
    while (s < end && (*s == ' ' || *s == '\t' || *s == '*' || *s == '_' || *s == '`' || *s == '[')) s++;
    if (s >= end || !isdigit((unsigned char)*s)) return 0;
    int v = 0;
    while (s < end && isdigit((unsigned char)*s)) {
        v = v * 10 + (*s - '0');
        if (v > 100) return 0;
        s++;
    }
    if (s < end && *s == '.' && s + 1 < end && isdigit((unsigned char)s[1])) return 0; /* 4.5 */
    const char *t = s;
    while (t < end && (*t == ' ' || *t == '*' || *t == '_')) t++;
    if (t < end && *t == '/') { /* a scale: must be out of 5 */
        t++;
        while (t < end && *t == ' ') t++;
        if (t >= end || *t != '5' || (t + 1 < end && isdigit((unsigned char)t[1]))) return 0;
    } else if (starts_word(t, end, "out of ")) {
        t += 7;
        if (t >= end || *t != '5' || (t + 1 < end && isdigit((unsigned char)t[1]))) return 0;
    }
    return v >= 1 && v <= 5 ? v : 0;
}

int score_parse(const char *reply) {
    if (!reply) return 0;
    const char *last_value = NULL, *last_end = NULL;
    for (const char *line = reply; *line;) {
        const char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        const char *v = score_label(line, end);
        if (v) {
            last_value = v;
            last_end = end;
        }
        line = *end ? end + 1 : end;
    }
    return last_value ? score_value(last_value, last_end) : 0;
}
