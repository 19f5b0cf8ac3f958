#include "train/data.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "formats/jsonl.h"

void msgs_push(MsgList *l, const char *role, const char *content) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->items = xrealloc(l->items, (size_t)l->cap * sizeof *l->items);
    }
    l->items[l->n].role = xstrdup(role);
    l->items[l->n].content = xstrdup(content);
    l->n++;
}

void msgs_free(MsgList *l) {
    for (int i = 0; i < l->n; i++) {
        free(l->items[i].role);
        free(l->items[i].content);
    }
    free(l->items);
    memset(l, 0, sizeof *l);
}

static void msgs_copy(MsgList *dst, const MsgList *src) {
    memset(dst, 0, sizeof *dst);
    for (int i = 0; i < src->n; i++) msgs_push(dst, src->items[i].role, src->items[i].content);
}

/* Where one record came from: what every error and every example names. */
typedef struct Rec {
    const char *path;
    int line;
} Rec;

/* A string field that must be present and non-empty. */
static int get_text(const Rec *r, json_t *obj, const char *key, const char *field, const char **out,
                    Err *e) {
    json_t *v = json_object_get(obj, key);
    if (!v) return err_set(e, ERR_PARSE, "%s:%d: %s: missing", r->path, r->line, field);
    if (!json_is_string(v))
        return err_set(e, ERR_PARSE, "%s:%d: %s: expected a string, got %s", r->path, r->line, field,
                       json_type_name(v));
    if (!*json_string_value(v))
        return err_set(e, ERR_PARSE, "%s:%d: %s: empty string", r->path, r->line, field);
    *out = json_string_value(v);
    return 0;
}

/* A JSON array of {"role", "content"} into l. */
static int parse_messages(const Rec *r, json_t *arr, const char *field, MsgList *l, Err *e) {
    memset(l, 0, sizeof *l);
    if (!json_is_array(arr))
        return err_set(e, ERR_PARSE, "%s:%d: %s: expected a list of messages, got %s", r->path,
                       r->line, field, json_type_name(arr));
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m) {
        char f[96];
        snprintf(f, sizeof f, "%s[%zu]", field, i);
        if (!json_is_object(m)) {
            msgs_free(l);
            return err_set(e, ERR_PARSE, "%s:%d: %s: expected a message object, got %s", r->path,
                           r->line, f, json_type_name(m));
        }
        char fr[112], fc[112];
        snprintf(fr, sizeof fr, "%s.role", f);
        snprintf(fc, sizeof fc, "%s.content", f);
        const char *role, *content;
        if (get_text(r, m, "role", fr, &role, e)) goto fail;
        /* Empty content is legal in a chat (an empty system prompt). */
        json_t *c = json_object_get(m, "content");
        if (!c) {
            err_set(e, ERR_PARSE, "%s:%d: %s: missing", r->path, r->line, fc);
            goto fail;
        }
        if (!json_is_string(c)) {
            err_set(e, ERR_PARSE, "%s:%d: %s: expected a string, got %s", r->path, r->line, fc,
                    json_type_name(c));
            goto fail;
        }
        content = json_string_value(c);
        msgs_push(l, role, content);
    }
    return 0;
fail:
    msgs_free(l);
    return -1;
}

/* ---- aloe trees ---- */

typedef struct TreeTurn {
    const char *user, *preferred, *rejected;
    int took_preferred; /* 1/0: the branch taken; -1: not given (last turn only) */
    int dropped;        /* the pair was dropped (judges disagreed): no example */
    const char *taken;  /* the reply the conversation went on with (history) */
} TreeTurn;

/* A turn whose pair `aloe dialogues --drop-disagreements` dropped has null
 * preferred/rejected and names the reply it went on with in "chosen"
 * ("hinted" or "plain"): it gives no example but stays in the history. */
static int parse_dropped_turn(const Rec *r, json_t *t, json_t *a, int k, int last, TreeTurn *out, Err *e) {
    out->dropped = 1;
    out->took_preferred = -1;
    json_t *c = json_object_get(t, "chosen");
    if (!c && last) return 0;
    const char *s = json_string_value(c);
    if (!s || !json_is_string(json_object_get(a, s)))
        return err_set(e, ERR_PARSE, "%s:%d: conversations[%d].chosen: a dropped pair (null preferred and "
                       "rejected) needs \"chosen\" naming the reply taken (\"hinted\" or \"plain\")", r->path,
                       r->line, k);
    out->taken = json_string_value(json_object_get(a, s));
    return 0;
}

static int parse_turn(const Rec *r, json_t *t, int k, int last, TreeTurn *out, Err *e) {
    char f[96];
    if (!json_is_object(t))
        return err_set(e, ERR_PARSE, "%s:%d: conversations[%d]: expected an object, got %s", r->path,
                       r->line, k, json_type_name(t));
    snprintf(f, sizeof f, "conversations[%d].user", k);
    if (get_text(r, t, "user", f, &out->user, e)) return -1;
    json_t *a = json_object_get(t, "assistant");
    if (!json_is_object(a))
        return err_set(e, ERR_PARSE, "%s:%d: conversations[%d].assistant: expected an object with "
                       "\"preferred\" and \"rejected\", got %s", r->path, r->line, k,
                       a ? json_type_name(a) : "nothing");
    if (json_is_null(json_object_get(a, "preferred")) && json_is_null(json_object_get(a, "rejected")))
        return parse_dropped_turn(r, t, a, k, last, out, e);
    snprintf(f, sizeof f, "conversations[%d].assistant.preferred", k);
    if (get_text(r, a, "preferred", f, &out->preferred, e)) return -1;
    snprintf(f, sizeof f, "conversations[%d].assistant.rejected", k);
    if (get_text(r, a, "rejected", f, &out->rejected, e)) return -1;
    json_t *c = json_object_get(t, "chosen");
    out->took_preferred = -1;
    if (!c && last) return 0; /* the branch after the last turn is never needed */
    const char *s = json_string_value(c);
    if (!s || (strcmp(s, "preferred") && strcmp(s, "rejected")))
        return err_set(e, ERR_PARSE, "%s:%d: conversations[%d].chosen: expected \"preferred\" or "
                       "\"rejected\", got %s%s%s", r->path, r->line, k, s ? "\"" : "",
                       s ? s : (c ? json_type_name(c) : "nothing"), s ? "\"" : "");
    out->took_preferred = !strcmp(s, "preferred");
    out->taken = out->took_preferred ? out->preferred : out->rejected;
    return 0;
}

static int parse_tree(const Rec *r, json_t *rec, TreeTurn **turns, int *n, Err *e) {
    json_t *conv = json_object_get(rec, "conversations");
    if (!json_is_array(conv) || json_array_size(conv) == 0)
        return err_set(e, ERR_PARSE, "%s:%d: conversations: expected a non-empty list of turns, got %s",
                       r->path, r->line, json_is_array(conv) ? "an empty list" : json_type_name(conv));
    *n = (int)json_array_size(conv);
    *turns = xcalloc((size_t)*n, sizeof **turns);
    for (int k = 0; k < *n; k++)
        if (parse_turn(r, json_array_get(conv, k), k, k == *n - 1, &(*turns)[k], e)) {
            free(*turns);
            return -1;
        }
    return 0;
}

/* Calls fn for every turn with the history before it (taken branch). */
typedef void (*TurnFn)(void *ctx, const Rec *r, int k, const MsgList *history, const TreeTurn *t);

/* Each turn's example repeats the history before it, so a tree of n turns
 * expands quadratically: 1000 turns of 16 KiB would take 8 GB. The bytes of
 * every example's messages (with a malloc's worth per message) are summed
 * before anything is built, and a tree over the limit is refused. */
static int check_expansion(const Rec *r, const TreeTurn *turns, int n, Err *e) {
    enum { PER_MESSAGE = 64 };
    double hist = 0, total = 0;
    for (int k = 0; k < n; k++) {
        double reply = turns[k].dropped ? 0 : (double)strlen(turns[k].preferred) + (double)strlen(turns[k].rejected);
        if (!turns[k].dropped) total += hist + (double)strlen(turns[k].user) + reply + 3 * PER_MESSAGE;
        hist += (double)strlen(turns[k].user) + PER_MESSAGE;
        if (k + 1 < n) hist += (double)strlen(turns[k].taken) + PER_MESSAGE;
    }
    if (total > (double)TRAIN_MAX_TREE_BYTES)
        return err_set(e, ERR_PARSE, "%s:%d: conversations: the %d turns' examples would hold %.0f MiB (each repeats "
                       "the history before it); a tree's examples may hold at most %zu MiB", r->path, r->line, n,
                       total / (1 << 20), TRAIN_MAX_TREE_BYTES >> 20);
    return 0;
}

static int walk_tree(const Rec *r, json_t *rec, TurnFn fn, void *ctx, Err *e) {
    TreeTurn *turns = NULL;
    int n = 0;
    if (parse_tree(r, rec, &turns, &n, e)) return -1;
    if (check_expansion(r, turns, n, e)) {
        free(turns);
        return -1;
    }
    MsgList hist = {0};
    for (int k = 0; k < n; k++) {
        if (!turns[k].dropped) fn(ctx, r, k, &hist, &turns[k]);
        msgs_push(&hist, "user", turns[k].user);
        if (k + 1 < n) msgs_push(&hist, "assistant", turns[k].taken);
    }
    msgs_free(&hist);
    free(turns);
    return 0;
}

static char *where_turn(const Rec *r, int k) { return xasprintf("%s:%d: conversations[%d]", r->path, r->line, k); }

/* ---- SFT ---- */

typedef struct SftCtx {
    const SftOptions *o;
    SftData *out;
} SftCtx;

static SftExample *sft_add(SftData *d) {
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 64;
        d->items = xrealloc(d->items, (size_t)d->cap * sizeof *d->items);
    }
    SftExample *x = &d->items[d->n++];
    memset(x, 0, sizeof *x);
    return x;
}

static void sft_tree_turn(void *ctx, const Rec *r, int k, const MsgList *history, const TreeTurn *t) {
    SftCtx *c = ctx;
    SftExample *x = sft_add(c->out);
    msgs_copy(&x->msgs, history);
    msgs_push(&x->msgs, "user", t->user);
    msgs_push(&x->msgs, "assistant", c->o->branch == BRANCH_PREFERRED ? t->preferred : t->rejected);
    x->is_target = xcalloc((size_t)x->msgs.n, 1);
    x->is_target[x->msgs.n - 1] = 1;
    x->where = where_turn(r, k);
}

static int sft_messages(SftCtx *c, const Rec *r, json_t *arr, Err *e) {
    MsgList l;
    if (parse_messages(r, arr, "messages", &l, e)) return -1;
    int last = -1;
    for (int i = 0; i < l.n; i++)
        if (!strcmp(l.items[i].role, "assistant")) last = i;
    if (last < 0) {
        msgs_free(&l);
        return err_set(e, ERR_PARSE, "%s:%d: messages: no \"assistant\" message to train on", r->path, r->line);
    }
    /* Messages after the last reply carry no loss and predict nothing. */
    while (l.n > last + 1) {
        l.n--;
        free(l.items[l.n].role);
        free(l.items[l.n].content);
    }
    SftExample *x = sft_add(c->out);
    x->msgs = l;
    x->is_target = xcalloc((size_t)l.n, 1);
    for (int i = 0; i < l.n; i++)
        x->is_target[i] = c->o->loss_on == LOSS_ON_ALL_ASSISTANT ? !strcmp(l.items[i].role, "assistant") : i == last;
    x->where = xasprintf("%s:%d", r->path, r->line);
    return 0;
}

/* "found keys: a, b, c" for a record of no known shape. */
static void keys_of(json_t *o, char *buf, size_t n) {
    const char *k;
    json_t *v;
    size_t used = 0;
    buf[0] = 0;
    json_object_foreach(o, k, v) {
        (void)v;
        int w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", k);
        if (w < 0 || (size_t)w >= n - used) break;
        used += (size_t)w;
    }
    if (!used) snprintf(buf, n, "none");
}

static int check_object(const Rec *r, json_t *v, Err *e) {
    if (!json_is_object(v))
        return err_set(e, ERR_PARSE, "%s:%d: expected a JSON object, got %s", r->path, r->line, json_type_name(v));
    return 0;
}

static int sft_record(void *ctx, json_t *v, const char *path, int line, int nth, Err *e) {
    (void)nth;
    SftCtx *c = ctx;
    Rec r = {path, line};
    if (check_object(&r, v, e)) return -1;
    if (json_object_get(v, "conversations")) return walk_tree(&r, v, sft_tree_turn, c, e);
    json_t *m = json_object_get(v, "messages");
    if (m) return sft_messages(c, &r, m, e);
    char keys[256];
    keys_of(v, keys, sizeof keys);
    return err_set(e, ERR_PARSE, "%s:%d: expected \"conversations\" (an aloe tree) or \"messages\" (TRL), "
                   "found keys: %s", path, line, keys);
}

static int check_nonempty(const char *path, long rc, int n, Err *e) {
    if (rc < 0) return -1;
    if (n == 0) return err_set(e, ERR_PARSE, "%s: no training examples in the file", path);
    return 0;
}

int sft_data_load(const char *path, const SftOptions *o, SftData *out, Err *e) {
    SftCtx c = {o, out};
    int before = out->n;
    long rc = jsonl_foreach(path, sft_record, &c, e);
    return check_nonempty(path, rc, out->n - before, e);
}

int sft_data_load_buf(const char *name, const char *buf, size_t len, const SftOptions *o, SftData *out, Err *e) {
    SftCtx c = {o, out};
    int before = out->n;
    long rc = jsonl_foreach_buf(name, buf, len, sft_record, &c, e);
    return check_nonempty(name, rc, out->n - before, e);
}

void sft_data_free(SftData *d) {
    for (int i = 0; i < d->n; i++) {
        msgs_free(&d->items[i].msgs);
        free(d->items[i].is_target);
        free(d->items[i].where);
    }
    free(d->items);
    memset(d, 0, sizeof *d);
}

/* ---- DPO ---- */

static DpoExample *dpo_add(DpoData *d) {
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 64;
        d->items = xrealloc(d->items, (size_t)d->cap * sizeof *d->items);
    }
    DpoExample *x = &d->items[d->n++];
    memset(x, 0, sizeof *x);
    return x;
}

static void dpo_tree_turn(void *ctx, const Rec *r, int k, const MsgList *history, const TreeTurn *t) {
    DpoExample *x = dpo_add(ctx);
    msgs_copy(&x->prompt, history);
    msgs_push(&x->prompt, "user", t->user);
    msgs_push(&x->chosen, "assistant", t->preferred);
    msgs_push(&x->rejected, "assistant", t->rejected);
    x->where = where_turn(r, k);
}

static int msg_equal(const TrainMsg *a, const TrainMsg *b) {
    return !strcmp(a->role, b->role) && !strcmp(a->content, b->content);
}

/* Moves the first n messages of l out (they belong to the prompt). */
static void msgs_drop_front(MsgList *l, int n) {
    for (int i = 0; i < n; i++) {
        free(l->items[i].role);
        free(l->items[i].content);
    }
    memmove(l->items, l->items + n, (size_t)(l->n - n) * sizeof *l->items);
    l->n -= n;
}

/* TRL's implicit prompt: the longest common message prefix. */
static int split_implicit_prompt(const Rec *r, DpoExample *x, Err *e) {
    int p = 0;
    while (p < x->chosen.n && p < x->rejected.n && msg_equal(&x->chosen.items[p], &x->rejected.items[p])) p++;
    if (p == x->chosen.n || p == x->rejected.n)
        return err_set(e, ERR_PARSE, "%s:%d: chosen and rejected: no messages left after their common "
                       "prefix (the implicit prompt); give \"prompt\" explicitly", r->path, r->line);
    for (int i = 0; i < p; i++) msgs_push(&x->prompt, x->chosen.items[i].role, x->chosen.items[i].content);
    msgs_drop_front(&x->chosen, p);
    msgs_drop_front(&x->rejected, p);
    return 0;
}

static int dpo_raw_text(const Rec *r, json_t *v, DpoExample *x, Err *e) {
    const char *p, *c, *j;
    if (get_text(r, v, "prompt", "prompt", &p, e) || get_text(r, v, "chosen", "chosen", &c, e) ||
        get_text(r, v, "rejected", "rejected", &j, e))
        return -1;
    x->raw_text = 1;
    msgs_push(&x->prompt, "text", p);
    msgs_push(&x->chosen, "text", c);
    msgs_push(&x->rejected, "text", j);
    return 0;
}

static int dpo_trl(DpoData *d, const Rec *r, json_t *v, Err *e) {
    json_t *prompt = json_object_get(v, "prompt");
    DpoExample *x = dpo_add(d);
    x->where = xasprintf("%s:%d", r->path, r->line);
    int rc;
    if (json_is_string(prompt)) {
        rc = dpo_raw_text(r, v, x, e);
    } else {
        rc = parse_messages(r, json_object_get(v, "chosen"), "chosen", &x->chosen, e);
        if (!rc) rc = parse_messages(r, json_object_get(v, "rejected"), "rejected", &x->rejected, e);
        if (!rc && x->chosen.n == 0) rc = err_set(e, ERR_PARSE, "%s:%d: chosen: empty list", r->path, r->line);
        if (!rc && x->rejected.n == 0) rc = err_set(e, ERR_PARSE, "%s:%d: rejected: empty list", r->path, r->line);
        if (!rc) rc = prompt ? parse_messages(r, prompt, "prompt", &x->prompt, e) : split_implicit_prompt(r, x, e);
    }
    if (rc) {
        msgs_free(&x->prompt);
        msgs_free(&x->chosen);
        msgs_free(&x->rejected);
        free(x->where);
        d->n--;
    }
    return rc;
}

static int dpo_record(void *ctx, json_t *v, const char *path, int line, int nth, Err *e) {
    (void)nth;
    Rec r = {path, line};
    if (check_object(&r, v, e)) return -1;
    if (json_object_get(v, "conversations")) return walk_tree(&r, v, dpo_tree_turn, ctx, e);
    if (json_object_get(v, "chosen")) return dpo_trl(ctx, &r, v, e);
    char keys[256];
    keys_of(v, keys, sizeof keys);
    return err_set(e, ERR_PARSE, "%s:%d: expected \"conversations\" (an aloe tree) or \"prompt\"/\"chosen\"/"
                   "\"rejected\" (TRL), found keys: %s", path, line, keys);
}

int dpo_data_load(const char *path, DpoData *out, Err *e) {
    int before = out->n;
    long rc = jsonl_foreach(path, dpo_record, out, e);
    return check_nonempty(path, rc, out->n - before, e);
}

int dpo_data_load_buf(const char *name, const char *buf, size_t len, DpoData *out, Err *e) {
    int before = out->n;
    long rc = jsonl_foreach_buf(name, buf, len, dpo_record, out, e);
    return check_nonempty(name, rc, out->n - before, e);
}

void dpo_data_free(DpoData *d) {
    for (int i = 0; i < d->n; i++) {
        msgs_free(&d->items[i].prompt);
        msgs_free(&d->items[i].chosen);
        msgs_free(&d->items[i].rejected);
        free(d->items[i].where);
    }
    free(d->items);
    memset(d, 0, sizeof *d);
}

int tree_branch_parse(const char *name, TreeBranch *out, Err *e) {
    if (!strcmp(name, "preferred")) *out = BRANCH_PREFERRED;
    else if (!strcmp(name, "rejected")) *out = BRANCH_REJECTED;
    else return err_set(e, ERR_ARG, "branch: expected preferred or rejected, got \"%s\"", name);
    return 0;
}

int loss_on_parse(const char *name, LossOn *out, Err *e) {
    if (!strcmp(name, "last")) *out = LOSS_ON_LAST;
    else if (!strcmp(name, "all-assistant")) *out = LOSS_ON_ALL_ASSISTANT;
    else return err_set(e, ERR_ARG, "loss-on: expected last or all-assistant, got \"%s\"", name);
    return 0;
}
