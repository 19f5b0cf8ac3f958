/* models: the models one `aloe serve` answers for, by name.
 *
 * Each --model is opened once: a decoder with its tokenizer, chat template,
 * stop ids, sampling defaults (the checkpoint's generation_config, as for a
 * local role backend) and one batcher, so every request for it joins the
 * same continuous batch and shares its prefix cache; or a BERT sentence
 * encoder for /v1/embeddings. A request names a model by its alias, the
 * spec as given, or the spec's last path component. */
#ifndef ALOE_SERVE_MODELS_H
#define ALOE_SERVE_MODELS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "base/err.h"
#include "infer/batcher.h"
#include "infer/generate.h"
#include "model/decoder.h"
#include "model/encoder.h"
#include "tok/chat_template.h"
#include "tok/tok.h"

typedef struct ServeModel {
    char *id;   /* the name /v1/models lists: the alias, else the spec */
    char *spec; /* as given */
    char *path; /* resolved local path */
    /* a decoder ... */
    Model *m;
    Tokenizer *tok;
    ChatTemplate *tpl;
    Batcher *batcher;
    int32_t stop_ids[GEN_MAX_STOP_IDS];
    int n_stop_ids;
    SamplerParams defaults;
    int n_ctx;
    atomic_int seqs; /* sequences admitted and not yet answered (the queue's depth plus the batch) */
    /* ... or an encoder; encoder_embed runs one batch at a time on it */
    Encoder *enc;
    pthread_mutex_t enc_mu;
} ServeModel;

typedef struct ServeModelOptions {
    int max_active;            /* sequences decoded together per model (-j) */
    int n_ctx;                 /* <= 0: the model's max_position_embeddings (else 4096) */
    const char *chat_template; /* a family name or a Jinja file; NULL: the model's own */
    int n_threads;             /* <= 0: one per CPU */
    size_t prefix_cache_bytes;
    int quiet;
} ServeModelOptions;

/* Opens spec as a decoder or an encoder; id: the alias (NULL: the spec). */
int serve_model_open(ServeModel *sm, const char *spec, const char *alias, const ServeModelOptions *o, Err *e);
/* Stops its batcher (finishing what it runs) and frees everything. */
void serve_model_close(ServeModel *sm);
/* Whether name is one of sm's names. */
int serve_model_named(const ServeModel *sm, const char *name);

#endif
