/* gensettings: the settings a generation run's output depends on, kept
 * beside the output (FILE.settings.json) so that a resumed run cannot
 * silently mix records made with other models, prompts or parameters. */
#ifndef ALOE_ALOE_GENSETTINGS_H
#define ALOE_ALOE_GENSETTINGS_H

#include <jansson.h>

#include "base/err.h"

/* If path exists, its settings must equal `settings` (else an error naming
 * the keys that differ); otherwise settings are written there atomically.
 * Takes no reference. */
int gensettings_check_or_write(const char *path, json_t *settings, Err *e);

#endif
