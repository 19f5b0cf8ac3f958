/* The shipped seed pools (data/seeds/), in the paper's style: at least 20 of
 * each kind, each 50-70 words (the paper's pools: about 8-10 facts or
 * traits, 51 and 64 words on average), third person, no duplicates; profiles
 * without personality traits and personalities without occupation, age or
 * family, as the paper's generation rules ask (checked with a short list of
 * tell-tale words). Run from the repository root, as `make test` does. */
#include <ctype.h>
#include <stdlib.h>
#include <strings.h>

#include "formats/jsonl.h"
#include "test.h"

enum { MIN_ITEMS = 20, MIN_WORDS = 50, MAX_WORDS = 70 };

static int words(const char *s) {
    int n = 0, in = 0;
    for (; *s; s++) {
        int sp = isspace((unsigned char)*s);
        if (!sp && !in) n++;
        in = !sp;
    }
    return n;
}

/* Whole-word, case-insensitive search. */
static int has_word(const char *s, const char *w) {
    size_t n = strlen(w);
    for (const char *p = s; *p; p++)
        if (!strncasecmp(p, w, n) && (p == s || !isalpha((unsigned char)p[-1])) && !isalpha((unsigned char)p[n]))
            return 1;
    return 0;
}

static void check_pool(const char *path, const char *const *banned) {
    StrList l = {0};
    Err e;
    CHECK_OK(jsonl_read_strings(path, &l, &e), &e);
    CHECK_MSG(l.n >= MIN_ITEMS, "%s: %d items, want at least %d", path, l.n, MIN_ITEMS);
    int total = 0, lo = 1 << 30, hi = 0;
    for (int i = 0; i < l.n; i++) {
        const char *s = l.items[i];
        int w = words(s);
        total += w, lo = w < lo ? w : lo, hi = w > hi ? w : hi;
        CHECK_MSG(w >= MIN_WORDS && w <= MAX_WORDS, "%s:%d: %d words, want %d-%d", path, i + 1, w, MIN_WORDS,
                  MAX_WORDS);
        CHECK_MSG(!strncmp(s, "He ", 3) || !strncmp(s, "She ", 4), "%s:%d: not in the third person", path, i + 1);
        for (int j = 0; j < i; j++) CHECK_MSG(strcmp(s, l.items[j]), "%s:%d: the same as line %d", path, i + 1, j + 1);
        for (int k = 0; banned[k]; k++) CHECK_MSG(!has_word(s, banned[k]), "%s:%d: \"%s\"", path, i + 1, banned[k]);
    }
    if (l.n) printf("  %s: %d items, %.1f words on average (%d-%d)\n", path, l.n, (double)total / l.n, lo, hi);
    strlist_free(&l);
}

static void test_profiles(void) {
    static const char *const traits[] = {"personality", "shy", "outgoing", "introverted", "extroverted", "kind",
                                         "stubborn", "optimistic", "patient", "curious", "friendly", "confident",
                                         "anxious", "cheerful", NULL};
    check_pool("data/seeds/profile.jsonl", traits);
}

static void test_personalities(void) {
    static const char *const facts[] = {"occupation", "career", "job", "student", "retired", "married", "lives",
                                        "year-old", "years", "degree", "hobby", "hobbies", NULL};
    check_pool("data/seeds/personality.jsonl", facts);
}

int main(void) {
    RUN(test_profiles);
    RUN(test_personalities);
    return test_summary();
}
