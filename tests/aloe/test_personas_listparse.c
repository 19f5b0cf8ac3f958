#include <stdlib.h>

#include "aloe/listparse.h"
#include "test.h"

/* Splits text and checks the items against a NULL-terminated expectation. */
static int split_is(const char *text, const char *const *want, char *why, size_t whysize) {
    StrList l = {0};
    int n = listparse_split(text, &l);
    int want_n = 0;
    while (want[want_n]) want_n++;
    int ok = n == want_n && l.n == want_n;
    if (!ok) snprintf(why, whysize, "got %d items, want %d (first: \"%s\")", n, want_n, l.n ? l.items[0] : "");
    for (int i = 0; ok && i < want_n; i++)
        if (strcmp(l.items[i], want[i])) {
            ok = 0;
            snprintf(why, whysize, "item %d: \"%s\", want \"%s\"", i, l.items[i], want[i]);
        }
    strlist_free(&l);
    return ok;
}

#define CHECK_SPLIT(text, ...)                                         \
    do {                                                               \
        const char *const want_[] = {__VA_ARGS__, NULL};               \
        char why_[512];                                                \
        CHECK_MSG(split_is(text, want_, why_, sizeof why_), "%s", why_); \
    } while (0)

static void test_numbered_with_preamble(void) {
    CHECK_SPLIT("Here are 3 profiles:\n\n1. A retired nurse in Leeds.\n2. A student of law.\n3. A baker who surfs.\n",
                "A retired nurse in Leeds.", "A student of law.", "A baker who surfs.");
}

static void test_parenthesis_numbers_and_quotes(void) {
    CHECK_SPLIT("1) \"Quiet, curious and stubborn.\"\n2) \xE2\x80\x9CLoud and warm.\xE2\x80\x9D\n3) 'Dry humour.'",
                "Quiet, curious and stubborn.", "Loud and warm.", "Dry humour.");
}

static void test_bullets_and_bold_labels(void) {
    CHECK_SPLIT("- **Profile 1:** A pilot, 45.\n* **Profile 2:** A pianist, 19.\n\xE2\x80\xA2 Personality: Shy.",
                "A pilot, 45.", "A pianist, 19.", "Shy.");
}

static void test_blank_line_separated_paragraphs(void) {
    CHECK_SPLIT("Sure! Here you go.\n\nA farmer in Iowa who restores old tractors.\n\nA coder in Lagos who "
                "plays chess.\n\nI hope these help!",
                "A farmer in Iowa who restores old tractors.", "A coder in Lagos who plays chess.");
}

static void test_continuation_lines_join(void) {
    CHECK_SPLIT("1. A teacher who\nloves jazz.\n2. A chef.\n\nLet me know if you want more.",
                "A teacher who loves jazz.", "A chef.");
}

static void test_hard_wrapped_paragraph_without_markers(void) {
    CHECK_SPLIT("A teacher who lives in Oslo and\nrides a bike to work.\nA chef in Rome.",
                "A teacher who lives in Oslo and rides a bike to work.", "A chef in Rome.");
}

static void test_json_array_in_fence(void) {
    CHECK_SPLIT("```json\n[\"One person.\", \"Another person.\"]\n```", "One person.", "Another person.");
}

static void test_numbers_inside_text_are_not_markers(void) {
    /* "1999." starts a line but is a year, not an index; "3 kids" is text. */
    CHECK_SPLIT("1. Born in\n1999. Lives in Rome.\n2. Has 3 kids.", "Born in 1999. Lives in Rome.", "Has 3 kids.");
}

static void test_trailing_commas_and_empty_items(void) {
    CHECK_SPLIT("1. \"Alpha person.\",\n2.\n3. \"Beta person.\",", "Alpha person.", "Beta person.");
}

static void test_bullets_under_numbers_are_details(void) {
    CHECK_SPLIT("1. Profile:\n   - Age: 34\n   - Job: nurse\n2. **A farmer.**\nLives in Iowa.\n\n* Note: all invented.",
                "Age: 34 Job: nurse", "A farmer. Lives in Iowa.");
    CHECK_SPLIT("Here are two:\n1. These days she sails.\n2. Sure-footed climber.\n3. Here is nothing",
                "These days she sails.", "Sure-footed climber.");
}

static void test_nothing_usable(void) {
    StrList l = {0};
    CHECK_EQ_INT(listparse_split("", &l), 0);
    CHECK_EQ_INT(listparse_split("Here are the profiles:\n\n", &l), 0);
    CHECK_EQ_INT(l.n, 0);
}


/* ---- what the paper's prompt gets back: items separated by blank lines, no
 * numbering asked for; each form below is one a model writes anyway ---- */

#define P1 "She is a 41-year-old mother of twins who lives on a sheep farm. She sings in the village choir."
#define P2 "He is a 62-year-old taxi driver in Athens. He plays backgammon every evening."
#define P3 "She is 22 and studies marine biology in Honolulu. She free-dives on weekends."

static void test_paper_blank_line_separated_with_preamble(void) {
    CHECK_SPLIT("Here are 3 new profiles:\n\n" P1 "\n\n" P2 "\n\n" P3 "\n", P1, P2, P3);
    CHECK_SPLIT("Sure! Here are three profiles.\n\n" P1 "\n\n" P2 "\n\n" P3 "\n\nI hope these help!", P1, P2, P3);
}

static void test_paper_single_newlines(void) {
    CHECK_SPLIT(P1 "\n" P2 "\n" P3, P1, P2, P3);
    CHECK_SPLIT("Here are 3 profiles:\n" P1 "\n" P2 "\n" P3 "\n", P1, P2, P3);
    /* a stray blank line in a one-per-line list glues nothing together */
    CHECK_SPLIT(P1 "\n" P2 "\n\n" P3, P1, P2, P3);
}

static void test_paper_numbered_or_bulleted_anyway(void) {
    CHECK_SPLIT("Here are 3 profiles:\n\n1. " P1 "\n\n2. " P2 "\n\n3. " P3, P1, P2, P3);
    CHECK_SPLIT("1) " P1 "\n2) " P2 "\n3) " P3, P1, P2, P3);
    CHECK_SPLIT("- " P1 "\n- " P2 "\n- " P3 "\n\nLet me know if you need more.", P1, P2, P3);
}

/* A paragraph written a sentence per line, blank lines between items. */
static void test_paper_paragraphs_with_a_line_per_sentence(void) {
    CHECK_SPLIT("Here are 3 profiles:\n\n"
                "She is a 41-year-old mother of twins who lives on a sheep farm.\nShe sings in the village choir.\n\n"
                "He is a 62-year-old taxi driver in Athens.\nHe plays backgammon every evening.\n\n"
                "She is 22 and studies marine biology in Honolulu.\nShe free-dives on weekends.\n",
                P1, P2, P3);
    /* headings on their own line are not items, nor part of one */
    CHECK_SPLIT("**Profile 1**\n" P1 "\n\nProfile 2\n" P2 "\n\n**Profile 3:**\n" P3, P1, P2, P3);
}

int main(void) {
    RUN(test_numbered_with_preamble);
    RUN(test_parenthesis_numbers_and_quotes);
    RUN(test_bullets_and_bold_labels);
    RUN(test_blank_line_separated_paragraphs);
    RUN(test_continuation_lines_join);
    RUN(test_hard_wrapped_paragraph_without_markers);
    RUN(test_json_array_in_fence);
    RUN(test_numbers_inside_text_are_not_markers);
    RUN(test_trailing_commas_and_empty_items);
    RUN(test_bullets_under_numbers_are_details);
    RUN(test_nothing_usable);
    RUN(test_paper_blank_line_separated_with_preamble);
    RUN(test_paper_single_newlines);
    RUN(test_paper_numbered_or_bulleted_anyway);
    RUN(test_paper_paragraphs_with_a_line_per_sentence);
    return test_summary();
}
