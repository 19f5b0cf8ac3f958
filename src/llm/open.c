#include "llm/open.h"

#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "llm/openai.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

int llm_spec_is_local(const char *model) {
    if (!model) return 0;
    /* Endpoint model names may hold '/' ("meta-llama/Llama-3.1-8B-Instruct"
     * on vLLM), so only an existing directory or a path-looking spec is local. */
    return !strncmp(model, "hf://", 5) || !strncmp(model, "/", 1) || !strncmp(model, "./", 2) ||
           !strncmp(model, "../", 3) || ends_with(model, ".gguf") || file_is_dir(model);
}

/* $NAME if set and non-empty. */
static const char *env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

LlmBackend *llm_open(const LlmRoleConfig *cfg, LlmCache *cache, Err *e) {
    const char *role = cfg->role ? cfg->role : "model";
    if (!cfg->model || !*cfg->model) return err_set(e, ERR_ARG, "%s: no model given", role), NULL;
    LlmBackend *b;
    const char *endpoint;
    if (llm_spec_is_local(cfg->model)) {
        if (strncmp(cfg->model, "hf://", 5) && !file_exists(cfg->model))
            return err_set(e, ERR_NOTFOUND, "%s: model path %s does not exist", role, cfg->model), NULL;
        b = llm_open_local(cfg, e);
        endpoint = "local";
    } else {
        const char *base = cfg->base_url && *cfg->base_url ? cfg->base_url : env("OPENAI_BASE_URL");
        if (!base) base = LLM_DEFAULT_BASE_URL;
        const char *key = cfg->api_key && *cfg->api_key ? cfg->api_key : env("OPENAI_API_KEY");
        b = llm_openai_new(base, key, cfg->model, cfg->timeout_s, cfg->max_retries, e);
        endpoint = b ? llm_openai_base_url(b) : NULL;
        if (!b) err_wrap(e, "%s", role);
    }
    if (!b || !cache) return b;
    return llm_cache_wrap(b, cache, endpoint);
}
