/* Tokenising training examples with the fixture tokenizers and their chat
 * templates (chatml = Qwen2.5's, llama3 = Llama 3.1's): the ids equal
 * transformers' apply_chat_template ids, targets are exactly the replies,
 * --max-len drops the oldest turns, raw-text pairs get BOS/EOS as TRL. */
#include <jansson.h>
#include <stdlib.h>

#include "base/mem.h"
#include "test.h"
#include "train/encode.h"

typedef struct Fx {
    Tokenizer *tok;
    ChatTemplate *tmpl;
    json_t *root;
} Fx;

static int fx_open(Fx *f, const char *name, Err *e) {
    memset(f, 0, sizeof *f);
    char rel[96];
    snprintf(rel, sizeof rel, "fixtures/tokenizers/%s", name);
    char *dir = test_shared_path(rel);
    if (!dir) return 1;
    char *jp = xasprintf("%s/expected.json", dir);
    json_error_t je;
    f->root = json_load_file(jp, 0, &je);
    f->tok = tok_load_hf(dir, e);
    f->tmpl = f->tok ? chat_template_open_hf(dir, NULL, e) : NULL;
    free(jp), free(dir);
    if (!f->root) return err_set(e, ERR_PARSE, "expected.json: %s", je.text);
    return f->tmpl ? 0 : -1;
}

static void fx_close(Fx *f) {
    if (f->tmpl) chat_template_free(f->tmpl);
    if (f->tok) tok_free(f->tok);
    if (f->root) json_decref(f->root);
}

static Encoder encoder(Fx *f, int max_len) {
    Encoder enc = {f->tok, f->tmpl, chat_render_opts_default(), max_len};
    return enc;
}

static void messages_of(json_t *arr, MsgList *l) {
    memset(l, 0, sizeof *l);
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
        msgs_push(l, json_string_value(json_object_get(m, "role")), json_string_value(json_object_get(m, "content")));
}

static int ids_equal(const int32_t *a, int n, json_t *arr) {
    if ((int)json_array_size(arr) != n) return 0;
    for (int i = 0; i < n; i++)
        if (a[i] != json_integer_value(json_array_get(arr, i))) return 0;
    return 1;
}

/* Every chat without a generation prompt, trained on all replies: the ids
 * are the gold ids, and the target runs decode to the replies. */
static void check_sft_gold(const char *name) {
    Fx f;
    Err e;
    int rc = fx_open(&f, name, &e);
    if (rc == 1) SKIP("fixtures not found (set ALOE_SHARED)");
    CHECK_MSG(rc == 0, "%s", e.msg);
    Encoder enc = encoder(&f, 0);
    json_t *chats = json_object_get(f.root, "chats");
    int checked = 0, ok = 1;
    for (size_t c = 0; c < json_array_size(chats) && ok; c++) {
        json_t *chat = json_array_get(chats, c);
        if (json_is_true(json_object_get(chat, "add_generation_prompt"))) continue;
        SftExample x = {0};
        messages_of(json_object_get(chat, "messages"), &x.msgs);
        x.is_target = xcalloc((size_t)x.msgs.n, 1);
        int n_assist = 0;
        for (int i = 0; i < x.msgs.n; i++) n_assist += x.is_target[i] = !strcmp(x.msgs.items[i].role, "assistant");
        x.where = "chat";
        SftEncoded s;
        if (sft_encode(&enc, &x, &s, &e)) {
            ok = 0;
        } else {
            ok = ids_equal(s.ids, s.n, json_object_get(chat, "ids"));
            if (!ok) err_set(&e, ERR_INTERNAL, "chat %zu: ids differ from apply_chat_template's", c);
            /* Each run of targets decodes to an assistant reply and its end of turn. */
            int runs = 0;
            for (int t = 0; t < s.n && ok; t++) {
                if (!s.is_target[t] || (t > 0 && s.is_target[t - 1])) continue;
                int end = t;
                while (end < s.n && s.is_target[end]) end++;
                char *text = tok_decode(f.tok, s.ids + t, end - t, 0, &e);
                int a = 0, seen = -1;
                for (int i = 0; i < x.msgs.n; i++)
                    if (x.is_target[i] && a++ == runs) seen = i;
                ok = text && seen >= 0 && !strncmp(text, x.msgs.items[seen].content, strlen(x.msgs.items[seen].content));
                if (!ok) err_set(&e, ERR_INTERNAL, "chat %zu run %d decodes to \"%s\"", c, runs, text ? text : "?");
                free(text);
                runs++;
            }
            if (ok && runs != n_assist) ok = 0, err_set(&e, ERR_INTERNAL, "chat %zu: %d runs for %d replies", c, runs, n_assist);
            sft_encoded_free(&s);
        }
        free(x.is_target);
        msgs_free(&x.msgs);
        checked++;
    }
    fx_close(&f);
    CHECK_MSG(ok, "%s", e.msg);
    CHECK(checked >= 2);
}

/* Chats with a generation prompt are DPO prompts: n_prompt tokens = gold. */
static void check_dpo_prompt_gold(const char *name) {
    Fx f;
    Err e;
    int rc = fx_open(&f, name, &e);
    if (rc == 1) SKIP("fixtures not found (set ALOE_SHARED)");
    CHECK_MSG(rc == 0, "%s", e.msg);
    Encoder enc = encoder(&f, 0);
    json_t *chats = json_object_get(f.root, "chats");
    int ok = 1, checked = 0;
    for (size_t c = 0; c < json_array_size(chats) && ok; c++) {
        json_t *chat = json_array_get(chats, c);
        if (!json_is_true(json_object_get(chat, "add_generation_prompt"))) continue;
        DpoExample x = {0};
        messages_of(json_object_get(chat, "messages"), &x.prompt);
        msgs_push(&x.chosen, "assistant", "Sounds great, tell me more!");
        msgs_push(&x.rejected, "assistant", "No.");
        x.where = "pair";
        DpoEncoded d;
        if (dpo_encode(&enc, &x, &d, &e)) ok = 0;
        else {
            ok = ids_equal(d.chosen, d.n_prompt, json_object_get(chat, "ids")) &&
                 ids_equal(d.rejected, d.n_prompt, json_object_get(chat, "ids")) && d.n_chosen > d.n_rejected;
            if (!ok) err_set(&e, ERR_INTERNAL, "chat %zu: prompt ids differ from the gold", c);
            dpo_encoded_free(&d);
        }
        msgs_free(&x.prompt), msgs_free(&x.chosen), msgs_free(&x.rejected);
        checked++;
    }
    fx_close(&f);
    CHECK_MSG(ok, "%s", e.msg);
    CHECK(checked >= 2);
}

static void test_sft_gold_chatml(void) { check_sft_gold("chatml"); }
static void test_sft_gold_llama3(void) { check_sft_gold("llama3"); }
static void test_dpo_prompt_gold_chatml(void) { check_dpo_prompt_gold("chatml"); }
static void test_dpo_prompt_gold_llama3(void) { check_dpo_prompt_gold("llama3"); }

static int count(const uint8_t *m, int n) {
    int k = 0;
    for (int i = 0; i < n; i++) k += m[i];
    return k;
}

static void test_max_len_drops_oldest_turns(void) {
    Fx f;
    Err e;
    int rc = fx_open(&f, "chatml", &e);
    if (rc == 1) SKIP("fixtures not found (set ALOE_SHARED)");
    CHECK_MSG(rc == 0, "%s", e.msg);
    SftExample x = {0};
    msgs_push(&x.msgs, "system", "Be brief.");
    const char *turns[] = {"first question here", "first answer", "second question", "second answer",
                           "third question", "the reply we train on"};
    for (int i = 0; i < 6; i++) msgs_push(&x.msgs, i % 2 ? "assistant" : "user", turns[i]);
    x.is_target = xcalloc(7, 1);
    x.is_target[6] = 1;
    x.where = "ex";
    Encoder enc = encoder(&f, 0);
    SftEncoded full, cut;
    int ok = !sft_encode(&enc, &x, &full, &e);
    int full_n = full.n, full_t = ok ? count(full.is_target, full.n) : 0;
    /* A limit a few tokens short of the whole: the first turn goes. */
    enc.max_len = full_n - 3;
    int ok2 = ok && !sft_encode(&enc, &x, &cut, &e);
    int fits = ok2 && cut.n <= enc.max_len && cut.dropped == 2 && count(cut.is_target, cut.n) == full_t;
    char *text = ok2 ? tok_decode(f.tok, cut.ids, cut.n, 0, &e) : NULL;
    int kept = text && strstr(text, "Be brief.") && !strstr(text, "first question") && strstr(text, "third question");
    free(text);
    if (ok2) sft_encoded_free(&cut);
    if (ok) sft_encoded_free(&full);
    /* Too short for the last exchange alone: an error, never a cut reply. */
    enc.max_len = 8;
    int rc3 = sft_encode(&enc, &x, &cut, &e);
    int err_ok = rc3 == -1 && strstr(e.msg, "over --max-len 8") && strstr(e.msg, "ex:") == e.msg;
    free(x.is_target);
    msgs_free(&x.msgs);
    fx_close(&f);
    CHECK(ok && ok2);
    CHECK(fits);
    CHECK(kept);
    CHECK_MSG(err_ok, "%s", e.msg);
}

static void test_raw_text_pairs(void) {
    Fx f;
    Err e;
    int rc = fx_open(&f, "llama3", &e);
    if (rc == 1) SKIP("fixtures not found (set ALOE_SHARED)");
    CHECK_MSG(rc == 0, "%s", e.msg);
    DpoExample x = {0};
    x.raw_text = 1;
    msgs_push(&x.prompt, "text", "The sky today is");
    msgs_push(&x.chosen, "text", " blue and clear.");
    msgs_push(&x.rejected, "text", " green.");
    x.where = "raw";
    Encoder enc = encoder(&f, 0);
    DpoEncoded d;
    CHECK_OK(dpo_encode(&enc, &x, &d, &e), &e);
    int bos = tok_bos(f.tok), eos = tok_eos(f.tok);
    int ok = bos >= 0 && d.chosen[0] == bos && d.rejected[0] == bos && d.chosen[d.n_chosen - 1] == eos &&
             !memcmp(d.chosen, d.rejected, (size_t)d.n_prompt * sizeof *d.chosen);
    int np = d.n_prompt, nc = d.n_chosen;
    dpo_encoded_free(&d);
    /* max_len cuts prompt tokens from the left, after the BOS. */
    enc.max_len = nc - 2;
    CHECK_OK(dpo_encode(&enc, &x, &d, &e), &e);
    int cut_ok = d.n_chosen == nc - 2 && d.n_prompt == np - 2 && d.chosen[0] == bos && d.dropped == 2;
    dpo_encoded_free(&d);
    enc.max_len = 3;
    int rc2 = dpo_encode(&enc, &x, &d, &e);
    msgs_free(&x.prompt), msgs_free(&x.chosen), msgs_free(&x.rejected);
    fx_close(&f);
    CHECK(ok);
    CHECK(cut_ok);
    CHECK(rc2 == -1 && strstr(e.msg, "over --max-len 3"));
}

int main(void) {
    RUN(test_sft_gold_chatml);
    RUN(test_sft_gold_llama3);
    RUN(test_dpo_prompt_gold_chatml);
    RUN(test_dpo_prompt_gold_llama3);
    RUN(test_max_len_drops_oldest_turns);
    RUN(test_raw_text_pairs);
    return test_summary();
}
