/* idlist: token id lists given on the command line ("1,2,3" or a JSON
 * array "[1, 2, 3]") and printed back as JSON arrays. */
#ifndef ALOE_INFER_IDLIST_H
#define ALOE_INFER_IDLIST_H

#include <stdint.h>

#include "base/err.h"
#include "base/mem.h"

/* Parses ids separated by commas and/or spaces, optionally inside [ ];
 * *ids is malloc'd (caller frees). -1 with e naming the bad item. */
int idlist_parse(const char *s, int32_t **ids, int *n, Err *e);
/* Appends "[1, 2, 3]" to b. */
void idlist_format(StrBuf *b, const int32_t *ids, int n);

#endif
