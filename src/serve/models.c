#include "serve/models.h"

#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "model/open.h"

/* A sentence-transformers directory, or a plain BertModel one. */
static int is_encoder_dir(const char *path) { return file_is_dir(path) && encoder_is_model_dir(path); }

/* Every request stops at the model's EOS ids, the tokenizer's end-of-turn
 * ids and the template's end-of-turn markers (as ids where the vocabulary
 * has them; as text too, through the stop strings). */
static void collect_stops(ServeModel *sm) {
    GenParams stops;
    gen_params_default(&stops);
    gen_params_add_model_stops(&stops, sm->m, sm->tok);
    const char *const *marks = chat_template_stop_strings(sm->tpl);
    for (int i = 0; marks && marks[i]; i++) gen_params_add_stop_id(&stops, tok_find(sm->tok, marks[i]));
    memcpy(sm->stop_ids, stops.stop_ids, sizeof sm->stop_ids);
    sm->n_stop_ids = stops.n_stop_ids;
}

static int open_decoder(ServeModel *sm, const ServeModelOptions *o, Err *e) {
    ModelOpenOptions mo = {.weights = 1, .tokenizer = 1, .chat_template = o->chat_template,
                           .n_threads = o->n_threads, .quiet = o->quiet};
    ModelBundle mb;
    if (model_open(sm->path, &mo, &mb, e)) return -1;
    sm->m = mb.model, sm->tok = mb.tok, sm->tpl = mb.tpl;
    free(mb.path);
    if (model_set_kv_type_name(sm->m, NULL, e)) return -1; /* $ALOE_KV_TYPE */
    gen_sampling_from_checkpoint(sm->path, &sm->defaults);
    sm->n_ctx = o->n_ctx > 0 ? o->n_ctx : sm->m->cfg.max_pos > 0 ? sm->m->cfg.max_pos : 4096;
    collect_stops(sm);
    sm->batcher = batcher_start(sm->m, o->max_active, o->prefix_cache_bytes, e);
    return sm->batcher ? 0 : -1;
}

int serve_model_open(ServeModel *sm, const char *spec, const char *alias, const ServeModelOptions *o, Err *e) {
    memset(sm, 0, sizeof *sm);
    pthread_mutex_init(&sm->enc_mu, NULL);
    sm->spec = xstrdup(spec);
    sm->id = xstrdup(alias && *alias ? alias : spec);
    if (model_spec_resolve(spec, o->quiet, &sm->path, e)) goto fail;
    if (!file_exists(sm->path)) {
        err_set(e, ERR_NOTFOUND, "model path %s does not exist", sm->path);
        goto fail;
    }
    if (is_encoder_dir(sm->path)) {
        if (!(sm->enc = encoder_load(sm->path, e))) goto fail;
        if (o->n_threads > 0) encoder_set_threads(sm->enc, o->n_threads);
        return 0;
    }
    if (open_decoder(sm, o, e)) goto fail;
    return 0;
fail:
    err_wrap(e, "--model %s", spec);
    serve_model_close(sm);
    return -1;
}

void serve_model_close(ServeModel *sm) {
    if (!sm || !sm->spec) return;
    batcher_stop(sm->batcher);
    chat_template_free(sm->tpl);
    tok_free(sm->tok);
    model_free(sm->m);
    encoder_free(sm->enc);
    pthread_mutex_destroy(&sm->enc_mu);
    free(sm->id);
    free(sm->spec);
    free(sm->path);
    memset(sm, 0, sizeof *sm);
}

int serve_model_named(const ServeModel *sm, const char *name) {
    if (!strcmp(name, sm->id) || !strcmp(name, sm->spec)) return 1;
    /* "tiny-qwen2" for --model ../models/tiny-qwen2/ */
    size_t n = strlen(sm->spec);
    while (n > 1 && sm->spec[n - 1] == '/') n--;
    const char *base = sm->spec + n;
    while (base > sm->spec && base[-1] != '/') base--;
    return strlen(name) == (size_t)(sm->spec + n - base) && !strncmp(name, base, (size_t)(sm->spec + n - base));
}
