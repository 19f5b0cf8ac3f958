/* open: any model spec -> the model, its tokenizer, its chat template and
 * its generation defaults. The one place that knows what a model spec is
 * (docs/DESIGN.md, "model spec"); every command that reads weights opens
 * them here or resolves the spec here (training, which loads its own
 * float32 copy, and conversion, which reads the files).
 *
 *   DIR                  a Hugging Face directory (config.json, *.safetensors,
 *                        tokenizer.json, tokenizer_config.json, ...)
 *   FILE.gguf            a GGUF file (tokenizer and template in its metadata)
 *   hf://ORG/REPO[@REV]  downloaded once into the cache (model/hub.h), then
 *   hf://ORG/REPO/F.gguf used as the directory or file above
 *   local:SPEC           SPEC, said explicitly (see llm/open.h)
 *
 * A gated or private repository answers 401/403; the error says how to set
 * HF_TOKEN. It sits below infer/ and train/ so both, and every command,
 * use it. */
#ifndef ALOE_MODEL_OPEN_H
#define ALOE_MODEL_OPEN_H

#include "base/err.h"
#include "formats/hfdir.h"
#include "model/decoder.h"
#include "tok/chat_template.h"
#include "tok/tok.h"

/* What to open besides resolving the spec. */
typedef struct ModelOpenOptions {
    int weights;               /* 1: the inference Model (model_load) */
    int tokenizer;             /* 1: the tokenizer and the chat template */
    const char *chat_template; /* a template family by name instead of the model's, or NULL */
    int n_threads;             /* the Model's pool (<= 0: one per CPU) */
    int quiet;                 /* no download progress */
} ModelOpenOptions;

typedef struct ModelBundle {
    char *path;        /* the local directory or .gguf file the spec resolved to */
    Model *model;      /* NULL unless weights */
    Tokenizer *tok;    /* NULL unless tokenizer */
    ChatTemplate *tpl; /* NULL unless tokenizer */
    GenConfig gen;     /* generation_config.json of a directory; gen_config_init's defaults otherwise */
} ModelBundle;

/* The local path a spec names (caller frees): local: stripped, hf://
 * downloaded into the cache. openai:NAME is refused (an endpoint's model
 * has no weights here). Whether a local path exists is left to the caller,
 * whose loader says best what it expected there; model_open checks it. */
int model_spec_resolve(const char *spec, int quiet, char **path, Err *e);

/* Opens spec into *b (zeroed first); on failure b holds nothing and e says
 * why, naming the spec. */
int model_open(const char *spec, const ModelOpenOptions *o, ModelBundle *b, Err *e);
void model_bundle_free(ModelBundle *b);

#endif
