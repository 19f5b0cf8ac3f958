/* open: model spec -> model + tokenizer + chat template + generation defaults. */
#include "model/open.h"

#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/gguf.h"
#include "model/hub.h"

int model_spec_resolve(const char *spec, int quiet, char **path, Err *e) {
    *path = NULL;
    HubOptions ho = {.quiet = quiet};
    return hub_resolve(spec, &ho, path, e);
}

/* The chat template: by name, else the one the model ships (HF directory
 * files, or the GGUF key tokenizer.chat_template). */
static ChatTemplate *open_template(const ModelBundle *b, const char *name, Err *e) {
    if (file_is_dir(b->path)) return chat_template_open_hf(b->path, name, e);
    int bos = tok_bos(b->tok), eos = tok_eos(b->tok);
    const char *bos_text = bos >= 0 ? tok_token_str(b->tok, bos) : NULL;
    const char *eos_text = eos >= 0 ? tok_token_str(b->tok, eos) : NULL;
    if (name) return chat_template_by_name(name, bos_text, eos_text, e);
    /* the model's own map when it is open, else the file opened for the key */
    Gguf *own = b->model && b->model->gguf ? NULL : gguf_open(b->path, e);
    const Gguf *g = own ? own : b->model ? b->model->gguf : NULL;
    if (!g) return NULL;
    ChatTemplate *t = NULL;
    const char *text = NULL;
    if (!gguf_find_key(g, "tokenizer.chat_template")) {
        char *names = chat_template_names_joined();
        err_set(e, ERR_NOTFOUND,
                "%s: no chat template in the file (GGUF key tokenizer.chat_template); name one with "
                "--chat-template NAME (known: %s)",
                b->path, names);
        free(names);
    } else if (!gguf_get_str(g, "tokenizer.chat_template", &text, e)) {
        t = chat_template_detect(text, bos_text, eos_text, e);
        if (!t) err_wrap(e, "%s: tokenizer.chat_template", b->path);
    }
    if (own) gguf_close(own);
    return t;
}

int model_open(const char *spec, const ModelOpenOptions *o, ModelBundle *b, Err *e) {
    memset(b, 0, sizeof *b);
    gen_config_init(&b->gen);
    ModelOpenOptions none = {0};
    if (!o) o = &none;
    if (model_spec_resolve(spec, o->quiet, &b->path, e)) return -1;
    if (!file_exists(b->path)) {
        err_set(e, ERR_NOTFOUND, "model path %s does not exist", b->path);
        goto fail;
    }
    if (o->weights && !(b->model = model_load(b->path, o->n_threads, e))) goto fail;
    if (o->tokenizer && (!(b->tok = tok_load(b->path, e)) || !(b->tpl = open_template(b, o->chat_template, e))))
        goto fail;
    /* sampling defaults are a convenience: a malformed generation_config.json
     * leaves transformers' defaults rather than refusing the model (as before) */
    Err ignored;
    if (file_is_dir(b->path) && hf_genconfig_load(b->path, &b->gen, &ignored)) gen_config_init(&b->gen);
    return 0;
fail:
    model_bundle_free(b);
    return -1;
}

void model_bundle_free(ModelBundle *b) {
    if (b->tpl) chat_template_free(b->tpl);
    if (b->tok) tok_free(b->tok);
    model_free(b->model);
    free(b->path);
    memset(b, 0, sizeof *b);
}
