#include "aloe/gensettings.h"

#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"

int gensettings_check_or_write(const char *path, json_t *settings, Err *e) {
    if (!file_exists(path)) {
        char *text = json_dumps(settings, JSON_INDENT(2));
        size_t n = strlen(text);
        text = xrealloc(text, n + 2);
        text[n] = '\n';
        text[n + 1] = 0;
        int rc = file_write_atomic(path, text, n + 1, e);
        free(text);
        return rc;
    }
    json_error_t je;
    json_t *old = json_load_file(path, 0, &je);
    if (!json_is_object(old)) {
        json_decref(old);
        return err_set(e, ERR_PARSE, "%s:%d: expected the JSON settings of an earlier run (%s)", path, je.line,
                       je.text);
    }
    StrBuf diff;
    sb_init(&diff);
    const char *key;
    json_t *v;
    json_object_foreach(settings, key, v) {
        if (!json_equal(v, json_object_get(old, key))) sb_printf(&diff, "%s%s", diff.len ? ", " : "", key);
    }
    json_object_foreach(old, key, v) {
        if (!json_object_get(settings, key)) sb_printf(&diff, "%s%s", diff.len ? ", " : "", key);
    }
    json_decref(old);
    int rc = 0;
    if (diff.len)
        rc = err_set(e, ERR_ARG, "%s: the output was started with other settings (changed: %s); rerun with the same "
                     "ones to resume, or use a new --out", path, diff.s);
    sb_free(&diff);
    return rc;
}
