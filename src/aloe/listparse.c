#include "aloe/listparse.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/mem.h"

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

/* Length of a list marker at the start of s (after leading blanks, counted
 * in), or 0 if the line does not start with one. */
static size_t marker_len(const char *s) {
    const char *p = s;
    while (*p == ' ' || *p == '\t') p++;
    if (p[0] == '*' && p[1] == '*' && isdigit((unsigned char)p[2])) p += 2; /* **1.** */
    const char *q = p;
    if (*q == '(' || *q == '#') q++;
    if (isdigit((unsigned char)*q)) {
        while (isdigit((unsigned char)*q)) q++;
        if (q - p - (*p == '(' || *p == '#') > 3) return 0; /* a year or a number, not a list index */
        if (*p == '(' && *q != ')') return 0;
        if (*q == '.' || *q == ')' || *q == ':') q++;
        else if (*p != '#') return 0;
        if (q[0] == '*' && q[1] == '*') q += 2;
        if (*q && !is_space(*q)) return 0;
        return (size_t)(q - s);
    }
    if ((*p == '-' || *p == '*' || *p == '+') && (p[1] == ' ' || p[1] == '\t')) return (size_t)(p + 1 - s);
    /* "•" U+2022, "–" U+2013, "—" U+2014 */
    if ((unsigned char)p[0] == 0xE2 && (unsigned char)p[1] == 0x80 &&
        ((unsigned char)p[2] == 0xA2 || (unsigned char)p[2] == 0x93 || (unsigned char)p[2] == 0x94) &&
        (p[3] == ' ' || p[3] == '\t'))
        return (size_t)(p + 3 - s);
    return 0;
}

/* A numbered marker ("1." "(2)" "#3"), as opposed to a bullet. */
static int is_numbered(const char *s) {
    size_t n = marker_len(s);
    for (size_t i = 0; i < n; i++)
        if (isdigit((unsigned char)s[i])) return 1;
    return 0;
}

static int starts_with_ci(const char *s, const char *prefix) { return !strncasecmp(s, prefix, strlen(prefix)); }

/* Trims in place (returns the new start; the end is cut with a NUL). */
static char *trim(char *s) {
    while (is_space(*s)) s++;
    size_t n = strlen(s);
    while (n && is_space(s[n - 1])) s[--n] = 0;
    return s;
}

/* Strips one pair of wrapping quotes (straight or curly). */
static int strip_quotes(char *s) {
    static const char *pairs[][2] = {{"\"", "\""}, {"'", "'"}, {"\xE2\x80\x9C", "\xE2\x80\x9D"}, {"`", "`"}};
    size_t n = strlen(s);
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        size_t a = strlen(pairs[i][0]), b = strlen(pairs[i][1]);
        if (n >= a + b + 1 && !strncmp(s, pairs[i][0], a) && !strcmp(s + n - b, pairs[i][1])) {
            memmove(s, s + a, n - a - b);
            s[n - a - b] = 0;
            return 1;
        }
    }
    return 0;
}

/* Labels a generator puts in front of an item ("Profile 3:", "Personality:"). */
static size_t label_len(const char *s) {
    static const char *labels[] = {"profile", "personality", "persona", "person", "description", "item", "example"};
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++) {
        size_t n = strlen(labels[i]);
        if (strncasecmp(s, labels[i], n)) continue;
        const char *p = s + n;
        while (*p == ' ') p++;
        if (*p == '#') p++;
        while (isdigit((unsigned char)*p)) p++;
        if (p[0] == '*' && p[1] == '*') p += 2;
        if (*p != ':' && !(p[0] == ' ' && p[1] == '-')) continue;
        p += (*p == ':') ? 1 : 2;
        if (p[0] == '*' && p[1] == '*') p += 2;
        return (size_t)(p - s);
    }
    return 0;
}

/* Removes every "**" (bold is never part of an item). */
static void strip_bold(char *s) {
    char *w = s;
    for (const char *r = s; *r;) {
        if (r[0] == '*' && r[1] == '*') r += 2;
        else *w++ = *r++;
    }
    *w = 0;
}

char *listparse_clean_item(const char *item) {
    char *buf = xstrdup(item), *s = trim(buf);
    s += marker_len(s);
    strip_bold(s);
    s = trim(s);
    for (int changed = 1; changed && *s;) {
        changed = 0;
        size_t n = strlen(s);
        if (n && s[n - 1] == ',') { /* an item of a JSON-ish list */
            s[n - 1] = 0;
            s = trim(s);
            changed = 1;
        }
        if (!strncmp(s, "**", 2)) {
            size_t l = label_len(s + 2);
            if (l) s += 2 + l, changed = 1;
        }
        size_t l = label_len(s);
        if (l) s += l, changed = 1;
        n = strlen(s);
        if (n >= 4 && !strncmp(s, "**", 2) && !strcmp(s + n - 2, "**")) {
            s[n - 2] = 0;
            s += 2;
            changed = 1;
        }
        changed |= strip_quotes(s);
        s = trim(s);
    }
    char *out = xstrdup(s);
    free(buf);
    return out;
}

/* Talk around the list ("Here are...", "Let me know..."). Inside a marked
 * item only the unmistakable openers count: "These days..." can begin an
 * item, but not an unmarked line that follows a list. */
static int is_chatter_opener(const char *line, int marked) {
    static const char *always[] = {"here are", "here is", "here's", "below are", "i hope", "let me know",
                                   "note:", "feel free"};
    static const char *unmarked[] = {"sure", "certainly", "okay", "ok,", "of course", "these "};
    for (size_t i = 0; i < sizeof always / sizeof always[0]; i++)
        if (starts_with_ci(line, always[i])) return 1;
    for (size_t i = 0; !marked && i < sizeof unmarked / sizeof unmarked[0]; i++)
        if (starts_with_ci(line, unmarked[i])) return 1;
    return 0;
}

/* An unmarked line that talks about the list instead of being an item. */
static int is_chatter(const char *line) {
    size_t n = strlen(line);
    return (n && line[n - 1] == ':') || is_chatter_opener(line, 0);
}

/* A line that is only a heading ("Profile 3", "**Personality 2:**"): a
 * label with nothing after it. (Only paragraph mode drops these: there a
 * heading would otherwise be glued to its item.) */
static int is_heading(const char *line) {
    char *c = listparse_clean_item(line), *colon = xasprintf("%s:", c);
    int heading = strlen(c) < 2 || label_len(colon) == strlen(colon);
    free(c);
    free(colon);
    return heading;
}

/* Unmarked text whose blank-line separated blocks mostly span several lines
 * holds one item per block (a paragraph with a line per sentence, or
 * hard-wrapped); otherwise a block is a run of one-line items, and a stray
 * blank line in such a list does not glue two items together. Preambles
 * and remarks do not count as lines. */
static int paragraph_mode(const StrList *lines) {
    int blocks = 0, multi = 0, cur = 0;
    for (int i = 0; i <= lines->n; i++) {
        const char *l = i < lines->n ? lines->items[i] : "";
        if (*l) {
            if (!is_chatter(l)) cur++; /* a heading counts: it is glued to its item otherwise */
            continue;
        }
        if (cur) blocks++, multi += cur > 1;
        cur = 0;
    }
    return blocks >= 2 && 2 * multi > blocks;
}

static void push_clean(StrList *out, const char *raw, int *added) {
    char *c = listparse_clean_item(raw);
    size_t n = strlen(c);
    if (n >= 2 && c[n - 1] != ':') {
        strlist_push(out, c);
        (*added)++;
    }
    free(c);
}

/* A JSON array of strings, possibly inside a ``` fence. */
static int split_json_array(const char *text, StrList *out, int *added) {
    const char *open = strchr(text, '['), *close = strrchr(text, ']');
    if (!open || !close || close < open) return 0;
    for (const char *p = text; p < open; p++)
        if (!is_space(*p) && *p != '`' && !isalpha((unsigned char)*p)) return 0;
    json_t *v = json_loadb(open, (size_t)(close - open + 1), 0, NULL);
    if (!json_is_array(v) || json_array_size(v) == 0) {
        json_decref(v);
        return 0;
    }
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        if (!json_is_string(x)) {
            json_decref(v);
            return 0;
        }
    }
    json_array_foreach(v, i, x) push_clean(out, json_string_value(x), added);
    json_decref(v);
    return 1;
}

int listparse_split(const char *text, StrList *out) {
    int added = 0;
    if (split_json_array(text, out, &added)) return added;

    /* Lines, without code fences. */
    char *buf = xstrdup(text);
    StrList lines = {0};
    int *indent = NULL;
    for (char *save = NULL, *l = buf; l; l = save) {
        save = strchr(l, '\n');
        if (save) *save++ = 0;
        char *t = trim(l);
        if (!strncmp(t, "```", 3)) continue;
        indent = xrealloc(indent, sizeof(int) * (size_t)(lines.n + 1));
        indent[lines.n] = (int)(t - l);
        strlist_push(&lines, t);
    }
    int any_marker = 0;
    for (int i = 0; i < lines.n; i++)
        if (marker_len(lines.items[i])) any_marker = 1;

    int paragraphs = !any_marker && paragraph_mode(&lines);

    StrBuf cur;
    sb_init(&cur);
    int open = 0;        /* cur holds an item that may continue on the next line */
    int item_indent = 0; /* indentation of its first line */
    for (int i = 0; i <= lines.n; i++) {
        const char *l = i < lines.n ? lines.items[i] : "";
        int blank = !*l;
        if (any_marker) {
            /* Items start at markers; a bullet indented under an item, or a
             * non-blank line right below it, continues it; anything else
             * (preamble, remarks) is dropped. */
            int detail = open && marker_len(l) && !is_numbered(l) && indent[i] > item_indent;
            const char *content = l + marker_len(l);
            content += strspn(content, " \t*");
            int starts = marker_len(l) && !detail && !is_chatter_opener(content, 1);
            if ((marker_len(l) && !detail) || blank || !open || (!detail && is_chatter(l))) {
                if (open) push_clean(out, cur.s, &added);
                sb_clear(&cur);
                open = 0;
                if (starts) {
                    sb_append(&cur, l);
                    open = 1;
                    item_indent = indent[i];
                }
            } else {
                sb_appendc(&cur, ' ');
                sb_append(&cur, detail ? l + marker_len(l) + strspn(l + marker_len(l), " \t") : l);
            }
            continue;
        }
        /* No markers: one item per line, except a line cut mid-sentence
         * (no closing punctuation, next line starting lowercase) which is
         * a hard-wrapped paragraph. */
        if (blank) {
            if (open) push_clean(out, cur.s, &added);
            sb_clear(&cur);
            open = 0;
            continue;
        }
        if (paragraphs) {
            if (is_chatter(l) || is_heading(l)) continue;
            if (open) sb_appendc(&cur, ' ');
            sb_append(&cur, l);
            open = 1;
            continue;
        }
        if (open) {
            size_t n = cur.len;
            char last = n ? cur.s[n - 1] : '.';
            if (!strchr(".!?\"')", last) && islower((unsigned char)l[0])) {
                sb_appendc(&cur, ' ');
                sb_append(&cur, l);
                continue;
            }
            push_clean(out, cur.s, &added);
            sb_clear(&cur);
            open = 0;
        }
        if (is_chatter(l)) continue;
        sb_append(&cur, l);
        open = 1;
    }
    sb_free(&cur);
    strlist_free(&lines);
    free(indent);
    free(buf);
    return added;
}
