/* chat_hf: finds the chat template and the BOS/EOS texts of a Hugging Face
 * model directory.
 *
 * Where the template lives depends on the transformers version that saved
 * the checkpoint: transformers 5 (and late 4.x) write chat_template.jinja
 * beside tokenizer_config.json; processors wrote chat_template.json
 * ({"chat_template": "..."}); older checkpoints keep it inside
 * tokenizer_config.json as `chat_template`, either a string or a list of
 * {"name", "template"} objects of which transformers uses "default". */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "tok/chat_template.h"

/* A special token entry: "text", {"content": "text", ...} or null. */
static int token_text(json_t *v, const char *path, const char *key, char **out, Err *e) {
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (json_is_string(v)) {
        *out = xstrdup(json_string_value(v));
        return 0;
    }
    json_t *c = json_is_object(v) ? json_object_get(v, "content") : NULL;
    if (c && json_is_string(c)) {
        *out = xstrdup(json_string_value(c));
        return 0;
    }
    return err_set(e, ERR_PARSE, "%s: %s: expected a string, {\"content\": string} or null", path,
                   key);
}

/* tokenizer_config.json's chat_template: a string, or [{name, template}]. */
static int config_template(json_t *v, const char *path, char **out, Err *e) {
    if (json_is_string(v)) {
        *out = xstrdup(json_string_value(v));
        return 0;
    }
    if (!json_is_array(v))
        return err_set(e, ERR_PARSE,
                       "%s: chat_template: expected a string or a list of {name, template}", path);
    size_t i;
    json_t *item;
    StrBuf names;
    sb_init(&names);
    json_array_foreach(v, i, item) {
        const char *name = json_string_value(json_object_get(item, "name"));
        const char *tpl = json_string_value(json_object_get(item, "template"));
        if (!name || !tpl) {
            sb_free(&names);
            return err_set(e, ERR_PARSE,
                           "%s: chat_template[%zu]: expected {\"name\": string, \"template\": "
                           "string}",
                           path, i);
        }
        if (!strcmp(name, "default")) {
            sb_free(&names);
            *out = xstrdup(tpl);
            return 0;
        }
        sb_printf(&names, "%s%s", names.len ? ", " : "", name);
    }
    err_set(e, ERR_NOTFOUND, "%s: chat_template: no template named \"default\" (found: %s)", path,
            names.len ? names.s : "none");
    sb_free(&names);
    return -1;
}

static json_t *load_json(const char *path, Err *e) {
    json_error_t je;
    json_t *j = json_load_file(path, JSON_DECODE_INT_AS_REAL, &je);
    if (!j) err_set(e, ERR_PARSE, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    return j;
}

/* Reads the template from chat_template.jinja or chat_template.json, if one
 * exists. Returns 1 when found, 0 when neither file exists, -1 on error. */
static int template_file(const char *dir, char **out, Err *e) {
    char *p = path_join(dir, "chat_template.jinja");
    int rc = 0;
    if (file_exists(p)) {
        /* a NUL would end it early (at offset 0, it would look empty) */
        rc = file_read_text(p, "a chat template", out, NULL, e) ? -1 : 1;
    } else {
        free(p);
        p = path_join(dir, "chat_template.json");
        if (file_exists(p)) {
            json_t *j = load_json(p, e);
            json_t *v = j ? json_object_get(j, "chat_template") : NULL;
            if (!j) rc = -1;
            else if (!json_is_string(v))
                rc = err_set(e, ERR_PARSE, "%s: chat_template: expected a string", p);
            else {
                *out = xstrdup(json_string_value(v));
                rc = 1;
            }
            json_decref(j);
        }
    }
    free(p);
    return rc;
}

static int load_hf(const char *dir, int need_template, char **tpl, char **bos, char **eos,
                   Err *e) {
    *tpl = *bos = *eos = NULL;
    /* found: 1 template read, 0 none yet, 2 not wanted (the caller names the family). */
    int found = need_template ? template_file(dir, tpl, e) : 2;
    if (found < 0) return -1;
    char *cfg_path = path_join(dir, "tokenizer_config.json");
    json_t *cfg = NULL;
    int rc = -1;
    if (file_exists(cfg_path)) {
        cfg = load_json(cfg_path, e);
        if (!cfg) goto done;
        if (!json_is_object(cfg)) {
            err_set(e, ERR_PARSE, "%s: expected a JSON object", cfg_path);
            goto done;
        }
        if (token_text(json_object_get(cfg, "bos_token"), cfg_path, "bos_token", bos, e) ||
            token_text(json_object_get(cfg, "eos_token"), cfg_path, "eos_token", eos, e))
            goto done;
        json_t *ct = json_object_get(cfg, "chat_template");
        if (!found && ct && !json_is_null(ct)) {
            if (config_template(ct, cfg_path, tpl, e)) goto done;
            found = 1;
        }
    }
    if (!found) {
        char *names = chat_template_names_joined();
        err_set(e, ERR_NOTFOUND,
                "%s: no chat template (looked for chat_template.jinja, chat_template.json and "
                "tokenizer_config.json's chat_template); name one with --chat-template NAME "
                "(known: %s)",
                dir, names);
        free(names);
        goto done;
    }
    rc = 0;
done:
    json_decref(cfg);
    free(cfg_path);
    if (rc) {
        free(*tpl);
        free(*bos);
        free(*eos);
        *tpl = *bos = *eos = NULL;
    }
    return rc;
}

int chat_template_load_hf(const char *dir, char **template_text, char **bos_text,
                          char **eos_text, Err *e) {
    return load_hf(dir, 1, template_text, bos_text, eos_text, e);
}

ChatTemplate *chat_template_open_hf(const char *dir, const char *name, Err *e) {
    char *tpl, *bos, *eos;
    if (load_hf(dir, name == NULL, &tpl, &bos, &eos, e)) return NULL;
    ChatTemplate *t = name ? chat_template_by_name(name, bos, eos, e)
                           : chat_template_detect(tpl, bos, eos, e);
    if (!t && !name) err_wrap(e, "%s", dir);
    free(tpl);
    free(bos);
    free(eos);
    return t;
}
