#include "aloe/dialogues.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aloe/gensettings.h"
#include "aloe/journal.h"
#include "aloe/personas.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/pool.h"
#include "base/progress.h"
#include "base/rng.h"

/* The requests of a turn; also the purpose index of their random seeds. */
enum { REQ_USER, REQ_INDUCER, REQ_HINTED, REQ_PLAIN, REQ_JUDGE_AB, REQ_JUDGE_BA, REQ__COUNT };
/* Random streams other than request seeds. */
enum { RNG_PERSONALITY = 1, RNG_BRANCH = 2, RNG_REQUEST = 3 };
/* Usage is summed per role. */
enum { ROLE_USER, ROLE_INDUCER, ROLE_HINTED, ROLE_PLAIN, ROLE_JUDGE, ROLE__COUNT };
static const char *role_names[ROLE__COUNT] = {"user", "inducer", "hinted", "plain", "judge"};

void dialogues_config_default(DialoguesConfig *c) {
    memset(c, 0, sizeof *c);
    c->turns = 10;
    c->jobs = 16;
    c->judge_retries = 3;
    c->params = llm_params_default();
}

/* ---- plan ---- */

int dialogues_plan(DialoguePlan *plan, int n_profiles, int n_personalities, int passes, long num, uint64_t seed,
                   Err *e) {
    memset(plan, 0, sizeof *plan);
    if (n_profiles < 1 || n_personalities < 1) return err_set(e, ERR_ARG, "need at least one profile and personality");
    if ((passes > 0) == (num > 0)) return err_set(e, ERR_ARG, "give exactly one of --passes P or --num N");
    plan->n = passes > 0 ? (long)passes * n_profiles : num;
    plan->profile = xmalloc(sizeof(int) * (size_t)plan->n);
    plan->personality = xmalloc(sizeof(int) * (size_t)plan->n);
    plan->pass = xmalloc(sizeof(int) * (size_t)plan->n);
    for (long k = 0; k < plan->n; k++) {
        Rng r;
        rng_derive(&r, seed, (uint64_t)k, RNG_PERSONALITY);
        plan->profile[k] = (int)(k % n_profiles);
        plan->pass[k] = (int)(k / n_profiles);
        plan->personality[k] = (int)rng_below(&r, (uint64_t)n_personalities);
    }
    return 0;
}

void dialogues_plan_free(DialoguePlan *plan) {
    free(plan->profile);
    free(plan->personality);
    free(plan->pass);
    memset(plan, 0, sizeof *plan);
}

/* ---- parsing the roles' answers ---- */

static const char *skip_decor(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '*' || *p == '_' || *p == '#' || *p == '-' || *p == ':') p++;
    return p;
}

int judge_parse_preference(const char *text) {
    int found = 0;
    for (const char *s = text; (s = strcasestr(s, "preferred")); s += 9) {
        const char *p = skip_decor(s + 9);
        if (!strncasecmp(p, "reply ", 6)) p = skip_decor(p + 6);
        else if (!strncasecmp(p, "response ", 9)) p = skip_decor(p + 9);
        if ((*p == 'A' || *p == 'B') && !isalnum((unsigned char)p[1])) found = *p;
    }
    return found;
}

/* Where a "Label:" line starts (at a line start, after list/bold
 * decoration), pointing just past the colon; NULL if absent. */
static const char *find_label(const char *text, const char *label) {
    size_t n = strlen(label);
    for (const char *line = text; line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '*' || *p == '-' || *p == '#') p++;
        if (strncasecmp(p, label, n)) continue;
        p += n;
        while (isalpha((unsigned char)*p)) p++; /* "Personalities:" as the reference wrote it */
        while (*p == '*') p++;
        if (*p != ':') continue;
        p++;
        while (*p == '*') p++;
        return p;
    }
    return NULL;
}

static char *clean_value(const char *start, const char *end) {
    while (start < end && isspace((unsigned char)*start)) start++;
    while (end > start && (isspace((unsigned char)end[-1]) || end[-1] == '*')) end--;
    return xstrndup(start, (size_t)(end - start));
}

int inducer_parse(const char *text, char **profile, char **personality) {
    const char *pr = find_label(text, "profile"), *pe = find_label(text, "personalit"); /* -y or -ies */
    int found = 0;
    /* Each value runs to the start of the other label's line, or the end. */
    const char *pe_line = pe, *pr_line = pr;
    while (pe_line && pe_line > text && pe_line[-1] != '\n') pe_line--;
    while (pr_line && pr_line > text && pr_line[-1] != '\n') pr_line--;
    if (pr) {
        const char *end = pe_line && pe_line > pr ? pe_line : pr + strlen(pr);
        *profile = clean_value(pr, end);
        found++;
    } else {
        *profile = xstrdup("unknown");
    }
    if (pe) {
        const char *end = pr_line && pr_line > pe ? pr_line : pe + strlen(pe);
        *personality = clean_value(pe, end);
        found++;
    } else {
        *personality = xstrdup("unknown");
    }
    if (!**profile) free(*profile), *profile = xstrdup("unknown");
    if (!**personality) free(*personality), *personality = xstrdup("unknown");
    return found;
}

/* ---- one conversation ---- */

typedef struct Convo {
    const DialoguesConfig *c;
    const char *profile, *personality;
    long index;
    char **users, **taken; /* the path so far: user messages, replies taken */
    int n;
    LlmUsage usage[ROLE__COUNT];
} Convo;

/* A JSON string even from bytes that are not valid UTF-8. */
static json_t *jstr(const char *s) {
    json_t *v = json_string(s ? s : "");
    if (v) return v;
    char *t = xstrdup(s);
    for (char *p = t; *p; p++)
        if ((unsigned char)*p >= 0x80) *p = '?';
    v = json_string(t);
    free(t);
    return v;
}

static int ask(Convo *cv, LlmBackend *b, int role, int req, int turn, int attempt, const LlmMessage *m, int n,
               char **out, Err *e) {
    const DialoguesConfig *c = cv->c;
    LlmParams p = c->params;
    Rng r;
    rng_derive(&r, c->seed, (uint64_t)cv->index, RNG_REQUEST + 16u * ((uint64_t)turn * 64 + (uint64_t)req * 8 + attempt));
    p.has_seed = 1;
    p.seed = rng_u64(&r) >> 33; /* servers take 31-bit seeds */
    p.sample = attempt;
    LlmReply reply = {0};
    if (llm_chat(b, m, n, &p, &reply, e)) return err_wrap(e, "conversation %ld, turn %d, %s", cv->index + 1, turn,
                                                          role_names[role]);
    cv->usage[role].prompt_tokens += reply.usage.prompt_tokens;
    cv->usage[role].completion_tokens += reply.usage.completion_tokens;
    /* Models often wrap a role-played message in quotes or pad it. */
    *out = reply.text ? reply.text : xstrdup("");
    reply.text = NULL;
    llm_reply_free(&reply);
    return 0;
}

/* "User: ...\n\nAssistant: ..." up to and including the current user message. */
static char *transcript(const Convo *cv, const char *current) {
    StrBuf b;
    sb_init(&b);
    for (int i = 0; i < cv->n; i++) sb_printf(&b, "User: %s\n\nAssistant: %s\n\n", cv->users[i], cv->taken[i]);
    sb_printf(&b, "User: %s", current);
    return sb_take(&b);
}

static int user_turn(Convo *cv, int turn, char **msg, Err *e) {
    const Prompts *P = cv->c->prompts;
    const char *vars[] = {"profile", cv->profile, "personality", cv->personality, NULL};
    char *sys = prompt_fill(P->text[PROMPT_USER_SIMULATOR], vars);
    /* Roles swapped: the simulator's own messages are "assistant". */
    int n = 0;
    LlmMessage *m = xmalloc(sizeof *m * (size_t)(2 + 2 * cv->n));
    m[n++] = (LlmMessage){"system", sys};
    m[n++] = (LlmMessage){"user", P->text[PROMPT_USER_FIRST_TURN]};
    for (int i = 0; i < cv->n; i++) {
        m[n++] = (LlmMessage){"assistant", cv->users[i]};
        m[n++] = (LlmMessage){"user", cv->taken[i]};
    }
    int rc = ask(cv, cv->c->user, ROLE_USER, REQ_USER, turn, 0, m, n, msg, e);
    free(m);
    free(sys);
    return rc;
}

static int induce(Convo *cv, int turn, const char *user_msg, char **raw, Err *e) {
    char *conv = transcript(cv, user_msg);
    const char *vars[] = {"conversation", conv, NULL};
    char *prompt = prompt_fill(cv->c->prompts->text[PROMPT_INDUCER], vars);
    LlmMessage m = {"user", prompt};
    int rc = ask(cv, cv->c->inducer, ROLE_INDUCER, REQ_INDUCER, turn, 0, &m, 1, raw, e);
    free(prompt);
    free(conv);
    return rc;
}

static int respond(Convo *cv, int turn, int hinted, const char *user_msg, const char *inf_profile,
                   const char *inf_personality, char **reply, Err *e) {
    const Prompts *P = cv->c->prompts;
    const char *vars[] = {"inferred_profile", inf_profile, "inferred_personality", inf_personality, NULL};
    char *sys = prompt_fill(P->text[hinted ? PROMPT_RESPONDER_HINTED : PROMPT_RESPONDER_PLAIN], vars);
    int n = 0;
    LlmMessage *m = xmalloc(sizeof *m * (size_t)(2 + 2 * cv->n));
    m[n++] = (LlmMessage){"system", sys};
    for (int i = 0; i < cv->n; i++) {
        m[n++] = (LlmMessage){"user", cv->users[i]};
        m[n++] = (LlmMessage){"assistant", cv->taken[i]};
    }
    m[n++] = (LlmMessage){"user", user_msg};
    int rc = ask(cv, hinted ? cv->c->hinted : cv->c->plain, hinted ? ROLE_HINTED : ROLE_PLAIN,
                 hinted ? REQ_HINTED : REQ_PLAIN, turn, 0, m, n, reply, e);
    free(m);
    free(sys);
    return rc;
}

/* Asks the judge with reply_a / reply_b; re-asks with the reminder until
 * the answer holds a verdict. Returns the verdict ('A', 'B' or 0) in *v and
 * a record of the exchange in *rec. */
static int judge(Convo *cv, int turn, int req, const char *user_msg, const char *ra, const char *rb, int *v,
                 json_t **rec, Err *e) {
    const DialoguesConfig *c = cv->c;
    char *conv = transcript(cv, user_msg);
    const char *vars[] = {"profile", cv->profile, "personality", cv->personality, "conversation", conv,
                          "reply_a", ra, "reply_b", rb, NULL};
    char *prompt = prompt_fill(c->prompts->text[PROMPT_JUDGE_PAIR], vars);
    int cap = 1 + 2 * c->judge_retries, n = 0, rc = 0;
    LlmMessage *m = xmalloc(sizeof *m * (size_t)cap);
    char **answers = xcalloc((size_t)c->judge_retries + 1, sizeof(char *));
    m[n++] = (LlmMessage){"user", prompt};
    *v = 0;
    json_t *raws = json_array();
    for (int attempt = 0; attempt <= c->judge_retries; attempt++) {
        if (attempt) {
            m[n++] = (LlmMessage){"assistant", answers[attempt - 1]};
            m[n++] = (LlmMessage){"user", c->prompts->text[PROMPT_JUDGE_REMINDER]};
        }
        if ((rc = ask(cv, c->judge, ROLE_JUDGE, req, turn, attempt, m, n, &answers[attempt], e))) break;
        json_array_append_new(raws, jstr(answers[attempt]));
        if ((*v = judge_parse_preference(answers[attempt]))) break;
    }
    char vs[2] = {(char)*v, 0};
    *rec = json_pack("{s:o, s:o}", "raw", raws, "verdict", *v ? json_string(vs) : json_null());
    for (int i = 0; i <= c->judge_retries; i++) free(answers[i]);
    free(answers);
    free(m);
    free(prompt);
    free(conv);
    return rc;
}

static int stop_requested(const DialoguesConfig *c) { return c->stop && atomic_load(c->stop); }

/* One turn: appends its tree node to convs and its details to meta_turns. */
/* *disagreed: 0 when both orders agree, 1 when they differ or one gave no
 * verdict, 2 when neither gave one. */
static int run_turn(Convo *cv, int turn, json_t *convs, json_t *meta_turns, int *disagreed, Err *e) {
    const DialoguesConfig *c = cv->c;
    char *user = NULL, *ind = NULL, *inf_pr = NULL, *inf_pe = NULL, *hinted = NULL, *plain = NULL;
    json_t *jab = NULL, *jba = NULL;
    int vab = 0, vba = 0, rc = user_turn(cv, turn, &user, e);
    if (!rc) rc = induce(cv, turn, user, &ind, e);
    int parsed = 0;
    if (!rc) parsed = inducer_parse(ind, &inf_pr, &inf_pe);
    if (!rc) rc = respond(cv, turn, 1, user, inf_pr, inf_pe, &hinted, e);
    if (!rc) rc = respond(cv, turn, 0, user, inf_pr, inf_pe, &plain, e);
    if (!rc) rc = judge(cv, turn, REQ_JUDGE_AB, user, hinted, plain, &vab, &jab, e);
    if (!rc) rc = judge(cv, turn, REQ_JUDGE_BA, user, plain, hinted, &vba, &jba, e);
    if (!rc) {
        /* Which reply each order prefers: 1 = hinted, 0 = plain, -1 = none. */
        int w1 = vab ? vab == 'A' : -1, w2 = vba ? vba == 'B' : -1;
        int agree = w1 >= 0 && w1 == w2;
        int hinted_wins = w1 >= 0 ? w1 : w2 >= 0 ? w2 : 1;
        *disagreed = agree ? 0 : w1 < 0 && w2 < 0 ? 2 : 1;
        int dropped = !agree && c->drop_disagreements;
        Rng r;
        rng_derive(&r, c->seed, (uint64_t)cv->index, RNG_BRANCH + 16u * (uint64_t)turn);
        int take_first = rng_uniform(&r) < 0.5; /* preferred, or hinted when dropped */
        const char *pref = hinted_wins ? hinted : plain, *rej = hinted_wins ? plain : hinted;
        json_t *asst;
        const char *chosen;
        if (dropped) {
            asst = json_pack("{s:n, s:n, s:o, s:o}", "preferred", "rejected", "hinted", jstr(hinted), "plain",
                             jstr(plain));
            chosen = take_first ? "hinted" : "plain";
        } else {
            asst = json_pack("{s:o, s:o}", "preferred", jstr(pref), "rejected", jstr(rej));
            chosen = take_first ? "preferred" : "rejected";
        }
        const char *taken = dropped ? (take_first ? hinted : plain) : (take_first ? pref : rej);
        json_array_append_new(convs, json_pack("{s:o, s:o, s:s, s:o, s:o}", "user", jstr(user), "assistant", asst,
                                               "chosen", chosen, "inferred_profile", jstr(inf_pr),
                                               "inferred_personality", jstr(inf_pe)));
        const char *w = w1 < 0 && w2 < 0 ? "none" : agree ? "agree" : w1 < 0 || w2 < 0 ? "one_invalid" : "disagree";
        json_array_append_new(meta_turns,
                              json_pack("{s:i, s:s, s:s, s:b, s:b, s:o, s:o, s:o}", "turn", turn, "judges", w,
                                        "hinted_is", dropped ? "dropped" : hinted_wins ? "preferred" : "rejected",
                                        "dropped", dropped, "inducer_parsed", parsed == 2, "inducer_raw", jstr(ind),
                                        "judge_hinted_first", jab, "judge_hinted_second", jba));
        jab = jba = NULL;
        cv->users = xrealloc(cv->users, sizeof(char *) * (size_t)(cv->n + 1));
        cv->taken = xrealloc(cv->taken, sizeof(char *) * (size_t)(cv->n + 1));
        cv->users[cv->n] = user;
        cv->taken[cv->n] = xstrdup(taken);
        cv->n++;
        user = NULL;
    }
    json_decref(jab);
    json_decref(jba);
    free(user);
    free(ind);
    free(inf_pr);
    free(inf_pe);
    free(hinted);
    free(plain);
    return rc;
}

static json_t *usage_json(const Convo *cv) {
    json_t *u = json_object();
    for (int r = 0; r < ROLE__COUNT; r++)
        json_object_set_new(u, role_names[r], json_pack("{s:I, s:I}", "prompt_tokens",
                                                        (json_int_t)cv->usage[r].prompt_tokens, "completion_tokens",
                                                        (json_int_t)cv->usage[r].completion_tokens));
    return u;
}

static json_t *models_json(const DialoguesConfig *c) {
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", c->user->model, "inducer", c->inducer->model, "hinted",
                     c->hinted->model, "plain", c->plain->model, "judge", c->judge->model);
}

static char *conv_id(long index) { return xasprintf("conv-%06ld", index); }

json_t *dialogue_generate(const DialoguesConfig *c, const char *profile, const char *personality, long index,
                          const DialoguePlan *plan, Err *e) {
    Convo cv = {.c = c, .profile = profile, .personality = personality, .index = index};
    json_t *convs = json_array(), *meta_turns = json_array();
    int rc = 0, disagreements = 0, undecided = 0;
    for (int turn = 1; !rc && turn <= c->turns; turn++) {
        if (stop_requested(c)) rc = err_set(e, ERR_CANCELLED, "interrupted");
        int d = 0;
        if (!rc) rc = run_turn(&cv, turn, convs, meta_turns, &d, e);
        disagreements += d > 0;
        undecided += d == 2;
    }
    for (int i = 0; i < cv.n; i++) free(cv.users[i]), free(cv.taken[i]);
    free(cv.users);
    free(cv.taken);
    if (rc) {
        json_decref(convs);
        json_decref(meta_turns);
        return NULL;
    }
    char *id = conv_id(index);
    json_t *meta = json_pack("{s:I, s:I, s:o, s:i, s:o, s:i, s:o, s:o}", "index", (json_int_t)index, "seed",
                             (json_int_t)c->seed, "pass", plan ? json_integer(plan->pass[index]) : json_null(),
                             "turns", c->turns, "models", models_json(c), "disagreements", disagreements, "usage",
                             usage_json(&cv), "turn_details", meta_turns);
    if (plan) {
        json_object_set_new(meta, "profile_index", json_integer(plan->profile[index]));
        json_object_set_new(meta, "personality_index", json_integer(plan->personality[index]));
    }
    json_object_set_new(meta, "undecided", json_integer(undecided));
    json_t *rec = json_pack("{s:s, s:o, s:o, s:o, s:o}", "id", id, "profile", jstr(profile), "personality",
                            jstr(personality), "conversations", convs, "meta", meta);
    free(id);
    return rec;
}

/* ---- the whole run ---- */

typedef struct RunCtx {
    const DialoguesConfig *c;
    const StrList *profiles, *personalities;
    const DialoguePlan *plan;
    Journal *j;
    long *todo;
    Progress *prog;
    atomic_int *stop;
    atomic_long disagreements, undecided;
    pthread_mutex_t lock;
    Err err; /* the first failure */
} RunCtx;

static void count_disagreements(RunCtx *r, const json_t *rec) {
    json_t *meta = json_object_get(rec, "meta");
    atomic_fetch_add(&r->disagreements, json_integer_value(json_object_get(meta, "disagreements")));
    atomic_fetch_add(&r->undecided, json_integer_value(json_object_get(meta, "undecided")));
}

static void conv_job(void *ctx, long i, int thread) {
    (void)thread;
    RunCtx *r = ctx;
    long k = r->todo[i];
    Err e = {0};
    DialoguesConfig c = *r->c;
    c.stop = r->stop;
    json_t *rec = dialogue_generate(&c, r->profiles->items[r->plan->profile[k]],
                                    r->personalities->items[r->plan->personality[k]], k, r->plan, &e);
    int rc = rec ? journal_append(r->j, rec, &e) : -1;
    if (rec) {
        count_disagreements(r, rec);
        progress_add(r->prog, 1);
    }
    json_decref(rec);
    if (rc && e.code != ERR_CANCELLED) {
        pthread_mutex_lock(&r->lock);
        if (!r->err.code) r->err = e;
        pthread_mutex_unlock(&r->lock);
        atomic_store(r->stop, 1); /* the first real failure stops the run; a rerun resumes */
    }
}

/* A record already in the journal must be the same conversation. */
static int check_existing(const RunCtx *r, json_t *rec, long k, Err *e) {
    json_t *meta = json_object_get(rec, "meta");
    const char *pr = json_string_value(json_object_get(rec, "profile"));
    const char *pe = json_string_value(json_object_get(rec, "personality"));
    json_t *seed = json_object_get(meta, "seed");
    if (!pr || !pe || strcmp(pr, r->profiles->items[r->plan->profile[k]]) ||
        strcmp(pe, r->personalities->items[r->plan->personality[k]]) ||
        (json_integer_value(seed) != (json_int_t)r->c->seed) ||
        json_integer_value(json_object_get(meta, "turns")) != r->c->turns) {
        char *id = conv_id(k);
        err_set(e, ERR_ARG, "%s: record \"%s\" was made with other personas, --seed or --turns; use a new --out "
                "to start over", r->c->out_path, id);
        free(id);
        return -1;
    }
    return 0;
}

static void set_live(const DialoguesConfig *c, Progress *p) {
    LlmBackend *bs[] = {c->user, c->inducer, c->hinted, c->plain, c->judge};
    for (int i = 0; i < 5; i++) {
        bs[i]->live_requests = p ? &p->requests : NULL;
        bs[i]->live_tokens = p ? &p->tokens : NULL;
        bs[i]->live_retries = p ? &p->retries : NULL;
        bs[i]->live_errors = p ? &p->errors : NULL;
    }
}

/* Rewrites the journal in conversation order, so that the file does not
 * depend on thread timing or on where a run was interrupted. */
static int write_ordered(Journal *j, const DialoguePlan *plan, const char *path, Err *e) {
    StrBuf b;
    sb_init(&b);
    json_t *seen = json_object();
    for (long k = 0; k < plan->n; k++) {
        char *id = conv_id(k);
        json_t *rec = journal_get(j, id);
        if (rec) {
            char *line = json_dumps(rec, JSON_COMPACT);
            sb_append(&b, line);
            sb_appendc(&b, '\n');
            free(line);
            json_object_set_new(seen, id, json_true());
        }
        free(id);
    }
    json_t *all = journal_records(j), *rec;
    size_t i;
    json_array_foreach(all, i, rec) {
        const char *id = json_string_value(json_object_get(rec, "id"));
        if (id && json_object_get(seen, id)) continue;
        char *line = json_dumps(rec, JSON_COMPACT);
        sb_append(&b, line);
        sb_appendc(&b, '\n');
        free(line);
    }
    json_decref(seen);
    int rc = file_write_atomic(path, b.s ? b.s : "", b.len, e);
    sb_free(&b);
    return rc;
}

/* What the trees depend on besides the personas (checked on resume). */
static json_t *settings_json(const DialoguesConfig *c) {
    static const PromptId used[] = {PROMPT_USER_SIMULATOR, PROMPT_USER_FIRST_TURN, PROMPT_INDUCER,
                                    PROMPT_RESPONDER_HINTED, PROMPT_RESPONDER_PLAIN, PROMPT_JUDGE_PAIR,
                                    PROMPT_JUDGE_REMINDER};
    json_t *prompts = json_object();
    for (size_t i = 0; i < sizeof used / sizeof used[0]; i++)
        json_object_set_new(prompts, prompt_key(used[i]), jstr(c->prompts->text[used[i]]));
    return json_pack("{s:s, s:I, s:i, s:i, s:b, s:o, s:f, s:i, s:o}", "command", "dialogues", "seed",
                     (json_int_t)c->seed, "turns", c->turns, "judge_retries", c->judge_retries,
                     "drop_disagreements", c->drop_disagreements, "models", models_json(c), "temperature",
                     c->params.temperature, "max_tokens", c->params.max_tokens, "prompts", prompts);
}

int dialogues_run(const DialoguesConfig *c, const StrList *profiles, const StrList *personalities,
                  const DialoguePlan *plan, DialoguesResult *res, Err *e) {
    memset(res, 0, sizeof *res);
    if (c->turns < 1) return err_set(e, ERR_ARG, "--turns: expected a positive number");
    if (c->jobs < 1) return err_set(e, ERR_ARG, "-j: expected a positive number");
    char *settings_path = personas_sidecar_path(c->out_path, ".settings.json");
    json_t *settings = settings_json(c);
    if (c->extra_settings) json_object_update(settings, c->extra_settings);
    int bad = gensettings_check_or_write(settings_path, settings, e);
    json_decref(settings);
    free(settings_path);
    if (bad) return -1;
    Journal *j = journal_open(c->out_path, "id", e);
    if (!j) return -1;
    atomic_int local_stop;
    atomic_init(&local_stop, 0);
    RunCtx r = {.c = c, .profiles = profiles, .personalities = personalities, .plan = plan, .j = j,
                .stop = c->stop ? c->stop : &local_stop};
    atomic_init(&r.disagreements, 0);
    atomic_init(&r.undecided, 0);
    pthread_mutex_init(&r.lock, NULL);
    r.todo = xmalloc(sizeof(long) * (size_t)(plan->n ? plan->n : 1));
    long ntodo = 0;
    int rc = 0;
    for (long k = 0; !rc && k < plan->n; k++) {
        char *id = conv_id(k);
        json_t *rec = journal_get(j, id);
        free(id);
        if (!rec) r.todo[ntodo++] = k;
        else rc = check_existing(&r, rec, k, e);
        /* The summary counts the whole file, resumed conversations included. */
        if (rec && !rc) count_disagreements(&r, rec);
    }
    res->total = plan->n;
    res->done_before = plan->n - ntodo;
    Progress prog;
    r.prog = &prog;
    if (!rc) {
        progress_start(&prog, "dialogues", plan->n, res->done_before, c->quiet);
        set_live(c, &prog);
        pool_run(c->jobs, ntodo, conv_job, &r, r.stop);
        set_live(c, NULL);
        progress_stop(&prog);
        res->done = atomic_load(&prog.done);
        res->disagreements = atomic_load(&r.disagreements);
        res->undecided = atomic_load(&r.undecided);
        if (r.err.code) {
            *e = r.err;
            rc = -1;
        } else if (res->done < plan->n) {
            rc = err_set(e, ERR_CANCELLED, "interrupted after %ld of %ld conversations; rerun to resume", res->done,
                         plan->n);
        }
    }
    if (!rc) rc = write_ordered(j, plan, c->out_path, e);
    journal_close(j);
    pthread_mutex_destroy(&r.lock);
    free(r.todo);
    return rc;
}
