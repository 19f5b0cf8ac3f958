/* local_hook: where llm_open hands local models (HF directories, .gguf files,
 * hf:// specs) to the embedded engine.
 *
 * PLACEHOLDER until the native engine (issue 3) lands: the engine replaces
 * this file with one that loads the model and returns its LlmBackend. */
#include "llm/open.h"

#include <stddef.h>

LlmBackend *llm_open_local(const LlmRoleConfig *cfg, Err *e) {
    err_set(e, ERR_UNSUPPORTED,
            "%s%smodel \"%s\": local models are not built yet; give the name of a model served by an "
            "OpenAI-compatible endpoint (OPENAI_BASE_URL) instead",
            cfg->role ? cfg->role : "", cfg->role ? ": " : "", cfg->model);
    return NULL;
}
