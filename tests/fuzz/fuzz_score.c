/* libFuzzer harness for judge-score parsing (aloe/score.h): any judge reply
 * gives a score 1-5 or 0 (no valid score), never a crash; appending a valid
 * last score line always wins (the last score line decides). Built and run
 * by scripts/fuzz.sh (not by make test). */
#include <stdint.h>
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
    memcpy(text + len, "\nScore: 3", 10);
    if (score_parse(text) != 3) abort();
    free(text);
    return 0;
}
