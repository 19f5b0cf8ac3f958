/* score: reading the judge's 1-5 score out of its reply.
 *
 * Judges are asked either for the score only (the paper's protocol: the
 * reply should be "4") or to explain and end with "Score: N" (rubric). They
 * write both in many ways: "4", "**4**", "4/5", "4 out of 5.", an
 * explanation whose last line is "4", "**Score:** 4", "Rating: 4/5",
 * "## Final score: 4". The rule:
 *
 *   1. Every line is looked at (a bare reply is a reply of one line). A line
 *      gives a CANDIDATE when it is
 *      a) labelled: after Markdown or list marks (* _ # > ` - [), the label
 *         Score, Rating, Final score, Final rating, Overall score, Overall
 *         rating or Overall (any case, Markdown allowed around it), an
 *         optional "(...)" such as "(1-5)", then ':' or '=', then a value
 *         that starts with a digit or a minus sign (Markdown, '[' or '('
 *         before it allowed); text after the value is allowed ("Score: 4
 *         (well tailored)"). A label followed by words ("Overall: the reply
 *         fits") gives no candidate;
 *      b) number-only: nothing but a value, with Markdown marks, brackets
 *         and end punctuation around it ("4", "**4**", "(4).", "4/5",
 *         "4 out of 5").
 *   2. A value is an integer 1-5, optionally followed by "/5" or "out of 5".
 *      Anything else a candidate holds — 0, 6, 45, "8/10", "4/50", a decimal
 *      ("4.5", "4.0"), a range ("4-5"), a negative ("-3") — makes it an
 *      INVALID candidate.
 *   3. The reply's score is the candidates' common value. No candidate, an
 *      invalid candidate, or two DIFFERENT values ("Score: 2 ... Score: 5",
 *      "4\n5": ambiguous) give no score; the same value twice is fine.
 *
 * Sentences are never read: "I'd give it a 4", "The score is 4" and "Score 4"
 * (no ':' or '=') give no score. The caller asks again (bench's judge
 * reminder) and never guesses. */
#ifndef ALOE_ALOE_SCORE_H
#define ALOE_ALOE_SCORE_H

/* Returns the score 1-5, or 0 when the reply holds no valid, unambiguous score. */
int score_parse(const char *reply);

#endif
