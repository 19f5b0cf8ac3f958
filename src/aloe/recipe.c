/* recipe: parse (libyaml's document API, which keeps every node's line and
 * column for the messages), validate, and plan a study. See recipe.h. */
#include "aloe/recipe.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/sha256.h"

/* ---- the parsed document and its error messages ---- */

typedef struct P {
    const char *name;
    yaml_document_t doc;
    const RecipeEnv *env;
    Err *e;
} P;

static yaml_node_t *nd(P *p, int id) { return yaml_document_get_node(&p->doc, id); }

/* "study.yaml:3:7: dialogues.turns: <what>" */
static int fail(P *p, const yaml_node_t *n, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(P *p, const yaml_node_t *n, const char *key, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(p->e, ERR_PARSE, "%s:%zu:%zu: %s: %s", p->name, n ? n->start_mark.line + 1 : 1,
                   n ? n->start_mark.column + 1 : 1, key && *key ? key : "recipe", msg);
}

static const char *kind_name(const yaml_node_t *n) {
    return n->type == YAML_MAPPING_NODE ? "a mapping" : n->type == YAML_SEQUENCE_NODE ? "a list" : "a scalar";
}

static const char *scalar(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

/* "a.b" from prefix "a" and key "b" (prefix may be empty). */
static char *dotted(const char *prefix, const char *key) {
    return prefix && *prefix ? xasprintf("%s.%s", prefix, key) : xstrdup(key);
}

/* Checks that n is a mapping whose keys are scalars from allowed (NULL
 * terminated), each once. */
static int check_map(P *p, yaml_node_t *n, const char *where, const char *const *allowed) {
    if (!n || n->type != YAML_MAPPING_NODE)
        return fail(p, n, where, "expected a mapping (key: value lines), got %s", n ? kind_name(n) : "nothing");
    for (yaml_node_pair_t *a = n->data.mapping.pairs.start; a < n->data.mapping.pairs.top; a++) {
        yaml_node_t *k = nd(p, a->key);
        if (k->type != YAML_SCALAR_NODE) return fail(p, k, where, "a key must be a plain word, got %s", kind_name(k));
        int ok = 0;
        for (int i = 0; allowed[i] && !ok; i++) ok = !strcmp(allowed[i], scalar(k));
        if (!ok && (!strcmp(scalar(k), "api_key") || !strcmp(scalar(k), "key"))) {
            char *full = dotted(where, scalar(k));
            int rc = fail(p, k, full, "keys never go into a recipe: export the key in a variable and name the "
                                      "variable with api_key_env: NAME");
            free(full);
            return rc;
        }
        if (!ok) {
            StrBuf b;
            sb_init(&b);
            for (int i = 0; allowed[i]; i++) sb_printf(&b, "%s%s", i ? ", " : "", allowed[i]);
            char *full = dotted(where, scalar(k));
            int rc = fail(p, k, full, "unknown key (expected one of: %s)", b.s ? b.s : "none");
            free(full);
            sb_free(&b);
            return rc;
        }
        for (yaml_node_pair_t *b = n->data.mapping.pairs.start; b < a; b++) {
            yaml_node_t *kb = nd(p, b->key);
            if (kb->type == YAML_SCALAR_NODE && !strcmp(scalar(kb), scalar(k))) {
                char *full = dotted(where, scalar(k));
                int rc = fail(p, k, full, "given twice (first at line %zu)", kb->start_mark.line + 1);
                free(full);
                return rc;
            }
        }
    }
    return 0;
}

/* The value of key in mapping n, or NULL. */
static yaml_node_t *get(P *p, yaml_node_t *n, const char *key) {
    if (!n || n->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *a = n->data.mapping.pairs.start; a < n->data.mapping.pairs.top; a++) {
        yaml_node_t *k = nd(p, a->key);
        if (k->type == YAML_SCALAR_NODE && !strcmp(scalar(k), key)) return nd(p, a->value);
    }
    return NULL;
}

/* ${VAR} expansion of a scalar. "$" not followed by "{" is kept as it is. */
static char *expand(P *p, yaml_node_t *n, const char *key) {
    const char *s = scalar(n);
    StrBuf b;
    sb_init(&b);
    sb_append(&b, "");
    while (*s) {
        if (s[0] != '$' || s[1] != '{') {
            sb_appendc(&b, *s++);
            continue;
        }
        const char *end = strchr(s + 2, '}');
        size_t len = end ? (size_t)(end - s - 2) : 0;
        int ok = end && len > 0 && (isalpha((unsigned char)s[2]) || s[2] == '_');
        for (size_t i = 0; ok && i < len; i++) ok = isalnum((unsigned char)s[2 + i]) || s[2 + i] == '_';
        if (!ok) {
            fail(p, n, key, "\"%s\": expected ${NAME} with NAME letters, digits and _", scalar(n));
            sb_free(&b);
            return NULL;
        }
        char *var = xstrndup(s + 2, len);
        const char *v = p->env && p->env->lookup ? p->env->lookup(p->env->ctx, var) : NULL;
        if (!v) {
            fail(p, n, key, "${%s} is not set (export %s, or write the value into the recipe)", var, var);
            free(var);
            sb_free(&b);
            return NULL;
        }
        free(var);
        sb_append(&b, v);
        s = end + 1;
    }
    return sb_take(&b);
}

/* A string value: *out set (caller frees) or left NULL when absent and not
 * required. */
static int get_str(P *p, yaml_node_t *map, const char *prefix, const char *key, int required, char **out) {
    yaml_node_t *v = get(p, map, key);
    char *full = dotted(prefix, key);
    int rc = 0;
    *out = NULL;
    if (!v) {
        if (required) rc = fail(p, map, full, "missing (this key is required here)");
    } else if (v->type != YAML_SCALAR_NODE) {
        rc = fail(p, v, full, "expected a value, got %s", kind_name(v));
    } else if (!*scalar(v) || (v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !strcmp(scalar(v), "~"))) {
        rc = fail(p, v, full, "expected a value, got nothing");
    } else if (!(*out = expand(p, v, full))) {
        rc = -1;
    }
    free(full);
    return rc;
}

typedef enum { V_STR, V_INT, V_POS, V_NUM, V_BOOL } VType;

static const char *vtype_name(VType t) {
    switch (t) {
    case V_INT: return "an integer >= 0";
    case V_POS: return "a positive integer";
    case V_NUM: return "a number";
    case V_BOOL: return "true or false";
    default: return "a value";
    }
}

/* Checks a scalar against its type; for V_BOOL *b is set. */
static int check_value(P *p, yaml_node_t *v, const char *full, VType t, const char *text, int *b) {
    char *end = NULL;
    errno = 0;
    if (t == V_INT || t == V_POS) {
        long x = strtol(text, &end, 10);
        if (!*text || *end || errno || x < (t == V_POS ? 1 : 0))
            return fail(p, v, full, "expected %s, got \"%s\"", vtype_name(t), text);
    } else if (t == V_NUM) {
        double x = strtod(text, &end);
        if (!*text || *end || errno || !isfinite(x))
            return fail(p, v, full, "expected %s, got \"%s\"", vtype_name(t), text);
    } else if (t == V_BOOL) {
        if (!strcmp(text, "true") || !strcmp(text, "yes")) *b = 1;
        else if (!strcmp(text, "false") || !strcmp(text, "no")) *b = 0;
        else return fail(p, v, full, "expected true or false, got \"%s\"", text);
    }
    return 0;
}

static int get_typed(P *p, yaml_node_t *map, const char *prefix, const char *key, VType t, char **out) {
    if (get_str(p, map, prefix, key, 0, out)) return -1;
    if (!*out) return 0;
    char *full = dotted(prefix, key);
    int b;
    int rc = check_value(p, get(p, map, key), full, t, *out, &b);
    free(full);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

static json_t *typed_json(VType t, const char *text) {
    if (t == V_INT || t == V_POS) return json_integer(strtol(text, NULL, 10));
    if (t == V_NUM) return json_real(strtod(text, NULL));
    if (t == V_BOOL) return json_boolean(!strcmp(text, "true") || !strcmp(text, "yes"));
    return json_string(text);
}

/* ---- command lines ---- */

typedef struct Argv {
    char **v;
    int n, cap;
} Argv;

static void av_add(Argv *a, const char *s) {
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? 2 * a->cap : 16;
        a->v = xrealloc(a->v, (size_t)a->cap * sizeof *a->v);
    }
    a->v[a->n++] = xstrdup(s);
    a->v[a->n] = NULL;
}

static void av_add2(Argv *a, const char *flag, const char *value) {
    if (!value) return;
    av_add(a, flag);
    av_add(a, value);
}

static void av_free(Argv *a) {
    for (int i = 0; i < a->n; i++) free(a->v[i]);
    free(a->v);
    memset(a, 0, sizeof *a);
}

/* A table of options that map one recipe key onto one flag. digest: the
 * results depend on it (jobs and endpoints do not). */
typedef struct Opt {
    const char *key, *flag;
    VType type;
    int digest;
} Opt;

/* Adds the options of tbl that map n holds to a and (digest ones) to
 * settings as "prefix.key". */
static int opts_apply(P *p, yaml_node_t *n, const char *prefix, const Opt *tbl, Argv *a, json_t *settings) {
    for (const Opt *o = tbl; o->key; o++) {
        char *v;
        if (get_typed(p, n, prefix, o->key, o->type, &v)) return -1;
        if (!v) continue;
        if (o->type == V_BOOL) {
            if (!strcmp(v, "true") || !strcmp(v, "yes")) av_add(a, o->flag);
        } else {
            av_add2(a, o->flag, v);
        }
        if (o->digest && settings) {
            char *full = dotted(prefix, o->key);
            json_object_set_new(settings, full, typed_json(o->type, v));
            free(full);
        }
        free(v);
    }
    return 0;
}

/* Appends the keys of tbl to a NULL-terminated list of allowed keys. */
static const char **allowed_keys(const char *const *extra, const Opt *tbl) {
    int n = 0, m = 0;
    while (extra && extra[n]) n++;
    while (tbl && tbl[m].key) m++;
    const char **out = xcalloc((size_t)(n + m + 1), sizeof *out);
    for (int i = 0; i < n; i++) out[i] = extra[i];
    for (int i = 0; i < m; i++) out[n + i] = tbl[i].key;
    return out;
}

static int check_map_opts(P *p, yaml_node_t *n, const char *where, const char *const *extra, const Opt *tbl) {
    const char **all = allowed_keys(extra, tbl);
    int rc = check_map(p, n, where, all);
    free(all);
    return rc;
}

/* ---- roles: a model name, or {model, base_url, api_key_env} ---- */

typedef struct Role {
    char *model, *base_url, *key_env;
} Role;

static void role_free(Role *r) {
    free(r->model);
    free(r->base_url);
    free(r->key_env);
    memset(r, 0, sizeof *r);
}

static int get_role(P *p, yaml_node_t *map, const char *prefix, const char *key, int required, Role *r) {
    memset(r, 0, sizeof *r);
    yaml_node_t *v = get(p, map, key);
    if (!v || v->type == YAML_SCALAR_NODE) return get_str(p, map, prefix, key, required, &r->model);
    char *full = dotted(prefix, key);
    static const char *const keys[] = {"model", "base_url", "api_key_env", NULL};
    int rc = check_map(p, v, full, keys) || get_str(p, v, full, "model", 1, &r->model) ||
                     get_str(p, v, full, "base_url", 0, &r->base_url) || get_str(p, v, full, "api_key_env", 0, &r->key_env)
                 ? -1
                 : 0;
    free(full);
    return rc;
}

/* --NAME-model M [--NAME-base-url U] [--NAME-api-key-env K]; the model in settings. */
static void role_args(Argv *a, const Role *r, const char *model_flag, const char *name, json_t *settings,
                      const char *skey) {
    if (!r->model) return;
    char f[64];
    av_add2(a, model_flag, r->model);
    snprintf(f, sizeof f, "--%s-base-url", name);
    av_add2(a, f, r->base_url);
    snprintf(f, sizeof f, "--%s-api-key-env", name);
    av_add2(a, f, r->key_env);
    if (settings) json_object_set_new(settings, skey, json_string(r->model));
}

/* ---- the recipe ---- */

typedef struct Study {
    char *out, *seed, *protocol, *model;
    char *base_url, *key_env, *timeout, *retries;
} Study;

static void study_free(Study *s) {
    free(s->out), free(s->seed), free(s->protocol), free(s->model);
    free(s->base_url), free(s->key_env), free(s->timeout), free(s->retries);
}

/* --base-url, --api-key-env, --timeout, --retries of every command that talks to endpoints. */
static void conn_args(Argv *a, const Study *s) {
    av_add2(a, "--base-url", s->base_url);
    av_add2(a, "--api-key-env", s->key_env);
    av_add2(a, "--timeout", s->timeout);
    av_add2(a, "--retries", s->retries);
}

static void common_args(Argv *a, const Study *s, json_t *settings, int protocol) {
    if (s->seed) {
        av_add2(a, "--seed", s->seed);
        json_object_set_new(settings, "seed", json_integer(strtol(s->seed, NULL, 10)));
    }
    if (protocol && s->protocol) {
        av_add2(a, "--protocol", s->protocol);
        json_object_set_new(settings, "protocol", json_string(s->protocol));
    }
}

/* ---- the plan under construction ---- */

typedef struct Builder {
    P *p;
    Study st;
    RecipePlan *plan;
    int cap;
    /* pool paths, under OUT/personas */
    char *profiles, *personalities, *eval_profiles, *eval_personalities;
    long n_profiles, n_eval_profiles; /* -1: unknown */
    long convs, turns;                /* dialogues: conversations, turns */
    int dialogues_stage, export_stage, personas_stage;
    int narms;
} Builder;

static RecipeStage *add_stage(Builder *b, StageKind kind, const char *name) {
    RecipePlan *pl = b->plan;
    if (pl->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 8;
        pl->stages = xrealloc(pl->stages, (size_t)b->cap * sizeof *pl->stages);
    }
    RecipeStage *s = &pl->stages[pl->n++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->name = xstrdup(name);
    s->dir = path_join(pl->out, name);
    s->settings = json_object();
    return s;
}

static void add_dep(RecipeStage *s, int dep) {
    if (dep < 0) return;
    for (int i = 0; i < s->ndeps; i++)
        if (s->deps[i] == dep) return;
    s->deps = xrealloc(s->deps, (size_t)(s->ndeps + 1) * sizeof *s->deps);
    s->deps[s->ndeps++] = dep;
}

static RecipeStep *add_step(RecipeStage *s) {
    s->steps = xrealloc(s->steps, (size_t)(s->nsteps + 1) * sizeof *s->steps);
    RecipeStep *st = &s->steps[s->nsteps++];
    memset(st, 0, sizeof *st);
    return st;
}

static void add_cmd(RecipeStage *s, Argv *a) {
    RecipeStep *st = add_step(s);
    st->argv = a->v;
    st->argc = a->n;
    memset(a, 0, sizeof *a);
}

static void add_copy(RecipeStage *s, const char *src, const char *dst) {
    RecipeStep *st = add_step(s);
    st->src = xstrdup(src);
    st->dst = xstrdup(dst);
}

/* ---- estimates (the constants are explained in recipe_estimate_help) ---- */

enum {
    EST_INSTR = 150,   /* a role's instructions */
    EST_PERSONA = 150, /* a profile + personality */
    EST_USER = 40,     /* one user message */
    EST_REPLY = 60,    /* one assistant reply */
    EST_HINT = 80,     /* the inducer's extract */
    EST_VERDICT = 20,  /* a judge's answer */
    EST_ITEM = 60,     /* one generated persona item */
};

static void est_dialogues(RecipeEstimate *x, double convs, double turns) {
    for (int t = 1; t <= (int)turns; t++) {
        double h = (t - 1) * (double)(EST_USER + EST_REPLY);
        double prompt = (EST_INSTR + EST_PERSONA + h) +                      /* user simulator */
                        (EST_INSTR + EST_PERSONA + h + EST_USER) +           /* inducer */
                        (h + EST_USER + EST_HINT) + (h + EST_USER) +         /* the two responders */
                        2 * (EST_INSTR + EST_PERSONA + EST_USER + 2 * EST_REPLY); /* judge, both orders */
        double completion = EST_USER + EST_HINT + 2 * EST_REPLY + 2 * EST_VERDICT;
        x->prompt_tokens += convs * prompt;
        x->completion_tokens += convs * completion;
    }
    x->requests += convs * turns * 6;
}

static void est_bench(RecipeEstimate *x, double personas, double turns) {
    for (int t = 1; t <= (int)turns; t++) {
        double h = (t - 1) * (double)(EST_USER + EST_REPLY);
        double prompt = (EST_INSTR + EST_PERSONA + h) + (h + EST_USER) + (EST_INSTR + EST_PERSONA + EST_USER + EST_REPLY);
        x->prompt_tokens += personas * prompt;
        x->completion_tokens += personas * (EST_USER + EST_REPLY + EST_VERDICT);
    }
    x->requests += personas * turns * 3;
}

static void est_pool(RecipeEstimate *x, double target, double per_call, double examples) {
    /* half the candidates accepted: 2 x target / per_call generator requests,
     * one embedding request per generator reply */
    double gen = ceil(2 * target / per_call);
    x->requests += 2 * gen;
    x->prompt_tokens += gen * (EST_INSTR + examples * EST_ITEM) + gen * per_call * EST_ITEM;
    x->completion_tokens += gen * per_call * EST_ITEM;
}

const char *recipe_estimate_help(void) {
    return "Estimates (requests to every role, local models included; tokens from typical lengths: role\n"
           "instructions 150, persona 150, user message 40, reply 60, inducer extract 80, judge answer 20,\n"
           "persona item 60 tokens; history = (t-1) x (40 + 60) tokens at turn t, seen by the user simulator,\n"
           "the inducer, the responders and the evaluated model; the judges see the persona, the user's\n"
           "message and the reply or replies):\n"
           "  personas (generated)  2 x target / per_call generator requests (half the candidates accepted)\n"
           "                        + as many embedding requests\n"
           "  dialogues             conversations x turns x 6 (1 user + 1 inducer + 2 responders + 2 judge\n"
           "                        orders); conversations = passes x profiles, or num\n"
           "  train                 no requests; steps = steps, or ceil(epochs x records / (batch x grad_accum))\n"
           "                        with records = conversations x turns\n"
           "  bench (each arm)      eval profiles x K x turns x 3 (user, evaluated model, judge; judge\n"
           "                        re-asks add more)\n"
           "Real lengths vary with the models: read these as orders of magnitude.";
}

/* ---- stages ---- */

static const Opt GEN_OPTS[] = {
    {"threshold", "--threshold", V_NUM, 1},     {"examples", "--examples", V_POS, 1},
    {"per_call", "--per-call", V_POS, 1},       {"min_acceptance", "--min-acceptance", V_NUM, 1},
    {"floor_rounds", "--floor-rounds", V_POS, 1}, {"max_rounds", "--max-rounds", V_POS, 1},
    {"temperature", "--temperature", V_NUM, 1}, {"max_tokens", "--max-tokens", V_INT, 1},
    {"jobs", "--jobs", V_POS, 0},               {NULL, NULL, 0, 0}};

/* One pool source (train or eval) into the personas stage. */
static int plan_pool(Builder *b, RecipeStage *s, yaml_node_t *src, const char *where, int eval) {
    P *p = b->p;
    static const char *const keys[] = {"published", "generate", NULL};
    if (check_map(p, src, where, keys)) return -1;
    yaml_node_t *pub = get(p, src, "published"), *gen = get(p, src, "generate");
    if (!pub == !gen) return fail(p, src, where, "expected one of published: DIR or generate: {...}");
    const char *sfx = eval ? "_eval" : "";
    char *prof = eval ? b->eval_profiles : b->profiles, *pers = eval ? b->eval_personalities : b->personalities;
    long *count = eval ? &b->n_eval_profiles : &b->n_profiles;
    if (pub) {
        char *dir;
        if (get_str(p, src, where, "published", 1, &dir)) return -1;
        char *f1 = xasprintf("%s/profile%s.jsonl", dir, sfx), *f2 = xasprintf("%s/personality%s.jsonl", dir, sfx);
        add_copy(s, f1, prof);
        add_copy(s, f2, pers);
        char *key = dotted(where, "published");
        json_object_set_new(s->settings, key, json_string(dir));
        free(key);
        const RecipeEnv *env = b->p->env;
        char h1[65], h2[65];
        if (env && env->file_sha256 && env->file_sha256(env->ctx, f1, h1) == 0 &&
            env->file_sha256(env->ctx, f2, h2) == 0) {
            key = dotted(where, "published_sha256"); /* the pools' contents, not only their folder */
            json_object_set_new(s->settings, key, json_pack("{s:s, s:s}", "profile", h1, "personality", h2));
            free(key);
        }
        *count = b->p->env && b->p->env->count_lines ? b->p->env->count_lines(b->p->env->ctx, f1) : -1;
        long n2 = b->p->env && b->p->env->count_lines ? b->p->env->count_lines(b->p->env->ctx, f2) : -1;
        s->total += (*count > 0 ? *count : 0) + (n2 > 0 ? n2 : 0);
        free(f1), free(f2), free(dir);
        return 0;
    }
    char *gw = dotted(where, "generate");
    static const char *const gkeys[] = {"model", "embed_model", "profiles", "personalities", "profile_seeds",
                                        "personality_seeds", NULL};
    Role model = {0}, embed = {0};
    char *n_prof = NULL, *n_pers = NULL, *seeds[2] = {0};
    int rc = check_map_opts(p, gen, gw, gkeys, GEN_OPTS) || get_role(p, gen, gw, "model", 1, &model) ||
                     get_role(p, gen, gw, "embed_model", 1, &embed) ||
                     get_typed(p, gen, gw, "profiles", V_POS, &n_prof) ||
                     get_typed(p, gen, gw, "personalities", V_POS, &n_pers) ||
                     get_str(p, gen, gw, "profile_seeds", 0, &seeds[0]) ||
                     get_str(p, gen, gw, "personality_seeds", 0, &seeds[1])
                 ? -1
                 : 0;
    if (!rc && (!n_prof || !n_pers))
        rc = fail(p, gen, gw, "expected the target sizes profiles: N and personalities: N");
    for (int k = 0; !rc && k < 2; k++) {
        const char *kind = k ? "personality" : "profile";
        Argv a = {0};
        av_add(&a, "personas");
        av_add2(&a, "--kind", kind);
        av_add2(&a, "--target", k ? n_pers : n_prof);
        char *skey = xasprintf("%s.%s", gw, k ? "personalities" : "profiles");
        json_object_set_new(s->settings, skey, json_integer(strtol(k ? n_pers : n_prof, NULL, 10)));
        free(skey);
        skey = dotted(gw, "model");
        role_args(&a, &model, "--model", "generator", s->settings, skey);
        free(skey);
        skey = dotted(gw, "embed_model");
        role_args(&a, &embed, "--embed-model", "embed", s->settings, skey);
        free(skey);
        if (seeds[k]) {
            av_add2(&a, "--seeds", seeds[k]);
            skey = xasprintf("%s.%s_seeds", gw, kind);
            json_object_set_new(s->settings, skey, json_string(seeds[k]));
            free(skey);
        }
        rc = opts_apply(p, gen, gw, GEN_OPTS, &a, s->settings);
        common_args(&a, &b->st, s->settings, 1);
        conn_args(&a, &b->st);
        av_add2(&a, "--out", k ? pers : prof);
        add_cmd(s, &a);
        av_free(&a);
        long target = strtol(k ? n_pers : n_prof, NULL, 10);
        if (!k) *count = target;
        s->total += target;
        /* per_call and examples as given, or the command's defaults (20, 5) */
        char *pc = NULL, *ex = NULL;
        get_typed(p, gen, gw, "per_call", V_POS, &pc);
        get_typed(p, gen, gw, "examples", V_POS, &ex);
        est_pool(&s->est, (double)target, pc ? strtod(pc, NULL) : 20, ex ? strtod(ex, NULL) : 5);
        free(pc), free(ex);
    }
    role_free(&model), role_free(&embed);
    free(n_prof), free(n_pers), free(seeds[0]), free(seeds[1]), free(gw);
    return rc;
}

static int plan_personas(Builder *b, yaml_node_t *n, int need_train) {
    P *p = b->p;
    static const char *const keys[] = {"train", "eval", NULL};
    if (check_map(p, n, "personas", keys)) return -1;
    yaml_node_t *tr = get(p, n, "train"), *ev = get(p, n, "eval");
    if (!ev) return fail(p, n, "personas.eval", "missing: the benchmark's pools (published: DIR or generate: {...})");
    if (need_train && !tr)
        return fail(p, n, "personas.train", "missing: the arms that train need the training pools (published: DIR or "
                                            "generate: {...})");
    b->personas_stage = b->plan->n;
    RecipeStage *s = add_stage(b, STAGE_PERSONAS, "personas");
    s->unit = xstrdup("pool items");
    if (need_train && plan_pool(b, s, tr, "personas.train", 0)) return -1;
    s = &b->plan->stages[b->personas_stage];
    return plan_pool(b, s, ev, "personas.eval", 1);
}

static const Opt DLG_OPTS[] = {
    {"turns", "--turns", V_POS, 1},          {"passes", "--passes", V_POS, 1},
    {"num", "--num", V_POS, 1},              {"jobs", "--jobs", V_POS, 0},
    {"temperature", "--temperature", V_NUM, 1}, {"max_tokens", "--max-tokens", V_INT, 1},
    {"drop_disagreements", "--drop-disagreements", V_BOOL, 1},
    {"judge_retries", "--judge-retries", V_INT, 1},
    /* not in the digest: a rerun retries skipped conversations either way */
    {"skip_failed", "--skip-failed", V_BOOL, 0}, {NULL, NULL, 0, 0}};

static int plan_dialogues(Builder *b, yaml_node_t *n) {
    P *p = b->p;
    static const char *const roles[] = {"user", "inducer", "responder", "hinted", "plain", "judge", NULL};
    if (!n) return fail(p, NULL, "dialogues", "missing: the arms that train need conversation trees");
    if (check_map_opts(p, n, "dialogues", roles, DLG_OPTS)) return -1;
    if (get(p, n, "passes") && get(p, n, "num"))
        return fail(p, get(p, n, "num"), "dialogues.num", "give passes or num, not both");
    b->dialogues_stage = b->plan->n;
    RecipeStage *s = add_stage(b, STAGE_DIALOGUES, "dialogues");
    add_dep(s, b->personas_stage);
    s->unit = xstrdup("conversations");
    s->out_file = path_join(s->dir, "trees.jsonl");
    Argv a = {0};
    av_add(&a, "dialogues");
    av_add2(&a, "--profiles", b->profiles);
    av_add2(&a, "--personalities", b->personalities);
    int rc = 0;
    for (int i = 0; !rc && roles[i]; i++) {
        Role r;
        int required = !strcmp(roles[i], "user") || !strcmp(roles[i], "inducer") || !strcmp(roles[i], "judge");
        rc = get_role(p, n, "dialogues", roles[i], required, &r);
        char flag[48], skey[48];
        snprintf(flag, sizeof flag, "--%s-model", roles[i]);
        snprintf(skey, sizeof skey, "dialogues.%s", roles[i]);
        if (!rc) role_args(&a, &r, flag, roles[i], s->settings, skey);
        role_free(&r);
    }
    if (!rc && !get(p, n, "responder") && (!get(p, n, "hinted") || !get(p, n, "plain")))
        rc = fail(p, n, "dialogues.responder", "missing: give responder (both responders) or hinted and plain");
    if (!rc) rc = opts_apply(p, n, "dialogues", DLG_OPTS, &a, s->settings);
    common_args(&a, &b->st, s->settings, 1);
    conn_args(&a, &b->st);
    av_add2(&a, "--out", s->out_file);
    add_cmd(s, &a);
    av_free(&a);
    if (rc) return -1;
    char *v = NULL;
    get_typed(p, n, "dialogues", "turns", V_POS, &v);
    b->turns = v ? strtol(v, NULL, 10) : 10;
    free(v), v = NULL;
    get_typed(p, n, "dialogues", "num", V_POS, &v);
    if (v) b->convs = strtol(v, NULL, 10);
    else {
        get_typed(p, n, "dialogues", "passes", V_POS, &v);
        b->convs = b->n_profiles > 0 ? (v ? strtol(v, NULL, 10) : 1) * b->n_profiles : -1;
    }
    free(v);
    s->total = b->convs;
    if (b->convs > 0) est_dialogues(&s->est, (double)b->convs, (double)b->turns);
    return 0;
}

static int plan_export(Builder *b, yaml_node_t *n) {
    P *p = b->p;
    static const char *const keys[] = {"system", NULL};
    if (n && check_map(p, n, "export", keys)) return -1;
    char *system = NULL;
    if (n && get_str(p, n, "export", "system", 0, &system)) return -1;
    b->export_stage = b->plan->n;
    RecipeStage *s = add_stage(b, STAGE_EXPORT, "export");
    add_dep(s, b->dialogues_stage);
    s->unit = xstrdup("files");
    s->total = 2;
    const char *trees = b->plan->stages[b->dialogues_stage].out_file;
    for (int k = 0; k < 2; k++) {
        Argv a = {0};
        av_add(&a, "export");
        av_add(&a, trees);
        char *f = xasprintf("%s/sft_%s.jsonl", s->dir, k ? "rejected" : "preferred");
        av_add2(&a, "--sft", f);
        free(f);
        if (!k) {
            f = path_join(s->dir, "dpo.jsonl");
            av_add2(&a, "--dpo", f);
            free(f);
        }
        av_add2(&a, "--branch", k ? "rejected" : "preferred");
        av_add2(&a, "--system", system);
        add_cmd(s, &a);
        av_free(&a);
    }
    if (system) json_object_set_new(s->settings, "export.system", json_string(system));
    free(system);
    return 0;
}

/* ---- arms ---- */

typedef enum { ARM_BASE, ARM_SFT, ARM_DPO, ARM_CHECKPOINT, ARM_ENDPOINT } ArmKind;

typedef struct Arm {
    char *name;
    ArmKind kind;
    yaml_node_t *node, *body;
    char *start;   /* the start model (arm.model or the study's) */
    char *model;   /* what bench evaluates: a path, a spec or an endpoint model name */
    Role endpoint; /* ARM_ENDPOINT */
    char *adapter;  /* ARM_CHECKPOINT given as {adapter: DIR} */
    int train_stage;
} Arm;

/* 1 for SFT only, 2 for DPO only, 3 both */
typedef struct TrainOpt {
    Opt o;
    int kinds;
} TrainOpt;

static const Opt TRAIN_OPTS[] = {
    {"lora_r", "--lora-r", V_INT, 1},           {"lora_alpha", "--lora-alpha", V_NUM, 1},
    {"lora_dropout", "--lora-dropout", V_NUM, 1}, {"lora_targets", "--lora-targets", V_STR, 1},
    {"lr", "--lr", V_NUM, 1},                   {"steps", "--steps", V_POS, 1},
    {"epochs", "--epochs", V_NUM, 1},           {"batch", "--batch", V_POS, 1},
    {"grad_accum", "--grad-accum", V_POS, 1},   {"max_len", "--max-len", V_POS, 1},
    {"weight_decay", "--weight-decay", V_NUM, 1}, {"max_grad_norm", "--max-grad-norm", V_NUM, 1},
    {"warmup", "--warmup", V_INT, 1},           {"schedule", "--schedule", V_STR, 1},
    {"seed", "--seed", V_INT, 1},               {"chat_template", "--chat-template", V_STR, 1},
    {"save_every", "--save-every", V_INT, 0},   {"save_dtype", "--save-dtype", V_STR, 1},
    {"threads", "--threads", V_INT, 0},         {NULL, NULL, 0, 0}};
static const Opt SFT_OPTS[] = {{"loss_on", "--loss-on", V_STR, 1}, {NULL, NULL, 0, 0}};
static const Opt DPO_OPTS[] = {{"beta", "--beta", V_NUM, 1},
                               {"loss", "--loss", V_STR, 1},
                               {"label_smoothing", "--label-smoothing", V_NUM, 1},
                               {"nll", "--nll", V_NUM, 1},
                               {"ref", "--ref", V_STR, 1},
                               {NULL, NULL, 0, 0}};

static int arm_find(Arm *arms, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(arms[i].name, name)) return i;
    return -1;
}

static int valid_name(const char *s) {
    if (!*s || *s == '.') return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.') return 0;
    return 1;
}

static int parse_arm(Builder *b, yaml_node_t *n, int i, Arm *arms) {
    P *p = b->p;
    char where[48];
    snprintf(where, sizeof where, "arms[%d]", i);
    Arm *a = &arms[i];
    a->node = n;
    a->train_stage = -1;
    static const char *const keys[] = {"name", "model", "base", "sft", "dpo", "checkpoint", "endpoint", NULL};
    if (check_map(p, n, where, keys) || get_str(p, n, where, "name", 1, &a->name)) return -1;
    char *full = dotted(where, "name");
    if (!valid_name(a->name)) {
        int rc = fail(p, get(p, n, "name"), full, "\"%s\": expected letters, digits, '-', '_' or '.' (it names "
                                                 "folders)", a->name);
        free(full);
        return rc;
    }
    if (arm_find(arms, i, a->name) >= 0) {
        int rc = fail(p, get(p, n, "name"), full, "\"%s\" is the name of an earlier arm too", a->name);
        free(full);
        return rc;
    }
    free(full);
    static const char *const kinds[] = {"base", "sft", "dpo", "checkpoint", "endpoint"};
    int found = 0;
    for (int k = 0; k < 5; k++)
        if (get(p, n, kinds[k])) a->kind = (ArmKind)k, a->body = get(p, n, kinds[k]), found++;
    if (found != 1)
        return fail(p, n, where, "expected exactly one of base: true, sft: {...}, dpo: {...}, checkpoint: PATH "
                                 "(or {adapter: DIR}), endpoint: {...} (found %d)", found);
    if (get_str(p, n, where, "model", 0, &a->start)) return -1;
    if (!a->start && b->st.model) a->start = xstrdup(b->st.model);
    char *kw = xasprintf("%s.%s", where, kinds[a->kind]);
    int rc = 0;
    if (a->kind == ARM_BASE) {
        int yes = 0;
        if (a->body->type != YAML_SCALAR_NODE) rc = fail(p, a->body, kw, "expected true, got %s", kind_name(a->body));
        else if (check_value(p, a->body, kw, V_BOOL, scalar(a->body), &yes) == 0 && !yes)
            rc = fail(p, a->body, kw, "expected true (leave the arm out instead)");
        else if (!yes) rc = -1;
    } else if (a->kind == ARM_CHECKPOINT && a->body->type == YAML_MAPPING_NODE) {
        static const char *const ckeys[] = {"adapter", NULL};
        rc = check_map(p, a->body, kw, ckeys) || get_str(p, a->body, kw, "adapter", 1, &a->adapter) ? -1 : 0;
        if (!rc && !a->start)
            rc = fail(p, a->body, kw, "missing model: an adapter is merged into the arm's model: SPEC (or the "
                                      "study's model: SPEC), the model it was trained from");
    } else if (a->kind == ARM_CHECKPOINT) {
        rc = get_str(p, n, where, "checkpoint", 1, &a->model);
    } else if (a->kind == ARM_ENDPOINT) {
        rc = get_role(p, n, where, "endpoint", 1, &a->endpoint);
        if (!rc) a->model = xstrdup(a->endpoint.model);
    }
    if (!rc && (a->kind == ARM_BASE || a->kind == ARM_SFT || a->kind == ARM_DPO) && !a->start)
        rc = fail(p, n, where, "missing model: give the arm a model: SPEC or the study a model: SPEC (the start "
                               "model of the arms)");
    if (!rc && a->kind == ARM_BASE) a->model = xstrdup(a->start);
    free(kw);
    return rc;
}

/* The train stage of a trained arm. */
static int plan_train(Builder *b, Arm *arms, int i) {
    P *p = b->p;
    Arm *a = &arms[i];
    char where[64];
    snprintf(where, sizeof where, "arms[%d].%s", i, a->kind == ARM_SFT ? "sft" : "dpo");
    static const char *const sft_extra[] = {"branch", NULL}, *const dpo_extra[] = {"from", NULL};
    Opt both[32];
    int nb = 0;
    for (const Opt *o = TRAIN_OPTS; o->key; o++) both[nb++] = *o;
    for (const Opt *o = a->kind == ARM_SFT ? SFT_OPTS : DPO_OPTS; o->key; o++) both[nb++] = *o;
    both[nb] = (Opt){NULL, NULL, 0, 0};
    yaml_node_t *body = a->body;
    if (body->type == YAML_SCALAR_NODE && !*scalar(body)) body = NULL; /* "sft:" with nothing: all defaults */
    if (body && check_map_opts(p, body, where, a->kind == ARM_SFT ? sft_extra : dpo_extra, both)) return -1;
    char *name = xasprintf("train/%s", a->name);
    a->train_stage = b->plan->n;
    RecipeStage *s = add_stage(b, STAGE_TRAIN, name);
    free(name);
    add_dep(s, b->export_stage);
    s->unit = xstrdup("steps");
    const char *start = a->start;
    char *from = NULL, *branch = NULL;
    int rc = 0;
    if (body && a->kind == ARM_SFT) rc = get_str(p, body, where, "branch", 0, &branch);
    if (!rc && branch && strcmp(branch, "preferred") && strcmp(branch, "rejected")) {
        char *full = dotted(where, "branch");
        rc = fail(p, get(p, body, "branch"), full, "expected preferred or rejected, got \"%s\"", branch);
        free(full);
    }
    if (!rc && body && a->kind == ARM_DPO) rc = get_str(p, body, where, "from", 0, &from);
    if (!rc && from && strcmp(from, "base")) {
        int k = arm_find(arms, i, from);
        char *full = dotted(where, "from");
        if (k < 0)
            rc = fail(p, get(p, body, "from"), full, "\"%s\": expected base or the name of an earlier arm%s", from,
                      arm_find(arms, b->narms, from) >= 0 ? " (arms are trained in order: move it up)" : "");
        else if (arms[k].kind == ARM_ENDPOINT)
            rc = fail(p, get(p, body, "from"), full, "\"%s\" is an endpoint arm: there are no weights to train", from);
        else {
            start = arms[k].model;
            if (arms[k].train_stage >= 0) add_dep(s, arms[k].train_stage);
        }
        free(full);
    }
    s = &b->plan->stages[a->train_stage];
    char *model_dir = path_join(s->dir, "model");
    Argv av = {0};
    av_add(&av, "train");
    av_add(&av, a->kind == ARM_SFT ? "sft" : "dpo");
    av_add2(&av, "--model", start);
    char *data = a->kind == ARM_SFT ? xasprintf("%s/export/sft_%s.jsonl", b->plan->out, branch ? branch : "preferred")
                                    : xasprintf("%s/export/dpo.jsonl", b->plan->out);
    av_add2(&av, "--data", data);
    free(data);
    json_object_set_new(s->settings, "kind", json_string(a->kind == ARM_SFT ? "sft" : "dpo"));
    /* an earlier arm's model is named by the arm ("from"), not by its path
     * under out: (which may move) */
    if (start == a->start) json_object_set_new(s->settings, "model", json_string(start));
    if (a->kind == ARM_SFT) json_object_set_new(s->settings, "branch", json_string(branch ? branch : "preferred"));
    if (from) json_object_set_new(s->settings, "from", json_string(from));
    if (!rc && body) rc = opts_apply(p, body, where, both, &av, s->settings);
    if (!rc && b->st.seed && !(body && get(p, body, "seed"))) {
        av_add2(&av, "--seed", b->st.seed);
        json_object_set_new(s->settings, "seed", json_integer(strtol(b->st.seed, NULL, 10)));
    }
    av_add2(&av, "--out", model_dir);
    RecipeStep *st = add_step(s);
    st->argv = av.v, st->argc = av.n, st->train_resume = 1, st->train_out = xstrdup(model_dir);
    memset(&av, 0, sizeof av);
    /* A LoRA run leaves an adapter: bench needs a whole model, so merge it. */
    char *r = NULL;
    if (!rc && body) rc = get_typed(p, body, where, "lora_r", V_INT, &r);
    if (!rc && r && strtol(r, NULL, 10) > 0) {
        char *merged = path_join(s->dir, "merged");
        av_add(&av, "merge");
        av_add2(&av, "--model", start);
        av_add2(&av, "--adapter", model_dir);
        av_add2(&av, "--out", merged);
        add_cmd(s, &av);
        a->model = merged;
    } else {
        a->model = xstrdup(model_dir);
    }
    /* steps for the estimate and the status line */
    char *steps = NULL, *epochs = NULL, *batch = NULL, *accum = NULL;
    if (!rc && body) {
        get_typed(p, body, where, "steps", V_POS, &steps);
        get_typed(p, body, where, "epochs", V_NUM, &epochs);
        get_typed(p, body, where, "batch", V_POS, &batch);
        get_typed(p, body, where, "grad_accum", V_POS, &accum);
    }
    double records = b->convs > 0 ? (double)b->convs * (double)b->turns : -1;
    if (steps) s->est.train_steps = strtod(steps, NULL);
    else if (records > 0)
        s->est.train_steps = ceil((epochs ? strtod(epochs, NULL) : 1) * records /
                                  ((batch ? strtod(batch, NULL) : 1) * (accum ? strtod(accum, NULL) : 1)));
    s->total = (long)s->est.train_steps;
    free(steps), free(epochs), free(batch), free(accum), free(r);
    free(model_dir), free(from), free(branch);
    return rc;
}

/* A checkpoint given as a peft adapter: merged into its base model, since
 * the benchmark runs whole models. */
static void plan_merge(Builder *b, Arm *a) {
    char *name = xasprintf("train/%s", a->name);
    a->train_stage = b->plan->n;
    RecipeStage *s = add_stage(b, STAGE_MERGE, name);
    free(name);
    s->unit = xstrdup("steps");
    s->total = 1;
    json_object_set_new(s->settings, "model", json_string(a->start));
    json_object_set_new(s->settings, "adapter", json_string(a->adapter));
    a->model = path_join(s->dir, "merged");
    Argv av = {0};
    av_add(&av, "merge");
    av_add2(&av, "--model", a->start);
    av_add2(&av, "--adapter", a->adapter);
    av_add2(&av, "--out", a->model);
    add_cmd(s, &av);
}

static const Opt BENCH_OPTS[] = {
    {"personalities_per_profile", "--personalities-per-profile", V_POS, 1},
    {"turns", "--turns", V_POS, 1},
    {"jobs", "--jobs", V_POS, 0},
    {"temperature", "--temperature", V_NUM, 1},
    {"max_tokens", "--max-tokens", V_INT, 1},           /* the evaluated model's */
    {"user_max_tokens", "--user-max-tokens", V_INT, 1},
    {"judge_max_tokens", "--judge-max-tokens", V_INT, 1},
    {"system_prompt", "--system-prompt", V_STR, 1},
    {"skip_failed", "--skip-failed", V_BOOL, 0},
    {NULL, NULL, 0, 0}};

static int plan_bench(Builder *b, yaml_node_t *n, Arm *a) {
    P *p = b->p;
    char *name = xasprintf("bench/%s", a->name);
    RecipeStage *s = add_stage(b, STAGE_BENCH, name);
    free(name);
    add_dep(s, b->personas_stage);
    if (a->train_stage >= 0) add_dep(s, a->train_stage);
    s->unit = xstrdup("conversations");
    s->out_file = path_join(s->dir, "dialogues.jsonl");
    Argv av = {0};
    av_add(&av, "bench");
    /* local: a model made here is a path even before it exists (no notice,
     * never taken for an endpoint's model name) */
    char *spec = a->train_stage >= 0 ? xasprintf("local:%s", a->model) : xstrdup(a->model);
    av_add2(&av, "--model", spec);
    free(spec);
    /* a model trained or merged here is named by its arm (train/ARM's own
     * settings say what it is), not by its path under out: */
    json_object_set_new(s->settings, "model",
                        a->train_stage >= 0 ? json_string(b->plan->stages[a->train_stage].name) : json_string(a->model));
    av_add2(&av, "--profiles", b->eval_profiles);
    av_add2(&av, "--personalities", b->eval_personalities);
    Role user = {0}, judge = {0};
    int rc = get_role(p, n, "bench", "user", 1, &user) || get_role(p, n, "bench", "judge", 1, &judge) ? -1 : 0;
    if (!rc) {
        role_args(&av, &user, "--user-model", "user", s->settings, "bench.user");
        role_args(&av, &judge, "--judge-model", "judge", s->settings, "bench.judge");
        rc = opts_apply(p, n, "bench", BENCH_OPTS, &av, s->settings);
    }
    common_args(&av, &b->st, s->settings, 1);
    if (a->kind == ARM_ENDPOINT && (a->endpoint.base_url || a->endpoint.key_env)) {
        /* bench's --base-url / --api-key-env are every role's default: the arm's
         * endpoint takes them, so the user and judge are pinned to theirs. */
        const char *env_url = p->env && p->env->lookup ? p->env->lookup(p->env->ctx, "OPENAI_BASE_URL") : NULL;
        const char *url = b->st.base_url ? b->st.base_url : env_url;
        const char *key = b->st.key_env ? b->st.key_env : "OPENAI_API_KEY";
        if (a->endpoint.base_url && !url && (!user.base_url || !judge.base_url))
            rc = fail(p, a->body, "endpoint.base_url", "the user and judge need an endpoint of their own: set "
                                                       "endpoint.base_url of the study (or OPENAI_BASE_URL)");
        av_add2(&av, "--base-url", a->endpoint.base_url ? a->endpoint.base_url : b->st.base_url);
        av_add2(&av, "--api-key-env", a->endpoint.key_env ? a->endpoint.key_env : b->st.key_env);
        if (a->endpoint.base_url && !user.base_url) av_add2(&av, "--user-base-url", url);
        if (a->endpoint.base_url && !judge.base_url) av_add2(&av, "--judge-base-url", url);
        if (a->endpoint.key_env && !user.key_env) av_add2(&av, "--user-api-key-env", key);
        if (a->endpoint.key_env && !judge.key_env) av_add2(&av, "--judge-api-key-env", key);
        av_add2(&av, "--timeout", b->st.timeout);
        av_add2(&av, "--retries", b->st.retries);
    } else {
        conn_args(&av, &b->st);
    }
    av_add2(&av, "--out", s->dir);
    add_cmd(s, &av);
    role_free(&user), role_free(&judge);
    if (rc) return -1;
    char *k = NULL, *t = NULL;
    get_typed(p, n, "bench", "personalities_per_profile", V_POS, &k);
    get_typed(p, n, "bench", "turns", V_POS, &t);
    if (b->n_eval_profiles > 0) {
        s->total = b->n_eval_profiles * (k ? strtol(k, NULL, 10) : 5);
        est_bench(&s->est, (double)s->total, t ? strtod(t, NULL) : 10);
    } else {
        s->total = -1;
    }
    free(k), free(t);
    return 0;
}

static int plan_report(Builder *b, yaml_node_t *n, Arm *arms, int narms, int first_bench) {
    P *p = b->p;
    static const char *const keys[] = {"title", NULL};
    char *title = NULL;
    if (n && (check_map(p, n, "report", keys) || get_str(p, n, "report", "title", 0, &title))) return -1;
    RecipeStage *s = add_stage(b, STAGE_REPORT, "report");
    s->unit = xstrdup("files");
    s->total = 1;
    Argv av = {0};
    av_add(&av, "report");
    json_t *names = json_array();
    for (int i = 0; i < narms; i++) {
        add_dep(s, first_bench + i);
        av_add(&av, b->plan->stages[first_bench + i].dir);
        json_array_append_new(names, json_string(arms[i].name));
    }
    json_object_set_new(s->settings, "arms", names);
    char *md = path_join(s->dir, "report.md"), *svg = path_join(s->dir, "al.svg");
    char *js = path_join(s->dir, "compare.json");
    StrBuf labels; /* the runs are labelled by arm, not by model path */
    sb_init(&labels);
    for (int i = 0; i < narms; i++) sb_printf(&labels, "%s%s", i ? "," : "", arms[i].name);
    av_add2(&av, "--names", labels.s);
    sb_free(&labels);
    av_add2(&av, "--out", md);
    av_add2(&av, "--svg", svg);
    av_add2(&av, "--json", js);
    free(js);
    av_add2(&av, "--title", title);
    if (title) json_object_set_new(s->settings, "report.title", json_string(title));
    add_cmd(s, &av);
    free(md), free(svg), free(title);
    return 0;
}

static int parse_study(Builder *b, yaml_node_t *root) {
    P *p = b->p;
    static const char *const keys[] = {"out",       "seed", "protocol", "model",  "endpoint", "personas",
                                       "dialogues", "export", "arms",   "bench",  "report",   NULL};
    if (check_map(p, root, "", keys)) return -1;
    Study *st = &b->st;
    if (get_str(p, root, "", "out", 1, &st->out) || get_typed(p, root, "", "seed", V_INT, &st->seed) ||
        get_str(p, root, "", "protocol", 0, &st->protocol) || get_str(p, root, "", "model", 0, &st->model))
        return -1;
    if (st->protocol && strcmp(st->protocol, "paper") && strcmp(st->protocol, "rubric"))
        return fail(p, get(p, root, "protocol"), "protocol", "expected paper or rubric, got \"%s\"", st->protocol);
    yaml_node_t *ep = get(p, root, "endpoint");
    if (ep) {
        static const char *const ekeys[] = {"base_url", "api_key_env", "timeout", "retries", NULL};
        if (check_map(p, ep, "endpoint", ekeys) || get_str(p, ep, "endpoint", "base_url", 0, &st->base_url) ||
            get_str(p, ep, "endpoint", "api_key_env", 0, &st->key_env) ||
            get_typed(p, ep, "endpoint", "timeout", V_NUM, &st->timeout) ||
            get_typed(p, ep, "endpoint", "retries", V_INT, &st->retries))
            return -1;
    }
    return 0;
}

static int build(Builder *b, yaml_node_t *root) {
    P *p = b->p;
    if (parse_study(b, root)) return -1;
    RecipePlan *pl = b->plan;
    pl->out = xstrdup(b->st.out);
    char *pd = path_join(pl->out, "personas");
    b->profiles = path_join(pd, "profile.jsonl");
    b->personalities = path_join(pd, "personality.jsonl");
    b->eval_profiles = path_join(pd, "profile_eval.jsonl");
    b->eval_personalities = path_join(pd, "personality_eval.jsonl");
    free(pd);
    b->n_profiles = b->n_eval_profiles = b->convs = -1;
    b->dialogues_stage = b->export_stage = b->personas_stage = -1;

    yaml_node_t *an = get(p, root, "arms");
    if (!an) return fail(p, root, "arms", "missing: the list of models to benchmark (- name: ...)");
    if (an->type != YAML_SEQUENCE_NODE || an->data.sequence.items.top == an->data.sequence.items.start)
        return fail(p, an, "arms", "expected a list of arms (- name: ...), got %s",
                    an->type == YAML_SEQUENCE_NODE ? "an empty list" : kind_name(an));
    int narms = (int)(an->data.sequence.items.top - an->data.sequence.items.start);
    b->narms = narms;
    Arm *arms = xcalloc((size_t)narms, sizeof *arms);
    int rc = 0, trains = 0;
    for (int i = 0; !rc && i < narms; i++) {
        rc = parse_arm(b, nd(p, an->data.sequence.items.start[i]), i, arms);
        trains += arms[i].kind == ARM_SFT || arms[i].kind == ARM_DPO;
    }
    yaml_node_t *pn = get(p, root, "personas"), *bn = get(p, root, "bench");
    if (!rc && !pn) rc = fail(p, root, "personas", "missing: the persona pools (train and eval)");
    if (!rc && !bn) rc = fail(p, root, "bench", "missing: the benchmark's user and judge models");
    static const char *const bkeys[] = {"user", "judge", NULL};
    if (!rc) rc = check_map_opts(p, bn, "bench", bkeys, BENCH_OPTS);
    if (!rc) rc = plan_personas(b, pn, trains > 0);
    if (!rc && trains) rc = plan_dialogues(b, get(p, root, "dialogues"));
    else if (!rc && get(p, root, "dialogues"))
        rc = fail(p, get(p, root, "dialogues"), "dialogues", "no arm trains (sft: or dpo:): remove this section");
    if (!rc && trains) rc = plan_export(b, get(p, root, "export"));
    for (int i = 0; !rc && i < narms; i++)
        if (arms[i].kind == ARM_SFT || arms[i].kind == ARM_DPO) rc = plan_train(b, arms, i);
        else if (arms[i].adapter) plan_merge(b, &arms[i]);
    int first_bench = pl->n;
    for (int i = 0; !rc && i < narms; i++) rc = plan_bench(b, bn, &arms[i]);
    if (!rc) rc = plan_report(b, get(p, root, "report"), arms, narms, first_bench);
    for (int i = 0; i < narms; i++) {
        free(arms[i].name), free(arms[i].start), free(arms[i].model), free(arms[i].adapter);
        role_free(&arms[i].endpoint);
    }
    free(arms);
    return rc;
}

static void digest_stage(RecipeStage *s) {
    char *text = json_dumps(s->settings, JSON_SORT_KEYS | JSON_COMPACT);
    sha256_hex(text, strlen(text), s->digest);
    free(text);
}

int recipe_plan_text(const char *name, const char *text, size_t len, const RecipeEnv *env, RecipePlan *plan,
                     Err *e) {
    memset(plan, 0, sizeof *plan);
    P p = {.name = name, .env = env, .e = e};
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return err_set(e, ERR_INTERNAL, "%s: cannot start the YAML parser", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int rc = 0;
    if (!yaml_parser_load(&parser, &p.doc)) {
        rc = err_set(e, ERR_PARSE, "%s:%zu:%zu: not valid YAML: %s%s%s", name, parser.problem_mark.line + 1,
                     parser.problem_mark.column + 1, parser.problem ? parser.problem : "syntax error",
                     parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return rc;
    }
    /* A recipe is one document: a second one ("---") would be ignored
     * silently, so it is refused. */
    yaml_document_t extra;
    if (yaml_parser_load(&parser, &extra)) {
        yaml_node_t *r2 = yaml_document_get_root_node(&extra);
        if (r2)
            rc = err_set(e, ERR_PARSE, "%s:%zu:%zu: a second YAML document: a recipe is one document (remove the "
                         "'---' and merge the two)", name, r2->start_mark.line + 1, r2->start_mark.column + 1);
        yaml_document_delete(&extra);
    } else {
        rc = err_set(e, ERR_PARSE, "%s:%zu:%zu: not valid YAML after the recipe: %s", name,
                     parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                     parser.problem ? parser.problem : "syntax error");
    }
    yaml_parser_delete(&parser);
    if (rc) {
        yaml_document_delete(&p.doc);
        return rc;
    }
    yaml_node_t *root = yaml_document_get_root_node(&p.doc);
    Builder b = {.p = &p, .plan = plan};
    plan->path = xstrdup(name);
    if (!root) rc = err_set(e, ERR_PARSE, "%s: the recipe is empty (see aloe run --preset tiny for one)", name);
    else rc = build(&b, root);
    study_free(&b.st);
    free(b.profiles), free(b.personalities), free(b.eval_profiles), free(b.eval_personalities);
    yaml_document_delete(&p.doc);
    if (rc) {
        recipe_plan_free(plan);
        return -1;
    }
    for (int i = 0; i < plan->n; i++) digest_stage(&plan->stages[i]);
    return 0;
}

void recipe_plan_free(RecipePlan *plan) {
    for (int i = 0; i < plan->n; i++) {
        RecipeStage *s = &plan->stages[i];
        for (int k = 0; k < s->nsteps; k++) {
            RecipeStep *st = &s->steps[k];
            for (int j = 0; j < st->argc; j++) free(st->argv[j]);
            free(st->argv), free(st->src), free(st->dst), free(st->train_out);
        }
        free(s->steps), free(s->deps), free(s->name), free(s->dir), free(s->unit), free(s->out_file);
        json_decref(s->settings);
    }
    free(plan->stages), free(plan->out), free(plan->path);
    memset(plan, 0, sizeof *plan);
}

int recipe_stage_find(const RecipePlan *plan, const char *name) {
    for (int i = 0; i < plan->n; i++)
        if (!strcmp(plan->stages[i].name, name)) return i;
    return -1;
}

void recipe_dependents(const RecipePlan *plan, int from, int *redo) {
    if (from < 0 || from >= plan->n) return;
    redo[from] = 1;
    /* stages only depend on earlier ones: one pass in order finds them all */
    for (int i = from + 1; i < plan->n; i++)
        for (int k = 0; k < plan->stages[i].ndeps && !redo[i]; k++)
            if (redo[plan->stages[i].deps[k]]) redo[i] = 1;
}

static char *value_text(const json_t *v) {
    if (!v) return xstrdup("unset");
    return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

char *recipe_settings_diff(const json_t *a, const json_t *b) {
    StrBuf s;
    sb_init(&s);
    sb_append(&s, "");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)a, k, v) {
        json_t *w = json_object_get(b, k);
        if (w && json_equal(v, w)) continue;
        char *x = value_text(v), *y = value_text(w);
        sb_printf(&s, "%s%s (%s -> %s)", s.len ? ", " : "", k, x, y);
        free(x), free(y);
    }
    json_object_foreach((json_t *)b, k, v) {
        if (json_object_get(a, k)) continue;
        char *y = value_text(v);
        sb_printf(&s, "%s%s (unset -> %s)", s.len ? ", " : "", k, y);
        free(y);
    }
    return sb_take(&s);
}

static void quote(StrBuf *b, const char *s) {
    int plain = *s != 0;
    for (const char *c = s; *c && plain; c++)
        plain = isalnum((unsigned char)*c) || strchr("-_./:=,@+%", *c);
    if (plain) {
        sb_append(b, s);
        return;
    }
    sb_appendc(b, '\'');
    for (; *s; s++) {
        if (*s == '\'') sb_append(b, "'\\''");
        else sb_appendc(b, *s);
    }
    sb_appendc(b, '\'');
}

char *recipe_step_line(const RecipeStep *st) {
    StrBuf b;
    sb_init(&b);
    if (!st->argv) {
        sb_append(&b, "cp ");
        quote(&b, st->src);
        sb_appendc(&b, ' ');
        quote(&b, st->dst);
        return sb_take(&b);
    }
    sb_append(&b, "aloe");
    for (int i = 0; i < st->argc; i++) {
        sb_appendc(&b, ' ');
        quote(&b, st->argv[i]);
    }
    return sb_take(&b);
}

static void human(StrBuf *b, double x) {
    if (x >= 1e9) sb_printf(b, "%.1fG", x / 1e9);
    else if (x >= 1e6) sb_printf(b, "%.1fM", x / 1e6);
    else if (x >= 1e4) sb_printf(b, "%.0fk", x / 1e3);
    else sb_printf(b, "%.0f", x);
}

char *recipe_plan_text_summary(const RecipePlan *plan) {
    StrBuf b;
    sb_init(&b);
    sb_printf(&b, "plan of %s: %d stages, output in %s/\n", plan->path, plan->n, plan->out);
    RecipeEstimate tot = {0};
    for (int i = 0; i < plan->n; i++) {
        const RecipeStage *s = &plan->stages[i];
        sb_printf(&b, "\n[%d/%d] %s -> %s/\n", i + 1, plan->n, s->name, s->dir);
        for (int k = 0; k < s->nsteps; k++) {
            char *line = recipe_step_line(&s->steps[k]);
            sb_printf(&b, "  $ %s%s\n", line, s->steps[k].train_resume ? "  [+ --resume once a checkpoint is there]" : "");
            free(line);
        }
        sb_append(&b, "  estimate: ");
        if (s->kind == STAGE_TRAIN) {
            if (s->est.train_steps > 0) sb_printf(&b, "%.0f optimizer steps, no requests\n", s->est.train_steps);
            else sb_append(&b, "no requests (steps depend on the trees)\n");
        } else if (s->est.requests > 0) {
            human(&b, s->est.requests);
            sb_append(&b, " requests, ");
            human(&b, s->est.prompt_tokens + s->est.completion_tokens);
            sb_append(&b, " tokens (");
            human(&b, s->est.prompt_tokens);
            sb_append(&b, " prompt + ");
            human(&b, s->est.completion_tokens);
            sb_append(&b, " completion)\n");
        } else if ((s->kind == STAGE_DIALOGUES || s->kind == STAGE_BENCH) && s->total < 0) {
            sb_append(&b, "unknown (the pool sizes are not known before the pools exist)\n");
        } else {
            sb_append(&b, "no requests\n");
        }
        tot.requests += s->est.requests;
        tot.prompt_tokens += s->est.prompt_tokens;
        tot.completion_tokens += s->est.completion_tokens;
        tot.train_steps += s->est.train_steps;
    }
    sb_append(&b, "\ntotal: ");
    human(&b, tot.requests);
    sb_append(&b, " requests, ");
    human(&b, tot.prompt_tokens + tot.completion_tokens);
    sb_append(&b, " tokens (");
    human(&b, tot.prompt_tokens);
    sb_append(&b, " prompt + ");
    human(&b, tot.completion_tokens);
    sb_printf(&b, " completion), %.0f optimizer steps\n\n%s\n", tot.train_steps, recipe_estimate_help());
    return sb_take(&b);
}
