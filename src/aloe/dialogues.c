#include "aloe/dialogues.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aloe/bench.h"
#include "aloe/gensettings.h"
#include "aloe/journal.h"
#include "aloe/personas.h"
#include "aloe/usersim.h"
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
    c->protocol = PROTOCOL_PAPER;
    c->turns = 10;
    c->jobs = 16;
    c->judge_retries = 3;
    c->params = llm_params_default();
}

int dialogues_default_max_tokens(Protocol p) { return p == PROTOCOL_PAPER ? 300 : 0; }

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

/* A word of a judge's answer: letters and digits (bytes >= 0x80 too, so
 * that "B" in a non-ASCII word is not read as a verdict). */
static int is_word(unsigned char c) { return isalnum(c) || c >= 0x80; }

/* 'A', 'B' or 0 for one lower-cased word. */
static int verdict_of(const char *w) {
    if (!strcmp(w, "first") || !strcmp(w, "1") || !strcmp(w, "a")) return 'A';
    if (!strcmp(w, "second") || !strcmp(w, "2") || !strcmp(w, "b")) return 'B';
    return 0;
}

static int word_in(const char *w, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(w, *list)) return 1;
    return 0;
}

enum { MAX_VERDICT_WORDS = 6, MAX_WORD = 16 };

/* The verdict of a line that is nothing but one ([label] [noun] verdict
 * [tail]; punctuation and Markdown between the words are ignored), or 0. */
static int line_verdict(const char *s, const char *end) {
    static const char *const labels[] = {"preferred", "answer", "verdict", "choice", "winner", NULL};
    static const char *const nouns[] = {"message", "response", "reply", "option", NULL};
    char w[MAX_VERDICT_WORDS][MAX_WORD];
    int n = 0;
    while (s < end) {
        if (!is_word((unsigned char)*s)) {
            s++;
            continue;
        }
        if (n == MAX_VERDICT_WORDS) return 0; /* a sentence, not a verdict */
        int k = 0;
        for (; s < end && is_word((unsigned char)*s); s++)
            if (k < MAX_WORD - 1) w[n][k++] = (char)tolower((unsigned char)*s);
        w[n][k] = 0;
        if (k == MAX_WORD - 1) w[n][0] = '~'; /* too long to be one of ours */
        n++;
    }
    int i = 0;
    if (i < n && word_in(w[i], labels)) i++;
    if (i < n && word_in(w[i], nouns)) i++;
    int v = i < n ? verdict_of(w[i]) : 0;
    if (!v) return 0;
    i++;
    int rest = n - i;
    if (rest == 0) return v;
    if (rest == 1 && (!strcmp(w[i], "preferred") || !strcmp(w[i], "wins"))) return v;
    if (rest == 2 && !strcmp(w[i], "is") && (!strcmp(w[i + 1], "preferred") || !strcmp(w[i + 1], "better"))) return v;
    return 0;
}

static const char *skip_decor(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '*' || *p == '_' || *p == '#' || *p == '-' || *p == ':' || *p == '`' ||
           *p == '"' || *p == '\'')
        p++;
    return p;
}

/* The verdict word at p ("A", "first", "2", ...) when it is a whole word. */
static int verdict_at(const char *p) {
    char w[MAX_WORD];
    int k = 0;
    while (is_word((unsigned char)p[k]) && k < MAX_WORD - 1) {
        w[k] = (char)tolower((unsigned char)p[k]);
        k++;
    }
    if (!k || is_word((unsigned char)p[k])) return 0;
    w[k] = 0;
    return verdict_of(w);
}

int judge_parse_preference(const char *text) {
    int found = 0, conflict = 0;
#define NOTE(v) \
    do { \
        if (v) { \
            if (found && found != (v)) conflict = 1; \
            found = (v); \
        } \
    } while (0)
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        NOTE(line_verdict(line, end));
        line = *end ? end + 1 : end;
    }
    /* "Preferred: X" after reasons on the same line */
    for (const char *s = text; (s = strcasestr(s, "preferred")); s += 9) {
        if (s > text && is_word((unsigned char)s[-1])) continue;
        const char *p = skip_decor(s + 9);
        static const char *const nouns[] = {"reply", "response", "message"};
        for (int i = 0; i < 3; i++)
            if (!strncasecmp(p, nouns[i], strlen(nouns[i])) && !is_word((unsigned char)p[strlen(nouns[i])])) {
                p = skip_decor(p + strlen(nouns[i]));
                break;
            }
        NOTE(verdict_at(p));
    }
#undef NOTE
    return conflict ? 0 : found;
}

static int label_char(char c) { return c == ' ' || c == '\t' || c == '*' || c == '_' || c == '-' || c == '#'; }

/* The label at p ("profile", "personality", "personalities", any case),
 * followed by decoration and ':' — or, when line_start and nothing else
 * follows on the line, a header whose value starts on the next line.
 * Returns where the value starts, or NULL. */
static const char *label_value(const char *p, const char *label, int line_start) {
    size_t n = strlen(label);
    if (strncasecmp(p, label, n)) return NULL;
    p += n;
    if (!strcmp(label, "personalit")) {
        if (!strncasecmp(p, "ies", 3)) p += 3;
        else if (tolower((unsigned char)*p) == 'y') p++;
        else return NULL;
    }
    if (is_word((unsigned char)*p)) return NULL; /* "profiles", "profiled" */
    while (*p == '*' || *p == '_' || *p == ' ' || *p == '\t') p++;
    if (*p == ':') {
        p++;
        while (*p == '*' || *p == '_') p++;
        return p;
    }
    if (line_start && (*p == '\n' || (*p == '\r' && p[1] == '\n'))) return p + (*p == '\r' ? 2 : 1);
    return NULL;
}

/* Finds a label: first at a line start (after list, bold or header
 * decoration), else anywhere after a non-letter. *label_start is where its
 * decoration begins (the end of the other part's value). */
static const char *find_label(const char *text, const char *label, const char **label_start) {
    for (const char *line = text; line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *p = line;
        while (label_char(*p)) p++;
        const char *v = label_value(p, label, 1);
        if (v) {
            *label_start = line;
            return v;
        }
    }
    for (const char *p = text; *p; p++) {
        if (p > text && is_word((unsigned char)p[-1])) continue;
        const char *v = label_value(p, label, 0);
        if (!v) continue;
        const char *st = p;
        while (st > text && label_char(st[-1])) st--;
        *label_start = st;
        return v;
    }
    return NULL;
}

static char *clean_value(const char *start, const char *end) {
    while (start < end && (isspace((unsigned char)*start) || *start == '*' || *start == '_')) start++;
    while (end > start && (isspace((unsigned char)end[-1]) || end[-1] == '*' || end[-1] == '_')) end--;
    if (end - start >= 2 && *start == '[' && end[-1] == ']') start++, end--; /* "[None]", as the format shows */
    char *v = xstrndup(start, (size_t)(end - start));
    /* "none", "None.", "N/A": nothing revealed, written one way */
    char t[8];
    size_t n = strlen(v);
    if (n > 0 && n < sizeof t) {
        memcpy(t, v, n + 1);
        if (t[n - 1] == '.') t[--n] = 0;
        if (!strcasecmp(t, "none") || !strcasecmp(t, "n/a") || !strcasecmp(t, "na")) {
            free(v);
            v = xstrdup("None");
        }
    }
    return v;
}

int inducer_parse(const char *text, char **profile, char **personality) {
    const char *pr_start = NULL, *pe_start = NULL;
    const char *pr = find_label(text, "profile", &pr_start), *pe = find_label(text, "personalit", &pe_start);
    int found = 0;
    /* Each value runs to where the other label begins, or the end. */
    if (pr) {
        const char *end = pe && pe_start >= pr ? pe_start : pr + strlen(pr);
        *profile = clean_value(pr, end);
        found++;
    } else {
        *profile = xstrdup("unknown");
    }
    if (pe) {
        const char *end = pr && pr_start >= pe ? pr_start : pe + strlen(pe);
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
    /* the path so far: user messages (as seen, stage directions removed),
     * replies taken, and the hint the hinted responder got with each user
     * message (NULL when responder_hint is "") */
    char **users, **taken, **hints;
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
    *out = reply.text ? reply.text : xstrdup("");
    reply.text = NULL;
    llm_reply_free(&reply);
    return 0;
}

/* The conversation up to and including the current user message. Paper:
 * "A: ...\nB: ...\nA: ..." as the reference's inducer reads it; rubric:
 * "User: ...\n\nAssistant: ...\n\nUser: ...". */
static char *transcript(const Convo *cv, const char *current) {
    int ab = cv->c->protocol == PROTOCOL_PAPER;
    const char *u = ab ? "A" : "User", *a = ab ? "B" : "Assistant", *sep = ab ? "\n" : "\n\n";
    StrBuf b;
    sb_init(&b);
    for (int i = 0; i < cv->n; i++) sb_printf(&b, "%s: %s%s%s: %s%s", u, cv->users[i], sep, a, cv->taken[i], sep);
    sb_printf(&b, "%s: %s", u, current);
    return sb_take(&b);
}

/* The simulator's next message, stage directions removed (*msg), and its
 * raw text (*raw). */
static int user_turn(Convo *cv, int turn, char **msg, char **raw, Err *e) {
    UsersimView v;
    usersim_view(&v, cv->c->prompts, cv->profile, cv->personality, (const char *const *)cv->users,
                 (const char *const *)cv->taken, cv->n);
    int rc = ask(cv, cv->c->user, ROLE_USER, REQ_USER, turn, 0, v.m, v.n, raw, e);
    usersim_view_free(&v);
    if (!rc) *msg = usersim_strip_stage_directions(*raw);
    return rc;
}

static int induce(Convo *cv, int turn, const char *user_msg, char **raw, Err *e) {
    char *conv = transcript(cv, user_msg);
    const char *vars[] = {"profile", cv->profile, "personality", cv->personality, "conversation", conv, NULL};
    char *prompt = prompt_fill(cv->c->prompts->text[PROMPT_INDUCER], vars);
    LlmMessage m = {"user", prompt};
    int rc = ask(cv, cv->c->inducer, ROLE_INDUCER, REQ_INDUCER, turn, 0, &m, 1, raw, e);
    free(prompt);
    free(conv);
    return rc;
}

/* A responder's user message: the user's words, then the hint (hinted
 * responder only, when there is one), then the suffix (when non-empty). */
static char *responder_user_msg(const char *user, const char *hint, const char *suffix) {
    StrBuf b;
    sb_init(&b);
    sb_append(&b, user);
    if (hint && hint[0]) sb_printf(&b, "\n%s", hint);
    if (suffix[0]) sb_printf(&b, "\n%s", suffix);
    return sb_take(&b);
}

static int respond(Convo *cv, int turn, int hinted, const char *user_msg, const char *hint, const char *inf_profile,
                   const char *inf_personality, char **reply, Err *e) {
    const Prompts *P = cv->c->prompts;
    const char *vars[] = {"inferred_profile", inf_profile, "inferred_personality", inf_personality, NULL};
    char *sys = prompt_fill(P->text[hinted ? PROMPT_RESPONDER_HINTED : PROMPT_RESPONDER_PLAIN], vars);
    const char *suffix = P->text[PROMPT_RESPONDER_SUFFIX];
    int n = 0;
    LlmMessage *m = xmalloc(sizeof *m * (size_t)(2 + 2 * cv->n));
    char **made = xcalloc((size_t)cv->n + 1, sizeof(char *));
    if (sys[0]) m[n++] = (LlmMessage){"system", sys};
    for (int i = 0; i < cv->n; i++) {
        made[i] = responder_user_msg(cv->users[i], hinted ? cv->hints[i] : NULL, suffix);
        m[n++] = (LlmMessage){"user", made[i]};
        m[n++] = (LlmMessage){"assistant", cv->taken[i]};
    }
    made[cv->n] = responder_user_msg(user_msg, hinted ? hint : NULL, suffix);
    m[n++] = (LlmMessage){"user", made[cv->n]};
    int rc = ask(cv, hinted ? cv->c->hinted : cv->c->plain, hinted ? ROLE_HINTED : ROLE_PLAIN,
                 hinted ? REQ_HINTED : REQ_PLAIN, turn, 0, m, n, reply, e);
    for (int i = 0; i <= cv->n; i++) free(made[i]);
    free(made);
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
    char *user = NULL, *user_raw = NULL, *ind = NULL, *inf_pr = NULL, *inf_pe = NULL, *hint = NULL,
         *hinted = NULL, *plain = NULL;
    json_t *jab = NULL, *jba = NULL;
    int vab = 0, vba = 0, rc = user_turn(cv, turn, &user, &user_raw, e);
    if (!rc) rc = induce(cv, turn, user, &ind, e);
    int parsed = 0;
    if (!rc) {
        parsed = inducer_parse(ind, &inf_pr, &inf_pe);
        const char *hint_tmpl = c->prompts->text[PROMPT_RESPONDER_HINT];
        const char *vars[] = {"inferred_profile", inf_pr, "inferred_personality", inf_pe, NULL};
        if (hint_tmpl[0]) hint = prompt_fill(hint_tmpl, vars);
    }
    if (!rc) rc = respond(cv, turn, 1, user, hint, inf_pr, inf_pe, &hinted, e);
    if (!rc) rc = respond(cv, turn, 0, user, NULL, inf_pr, inf_pe, &plain, e);
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
        json_t *det = json_pack("{s:i, s:s, s:s, s:b, s:b, s:o, s:o, s:o}", "turn", turn, "judges", w, "hinted_is",
                                dropped ? "dropped" : hinted_wins ? "preferred" : "rejected", "dropped", dropped,
                                "inducer_parsed", parsed == 2, "inducer_raw", jstr(ind), "judge_hinted_first", jab,
                                "judge_hinted_second", jba);
        if (strcmp(user, user_raw)) json_object_set_new(det, "user_raw", jstr(user_raw));
        json_array_append_new(meta_turns, det);
        jab = jba = NULL;
        cv->users = xrealloc(cv->users, sizeof(char *) * (size_t)(cv->n + 1));
        cv->taken = xrealloc(cv->taken, sizeof(char *) * (size_t)(cv->n + 1));
        cv->hints = xrealloc(cv->hints, sizeof(char *) * (size_t)(cv->n + 1));
        cv->users[cv->n] = user;
        cv->taken[cv->n] = xstrdup(taken);
        cv->hints[cv->n] = hint;
        cv->n++;
        user = hint = NULL;
    }
    json_decref(jab);
    json_decref(jba);
    free(user);
    free(user_raw);
    free(hint);
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
    for (int i = 0; i < cv.n; i++) free(cv.users[i]), free(cv.taken[i]), free(cv.hints[i]);
    free(cv.users);
    free(cv.taken);
    free(cv.hints);
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
    JudgeOrderCounts jc = {0};
    dialogues_judge_counts(rec, &jc);
    json_object_set_new(meta, "judge_orders", json_pack("{s:I, s:I, s:I}", "both_verdicts",
                                                        (json_int_t)jc.both_verdicts, "agreements",
                                                        (json_int_t)jc.agreements, "first_position_wins",
                                                        (json_int_t)jc.first_position_wins));
    free(id);
    return rec;
}

/* ---- the judge's two orders ---- */

void dialogues_judge_counts(const json_t *rec, JudgeOrderCounts *acc) {
    json_t *det = json_object_get(json_object_get(rec, "meta"), "turn_details"), *t;
    size_t i;
    json_array_foreach(det, i, t) {
        const char *v1 = json_string_value(json_object_get(json_object_get(t, "judge_hinted_first"), "verdict"));
        const char *v2 = json_string_value(json_object_get(json_object_get(t, "judge_hinted_second"), "verdict"));
        acc->turns++;
        if (!v1 || !v2) continue;
        acc->both_verdicts++;
        /* the hinted reply is A in the first order and B in the second: the
         * same reply was chosen when the letters differ */
        acc->agreements += strcmp(v1, v2) != 0;
        acc->first_position_wins += (v1[0] == 'A') + (v2[0] == 'A');
    }
}

double judge_agreement_rate(const JudgeOrderCounts *c) {
    return c->both_verdicts ? (double)c->agreements / (double)c->both_verdicts : NAN;
}

double judge_position_bias_rate(const JudgeOrderCounts *c) {
    return c->both_verdicts ? (double)c->first_position_wins / (2.0 * (double)c->both_verdicts) : NAN;
}

void dialogues_result_free(DialoguesResult *r) {
    json_decref(r->summary);
    r->summary = NULL;
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
    JudgeOrderCounts judges; /* under lock */
    json_t *skipped;         /* [{id, index, error}], under lock */
    Err err;                 /* the first failure */
} RunCtx;

static void count_disagreements(RunCtx *r, const json_t *rec) {
    json_t *meta = json_object_get(rec, "meta");
    atomic_fetch_add(&r->disagreements, json_integer_value(json_object_get(meta, "disagreements")));
    atomic_fetch_add(&r->undecided, json_integer_value(json_object_get(meta, "undecided")));
    pthread_mutex_lock(&r->lock);
    dialogues_judge_counts(rec, &r->judges);
    pthread_mutex_unlock(&r->lock);
}

/* Failures that belong to one conversation (what it sent, what came back)
 * and that the backend's retries did not cure. Others — a wrong key, a
 * missing model, an endpoint that cannot be reached, the disk — would fail
 * every conversation: they stop. The same policy as aloe bench's. */
static int skippable(const Err *e) { return bench_failure_skippable(e); }

static void conv_job(void *ctx, long i, int thread) {
    (void)thread;
    RunCtx *r = ctx;
    long k = r->todo[i];
    Err e = {0};
    DialoguesConfig c = *r->c;
    c.stop = r->stop;
    json_t *rec = dialogue_generate(&c, r->profiles->items[r->plan->profile[k]],
                                    r->personalities->items[r->plan->personality[k]], k, r->plan, &e);
    if (!rec && c.skip_failed && skippable(&e) && !atomic_load(r->stop)) {
        char *id = conv_id(k);
        pthread_mutex_lock(&r->lock);
        json_array_append_new(r->skipped, json_pack("{s:s, s:I, s:o}", "id", id, "index", (json_int_t)k, "error",
                                                    jstr(e.msg)));
        pthread_mutex_unlock(&r->lock);
        free(id);
        return;
    }
    int rc = rec ? journal_append(r->j, rec, &e) : -1;
    if (rec && !rc) {
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
    static const PromptId used[] = {PROMPT_USER_SIMULATOR,   PROMPT_USER_FIRST_TURN,  PROMPT_USER_REPLY_SUFFIX,
                                    PROMPT_INDUCER,          PROMPT_RESPONDER_HINTED, PROMPT_RESPONDER_PLAIN,
                                    PROMPT_RESPONDER_HINT,   PROMPT_RESPONDER_SUFFIX, PROMPT_JUDGE_PAIR,
                                    PROMPT_JUDGE_REMINDER};
    json_t *prompts = json_object();
    for (size_t i = 0; i < sizeof used / sizeof used[0]; i++)
        json_object_set_new(prompts, prompt_key(used[i]), jstr(c->prompts->text[used[i]]));
    return json_pack("{s:s, s:s, s:I, s:i, s:i, s:b, s:o, s:f, s:i, s:o}", "command", "dialogues", "protocol",
                     protocol_name(c->protocol), "seed",
                     (json_int_t)c->seed, "turns", c->turns, "judge_retries", c->judge_retries,
                     "drop_disagreements", c->drop_disagreements, "models", models_json(c), "temperature",
                     c->params.temperature, "max_tokens", c->params.max_tokens, "prompts", prompts);
}

/* Rates as JSON numbers, null when undefined. */
static json_t *rate_json(double x) { return isnan(x) ? json_null() : json_real(x); }

static json_t *summary_json(const DialoguesConfig *c, const DialoguesResult *res, json_t *skipped, const char *error) {
    const JudgeOrderCounts *j = &res->judges;
    json_t *defs = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s}", "both_verdicts",
        "judged turns where both orders (hinted reply first, then second) gave a verdict", "agreements",
        "of those, turns where both orders chose the same reply", "first_position_wins",
        "of the 2 x both_verdicts verdicts, those that chose the reply shown first", "agreement_rate",
        "agreements / both_verdicts", "position_bias_rate",
        "first_position_wins / (2 x both_verdicts): 0.5 when position does not matter, 1 when the first reply "
        "always wins",
        "disagreements", "judged turns whose two orders did not choose the same reply (one or both without a "
        "verdict included); undecided: those with no verdict in either order");
    json_t *judges = json_pack("{s:I, s:I, s:I, s:I, s:o, s:o, s:I, s:I, s:o}", "turns", (json_int_t)j->turns,
                               "both_verdicts", (json_int_t)j->both_verdicts, "agreements", (json_int_t)j->agreements,
                               "first_position_wins", (json_int_t)j->first_position_wins, "agreement_rate",
                               rate_json(judge_agreement_rate(j)), "position_bias_rate",
                               rate_json(judge_position_bias_rate(j)), "disagreements",
                               (json_int_t)res->disagreements, "undecided", (json_int_t)res->undecided, "definitions",
                               defs);
    return json_pack("{s:s, s:s, s:s, s:b, s:s?, s:{s:I, s:I, s:I, s:I}, s:O, s:o}", "command", "dialogues", "out",
                     c->out_path, "protocol", protocol_name(c->protocol), "complete",
                     !error && res->done == res->total, "error", error, "conversations", "total",
                     (json_int_t)res->total, "done", (json_int_t)res->done, "resumed", (json_int_t)res->done_before,
                     "skipped", (json_int_t)res->skipped, "skipped", skipped, "judges", judges);
}

static int write_summary(const DialoguesConfig *c, json_t *summary, Err *e) {
    char *path = personas_sidecar_path(c->out_path, ".summary.json");
    char *text = json_dumps(summary, JSON_INDENT(2));
    StrBuf b;
    sb_init(&b);
    sb_printf(&b, "%s\n", text);
    int rc = file_write_atomic(path, b.s, b.len, e);
    sb_free(&b);
    free(text);
    free(path);
    return rc;
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
                .stop = c->stop ? c->stop : &local_stop, .skipped = json_array()};
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
        res->skipped = (long)json_array_size(r.skipped);
        res->disagreements = atomic_load(&r.disagreements);
        res->undecided = atomic_load(&r.undecided);
        res->judges = r.judges;
        if (r.err.code) {
            *e = r.err;
            rc = -1;
        } else if (res->skipped && res->done == 0) {
            /* skipping is for the odd conversation; an output with none made
             * at all points at the endpoint or the setup, and says so */
            const char *first = json_string_value(json_object_get(json_array_get(r.skipped, 0), "error"));
            rc = err_set(e, ERR_HTTP, "every conversation failed (%ld); the first: %s", res->skipped, first);
        } else if (res->done + res->skipped < plan->n) {
            rc = err_set(e, ERR_CANCELLED, "interrupted after %ld of %ld conversations; rerun to resume", res->done,
                         plan->n);
        }
        /* the file's state, whatever happened: what is done, skipped, judged */
        res->summary = summary_json(c, res, r.skipped, rc ? e->msg : NULL);
        Err we = {0};
        if (write_summary(c, res->summary, &we) && !rc) {
            *e = we;
            rc = -1;
        }
    }
    if (!rc) rc = write_ordered(j, plan, c->out_path, e);
    journal_close(j);
    pthread_mutex_destroy(&r.lock);
    json_decref(r.skipped);
    free(r.todo);
    return rc;
}
