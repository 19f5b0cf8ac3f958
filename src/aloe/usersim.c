#include "aloe/usersim.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

static const char *own(UsersimView *v, char *s) {
    v->owned = xrealloc(v->owned, sizeof(char *) * (size_t)(v->n_owned + 1));
    v->owned[v->n_owned++] = s;
    return s;
}

void usersim_view(UsersimView *v, const Prompts *P, const char *profile, const char *personality,
                  const char *const *users, const char *const *replies, int done) {
    memset(v, 0, sizeof *v);
    v->m = xmalloc(sizeof *v->m * (size_t)(2 + 2 * done));
    const char *vars[] = {"profile", profile, "personality", personality, NULL};
    const char *persona = own(v, prompt_fill(P->text[PROMPT_USER_SIMULATOR], vars));
    const char *first = P->text[PROMPT_USER_FIRST_TURN], *suffix = P->text[PROMPT_USER_REPLY_SUFFIX];
    if (first[0]) {
        v->m[v->n++] = (LlmMessage){"system", persona};
        v->m[v->n++] = (LlmMessage){"user", first};
    } else {
        v->m[v->n++] = (LlmMessage){"user", persona};
    }
    for (int i = 0; i < done; i++) {
        v->m[v->n++] = (LlmMessage){"assistant", users[i]};
        const char *r = replies[i];
        if (suffix[0]) r = own(v, xasprintf("%s\n%s", replies[i], suffix));
        v->m[v->n++] = (LlmMessage){"user", r};
    }
}

void usersim_view_free(UsersimView *v) {
    for (int i = 0; i < v->n_owned; i++) free(v->owned[i]);
    free(v->owned);
    free(v->m);
    memset(v, 0, sizeof *v);
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* Collapses white space runs to one space and trims, in place. */
static void squeeze(char *s) {
    char *w = s;
    int pending = 0;
    for (const char *r = s; *r; r++) {
        if (is_space(*r)) {
            pending = w > s;
            continue;
        }
        if (pending) *w++ = ' ';
        pending = 0;
        *w++ = *r;
    }
    *w = 0;
}

char *usersim_strip_stage_directions(const char *text) {
    if (!text) return xstrdup("");
    size_t n = strlen(text);
    char *out = xmalloc(n + 1), *w = out;
    for (const char *r = text; *r;) {
        if (*r == '*') {
            /* the reference's \*.*?\*: the nearest closing '*' on the same line */
            const char *close = r + 1;
            while (*close && *close != '*' && *close != '\n') close++;
            if (*close == '*') {
                r = close + 1;
                *w++ = ' ';
                continue;
            }
        }
        *w++ = *r++;
    }
    *w = 0;
    squeeze(out);
    if (!out[0]) { /* only stage directions: keep the words */
        w = out;
        for (const char *r = text; *r; r++)
            if (*r != '*') *w++ = *r;
        *w = 0;
        squeeze(out);
    }
    return out;
}
