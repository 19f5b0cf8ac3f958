/* The README's promises about checkpoints and --resume: a checkpoint every
 * --save-every steps (only the newest kept), a full fine-tune stopped and
 * resumed ends bit-identical to one never stopped (on a bf16 model too),
 * --resume refuses other settings naming each that differs, falls back
 * from a damaged checkpoint to an earlier complete one, and a fresh run
 * will not train over an earlier run's checkpoint. */
#include <jansson.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "formats/safetensors.h"
#include "test.h"
#include "train/checkpoint.h"
#include "train/fixture_trees.h"
#include "train/run.h"

static size_t first_tree_len(void) {
    return (size_t)(strchr(TREES, '\n') - TREES) + 1;
}

static void opts(TrainRunOptions *o, const char *model, const char *data, const char *out) {
    train_run_defaults(o);
    o->kind = RUN_SFT, o->model = model, o->data = data, o->out = out;
    o->steps = 4, o->lr = 1e-3, o->quiet = 1, o->threads = 1;
}

static char *read_file(const char *dir, const char *name, size_t *n) {
    char *p = path_join(dir, name), *d = NULL;
    Err e;
    *n = 0;
    if (file_read_all(p, &d, n, &e)) d = NULL;
    free(p);
    return d;
}

static int same_file(const char *a, const char *b, const char *name) {
    size_t na, nb;
    char *da = read_file(a, name, &na), *db = read_file(b, name, &nb);
    int same = da && db && na == nb && !memcmp(da, db, na);
    free(da), free(db);
    return same;
}

static int quiet_run(const TrainRunOptions *o, Err *e) {
    int lvl = log_get_level();
    log_set_level(LOG_ERROR);
    int rc = train_run(o, NULL, e);
    log_set_level(lvl);
    return rc;
}

/* ---- --save-every ---- */

static char g_commits[256];

/* Records the checkpoints switched in: the rename to DIR/checkpoint-N. */
static void commit_hook(const char *op, const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!strcmp(op, "rename") && !strncmp(base, "checkpoint-", 11) && !strchr(base, '.'))
        snprintf(g_commits + strlen(g_commits), sizeof g_commits - strlen(g_commits), "%s ", base + 11);
}

static void test_save_every(void) {
    NEED_SHARED(model, "fixtures/models/tiny-qwen2");
    char *tmp = test_tmpdir(), *data = path_join(tmp, "trees.jsonl"), *out = path_join(tmp, "out");
    Err e;
    CHECK_OK(file_write_atomic(data, TREES, strlen(TREES), &e), &e);
    TrainRunOptions o;
    opts(&o, model, data, out);
    o.steps = 5, o.save_every = 2;
    g_commits[0] = 0;
    file_fault_hook = commit_hook;
    int rc = train_run(&o, NULL, &e);
    file_fault_hook = NULL;
    CHECK_MSG(!rc, "%s", e.msg);
    /* at 2 and 4, and at the end; only the newest is kept */
    CHECK_EQ_STR(g_commits, "2 4 5 ");
    char *newest = ckpt_newest_name(out), *c5 = ckpt_dir_path(out, 5), *c4 = ckpt_dir_path(out, 4);
    CHECK_EQ_STR(newest, "checkpoint-5");
    CHECK(!file_exists(c4));
    json_t *state = NULL;
    CHECK_OK(ckpt_verify(c5, 5, &state, &e), &e);
    /* the checkpoint is a Hugging Face model directory by itself */
    SafeTensors *st = st_open(c5, &e);
    CHECK_MSG(st != NULL, "%s", e.msg);
    st_close(st);
    CHECK(same_file(c5, out, "model.safetensors"));
    json_decref(state);
    /* --save-every 0: at the end only */
    char *out0 = path_join(tmp, "out0");
    o.out = out0, o.save_every = 0;
    g_commits[0] = 0;
    file_fault_hook = commit_hook;
    rc = train_run(&o, NULL, &e);
    file_fault_hook = NULL;
    CHECK_MSG(!rc, "%s", e.msg);
    CHECK_EQ_STR(g_commits, "5 ");
    CHECK(same_file(out0, out, "model.safetensors"));
    free(model), free(tmp), free(data), free(out), free(out0), free(newest), free(c5), free(c4);
}

/* ---- full fine-tuning: stopped and resumed = never stopped ---- */

static void check_full_resume(const char *model, const char *tmp, const char *data, const char *weights) {
    char *a = path_join(tmp, "a"), *b = path_join(tmp, "b");
    TrainRunOptions o;
    Err e;
    opts(&o, model, data, a);
    o.steps = 6;
    int rc = train_run(&o, NULL, &e);
    o.out = b, o.stop_after = 3;
    if (!rc) rc = train_run(&o, NULL, &e);
    o.stop_after = 0, o.resume = 1;
    if (!rc) rc = quiet_run(&o, &e);
    int same = !rc && same_file(a, b, weights) && same_file(a, b, "config.json");
    char *ck = ckpt_dir_path(b, 6);
    int ck_rc = rc ? 0 : ckpt_verify(ck, 6, NULL, &e);
    free(a), free(b), free(ck);
    CHECK_MSG(!rc, "%s", e.msg);
    CHECK_MSG(same, "%s: the resumed run's %s differs from the uninterrupted run's", model, weights);
    CHECK_OK(ck_rc, &e);
}

static void test_full_resume_is_exact(void) {
    NEED_SHARED(model, "fixtures/models/tiny-qwen2");
    char *tmp = test_tmpdir(), *data = path_join(tmp, "trees.jsonl");
    Err e;
    CHECK_OK(file_write_atomic(data, TREES, strlen(TREES), &e), &e);
    check_full_resume(model, tmp, data, "model.safetensors");
    free(model), free(tmp), free(data);
}

/* A bf16 model saves its result in bf16; the checkpoint must still hold
 * the float32 weights, or the resumed run continues from rounded ones
 * (it did: the resumed model differed). */
static void test_full_resume_bf16_model_is_exact(void) {
    char *fixture = test_shared_path("fixtures/models/tiny-qwen2");
    if (!fixture) SKIP("fixtures not found (set ALOE_SHARED)");
    char *tmp = test_tmpdir(), *data = path_join(tmp, "trees.jsonl"), *bf = path_join(tmp, "bf16");
    Err e;
    CHECK_OK(file_write_atomic(data, TREES, strlen(TREES), &e), &e);
    ModelConfig cfg;
    TrainDecoder m;
    memset(&m, 0, sizeof m);
    int rc = hf_config_load(fixture, &cfg, &e) || td_init(&m, &cfg, &e) || td_load(&m, fixture, &e) ||
             ckpt_save_model(&m, fixture, bf, DT_BF16, &e);
    td_free(&m);
    CHECK_OK(rc, &e);
    char *sub = path_join(tmp, "runs");
    CHECK_OK(file_mkdirs(sub, &e), &e);
    check_full_resume(bf, sub, data, "model.safetensors");
    free(fixture), free(tmp), free(data), free(bf), free(sub);
}

/* ---- --resume refuses other settings, naming each ---- */

/* Resumes o (stopped after 2 steps in its out) with change applied;
 * returns the error message ("" when it resumed). */
static char *resume_with(TrainRunOptions o, void (*change)(TrainRunOptions *)) {
    Err e;
    o.resume = 1, o.stop_after = 1;
    change(&o);
    int rc = quiet_run(&o, &e);
    return xstrdup(rc ? e.msg : "");
}

static const char *g_str;
static void other_lr(TrainRunOptions *o) { o->lr = 2e-3; }
static void other_steps(TrainRunOptions *o) { o->steps = 8; }
static void other_seed(TrainRunOptions *o) { o->seed = 7; }
static void other_batch(TrainRunOptions *o) { o->batch = 2, o->grad_accum = 2; }
static void other_max_len(TrainRunOptions *o) { o->max_len = 512; }
static void other_schedule(TrainRunOptions *o) { o->schedule = LR_COSINE, o->warmup = 1; }
static void other_decay(TrainRunOptions *o) { o->weight_decay = 0.1, o->max_grad_norm = 0.5; }
static void other_model(TrainRunOptions *o) { o->model = g_str; }
static void other_data(TrainRunOptions *o) { o->data = g_str; }
static void same_data(TrainRunOptions *o) { (void)o; }
static void other_lora(TrainRunOptions *o) { o->lora_r = 4; }
static void other_kind(TrainRunOptions *o) { o->kind = RUN_DPO; }
static void harmless(TrainRunOptions *o) { o->threads = 2, o->save_every = 1, o->save_dtype = DT_BF16; }

#define CHECK_HAS(msg, text) CHECK_MSG(strstr(msg, text), "expected \"%s\" in: %s", text, msg)

static void test_resume_refuses_other_settings(void) {
    char *model = test_shared_path("fixtures/models/tiny-qwen2"), *llama = test_shared_path("fixtures/models/tiny-llama3");
    if (!model || !llama) {
        free(model), free(llama);
        SKIP("fixtures not found (set ALOE_SHARED)");
    }
    char *tmp = test_tmpdir(), *data = path_join(tmp, "trees.jsonl"), *data2 = path_join(tmp, "more.jsonl");
    char *copy = path_join(tmp, "model"), *out = path_join(tmp, "out");
    Err e;
    CHECK_OK(file_write_atomic(data, TREES, strlen(TREES), &e), &e);
    CHECK_OK(file_write_atomic(data2, TREES, first_tree_len(), &e), &e); /* the first tree only */
    /* a copy of the model, to change it under the run */
    ModelConfig cfg;
    TrainDecoder m;
    memset(&m, 0, sizeof m);
    int rc = hf_config_load(model, &cfg, &e) || td_init(&m, &cfg, &e) || td_load(&m, model, &e) ||
             ckpt_save_model(&m, model, copy, DT_F32, &e);
    CHECK_OK(rc, &e);
    TrainRunOptions o;
    opts(&o, copy, data, out);
    o.stop_after = 2;
    CHECK_OK(train_run(&o, NULL, &e), &e);
    o.stop_after = 0;
    struct {
        void (*change)(TrainRunOptions *);
        const char *arg, *want[2];
    } cases[] = {
        {other_lr, NULL, {"--lr 0.002 here, 0.001 in the checkpoint", NULL}},
        {other_steps, NULL, {"--steps/--epochs (steps in all) 8 here, 4 in the checkpoint", NULL}},
        {other_seed, NULL, {"--seed 7 here, 42 in the checkpoint", NULL}},
        {other_batch, NULL, {"--batch 2 here, 1 in the checkpoint", "--grad-accum 2 here, 1 in the checkpoint"}},
        {other_max_len, NULL, {"--max-len 512 here, 1024 in the checkpoint", NULL}},
        {other_schedule, NULL, {"--warmup 1 here, 0 in the checkpoint", "--schedule cosine here, linear in the checkpoint"}},
        {other_decay, NULL, {"--weight-decay 0.1 here, 0 in the checkpoint", "--max-grad-norm 0.5 here, 1 in the checkpoint"}},
        {other_model, llama, {"--model ", " in the checkpoint"}},
        {other_data, data2, {"--data ", "more.jsonl here"}},
        {other_lora, NULL, {"--lora-r 4 here, 0 in the checkpoint", NULL}},
        {other_kind, NULL, {"the command (train sft|dpo) dpo here, sft in the checkpoint", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        g_str = cases[i].arg;
        char *msg = resume_with(o, cases[i].change);
        int ok = strstr(msg, "was trained with other settings") && strstr(msg, "checkpoint-2") &&
                 strstr(msg, cases[i].want[0]) && (!cases[i].want[1] || strstr(msg, cases[i].want[1]));
        if (!ok) test_fail(__FILE__, __LINE__, "case %zu: expected \"%s\" in: %s", i, cases[i].want[0], msg);
        free(msg);
        if (!ok) return;
    }
    /* the same paths, with other content */
    CHECK_OK(file_write_atomic(data, TREES, first_tree_len(), &e), &e);
    char *msg = resume_with(o, same_data);
    CHECK_HAS(msg, "trees.jsonl has changed since (its content differs)");
    free(msg);
    CHECK_OK(file_write_atomic(data, TREES, strlen(TREES), &e), &e);
    for (size_t i = 0; i < m.n_params; i++) m.params[i] *= 1.001f;
    CHECK_OK(ckpt_save_model(&m, model, copy, DT_F32, &e), &e);
    td_free(&m);
    msg = resume_with(o, same_data);
    CHECK_HAS(msg, "--model ");
    CHECK_HAS(msg, "/model has changed since (its content differs)");
    free(msg);
    CHECK_OK(td_init(&m, &cfg, &e), &e);
    CHECK_OK(td_load(&m, model, &e), &e);
    CHECK_OK(ckpt_save_model(&m, model, copy, DT_F32, &e), &e);
    td_free(&m);
    /* what does not change the weights may differ; the checkpoint is intact after every refusal */
    msg = resume_with(o, harmless);
    CHECK_MSG(!msg[0], "%s", msg);
    free(msg);
    free(model), free(llama), free(tmp), free(data), free(data2), free(copy), free(out);
}

/* A LoRA run's own settings, and a DPO run's. */
static void other_alpha(TrainRunOptions *o) { o->lora_alpha = 3; }
static void other_targets(TrainRunOptions *o) { o->lora_targets = 1u << LORA_Q; }
static void other_dropout(TrainRunOptions *o) { o->lora_dropout = 0.1; }
static void other_beta(TrainRunOptions *o) { o->dpo.beta = 0.5, o->dpo.kind = DPO_IPO; }
static void other_ref(TrainRunOptions *o) { o->ref = g_str; }

static void test_resume_refuses_other_lora_dpo_settings(void) {
    NEED_SHARED(model, "fixtures/models/tiny-qwen3");
    char *tmp = test_tmpdir(), *data = path_join(tmp, "trees.jsonl"), *out = path_join(tmp, "out");
    Err e;
    CHECK_OK(file_write_atomic(data, TREES, strlen(TREES), &e), &e);
    TrainRunOptions o;
    opts(&o, model, data, out);
    o.kind = RUN_DPO, o.lora_r = 2, o.stop_after = 2;
    CHECK_OK(train_run(&o, NULL, &e), &e);
    o.stop_after = 0;
    g_str = model;
    struct {
        void (*change)(TrainRunOptions *);
        const char *want[2];
    } cases[] = {
        {other_lora, {"--lora-r 4 here, 2 in the checkpoint", "--lora-alpha 8 here, 4 in the checkpoint"}},
        {other_alpha, {"--lora-alpha 3 here, 4 in the checkpoint", NULL}},
        {other_targets, {"--lora-targets q_proj here, q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj in the", NULL}},
        {other_dropout, {"--lora-dropout 0.1 here, 0 in the checkpoint", NULL}},
        {other_beta, {"--beta 0.5 here, 0.1 in the checkpoint", "--loss ipo here, sigmoid in the checkpoint"}},
        {other_ref, {"--ref ", "(none) in the checkpoint"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *msg = resume_with(o, cases[i].change);
        int ok = strstr(msg, "was trained with other settings") && strstr(msg, cases[i].want[0]) &&
                 (!cases[i].want[1] || strstr(msg, cases[i].want[1]));
        if (!ok) test_fail(__FILE__, __LINE__, "case %zu: expected \"%s\" in: %s", i, cases[i].want[0], msg);
        free(msg);
        if (!ok) return;
    }
    free(model), free(tmp), free(data), free(out);
}

/* ---- damaged checkpoints, fresh runs over old ones ---- */

static int copy_dir(const char *from, const char *to, Err *e) {
    char **names;
    int n, rc = file_mkdirs(to, e) || file_list_dir(from, &names, &n, e) ? -1 : 0;
    for (int i = 0; !rc && i < n; i++) {
        char *a = path_join(from, names[i]), *b = path_join(to, names[i]), *d;
        size_t len;
        rc = file_read_all(a, &d, &len, e);
        if (!rc) {
            rc = file_write_atomic(b, d, len, e);
            free(d);
        }
        free(a), free(b);
    }
    if (n) file_list_free(names, n);
    return rc;
}

/* checkpoint-4's optimizer state cut short (a disk that lost a block): the
 * resume says so, goes back to checkpoint-2 and still ends exact. */
static void test_resume_falls_back_from_damaged_checkpoint(void) {
    NEED_SHARED(model, "fixtures/models/tiny-qwen2");
    char *tmp = test_tmpdir(), *data = path_join(tmp, "trees.jsonl"), *a = path_join(tmp, "a"), *b = path_join(tmp, "b");
    char *keep = path_join(tmp, "keep");
    Err e;
    CHECK_OK(file_write_atomic(data, TREES, strlen(TREES), &e), &e);
    TrainRunOptions o;
    opts(&o, model, data, a);
    o.steps = 6;
    CHECK_OK(train_run(&o, NULL, &e), &e);
    o.out = b, o.stop_after = 2;
    CHECK_OK(train_run(&o, NULL, &e), &e);
    char *c2 = ckpt_dir_path(b, 2), *c4 = ckpt_dir_path(b, 4);
    CHECK_OK(copy_dir(c2, keep, &e), &e);
    o.resume = 1;
    CHECK_OK(quiet_run(&o, &e), &e); /* to 4; checkpoint-2 removed */
    CHECK(!file_exists(c2) && file_exists(c4));
    CHECK_OK(copy_dir(keep, c2, &e), &e);
    char *opt = path_join(c4, "optimizer.safetensors");
    long long size = file_size(opt);
    CHECK(size > 100 && truncate(opt, size - 100) == 0);
    CHECK_OK(ckpt_verify(c2, 2, NULL, &e), &e);
    CHECK(ckpt_verify(c4, 4, NULL, &e) == -1);
    CHECK_HAS(e.msg, "optimizer.safetensors: ");
    CHECK_HAS(e.msg, "trainer_state.json says");
    o.stop_after = 0;
    CHECK_OK(quiet_run(&o, &e), &e);
    CHECK_MSG(same_file(a, b, "model.safetensors"), "the run resumed from checkpoint-2 differs");
    char *newest = ckpt_newest_name(b);
    CHECK_EQ_STR(newest, "checkpoint-6");
    free(newest);
    /* only a damaged one: an error naming it and what is wrong */
    char *c6 = ckpt_dir_path(b, 6), *st = path_join(c6, "trainer_state.json");
    CHECK_OK(file_write_atomic(st, "{\"global_step\": 5}", 18, &e), &e);
    int rc = quiet_run(&o, &e);
    CHECK(rc == -1);
    CHECK_HAS(e.msg, "none of its 1 checkpoint directories is complete");
    CHECK_HAS(e.msg, "global_step: expected 6");
    free(c6), free(st);
    free(model), free(tmp), free(data), free(a), free(b), free(keep), free(c2), free(c4), free(opt);
}

static void test_fresh_run_keeps_earlier_checkpoint(void) {
    NEED_SHARED(model, "fixtures/models/tiny-qwen2");
    char *tmp = test_tmpdir(), *data = path_join(tmp, "trees.jsonl"), *out = path_join(tmp, "out");
    Err e;
    CHECK_OK(file_write_atomic(data, TREES, strlen(TREES), &e), &e);
    TrainRunOptions o;
    opts(&o, model, data, out);
    /* --resume with nothing to resume from */
    o.resume = 1;
    CHECK(train_run(&o, NULL, &e) == -1 && e.code == ERR_NOTFOUND);
    CHECK_HAS(e.msg, "no checkpoint");
    o.resume = 0, o.stop_after = 2;
    CHECK_OK(train_run(&o, NULL, &e), &e);
    CHECK(train_run(&o, NULL, &e) == -1 && e.code == ERR_ARG);
    CHECK_HAS(e.msg, "holds checkpoint-2 of an earlier run: add --resume");
    char *c2 = ckpt_dir_path(out, 2);
    CHECK_OK(ckpt_verify(c2, 2, NULL, &e), &e);
    free(c2);
    free(model), free(tmp), free(data), free(out);
}

int main(void) {
    RUN(test_save_every);
    RUN(test_full_resume_is_exact);
    RUN(test_full_resume_bf16_model_is_exact);
    RUN(test_resume_refuses_other_settings);
    RUN(test_resume_refuses_other_lora_dpo_settings);
    RUN(test_resume_falls_back_from_damaged_checkpoint);
    RUN(test_fresh_run_keeps_earlier_checkpoint);
    return test_summary();
}
