/* hub: model specs that name a Hugging Face repository.
 *
 *   hf://ORG/REPO[@REV][/PATH]
 *
 * is downloaded once into a local cache and then used like a local path:
 * a whole repository resolves to its snapshot directory (model files only:
 * config, tokenizer, safetensors; no pickles or other frameworks' weights),
 * and a single PATH (a .gguf file) resolves to that file. Downloads resume
 * where they stopped (HTTP Range), show progress, and are verified by size
 * and, for LFS files, by SHA-256 before they are moved into place.
 *
 * The cache follows the hub's own layout, so one laid out by other tools can
 * be reused: CACHE/models--ORG--REPO/{refs/REV, snapshots/COMMIT/...}.
 * HF_ENDPOINT and HF_TOKEN are honoured as the hub's own tools honour them;
 * the token is sent only to the endpoint and never logged. */
#ifndef ALOE_LLM_HUB_H
#define ALOE_LLM_HUB_H

#include "base/err.h"

typedef struct HubSpec {
    char *repo;     /* "ORG/REPO" */
    char *revision; /* "main" unless @REV */
    char *path;     /* file inside the repo, or NULL for the model files */
} HubSpec;

/* 1 if spec starts with hf:// */
int hub_is_spec(const char *spec);
int hub_parse_spec(const char *spec, HubSpec *out, Err *e);
void hub_spec_free(HubSpec *s);

typedef struct HubOptions {
    const char *endpoint;  /* NULL: $HF_ENDPOINT, then https://huggingface.co */
    const char *token;     /* NULL: $HF_TOKEN */
    const char *cache_dir; /* NULL: $ALOE_CACHE/hub, then ~/.cache/aloe/hub */
    int quiet;             /* no progress output */
    int max_attempts;      /* per file, resuming each time; <= 0: 5 */
} HubOptions;

/* Resolves a model spec to a local path (caller frees). A spec that is not
 * hf:// is returned unchanged. opts may be NULL. */
int hub_resolve(const char *spec, const HubOptions *opts, char **local_path, Err *e);

/* Whether a repository file is one aloe needs for a model directory. */
int hub_wanted_file(const char *rfilename);

#endif
