#include "cli/gen_roles.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "llm/open.h"

int genrole_specs(GenRole *roles, int n, ArgSpec *specs, const char *model_flag) {
    int k = 0;
    for (int i = 0; i < n; i++) {
        GenRole *r = &roles[i];
        snprintf(r->flag_model, sizeof r->flag_model, "%s", i == 0 && model_flag ? model_flag : "");
        if (!r->flag_model[0]) snprintf(r->flag_model, sizeof r->flag_model, "--%s-model", r->name);
        snprintf(r->flag_url, sizeof r->flag_url, "--%s-base-url", r->name);
        snprintf(r->flag_key, sizeof r->flag_key, "--%s-api-key-env", r->name);
        snprintf(r->help_model, sizeof r->help_model, "%s (model spec or endpoint model name; openai:NAME or "
                 "local:PATH to be explicit)", r->help);
        snprintf(r->help_url, sizeof r->help_url, "endpoint of the %s role (default: --base-url)", r->name);
        snprintf(r->help_key, sizeof r->help_key, "variable holding the %s role's API key", r->name);
        snprintf(r->flag_tmpl, sizeof r->flag_tmpl, "--%s-chat-template", r->name);
        snprintf(r->help_tmpl, sizeof r->help_tmpl, "chat template of a local %s model, overriding its own (a family or a .jinja file)", r->name);
        specs[k++] = (ArgSpec){r->flag_model, NULL, ARG_STR, &r->model, "M", r->help_model, 0, 0};
        specs[k++] = (ArgSpec){r->flag_url, NULL, ARG_STR, &r->base_url, "URL", r->help_url, 0, 0};
        specs[k++] = (ArgSpec){r->flag_key, NULL, ARG_STR, &r->key_env, "VAR", r->help_key, 0, 0};
        specs[k++] = (ArgSpec){r->flag_tmpl, NULL, ARG_STR, &r->chat_template, "NAME", r->help_tmpl, 0, 0};
    }
    return k;
}

int genrole_conn_specs(GenConn *c, ArgSpec *specs) {
    specs[0] = (ArgSpec){"--base-url", NULL, ARG_STR, &c->base_url, "URL",
                         "OpenAI-compatible endpoint for every role (default: $OPENAI_BASE_URL)", 0, 0};
    specs[1] = (ArgSpec){"--api-key-env", NULL, ARG_STR, &c->key_env, "VAR",
                         "variable holding the API key (default: OPENAI_API_KEY)", 0, 0};
    specs[2] = (ArgSpec){"--timeout", NULL, ARG_DOUBLE, &c->timeout_s, "S", "per-request time-out in seconds", 0, 0};
    specs[3] = (ArgSpec){"--retries", NULL, ARG_INT, &c->retries, "N",
                         "retries of a failed request (429, 5xx, time-outs)", 0, 0};
    return 4;
}

LlmBackend *genrole_open(const GenRole *r, const GenRole *fallback, const GenConn *c, LlmCache *cache, Err *e) {
    const char *model = r->model ? r->model : fallback ? fallback->model : NULL;
    const char *url = r->base_url ? r->base_url : fallback && fallback->base_url ? fallback->base_url : c->base_url;
    const char *key_env = r->key_env ? r->key_env : fallback && fallback->key_env ? fallback->key_env : c->key_env;
    const char *tmpl = genrole_template(r, fallback);
    if (!model) {
        err_set(e, ERR_ARG, "%s is required%s%s", r->flag_model, fallback ? " (or " : "",
                fallback ? fallback->flag_model : "");
        if (fallback) strncat(e->msg, ")", sizeof e->msg - strlen(e->msg) - 1);
        return NULL;
    }
    const char *key = NULL;
    if (key_env) {
        key = getenv(key_env);
        if (!key || !*key) {
            err_set(e, ERR_ARG, "%s role: the API key variable %s is not set", r->name, key_env);
            return NULL;
        }
    }
    LlmRoleConfig cfg = {.role = r->name, .model = model, .base_url = url, .api_key = key, .api_key_env = key_env,
                         .timeout_s = c->timeout_s, .max_retries = c->retries, .cancel = c->cancel,
                         .chat_template = tmpl};
    return c->opener ? llm_opener_open(c->opener, &cfg, e) : llm_open(&cfg, cache, e);
}

const char *genrole_template(const GenRole *r, const GenRole *fallback) {
    return r->chat_template ? r->chat_template : fallback ? fallback->chat_template : NULL;
}

void genrole_note_template(json_t **settings, const GenRole *r, const GenRole *fallback) {
    const char *tmpl = genrole_template(r, fallback);
    if (!tmpl) return;
    if (!*settings) *settings = json_pack("{s:{}}", "chat_templates");
    json_object_set_new(json_object_get(*settings, "chat_templates"), r->name, json_string(tmpl));
}

static atomic_int stop_flag; /* CLI-only global: set from the signal handler */

static void on_signal(int sig) {
    if (atomic_exchange(&stop_flag, 1)) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    static const char msg[] = "\naloe: stopping; requests in flight are abandoned (the finished work is kept: rerun to resume)\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
}

atomic_int *genrole_stop_on_signal(void) {
    atomic_store(&stop_flag, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return &stop_flag;
}

char *genrole_default_seeds(const char *kind) {
    char *p = xasprintf("data/seeds/%s.jsonl", kind);
    if (file_exists(p)) return p;
    free(p);
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return NULL;
    *slash = 0;
    p = xasprintf("%s/../data/seeds/%s.jsonl", exe, kind);
    if (file_exists(p)) return p;
    free(p);
    return NULL;
}
