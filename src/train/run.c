#include "train/run.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/progress.h"
#include "base/rng.h"
#include "base/sha256.h"
#include "formats/safetensors.h"
#include "model/convert.h"
#include "model/convert_mix.h"
#include "model/open.h"
#include "train/checkpoint.h"
#include "train/encode.h"
#include "train/trainer.h"

void train_run_defaults(TrainRunOptions *o) {
    memset(o, 0, sizeof *o);
    o->lr = 0; /* 0: TRL's default for the kind (SFT 2e-5, DPO 1e-6) */
    o->epochs = 1;
    o->batch = 1;
    o->grad_accum = 1;
    o->max_len = 1024;
    o->max_grad_norm = 1.0;
    o->schedule = LR_LINEAR;
    o->dpo = (DpoConfig){DPO_SIGMOID, 0.1, 0, 0};
    o->branch = BRANCH_PREFERRED;
    o->loss_on = LOSS_ON_LAST;
    o->lora_targets = (1u << LORA_N_TARGETS) - 1;
    o->seed = 42;
    o->save_dtype = -1;
}

typedef struct Run {
    const TrainRunOptions *o;
    TrainDecoder policy;
    ThreadPool *tp;
    Tokenizer *tok;
    ChatTemplate *tmpl;
    int n; /* examples */
    SftEncoded *sft;
    DpoEncoded *dpo;
    double *ref_lp; /* DPO: 2 per pair */
    char data_hash[65];
    Trainer tr;
    int trainer_ready;
    long total_steps;
    int per_step;
    long saved_step; /* step of the newest checkpoint in DIR (0: none) */
    char model_fp[65], ref_fp[65], data_file_fp[65];
} Run;

/* ---- setup ---- */

/* The dtype the checkpoint stores its matrices in, when a frozen base can
 * keep it (bf16, f16); else f32, where freezing would save nothing. */
static int stored_dtype(const char *path) {
    Err ignore;
    SafeTensors *st = st_open(path, &ignore);
    const TensorView *v = st ? st_find(st, arch_tensor(PARAM_EMBED)->hf) : NULL;
    int dt = v && (v->dtype == DT_BF16 || v->dtype == DT_F16) ? v->dtype : DT_F32;
    if (st) st_close(st);
    return dt;
}

/* A model from an HF directory; frozen (never trained: LoRA's base, a DPO
 * reference) it keeps a bf16/f16 checkpoint's matrices as stored. */
static int load_decoder(TrainDecoder *m, const char *dir, int frozen, Err *e) {
    ModelConfig cfg;
    if (hf_config_load(dir, &cfg, e) || td_init(m, &cfg, e)) return -1;
    int dt = frozen ? stored_dtype(dir) : DT_F32;
    if (dt != DT_F32 && td_freeze_base(m, dt, e)) return -1;
    return td_load(m, dir, e);
}

static int load_model(Run *r, Err *e) {
    if (load_decoder(&r->policy, r->o->model, r->o->lora_r > 0, e)) return -1;
    /* the tokenizer and chat template as every command opens them */
    ModelOpenOptions mo = {.tokenizer = 1, .chat_template = r->o->chat_template, .quiet = r->o->quiet};
    ModelBundle mb;
    if (model_open(r->o->model, &mo, &mb, e)) return -1;
    r->tok = mb.tok, r->tmpl = mb.tpl; /* the run frees them */
    free(mb.path);
    if (r->o->lora_r > 0) {
        LoraConfig lc = {r->o->lora_r, r->o->lora_alpha > 0 ? r->o->lora_alpha : 2.0 * r->o->lora_r,
                         r->o->lora_dropout, r->o->lora_targets, 0};
        if (lora_config_check(&lc, e) || td_lora_attach(&r->policy, &lc, e)) return -1;
        td_lora_init(&r->policy, r->o->seed);
    }
    return 0;
}

/* Hash of every encoded example: names the data a reference cache is for. */
static void hash_ids(Sha256 *h, const int32_t *ids, int n) {
    sha256_update(h, &n, sizeof n);
    sha256_update(h, ids, (size_t)n * sizeof *ids);
}

static int load_data(Run *r, Err *e) {
    const TrainRunOptions *o = r->o;
    Encoder enc = {r->tok, r->tmpl, chat_render_opts_default(), o->max_len};
    Sha256 h;
    sha256_init(&h);
    int skipped = 0, rc = 0;
    if (o->kind == RUN_SFT) {
        SftData d = {0};
        SftOptions so = {o->branch, o->loss_on};
        rc = sft_data_load(o->data, &so, &d, e);
        r->sft = xcalloc((size_t)(d.n ? d.n : 1), sizeof *r->sft);
        for (int i = 0; i < d.n && !rc; i++) {
            if (sft_encode(&enc, &d.items[i], &r->sft[r->n], e)) {
                if (e->code != ERR_ARG) rc = -1;
                else if (skipped++ < 5) log_warn("skipped: %s", e->msg);
                continue;
            }
            hash_ids(&h, r->sft[r->n].ids, r->sft[r->n].n);
            r->n++;
        }
        sft_data_free(&d);
    } else {
        DpoData d = {0};
        rc = dpo_data_load(o->data, &d, e);
        r->dpo = xcalloc((size_t)(d.n ? d.n : 1), sizeof *r->dpo);
        for (int i = 0; i < d.n && !rc; i++) {
            if (dpo_encode(&enc, &d.items[i], &r->dpo[r->n], e)) {
                if (e->code != ERR_ARG) rc = -1;
                else if (skipped++ < 5) log_warn("skipped: %s", e->msg);
                continue;
            }
            hash_ids(&h, r->dpo[r->n].chosen, r->dpo[r->n].n_chosen);
            hash_ids(&h, r->dpo[r->n].rejected, r->dpo[r->n].n_rejected);
            r->n++;
        }
        dpo_data_free(&d);
    }
    if (rc) return -1;
    if (skipped) log_warn("%d examples skipped: longer than --max-len %d even without earlier turns", skipped, o->max_len);
    if (r->n == 0) return err_set(e, ERR_ARG, "%s: no example fits --max-len %d", o->data, o->max_len);
    uint8_t digest[32];
    sha256_final(&h, digest);
    sha256_to_hex(digest, r->data_hash);
    return 0;
}

static DpoTokens pair_tokens(const DpoEncoded *d) {
    return (DpoTokens){d->chosen, d->rejected, d->n_chosen, d->n_rejected, d->n_prompt};
}

/* Reference log-probs: from the cache in DIR when it was made for the same
 * data and reference, else computed (and cached). */
static int ref_logps(Run *r, Err *e) {
    const TrainRunOptions *o = r->o;
    char *path = path_join(o->out, "ref_logps.safetensors");
    const char *ref_name = o->ref ? o->ref : o->model;
    r->ref_lp = xcalloc((size_t)2 * r->n, sizeof *r->ref_lp);
    int rc = 0, cached = 0;
    if (file_exists(path)) {
        Err ignore;
        SafeTensors *st = st_open(path, &ignore);
        const char *hsh = st ? st_metadata(st, "data_sha256") : NULL, *ref = st ? st_metadata(st, "reference") : NULL;
        const TensorView *v = st ? st_find(st, "ref_logps") : NULL;
        if (hsh && ref && v && !strcmp(hsh, r->data_hash) && !strcmp(ref, ref_name) && v->dtype == DT_F64 &&
            tensor_numel(v) == 2 * r->n) {
            memcpy(r->ref_lp, v->data, (size_t)2 * r->n * sizeof(double));
            cached = 1;
        }
        if (st) st_close(st);
    }
    if (!cached) {
        DpoTokens *pairs = xcalloc((size_t)r->n, sizeof *pairs);
        for (int i = 0; i < r->n; i++) pairs[i] = pair_tokens(&r->dpo[i]);
        TrainDecoder ref;
        memset(&ref, 0, sizeof ref);
        if (!rc && o->ref) {
            rc = load_decoder(&ref, o->ref, 1, e);
            if (!rc && ref.cfg.vocab_size != r->policy.cfg.vocab_size)
                rc = err_set(e, ERR_ARG, "--ref %s: vocabulary of %d tokens, the model's has %d", o->ref,
                             ref.cfg.vocab_size, r->policy.cfg.vocab_size);
        }
        /* Without --ref the policy before its first step is the reference
         * (also when resuming: the checkpoint is loaded after this). */
        if (!rc) rc = trainer_ref_logps(o->ref ? &ref : &r->policy, r->tp, pairs, r->n, r->ref_lp, e);
        td_free(&ref);
        free(pairs);
        if (!rc) {
            TensorView v = {.name = "ref_logps", .dtype = DT_F64, .ndim = 1, .shape = {2 * r->n, 1, 1, 1},
                            .data = r->ref_lp, .nbytes = (size_t)2 * r->n * sizeof(double)};
            const char *const meta[] = {"data_sha256", r->data_hash, "reference", ref_name, NULL};
            rc = st_write(path, &v, 1, meta, e);
        }
    }
    free(path);
    return rc;
}

/* --matmul bf16: the policy's products from here on (the DPO reference
 * log-probs, computed and cached before, stay f32: one pass, and a cache
 * that does not depend on the flag). One notice where the backend has no
 * bf16 products: the run goes on in f32. */
static void set_matmul(Run *r) {
    Backend *be = r->policy.be;
    if (!r->o->matmul) return;
    if (!be->set_matmul_bf16 || !be->set_matmul_bf16(be, r->o->matmul))
        log_warn("--matmul bf16: no bf16 dot product here (it needs AVX512-BF16 and the avx512 kernel levels); "
                 "training with f32 products");
}

static int make_trainer(Run *r, Err *e) {
    const TrainRunOptions *o = r->o;
    r->per_step = o->batch * o->grad_accum;
    long per_epoch = (r->n + r->per_step - 1) / r->per_step;
    r->total_steps = o->steps > 0 ? o->steps : (long)ceil(o->epochs * per_epoch);
    if (r->total_steps <= 0) return err_set(e, ERR_ARG, "nothing to train: 0 steps");
    double lr = o->lr > 0 ? o->lr : o->kind == RUN_SFT ? 2e-5 : 1e-6;
    TrainerConfig tc = {0};
    tc.schedule = (LrSchedule){o->schedule, lr, o->warmup, r->total_steps};
    tc.adamw = adamw_defaults();
    tc.adamw.weight_decay = o->weight_decay;
    tc.decay = TRAIN_DECAY_HF;
    tc.max_grad_norm = (float)o->max_grad_norm;
    tc.dpo = o->dpo;
    tc.seed = o->seed;
    if (trainer_init(&r->tr, &r->policy, r->tp, &tc, e)) return -1;
    r->trainer_ready = 1;
    set_matmul(r);
    return 0;
}

/* ---- checkpoints ---- */

/* A cheap fingerprint of a model directory, to refuse resuming from
 * another model: config.json whole, and the name, size, first and last MiB
 * of each safetensors file (another model, or the same one trained on,
 * differs there; hashing every weight of a 7B model at each start would
 * cost a minute). */
static void model_fingerprint(const char *dir, char hex[65]) {
    enum { MIB = 1 << 20 };
    Sha256 h;
    sha256_init(&h);
    char **names = NULL;
    int n = 0;
    Err ignore;
    if (file_list_dir(dir, &names, &n, &ignore)) n = 0;
    char *buf = xmalloc(MIB);
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        int whole = !strcmp(names[i], "config.json");
        if (!whole && (len < 12 || strcmp(names[i] + len - 12, ".safetensors"))) continue;
        char *p = path_join(dir, names[i]);
        FILE *f = fopen(p, "rb");
        free(p);
        if (!f) continue;
        long long size = -1;
        if (!fseek(f, 0, SEEK_END)) size = ftell(f);
        sha256_update(&h, names[i], len + 1);
        sha256_update(&h, &size, sizeof size);
        rewind(f);
        size_t got;
        for (long long at = 0; (got = fread(buf, 1, MIB, f)) > 0; at += (long long)got) {
            sha256_update(&h, buf, got);
            if (!whole && at + (long long)got < size - MIB) { /* skip to the last MiB */
                if (fseek(f, (long)(size - MIB), SEEK_SET)) break;
                at = size - MIB - (long long)got;
            }
        }
        fclose(f);
    }
    free(buf);
    file_list_free(names, n);
    uint8_t d[32];
    sha256_final(&h, d);
    sha256_to_hex(d, hex);
}

static void file_fingerprint(const char *path, char hex[65]) {
    char *data;
    size_t len;
    Err ignore;
    if (file_read_all(path, &data, &len, &ignore)) {
        snprintf(hex, 65, "unreadable");
        return;
    }
    sha256_hex(data, len, hex);
    free(data);
}

/* What decides a run's trajectory, recorded in each checkpoint so that
 * --resume refuses other settings instead of continuing into a run that no
 * uninterrupted one would give. (Threads, --save-every, --save-dtype and
 * the exports do not change the weights and may differ.) */
static json_t *run_settings(const Run *r) {
    const TrainRunOptions *o = r->o;
    const TrainerConfig *tc = &r->tr.cfg;
    json_t *s = json_object();
    json_object_set_new(s, "kind", json_string(o->kind == RUN_SFT ? "sft" : "dpo"));
    json_object_set_new(s, "model", json_string(o->model));
    json_object_set_new(s, "model_sha256", json_string(r->model_fp));
    json_object_set_new(s, "ref", o->ref ? json_string(o->ref) : json_null());
    json_object_set_new(s, "ref_sha256", o->ref ? json_string(r->ref_fp) : json_null());
    json_object_set_new(s, "data", json_string(o->data));
    json_object_set_new(s, "data_file_sha256", json_string(r->data_file_fp));
    json_object_set_new(s, "chat_template", o->chat_template ? json_string(o->chat_template) : json_null());
    json_object_set_new(s, "max_len", json_integer(o->max_len));
    json_object_set_new(s, "branch", json_string(o->branch == BRANCH_PREFERRED ? "preferred" : "rejected"));
    json_object_set_new(s, "loss_on", json_string(o->loss_on == LOSS_ON_LAST ? "last" : "all-assistant"));
    int lora = r->policy.lora_on;
    json_object_set_new(s, "lora_r", json_integer(lora ? r->policy.lora.r : 0));
    json_object_set_new(s, "lora_alpha", lora ? json_real(r->policy.lora.alpha) : json_null());
    json_object_set_new(s, "lora_dropout", lora ? json_real(r->policy.lora.dropout) : json_null());
    StrBuf t;
    sb_init(&t);
    for (int k = 0; lora && k < LORA_N_TARGETS; k++) {
        char mod[64];
        if ((r->policy.lora.targets & (1u << k)) && td_lora_module(&r->policy, k, mod, sizeof mod))
            sb_printf(&t, "%s%s", t.len ? "," : "", mod);
    }
    json_object_set_new(s, "lora_targets", lora ? json_string(t.s ? t.s : "") : json_null());
    sb_free(&t);
    json_object_set_new(s, "lr", json_real(tc->schedule.lr));
    json_object_set_new(s, "max_steps", json_integer(r->total_steps));
    json_object_set_new(s, "batch", json_integer(o->batch));
    json_object_set_new(s, "grad_accum", json_integer(o->grad_accum));
    json_object_set_new(s, "weight_decay", json_real(o->weight_decay));
    json_object_set_new(s, "max_grad_norm", json_real(o->max_grad_norm));
    json_object_set_new(s, "warmup", json_integer(o->warmup));
    json_object_set_new(s, "schedule", json_string(lr_kind_name(o->schedule)));
    json_object_set_new(s, "seed", json_integer((json_int_t)o->seed));
    int dpo = o->kind == RUN_DPO;
    json_object_set_new(s, "dpo_loss", dpo ? json_string(dpo_kind_name(o->dpo.kind)) : json_null());
    json_object_set_new(s, "beta", dpo ? json_real(o->dpo.beta) : json_null());
    json_object_set_new(s, "label_smoothing", dpo ? json_real(o->dpo.label_smoothing) : json_null());
    json_object_set_new(s, "nll", dpo ? json_real(o->dpo.nll_alpha) : json_null());
    json_object_set_new(s, "data_sha256", json_string(r->data_hash));
    /* only when bf16: checkpoints from before --matmul existed were f32 */
    if (o->matmul) json_object_set_new(s, "matmul", json_string("bf16"));
    return s;
}

/* The settings --resume compares, with the flag each comes from; for the
 * fingerprints, the key of the path to show. data_sha256 (the tokenised
 * examples) comes last: it differs whenever the data or its settings do. */
static const struct {
    const char *key, *flag, *shown;
} CHECKED[] = {
    {"kind", "the command (train sft|dpo)", NULL}, {"model_sha256", "--model", "model"}, {"ref_sha256", "--ref", "ref"},
    {"data_file_sha256", "--data", "data"},        {"chat_template", "--chat-template", NULL},
    {"max_len", "--max-len", NULL},                {"branch", "--branch", NULL},
    {"loss_on", "--loss-on", NULL},                {"lora_r", "--lora-r", NULL},
    {"lora_alpha", "--lora-alpha", NULL},          {"lora_dropout", "--lora-dropout", NULL},
    {"lora_targets", "--lora-targets", NULL},      {"lr", "--lr", NULL},
    {"max_steps", "--steps/--epochs (steps in all)", NULL}, {"batch", "--batch", NULL},
    {"grad_accum", "--grad-accum", NULL},          {"weight_decay", "--weight-decay", NULL},
    {"max_grad_norm", "--max-grad-norm", NULL},    {"warmup", "--warmup", NULL},
    {"schedule", "--schedule", NULL},              {"seed", "--seed", NULL},
    {"dpo_loss", "--loss", NULL},                  {"beta", "--beta", NULL},
    {"label_smoothing", "--label-smoothing", NULL}, {"nll", "--nll", NULL},
    {"matmul", "--matmul", NULL},
    {"data_sha256", "the tokenised examples (another tokenizer or chat template?)", NULL},
};

/* A setting's value as a user wrote it (reals in their shortest exact form). */
static void show_value(const json_t *v, char *buf, size_t cap) {
    if (!v || json_is_null(v)) snprintf(buf, cap, "(none)");
    else if (json_is_string(v)) snprintf(buf, cap, "%s", json_string_value(v));
    else if (json_is_integer(v)) snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) {
        for (int prec = 6; prec <= 17; prec++) {
            snprintf(buf, cap, "%.*g", prec, json_real_value(v));
            if (strtod(buf, NULL) == json_real_value(v)) break;
        }
    } else snprintf(buf, cap, "?");
}

static int check_settings(const Run *r, json_t *state, const char *dir, Err *e) {
    json_t *old = json_object_get(state, "settings");
    if (!json_is_object(old))
        return err_set(e, ERR_PARSE, "%s/trainer_state.json: settings: expected the run's settings", dir);
    json_t *cur = run_settings(r);
    StrBuf diff;
    sb_init(&diff);
    size_t n = sizeof CHECKED / sizeof *CHECKED;
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_object_get(cur, CHECKED[i].key), *b = json_object_get(old, CHECKED[i].key);
        int a_null = !a || json_is_null(a), b_null = !b || json_is_null(b);
        if ((a_null && b_null) || (!a_null && !b_null && json_equal(a, b))) continue;
        if (i == n - 1 && diff.len) break; /* already explained */
        const char *key = CHECKED[i].shown ? CHECKED[i].shown : CHECKED[i].key;
        char here[256], there[256];
        show_value(json_object_get(cur, key), here, sizeof here);
        show_value(json_object_get(old, key), there, sizeof there);
        if (i == n - 1) sb_printf(&diff, "%s differ", CHECKED[i].flag);
        else if (CHECKED[i].shown && !strcmp(here, there))
            sb_printf(&diff, "%s%s %s has changed since (its content differs)", diff.len ? "; " : "", CHECKED[i].flag, here);
        else sb_printf(&diff, "%s%s %s here, %s in the checkpoint", diff.len ? "; " : "", CHECKED[i].flag, here, there);
    }
    json_decref(cur);
    int rc = diff.len ? err_set(e, ERR_ARG, "--resume: %s was trained with other settings: %s (resume with the same "
                                "settings, or train into another --out)", dir, diff.s)
                      : 0;
    sb_free(&diff);
    return rc;
}

/* The model (or adapter) as a checkpoint or the final output keeps it. */
static int save_model_into(Run *r, const char *dir, int dtype, const char *gguf, Err *e) {
    const TrainRunOptions *o = r->o;
    CkptSaveOpts so = {.dtype = dtype, .max_shard_bytes = o->max_shard_bytes, .gguf_type = gguf};
    return r->policy.lora_on ? ckpt_save_adapter(&r->policy, o->model, dir, dtype, e)
                             : ckpt_save_model_opts(&r->policy, o->model, dir, &so, e);
}

/* DIR/checkpoint-<step>, made whole and then switched in (checkpoint.h).
 * It keeps the weights in float32 whatever --save-dtype says: a resumed run
 * goes on from exactly the values an uninterrupted one has, where bf16
 * would have rounded them. */
static int save_checkpoint(Run *r, Err *e) {
    const TrainRunOptions *o = r->o;
    char name[48], *stage;
    snprintf(name, sizeof name, "checkpoint-%ld", r->tr.step);
    if (ckpt_stage(o->out, name, &stage, e)) return -1;
    json_t *s = json_object();
    json_object_set_new(s, "global_step", json_integer(r->tr.step));
    json_object_set_new(s, "epoch", json_real((double)r->tr.step * r->per_step / r->n));
    json_object_set_new(s, "max_steps", json_integer(r->total_steps));
    json_object_set_new(s, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(s, "data_sha256", json_string(r->data_hash));
    json_object_set_new(s, "kind", json_string(o->kind == RUN_SFT ? "sft" : "dpo"));
    json_object_set_new(s, "settings", run_settings(r));
    char *op = path_join(stage, "optimizer.safetensors");
    int rc = save_model_into(r, stage, DT_F32, NULL, e) || ckpt_save_optimizer(&r->tr, op, e) ||
                     ckpt_commit(o->out, stage, r->tr.step, s, e) ? -1 : 0;
    json_decref(s);
    free(op);
    if (rc) {
        Err ignore;
        file_remove_tree(stage, &ignore);
    } else {
        r->saved_step = r->tr.step;
    }
    free(stage);
    return rc;
}

/* The trained model in DIR itself, in --save-dtype (with --gguf): linked
 * from the last checkpoint when that holds what was asked for, else written
 * anew; published (checkpoint.h) so DIR is a loadable model only once
 * complete. */
static int publish_final(Run *r, Err *e) {
    const TrainRunOptions *o = r->o;
    if (!r->policy.lora_on && ckpt_saves_text_only(&r->policy))
        log_info("%s: %s is the text decoder of %s: saved as %s (config.json from its text_config, tensors model.*); "
                 "the vision tower and projector were not trained, use the base model's for images",
                 o->out, o->model, arch_desc(r->policy.cfg.arch)->hf,
                 arch_desc(arch_canonical(r->policy.cfg.arch))->hf);
    int dtype = o->save_dtype >= 0 ? o->save_dtype : r->policy.cfg.dtype;
    if (dtype != DT_BF16 && dtype != DT_F16) dtype = DT_F32;
    if (dtype == DT_F32 && !o->gguf_type) {
        char *ck = ckpt_dir_path(o->out, r->tr.step);
        int rc = ckpt_publish(ck, o->out, e);
        free(ck);
        return rc;
    }
    char *stage;
    if (ckpt_stage(o->out, "final", &stage, e)) return -1;
    int rc = save_model_into(r, stage, dtype, o->gguf_type, e) || ckpt_publish(stage, o->out, e) ? -1 : 0;
    Err ignore;
    if (file_remove_tree(stage, rc ? &ignore : e)) rc = -1;
    free(stage);
    return rc;
}

/* Keeps the metrics lines of steps <= step (a crash may have logged steps
 * after the last checkpoint). */
static int trim_metrics(const char *path, long step, Err *e) {
    if (!file_exists(path)) return 0;
    char *data;
    size_t len;
    if (file_read_all(path, &data, &len, e)) return -1;
    StrBuf keep;
    sb_init(&keep);
    for (char *line = data, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl) break; /* a torn last line */
        json_t *j = json_loadb(line, (size_t)(nl - line), 0, NULL);
        if (j && json_integer_value(json_object_get(j, "step")) <= step) sb_appendn(&keep, line, (size_t)(nl - line + 1));
        if (j) json_decref(j);
    }
    int rc = keep.len == len ? 0 : file_write_atomic(path, keep.s ? keep.s : "", keep.len, e);
    sb_free(&keep);
    free(data);
    return rc;
}

/* Weights and optimiser state from a verified checkpoint directory. */
static int load_checkpoint(Run *r, const char *dir, Err *e) {
    int rc = 0;
    if (r->policy.lora_on) {
        char *ap = path_join(dir, "adapter_model.safetensors");
        SafeTensors *st = st_open(ap, e);
        free(ap);
        if (!st) return -1;
        for (int i = 0; i < r->policy.n_lora_tensors && !rc; i++) {
            const TdTensor *t = &r->policy.lora_tensors[i];
            const TensorView *v = st_get(st, t->name, e);
            rc = !v || (size_t)tensor_numel(v) != t->numel || tensor_to_f32(v, r->policy.lora_params + t->offset, e);
            if (rc && v && (size_t)tensor_numel(v) != t->numel)
                err_set(e, ERR_ARG, "--resume: %s has another shape (other LoRA settings?)", t->name);
        }
        st_close(st);
    } else {
        rc = td_load(&r->policy, dir, e);
    }
    char *op = path_join(dir, "optimizer.safetensors");
    if (!rc) rc = ckpt_load_optimizer(&r->tr, op, e);
    free(op);
    return rc ? -1 : 0;
}

static int resume(Run *r, Err *e) {
    const TrainRunOptions *o = r->o;
    char *dir;
    long step;
    json_t *state;
    if (ckpt_latest(o->out, &dir, &step, &state, e)) {
        char *legacy = path_join(o->out, "trainer_state.json");
        if (e->code == ERR_NOTFOUND && file_exists(legacy))
            err_wrap(e, "(%s is of an earlier aloe that kept the checkpoint beside the model, where a torn save cannot "
                     "be told apart: it cannot be resumed)", legacy);
        free(legacy);
        return err_wrap(e, "--resume");
    }
    /* the others go, as the commit of this one would have done had it ended */
    int rc = check_settings(r, state, dir, e) || load_checkpoint(r, dir, e) || ckpt_remove_others(o->out, step, e) ? -1 : 0;
    json_decref(state);
    if (!rc && r->tr.step != step)
        rc = err_set(e, ERR_ARG, "--resume: %s: optimizer state is at step %ld, the checkpoint's trainer_state.json at %ld",
                     dir, r->tr.step, step);
    char *mp = path_join(o->out, "metrics.jsonl");
    if (!rc) rc = trim_metrics(mp, step, e);
    free(mp);
    if (!rc) {
        r->saved_step = step;
        log_info("resuming at step %ld of %ld from %s", step, r->total_steps, dir);
    }
    free(dir);
    return rc ? -1 : 0;
}

/* DIR before a run: leftovers of an interrupted save removed; a fresh run
 * refuses a DIR holding an earlier run's checkpoint (--resume continues
 * it) and drops metrics an attempt logged before its first checkpoint. */
static int prepare_out(const TrainRunOptions *o, Err *e) {
    if (file_mkdirs(o->out, e) || ckpt_clean_tmp(o->out, e)) return -1;
    if (o->resume) return 0;
    char *name = ckpt_newest_name(o->out);
    if (name) {
        err_set(e, ERR_ARG, "%s holds %s of an earlier run: add --resume to continue it, or train into another --out "
                "(or remove it)", o->out, name);
        free(name);
        return -1;
    }
    char *mp = path_join(o->out, "metrics.jsonl");
    int rc = trim_metrics(mp, 0, e);
    free(mp);
    return rc;
}

/* ---- the loop ---- */

/* The example at global position k: epochs are seeded shuffles. */
static int example_at(Run *r, long k, int **order, long *order_epoch) {
    long epoch = k / r->n;
    if (epoch != *order_epoch) {
        if (!*order) *order = xmalloc((size_t)r->n * sizeof **order);
        for (int i = 0; i < r->n; i++) (*order)[i] = i;
        Rng g;
        rng_derive(&g, r->o->seed, 0x7261696e /* "rain" */, (uint64_t)epoch);
        rng_shuffle_int(&g, *order, r->n);
        *order_epoch = epoch;
    }
    return (*order)[k % r->n];
}

static int one_step(Run *r, long step, int **order, long *order_epoch, StepStats *st, Err *e) {
    int m = r->per_step;
    long first = step * (long)m;
    int rc;
    if (r->o->kind == RUN_SFT) {
        SftTokens *b = xcalloc((size_t)m, sizeof *b);
        for (int i = 0; i < m; i++) {
            const SftEncoded *x = &r->sft[example_at(r, first + i, order, order_epoch)];
            b[i] = (SftTokens){x->ids, x->is_target, x->n};
        }
        rc = trainer_sft_accumulate(&r->tr, b, m, st, e);
        free(b);
    } else {
        DpoTokens *b = xcalloc((size_t)m, sizeof *b);
        double *ref = xcalloc((size_t)2 * m, sizeof *ref);
        for (int i = 0; i < m; i++) {
            int k = example_at(r, first + i, order, order_epoch);
            b[i] = pair_tokens(&r->dpo[k]);
            ref[2 * i] = r->ref_lp[2 * k], ref[2 * i + 1] = r->ref_lp[2 * k + 1];
        }
        rc = trainer_dpo_accumulate(&r->tr, b, m, ref, st, e);
        free(b), free(ref);
    }
    if (!rc) trainer_apply(&r->tr, st);
    return rc;
}

static int loop(Run *r, volatile sig_atomic_t *stop, Err *e) {
    const TrainRunOptions *o = r->o;
    char *mp = path_join(o->out, "metrics.jsonl");
    Appender metrics;
    int rc = appender_repair(mp, e) < 0 || appender_open(&metrics, mp, e) ? -1 : 0;
    free(mp);
    if (rc) return -1;
    Progress p;
    progress_start(&p, o->kind == RUN_SFT ? "sft" : "dpo", r->total_steps, r->tr.step, o->quiet);
    int *order = NULL;
    long order_epoch = -1;
    double t0 = now_seconds();
    long tokens = 0, start = r->tr.step;
    while (!rc && r->tr.step < r->total_steps && !(stop && *stop) &&
           !(o->stop_after > 0 && r->tr.step - start >= o->stop_after)) {
        StepStats st;
        long step = r->tr.step;
        if ((rc = one_step(r, step, &order, &order_epoch, &st, e))) break;
        tokens += st.tokens;
        double epoch = (double)(step + 1) * r->per_step / r->n;
        StrBuf line;
        sb_init(&line);
        trainer_metrics_line(&st, step + 1, epoch, tokens / fmax(now_seconds() - t0, 1e-9), &line);
        sb_appendc(&line, '\n');
        rc = appender_write(&metrics, line.s, line.len, e);
        sb_free(&line);
        progress_add(&p, 1);
        atomic_fetch_add(&p.tokens, st.tokens);
        if (!rc && o->save_every > 0 && r->tr.step % o->save_every == 0 && r->tr.step < r->total_steps)
            rc = save_checkpoint(r, e);
    }
    progress_stop(&p);
    appender_close(&metrics);
    free(order);
    /* The end, Ctrl-C or stop_after: a checkpoint of where the run is
     * (not after a failed step; none when the last one is of this step). */
    if (!rc && r->tr.step > r->saved_step) rc = save_checkpoint(r, e);
    if (!rc && r->tr.step >= r->total_steps) rc = publish_final(r, e);
    if (!rc && stop && *stop && r->tr.step < r->total_steps) {
        if (r->saved_step == 0) return err_set(e, ERR_CANCELLED, "interrupted before the first step; nothing saved");
        rc = err_set(e, ERR_CANCELLED, "interrupted at step %ld; checkpoint saved in %s/checkpoint-%ld (continue with "
                     "--resume)", r->tr.step, o->out, r->tr.step);
    }
    return rc;
}

static int check_options(const TrainRunOptions *o, Err *e) {
    if (!o->model || !o->data || !o->out) return err_set(e, ERR_ARG, "--model, --data and --out are required");
    if (o->batch < 1 || o->grad_accum < 1) return err_set(e, ERR_ARG, "--batch and --grad-accum must be >= 1");
    if (o->max_len < 0) return err_set(e, ERR_ARG, "--max-len must be >= 0");
    if (o->steps <= 0 && !(o->epochs > 0)) return err_set(e, ERR_ARG, "give --steps N or --epochs E > 0");
    if (o->ref && o->kind != RUN_DPO) return err_set(e, ERR_ARG, "--ref is for DPO");
    if (o->matmul < 0 || o->matmul > 2) return err_set(e, ERR_ARG, "--matmul: expected f32 or bf16");
    if (o->lora_dropout != 0 && o->lora_r <= 0) return err_set(e, ERR_ARG, "--lora-dropout needs --lora-r");
    if ((o->gguf_type || o->max_shard_bytes) && o->lora_r > 0)
        return err_set(e, ERR_ARG, "--gguf and --max-shard-size apply to full fine-tuning; a LoRA run saves an "
                                   "adapter (aloe merge --gguf T --max-shard-size S writes the merged model)");
    int gt;
    if (o->gguf_type && convert_type_parse(o->gguf_type, &gt, e)) return err_wrap(e, "--gguf");
    return o->kind == RUN_DPO ? dpo_config_check(&o->dpo, e) : 0;
}

static int train_run_local(const TrainRunOptions *o, volatile sig_atomic_t *stop, Err *e);

int train_run(const TrainRunOptions *opts, volatile sig_atomic_t *stop, Err *e) {
    if (check_options(opts, e)) return -1;
    /* --model and --ref take every model spec with weights: a directory,
     * hf://ORG/REPO[@REV] (downloaded once into the cache) or local:SPEC;
     * the run sees the local paths they resolve to */
    TrainRunOptions resolved = *opts;
    char *model_path = NULL, *ref_path = NULL;
    if (model_spec_resolve(opts->model, opts->quiet, &model_path, e) ||
        (opts->ref && model_spec_resolve(opts->ref, opts->quiet, &ref_path, e))) {
        const char *flag = model_path ? "--ref" : "--model";
        free(model_path);
        return err_wrap(e, "%s", flag);
    }
    resolved.model = model_path;
    if (ref_path) resolved.ref = ref_path;
    int rc = train_run_local(&resolved, stop, e);
    free(model_path), free(ref_path);
    return rc;
}

/* train_run once the model specs are local paths. */
static int train_run_local(const TrainRunOptions *o, volatile sig_atomic_t *stop, Err *e) {
    if (prepare_out(o, e)) return -1;
    Run r;
    memset(&r, 0, sizeof r);
    r.o = o;
    model_fingerprint(o->model, r.model_fp);
    if (o->ref) model_fingerprint(o->ref, r.ref_fp);
    file_fingerprint(o->data, r.data_file_fp);
    r.tp = tp_create(o->threads);
    int rc = load_model(&r, e) || load_data(&r, e) || (o->kind == RUN_DPO && ref_logps(&r, e)) ||
             make_trainer(&r, e) || (o->resume && resume(&r, e)) || loop(&r, stop, e);
    if (r.trainer_ready) trainer_free(&r.tr);
    for (int i = 0; i < r.n; i++) {
        if (r.sft) sft_encoded_free(&r.sft[i]);
        if (r.dpo) dpo_encoded_free(&r.dpo[i]);
    }
    free(r.sft), free(r.dpo), free(r.ref_lp);
    if (r.tmpl) chat_template_free(r.tmpl);
    if (r.tok) tok_free(r.tok);
    td_free(&r.policy);
    tp_free(r.tp);
    return rc ? -1 : 0;
}
