/* libFuzzer harness for the parsers of the dialogue roles' answers (model
 * output, any bytes): the pairwise judge's verdict (judge_parse_preference),
 * the inducer's two parts (inducer_parse) and the user simulator's
 * stage-direction stripping. No crash; a verdict is 'A', 'B' or 0, the same
 * for the same text; the inducer's parts are non-empty and no longer than
 * the input (or a fixed word); stripping never lengthens the text.
 * Built and run by scripts/fuzz.sh (not by make test). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/dialogues.h"
#include "aloe/usersim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0; /* model output arrives as a C string */
    size_t len = strlen(text);
    int v = judge_parse_preference(text);
    if (v != 0 && v != 'A' && v != 'B') abort();
    if (judge_parse_preference(text) != v) abort();
    char *pr = NULL, *pe = NULL;
    int n = inducer_parse(text, &pr, &pe);
    if (n < 0 || n > 2 || !pr || !pe || !pr[0] || !pe[0]) abort();
    if ((strlen(pr) > len && strcmp(pr, "unknown")) || (strlen(pe) > len && strcmp(pe, "unknown"))) abort();
    free(pr);
    free(pe);
    char *s = usersim_strip_stage_directions(text);
    if (!s || strlen(s) > len) abort();
    free(s);
    free(text);
    return 0;
}
