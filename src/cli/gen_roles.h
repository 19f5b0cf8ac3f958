/* gen_roles: flags and wiring shared by `aloe personas` and `aloe dialogues`:
 * one model / base URL / key variable per LLM role, the request cache, and
 * a Ctrl-C that stops a run cleanly (the run then resumes). */
#ifndef ALOE_CLI_GEN_ROLES_H
#define ALOE_CLI_GEN_ROLES_H

#include <jansson.h>
#include <stdatomic.h>

#include "cli/args.h"
#include "llm/cache.h"
#include "llm/llm.h"
#include "llm/open.h"

typedef struct GenRole {
    const char *name;      /* "judge": flags --judge-model, --judge-base-url, --judge-api-key-env,
                            * --judge-chat-template */
    const char *help;      /* "the judge model" */
    const char *model, *base_url, *key_env, *chat_template;
    char flag_model[48], flag_url[48], flag_key[48], flag_tmpl[48];
    char help_model[192], help_url[128], help_key[128], help_tmpl[128];
} GenRole;

/* Common connection settings for every role. */
typedef struct GenConn {
    const char *base_url, *key_env;
    double timeout_s;
    int retries;
    atomic_int *cancel; /* Ctrl-C: aborts requests in flight (genrole_stop_on_signal) */
    LlmOpener *opener;  /* when set, roles naming the same local model share one copy */
} GenConn;

/* Writes the four flags of each role into specs (4 per role) and returns
 * how many were written. `model_flag` overrides the model flag's name for
 * the first role (e.g. "--model"), NULL for the standard name. */
int genrole_specs(GenRole *roles, int n, ArgSpec *specs, const char *model_flag);
/* Writes --base-url, --api-key-env, --timeout, --retries. Returns 4. */
int genrole_conn_specs(GenConn *c, ArgSpec *specs);

/* Opens a role's backend (through the cache when given). A role without
 * its own model takes fallback's (may be NULL). */
LlmBackend *genrole_open(const GenRole *r, const GenRole *fallback, const GenConn *c, LlmCache *cache, Err *e);

/* The chat-template override in effect for a role (its own, else
 * fallback's; fallback may be NULL), or NULL. */
const char *genrole_template(const GenRole *r, const GenRole *fallback);

/* Records the role's override, if any, in *settings as {"chat_templates":
 * {role: NAME}} for the run's settings file, creating the object on the
 * first one; a run without overrides keeps *settings NULL (and its old
 * settings). */
void genrole_note_template(json_t **settings, const GenRole *r, const GenRole *fallback);

/* Installs a SIGINT/SIGTERM handler that sets the returned flag (a second
 * Ctrl-C exits at once). */
atomic_int *genrole_stop_on_signal(void);

/* data/seeds/<kind>.jsonl next to the working directory or the binary;
 * caller frees, NULL if not found. */
char *genrole_default_seeds(const char *kind);

#endif
