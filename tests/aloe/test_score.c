/* Judge-score parsing (aloe/score.h), form by form: every accepted form with
 * the score it gives, every rejected form with why. The table is the rule's
 * specification; each row names the form it stands for. */
#include "aloe/score.h"
#include "test.h"

typedef struct {
    const char *reply;
    int want; /* 1-5, or 0: rejected */
    const char *form;
} Case;

static const Case accepted[] = {
    /* what the paper's judge is asked for: the score only */
    {"4", 4, "bare integer"},
    {"  5\n", 5, "bare integer with white space"},
    {"1", 1, "bare integer, lowest"},
    {"**4**", 4, "bold number"},
    {"`3`", 3, "code-span number"},
    {"4.", 4, "number with a full stop"},
    {"(4)", 4, "number in parentheses"},
    {"[2]", 2, "number in brackets"},
    {"4/5", 4, "number over 5"},
    {"4 / 5", 4, "number over 5 with blanks"},
    {"**4/5**", 4, "bold number over 5"},
    {"4 out of 5", 4, "number out of 5"},
    {"4 out of 5.", 4, "number out of 5 with a full stop"},
    {"### 4", 4, "heading number"},
    {"The reply suits this user's style and interests.\n4", 4, "explanation, last line a number"},
    {"Short and warm.\n\n**5**\n", 5, "explanation, last line bold"},
    /* labelled lines (the rubric asks for "Score: N") */
    {"Score: 4", 4, "Score:"},
    {"score = 2", 2, "score ="},
    {"Good reply.\nScore: 4", 4, "explanation then Score:"},
    {"Good reply.\n**Score:** 4", 4, "bold label"},
    {"**Score: 5**", 5, "bold label and value"},
    {"Score: **3**", 3, "bold value"},
    {"Score: 4.", 4, "value with a full stop"},
    {"**Score:** 4.", 4, "bold label, value with a full stop"},
    {"Score:\t5.\r\n", 5, "tab, full stop and CRLF"},
    {"Score: 4/5", 4, "Score: N/5"},
    {"Score: 3 / 5\n", 3, "Score: N / 5"},
    {"score = 2 out of 5", 2, "score = N out of 5"},
    {"Rating: 4/5", 4, "Rating: N/5"},
    {"RATING: 2", 2, "upper-case label"},
    {"## Final score: 1", 1, "heading Final score"},
    {"Final Rating: 3", 3, "Final rating"},
    {"### Overall Score: [2]\nI think so.", 2, "Overall score, bracketed value, text after"},
    {"Overall rating = 5", 5, "Overall rating"},
    {"Overall: 4", 4, "Overall alone"},
    {"Score (1-5): 4", 4, "label with its scale in parentheses"},
    {"Score: [4]", 4, "bracketed value"},
    {"- Score: 4 (well tailored)", 4, "list item, text after the value"},
    {"> Score: 3", 3, "quoted"},
    /* candidates that agree, and lines that are no candidate */
    {"4\nScore: 4", 4, "the same score twice"},
    {"Score: 3\nMy overall feeling about the score: it is fine", 3, "a score word mid-sentence"},
    {"Overall: the reply fits this user.\nScore: 4", 4, "a label followed by words"},
    {"1. Style: fits.\n2. Content: fits.\nScore: 5", 5, "numbered criteria are not number-only lines"},
    {"Scores vary.\nScore: 2", 2, "Scores is not the label"},
};

static const Case rejected[] = {
    {"", 0, "empty"},
    {"   \n\n", 0, "blank lines"},
    {"I'd give it a 4", 0, "a score in a sentence"},
    {"I would rate this a 4.", 0, "a score in a sentence"},
    {"The score is 4", 0, "no ':' or '='"},
    {"Score 4", 0, "label without ':'"},
    {"Score: N", 0, "placeholder"},
    {"0", 0, "bare 0: out of range"},
    {"6", 0, "bare 6: out of range"},
    {"45", 0, "two digits"},
    {"8/10", 0, "another scale"},
    {"4/50", 0, "another scale"},
    {"4 out of 10", 0, "another scale"},
    {"4/", 0, "a slash with no scale"},
    {"4.5", 0, "decimal"},
    {"4.0", 0, "decimal, even a whole one"},
    {"4,5", 0, "decimal with a comma"},
    {"4-5", 0, "a range"},
    {"-3", 0, "negative"},
    {"Score: 0", 0, "labelled 0"},
    {"Score: 6", 0, "labelled 6"},
    {"Score: -3", 0, "labelled negative"},
    {"Score: 4.5", 0, "labelled decimal"},
    {"Score: 8/10", 0, "labelled, another scale"},
    {"Score: 4/50", 0, "labelled, another scale"},
    {"Score: 45", 0, "labelled, two digits"},
    {"Rating: 3-4", 0, "labelled range"},
    {"Score: 2\nOn reflection...\nScore: 5", 0, "two different scores: ambiguous"},
    {"4\n5", 0, "two different number lines: ambiguous"},
    {"Score: 4\n3", 0, "a labelled score and a different number line"},
    {"Score: 4\nScore: 9", 0, "a valid and an invalid candidate"},
    {"Final score = 3 out of 5\nScore: 4.5", 0, "a valid and a decimal candidate"},
    {"2024\nScore: 4", 0, "a number line out of range next to a score"},
};

static void check_table(const Case *t, size_t n) {
    for (size_t i = 0; i < n; i++)
        CHECK_MSG(score_parse(t[i].reply) == t[i].want, "%s: \"%s\" gave %d, expected %d", t[i].form, t[i].reply,
                  score_parse(t[i].reply), t[i].want);
}

static void test_accepted_forms(void) { check_table(accepted, sizeof accepted / sizeof *accepted); }

static void test_rejected_forms(void) {
    check_table(rejected, sizeof rejected / sizeof *rejected);
    CHECK_EQ_INT(score_parse(NULL), 0);
}

int main(void) {
    RUN(test_accepted_forms);
    RUN(test_rejected_forms);
    return test_summary();
}
