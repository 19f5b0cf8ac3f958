/* listparse: split a model's "write N items" answer into the items.
 *
 * Generators do not follow format instructions reliably. The same request
 * comes back numbered ("1." "1)" "(1)" "#1"), bulleted ("-" "*" "•"), as
 * blank-line separated paragraphs, as one item per line, as a JSON array,
 * wrapped in quotes or **bold**, with a preamble ("Here are 20 profiles:")
 * and sometimes a closing remark. listparse_split recovers the items from
 * all of these; anything it cannot recognise as an item is dropped rather
 * than glued onto a neighbour. */
#ifndef ALOE_ALOE_LISTPARSE_H
#define ALOE_ALOE_LISTPARSE_H

#include "formats/jsonl.h"

/* Appends the items found in text to out; returns how many were added. */
int listparse_split(const char *text, StrList *out);

/* Cleans one item: trims whitespace, a list marker, a "Profile 3:" style
 * label, wrapping quotes and bold markers, a trailing comma. Returns a new
 * string (possibly empty). */
char *listparse_clean_item(const char *s);

#endif
