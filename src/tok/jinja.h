/* jinja: an interpreter for the Jinja2 subset Hugging Face chat templates
 * use, configured as transformers configures jinja2 (trim_blocks and
 * lstrip_blocks on, the loopcontrols extension, the {% generation %} tag,
 * its tojson, raise_exception and strftime_now, jinja2's default Undefined,
 * no autoescape).
 *
 * A template is parsed once (jinja_parse) and rendered any number of times
 * with a set of variables given as a JSON object (messages, tools,
 * add_generation_prompt, bos_token, ... : everything transformers passes is
 * JSON-shaped). Hostile templates are bounded: parsing nests at most
 * max_depth deep, a render runs at most max_steps evaluation steps, nests
 * macro calls at most max_calls deep and writes at most max_output bytes; going
 * past a limit is an error, never a hang or a stack overflow.
 *
 * Errors name the template line and column: "template line 3, column 12:
 * unknown filter 'foo'". raise_exception(msg) fails the render with msg. */
#ifndef ALOE_TOK_JINJA_H
#define ALOE_TOK_JINJA_H

#include <jansson.h>
#include <stddef.h>
#include <time.h>

#include "base/err.h"

typedef struct JinjaLimits {
    long max_steps;    /* evaluation steps per render */
    int max_depth;     /* parser nesting (blocks, elif chains, expressions) */
    int max_calls;     /* macro calls in progress (each nests a body's depth); <= 0: 40 */
    size_t max_output; /* bytes a render may write (also bounds string building) */
} JinjaLimits;

/* 10M steps, depth 100, 40 nested macro calls, 16 MiB. */
JinjaLimits jinja_limits_default(void);

typedef struct JinjaTemplate JinjaTemplate;

/* Parses src. lim may be NULL (defaults). */
JinjaTemplate *jinja_parse(const char *src, const JinjaLimits *lim, Err *e);
void jinja_free(JinjaTemplate *t);

/* Renders t with the variables of the JSON object vars (may be NULL) into
 * *out (caller frees). now is the time strftime_now formats (0: the clock). */
int jinja_render(const JinjaTemplate *t, const json_t *vars, time_t now, char **out, Err *e);

#endif
