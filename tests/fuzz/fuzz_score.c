/* libFuzzer harness for judge-score parsing (aloe/score.h): any judge reply
 * gives a score 1-5 or 0 (no valid score), never a crash. The rule's
 * invariants: a reply that scored s still scores s with "Score: s" added on
 * a line of its own (agreeing candidates), and adding "Score: 3" gives 3 or
 * 0, never another score (a candidate can only confirm or make the reply
 * ambiguous). Built and run by scripts/fuzz.sh (not by make test). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/score.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 16);
    memcpy(text, data, size);
    text[size] = 0;
    int s = score_parse(text);
    if (s < 0 || s > 5) abort();
    /* A NUL inside ends the reply where a C string ends. */
    size_t len = strlen(text);
    if (s) {
        snprintf(text + len, 16, "\nScore: %d", s);
        if (score_parse(text) != s) abort();
    }
    memcpy(text + len, "\nScore: 3", 10);
    int t = score_parse(text);
    if (t != 0 && t != 3) abort();
    if (s == 3 && t != 3) abort();
    free(text);
    return 0;
}
