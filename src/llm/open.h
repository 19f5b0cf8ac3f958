/* open: turns a role's configuration into a backend (GUIDE.md §4, model spec).
 *
 * A model that is a path to an existing directory or .gguf file, a path
 * written as one (starting with /, ./ or ../, or ending in .gguf), or an
 * hf://ORG/REPO spec is a local model, served by the embedded engine.
 * Anything else is a model name at an OpenAI-compatible endpoint: the base URL
 * comes from the role's config, else $OPENAI_BASE_URL, else
 * https://api.openai.com/v1; the key from the config, else $OPENAI_API_KEY
 * (none is fine for local servers). With a cache, answers are served from and
 * stored in it (llm_cache_wrap). */
#ifndef ALOE_LLM_OPEN_H
#define ALOE_LLM_OPEN_H

#include "llm/cache.h"
#include "llm/llm.h"

#define LLM_DEFAULT_BASE_URL "https://api.openai.com/v1"

LlmBackend *llm_open(const LlmRoleConfig *cfg, LlmCache *cache /* may be NULL */, Err *e);

/* 1 if a model spec names a local model (see above). */
int llm_spec_is_local(const char *model);

/* THE HOOK for the embedded engine, in its own file src/llm/local_hook.c:
 * opens a local model for a role. Until the engine lands it fails with
 * ERR_UNSUPPORTED; the engine replaces that file. */
LlmBackend *llm_open_local(const LlmRoleConfig *cfg, Err *e);

#endif
