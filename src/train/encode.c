#include "train/encode.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

typedef struct Ids {
    int32_t *v;
    int n;
} Ids;

static void ids_free(Ids *a) {
    free(a->v);
    a->v = NULL;
    a->n = 0;
}

static int is_prefix(const Ids *a, const Ids *b) {
    return a->n <= b->n && !memcmp(a->v, b->v, (size_t)a->n * sizeof *a->v);
}

/* Renders msgs[0..n) (then more[0..m), may be empty) and encodes the text. */
static int render_ids(const Encoder *enc, const TrainMsg *const *msgs, int n, const MsgList *more, int add_gen,
                      Ids *out, Err *e) {
    int m = more ? more->n : 0;
    ChatMsg *cm = xmalloc((size_t)(n + m + 1) * sizeof *cm);
    for (int i = 0; i < n; i++) cm[i] = (ChatMsg){msgs[i]->role, msgs[i]->content};
    for (int i = 0; i < m; i++) cm[n + i] = (ChatMsg){more->items[i].role, more->items[i].content};
    char *text = NULL;
    int rc = chat_template_render(enc->tmpl, cm, n + m, add_gen, &enc->opts, &text, e);
    if (!rc) rc = tok_encode(enc->tok, text, 0, 1, &out->v, &out->n, e);
    free(text);
    free(cm);
    return rc;
}

/* Index of the last "user" message at or before `last`, or `last`. */
static int last_user_upto(const TrainMsg *const *v, int last) {
    for (int i = last; i >= 0; i--)
        if (!strcmp(v[i]->role, "user")) return i;
    return last;
}

/* Removes the oldest turn (from the first non-system message up to the next
 * user message) if that stays before index `keep`. Returns how many
 * messages went (0: nothing can go). tgt (may be NULL) moves along. */
static int drop_oldest_turn(const TrainMsg **v, uint8_t *tgt, int *n, int keep) {
    int s = *n > 0 && !strcmp(v[0]->role, "system") ? 1 : 0;
    int u = s + 1;
    while (u < *n && strcmp(v[u]->role, "user")) u++;
    if (u >= *n || u > keep) return 0;
    int k = u - s;
    memmove(v + s, v + u, (size_t)(*n - u) * sizeof *v);
    if (tgt) memmove(tgt + s, tgt + u, (size_t)(*n - u));
    *n -= k;
    return k;
}

/* ---- SFT ---- */

static int sft_try(const Encoder *enc, const TrainMsg *const *v, const uint8_t *tgt, int n, const char *where,
                   SftEncoded *out, Err *e) {
    Ids full = {0};
    if (render_ids(enc, v, n, NULL, 0, &full, e)) return err_wrap(e, "%s", where);
    uint8_t *mask = xcalloc((size_t)(full.n ? full.n : 1), 1);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        if (!tgt[i]) continue;
        Ids pre = {0}, end = {0};
        rc = render_ids(enc, v, i, NULL, 1, &pre, e) || render_ids(enc, v, i + 1, NULL, 0, &end, e);
        if (rc) err_wrap(e, "%s", where);
        else if (!is_prefix(&pre, &end) || !is_prefix(&end, &full))
            rc = err_set(e, ERR_UNSUPPORTED, "%s: message %d: the chat template does not render the conversation "
                         "before this reply as a token prefix of it, so its tokens cannot be told apart", where, i);
        for (int k = pre.n; !rc && k < end.n; k++) mask[k] = 1;
        ids_free(&pre), ids_free(&end);
    }
    if (rc) {
        ids_free(&full);
        free(mask);
        return -1;
    }
    out->ids = full.v, out->n = full.n, out->is_target = mask;
    return 0;
}

int sft_encode(const Encoder *enc, const SftExample *x, SftEncoded *out, Err *e) {
    memset(out, 0, sizeof *out);
    int n = x->msgs.n, last = -1;
    const TrainMsg **v = xmalloc((size_t)(n ? n : 1) * sizeof *v);
    uint8_t *tgt = xmalloc((size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        v[i] = &x->msgs.items[i];
        tgt[i] = x->is_target[i];
        if (tgt[i]) last = i;
    }
    int rc = last < 0 ? err_set(e, ERR_ARG, "%s: no message to train on", x->where) : 0, dropped = 0;
    while (!rc) {
        rc = sft_try(enc, v, tgt, n, x->where, out, e);
        if (rc || enc->max_len <= 0 || out->n <= enc->max_len) break;
        int tokens = out->n;
        sft_encoded_free(out);
        int k = drop_oldest_turn(v, tgt, &n, last_user_upto(v, n - 1));
        if (!k)
            rc = err_set(e, ERR_ARG, "%s: %d tokens even without earlier turns, over --max-len %d (the reply is never "
                         "cut)", x->where, tokens, enc->max_len);
        dropped += k;
    }
    if (!rc) out->dropped = dropped;
    free(v);
    free(tgt);
    return rc;
}

void sft_encoded_free(SftEncoded *s) {
    free(s->ids);
    free(s->is_target);
    memset(s, 0, sizeof *s);
}

/* ---- DPO ---- */

static int dpo_try(const Encoder *enc, const TrainMsg *const *v, int n, const DpoExample *x, DpoEncoded *out,
                   Err *e) {
    Ids p = {0}, c = {0}, r = {0};
    int rc = render_ids(enc, v, n, NULL, 1, &p, e) || render_ids(enc, v, n, &x->chosen, 0, &c, e) ||
             render_ids(enc, v, n, &x->rejected, 0, &r, e);
    if (rc) err_wrap(e, "%s", x->where);
    else if (!is_prefix(&p, &c) || !is_prefix(&p, &r))
        rc = err_set(e, ERR_UNSUPPORTED, "%s: the chat template does not render the prompt as a token prefix of the "
                     "prompt with its reply", x->where);
    else if (p.n == c.n || p.n == r.n)
        rc = err_set(e, ERR_ARG, "%s: an empty completion after the prompt", x->where);
    if (rc) {
        ids_free(&p), ids_free(&c), ids_free(&r);
        return -1;
    }
    out->chosen = c.v, out->n_chosen = c.n, out->rejected = r.v, out->n_rejected = r.n, out->n_prompt = p.n;
    ids_free(&p);
    return 0;
}

/* TRL's standard (non-conversational) format: BOS + prompt, completion + EOS. */
static int dpo_raw(const Encoder *enc, const DpoExample *x, DpoEncoded *out, Err *e) {
    Ids p = {0}, c = {0}, r = {0};
    int rc = tok_encode(enc->tok, x->prompt.items[0].content, 0, 0, &p.v, &p.n, e) ||
             tok_encode(enc->tok, x->chosen.items[0].content, 0, 0, &c.v, &c.n, e) ||
             tok_encode(enc->tok, x->rejected.items[0].content, 0, 0, &r.v, &r.n, e);
    if (!rc && (c.n == 0 || r.n == 0)) rc = err_set(e, ERR_ARG, "%s: an empty completion", x->where);
    else if (rc) err_wrap(e, "%s", x->where);
    if (rc) {
        ids_free(&p), ids_free(&c), ids_free(&r);
        return -1;
    }
    int bos = tok_bos(enc->tok), eos = tok_eos(enc->tok), hb = bos >= 0, he = eos >= 0;
    int np = hb + p.n, nc = np + c.n + he, nr = np + r.n + he;
    /* Prompt tokens go from the left (after the BOS) until both fit. */
    int cut = 0, longest = nc > nr ? nc : nr;
    if (enc->max_len > 0 && longest > enc->max_len) {
        cut = longest - enc->max_len;
        if (cut > p.n - 1) {
            ids_free(&p), ids_free(&c), ids_free(&r);
            return err_set(e, ERR_ARG, "%s: %d tokens even with the prompt cut to one token, over --max-len %d",
                           x->where, longest - p.n + 1, enc->max_len);
        }
        np -= cut, nc -= cut, nr -= cut;
    }
    out->n_prompt = np, out->n_chosen = nc, out->n_rejected = nr, out->dropped = cut;
    out->chosen = xmalloc((size_t)nc * sizeof *out->chosen);
    out->rejected = xmalloc((size_t)nr * sizeof *out->rejected);
    int32_t *dst[2] = {out->chosen, out->rejected};
    const Ids *comp[2] = {&c, &r};
    for (int s = 0; s < 2; s++) {
        int k = 0;
        if (hb) dst[s][k++] = bos;
        memcpy(dst[s] + k, p.v + cut, (size_t)(p.n - cut) * sizeof *p.v);
        k += p.n - cut;
        memcpy(dst[s] + k, comp[s]->v, (size_t)comp[s]->n * sizeof *p.v);
        k += comp[s]->n;
        if (he) dst[s][k] = eos;
    }
    ids_free(&p), ids_free(&c), ids_free(&r);
    return 0;
}

int dpo_encode(const Encoder *enc, const DpoExample *x, DpoEncoded *out, Err *e) {
    memset(out, 0, sizeof *out);
    if (x->raw_text) return dpo_raw(enc, x, out, e);
    int n = x->prompt.n, dropped = 0, rc = 0;
    const TrainMsg **v = xmalloc((size_t)(n ? n : 1) * sizeof *v);
    for (int i = 0; i < n; i++) v[i] = &x->prompt.items[i];
    for (;;) {
        rc = dpo_try(enc, v, n, x, out, e);
        int longest = out->n_chosen > out->n_rejected ? out->n_chosen : out->n_rejected;
        if (rc || enc->max_len <= 0 || longest <= enc->max_len) break;
        dpo_encoded_free(out);
        int k = drop_oldest_turn(v, NULL, &n, last_user_upto(v, n - 1));
        if (!k) {
            rc = err_set(e, ERR_ARG, "%s: %d tokens even without earlier turns, over --max-len %d (replies are never "
                         "cut)", x->where, longest, enc->max_len);
            break;
        }
        dropped += k;
    }
    if (!rc) out->dropped = dropped;
    free(v);
    return rc;
}

void dpo_encoded_free(DpoEncoded *d) {
    free(d->chosen);
    free(d->rejected);
    memset(d, 0, sizeof *d);
}
