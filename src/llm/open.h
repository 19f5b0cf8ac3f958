/* open: turns a role's configuration into a backend (docs/DESIGN.md §2, model
 * spec; a local model's files are opened by model/open.h).
 *
 * A model that is a path to an existing directory or .gguf file, a path
 * written as one (starting with /, ./ or ../, or ending in .gguf), or an
 * hf://ORG/REPO spec is a local model, served by the embedded engine.
 * Anything else is a model name at an OpenAI-compatible endpoint: the base URL
 * comes from the role's config, else $OPENAI_BASE_URL, else
 * https://api.openai.com/v1; the key from the config, else $OPENAI_API_KEY
 * (none is fine for local servers). With a cache, answers are served from and
 * stored in it (llm_cache_wrap).
 *
 * Explicit forms settle what a spec means: openai:NAME is always the model
 * NAME at the endpoint (even when NAME is also a path, as llama.cpp's server
 * reports its -m path as the model id), local:PATH always the embedded engine
 * (local:hf://ORG/REPO too). When a bare spec is read as a local path while
 * an endpoint was set (the role's base URL or $OPENAI_BASE_URL), a one-line
 * notice on stderr (log_info) says the local engine was chosen and how to
 * pick the endpoint instead. A key holding a control character is refused
 * with an error naming its variable (api_key_env, or OPENAI_API_KEY). */
#ifndef ALOE_LLM_OPEN_H
#define ALOE_LLM_OPEN_H

#include "llm/cache.h"
#include "llm/llm.h"

#define LLM_DEFAULT_BASE_URL "https://api.openai.com/v1"

LlmBackend *llm_open(const LlmRoleConfig *cfg, LlmCache *cache /* may be NULL */, Err *e);

/* 1 if a model spec names a local model (see above). */
int llm_spec_is_local(const char *model);
/* The spec without an openai: or local: prefix (a pointer into it). */
const char *llm_spec_name(const char *model);

/* Opens a local model for a role with the embedded engine (src/llm/local.c). */
LlmBackend *llm_open_local(const LlmRoleConfig *cfg, Err *e);

/* Opens the several roles of one run so that roles naming the same local
 * model (same spec, same chat template) share one loaded copy and one engine
 * thread, whose continuous batching then serves all of them: three roles on
 * hf://Qwen/Qwen2.5-0.5B-Instruct load it once, not three times. Endpoint
 * roles are opened as llm_open does. Open every role before freeing any. */
#define LLM_OPENER_MAX 16
typedef struct LlmOpener {
    LlmCache *cache; /* may be NULL */
    int n;
    char *keys[LLM_OPENER_MAX];
    LlmBackend *local[LLM_OPENER_MAX]; /* the unwrapped local backends (borrowed) */
} LlmOpener;

void llm_opener_init(LlmOpener *o, LlmCache *cache);
LlmBackend *llm_opener_open(LlmOpener *o, const LlmRoleConfig *cfg, Err *e);
/* Frees the bookkeeping only; the backends stay with their owners. */
void llm_opener_done(LlmOpener *o);

#endif
