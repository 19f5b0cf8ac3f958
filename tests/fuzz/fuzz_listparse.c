/* libFuzzer harness for persona-list splitting (aloe/listparse.h): a
 * generator's free-text answer, any bytes, is split into items without a
 * crash; every item is a non-empty, cleaned string no longer than the input.
 * Built and run by scripts/fuzz.sh (not by make test). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/listparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0; /* model output arrives as a C string */
    StrList l = {0};
    int n = listparse_split(text, &l);
    if (n != l.n) abort();
    for (int i = 0; i < l.n; i++)
        if (!l.items[i] || !l.items[i][0] || strlen(l.items[i]) > size) abort();
    strlist_free(&l);
    char *c = listparse_clean_item(text);
    if (!c || strlen(c) > strlen(text)) abort();
    free(c);
    free(text);
    return 0;
}
