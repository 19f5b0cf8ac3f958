#include "llm/open.h"

#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "llm/local.h"
#include "llm/openai.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* The explicit forms: openai:NAME is always the endpoint's model, local:PATH
 * always the embedded engine. */
static const char *after(const char *s, const char *prefix) {
    size_t n = strlen(prefix);
    return s && !strncmp(s, prefix, n) ? s + n : NULL;
}

const char *llm_spec_name(const char *model) {
    const char *rest = after(model, "openai:");
    if (!rest) rest = after(model, "local:");
    return rest ? rest : model;
}

int llm_spec_is_local(const char *model) {
    if (!model) return 0;
    if (after(model, "openai:")) return 0;
    if (after(model, "local:")) return 1;
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

/* The endpoint a role would use: its own base URL, else $OPENAI_BASE_URL;
 * NULL when neither is set (the default one is not a choice the user made). */
static const char *chosen_base(const LlmRoleConfig *cfg) {
    return cfg->base_url && *cfg->base_url ? cfg->base_url : env("OPENAI_BASE_URL");
}

/* A spec read as a local path. A user who also set an endpoint may have
 * meant a model of that name there (llama.cpp's server reports its -m path
 * as the model id), so the choice is said out loud, and a missing path
 * points to the explicit form. */
static int check_local_path(const LlmRoleConfig *cfg, const char *role, const char *path, Err *e) {
    int explicit_form = after(cfg->model, "local:") != NULL;
    const char *base = explicit_form ? NULL : chosen_base(cfg);
    char *shown = base ? llm_openai_shown_url(base) : NULL;
    int rc = 0;
    if (strncmp(path, "hf://", 5) && !file_exists(path)) {
        if (shown)
            rc = err_set(e, ERR_NOTFOUND, "%s: model path %s does not exist (for the model of that name at %s, "
                         "write openai:%s)", role, path, shown, path);
        else
            rc = err_set(e, ERR_NOTFOUND, "%s: model path %s does not exist", role, path);
    } else if (shown && strncmp(path, "hf://", 5)) {
        log_info("%s: %s is a local path: using the local engine, not the endpoint %s (write openai:%s for the "
                 "endpoint's model of that name, or local:%s to keep this choice without this notice)",
                 role, path, shown, path, path);
    }
    free(shown);
    return rc;
}

/* Opens a role; *local_out receives the unwrapped backend of a local model
 * (to share it), and `share`, when not NULL, is an already loaded local
 * backend of the same model to share instead of loading it again. */
static LlmBackend *open_role(const LlmRoleConfig *cfg, LlmCache *cache, LlmBackend *share, LlmBackend **local_out,
                             Err *e) {
    const char *role = cfg->role ? cfg->role : "model";
    if (!cfg->model || !*cfg->model) return err_set(e, ERR_ARG, "%s: no model given", role), NULL;
    const char *name = llm_spec_name(cfg->model);
    if (!*name)
        return err_set(e, ERR_ARG, "%s: model spec \"%s\" names no model after its prefix", role, cfg->model),
               NULL;
    LlmBackend *b;
    const char *endpoint;
    char *local_endpoint = NULL;
    if (llm_spec_is_local(cfg->model)) {
        if (check_local_path(cfg, role, name, e)) return NULL;
        LlmRoleConfig local = *cfg;
        local.model = name;
        b = share ? llm_local_share(share) : llm_open_local(&local, e);
        if (b && local_out) *local_out = b;
        /* The template changes the prompt the model sees, so it enters the
         * request-cache key. */
        endpoint = local_endpoint = xasprintf("local:%s", cfg->chat_template ? cfg->chat_template : "own");
    } else if (cfg->chat_template) {
        /* an endpoint applies its own template: accepting one here would be a silent no-op */
        return err_set(e, ERR_ARG, "%s: a chat template applies to local models only; %s is an endpoint model",
                       role, cfg->model), NULL;
    } else {
        const char *base = chosen_base(cfg);
        if (!base) base = LLM_DEFAULT_BASE_URL;
        int own_key = cfg->api_key && *cfg->api_key;
        const char *key = own_key ? cfg->api_key : env("OPENAI_API_KEY");
        const char *key_var = own_key ? cfg->api_key_env : "OPENAI_API_KEY";
        if (llm_openai_check_key(key, e)) {
            if (key_var) err_wrap(e, "$%s", key_var);
            return err_wrap(e, "%s", role), NULL;
        }
        b = llm_openai_new(base, key, name, cfg->timeout_s, cfg->max_retries, e);
        if (b && cfg->cancel) llm_openai_set_cancel(b, cfg->cancel);
        endpoint = b ? llm_openai_base_url(b) : NULL;
        if (!b) err_wrap(e, "%s", role);
    }
    if (b && cache) b = llm_cache_wrap(b, cache, endpoint);
    free(local_endpoint);
    return b;
}

LlmBackend *llm_open(const LlmRoleConfig *cfg, LlmCache *cache, Err *e) { return open_role(cfg, cache, NULL, NULL, e); }

void llm_opener_init(LlmOpener *o, LlmCache *cache) {
    memset(o, 0, sizeof *o);
    o->cache = cache;
}

LlmBackend *llm_opener_open(LlmOpener *o, const LlmRoleConfig *cfg, Err *e) {
    if (!cfg->model || !llm_spec_is_local(cfg->model)) return open_role(cfg, o->cache, NULL, NULL, e);
    /* local:PATH and PATH are one model */
    char *key = xasprintf("%s|%s", llm_spec_name(cfg->model), cfg->chat_template ? cfg->chat_template : "");
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->keys[i], key)) {
            free(key);
            return open_role(cfg, o->cache, o->local[i], NULL, e);
        }
    LlmBackend *local = NULL;
    LlmBackend *b = open_role(cfg, o->cache, NULL, &local, e);
    if (b && local && o->n < LLM_OPENER_MAX) {
        o->keys[o->n] = key;
        o->local[o->n++] = local;
    } else {
        free(key);
    }
    return b;
}

void llm_opener_done(LlmOpener *o) {
    for (int i = 0; i < o->n; i++) free(o->keys[i]);
    memset(o, 0, sizeof *o);
}
