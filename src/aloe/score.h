/* score: reading the judge's 1-5 score out of its free-text reply.
 *
 * Judges are told to end with "Score: N", and mostly do, but wrap it in
 * Markdown ("**Score:** 4"), add a scale ("Score: 4/5") or talk after it. The
 * rule: a score line is a line whose first word, after Markdown marks, is
 * "Score" (optionally "Final score" / "Overall score"), followed by ':' or
 * '='. The LAST score line decides: its value must be an integer 1-5,
 * optionally "/5" or "out of 5". Anything else (no score line, "Score: N",
 * "Score: 4.5", "Score: 7", "Score: 8/10") is invalid: the caller asks again,
 * and never guesses. */
#ifndef ALOE_ALOE_SCORE_H
#define ALOE_ALOE_SCORE_H

/* Returns the score 1-5, or 0 when the reply holds no valid score. */
int score_parse(const char *reply);

#endif
